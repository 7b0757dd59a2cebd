// SPDX-License-Identifier: MIT
// The writers' lock and the entry checks of every public Domain call
// (src/writers_lock.h).
#include "writers_lock.h"

#include "cpuhp/diagnostics.h"
#include "cpuhp/rcu.h"
#include "domain_impl.h"
#include "state_table.h"
#include "strf.h"

namespace cpuhp {

using detail::strf;

// ------------------------------------------------------------ WritersMutex

void WritersMutex::lock() {
  mutex_.lock();
  owner_.store(detail::this_thread_token(), std::memory_order_relaxed);
}

void WritersMutex::unlock() {
  owner_.store(nullptr, std::memory_order_relaxed);
  mutex_.unlock();
}

void WritersMutex::assert_held(const char* who) const {
  if (!held_by_this_thread())
    detail::fatal("Domain",
                  "%s needs the writers' lock, and this thread does not hold it", who);
}

// ------------------------------------------------------------ contexts

const CallbackContext* callback_context(const Domain::Impl& im) noexcept {
  for (const CallbackContext* c = detail::tl_callback_context; c != nullptr; c = c->outer)
    if (c->domain == &im) return c;
  return nullptr;
}

// ------------------------------------------------------------ entry checks

Status check_entry(const Domain::Impl& im, const Entry& e) {
  using Lock = Entry::Lock;
  const bool held = im.writers.held_by_this_thread();
  if (e.lock == Lock::kTakesUnlessHeld && held) return {};  // nests; never blocks
  if (const CallbackContext* c = callback_context(im))
    return Error(
        Errc::kWouldDeadlock,
        strf("%s from inside a %s (CPU %u, state %s) would deadlock: this "
             "thread is running it for a transition or registration that "
             "holds the writers' lock; do it outside the %s, e.g. install "
             "states beforehand with setup_state_nocalls()",
             e.what, c->kind, c->cpu, state_label(im, c->state).c_str(), c->kind));
  if (e.lock == Lock::kHeldByScope && !held)
    return Error(Errc::kInvalidArgument,
                 strf("%s on a thread that does not hold the scope: a RegistrationScope "
                      "is used on the thread that called register_begin(), until done()",
                      e.what));
  if (e.lock != Lock::kHeldByScope && held)
    return Error(Errc::kWouldDeadlock,
                 strf("%s inside a register_begin() scope would deadlock: this thread "
                      "holds the writers' lock; call it through the RegistrationScope "
                      "instead",
                      e.what));
  // From here on the call takes the writers' lock, or runs callbacks under the
  // hotplug write lock: both wait for hotplug, which waits for read holders
  // and (a CPU going down) for an RCU grace period.
  if (e.lock == Lock::kHeldByScope && !e.runs_callbacks) return {};
  if (im.d.hotplug_lock().held_shared_by_this_thread()) {
    if (e.lock == Lock::kHeldByScope)
      return Error(Errc::kWouldDeadlock,
                   strf("%s while this thread holds the hotplug read lock "
                        "(cpus_read_lock) would deadlock: running the callbacks takes "
                        "the hotplug write lock; release the read lock first, or use "
                        "the _nocalls variant",
                        e.what));
    return Error(Errc::kWouldDeadlock,
                 strf("%s while this thread holds the hotplug read lock (cpus_read_lock) "
                      "would deadlock against a hotplug writer (the ABBA of "
                      "get_online_cpus(); register_cpu_notifier()); release it first, "
                      "and to register and initialise the online CPUs in one step use "
                      "register_begin()",
                      e.what));
  }
  if (rcu::rcu_read_section_held())
    return Error(Errc::kWouldDeadlock,
                 strf("%s inside an RCU read section would deadlock: taking a CPU down "
                      "waits for a grace period; leave the read section first",
                      e.what));
  return {};
}

// The analysis cannot follow a conditional acquire; the header states the
// contract (nothing held when refused) and the tests check it.
WritersLock::WritersLock(Domain::Impl& im,
                         const Entry& entry) CPUHP_NO_THREAD_SAFETY_ANALYSIS
    : writers_(im.writers),
      status_(check_entry(im, entry)) {
  if (!status_.ok()) return;
  if (entry.lock == Entry::Lock::kHeldByScope) return;
  if (entry.lock == Entry::Lock::kTakesUnlessHeld && writers_.held_by_this_thread())
    return;
  writers_.lock();
  locked_ = true;
}

WritersLock::~WritersLock() CPUHP_NO_THREAD_SAFETY_ANALYSIS {
  if (locked_) writers_.unlock();
}

}  // namespace cpuhp
