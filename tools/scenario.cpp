#include "scenario.h"

#include <cerrno>
#include <new>

namespace cpuhp::tool {

Scenario::Scenario(unsigned cpus, unsigned online)
    : domain(cpus, online), slots(cpus), notifier_online(cpus) {}

Scenario::~Scenario() {
  if (notifier_registered) (void)domain.unregister_notifier(&notifier);
  if (counter_state >= 0) (void)domain.remove_state(counter_state);
}

Status Scenario::install() {
  auto state = domain.setup_state(
      Section::kPrepare, "demo:counter",
      [this](unsigned cpu) {
        auto* slot = new (std::nothrow) CounterSlot;
        if (slot == nullptr) return -ENOMEM;
        // Release: pairs with the readers' acquire load after they saw the
        // online bit (which bringup sets later, also with release).
        slots[cpu].store(slot, std::memory_order_release);
        return 0;
      },
      [this](unsigned cpu) {
        // A grace period has passed since the online bit was cleared: no
        // reader can still be incrementing this slot, so the fold is exact.
        CounterSlot* slot = slots[cpu].exchange(nullptr, std::memory_order_acq_rel);
        if (slot == nullptr) return 0;
        folded.fetch_add(slot->count.load(std::memory_order_relaxed),
                         std::memory_order_relaxed);
        slot->magic.store(CounterSlot::kPoison, std::memory_order_relaxed);
        delete slot;
        return 0;
      });
  if (!state.ok()) return state.error();
  counter_state = *state;

  // 2014 style: register_begin(), initialise the online CPUs, register with
  // the no-lock variant; no CPU can come or go in between.
  notifier.priority = 10;
  notifier.call = [this](NotifierBlock*, unsigned long action, unsigned cpu) {
    notifier_events.fetch_add(1, std::memory_order_relaxed);
    switch (action & ~kCpuTasksFrozen) {
      case kCpuOnline:
      case kCpuDownFailed:
        if (notifier_online[cpu].exchange(true)) pairing_violations.fetch_add(1);
        break;
      case kCpuDownPrepare:
        if (!notifier_online[cpu].exchange(false)) pairing_violations.fetch_add(1);
        break;
      case kCpuPostDead:
        post_dead_events.fetch_add(1, std::memory_order_relaxed);
        break;
      default:
        break;
    }
    return kNotifyOk;
  };
  auto scope = domain.register_begin();
  if (!scope.ok()) return scope.error();
  for (unsigned cpu : domain.online())
    notifier_online[cpu].store(domain.active().test(cpu));
  if (Status s = scope->register_notifier(&notifier); !s) return s;
  notifier_registered = true;
  return {};
}

}  // namespace cpuhp::tool
