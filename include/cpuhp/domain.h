// SPDX-License-Identifier: MIT
// cpuhp/domain.h — one set of CPUs and its hotplug machinery (kernel/cpu.c).
//
// CONTRACT
//
// Masks. possible ⊇ present ⊇ online ⊇ active. Bits are atomic: a reader
// may walk online() at any time. Under an RCU read section (cpuhp::rcu), a
// CPU whose online bit the reader sees stays usable, with its per-CPU data
// (built by PREPARE startups), until the read section ends: `down` clears
// the bit, waits a grace period, and only then runs PREPARE teardowns (a
// domain with none, and no notifiers, frees nothing there and skips the wait:
// data of your own that RCU readers reach through the bit belongs in a
// PREPARE state, or call rcu_synchronize() after down() yourself). A
// reader that needs the mask not to change at all (it may sleep, allocate or
// must not see a CPU vanish) holds hotplug_lock() for reading instead.
//
// Who waits for readers. A PREPARE teardown runs in one of two situations:
//   - the CPU's online bit is clear (a down, bring_to, suspend, the rollback
//     of a failed up, or a state removed from a CPU parked below BRINGUP):
//     a grace period has passed since the bit was cleared, so no RCU reader
//     still uses what a startup published for the CPU; the teardown may free
//     it at once. (A down with no PREPARE teardown installed skips that grace
//     period; the Domain then waits for it before the first PREPARE teardown
//     that finds the bit clear.)
//   - the state or instance is removed (remove_state, remove_instance), or a
//     registration that failed on a later CPU is rolled back
//     (setup_state, add_instance): the CPU may be online, its bit set, and
//     readers may hold the data right now. No grace period of the Domain can
//     help (the data is still published until the teardown unpublishes it),
//     so the teardown must unpublish it and defer the free past a grace
//     period: rcu::rcu_retire(p) (or rcu_call, or rcu_synchronize() before
//     the delete). cpu_online(cpu) inside the teardown tells the two apart;
//     rcu_retire() is right in both. PerCpu<T> (percpu.h) does this for you.
//
// Locks. Every call that changes CPUs or the state table takes the writers'
// lock (the kernel's cpu_add_remove_lock: it serialises hotplug, guards
// present/possible, orders registration against POST_DEAD) and, around the
// callbacks it runs (a transition, or the _calls variants of registration),
// the hotplug lock for writing. Such calls are refused with
// Errc::kWouldDeadlock, never left to hang, when made
//   - by a thread holding hotplug_lock() for reading (the ABBA deadlock of
//     the 2014 mail); inside a register_begin() scope the _nocalls methods,
//     which take no hotplug lock, still work there,
//   - inside an RCU read section (a down must wait for a grace period),
//   - from a hotplug callback or an observer of this Domain (including a
//     scope method from a callback the scope's own call runs), or inside a
//     register_begin() scope by a call other than the scope's own.
// disable_hotplug()/enable_hotplug() are the exception: where this thread
// holds the writers' lock already (a callback, an observer, a scope) they
// nest instead. Queries (masks, cpu_state, states, find_state) never wait
// for the writers' lock and work anywhere.
//
// Errors. Every call that can fail returns Status/Result; on failure nothing
// changed. Messages name the CPU, the state and the reason. Two exceptions,
// where undoing is impossible or worse: resume_nonboot() brings back every
// CPU it can and names those it could not; a suspend_nonboot() that fails
// and then cannot bring back a CPU it took down names that CPU, which stays
// where its rollback left it.
//
// Callbacks. See states.h. They run in the thread that calls up/down/
// bring_to/setup_state, one at a time. The observer (set_observer) sees every
// callback run; it cannot fail one: a throw from it is reported through
// cpuhp/diagnostics.h and ignored.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpuhp/cpumask.h"
#include "cpuhp/error.h"
#include "cpuhp/notifier.h"
#include "cpuhp/percpu_rwsem.h"
#include "cpuhp/states.h"

namespace cpuhp {

class RegistrationScope;

struct StateInfo {
  StateId id;
  std::string name;
  bool multi_instance;
  bool builtin;
};

class Domain {
 public:
  // CPUs 0..online_cpus-1 start online; all possible CPUs are present.
  // Throws std::invalid_argument if possible_cpus is not in 1..kMaxCpus or
  // online_cpus is not in 1..possible_cpus.
  Domain(unsigned possible_cpus, unsigned online_cpus);
  // Sparse ids, as on real machines: capacity is possible.capacity(), only
  // the CPUs in `possible` exist (and start present), `online` start online.
  // Throws std::invalid_argument unless online is non-empty, online ⊆ possible
  // and both masks have the same capacity.
  Domain(const CpuMask& possible, const CpuMask& online);
  ~Domain();  // precondition: no other call in progress
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  unsigned capacity() const noexcept { return possible_.capacity(); }
  const CpuMask& possible() const noexcept { return possible_; }
  const CpuMask& present() const noexcept { return present_; }
  const CpuMask& online() const noexcept { return online_; }
  const CpuMask& active() const noexcept { return active_; }
  bool cpu_online(unsigned cpu) const noexcept { return online_.test(cpu); }

  // True if CPU ids are this machine's (the host binding sets it): per-CPU
  // threads pin themselves, PerCpu::this_cpu() trusts sched_getcpu(). Set it
  // before other threads use the domain.
  bool host_bound() const noexcept { return host_bound_; }
  void set_host_bound(bool bound) noexcept { host_bound_ = bound; }

  // The hotplug lock: hold it for reading to keep CPUs from coming or going.
  PercpuRwSemaphore& hotplug_lock() noexcept { return hotplug_lock_; }

  // ---- hotplug ------------------------------------------------------------
  Status up(unsigned cpu);    // to kStateOnline
  Status down(unsigned cpu);  // to kStateOffline; refuses the last online CPU
  // Stops at any state, as the kernel's hotplug/target. A CPU stopped
  // between kStateBringup and kStateActive is online but not active.
  Status bring_to(unsigned cpu, StateId target);
  Result<StateId> cpu_state(unsigned cpu) const;
  // Adds or removes a CPU from the present mask; an online CPU cannot go.
  Status set_present(unsigned cpu, bool present);
  // Offline every online CPU but the first, highest first, and later bring
  // back exactly those. Hotplug stays disabled in between (set_present cannot
  // take those CPUs away); notifiers see kCpuTasksFrozen. If a CPU refuses,
  // suspend brings back the ones already taken and fails; resume is best
  // effort (see Errors). (disable_nonboot_cpus / enable_nonboot_cpus)
  Status suspend_nonboot();
  Status resume_nonboot();
  // While the disable count is nonzero, up/down/bring_to fail with kBusy.
  // Both take the writers' lock (cpu_hotplug_disable() does too), unless this
  // thread holds it already (a callback, a register_begin() scope).
  Status disable_hotplug();
  Status enable_hotplug();
  // Kernel hotplug/fail: the next startup of `state` on `cpu` fails once with
  // -EIO (or, for a state whose teardown may veto, its next teardown).
  Status inject_failure(unsigned cpu, StateId state);

  // ---- states ---------------------------------------------------------------
  // Installs a state in a free dynamic slot of `section` and runs `startup`
  // on every CPU already at or past it, in one step hotplug cannot interleave
  // with. If a startup fails, the CPUs already done get `teardown` and the
  // state is not installed. Returns the state's id.
  Result<StateId> setup_state(Section section, std::string name, StateCallback startup,
                              StateCallback teardown);
  Result<StateId> setup_state_nocalls(Section section, std::string name,
                                      StateCallback startup, StateCallback teardown);
  // The same at a fixed static id (kStatePrepareFirst..Last, kStateOnlineFirst..Last).
  Result<StateId> setup_state_at(StateId id, std::string name, StateCallback startup,
                                 StateCallback teardown);
  Result<StateId> setup_state_at_nocalls(StateId id, std::string name,
                                         StateCallback startup, StateCallback teardown);
  // Runs the teardown on every CPU at or past the state, then removes it.
  // For a PREPARE state this includes online CPUs, with no grace period of
  // the Domain's in between: the teardown unpublishes what RCU readers may
  // reach and retires it (see "Who waits for readers" above).
  Status remove_state(StateId id);
  Status remove_state_nocalls(StateId id);

  // Multi-instance states: callbacks run per (CPU, instance).
  Result<StateId> setup_multi_state(Section section, std::string name,
                                    InstanceCallback startup, InstanceCallback teardown);
  Status add_instance(StateId id, void* instance);  // runs startup on CPUs at/past id
  Status add_instance_nocalls(StateId id, void* instance);
  Status remove_instance(StateId id, void* instance);  // runs teardown likewise
  Status remove_instance_nocalls(StateId id, void* instance);

  // Snapshots of the state table. They take only the table's own mutex, so
  // they may be called from anywhere, callbacks and read sections included.
  std::vector<StateInfo> states() const;
  Result<StateId> find_state(const std::string& name) const;

  // ---- notifiers (the 2014 API) -------------------------------------------
  Status register_notifier(NotifierBlock* nb);
  Status unregister_notifier(NotifierBlock* nb);

  // Holds the writers' lock until the scope ends: no CPU comes or goes, and
  // the scope's methods register without taking it again. The mail's
  //   cpu_maps_update_begin(); for_each_online_cpu(cpu) init_cpu(cpu);
  //   __register_cpu_notifier(&nb); cpu_maps_update_done();
  // is  { auto scope = d.register_begin(); ...; scope->register_notifier(&nb); }
  Result<RegistrationScope> register_begin();

  // Called after every callback (tracing, tests), in the controlling thread
  // with the writers' lock held; for a multi-instance state once per
  // (CPU, instance). It must not call what takes the writers' lock (refused,
  // as from a callback); a throw is reported and ignored. May be set or
  // cleared at any time, from any thread, also from an observer; a
  // transition under way may still call the previous observer.
  void set_observer(std::function<void(const CallbackEvent&)> observer);

  struct Impl;  // implementation detail (src/domain_impl.h)

 private:
  friend class RegistrationScope;
  Status hotplug(unsigned cpu, StateId target, const char* what);
  CpuMask possible_, present_, online_, active_;
  PercpuRwSemaphore hotplug_lock_;
  bool host_bound_ = false;
  std::unique_ptr<Impl> impl_;
};

// RAII: the writers' lock of one Domain. Movable, not copyable.
class RegistrationScope {
 public:
  RegistrationScope(RegistrationScope&& other) noexcept;
  RegistrationScope& operator=(RegistrationScope&&) = delete;
  ~RegistrationScope();

  Domain& domain() noexcept { return *domain_; }
  // The no-lock variants: __register_cpu_notifier and friends.
  Status register_notifier(NotifierBlock* nb);
  Status unregister_notifier(NotifierBlock* nb);
  bool is_registered(const NotifierBlock* nb) const;
  Result<StateId> setup_state(Section section, std::string name, StateCallback startup,
                              StateCallback teardown);
  Result<StateId> setup_state_nocalls(Section section, std::string name,
                                      StateCallback startup, StateCallback teardown);
  Status remove_state(StateId id);
  Status remove_state_nocalls(StateId id);
  // Ends the scope early (cpu_maps_update_done()). On the thread that began
  // it, not from a callback its own call is running (both are fatal misuse).
  void done();

 private:
  friend class Domain;
  explicit RegistrationScope(Domain* domain) : domain_(domain) {}
  Domain* domain_;
};

}  // namespace cpuhp
