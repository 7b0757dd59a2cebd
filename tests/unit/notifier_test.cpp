// Unit tests for the 2014 CPU notifier API on cpuhp::Domain
// (include/cpuhp/notifier.h; Domain::register_notifier, register_begin()).
//
// Event sequences are checked against a recorded trace: every test notifier
// appends "name:EVENT:cpu" (EVENT gets "|FROZEN" when kCpuTasksFrozen is set).
//
// Blocking is checked the usual way: the thread that should block sets a
// "started" flag, then makes the call; the test waits for "started", sleeps
// kSettle and checks that the call has not returned; once unblocked, the
// thread records what it saw right after the call returned (ordering). There
// are no other timing assertions.
#include "cpuhp/notifier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/rcu.h"
#include "cpuhp/states.h"
#include "support/waiting.h"

namespace cpuhp {
namespace {

using namespace std::chrono_literals;
using cpuhp::testing_support::eventually;
using cpuhp::testing_support::kSettle;

using Events = std::vector<std::string>;

// A deadlock cannot be recovered from inside a callback (the blocked thread
// cannot be joined): say what happened and stop.
[[noreturn]] void deadlocked(const char* what) {
  std::fprintf(stderr, "notifier_test: DEADLOCK: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

std::string event_name(unsigned long action) {
  std::string s;
  switch (action & ~kCpuTasksFrozen) {
    case kCpuOnline:
      s = "ONLINE";
      break;
    case kCpuUpPrepare:
      s = "UP_PREPARE";
      break;
    case kCpuUpCanceled:
      s = "UP_CANCELED";
      break;
    case kCpuDownPrepare:
      s = "DOWN_PREPARE";
      break;
    case kCpuDownFailed:
      s = "DOWN_FAILED";
      break;
    case kCpuDead:
      s = "DEAD";
      break;
    case kCpuPostDead:
      s = "POST_DEAD";
      break;
    default:
      s = "UNKNOWN(" + std::to_string(action & ~kCpuTasksFrozen) + ")";
      break;
  }
  if ((action & kCpuTasksFrozen) != 0) s += "|FROZEN";
  return s;
}

// The events of one test, in the order they were delivered. Callbacks run on
// the thread driving a transition; the mutex is for the tests that read the
// trace from other threads.
class Trace {
 public:
  void add(std::string event) {
    std::lock_guard guard(mutex_);
    events_.push_back(std::move(event));
  }
  Events take() {
    std::lock_guard guard(mutex_);
    return std::exchange(events_, {});
  }

 private:
  std::mutex mutex_;
  Events events_;
};

// A notifier that records every event it gets, then returns what `hook`
// returns (kNotifyOk without a hook).
class Recorder {
 public:
  using Hook = std::function<int(unsigned long action, unsigned cpu)>;

  Recorder(Trace& trace, std::string name, int priority = 0)
      : trace_(trace), name_(std::move(name)) {
    block.priority = priority;
    block.call = [this](NotifierBlock* self, unsigned long action, unsigned cpu) {
      EXPECT_EQ(self, &block);
      trace_.add(name_ + ":" + event_name(action) + ":" + std::to_string(cpu));
      return hook ? hook(action, cpu) : kNotifyOk;
    };
  }
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  NotifierBlock block;
  Hook hook;

 private:
  Trace& trace_;
  std::string name_;
};

// A hook that refuses `event` (any frozen flag) with `reply`.
Recorder::Hook refuse(unsigned long event, int reply = kNotifyBad) {
  return [event, reply](unsigned long action, unsigned) {
    return (action & ~kCpuTasksFrozen) == event ? reply : kNotifyOk;
  };
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

StateId state_of(const Domain& d, unsigned cpu) {
  Result<StateId> r = d.cpu_state(cpu);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : -1;
}

// ------------------------------------------------------------ errno helpers

TEST(NotifierErrno, FromErrnoAndBackRoundTrip) {
  static_assert(notifier_from_errno(0) == kNotifyOk);
  static_assert(notifier_to_errno(kNotifyOk) == 0);
  static_assert(notifier_to_errno(kNotifyDone) == 0);
  static_assert(notifier_to_errno(kNotifyBad) == -EPERM);
  static_assert((notifier_from_errno(-ENOMEM) & kNotifyStopMask) != 0);
  static_assert(notifier_to_errno(notifier_from_errno(-ENOMEM)) == -ENOMEM);
  for (int err = 0; err >= -4095; --err) {
    const int ret = notifier_from_errno(err);
    EXPECT_EQ(notifier_to_errno(ret), err) << "errno " << err;
    EXPECT_EQ((ret & kNotifyStopMask) != 0, err != 0) << "errno " << err;
  }
}

// ------------------------------------------------------------ order, events

TEST(NotifierOrder, HigherPriorityFirstEqualPrioritiesInRegistrationOrder) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a", 0), b(t, "b", 10), c(t, "c", 0), dn(t, "d", -5), e(t, "e", 10);
  for (Recorder* r : {&a, &b, &c, &dn, &e})
    ASSERT_TRUE(d.register_notifier(&r->block).ok());

  ASSERT_TRUE(d.up(2).ok());
  EXPECT_EQ(t.take(), (Events{"b:UP_PREPARE:2", "e:UP_PREPARE:2", "a:UP_PREPARE:2",
                              "c:UP_PREPARE:2", "d:UP_PREPARE:2", "b:ONLINE:2",
                              "e:ONLINE:2", "a:ONLINE:2", "c:ONLINE:2", "d:ONLINE:2"}));

  ASSERT_TRUE(d.down(2).ok());
  EXPECT_EQ(t.take(),
            (Events{"b:DOWN_PREPARE:2", "e:DOWN_PREPARE:2", "a:DOWN_PREPARE:2",
                    "c:DOWN_PREPARE:2", "d:DOWN_PREPARE:2", "b:DEAD:2", "e:DEAD:2",
                    "a:DEAD:2", "c:DEAD:2", "d:DEAD:2", "b:POST_DEAD:2", "e:POST_DEAD:2",
                    "a:POST_DEAD:2", "c:POST_DEAD:2", "d:POST_DEAD:2"}));

  // Removing one keeps the others' order; re-adding puts it after its equals.
  ASSERT_TRUE(d.unregister_notifier(&b.block).ok());
  ASSERT_TRUE(d.register_notifier(&b.block).ok());
  ASSERT_TRUE(d.up(3).ok());
  EXPECT_EQ(t.take(), (Events{"e:UP_PREPARE:3", "b:UP_PREPARE:3", "a:UP_PREPARE:3",
                              "c:UP_PREPARE:3", "d:UP_PREPARE:3", "e:ONLINE:3",
                              "b:ONLINE:3", "a:ONLINE:3", "c:ONLINE:3", "d:ONLINE:3"}));
  for (Recorder* r : {&a, &b, &c, &dn, &e})
    ASSERT_TRUE(d.unregister_notifier(&r->block).ok());
}

TEST(NotifierEvents, UpSendsUpPrepareBeforeTheOnlineBitAndOnlineAfterIt) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a");
  int hooks = 0;
  a.hook = [&](unsigned long action, unsigned cpu) {
    ++hooks;
    EXPECT_TRUE(d.hotplug_lock().held_exclusive_by_this_thread()) << event_name(action);
    if (action == kCpuUpPrepare) {
      EXPECT_FALSE(d.cpu_online(cpu));
      EXPECT_FALSE(d.active().test(cpu));
    } else if (action == kCpuOnline) {
      EXPECT_TRUE(d.cpu_online(cpu));
      EXPECT_TRUE(d.online().test(cpu));
    }
    return kNotifyOk;
  };
  ASSERT_TRUE(d.register_notifier(&a.block).ok());

  ASSERT_TRUE(d.up(2).ok());
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:2", "a:ONLINE:2"}));
  EXPECT_EQ(hooks, 2);
  EXPECT_TRUE(d.cpu_online(2));
  EXPECT_TRUE(d.active().test(2));
  EXPECT_EQ(state_of(d, 2), kStateOnline);
  // Nobody else heard anything.
  ASSERT_TRUE(d.up(3).ok());
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:3", "a:ONLINE:3"}));
}

TEST(NotifierEvents, DownSendsDownPrepareDeadPostDead) {
  Domain d(4, 4);
  Trace t;
  Recorder a(t, "a");
  a.hook = [&](unsigned long action, unsigned cpu) {
    EXPECT_EQ(cpu, 1u);
    switch (action) {
      case kCpuDownPrepare:  // first after the active bit clears
        EXPECT_TRUE(d.cpu_online(1));
        EXPECT_FALSE(d.active().test(1));
        EXPECT_TRUE(d.hotplug_lock().held_exclusive_by_this_thread());
        break;
      case kCpuDead:  // online bit clear
        EXPECT_FALSE(d.cpu_online(1));
        EXPECT_FALSE(d.active().test(1));
        EXPECT_TRUE(d.hotplug_lock().held_exclusive_by_this_thread());
        break;
      case kCpuPostDead:  // hotplug write lock released
        EXPECT_FALSE(d.cpu_online(1));
        EXPECT_FALSE(d.hotplug_lock().held_exclusive_by_this_thread());
        break;
      default:
        ADD_FAILURE() << "unexpected " << event_name(action);
    }
    return kNotifyOk;
  };
  ASSERT_TRUE(d.register_notifier(&a.block).ok());

  ASSERT_TRUE(d.down(1).ok());
  EXPECT_EQ(t.take(), (Events{"a:DOWN_PREPARE:1", "a:DEAD:1", "a:POST_DEAD:1"}));
  EXPECT_FALSE(d.cpu_online(1));
  EXPECT_EQ(state_of(d, 1), kStateOffline);
}

TEST(NotifierEvents, UnregisteredNotifierIsNotCalled) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a"), b(t, "b");
  ASSERT_TRUE(d.register_notifier(&a.block).ok());
  ASSERT_TRUE(d.register_notifier(&b.block).ok());
  ASSERT_TRUE(d.unregister_notifier(&a.block).ok());
  ASSERT_TRUE(d.up(2).ok());
  ASSERT_TRUE(d.down(2).ok());
  EXPECT_EQ(t.take(), (Events{"b:UP_PREPARE:2", "b:ONLINE:2", "b:DOWN_PREPARE:2",
                              "b:DEAD:2", "b:POST_DEAD:2"}));
}

// DEAD comes after the online bit is clear and a grace period has passed: an
// RCU reader that saw the bit set delays it.
TEST(NotifierEvents, DeadWaitsForRcuReadersThatSawTheCpuOnline) {
  Domain d(4, 4);
  Trace t;
  Recorder a(t, "a");
  std::atomic<bool> reader_in{false}, release_reader{false}, reader_leaving{false};
  std::atomic<bool> dead_seen{false}, reader_was_leaving_at_dead{false};
  a.hook = [&](unsigned long action, unsigned) {
    if (action == kCpuDead) {
      reader_was_leaving_at_dead = reader_leaving.load();
      dead_seen = true;
    }
    return kNotifyOk;
  };
  ASSERT_TRUE(d.register_notifier(&a.block).ok());

  std::thread reader([&] {
    rcu::ReadGuard guard;
    EXPECT_TRUE(d.cpu_online(1));
    reader_in = true;
    while (!release_reader) std::this_thread::sleep_for(1ms);
    reader_leaving = true;
  });
  ASSERT_TRUE(eventually([&] { return reader_in.load(); }));
  Status down_status;
  std::thread downer([&] { down_status = d.down(1); });
  ASSERT_TRUE(eventually([&] { return !d.cpu_online(1); }));
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(dead_seen.load()) << "DEAD delivered while an RCU reader that saw CPU 1 "
                                    "online was still inside its read section";
  release_reader = true;
  reader.join();
  downer.join();
  EXPECT_TRUE(down_status.ok());
  EXPECT_TRUE(dead_seen.load());
  EXPECT_TRUE(reader_was_leaving_at_dead.load());
  EXPECT_EQ(t.take(), (Events{"a:DOWN_PREPARE:1", "a:DEAD:1", "a:POST_DEAD:1"}));
}

// ------------------------------------------------------------ refusal, rollback

TEST(NotifierRefusal, UpPrepareBadCancelsOnlyThoseAlreadyTold) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a", 10), b(t, "b", 5), c(t, "c", 0);
  b.hook = refuse(kCpuUpPrepare);
  for (Recorder* r : {&a, &b, &c}) ASSERT_TRUE(d.register_notifier(&r->block).ok());

  Status s = d.up(2);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Errc::kCallbackFailed);
  EXPECT_EQ(s.error().cause(), -EPERM);  // notifier_to_errno(NOTIFY_BAD)
  EXPECT_TRUE(contains(s.error().message(), "CPU 2")) << s.error().message();
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:2", "b:UP_PREPARE:2", "a:UP_CANCELED:2"}));
  EXPECT_FALSE(d.cpu_online(2));
  EXPECT_FALSE(d.active().test(2));
  EXPECT_EQ(state_of(d, 2), kStateOffline);

  // Nothing was left half done: the next up works and tells everyone.
  b.hook = nullptr;
  ASSERT_TRUE(d.up(2).ok());
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:2", "b:UP_PREPARE:2", "c:UP_PREPARE:2",
                              "a:ONLINE:2", "b:ONLINE:2", "c:ONLINE:2"}));
}

TEST(NotifierRefusal, UpPrepareErrnoIsWhatTheUpReports) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a", 10), b(t, "b", 5);
  b.hook = refuse(kCpuUpPrepare, notifier_from_errno(-ENOMEM));
  for (Recorder* r : {&a, &b}) ASSERT_TRUE(d.register_notifier(&r->block).ok());
  Status s = d.up(3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Errc::kCallbackFailed);
  EXPECT_EQ(s.error().cause(), -ENOMEM);
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:3", "b:UP_PREPARE:3", "a:UP_CANCELED:3"}));
  EXPECT_FALSE(d.cpu_online(3));
}

TEST(NotifierRefusal, FirstNotifierRefusingCancelsNobody) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a", 10), b(t, "b", 5);
  a.hook = refuse(kCpuUpPrepare);
  for (Recorder* r : {&a, &b}) ASSERT_TRUE(d.register_notifier(&r->block).ok());
  EXPECT_FALSE(d.up(2).ok());
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:2"}));
  EXPECT_FALSE(d.cpu_online(2));
}

TEST(NotifierRefusal, DownPrepareBadSendsDownFailedAndCpuStaysOnlineAndActive) {
  Domain d(4, 4);
  Trace t;
  Recorder a(t, "a", 10), b(t, "b", 5), c(t, "c", 0);
  b.hook = refuse(kCpuDownPrepare);
  a.hook = [&](unsigned long action, unsigned cpu) {
    if (action == kCpuDownFailed) EXPECT_TRUE(d.cpu_online(cpu));
    return kNotifyOk;
  };
  for (Recorder* r : {&a, &b, &c}) ASSERT_TRUE(d.register_notifier(&r->block).ok());

  Status s = d.down(3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Errc::kCallbackFailed);
  EXPECT_EQ(s.error().cause(), -EPERM);
  EXPECT_TRUE(contains(s.error().message(), "CPU 3")) << s.error().message();
  EXPECT_EQ(t.take(),
            (Events{"a:DOWN_PREPARE:3", "b:DOWN_PREPARE:3", "a:DOWN_FAILED:3"}));
  EXPECT_TRUE(d.cpu_online(3));
  EXPECT_TRUE(d.active().test(3));
  EXPECT_EQ(state_of(d, 3), kStateOnline);

  b.hook = nullptr;
  ASSERT_TRUE(d.down(3).ok());
  EXPECT_EQ(t.take(), (Events{"a:DOWN_PREPARE:3", "b:DOWN_PREPARE:3", "c:DOWN_PREPARE:3",
                              "a:DEAD:3", "b:DEAD:3", "c:DEAD:3", "a:POST_DEAD:3",
                              "b:POST_DEAD:3", "c:POST_DEAD:3"}));
  EXPECT_FALSE(d.cpu_online(3));
}

TEST(NotifierRefusal, ThrowingNotifierRefuses) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a", 10), b(t, "b", 5), c(t, "c", 0);
  b.hook = [](unsigned long action, unsigned) -> int {
    if (action == kCpuUpPrepare) throw std::runtime_error("no memory for you");
    if (action == kCpuDownPrepare) throw 42;  // not a std::exception
    return kNotifyOk;
  };
  for (Recorder* r : {&a, &b, &c}) ASSERT_TRUE(d.register_notifier(&r->block).ok());

  Status up = d.up(2);
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.error().code(), Errc::kCallbackFailed);
  EXPECT_EQ(up.error().cause(), -ECANCELED);
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:2", "b:UP_PREPARE:2", "a:UP_CANCELED:2"}));
  EXPECT_FALSE(d.cpu_online(2));

  Status down = d.down(1);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code(), Errc::kCallbackFailed);
  EXPECT_EQ(t.take(),
            (Events{"a:DOWN_PREPARE:1", "b:DOWN_PREPARE:1", "a:DOWN_FAILED:1"}));
  EXPECT_TRUE(d.cpu_online(1));
  EXPECT_TRUE(d.active().test(1));
  EXPECT_EQ(state_of(d, 1), kStateOnline);
}

// A CPU stopped at notify:prepare has had UP_PREPARE but is not online, which
// the register_begin() idiom (initialise the online CPUs) cannot see; the
// model (model/registration.pml, registration[parked_cpu]) found it. Both orders of
// parking and registering are refused, nothing changed.
TEST(NotifierErrors, ParkingAtNotifyPrepareAndRegisteringExcludeEachOther) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a");
  ASSERT_TRUE(d.register_notifier(&a.block).ok());
  Status park = d.bring_to(2, kStateNotifyPrepare);
  ASSERT_FALSE(park.ok());
  EXPECT_EQ(park.error().code(), Errc::kBusy);
  EXPECT_NE(park.error().message().find("CPU 2"), std::string::npos);
  EXPECT_EQ(state_of(d, 2), kStateOffline);
  EXPECT_EQ(t.take(), Events{});
  ASSERT_TRUE(d.unregister_notifier(&a.block).ok());

  ASSERT_TRUE(d.bring_to(2, kStateNotifyPrepare).ok());
  Status reg = d.register_notifier(&a.block);
  ASSERT_FALSE(reg.ok());
  EXPECT_EQ(reg.error().code(), Errc::kBusy);
  EXPECT_NE(reg.error().message().find("CPU 2"), std::string::npos);
  ASSERT_TRUE(d.up(2).ok());
  EXPECT_TRUE(d.register_notifier(&a.block).ok());
}

// notify:prepare is the last PREPARE state (states.h): a PREPARE state that
// fails comes before UP_PREPARE, so notifiers hear nothing of that up; an
// ONLINE state that fails comes after it, so every notifier gets UP_CANCELED.
TEST(NotifierRefusal, EarlierPrepareFailureIsSilentForNotifiers) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a", 10);
  ASSERT_TRUE(d.register_notifier(&a.block).ok());
  Result<StateId> id = d.setup_state(
      Section::kPrepare, "fails-on-cpu-2",
      [](unsigned cpu) { return cpu == 2 ? -ENOMEM : 0; }, nullptr);
  ASSERT_TRUE(id.ok()) << id.error().message();
  Status s = d.up(2);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().cause(), -ENOMEM);
  EXPECT_EQ(t.take(), Events{});
  ASSERT_TRUE(d.up(3).ok());
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:3", "a:ONLINE:3"}));
}

TEST(NotifierRefusal, LaterFailureInAnUpCancelsEveryNotifier) {
  for (Section section : {Section::kOnline}) {
    SCOPED_TRACE(section == Section::kOnline ? "ONLINE section" : "PREPARE section");
    Domain d(4, 2);
    Trace t;
    Recorder a(t, "a", 10), b(t, "b", 0);
    b.hook = [&](unsigned long action, unsigned cpu) {
      if (action == kCpuUpCanceled) EXPECT_FALSE(d.cpu_online(cpu));
      return kNotifyOk;
    };
    for (Recorder* r : {&a, &b}) ASSERT_TRUE(d.register_notifier(&r->block).ok());
    Result<StateId> id = d.setup_state(
        section, "fails-on-cpu-2", [](unsigned cpu) { return cpu == 2 ? -ENOMEM : 0; },
        nullptr);
    ASSERT_TRUE(id.ok()) << id.error().message();

    Status s = d.up(2);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), Errc::kCallbackFailed);
    EXPECT_EQ(s.error().cause(), -ENOMEM);
    EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:2", "b:UP_PREPARE:2", "a:UP_CANCELED:2",
                                "b:UP_CANCELED:2"}));
    EXPECT_FALSE(d.cpu_online(2));
    EXPECT_EQ(state_of(d, 2), kStateOffline);

    // An injected failure of the same state does the same.
    ASSERT_TRUE(d.inject_failure(3, *id).ok());
    Status s3 = d.up(3);
    ASSERT_FALSE(s3.ok());
    EXPECT_EQ(s3.error().cause(), -EIO);
    EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:3", "b:UP_PREPARE:3", "a:UP_CANCELED:3",
                                "b:UP_CANCELED:3"}));
    EXPECT_FALSE(d.cpu_online(3));
    ASSERT_TRUE(d.up(3).ok());  // the injection fires once
    EXPECT_EQ(t.take(),
              (Events{"a:UP_PREPARE:3", "b:UP_PREPARE:3", "a:ONLINE:3", "b:ONLINE:3"}));
  }
}

// ------------------------------------------------------------ failure injection

TEST(NotifierInjection, NotifyPrepareFailureFailsTheUpLikeARefusal) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a", 10), b(t, "b", 0);
  for (Recorder* r : {&a, &b}) ASSERT_TRUE(d.register_notifier(&r->block).ok());
  ASSERT_TRUE(d.inject_failure(2, kStateNotifyPrepare).ok());

  Status s = d.up(2);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Errc::kCallbackFailed);
  EXPECT_EQ(s.error().cause(), -EIO);
  // As if the first notifier had refused: nobody was told, nobody is canceled.
  EXPECT_EQ(t.take(), Events{});
  EXPECT_FALSE(d.cpu_online(2));
  EXPECT_EQ(state_of(d, 2), kStateOffline);

  ASSERT_TRUE(d.up(2).ok());
  EXPECT_EQ(t.take(),
            (Events{"a:UP_PREPARE:2", "b:UP_PREPARE:2", "a:ONLINE:2", "b:ONLINE:2"}));
}

TEST(NotifierInjection, NotifyOnlineFailureFailsTheDownLikeARefusal) {
  Domain d(4, 4);
  Trace t;
  Recorder a(t, "a", 10), b(t, "b", 0);
  for (Recorder* r : {&a, &b}) ASSERT_TRUE(d.register_notifier(&r->block).ok());
  ASSERT_TRUE(d.inject_failure(3, kStateNotifyOnline).ok());

  Status s = d.down(3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Errc::kCallbackFailed);
  EXPECT_EQ(s.error().cause(), -EIO);
  EXPECT_EQ(t.take(), Events{});
  EXPECT_TRUE(d.cpu_online(3));
  EXPECT_TRUE(d.active().test(3));
  EXPECT_EQ(state_of(d, 3), kStateOnline);

  ASSERT_TRUE(d.down(3).ok());
  EXPECT_EQ(t.take(), (Events{"a:DOWN_PREPARE:3", "b:DOWN_PREPARE:3", "a:DEAD:3",
                              "b:DEAD:3", "a:POST_DEAD:3", "b:POST_DEAD:3"}));
}

// An injection into notify:online targets the event that may be refused,
// DOWN_PREPARE (domain.h): the up passes it by and the next down fails.
TEST(NotifierInjection, NotifyOnlineFailureWaitsForTheNextDown) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a", 10), b(t, "b", 0);
  for (Recorder* r : {&a, &b}) ASSERT_TRUE(d.register_notifier(&r->block).ok());
  ASSERT_TRUE(d.inject_failure(2, kStateNotifyOnline).ok());

  ASSERT_TRUE(d.up(2).ok());
  EXPECT_EQ(t.take(),
            (Events{"a:UP_PREPARE:2", "b:UP_PREPARE:2", "a:ONLINE:2", "b:ONLINE:2"}));
  Status s = d.down(2);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().cause(), -EIO);
  EXPECT_TRUE(d.cpu_online(2));
  EXPECT_EQ(state_of(d, 2), kStateOnline);
}

// ------------------------------------------------------------ suspend / resume

TEST(NotifierFrozen, SuspendAndResumeSetCpuTasksFrozen) {
  Domain d(4, 4);
  Trace t;
  Recorder a(t, "a");
  ASSERT_TRUE(d.register_notifier(&a.block).ok());

  ASSERT_TRUE(d.suspend_nonboot().ok());
  EXPECT_EQ(
      t.take(),
      (Events{"a:DOWN_PREPARE|FROZEN:3", "a:DEAD|FROZEN:3", "a:POST_DEAD|FROZEN:3",
              "a:DOWN_PREPARE|FROZEN:2", "a:DEAD|FROZEN:2", "a:POST_DEAD|FROZEN:2",
              "a:DOWN_PREPARE|FROZEN:1", "a:DEAD|FROZEN:1", "a:POST_DEAD|FROZEN:1"}));
  EXPECT_EQ(d.online().to_string(), "0");

  ASSERT_TRUE(d.resume_nonboot().ok());
  EXPECT_EQ(t.take(),
            (Events{"a:UP_PREPARE|FROZEN:1", "a:ONLINE|FROZEN:1", "a:UP_PREPARE|FROZEN:2",
                    "a:ONLINE|FROZEN:2", "a:UP_PREPARE|FROZEN:3", "a:ONLINE|FROZEN:3"}));
  EXPECT_EQ(d.online().to_string(), "0-3");

  // Ordinary hotplug afterwards is not frozen.
  ASSERT_TRUE(d.down(3).ok());
  EXPECT_EQ(t.take(), (Events{"a:DOWN_PREPARE:3", "a:DEAD:3", "a:POST_DEAD:3"}));
}

TEST(NotifierFrozen, RefusalDuringSuspendRestoresTheCpusAlreadyTaken) {
  Domain d(4, 4);
  Trace t;
  Recorder a(t, "a", 10), b(t, "b", 0);
  b.hook = [](unsigned long action, unsigned cpu) {
    return action == (kCpuDownPrepare | kCpuTasksFrozen) && cpu == 2 ? kNotifyBad
                                                                     : kNotifyOk;
  };
  for (Recorder* r : {&a, &b}) ASSERT_TRUE(d.register_notifier(&r->block).ok());

  Status s = d.suspend_nonboot();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(
      t.take(),
      (Events{"a:DOWN_PREPARE|FROZEN:3", "b:DOWN_PREPARE|FROZEN:3", "a:DEAD|FROZEN:3",
              "b:DEAD|FROZEN:3", "a:POST_DEAD|FROZEN:3", "b:POST_DEAD|FROZEN:3",
              "a:DOWN_PREPARE|FROZEN:2", "b:DOWN_PREPARE|FROZEN:2",
              "a:DOWN_FAILED|FROZEN:2", "a:UP_PREPARE|FROZEN:3", "b:UP_PREPARE|FROZEN:3",
              "a:ONLINE|FROZEN:3", "b:ONLINE|FROZEN:3"}));
  EXPECT_EQ(d.online().to_string(), "0-3");
  EXPECT_EQ(d.active().to_string(), "0-3");
  // Not suspended: hotplug works.
  ASSERT_TRUE(d.down(1).ok());
}

// ------------------------------------------------------------ POST_DEAD

// The reason POST_DEAD exists (2014 mail): its callback may wait for a thread
// that itself takes the hotplug read lock.
TEST(NotifierPostDead, CallbackMayJoinAThreadThatTakesTheHotplugReadLock) {
  Domain d(4, 4);
  Trace t;
  Recorder a(t, "a");
  std::atomic<int> readers_done{0};
  a.hook = [&](unsigned long action, unsigned cpu) {
    if (action != kCpuPostDead) return kNotifyOk;
    std::atomic<bool> done{false};
    std::thread reader([&] {
      d.hotplug_lock().lock_shared();
      EXPECT_FALSE(d.cpu_online(cpu));
      d.hotplug_lock().unlock_shared();
      done = true;
    });
    if (!eventually([&] { return done.load(); }))
      deadlocked("a thread taking the hotplug read lock did not get it during POST_DEAD");
    reader.join();
    ++readers_done;
    return kNotifyOk;
  };
  ASSERT_TRUE(d.register_notifier(&a.block).ok());

  ASSERT_TRUE(d.down(3).ok());
  EXPECT_EQ(readers_done.load(), 1);
  EXPECT_EQ(t.take(), (Events{"a:DOWN_PREPARE:3", "a:DEAD:3", "a:POST_DEAD:3"}));
  // And the lock still works both ways afterwards.
  ASSERT_TRUE(d.up(3).ok());
  ASSERT_TRUE(d.down(2).ok());
  EXPECT_EQ(readers_done.load(), 2);
}

TEST(NotifierPostDead, CallbackMayWaitForAWorkerThatTakesTheHotplugReadLock) {
  Domain d(4, 4);
  Trace t;
  Recorder a(t, "a");
  std::atomic<bool> go{false}, worker_done{false}, stop{false};
  std::thread worker([&] {  // a long-lived thread, like a workqueue worker
    while (!stop) {
      if (go.exchange(false)) {
        std::shared_lock lock(d.hotplug_lock());
        worker_done = true;
      }
      std::this_thread::sleep_for(1ms);
    }
  });
  a.hook = [&](unsigned long action, unsigned) {
    if (action != kCpuPostDead) return kNotifyOk;
    go = true;
    if (!eventually([&] { return worker_done.load(); }))
      deadlocked("a worker taking the hotplug read lock did not get it during POST_DEAD");
    return kNotifyOk;
  };
  ASSERT_TRUE(d.register_notifier(&a.block).ok());
  const Status s = d.down(2);
  stop = true;
  worker.join();
  EXPECT_TRUE(s.ok());
  EXPECT_TRUE(worker_done.load());
}

// POST_DEAD runs with the writers' lock still held: registration and other
// hotplug wait until it returns (that is what orders registration against
// POST_DEAD in the 2014 mail).
// POST_DEAD is no state's callback: observers and traces see it as
// "notify:post_dead" at state 0, after every teardown of the down.
TEST(NotifierPostDead, ObserverSeesPostDeadByName) {
  Domain d(4, 4);
  NotifierBlock nb;
  nb.call = [](NotifierBlock*, unsigned long, unsigned) { return kNotifyOk; };
  ASSERT_TRUE(d.register_notifier(&nb).ok());
  std::vector<std::string> names;
  d.set_observer([&](const CallbackEvent& e) {
    if (e.cpu == 3) names.push_back(*e.name);
  });
  ASSERT_TRUE(d.down(3).ok());
  d.set_observer(nullptr);
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.back(), "notify:post_dead");
  EXPECT_EQ(std::count(names.begin(), names.end(), "notify:post_dead"), 1);
  ASSERT_TRUE(d.unregister_notifier(&nb).ok());
}

TEST(NotifierPostDead, WritersLockIsStillHeldDuringPostDead) {
  Domain d(4, 3);  // CPU 3 offline
  Trace t;
  Recorder a(t, "a"), late(t, "late");
  std::atomic<bool> post_dead_done{false};
  std::atomic<bool> reg_started{false}, reg_returned{false}, reg_saw_done{false};
  std::atomic<bool> up_started{false}, up_returned{false}, up_saw_done{false};
  Status reg_status, up_status;
  std::thread registrar, upper;
  a.hook = [&](unsigned long action, unsigned cpu) {
    if (action != kCpuPostDead || cpu != 2) return kNotifyOk;
    registrar = std::thread([&] {
      reg_started = true;
      reg_status = d.register_notifier(&late.block);
      reg_saw_done = post_dead_done.load();
      reg_returned = true;
    });
    upper = std::thread([&] {
      up_started = true;
      up_status = d.up(3);
      up_saw_done = post_dead_done.load();
      up_returned = true;
    });
    EXPECT_TRUE(eventually([&] { return reg_started && up_started; }));
    std::this_thread::sleep_for(kSettle);
    EXPECT_FALSE(reg_returned.load()) << "register_notifier() got in during POST_DEAD";
    EXPECT_FALSE(up_returned.load()) << "up() got in during POST_DEAD";
    // The hotplug read lock, in contrast, is free.
    std::thread([&] {
      EXPECT_TRUE(d.hotplug_lock().try_lock_shared());
      d.hotplug_lock().unlock_shared();
    }).join();
    post_dead_done = true;
    return kNotifyOk;
  };
  ASSERT_TRUE(d.register_notifier(&a.block).ok());

  ASSERT_TRUE(d.down(2).ok());
  ASSERT_TRUE(registrar.joinable());
  ASSERT_TRUE(upper.joinable());
  registrar.join();
  upper.join();
  EXPECT_TRUE(reg_status.ok());
  EXPECT_TRUE(up_status.ok());
  EXPECT_TRUE(reg_saw_done.load());
  EXPECT_TRUE(up_saw_done.load());
  EXPECT_TRUE(d.cpu_online(3));
  EXPECT_FALSE(d.cpu_online(2));
  ASSERT_TRUE(d.unregister_notifier(&late.block).ok());
}

// ------------------------------------------------------------ register_begin()

TEST(NotifierScope, RegisterBeginWalksOnlineCpusAndRegistersInOneStep) {
  Domain d(8, 4);
  Trace t;
  Recorder a(t, "a");
  std::vector<unsigned> inited;
  std::atomic<bool> up_started{false}, up_returned{false}, scope_over{false};
  std::atomic<bool> up_saw_scope_over{false};
  Status up_status;
  std::thread upper;
  {
    Result<RegistrationScope> scope = d.register_begin();
    ASSERT_TRUE(scope.ok()) << scope.error().message();
    // A hotplug started now must wait for the scope: no CPU can slip between
    // the walk and the registration.
    upper = std::thread([&] {
      up_started = true;
      up_status = d.up(5);
      up_saw_scope_over = scope_over.load();
      up_returned = true;
    });
    ASSERT_TRUE(eventually([&] { return up_started.load(); }));
    std::this_thread::sleep_for(kSettle);
    for (unsigned cpu : d.online()) inited.push_back(cpu);
    EXPECT_TRUE(scope->register_notifier(&a.block).ok());
    EXPECT_FALSE(up_returned.load());

    // The locking calls on this thread refuse instead of self-deadlocking.
    Recorder b(t, "b");
    Status r = d.register_notifier(&b.block);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Errc::kWouldDeadlock);
    EXPECT_TRUE(contains(r.error().message(), "register_begin")) << r.error().message();
    Status u = d.unregister_notifier(&a.block);
    ASSERT_FALSE(u.ok());
    EXPECT_EQ(u.error().code(), Errc::kWouldDeadlock);
    Status h = d.up(6);
    ASSERT_FALSE(h.ok());
    EXPECT_EQ(h.error().code(), Errc::kWouldDeadlock);
    Result<RegistrationScope> again = d.register_begin();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code(), Errc::kWouldDeadlock);
    scope_over = true;
  }  // the scope ends here
  upper.join();
  EXPECT_EQ(inited, (std::vector<unsigned>{0, 1, 2, 3}));
  EXPECT_TRUE(up_status.ok());
  EXPECT_TRUE(up_saw_scope_over.load());
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:5", "a:ONLINE:5"}));
}

TEST(NotifierScope, UnregisterInsideTheScope) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a"), b(t, "b");
  ASSERT_TRUE(d.register_notifier(&a.block).ok());
  ASSERT_TRUE(d.register_notifier(&b.block).ok());
  {
    Result<RegistrationScope> scope = d.register_begin();
    ASSERT_TRUE(scope.ok());
    EXPECT_TRUE(scope->unregister_notifier(&a.block).ok());
    Status again = scope->unregister_notifier(&a.block);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code(), Errc::kNotFound);
    Status twice = scope->register_notifier(&b.block);
    ASSERT_FALSE(twice.ok());
    EXPECT_EQ(twice.error().code(), Errc::kBusy);
    scope->done();  // ends early; the destructor then does nothing
    EXPECT_TRUE(d.up(2).ok());
  }
  EXPECT_EQ(t.take(), (Events{"b:UP_PREPARE:2", "b:ONLINE:2"}));
}

TEST(NotifierScope, NoLockVariantsOutsideTheScopeFail) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a");

  Result<RegistrationScope> scope = d.register_begin();
  ASSERT_TRUE(scope.ok());
  // Another thread using the scope does not hold the writers' lock.
  std::thread([&] {
    Status s = scope->register_notifier(&a.block);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().code(), Errc::kOk);
    EXPECT_TRUE(contains(s.error().message(), "register_begin")) << s.error().message();
  }).join();
  scope->done();
  Status after = scope->register_notifier(&a.block);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code(), Errc::kInvalidArgument);
  Status after_un = scope->unregister_notifier(&a.block);
  ASSERT_FALSE(after_un.ok());
  EXPECT_EQ(after_un.error().code(), Errc::kInvalidArgument);

  // A moved-from scope is outside too; the moved-to one works.
  Result<RegistrationScope> second = d.register_begin();
  ASSERT_TRUE(second.ok());
  RegistrationScope moved(std::move(*second));
  Status from_moved = second->register_notifier(&a.block);
  ASSERT_FALSE(from_moved.ok());
  EXPECT_EQ(from_moved.error().code(), Errc::kInvalidArgument);
  EXPECT_TRUE(moved.register_notifier(&a.block).ok());
  moved.done();

  ASSERT_TRUE(d.up(2).ok());
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:2", "a:ONLINE:2"}));  // registered once
}

// ------------------------------------------------------------ errors

TEST(NotifierErrors, RegisteringTwiceIsBusyUnregisteringUnknownIsNotFound) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a"), never(t, "never");
  ASSERT_TRUE(d.register_notifier(&a.block).ok());
  Status twice = d.register_notifier(&a.block);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code(), Errc::kBusy);
  EXPECT_FALSE(twice.error().message().empty());

  Status unknown = d.unregister_notifier(&never.block);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), Errc::kNotFound);

  Status null = d.register_notifier(nullptr);
  ASSERT_FALSE(null.ok());
  EXPECT_EQ(null.error().code(), Errc::kInvalidArgument);

  // Still registered exactly once.
  ASSERT_TRUE(d.up(2).ok());
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:2", "a:ONLINE:2"}));
  ASSERT_TRUE(d.unregister_notifier(&a.block).ok());
  Status gone = d.unregister_notifier(&a.block);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), Errc::kNotFound);
}

TEST(NotifierErrors, RegisteringFromInsideACallbackWouldDeadlock) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a"), b(t, "b");
  std::vector<std::string> seen;
  a.hook = [&](unsigned long action, unsigned) {
    Status r = d.register_notifier(&b.block);
    Status u = d.unregister_notifier(&a.block);
    Result<RegistrationScope> s = d.register_begin();
    EXPECT_FALSE(r.ok()) << event_name(action);
    EXPECT_FALSE(u.ok()) << event_name(action);
    EXPECT_FALSE(s.ok()) << event_name(action);
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), Errc::kWouldDeadlock) << event_name(action);
      EXPECT_TRUE(contains(r.error().message(), "callback")) << r.error().message();
    }
    if (!u.ok()) EXPECT_EQ(u.error().code(), Errc::kWouldDeadlock) << event_name(action);
    if (!s.ok()) EXPECT_EQ(s.error().code(), Errc::kWouldDeadlock) << event_name(action);
    seen.push_back(event_name(action));
    return kNotifyOk;
  };
  ASSERT_TRUE(d.register_notifier(&a.block).ok());
  ASSERT_TRUE(d.up(2).ok());
  ASSERT_TRUE(d.down(2).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"UP_PREPARE", "ONLINE", "DOWN_PREPARE",
                                            "DEAD", "POST_DEAD"}));
  // Nothing was registered or unregistered by the refused calls.
  a.hook = nullptr;
  t.take();
  ASSERT_TRUE(d.up(2).ok());
  EXPECT_EQ(t.take(), (Events{"a:UP_PREPARE:2", "a:ONLINE:2"}));
}

TEST(NotifierErrors, RegisteringUnderTheHotplugReadLockWouldDeadlock) {
  Domain d(4, 2);
  Trace t;
  Recorder a(t, "a");
  ASSERT_TRUE(d.register_notifier(&a.block).ok());
  Recorder b(t, "b");
  {
    std::shared_lock read(d.hotplug_lock());
    Status r = d.register_notifier(&b.block);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Errc::kWouldDeadlock);
    EXPECT_TRUE(contains(r.error().message(), "register_begin")) << r.error().message();
    Status u = d.unregister_notifier(&a.block);
    ASSERT_FALSE(u.ok());
    EXPECT_EQ(u.error().code(), Errc::kWouldDeadlock);
    Result<RegistrationScope> s = d.register_begin();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), Errc::kWouldDeadlock);
  }
  {
    rcu::ReadGuard guard;
    Status r = d.register_notifier(&b.block);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Errc::kWouldDeadlock);
  }
  // Released: the same calls work.
  ASSERT_TRUE(d.register_notifier(&b.block).ok());
  ASSERT_TRUE(d.unregister_notifier(&a.block).ok());
  ASSERT_TRUE(d.up(2).ok());
  EXPECT_EQ(t.take(), (Events{"b:UP_PREPARE:2", "b:ONLINE:2"}));
}

}  // namespace
}  // namespace cpuhp
