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

# Serving: closed-loop load at concurrency 1/4/16/64 against `copyforge serve` (random weights;
# speed does not depend on them), then gpt2-124m at concurrency 1 against the bandwidth floor.
serve_dir="$build/serve-bench"
rm -rf "$serve_dir" && mkdir -p "$serve_dir"
for model in small gpt2-124m; do
  "$build/cli/copyforge" init-model --model-config "configs/model/$model.yaml" --seed 1 \
    --tokenizer "$cache/gpt2-tokenizer" --out "$serve_dir/$model" > /dev/null
  rm -f "$serve_dir/port"
  "$build/cli/copyforge" serve --checkpoint "$serve_dir/$model" --port-file "$serve_dir/port" \
    --max-batch 16 --max-queue 64 2> "$serve_dir/$model.log" &
  server=$!
  for _ in $(seq 100); do [ -s "$serve_dir/port" ] && break; sleep 0.2; done
  if [ "$model" = small ]; then levels="1 4 16 64"; else levels="1"; fi
  "$build/bench/serve_load" --server "127.0.0.1:$(cat "$serve_dir/port")" --seconds 10 \
    --rounds 2 --concurrency $levels
  kill "$server"; wait "$server" || true
done

# One decode step in process (no gRPC): slot attention vs gathering the caches, step, sampling.
"$build/bench/decode_bench" --model-config configs/model/small.yaml --batch 1 4 16
"$build/bench/decode_bench" --model-config configs/model/gpt2-124m.yaml --batch 1 16 --iterations 5
"$build/bench/decode_bench" --model-config configs/model/gpt2-124m.yaml --batch 1 16 --iterations 5 --dtype int8

# Against llama.cpp (GGUF f16, q8_0) and onnxruntime (float32 KV-cache graph) at 1 and 16 streams.
bash bench/serve_anchor.sh "$build" 2 bfloat16 int8

# Time to first token of templated requests (200 shared tokens) with and without the prefix cache.
"$build/bench/prefix_cache_bench" --checkpoint "$build/serve-anchor/ckpt" --requests 8

# bfloat16 vs float32 greedy agreement on the demo's trained checkpoint (run `make demo` first).
demo_ckpt=$(ls -d "$build"/demo/runs/demo-finetune/checkpoints/step_* 2>/dev/null | sort | tail -1 || true)
if [ -n "$demo_ckpt" ]; then
  bash bench/bf16_agreement.sh "$demo_ckpt" "$build" 32
  # int8 weights against bfloat16: held-out perplexity and greedy agreement.
  "$build/bench/int8_quality" --checkpoint "$demo_ckpt" --data "$build/demo/shards" --count 60
  # Watermark detection / false positives / perplexity cost and structured output's cost per
  # token, through the serving front end on the same checkpoint and its held-out tasks.
  "$build/bench/output_control_bench" --checkpoint "$demo_ckpt" --data "$build/demo/shards" --count 60
  # GGUF export through llama.cpp's CPU libraries: tokenization, greedy agreement, perplexity.
  mkdir -p "$build/gguf-parity"
  "$build/bench/gguf_parity" --checkpoint "$demo_ckpt" --npm-dir "$cache/npm" --source-dir . \
    --work-dir "$build/gguf-parity" --dtype f32 f16 q8_0
else
  echo "bf16_agreement, int8_quality, output_control_bench, gguf_parity: skipped (no demo checkpoint; run make demo first)"
fi
