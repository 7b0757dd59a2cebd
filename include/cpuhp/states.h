// SPDX-License-Identifier: MIT
// cpuhp/states.h — the ordered state table of a Domain (include/linux/cpuhotplug.h).
//
// A CPU's state is the highest state whose startup has run on it. Going up
// runs the startups of the installed states above the current one in
// ascending order; going down runs the teardowns in descending order.
//
//   0                       offline
//   PREPARE section         runs in the controlling thread before the CPU's
//                           online bit is set; teardowns run after the bit is
//                           clear and a grace period has passed (the old
//                           CPU_DEAD). Per-CPU data is built here.
//   kStateNotifyPrepare     the 2014 notifiers' UP_PREPARE / DEAD: last in the
//                           section, so they see per-CPU data already built
//                           on the way up and not yet freed on the way down
//   kStateBringup           sets the online bit (release) / clears it and
//                           waits for an RCU grace period (if a PREPARE
//                           teardown or a notifier is installed)
//   ONLINE section          startup after the online bit is set, teardown
//                           before it is cleared
//   kStateActive            sets / clears the active bit; the top state
//
// Each section has static ids (for states a program places itself) and a
// range of dynamic slots handed out by setup_state(Section, ...).
#pragma once

#include <functional>
#include <string>

namespace cpuhp {

using StateId = int;

inline constexpr StateId kStateOffline = 0;
inline constexpr StateId kStatePrepareFirst = 1;  // static PREPARE states
inline constexpr StateId kStatePrepareLast = 28;
inline constexpr StateId kStatePrepareDyn = 29;  // dynamic PREPARE slots
inline constexpr StateId kStatePrepareDynEnd = 48;
inline constexpr StateId kStateNotifyPrepare = 49;  // the 2014 notifier layer
inline constexpr StateId kStateBringup = 50;
inline constexpr StateId kStateOnlineFirst = 51;  // static ONLINE states
inline constexpr StateId kStateOnlineLast = 79;
inline constexpr StateId kStateOnlineDyn = 80;  // dynamic ONLINE slots
inline constexpr StateId kStateOnlineDynEnd = 119;
inline constexpr StateId kStateNotifyOnline = 120;  // the 2014 notifier layer
inline constexpr StateId kStateActive = 121;
inline constexpr StateId kStateOnline = kStateActive;  // a fully online CPU
inline constexpr int kNumStates = kStateActive + 1;

enum class Section { kPrepare, kOnline };

// Startup and teardown callbacks get the CPU and return 0 or a negative errno
// (kernel convention); they may also throw, which cpuhp catches. A failing
// startup is rolled back. Teardowns cannot fail: a nonzero return or a throw
// is reported (cpuhp/diagnostics.h) and the transition goes on. A
// std::system_error of the system category fails with its errno, any other
// throw with -ECANCELED. Callbacks run in the thread that drives the
// transition, with the writers' lock and the hotplug write lock held; they
// may take the hotplug read lock, use RCU, query the Domain and call
// disable_hotplug()/enable_hotplug(), and must not call up/down or register
// or remove states, instances or notifiers, not even through a
// register_begin() scope (those calls return kWouldDeadlock). A PREPARE
// teardown may find its CPU online: see "Who waits for readers" in domain.h.
using StateCallback = std::function<int(unsigned cpu)>;

// Multi-instance states: one callback pair for the state, run once per
// (CPU, instance). The instance is the pointer given to add_instance().
using InstanceCallback = std::function<int(unsigned cpu, void* instance)>;

// What one callback invocation is doing; given to observers (tracing, tests).
struct CallbackEvent {
  unsigned cpu;
  StateId state;
  const std::string* name;  // the state's name, valid during the call to the observer
  bool startup;             // false: teardown
  bool rollback;            // run to undo a failed transition or registration
  int result;               // 0 or negative errno (-ECANCELED for a caught exception)
  long long begin_ns;       // steady clock
  long long end_ns;
  void* instance;           // multi-instance state: the instance; else nullptr
};

}  // namespace cpuhp
