#!/usr/bin/env bash
# The unit tests of the torch-free parts (core library, coordinator) built with AddressSanitizer
# and UndefinedBehaviorSanitizer in build-sanitize, then run; any report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${SANITIZE_BUILD_DIR:-build-sanitize}
cache=${COPYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copyforge}
mkdir -p "$dir"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOPYFORGE_TORCH=OFF \
  -DCOPYFORGE_SANITIZE=ON -DCOPYFORGE_CACHE_DIR="$cache" > "$dir/configure.log" 2>&1 ||
  { cat "$dir/configure.log"; exit 1; }
cmake --build "$dir" -j "${JOBS:-2}" --target core_tests coordinator_tests
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$dir" && ctest --output-on-failure -j "${JOBS:-2}" --timeout 600
