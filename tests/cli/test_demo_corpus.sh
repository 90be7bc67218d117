#!/usr/bin/env bash
# ctest-labels: slow
# Builds a 2-minute demo corpus (data_prep/demo_corpus.sh) and checks manifests and meta.tsv;
# a second build must be a no-op, a rebuild into another folder byte-identical.
# Skips (77) when the Debian data packages cannot be downloaded or the tools are missing.
set -u
SRC="${HUBERT_SRC:?}"
PY="${HUBERT_PYTHON:-/usr/bin/python3}"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
for tool in sox espeak-ng flite apt-get dpkg; do
  command -v "$tool" >/dev/null || { echo "skip: $tool not installed (scripts/setup.sh)"; exit 77; }
done
bash "$SRC/data_prep/demo_corpus.sh" --out "$T/a" --minutes 2 --seed 7 >"$T/log" 2>&1
rc=$?
cat "$T/log"
if [ $rc -eq 3 ]; then echo "skip: data packages cannot be downloaded"; exit 77; fi
[ $rc -eq 0 ] || { echo "FAIL: demo_corpus.sh exited $rc"; exit 1; }
fails=0
bash "$SRC/data_prep/demo_corpus.sh" --out "$T/a" --minutes 2 --seed 7 >"$T/log2" 2>&1 && grep -q "up to date" "$T/log2" ||
  { echo "FAIL: a second run with the same options rebuilt the corpus"; fails=1; }
bash "$SRC/data_prep/demo_corpus.sh" --out "$T/b" --minutes 2 --seed 7 >/dev/null 2>&1 &&
  (cd "$T/a" && find wav -type f | sort | xargs md5sum) >"$T/ma" && (cd "$T/b" && find wav -type f | sort | xargs md5sum) >"$T/mb" &&
  cmp -s "$T/ma" "$T/mb" && cmp -s <(tail -n +2 "$T/a/train.tsv") <(tail -n +2 "$T/b/train.tsv") &&
  cmp -s "$T/a/meta.tsv" "$T/b/meta.tsv" && echo "  ok: rebuild is byte-identical" ||
  { echo "FAIL: rebuild differs"; fails=1; }
"$PY" - "$T/a" <<'EOF' || fails=1
import os, sys, wave
d = sys.argv[1]
bad = []
meta = [l.rstrip("\n").split("\t") for l in open(os.path.join(d, "meta.tsv"), encoding="utf-8")]
cols = meta[0]
if cols != ["utt_id", "split", "speaker", "language", "source", "keyword", "text", "phones"]:
    bad.append("meta.tsv header %s" % cols)
rows = {r[0]: dict(zip(cols, r)) for r in meta[1:]}
if any(len(r) != len(cols) for r in meta): bad.append("meta.tsv rows with wrong field count")
seen = {}
for sp in ("train", "valid", "test"):
    lines = open(os.path.join(d, sp + ".tsv")).read().splitlines()
    if lines[0] != os.path.join(os.path.abspath(d), "wav"): bad.append("%s.tsv root line %s" % (sp, lines[0]))
    for l in lines[1:]:
        rel, n = l.split("\t")
        uid = rel[:-4]
        if uid in seen: bad.append("%s in %s and %s" % (uid, seen[uid], sp))
        seen[uid] = sp
        with wave.open(os.path.join(lines[0], rel)) as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) != (16000, 1, 2, int(n)):
                bad.append("%s: not 16 kHz mono int16 with %s samples" % (rel, n))
        if uid not in rows or rows[uid]["split"] != sp: bad.append("%s: meta split mismatch" % uid)
if set(seen) != set(rows): bad.append("meta rows != manifest entries")
srcs = {r["source"] for r in rows.values()}
for s in ("asterisk", "asterisk-digits", "fillets", "pocketsphinx", "espeak", "flite", "keyword-espeak", "keyword-flite"):
    if s not in srcs: bad.append("no utterances from %s" % s)
langs = {r["language"] for r in rows.values() if r["source"] == "espeak"}
if len(langs) != 11: bad.append("espeak languages %s" % sorted(langs))
import re
for r in rows.values():
    if r["source"] == "flite" and not re.fullmatch(r"(\S+:\d+\.\d+ ?)+", r["phones"]): bad.append("flite phones %r" % r["phones"][:40])
    if r["source"].startswith("keyword") and not r["keyword"]: bad.append("keyword missing for " + r["utt_id"])
real = [s for s in {r["speaker"] for r in rows.values()} if s.startswith(("ast-", "fil-"))]
for s in real:
    splits = {r["split"] for r in rows.values() if r["speaker"] == s}
    if splits != {"train", "valid", "test"}: bad.append("real speaker %s only in %s" % (s, sorted(splits)))
mins = sum(wave.open(os.path.join(d, "wav", u + ".wav")).getnframes() for u in rows) / 16000 / 60
print("  %d utterances, %.2f minutes, %d speakers" % (len(rows), mins, len({r["speaker"] for r in rows.values()})))
if not 1.0 <= mins <= 4.0: bad.append("%.2f minutes for --minutes 2" % mins)
for b in bad[:20]: print("FAIL:", b)
sys.exit(1 if bad else 0)
EOF
[ $fails -eq 0 ] && echo "test_demo_corpus: all passed" || { echo "test_demo_corpus: FAILED"; exit 1; }
