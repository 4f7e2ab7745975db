#!/usr/bin/env bash
# Collects what scripts/gpu_check.sh needs on a GPU machine that has CUDA, NCCL, CMake, Ninja and
# a Python with PyTorch 2.x but no network and no apt: the Debian 12 packages of copyforge's other
# C++ dependencies (downloaded, not installed, with the libraries they need at run time) and the
# GPT-2 tokenizer files. Run it on a Debian 12 machine with apt; the kit goes into DIR (default
# .gpu-kit, ignored by git) and travels with the working tree.
#   usage: scripts/gpu_kit.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == --help || ${1:-} == -h ]]; then sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
kit=${1:-.gpu-kit}
PACKAGES=(
  libabsl-dev libprotobuf-dev libprotoc-dev protobuf-compiler libgrpc++-dev libgrpc-dev
  protobuf-compiler-grpc libyaml-cpp-dev libsimdjson-dev nlohmann-json3-dev libcli11-dev
  libpcre2-dev libxxhash-dev libcsv-dev libsqlite3-dev libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev zlib1g-dev libssl-dev libc-ares-dev libre2-dev libcpp-httplib-dev libbrotli-dev
)
# The base system every Linux with a C++ toolchain has (never unpacked over it), Debian's own
# tooling, and what only gloo's transport (not built there) links.
BASE='^(libc6|libc6-dev|libc-dev-bin|libgcc-s1|libstdc\+\+6|libstdc\+\+-12-dev|gcc-12-base|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc.*|rpcsvc-proto|libgcc-12-dev|libgomp1|libitm1|libatomic1|libasan8|liblsan0|libtsan2|libubsan1|libquadmath0|libhwasan0|libcc1-0|debconf|dpkg|perl.*|libperl.*|tar|zlib1g|libselinux1|libpcre2-8-0|libzstd1|liblzma5|libbz2-1.0|libgssapi-krb5-2|libkrb5.*|libk5crypto3|libcom-err2|libkeyutils1|libssl3|libmd0|libaudit.*|libcap-ng0|libbsd0|libdb5.3|libgdbm.*|libsystemd0|libudev1|libgcrypt20|libgpg-error0|liblz4-1|libcap2|libmpfr6|libgmp10|libisl23|libmpc3|binutils.*|libbinutils|libctf.*|libgprofng0|libjansson4|libsframe.*|cpp.*|gcc.*|g\+\+.*|libdebuginfod.*|libelf1|libdw1|libcurl.*|libssh2-1|libnghttp2-14|librtmp1|libpsl5|libidn2-0|libunistring2|libldap-2.5-0|libsasl2.*|libbrotli1|libgnutls30|libhogweed6|libnettle8|libp11-kit0|libtasn1-6|libffi8|libuuid1|libblkid1|libmount1|libsmartcols1|libtinfo6|libncursesw6|libexpat1|libreadline8|readline-common|mime-support|media-types|tzdata|python3.*|libpython3.*|adduser|cdebconf|passwd|libpam.*|libnewt.*|libslang2|libtextwrap1|libdebian-installer4|libsemanage.*|libsepol2|libacl1|install-info|ibverbs-providers|libibverbs.*|libnl-.*|libhiredis.*|pkgconf.*|libpkgconf3)$'
mapfile -t all < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${PACKAGES[@]}" | grep -E '^[a-z0-9]' | sort -u)
wanted=()
for p in "${all[@]}"; do
  [[ $p =~ $BASE ]] && continue
  # Virtual packages have no candidate to download.
  [[ -n $(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}' | grep -v none) ]] || continue
  wanted+=("$p")
done
mkdir -p "$kit/debs"
echo "gpu_kit: downloading ${#wanted[@]} Debian packages into $kit/debs"
(cd "$kit/debs" && apt-get download -qq "${wanted[@]}")
# The GPT-2 tokenizer files (vocab.json, merges.txt), from set-up's cache.
cache="${COPYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copyforge}"
if [[ ! -s $cache/gpt2-tokenizer/vocab.json ]]; then bash scripts/setup.sh >/dev/null; fi
mkdir -p "$kit/gpt2-tokenizer"
cp "$cache/gpt2-tokenizer/vocab.json" "$cache/gpt2-tokenizer/merges.txt" "$kit/gpt2-tokenizer/"
du -sh "$kit" | awk -v n="${#wanted[@]}" '{print "gpu_kit: " $2 " holds " n " packages, " $1 " in all"}'
