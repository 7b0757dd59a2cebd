// cpuhp/percpu_threads.h — one worker thread per online CPU of a Domain, parked
// while its CPU is down (the kernel's smpboot, kernel/smpboot.c).
//
// CONTRACT
//
// What it does. PerCpuThreads::create() installs a dynamic ONLINE state named
// "smpboot:<name>" with setup_state() (a plain client of the state API: it
// never reaches into Domain internals). For each CPU:
//
//   first startup   (or the first after a failed one) creates the worker
//                   thread "<name>/<cpu>"; on that thread: all signals
//                   blocked, thread named, pinned to <cpu> if the domain
//                   is host_bound(), then hooks.setup(cpu). The startup
//                   returns once setup has returned: 0 and the worker is
//                   running, or an error (the thread has been joined) and
//                   the state machine rolls back.
//   loop            while not parked: if should_run(cpu) then run(cpu), else
//                   sleep until wake(cpu), a park or a stop request.
//   teardown        (ONLINE section: before the online bit is cleared) asks the
//                   worker to park and waits until it has: the worker finishes
//                   the run() in progress, calls park(cpu) and blocks. The
//                   thread does not exit.
//   later startup   (after the online bit is set) re-pins the worker if the
//                   domain is host_bound(), then it calls unpark(cpu) and
//                   resumes the loop; the startup returns once unpark(cpu) has.
//   stop / ~        remove_state() (parks every running worker), then every
//                   worker calls cleanup(cpu) on its own thread and exits, and
//                   is joined.
//
// So, per CPU, the hooks see: setup, run*, (park, unpark, run*)*, [park],
// cleanup, all on that CPU's worker thread. should_run() and run() are only
// ever called while the CPU's online bit is set (park(cpu) runs while it is
// still set, unpark(cpu) after it is set again).
//
// Who may call what, from where.
//
//   create()      Any thread that may call Domain::setup_state(): not from a
//                 hotplug callback, not while holding the domain's hotplug read
//                 lock, not inside an RCU read section, not inside a
//                 register_begin() scope (each is returned as the Domain's
//                 kWouldDeadlock error). Blocks for the workers' setup().
//   wake(cpu)     Any thread, any time while the object exists, including from
//                 hooks, hotplug callbacks and signal handlers: never blocks,
//                 never allocates, takes no lock. Costs one atomic add and one load
//                 when the worker is not asleep; a futex wake when it is. A CPU
//                 without a worker (never online, or out of range) is ignored.
//                 A wake of a parked worker is not lost: the worker evaluates
//                 should_run() after it is unparked anyway.
//   stop()        Like create(); also not from one of this object's own
//                 workers. Idempotent. Afterwards only wake() (a no-op),
//                 the accessors and the destructor may be used.
//   ~PerCpuThreads  Calls stop(); if stop() fails (a deadlocking context, see
//                 above) the destructor cannot report it and aborts with the
//                 message. Not concurrently with any other call but wake().
//   The Domain must outlive the object. Nobody else may remove its state.
//
// Hooks: what they may do. setup, park and unpark run while the thread that
// drives the transition (up/down/bring_to/setup_state/remove_state, "the
// controlling thread") holds the domain's writers' lock and hotplug write lock
// and waits for the worker; should_run and run may be interrupted by a park
// request at any moment, and the controlling thread then waits for them to
// return. Hence no hook may
//   - call a Domain method that takes the writers' lock: anything that
//     changes CPUs, states, instances or notifiers (up, down, bring_to,
//     set_present, setup_state, remove_state, add_instance, register_begin,
//     inject_failure, ...), nor create()/stop()/destroy a PerCpuThreads of the
//     domain (the writers' lock is held by the thread waiting for this worker);
//     the masks, cpu_online() and cpu_state() are fine,
//   - take the domain's hotplug read lock (cpus_read_lock): the controlling
//     thread holds it for writing while it waits for this worker,
//   - wait for another thread that does one of these.
// They may use RCU read sections, rcu_synchronize(), wake() and anything not
// tied to the domain's locks. run() should return promptly: a park waits for
// it. These deadlocks are not turned into errors (they involve a thread the
// Domain knows nothing about; see the note in src/percpu_threads.cpp), but a
// controlling thread that waits more than kStallWarning for a worker prints a
// diagnostic naming the worker, the CPU and the likely cause on stderr, and
// repeats it every kStallWarning while it keeps waiting. stop() called from a
// worker is refused with kWouldDeadlock.
//
// Errors. setup may return a negative errno (kernel style; a positive value is
// taken as its negation) or throw; either fails the startup: create() returns
// the error (nothing left behind: every worker already set up is cleaned up
// and joined, the state is not installed), and a later up() returns it (the CPU
// is rolled back; its worker stays as it was). A thread that cannot be created
// or pinned likewise fails the startup ("reported, not ignored"): create()
// returns Errc::kSystem with cause() = -errno and a message naming the thread,
// the CPU and the errno; the Domain's up() returns kCallbackFailed whose
// message says the same. The other hooks must not throw: an exception escaping
// should_run, run, park, unpark or cleanup is a bug in the caller, reported on
// stderr (thread, CPU, hook, what()) before the process aborts.
//
// Names. Threads are named "<name>/<cpu>" (ps -L, top -H, /proc/.../comm). The
// kernel keeps 15 bytes: the name part is cut to fit, "/<cpu>" is always kept
// (thread_name() computes it).
//
// fork(): the child has none of the workers; it must not use or destroy an
// inherited PerCpuThreads (see cpuhp/rcu.h, "fork()").
//
// Pinning. If domain.host_bound() when a worker starts or is unparked, the
// worker's affinity is set to exactly its CPU (pthread_setaffinity_np) on
// every start and unpark: a real CPU that went offline broke the affinity.
// Otherwise the CPU ids are virtual and the workers are not pinned.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cpuhp/domain.h"
#include "cpuhp/error.h"
#include "cpuhp/states.h"

namespace cpuhp {

class PerCpuThreads {
 public:
  // Each hook gets the worker's CPU and runs on that CPU's worker thread.
  struct Hooks {
    // Optional. Once per thread, before its first should_run(). 0 or a
    // negative errno; may throw. Failure fails the startup (see above).
    std::function<int(unsigned cpu)> setup;
    // Required. Is there work? Must not block.
    std::function<bool(unsigned cpu)> should_run;
    // Required. Do (some of) the work; called while should_run() says so.
    std::function<void(unsigned cpu)> run;
    // Optional. The CPU is going down (its online bit still set).
    std::function<void(unsigned cpu)> park;
    // Optional. The CPU came back (its online bit set again).
    std::function<void(unsigned cpu)> unpark;
    // Optional. The object is being destroyed; last call on the thread.
    std::function<void(unsigned cpu)> cleanup;
  };

  // How long a controlling thread waits for a worker before it warns.
  static constexpr std::chrono::seconds kStallWarning{10};

  // Installs the state "smpboot:<name>" and starts a worker for every CPU
  // already online. Errors: kInvalidArgument (empty name, should_run or run
  // missing), the Domain's errors for setup_state() (kBusy: name in use or no
  // free ONLINE slot; kWouldDeadlock), kCallbackFailed (setup failed on a CPU;
  // cause() = its errno or -ECANCELED if it threw), kSystem (thread creation or
  // pinning failed; cause() = -errno). Messages name the CPU.
  static Result<std::unique_ptr<PerCpuThreads>> create(Domain& domain, std::string name,
                                                       Hooks hooks);

  ~PerCpuThreads();
  PerCpuThreads(const PerCpuThreads&) = delete;
  PerCpuThreads& operator=(const PerCpuThreads&) = delete;

  // Wakes cpu's worker if it sleeps waiting for work (see the contract).
  void wake(unsigned cpu) noexcept;

  // Removes the state (parking every running worker), then calls cleanup on
  // and joins every worker. Refused (nothing changed) with kWouldDeadlock from
  // a worker of this object or where Domain::remove_state() refuses.
  Status stop();

  const std::string& name() const noexcept { return name_; }
  // The installed state's id ("smpboot:<name>").
  StateId state() const noexcept { return state_; }
  Domain& domain() const noexcept { return domain_; }

  // "<name>/<cpu>", with the name part cut so that the whole fits in 15 bytes.
  static std::string thread_name(std::string_view name, unsigned cpu);

  struct Worker;  // implementation detail (src/percpu_threads.cpp)

 private:
  PerCpuThreads(Domain& domain, std::string name, Hooks hooks);
  int startup(unsigned cpu);
  int teardown(unsigned cpu);
  void stop_workers() noexcept;

  Domain& domain_;
  const std::string name_;
  const Hooks hooks_;
  StateId state_ = -1;
  bool installed_ = false;
  bool stopped_ = false;
  // One slot per possible CPU; a Worker is created at the CPU's first startup
  // and lives until the destructor, so wake() never sees it freed.
  std::unique_ptr<std::atomic<Worker*>[]> workers_;
  // The last startup failure (guarded by the domain's writers' lock, under
  // which every startup runs), for create()'s error.
  struct Failure {
    bool set = false;
    Errc code = Errc::kOk;
    int cause = 0;
  } failure_;
};

}  // namespace cpuhp
