#!/usr/bin/env bash
# Runs every benchmark; each prints its figures as ratios against a baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cache="${COPYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copyforge}"
corpus="$build/bench-data"
"$build/cli/copyforge" sample-data --out "$corpus" --overwrite > /dev/null

# Real English prose (Debian's license texts) plus the synthetic review corpus.
"$build/bench/tokenizer_bench" --tokenizer "$cache/gpt2-tokenizer" --npm-dir "$cache/npm" \
  --source-dir . --input /usr/share/common-licenses/* --input "$corpus/reviews.txt" --iterations 10

"$build/bench/prepare_bench" --tokenizer "$cache/gpt2-tokenizer" --records 60000

# Training throughput against eager PyTorch (same model, optimizer, shapes, threads, OpenBLAS kernels).
"$build/bench/train_bench" --tokenizer "$cache/gpt2-tokenizer" --source-dir . --steps 4
