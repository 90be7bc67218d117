"""An s3prl-style upstream over hubert.c (numpy in, numpy out)."""
import numpy as np

from .model import Model

SAMPLE_RATE = 16000


class UpstreamExpert:
    """UpstreamExpert(ckpt) with ckpt a model folder (hubert.c checkpoint or HF HuBERT folder).

    up(wavs) with wavs a list of 1-D float32 arrays at 16 kHz returns
      {"hidden_states": [NL + 1 arrays (B, T, H)], "last_hidden_state": (B, T, H),
       "frame_lengths": (B,) valid frames of each utterance}
    T is the frame count of the longest waveform (as s3prl pads the batch); frames after an
    utterance's own length are zero. By default each utterance runs alone, so its features do not
    depend on the rest of the batch (the same as `hubert extract --batch-size 1`); batched=True runs
    one zero-padded batch as fairseq/s3prl do (group-norm models then see the padding).
    normalize=True layer-normalises each waveform first (fairseq's task.normalize, HuBERT Large)."""

    def __init__(self, ckpt, device="cpu", threads=0, batched=False, normalize=False, **kwargs):
        self.model = Model(ckpt, device=device, threads=threads)
        self.batched = batched
        self.normalize = normalize
        self.name = "hubert_c"

    def get_downsample_rates(self, key=None):
        return self.model.downsample_rate

    def _prep(self, wav):
        w = np.asarray(wav, dtype=np.float32).reshape(-1)
        if self.normalize:
            w = ((w - w.mean()) / np.sqrt(w.var() + 1e-5)).astype(np.float32)
        return w

    def forward(self, wavs):
        if len(wavs) == 0:
            raise ValueError("hubert_c: forward() needs at least one waveform")
        ws = [self._prep(w) for w in wavs]
        m = self.model
        if self.batched:
            out, frames = m.forward_batch(ws)
            T = out.shape[2]
            for b, f in enumerate(frames):
                out[:, b, f:] = 0
            hs = [out[i] for i in range(m.num_layers + 1)]
        else:
            per = [m.forward(w) for w in ws]
            frames = np.array([p.shape[1] for p in per], np.int64)
            T = int(frames.max())
            stacked = np.zeros((m.num_layers + 1, len(ws), T, m.hidden_size), np.float32)
            for b, p in enumerate(per):
                stacked[:, b, :p.shape[1]] = p
            hs = [stacked[i] for i in range(m.num_layers + 1)]
        return {"hidden_states": hs, "last_hidden_state": hs[-1], "frame_lengths": frames}

    __call__ = forward
