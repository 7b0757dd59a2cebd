#!/usr/bin/env python3
"""Ratio tables from one cpuhp_bench run (Google Benchmark JSON).

Optional helper, standard library only; nothing in the build or the tests needs
it. Usage:

    cpuhp_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \\
                --benchmark_out=bench.json --benchmark_out_format=json
    python3 bench/ratios.py bench.json          # Markdown tables on stdout
    python3 bench/ratios.py --check bench.json  # exit status 1 if a target is missed

With repetitions it uses the median aggregate (--stat mean to change); without,
the plain runs (averaged if a name repeats). All ratios come from the one file,
so they compare figures measured under the same conditions.
"""

import argparse
import json
import statistics
import sys

READ_IMPLS = ["cpuhp", "cpuhp_fenced", "urcu", "shared_mutex", "pthread_rwlock",
              "ck_brlock", "legacy2013"]
WRITE_BENCHES = ["BM_WriteLock_cpuhp", "BM_WriteLock_legacy2013", "BM_WriteLock_shared_mutex",
                 "BM_WriteLock_cpuhp_contended", "BM_WriteLock_legacy2013_contended",
                 "BM_WriteLock_shared_mutex_contended"]
TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# (description, numerator impl, denominator impl, threads, op, bound)
READ_TARGETS = [
    ("cpuhp / urcu, 1 thread", "cpuhp", "urcu", 1, "<=", 1.5),
    ("cpuhp / urcu, 2 threads", "cpuhp", "urcu", 2, "<=", 1.5),
    ("shared_mutex / cpuhp, 1 thread", "shared_mutex", "cpuhp", 1, ">=", 8.0),
    ("shared_mutex / cpuhp, 2 threads", "shared_mutex", "cpuhp", 2, ">=", 30.0),
]


def load(path, stat):
    with (sys.stdin if path == "-" else open(path)) as f:
        doc = json.load(f)
    runs = doc.get("benchmarks", [])
    aggregates = [r for r in runs if r.get("run_type") == "aggregate"]
    if aggregates:
        chosen = [r for r in aggregates if r.get("aggregate_name") == stat]
        used = f"{stat} of {aggregates[0].get('repetitions', '?')} repetitions"
    else:
        chosen = [r for r in runs if r.get("run_type", "iteration") == "iteration"]
        used = "single runs"
    grouped = {}
    for r in chosen:
        if r.get("error_occurred"):
            continue
        grouped.setdefault(r.get("run_name", r["name"]), []).append(r)
    # Spread between repetitions (coefficient of variation of the real time).
    cvs = {r.get("run_name"): r["real_time"] for r in aggregates if r.get("aggregate_name") == "cv"}
    results = {}
    for run_name, rs in grouped.items():
        scale = TO_NS[rs[0].get("time_unit", "ns")]
        entry = {
            "real_ns": statistics.mean(r["real_time"] for r in rs) * scale,
            "cpu_ns": statistics.mean(r["cpu_time"] for r in rs) * scale,
            "threads": rs[0].get("threads", 1),
            "cv": cvs.get(run_name),
        }
        # User counters are the numeric keys Google Benchmark does not define.
        for key in rs[0]:
            if key not in entry and key != "cv" and isinstance(rs[0][key], (int, float)) and key not in (
                    "family_index", "per_family_instance_index", "repetitions",
                    "repetition_index", "iterations", "real_time", "cpu_time"):
                entry[key] = statistics.mean(r.get(key, 0) for r in rs)
        parts = run_name.split("/")
        entry["base"] = parts[0]
        entry["params"] = dict(p.split(":", 1) for p in parts[1:] if ":" in p)
        results[run_name] = entry
    return doc.get("context", {}), results, used


def find(results, base, **params):
    for e in results.values():
        if e["base"] == base and all(e["params"].get(k) == str(v) for k, v in params.items()):
            return e
    return None


def fmt(x, digits=2):
    if x is None:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.{digits}f} M"
    if x >= 1e4:
        return f"{x / 1e3:.{digits}f} k"
    return f"{x:.{digits}f}"


def fx(x):
    return "—" if x is None else f"{fmt(x)}x"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="Google Benchmark JSON output ('-' for stdin)")
    ap.add_argument("--stat", default="median", choices=["median", "mean"],
                    help="which aggregate to use when the run has repetitions")
    ap.add_argument("--check", action="store_true",
                    help="exit with status 1 if a read-side target is missed")
    args = ap.parse_args()
    context, results, used = load(args.json, args.stat)
    out = []

    def read(impl, threads, key="real_ns"):
        e = find(results, f"BM_ReadLock_{impl}", threads=threads)
        return e[key] if e else None

    out.append("### Read lock + unlock pair\n")
    out.append("Real time is wall time / pairs of all threads (Google Benchmark's "
               "convention); per-thread latency is real time x threads. CPU time is "
               "per pair per thread. CPU share = CPU time / (threads x real time): "
               "near 100 % when every thread had a CPU to itself for the whole run "
               "(these read sides never sleep, except legacy2013's mutex), lower when "
               "other processes took CPU time, which makes the real time unreliable.\n")
    out.append("| impl | 1 thread real ns | 1 thread CPU ns | 2 threads real ns | "
               "2 threads CPU ns | pairs/s at 2 threads | vs cpuhp, 1 t (real) | "
               "vs cpuhp, 2 t (real) | CPU share 1 t / 2 t |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

    def share(impl, threads):
        real, cpu = read(impl, threads), read(impl, threads, "cpu_ns")
        return "—" if not real or cpu is None else f"{100 * cpu / (threads * real):.0f} %"

    for impl in READ_IMPLS:
        e2 = find(results, f"BM_ReadLock_{impl}", threads=2)
        out.append(
            f"| {impl} | {fmt(read(impl, 1))} | {fmt(read(impl, 1, 'cpu_ns'))} | "
            f"{fmt(read(impl, 2))} | {fmt(read(impl, 2, 'cpu_ns'))} | "
            f"{fmt(e2.get('pairs_per_s') if e2 else None)} | "
            f"{fx(ratio(read(impl, 1), read('cpuhp', 1)))} | "
            f"{fx(ratio(read(impl, 2), read('cpuhp', 2)))} | "
            f"{share(impl, 1)} / {share(impl, 2)} |")

    out.append("\n### Read-side targets\n")
    out.append("| ratio | target | real time | CPU time | verdict (real time) |")
    out.append("|---|---|---:|---:|---|")
    missed = False
    for desc, num, den, threads, op, bound in READ_TARGETS:
        r_real = ratio(read(num, threads), read(den, threads))
        r_cpu = ratio(read(num, threads, "cpu_ns"), read(den, threads, "cpu_ns"))
        if r_real is None:
            verdict = "not measured"
            missed = True
        elif (r_real <= bound) if op == "<=" else (r_real >= bound):
            verdict = "met"
        else:
            missed = True
            short = r_real / bound if op == "<=" else bound / r_real
            verdict = f"MISSED by {short:.2f}x"
        out.append(f"| {desc} | {op} {bound:g} | {fx(r_real)} | {fx(r_cpu)} | {verdict} |")

    out.append("\n### Write lock + unlock (one writer thread)\n")
    out.append("| benchmark | ns per write | spread (cv) | writes/s | read pairs (hammering readers) | "
               "read pairs/s | fewest pairs, one reader | reads per write |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    writers = {}
    for base in WRITE_BENCHES:
        e = find(results, base)
        writers[base] = e
        if e is None:
            out.append(f"| {base} | — | — | — | — | — | — | — |")
            continue
        cv = "—" if e.get("cv") is None else f"{100 * e['cv']:.0f} %"
        out.append(f"| {base} | {fmt(e['real_ns'])} | {cv} | {fmt(e.get('writes_per_s'))} | "
                   f"{fmt(e.get('read_pairs'))} | {fmt(e.get('read_pairs_per_s'))} | "
                   f"{fmt(e.get('read_pairs_min_thread'))} | {fmt(e.get('reads_per_write'))} |")

    def w(base, key):
        e = writers.get(base)
        return e.get(key) if e else None

    out.append("\n| ratio | writes/s, idle readers | writes/s, contended | "
               "read pairs/s, contended |")
    out.append("|---|---:|---:|---:|")
    for peer in ("legacy2013", "shared_mutex"):
        mine, theirs = "BM_WriteLock_cpuhp", f"BM_WriteLock_{peer}"
        cells = [
            ratio(w(mine, "writes_per_s"), w(theirs, "writes_per_s")),
            ratio(w(mine + "_contended", "writes_per_s"), w(theirs + "_contended", "writes_per_s")),
            ratio(w(mine + "_contended", "read_pairs_per_s"),
                  w(theirs + "_contended", "read_pairs_per_s")),
        ]
        out.append(f"| cpuhp / {peer} | " + " | ".join(fx(x) for x in cells) + " |")

    spaced = sorted((e for e in results.values() if e["base"] == "BM_WriteLock_cpuhp_spaced"),
                    key=lambda e: int(e["params"].get("gap_ms", 0)))
    if spaced:
        out.append("\n### cpuhp write lock after a pause (cold gate)\n")
        out.append("| gap | lock + unlock ns | lock ns | unlock ns |")
        out.append("|---|---:|---:|---:|")
        for e in spaced:
            out.append(f"| {e['params'].get('gap_ms')} ms | {e['real_ns']:.0f} | "
                       f"{e.get('lock_ns', 0):.0f} | {e.get('unlock_ns', 0):.0f} |")
    mb = sorted((e for e in results.values() if e["base"] == "BM_Membarrier_expedited"),
                key=lambda e: int(e["params"].get("spinning", 0)))
    if mb:
        out.append("\n### membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), back to back\n")
        out.append("| other threads spinning | ns |")
        out.append("|---|---:|")
        for e in mb:
            out.append(f"| {e['params'].get('spinning')} | {e['real_ns']:.0f} |")

    if context:
        out.append(f"\n(host {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs, "
                   f"{context.get('date', '?')}; figures: {used})")
    print("\n".join(out))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
