#!/usr/bin/env bash
# hubert config: --list, --print/--out round trip, overrides, and bad configs (exit code + message).
set -u
H="${HUBERT_BIN:?}"
SRC="${HUBERT_SRC:?}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
expect_err() {  # expect_err NEEDLE CMD...
  local needle="$1"; shift
  if out=$("$@" 2>&1); then echo "FAIL: '$*' succeeded"; fail=1; return; fi
  if ! grep -qF -- "$needle" <<<"$out"; then echo "FAIL: '$*': '$out' lacks '$needle'"; fail=1; return; fi
  echo "ok: $* -> $out"
}
"$H" config --list | grep -q "optimization:" || { echo "FAIL: --list"; fail=1; }
n=$("$H" config --list --markdown | grep -c '^| `')
[ "$n" -ge 80 ] && echo "ok: --list --markdown: $n keys" || { echo "FAIL: only $n keys listed"; fail=1; }
"$H" config "$SRC/configs/demo.yaml" optimization.lr=1e-4 --out "$T/r.yaml" > /dev/null || { echo "FAIL: --out"; fail=1; }
"$H" config "$T/r.yaml" --print > "$T/r2.yaml" && cmp -s "$T/r.yaml" "$T/r2.yaml" && grep -q "lr: \[0.0001\]" "$T/r.yaml" \
  && echo "ok: print -> parse -> print is a fixed point" || { echo "FAIL: round trip"; fail=1; }
printf 'optimization:\n  lr: 1e-4\n  lrr: 2\n' > "$T/bad.yaml"
expect_err "bad.yaml:3: unknown key 'optimization.lrr' (did you mean 'optimization.lr'?)" "$H" config "$T/bad.yaml"
expect_err "optimization.lr: entry 0: -1 is out of range" "$H" config "$SRC/configs/demo.yaml" optimization.lr=-1
expect_err "task.data is '???'" "$H" config "$SRC/configs/base_iter1.yaml"
expect_err "cannot open" "$H" config "$T/missing.yaml"
expect_err "give CONFIG.yaml" "$H" config
exit $fail
