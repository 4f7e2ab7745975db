#!/usr/bin/env bash
# The GPU check: builds copyforge against this machine's libtorch 2.x (CUDA) and runs the GPU
# checks, printing one line per check with its figures, within a whole-script budget (8 minutes by
# default, the build included). Needs an NVIDIA GPU, CUDA with nvcc, CMake, Ninja and a Python with
# PyTorch 2.x (CUDA), transformers, safetensors, tensorboard and tiktoken; no network and no apt:
# the other C++ dependencies come from the kit that scripts/gpu_kit.sh made (Debian 12 packages,
# unpacked into a prefix here, and the GPT-2 tokenizer files).
#   usage: scripts/gpu_check.sh OUT_DIR [--kit DIR] [--budget SECONDS] [--stand-in | --rehearse]
# OUT_DIR receives gpu_check.log and summary.json; the exit status is non-zero when a check
# failed. --stand-in builds against Debian's libtorch 1.13 (CPU) instead, on a machine without a
# GPU, and stops where the GPU is needed; --rehearse then also runs every check with the CPU in
# the GPU's place (device cpu, gloo, a small speed run), to try the script itself: checks that
# need CUDA or Python packages absent there fail, and it exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out="" kit=.gpu-kit budget=480 stand_in=0 rehearse=0
while (($#)); do
  case $1 in
    --kit) kit=$2; shift ;;
    --budget) budget=$2; shift ;;
    --stand-in) stand_in=1 ;;
    --rehearse) stand_in=1 rehearse=1 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) out=$1 ;;
  esac
  shift
done
[[ -n $out ]] || { echo "gpu_check: OUT_DIR is required (--help)" >&2; exit 2; }
mkdir -p "$out" && out=$(cd "$out" && pwd)
kit=$(cd "$kit" 2>/dev/null && pwd) || { echo "gpu_check: no kit at $kit (scripts/gpu_kit.sh)" >&2; exit 2; }
work=${GPU_CHECK_WORK:-/tmp/copyforge-gpu-check}
mkdir -p "$work"
exec > >(tee "$out/gpu_check.log") 2>&1
tee_pid=$!
start=$SECONDS
left() { echo $((budget - (SECONDS - start))); }
# Never leaves a process behind: every child of this script (but the log's tee) is stopped on
# exit, with what it started.
children() { pgrep -P $$ | grep -vx "$tee_pid"; }
cleanup() {
  local p
  for p in $(children); do pkill -TERM -P "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in $(children); do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
}
trap cleanup EXIT
results=()
failed=0
# record NAME OK JSON: one summary line and one entry of summary.json.
record() {
  local status=PASS
  [[ $2 == 1 ]] || { status=FAIL; failed=1; }
  printf 'CHECK %-28s %s %s\n' "$1" "$status" "$3"
  results+=("{\"check\": \"$1\", \"ok\": $([[ $2 == 1 ]] && echo true || echo false), \"figures\": $3}")
}
write_summary() {
  local IFS=,
  printf '{"elapsed_s": %d, "budget_s": %d, "failed": %s, "checks": [%s]}\n' \
    $((SECONDS - start)) "$budget" "$([[ $failed == 1 ]] && echo true || echo false)" \
    "${results[*]}" > "$out/summary.json"
}
# bounded CMD...: runs CMD with what is left of the budget (at least 10 s).
bounded() { local t; t=$(left); ((t < 10)) && t=10; timeout --kill-after=5 "$t" "$@"; }
py=${PYTHON:-python3}

echo "== gpu_check: $(date -u +%FT%TZ), budget ${budget}s, kit $kit, work $work"
# 1. The C++ dependencies: the kit's Debian packages, unpacked into a prefix.
prefix=$work/prefix
# Unpacked again whenever the kit's package list changed.
if [[ "$(cat "$prefix/.unpacked" 2>/dev/null)" != "$(ls "$kit"/debs)" ]]; then
  rm -rf "$prefix" && mkdir -p "$prefix"
  for deb in "$kit"/debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$prefix"
    else  # a .deb is an ar archive holding data.tar.*
      rm -rf "$work/deb" && mkdir -p "$work/deb"
      (cd "$work/deb" && ar x "$deb" && tar -xf data.tar.* -C "$prefix")
    fi
  done
  ls "$kit"/debs > "$prefix/.unpacked"
fi
libdir=$prefix/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$prefix/usr/bin:$PATH
# The kit's .pc files name /usr; pkg-config must not send CMake there (nor may CMake point
# pkg-config at them through CMAKE_PREFIX_PATH, below).
export PKG_CONFIG_LIBDIR=$prefix/no-pkgconfig PKG_CONFIG_PATH=
echo "== kit: $(ls "$kit"/debs | wc -l) packages unpacked into $prefix ($(($(left))) s left)"

# 2. Configure and build against the machine's libtorch.
# The tests find the GPT-2 tokenizer files under COPYFORGE_CACHE_DIR/gpt2-tokenizer: the kit's.
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCOPYFORGE_CACHE_DIR="$kit"
  -DCMAKE_INCLUDE_PATH="$prefix/usr/include" -DPKG_CONFIG_USE_CMAKE_PREFIX_PATH=OFF
  -DCMAKE_LIBRARY_PATH="$libdir" -DCOPYFORGE_WERROR=OFF)
if ((stand_in)); then
  cmake_args+=(-DCMAKE_PREFIX_PATH="$prefix/usr")
else
  torch_prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
  nccl_root=$($py -c 'import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  cmake_args+=(-DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr" -DCOPYFORGE_WITH_GLOO=OFF
    -DCUDAToolkit_ROOT=/usr/local/cuda -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc
    ${nccl_root:+-DNCCL_ROOT=$nccl_root})
fi
build=$work/build
bstart=$SECONDS
if ! bounded cmake -S "$root" -B "$build" "${cmake_args[@]}" > "$out/configure.log" 2>&1; then
  tail -30 "$out/configure.log"
  record build 0 '{"stage": "configure"}'
  write_summary; exit 1
fi
grep -E 'libtorch|NCCL communicator' "$out/configure.log"
# Where each dependency was found (from the kit's prefix, not the system).
grep -E '^(absl|gRPC|yaml-cpp|nlohmann_json|simdjson|GTest|CLI11)_DIR:' "$build/CMakeCache.txt" | sed 's/^/   /'
if ! bounded cmake --build "$build" -j "$(nproc)" --target copyforge model_tests serve_load \
  > "$out/build.log" 2>&1; then
  grep -E 'error|Error' "$out/build.log" | head -30
  record build 0 "{\"stage\": \"compile\", \"seconds\": $((SECONDS - bstart))}"
  write_summary; exit 1
fi
warnings=$(grep -c 'warning:' "$out/build.log")
deprecated=$(grep -c 'Wdeprecated' "$out/build.log")
record build $([[ $deprecated == 0 ]] && echo 1 || echo 0) \
  "{\"seconds\": $((SECONDS - bstart)), \"warnings\": $warnings, \"deprecation_warnings\": $deprecated}"
bin=$build/cli/copyforge

# 3. Nothing below runs without a GPU (but for a rehearsal, with the CPU in its place).
dev=cuda backend=nccl speed_batch=8 speed_seq=1024 speed_steps=30
if ((rehearse)); then
  dev=cpu backend=gloo speed_batch=1 speed_seq=128 speed_steps=12 gpus=1
  echo "== rehearsal: the checks run with device cpu; those needing CUDA or absent Python packages fail"
  source "$root/scripts/gpu_check_steps.sh"
  run_checks
  write_summary
  echo "== gpu_check rehearsal: $((SECONDS - start)) s; summary $out/summary.json"
  exit 0
fi
if ((stand_in)) || ! $py -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "== no CUDA GPU here: stopping before the GPU checks ($((SECONDS - start)) s)"
  results+=('{"check": "gpu", "ok": false, "figures": {"stopped": "no CUDA GPU visible"}}')
  write_summary
  ((stand_in)) && exit 0 || exit 1
fi
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || echo 1)
((gpus > 0)) || gpus=1
echo "== $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1), $gpus GPU(s)"
source "$root/scripts/gpu_check_steps.sh"
run_checks
write_summary
echo "== gpu_check: $((SECONDS - start)) s, $([[ $failed == 1 ]] && echo 'FAILED' || echo 'all passed'); summary $out/summary.json"
exit $failed
