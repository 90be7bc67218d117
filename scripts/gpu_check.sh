#!/usr/bin/env bash
# GPU check for the lent H100/H200 (one call, < 8 minutes): build with CUDA, run the `cuda`
# tests, compute-sanitizer memcheck on the CUDA op test, and the forward benchmark of hubert.c
# (`hubert bench extract --device cuda`) against PyTorch's HuBERT Base (fp32 and bf16 autocast)
# in the same run. Prints a short table last; logs go to $OUT (or build-gpu/gpu_check/).
#
# Dependencies: the GPU image has nvcc, cmake, gcc and PyTorch but maybe not our Debian libraries
# and no package registry. Order of attempts: system libraries (pkg-config finds them) ->
# apt-get install (if it works there) -> .debs/ unpacked into a private prefix (prepare it here
# with scripts/gpu_debs.sh and pass carry=[".debs"]). HUBERT_USE_DEBS=1 forces the .debs/ path.
# Usage (device tool): run(command="bash scripts/gpu_check.sh", carry=[".debs"], timeout_s=540)
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
BUILD=${HUBERT_GPU_BUILD:-$SRC/build-gpu}
LOG=${OUT:-$BUILD/gpu_check}
mkdir -p "$LOG"
T_START=$(date +%s)
declare -a ROWS=()
row() { ROWS+=("$(printf '%-34s %s' "$1" "$2")"); }
elapsed() { echo $(( $(date +%s) - T_START ))s; }
finish() {
  echo
  echo "==== gpu_check summary ($(elapsed), commit $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')) ===="
  for r in "${ROWS[@]}"; do echo "$r"; done
}
trap finish EXIT

echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$LOG/device.txt"
row "device" "$(head -1 "$LOG/device.txt")"
nvcc --version | tail -1
JOBS=$(nproc 2>/dev/null || echo 8)

# ---- dependencies ---------------------------------------------------------------------------------
have_libs() {
  command -v pkg-config >/dev/null && pkg-config --exists hdf5 yaml-0.1 sndfile samplerate 2>/dev/null &&
    [ -e /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so ]  # the layout CMakeLists.txt looks for
}
CMAKE_EXTRA=()
if [ "${HUBERT_USE_DEBS:-0}" != 1 ] && have_libs; then
  row "dependencies" "system"
elif [ "${HUBERT_USE_DEBS:-0}" != 1 ] && command -v apt-get >/dev/null &&
  timeout 120 apt-get install -y -qq --no-install-recommends pkg-config libhdf5-dev libyaml-dev libsndfile1-dev \
    libsamplerate0-dev libopenblas-openmp-dev >"$LOG/apt.txt" 2>&1 && have_libs; then
  row "dependencies" "apt-get install"
elif ls .debs/*.deb >/dev/null 2>&1; then
  P=${HUBERT_DEPS_PREFIX:-/tmp/hbdeps}
  LIB=$P/usr/lib/x86_64-linux-gnu
  rm -rf "$P" && mkdir -p "$P"
  for f in .debs/*.deb; do dpkg -x "$f" "$P" || { echo "dpkg -x $f failed"; exit 1; }; done
  # Debian's alternatives links are made by postinst scripts, which dpkg -x does not run.
  ln -sf hdf5-serial.pc "$LIB/pkgconfig/hdf5.pc"
  export PKG_CONFIG_LIBDIR="$LIB/pkgconfig:$P/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$P"
  export LD_LIBRARY_PATH="$LIB:$LIB/hdf5/serial:$LIB/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  PKGC=$(command -v pkg-config || echo "$P/usr/bin/pkgconf")
  LINK="-Wl,-rpath-link,$LIB -Wl,-rpath-link,$LIB/hdf5/serial -Wl,-rpath-link,$LIB/openblas-openmp"
  CMAKE_EXTRA=(-DPKG_CONFIG_EXECUTABLE="$PKGC" -DOPENBLAS_LIB="$LIB/openblas-openmp/libopenblas.so"
    -DCBLAS_INCLUDE="$P/usr/include/x86_64-linux-gnu/openblas-openmp"
    -DCMAKE_EXE_LINKER_FLAGS="$LINK" -DCMAKE_SHARED_LINKER_FLAGS="$LINK")
  row "dependencies" ".debs unpacked into $P"
else
  row "dependencies" "MISSING (no system libs, apt-get failed, no .debs/: run scripts/gpu_debs.sh here)"
  exit 1
fi

# ---- build ----------------------------------------------------------------------------------------
echo "== build ($BUILD)"
ARCH=${CMAKE_CUDA_ARCHITECTURES:-90}
if ! cmake -S "$SRC" -B "$BUILD" -DHUBERT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_BUILD_TYPE=Release \
  "${CMAKE_EXTRA[@]}" >"$LOG/cmake.txt" 2>&1; then
  tail -30 "$LOG/cmake.txt"; row "configure" "FAILED (see cmake.txt)"; exit 1
fi
if ! cmake --build "$BUILD" -j "$JOBS" >"$LOG/build.txt" 2>&1; then
  grep -E "error|Error" "$LOG/build.txt" | head -30; row "build" "FAILED (see build.txt)"; exit 1
fi
row "build" "ok (sm_$ARCH, $(elapsed))"

# ---- cuda tests -----------------------------------------------------------------------------------
echo "== ctest -L cuda"
(cd "$BUILD" && timeout 240 ctest -L cuda --output-on-failure) 2>&1 | tee "$LOG/ctest_cuda.txt"
rc=${PIPESTATUS[0]}
row "ctest -L cuda" "$([ "$rc" = 0 ] && echo ok || echo "FAILED (rc $rc)") ($(grep -c ' Passed' "$LOG/ctest_cuda.txt") passed, $(grep -c 'Skipped' "$LOG/ctest_cuda.txt") skipped)"
awk '{ for (i = 1; i < NF; i++) if ($i == "rel.err") print $(i + 1) "\t" $0 }' "$LOG/ctest_cuda.txt" | sort -g -r |
  head -3 | cut -f2 | sed 's/^ */  worst: /'

# ---- compute-sanitizer ----------------------------------------------------------------------------
echo "== compute-sanitizer memcheck (test_ops_cuda, quick)"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ -n "$CS" ]; then
  HUBERT_CUDA_TEST_QUICK=1 timeout 180 "$CS" --tool memcheck --leak-check full --error-exitcode 9 \
    "$BUILD/tests/test_ops_cuda" >"$LOG/memcheck.txt" 2>&1
  rc=$?
  tail -5 "$LOG/memcheck.txt"
  row "memcheck test_ops_cuda" "$([ "$rc" = 0 ] && echo clean || echo "FAILED (rc $rc, see memcheck.txt)")"
else
  row "memcheck test_ops_cuda" "skipped (no compute-sanitizer)"
fi

# ---- benchmark ------------------------------------------------------------------------------------
B=${BENCH_BATCH:-4} S=${BENCH_SECONDS:-10}
echo "== bench: HuBERT Base forward, $B x $S s"
timeout 120 "$BUILD/hubert" bench extract --config base --batch-size "$B" --seconds "$S" --repeat 10 --device cuda \
  2>&1 | tee "$LOG/bench_hubert.txt"
ours=$(sed -n 's/.*hubert_forward_s=\([0-9.]*\).*/\1/p' "$LOG/bench_hubert.txt")
# PyTorch runs without our private library path (it has its own).
env -u LD_LIBRARY_PATH PYTHONUNBUFFERED=1 timeout 180 python3 scripts/gpu_bench_torch.py --batch-size "$B" --seconds "$S" \
  2>&1 | tee "$LOG/bench_torch.txt"
t32=$(sed -n 's/.*torch_fp32_forward_ms=\([0-9.]*\).*/\1/p' "$LOG/bench_torch.txt")
t16=$(sed -n 's/.*torch_bf16_forward_ms=\([0-9.]*\).*/\1/p' "$LOG/bench_torch.txt")
ms() { awk -v s="$1" 'BEGIN { if (s == "") print "n/a"; else printf "%.1f ms", s * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == 0) print "n/a"; else printf "%.2fx", b / a }'; }
ours_ms=$(awk -v s="$ours" 'BEGIN { if (s != "") printf "%.3f", s * 1000 }')
row "hubert.c fp32 forward $B x ${S}s" "$(ms "$ours")"
row "torch fp32 (no TF32) forward" "${t32:-n/a} ms (hubert.c speed-up $(ratio "$ours_ms" "$t32"))"
row "torch bf16 autocast forward" "${t16:-n/a} ms (hubert.c speed-up $(ratio "$ours_ms" "$t16"))"
