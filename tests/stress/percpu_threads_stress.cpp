// Stress test of cpuhp::PerCpuThreads: per-CPU workers while CPUs come and go.
//
// Duration: CPUHP_STRESS_SECONDS (default 2) for the storm phase.
//
// Threads, all on one Domain of 16 CPUs:
//   storm      random up / down / bring_to(kStateBringup) on CPUs 1-15; now and
//              then injects a failure into the workers' state or into a state
//              above it (the up then fails and rolls back: the worker must stay
//              or go back to parked).
//   wakers     queue work for random CPUs and wake() them.
//   workers    (one PerCpuThreads, for the whole run) run() checks that its
//              CPU's online bit is set and that it runs on that CPU's thread,
//              and consumes one unit of work per call.
//   registrar  creates and destroys a second PerCpuThreads over and over, mid-
//              storm; its setup() fails now and then. A failed create must
//              leave no thread and no state; every destroyed instance's trace
//              must read, per CPU, setup run* (park unpark run*)* park cleanup.
// After the storm every CPU is brought up and every queued unit of work must
// be done (no lost wake-up), then the main instance is destroyed and its
// trace checked the same way.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/percpu_threads.h"
#include "support/os_state.h"
#include "support/stress.h"

namespace cpuhp {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr unsigned kCpus = 16;

double stress_seconds() { return testing_support::stress_seconds(2.0); }

using testing_support::eventually;
using testing_support::threads_named;
using testing_support::threads_named_settle_to;
using testing_support::Violations;

bool has_state(const Domain& d, const std::string& name) {
  for (const StateInfo& s : d.states())
    if (s.name == name) return true;
  return false;
}

// Per-CPU hook trace as a small state machine, checked as it goes.
class Checker {
 public:
  Checker(Domain& d, std::string who, Violations& v)
      : d_(d), who_(std::move(who)), v_(v), cpus_(d.capacity()) {}

  enum class St { kNone, kRunning, kParked, kDone };

  void setup(unsigned cpu) { step(cpu, "setup", St::kNone, St::kRunning, true); }
  void run(unsigned cpu) { step(cpu, "run", St::kRunning, St::kRunning, true); }
  void park(unsigned cpu) { step(cpu, "park", St::kRunning, St::kParked, true); }
  void unpark(unsigned cpu) { step(cpu, "unpark", St::kParked, St::kRunning, true); }
  void cleanup(unsigned cpu) { step(cpu, "cleanup", St::kParked, St::kDone, false); }

  // After destruction: every CPU that was set up was cleaned up.
  void finished() {
    for (unsigned cpu = 0; cpu < cpus_.size(); ++cpu) {
      const St st = cpus_[cpu].st.load();
      if (st != St::kNone && st != St::kDone)
        v_.add(who_ + ": CPU " + std::to_string(cpu) + " not cleaned up");
    }
  }

 private:
  struct PerCpu {
    std::atomic<St> st{St::kNone};
    std::atomic<pid_t> tid{0};
  };

  void step(unsigned cpu, const char* what, St from, St to, bool must_be_online) {
    PerCpu& c = cpus_[cpu];
    const pid_t me = static_cast<pid_t>(gettid());
    if (from == St::kNone) c.tid = me;
    if (c.tid.load() != me)
      v_.add(who_ + ": " + what + "(" + std::to_string(cpu) + ") on a foreign thread");
    if (must_be_online && !d_.cpu_online(cpu))
      v_.add(who_ + ": " + what + "(" + std::to_string(cpu) + ") with the CPU offline");
    St expected = from;
    if (!c.st.compare_exchange_strong(expected, to))
      v_.add(who_ + ": " + what + "(" + std::to_string(cpu) + ") in state " +
             std::to_string(static_cast<int>(expected)));
  }

  Domain& d_;
  std::string who_;
  Violations& v_;
  std::vector<PerCpu> cpus_;
};

TEST(PerCpuThreadsStress, StormWakeRegisterDestroy) {
  const double seconds = stress_seconds();
  Domain d(kCpus, kCpus);
  Violations v;

  // ---- the main instance ----
  Checker main_check(d, "main", v);
  std::vector<std::atomic<long>> queued(kCpus), done(kCpus);
  PerCpuThreads::Hooks h;
  h.setup = [&](unsigned cpu) {
    main_check.setup(cpu);
    return 0;
  };
  h.should_run = [&](unsigned cpu) { return done[cpu].load() < queued[cpu].load(); };
  h.run = [&](unsigned cpu) {
    main_check.run(cpu);
    done[cpu].fetch_add(1);
  };
  h.park = [&](unsigned cpu) { main_check.park(cpu); };
  h.unpark = [&](unsigned cpu) { main_check.unpark(cpu); };
  h.cleanup = [&](unsigned cpu) { main_check.cleanup(cpu); };
  auto main_threads = PerCpuThreads::create(d, "st-main", h);
  ASSERT_TRUE(main_threads.ok()) << main_threads.error().message();
  PerCpuThreads& threads = **main_threads;
  auto above = d.setup_state(
      Section::kOnline, "st:above", [](unsigned) { return 0; },
      [](unsigned) { return 0; });
  ASSERT_TRUE(above.ok()) << above.error().message();

  std::atomic<bool> stop{false};
  std::atomic<long> ups{0}, downs{0}, failed_ups{0}, wakes{0}, creates{0},
      failed_creates{0};

  std::thread storm([&] {
    std::mt19937 rng(1);
    while (!stop.load()) {
      const unsigned cpu = 1 + rng() % (kCpus - 1);
      const auto st = d.cpu_state(cpu);
      if (!st.ok()) {
        v.add("cpu_state: " + st.error().message());
        continue;
      }
      if (*st == kStateOnline) {
        if (rng() % 4 == 0) {
          (void)d.bring_to(cpu, kStateBringup);  // parks, keeps the bit
        } else if (Status s = d.down(cpu); s.ok()) {
          downs.fetch_add(1);
        } else if (s.error().code() != Errc::kLastCpu) {
          v.add("down: " + s.error().message());
        }
      } else {
        const bool inject = rng() % 8 == 0;
        if (inject) (void)d.inject_failure(cpu, rng() % 2 ? threads.state() : *above);
        if (Status s = d.up(cpu); s.ok()) {
          ups.fetch_add(1);
          if (inject) v.add("an up with an injected failure succeeded");
        } else if (s.error().code() == Errc::kCallbackFailed &&
                   s.error().message().find("smpboot:st-reg") != std::string::npos) {
          // The registrar's instance failing its setup() on purpose.
        } else if (inject && s.error().code() == Errc::kCallbackFailed) {
          failed_ups.fetch_add(1);
          if (d.cpu_online(cpu) && *st < kStateBringup)
            v.add("failed up left the CPU online: " + s.error().message());
        } else {
          v.add("up: " + s.error().message());
        }
      }
    }
  });

  std::vector<std::thread> wakers;
  for (int i = 0; i < 2; ++i)
    wakers.emplace_back([&, i] {
      std::mt19937 rng(100 + i);
      while (!stop.load()) {
        const unsigned cpu = rng() % kCpus;
        queued[cpu].fetch_add(1);
        threads.wake(cpu);
        wakes.fetch_add(1);
        if (rng() % 16 == 0) std::this_thread::sleep_for(50us);
      }
    });

  std::thread registrar([&] {
    std::mt19937 rng(7);
    for (int round = 0; !stop.load(); ++round) {
      const std::string who = "reg" + std::to_string(round);
      Checker check(d, who, v);
      std::atomic<long> work{0};
      const unsigned fail_cpu = rng() % 3 == 0 ? rng() % kCpus : kCpus;
      PerCpuThreads::Hooks rh;
      rh.setup = [&, fail_cpu](unsigned cpu) {
        if (cpu == fail_cpu) return -ENOMEM;
        check.setup(cpu);
        return 0;
      };
      rh.should_run = [&](unsigned) { return work.load() > 0; };
      rh.run = [&](unsigned cpu) {
        check.run(cpu);
        work.fetch_sub(1);
      };
      rh.park = [&](unsigned cpu) { check.park(cpu); };
      rh.unpark = [&](unsigned cpu) { check.unpark(cpu); };
      rh.cleanup = [&](unsigned cpu) { check.cleanup(cpu); };
      auto t = PerCpuThreads::create(d, "st-reg", rh);
      if (!t.ok()) {
        // Only the injected setup failure may make it fail (setup of a CPU
        // that is online at creation).
        if (t.error().code() != Errc::kCallbackFailed ||
            t.error().message().find("CPU " + std::to_string(fail_cpu)) ==
                std::string::npos)
          v.add("create: " + t.error().message());
        failed_creates.fetch_add(1);
      } else {
        creates.fetch_add(1);
        for (int i = 0; i < 4; ++i) {
          work.fetch_add(1);
          (*t)->wake(rng() % kCpus);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
        t->reset();  // mid-storm
      }
      check.finished();
      if (has_state(d, "smpboot:st-reg")) v.add(who + ": state left installed");
      // Joined threads leave /proc/self/task a moment after join() returns.
      if (!eventually([] { return threads_named("st-reg") == 0; }))
        v.add(who + ": " + std::to_string(threads_named("st-reg")) +
              " thread(s) left behind");
    }
  });

  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  storm.join();
  for (auto& w : wakers) w.join();
  registrar.join();

  // Everything up again; every queued unit of work gets done.
  for (unsigned cpu = 0; cpu < kCpus; ++cpu)
    if (d.cpu_state(cpu).value() != kStateOnline)
      ASSERT_TRUE(d.up(cpu).ok()) << "CPU " << cpu;
  for (unsigned cpu = 0; cpu < kCpus; ++cpu) threads.wake(cpu);
  const auto deadline = Clock::now() + 10s;
  for (unsigned cpu = 0; cpu < kCpus; ++cpu) {
    while (done[cpu].load() < queued[cpu].load() && Clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    EXPECT_EQ(done[cpu].load(), queued[cpu].load()) << "lost wake-up on CPU " << cpu;
  }
  main_threads->reset();
  main_check.finished();
  EXPECT_TRUE(threads_named_settle_to("st-main", 0));
  EXPECT_FALSE(has_state(d, "smpboot:st-main"));

  std::printf(
      "percpu_threads_stress: %.1f s: %ld ups (%ld failed as injected), %ld downs, "
      "%ld wakes, %ld creates (%ld failed as injected)\n",
      seconds, ups.load(), failed_ups.load(), downs.load(), wakes.load(), creates.load(),
      failed_creates.load());
  EXPECT_EQ(v.count(), 0) << v.first();
  EXPECT_GT(ups.load(), 0);
  EXPECT_GT(creates.load(), 0);
}

}  // namespace
}  // namespace cpuhp
