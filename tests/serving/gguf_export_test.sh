#!/usr/bin/env bash
# GGUF export against llama.cpp's CPU libraries (npm node-llama-cpp): a small model exported in
# f32, f16 and q8_0 loads in llama.cpp, tokenizes our prompts identically, follows our greedy
# continuation up to the first near-tie and scores a text within the perplexity tolerance
# (bench/gguf_parity); the export refuses bad input with messages naming what is wrong.
# Usage: gguf_export_test.sh COPYFORGE GGUF_PARITY CACHE_DIR SOURCE_DIR
set -euo pipefail
bin=$1 parity=$2 cache=$3 src=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'n_layer: 2\nn_head: 2\nn_embd: 64\nn_positions: 128\nvocab_size: 50257\ndropout: 0.0\n' \
  > "$work/model.yaml"
"$bin" init-model --model-config "$work/model.yaml" --seed 11 --tokenizer "$cache/gpt2-tokenizer" \
  --out "$work/ckpt" > /dev/null
"$parity" --checkpoint "$work/ckpt" --npm-dir "$cache/npm" --source-dir "$src" \
  --work-dir "$work" --dtype f32 f16 q8_0 --new-tokens 16

fail() { echo "gguf_export_test: $*" >&2; exit 1; }
expect_error() {  # expect_error PATTERN ARGS...: the command fails and stderr names PATTERN
  local pattern=$1; shift
  if "$bin" export "$@" 2> "$work/err" > /dev/null; then fail "export $* succeeded"; fi
  grep -q -- "$pattern" "$work/err" || fail "export $*: no '$pattern' in: $(cat "$work/err")"
}
expect_error 'is not f32, f16 or q8_0' --checkpoint "$work/ckpt" --out "$work/x.gguf" --dtype q4
expect_error 'is not supported' --checkpoint "$work/ckpt" --out "$work/x.gguf" --format onnx
expect_error "$work/none" --checkpoint "$work/none" --out "$work/x.gguf"
# A corrupt checkpoint (manifest mismatch) is refused, and no output file is left behind.
cp -r "$work/ckpt" "$work/bad"
printf 'x' >> "$work/bad/model.safetensors"
expect_error 'model.safetensors' --checkpoint "$work/bad" --out "$work/bad.gguf"
[[ ! -e "$work/bad.gguf" ]] || fail "a refused export left $work/bad.gguf"
"$bin" export --checkpoint "$work/ckpt" --out "$work/ok.gguf" --dtype q8_0 | grep -q "gguf q8_0" ||
  fail "export printed no summary"
[[ "$(head -c 4 "$work/ok.gguf")" == GGUF ]] || fail "no GGUF magic"
echo "gguf_export_test: ok"
