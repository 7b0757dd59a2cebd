#!/usr/bin/env bash
# bench/plot.sh: run cpuhp_bench (read lock+unlock pairs and hotplug cycles),
# keep its JSON, and draw bench/results/bench.svg and bench/results/bench.png
# with gnuplot (bench/plot.gp). No python: the JSON is read with awk.
#
#   bash bench/plot.sh [BUILD_DIR]            # default BUILD_DIR: build
#   bash bench/plot.sh --json FILE            # plot an existing JSON, no run
#
# Needs gnuplot (Debian: `apt-get install gnuplot-nox`); without it the script
# exits 77. The binary is BUILD_DIR/bench/cpuhp_bench (a Release build, see
# BENCHMARKS.md "Reproduce"). Outputs, all in bench/results/:
#   bench.json   Google Benchmark JSON (only written when the benchmark runs)
#   read.dat     impl, ns per read pair at 1 thread and at 2 threads (medians)
#   hotplug.dat  states, µs per hotplug cycle (medians)
#   bench.svg, bench.png
# The figures are as noisy as the machine: on a loaded machine the 2-thread
# runs need their own autogroup at nice -20, as in BENCHMARKS.md, e.g.
#   sudo setsid sh -c 'echo -20 > /proc/self/autogroup; exec bash bench/plot.sh'
# PLOT_MACHINE overrides the machine description in the title.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="$here/results"
json=""
build="build"

while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=${2:?"--json needs a FILE"}; shift 2 ;;
    --json=*) json=${1#--json=}; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "plot.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
  esac
done

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot.sh: gnuplot not found; install it (Debian: apt-get install gnuplot-nox)" >&2
  exit 77
fi

mkdir -p "$out"
ran=0
if [ -z "$json" ]; then
  ran=1
  bin="$build/bench/cpuhp_bench"
  if [ ! -x "$bin" ]; then
    echo "plot.sh: $bin not found; build it first:" >&2
    echo "  cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build --target cpuhp_bench" >&2
    exit 1
  fi
  json="$out/bench.json"
  # 'BM_HotplugCycle/' leaves out BM_HotplugCycle_no_threads/_with_threads.
  "$bin" --benchmark_filter='BM_ReadLock_|BM_HotplugCycle/' \
    --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_out="$json" --benchmark_out_format=json
fi
[ -r "$json" ] || { echo "plot.sh: cannot read $json" >&2; exit 1; }

# One "name", "real_time" and "time_unit" per benchmark entry, in that order;
# keep the _median aggregates and convert to ns.
medians=$(awk '
  function val(s) { sub(/^[^:]*:[ \t]*/, "", s); gsub(/[",]/, "", s); return s }
  /"name":/      { name = val($0); rt = "" }
  /"real_time":/ { rt = val($0) }
  /"time_unit":/ {
    u = val($0); f = (u == "us") ? 1e3 : (u == "ms") ? 1e6 : (u == "s") ? 1e9 : 1
    if (name ~ /_median$/ && rt != "") printf "%s %.6g\n", name, rt * f
  }' "$json")
[ -n "$medians" ] || { echo "plot.sh: no _median entries in $json (need --benchmark_repetitions>1)" >&2; exit 1; }

echo "$medians" | awk '
  $1 ~ /^BM_ReadLock_/ {
    split($1, p, "/"); impl = substr(p[1], 13)
    t = ($1 ~ /threads:2_median$/) ? 2 : 1
    v[impl, t] = $2; seen[impl] = 1
  }
  END {
    print "# impl ns_per_pair_1_thread ns_per_pair_2_threads (real time, medians)"
    n = split("cpuhp cpuhp_fenced urcu shared_mutex pthread_rwlock ck_brlock legacy2013", order, " ")
    for (i = 1; i <= n; i++) {
      k = order[i]
      if (k in seen) printf "%s %s %s\n", k, ((k, 1) in v) ? v[k, 1] : "NaN", ((k, 2) in v) ? v[k, 2] : "NaN"
    }
  }' > "$out/read.dat"

echo "$medians" | awk '
  BEGIN { print "# states us_per_cycle (real time, medians)" }
  $1 ~ /^BM_HotplugCycle\/[0-9]+\// { split($1, p, "/"); printf "%s %.6g\n", p[2], $2 / 1e3 }
  ' > "$out/hotplug.dat"

for f in read.dat hotplug.dat; do
  if [ "$(grep -vc '^#' "$out/$f")" -eq 0 ]; then
    echo "plot.sh: no data for $f in $json" >&2; exit 1
  fi
done

# Title facts from the JSON context: date, CPU count, repetitions.
date=$(grep -m1 '"date":' "$json" | sed 's/.*"date":[ ]*"\([0-9-]*\).*/\1/')
ncpu=$(grep -m1 '"num_cpus":' "$json" | tr -dc '0-9')
reps=$(grep -m1 '"repetitions":' "$json" | tr -dc '0-9')
machine=${PLOT_MACHINE:-"${ncpu:-?}-core machine"}
if [ -z "${PLOT_MACHINE:-}" ] && [ "$ran" = 1 ] && grep -qw hypervisor /proc/cpuinfo 2>/dev/null; then
  machine="${ncpu:-?}-core VM"
fi
title="cpuhp_bench: one run on a $machine ($date), medians of ${reps:-?} repetitions"

gnuplot -e "outdir='$out'; plottitle='$title'" "$here/plot.gp"
echo "plot.sh: wrote $out/bench.svg and $out/bench.png (data: $json)"
