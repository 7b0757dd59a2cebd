// cpuhp demo: a virtual 64-CPU machine with a per-CPU counter, a 2014-style
// notifier and a state registered mid-storm, under RCU readers and hotplug
// lock readers while a hotplug storm with failure injection runs.
#include "demo.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/rcu.h"
#include "scenario.h"

namespace cpuhp::tool {
namespace {

using Clock = std::chrono::steady_clock;

struct Counters {
  std::atomic<std::uint64_t> transitions{0}, rollbacks{0}, refused{0};
  std::atomic<std::uint64_t> rcu_reads{0}, lock_reads{0}, increments{0};
  std::atomic<std::uint64_t> rcu_violations{0}, lock_violations{0};
};

// The state a second subsystem installs mid-storm, and what it saw.
struct LateSubsystem {
  explicit LateSubsystem(unsigned cpus) : up(cpus) {}
  std::vector<std::atomic<bool>> up;
  std::atomic<std::uint64_t> violations{0};
  StateId state = -1;
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const std::size_t i =
      std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

void rcu_reader(Scenario& sc, Counters& c, const std::atomic<bool>& stop, unsigned seed) {
  std::minstd_rand rng(seed);
  const unsigned n = sc.domain.capacity();
  std::uint64_t reads = 0, increments = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    rcu::ReadGuard guard;
    // Any CPU whose online bit we see keeps its counter slot until the guard ends.
    unsigned cpu = sc.domain.online().next(rng() % n);
    if (cpu >= n) cpu = sc.domain.online().first();
    if (cpu < n) {
      CounterSlot* slot = sc.slots[cpu].load(std::memory_order_acquire);
      if (slot == nullptr ||
          slot->magic.load(std::memory_order_relaxed) != CounterSlot::kAlive) {
        c.rcu_violations.fetch_add(1);
      } else {
        slot->count.fetch_add(1, std::memory_order_relaxed);
        ++increments;
      }
    }
    ++reads;
  }
  c.rcu_reads.fetch_add(reads);
  c.increments.fetch_add(increments);
}

void lock_reader(Scenario& sc, Counters& c, const std::atomic<bool>& stop) {
  std::uint64_t reads = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    ReadLock guard(sc.domain.hotplug_lock());
    const CpuMask before = sc.domain.online();
    for (int i = 0; i < 64; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
    if (!(sc.domain.online() == before)) c.lock_violations.fetch_add(1);
    ++reads;
  }
  c.lock_reads.fetch_add(reads);
}

void storm(Scenario& sc, Counters& c, const DemoOptions& o, const std::atomic<bool>& stop,
           std::vector<double>& latencies_us) {
  std::mt19937 rng(o.seed);
  std::uniform_real_distribution<double> coin(0, 1);
  const StateId injectable[] = {sc.counter_state, kStateNotifyPrepare,
                                kStateNotifyOnline};
  while (!stop.load(std::memory_order_relaxed)) {
    const unsigned cpu = rng() % sc.domain.capacity();
    const bool going_up = !sc.domain.cpu_online(cpu);
    if (coin(rng) < o.failure_rate)
      (void)sc.domain.inject_failure(cpu, injectable[rng() % 3]);
    const auto t0 = Clock::now();
    Status s = going_up ? sc.domain.up(cpu) : sc.domain.down(cpu);
    const double us =
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (s) {
      c.transitions.fetch_add(1, std::memory_order_relaxed);
      latencies_us.push_back(us);
    } else if (s.error().code() == Errc::kCallbackFailed) {
      c.rollbacks.fetch_add(1, std::memory_order_relaxed);
    } else {
      c.refused.fetch_add(1, std::memory_order_relaxed);  // last CPU and the like
    }
  }
}

// A subsystem arriving while the storm runs: register_begin() makes
// "initialise the online CPUs, then install" one step.
Status register_late(Scenario& sc, LateSubsystem& late) {
  auto scope = sc.domain.register_begin();
  if (!scope.ok()) return scope.error();
  auto id = scope->setup_state(
      Section::kOnline, "demo:late",
      [&late](unsigned cpu) {
        if (late.up[cpu].exchange(true)) late.violations.fetch_add(1);
        return 0;
      },
      [&late](unsigned cpu) {
        if (!late.up[cpu].exchange(false)) late.violations.fetch_add(1);
        return 0;
      });
  if (!id.ok()) return id.error();
  late.state = *id;
  return {};
}

}  // namespace

int run_demo(const DemoOptions& o) {
  Scenario sc(o.cpus, o.online);
  if (Status s = sc.install(); !s) {
    std::fprintf(stderr, "cpuhp demo: %s\n", s.error().message().c_str());
    return 1;
  }
  LateSubsystem late(o.cpus);
  Counters c;
  std::atomic<bool> stop{false};
  std::vector<double> latencies_us;
  latencies_us.reserve(1 << 20);
  const bool tty = isatty(STDOUT_FILENO) != 0;

  std::printf(
      "cpuhp demo: %u virtual CPUs (%u online), %u RCU readers, %u hotplug-lock "
      "readers, %.0f%% failure injection, %.0f s\n",
      o.cpus, o.online, o.rcu_readers, o.lock_readers, o.failure_rate * 100, o.seconds);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < o.rcu_readers; ++i)
    threads.emplace_back(rcu_reader, std::ref(sc), std::ref(c), std::cref(stop),
                         o.seed + i + 1);
  for (unsigned i = 0; i < o.lock_readers; ++i)
    threads.emplace_back(lock_reader, std::ref(sc), std::ref(c), std::cref(stop));
  std::thread storm_thread(storm, std::ref(sc), std::ref(c), std::cref(o),
                           std::cref(stop), std::ref(latencies_us));

  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(o.seconds);
  bool late_done = false;
  Status late_status;
  auto next_line = start;
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 100 : 250));
    const double t = std::chrono::duration<double>(Clock::now() - start).count();
    if (!late_done && t >= o.seconds * 0.4) {
      late_status = register_late(sc, late);
      late_done = true;
      std::printf(
          "%s[%5.1fs] registered 'demo:late' mid-storm with register_begin(): %s\n",
          tty ? "\r\033[K" : "", t,
          late_status ? "ok" : late_status.error().message().c_str());
    }
    if (tty || Clock::now() >= next_line) {
      std::printf(
          "%s[%5.1fs] online %3u  transitions %8llu  rollbacks %6llu  notifier events "
          "%8llu%s",
          tty ? "\r\033[K" : "", t, sc.domain.online().weight(),
          static_cast<unsigned long long>(c.transitions.load()),
          static_cast<unsigned long long>(c.rollbacks.load()),
          static_cast<unsigned long long>(sc.notifier_events.load()), tty ? "" : "\n");
      std::fflush(stdout);
      next_line = Clock::now() + std::chrono::seconds(1);
    }
  }
  stop.store(true);
  storm_thread.join();
  for (auto& t : threads) t.join();
  if (tty) std::printf("\n");

  // ---- invariants
  struct Check {
    const char* what;
    bool held;
  };
  std::uint64_t live = 0;
  bool slots_match = true;
  for (unsigned cpu = 0; cpu < o.cpus; ++cpu) {
    CounterSlot* slot = sc.slots[cpu].load();
    if (slot != nullptr) live += slot->count.load();
    // A slot exists exactly for CPUs at or past the counter state.
    const bool want = *sc.domain.cpu_state(cpu) >= sc.counter_state;
    slots_match = slots_match && (slot != nullptr) == want;
  }
  bool notifier_matches = true, late_matches = late.state >= 0;
  for (unsigned cpu = 0; cpu < o.cpus; ++cpu) {
    notifier_matches = notifier_matches &&
                       sc.notifier_online[cpu].load() == sc.domain.active().test(cpu);
    if (late.state >= 0)
      late_matches = late_matches &&
                     late.up[cpu].load() == (*sc.domain.cpu_state(cpu) >= late.state);
  }
  const bool masks_nested = sc.domain.active().is_subset_of(sc.domain.online()) &&
                            sc.domain.online().is_subset_of(sc.domain.present()) &&
                            sc.domain.present().is_subset_of(sc.domain.possible());
  const Check checks[] = {
      {"RCU readers never saw an online bit without live per-CPU data",
       c.rcu_violations == 0},
      {"hotplug-lock readers never saw the online mask change", c.lock_violations == 0},
      {"per-CPU counter exact: live slots + folded = increments",
       live + sc.folded.load() == c.increments.load()},
      {"counter slots exist exactly on CPUs at or past their state", slots_match},
      {"notifier: ONLINE/DOWN_PREPARE/DOWN_FAILED pair up per CPU",
       sc.pairing_violations == 0 && notifier_matches},
      {"mid-storm registration: startup/teardown pair up, no CPU missed or doubled",
       late_status.ok() && late.violations == 0 && late_matches},
      {"masks nested: active <= online <= present <= possible", masks_nested},
  };

  std::vector<double> lat = latencies_us;
  std::printf("\ncpuhp demo report (%.1f s)\n", o.seconds);
  std::printf(
      "  hotplug transitions   %llu (+%llu rolled back by injected failures, %llu "
      "refused)\n",
      static_cast<unsigned long long>(c.transitions.load()),
      static_cast<unsigned long long>(c.rollbacks.load()),
      static_cast<unsigned long long>(c.refused.load()));
  std::printf("  transition latency    p50 %.1f us, p99 %.1f us, max %.1f us\n",
              percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1.0));
  std::printf("  RCU reader ops        %llu (%llu counter increments)\n",
              static_cast<unsigned long long>(c.rcu_reads.load()),
              static_cast<unsigned long long>(c.increments.load()));
  std::printf("  hotplug-lock reads    %llu\n",
              static_cast<unsigned long long>(c.lock_reads.load()));
  std::printf("  notifier events       %llu (POST_DEAD %llu)\n",
              static_cast<unsigned long long>(sc.notifier_events.load()),
              static_cast<unsigned long long>(sc.post_dead_events.load()));
  bool all = true;
  std::printf("  invariants:\n");
  for (const Check& ch : checks) {
    std::printf("    %-76s %s\n", ch.what, ch.held ? "held" : "VIOLATED");
    all = all && ch.held;
  }
  if (late.state >= 0) (void)sc.domain.remove_state(late.state);
  return all ? 0 : 1;
}

}  // namespace cpuhp::tool
