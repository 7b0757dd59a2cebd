// Stress test of PerCpu and PerCpuCounter against hotplug storms.
//
// Duration: CPUHP_STRESS_SECONDS (default 2) for the whole run. Meant to run
// under ThreadSanitizer and AddressSanitizer as well: a reader touching a
// freed value, or a value freed before its readers are done, is a sanitizer
// report as well as a counted violation.
//
// Threads, all on one Domain of 16 CPUs:
//   storm      random up / down / bring_to(any state below the bit); now and
//              then injects a failure into an ONLINE state (the up rolls back
//              through the bit and the percpu state: counts must be folded)
//              or into a PREPARE state above the percpu state; now and then
//              suspend_nonboot() / resume_nonboot().
//   adders     a long-lived PerCpuCounter: add() in a loop, publishing how
//              much each has added.
//   checker    sum() must be monotonic and at least what the adders had
//              finished before it was called; at the end it must be exact.
//   readers    a long-lived PerCpu<Tracked>: under an RCU read guard take a
//              value (this_cpu() or a random CPU), keep the reference while
//              spinning for a while (concurrent downs clear the bit
//              meanwhile), check it is intact; walk values() too.
//   holder     takes a value under an RCU read guard, asks a downer thread to
//              take that CPU down, and checks the value after the bit is
//              clear: the down must wait for the guard before freeing it.
//   lifecycle  create and destroy PerCpus of both policies and short-lived
//              counters while the storm runs; after each construction, under
//              the hotplug read lock, the populated CPUs must be exactly
//              those at or past the percpu state; a short-lived counter must
//              sum exactly before it is destroyed.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/percpu.h"
#include "cpuhp/percpu_counter.h"
#include "cpuhp/rcu.h"
#include "support/stress.h"

namespace cpuhp {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr unsigned kCpus = 16;
constexpr std::uint64_t kAlive = 0x5AFE5AFE5AFE5AFEull;
constexpr std::uint64_t kPoison = 0xDEADBEEFDEADBEEFull;

double stress_seconds() { return testing_support::stress_seconds(2.0); }

using testing_support::Violations;

std::atomic<long> g_live{0};

struct Tracked {
  explicit Tracked(unsigned c) : cpu(c) { g_live.fetch_add(1); }
  ~Tracked() {
    magic = kPoison;
    g_live.fetch_sub(1);
  }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
  unsigned cpu;
  std::uint64_t magic = kAlive;  // plain: TSAN sees a reader overlapping the free
};

PerCpuHooks<Tracked> tracked_hooks() {
  return {[](unsigned cpu) { return Tracked(cpu); }, nullptr};
}

TEST(PerCpuStress, StormReadersAddersLifecycle) {
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(stress_seconds()));
  Domain d(kCpus, kCpus / 2);
  Violations v;

  auto counter = std::make_unique<PerCpuCounter>(d, "stress-counter");
  auto values = std::make_unique<PerCpu<Tracked>>(d, "stress-values",
                                                  PerCpuPolicy::kOnline, tracked_hooks());
  // States for failure injection: one ONLINE, one PREPARE above the percpu state.
  auto online_state = d.setup_state(
      Section::kOnline, "stress:online", [](unsigned) { return 0; }, nullptr);
  auto prepare_state = d.setup_state(
      Section::kPrepare, "stress:prepare", [](unsigned) { return 0; }, nullptr);
  ASSERT_TRUE(online_state.ok() && prepare_state.ok());
  ASSERT_GT(*prepare_state, values->state());

  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;

  // ---- storm
  std::mutex inject_mu;  // storm's inject-then-up against the downer's down-then-up
  std::atomic<long> transitions{0}, rollbacks{0}, suspends{0};
  threads.emplace_back([&] {
    std::mt19937 rng(1);
    while (!stop.load(std::memory_order_relaxed)) {
      const unsigned cpu = rng() % kCpus;
      const unsigned pick = rng() % 64;
      Status s;
      if (pick == 0) {
        if (d.suspend_nonboot().ok()) {
          suspends.fetch_add(1);
          if (Status r = d.resume_nonboot(); !r)
            v.add("resume_nonboot failed: " + r.error().message());
        }
        continue;
      }
      if (pick < 6) {
        const StateId st = pick % 2 ? *online_state : *prepare_state;
        // The downer must not bring the CPU up between the injection and our up
        // (the injection would stay pending and fail some later up).
        std::lock_guard exclusive(inject_mu);
        (void)d.bring_to(cpu, kStateOffline);  // refused for the last online CPU
        if (*d.cpu_state(cpu) == kStateOffline && d.inject_failure(cpu, st).ok()) {
          s = d.up(cpu);
          if (s.ok()) v.add("an up with an injected failure succeeded");
          rollbacks.fetch_add(1);
        }
        continue;
      }
      switch (pick % 4) {
        case 0:
          s = d.bring_to(cpu, static_cast<StateId>(rng() % kStateBringup));
          break;
        case 1:
          s = d.down(cpu);
          break;
        default:
          s = d.up(cpu);
      }
      if (s.ok()) transitions.fetch_add(1);
    }
  });

  // ---- adders
  constexpr int kAdders = 2;
  std::array<std::atomic<std::int64_t>, kAdders> added{};
  for (int a = 0; a < kAdders; ++a)
    threads.emplace_back([&, a] {
      std::mt19937 rng(100 + a);
      std::int64_t mine = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) {
          const std::int64_t n = 1 + rng() % 7;
          counter->add(n);
          mine += n;
        }
        added[a].store(mine, std::memory_order_release);
        std::this_thread::yield();  // leave the 2-CPU machine to the others now and then
      }
    });

  // ---- checker
  std::atomic<long> samples{0};
  threads.emplace_back([&] {
    std::int64_t last = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      std::int64_t lower = 0;
      for (auto& x : added) lower += x.load(std::memory_order_acquire);
      const std::int64_t s = counter->sum();
      if (s < lower)
        v.add("sum() " + std::to_string(s) + " lost increments: at least " +
              std::to_string(lower) + " were done");
      if (s < last)
        v.add("sum() went backwards: " + std::to_string(last) + " then " +
              std::to_string(s));
      last = s;
      samples.fetch_add(1);
      std::this_thread::sleep_for(100us);
    }
  });

  // ---- RCU readers keeping a reference across concurrent downs
  std::atomic<long> reads{0}, held_across_down{0};
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      std::mt19937 rng(200 + r);
      while (!stop.load(std::memory_order_relaxed)) {
        std::this_thread::yield();  // between read sections: let grace periods end
        rcu::ReadGuard g;
        Tracked* p = r == 0 ? values->this_cpu() : values->get(rng() % kCpus);
        if (p == nullptr) continue;
        const unsigned cpu = p->cpu;
        bool saw_down = false;
        // Hold the reference for a while: the storm may clear the bit meanwhile.
        const auto hold_until = Clock::now() + std::chrono::microseconds(rng() % 300);
        do {
          if (p->magic != kAlive) {
            v.add("reader saw a poisoned value of CPU " + std::to_string(cpu));
            break;
          }
          if (!d.cpu_online(cpu)) saw_down = true;
        } while (Clock::now() < hold_until);
        if (saw_down) held_across_down.fetch_add(1);
        for (auto [c, t] : values->values())
          if (t.magic != kAlive || t.cpu != c) v.add("values() gave a bad value");
        reads.fetch_add(1);
      }
    });

  // ---- a reader that makes sure a down happens while it holds a reference:
  // it hands the CPU to a downer thread and keeps the value until the bit is
  // clear (the down then waits for this read section to end).
  std::atomic<int> down_request{-1};
  threads.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const int c = down_request.exchange(-1);
      if (c < 0) {
        std::this_thread::yield();
        continue;
      }
      std::lock_guard exclusive(inject_mu);
      if (d.down(static_cast<unsigned>(c)).ok()) (void)d.up(static_cast<unsigned>(c));
    }
  });
  threads.emplace_back([&] {
    std::mt19937 rng(250);
    while (!stop.load(std::memory_order_relaxed)) {
      std::this_thread::yield();
      rcu::ReadGuard g;
      const unsigned cpu = 1 + rng() % (kCpus - 1);
      Tracked* p = values->get(cpu);
      if (p == nullptr) continue;
      down_request.store(static_cast<int>(cpu));
      const auto give_up = Clock::now() + 2ms;
      while (d.cpu_online(cpu) && Clock::now() < give_up) std::this_thread::yield();
      const bool went_down = !d.cpu_online(cpu);
      for (int i = 0; i < 100; ++i)
        if (p->magic != kAlive || p->cpu != cpu) {
          v.add("value of CPU " + std::to_string(cpu) + " changed under its reader");
          break;
        }
      if (went_down) held_across_down.fetch_add(1);
      reads.fetch_add(1);
    }
  });

  // ---- lifecycle
  std::atomic<long> lifecycles{0};
  threads.emplace_back([&] {
    std::mt19937 rng(300);
    while (!stop.load(std::memory_order_relaxed)) {
      switch (rng() % 3) {
        case 0: {
          auto r =
              PerCpu<Tracked>::create(d, "short", PerCpuPolicy::kOnline, tracked_hooks());
          if (!r) {
            v.add("PerCpu create failed: " + r.error().message());
            break;
          }
          ReadLock lock(d.hotplug_lock());
          for (unsigned cpu = 0; cpu < kCpus; ++cpu) {
            const bool past = *d.cpu_state(cpu) >= (*r)->state();
            if (((*r)->get_prepared(cpu) != nullptr) != past)
              v.add("after construction CPU " + std::to_string(cpu) +
                    (past ? " lacks" : " has") + " a value");
          }
          break;  // the lock goes before the PerCpu
        }
        case 1: {
          std::atomic<int> folds{0};
          auto r = PerCpu<Tracked>::create(d, "short-possible", PerCpuPolicy::kPossible,
                                           {[](unsigned cpu) { return Tracked(cpu); },
                                            [&](unsigned, Tracked& t) {
                                              if (t.magic != kAlive)
                                                v.add("possible on_offline: bad value");
                                              folds.fetch_add(1);
                                            }});
          if (!r) v.add("possible PerCpu create failed: " + r.error().message());
          std::this_thread::sleep_for(200us);
          break;
        }
        default: {
          auto c = PerCpuCounter::create(d, "short-counter");
          if (!c) {
            v.add("counter create failed: " + c.error().message());
            break;
          }
          for (int i = 0; i < 500; ++i) (*c)->add(2);
          if (const std::int64_t s = (*c)->sum(); s != 1000)
            v.add("short-lived counter summed " + std::to_string(s) + ", not 1000");
          break;
        }
      }
      lifecycles.fetch_add(1);
    }
  });

  while (Clock::now() < deadline && v.count() == 0) std::this_thread::sleep_for(10ms);
  stop.store(true);
  for (auto& t : threads) t.join();

  std::int64_t total = 0;
  for (auto& x : added) total += x.load();
  EXPECT_EQ(counter->sum(), total) << "counter lost or duplicated increments";
  for (unsigned cpu = 0; cpu < kCpus; ++cpu)  // none parked
    for (int i = 0; i < 3 && !d.cpu_online(cpu); ++i) (void)d.up(cpu);
  EXPECT_EQ(counter->sum_approx(), total);

  EXPECT_EQ(v.count(), 0) << v.first();
  EXPECT_GT(transitions.load(), 0);
  EXPECT_GT(samples.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_GT(lifecycles.load(), 0);
  std::printf(
      "percpu stress: %ld transitions, %ld injected rollbacks, %ld suspends, %ld sum "
      "samples, %lld increments (%lld folded), %ld reads (%ld held across a down), "
      "%ld PerCpu lifecycles\n",
      transitions.load(), rollbacks.load(), suspends.load(), samples.load(),
      static_cast<long long>(total), static_cast<long long>(counter->folded()),
      reads.load(), held_across_down.load(), lifecycles.load());

  values.reset();
  counter.reset();
  EXPECT_EQ(g_live.load(), 0);
  EXPECT_TRUE(d.remove_state(*online_state).ok());
  EXPECT_TRUE(d.remove_state(*prepare_state).ok());
}

}  // namespace
}  // namespace cpuhp
