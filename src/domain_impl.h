// SPDX-License-Identifier: MIT
// Domain internals, shared by the files that implement one job each:
//
//   domain.cpp          the public calls: entry checks, then one internal call
//   writers_lock.cpp    the writers' lock and the entry checks (one place)
//   callback.cpp        the one function that runs a callback
//   transition.cpp      walking one CPU between states, with rollback
//   registration.cpp    installing/removing states and instances (issue calls,
//                       rollback of an install)
//   state_table.cpp     the table of states: slots, names, labels
//   notifier_chain.cpp  the 2014 notifiers as two built-in states + POST_DEAD
//
// Everything here is guarded by the writers' lock unless noted; functions
// that need it say CPUHP_REQUIRES(im.writers) and assert it at run time.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cpuhp/detail/mutex.h"
#include "cpuhp/detail/thread_annotations.h"
#include "cpuhp/domain.h"
#include "writers_lock.h"

namespace cpuhp {

// One callback invocation: which CPU, which state, which way.
struct Call {
  unsigned cpu;
  StateId state;
  bool startup;    // false: teardown
  bool rollback;   // undoing a failed transition or registration
  bool frozen;     // suspend/resume: notifiers see kCpuTasksFrozen
  void* instance;  // multi-instance state: this instance only; nullptr: all of them
};

// The internal callback form; user callbacks are wrapped into it.
using StepCallback = std::function<int(const Call&)>;

enum class SlotState {
  kFree,
  kReserved,   // being installed: callbacks may run, transitions skip it
  kInstalled,  // transitions run it
};

struct StateEntry {
  SlotState slot = SlotState::kFree;
  std::string name;
  bool builtin = false;
  bool teardown_may_veto = false;  // only the notifier layer's DOWN_PREPARE
  bool multi = false;
  StepCallback startup;   // single-instance state; may be empty
  StepCallback teardown;  // may be empty
  InstanceCallback instance_startup, instance_teardown;  // multi-instance
  std::vector<void*> instances;
  bool installed() const noexcept { return slot == SlotState::kInstalled; }
};

// What the queries (states(), find_state(), labels in messages) read: they
// must not wait for the writers' lock (a caller under the hotplug read lock
// would deadlock against a queued writer), so the name and slot of every
// state are mirrored here under a mutex of their own.
struct StateIndexEntry {
  SlotState slot = SlotState::kFree;
  std::string name;
  bool multi = false;
  bool builtin = false;
};

struct Domain::Impl {
  explicit Impl(Domain& d);

  Domain& d;
  WritersMutex writers;  // the kernel's cpu_add_remove_lock
  // The online mask, writable (Impl is Domain's nested class): set and
  // cleared only by the bringup state, under the writers' lock.
  CpuMask& online_mask() noexcept { return d.online_; }

  // ---- the state table (state_table.cpp) ----
  std::array<StateEntry, kNumStates> table CPUHP_GUARDED_BY(writers);
  mutable detail::Mutex index_mutex CPUHP_ACQUIRED_AFTER(writers);
  std::array<StateIndexEntry, kNumStates> index CPUHP_GUARDED_BY(index_mutex);
  // A CPU's state: written under the writers' lock, read anywhere (relaxed:
  // a reader that needs it stable holds the hotplug read lock).
  std::vector<std::atomic<int>> cpu_state;

  // ---- hotplug (domain.cpp, transition.cpp) ----
  int disable_count CPUHP_GUARDED_BY(writers) = 0;
  bool suspended CPUHP_GUARDED_BY(writers) = false;
  std::vector<std::pair<unsigned, StateId>> suspended_cpus CPUHP_GUARDED_BY(writers);
  std::vector<std::pair<unsigned, StateId>> injected CPUHP_GUARDED_BY(writers);
  // Per CPU: its online bit was cleared by a down that skipped the grace
  // period (no PREPARE teardown was installed then). The first PREPARE
  // teardown that finds the bit clear waits for one first (transition.cpp).
  std::vector<char> grace_period_owed CPUHP_GUARDED_BY(writers);

  // ---- notifiers (notifier_chain.cpp) ----
  std::vector<NotifierBlock*> chain CPUHP_GUARDED_BY(writers);  // descending priority

  // ---- observer (callback.cpp) ----
  using Observer = std::function<void(const CallbackEvent&)>;
  // acquire/release: the function object is built before it is published.
  std::atomic<std::shared_ptr<const Observer>> observer;
};

// RAII entry of a public call: check_entry(), then the writers' lock, taken
// (Entry::Lock::kTakes, kTakesUnlessHeld when not held yet) or borrowed from
// this thread's scope. If the entry is refused nothing is held, ok() is false
// and the caller returns status() at once, touching nothing guarded.
class CPUHP_SCOPED_CAPABILITY WritersLock {
 public:
  WritersLock(Domain::Impl& im, const Entry& entry) CPUHP_ACQUIRE(im.writers);
  ~WritersLock() CPUHP_RELEASE();
  WritersLock(const WritersLock&) = delete;
  WritersLock& operator=(const WritersLock&) = delete;
  bool ok() const noexcept { return status_.ok(); }
  const Status& status() const noexcept { return status_; }

 private:
  WritersMutex& writers_;
  Status status_;
  bool locked_ = false;  // taken here, so released here
};

}  // namespace cpuhp
