#!/usr/bin/python3
# ctest-labels: parity
"""Reads shards written by `hubert shard` with h5py and checks every array equals the inputs
exactly (audio samples, units, offsets, topics, speaker/text strings, attributes)."""
import json
import os
import subprocess
import sys
import tempfile
import wave

try:
    import h5py
    import numpy as np
except ImportError as e:
    print("skip: %s" % e)
    sys.exit(77)

BIN = os.environ["HUBERT_BIN"]
SRC = os.environ["HUBERT_SRC"]
seed = int(os.environ.get("HUBERT_TEST_SEED", np.random.SeedSequence().entropy % 100000))
print("seed", seed)
fails = []


def check(name, ok):
    print("  %-50s %s" % (name, "ok" if ok else "FAIL"))
    if not ok:
        fails.append(name)


def sh(*args, cwd):
    r = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        print("FAIL: %s\n%s" % (" ".join(args), r.stderr))
        sys.exit(1)
    return r.stdout


with tempfile.TemporaryDirectory() as t:
    info = json.loads(sh(sys.executable, os.path.join(SRC, "tests/parity/shard_fixture.py"), t, str(seed), cwd=t))
    sh(BIN, "labels", "import", "--manifest", "m.tsv", "--km", "train.km", "--dict", "dict.km.txt",
       "--rate", "50", "--out", "km.h5", cwd=t)
    sh(BIN, "shard", "--out", "sh", "--manifest", "m.tsv", "--labels", "km=km.h5", "--labels", "km2=km.h5",
       "--topics", "lda=topics.h5", "--meta", "meta.tsv", "--shard-mb", "0.1", cwd=t)
    files = sorted(os.listdir(os.path.join(t, "sh")))
    check("%d shard files, none temporary" % len(files), len(files) >= 2 and all(f.endswith(".h5") for f in files))
    km = [list(map(int, l.split())) for l in open(os.path.join(t, "train.km"))]
    ids, audio, units, units2, topics, spk, txt, phones = [], [], [], [], [], [], [], []
    for f in files:
        with h5py.File(os.path.join(t, "sh", f), "r") as h:
            U = int(h.attrs["num_utts"])
            check(f + ": attrs", h.attrs["format"] in ("hubert-shard", b"hubert-shard") and int(h.attrs["version"]) == 1
                  and int(h.attrs["sample_rate"]) == 16000 and h["utt_id"].shape == (U,))
            check(f + ": dtypes", h["audio"].dtype == np.int16 and h["audio_offsets"].dtype == np.int64
                  and h["labels/km/units"].dtype == np.int32 and h["topics/lda"].dtype == np.int32)
            check(f + ": chunked", h["audio"].chunks is not None and h["labels/km/units"].chunks is not None)
            check(f + ": label attrs", float(h["labels/km"].attrs["rate"]) == 50.0 and int(h["labels/km"].attrs["k"]) == info["k"]
                  and int(h["topics/lda"].attrs["k"]) == info["n_topics"])
            ao, a = h["audio_offsets"][:], h["audio"][:]
            lo, lu = h["labels/km/offsets"][:], h["labels/km/units"][:]
            check(f + ": offsets U+1", len(ao) == U + 1 and len(lo) == U + 1 and ao[-1] == len(a) and lo[-1] == len(lu))
            for i in range(U):
                ids.append(h["utt_id"][i].decode() if isinstance(h["utt_id"][i], bytes) else h["utt_id"][i])
                audio.append(a[ao[i]:ao[i + 1]])
                units.append(lu[lo[i]:lo[i + 1]].tolist())
                o2 = h["labels/km2/offsets"][:]
                units2.append(h["labels/km2/units"][o2[i]:o2[i + 1]].tolist())
                topics.append(int(h["topics/lda"][i]))
                dec = lambda v: v.decode() if isinstance(v, bytes) else v
                spk.append(dec(h["speaker"][i]))
                txt.append(dec(h["text"][i]))
                phones.append(dec(h["phones"][i]))
    check("utt ids in manifest order", ids == info["ids"])
    same_audio = True
    for uid, x in zip(ids, audio):
        with wave.open(os.path.join(t, "wav", uid + ".wav")) as w:
            ref = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        same_audio &= np.array_equal(ref, x)
    check("audio bit-exact vs wav files", same_audio)
    check("units equal the .km lines", units == km and units2 == km)
    check("topics equal the topic file (matched by utt_id)", topics == [info["topics"][u] for u in ids])
    check("speaker strings", spk == info["speakers"])
    check("text strings (utf-8)", txt == info["texts"])
    check("phones strings", phones == ["p%d:0.1 q:0.2" % i for i in range(len(ids))])

if fails:
    print("test_shard_h5py: %d FAILED (seed %d): %s" % (len(fails), seed, ", ".join(fails)))
    sys.exit(1)
print("test_shard_h5py: all passed (seed %d)" % seed)
