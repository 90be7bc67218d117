#!/usr/bin/env bash
# hubert bench train: --loss pretrain (default, the real objective via pretrain_step) and
# --loss synthetic on the tiny preset run and report a finite objective; bad options fail clearly.
set -u
H="${HUBERT_BIN:?}"
fail=0
expect_err() {  # expect_err NEEDLE CMD...
  local needle="$1"; shift
  if out=$("$@" 2>&1); then echo "FAIL: '$*' succeeded"; fail=1; return; fi
  if ! grep -qF -- "$needle" <<<"$out"; then echo "FAIL: '$*': '$out' lacks '$needle'"; fail=1; return; fi
  echo "ok: $* -> $out"
}
out=$("$H" bench train --config tiny -b 2 -s 1 -r 1 -t 1 2>&1) || { echo "FAIL: bench train (pretrain): $out"; fail=1; }
echo "$out"
obj=$(awk '/objective per masked frame/ {print $7}' <<<"$out")
# random K = 100 labels: CE near ln(100) = 4.6 (plus the feature penalty)
awk -v o="$obj" 'BEGIN {exit !(o > 3 && o < 20)}' && echo "ok: objective per masked frame $obj" \
  || { echo "FAIL: objective per masked frame '$obj' not in (3, 20)"; fail=1; }
grep -q "^RESULT hubert_train_step_s=" <<<"$out" || { echo "FAIL: no RESULT line"; fail=1; }
out=$("$H" bench train --config tiny --loss synthetic -b 1 -s 1 -r 1 -t 1 2>&1) && grep -q "loss synthetic" <<<"$out" \
  && echo "ok: --loss synthetic" || { echo "FAIL: --loss synthetic: $out"; fail=1; }
expect_err "--loss must be pretrain or synthetic" "$H" bench train --config tiny --loss ctc -r 1 -s 1
exit $fail
