# Shared set-up of the CLI tests (sourced by tests/cli/test_*.sh; not a test itself):
#   BIN, SRC      HUBERT_BIN (the hubert binary) and HUBERT_SRC (the source root), both required
#   PY            HUBERT_PYTHON, else /usr/bin/python3 (the interpreter with numpy/h5py/torch)
#   SEED          HUBERT_TEST_SEED, else $RANDOM
#   T             a fresh temporary directory, removed on exit
#   fails, ok, bad, expect_fail   the check counters and reporters (the test exits with $fails)
# and the helpers below (train_shards, need_mpi, need_cuda).
set -u
BIN="${HUBERT_BIN:?HUBERT_BIN must point to the hubert binary}"
SRC="${HUBERT_SRC:?HUBERT_SRC must point to the source root}"
PY="${HUBERT_PYTHON:-/usr/bin/python3}"
SEED="${HUBERT_TEST_SEED:-$RANDOM}"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "  ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_fail WHAT NEEDLE CMD...: CMD must exit non-zero and mention NEEDLE on stderr ($T/out, $T/err).
expect_fail() {
  local what="$1" needle="$2"; shift 2
  if "$@" >"$T/out" 2>"$T/err"; then bad "$what: succeeded"; return; fi
  if grep -qF -- "$needle" "$T/err"; then ok "$what -> $(head -c 300 "$T/err")"
  else bad "$what: error does not mention '$needle': $(tail -c 500 "$T/err")"; fi
}

# train_shards ARGS...: in $T, tests/cli/train_fixture.py d $SEED ARGS..., then labels import + shard
# of train and valid (labels km=km_<split>.h5, topics tp=topics_<split>.h5) into d/shards; the shell
# is left in $T/d. Exits 1 if any step fails.
train_shards() {
  cd "$T" || exit 1
  "$PY" "$SRC/tests/cli/train_fixture.py" d "$SEED" "$@" || { echo "FAIL: fixture"; exit 1; }
  cd d || exit 1
  local s
  for s in train valid; do
    "$BIN" labels import --manifest $s.tsv --km $s.km --rate 50 --k 8 --out km_$s.h5 >/dev/null &&
      "$BIN" shard --out shards --manifest $s.tsv --prefix $s --labels km=km_$s.h5 --topics tp=topics_$s.h5 >/dev/null ||
      { echo "FAIL: shards"; exit 1; }
  done
}

# need_mpi: skips (77) without mpirun or without MPI in $BIN; sets MPI=(mpirun + flags): shared-memory
# transport only, no CMA (containers forbid ptrace); allows running as root.
need_mpi() {
  command -v mpirun >/dev/null || { echo "SKIP: no mpirun"; exit 77; }
  ldd "$BIN" | grep -q libmpi || { echo "SKIP: $BIN was built without MPI"; exit 77; }
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  MPI=(mpirun --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
}

# need_cuda: skips (77) when $BIN has no CUDA backend or the machine has no GPU.
need_cuda() {
  local probe
  probe=$("$BIN" bench extract --device cuda --config tiny --batch-size 1 --seconds 0.1 --repeat 1 2>&1)
  if grep -qE "no CUDA device|not built in" <<<"$probe"; then echo "SKIP: $(tail -1 <<<"$probe")"; exit 77; fi
}
