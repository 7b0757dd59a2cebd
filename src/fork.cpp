// SPDX-License-Identifier: MIT
// fork() support for the RCU layer, and the call_rcu worker's signal mask.
// The behaviour promised is in fork.h. How:
//
// liburcu's memb flavour has no fork support of its own beyond call_rcu's
// (urcu_memb_call_rcu_before_fork & co., which pause the call_rcu workers in
// the parent and recreate the default one in the child). Three things break a
// child without more:
//   1. Its reader registry still lists the parent's other threads. A grace
//      period in the child waits for every one that was inside a read section
//      at the fork, forever; and glibc hands the dead threads' stacks, with
//      their TLS, to the next threads the child creates (the call_rcu worker
//      first), whose registration then re-links a node that is still linked:
//      the registry becomes a cycle and grace periods spin.
//   2. liburcu's grace-period and registry mutexes are copied held if another
//      thread was in synchronize_rcu() or (un)registering at the fork.
//   3. The call_rcu worker inherits the signal mask of whichever thread
//      happened to create it.
// So cpuhp keeps its own list of the threads it registered (their liburcu
// reader records) and, in the child, unlinks all but the forking thread from
// liburcu's registry before anything else runs; and a gate keeps cpuhp's own
// grace periods and (un)registrations from overlapping the fork, so the
// registry and both mutexes are consistent and free when the address space is
// copied. The worker is created with every signal blocked, in the parent and
// in the child.
//
// Order of the handlers, and why it cannot deadlock by itself:
//   prepare: (a) urcu_memb_call_rcu_before_fork(): the workers finish their
//            batch (a grace period, then callbacks, which may call
//            rcu_synchronize(): the gate is still open) and pause, unregistered;
//            (b) close the gate and wait until no thread is inside it. Threads
//            inside wait for a grace period at most, which needs only readers,
//            and no reader waits at the gate: register/unregister/synchronize
//            all happen outside read sections.
//   parent:  open the gate; resume the workers.
//   child:   unlink the dead readers; reset the gate; recreate the worker.
#include "fork.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>

// First, as in rcu.cpp: liburcu's struct urcu_reader and URCU_TLS(urcu_memb_reader).
#include "cpuhp/diagnostics.h"
#include "cpuhp/rcu.h"
// Declarations (no _LGPL_SOURCE): register/unregister, synchronize, call_rcu
// worker management and its fork handlers.
#include <urcu/list.h>
#include <urcu/urcu-memb.h>

namespace cpuhp::detail {
namespace {

[[noreturn]] void die(const char* message) noexcept {
  detail::fatal("fork", "fork(): %s", message);
}

// ---- the gate --------------------------------------------------------------------
// Low bits: threads inside (in a liburcu call that takes its grace-period or
// registry mutex). kForkPending: a fork() is being prepared; nobody enters.
constexpr std::uint32_t kForkPending = 1U << 31;
constexpr std::uint32_t kInsideMask = kForkPending - 1;
constinit std::atomic<std::uint32_t> g_gate{0};
constinit thread_local int t_gate_depth = 0;  // a handler on a thread already inside

void gate_enter() noexcept {
  if (t_gate_depth++ > 0) return;
  std::uint32_t s = g_gate.load(std::memory_order_relaxed);
  for (;;) {
    if ((s & kForkPending) != 0) {
      g_gate.wait(s, std::memory_order_relaxed);
      s = g_gate.load(std::memory_order_relaxed);
      continue;
    }
    // Acquire: pairs with the release that reopens the gate after a fork.
    if (g_gate.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_relaxed))
      return;
  }
}

void gate_exit() noexcept {
  if (--t_gate_depth > 0) return;
  // Release: the liburcu call we made happens-before the fork that waits for us.
  const std::uint32_t before = g_gate.fetch_sub(1, std::memory_order_release);
  if ((before & kForkPending) != 0 && (before & kInsideMask) == 1) g_gate.notify_all();
}

void gate_close() noexcept {
  std::uint32_t s =
      g_gate.fetch_or(kForkPending, std::memory_order_acquire) | kForkPending;
  while ((s & kInsideMask) != 0) {
    g_gate.wait(s, std::memory_order_acquire);
    s = g_gate.load(std::memory_order_acquire);
  }
}

void gate_open() noexcept {
  g_gate.fetch_and(~kForkPending, std::memory_order_release);
  g_gate.notify_all();
}

struct GateSection {
  GateSection() noexcept { gate_enter(); }
  ~GateSection() { gate_exit(); }
  GateSection(const GateSection&) = delete;
  GateSection& operator=(const GateSection&) = delete;
};

// ---- the threads cpuhp registered -------------------------------------------------
// An intrusive list through a trivially destructible thread_local node, so a
// thread can be listed and unlisted at any point of its exit. Modified only
// inside the gate and under g_tracked_mutex, so it is consistent and the mutex
// is free whenever a fork() happens.
struct Tracked {
  Tracked* prev;
  Tracked* next;
  urcu_reader* reader;
  bool listed;
};
constinit thread_local Tracked t_tracked{nullptr, nullptr, nullptr, false};
constinit Tracked g_tracked_head{&g_tracked_head, &g_tracked_head, nullptr, true};
constinit std::mutex g_tracked_mutex;

void track_this_thread() noexcept {
  Tracked& me = t_tracked;
  std::lock_guard guard(g_tracked_mutex);
  if (me.listed) return;  // registered again after a direct unregistration
  me.reader = &URCU_TLS(urcu_memb_reader);
  me.next = g_tracked_head.next;
  me.prev = &g_tracked_head;
  g_tracked_head.next->prev = &me;
  g_tracked_head.next = &me;
  me.listed = true;
}

void untrack_this_thread() noexcept {
  Tracked& me = t_tracked;
  std::lock_guard guard(g_tracked_mutex);
  if (!me.listed) return;
  me.prev->next = me.next;
  me.next->prev = me.prev;
  me.prev = me.next = nullptr;
  me.listed = false;
}

// In the child, single-threaded: every listed thread but this one is gone.
void forget_other_threads_in_child() noexcept {
  // Free at the fork (the gate guaranteed it); taken so that the list's last
  // writers happen-before this walk, for ThreadSanitizer too.
  std::lock_guard guard(g_tracked_mutex);
  Tracked* self = &t_tracked;
  for (Tracked* t = g_tracked_head.next; t != &g_tracked_head;) {
    Tracked* next = t->next;
    if (t != self) {
      urcu_reader* r = t->reader;
      if (r != nullptr && r->registered) {
        // The registry is a doubly linked ring: unlinking needs only the
        // neighbours, which the gate guarantees are consistent.
        cds_list_del(&r->node);
        r->registered = 0;
      }
      t->listed = false;
    }
    t = next;
  }
  // A list holding only this thread, if it is listed.
  g_tracked_head.next = g_tracked_head.prev = &g_tracked_head;
  if (self->listed) {
    self->next = self->prev = &g_tracked_head;
    g_tracked_head.next = g_tracked_head.prev = self;
  }
}

// ---- signal mask ------------------------------------------------------------------
template <class F>
void with_all_signals_blocked(F&& f) noexcept {
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  // glibc keeps its internal signals (thread cancellation, setxid) unblockable.
  const bool blocked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
  f();
  if (blocked) pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

constinit std::atomic<bool> g_worker_started{false};

// ---- pthread_atfork handlers ---------------------------------------------------------
bool on_call_rcu_worker() noexcept {
  call_rcu_data* crdp = urcu_memb_get_thread_call_rcu_data();
  return crdp != nullptr &&
         pthread_equal(urcu_memb_get_call_rcu_thread(crdp), pthread_self());
}

void before_fork() noexcept {
  if (rcu::rcu_read_section_held()) {
    die("called inside an RCU read-side critical section: fork() waits for the call_rcu "
        "worker to finish its grace period, which waits for this read section. Fix: end "
        "the read section (ReadGuard scope) before fork().");
  }
  if (t_gate_depth > 0) {
    die("called from a signal handler that interrupted this thread inside cpuhp's RCU "
        "(a grace period or thread registration): fork() would wait for it. Fix: do not "
        "fork from signal handlers, or block the signal around RCU calls.");
  }
  if (on_call_rcu_worker()) {
    die("called from an RCU callback (rcu_call/rcu_retire): fork() waits for the "
        "call_rcu worker to pause, and this is the worker. Fix: fork from an ordinary "
        "thread.");
  }
  urcu_memb_call_rcu_before_fork();
  gate_close();
}

void after_fork_parent() noexcept {
  gate_open();
  urcu_memb_call_rcu_after_fork_parent();
}

void after_fork_child() noexcept {
  forget_other_threads_in_child();
  g_gate.store(0, std::memory_order_relaxed);
  // Recreates the default worker if call_rcu was ever used. Its mutex was
  // taken by before_fork() on this very thread.
  with_all_signals_blocked([] { urcu_memb_call_rcu_after_fork_child(); });
}

constinit std::atomic<bool> g_handlers_installed{false};

// Installs the handlers when the library is loaded, before any thread of the
// program can register; install_fork_handlers() is then a no-op.
[[maybe_unused]] const bool g_installed_at_load = (install_fork_handlers(), true);

}  // namespace

void install_fork_handlers() noexcept {
  if (g_handlers_installed.load(std::memory_order_acquire)) [[likely]]
    return;
  bool expected = false;
  if (!g_handlers_installed.compare_exchange_strong(expected, true,
                                                    std::memory_order_acq_rel))
    return;
  if (pthread_atfork(&before_fork, &after_fork_parent, &after_fork_child) != 0)
    die("pthread_atfork failed: cannot make RCU safe across fork()");
}

void fork_safe_register_thread() noexcept {
  install_fork_handlers();
  {
    GateSection inside;
    urcu_memb_register_thread();
    track_this_thread();
  }
  ensure_call_rcu_worker();
}

void fork_safe_unregister_thread() noexcept {
  GateSection inside;
  urcu_memb_unregister_thread();
  untrack_this_thread();
}

void fork_forget_thread() noexcept {
  GateSection inside;
  untrack_this_thread();
}

void fork_safe_synchronize_rcu() noexcept {
  install_fork_handlers();
  GateSection inside;
  urcu_memb_synchronize_rcu();
}

void ensure_call_rcu_worker() noexcept {
  // Acquire: pairs with the release below; the worker exists.
  if (g_worker_started.load(std::memory_order_acquire)) [[likely]]
    return;
  // Racing first callers all block their signals: whichever of them liburcu
  // lets create the worker (it serialises creation), the worker blocks them all.
  with_all_signals_blocked([] { (void)urcu_memb_get_default_call_rcu_data(); });
  g_worker_started.store(true, std::memory_order_release);
}

}  // namespace cpuhp::detail
