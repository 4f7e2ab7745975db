#!/usr/bin/env bash
# The copyforge demo on the embedded sample corpus:
# corpus -> token shards -> tokenizer -> trained model -> eval -> text.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin="$build/cli/copyforge"
out="$build/demo"
export COPYFORGE_CACHE="${COPYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copyforge}"
gpt2_tok="$COPYFORGE_CACHE/gpt2-tokenizer"
mkdir -p "$out"
rm -rf "${out:?}"/*  # every step starts from scratch
start=$(date +%s)

step() { printf '\n== %s\n$ copyforge %s\n' "$1" "${*:2}"; "$bin" "${@:2}"; }

step "1/6 synthetic corpus in the Amazon 2018/2023, Yelp and CSV formats (with planted PII, duplicates, bad lines)" \
  sample-data --out "$out/data" --records 3000 --overwrite
step "2/6 clean, scrub, deduplicate, template and tokenize it into shards (configs/data/sample.yaml)" \
  prepare --config configs/data/sample.yaml --overwrite
step "3/6 learn a 2048-token BPE vocabulary from the review text" \
  train-tokenizer --input "$out/data/reviews.txt" --vocab-size 2048 --out "$out/tokenizer" --overwrite
head -c 2000 "$out/data/reviews.txt" > "$out/excerpt.txt"
ours=$("$bin" tokenize --tokenizer "$out/tokenizer" --input "$out/excerpt.txt" | tr ',' '\n' | wc -l)
gpt2=$("$bin" tokenize --tokenizer "$gpt2_tok" --input "$out/excerpt.txt" | tr ',' '\n' | wc -l)
echo "   2,000 bytes of reviews: $ours tokens with the learned vocabulary, $gpt2 with GPT-2's"
step "4/6 pretrain GPT-2 'small' (30M parameters) on the shards for 40 steps, bfloat16 autocast (configs/train/small.yaml)" \
  train --config configs/train/small.yaml --set steps=40 --set batch_size=4 --set precision=bf16 \
  --set eval.interval=20 --set checkpoint.interval=20 --set log_interval=5
ckpt=$(ls -d "$out"/run/checkpoints/step_* | sort | tail -1)
step "5/6 evaluate the trained checkpoint on review text (untrained: about ln(50257) = 10.8)" \
  eval --checkpoint "$ckpt" --text-file "$out/data/reviews.txt" --max-tokens 4096
step "6/6 generate a review from it" \
  generate --checkpoint "$ckpt" --prompt $'Love it!\n' --max-new-tokens 40 --temperature 0.8 --top-k 40 --seed 7

printf '\n== demo finished in %ss; outputs under %s\n' "$(( $(date +%s) - start ))" "$out"
ls -1 "$out"
