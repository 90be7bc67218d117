#!/usr/bin/python3
# ctest-labels: parity
"""`hubert mfcc` / `hubert fbank` vs torchaudio 0.13.

mfcc: fairseq's examples/hubert/simple_kmeans/dump_mfcc_feature.py recipe
  (kaldi.mfcc(use_energy=False) -> compute_deltas -> compute_deltas -> concat (T, 39));
fbank: torchaudio.compliance.kaldi.fbank(num_mel_bins=80).
Inputs (seeded, seed printed; HUBERT_TEST_SEED fixes it): noise, chirps, sines, silence stretches,
all-zero and tiny signals, DC offsets, near full scale, lengths from 400 samples to seconds, and
espeak-ng speech converted to 16 kHz with sox. Written as 16-bit wav, read back by both sides as
int16 / 32768. Pass: equal utterance ids and frame counts, relative L2 error < 1e-4 per utterance.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import wave

import numpy as np

TOL = 1e-4


def write_wav(path, x, rate=16000):
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def make_signals(rng):
    sr = 16000
    sig = {}
    lengths = [400, 401, 559, 560, 561, 1234] + [int(v) for v in rng.integers(2000, 4 * sr, size=4)]
    for i, n in enumerate(lengths):
        t = np.arange(n) / sr
        kind = i % 5
        if kind == 0:
            x = rng.uniform(-0.5, 0.5, n)
        elif kind == 1:
            f0, f1 = rng.uniform(50, 500), rng.uniform(2000, 7900)
            x = 0.4 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * max(t[-1], 1e-3))))
            x += 5e-3 * rng.standard_normal(n)  # noise floor, see kind 2
        elif kind == 2:
            x = sum(rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(60, 7000) * t + rng.uniform(0, 6)) for _ in range(3))
            # a -46 dB noise floor: on pure int16 tones and chirps the oracle's own float32
            # rounding (torchaudio f32 vs f64) reaches 1.3e-4 in the nearly empty lowest mel bins
            x += 5e-3 * rng.standard_normal(n)
        elif kind == 3:
            x = 0.1 * rng.standard_normal(n)
            for _ in range(3):  # silence stretches (exact zeros)
                a = int(rng.integers(0, n))
                x[a:a + int(rng.integers(200, 4000))] = 0.0
        else:
            x = 0.3 + 0.05 * rng.standard_normal(n)  # DC offset
        sig[f"syn{i:02d}_len{n}"] = x
    sig["zeros_8000"] = np.zeros(8000)
    sig["tiny_6000"] = 3.0 / 32768 * rng.standard_normal(6000)
    sig["loud_12000"] = np.clip(1.2 * np.sin(2 * np.pi * 440 * np.arange(12000) / sr), -0.999, 0.999)
    return sig


def espeak_speech(tmp, rng):
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        print("note: espeak-ng or sox missing, no synthetic speech in this run")
        return {}
    out = {}
    texts = ["the quick brown fox jumps over the lazy dog",
             "hubert learns speech units from masked prediction",
             "seven eight nine, yes no stop go"]
    voices = ["en", "en+f3", "en+m3", "de", "fr"]
    for i, text in enumerate(texts):
        voice = voices[int(rng.integers(0, len(voices)))]
        raw, wav16 = os.path.join(tmp, f"raw{i}.wav"), os.path.join(tmp, f"espeak{i}.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rng.integers(120, 200))), "-w", raw, text], check=True)
        subprocess.run(["sox", "-R", raw, "-r", "16000", "-b", "16", "-c", "1", wav16], check=True)
        out[f"espeak{i}"] = wav16
    return out


def oracle(kind, x):
    import torch
    import torchaudio
    if kind == "fbank":
        return torchaudio.compliance.kaldi.fbank(x, num_mel_bins=80, sample_frequency=16000).numpy()
    # fairseq examples/hubert/simple_kmeans/dump_mfcc_feature.py
    m = torchaudio.compliance.kaldi.mfcc(waveform=x, sample_frequency=16000, use_energy=False)
    m = m.transpose(0, 1)
    d = torchaudio.functional.compute_deltas(m)
    dd = torchaudio.functional.compute_deltas(d)
    return torch.cat([m, d, dd], dim=0).transpose(0, 1).contiguous().numpy()


def rel_l2(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print("FAIL:", " ".join(cmd), "exit", p.returncode, p.stdout, p.stderr)
        sys.exit(1)
    print(p.stdout.strip())


def load_h5(path):
    import h5py
    with h5py.File(path, "r") as f:
        ids = [s.decode() if isinstance(s, bytes) else s for s in f["utt_id"][()]]
        off = f["offsets"][()]
        feats = f["feats"][()]
        attrs = {k: f.attrs[k] for k in f.attrs}
    return ids, off, feats, attrs


def main():
    hubert = os.environ.get("HUBERT_BIN")
    if not hubert:
        print("HUBERT_BIN not set")
        return 1
    try:
        import h5py  # noqa: F401
        import torch
        import torchaudio
    except ImportError as e:
        print("skip: missing", e)
        return 77
    torch.set_num_threads(1)
    seed = int(os.environ.get("HUBERT_TEST_SEED", np.random.SeedSequence().entropy % (2**31)))
    print(f"seed {seed} (set HUBERT_TEST_SEED={seed} to repeat)")
    rng = np.random.default_rng(seed)
    tmp = tempfile.mkdtemp(prefix="hb_kaldi_")
    try:
        files = {}
        sub = os.path.join(tmp, "corpus", "sub")
        os.makedirs(sub)
        for name, x in make_signals(rng).items():
            p = os.path.join(sub if len(files) % 2 else tmp, name + ".wav")
            write_wav(p, x)
            files[name] = p
        files.update(espeak_speech(tmp, rng))
        # half of the files through a manifest (utt id = relpath without extension), half direct
        man = os.path.join(tmp, "part.tsv")
        direct, expect_ids = [], []
        with open(man, "w") as f:
            f.write(os.path.join(tmp, "corpus") + "\n")
            for name, p in files.items():
                if p.startswith(sub):
                    f.write(f"sub/{name}.wav\t{len(read_wav(p))}\n")
        for name, p in files.items():
            if p.startswith(sub):
                expect_ids.append("sub/" + name)
        for name, p in files.items():
            if not p.startswith(sub):
                direct.append(p)
                expect_ids.append(name)
        fails = 0
        for kind in ("mfcc", "fbank"):
            out = os.path.join(tmp, kind + ".h5")
            run([hubert, kind, "--out", out, man] + direct)
            ids, off, feats, attrs = load_h5(out)
            kattr = attrs["kind"].decode() if isinstance(attrs["kind"], bytes) else attrs["kind"]
            if ids != expect_ids or kattr != kind or float(attrs["rate"]) != 100.0:
                print(f"FAIL {kind}: ids {ids} vs {expect_ids}, kind {kattr}, rate {attrs['rate']}")
                fails += 1
                continue
            worst = 0.0
            for i, uid in enumerate(ids):
                name = uid.split("/")[-1]
                x = torch.from_numpy(read_wav(files[name])).view(1, -1)
                ref = oracle(kind, x)            # what fairseq computes (float32)
                ref64 = oracle(kind, x.double())  # for information: the oracle's own rounding
                got = feats[off[i]:off[i + 1]]
                if got.shape != ref.shape:
                    print(f"FAIL {kind} {uid}: shape {got.shape} vs torchaudio {ref.shape}")
                    fails += 1
                    continue
                err = rel_l2(got, ref)
                worst = max(worst, err)
                status = "ok" if err < TOL else "FAIL"
                if err >= TOL:
                    fails += 1
                print(f"  {status} {kind:5s} {uid:24s} frames {got.shape[0]:4d}  rel L2 vs torchaudio {err:.2e}"
                      f"  (vs torchaudio in float64 {rel_l2(got, ref64):.2e}; torchaudio f32 vs f64 {rel_l2(ref, ref64):.2e})")
            print(f"{kind}: {len(ids)} utterances, worst relative L2 error {worst:.2e} (tolerance {TOL:g})")
        if fails:
            print(f"FAILED: {fails} comparisons (seed {seed})")
            return 1
        print("PASS")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
