# The checks of scripts/gpu_check.sh (sourced by it, after the build, on a machine with a GPU).
# Uses its variables: bin, build, kit, work, out, py, gpus, root, and its record/bounded helpers.

# train NAME KEY=VALUE...: one `copyforge train` of $work/train.yaml into $work/NAME.
train() {
  local name=$1; shift
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  rm -rf "$work/$name"
  bounded "$bin" train --config "$work/train.yaml" --set out="$work/$name" "${sets[@]}" \
    > "$out/train_$name.log" 2>&1
}

# figures NAME: the check's JSON line (the last line the Python half printed).
last_json() { tail -1 "$1" 2>/dev/null | grep '^{' || echo '{"error": "no result"}'; }

prepare_data() {
  bounded "$bin" sample-data --out "$work/data" --records 3000 > "$out/sample_data.log" 2>&1 &&
    bounded "$bin" prepare --input "$work/data/amazon2023/*" --tokenizer "$kit/gpt2-tokenizer" \
      --out "$work/shards" --overwrite > "$out/prepare.log" 2>&1
  head -c 200000 "$work/data/reviews.txt" > "$work/eval.txt"
  sed 's/^dropout:.*/dropout: 0.0/' "$root/configs/model/gpt2-124m.yaml" > "$work/gpt2-124m.yaml"
  cat > "$work/train.yaml" <<YAML
model: $root/configs/model/tiny.yaml
init_seed: 1
data: $work/shards
seq_len: 128
batch_size: 8
steps: 20
optimizer: {lr: 1.0e-3, warmup_steps: 5}
eval: {interval: 0, batches: 2}
out: $work/run
checkpoint: {interval: 0, keep: 1}
precision: fp32
threads: 16
log_interval: 1
YAML
}

check_cuda_vs_cpu() {
  train cpu32 device=cpu && train cuda32 device=cuda &&
    train cpu16 device=cpu precision=bf16 && train cuda16 device=cuda precision=bf16
  local c="$py $root/bench/gpu/checks.py curves"
  # fp32: the GPU runs its matmuls in TF32 (10-bit mantissa), so losses agree to ~1e-2, not 1e-6.
  $c "$work/cuda32/metrics.jsonl" "$work/cpu32/metrics.jsonl" --max-abs 0.02 --final-rel 0.002 \
    > "$out/curves_fp32.json"
  record cuda_vs_cpu_fp32 $([[ $? == 0 ]] && echo 1 || echo 0) "$(last_json "$out/curves_fp32.json")"
  # bf16: both converge alike (autocast on either device rounds differently).
  $c "$work/cuda16/metrics.jsonl" "$work/cpu16/metrics.jsonl" --max-abs 0.15 --final-rel 0.02 \
    --decreasing > "$out/curves_bf16.json"
  record cuda_vs_cpu_bf16 $([[ $? == 0 ]] && echo 1 || echo 0) "$(last_json "$out/curves_bf16.json")"
}

check_nccl() {
  bounded "$build/tests/model_tests" --gtest_filter='Communicator.Nccl*:Device.*:TensorSampler.*' \
    > "$out/nccl_tests.log" 2>&1
  local ok=$?
  local passed skipped
  passed=$(grep -c '^\[       OK \]' "$out/nccl_tests.log")
  skipped=$(grep -c '^\[  SKIPPED \]' "$out/nccl_tests.log")
  record nccl_device_tensors $([[ $ok == 0 && $skipped == 0 ]] && echo 1 || echo 0) \
    "{\"passed\": $passed, \"skipped\": $skipped, \"world\": 1}"
  # Data-parallel training over NCCL: N ranks of batch 8/N follow the single-rank run of batch 8.
  local per=$((8 / gpus))
  if ((gpus == 1)); then  # one rank with a communicator (bucketed all-reduce over NCCL)
    COPYFORGE_RANK=0 COPYFORGE_WORLD=1 COPYFORGE_STORE_PORT=$((29000 + RANDOM % 1000)) \
      train nccl device=cuda dist.backend=nccl
  else
    rm -rf "$work/nccl"
    bounded "$bin" train --config "$work/train.yaml" --nproc "$gpus" --set out="$work/nccl" \
      --set device=cuda --set dist.backend=nccl --set batch_size=$per > "$out/train_nccl.log" 2>&1
  fi
  $py "$root/bench/gpu/checks.py" curves "$work/nccl/metrics.jsonl" "$work/cuda32/metrics.jsonl" \
    --max-abs 0.01 --final-rel 0.002 > "$out/curves_nccl.json"
  record nccl_train_matches $([[ $? == 0 ]] && echo 1 || echo 0) \
    "$(last_json "$out/curves_nccl.json" | sed "s/^{/{\"ranks\": $gpus, /")"
}

check_train_speed() {
  train speed model="$work/gpt2-124m.yaml" seq_len=1024 batch_size=8 steps=30 precision=bf16 \
    device=cuda
  local ours
  ours=$($py - "$work/speed/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
a, b = rows[9], rows[-1]  # steady state: steps 11..30
tok_s = (b["step"] - a["step"]) * 8 * 1024 / (b["elapsed_s"] - a["elapsed_s"])
print(json.dumps({"tokens_per_s": tok_s, "mfu": tok_s * b["mfu"] / b["tokens_per_s"]}))
PY
)
  bounded $py "$root/bench/gpu/train_ref.py" --batch 8 --seq 1024 --steps 30 > "$out/ref_eager.json" 2>"$out/ref_eager.log"
  bounded $py "$root/bench/gpu/train_ref.py" --batch 8 --seq 1024 --steps 30 --compile \
    > "$out/ref_compile.json" 2>"$out/ref_compile.log"
  local figures
  figures=$($py - "$ours" "$out/ref_eager.json" "$out/ref_compile.json" <<'PY'
import json, sys
ours = json.loads(sys.argv[1]) if sys.argv[1] else {}
def load(p):
    try:
        return json.loads(open(p).read().strip().splitlines()[-1])
    except Exception:
        return {}
eager, comp = load(sys.argv[2]), load(sys.argv[3])
out = {"ours_tokens_per_s": ours.get("tokens_per_s"), "ours_mfu": ours.get("mfu"),
       "eager_tokens_per_s": eager.get("tokens_per_s"), "eager_mfu": eager.get("mfu"),
       "compile_tokens_per_s": comp.get("tokens_per_s"), "compile_mfu": comp.get("mfu")}
if ours and eager:
    out["ours_over_eager"] = ours["tokens_per_s"] / eager["tokens_per_s"]
    out["goal_at_least_eager"] = out["ours_over_eager"] >= 1.0
if ours and comp:
    out["ours_over_compile"] = ours["tokens_per_s"] / comp["tokens_per_s"]
print(json.dumps(out))
PY
)
  record train_speed_gpt2_124m $([[ -n $ours ]] && echo 1 || echo 0) "$figures"
}

check_serving() {
  local ckpt=$work/gpt2-124m-init
  rm -rf "$ckpt"
  bounded "$bin" init-model --model-config "$work/gpt2-124m.yaml" --seed 1 \
    --tokenizer "$kit/gpt2-tokenizer" --out "$ckpt" > "$out/init_model.log" 2>&1
  rm -f "$work/serve.port"
  "$bin" serve --device cuda --checkpoint "$ckpt" --port 0 --port-file "$work/serve.port" \
    --max-batch 16 --max-new-tokens 512 > "$out/serve.log" 2>&1 &
  local serve_pid=$! i
  for i in $(seq 1 120); do [[ -s $work/serve.port ]] && break; sleep 0.5; done
  bounded "$build/bench/serve_load" --server "127.0.0.1:$(cat "$work/serve.port" 2>/dev/null)" \
    --concurrency 1 16 --seconds 8 --rounds 1 --max-new-tokens 128 --json "$out/serve_load.json" \
    > "$out/serve_load.log" 2>&1
  kill -TERM $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null
  bounded $py "$root/bench/gpu/hf_generate_ref.py" --checkpoint "$ckpt" --new-tokens 128 \
    > "$out/hf_generate.json" 2>"$out/hf_generate.log"
  local figures
  figures=$($py - "$out/serve_load.json" "$out/hf_generate.json" <<'PY'
import json, sys
def load(p):
    try:
        return json.loads(open(p).read().strip().splitlines()[-1])
    except Exception:
        return {}
ours, hf = load(sys.argv[1]), load(sys.argv[2])
levels = {l["concurrency"]: l for l in ours.get("levels", [])}
out = {"dtype": ours.get("dtype"), "failures": ours.get("failures"),
       "ours_ms_per_token_batch1": levels.get(1, {}).get("ms_per_token"),
       "ours_tokens_per_s_16": levels.get(16, {}).get("tokens_per_s"),
       "hf_ms_per_token_batch1": hf.get("ms_per_token_batch1"),
       "hf_tokens_per_s_16": hf.get("tokens_per_s_streams")}
if out["ours_ms_per_token_batch1"] and out["hf_ms_per_token_batch1"]:
    out["hf_over_ours_ms_per_token"] = out["hf_ms_per_token_batch1"] / out["ours_ms_per_token_batch1"]
if out["ours_tokens_per_s_16"] and out["hf_tokens_per_s_16"]:
    out["ours_over_hf_16_streams"] = out["ours_tokens_per_s_16"] / out["hf_tokens_per_s_16"]
print(json.dumps(out))
PY
)
  local ok=0
  [[ -s $out/serve_load.json ]] && grep -q '"failures": 0' "$out/serve_load.json" && ok=1
  record serving_gpt2_124m $ok "$figures"
}

check_interop() {
  mkdir -p "$work/interop"
  bounded $py "$root/bench/gpu/checks.py" interop --bin "$bin" --tokenizer "$kit/gpt2-tokenizer" \
    --checkpoint "$(ls -d "$work"/cuda32/checkpoints/step_* | tail -1)" --text "$work/eval.txt" \
    --work "$work/interop" > "$out/interop.json" 2>"$out/interop.log"
  record hf_interop_tiktoken $([[ $? == 0 ]] && echo 1 || echo 0) "$(last_json "$out/interop.json")"
}

check_tensorboard() {
  bounded $py "$root/bench/gpu/checks.py" tensorboard "$work/cuda32" > "$out/tensorboard.json" \
    2>"$out/tensorboard.log"
  record tensorboard_reader $([[ $? == 0 ]] && echo 1 || echo 0) "$(last_json "$out/tensorboard.json")"
}

run_checks() {
  prepare_data || { record data 0 '{"stage": "sample-data/prepare"}'; return; }
  check_cuda_vs_cpu
  check_nccl
  check_interop
  check_tensorboard
  check_serving
  check_train_speed
}
