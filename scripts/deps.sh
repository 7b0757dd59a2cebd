#!/usr/bin/env bash
# Installs the Debian 12 packages cpuhp needs to build, test and run, and only
# those that are missing. Needs root (apt-get) only when something is missing.
set -euo pipefail

packages=(
  g++ cmake make pkg-config        # toolchain
  liburcu-dev                      # RCU layer (memb flavour)
  libgtest-dev libbenchmark-dev    # tests, benchmarks
  libck-dev                        # ck_brlock, a benchmark peer
  libcli11-dev                     # the cpuhp tool's argument parser
  spin                             # model/check: the Promela models
  clang libclang-rt-14-dev         # fuzz/run: libFuzzer targets
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "cpuhp: installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
