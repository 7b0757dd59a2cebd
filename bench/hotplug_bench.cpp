// Hotplug core figures (BENCHMARKS.md):
//
//   BM_HotplugCycle/<states>   one CPU down and up again, with <states>
//                              registered ONLINE states (trivial callbacks)
//                              and two threads hammering the hotplug read lock.
//                              Besides the mean (the time column), per-cycle
//                              percentiles: p50_us, p90_us, p99_us.
//   BM_HotplugCycle_one_reader/<states>  the same with one hammering thread, so
//                              the cycle never waits for a CPU on 2 CPUs.
//   BM_HotplugCycle_prepare/<states>  as BM_HotplugCycle plus one PREPARE state
//                              with a teardown, so down() waits a grace period.
//   BM_SetupState/<cpus>       install a state whose startup runs on <cpus>
//                              online CPUs, then remove it (teardowns too).
//   BM_OnlineWalk_rcu/<cpus>   walk the online mask under an RCU read guard...
//   BM_OnlineWalk_plain/<cpus> ...and a plain, non-atomic bitmap of the same size.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "bench_readers.h"
#include "cpuhp/domain.h"
#include "cpuhp/rcu.h"

namespace {

int trivial(unsigned) { return 0; }

// Down+up cycles of CPU 63 with range(0) ONLINE states and `readers` threads
// hammering the read side. Each cycle is timed too: with more runnable
// threads than CPUs, a cycle that must wait for a reader to be scheduled takes
// a time slice (milliseconds), so the mean and the median tell different
// stories and both are reported.
void run_hotplug_cycles(benchmark::State& state, int readers,
                        bool prepare_teardown = false) {
  cpuhp::Domain d(64, 64);
  // With a PREPARE teardown (per-CPU data to free), down() waits a grace period.
  if (prepare_teardown &&
      !d.setup_state(cpuhp::Section::kPrepare, "bench:data", nullptr, trivial).ok())
    state.SkipWithError("setup_state(kPrepare) failed");
  // The 40 dynamic ONLINE slots first, then static ones.
  const int dyn = cpuhp::kStateOnlineDynEnd - cpuhp::kStateOnlineDyn + 1;
  for (int i = 0; i < state.range(0); ++i) {
    const std::string name = "bench:" + std::to_string(i);
    auto id = i < dyn ? d.setup_state(cpuhp::Section::kOnline, name, trivial, trivial)
                      : d.setup_state_at(cpuhp::kStateOnlineFirst + (i - dyn), name,
                                         trivial, trivial);
    if (!id.ok()) state.SkipWithError(id.error().message().c_str());
  }
  cpuhp_bench::HammeringReaders hammering(d.hotplug_lock(), readers);
  std::vector<double> cycle_us;
  cycle_us.reserve(1 << 16);
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    if (!d.down(63).ok() || !d.up(63).ok()) state.SkipWithError("hotplug cycle failed");
    cycle_us.push_back(std::chrono::duration<double, std::micro>(
                           std::chrono::steady_clock::now() - start)
                           .count());
  }
  state.counters["cycles_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  if (cycle_us.empty()) return;
  std::sort(cycle_us.begin(), cycle_us.end());
  auto percentile = [&cycle_us](double p) {
    return cycle_us[static_cast<std::size_t>(p *
                                             static_cast<double>(cycle_us.size() - 1))];
  };
  state.counters["p50_us"] = percentile(0.50);
  state.counters["p90_us"] = percentile(0.90);
  state.counters["p99_us"] = percentile(0.99);
}

void BM_HotplugCycle(benchmark::State& state) { run_hotplug_cycles(state, 2); }
void BM_HotplugCycle_one_reader(benchmark::State& state) { run_hotplug_cycles(state, 1); }
void BM_HotplugCycle_prepare(benchmark::State& state) {
  run_hotplug_cycles(state, 2, true);
}
BENCHMARK(BM_HotplugCycle)->Arg(1)->Arg(16)->Arg(64)->UseRealTime()->MinTime(0.5);
BENCHMARK(BM_HotplugCycle_one_reader)->Arg(16)->UseRealTime()->MinTime(0.5);
BENCHMARK(BM_HotplugCycle_prepare)->Arg(16)->UseRealTime()->MinTime(0.5);

void BM_SetupState(benchmark::State& state) {
  const auto cpus = static_cast<unsigned>(state.range(0));
  cpuhp::Domain d(cpus, cpus);
  std::vector<std::uint64_t> per_cpu(cpus);
  for (auto _ : state) {
    auto id = d.setup_state(
        cpuhp::Section::kOnline, "bench:setup",
        [&per_cpu](unsigned cpu) {
          ++per_cpu[cpu];
          return 0;
        },
        nullptr);
    if (!id.ok()) state.SkipWithError(id.error().message().c_str());
    state.PauseTiming();
    (void)d.remove_state(*id);
    state.ResumeTiming();
  }
  benchmark::DoNotOptimize(per_cpu.data());
}
BENCHMARK(BM_SetupState)
    ->Arg(64)
    ->Arg(1024)
    ->Arg(8192)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_OnlineWalk_rcu(benchmark::State& state) {
  const auto cpus = static_cast<unsigned>(state.range(0));
  cpuhp::Domain d(cpus, cpus);
  for (unsigned cpu = 1; cpu < cpus; cpu += 3) (void)d.down(cpu);  // a sparse mask
  for (auto _ : state) {
    cpuhp::rcu::ReadGuard guard;
    unsigned sum = 0;
    for (unsigned cpu : d.online()) sum += cpu;
    benchmark::DoNotOptimize(sum);
  }
}
BENCHMARK(BM_OnlineWalk_rcu)->Arg(64)->Arg(1024)->Arg(8192);

void BM_OnlineWalk_plain(benchmark::State& state) {
  const auto cpus = static_cast<unsigned>(state.range(0));
  std::vector<std::uint64_t> bits((cpus + 63) / 64, ~0ULL);
  for (unsigned cpu = 1; cpu < cpus; cpu += 3) bits[cpu / 64] &= ~(1ULL << (cpu % 64));
  for (auto _ : state) {
    unsigned sum = 0;
    for (std::size_t w = 0; w < bits.size(); ++w)
      for (std::uint64_t word = bits[w]; word != 0; word &= word - 1)
        sum += static_cast<unsigned>(w * 64 + std::countr_zero(word));
    benchmark::DoNotOptimize(sum);
  }
}
BENCHMARK(BM_OnlineWalk_plain)->Arg(64)->Arg(1024)->Arg(8192);

}  // namespace
