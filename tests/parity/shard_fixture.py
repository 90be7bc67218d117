#!/usr/bin/python3
"""Small seeded inputs for the shard tests: wavs + manifest, .km + dict, topics file, meta.tsv.

usage: shard_fixture.py OUTDIR SEED   (writes OUTDIR/{wav/,m.tsv,train.km,dict.km.txt,topics.h5,
meta.tsv,bad_len.h5}); prints a JSON summary of what it wrote.
"""
import json
import os
import sys
import wave

import numpy as np


def main():
    out, seed = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(seed)
    wdir = os.path.join(out, "wav")
    os.makedirs(wdir, exist_ok=True)
    n_utt, k, n_topics = 7, 13, 4
    ids, lens, units = [], [], []
    for i in range(n_utt):
        uid = "spk%d/utt%02d" % (i % 3, i)
        n = int(rng.integers(4000, 40000))
        x = rng.integers(-32768, 32768, size=n, dtype=np.int64).astype("<i2")
        os.makedirs(os.path.join(wdir, os.path.dirname(uid)), exist_ok=True)
        with wave.open(os.path.join(wdir, uid + ".wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(x.tobytes())
        frames = (n - 400) // 320 + 1   # HuBERT's conv stack: 50 Hz, 400-sample receptive field
        ids.append(uid)
        lens.append(n)
        units.append(rng.integers(0, k, size=frames).tolist())
    units[0][0] = k - 1                  # every id in [0, k) appears at least once below
    units[1][: min(k, len(units[1]))] = list(range(min(k, len(units[1]))))
    with open(os.path.join(out, "m.tsv"), "w") as f:
        f.write(os.path.abspath(wdir) + "\n")
        for uid, n in zip(ids, lens):
            f.write("%s.wav\t%d\n" % (uid, n))
    with open(os.path.join(out, "train.km"), "w") as f:
        for u in units:
            f.write(" ".join(map(str, u)) + "\n")
    counts = np.bincount(np.concatenate([np.array(u) for u in units]), minlength=k)
    with open(os.path.join(out, "dict.km.txt"), "w") as f:
        for i in range(k):
            f.write("%d %d\n" % (i, counts[i]))
    topics = rng.integers(0, n_topics, size=n_utt).astype(np.int32)
    import h5py
    str_t = h5py.string_dtype("utf-8")
    with h5py.File(os.path.join(out, "topics.h5"), "w") as h:
        h.attrs["format"] = "hubert-topics"
        h.attrs["k"] = np.int64(n_topics)
        h.attrs["source"] = "shard_fixture"
        h.create_dataset("utt_id", data=np.array(ids[::-1], dtype=object), dtype=str_t)  # other order on purpose
        h.create_dataset("topics", data=topics[::-1])
        mix = np.full((n_utt, n_topics), 0.1, np.float32)
        mix[np.arange(n_utt), topics[::-1]] = 0.7
        h.create_dataset("mixture", data=mix)
    # A units file whose utterance 3 is 0.5 s too long (shard must reject it).
    bad = [list(u) for u in units]
    bad[3] = bad[3] + [0] * 25
    off = np.cumsum([0] + [len(u) for u in bad]).astype(np.int64)
    with h5py.File(os.path.join(out, "bad_len.h5"), "w") as h:
        h.attrs["format"] = "hubert-units"
        h.attrs["k"] = np.int64(k)
        h.attrs["rate"] = 50.0
        h.attrs["source"] = "shard_fixture"
        h.create_dataset("utt_id", data=np.array(ids, dtype=object), dtype=str_t)
        h.create_dataset("offsets", data=off)
        h.create_dataset("units", data=np.concatenate([np.array(u, np.int32) for u in bad]))
    speakers = ["speaker %d" % (i % 3) for i in range(n_utt)]
    texts = ["text of utterance %d, ünïcode" % i for i in range(n_utt)]
    with open(os.path.join(out, "meta.tsv"), "w", encoding="utf-8") as f:
        f.write("utt_id\tsplit\tspeaker\tlanguage\tsource\tkeyword\ttext\tphones\n")
        for i, uid in reversed(list(enumerate(ids))):
            f.write("%s\ttrain\t%s\ten\tfixture\t\t%s\tp%d:0.1 q:0.2\n" % (uid, speakers[i], texts[i], i))
    print(json.dumps({"ids": ids, "lens": lens, "k": k, "n_topics": n_topics,
                      "topics": {u: int(t) for u, t in zip(ids, topics)},
                      "speakers": speakers, "texts": texts}))


if __name__ == "__main__":
    main()
