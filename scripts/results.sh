#!/usr/bin/env bash
# The numbers of docs/RESULTS.md, from the outputs of scripts/demo.sh (DEMO_DIR, default data/demo:
# meta.tsv, {train,valid,test}.tsv, mfcc_*.h5, km100_*.h5, shards/, run/checkpoint_last):
#   1. fbank (80-d) of every split;
#   2. every layer of the trained model (run/checkpoint_last; trained here with configs/demo.yaml
#      if the folder is missing, as demo.sh does) and of an untrained model of the same config
#      (hubert init, seed 1), for every split;
#   3. unit quality (hubert units-eval): the MFCC k-means units km100 and k-means(100) units of each
#      layer of the trained model (fitted on train, applied to every split), against the flite
#      utterances' aligned phones;
#   4. probes (hubert probe): MFCC, fbank, every trained layer + weighted sum, every untrained
#      layer + weighted sum.
# Writes RESULTS_OUT (default DEMO_DIR/results): units_*.json, probes.{md,json}, summary.md.
# Options (environment): DEMO_DIR, RESULTS_OUT, RESULTS_MODEL (model folder), HUBERT_BIN, THREADS.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DEMO_DIR:-data/demo}
OUT=${RESULTS_OUT:-$DIR/results}
MODEL=${RESULTS_MODEL:-$DIR/run/checkpoint_last}
H=${HUBERT_BIN:-build/hubert}
export OMP_NUM_THREADS=${THREADS:-$(nproc)}
PY=/usr/bin/python3
step() { printf '\n== %s\n' "$*"; }
T0=$(date +%s)
[ -x "$H" ] || { echo "no hubert binary at $H (build first, or set HUBERT_BIN)"; exit 1; }
for f in meta.tsv train.tsv valid.tsv test.tsv mfcc_train.h5 mfcc_valid.h5 mfcc_test.h5 km100_train.h5 km100_valid.h5 km100_test.h5; do
  [ -f "$DIR/$f" ] || { echo "$DIR/$f missing: run scripts/demo.sh first (DEMO_DIR=$DIR)"; exit 1; }
done
mkdir -p "$OUT"
SPLITS="train valid test"
csv() { local p=$1 s out=""; for s in $SPLITS; do out="$out${out:+,}$p$s.h5"; done; echo "$out"; }

if [ ! -f "$MODEL/config.json" ]; then
  ls "$DIR"/shards/train*.h5 >/dev/null 2>&1 || { echo "no model at $MODEL and no shards in $DIR/shards to train one: run scripts/demo.sh"; exit 1; }
  step "no trained model at $MODEL: hubert train configs/demo.yaml (as scripts/demo.sh)"
  $H train configs/demo.yaml task.data="$DIR/shards" checkpoint.save_dir="$DIR/run" --resume auto
fi

step "fbank (80-d) of every split"
for s in $SPLITS; do [ -f "$OUT/fbank_$s.h5" ] || $H fbank --out "$OUT/fbank_$s.h5" "$DIR/$s.tsv"; done

step "every layer of the trained model ($MODEL) and of an untrained one (same config, seed 1)"
[ -f "$OUT/untrained/config.json" ] || $H init --config "$MODEL/config.json" --out "$OUT/untrained" --seed 1
for s in $SPLITS; do
  [ -f "$OUT/trained_$s.h5" ] || $H extract --model "$MODEL" --out "$OUT/trained_$s.h5" --layers all "$DIR/$s.tsv"
  [ -f "$OUT/untrained_$s.h5" ] || $H extract --model "$OUT/untrained" --out "$OUT/untrained_$s.h5" --layers all "$DIR/$s.tsv"
done
NL=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['num_hidden_layers'])" "$MODEL/config.json")

step "unit quality: MFCC km100 units and k-means(100) of every trained layer vs aligned phones"
$H units-eval --meta "$DIR/meta.tsv" --tag "MFCC km100" --json "$OUT/units_mfcc_km100.json" \
  "$DIR/km100_train.h5" "$DIR/km100_valid.h5" "$DIR/km100_test.h5"
for k in $(seq 0 "$NL"); do
  [ -f "$OUT/km100_layer$k.h5" ] || $H kmeans fit --k 100 --layer "layer_$k" --n-init 5 --seed 1 -q --out "$OUT/km100_layer$k.h5" "$OUT/trained_train.h5"
  for s in $SPLITS; do
    [ -f "$OUT/km100_layer${k}_$s.h5" ] || $H kmeans apply -q --model "$OUT/km100_layer$k.h5" --out "$OUT/km100_layer${k}_$s.h5" "$OUT/trained_$s.h5"
  done
  $H units-eval --meta "$DIR/meta.tsv" --tag "trained layer_$k km100" --json "$OUT/units_layer$k.json" \
    "$OUT/km100_layer${k}_train.h5" "$OUT/km100_layer${k}_valid.h5" "$OUT/km100_layer${k}_test.h5"
done

step "probes: MFCC, fbank, trained layers + weighted sum, untrained layers + weighted sum"
TP=$(date +%s)
$H probe --meta "$DIR/meta.tsv" --json "$OUT/probes.json" --md "$OUT/probes.md" \
  "mfcc=$(csv "$DIR/mfcc_")" "fbank=$(csv "$OUT/fbank_")" "trained=$(csv "$OUT/trained_")" "untrained=$(csv "$OUT/untrained_")"
echo "probes: $(( $(date +%s) - TP )) s"

step "summary -> $OUT/summary.md"
$PY - "$OUT" "$NL" > "$OUT/summary.md" <<'PY'
import json, sys
out, nl = sys.argv[1], int(sys.argv[2])
print("| label set | frames | units used | phone purity | cluster purity | PNMI |")
print("|---|---:|---:|---:|---:|---:|")
for name in ["units_mfcc_km100.json"] + ["units_layer%d.json" % k for k in range(nl + 1)]:
    u = json.load(open("%s/%s" % (out, name)))
    print("| %s | %d | %d / %d | %.3f | %.3f | %.3f |" % (u["tag"], u["frames"], u["units_used"], u["k"],
          u["phone_purity"], u["cluster_purity"], u["pnmi"]))
p = json.load(open(out + "/probes.json"))
tasks = list(p["tasks"])
print()
print("best row per task (test split; the row selected per probe on valid):")
for t in tasks:
    sign = -1 if p["tasks"][t]["metric"] == "per" else 1
    for grp in ("trained", "untrained"):
        rows = [r for r in p["rows"] if r["set"] == grp and r["layer"] != "weighted_sum"]
        best = max(rows, key=lambda r: sign * r[t]["valid"])
        print("- %s: %s best layer by valid = %s (test %.1f %%)" % (t, grp, best["layer"], 100 * best[t]["test"]))
PY
cat "$OUT/summary.md"
echo "total: $(( $(date +%s) - T0 )) s"
