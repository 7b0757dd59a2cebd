// SPDX-License-Identifier: MIT
// The 2014 notifiers as two built-in states plus POST_DEAD (src/notifier_chain.h).
#include "notifier_chain.h"

#include <algorithm>
#include <cerrno>

#include "callback.h"
#include "cpuhp/diagnostics.h"
#include "state_table.h"
#include "strf.h"

namespace cpuhp {

using detail::strf;

namespace {

unsigned long with_frozen(unsigned long action, bool frozen) {
  return frozen ? (action | kCpuTasksFrozen) : action;
}

// __cpu_notify: calls up to `limit` notifiers (all if negative), stops at a
// NOTIFY_STOP_MASK answer; *called gets how many were called. The answer is
// read as the kernel's notifier_to_errno() does: NOTIFY_STOP stops the chain
// but is no refusal; NOTIFY_BAD and notifier_from_errno() are. A throwing
// notifier refuses with its errno (call_catching()).
int notify(Domain::Impl& im, unsigned long action, unsigned cpu, int limit, int* called)
    CPUHP_REQUIRES(im.writers) {
  int ret = kNotifyDone;
  int n = 0;
  for (NotifierBlock* nb : im.chain) {
    if (limit >= 0 && n >= limit) break;
    ++n;
    if (!nb->call) {
      ret = kNotifyDone;
      continue;
    }
    int answer = kNotifyDone;
    const int thrown = call_catching(
        [&] {
          answer = nb->call(nb, action, cpu);
          return 0;
        },
        nullptr);
    ret = thrown != 0 ? notifier_from_errno(thrown) : answer;
    if (ret & kNotifyStopMask) break;
  }
  if (called != nullptr) *called = n;
  const unsigned long event = action & ~kCpuTasksFrozen;
  if (notifier_to_errno(ret) != 0 && event != kCpuUpPrepare && event != kCpuDownPrepare)
    detail::warn("Domain",
                 "a notifier refused event 0x%lx for CPU %u (error %d); only UP_PREPARE "
                 "and DOWN_PREPARE can be refused, later notifiers were skipped as the "
                 "kernel does",
                 action, cpu, notifier_to_errno(ret));
  return ret;
}

}  // namespace

void install_notifier_states(Domain::Impl& im) {
  Domain::Impl* self = &im;
  install_builtin(
      im, kStateNotifyPrepare, "notify:prepare",
      [self](const Call& c) CPUHP_NO_THREAD_SAFETY_ANALYSIS {
        int called = 0;
        const int err = notifier_to_errno(
            notify(*self, with_frozen(kCpuUpPrepare, c.frozen), c.cpu, -1, &called));
        if (err == 0) return 0;
        // Those told before the one that refused learn the up is off.
        (void)notify(*self, with_frozen(kCpuUpCanceled, c.frozen), c.cpu, called - 1,
                     nullptr);
        return err;
      },
      [self](const Call& c) CPUHP_NO_THREAD_SAFETY_ANALYSIS {
        // Undoing a failed up: UP_CANCELED. Otherwise the CPU is dead: the
        // online bit is clear and a grace period has passed.
        (void)notify(*self, with_frozen(c.rollback ? kCpuUpCanceled : kCpuDead, c.frozen),
                     c.cpu, -1, nullptr);
        return 0;
      });
  install_builtin(
      im, kStateNotifyOnline, "notify:online",
      [self](const Call& c) CPUHP_NO_THREAD_SAFETY_ANALYSIS {
        // A rollback startup means a down was refused further on: DOWN_FAILED.
        (void)notify(*self,
                     with_frozen(c.rollback ? kCpuDownFailed : kCpuOnline, c.frozen),
                     c.cpu, -1, nullptr);
        return 0;
      },
      [self](const Call& c) CPUHP_NO_THREAD_SAFETY_ANALYSIS {
        if (c.rollback) return 0;  // an up failed above ONLINE: cannot happen
        int called = 0;
        const int err = notifier_to_errno(
            notify(*self, with_frozen(kCpuDownPrepare, c.frozen), c.cpu, -1, &called));
        if (err == 0) return 0;
        (void)notify(*self, with_frozen(kCpuDownFailed, c.frozen), c.cpu, called - 1,
                     nullptr);
        return err;
      });
  im.table[kStateNotifyOnline].teardown_may_veto = true;
}

void notify_post_dead(Domain::Impl& im, unsigned cpu, bool frozen) {
  if (im.chain.empty()) return;
  static const std::string name = "notify:post_dead";
  const Call call{cpu, kStateOffline, false, false, frozen, nullptr};
  (void)run_guarded(
      im, call, "POST_DEAD notifier callback", name,
      [&]() CPUHP_NO_THREAD_SAFETY_ANALYSIS {
        (void)notify(im, with_frozen(kCpuPostDead, frozen), cpu, -1, nullptr);
        return 0;
      },
      nullptr);
}

Status register_notifier(Domain::Impl& im, NotifierBlock* nb) {
  im.writers.assert_held("register_notifier()");
  if (nb == nullptr) return Error(Errc::kInvalidArgument, "register_notifier(nullptr)");
  if (notifier_registered(im, nb))
    return Error(Errc::kBusy, strf("notifier %p (priority %d) is already registered",
                                   static_cast<void*>(nb), nb->priority));
  // A CPU stopped at notify:prepare is prepared but not online: a notifier
  // initialising "the online CPUs" would miss it, then get DEAD for it.
  for (unsigned cpu = 0; cpu < im.d.capacity(); ++cpu)
    if (im.cpu_state[cpu].load(std::memory_order_relaxed) == kStateNotifyPrepare)
      return Error(
          Errc::kBusy,
          strf("cannot register a CPU notifier while CPU %u is stopped at state %s "
               "(prepared, not online); bring it up or down first",
               cpu, state_label(im, kStateNotifyPrepare).c_str()));
  // After every notifier of the same or higher priority, as the kernel does.
  auto at = std::find_if(
      im.chain.begin(), im.chain.end(),
      [nb](const NotifierBlock* have) { return nb->priority > have->priority; });
  im.chain.insert(at, nb);
  return {};
}

Status unregister_notifier(Domain::Impl& im, NotifierBlock* nb) {
  im.writers.assert_held("unregister_notifier()");
  auto it = std::find(im.chain.begin(), im.chain.end(), nb);
  if (it == im.chain.end())
    return Error(Errc::kNotFound,
                 strf("notifier %p is not registered", static_cast<void*>(nb)));
  im.chain.erase(it);
  return {};
}

bool notifier_registered(const Domain::Impl& im, const NotifierBlock* nb) {
  return std::find(im.chain.begin(), im.chain.end(), nb) != im.chain.end();
}

}  // namespace cpuhp
