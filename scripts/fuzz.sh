#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan + UBSan, torch-free configuration) in build-fuzz
# and runs each on its seed corpus (tests/fuzz/seeds/<name>, grown in build-fuzz/corpus/<name>).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default: $FUZZ_SECONDS or 60; `make test` passes 4)
# Exits non-zero, naming the target and the crashing input, when a fuzzer finds a fault.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-60}}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
cache=${COPYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copyforge}
mkdir -p "$dir"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCOPYFORGE_TORCH=OFF -DCOPYFORGE_FUZZ=ON -DCOPYFORGE_WERROR=OFF \
  -DCOPYFORGE_CACHE_DIR="$cache" > "$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
targets=(tokenizer records csv text safetensors manifest job_spec request)
cmake --build "$dir" -j "${JOBS:-2}" --target "${targets[@]/#/fuzz_}"
failed=0
for t in "${targets[@]}"; do
  corpus="$dir/corpus/$t"
  mkdir -p "$corpus" "$dir/crashes/$t"
  cp -n tests/fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  start=$(date +%s)
  if "$dir/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$dir/crashes/$t/" -print_final_stats=1 "$corpus" > "$dir/fuzz_$t.log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/fuzz_$t.log" | grep -o '[0-9]*$' || echo "?")
    printf 'fuzz %-12s ok: %s inputs in %ss, corpus %s files\n' "$t" "$runs" "$(( $(date +%s) - start ))" \
      "$(ls "$corpus" | wc -l)"
  else
    failed=1
    echo "fuzz $t FAILED; the input is in $dir/crashes/$t/, the log tail:"
    tail -n 40 "$dir/fuzz_$t.log"
  fi
done
exit $failed
