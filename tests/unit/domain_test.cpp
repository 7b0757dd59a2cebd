// Unit tests for cpuhp::Domain (include/cpuhp/domain.h): construction, masks,
// up/down/bring_to, set_present, disable/enable, suspend/resume, failure
// injection, every error path ("nothing changed" after each failing call),
// RCU per-bit semantics of the online mask, the masks invariant as seen by a
// reader under the hotplug read lock, and misuse that must be refused with
// Errc::kWouldDeadlock instead of hanging.
//
// The state machine itself (callback order, rollback, registration) is in
// states_test.cpp; notifiers are in notifier_test.cpp.
//
// Calls that could hang if the library got misuse wrong run on a helper
// thread with a deadline (ReturnsWithin): a hang is a test failure, not a
// stuck test binary. On a hang the helper thread and the Domain it uses are
// deliberately leaked (the thread is stuck for good).
#include "cpuhp/domain.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cpuhp/diagnostics.h"
#include "cpuhp/notifier.h"
#include "cpuhp/rcu.h"
#include "support/status_matchers.h"

namespace cpuhp {
namespace {

using testing_support::Fails;
using testing_support::state_of;
using testing_support::Succeeds;

using namespace std::chrono_literals;

// ------------------------------------------------------------------ helpers

// Everything observable about a Domain's CPUs.
struct Snapshot {
  std::string possible, present, online, active;
  std::vector<StateId> states;
  bool operator==(const Snapshot&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Snapshot& s) {
  os << "{possible=" << s.possible << " present=" << s.present << " online=" << s.online
     << " active=" << s.active << " states=[";
  for (std::size_t i = 0; i < s.states.size(); ++i) os << (i ? "," : "") << s.states[i];
  return os << "]}";
}

Snapshot snap(const Domain& d) {
  Snapshot s{d.possible().to_string(),
             d.present().to_string(),
             d.online().to_string(),
             d.active().to_string(),
             {}};
  for (unsigned cpu = 0; cpu < d.capacity(); ++cpu) s.states.push_back(state_of(d, cpu));
  return s;
}

// Runs fn on a helper thread; fails the test if it does not return within
// `limit`. On a hang the thread is detached (and whatever fn captured by
// shared_ptr stays alive with it).
testing::AssertionResult ReturnsWithin(std::function<void()> fn,
                                       std::chrono::milliseconds limit = 10s) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  std::thread t([fn = std::move(fn), done] {
    fn();
    done->set_value();
  });
  if (f.wait_for(limit) == std::future_status::ready) {
    t.join();
    return testing::AssertionSuccess();
  }
  t.detach();
  return testing::AssertionFailure()
         << "the call did not return within " << limit.count()
         << " ms: it hangs (misuse must be an error, never a hang)";
}

// A state id in the static PREPARE / ONLINE ranges that no test installs
// unless it says so: bring_to() may stop there.
constexpr StateId kPrepareMid = 10;
constexpr StateId kOnlineMid = 60;

// ------------------------------------------------------------ construction

TEST(DomainConstruction, InvalidCountsThrow) {
  EXPECT_THROW(Domain(0, 1), std::invalid_argument);
  EXPECT_THROW(Domain(0, 0), std::invalid_argument);
  EXPECT_THROW(Domain(kMaxCpus + 1, 1), std::invalid_argument);
  EXPECT_THROW(Domain(4, 0), std::invalid_argument);
  EXPECT_THROW(Domain(4, 5), std::invalid_argument);
  try {
    Domain d(4, 9);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find('9'), std::string::npos) << e.what();
  }
}

TEST(DomainConstruction, MasksAndStates) {
  Domain d(8, 3);
  EXPECT_EQ(d.capacity(), 8u);
  EXPECT_EQ(d.possible().to_string(), "0-7");
  EXPECT_EQ(d.present().to_string(), "0-7");
  EXPECT_EQ(d.online().to_string(), "0-2");
  EXPECT_EQ(d.active().to_string(), "0-2");
  for (unsigned cpu = 0; cpu < 8; ++cpu) {
    EXPECT_EQ(state_of(d, cpu), cpu < 3 ? kStateOnline : kStateOffline) << cpu;
    EXPECT_EQ(d.cpu_online(cpu), cpu < 3) << cpu;
  }
  EXPECT_FALSE(d.cpu_online(8));
  EXPECT_FALSE(d.cpu_online(100000));
}

TEST(DomainConstruction, Extremes) {
  Domain one(1, 1);
  EXPECT_EQ(one.online().to_string(), "0");
  Domain big(kMaxCpus, kMaxCpus);
  EXPECT_EQ(big.online().weight(), kMaxCpus);
  EXPECT_EQ(big.active().weight(), kMaxCpus);
  EXPECT_EQ(state_of(big, kMaxCpus - 1), kStateOnline);
}

// ------------------------------------------------------------ up / down

TEST(DomainHotplug, UpAndDown) {
  Domain d(8, 2);
  ASSERT_TRUE(Succeeds(d.up(5)));
  EXPECT_EQ(d.online().to_string(), "0-1,5");
  EXPECT_EQ(d.active().to_string(), "0-1,5");
  EXPECT_EQ(state_of(d, 5), kStateOnline);
  EXPECT_TRUE(d.cpu_online(5));
  ASSERT_TRUE(Succeeds(d.down(5)));
  EXPECT_EQ(d.online().to_string(), "0-1");
  EXPECT_EQ(d.active().to_string(), "0-1");
  EXPECT_EQ(state_of(d, 5), kStateOffline);
  ASSERT_TRUE(Succeeds(d.down(0)));  // CPU 1 stays
  EXPECT_EQ(d.online().to_string(), "1");
  ASSERT_TRUE(Succeeds(d.up(0)));
  EXPECT_EQ(d.online().to_string(), "0-1");
}

TEST(DomainHotplug, BringToIntermediateStates) {
  Domain d(4, 1);
  // PREPARE section: not online.
  ASSERT_TRUE(Succeeds(d.bring_to(1, kPrepareMid)));
  EXPECT_EQ(state_of(d, 1), kPrepareMid);
  EXPECT_FALSE(d.cpu_online(1));
  EXPECT_FALSE(d.active().test(1));
  // Exactly at bringup: online, not active.
  ASSERT_TRUE(Succeeds(d.bring_to(1, kStateBringup)));
  EXPECT_EQ(state_of(d, 1), kStateBringup);
  EXPECT_TRUE(d.cpu_online(1));
  EXPECT_FALSE(d.active().test(1));
  // ONLINE section: online, not active.
  ASSERT_TRUE(Succeeds(d.bring_to(1, kOnlineMid)));
  EXPECT_TRUE(d.cpu_online(1));
  EXPECT_FALSE(d.active().test(1));
  ASSERT_TRUE(Succeeds(d.bring_to(1, kStateNotifyOnline)));
  EXPECT_TRUE(d.cpu_online(1));
  EXPECT_FALSE(d.active().test(1));
  // The rest of the way.
  ASSERT_TRUE(Succeeds(d.up(1)));
  EXPECT_TRUE(d.active().test(1));
  EXPECT_EQ(state_of(d, 1), kStateOnline);
  // Down to the ONLINE section, then the PREPARE section, then offline.
  ASSERT_TRUE(Succeeds(d.bring_to(1, kOnlineMid)));
  EXPECT_TRUE(d.cpu_online(1));
  EXPECT_FALSE(d.active().test(1));
  ASSERT_TRUE(Succeeds(d.bring_to(1, kPrepareMid)));
  EXPECT_FALSE(d.cpu_online(1));
  EXPECT_EQ(state_of(d, 1), kPrepareMid);
  ASSERT_TRUE(Succeeds(d.bring_to(1, kStateNotifyPrepare)));
  EXPECT_FALSE(d.cpu_online(1));
  ASSERT_TRUE(Succeeds(d.down(1)));
  EXPECT_EQ(state_of(d, 1), kStateOffline);
  // bring_to(kStateOffline) and bring_to(kStateOnline) are down and up.
  ASSERT_TRUE(Succeeds(d.bring_to(2, kStateOnline)));
  EXPECT_TRUE(d.active().test(2));
  ASSERT_TRUE(Succeeds(d.bring_to(2, kStateOffline)));
  EXPECT_FALSE(d.cpu_online(2));
}

TEST(DomainHotplug, BringToRunsStatesOnlyUpToTarget) {
  Domain d(4, 1);
  std::vector<StateId> ran;
  auto rec = [&ran](StateId id) {
    return [&ran, id](unsigned) {
      ran.push_back(id);
      return 0;
    };
  };
  ASSERT_TRUE(Succeeds(d.setup_state_at(5, "p5", rec(5), rec(-5))));
  ASSERT_TRUE(Succeeds(d.setup_state_at(20, "p20", rec(20), rec(-20))));
  ASSERT_TRUE(Succeeds(d.setup_state_at(70, "o70", rec(70), rec(-70))));
  ran.clear();  // setup_state_at ran them on CPU 0
  ASSERT_TRUE(Succeeds(d.bring_to(2, 10)));
  EXPECT_EQ(ran, (std::vector<StateId>{5}));
  ASSERT_TRUE(Succeeds(d.bring_to(2, 65)));
  EXPECT_EQ(ran, (std::vector<StateId>{5, 20}));
  ASSERT_TRUE(Succeeds(d.up(2)));
  EXPECT_EQ(ran, (std::vector<StateId>{5, 20, 70}));
  ASSERT_TRUE(Succeeds(d.bring_to(2, 20)));  // 20 stays up: the CPU is at it
  EXPECT_EQ(ran, (std::vector<StateId>{5, 20, 70, -70}));
  EXPECT_EQ(state_of(d, 2), 20);
  ASSERT_TRUE(Succeeds(d.down(2)));
  EXPECT_EQ(ran, (std::vector<StateId>{5, 20, 70, -70, -20, -5}));
}

// ------------------------------------------------------------ error paths

TEST(DomainErrors, OutOfRange) {
  Domain d(8, 4);
  const Snapshot before = snap(d);
  EXPECT_TRUE(Fails(d.up(70), Errc::kOutOfRange, {"CPU 70"}));
  EXPECT_TRUE(Fails(d.down(70), Errc::kOutOfRange, {"CPU 70"}));
  EXPECT_TRUE(Fails(d.bring_to(70, kOnlineMid), Errc::kOutOfRange, {"CPU 70"}));
  EXPECT_TRUE(Fails(d.up(8), Errc::kOutOfRange, {"CPU 8"}));
  EXPECT_TRUE(Fails(d.up(~0u), Errc::kOutOfRange));
  EXPECT_TRUE(Fails(d.cpu_state(70), Errc::kOutOfRange, {"CPU 70"}));
  EXPECT_TRUE(Fails(d.set_present(70, false), Errc::kOutOfRange, {"CPU 70"}));
  EXPECT_TRUE(Fails(d.set_present(70, true), Errc::kOutOfRange, {"CPU 70"}));
  EXPECT_TRUE(
      Fails(d.inject_failure(70, kStateNotifyPrepare), Errc::kOutOfRange, {"CPU 70"}));
  EXPECT_EQ(snap(d), before);
}

TEST(DomainErrors, BadTargetState) {
  Domain d(8, 4);
  const Snapshot before = snap(d);
  EXPECT_TRUE(Fails(d.bring_to(5, -1), Errc::kInvalidArgument, {"CPU 5", "-1"}));
  EXPECT_TRUE(Fails(d.bring_to(5, kNumStates), Errc::kInvalidArgument, {"CPU 5"}));
  EXPECT_TRUE(Fails(d.bring_to(1, 1000), Errc::kInvalidArgument, {"CPU 1", "1000"}));
  EXPECT_EQ(snap(d), before);
}

TEST(DomainErrors, AlreadyInState) {
  Domain d(8, 4);
  ASSERT_TRUE(Succeeds(d.bring_to(5, kOnlineMid)));
  const Snapshot before = snap(d);
  EXPECT_TRUE(Fails(d.up(0), Errc::kAlreadyInState, {"CPU 0"}));
  EXPECT_TRUE(Fails(d.down(6), Errc::kAlreadyInState, {"CPU 6"}));
  EXPECT_TRUE(Fails(d.bring_to(5, kOnlineMid), Errc::kAlreadyInState, {"CPU 5", "60"}));
  EXPECT_TRUE(
      Fails(d.bring_to(3, kStateOnline), Errc::kAlreadyInState, {"CPU 3", "active"}));
  EXPECT_TRUE(
      Fails(d.bring_to(7, kStateOffline), Errc::kAlreadyInState, {"CPU 7", "offline"}));
  EXPECT_EQ(snap(d), before);
}

TEST(DomainErrors, NotPresent) {
  Domain d(8, 4);
  ASSERT_TRUE(Succeeds(d.set_present(6, false)));
  const Snapshot before = snap(d);
  EXPECT_EQ(d.present().to_string(), "0-5,7");
  EXPECT_EQ(d.possible().to_string(), "0-7");
  EXPECT_TRUE(Fails(d.up(6), Errc::kNotPresent, {"CPU 6"}));
  EXPECT_TRUE(Fails(d.bring_to(6, kPrepareMid), Errc::kNotPresent, {"CPU 6"}));
  EXPECT_TRUE(Fails(d.bring_to(6, kStateBringup), Errc::kNotPresent, {"CPU 6"}));
  EXPECT_EQ(snap(d), before);
  ASSERT_TRUE(Succeeds(d.set_present(6, true)));
  EXPECT_EQ(d.present().to_string(), "0-7");
  EXPECT_TRUE(Succeeds(d.up(6)));
}

TEST(DomainErrors, LastCpu) {
  Domain d(4, 1);
  Snapshot before = snap(d);
  EXPECT_TRUE(Fails(d.down(0), Errc::kLastCpu, {"CPU 0"}));
  EXPECT_TRUE(Fails(d.bring_to(0, kPrepareMid), Errc::kLastCpu, {"CPU 0"}));
  EXPECT_TRUE(Fails(d.bring_to(0, kStateNotifyPrepare), Errc::kLastCpu, {"CPU 0"}));
  EXPECT_EQ(snap(d), before);
  // A CPU parked in the PREPARE section is not online: CPU 0 is still the last.
  ASSERT_TRUE(Succeeds(d.bring_to(1, kPrepareMid)));
  before = snap(d);
  EXPECT_TRUE(Fails(d.down(0), Errc::kLastCpu, {"CPU 0"}));
  EXPECT_EQ(snap(d), before);
  // Staying online (ONLINE section, or exactly bringup) is allowed.
  ASSERT_TRUE(Succeeds(d.bring_to(0, kOnlineMid)));
  EXPECT_TRUE(d.cpu_online(0));
  ASSERT_TRUE(Succeeds(d.bring_to(0, kStateBringup)));
  EXPECT_TRUE(d.cpu_online(0));
  before = snap(d);
  EXPECT_TRUE(Fails(d.down(0), Errc::kLastCpu, {"CPU 0"}));
  EXPECT_EQ(snap(d), before);
  ASSERT_TRUE(Succeeds(d.up(0)));
  // With a second CPU online the first may go; then the second is the last.
  ASSERT_TRUE(Succeeds(d.up(3)));
  ASSERT_TRUE(Succeeds(d.down(0)));
  before = snap(d);
  EXPECT_TRUE(Fails(d.down(3), Errc::kLastCpu, {"CPU 3"}));
  EXPECT_EQ(snap(d), before);
}

TEST(DomainErrors, SetPresent) {
  Domain d(8, 4);
  ASSERT_TRUE(Succeeds(d.bring_to(4, kPrepareMid)));
  ASSERT_TRUE(Succeeds(d.bring_to(5, kOnlineMid)));
  const Snapshot before = snap(d);
  EXPECT_TRUE(Fails(d.set_present(0, false), Errc::kBusy, {"CPU 0"}));
  EXPECT_TRUE(Fails(d.set_present(3, false), Errc::kBusy, {"CPU 3"}));
  EXPECT_TRUE(Fails(d.set_present(4, false), Errc::kBusy, {"CPU 4"}));  // PREPARE section
  EXPECT_TRUE(Fails(d.set_present(5, false), Errc::kBusy, {"CPU 5"}));  // ONLINE section
  EXPECT_EQ(snap(d), before);
  // Offline CPUs come and go; adding a present CPU again changes nothing.
  ASSERT_TRUE(Succeeds(d.set_present(7, false)));
  EXPECT_EQ(d.present().to_string(), "0-6");
  ASSERT_TRUE(Succeeds(d.set_present(6, false)));
  EXPECT_EQ(d.present().to_string(), "0-5");
  EXPECT_EQ(d.possible().to_string(), "0-7");
  ASSERT_TRUE(Succeeds(d.set_present(7, true)));
  ASSERT_TRUE(Succeeds(d.set_present(7, true)));
  EXPECT_EQ(d.present().to_string(), "0-5,7");
  ASSERT_TRUE(Succeeds(d.set_present(6, true)));
  EXPECT_EQ(snap(d), before);
}

TEST(DomainErrors, DisableEnableCounter) {
  Domain d(8, 4);
  EXPECT_TRUE(Fails(d.enable_hotplug(), Errc::kInvalidArgument, {"disable_hotplug"}));
  ASSERT_TRUE(Succeeds(d.disable_hotplug()));
  ASSERT_TRUE(Succeeds(d.disable_hotplug()));
  const Snapshot before = snap(d);
  EXPECT_TRUE(Fails(d.up(5), Errc::kBusy, {"CPU 5", "disabled"}));
  EXPECT_TRUE(Fails(d.down(1), Errc::kBusy, {"CPU 1", "disabled"}));
  EXPECT_TRUE(Fails(d.bring_to(5, kPrepareMid), Errc::kBusy, {"CPU 5"}));
  EXPECT_EQ(snap(d), before);
  ASSERT_TRUE(Succeeds(d.enable_hotplug()));
  EXPECT_TRUE(Fails(d.up(5), Errc::kBusy, {"CPU 5"}));  // still disabled once
  EXPECT_EQ(snap(d), before);
  ASSERT_TRUE(Succeeds(d.enable_hotplug()));
  EXPECT_TRUE(Succeeds(d.up(5)));
  EXPECT_TRUE(Succeeds(d.down(1)));
  EXPECT_TRUE(Fails(d.enable_hotplug(), Errc::kInvalidArgument));
  // Registration is not hotplug: it stays possible while hotplug is disabled.
  ASSERT_TRUE(Succeeds(d.disable_hotplug()));
  Result<StateId> id =
      d.setup_state(Section::kOnline, "while-disabled", nullptr, nullptr);
  EXPECT_TRUE(Succeeds(id));
  if (id) EXPECT_TRUE(Succeeds(d.remove_state(*id)));
  ASSERT_TRUE(Succeeds(d.enable_hotplug()));
}

TEST(DomainErrors, InjectFailureErrors) {
  Domain d(8, 4);
  const Snapshot before = snap(d);
  EXPECT_TRUE(
      Fails(d.inject_failure(5, 40), Errc::kNotFound, {"40", "CPU 5"}));  // free slot
  EXPECT_TRUE(Fails(d.inject_failure(5, kPrepareMid), Errc::kNotFound));
  EXPECT_TRUE(Fails(d.inject_failure(5, kStateOffline), Errc::kNotFound));
  EXPECT_TRUE(Fails(d.inject_failure(5, -3), Errc::kNotFound));
  EXPECT_TRUE(Fails(d.inject_failure(5, kNumStates), Errc::kNotFound));
  EXPECT_TRUE(
      Fails(d.inject_failure(5, kStateBringup), Errc::kInvalidArgument, {"bringup"}));
  EXPECT_TRUE(
      Fails(d.inject_failure(5, kStateActive), Errc::kInvalidArgument, {"active"}));
  EXPECT_TRUE(
      Fails(d.inject_failure(9, kStateNotifyPrepare), Errc::kOutOfRange, {"CPU 9"}));
  EXPECT_EQ(snap(d), before);
  // None of those left an injection behind.
  EXPECT_TRUE(Succeeds(d.up(5)));
}

// domain.h: "the next startup of `state` on `cpu` fails once (or, for a state
// whose teardown may veto, its next teardown)". kStateNotifyOnline is such a
// state (DOWN_PREPARE may refuse; ONLINE may not): the injection is for the
// down.
TEST(DomainErrors, InjectionIntoVetoableStateFailsItsNextTeardown) {
  Domain d(4, 2);
  ASSERT_TRUE(Succeeds(d.inject_failure(3, kStateNotifyOnline)));  // CPU 3 is offline
  ASSERT_TRUE(Succeeds(d.up(3))) << "the injection hit the startup (CPU_ONLINE) instead";
  const Snapshot before = snap(d);
  Status s = d.down(3);
  EXPECT_TRUE(Fails(s, Errc::kCallbackFailed, {"CPU 3", "notify:online", "inject"}));
  EXPECT_EQ(snap(d), before);
  EXPECT_TRUE(Succeeds(d.down(3)));
}

TEST(DomainErrors, InjectedFailureNamesCpuAndStateAndLeavesNothingChanged) {
  Domain d(8, 4);
  int calls = 0;
  Result<StateId> id = d.setup_state(
      Section::kPrepare, "dom:inject",
      [&](unsigned) {
        ++calls;
        return 0;
      },
      nullptr);
  ASSERT_TRUE(Succeeds(id));
  calls = 0;
  ASSERT_TRUE(Succeeds(d.inject_failure(6, *id)));
  const Snapshot before = snap(d);
  Status s = d.up(6);
  EXPECT_TRUE(Fails(s, Errc::kCallbackFailed, {"CPU 6", "dom:inject", "inject"}));
  if (!s) EXPECT_EQ(s.error().cause(), -EIO);
  EXPECT_EQ(calls, 0);  // the injected failure replaces the callback
  EXPECT_EQ(snap(d), before);
  EXPECT_TRUE(Succeeds(d.up(6)));  // once only
  EXPECT_EQ(calls, 1);
}

// ------------------------------------------------------------ suspend / resume

TEST(DomainSuspend, ReturnsExactlyTheSameCpusAndStates) {
  Domain d(8, 8);
  std::vector<unsigned> downs, ups;
  ASSERT_TRUE(Succeeds(d.setup_state(
      Section::kPrepare, "dom:order",
      [&](unsigned cpu) {
        ups.push_back(cpu);
        return 0;
      },
      [&](unsigned cpu) {
        downs.push_back(cpu);
        return 0;
      })));
  ASSERT_TRUE(Succeeds(d.down(2)));                     // offline
  ASSERT_TRUE(Succeeds(d.bring_to(3, kOnlineMid)));     // online, not active
  ASSERT_TRUE(Succeeds(d.bring_to(4, kPrepareMid)));    // not online
  ASSERT_TRUE(Succeeds(d.bring_to(6, kStateBringup)));  // online, not active
  downs.clear();
  ups.clear();
  const Snapshot before = snap(d);

  ASSERT_TRUE(Succeeds(d.suspend_nonboot()));
  EXPECT_EQ(d.online().to_string(), "0");
  EXPECT_EQ(d.active().to_string(), "0");
  EXPECT_EQ(d.present().to_string(), "0-7");
  EXPECT_EQ(downs, (std::vector<unsigned>{7, 6, 5, 3, 1}));  // highest first
  EXPECT_EQ(state_of(d, 0), kStateOnline);
  EXPECT_EQ(state_of(d, 4), kPrepareMid);  // not online: not touched
  for (unsigned cpu : {1u, 2u, 3u, 5u, 6u, 7u})
    EXPECT_EQ(state_of(d, cpu), kStateOffline);

  // Hotplug is disabled in between.
  const Snapshot suspended = snap(d);
  EXPECT_TRUE(Fails(d.up(5), Errc::kBusy, {"CPU 5"}));
  EXPECT_TRUE(Fails(d.down(0), Errc::kBusy));
  EXPECT_TRUE(Fails(d.suspend_nonboot(), Errc::kBusy));
  EXPECT_TRUE(Fails(d.enable_hotplug(), Errc::kBusy, {"resume_nonboot"}));
  EXPECT_EQ(snap(d), suspended);

  ASSERT_TRUE(Succeeds(d.resume_nonboot()));
  EXPECT_EQ(snap(d), before);
  EXPECT_EQ(ups, (std::vector<unsigned>{1, 3, 5, 6, 7}));  // lowest first
  EXPECT_TRUE(Fails(d.resume_nonboot(), Errc::kInvalidArgument));
  // Hotplug works again.
  EXPECT_TRUE(Succeeds(d.up(2)));
  EXPECT_TRUE(Fails(d.enable_hotplug(), Errc::kInvalidArgument));
}

TEST(DomainSuspend, FirstOnlineCpuIsNotAlwaysZero) {
  Domain d(6, 6);
  ASSERT_TRUE(Succeeds(d.down(0)));
  ASSERT_TRUE(Succeeds(d.down(1)));
  const Snapshot before = snap(d);
  ASSERT_TRUE(Succeeds(d.suspend_nonboot()));
  EXPECT_EQ(d.online().to_string(), "2");
  ASSERT_TRUE(Succeeds(d.resume_nonboot()));
  EXPECT_EQ(snap(d), before);
}

TEST(DomainSuspend, SingleOnlineCpuAndDisableCounter) {
  Domain d(4, 1);
  ASSERT_TRUE(Succeeds(d.disable_hotplug()));
  ASSERT_TRUE(Succeeds(d.suspend_nonboot()));
  EXPECT_EQ(d.online().to_string(), "0");
  ASSERT_TRUE(Succeeds(d.enable_hotplug()));  // the user's disable, not the suspend's
  EXPECT_TRUE(Fails(d.enable_hotplug(), Errc::kBusy));
  ASSERT_TRUE(Succeeds(d.resume_nonboot()));
  EXPECT_TRUE(Succeeds(d.up(1)));
}

TEST(DomainSuspend, FailureRestoresEveryCpu) {
  // The only down that can fail is one a teardown may veto: the notifier
  // layer's DOWN_PREPARE (kStateNotifyOnline). Inject a failure there.
  Domain d(6, 6);
  ASSERT_TRUE(Succeeds(d.bring_to(4, kOnlineMid)));
  ASSERT_TRUE(Succeeds(d.inject_failure(2, kStateNotifyOnline)));
  const Snapshot before = snap(d);
  Status s = d.suspend_nonboot();
  EXPECT_TRUE(Fails(s, Errc::kCallbackFailed, {"CPU 2", "suspend_nonboot"}));
  EXPECT_EQ(snap(d), before);
  // Not suspended, hotplug not disabled.
  EXPECT_TRUE(Fails(d.resume_nonboot(), Errc::kInvalidArgument));
  EXPECT_TRUE(Fails(d.enable_hotplug(), Errc::kInvalidArgument));
  EXPECT_TRUE(Succeeds(d.down(5)));
  EXPECT_TRUE(Succeeds(d.suspend_nonboot()));
  EXPECT_TRUE(Succeeds(d.resume_nonboot()));
}

TEST(DomainSuspend, ResumeFailureNamesTheCpuAndBringsBackTheOthers) {
  Domain d(6, 6);
  ASSERT_TRUE(Succeeds(d.suspend_nonboot()));
  ASSERT_TRUE(Succeeds(d.inject_failure(3, kStateNotifyPrepare)));
  Status s = d.resume_nonboot();
  EXPECT_TRUE(Fails(s, Errc::kCallbackFailed, {"CPU 3", "resume_nonboot"}));
  EXPECT_EQ(d.online().to_string(), "0-2,4-5");
  EXPECT_EQ(state_of(d, 3), kStateOffline);
  // Hotplug is enabled again and the suspend is over.
  EXPECT_TRUE(Fails(d.resume_nonboot(), Errc::kInvalidArgument));
  EXPECT_TRUE(Succeeds(d.up(3)));
}

// ------------------------------------------------------------ RCU per bit

constexpr std::uint64_t kAlive = 0xA11FE5A11FE5A11Full;
constexpr std::uint64_t kPoison = 0xDEADDEADDEADDEADull;

struct PerCpuObject {
  std::atomic<std::uint64_t> magic{kAlive};
  std::uint64_t payload[7] = {};
};

// A PREPARE-section state builds a per-CPU object in startup and poisons and
// frees it in teardown. A reader under an RCU read guard that sees a CPU's
// online bit uses that CPU's object: it must exist and not be poisoned
// (under ASan a use after free is reported as well).
TEST(DomainRcu, ReaderSeeingOnlineBitMayUsePerCpuData) {
  constexpr unsigned kCpus = 4;
  constexpr int kCycles = 2000;
  Domain d(kCpus, kCpus);
  std::vector<std::atomic<PerCpuObject*>> objs(kCpus);
  for (auto& o : objs) o.store(nullptr);
  Result<StateId> id = d.setup_state(
      Section::kPrepare, "dom:percpu",
      [&](unsigned cpu) {
        if (objs[cpu].load() != nullptr) return -EEXIST;
        objs[cpu].store(new PerCpuObject, std::memory_order_release);
        return 0;
      },
      [&](unsigned cpu) {
        PerCpuObject* p = objs[cpu].exchange(nullptr, std::memory_order_acq_rel);
        if (p == nullptr) return -ENOENT;
        p->magic.store(kPoison, std::memory_order_relaxed);
        delete p;
        return 0;
      });
  ASSERT_TRUE(Succeeds(id));
  for (unsigned cpu = 0; cpu < kCpus; ++cpu) ASSERT_NE(objs[cpu].load(), nullptr);

  std::atomic<bool> stop{false};
  std::atomic<long> reads{0}, missing{0}, poisoned{0}, read_sections{0};
  std::thread reader([&] {
    for (; !stop.load(std::memory_order_relaxed); read_sections.fetch_add(1)) {
      rcu::ReadGuard guard;
      for (unsigned cpu : d.online()) {
        PerCpuObject* p = objs[cpu].load(std::memory_order_acquire);
        if (p == nullptr) {
          missing.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        // Use the object for a while, as a real reader would: the CPU may be
        // going down meanwhile, but its data must outlive this read section.
        for (int use = 0; use < 64; ++use) {
          if (p->magic.load(std::memory_order_relaxed) != kAlive) {
            poisoned.fetch_add(1, std::memory_order_relaxed);
            break;
          }
          p->payload[use % 7] += 1;  // only this thread writes it
        }
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  while (read_sections.load() == 0) std::this_thread::yield();
  // kCycles at least, and on until the reader has been through many sections.
  for (int i = 0; i < kCycles || (read_sections.load() < 1000 && i < 100 * kCycles);
       ++i) {
    const unsigned cpu = 1 + static_cast<unsigned>(i) % (kCpus - 1);
    ASSERT_TRUE(Succeeds(d.down(cpu))) << "cycle " << i;
    ASSERT_TRUE(Succeeds(d.up(cpu))) << "cycle " << i;
  }
  stop.store(true);
  reader.join();
  EXPECT_EQ(missing.load(), 0);
  EXPECT_EQ(poisoned.load(), 0);
  EXPECT_GT(reads.load(), 0);
  ASSERT_TRUE(Succeeds(d.remove_state(*id)));
  for (auto& o : objs) EXPECT_EQ(o.load(), nullptr);
}

// ------------------------------------------------------------ grace period of down()

// Whether d.down(cpu) returns while another thread stays inside an RCU read
// section (released after `patience`, or as soon as down() returns): false
// means down() waited for it.
bool down_returns_inside_foreign_reader(Domain& d, unsigned cpu,
                                        std::chrono::milliseconds patience = 300ms) {
  std::atomic<bool> inside{false}, release{false}, returned{false};
  std::thread reader([&] {
    rcu::ReadGuard guard;
    inside.store(true);
    while (!release.load()) std::this_thread::sleep_for(1ms);
  });
  while (!inside.load()) std::this_thread::yield();
  std::thread writer([&] {
    EXPECT_TRUE(Succeeds(d.down(cpu)));
    returned.store(true);
  });
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (!returned.load() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  const bool result = returned.load();
  release.store(true);
  reader.join();
  writer.join();
  return result;
}

int no_op(unsigned) { return 0; }

// The grace period protects what PREPARE teardowns free: down() waits for it
// when one is installed (or a notifier, which gets DEAD there), and skips it
// when nothing would be freed (domain.h, Masks).
TEST(DomainGracePeriod, DownSkipsItWithoutPrepareTeardowns) {
  Domain d(4, 4);
  ASSERT_TRUE(Succeeds(d.setup_state(Section::kOnline, "gp:online", no_op, no_op)));
  ASSERT_TRUE(
      Succeeds(d.setup_state(Section::kPrepare, "gp:startup-only", no_op, nullptr)));
  ASSERT_TRUE(Succeeds(d.setup_multi_state(
      Section::kPrepare, "gp:multi-empty", nullptr,
      [](unsigned, void*) { return 0; })));  // no instance: nothing to tear down
  EXPECT_TRUE(down_returns_inside_foreign_reader(d, 3, 5s));
}

TEST(DomainGracePeriod, DownWaitsForReadersWithPrepareTeardown) {
  Domain d(4, 4);
  ASSERT_TRUE(Succeeds(d.setup_state(Section::kPrepare, "gp:data", nullptr, no_op)));
  EXPECT_FALSE(down_returns_inside_foreign_reader(d, 3));
}

TEST(DomainGracePeriod, DownWaitsForReadersWithPrepareInstance) {
  Domain d(4, 4);
  Result<StateId> id = d.setup_multi_state(Section::kPrepare, "gp:multi", nullptr,
                                           [](unsigned, void*) { return 0; });
  ASSERT_TRUE(Succeeds(id));
  int instance = 0;
  ASSERT_TRUE(Succeeds(d.add_instance(*id, &instance)));
  EXPECT_FALSE(down_returns_inside_foreign_reader(d, 3));
}

TEST(DomainGracePeriod, DownWaitsForReadersWithNotifier) {
  Domain d(4, 4);
  NotifierBlock block;
  block.call = [](NotifierBlock*, unsigned long, unsigned) { return kNotifyOk; };
  ASSERT_TRUE(Succeeds(d.register_notifier(&block)));
  EXPECT_FALSE(down_returns_inside_foreign_reader(d, 3));
  ASSERT_TRUE(Succeeds(d.unregister_notifier(&block)));
  EXPECT_TRUE(down_returns_inside_foreign_reader(d, 2, 5s));
}

// ------------------------------------------------------------ masks invariant

// Under the hotplug read lock the masks do not change and active ⊆ online ⊆
// present ⊆ possible; cpu_state agrees with the masks.
TEST(DomainMasks, InvariantUnderHotplugReadLock) {
  constexpr unsigned kCpus = 8;
  Domain d(kCpus, 2);
  std::atomic<bool> stop{false};
  std::atomic<long> sections{0}, violations{0};
  std::string first_violation;
  std::mutex violation_mu;
  auto violation = [&](const std::string& what) {
    if (violations.fetch_add(1) == 0) {
      std::lock_guard g(violation_mu);
      first_violation = what;
    }
  };
  auto reader = [&] {
    while (!stop.load(std::memory_order_relaxed)) {
      ReadLock lock(d.hotplug_lock());
      const CpuMask online = d.online();
      const CpuMask active = d.active();
      const CpuMask present = d.present();
      if (!active.is_subset_of(online))
        violation("active " + active.to_string() + " not in online " +
                  online.to_string());
      if (!online.is_subset_of(present))
        violation("online " + online.to_string() + " not in present " +
                  present.to_string());
      if (!present.is_subset_of(d.possible())) violation("present not in possible");
      for (unsigned cpu = 0; cpu < kCpus; ++cpu) {
        const StateId st = *d.cpu_state(cpu);
        if (online.test(cpu) != (st >= kStateBringup))
          violation("CPU " + std::to_string(cpu) + " at state " + std::to_string(st) +
                    " but online bit " + std::to_string(online.test(cpu)));
        if (active.test(cpu) != (st == kStateActive))
          violation("CPU " + std::to_string(cpu) + " at state " + std::to_string(st) +
                    " but active bit " + std::to_string(active.test(cpu)));
      }
      for (int spin = 0; spin < 64; ++spin) {
        if (!(d.online() == online)) violation("online changed under the read lock");
        std::this_thread::yield();
      }
      if (!(d.online() == online) || !(d.active() == active))
        violation("masks changed under the read lock");
      sections.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::thread r1(reader), r2(reader);
  while (sections.load() == 0) std::this_thread::yield();
  const StateId targets[] = {kStateOffline, kPrepareMid,  kStateBringup,
                             kOnlineMid,    kStateOnline, kStateNotifyOnline};
  unsigned seed = 12345;
  auto rnd = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) & 0x7fff;
  };
  // 600 steps at least, and on until the readers have been through many sections.
  for (int i = 0; i < 600 || (sections.load() < 400 && i < 100000); ++i) {
    const unsigned cpu = rnd() % kCpus;
    const StateId target = targets[rnd() % std::size(targets)];
    Status s = d.bring_to(cpu, target);
    if (!s) {
      const Errc c = s.error().code();
      EXPECT_TRUE(c == Errc::kAlreadyInState || c == Errc::kLastCpu ||
                  c == Errc::kNotPresent)
          << s.error().message();
    }
    if (rnd() % 8 == 0) {
      const unsigned other = rnd() % kCpus;
      if (state_of(d, other) == kStateOffline)
        (void)d.set_present(other, !d.present().test(other));
    }
  }
  stop.store(true);
  r1.join();
  r2.join();
  EXPECT_EQ(violations.load(), 0) << first_violation;
  EXPECT_GT(sections.load(), 0);
}

// ------------------------------------------------------------ misuse

// Every call that takes the writers' lock, each checked to be refused with
// kWouldDeadlock and a message that contains every needle.
struct Misuse {
  const char* what;
  std::function<Status(Domain&)> call;
};

std::vector<Misuse> writer_calls() {
  auto as_status = [](auto r) -> Status {
    if (r.ok()) return {};
    return r.error();
  };
  static NotifierBlock nb;
  return {
      {"up", [](Domain& d) { return d.up(3); }},
      {"down", [](Domain& d) { return d.down(1); }},
      {"bring_to", [](Domain& d) { return d.bring_to(3, kOnlineMid); }},
      {"set_present", [](Domain& d) { return d.set_present(3, false); }},
      {"suspend_nonboot", [](Domain& d) { return d.suspend_nonboot(); }},
      {"resume_nonboot", [](Domain& d) { return d.resume_nonboot(); }},
      {"inject_failure",
       [](Domain& d) { return d.inject_failure(3, kStateNotifyPrepare); }},
      {"setup_state",
       [as_status](Domain& d) {
         return as_status(d.setup_state(Section::kOnline, "misuse:a", nullptr, nullptr));
       }},
      {"setup_state_nocalls",
       [as_status](Domain& d) {
         return as_status(
             d.setup_state_nocalls(Section::kPrepare, "misuse:b", nullptr, nullptr));
       }},
      {"setup_state_at",
       [as_status](Domain& d) {
         return as_status(d.setup_state_at(kOnlineMid + 1, "misuse:c", nullptr, nullptr));
       }},
      {"setup_multi_state",
       [as_status](Domain& d) {
         return as_status(
             d.setup_multi_state(Section::kOnline, "misuse:d", nullptr, nullptr));
       }},
      {"remove_state", [](Domain& d) { return d.remove_state(kStatePrepareFirst); }},
      {"remove_state_nocalls",
       [](Domain& d) { return d.remove_state_nocalls(kStatePrepareFirst); }},
      {"add_instance", [](Domain& d) { return d.add_instance(kStateOnlineDyn, &nb); }},
      {"register_notifier", [](Domain& d) { return d.register_notifier(&nb); }},
      {"unregister_notifier", [](Domain& d) { return d.unregister_notifier(&nb); }},
      {"register_begin",
       [as_status](Domain& d) { return as_status(d.register_begin()); }},
  };
}

void ExpectAllRefused(Domain& d, const std::vector<std::string>& needles,
                      const char* context) {
  for (const Misuse& m : writer_calls()) {
    Status s = m.call(d);
    EXPECT_TRUE(Fails(s, Errc::kWouldDeadlock, needles)) << m.what << " " << context;
  }
}

TEST(DomainMisuse, WhileHoldingHotplugReadLock) {
  auto d = std::make_shared<Domain>(8, 4);
  const Snapshot before = snap(*d);
  auto body = [d] {
    ReadLock lock(d->hotplug_lock());
    ExpectAllRefused(*d, {"register_begin", "read lock"}, "under the hotplug read lock");
    // Nested read sections count too.
    ReadLock again(d->hotplug_lock());
    EXPECT_TRUE(Fails(d->up(5), Errc::kWouldDeadlock, {"register_begin"}));
  };
  ASSERT_TRUE(ReturnsWithin(body));
  EXPECT_EQ(snap(*d), before);
  EXPECT_EQ(d->states().size(), 5u);
  EXPECT_TRUE(Succeeds(d->up(5)));  // fine once released
}

TEST(DomainMisuse, InsideRcuReadSection) {
  auto d = std::make_shared<Domain>(8, 4);
  const Snapshot before = snap(*d);
  auto body = [d] {
    rcu::ReadGuard guard;
    ExpectAllRefused(*d, {"RCU read section"}, "inside an RCU read section");
  };
  ASSERT_TRUE(ReturnsWithin(body));
  EXPECT_EQ(snap(*d), before);
  EXPECT_EQ(d->states().size(), 5u);
  EXPECT_TRUE(Succeeds(d->down(3)));
}

TEST(DomainMisuse, InsideRegisterBeginScope) {
  auto d = std::make_shared<Domain>(8, 4);
  const Snapshot before = snap(*d);
  auto body = [d] {
    Result<RegistrationScope> scope = d->register_begin();
    ASSERT_TRUE(Succeeds(scope));
    ExpectAllRefused(*d, {"register_begin", "RegistrationScope"},
                     "inside a register_begin scope");
    // The scope's own methods work.
    Result<StateId> id =
        scope->setup_state_nocalls(Section::kOnline, "in-scope", nullptr, nullptr);
    EXPECT_TRUE(Succeeds(id));
    if (id) EXPECT_TRUE(Succeeds(scope->remove_state_nocalls(*id)));
  };
  ASSERT_TRUE(ReturnsWithin(body));
  EXPECT_EQ(snap(*d), before);
  EXPECT_TRUE(Succeeds(d->up(6)));  // the scope ended: the lock is free
}

// Captures the Status of each misuse call made from inside a callback, to be
// checked after the transition (the callback itself returns 0).
struct CallbackMisuse {
  std::vector<std::pair<std::string, Status>> results;
  void run(Domain& d) {
    for (const Misuse& m : writer_calls()) results.emplace_back(m.what, m.call(d));
  }
  void check(const std::vector<std::string>& needles, const char* where) {
    EXPECT_EQ(results.size(), writer_calls().size()) << where;
    for (auto& [what, s] : results)
      EXPECT_TRUE(Fails(s, Errc::kWouldDeadlock, needles)) << what << " from " << where;
    results.clear();
  }
};

TEST(DomainMisuse, FromInsideCallbacks) {
  auto d = std::make_shared<Domain>(8, 4);
  auto in_startup = std::make_shared<CallbackMisuse>();
  auto in_teardown = std::make_shared<CallbackMisuse>();
  auto armed = std::make_shared<std::atomic<bool>>(false);
  auto body = [=] {
    // Callbacks capture the Domain by plain pointer: the Domain owns them.
    Domain* dp = d.get();
    Result<StateId> prep = d->setup_state_nocalls(
        Section::kPrepare, "misuse:cb",
        [=](unsigned cpu) {
          if (cpu == 6 && armed->load()) in_startup->run(*dp);
          return 0;
        },
        [=](unsigned cpu) {
          if (cpu == 6 && armed->load()) in_teardown->run(*dp);
          return 0;
        });
    ASSERT_TRUE(Succeeds(prep));
    armed->store(true);
    ASSERT_TRUE(Succeeds(d->up(6)));
    in_startup->check({"callback", "CPU 6", "misuse:cb", "_nocalls"},
                      "a transition's startup");
    ASSERT_TRUE(Succeeds(d->down(6)));
    in_teardown->check({"callback", "CPU 6", "misuse:cb", "_nocalls"},
                       "a transition's teardown");
    armed->store(false);
    ASSERT_TRUE(Succeeds(d->up(6)));
    // Startups run by setup_state() and add_instance() are callbacks too.
    auto in_setup = std::make_shared<CallbackMisuse>();
    Result<StateId> online = d->setup_state(
        Section::kOnline, "misuse:setup",
        [=](unsigned cpu) {
          if (cpu == 6) in_setup->run(*dp);
          return 0;
        },
        nullptr);
    ASSERT_TRUE(Succeeds(online));
    in_setup->check({"callback", "CPU 6", "misuse:setup"}, "setup_state's startup");
    Result<StateId> multi = d->setup_multi_state(
        Section::kOnline, "misuse:multi",
        [=](unsigned cpu, void*) {
          if (cpu == 6) in_setup->run(*dp);
          return 0;
        },
        nullptr);
    ASSERT_TRUE(Succeeds(multi));
    static int instance;
    ASSERT_TRUE(Succeeds(d->add_instance(*multi, &instance)));
    in_setup->check({"callback", "CPU 6", "misuse:multi"}, "add_instance's startup");
  };
  ASSERT_TRUE(ReturnsWithin(body));
  EXPECT_EQ(d->online().to_string(), "0-3,6");
  EXPECT_TRUE(Succeeds(d->down(6)));
}

// Misuse against one Domain is not misuse against another.
TEST(DomainMisuse, CallbackMayDriveAnotherDomain) {
  Domain a(4, 2), b(4, 1);
  Status inner;
  ASSERT_TRUE(Succeeds(a.setup_state_nocalls(
      Section::kOnline, "drive-b",
      [&](unsigned) {
        inner = b.up(2);
        return 0;
      },
      nullptr)));
  ASSERT_TRUE(Succeeds(a.up(3)));
  EXPECT_TRUE(Succeeds(inner));
  EXPECT_TRUE(b.cpu_online(2));
}

// Writer's-thread recursion: a callback may take the hotplug read lock.
TEST(DomainMisuse, CallbackMayTakeHotplugReadLock) {
  auto d = std::make_shared<Domain>(8, 4);
  auto seen = std::make_shared<std::vector<std::string>>();
  auto body = [d, seen] {
    auto take = [dp = d.get(), seen](const char* where) {
      return [d = dp, seen, where](unsigned cpu) {
        ReadLock lock(d->hotplug_lock());
        ReadLock nested(d->hotplug_lock());
        seen->push_back(std::string(where) + ":" + std::to_string(cpu) + ":" +
                        (d->cpu_online(cpu) ? "on" : "off"));
        return 0;
      };
    };
    ASSERT_TRUE(
        Succeeds(d->setup_state(Section::kPrepare, "rl:prep", take("ps"), take("pt"))));
    ASSERT_TRUE(
        Succeeds(d->setup_state(Section::kOnline, "rl:online", take("os"), take("ot"))));
    seen->clear();
    ASSERT_TRUE(Succeeds(d->up(5)));
    ASSERT_TRUE(Succeeds(d->down(5)));
  };
  ASSERT_TRUE(ReturnsWithin(body));
  EXPECT_EQ(*seen,
            (std::vector<std::string>{"ps:5:off", "os:5:on", "ot:5:on", "pt:5:off"}));
  // And the lock is free again for everyone.
  EXPECT_TRUE(d->hotplug_lock().try_lock_shared());
  d->hotplug_lock().unlock_shared();
}

// Calls that do not change CPUs but still take the writers' lock must not
// hang when made where the writers' lock is already held by this thread.
TEST(DomainMisuse, QueriesInsideRegisterBeginScopeReturn) {
  auto d = std::make_shared<Domain>(4, 2);
  auto body = [d] {
    Result<RegistrationScope> scope = d->register_begin();
    ASSERT_TRUE(Succeeds(scope));
    Result<StateId> id =
        scope->setup_state_nocalls(Section::kOnline, "q:scope", nullptr, nullptr);
    ASSERT_TRUE(Succeeds(id));
    EXPECT_EQ(d->states().size(), 6u);
    Result<StateId> found = d->find_state("q:scope");
    EXPECT_TRUE(Succeeds(found));
  };
  EXPECT_TRUE(ReturnsWithin(body, 3s))
      << "Domain::states()/find_state() inside a register_begin() scope";
}

TEST(DomainMisuse, QueriesInsideCallbackReturn) {
  auto d = std::make_shared<Domain>(4, 2);
  auto names = std::make_shared<std::vector<std::string>>();
  auto body = [d, names] {
    ASSERT_TRUE(Succeeds(d->setup_state_nocalls(
        Section::kOnline, "q:cb",
        [dp = d.get(), names](unsigned) {
          for (const StateInfo& s : dp->states()) names->push_back(s.name);
          return 0;
        },
        nullptr)));
    ASSERT_TRUE(Succeeds(d->up(2)));
  };
  EXPECT_TRUE(ReturnsWithin(body, 3s))
      << "Domain::states() from inside a hotplug callback";
}

// A reader under the hotplug read lock looks a state up while a hotplug
// writer is queued: the writer holds the writers' lock and waits for the
// reader, so the query must not wait for the writers' lock (ABBA).
TEST(DomainMisuse, QueryUnderHotplugReadLockWithWriterQueuedReturns) {
  auto d = std::make_shared<Domain>(4, 2);
  auto body = [d] {
    ReadLock lock(d->hotplug_lock());
    std::thread writer([d] { EXPECT_TRUE(Succeeds(d->up(3))); });
    std::this_thread::sleep_for(100ms);  // the writer is now waiting for this reader
    Result<StateId> found = d->find_state("active");
    EXPECT_TRUE(Succeeds(found));
    EXPECT_EQ(d->states().size(), 5u);
    lock.unlock();
    writer.join();
  };
  EXPECT_TRUE(ReturnsWithin(body, 3s))
      << "Domain::find_state()/states() under the hotplug read lock deadlock against a "
         "queued up()";
}

// The same inside an RCU read section: a down() holds the writers' lock and
// waits for a grace period, that is, for this reader.
TEST(DomainMisuse, QueryInsideRcuReadSectionWithDownInProgressReturns) {
  auto d = std::make_shared<Domain>(4, 4);
  // A PREPARE teardown, so the down waits for a grace period.
  ASSERT_TRUE(Succeeds(d->setup_state(Section::kPrepare, "misuse:data", nullptr,
                                      [](unsigned) { return 0; })));
  auto body = [d] {
    std::thread writer;
    {
      rcu::ReadGuard guard;
      writer = std::thread([d] { EXPECT_TRUE(Succeeds(d->down(3))); });
      std::this_thread::sleep_for(100ms);  // the down is now waiting for a grace period
      Result<StateId> found = d->find_state("bringup");
      EXPECT_TRUE(Succeeds(found));
    }
    writer.join();
  };
  EXPECT_TRUE(ReturnsWithin(body, 3s))
      << "Domain::find_state() inside an RCU read section deadlocks against a down() "
         "waiting for a grace period";
}

// disable_hotplug() takes the writers' lock, like cpu_hotplug_disable(): under
// the hotplug read lock it is refused instead of deadlocking.
TEST(DomainMisuse, DisableHotplugUnderHotplugReadLockIsRefused) {
  Domain d(4, 2);
  ReadLock hold(d.hotplug_lock());
  Status s = d.disable_hotplug();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Errc::kWouldDeadlock);
  EXPECT_NE(s.error().message().find("disable_hotplug()"), std::string::npos);
}

// The observer is swapped atomically: setting it never waits for hotplug.
TEST(DomainMisuse, SetObserverUnderHotplugReadLockWithWriterQueuedReturns) {
  auto d = std::make_shared<Domain>(4, 2);
  auto body = [d] {
    ReadLock hold(d->hotplug_lock());
    std::thread writer([d] { (void)d->up(3); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    d->set_observer([](const CallbackEvent&) {});
    hold.unlock();
    writer.join();
    d->set_observer(nullptr);
  };
  EXPECT_TRUE(ReturnsWithin(body, 3s))
      << "Domain::set_observer() under the hotplug read lock";
}

TEST(DomainMisuse, DisableHotplugInsideRegisterBeginScopeReturns) {
  auto d = std::make_shared<Domain>(4, 2);
  auto body = [d] {
    Result<RegistrationScope> scope = d->register_begin();
    ASSERT_TRUE(Succeeds(scope));
    EXPECT_TRUE(Succeeds(d->disable_hotplug()));
    EXPECT_TRUE(Succeeds(d->enable_hotplug()));
  };
  EXPECT_TRUE(ReturnsWithin(body, 3s))
      << "Domain::disable_hotplug()/enable_hotplug() inside a register_begin() scope";
}

}  // namespace
}  // namespace cpuhp

namespace cpuhp {
namespace {

// Real machines can have holes in their CPU ids (possible "0-3,8-11").
// ------------------------------------------------------------ seams (issue 11)

template <class R>
Status as_status(const R& r) {
  if (r.ok()) return {};
  return r.error();
}

// Diagnostics reported while a test runs (cpuhp/diagnostics.h), one line each.
struct CapturedDiagnostics {
  CapturedDiagnostics() {
    std::lock_guard g(mutex());
    lines().clear();
    previous_ = set_diagnostic_handler(&capture);
  }
  ~CapturedDiagnostics() { set_diagnostic_handler(previous_); }
  std::vector<std::string> take() {
    std::lock_guard g(mutex());
    return std::exchange(lines(), {});
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::vector<std::string>& lines() {
    static std::vector<std::string> l;
    return l;
  }
  static void capture(const Diagnostic& d) noexcept {
    std::lock_guard g(mutex());
    lines().push_back(std::string(d.component) + ": " + std::string(d.message));
  }
  DiagnosticHandler previous_;
};

bool any_contains(const std::vector<std::string>& lines,
                  const std::vector<std::string>& needles) {
  for (const std::string& line : lines) {
    bool all = true;
    for (const std::string& n : needles) all = all && line.find(n) != std::string::npos;
    if (all) return true;
  }
  return false;
}

// Regression (issue 11, defect 1): a scope method called from inside a startup
// that the same scope's setup_state() runs picked the dynamic slot being
// installed, returned the same id and overwrote the running callback
// (heap-use-after-free under ASan; the outer state was lost).
TEST(DomainMisuse, ScopeMethodsFromInsideTheScopesOwnCallbacksAreRefused) {
  auto d = std::make_shared<Domain>(4, 2);
  auto body = [d] {
    Result<RegistrationScope> scope = d->register_begin();
    ASSERT_TRUE(Succeeds(scope));
    RegistrationScope* sp = &*scope;
    std::vector<std::pair<std::string, Status>> inner;
    static NotifierBlock nb;
    StateId existing = -1;
    auto reenter = [&] {
      inner.emplace_back("setup_state_nocalls",
                         as_status(sp->setup_state_nocalls(Section::kOnline, "reenter:a",
                                                           nullptr, nullptr)));
      inner.emplace_back("setup_state", as_status(sp->setup_state(
                                            Section::kPrepare, "reenter:b",
                                            [](unsigned) { return 0; }, nullptr)));
      inner.emplace_back("remove_state", sp->remove_state(existing));
      inner.emplace_back("remove_state_nocalls", sp->remove_state_nocalls(existing));
      inner.emplace_back("register_notifier", sp->register_notifier(&nb));
    };
    Result<StateId> old =
        sp->setup_state_nocalls(Section::kOnline, "reenter:existing", nullptr, nullptr);
    ASSERT_TRUE(Succeeds(old));
    existing = *old;
    Result<StateId> outer = sp->setup_state(
        Section::kOnline, "reenter:outer",
        [&](unsigned cpu) {
          if (cpu == 1) reenter();
          return 0;
        },
        [&](unsigned cpu) {
          if (cpu == 1) reenter();
          return 0;
        });
    ASSERT_TRUE(Succeeds(outer));
    ASSERT_EQ(inner.size(), 5u);
    for (auto& [what, s] : inner)
      EXPECT_TRUE(Fails(s, Errc::kWouldDeadlock, {"callback", "CPU 1", "reenter:outer"}))
          << what << " from the startup";
    inner.clear();
    EXPECT_NE(*outer, existing);
    EXPECT_EQ(*d->find_state("reenter:outer"), *outer);
    EXPECT_FALSE(d->find_state("reenter:a").ok());
    EXPECT_EQ(*d->find_state("reenter:existing"), existing);
    EXPECT_FALSE(sp->is_registered(&nb));
    // The teardowns that remove_state() runs are callbacks too.
    EXPECT_TRUE(Succeeds(sp->remove_state(*outer)));
    ASSERT_EQ(inner.size(), 5u);
    for (auto& [what, s] : inner)
      EXPECT_TRUE(Fails(s, Errc::kWouldDeadlock, {"callback", "CPU 1"}))
          << what << " from the teardown";
    EXPECT_EQ(*d->find_state("reenter:existing"), existing);
    EXPECT_TRUE(Succeeds(sp->remove_state_nocalls(existing)));
  };
  ASSERT_TRUE(ReturnsWithin(body));
  EXPECT_EQ(d->states().size(), 5u);
  EXPECT_TRUE(Succeeds(d->up(3)));
}

// Regression (issue 11, defect 4): scope methods that run callbacks take the
// hotplug write lock; by a thread holding the read lock they aborted the
// process (PercpuRwSemaphore: lock() by a read holder) instead of reporting
// the deadlock. The no-call variants need no hotplug lock and still work.
TEST(DomainMisuse, ScopeMethodsThatRunCallbacksUnderTheHotplugReadLockAreRefused) {
  auto d = std::make_shared<Domain>(4, 2);
  auto body = [d] {
    Result<RegistrationScope> scope = d->register_begin();
    ASSERT_TRUE(Succeeds(scope));
    auto cb = [](unsigned) { return 0; };
    Result<StateId> id =
        scope->setup_state_nocalls(Section::kOnline, "rl:existing", cb, cb);
    ASSERT_TRUE(Succeeds(id));
    {
      ReadLock hold(d->hotplug_lock());
      EXPECT_TRUE(Fails(scope->setup_state(Section::kOnline, "rl:new", cb, cb),
                        Errc::kWouldDeadlock, {"setup_state", "read lock"}));
      EXPECT_TRUE(Fails(scope->remove_state(*id), Errc::kWouldDeadlock,
                        {"remove_state", "read lock"}));
      Result<StateId> quiet =
          scope->setup_state_nocalls(Section::kOnline, "rl:nocalls", cb, cb);
      EXPECT_TRUE(Succeeds(quiet));
      if (quiet) EXPECT_TRUE(Succeeds(scope->remove_state_nocalls(*quiet)));
    }
    EXPECT_EQ(*d->find_state("rl:existing"), *id);
    EXPECT_FALSE(d->find_state("rl:new").ok());
    EXPECT_TRUE(Succeeds(scope->remove_state(*id)));
  };
  ASSERT_TRUE(ReturnsWithin(body));
  EXPECT_EQ(d->states().size(), 5u);
}

// Regression (issue 11, defect 5): an observer that throws ran outside the
// callback's try block; the exception left up(3) half done: CPU 3 online with
// state 0, for good. An observer cannot fail a transition: its throw is
// reported and ignored, like a teardown's.
TEST(DomainObserver, ThrowingObserverIsReportedAndTheTransitionCompletes) {
  CapturedDiagnostics diagnostics;
  Domain d(4, 2);
  d.set_observer([](const CallbackEvent&) { throw std::runtime_error("observer boom"); });
  EXPECT_TRUE(Succeeds(d.up(3)));
  EXPECT_EQ(state_of(d, 3), kStateOnline);
  EXPECT_TRUE(d.active().test(3));
  EXPECT_TRUE(Succeeds(d.down(3)));
  EXPECT_EQ(state_of(d, 3), kStateOffline);
  EXPECT_FALSE(d.online().test(3));
  d.set_observer(nullptr);
  EXPECT_TRUE(any_contains(diagnostics.take(), {"observer", "observer boom", "CPU 3"}));
}

// An observer runs in the controlling thread with the writers' lock held: a
// call from it that would take the lock again is refused, naming the observer.
TEST(DomainObserver, ObserverReentryIsRefused) {
  auto d = std::make_shared<Domain>(4, 2);
  auto body = [d] {
    std::vector<Status> inner;
    d->set_observer([&inner, dp = d.get()](const CallbackEvent& e) {
      if (e.cpu == 3 && e.startup && e.state == kStateActive) {
        inner.push_back(dp->down(1));
        inner.push_back(as_status(
            dp->setup_state_nocalls(Section::kOnline, "obs:x", nullptr, nullptr)));
        inner.push_back(as_status(dp->register_begin()));
        (void)dp->states();  // queries are fine
      }
    });
    EXPECT_TRUE(Succeeds(d->up(3)));
    d->set_observer(nullptr);
    ASSERT_EQ(inner.size(), 3u);
    for (const Status& s : inner)
      EXPECT_TRUE(Fails(s, Errc::kWouldDeadlock, {"observer", "CPU 3"}));
  };
  ASSERT_TRUE(ReturnsWithin(body));
  EXPECT_EQ(d->online().to_string(), "0-1,3");
}

// Regression (issue 11, defect 6): a suspend that fails and whose restore of
// the CPUs already taken fails too said "CPUs restored" while a CPU stayed
// offline. The error names the CPU that refused and each CPU left down.
TEST(DomainSuspend, FailedSuspendWhoseRestoreFailsNamesTheCpusLeftDown) {
  Domain d(6, 6);
  Result<StateId> online = d.setup_state_nocalls(
      Section::kOnline, "restore", [](unsigned) { return 0; }, nullptr);
  ASSERT_TRUE(Succeeds(online));
  ASSERT_TRUE(Succeeds(d.inject_failure(2, kStateNotifyOnline)));  // suspend stops at 2
  ASSERT_TRUE(Succeeds(d.inject_failure(4, *online)));  // bringing 4 back fails
  Status s = d.suspend_nonboot();
  ASSERT_TRUE(Fails(s, Errc::kCallbackFailed, {"suspend_nonboot", "CPU 2", "CPU 4"}));
  EXPECT_EQ(s.error().message().find("CPUs restored"), std::string::npos)
      << s.error().message();
  EXPECT_EQ(d.online().to_string(), "0-3,5");
  EXPECT_EQ(state_of(d, 4), kStateOffline);
  // Not suspended, hotplug not disabled: CPU 4 can be brought back by hand.
  EXPECT_TRUE(Fails(d.resume_nonboot(), Errc::kInvalidArgument));
  EXPECT_TRUE(Succeeds(d.up(4)));
}

// Issue 11, defect 2: a PREPARE teardown that remove_state() or the rollback
// of a failed setup_state() runs finds its CPU online, and an RCU reader may
// hold what the startup published: no grace period of the Domain can protect
// it, so the teardown retires it (domain.h, "Who waits for readers"). This is
// that contract, with a reader that holds CPU 1's object across both.
TEST(DomainRcu, PrepareTeardownOfAnOnlineCpuRetiresWhatAReaderHolds) {
  Domain d(4, 4);
  std::vector<std::atomic<PerCpuObject*>> objs(4);
  std::vector<std::pair<unsigned, bool>> teardowns;  // (cpu, online bit seen)
  std::atomic<int> phase{0};  // 1: reader holds CPU 1's object; 2: check it
  std::atomic<bool> fail_cpu3{true};
  auto poison = [](PerCpuObject* p) {
    p->magic.store(kPoison, std::memory_order_relaxed);
    delete p;
  };
  auto startup = [&](unsigned cpu) {
    if (cpu == 3 && fail_cpu3.load()) {
      while (phase.load() != 1) std::this_thread::yield();  // reader holds CPU 1's
      return -EIO;
    }
    objs[cpu].store(new PerCpuObject, std::memory_order_release);
    return 0;
  };
  auto teardown = [&](unsigned cpu) {
    teardowns.emplace_back(cpu, d.cpu_online(cpu));
    rcu::rcu_retire(objs[cpu].exchange(nullptr), poison);
    return 0;
  };
  std::atomic<int> alive_checks{0};
  auto reader = [&] {
    rcu::ReadGuard guard;
    PerCpuObject* held = nullptr;
    while ((held = objs[1].load(std::memory_order_acquire)) == nullptr)
      std::this_thread::yield();
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
    if (held->magic.load(std::memory_order_relaxed) == kAlive) alive_checks.fetch_add(1);
  };

  std::thread r1(reader);
  Result<StateId> failed =
      d.setup_state(Section::kPrepare, "retire:pp", startup, teardown);
  EXPECT_TRUE(Fails(failed, Errc::kCallbackFailed, {"CPU 3"}));
  phase.store(2);
  r1.join();
  EXPECT_EQ(teardowns,
            (std::vector<std::pair<unsigned, bool>>{{2, true}, {1, true}, {0, true}}));

  teardowns.clear();
  phase.store(0);
  fail_cpu3.store(false);
  Result<StateId> id = d.setup_state(Section::kPrepare, "retire:pp", startup, teardown);
  ASSERT_TRUE(Succeeds(id));
  std::thread r2(reader);
  while (phase.load() != 1) std::this_thread::yield();
  ASSERT_TRUE(Succeeds(d.remove_state(*id)));
  phase.store(2);
  r2.join();
  EXPECT_EQ(teardowns, (std::vector<std::pair<unsigned, bool>>{
                           {3, true}, {2, true}, {1, true}, {0, true}}));
  EXPECT_EQ(alive_checks.load(), 2);
  rcu::rcu_barrier();  // the retired objects are freed
}

// For the owed-grace-period tests: a reader that sees CPU 1 online, waits
// for phase 2, then (same read section) takes the object published for CPU 1
// (phase 3), holds it 100 ms (a teardown must wait for that) and records
// whether it was still alive.
struct CpuOneHolder {
  std::vector<std::atomic<PerCpuObject*>> objs{4};
  std::atomic<int> phase{0};
  std::atomic<bool> used_alive{false};
  std::thread thread;

  explicit CpuOneHolder(Domain& d)
      : thread([this, &d] {
          rcu::ReadGuard guard;
          if (!d.cpu_online(1)) return;
          phase.store(1);
          while (phase.load() != 2) std::this_thread::yield();
          PerCpuObject* p;
          while ((p = objs[1].load(std::memory_order_acquire)) == nullptr)
            std::this_thread::yield();
          phase.store(3);
          std::this_thread::sleep_for(100ms);
          used_alive.store(p->magic.load(std::memory_order_relaxed) == kAlive);
        }) {
    while (phase.load() != 1) std::this_thread::yield();
  }
  // A PREPARE startup: publish the CPU's object.
  int publish(unsigned cpu) {
    objs[cpu].store(new PerCpuObject, std::memory_order_release);
    return 0;
  }
  // A PREPARE teardown that follows domain.h: retire while the CPU's bit is
  // set, free at once (poisoned) once it is clear.
  int unpublish(const Domain& d, unsigned cpu) {
    PerCpuObject* p = objs[cpu].exchange(nullptr);
    if (p == nullptr) return 0;
    if (d.cpu_online(cpu)) {
      rcu::rcu_retire(p);
    } else {
      p->magic.store(kPoison, std::memory_order_relaxed);
      delete p;
    }
    return 0;
  }
};

// Found by the API sequence fuzzer: a down() with no PREPARE teardown
// installed skips its grace period. A reader that saw the CPU online before
// that down may then reach data a PREPARE startup publishes for the CPU later
// (the CPU parked in the PREPARE section gets a new state), and a teardown
// that finds the bit clear frees it at once, "a grace period has passed".
// The Domain now remembers the grace period it owes the CPU and waits for it
// before the first PREPARE teardown that finds the bit clear.
TEST(DomainGracePeriod, OwedGracePeriodIsWaitedBeforeAPrepareTeardownOfAParkedCpu) {
  Domain d(4, 4);
  CpuOneHolder r(d);
  ASSERT_TRUE(Succeeds(d.bring_to(1, 20)));  // no PREPARE teardown: no grace period
  ASSERT_FALSE(d.cpu_online(1));
  r.phase.store(2);
  Result<StateId> id = d.setup_state_at(
      10, "owed:data", [&](unsigned cpu) { return r.publish(cpu); },
      [&](unsigned cpu) { return r.unpublish(d, cpu); });
  ASSERT_TRUE(Succeeds(id));
  while (r.phase.load() != 3) std::this_thread::yield();
  ASSERT_TRUE(Succeeds(d.remove_state(*id)));
  r.thread.join();
  EXPECT_TRUE(r.used_alive.load());
  rcu::rcu_barrier();
}

// The same debt, paid by the rollback of a failed up: the up's PREPARE
// startup publishes, a later PREPARE startup fails, and the rollback's
// teardown finds the bit clear.
TEST(DomainGracePeriod, OwedGracePeriodIsWaitedBeforeTheRollbackOfAFailedUp) {
  Domain d(4, 4);
  std::atomic<const std::atomic<int>*> phase{nullptr};
  ASSERT_TRUE(Succeeds(d.setup_state_at_nocalls(
      11, "owed:fail",
      [&](unsigned cpu) {
        if (cpu != 1) return 0;
        while (phase.load()->load() != 3) std::this_thread::yield();  // CPU 1's is held
        return -EIO;
      },
      nullptr)));
  CpuOneHolder r(d);
  phase.store(&r.phase);
  ASSERT_TRUE(Succeeds(d.down(1)));  // no PREPARE teardown: no grace period
  ASSERT_TRUE(Succeeds(d.setup_state_at_nocalls(
      10, "owed:data", [&](unsigned cpu) { return r.publish(cpu); },
      [&](unsigned cpu) { return r.unpublish(d, cpu); })));
  r.phase.store(2);
  EXPECT_TRUE(Fails(d.up(1), Errc::kCallbackFailed, {"CPU 1", "owed:fail"}));
  r.thread.join();
  EXPECT_TRUE(r.used_alive.load());
}

// Found by the API sequence fuzzer: a CPU that suspend_nonboot() took down
// could leave the present mask, and resume_nonboot() brought it online anyway
// (online not a subset of present). It stays present until the resume.
TEST(DomainSuspend, ACpuTakenBySuspendCannotLeaveThePresentMask) {
  Domain d(4, 4);
  ASSERT_TRUE(Succeeds(d.suspend_nonboot()));
  EXPECT_TRUE(Fails(d.set_present(3, false), Errc::kBusy, {"CPU 3", "suspend_nonboot"}));
  ASSERT_TRUE(Succeeds(d.resume_nonboot()));
  EXPECT_EQ(d.online().to_string(), "0-3");
  EXPECT_TRUE(d.online().is_subset_of(d.present()));
}

// Found by the API sequence fuzzer: RegistrationScope::done() from a callback
// that the scope's own call runs released the writers' lock under a running
// registration. It is a fatal misuse now, named as such.
TEST(DomainMisuseDeathTest, ScopeEndedFromInsideItsOwnCallbackIsFatal) {
  EXPECT_DEATH(
      {
        Domain d(2, 2);
        Result<RegistrationScope> scope = d.register_begin();
        RegistrationScope* sp = &*scope;
        (void)sp->setup_state(
            Section::kOnline, "done:inside",
            [sp](unsigned) {
              sp->done();
              return 0;
            },
            nullptr);
      },
      "done\\(\\) from inside a hotplug callback");
}

// Regression (issue 11, defect 9): the hotplug read lock taken inside an RCU
// read section while a down() holds the write lock and waits for a grace
// period hung both threads silently. The Domain's lock is built with
// WriterWaits::kForRcuGracePeriods, so the reader dies with a message instead.
TEST(DomainMisuseDeathTest, HotplugReadLockInsideRcuReadSectionDuringADownIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Domain d(4, 4);
        (void)d.setup_state(
            Section::kPrepare, "gp:teardown", [](unsigned) { return 0; },
            [](unsigned) { return 0; });  // so down() waits a grace period
        std::atomic<bool> in_section{false};
        std::thread reader([&] {
          rcu::ReadGuard guard;
          in_section.store(true);
          // Wait until the down holds the write lock (the gate closes at once).
          while (d.hotplug_lock().try_lock_shared()) {
            d.hotplug_lock().unlock_shared();
            std::this_thread::yield();
          }
          ReadLock lock(d.hotplug_lock());  // would wait for a writer waiting for us
        });
        while (!in_section.load()) std::this_thread::yield();
        std::thread downer([&] { (void)d.down(1); });
        reader.join();
        downer.join();
      },
      "RCU read section");
}

TEST(DomainSparse, OnlyPossibleCpusExist) {
  auto possible = CpuMask::parse("0-3,8-11", 12);
  auto online = CpuMask::parse("0,2,9", 12);
  ASSERT_TRUE(possible.ok() && online.ok());
  Domain d(*possible, *online);
  EXPECT_EQ(d.capacity(), 12u);
  EXPECT_EQ(d.possible().to_string(), "0-3,8-11");
  EXPECT_EQ(d.present().to_string(), "0-3,8-11");
  EXPECT_EQ(d.online().to_string(), "0,2,9");
  EXPECT_EQ(d.active().to_string(), "0,2,9");
  EXPECT_TRUE(d.up(10).ok());
  Status hole = d.up(5);
  ASSERT_FALSE(hole.ok());
  EXPECT_EQ(hole.error().code(), Errc::kNotPresent);
  Status add = d.set_present(5, true);
  ASSERT_FALSE(add.ok());
  EXPECT_EQ(add.error().code(), Errc::kNotPresent);
  EXPECT_NE(add.error().message().find("CPU 5 is not possible"), std::string::npos);
  EXPECT_EQ(d.present().to_string(), "0-3,8-11");
}

TEST(DomainSparse, BadMasksThrowNamingTheCpus) {
  CpuMask possible = *CpuMask::parse("0-3", 8);
  EXPECT_THROW(Domain(possible, *CpuMask::parse("", 8)), std::invalid_argument);
  EXPECT_THROW(Domain(possible, *CpuMask::parse("0", 4)), std::invalid_argument);
  try {
    Domain d(possible, *CpuMask::parse("1,6-7", 8));
    ADD_FAILURE() << "online CPUs outside possible accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("6-7"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cpuhp
