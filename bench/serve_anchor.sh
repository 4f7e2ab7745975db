#!/usr/bin/env bash
# Serving speed against the engines users would run instead, in one run on this machine: the same
# gpt2-124m checkpoint (random weights, seed 1), the same prompt, greedy, 64 new tokens, the same
# thread count, at 1 and 16 streams:
#   copyforge serve (its dtypes) through gRPC, measured by bench/serve_load;
#   llama.cpp's CPU libraries (npm node-llama-cpp) on the checkpoint exported to GGUF f16 and q8_0;
#   onnxruntime (npm onnxruntime-node) on a KV-cache ONNX graph exported by Debian's PyTorch.
# Prints each engine's ms per token at one stream and tokens/s at 16, and the ratios to ours.
# usage: bench/serve_anchor.sh [BUILD_DIR] [THREADS] [COPYFORGE_DTYPES...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${2:-$(nproc)}
shift $(($# > 2 ? 2 : $#))
dtypes=("$@")
((${#dtypes[@]})) || dtypes=(bfloat16)
cache="${COPYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copyforge}"
modules="$cache/npm/node_modules"
work="$build/serve-anchor"
new_tokens=64
prompt="Product: stainless steel water bottle, 750 ml, keeps drinks cold for 24 hours. Description:"
mkdir -p "$work"
cf="$build/cli/copyforge"

if [[ ! -s "$work/ckpt/model.safetensors" ]]; then
  "$cf" init-model --model-config configs/model/gpt2-124m.yaml --seed 1 \
    --tokenizer "$cache/gpt2-tokenizer" --out "$work/ckpt" > /dev/null
fi
for q in f16 q8_0; do
  [[ -s "$work/gpt2-$q.gguf" ]] || "$cf" export --format gguf --dtype "$q" \
    --checkpoint "$work/ckpt" --out "$work/gpt2-$q.gguf" > /dev/null
done
[[ -s "$work/gpt2.onnx" ]] ||
  /usr/bin/python3 bench/anchors/onnx_export.py "$work/ckpt" "$work/gpt2.onnx" 2> "$work/onnx_export.log"
printf '%s' "$prompt" > "$work/prompt.txt"
ids=$("$cf" tokenize --tokenizer "$work/ckpt" --input "$work/prompt.txt")
printf '{"prompt_ids": %s, "new_tokens": %d, "streams": [1, 16], "threads": %d, "layers": 12, "heads": 12, "head_dim": 64}\n' \
  "$ids" "$new_tokens" "$threads" > "$work/input.json"
echo "serve_anchor: gpt2-124m, ${threads} threads, greedy, $new_tokens new tokens, prompt of $(echo "$ids" | tr -cd ',' | wc -c | awk '{print $1 + 1}') tokens"

for dtype in "${dtypes[@]}"; do
  rm -f "$work/port"
  "$cf" serve --checkpoint "$work/ckpt" --port-file "$work/port" --threads "$threads" \
    --dtype "$dtype" --max-batch 16 --max-queue 64 2> "$work/serve-$dtype.log" &
  server=$!
  for _ in $(seq 300); do [[ -s "$work/port" ]] && break; sleep 0.2; done
  "$build/bench/serve_load" --server "127.0.0.1:$(cat "$work/port")" --concurrency 1 16 \
    --seconds 8 --rounds 2 --max-new-tokens "$new_tokens" --temperature 0 --prompt "$prompt" \
    --threads "$threads" --json "$work/copyforge-$dtype.json" 2> /dev/null | sed 's/^/  /'
  kill "$server"; wait "$server" || true
done
for q in f16 q8_0; do
  node bench/anchors/llama_decode.mjs "$modules" "$work/gpt2-$q.gguf" "$work/input.json" \
    > "$work/llama-$q.json"
done
node bench/anchors/ort_decode.mjs "$modules" "$work/gpt2.onnx" "$work/input.json" > "$work/ort.json"
python3 bench/anchors/summary.py "$work" "${dtypes[@]}"
