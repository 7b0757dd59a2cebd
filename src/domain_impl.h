// Domain internals shared by domain.cpp (transitions), registration.cpp
// (state table) and notifier_chain.cpp. Everything here is guarded by the
// writers' lock unless noted.
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cpuhp/domain.h"

namespace cpuhp {

// One callback invocation's context, for the internal callback form.
struct Step {
  unsigned cpu;
  StateId state;
  bool rollback;
  bool frozen;  // suspend/resume: notifiers see kCpuTasksFrozen
};
using StepCallback = std::function<int(const Step&)>;

struct StateEntry {
  std::string name;
  bool installed = false;
  bool builtin = false;
  bool teardown_may_veto = false;  // only the notifier layer's DOWN_PREPARE
  bool multi = false;
  StepCallback startup;   // may be empty
  StepCallback teardown;  // may be empty
  InstanceCallback instance_startup, instance_teardown;
  std::vector<void*> instances;
};

// What the calling thread is doing inside a Domain, to turn re-entry into an
// error instead of a deadlock.
struct CallbackContext {
  const Domain::Impl* domain;
  unsigned cpu;
  StateId state;
};

struct Domain::Impl {
  explicit Impl(Domain& d);

  Domain& d;

  // ---- writers' lock (cpu_add_remove_lock) ----
  mutable std::mutex writers_mutex;
  std::atomic<const void*> writers_owner{nullptr};  // relaxed: compared to own token only
  bool owned_by_this_thread() const noexcept;
  // Refuses calls that would deadlock; `what` names the call in the message.
  Status check_may_lock(const char* what) const;
  Status lock_writers(const char* what);  // check_may_lock + lock
  void unlock_writers();
  // For calls that may run where this thread already holds the writers' lock
  // (disable/enable from a scope or a callback): true if it locked.
  Status lock_writers_unless_held(const char* what, bool* locked);
  Status require_writers_held(const char* what) const;

  // ---- state table and per-CPU state ----
  std::array<StateEntry, kNumStates> table;
  // Guards the table's names and installed flags against the queries
  // (states(), find_state()), which must not wait for the writers' lock: a
  // caller under the hotplug read lock would deadlock against a queued
  // writer. Writers take it only around their edits of the table.
  mutable std::mutex table_mutex;
  std::vector<std::atomic<int>> cpu_state;    // written under the writers' lock
  std::string state_label(StateId id) const;  // "'name' (id)"

  // ---- hotplug ----
  int disable_count = 0;
  bool suspended = false;
  std::vector<std::pair<unsigned, StateId>> suspended_cpus;
  std::vector<std::pair<unsigned, StateId>> injected;  // fail once
  using Observer = std::function<void(const CallbackEvent&)>;
  std::atomic<std::shared_ptr<const Observer>>
      observer;  // acquire/release: the function object
  void observe(const CallbackEvent& event) const;

  Status check_cpu(unsigned cpu) const;
  Status transition(unsigned cpu, StateId target, bool frozen);  // writers' lock held
  Status run_up(unsigned cpu, StateId from, StateId to, bool frozen);
  Status run_down(unsigned cpu, StateId from, StateId to, bool frozen);
  // Runs one callback: failure injection, exception capture, re-entry
  // marking, observer. Returns 0 or a negative errno; on failure `why` says why.
  int invoke(StateId id, unsigned cpu, bool startup, bool rollback, bool frozen,
             std::string* why);
  int call_guarded(StateId id, unsigned cpu, bool startup, bool rollback,
                   const std::function<int()>& fn, std::string* why);
  bool take_injection(unsigned cpu, StateId id);

  // ---- registration (registration.cpp) ----
  Result<StateId> install(StateId id, Section section, bool dynamic, StateEntry entry,
                          bool calls);
  Status uninstall(StateId id, bool calls);
  Status add_instance(StateId id, void* instance, bool calls);
  Status remove_instance(StateId id, void* instance, bool calls);

  // ---- notifiers (notifier_chain.cpp) ----
  std::vector<NotifierBlock*> chain;  // descending priority, stable
  void install_notifier_states();
  // Whether a down must wait a grace period after clearing the online bit.
  bool prepare_teardowns_installed() const;
  Status register_notifier(NotifierBlock* nb);
  Status unregister_notifier(NotifierBlock* nb);
  // __cpu_notify: calls up to `limit` notifiers (all if negative), stops at a
  // NOTIFY_STOP_MASK return; *called gets how many were called.
  int notify(unsigned long action, unsigned cpu, int limit, int* called);
  void notify_post_dead(unsigned cpu, bool frozen);
};

// Set while a thread runs a Domain callback.
extern thread_local const CallbackContext* tl_callback_context;

}  // namespace cpuhp
