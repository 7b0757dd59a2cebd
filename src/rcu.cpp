// SPDX-License-Identifier: MIT
// RCU layer: the out-of-line parts of cpuhp/rcu.h (registration, grace periods,
// callbacks). See the header for the contract.
#include "cpuhp/rcu.h"

#include <cxxabi.h>
#include <pthread.h>

#include "cpuhp/diagnostics.h"
// Declarations only (no _LGPL_SOURCE): register/unregister, synchronize,
// call_rcu, barrier. The read side comes from the header's static include.
#include <urcu/urcu-memb.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <typeinfo>

#include "fork.h"

#ifdef CPUHP_RCU_TSAN
// Exported by the TSAN runtime (GCC and clang) but not declared in
// <sanitizer/tsan_interface.h>: ignore this thread's memory accesses, including
// those that TSAN's malloc/free interceptors imitate, until the matching end.
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

namespace cpuhp::rcu {

static_assert(sizeof(rcu_head) <= sizeof(detail::CallbackNode::link),
              "liburcu's struct rcu_head no longer fits CallbackNode::link");
static_assert(alignof(rcu_head) <= alignof(detail::CallbackNode));
static_assert(std::is_standard_layout_v<detail::CallbackNode> &&
                  offsetof(detail::CallbackNode, link) == 0,
              "a CallbackNode* must convert to and from its rcu_head*");

namespace detail {
#ifdef CPUHP_RCU_TSAN
char tsan_grace_token;
#endif
}  // namespace detail

namespace {

#ifdef CPUHP_RCU_TSAN
// Released by every callback when it finishes, acquired after rcu_barrier().
char tsan_barrier_token;
#endif

[[noreturn]] void die(const char* message) noexcept {
  cpuhp::detail::fatal("rcu", "%s", message);
}

// Registrations made by cpuhp and not yet ended. A statistic for tests: relaxed,
// it orders nothing.
std::atomic<long> g_registered{0};

// Per-thread registration state. Both are trivially destructible, so they stay
// readable for the whole of thread exit, after t_guard has been destroyed.
enum class GuardState : unsigned char { kNone, kLive, kGone };
thread_local GuardState t_guard_state = GuardState::kNone;
thread_local bool t_registered_by_us = false;
// Depth of RCU callbacks running on this thread (0 or 1: callbacks do not nest).
thread_local int t_callback_depth = 0;

void unregister_current_thread() noexcept {
  if (!t_registered_by_us) return;  // the application registered it; it unregisters
  t_registered_by_us = false;
  g_registered.fetch_sub(1, std::memory_order_relaxed);
  if (!URCU_TLS(urcu_memb_reader).registered) {
    return cpuhp::detail::fork_forget_thread();  // already unregistered directly
  }
  if (rcu_read_section_held()) {
    die("a thread is exiting inside an RCU read-side critical section "
        "(rcu_domain::lock() without unlock()); grace periods would wait for it "
        "forever or stop protecting it. Fix: balance every lock() with unlock() on the "
        "same thread, or use cpuhp::rcu::ReadGuard.");
  }
  cpuhp::detail::fork_safe_unregister_thread();
}

// Unregisters the thread when its thread_local objects are destroyed.
struct RegistrationGuard {
  bool armed = false;
  ~RegistrationGuard() {
    t_guard_state = GuardState::kGone;
    if (armed) unregister_current_thread();
  }
};
thread_local RegistrationGuard t_guard;

// A thread that registers after t_guard was destroyed (a read section in a
// thread_local destructor that runs later) is unregistered by a pthread TSD
// destructor instead: glibc runs those after all thread_local destructors.
pthread_key_t late_unregister_key() noexcept {
  static const pthread_key_t key = [] {
    pthread_key_t k;
    if (pthread_key_create(&k, [](void*) { unregister_current_thread(); }) != 0) {
      die("pthread_key_create failed; cannot arrange to unregister exiting threads");
    }
    return k;
  }();
  return key;
}

// Runs on liburcu's call_rcu thread after a grace period.
void run_callback(rcu_head* head) noexcept {
  auto* node = reinterpret_cast<detail::CallbackNode*>(head);
#ifdef CPUHP_RCU_TSAN
  __tsan_acquire(node);  // pairs with __tsan_release(node) in rcu_call()
  // Pairs with __tsan_release(&tsan_grace_token) in rcu_domain::unlock(): the
  // grace period liburcu waited for before this callback ordered those readers.
  __tsan_acquire(&detail::tsan_grace_token);
#endif
  ++t_callback_depth;
  try {
    node->run(node);
  } catch (const std::exception& e) {
    int status = 0;
    const std::unique_ptr<char, void (*)(void*)> type(
        abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status), &std::free);
    cpuhp::detail::warn(
        "rcu",
        "exception escaped an RCU callback (rcu_call/rcu_retire): %s: %s; later "
        "callbacks still run",
        type ? type.get() : typeid(e).name(), e.what());
  } catch (...) {
    cpuhp::detail::warn(
        "rcu",
        "exception escaped an RCU callback (rcu_call/rcu_retire): unknown "
        "exception type; later callbacks still run");
  }
  node->destroy(node);
  --t_callback_depth;
  if (rcu_read_section_held()) {
    die("an RCU callback returned inside a read-side critical section (lock() "
        "without unlock()); every later grace period would wait for it forever. Fix: "
        "balance lock()/unlock() inside the callback, or use cpuhp::rcu::ReadGuard.");
  }
#ifdef CPUHP_RCU_TSAN
  __tsan_release(&tsan_barrier_token);  // pairs with the acquire in rcu_barrier()
#endif
}

}  // namespace

namespace detail {

void register_current_thread() noexcept {
  // Already registered: by the application, or by liburcu (its call_rcu
  // threads). Whoever registered it unregisters it.
  if (URCU_TLS(urcu_memb_reader).registered) return;
  if (t_registered_by_us) {
    // Our registration was ended by a direct urcu_memb_unregister_thread().
    t_registered_by_us = false;
    g_registered.fetch_sub(1, std::memory_order_relaxed);
  }
  cpuhp::detail::fork_safe_register_thread();
  t_registered_by_us = true;
  g_registered.fetch_add(1, std::memory_order_relaxed);
  switch (t_guard_state) {
    case GuardState::kNone:
      t_guard.armed = true;  // first use constructs t_guard and queues its destructor
      t_guard_state = GuardState::kLive;
      break;
    case GuardState::kLive:
      break;  // t_guard is armed already
    case GuardState::kGone:
      // Any non-null value makes glibc call the key's destructor at thread exit.
      if (pthread_setspecific(late_unregister_key(), &t_guard_state) != 0) {
        die("pthread_setspecific failed; cannot arrange to unregister this thread");
      }
      break;
  }
}

long registered_thread_count() noexcept {
  return g_registered.load(std::memory_order_relaxed);
}

}  // namespace detail

void rcu_synchronize(rcu_domain& /*domain*/) noexcept {
  if (rcu_read_section_held()) {
    die("rcu_synchronize() called inside an RCU read-side critical section on the same "
        "thread: the grace period would wait for this thread's own read section and "
        "never end. Fix: end the read section (let the ReadGuard go out of scope, or "
        "call rcu_domain::unlock()) before rcu_synchronize(), or defer the work with "
        "rcu_retire()/rcu_call(), which do not block.");
  }
  // Full memory ordering against every reader (see the contract): liburcu issues
  // membarrier(2) (or a fence) before and after waiting, pairing with the
  // compiler barriers in the readers' lock()/unlock().
  cpuhp::detail::fork_safe_synchronize_rcu();
#ifdef CPUHP_RCU_TSAN
  __tsan_acquire(&detail::tsan_grace_token);  // pairs with the release in unlock()
#endif
}

void rcu_call(Callback fn, rcu_domain& /*domain*/) noexcept {
  detail::CallbackNode* node = std::exchange(fn.node_, nullptr);
  if (node == nullptr) return;
  // urcu_memb_call_rcu() takes a read lock internally: the thread must be
  // registered.
  if (!URCU_TLS(urcu_memb_reader).registered) [[unlikely]] {
    detail::register_current_thread();
  }
#ifdef CPUHP_RCU_TSAN
  __tsan_release(node);  // pairs with __tsan_acquire(node) in run_callback()
#endif
  // Real ordering of the node's contents and the caller's earlier writes
  // before the callback: the enqueue is an atomic exchange (full barrier) on
  // the call_rcu queue tail, paired with the worker's dequeue, and the worker
  // then waits a full grace period before running the callback.
  cpuhp::detail::ensure_call_rcu_worker();
  urcu_memb_call_rcu(reinterpret_cast<rcu_head*>(node), &run_callback);
}

void rcu_barrier(rcu_domain& /*domain*/) noexcept {
  if (t_callback_depth > 0) {
    die("rcu_barrier() called from an RCU callback: it would wait for the call_rcu "
        "thread, which is busy running this very callback. Fix: call rcu_barrier() "
        "from an ordinary thread; inside a callback, queue follow-up work with "
        "rcu_call() instead.");
  }
  if (rcu_read_section_held()) {
    die("rcu_barrier() called inside an RCU read-side critical section: the "
        "callbacks it waits for need a grace period, which waits for this read "
        "section. Fix: call rcu_barrier() outside any read section.");
  }
  // liburcu queues a completion on every call_rcu worker behind the callbacks
  // already queued and waits on a futex for all of them (the futex handshake
  // carries full barriers), so the callbacks' effects are visible on return.
#ifdef CPUHP_RCU_TSAN
  // liburcu calloc()s the completion records here and the call_rcu thread
  // free()s them, ordered by atomics and futexes TSAN cannot see (liburcu is not
  // instrumented): without this, TSAN reports that free() as a race.
  __tsan_ignore_thread_begin();
  urcu_memb_barrier();
  __tsan_ignore_thread_end();
  __tsan_acquire(&tsan_barrier_token);  // pairs with the release in run_callback()
#else
  urcu_memb_barrier();
#endif
}

}  // namespace cpuhp::rcu
