#!/usr/bin/env bash
# `hubert probe` and `hubert units-eval` on a tiny fixture (sox tones -> mfcc, a tiny untrained
# model's layers, a meta.tsv with synthetic phone alignments): the happy path writes the table and
# JSON; bad input gives a non-zero exit and a message naming the file: a task whose labels meta.tsv
# lacks, utterances missing from meta.tsv, an unknown layer, a bad set spec, an unknown task,
# label/phone length mismatch, a meta.tsv without alignments.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v sox >/dev/null || { echo "skip: sox not installed (scripts/setup.sh)"; exit 77; }
H=$HUBERT_BIN
mkdir -p "$T/wav"
printf 'utt_id\tsplit\tspeaker\tphones\n' > "$T/meta.tsv"
i=0
for s in train train train train valid valid test test; do
  f=$((200 + 150 * (i % 3)))
  sox -n -r 16000 -b 16 -c 1 "$T/wav/u$i.wav" synth 1.0 sine $f vol 0.5
  printf 'u%d\t%s\tspk%d\tpau:0.2 a:0.5 b:0.8 pau:1.0\n' $i $s $((i % 2)) >> "$T/meta.tsv"
  i=$((i + 1))
done
for s in train valid test; do
  { echo "$T/wav"; awk -F'\t' -v s=$s 'NR>1 && $2==s {print $1 ".wav\t16000"}' "$T/meta.tsv"; } > "$T/$s.tsv"
  "$H" mfcc --out "$T/mfcc_$s.h5" "$T/$s.tsv" >/dev/null || bad "mfcc $s"
done
"$H" init --config tiny --out "$T/model" --seed 1 >/dev/null || bad "init"
for s in train valid test; do "$H" extract --model "$T/model" --out "$T/hub_$s.h5" "$T/$s.tsv" >/dev/null 2>&1 || bad "extract $s"; done
M="mfcc=$T/mfcc_train.h5,$T/mfcc_valid.h5,$T/mfcc_test.h5"
U="tiny=$T/hub_train.h5,$T/hub_valid.h5,$T/hub_test.h5"

if "$H" probe --meta "$T/meta.tsv" --epochs 3 --json "$T/p.json" --md "$T/p.md" "$M" "$U" >"$T/out.txt" 2>"$T/err.txt" &&
   grep -q "tiny weighted sum" "$T/p.md" && grep -q '"layer_weights"' "$T/p.json" && grep -q "| mfcc | 39 |" "$T/p.md"; then
  ok "probe table: $(grep -c '^| ' "$T/p.md") lines"; cat "$T/p.md"
else bad "probe happy path: $(cat "$T/err.txt")"; fi
expect_fail "task without labels" "needs a 'keyword' column" "$H" probe --meta "$T/meta.tsv" --tasks phone,keyword --epochs 1 "$M"
expect_fail "unknown task" "unknown task 'vowel'" "$H" probe --meta "$T/meta.tsv" --tasks vowel "$M"
expect_fail "unknown layer" "no dataset 'layer_9'" "$H" probe --meta "$T/meta.tsv" --layers 0,9 --epochs 1 "$U"
expect_fail "bad set spec" "expected NAME=FILE.h5" "$H" probe --meta "$T/meta.tsv" "$T/mfcc_train.h5"
grep -v '^u7' "$T/meta.tsv" > "$T/meta_short.tsv"
expect_fail "utterance missing from meta" "mfcc_test.h5: utterance 'u7' is not in" "$H" probe --meta "$T/meta_short.tsv" --epochs 1 "$M"
expect_fail "sets with different utterances" "hold different" "$H" probe --meta "$T/meta.tsv" --epochs 1 "$M" "tiny=$T/hub_train.h5,$T/hub_valid.h5"
# units-eval: k-means units of the MFCC, then bad meta files
"$H" kmeans fit --k 4 --out "$T/km.h5" -q "$T/mfcc_train.h5" && "$H" kmeans apply -q --model "$T/km.h5" --out "$T/units.h5" "$T/mfcc_train.h5" || bad "kmeans"
if "$H" units-eval --meta "$T/meta.tsv" --json "$T/u.json" "$T/units.h5" >"$T/out.txt" 2>"$T/err.txt" && grep -q '"pnmi"' "$T/u.json"; then
  ok "units-eval: $(tail -n 1 "$T/out.txt")"
else bad "units-eval happy path: $(cat "$T/err.txt")"; fi
sed 's/b:0.8 pau:1.0/b:1.4 pau:1.6/' "$T/meta.tsv" > "$T/meta_long.tsv"
expect_fail "phones longer than the labels" "label/phone length mismatch" "$H" units-eval --meta "$T/meta_long.tsv" "$T/units.h5"
awk -F'\t' 'BEGIN{OFS="\t"} NR>1{$4="h @ l oU"} {print}' "$T/meta.tsv" > "$T/meta_noal.tsv"
expect_fail "no aligned phones" "no utterance has aligned phones" "$H" units-eval --meta "$T/meta_noal.tsv" "$T/units.h5"
expect_fail "--name on a units file (not a shard)" "not a hubert shard" "$H" units-eval --meta "$T/meta.tsv" --name km "$T/units.h5"
[ $fails -eq 0 ] && echo PASS || { echo "FAIL: $fails"; exit 1; }
