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

# The fused LM head + cross-entropy against matmul + cross_entropy, per row-chunk size.
"$build/bench/lce_bench" --iterations 3

# Gradient all-reduce: bucketed reducer vs one raw Gloo all-reduce, and overlap with backward.
"$build/bench/allreduce_bench" --iterations 5

# bfloat16 vs float32: validation loss after the same 60 steps (about 7 minutes).
bash bench/precision_check.sh "$build" 60

# Control plane: time from a worker's death (SIGKILL / SIGSTOP) to the next training step.
python3 bench/recovery_bench.py "$build"
