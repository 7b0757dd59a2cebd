// SPDX-License-Identifier: MIT
// The writers' lock of a Domain (the kernel's cpu_add_remove_lock) and the one
// place where a public call is checked against the context it is made from.
//
// Every public Domain call that changes CPUs, states, instances or notifiers
// enters through a WritersLock (domain_impl.h) built from an Entry that says
// what the call will do: take the writers' lock or use the one a
// register_begin() scope holds, and whether it runs callbacks (which takes
// the hotplug write lock). check_entry() refuses, with Errc::kWouldDeadlock
// and a message naming the way out, every call that would deadlock:
//
//   - from inside a callback or an observer of the same Domain (the thread
//     already holds the writers' lock for the transition or registration);
//   - taking the writers' lock on a thread that holds it (a scope);
//   - using a scope on a thread that does not hold it;
//   - taking the writers' lock or the hotplug write lock while this thread
//     holds the hotplug read lock (the ABBA of the 2014 mail);
//   - the same inside an RCU read section (a CPU going down waits for a
//     grace period with both locks held).
//
// Internal functions that need the lock say CPUHP_REQUIRES(im.writers) and
// call im.writers.assert_held() (the kernel's lockdep_assert_cpus_held()).
#pragma once

#include <atomic>

#include "cpuhp/detail/mutex.h"
#include "cpuhp/detail/thread_annotations.h"
#include "cpuhp/domain.h"
#include "cpuhp/error.h"

namespace cpuhp {

struct CallbackContext;
namespace detail {
inline thread_local const CallbackContext* tl_callback_context = nullptr;
}  // namespace detail

class CPUHP_CAPABILITY("mutex") WritersMutex {
 public:
  void lock() CPUHP_ACQUIRE();
  void unlock() CPUHP_RELEASE();
  // Relaxed: a thread compares the owner with its own token, which only it
  // stores, so it reads its own latest store or someone else's token.
  bool held_by_this_thread() const noexcept {
    return owner_.load(std::memory_order_relaxed) == detail::this_thread_token();
  }
  // lockdep_assert_cpus_held(): a fatal diagnostic naming `who` unless the
  // calling thread holds the lock.
  void assert_held(const char* who) const CPUHP_ASSERT_CAPABILITY(this);

 private:
  detail::Mutex mutex_;
  std::atomic<const void*> owner_{nullptr};
};

// What the calling thread is running inside a Domain (innermost first), so
// that a call back into the same Domain is refused instead of deadlocking.
struct CallbackContext {
  const Domain::Impl* domain;
  const char* kind;  // "hotplug callback", "observer", "POST_DEAD notifier callback"
  unsigned cpu;
  StateId state;
  const CallbackContext* outer;
};

// RAII: marks the calling thread as running `kind` for (cpu, state).
class InCallback {
 public:
  InCallback(const Domain::Impl& im, const char* kind, unsigned cpu, StateId state)
      : context_{&im, kind, cpu, state, detail::tl_callback_context} {
    detail::tl_callback_context = &context_;
  }
  ~InCallback() { detail::tl_callback_context = context_.outer; }
  InCallback(const InCallback&) = delete;
  InCallback& operator=(const InCallback&) = delete;

 private:
  CallbackContext context_;
};

// The innermost callback context of `im` on this thread, or nullptr.
const CallbackContext* callback_context(const Domain::Impl& im) noexcept;

struct Entry {
  enum class Lock {
    kTakes,            // takes the writers' lock
    kHeldByScope,      // a RegistrationScope method: this thread holds it already
    kTakesUnlessHeld,  // disable/enable_hotplug: nests where this thread holds it
  };
  const char* what;  // the call as the user wrote it: "setup_state()"
  Lock lock;
  bool runs_callbacks;  // takes the hotplug write lock around callbacks
};

// Why `entry` may not be made from here, or OK. Any thread.
Status check_entry(const Domain::Impl& im, const Entry& entry);

}  // namespace cpuhp
