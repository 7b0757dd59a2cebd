// Unit tests of cpuhp::PerCpuCounter: exact sums across any number of
// offline/online cycles (the folding hook), parked CPUs, rollbacks, concurrent
// adders racing a hotplug storm, and destruction while hotplug runs.
#include "cpuhp/percpu_counter.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <system_error>
#include <thread>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/rcu.h"
#include "support/pinning.h"

namespace cpuhp {
namespace {

using namespace std::chrono_literals;
using cpuhp::testing_support::on_pinned_thread;

TEST(PerCpuCounter, AddsAndSums) {
  Domain d(4, 4);
  PerCpuCounter c(d, "basic");
  EXPECT_EQ(c.sum(), 0);
  c.add(5);
  c.inc();
  c.dec();
  c.add(-2);
  c.add();
  EXPECT_EQ(c.sum(), 4);
  EXPECT_EQ(c.sum_approx(), 4);
  EXPECT_EQ(c.folded(), 0);
  EXPECT_EQ(c.name(), "basic");
  EXPECT_EQ(&c.domain(), &d);
}

TEST(PerCpuCounter, AddInsideReadSectionsAndLocks) {
  Domain d(4, 4);
  PerCpuCounter c(d);
  {
    rcu::ReadGuard g;
    c.add(3);  // nested guard
    EXPECT_EQ(c.sum_approx(), 3);
  }
  {
    ReadLock lock(d.hotplug_lock());
    c.add(4);
    EXPECT_EQ(c.sum(), 7);  // nested read lock
  }
}

TEST(PerCpuCounter, ExactAcrossManyOfflineOnlineCycles) {
  Domain d(8, 8);
  PerCpuCounter c(d, "cycles");
  std::int64_t expect = 0;
  for (unsigned cycle = 0; cycle < 200; ++cycle) {
    const unsigned keep = cycle % 8;
    c.add(cycle + 1);
    expect += cycle + 1;
    for (unsigned cpu = 0; cpu < 8; ++cpu)
      if (cpu != keep) ASSERT_TRUE(d.down(cpu).ok());
    ASSERT_EQ(c.sum(), expect) << "cycle " << cycle;
    ASSERT_EQ(c.sum_approx(), expect) << "cycle " << cycle;
    c.add(3);
    expect += 3;
    for (unsigned cpu = 0; cpu < 8; ++cpu)
      if (cpu != keep) ASSERT_TRUE(d.up(cpu).ok());
    ASSERT_EQ(c.sum(), expect) << "cycle " << cycle;
  }
  EXPECT_GT(c.folded(), 0) << "the cycles should have folded CPUs' counts";
  EXPECT_LE(c.folded(), expect);
}

TEST(PerCpuCounter, CreateReportsErrors) {
  Domain d(2, 2);
  {
    rcu::ReadGuard g;
    auto r = PerCpuCounter::create(d, "in-rcu");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Errc::kWouldDeadlock);
    EXPECT_THROW({ PerCpuCounter c(d); }, std::system_error);
  }
  auto r = PerCpuCounter::create(d, "fine");
  ASSERT_TRUE(r.ok()) << r.error().message();
  (*r)->add(2);
  EXPECT_EQ((*r)->sum(), 2);
}

TEST(PerCpuCounter, DyingCpuIsFoldedNotLost) {
  Domain d(4, 4);
  PerCpuCounter c(d, "fold");
  const bool pinned = on_pinned_thread(0, [&] {
    c.add(1000);
    {
      rcu::ReadGuard g;
      ASSERT_EQ(c.cells().get(0)->value(), 1000);
    }
    ASSERT_TRUE(d.down(0).ok());
    EXPECT_EQ(c.folded(), 1000);
    EXPECT_EQ(c.sum(), 1000);
    c.add(5);  // CPU 0 is gone: the nearest online CPU, 1
    {
      rcu::ReadGuard g;
      EXPECT_EQ(c.cells().get(1)->value(), 5);
    }
    ASSERT_TRUE(d.up(0).ok());
    c.add(7);
    {
      rcu::ReadGuard g;
      EXPECT_EQ(c.cells().get(0)->value(), 7) << "a fresh cell";
    }
    EXPECT_EQ(c.sum(), 1012);
  });
  if (!pinned) GTEST_SKIP() << "cannot pin a thread to host CPU 0";
}

TEST(PerCpuCounter, OwnCpuAddsTakeTheRseqPath) {
#ifndef CPUHP_PERCPU_RSEQ_ADD
  GTEST_SKIP() << "no rseq add on this platform";
#else
  if (detail::rseq_area() == nullptr) GTEST_SKIP() << "glibc did not register rseq";
  Domain d(4, 4);
  PerCpuCounter c(d, "rseq");
  const bool pinned = on_pinned_thread(1, [&] {
    for (int i = 0; i < 100000; ++i) c.add(1);
    rcu::ReadGuard g;
    PerCpuCounter::Cell* cell = c.cells().get(1);
    ASSERT_NE(cell, nullptr);
    EXPECT_EQ(cell->value(), 100000);
    // Preemption may abort a few sequences (those go to `shared`), not most.
    EXPECT_GT(std::atomic_ref<std::int64_t>(cell->local).load(), 50000);
  });
  if (!pinned) GTEST_SKIP() << "cannot pin a thread to host CPU 1";
  EXPECT_EQ(c.sum(), 100000);
  // A thread on host CPU 1 whose CPU is offline in the Domain adds atomically
  // to the nearest online CPU's cell instead.
  ASSERT_TRUE(d.down(1).ok());
  EXPECT_EQ(c.folded(), 100000);
  ASSERT_TRUE(on_pinned_thread(1, [&] {
    for (int i = 0; i < 10; ++i) c.add(1);
    rcu::ReadGuard g;
    EXPECT_EQ(c.cells().get(2)->shared.load(), 10);
  }));
  EXPECT_EQ(c.sum(), 100010);
#endif
}

#ifdef CPUHP_PERCPU_RSEQ_ADD
TEST(PerCpuCounter, RseqAddCommitsOnlyOnItsCpu) {
  if (detail::rseq_area() == nullptr) GTEST_SKIP() << "glibc did not register rseq";
  const bool pinned = on_pinned_thread(1, [] {
    alignas(8) std::int64_t v = 5;
    EXPECT_TRUE(detail::rseq_add_on_cpu(detail::rseq_area(), 1, &v, 3));
    EXPECT_EQ(v, 8);
    EXPECT_FALSE(detail::rseq_add_on_cpu(detail::rseq_area(), 0, &v, 100));
    EXPECT_EQ(v, 8) << "an aborted sequence adds nothing";
  });
  if (!pinned) GTEST_SKIP() << "cannot pin a thread to host CPU 1";
}
#endif

// Threads moved between CPUs as fast as possible while they add: sequences
// abort on migration and fall back to the atomic; nothing is lost or doubled.
TEST(PerCpuCounter, MigratingThreadsNeverLoseAdds) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs 2 host CPUs";
  Domain d(2, 2);
  PerCpuCounter c(d, "migrating");
  constexpr int kThreads = 3;
  std::atomic<bool> stop{false};
  std::array<std::atomic<std::int64_t>, kThreads> added{};
  std::vector<std::thread> adders;
  for (int t = 0; t < kThreads; ++t)
    adders.emplace_back([&, t] {
      std::int64_t mine = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 100; ++i) c.add(1);
        mine += 100;
      }
      added[t].store(mine);
    });
  long moves = 0;
  const auto until = std::chrono::steady_clock::now() + 300ms;
  for (unsigned flip = 0; std::chrono::steady_clock::now() < until; ++flip) {
    for (auto& a : adders) {  // joinable, so the handles stay valid
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(flip % 2, &set);
      if (pthread_setaffinity_np(a.native_handle(), sizeof set, &set) == 0) ++moves;
    }
    std::this_thread::sleep_for(20us);
  }
  stop = true;
  for (auto& a : adders) a.join();
  std::int64_t total = 0;
  for (auto& x : added) total += x.load();
  std::int64_t via_atomic = 0;
  {
    rcu::ReadGuard g;
    for (auto [cpu, cell] : c.cells().values()) via_atomic += cell.shared.load();
  }
  std::printf("%lld adds, %ld affinity changes, %lld adds fell back to the atomic\n",
              static_cast<long long>(total), moves, static_cast<long long>(via_atomic));
  EXPECT_GT(moves, 0);
  EXPECT_EQ(c.sum(), total);
  EXPECT_EQ(c.sum_approx(), total);
}

TEST(PerCpuCounter, ParkedCpuCountsInSum) {
  Domain d(4, 4);
  PerCpuCounter c(d, "parked");
  const bool pinned = on_pinned_thread(0, [&] {
    c.add(100);
    // Park CPU 0 at the percpu state: bit clear, cell kept, not folded.
    ASSERT_TRUE(d.bring_to(0, c.cells().state()).ok());
    EXPECT_EQ(c.folded(), 0);
    EXPECT_EQ(c.sum(), 100);
    EXPECT_EQ(c.sum_approx(), 0) << "documented: a parked CPU's count is unreachable";
    ASSERT_TRUE(d.up(0).ok());
    EXPECT_EQ(c.sum_approx(), 100);
    ASSERT_TRUE(d.down(0).ok());
    EXPECT_EQ(c.folded(), 100);
    EXPECT_EQ(c.sum(), 100);
  });
  if (!pinned) GTEST_SKIP() << "cannot pin a thread to host CPU 0";
}

TEST(PerCpuCounter, SumFromAHotplugCallbackSeesTheDyingCpu) {
  Domain d(4, 4);
  PerCpuCounter c(d, "cb");
  for (int i = 0; i < 100; ++i) c.add(1);
  std::vector<std::int64_t> seen;
  // An ONLINE teardown (bit still set) and a PREPARE teardown above the
  // percpu state (bit clear, not folded yet): sum() is exact in both.
  auto online =
      d.setup_state(Section::kOnline, "test:sum-online", nullptr, [&](unsigned) {
        seen.push_back(c.sum());
        return 0;
      });
  auto prepare =
      d.setup_state(Section::kPrepare, "test:sum-prepare", nullptr, [&](unsigned) {
        seen.push_back(c.sum());
        return 0;
      });
  ASSERT_TRUE(online.ok() && prepare.ok());
  ASSERT_GT(*prepare, c.cells().state());
  for (unsigned cpu : {0u, 1u, 2u}) ASSERT_TRUE(d.down(cpu).ok());
  EXPECT_EQ(seen, std::vector<std::int64_t>(6, 100));
  EXPECT_EQ(c.sum(), 100);
  EXPECT_TRUE(d.remove_state(*online).ok());
  EXPECT_TRUE(d.remove_state(*prepare).ok());
}

#if !defined(__SANITIZE_THREAD__)
TEST(PerCpuCounterDeathTest, SumInsideReadSectionAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Domain d(2, 2);
  PerCpuCounter c(d, "dead");
  EXPECT_DEATH(
      {
        rcu::ReadGuard g;
        (void)c.sum();
      },
      "sum\\(\\) inside an RCU read section");
}
#endif

// Adders racing a hotplug storm with failure injection; a checker samples
// sum() and requires it to be monotonic and at least every completed add.
TEST(PerCpuCounter, ExactUnderConcurrentAddersAndHotplugStorm) {
  constexpr unsigned kCpus = 6;
  Domain d(kCpus, kCpus);
  PerCpuCounter c(d, "storm");
  auto online_state = d.setup_state(
      Section::kOnline, "test:online", [](unsigned) { return 0; }, nullptr);
  ASSERT_TRUE(online_state.ok());

  std::atomic<bool> stop{false};
  constexpr int kAdders = 2;
  std::array<std::atomic<std::int64_t>, kAdders> done{};
  std::vector<std::thread> threads;
  for (int a = 0; a < kAdders; ++a)
    threads.emplace_back([&, a] {
      std::mt19937 rng(a + 10);
      std::int64_t mine = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const std::int64_t n = 1 + rng() % 5;
        c.add(n);
        mine += n;
        done[a].store(mine, std::memory_order_release);
      }
    });
  std::atomic<long> transitions{0};
  threads.emplace_back([&] {
    std::mt19937 rng(3);
    while (!stop.load(std::memory_order_relaxed)) {
      const unsigned cpu = rng() % kCpus;
      Status s;
      switch (rng() % 6) {
        case 0:
          if (*d.cpu_state(cpu) != kStateOffline) continue;
          (void)d.inject_failure(cpu, *online_state);  // this up rolls back
          s = d.up(cpu);
          break;
        case 1:
          s = d.bring_to(cpu, static_cast<StateId>(rng() % kStateBringup));
          break;
        case 2:
        case 3:
          s = d.down(cpu);
          break;
        default:
          s = d.up(cpu);
      }
      if (s.ok()) transitions.fetch_add(1);
    }
  });
  long samples = 0, violations = 0;
  std::int64_t last = 0;
  const auto until = std::chrono::steady_clock::now() + 500ms;
  while (std::chrono::steady_clock::now() < until) {
    std::int64_t lower = 0;
    for (auto& x : done) lower += x.load(std::memory_order_acquire);
    const std::int64_t s = c.sum();
    if (s < lower || s < last) ++violations;
    last = s;
    ++samples;
  }
  stop = true;
  for (auto& t : threads) t.join();
  std::int64_t total = 0;
  for (auto& x : done) total += x.load();
  EXPECT_EQ(violations, 0);
  EXPECT_EQ(c.sum(), total);
  EXPECT_GT(transitions.load(), 0);
  EXPECT_GT(samples, 0);
  for (unsigned cpu = 0; cpu < kCpus; ++cpu)  // none parked
    for (int i = 0; i < 3 && !d.cpu_online(cpu); ++i) (void)d.up(cpu);
  EXPECT_EQ(c.sum_approx(), total);
  EXPECT_EQ(c.sum(), total);
  EXPECT_TRUE(d.remove_state(*online_state).ok());
}

TEST(PerCpuCounter, DestroyedWhileHotplugRuns) {
  Domain d(6, 3);
  std::atomic<bool> stop{false};
  std::thread storm([&] {
    std::mt19937 rng(5);
    while (!stop.load()) {
      const unsigned cpu = 1 + rng() % 5;
      (void)(rng() % 2 ? d.up(cpu) : d.down(cpu));
    }
  });
  const auto until = std::chrono::steady_clock::now() + 300ms;
  int made = 0;
  while (std::chrono::steady_clock::now() < until || made < 20) {
    auto c = std::make_unique<PerCpuCounter>(d, "short-lived");
    for (int i = 0; i < 1000; ++i) c->add(1);
    ASSERT_EQ(c->sum(), 1000);
    c.reset();
    ++made;
  }
  stop = true;
  storm.join();
}

}  // namespace
}  // namespace cpuhp
