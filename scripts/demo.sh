#!/usr/bin/env bash
# The copyforge cluster demo on the embedded sample corpus, as real processes on loopback with
# TLS (mutual) and bearer tokens: sample corpus -> shards -> a coordinator and two workers ->
# a pretraining job -> a fine-tuning job from its final checkpoint -> a server that follows the
# fine-tuning job -> product description, reviews at 1 and 5 stars, a blog post, a stream ->
# eval-tasks on the served checkpoint. Every process it starts is stopped by pid on the way out
# (also on Ctrl-C and on failure, which prints the failing step's log tail).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build=${1:-build}
bin="$repo/$build/cli/copyforge"
out="$repo/$build/demo"
logs="$out/logs"
export COPYFORGE_CACHE="${COPYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copyforge}"
start=$(date +%s)
pids=()
current_log=""
current_step=""

stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '\n!! demo failed at: %s\n' "$current_step" >&2
    if [ -n "$current_log" ] && [ -f "$current_log" ]; then
      printf '!! last lines of %s:\n' "$current_log" >&2
      tail -n 25 "$current_log" >&2
    fi
  fi
  stop_all
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

elapsed() { echo "$(( $(date +%s) - start ))s"; }
step() { current_step="$1"; current_log=""; printf '\n== [%s] %s\n' "$(elapsed)" "$1"; }
# run LOG ARGS...: a copyforge command in the foreground, its output on the terminal and in LOG.
run() {
  local log="$logs/$1"; shift
  current_log="$log"
  printf '$ copyforge %s\n' "$*"
  "$bin" "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}
# background NAME ARGS...: starts copyforge ARGS in the background, output in logs/NAME.log.
background() {
  local name=$1; shift
  current_log="$logs/$name.log"
  printf '$ copyforge %s &   (log: %s)\n' "$*" "${current_log#"$repo"/}"
  "$bin" "$@" > "$current_log" 2>&1 &
  pids+=("$!")
}
# wait_file FILE SECONDS WHAT: waits for FILE while the last background process lives.
wait_file() {
  local i
  for i in $(seq 1 $(( $2 * 10 ))); do
    [ -s "$1" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$3 exited" >&2; return 1; }
    [ $(( i % 50 )) -eq 0 ] && echo "   ... waiting for $3 ($(( i / 10 )) s)"
    sleep 0.1
  done
  echo "timed out waiting for $3" >&2
  return 1
}

rm -rf "${out:?}"
mkdir -p "$logs" "$out/runs" "$out/secrets"

step "1/11 TLS certificates (a private CA, server and client) and bearer tokens"
bash scripts/make_certs.sh "$out/secrets" 2
for role in job worker reader serve watermark; do
  (umask 077; openssl rand -hex 32 > "$out/secrets/$role.token")
done
tls_server=(--tls-cert "$out/secrets/server.pem" --tls-key "$out/secrets/server.key"
            --tls-ca "$out/secrets/ca.pem")
tls_client=(--tls-cert "$out/secrets/client.pem" --tls-key "$out/secrets/client.key"
            --tls-ca "$out/secrets/ca.pem")
echo "   tokens for the job, worker, reader and serving roles and the watermark secret in ${out#"$repo"/}/secrets"

step "2/11 synthetic corpus in the Amazon 2018/2023, Yelp and CSV formats (planted PII, duplicates)"
run sample-data.log sample-data --out "$out/data" --records 3000 --overwrite | tail -4

step "3/11 clean, scrub, deduplicate, template and tokenize into shards (configs/data/sample.yaml)"
run prepare.log prepare --config configs/data/sample.yaml --overwrite

step "4/11 coordinator (mutual TLS, tokens per role) and two workers"
background coordinator coordinator --port 0 --port-file "$out/coordinator.port" \
  --state-dir "$out/coordinator" --data-root "$repo" --runs-root "$out/runs" \
  "${tls_server[@]}" --job-token-file "$out/secrets/job.token" \
  --worker-token-file "$out/secrets/worker.token" --reader-token-file "$out/secrets/reader.token"
wait_file "$out/coordinator.port" 30 "the coordinator"
coordinator="127.0.0.1:$(cat "$out/coordinator.port")"
for w in 0 1; do
  background "worker-$w" worker --coordinator "$coordinator" --id "worker-$w" \
    --workdir "$out/workers/worker-$w" --threads 1 "${tls_client[@]}" \
    --token-file "$out/secrets/worker.token"
done
client=(--coordinator "$coordinator" "${tls_client[@]}" --token-file "$out/secrets/job.token")
echo "   coordinator on $coordinator; workers worker-0 and worker-1"

step "5/11 submit the pretraining job (configs/jobs/demo-pretrain.yaml: the small model, 40 steps)"
run submit-pretrain.log submit "${client[@]}" configs/jobs/demo-pretrain.yaml
step "6/11 watch it to the end"
run watch-pretrain.log watch "${client[@]}" demo-pretrain

step "7/11 submit the fine-tuning job from its final checkpoint (configs/jobs/demo-finetune.yaml)"
run submit-finetune.log submit "${client[@]}" configs/jobs/demo-finetune.yaml
background serve serve --coordinator "$coordinator" --job demo-finetune --wait-checkpoint 900 \
  --port 0 --port-file "$out/serve.port" --metrics-port 0 --metrics-port-file "$out/metrics.port" \
  --threads 2 --max-batch 8 "${tls_server[@]}" --token-file "$out/secrets/serve.token" \
  --copy-index "$out/shards/ngrams.bin" --watermark-key-file "$out/secrets/watermark.token" \
  --coordinator-token-file "$out/secrets/reader.token"
echo "   serve follows demo-finetune: it loads the first checkpoint and hot-swaps each newer one"
run watch-finetune.log watch "${client[@]}" demo-finetune

step "8/11 the server swaps in the final checkpoint"
final="$out/runs/demo-finetune/checkpoints/step_0000040"
current_log="$logs/serve.log"
wait_file "$out/serve.port" 300 "the server"
for i in $(seq 1 300); do
  grep -q "now serving $final" "$logs/serve.log" && break
  [ "$i" -eq 300 ] && { echo "the server never loaded $final" >&2; exit 1; }
  sleep 0.2
done
grep -E "now serving" "$logs/serve.log" | sed 's/^/   /'
server="127.0.0.1:$(cat "$out/serve.port")"
gen_base=(generate --server "$server" "${tls_client[@]}" --token-file "$out/secrets/serve.token"
          --temperature 0.7 --top-k 40 --seed 7)
gen=("${gen_base[@]}" --max-new-tokens 60)

step "9/11 generate through the server: a product description, reviews at 1 and 5 stars, a blog post"
{
  echo "--- product description"
  "$bin" "${gen[@]}" --task product_description --title "Everstead S107 coffee maker, white" \
    --brand Everstead --category "Home & Kitchen > Small Appliances" --price '$137.13' \
    --feature "six speed settings" --feature "a removable drip tray"
  # Reviews are watermarked by default; these two ask for the model's own text (the watermark,
  # and its detection, come after).
  for stars in 1 5; do
    echo; echo "--- review, $stars star(s) (--watermark off)"
    "$bin" "${gen[@]}" --watermark off --task review --title "Vantage C853 mineral sunscreen, white" \
      --category "Beauty & Personal Care > Skin Care" --rating "$stars"
  done
  echo; echo "--- blog post"
  "$bin" "${gen[@]}" --task blog_post --topic "Kitchen gifts under \$150" \
    --product "Everstead S107 coffee maker, white" --product "Copperleaf T972 kettle"
  echo; echo "--- the same review request, streamed token by token (GenerateStream)"
  "$bin" "${gen[@]}" --stream --task review --title "Vantage C853 mineral sunscreen, white" \
    --category "Beauty & Personal Care > Skin Care" --rating 5
  echo
  echo; echo "--- a product listing as JSON (structured output: the product_listing schema)"
  "$bin" "${gen[@]}" --response-format product_listing --task \
    product_description --title "Everstead S107 coffee maker, white" --brand Everstead \
    --category "Home & Kitchen > Small Appliances" --price '$137.13' --feature "six speed settings"
  echo
} 2>&1 | tee "$logs/generate.log"
current_log="$logs/generate.log"
[ "${PIPESTATUS[0]}" -eq 0 ]
echo "--- the watermark: reviews are watermarked by default; detect with the server's key"
# Detection needs length and entropy: 150 tokens at temperature 1 (a z-score grows with the
# square root of the tokens scored, and only where the model had a choice).
"$bin" generate --server "$server" "${tls_client[@]}" --token-file "$out/secrets/serve.token" \
  --temperature 1 --seed 7 --max-new-tokens 150 --no-stop --task review \
  --title "Vantage C853 mineral sunscreen, white" --category "Beauty & Personal Care > Skin Care" \
  --rating 4 > "$out/review.txt" 2> /dev/null
echo "   generated review:     $("$bin" detect --server "$server" "${tls_client[@]}" \
  --token-file "$out/secrets/serve.token" --input "$out/review.txt")"
grep -m1 '"kind":"review"' "$out/shards/eval/tasks.jsonl" |
  sed 's/.*"reference":"\([^"]*\)".*/\1/' > "$out/human-review.txt"
echo "   held-out human review: $("$bin" detect --server "$server" "${tls_client[@]}" \
  --token-file "$out/secrets/serve.token" --input "$out/human-review.txt")"

step "10/11 eval-tasks on the served checkpoint (held-out inputs; human texts and a fresh model beside it)"
run eval-tasks.log eval-tasks --checkpoint "$final" --data "$out/shards" --server "$server" \
  "${tls_client[@]}" --token-file "$out/secrets/serve.token" --count 12 --max-new-tokens 64 \
  --json "$out/eval-tasks.json" | sed -n '1,200{/^{/q;p}'

step "11/11 summary"
for job in demo-pretrain demo-finetune; do
  val=$(grep '"val_loss"' "$out/runs/$job/metrics.jsonl" | tail -1)
  printf '   %-14s final validation: %s\n' "$job" "$val"
done
"$bin" status "${client[@]}" | sed 's/^/   /'
metrics="https://127.0.0.1:$(cat "$out/metrics.port")/metrics"
echo "   serving metrics ($metrics):"
curl -s --cacert "$out/secrets/ca.pem" --cert "$out/secrets/client.pem" \
  --key "$out/secrets/client.key" "$metrics" |
  grep -E '^copyforge_(requests_total|model_step|request_generated_tokens_(sum|count)|request_time_to_first_token_seconds_(sum|count)|response_copied_tokens_(sum|count)|output_pii_replacements_total)[ {]' |
  sed 's/^/     /'
cat <<EOF
   logs:          ${logs#"$repo"/}/ (coordinator, workers, serve and every step)
   checkpoints:   ${out#"$repo"/}/runs/demo-pretrain/checkpoints, ${out#"$repo"/}/runs/demo-finetune/checkpoints
   TensorBoard:   tensorboard --logdir ${out#"$repo"/}/runs
   eval report:   ${out#"$repo"/}/eval-tasks.json
   certificates and tokens: ${out#"$repo"/}/secrets
EOF
current_step="stopping"
stop_all
printf '\n== cluster demo finished in %s; every process it started has stopped\n' "$(elapsed)"
