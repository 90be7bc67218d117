"""A loaded hubert.c model: every hidden state of a waveform as numpy arrays."""
import ctypes

import numpy as np

from . import _lib


class HubertError(RuntimeError):
    pass


class Model:
    """Model(model_dir, device="cpu", threads=0). Hidden states use Hugging Face's numbering:
    0 = transformer input, k = output of layer k (num_layers + 1 in all)."""

    def __init__(self, model_dir, device="cpu", threads=0):
        self._lib = _lib.load()
        self._h = self._lib.hubert_open(str(model_dir).encode(), device.encode(), int(threads))
        if not self._h:
            raise HubertError(_lib.last_error(self._lib))
        self.num_layers = self._lib.hubert_num_layers(self._h)
        self.hidden_size = self._lib.hubert_hidden_size(self._h)
        self.downsample_rate = self._lib.hubert_downsample_rate(self._h)
        self.receptive_field = self._lib.hubert_receptive_field(self._h)

    def close(self):
        if getattr(self, "_h", None):
            self._lib.hubert_close(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def num_frames(self, num_samples):
        return int(self._lib.hubert_num_frames(self._h, int(num_samples)))

    def _check(self, wave):
        w = np.ascontiguousarray(np.asarray(wave, dtype=np.float32))
        if w.ndim != 1:
            raise ValueError("hubert_c: a waveform must be 1-D (got shape %s)" % (w.shape,))
        return w

    def forward(self, wave):
        """1-D float32 waveform (16 kHz) -> (num_layers + 1, frames, hidden_size) float32."""
        if self._h is None:
            raise HubertError("hubert_c: model is closed")
        w = self._check(wave)
        T = max(self.num_frames(len(w)), 0)
        out = np.empty((self.num_layers + 1, T, self.hidden_size), np.float32)
        f32p = ctypes.POINTER(ctypes.c_float)
        n = self._lib.hubert_forward(self._h, w.ctypes.data_as(f32p), len(w), out.ctypes.data_as(f32p), out.size)
        if n < 0:
            raise HubertError(_lib.last_error(self._lib))
        return out

    def forward_batch(self, waves):
        """Waveforms zero-padded into one batch, as torchaudio/fairseq run it ->
        ((num_layers + 1, B, T, hidden_size) float32, frames (B,) int64)."""
        if self._h is None:
            raise HubertError("hubert_c: model is closed")
        ws = [self._check(w) for w in waves]
        B, L = len(ws), max(len(w) for w in ws)
        x = np.zeros((B, L), np.float32)
        for b, w in enumerate(ws):
            x[b, :len(w)] = w
        lens = np.array([len(w) for w in ws], np.int64)
        T = max(self.num_frames(L), 0)
        out = np.empty((self.num_layers + 1, B, T, self.hidden_size), np.float32)
        frames = np.zeros(B, np.int64)
        f32p, i64p = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int64)
        n = self._lib.hubert_forward_batch(self._h, x.ctypes.data_as(f32p), lens.ctypes.data_as(i64p), B, L,
                                           out.ctypes.data_as(f32p), out.size, frames.ctypes.data_as(i64p))
        if n < 0:
            raise HubertError(_lib.last_error(self._lib))
        return out, frames
