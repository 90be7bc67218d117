#!/usr/bin/python3
"""Synthetic transcribed speech for the fine-tuning tests (offline, a second to build).

usage: finetune_fixture.py OUTDIR SEED [N_TRAIN] [N_VALID] [N_TEST]
Each utterance (1-2 s, 16 kHz) is a sequence of 100-250 ms segments of symbol c in [0, 6) (a chord
of two c-dependent tones plus a little noise; neighbours always differ). Its phone transcript is
the symbol sequence ("p0 p3 p1 ...", espeak-style, space separated); its text spells the symbols as
letters a..f with a space after every third one. Writes OUTDIR/{wav/, SPLIT.tsv, meta.tsv} (the
demo corpus's meta.tsv columns), for the splits train, valid and test.
"""
import os
import sys
import wave

import numpy as np

K, SR = 6, 16000


def utterance(rng):
    n = int(rng.integers(16000, 32000))
    x = np.zeros(n)
    syms, t, prev = [], 0, -1
    while t < n:
        d = int(rng.integers(1600, 4000))
        c = int(rng.integers(0, K - 1))
        c = c + 1 if c >= prev >= 0 else c  # never the previous symbol
        e = min(n, t + d)
        if e - t < 1200 and syms:  # a too short tail joins the previous segment
            c = prev
        tt = np.arange(e - t) / SR
        ph = rng.uniform(0, 2 * np.pi, 2)
        x[t:e] = 0.3 * np.sin(2 * np.pi * 200.0 * (1 + c) * tt + ph[0]) + 0.2 * np.sin(2 * np.pi * (2600.0 - 300.0 * c) * tt + ph[1])
        if c != prev:
            syms.append(c)
        prev, t = c, e
    x += 0.02 * rng.standard_normal(n)
    return (np.clip(x, -1, 1) * 32767).astype("<i2"), syms


def main():
    out, seed = sys.argv[1], int(sys.argv[2])
    counts = {"train": 40, "valid": 6, "test": 6}
    for i, s in enumerate(["train", "valid", "test"]):
        if len(sys.argv) > 3 + i:
            counts[s] = int(sys.argv[3 + i])
    rng = np.random.default_rng(seed)
    wdir = os.path.join(out, "wav")
    os.makedirs(wdir, exist_ok=True)
    meta = ["utt_id\tsplit\tspeaker\tlanguage\tsource\tkeyword\ttext\tphones"]
    for split, n_utt in counts.items():
        with open(os.path.join(out, split + ".tsv"), "w") as f:
            f.write(os.path.abspath(wdir) + "\n")
            for i in range(n_utt):
                uid = "%s%03d" % (split, i)
                x, syms = utterance(rng)
                with wave.open(os.path.join(wdir, uid + ".wav"), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(SR)
                    w.writeframes(x.tobytes())
                f.write("%s.wav\t%d\n" % (uid, len(x)))
                letters = "".join(chr(ord("a") + c) + (" " if k % 3 == 2 else "") for k, c in enumerate(syms)).strip()
                phones = " ".join("p%d" % c for c in syms)
                meta.append("\t".join([uid, split, "spk%d" % (i % 3), "en", "synthetic", "", letters.upper(), phones]))
    with open(os.path.join(out, "meta.tsv"), "w") as f:
        f.write("\n".join(meta) + "\n")
    print("finetune_fixture: %s, K=%d, seed %d" % (counts, K, seed))


if __name__ == "__main__":
    main()
