#!/usr/bin/env python3
"""A small flite corpus with aligned phones, no network needed (flite is a Debian package):
seeded random English sentences from a fixed word list, voices kal16 awb rms slt with duration
jitter, 16 kHz mono wav via sox. Writes OUT/wav/*.wav, OUT/{train,valid,test}.tsv (fairseq
manifests) and OUT/meta.tsv (utt_id split speaker language source keyword text phones), the demo
corpus' layout (docs/data.md).

usage: probe_fixture.py OUT SEED N_UTTS
"""
import os, random, subprocess, sys, tempfile, wave

WORDS = ("the a one two three four five six seven eight nine ten red green blue black white big small old new "
         "good bad long short happy quiet loud fast slow dog cat fish bird horse cow sheep mouse house tree car "
         "boat train road river hill city garden window door table chair book paper letter music song voice "
         "morning evening night summer winter water fire stone gold silver bread milk cheese apple orange "
         "runs jumps sings reads writes opens closes finds brings takes makes sees hears likes wants needs "
         "under over near behind inside before after with without and but because while").split()
VOICES = ["kal16", "awb", "rms", "slt"]


def main():
    out, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "wav"), exist_ok=True)
    rows = []
    for i in range(n):
        v = VOICES[i % len(VOICES)]
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))
        uid = "fl-%s-%03d" % (v, i)
        wav = os.path.join(out, "wav", uid + ".wav")
        with tempfile.TemporaryDirectory() as td:
            raw = os.path.join(td, "x.wav")
            ph = subprocess.run(["flite", "-voice", v, "--setf", "duration_stretch=%.3f" % rng.uniform(0.9, 1.15),
                                 "-psdur", "-t", text, "-o", raw], check=True, capture_output=True, text=True).stdout
            subprocess.run(["sox", "-R", "-q", raw, "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", wav],
                           check=True)
        with wave.open(wav, "rb") as w:
            ns = w.getnframes()
        r = rng.random()
        split = "valid" if r < 0.15 else "test" if r < 0.3 else "train"
        rows.append((uid, split, "flite-" + v, "en", "flite", "", text, " ".join(ph.split()), ns))
    for s in ("train", "valid", "test"):
        with open(os.path.join(out, s + ".tsv"), "w") as f:
            f.write(os.path.abspath(os.path.join(out, "wav")) + "\n")
            for r in rows:
                if r[1] == s:
                    f.write("%s.wav\t%d\n" % (r[0], r[8]))
    with open(os.path.join(out, "meta.tsv"), "w") as f:
        f.write("utt_id\tsplit\tspeaker\tlanguage\tsource\tkeyword\ttext\tphones\n")
        for r in rows:
            f.write("\t".join(r[:8]) + "\n")
    print("%d utterances, %.1f s of audio" % (n, sum(r[8] for r in rows) / 16000))


if __name__ == "__main__":
    main()
