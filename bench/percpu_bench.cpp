// PerCpuCounter::add() against one std::atomic counter shared by all threads,
// at 1 and 2 threads. The per-CPU counter's add() is an RCU read guard, the
// CPU id from rseq, and a relaxed fetch_add on a cache line of that CPU's own;
// the shared atomic's fetch_add bounces one line between the cores.
//
// The Domain mirrors the host's CPU ids (capacity = configured CPUs, all
// online, host-bound), so each thread counts on its own CPU's cell.
#include <benchmark/benchmark.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "cpuhp/domain.h"
#include "cpuhp/percpu_counter.h"

namespace {

cpuhp::Domain& bench_domain() {
  static cpuhp::Domain* domain = [] {
    const unsigned cpus = static_cast<unsigned>(std::max(1, get_nprocs_conf()));
    auto* d =
        new cpuhp::Domain(cpus, cpus);  // never freed: threads may outlive main's statics
    d->set_host_bound(true);
    return d;
  }();
  return *domain;
}

cpuhp::PerCpuCounter& bench_counter() {
  static auto* counter = new cpuhp::PerCpuCounter(bench_domain(), "bench");
  return *counter;
}

void BM_PerCpuCounter_add(benchmark::State& state) {
  cpuhp::PerCpuCounter& counter = bench_counter();
  for (auto _ : state) counter.add(1);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PerCpuCounter_add)->Threads(1)->Threads(2)->UseRealTime();

alignas(64) std::atomic<std::int64_t> g_shared_counter{0};

void BM_AtomicCounter_add(benchmark::State& state) {
  for (auto _ : state) g_shared_counter.fetch_add(1, std::memory_order_relaxed);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AtomicCounter_add)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
