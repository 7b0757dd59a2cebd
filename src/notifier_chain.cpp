// The 2014 notifier API as a layer on the state machine: two built-in states
// deliver the events (kStateNotifyPrepare: UP_PREPARE / UP_CANCELED / DEAD;
// kStateNotifyOnline: ONLINE / DOWN_PREPARE / DOWN_FAILED), and transition()
// delivers POST_DEAD once the hotplug write lock is dropped.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <exception>

#include "domain_impl.h"
#include "strf.h"

namespace cpuhp {

using detail::strf;

namespace {
unsigned long with_frozen(unsigned long action, bool frozen) {
  return frozen ? (action | kCpuTasksFrozen) : action;
}
// notifier_to_errno() reads a chain's answer as the kernel's __cpu_notify()
// does: NOTIFY_STOP stops the chain but is no refusal; NOTIFY_BAD and
// notifier_from_errno() are.
}  // namespace

int Domain::Impl::notify(unsigned long action, unsigned cpu, int limit, int* called) {
  int ret = kNotifyDone;
  int n = 0;
  for (NotifierBlock* nb : chain) {
    if (limit >= 0 && n >= limit) break;
    ++n;
    try {
      ret = nb->call ? nb->call(nb, action, cpu) : kNotifyDone;
    } catch (const std::exception&) {
      ret = notifier_from_errno(-ECANCELED);  // a throwing notifier refuses
    } catch (...) {
      ret = notifier_from_errno(-ECANCELED);
    }
    if (ret & kNotifyStopMask) break;
  }
  if (called != nullptr) *called = n;
  const unsigned long event = action & ~kCpuTasksFrozen;
  if (notifier_to_errno(ret) != 0 && event != kCpuUpPrepare && event != kCpuDownPrepare)
    std::fprintf(
        stderr,
        "cpuhp: a notifier refused event 0x%lx for CPU %u (error %d); only "
        "UP_PREPARE and DOWN_PREPARE can be refused, later notifiers were skipped "
        "as the kernel does\n",
        action, cpu, notifier_to_errno(ret));
  return ret;
}

void Domain::Impl::install_notifier_states() {
  StateEntry& prepare = table[kStateNotifyPrepare];
  prepare.name = "notify:prepare";
  prepare.installed = prepare.builtin = true;
  prepare.startup = [this](const Step& s) {
    int called = 0;
    const int err = notifier_to_errno(
        notify(with_frozen(kCpuUpPrepare, s.frozen), s.cpu, -1, &called));
    if (err == 0) return 0;
    // Those told before the one that refused learn the up is off.
    (void)notify(with_frozen(kCpuUpCanceled, s.frozen), s.cpu, called - 1, nullptr);
    return err;
  };
  prepare.teardown = [this](const Step& s) {
    // Undoing a failed up: UP_CANCELED. Otherwise the CPU is dead: the
    // online bit is clear and a grace period has passed.
    (void)notify(with_frozen(s.rollback ? kCpuUpCanceled : kCpuDead, s.frozen), s.cpu, -1,
                 nullptr);
    return 0;
  };

  StateEntry& online = table[kStateNotifyOnline];
  online.name = "notify:online";
  online.installed = online.builtin = true;
  online.teardown_may_veto = true;
  online.startup = [this](const Step& s) {
    // A rollback startup means a down was refused further on: DOWN_FAILED.
    (void)notify(with_frozen(s.rollback ? kCpuDownFailed : kCpuOnline, s.frozen), s.cpu,
                 -1, nullptr);
    return 0;
  };
  online.teardown = [this](const Step& s) {
    if (s.rollback)
      return 0;  // an up failed after ONLINE: cannot happen (states above cannot fail)
    int called = 0;
    const int err = notifier_to_errno(
        notify(with_frozen(kCpuDownPrepare, s.frozen), s.cpu, -1, &called));
    if (err == 0) return 0;
    (void)notify(with_frozen(kCpuDownFailed, s.frozen), s.cpu, called - 1, nullptr);
    return err;
  };
}

void Domain::Impl::notify_post_dead(unsigned cpu, bool frozen) {
  if (chain.empty()) return;
  const CallbackContext ctx{this, cpu, kStateOffline};
  const CallbackContext* outer = tl_callback_context;
  tl_callback_context = &ctx;  // POST_DEAD callbacks may not re-enter either
  (void)notify(with_frozen(kCpuPostDead, frozen), cpu, -1, nullptr);
  tl_callback_context = outer;
}

Status Domain::Impl::register_notifier(NotifierBlock* nb) {
  if (Status s = require_writers_held("register_notifier (no-lock variant)"); !s)
    return s;
  if (nb == nullptr) return Error(Errc::kInvalidArgument, "register_notifier(nullptr)");
  if (std::find(chain.begin(), chain.end(), nb) != chain.end())
    return Error(Errc::kBusy, strf("notifier %p (priority %d) is already registered",
                                   static_cast<void*>(nb), nb->priority));
  // A CPU stopped at notify:prepare is prepared but not online: a notifier
  // initialising "the online CPUs" would miss it, then get DEAD for it.
  for (unsigned cpu = 0; cpu < d.capacity(); ++cpu)
    if (cpu_state[cpu].load(std::memory_order_relaxed) == kStateNotifyPrepare)
      return Error(
          Errc::kBusy,
          strf("cannot register a CPU notifier while CPU %u is stopped at state %s "
               "(prepared, not online); bring it up or down first",
               cpu, state_label(kStateNotifyPrepare).c_str()));
  // After every notifier of the same or higher priority, as the kernel does.
  auto at = std::find_if(chain.begin(), chain.end(), [nb](const NotifierBlock* have) {
    return nb->priority > have->priority;
  });
  chain.insert(at, nb);
  return {};
}

Status Domain::Impl::unregister_notifier(NotifierBlock* nb) {
  if (Status s = require_writers_held("unregister_notifier (no-lock variant)"); !s)
    return s;
  auto it = std::find(chain.begin(), chain.end(), nb);
  if (it == chain.end())
    return Error(Errc::kNotFound,
                 strf("notifier %p is not registered", static_cast<void*>(nb)));
  chain.erase(it);
  return {};
}

Status Domain::register_notifier(NotifierBlock* nb) {
  if (Status s = impl_->lock_writers("register_notifier()"); !s) return s;
  Status result = impl_->register_notifier(nb);
  impl_->unlock_writers();
  return result;
}

Status Domain::unregister_notifier(NotifierBlock* nb) {
  if (Status s = impl_->lock_writers("unregister_notifier()"); !s) return s;
  Status result = impl_->unregister_notifier(nb);
  impl_->unlock_writers();
  return result;
}

}  // namespace cpuhp
