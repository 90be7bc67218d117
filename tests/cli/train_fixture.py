#!/usr/bin/python3
"""Synthetic, learnable pretraining data for the trainer tests (offline, seconds to build).

usage: train_fixture.py OUTDIR SEED [N_TRAIN] [N_VALID] [SEG_MS_MIN:SEG_MS_MAX]
Each utterance (1-2.5 s, 16 kHz) is a sequence of 60-240 ms (default) segments; segment class c in [0, 8)
is a chord of two tones (c-dependent pitches) plus a little noise. Frame labels at 50 Hz are the
class of the segment under each frame's centre (K = 8), so a masked frame's label is predictable
from its unmasked neighbours; the topic (k = 3) is the utterance's majority class mod 3.
Writes OUTDIR/{wav/,train.tsv,valid.tsv,train.km,valid.km,topics_train.h5,topics_valid.h5}.
"""
import os
import sys
import wave

import numpy as np

K, N_TOPICS, SR = 8, 3, 16000


def utterance(rng, seg):
    n = int(rng.integers(16000, 40000))
    x = np.zeros(n)
    cls = np.zeros(n, np.int64)
    t = 0
    while t < n:
        d = int(rng.integers(seg[0], seg[1]))
        c = int(rng.integers(0, K))
        e = min(n, t + d)
        tt = np.arange(e - t) / SR
        f1, f2 = 150.0 * (1 + c), 2400.0 - 180.0 * c
        ph = rng.uniform(0, 2 * np.pi, 2)
        x[t:e] = 0.3 * np.sin(2 * np.pi * f1 * tt + ph[0]) + 0.2 * np.sin(2 * np.pi * f2 * tt + ph[1])
        cls[t:e] = c
        t = e
    x += 0.02 * rng.standard_normal(n)
    frames = (n - 400) // 320 + 1
    labels = [int(cls[min(n - 1, 320 * i + 200)]) for i in range(frames)]
    topic = int(np.bincount(labels, minlength=K).argmax()) % N_TOPICS
    return (np.clip(x, -1, 1) * 32767).astype("<i2"), labels, topic


def main():
    out, seed = sys.argv[1], int(sys.argv[2])
    counts = {"train": int(sys.argv[3]) if len(sys.argv) > 3 else 48, "valid": int(sys.argv[4]) if len(sys.argv) > 4 else 8}
    seg = [int(float(v) * SR / 1000) for v in (sys.argv[5] if len(sys.argv) > 5 else "60:240").split(":")]
    rng = np.random.default_rng(seed)
    wdir = os.path.join(out, "wav")
    os.makedirs(wdir, exist_ok=True)
    import h5py
    for split, n_utt in counts.items():
        ids, lens, units, topics = [], [], [], []
        for i in range(n_utt):
            uid = "%s%03d" % (split, i)
            x, lab, top = utterance(rng, seg)
            with wave.open(os.path.join(wdir, uid + ".wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(SR)
                w.writeframes(x.tobytes())
            ids.append(uid)
            lens.append(len(x))
            units.append(lab)
            topics.append(top)
        units[0][:K] = list(range(K))  # every id appears
        with open(os.path.join(out, split + ".tsv"), "w") as f:
            f.write(os.path.abspath(wdir) + "\n")
            for uid, n in zip(ids, lens):
                f.write("%s.wav\t%d\n" % (uid, n))
        with open(os.path.join(out, split + ".km"), "w") as f:
            for u in units:
                f.write(" ".join(map(str, u)) + "\n")
        with h5py.File(os.path.join(out, "topics_%s.h5" % split), "w") as h:
            h.attrs["format"] = "hubert-topics"
            h.attrs["k"] = np.int64(N_TOPICS)
            h.attrs["source"] = "train_fixture"
            h.create_dataset("utt_id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype("utf-8"))
            h.create_dataset("topics", data=np.array(topics, np.int32))
            mix = np.full((n_utt, N_TOPICS), 0.1, np.float32)
            mix[np.arange(n_utt), topics] = 0.8
            h.create_dataset("mixture", data=mix)
    print("train_fixture: %d train, %d valid utterances, K=%d, %d topics, seed %d" % (counts["train"], counts["valid"], K, N_TOPICS, seed))


if __name__ == "__main__":
    main()
