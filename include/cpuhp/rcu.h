// cpuhp/rcu.h — read-copy-update: read sections, grace periods, deferred reclamation.
//
// The one RCU domain of the process, backed by liburcu's memb flavour, so an
// application that also calls liburcu's urcu_memb_* API directly shares the same
// readers and grace periods: a urcu_memb_read_lock() section delays
// rcu_synchronize(), a cpuhp read section delays urcu_memb_synchronize_rcu().
// Names follow C++26 std::rcu_domain (P2545) where they fit.
//
// Who may call what, from where:
//
//   rcu_domain::lock()/unlock(), ReadGuard, std::scoped_lock<rcu_domain>
//       Any thread, any time, nestable. unlock() must run on the thread that
//       called the matching lock() (the nesting count is per thread). A thread
//       is registered with liburcu on its first lock() or rcu_call() and
//       unregistered when it exits; nobody calls a register function. A read
//       section may block, allocate or take locks, but must not wait for
//       anything that itself waits for a grace period (rcu_synchronize(),
//       rcu_barrier(), a thread doing either): that is a deadlock. A thread
//       must not exit inside a read section (checked: abort with a message).
//   rcu_synchronize()
//       Any thread outside a read section, including from an RCU callback (it
//       then stalls the callbacks queued behind it for a grace period). Called
//       inside a read section of the same thread it would wait for itself: it
//       aborts with a message on stderr instead of hanging. Blocks.
//   rcu_retire(), rcu_call()
//       Any thread, inside or outside a read section, including from an RCU
//       callback. Never block for a grace period.
//   rcu_barrier()
//       Any thread outside a read section and outside an RCU callback (either
//       would deadlock: checked, abort with a message). Blocks.
//   rcu_read_section_held()
//       Any thread; true inside a cpuhp read section or a read section entered
//       with liburcu's urcu_memb_read_lock() directly.
//
// Ordering promised:
//
//   Grace period. rcu_synchronize() returns only after every read section that
//   began before it was called has ended, with full memory ordering: for every
//   read section R, either R ended before rcu_synchronize() returned, and then
//   everything R did happens-before everything the caller does after it
//   returns; or R began after rcu_synchronize() was called, and then everything
//   the caller did before calling happens-before everything R does. Read
//   sections that begin while a grace period is in progress do not prolong it.
//   Callbacks. The callable given to rcu_call() (the deleter given to
//   rcu_retire()) runs once, after a full grace period that begins after the
//   call, on liburcu's call_rcu thread, outside any read section; everything
//   the queuing thread did before the call happens-before the callback.
//   Callbacks queued by one thread run in the order queued (as long as the
//   application has not set up per-CPU or per-thread call_rcu workers through
//   liburcu's API). rcu_barrier() returns after every callback queued before
//   it was called has run, and their effects happen-before its return.
//   Callbacks queued by callbacks while it waits may still be pending.
//
// Callbacks run on liburcu's call_rcu worker thread (shared with callbacks
// the application queues through liburcu directly), one at a time. A callback
// may take read sections, rcu_call(), rcu_retire() and rcu_synchronize(); it
// must not call rcu_barrier() (checked) nor wait for another callback to run,
// and must return outside any read section (checked). An exception escaping a
// callback is caught and reported on stderr; later callbacks still run.
//
// Cost of the read side: lock() and unlock() are inline and are liburcu's own
// static read-side code (urcu/static/urcu-memb.h) plus one test of liburcu's
// per-thread `registered` bit, which lives in the same thread-local block as
// the nesting counter: no atomic read-modify-write and, when the kernel has
// membarrier(2), no fence; the first lock() of a thread takes a cold
// out-of-line path that registers it. Only the outermost unlock() also reads
// the grace-period futex word, to wake a waiting writer. Under ThreadSanitizer
// unlock() also informs TSAN (see below); normal builds pay nothing for it.
//
// ThreadSanitizer: liburcu is not instrumented, so TSAN cannot see that a grace
// period orders readers before reclamation. TSAN builds call liburcu's
// out-of-line lock/unlock instead of the inline code, and rcu_barrier() hides
// liburcu's own calloc/free pair from TSAN. In TSAN builds unlock() also releases a
// process-wide token that rcu_synchronize() (after returning) and every
// callback (on entry) acquire; rcu_call() releases the callback's node, which
// the callback acquires; each callback releases a token that rcu_barrier()
// acquires. This over-approximates (a section that starts during a grace
// period is also ordered before its end) but never misses an ordering RCU
// promises.
//
// fork(). fork() without exec() in a process whose threads use cpuhp gives a
// child in which cpuhp works (RCU, every Domain and PercpuRwSemaphore, the
// default domain of cpuhp/kernel.h) and leaves the parent undisturbed. cpuhp
// installs pthread_atfork handlers when the library is loaded. (posix_spawn(),
// vfork(), system() and popen() run no handlers and need none.) In the child:
//   Recreated: liburcu's call_rcu worker (signals blocked). Callbacks queued
//     before fork() and not yet run are in both processes' queues; each runs
//     them once on its own memory (an rcu_retire()d object is freed in both).
//   Not recreated: PerCpuThreads workers and the HostCpus follower. An
//     inherited PerCpuThreads or HostCpus object must not be used or destroyed
//     in the child (leave it, exec or _exit()); create new ones if needed.
//   Reset: RCU forgets the parent's other threads, so grace periods in the
//     child never wait for threads that do not exist, even ones that were
//     inside a read section at the fork.
//   Kept as at fork(), and usable: every Domain's masks, states, notifiers and
//     per-CPU data; lock gates; membarrier registration; the forking thread's
//     own read sections, hotplug read holds and register_begin() scope.
// Cost: fork() waits in the parent for the call_rcu worker to finish its batch
// and pause (liburcu checks between batches, after a 10 ms nap: measured mean
// 11 ms once callbacks have been used), and for grace periods and thread
// (un)registrations other threads have under way; such operations starting
// during the fork wait for it. So where a fork() may be under way, treat a
// thread's first read section, first rcu_call() and exit like rcu_synchronize():
// a read section must not wait for a thread doing one.
// Preconditions (as for any mutex; breaking one can leave the child with a
// lock nobody releases, never the parent): fork() is not called inside a read
// section, from an RCU callback, or from a signal handler that interrupted
// cpuhp's RCU on the same thread (checked: abort with a message); no other
// thread holds a read or write lock of a PercpuRwSemaphore, or is inside a
// hotplug operation or register_begin() scope, of a Domain the child uses; no
// other thread is at that moment constructing or destroying a
// PercpuRwSemaphore or Domain, or taking its first read lock of one or
// exiting after holding one; no other thread registered with liburcu directly
// and is still registered; the application does not also install liburcu's
// own call_rcu fork handlers.
//
// Signals. Every thread cpuhp creates blocks every signal (the call_rcu worker,
// PerCpuThreads workers, the HostCpus follower), so process-directed signals
// reach application threads. (If the application had liburcu create the
// call_rcu worker before cpuhp did, that worker has its creator's mask.) A
// signal handler may take a read section (ReadGuard) on a thread that is
// already registered (it took a read section or called rcu_call() before);
// registration itself is not async-signal-safe.
//
// Linking: the inline read side refers to liburcu-memb's symbols, so users of
// this header link liburcu-memb (pkg-config liburcu-memb; cpuhp's CMake
// package and cpuhp.pc carry it) and must be rebuilt against a liburcu of the
// same major version (liburcu guarantees its small inline functions match the
// library within a major version).
#pragma once

#include <cassert>
#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

// liburcu's memb read side only: the <10-line static inline functions that
// liburcu intends non-LGPL code to inline. We include the static header
// directly rather than defining _LGPL_SOURCE and including <urcu/urcu-memb.h>:
// that would switch every liburcu header the including file uses afterwards to
// its LGPL-only inline implementation and would add liburcu's unprefixed names
// (call_rcu, rcu_head, rcu_dereference, ...) to every file that includes us.
#include <urcu/static/urcu-common.h>  // struct urcu_reader, CONFIG_RCU_TLS
#ifdef CONFIG_RCU_TLS
// Compiled as C++, liburcu's per-thread reader state is an extern `thread_local`,
// and C++ must assume it may have a dynamic initializer elsewhere: every access
// would test for one (a TLS-wrapper check, six per lock()/unlock() pair). It is a
// C variable without initializer; declaring it constinit removes those checks.
// This precedes the read-side header so that its inline functions see it.
extern "C" {
extern constinit thread_local struct urcu_reader urcu_memb_reader;
}
#endif
#include <urcu/static/urcu-memb.h>

#if defined(__SANITIZE_THREAD__)
#define CPUHP_RCU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CPUHP_RCU_TSAN 1
#endif
#endif
#ifdef CPUHP_RCU_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace cpuhp::rcu {

class rcu_domain;
class Callback;

namespace detail {

// Cold path of rcu_domain::lock() and of rcu_call(): registers the calling
// thread with liburcu (unless it already is) and arranges for it to be
// unregistered when the thread exits.
void register_current_thread() noexcept;

// Threads currently registered by cpuhp (not by the application). For tests.
long registered_thread_count() noexcept;

#ifdef CPUHP_RCU_TSAN
// Released at every read unlock, acquired after every grace period.
extern char tsan_grace_token;

// TSAN builds call liburcu's out-of-line read side (uninstrumented, like the
// rest of liburcu) rather than compiling its inline code with instrumentation:
// instrumented, its benign unsynchronized accesses to the grace-period futex
// word are reported as races. The asm labels bind to liburcu's exported symbols
// without depending on liburcu's macros (with _LGPL_SOURCE, urcu_memb_read_lock
// is a macro).
void urcu_read_lock_out_of_line() noexcept __asm__("urcu_memb_read_lock");
void urcu_read_unlock_out_of_line() noexcept __asm__("urcu_memb_read_unlock");
#endif

// Type-erased callback, in one allocation together with liburcu's struct
// rcu_head (kept opaque here so that <urcu/call-rcu.h> stays out of this
// header; src/rcu.cpp checks the size and alignment).
struct CallbackNode {
  alignas(void*) unsigned char link[2 * sizeof(void*)];  // struct rcu_head
  void (*run)(CallbackNode*);                            // may throw
  void (*destroy)(CallbackNode*) noexcept;               // deletes the node
};

template <class F>
struct CallbackNodeImpl final : CallbackNode {
  template <class G>
  explicit CallbackNodeImpl(G&& g)
      : CallbackNode{{}, &Run, &Destroy}, fn(std::forward<G>(g)) {}
  static void Run(CallbackNode* n) { std::invoke(static_cast<CallbackNodeImpl*>(n)->fn); }
  static void Destroy(CallbackNode* n) noexcept {
    delete static_cast<CallbackNodeImpl*>(n);
  }
  F fn;
};

// A callable rcu_call() accepts: invocable with no arguments, storable by value.
template <class F, class Self>
concept CallbackFunction =
    !std::is_same_v<std::remove_cvref_t<F>, Self> &&
    std::is_invocable_v<std::decay_t<F>&> && std::is_constructible_v<std::decay_t<F>, F>;

}  // namespace detail

// The RCU domain (C++26 std::rcu_domain). Lockable: lock()/unlock() enter and
// leave a read-side critical section; try_lock() always succeeds. Stateless:
// all domain state is liburcu's, so there is exactly one, rcu_default_domain().
class rcu_domain {
 public:
  rcu_domain(const rcu_domain&) = delete;
  rcu_domain& operator=(const rcu_domain&) = delete;

  void lock() noexcept;
  bool try_lock() noexcept {
    lock();
    return true;
  }
  void unlock() noexcept;

 private:
  constexpr rcu_domain() noexcept = default;
  friend rcu_domain& rcu_default_domain() noexcept;
};

// The process-wide domain, shared with liburcu's memb flavour.
inline rcu_domain& rcu_default_domain() noexcept {
  static constinit rcu_domain domain;  // constant-initialized: no guard, no destructor
  return domain;
}

// True if the calling thread is inside a read section (cpuhp's or one entered
// through liburcu's memb API directly). Reads this thread's nesting count only.
inline bool rcu_read_section_held() noexcept { return _urcu_memb_read_ongoing() != 0; }

inline void rcu_domain::lock() noexcept {
  // liburcu's own per-thread `registered` bit; only this thread writes it.
  if (!URCU_TLS(urcu_memb_reader).registered) [[unlikely]] {
    detail::register_current_thread();
  }
  // Outermost lock: stores the current grace-period phase into this thread's
  // counter, then urcu_memb_smp_mb_slave() orders that store before the
  // section's loads: a compiler barrier that pairs with the membarrier(2) which
  // urcu_memb_synchronize_rcu() issues on every CPU before it reads the
  // counters (a full fence if the kernel lacks membarrier). Nested lock: a
  // plain increment of the count.
#ifdef CPUHP_RCU_TSAN
  detail::urcu_read_lock_out_of_line();
#else
  _urcu_memb_read_lock();
#endif
}

inline void rcu_domain::unlock() noexcept {
  assert(rcu_read_section_held() && "cpuhp::rcu: unlock() without a matching lock()");
#ifdef CPUHP_RCU_TSAN
  // Before the real unlock: once the counter drops, a grace period may end and
  // its __tsan_acquire (rcu_synchronize(), callbacks) must see this release.
  __tsan_release(&detail::tsan_grace_token);
#endif
  // Outermost unlock: urcu_memb_smp_mb_slave() orders the section's accesses
  // before the store that clears this thread's count (pairs with the
  // membarrier(2)/fence urcu_memb_synchronize_rcu() issues after it sees the
  // count clear, before returning); a second one orders that store before
  // the load of the grace-period futex word (pairs with the writer's fence
  // between setting the futex to -1 and re-reading the counters), so a
  // sleeping writer is always woken.
#ifdef CPUHP_RCU_TSAN
  detail::urcu_read_unlock_out_of_line();
#else
  _urcu_memb_read_unlock();
#endif
}

// RAII read section: locks in the constructor, unlocks in the destructor.
class ReadGuard {
 public:
  [[nodiscard]] explicit ReadGuard(rcu_domain& domain = rcu_default_domain()) noexcept
      : domain_(domain) {
    domain_.lock();
  }
  ~ReadGuard() { domain_.unlock(); }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;

 private:
  rcu_domain& domain_;
};

// Waits for a grace period (see "Ordering promised"). Aborts with a message if
// the calling thread is inside a read section.
void rcu_synchronize(rcu_domain& domain = rcu_default_domain()) noexcept;

// Queues `fn` to run after a grace period (see "Callbacks"); does not block.
// An empty Callback is ignored. The Callback (and so the allocation) is built
// by the caller; queuing itself cannot fail.
void rcu_call(Callback fn, rcu_domain& domain = rcu_default_domain()) noexcept;

// Waits until every callback queued before the call has run. Aborts with a
// message if called inside a read section or from an RCU callback.
void rcu_barrier(rcu_domain& domain = rcu_default_domain()) noexcept;

// A move-only `void()` callable for rcu_call(): one heap allocation holds the
// callable and liburcu's queue link. Built implicitly from any callable
// (lambdas with move-only captures included). Destroying a Callback that was
// never queued destroys the callable without running it.
class Callback {
 public:
  Callback() noexcept = default;

  template <detail::CallbackFunction<Callback> F>
  Callback(F&& f)  // NOLINT: implicit by design, rcu_call([&] { ... })
      : node_(new detail::CallbackNodeImpl<std::decay_t<F>>(std::forward<F>(f))) {}

  Callback(Callback&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
  Callback& operator=(Callback&& other) noexcept {
    if (this != &other) {
      reset();
      node_ = std::exchange(other.node_, nullptr);
    }
    return *this;
  }
  ~Callback() { reset(); }

  explicit operator bool() const noexcept { return node_ != nullptr; }

 private:
  friend void rcu_call(Callback fn, rcu_domain& domain) noexcept;
  void reset() noexcept {
    if (node_ != nullptr) node_->destroy(node_);
    node_ = nullptr;
  }
  detail::CallbackNode* node_ = nullptr;
};

// Deferred reclamation (C++26 std::rcu_retire): calls d(p) after a grace
// period, on the call_rcu thread; does not block. A null p is ignored. If the
// callback cannot be allocated, waits for the grace period here and calls d(p)
// inline (as the kernel's kvfree_rcu() does); if that is impossible because the
// caller is inside a read section, std::bad_alloc propagates and the caller
// still owns p.
template <class T, class D = std::default_delete<T>>
requires std::is_invocable_v<D&, T*>
void rcu_retire(T* p, D d = D(), rcu_domain& domain = rcu_default_domain()) {
  if (p == nullptr) return;
  auto reclaim = [p, d = std::move(d)]() mutable { d(p); };
  Callback callback;
  try {
    // operator new runs before `reclaim` is moved from, so after bad_alloc
    // `reclaim` is intact.
    callback = Callback(std::move(reclaim));
  } catch (const std::bad_alloc&) {
    if (rcu_read_section_held()) throw;
    rcu_synchronize(domain);
    reclaim();
    return;
  }
  rcu_call(std::move(callback), domain);
}

}  // namespace cpuhp::rcu
