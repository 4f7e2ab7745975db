#!/usr/bin/env bash
# bfloat16 autocast against float32 on the same data, initialisation and steps: the validation
# loss of both runs (configs/train/small.yaml) and how far apart they end.
# usage: bench/precision_check.sh [BUILD_DIR] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
steps=${2:-60}
bin="$build/cli/copyforge"
cache="${COPYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copyforge}"
work="$build/precision-check"
rm -rf "$work"
"$bin" sample-data --out "$work/data" --records 3000 > /dev/null
"$bin" prepare --input "$work/data/amazon2023/*" --input "$work/data/yelp/*" \
  --tokenizer "$cache/gpt2-tokenizer" --out "$work/shards" --validation-ratio 0.05 > /dev/null 2>&1
for precision in fp32 bf16; do
  start=$(date +%s)
  "$bin" train --config configs/train/small.yaml --set data="$work/shards" \
    --set out="$work/$precision" --set precision=$precision --set steps="$steps" \
    --set eval.interval="$steps" --set eval.batches=8 --set checkpoint.interval=0 \
    --set log_interval="$steps" > "$work/$precision.log" 2>&1
  echo "$precision: $(( $(date +%s) - start )) s"
done
python3 - "$work" <<'PY'
import json, sys
def last_val(path):
    vals = [json.loads(l)["val_loss"] for l in open(path) if "val_loss" in l]
    return vals[-1]
fp32 = last_val(sys.argv[1] + "/fp32/metrics.jsonl")
bf16 = last_val(sys.argv[1] + "/bf16/metrics.jsonl")
print(f"precision_check: validation loss after the same steps: fp32 {fp32:.4f}  bf16 {bf16:.4f}  "
      f"difference {100 * (bf16 - fp32) / fp32:+.2f}%")
PY
