#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs dependencies, builds (warnings are
# errors), runs every ctest label this machine can run (CUDA tests skip without a GPU), then
# rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit and gradient
# tests again.
#   scripts/test.sh            everything
#   SKIP_SANITIZE=1 scripts/test.sh   skip the sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)

bash scripts/setup.sh

echo "== build (Release, -Wall -Wextra -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHUBERT_WERROR=ON > build.configure.log
cmake --build build -j"$JOBS"

echo "== tests"
ctest --test-dir build --output-on-failure -j2 --timeout 1500

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== sanitizer build (ASan + UBSan) and unit/grad tests"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUBERT_SANITIZE=ON -DHUBERT_CUDA=OFF -DHUBERT_WERROR=ON > build-asan.configure.log
  cmake --build build-asan -j"$JOBS"
  # Leak checking stays on; halt_on_error makes any report fail the test.
  ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan -L 'unit|grad' --output-on-failure -j2 --timeout 1500
fi
echo "== all tests passed"
