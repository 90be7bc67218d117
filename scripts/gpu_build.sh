# Sourced by scripts/gpu_check.sh and scripts/gpu_pretrain_demo.sh on the lent GPU machine: finds
# or unpacks the Debian libraries hubert.c links against, then configures and builds with CUDA.
# Expects SRC (repository), BUILD (build folder), LOG (log folder), JOBS and a row() function;
# GPU_BUILD_TARGET (default: all) limits what is built. Exports LD_LIBRARY_PATH when it unpacks
# .debs/. Dependencies: the GPU image has nvcc, cmake, gcc and PyTorch but maybe not our Debian
# libraries and no package registry. Order of attempts: system libraries (pkg-config finds them) ->
# apt-get install (if it works there) -> .debs/ unpacked into a private prefix (prepare it here
# with scripts/gpu_debs.sh and pass carry=[".debs"]). HUBERT_USE_DEBS=1 forces the .debs/ path.
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
# The tests' Python (fixtures need numpy + h5py) is the image's python3, not Debian's.
if ! cmake -S "$SRC" -B "$BUILD" -DHUBERT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_BUILD_TYPE=Release \
  -DHUBERT_PYTHON="$(command -v python3)" "${CMAKE_EXTRA[@]}" >"$LOG/cmake.txt" 2>&1; then
  tail -30 "$LOG/cmake.txt"; row "configure" "FAILED (see cmake.txt)"; exit 1
fi
if ! cmake --build "$BUILD" -j "$JOBS" ${GPU_BUILD_TARGET:+--target "$GPU_BUILD_TARGET"} >"$LOG/build.txt" 2>&1; then
  grep -E "error|Error" "$LOG/build.txt" | head -30; row "build" "FAILED (see build.txt)"; exit 1
fi
row "build" "ok (sm_$ARCH, $(elapsed))"

