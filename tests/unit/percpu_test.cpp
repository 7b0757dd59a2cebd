// Unit tests of cpuhp::PerCpu<T>: both policies, the lifetime rules (built
// before the online bit, destroyed a grace period after it clears), the
// on_offline hook, construction rollback and refusal, iteration, alignment,
// this_cpu() mapping, and construction/destruction racing hotplug.
#include "cpuhp/percpu.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
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

constexpr std::uint64_t kAlive = 0x5AFE5AFE5AFE5AFEull;
constexpr std::uint64_t kPoison = 0xDEADBEEFDEADBEEFull;

// Counts live objects; records which CPUs' objects were destroyed and whether
// their online bit was clear at that moment.
struct Tracker {
  std::atomic<int> live{0};
  std::atomic<int> destroyed_while_online{0};
  std::array<std::atomic<int>, 64> destroyed{};
};

struct Tracked {
  Tracked(Tracker* t, const Domain* d, unsigned c) : tracker(t), domain(d), cpu(c) {
    tracker->live.fetch_add(1);
  }
  ~Tracked() {
    magic = kPoison;  // plain write: TSAN flags a reader that overlaps it
    if (domain->cpu_online(cpu)) tracker->destroyed_while_online.fetch_add(1);
    tracker->destroyed[cpu].fetch_add(1);
    tracker->live.fetch_sub(1);
  }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;

  Tracker* tracker;
  const Domain* domain;
  unsigned cpu;
  std::uint64_t magic = kAlive;
};

PerCpuHooks<Tracked> tracked_hooks(Tracker& t, const Domain& d) {
  return {[&t, &d](unsigned cpu) { return Tracked(&t, &d, cpu); }, nullptr};
}

bool has_percpu_state(const Domain& d) {
  for (const StateInfo& s : d.states())
    if (s.name == kPerCpuStateName) return true;
  return false;
}

// ------------------------------------------------------------ online policy

TEST(PerCpuOnline, BuiltExactlyForOnlineCpus) {
  Domain d(8, 4);
  PerCpu<int> pc(d, "ints", PerCpuPolicy::kOnline,
                 {[](unsigned cpu) { return static_cast<int>(cpu) * 10; }, nullptr});
  rcu::ReadGuard g;
  for (unsigned cpu = 0; cpu < 8; ++cpu) {
    if (cpu < 4) {
      ASSERT_NE(pc.get(cpu), nullptr) << cpu;
      EXPECT_EQ(*pc.get(cpu), static_cast<int>(cpu) * 10);
    } else {
      EXPECT_EQ(pc.get(cpu), nullptr) << cpu;
      EXPECT_EQ(pc.get_prepared(cpu), nullptr) << cpu;
    }
  }
  EXPECT_EQ(pc.get(8), nullptr);
  EXPECT_EQ(pc.get(~0u), nullptr);
  EXPECT_EQ(pc.prepared().to_string(), "0-3");
  EXPECT_EQ(pc.name(), "ints");
  EXPECT_EQ(&pc.domain(), &d);
  EXPECT_GE(pc.state(), kStatePrepareDyn);
  EXPECT_LE(pc.state(), kStatePrepareDynEnd);
}

TEST(PerCpuOnline, DefaultConstructedValues) {
  Domain d(4, 2);
  PerCpu<long> pc(d);
  rcu::ReadGuard g;
  ASSERT_NE(pc.get(1), nullptr);
  EXPECT_EQ(*pc.get(1), 0);
}

TEST(PerCpuOnline, UpAndDownBuildAndDestroy) {
  Domain d(8, 2);
  Tracker t;
  {
    PerCpu<Tracked> pc(d, "tracked", PerCpuPolicy::kOnline, tracked_hooks(t, d));
    EXPECT_EQ(t.live.load(), 2);
    ASSERT_TRUE(d.up(5).ok());
    EXPECT_EQ(t.live.load(), 3);
    {
      rcu::ReadGuard g;
      ASSERT_NE(pc.get(5), nullptr);
      EXPECT_EQ(pc.get(5)->cpu, 5u);
    }
    ASSERT_TRUE(d.down(5).ok());
    EXPECT_EQ(t.live.load(), 2);
    EXPECT_EQ(t.destroyed[5].load(), 1);
    {
      rcu::ReadGuard g;
      EXPECT_EQ(pc.get(5), nullptr);
    }
    for (int cycle = 0; cycle < 20; ++cycle) {
      ASSERT_TRUE(d.up(5).ok());
      ASSERT_TRUE(d.down(5).ok());
    }
    EXPECT_EQ(t.destroyed[5].load(), 21);
    EXPECT_EQ(t.destroyed_while_online.load(), 0);
  }
  // The destructor destroys the online CPUs' values (their bits still set).
  EXPECT_EQ(t.live.load(), 0);
  EXPECT_EQ(t.destroyed[0].load(), 1);
  EXPECT_EQ(t.destroyed[1].load(), 1);
}

// Where in a transition the value is reachable, seen from the program's own
// states on either side of the percpu state.
TEST(PerCpuOnline, BuiltBeforeTheBitDestroyedAfterIt) {
  Domain d(4, 2);
  Tracker t;
  PerCpu<Tracked> pc(d, "tracked", PerCpuPolicy::kOnline, tracked_hooks(t, d));
  std::vector<std::string> log;
  auto prepare = d.setup_state(
      Section::kPrepare, "test:above-percpu",
      [&](unsigned cpu) {
        log.push_back(std::string("prepare-up get=") + (pc.get(cpu) ? "yes" : "no") +
                      " prepared=" + (pc.get_prepared(cpu) ? "yes" : "no"));
        return 0;
      },
      [&](unsigned cpu) {
        log.push_back(std::string("prepare-down get=") + (pc.get(cpu) ? "yes" : "no") +
                      " prepared=" + (pc.get_prepared(cpu) ? "yes" : "no"));
        return 0;
      });
  ASSERT_TRUE(prepare.ok()) << prepare.error().message();
  ASSERT_GT(*prepare, pc.state());
  auto online = d.setup_state(
      Section::kOnline, "test:online",
      [&](unsigned cpu) {
        log.push_back(std::string("online-up get=") + (pc.get(cpu) ? "yes" : "no"));
        return 0;
      },
      [&](unsigned cpu) {
        log.push_back(std::string("online-down get=") + (pc.get(cpu) ? "yes" : "no"));
        return 0;
      });
  ASSERT_TRUE(online.ok());
  log.clear();
  ASSERT_TRUE(d.up(3).ok());
  ASSERT_TRUE(d.down(3).ok());
  const std::vector<std::string> want = {"prepare-up get=no prepared=yes",
                                         "online-up get=yes", "online-down get=yes",
                                         "prepare-down get=no prepared=yes"};
  EXPECT_EQ(log, want);
  EXPECT_EQ(t.destroyed_while_online.load(), 0);
  EXPECT_TRUE(d.remove_state(*online).ok());
  EXPECT_TRUE(d.remove_state(*prepare).ok());
}

// A reader that saw the bit keeps its T& while a concurrent down waits for it.
TEST(PerCpuOnline, ReaderKeepsItsValueAcrossAConcurrentDown) {
  Domain d(4, 4);
  Tracker t;
  PerCpu<Tracked> pc(d, "tracked", PerCpuPolicy::kOnline, tracked_hooks(t, d));
  std::atomic<bool> in_section{false}, leave{false}, down_done{false};
  std::atomic<bool> reader_ok{false};
  std::thread reader([&] {
    rcu::ReadGuard g;
    Tracked* p = pc.get(3);
    if (p == nullptr) return;
    in_section.store(true);
    while (!leave.load()) std::this_thread::sleep_for(1ms);
    // The down has cleared the bit by now, yet the value is intact.
    reader_ok.store(p->magic == kAlive && p->cpu == 3 && !d.cpu_online(3) &&
                    pc.get(3) == nullptr && t.destroyed[3].load() == 0);
  });
  while (!in_section.load()) std::this_thread::sleep_for(1ms);
  std::thread downer([&] {
    EXPECT_TRUE(d.down(3).ok());
    down_done.store(true);
  });
  while (d.cpu_online(3)) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(down_done.load()) << "down finished inside a reader's grace period";
  EXPECT_EQ(t.destroyed[3].load(), 0);
  leave.store(true);
  reader.join();
  downer.join();
  EXPECT_TRUE(reader_ok.load());
  EXPECT_EQ(t.destroyed[3].load(), 1);
}

TEST(PerCpuOnline, OnOfflineFoldsBeforeDestructionButNotAtDestruction) {
  Domain d(8, 8);
  struct Call {
    unsigned cpu;
    int value;
    bool online;
  };
  std::vector<Call> calls;
  {
    PerCpu<int> pc(d, "fold", PerCpuPolicy::kOnline,
                   {[](unsigned cpu) { return static_cast<int>(cpu) + 100; },
                    [&](unsigned cpu, int& v) {
                      calls.push_back({cpu, v, d.cpu_online(cpu)});
                    }});
    ASSERT_TRUE(d.down(6).ok());
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].cpu, 6u);
    EXPECT_EQ(calls[0].value, 106);
    EXPECT_FALSE(calls[0].online);
    ASSERT_TRUE(d.up(6).ok());
    ASSERT_TRUE(d.down(6).ok());
    EXPECT_EQ(calls.size(), 2u);
  }
  EXPECT_EQ(calls.size(), 2u) << "the destructor must not call on_offline";
}

TEST(PerCpuOnline, FailingMakeRollsBackConstruction) {
  Domain d(8, 6);
  Tracker t;
  int hook_calls = 0;
  PerCpuHooks<Tracked> hooks{[&](unsigned cpu) {
                               if (cpu == 3) throw std::runtime_error("no memory for 3");
                               return Tracked(&t, &d, cpu);
                             },
                             [&](unsigned, Tracked&) { ++hook_calls; }};
  try {
    PerCpu<Tracked> pc(d, "failing", PerCpuPolicy::kOnline, hooks);
    FAIL() << "constructor should have thrown";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), make_error_code(Errc::kCallbackFailed));
    const std::string what = e.what();
    EXPECT_NE(what.find("failing"), std::string::npos) << what;
    EXPECT_NE(what.find("no memory for 3"), std::string::npos) << what;
  }
  EXPECT_EQ(t.live.load(), 0);
  EXPECT_EQ(hook_calls, 0) << "values never published must not be folded";

  auto r = PerCpu<Tracked>::create(d, "failing2", PerCpuPolicy::kOnline, hooks);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kCallbackFailed);
  EXPECT_EQ(t.live.load(), 0);
  EXPECT_EQ(hook_calls, 0);

  // The domain is unharmed: a later PerCpu works and hotplug goes on.
  auto ok =
      PerCpu<Tracked>::create(d, "fine", PerCpuPolicy::kOnline, tracked_hooks(t, d));
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(t.live.load(), 6);
  ASSERT_TRUE(d.up(7).ok());
  EXPECT_EQ(t.live.load(), 7);
}

TEST(PerCpuOnline, FailingMakeFailsTheUpAndRollsBack) {
  Domain d(4, 2);
  std::atomic<bool> fail{false};
  int folds = 0;
  PerCpu<int> pc(d, "flaky", PerCpuPolicy::kOnline,
                 {[&](unsigned) {
                    if (fail.load()) throw std::runtime_error("refused");
                    return 1;
                  },
                  [&](unsigned, int&) { ++folds; }});
  fail = true;
  Status s = d.up(3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Errc::kCallbackFailed);
  EXPECT_FALSE(d.cpu_online(3));
  EXPECT_EQ(pc.get_prepared(3), nullptr);
  fail = false;
  ASSERT_TRUE(d.up(3).ok());
  rcu::ReadGuard g;
  ASSERT_NE(pc.get(3), nullptr);
  EXPECT_EQ(folds, 0);
}

// A failure in a later ONLINE state rolls the CPU back through the bit and
// the percpu state: the value was reachable, so it is folded.
TEST(PerCpuOnline, RollbackFromTheOnlineSectionFolds) {
  Domain d(4, 2);
  std::vector<unsigned> folded;
  PerCpu<int> pc(d, "rb", PerCpuPolicy::kOnline,
                 {nullptr, [&](unsigned cpu, int&) { folded.push_back(cpu); }});
  auto st = d.setup_state(
      Section::kOnline, "test:fails", [](unsigned) { return 0; }, nullptr);
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(d.inject_failure(2, *st).ok());
  EXPECT_FALSE(d.up(2).ok());
  EXPECT_FALSE(d.cpu_online(2));
  EXPECT_EQ(folded, std::vector<unsigned>{2});
  EXPECT_EQ(pc.get_prepared(2), nullptr);
  EXPECT_TRUE(d.remove_state(*st).ok());
}

TEST(PerCpuOnline, ParkedCpuKeepsItsValueUnreachable) {
  Domain d(4, 2);
  Tracker t;
  PerCpu<Tracked> pc(d, "parked", PerCpuPolicy::kOnline, tracked_hooks(t, d));
  ASSERT_TRUE(d.bring_to(3, pc.state()).ok());
  {
    rcu::ReadGuard g;
    EXPECT_EQ(pc.get(3), nullptr);
  }
  {
    ReadLock lock(d.hotplug_lock());
    ASSERT_NE(pc.get_prepared(3), nullptr);
    EXPECT_TRUE(pc.prepared().test(3));
  }
  ASSERT_TRUE(d.bring_to(3, pc.state() - 1).ok());
  EXPECT_EQ(pc.get_prepared(3), nullptr);
  EXPECT_EQ(t.destroyed[3].load(), 1);
  // Parked again, then destroyed with the PerCpu.
  ASSERT_TRUE(d.bring_to(3, kStateBringup - 1).ok());
  EXPECT_EQ(t.live.load(), 3);
}

TEST(PerCpuOnline, ManyPerCpusShareOneState) {
  Domain d(4, 4);
  std::vector<std::unique_ptr<PerCpu<int>>> all;
  for (int i = 0; i < 64; ++i) {  // more than the 20 dynamic PREPARE slots
    auto r = PerCpu<int>::create(d, "n" + std::to_string(i), PerCpuPolicy::kOnline,
                                 {[i](unsigned) { return i; }, nullptr});
    ASSERT_TRUE(r.ok()) << r.error().message();
    all.push_back(std::move(*r));
  }
  int percpu_states = 0;
  for (const StateInfo& s : d.states())
    if (s.name == kPerCpuStateName) {
      ++percpu_states;
      EXPECT_TRUE(s.multi_instance);
    }
  EXPECT_EQ(percpu_states, 1);
  ASSERT_TRUE(d.down(2).ok());
  ASSERT_TRUE(d.up(2).ok());
  rcu::ReadGuard g;
  for (int i = 0; i < 64; ++i) {
    ASSERT_NE(all[i]->get(2), nullptr);
    EXPECT_EQ(*all[i]->get(2), i);
    EXPECT_EQ(all[i]->state(), all[0]->state());
  }
}

TEST(PerCpuOnline, RefusedWhereItWouldDeadlock) {
  Domain d(4, 2);
  {
    rcu::ReadGuard g;
    auto r = PerCpu<int>::create(d, "in-rcu");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Errc::kWouldDeadlock);
    EXPECT_NE(r.error().message().find("in-rcu"), std::string::npos);
    EXPECT_THROW({ PerCpu<int> p(d, "in-rcu"); }, std::system_error);
  }
  {
    ReadLock lock(d.hotplug_lock());
    auto r = PerCpu<int>::create(d, "in-read-lock");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Errc::kWouldDeadlock);
  }
  {
    auto scope = d.register_begin();
    ASSERT_TRUE(scope.ok());
    auto r = PerCpu<int>::create(d, "in-scope");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Errc::kWouldDeadlock);
  }
  Errc in_callback = Errc::kOk;
  auto st = d.setup_state(
      Section::kOnline, "test:makes-percpu",
      [&](unsigned) {
        auto r = PerCpu<int>::create(d, "in-callback");
        in_callback = r.ok() ? Errc::kOk : r.error().code();
        return 0;
      },
      nullptr);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(in_callback, Errc::kWouldDeadlock);
  EXPECT_TRUE(d.remove_state(*st).ok());
  // None of the refusals left anything behind.
  PerCpu<int> fine(d, "fine");
  ASSERT_TRUE(d.up(3).ok());
}

TEST(PerCpuOnline, ValuesWalksOnlineCpusAscending) {
  Domain d(70, 70);  // more than one mask word
  PerCpu<unsigned> pc(d, "walk", PerCpuPolicy::kOnline,
                      {[](unsigned cpu) { return cpu * 3; }, nullptr});
  for (unsigned cpu : {0u, 5u, 63u, 64u, 69u}) ASSERT_TRUE(d.down(cpu).ok());
  std::vector<unsigned> seen;
  {
    rcu::ReadGuard g;
    for (auto [cpu, value] : pc.values()) {
      EXPECT_EQ(value, cpu * 3);
      seen.push_back(cpu);
      value += 1;  // a mutable reference
    }
  }
  std::vector<unsigned> want;
  for (unsigned cpu = 0; cpu < 70; ++cpu)
    if (cpu != 0 && cpu != 5 && cpu != 63 && cpu != 64 && cpu != 69) want.push_back(cpu);
  EXPECT_EQ(seen, want);
  ReadLock lock(d.hotplug_lock());
  EXPECT_EQ(*pc.get(1), 4u);
}

TEST(PerCpuLayout, ValuesDoNotShareCacheLines) {
  Domain d(16, 16);
  PerCpu<char> small(d, "small");
  struct alignas(128) Big {
    char bytes[200];
  };
  PerCpu<Big> big(d, "big");
  rcu::ReadGuard g;
  std::vector<std::uintptr_t> lines;
  for (unsigned cpu = 0; cpu < 16; ++cpu) {
    const auto a = reinterpret_cast<std::uintptr_t>(small.get(cpu));
    EXPECT_EQ(a % 64, 0u);
    lines.push_back(a / 64);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(big.get(cpu)) % 128, 0u);
  }
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(std::adjacent_find(lines.begin(), lines.end()), lines.end());
}

TEST(PerCpuOnline, NonMovableValue) {
  struct Stats {
    explicit Stats(unsigned cpu) : hits(cpu) {}
    std::atomic<long> hits;
    std::mutex mu;
  };
  Domain d(4, 4);
  PerCpu<Stats> pc(d, "stats", PerCpuPolicy::kOnline,
                   {[](unsigned cpu) { return Stats(cpu); }, nullptr});
  rcu::ReadGuard g;
  pc.get(2)->hits.fetch_add(5);
  EXPECT_EQ(pc.get(2)->hits.load(), 7);
}

// ------------------------------------------------------------ possible policy

TEST(PerCpuPossible, BuiltForEveryPossibleCpuAndSurvivesHotplug) {
  Domain d(8, 2);
  Tracker t;
  {
    PerCpu<Tracked> pc(d, "possible", PerCpuPolicy::kPossible, tracked_hooks(t, d));
    EXPECT_EQ(pc.state(), kStateOffline);
    EXPECT_FALSE(has_percpu_state(d)) << "no hook: no state needed";
    EXPECT_EQ(t.live.load(), 8);
    {
      rcu::ReadGuard g;
      for (unsigned cpu = 0; cpu < 8; ++cpu) ASSERT_NE(pc.get(cpu), nullptr) << cpu;
      pc.get(1)->magic = 42;
    }
    ASSERT_TRUE(d.up(5).ok());
    ASSERT_TRUE(d.down(1).ok());
    EXPECT_EQ(t.live.load(), 8);
    rcu::ReadGuard g;
    EXPECT_EQ(pc.get(1)->magic, 42u) << "survives offline";
    std::vector<unsigned> online;
    for (auto [cpu, v] : pc.values()) online.push_back(cpu);
    EXPECT_EQ(online, (std::vector<unsigned>{0, 5}));
    pc.get(1)->magic = kAlive;
  }
  EXPECT_EQ(t.live.load(), 0);
}

TEST(PerCpuPossible, OnOfflineHookRunsAndValueStays) {
  Domain d(4, 4);
  std::vector<unsigned> calls;
  PerCpu<int> pc(d, "possible-hook", PerCpuPolicy::kPossible,
                 {[](unsigned cpu) { return static_cast<int>(cpu); },
                  [&](unsigned cpu, int& v) {
                    EXPECT_FALSE(d.cpu_online(cpu));
                    calls.push_back(cpu);
                    v += 100;
                  }});
  EXPECT_NE(pc.state(), kStateOffline);
  ASSERT_TRUE(d.down(3).ok());
  EXPECT_EQ(calls, std::vector<unsigned>{3});
  rcu::ReadGuard g;
  ASSERT_NE(pc.get(3), nullptr);
  EXPECT_EQ(*pc.get(3), 103);
}

TEST(PerCpuPossible, FailingMakeLeavesNothing) {
  Domain d(4, 1);
  Tracker t;
  auto r = PerCpu<Tracked>::create(d, "bad", PerCpuPolicy::kPossible,
                                   {[&](unsigned cpu) {
                                      if (cpu == 2) throw std::bad_alloc();
                                      return Tracked(&t, &d, cpu);
                                    },
                                    nullptr});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kCallbackFailed);
  EXPECT_EQ(t.live.load(), 0);
}

// ------------------------------------------------------------ this_cpu

TEST(PerCpuThisCpu, MapsOntoTheDomain) {
  EXPECT_EQ(detail::map_cpu(3, 8), 3u);
  EXPECT_EQ(detail::map_cpu(9, 8), 1u);
  EXPECT_EQ(detail::map_cpu(5, 1), 0u);
  Domain d(8, 8);
  for (unsigned c = 1; c < 8; c += 2) ASSERT_TRUE(d.down(c).ok());
  EXPECT_EQ(detail::nearest_online(d.online(), 1), 2u);
  EXPECT_EQ(detail::nearest_online(d.online(), 7), 0u);
  EXPECT_EQ(detail::nearest_online(d.online(), 4), 6u);
}

TEST(PerCpuThisCpu, AlwaysAnOnlineCpusValue) {
  Domain d(3, 3);
  PerCpu<unsigned> pc(d, "self", PerCpuPolicy::kOnline,
                      {[](unsigned cpu) { return cpu; }, nullptr});
  for (unsigned down : {0u, 1u, 2u}) {
    ASSERT_TRUE(d.down(down).ok());
    for (int i = 0; i < 100; ++i) {
      rcu::ReadGuard g;
      unsigned* v = pc.this_cpu();
      ASSERT_NE(v, nullptr);
      EXPECT_NE(*v, down);
      EXPECT_TRUE(d.cpu_online(*v));
      EXPECT_TRUE(d.cpu_online(pc.this_cpu_id()));
    }
    ASSERT_TRUE(d.up(down).ok());
  }
}

TEST(PerCpuThisCpu, FollowsTheThreadsCpuThenTheNearestOnline) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs 2 host CPUs";
  Domain d(8, 8);
  d.set_host_bound(true);
  PerCpu<unsigned> pc(d, "self", PerCpuPolicy::kOnline,
                      {[](unsigned cpu) { return cpu; }, nullptr});
  const bool pinned = on_pinned_thread(1, [&] {
    {
      rcu::ReadGuard g;
      EXPECT_EQ(pc.this_cpu_id(), 1u);
      EXPECT_EQ(*pc.this_cpu(), 1u);
    }
    ASSERT_TRUE(d.down(1).ok());  // this thread's CPU is gone: the next one up
    {
      rcu::ReadGuard g;
      EXPECT_EQ(pc.this_cpu_id(), 2u);
      EXPECT_EQ(*pc.this_cpu(), 2u);
    }
    for (unsigned c = 2; c < 8; ++c) ASSERT_TRUE(d.down(c).ok());
    {
      rcu::ReadGuard g;  // wraps around
      EXPECT_EQ(pc.this_cpu_id(), 0u);
      EXPECT_EQ(*pc.this_cpu(), 0u);
    }
  });
  if (!pinned) GTEST_SKIP() << "cannot pin a thread to host CPU 1";
}

TEST(PerCpuThisCpu, VirtualDomainSmallerThanTheHost) {
  Domain d(1, 1);
  PerCpu<unsigned> pc(d, "one", PerCpuPolicy::kOnline,
                      {[](unsigned cpu) { return cpu + 7; }, nullptr});
  const bool pinned = on_pinned_thread(1, [&] {
    rcu::ReadGuard g;
    EXPECT_EQ(pc.this_cpu_id(), 0u);
    EXPECT_EQ(*pc.this_cpu(), 7u);
  });
  if (!pinned) GTEST_SKIP() << "cannot pin a thread to host CPU 1";
}

// ------------------------------------------------------------ racing hotplug

// Random up / down / bring_to on CPUs 1..n-1 until stopped.
class Storm {
 public:
  Storm(Domain& d, unsigned seed) : d_(d), thread_([this, seed] { run(seed); }) {}
  ~Storm() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  long transitions() const { return transitions_.load(); }

 private:
  void run(unsigned seed) {
    std::mt19937 rng(seed);
    const unsigned n = d_.capacity();
    while (!stop_.load()) {
      const unsigned cpu = 1 + rng() % (n - 1);
      Status s;
      switch (rng() % 4) {
        case 0:
          s = d_.bring_to(cpu, static_cast<StateId>(rng() % kStateBringup));
          break;
        case 1:
          s = d_.down(cpu);
          break;
        default:
          s = d_.up(cpu);
      }
      if (s.ok()) transitions_.fetch_add(1);
    }
  }
  Domain& d_;
  std::atomic<bool> stop_{false};
  std::atomic<long> transitions_{0};
  std::thread thread_;
};

TEST(PerCpuRace, ConstructionEndsWithExactlyTheCpusAtOrPastTheState) {
  Domain d(8, 4);
  Tracker t;
  Storm storm(d, 1);
  const auto until = std::chrono::steady_clock::now() + 300ms;
  int made = 0;
  while (std::chrono::steady_clock::now() < until || made < 20) {
    PerCpu<Tracked> pc(d, "racing", PerCpuPolicy::kOnline, tracked_hooks(t, d));
    ++made;
    ReadLock lock(d.hotplug_lock());  // no transition now
    for (unsigned cpu = 0; cpu < 8; ++cpu) {
      const bool past = *d.cpu_state(cpu) >= pc.state();
      ASSERT_EQ(pc.get_prepared(cpu) != nullptr, past) << "cpu " << cpu;
      ASSERT_EQ(pc.prepared().test(cpu), past) << "cpu " << cpu;
      if (d.cpu_online(cpu)) ASSERT_NE(pc.get(cpu), nullptr) << "cpu " << cpu;
    }
  }
  storm.stop();
  EXPECT_EQ(t.live.load(), 0);
  EXPECT_GT(storm.transitions(), 0);
}

TEST(PerCpuRace, DestructionWhileHotplugRuns) {
  Domain d(8, 4);
  Tracker t;
  Storm storm(d, 2);
  const auto until = std::chrono::steady_clock::now() + 300ms;
  int made = 0;
  while (std::chrono::steady_clock::now() < until || made < 20) {
    auto pc = std::make_unique<PerCpu<Tracked>>(d, "dying", PerCpuPolicy::kOnline,
                                                tracked_hooks(t, d));
    auto possible = std::make_unique<PerCpu<Tracked>>(
        d, "dying-possible", PerCpuPolicy::kPossible,
        PerCpuHooks<Tracked>{[&](unsigned cpu) { return Tracked(&t, &d, cpu); },
                             [](unsigned, Tracked& v) { EXPECT_EQ(v.magic, kAlive); }});
    {
      rcu::ReadGuard g;
      for (auto [cpu, v] : pc->values()) ASSERT_EQ(v.magic, kAlive);
    }
    pc.reset();  // while the storm thread brings CPUs up and down
    possible.reset();
    ++made;
  }
  storm.stop();
  EXPECT_EQ(t.live.load(), 0);
}

}  // namespace
}  // namespace cpuhp
