// Unit tests for cpuhp::PerCpuThreads (include/cpuhp/percpu_threads.h), the
// kernel's smpboot: one worker per online CPU, parked on the way down,
// unparked on the way up. Most checks run on a recorded trace: every hook
// records what it saw (its CPU's online bit, its thread), and the per-CPU
// sequence must read setup, run*, (park, unpark, run*)*, [park], cleanup.
#include "cpuhp/percpu_threads.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/domain.h"
#include "support/os_state.h"
#include "support/status_matchers.h"
#include "support/waiting.h"

namespace cpuhp {
namespace {

using testing_support::Fails;
using testing_support::state_of;
using testing_support::Succeeds;

using namespace std::chrono_literals;
using cpuhp::testing_support::eventually;
using cpuhp::testing_support::settles_to;
using cpuhp::testing_support::task_comm;
using cpuhp::testing_support::threads_named_settle_to;

// ------------------------------------------------------------------ helpers

pid_t this_tid() { return static_cast<pid_t>(gettid()); }

bool has_state(const Domain& d, const std::string& name) {
  for (const StateInfo& s : d.states())
    if (s.name == name) return true;
  return false;
}

// ------------------------------------------------------------------ trace

enum class Ev { kSetup, kRun, kPark, kUnpark, kCleanup };

const char* ev_name(Ev e) {
  switch (e) {
    case Ev::kSetup:
      return "setup";
    case Ev::kRun:
      return "run";
    case Ev::kPark:
      return "park";
    case Ev::kUnpark:
      return "unpark";
    case Ev::kCleanup:
      return "cleanup";
  }
  return "?";
}

struct Record {
  Ev ev;
  bool online;  // the CPU's online bit, as the hook saw it
  pid_t tid;
};

// Records every hook, per CPU; consecutive runs collapse into one record.
class Trace {
 public:
  explicit Trace(Domain& d) : d_(d), per_cpu_(d.capacity()) {}

  void add(unsigned cpu, Ev ev) {
    const Record r{ev, d_.cpu_online(cpu), this_tid()};
    std::lock_guard g(mu_);
    auto& v = per_cpu_.at(cpu);
    if (ev == Ev::kRun && !v.empty() && v.back().ev == Ev::kRun) {
      if (!r.online) v.back().online = false;  // keep the violation
      return;
    }
    v.push_back(r);
  }

  std::vector<Record> of(unsigned cpu) const {
    std::lock_guard g(mu_);
    return per_cpu_.at(cpu);
  }

  std::string text(unsigned cpu) const {
    std::string out;
    for (const Record& r : of(cpu)) {
      out += ev_name(r.ev);
      if (!r.online) out += "(offline!)";
      out += ' ';
    }
    return out;
  }

  // Every hook of the CPU saw the bit set, on one thread, in the order
  //   setup run* (park (unpark run*)?)* cleanup   (when `finished`)
  // with park and unpark alternating.
  testing::AssertionResult valid(unsigned cpu, bool finished) const {
    const std::vector<Record> v = of(cpu);
    if (v.empty()) return testing::AssertionSuccess();
    enum { kNone, kRunning, kParked, kDone } st = kNone;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const Record& r = v[i];
      auto bad = [&](const char* why) {
        return testing::AssertionFailure()
               << "CPU " << cpu << ", event " << i << " (" << ev_name(r.ev)
               << "): " << why << "; trace: " << text(cpu);
      };
      if (r.tid != v[0].tid) return bad("not on the CPU's worker thread");
      if (r.ev != Ev::kCleanup && !r.online) return bad("the CPU was offline");
      switch (r.ev) {
        case Ev::kSetup:
          if (st != kNone) return bad("setup twice");
          st = kRunning;
          break;
        case Ev::kRun:
          if (st != kRunning) return bad("run while not running");
          break;
        case Ev::kPark:
          if (st != kRunning) return bad("park while not running");
          st = kParked;
          break;
        case Ev::kUnpark:
          if (st != kParked) return bad("unpark while not parked");
          st = kRunning;
          break;
        case Ev::kCleanup:
          if (st != kParked) return bad("cleanup while not parked");
          st = kDone;
          break;
      }
    }
    if (finished && st != kDone)
      return testing::AssertionFailure()
             << "CPU " << cpu << ": no cleanup at the end; trace: " << text(cpu);
    return testing::AssertionSuccess();
  }

 private:
  Domain& d_;
  mutable std::mutex mu_;
  std::vector<std::vector<Record>> per_cpu_;
};

// Hooks that record into `trace`; should_run says yes while work[cpu] > 0 and
// run consumes one unit.
struct Recorded {
  explicit Recorded(Domain& d) : trace(d), work(d.capacity()), runs(d.capacity()) {}

  PerCpuThreads::Hooks hooks() {
    PerCpuThreads::Hooks h;
    h.setup = [this](unsigned cpu) {
      trace.add(cpu, Ev::kSetup);
      return 0;
    };
    h.should_run = [this](unsigned cpu) {
      should_run_calls.fetch_add(1);
      return work[cpu].load() > 0;
    };
    h.run = [this](unsigned cpu) {
      trace.add(cpu, Ev::kRun);
      work[cpu].fetch_sub(1);
      runs[cpu].fetch_add(1);
    };
    h.park = [this](unsigned cpu) { trace.add(cpu, Ev::kPark); };
    h.unpark = [this](unsigned cpu) { trace.add(cpu, Ev::kUnpark); };
    h.cleanup = [this](unsigned cpu) { trace.add(cpu, Ev::kCleanup); };
    return h;
  }

  Trace trace;
  std::vector<std::atomic<int>> work;
  std::vector<std::atomic<long>> runs;
  std::atomic<long> should_run_calls{0};
};

// ------------------------------------------------------------------ basics

TEST(PerCpuThreads, OneWorkerPerOnlineCpuNamedAndInstalled) {
  Domain d(8, 4);
  Recorded rec(d);
  auto t = PerCpuThreads::create(d, "ut-basic", rec.hooks());
  ASSERT_TRUE(Succeeds(t));
  EXPECT_TRUE(has_state(d, "smpboot:ut-basic"));
  EXPECT_EQ((*t)->name(), "ut-basic");
  EXPECT_GE((*t)->state(), kStateOnlineDyn);
  EXPECT_LE((*t)->state(), kStateOnlineDynEnd);
  EXPECT_TRUE(threads_named_settle_to("ut-basic", 4));
  std::set<pid_t> tids;
  for (unsigned cpu = 0; cpu < 8; ++cpu) {
    const auto v = rec.trace.of(cpu);
    if (cpu < 4) {
      ASSERT_EQ(v.size(), 1u) << rec.trace.text(cpu);
      EXPECT_EQ(v[0].ev, Ev::kSetup);
      EXPECT_NE(v[0].tid, this_tid()) << "setup must run on the worker thread";
      tids.insert(v[0].tid);
    } else {
      EXPECT_TRUE(v.empty()) << rec.trace.text(cpu);
    }
  }
  EXPECT_EQ(tids.size(), 4u) << "one thread per CPU";
  // Work on every online CPU gets done.
  for (unsigned cpu = 0; cpu < 4; ++cpu) {
    rec.work[cpu] = 3;
    (*t)->wake(cpu);
  }
  EXPECT_TRUE(eventually([&] {
    for (unsigned cpu = 0; cpu < 4; ++cpu)
      if (rec.runs[cpu].load() != 3) return false;
    return true;
  }));
  // Bringing a CPU up starts its worker.
  ASSERT_TRUE(Succeeds(d.up(6)));
  EXPECT_TRUE(threads_named_settle_to("ut-basic", 5));
  t->reset();
  EXPECT_FALSE(has_state(d, "smpboot:ut-basic"));
  EXPECT_TRUE(threads_named_settle_to("ut-basic", 0));
  for (unsigned cpu : {0u, 1u, 2u, 3u, 6u}) EXPECT_TRUE(rec.trace.valid(cpu, true));
}

TEST(PerCpuThreads, BadArgumentsAreRefused) {
  Domain d(4, 2);
  Recorded rec(d);
  auto h = rec.hooks();
  h.run = nullptr;
  EXPECT_TRUE(Fails(PerCpuThreads::create(d, "ut-bad", h), Errc::kInvalidArgument,
                    {"ut-bad", "run"}));
  h = rec.hooks();
  h.should_run = nullptr;
  EXPECT_TRUE(Fails(PerCpuThreads::create(d, "ut-bad", h), Errc::kInvalidArgument,
                    {"should_run"}));
  EXPECT_TRUE(
      Fails(PerCpuThreads::create(d, "", rec.hooks()), Errc::kInvalidArgument, {"name"}));
  // The same name twice: the Domain refuses the second state.
  auto first = PerCpuThreads::create(d, "ut-dup", rec.hooks());
  ASSERT_TRUE(Succeeds(first));
  Recorded rec2(d);
  EXPECT_TRUE(Fails(PerCpuThreads::create(d, "ut-dup", rec2.hooks()), Errc::kBusy,
                    {"smpboot:ut-dup"}));
  EXPECT_TRUE(threads_named_settle_to("ut-dup", 2)) << "the refused one left no thread";
  for (unsigned cpu = 0; cpu < 4; ++cpu) EXPECT_TRUE(rec2.trace.of(cpu).empty());
  // wake() of a CPU without a worker, or out of range: a no-op.
  (*first)->wake(3);
  (*first)->wake(4);
  (*first)->wake(~0u);
}

TEST(PerCpuThreads, CreateRefusedWhereItWouldDeadlock) {
  Domain d(4, 2);
  Recorded rec(d);
  {
    ReadLock g(d.hotplug_lock());
    EXPECT_TRUE(Fails(PerCpuThreads::create(d, "ut-dl", rec.hooks()),
                      Errc::kWouldDeadlock, {"ut-dl"}));
  }
  // From inside a hotplug callback.
  Result<std::unique_ptr<PerCpuThreads>> inner =
      Error(Errc::kOk, "not called");  // replaced by the callback
  auto id = d.setup_state_nocalls(
      Section::kOnline, "ut:inner",
      [&](unsigned) {
        inner = PerCpuThreads::create(d, "ut-dl", rec.hooks());
        return 0;
      },
      nullptr);
  ASSERT_TRUE(Succeeds(id));
  ASSERT_TRUE(Succeeds(d.up(2)));
  EXPECT_TRUE(Fails(inner, Errc::kWouldDeadlock));
  EXPECT_TRUE(threads_named_settle_to("ut-dl", 0));
  EXPECT_FALSE(has_state(d, "smpboot:ut-dl"));
}

TEST(PerCpuThreads, ThreadNameKeepsTheCpuSuffix) {
  EXPECT_EQ(PerCpuThreads::thread_name("ksoftirqd", 3), "ksoftirqd/3");
  EXPECT_EQ(PerCpuThreads::thread_name("averyverylongname", 7), "averyverylong/7");
  EXPECT_EQ(PerCpuThreads::thread_name("averyverylongname", 8191), "averyveryl/8191");
  EXPECT_EQ(PerCpuThreads::thread_name("x", 0), "x/0");
  for (unsigned cpu : {0u, 9u, 99u, 999u, 8191u})
    EXPECT_LE(PerCpuThreads::thread_name("0123456789abcdefghij", cpu).size(), 15u);
}

TEST(PerCpuThreads, ThreadsAreNamedNameSlashCpu) {
  Domain d(16, 12);
  std::vector<std::atomic<pid_t>> tid(16);
  PerCpuThreads::Hooks h;
  h.setup = [&](unsigned cpu) {
    tid[cpu] = this_tid();
    return 0;
  };
  h.should_run = [](unsigned) { return false; };
  h.run = [](unsigned) {};
  auto t = PerCpuThreads::create(d, "averyverylongname", h);
  ASSERT_TRUE(Succeeds(t));
  for (unsigned cpu = 0; cpu < 12; ++cpu) {
    const std::string want =
        (cpu < 10 ? "averyverylong/" : "averyverylon/") + std::to_string(cpu);
    EXPECT_EQ(PerCpuThreads::thread_name("averyverylongname", cpu), want);
    EXPECT_TRUE(settles_to(
        "the name of CPU " + std::to_string(cpu) + "'s worker",
        [&] { return task_comm(tid[cpu].load()); }, want));
  }
}

TEST(PerCpuThreads, WorkersBlockAllSignals) {
  Domain d(2, 2);
  std::atomic<int> checked{0};
  std::mutex mu;
  std::vector<std::string> unblocked;
  PerCpuThreads::Hooks h;
  h.should_run = [&](unsigned cpu) { return cpu == 1 && checked.load() == 0; };
  h.run = [&](unsigned) {
    sigset_t mask;
    sigemptyset(&mask);
    ASSERT_EQ(pthread_sigmask(SIG_BLOCK, nullptr, &mask), 0);
    std::lock_guard g(mu);
    for (int sig = 1; sig < 32; ++sig)
      if (sig != SIGKILL && sig != SIGSTOP && sigismember(&mask, sig) != 1)
        unblocked.push_back(strsignal(sig));
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; ++sig)
      if (sigismember(&mask, sig) != 1)
        unblocked.push_back("SIGRT " + std::to_string(sig));
    checked = 1;
  };
  auto t = PerCpuThreads::create(d, "ut-sig", h);
  ASSERT_TRUE(Succeeds(t));
  (*t)->wake(1);
  ASSERT_TRUE(eventually([&] { return checked.load() == 1; }));
  std::lock_guard g(mu);
  EXPECT_TRUE(unblocked.empty()) << "not blocked in the worker: " << unblocked.front();
  // The creating thread's own mask is untouched.
  sigset_t mine;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, nullptr, &mine), 0);
  EXPECT_EQ(sigismember(&mine, SIGUSR1), 0);
}

// ------------------------------------------------------------------ ordering

TEST(PerCpuThreads, ParkUnparkOrderingFollowsTheOnlineBit) {
  Domain d(4, 4);
  Recorded rec(d);
  auto h = rec.hooks();
  // Check the promise directly too: park before the bit clears (and after the
  // active bit cleared: ONLINE teardowns run below kStateActive), unpark after
  // it is set.
  std::atomic<int> bad{0};
  std::atomic<bool> cycling{true};
  h.park = [&](unsigned cpu) {
    // (remove_state() at the end parks active CPUs: only downs clear it first.)
    if (!d.cpu_online(cpu) || (cycling.load() && d.active().test(cpu))) bad.fetch_add(1);
    rec.trace.add(cpu, Ev::kPark);
  };
  h.unpark = [&](unsigned cpu) {
    if (!d.cpu_online(cpu) || d.active().test(cpu)) bad.fetch_add(1);
    rec.trace.add(cpu, Ev::kUnpark);
  };
  auto t = PerCpuThreads::create(d, "ut-order", h);
  ASSERT_TRUE(Succeeds(t));
  for (int round = 0; round < 5; ++round) {
    for (unsigned cpu = 1; cpu < 4; ++cpu) {
      rec.work[cpu] += 2;
      (*t)->wake(cpu);
    }
    for (unsigned cpu = 1; cpu < 4; ++cpu) ASSERT_TRUE(Succeeds(d.down(cpu)));
    for (unsigned cpu = 1; cpu < 4; ++cpu) ASSERT_TRUE(Succeeds(d.up(cpu)));
  }
  EXPECT_TRUE(eventually([&] {
    for (unsigned cpu = 1; cpu < 4; ++cpu)
      if (rec.work[cpu].load() != 0) return false;
    return true;
  })) << "work queued before a park is done after the unpark";
  cycling = false;
  t->reset();
  EXPECT_EQ(bad.load(), 0);
  for (unsigned cpu = 0; cpu < 4; ++cpu) EXPECT_TRUE(rec.trace.valid(cpu, true));
  // CPU 1 went down and up 5 times: 5 parks, 5 unparks, then the final park.
  int parks = 0, unparks = 0;
  for (const Record& r : rec.trace.of(1)) {
    parks += r.ev == Ev::kPark;
    unparks += r.ev == Ev::kUnpark;
  }
  EXPECT_EQ(parks, 6) << rec.trace.text(1);
  EXPECT_EQ(unparks, 5) << rec.trace.text(1);
  EXPECT_EQ(rec.trace.of(1).front().ev, Ev::kSetup);
  EXPECT_EQ(rec.trace.of(1).back().ev, Ev::kCleanup);
}

TEST(PerCpuThreads, RunNeverSeesAnOfflineCpu) {
  Domain d(4, 4);
  std::atomic<long> runs{0}, offline_runs{0};
  std::atomic<bool> go{true};
  PerCpuThreads::Hooks h;
  // Always work to do: the workers run back to back, and each down must
  // interrupt them.
  h.should_run = [&](unsigned cpu) {
    if (!d.cpu_online(cpu)) offline_runs.fetch_add(1);
    return go.load();
  };
  h.run = [&](unsigned cpu) {
    EXPECT_TRUE(d.cpu_online(cpu)) << "run() for offline CPU " << cpu;
    if (!d.cpu_online(cpu)) offline_runs.fetch_add(1);
    runs.fetch_add(1);
    std::this_thread::sleep_for(20us);
  };
  auto t = PerCpuThreads::create(d, "ut-online", h);
  ASSERT_TRUE(Succeeds(t));
  std::mt19937 rng(1);
  for (int i = 0; i < 200; ++i) {
    const unsigned cpu = 1 + rng() % 3;
    if (d.cpu_online(cpu)) {
      ASSERT_TRUE(Succeeds(d.down(cpu)));
    } else {
      ASSERT_TRUE(Succeeds(d.up(cpu)));
    }
  }
  go = false;
  t->reset();
  EXPECT_EQ(offline_runs.load(), 0);
  EXPECT_GT(runs.load(), 0);
}

TEST(PerCpuThreads, PartialBringupDoesNotUnpark) {
  Domain d(4, 2);
  Recorded rec(d);
  auto t = PerCpuThreads::create(d, "ut-partial", rec.hooks());
  ASSERT_TRUE(Succeeds(t));
  // Online bit set, but the CPU stops below the ONLINE section's states.
  ASSERT_TRUE(Succeeds(d.bring_to(2, kStateBringup)));
  EXPECT_TRUE(d.cpu_online(2));
  EXPECT_TRUE(rec.trace.of(2).empty());
  ASSERT_TRUE(Succeeds(d.up(2)));
  ASSERT_EQ(rec.trace.of(2).size(), 1u);
  // Down to just above the bit: parked, bit still set.
  ASSERT_TRUE(Succeeds(d.bring_to(2, kStateBringup)));
  EXPECT_EQ(rec.trace.of(2).back().ev, Ev::kPark);
  rec.work[2] = 1;
  (*t)->wake(2);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(rec.runs[2].load(), 0) << "a parked worker must not run";
  ASSERT_TRUE(Succeeds(d.up(2)));
  EXPECT_TRUE(eventually([&] { return rec.runs[2].load() == 1; }))
      << "the wake that came while parked is not lost";
  t->reset();
  EXPECT_TRUE(rec.trace.valid(2, true));
}

TEST(PerCpuThreads, LaterStateFailureParksAgain) {
  Domain d(4, 2);
  Recorded rec(d);
  auto t = PerCpuThreads::create(d, "ut-rollback", rec.hooks());
  ASSERT_TRUE(Succeeds(t));
  // A state after ours (dynamic ONLINE slots are handed out in order).
  auto later = d.setup_state(
      Section::kOnline, "ut:later", [](unsigned) { return 0; }, nullptr);
  ASSERT_TRUE(Succeeds(later));
  ASSERT_GT(*later, (*t)->state());
  ASSERT_TRUE(Succeeds(d.inject_failure(3, *later)));
  EXPECT_TRUE(Fails(d.up(3), Errc::kCallbackFailed, {"CPU 3"}));
  EXPECT_FALSE(d.cpu_online(3));
  // The worker was started, then parked by the rollback.
  const auto v = rec.trace.of(3);
  ASSERT_EQ(v.size(), 2u) << rec.trace.text(3);
  EXPECT_EQ(v[0].ev, Ev::kSetup);
  EXPECT_EQ(v[1].ev, Ev::kPark);
  // A failure injected into our own state: the worker is not even unparked.
  ASSERT_TRUE(Succeeds(d.inject_failure(3, (*t)->state())));
  EXPECT_TRUE(Fails(d.up(3), Errc::kCallbackFailed));
  EXPECT_EQ(rec.trace.of(3).size(), 2u) << rec.trace.text(3);
  ASSERT_TRUE(Succeeds(d.up(3)));
  EXPECT_EQ(rec.trace.of(3).back().ev, Ev::kUnpark);
  ASSERT_TRUE(Succeeds(d.remove_state(*later)));
  t->reset();
  for (unsigned cpu = 0; cpu < 4; ++cpu) EXPECT_TRUE(rec.trace.valid(cpu, true));
}

// ------------------------------------------------------------------ wake

TEST(PerCpuThreads, WakeRunsASleepingWorkerWithoutPolling) {
  Domain d(2, 2);
  Recorded rec(d);
  std::atomic<pid_t> tid{0};
  auto h = rec.hooks();
  h.setup = [&](unsigned cpu) {
    if (cpu == 1) tid = this_tid();
    rec.trace.add(cpu, Ev::kSetup);
    return 0;
  };
  auto t = PerCpuThreads::create(d, "ut-wake", h);
  ASSERT_TRUE(Succeeds(t));
  for (int round = 0; round < 20; ++round) {
    // Idle: each worker asked should_run() once after setup (2 calls), and
    // each earlier round cost CPU 1's worker a yes and a no. Nobody calls it
    // again until a wake: no polling.
    const long before = 2 + 2L * round;
    ASSERT_TRUE(eventually([&] { return rec.should_run_calls.load() >= before; }));
    std::this_thread::sleep_for(round == 0 ? 100ms : 2ms);
    ASSERT_EQ(rec.should_run_calls.load(), before) << "an idle worker polled";
    if (round == 0) {
      // The worker sleeps in the kernel (futex): state 'S'.
      std::string stat;
      EXPECT_TRUE(eventually([&] {
        std::ifstream f("/proc/self/task/" + std::to_string(tid.load()) + "/stat");
        std::getline(f, stat);
        const auto paren = stat.rfind(')');
        return paren != std::string::npos && stat.substr(paren + 2, 1) == "S";
      })) << stat;
    }
    rec.work[1] = 1;
    (*t)->wake(1);
    ASSERT_TRUE(eventually([&] { return rec.runs[1].load() == round + 1; }))
        << "round " << round << ": the wake did not run the worker";
  }
  EXPECT_EQ(rec.runs[0].load(), 0);
}

// ------------------------------------------------------------------ setup fails

TEST(PerCpuThreads, SetupThrowingRollsBackCreation) {
  Domain d(4, 4);
  Recorded rec(d);
  auto h = rec.hooks();
  h.setup = [&](unsigned cpu) -> int {
    if (cpu == 2) throw std::runtime_error("no memory for the ring");
    rec.trace.add(cpu, Ev::kSetup);
    return 0;
  };
  auto t = PerCpuThreads::create(d, "ut-throw", h);
  EXPECT_TRUE(Fails(t, Errc::kCallbackFailed,
                    {"ut-throw", "CPU 2", "no memory for the ring", "not installed"}));
  EXPECT_EQ(t.error().cause(), -ECANCELED);
  EXPECT_FALSE(has_state(d, "smpboot:ut-throw"));
  EXPECT_TRUE(threads_named_settle_to("ut-throw", 0)) << "no thread left behind";
  // CPUs 0 and 1 were set up, parked by the rollback and cleaned up; CPU 3
  // was never started.
  for (unsigned cpu : {0u, 1u}) {
    const auto v = rec.trace.of(cpu);
    ASSERT_EQ(v.size(), 3u) << rec.trace.text(cpu);
    EXPECT_EQ(v[0].ev, Ev::kSetup);
    EXPECT_EQ(v[1].ev, Ev::kPark);
    EXPECT_EQ(v[2].ev, Ev::kCleanup);
  }
  EXPECT_TRUE(rec.trace.of(2).empty());
  EXPECT_TRUE(rec.trace.of(3).empty());
  // The name is free again.
  Recorded rec2(d);
  EXPECT_TRUE(Succeeds(PerCpuThreads::create(d, "ut-throw", rec2.hooks())));
}

TEST(PerCpuThreads, SetupErrnoIsTheCause) {
  Domain d(4, 2);
  Recorded rec(d);
  auto h = rec.hooks();
  h.setup = [](unsigned cpu) { return cpu == 0 ? -EIO : 0; };
  auto t = PerCpuThreads::create(d, "ut-eio", h);
  EXPECT_TRUE(Fails(t, Errc::kCallbackFailed, {"CPU 0", "-5"}));
  EXPECT_EQ(t.error().cause(), -EIO);
  EXPECT_FALSE(has_state(d, "smpboot:ut-eio"));
  EXPECT_TRUE(threads_named_settle_to("ut-eio", 0));
}

TEST(PerCpuThreads, SetupFailingOnUpRollsBackThatCpuAndIsRetried) {
  Domain d(4, 2);
  Recorded rec(d);
  std::atomic<bool> fail{true};
  auto h = rec.hooks();
  h.setup = [&](unsigned cpu) {
    if (cpu == 3 && fail.load()) return -ENOMEM;
    rec.trace.add(cpu, Ev::kSetup);
    return 0;
  };
  auto t = PerCpuThreads::create(d, "ut-upfail", h);
  ASSERT_TRUE(Succeeds(t));
  EXPECT_TRUE(Fails(d.up(3), Errc::kCallbackFailed, {"CPU 3", "ut-upfail/3"}));
  EXPECT_FALSE(d.cpu_online(3));
  EXPECT_TRUE(threads_named_settle_to("ut-upfail", 2));
  fail = false;
  ASSERT_TRUE(Succeeds(d.up(3)));
  EXPECT_TRUE(threads_named_settle_to("ut-upfail", 3));
  rec.work[3] = 1;
  (*t)->wake(3);
  EXPECT_TRUE(eventually([&] { return rec.runs[3].load() == 1; }));
  t->reset();
  EXPECT_TRUE(rec.trace.valid(3, true));
}

// ------------------------------------------------------------------ stop

TEST(PerCpuThreads, StopFromAWorkerIsRefused) {
  Domain d(2, 2);
  std::atomic<PerCpuThreads*> self{nullptr};
  std::atomic<int> done{0};
  std::optional<Status> from_worker;
  PerCpuThreads::Hooks h;
  h.should_run = [&](unsigned cpu) { return cpu == 0 && self.load() && !done.load(); };
  h.run = [&](unsigned) {
    from_worker = self.load()->stop();
    done = 1;
  };
  auto t = PerCpuThreads::create(d, "ut-self", h);
  ASSERT_TRUE(Succeeds(t));
  self = t->get();
  (*t)->wake(0);
  ASSERT_TRUE(eventually([&] { return done.load() == 1; }));
  ASSERT_TRUE(from_worker.has_value());
  EXPECT_TRUE(Fails(*from_worker, Errc::kWouldDeadlock, {"ut-self", "own worker"}));
  EXPECT_TRUE(Succeeds((*t)->stop()));
  EXPECT_TRUE(Succeeds((*t)->stop())) << "idempotent";
  EXPECT_FALSE(has_state(d, "smpboot:ut-self"));
  EXPECT_TRUE(threads_named_settle_to("ut-self", 0));
}

TEST(PerCpuThreads, DestructionWhileHotplugStorms) {
  Domain d(8, 8);
  for (int round = 0; round < 10; ++round) {
    Recorded rec(d);
    auto t = PerCpuThreads::create(d, "ut-storm", rec.hooks());
    ASSERT_TRUE(Succeeds(t));
    std::atomic<bool> stop{false};
    std::atomic<long> cycles{0};
    std::thread storm([&] {
      std::mt19937 rng(round);
      while (!stop.load()) {
        const unsigned cpu = 1 + rng() % 7;
        (void)(d.cpu_online(cpu) ? d.down(cpu) : d.up(cpu));
        cycles.fetch_add(1);
      }
    });
    std::thread waker([&] {
      std::mt19937 rng(round + 100);
      while (!stop.load()) {
        const unsigned cpu = rng() % 8;
        rec.work[cpu].fetch_add(1);
        (*t)->wake(cpu);
        std::this_thread::sleep_for(50us);
      }
    });
    ASSERT_TRUE(eventually([&] { return cycles.load() >= 5; }));
    // Destroy mid-storm: the storm and the wakes go on meanwhile.
    (*t)->stop().ok() ? void() : ADD_FAILURE() << "stop() failed";
    stop = true;
    storm.join();
    waker.join();
    t->reset();
    EXPECT_TRUE(threads_named_settle_to("ut-storm", 0));
    EXPECT_FALSE(has_state(d, "smpboot:ut-storm"));
    for (unsigned cpu = 0; cpu < 8; ++cpu)
      EXPECT_TRUE(rec.trace.valid(cpu, true)) << "round " << round;
  }
}

TEST(PerCpuThreadsDeathTest, AHookThatThrowsIsFatalAndNamed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Domain d(2, 2);
        std::atomic<bool> go{false};
        PerCpuThreads::Hooks h;
        h.should_run = [&](unsigned cpu) { return cpu == 1 && go.load(); };
        h.run = [](unsigned) { throw std::logic_error("bad work item"); };
        auto t = PerCpuThreads::create(d, "ut-throwrun", h);
        if (!t.ok()) std::abort();
        go = true;
        (*t)->wake(1);
        std::this_thread::sleep_for(10s);
      },
      "ut-throwrun/1.*CPU 1.*run\\(\\) threw: bad work item");
}

// ------------------------------------------------------------------ pinning

bool process_may_run_on(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return false;
  return cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set);
}

TEST(PerCpuThreads, HostBoundWorkersArePinnedAndRepinned) {
  for (unsigned cpu : {0u, 1u})
    if (!process_may_run_on(cpu))
      GTEST_SKIP() << "this process may not run on CPU " << cpu;
  Domain d(2, 2);
  d.set_host_bound(true);
  std::vector<std::atomic<int>> where(2);
  std::vector<std::atomic<int>> mask_ok(2);
  std::vector<std::atomic<int>> work(2);
  std::vector<std::atomic<long>> runs(2);
  PerCpuThreads::Hooks h;
  h.should_run = [&](unsigned cpu) { return work[cpu].load() > 0; };
  h.run = [&](unsigned cpu) {
    where[cpu] = sched_getcpu();
    cpu_set_t set;
    CPU_ZERO(&set);
    (void)pthread_getaffinity_np(pthread_self(), sizeof set, &set);
    mask_ok[cpu] = CPU_COUNT(&set) == 1 && CPU_ISSET(cpu, &set);
    work[cpu].fetch_sub(1);
    runs[cpu].fetch_add(1);
  };
  // A real offline breaks the affinity; simulate it while parked.
  h.park = [](unsigned) {
    cpu_set_t all;
    CPU_ZERO(&all);
    CPU_SET(0, &all);
    CPU_SET(1, &all);
    (void)pthread_setaffinity_np(pthread_self(), sizeof all, &all);
  };
  auto t = PerCpuThreads::create(d, "ut-pin", h);
  ASSERT_TRUE(Succeeds(t));
  for (int round = 0; round < 3; ++round) {
    for (unsigned cpu : {0u, 1u}) {
      where[cpu] = -1;
      work[cpu] = 1;
      (*t)->wake(cpu);
    }
    ASSERT_TRUE(eventually(
        [&] { return runs[0].load() == round + 1 && runs[1].load() == round + 1; }));
    for (unsigned cpu : {0u, 1u}) {
      EXPECT_EQ(where[cpu].load(), static_cast<int>(cpu)) << "round " << round;
      EXPECT_TRUE(mask_ok[cpu].load()) << "CPU " << cpu << " round " << round;
    }
    ASSERT_TRUE(Succeeds(d.down(1)));
    ASSERT_TRUE(Succeeds(d.up(1)));
  }
}

TEST(PerCpuThreads, VirtualDomainWorkersAreNotPinned) {
  Domain d(64, 64);  // host_bound() false: CPU ids are virtual
  std::atomic<int> count{0};
  PerCpuThreads::Hooks h;
  h.setup = [&](unsigned) {
    count.fetch_add(1);
    return 0;
  };
  h.should_run = [](unsigned) { return false; };
  h.run = [](unsigned) {};
  auto t = PerCpuThreads::create(d, "ut-virt", h);
  ASSERT_TRUE(Succeeds(t));
  EXPECT_EQ(count.load(), 64);
}

TEST(PerCpuThreads, PinningFailureIsReported) {
  // A host-bound domain claiming more CPUs than the machine has.
  unsigned first_bad = 0;
  while (first_bad < 64 && process_may_run_on(first_bad)) ++first_bad;
  if (first_bad == 64) GTEST_SKIP() << "this machine lets us run on 64 CPUs";
  Domain d(64, 64);
  d.set_host_bound(true);
  Recorded rec(d);
  auto t = PerCpuThreads::create(d, "ut-pinfail", rec.hooks());
  const std::string cpu_text = "CPU " + std::to_string(first_bad);
  EXPECT_TRUE(Fails(t, Errc::kSystem,
                    {"ut-pinfail", cpu_text, "pthread_setaffinity_np", "errno 22"}));
  EXPECT_EQ(t.error().cause(), -EINVAL);
  EXPECT_FALSE(has_state(d, "smpboot:ut-pinfail"));
  EXPECT_TRUE(threads_named_settle_to("ut-pinfail", 0));
}

TEST(PerCpuThreads, PinningFailureOnUpIsReported) {
  for (unsigned cpu : {0u, 1u})
    if (!process_may_run_on(cpu))
      GTEST_SKIP() << "this process may not run on CPU " << cpu;
  if (process_may_run_on(40)) GTEST_SKIP() << "this machine has a CPU 40";
  Domain d(64, 2);
  d.set_host_bound(true);
  Recorded rec(d);
  auto t = PerCpuThreads::create(d, "ut-pin40", rec.hooks());
  ASSERT_TRUE(Succeeds(t));
  EXPECT_TRUE(Fails(d.up(40), Errc::kCallbackFailed,
                    {"CPU 40", "ut-pin40/40", "Invalid argument", "errno 22"}));
  EXPECT_FALSE(d.cpu_online(40));
  EXPECT_TRUE(rec.trace.of(40).empty()) << "setup must not run unpinned";
  EXPECT_TRUE(threads_named_settle_to("ut-pin40", 2));
}

TEST(PerCpuThreads, RepinningFailureOnUnparkIsReportedAndStaysParked) {
  if (process_may_run_on(40)) GTEST_SKIP() << "this machine has a CPU 40";
  // Workers started unpinned; the domain then claims to be the machine's
  // (set_host_bound() is read by the controlling thread only, here this one).
  Domain d(64, 64);
  Recorded rec(d);
  auto t = PerCpuThreads::create(d, "ut-repin", rec.hooks());
  ASSERT_TRUE(Succeeds(t));
  ASSERT_TRUE(Succeeds(d.down(40)));
  d.set_host_bound(true);
  EXPECT_TRUE(
      Fails(d.up(40), Errc::kCallbackFailed, {"CPU 40", "ut-repin/40", "errno 22"}));
  EXPECT_FALSE(d.cpu_online(40));
  EXPECT_EQ(rec.trace.of(40).back().ev, Ev::kPark) << "stays parked, no unpark()";
  d.set_host_bound(false);
  ASSERT_TRUE(Succeeds(d.up(40)));
  EXPECT_EQ(rec.trace.of(40).back().ev, Ev::kUnpark);
  t->reset();
  EXPECT_TRUE(rec.trace.valid(40, true));
}

}  // namespace
}  // namespace cpuhp
