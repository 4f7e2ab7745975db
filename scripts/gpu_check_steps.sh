# The checks of scripts/gpu_check.sh (sourced by it, after the build, on a machine with a GPU).
# Uses its variables: bin, build, kit, work, out, py, gpus, root, and its record/bounded helpers;
# dev / backend are cuda / nccl (cpu / gloo when the script rehearses on a CPU machine), and
# speed_* size the training-speed run.

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
  rm -rf "$work/data"
  bounded "$bin" sample-data --out "$work/data" --records 3000 > "$out/sample_data.log" 2>&1 &&
    bounded "$bin" prepare --input "$work/data/amazon2023/*" --tokenizer "$kit/gpt2-tokenizer" \
      --out "$work/shards" --overwrite > "$out/prepare.log" 2>&1 &&
    head -c 200000 "$work/data/reviews.txt" > "$work/eval.txt" || return 1
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
threads: 0
log_interval: 1
YAML
}

check_cuda_vs_cpu() {
  train cpu32 device=cpu && train cuda32 device=$dev &&
    train cpu16 device=cpu precision=bf16 && train cuda16 device=$dev precision=bf16
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
  # The NCCL test must have run on the GPU (the Device tests that need a missing GPU skip here).
  local nccl_ran=0
  grep -q '^\[       OK \] Communicator.NcclNeedsAGpuAndSaysSo' "$out/nccl_tests.log" && nccl_ran=1
  record nccl_device_tensors $([[ $ok == 0 && $nccl_ran == 1 ]] && echo 1 || echo 0) \
    "{\"passed\": $passed, \"skipped\": $skipped, \"nccl_test_ran\": $nccl_ran, \"world\": 1}"
  # Data-parallel training over NCCL: N ranks of batch 8/N follow the single-rank run of batch 8.
  local per=$((8 / gpus))
  if ((gpus == 1)); then  # one rank with a communicator (bucketed all-reduce over NCCL)
    COPYFORGE_RANK=0 COPYFORGE_WORLD=1 COPYFORGE_STORE_PORT=$((29000 + RANDOM % 1000)) \
      train nccl device=$dev dist.backend=$backend
  else
    rm -rf "$work/nccl"
    bounded "$bin" train --config "$work/train.yaml" --nproc "$gpus" --set out="$work/nccl" \
      --set device=$dev --set dist.backend=$backend --set batch_size=$per > "$out/train_nccl.log" 2>&1
  fi
  $py "$root/bench/gpu/checks.py" curves "$work/nccl/metrics.jsonl" "$work/cuda32/metrics.jsonl" \
    --max-abs 0.01 --final-rel 0.002 > "$out/curves_nccl.json"
  record nccl_train_matches $([[ $? == 0 ]] && echo 1 || echo 0) \
    "$(last_json "$out/curves_nccl.json" | sed "s/^{/{\"ranks\": $gpus, /")"
}

check_train_speed() {
  train speed model="$work/gpt2-124m.yaml" seq_len=$speed_seq batch_size=$speed_batch \
    steps=$speed_steps precision=bf16 device=$dev
  local ref="$py $root/bench/gpu/train_ref.py --batch $speed_batch --seq $speed_seq"
  ref+=" --steps $speed_steps"
  bounded $ref > "$out/ref_eager.json" 2> "$out/ref_eager.log"
  bounded $ref --compile > "$out/ref_compile.json" 2> "$out/ref_compile.log"
  $py "$root/bench/gpu/checks.py" speed "$work/speed/metrics.jsonl" "$out/ref_eager.json" \
    "$out/ref_compile.json" --batch $speed_batch --seq $speed_seq > "$out/train_speed.json"
  record train_speed_gpt2_124m $([[ $? == 0 ]] && echo 1 || echo 0) "$(last_json "$out/train_speed.json")"
}

check_serving() {
  local ckpt=$work/gpt2-124m-init
  rm -rf "$ckpt"
  bounded "$bin" init-model --model-config "$work/gpt2-124m.yaml" --seed 1 \
    --tokenizer "$kit/gpt2-tokenizer" --out "$ckpt" > "$out/init_model.log" 2>&1
  rm -f "$work/serve.port"
  "$bin" serve --device $dev --checkpoint "$ckpt" --port 0 --port-file "$work/serve.port" \
    --max-batch 16 --max-new-tokens 512 > "$out/serve.log" 2>&1 &
  local serve_pid=$! i
  for i in $(seq 1 120); do [[ -s $work/serve.port ]] && break; sleep 0.5; done
  bounded "$build/bench/serve_load" --server "127.0.0.1:$(cat "$work/serve.port" 2>/dev/null)" \
    --concurrency 1 16 --seconds 8 --rounds 1 --max-new-tokens 128 --json "$out/serve_load.json" \
    > "$out/serve_load.log" 2>&1
  kill -TERM $serve_pid 2>/dev/null
  wait $serve_pid 2>/dev/null
  bounded $py "$root/bench/gpu/hf_generate_ref.py" --checkpoint "$ckpt" --new-tokens 128 \
    > "$out/hf_generate.json" 2> "$out/hf_generate.log"
  $py "$root/bench/gpu/checks.py" serving "$out/serve_load.json" "$out/hf_generate.json" \
    > "$out/serving.json"
  record serving_gpt2_124m $([[ $? == 0 ]] && echo 1 || echo 0) "$(last_json "$out/serving.json")"
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
