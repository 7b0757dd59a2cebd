// Per-CPU threads (cpuhp/percpu_threads.h): what they cost hotplug and wakers.
//
//   BM_HotplugCycle_no_threads     down + up of CPU 63 in a 64-CPU domain, all
//                                  CPUs online, no state installed by us.
//   BM_HotplugCycle_with_threads   the same with a PerCpuThreads registered
//                                  (64 idle workers): the cycle now parks CPU
//                                  63's worker (a request, a futex wake, a
//                                  reply) and unparks it. The difference is the
//                                  park/unpark latency added to a cycle.
//   BM_Wake_no_sleeper             wake() of a worker that is not asleep (here:
//                                  parked): what a producer pays on its hot path.
//   BM_WakeToRun_roundtrip         wake() of a sleeping worker until its run()
//                                  has happened, seen by the waker: the futex
//                                  wake-up latency.
//
// All use real time: the hotplug cycle waits for grace periods and other threads.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "cpuhp/domain.h"
#include "cpuhp/percpu_threads.h"

namespace {

constexpr unsigned kBenchCpus = 64;
constexpr unsigned kCycledCpu = 63;

std::unique_ptr<cpuhp::PerCpuThreads> make_idle_threads(cpuhp::Domain& d,
                                                        const char* name) {
  cpuhp::PerCpuThreads::Hooks hooks;
  hooks.should_run = [](unsigned) { return false; };
  hooks.run = [](unsigned) {};
  auto t = cpuhp::PerCpuThreads::create(d, name, std::move(hooks));
  if (!t.ok()) {
    std::fprintf(stderr, "percpu_threads_bench: %s\n", t.error().message().c_str());
    std::abort();
  }
  return std::move(*t);
}

void cycle(benchmark::State& state, cpuhp::Domain& d) {
  for (auto _ : state) {
    if (!d.down(kCycledCpu).ok() || !d.up(kCycledCpu).ok()) {
      state.SkipWithError("hotplug cycle failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_HotplugCycle_no_threads(benchmark::State& state) {
  cpuhp::Domain d(kBenchCpus, kBenchCpus);
  cycle(state, d);
}
BENCHMARK(BM_HotplugCycle_no_threads)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_HotplugCycle_with_threads(benchmark::State& state) {
  cpuhp::Domain d(kBenchCpus, kBenchCpus);
  auto threads = make_idle_threads(d, "bench");
  cycle(state, d);
}
BENCHMARK(BM_HotplugCycle_with_threads)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Wake_no_sleeper(benchmark::State& state) {
  cpuhp::Domain d(2, 2);
  auto threads = make_idle_threads(d, "bench-wake");
  // CPU 1's worker parked: it waits for an unpark, not for wake().
  if (!d.down(1).ok()) {
    state.SkipWithError("down failed");
    return;
  }
  for (auto _ : state) threads->wake(1);
}
BENCHMARK(BM_Wake_no_sleeper)->UseRealTime();

void BM_WakeToRun_roundtrip(benchmark::State& state) {
  cpuhp::Domain d(2, 2);
  std::atomic<long> requested{0}, done{0};
  cpuhp::PerCpuThreads::Hooks hooks;
  hooks.should_run = [&](unsigned cpu) {
    return cpu == 1 && done.load() < requested.load();
  };
  hooks.run = [&](unsigned) { done.fetch_add(1); };
  auto t = cpuhp::PerCpuThreads::create(d, "bench-rt", std::move(hooks));
  if (!t.ok()) {
    state.SkipWithError(t.error().message().c_str());
    return;
  }
  for (auto _ : state) {
    const long want = requested.fetch_add(1) + 1;
    (*t)->wake(1);
    while (done.load() < want) {
    }
  }
}
BENCHMARK(BM_WakeToRun_roundtrip)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
