#!/usr/bin/env bash
# Greedy outputs of the same checkpoint served in bfloat16 and in float32 on a fixed prompt set:
# the share of prompts whose continuations are identical, and of tokens up to the first
# difference. usage: bench/bf16_agreement.sh CHECKPOINT [BUILD_DIR] [NEW_TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=$1
build=${2:-build}
n=${3:-32}
bin="$build/cli/copyforge"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
prompts=("Love it!" "Terrible quality." "Great for the price" "Product: water bottle" \
  "The pizza was" "I bought this for my" "Do not buy" "Five stars." "Write a customer review." \
  "Fast shipping and" "The staff" "Works as described" "Broke after two" "My kids" \
  "Perfect size for" "Customer service" "Would recommend" "The color is" "Not worth" "Best")
for dtype in float32 bfloat16; do
  "$bin" serve --checkpoint "$ckpt" --dtype $dtype --port-file "$work/port-$dtype" \
    --threads 2 2> "$work/serve-$dtype.log" &
  for _ in $(seq 100); do [ -s "$work/port-$dtype" ] && break; sleep 0.2; done
  for i in "${!prompts[@]}"; do
    "$bin" generate --server "127.0.0.1:$(cat "$work/port-$dtype")" --prompt "${prompts[$i]}" \
      --temperature 0 --max-new-tokens "$n" --no-stop 2> /dev/null > "$work/$dtype-$i.txt"
  done
  kill %%; wait %% 2>/dev/null || true
done
same=0
for i in "${!prompts[@]}"; do
  if cmp -s "$work/float32-$i.txt" "$work/bfloat16-$i.txt"; then same=$((same + 1)); fi
done
python3 - "$work" "${#prompts[@]}" "$same" <<'PY'
import os, sys
work, total, same = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chars = []
for i in range(total):
    a = open(os.path.join(work, f"float32-{i}.txt")).read()
    b = open(os.path.join(work, f"bfloat16-{i}.txt")).read()
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    chars.append(k / max(1, max(len(a), len(b))))
print(f"bf16_agreement: {same}/{total} prompts identical "
      f"({100 * same / total:.0f}%); mean share of text before the first difference "
      f"{100 * sum(chars) / total:.0f}%")
PY
