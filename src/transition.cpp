// SPDX-License-Identifier: MIT
// Moving one CPU between states, with rollback (src/transition.h).
#include "transition.h"

#include <algorithm>

#include "callback.h"
#include "cpuhp/rcu.h"
#include "notifier_chain.h"
#include "state_table.h"
#include "strf.h"

namespace cpuhp {

using detail::strf;

namespace {

struct Stop {
  int rc = 0;
  StateId at = kStateOffline;      // where the CPU is when the walk stops
  StateId failed = kStateOffline;  // the state whose callback failed
  std::string why;
};

// Walks `cpu` from `from` to `to`. Going up runs the startup of each state
// above `from` up to `to`; going down the teardown of each state from `from`
// down to just above `to`. Stops at the first failure (a rollback walk never
// fails: invoke_callback() ignores what a rollback reports).
Stop walk(Domain::Impl& im, unsigned cpu, StateId from, StateId to, bool frozen,
          bool rollback) CPUHP_REQUIRES(im.writers) {
  const bool up = to > from;
  StateId at = from;
  while (at != to) {
    const StateId s = up ? at + 1 : at;  // the state whose callback runs
    if (im.table[s].installed()) {
      Stop stop;
      const Call call{cpu, s, up, rollback, frozen, nullptr};
      if ((stop.rc = invoke_callback(im, call, &stop.why)) != 0) {
        stop.at = at;
        stop.failed = s;
        return stop;
      }
    }
    at = up ? at + 1 : at - 1;
    im.cpu_state[cpu].store(at, std::memory_order_relaxed);
  }
  Stop done;
  done.at = at;
  return done;
}

}  // namespace

namespace {
// One grace period covers every CPU's debt.
void grace_period(Domain::Impl& im) CPUHP_REQUIRES(im.writers) {
  rcu::rcu_synchronize();
  std::fill(im.grace_period_owed.begin(), im.grace_period_owed.end(), 0);
}
}  // namespace

void clear_online_bit(Domain::Impl& im, unsigned cpu) {
  im.online_mask().clear(cpu);
  // The grace period protects what PREPARE teardowns free; without any,
  // readers that saw the bit have nothing to lose yet (domain.h, Masks).
  if (prepare_teardowns_installed(im)) {
    grace_period(im);
  } else {
    im.grace_period_owed[cpu] = 1;
  }
}

void pay_grace_period_owed(Domain::Impl& im, unsigned cpu) {
  if (im.grace_period_owed[cpu] != 0 && !im.d.cpu_online(cpu)) grace_period(im);
}

Status transition(Domain::Impl& im, unsigned cpu, StateId target, bool frozen) {
  im.writers.assert_held("transition()");
  const StateId from = im.cpu_state[cpu].load(std::memory_order_relaxed);
  const bool up = target > from;
  Status status;
  {
    // Callbacks run with the hotplug lock held for writing: readers that need
    // a stable mask wait; the callbacks themselves may take it for reading.
    WriteLock hotplug(im.d.hotplug_lock());
    Stop stop = walk(im, cpu, from, target, frozen, /*rollback=*/false);
    if (stop.rc != 0) {
      (void)walk(im, cpu, stop.at, from, frozen, /*rollback=*/true);
      status = up ? Error(Errc::kCallbackFailed,
                          strf("bringing CPU %u up: startup of state %s failed: %s; "
                               "rolled back to state %s",
                               cpu, state_label(im, stop.failed).c_str(),
                               stop.why.c_str(), state_label(im, from).c_str()),
                          stop.rc)
                  : Error(Errc::kCallbackFailed,
                          strf("taking CPU %u down: state %s refused: %s; CPU is back at "
                               "state %s",
                               cpu, state_label(im, stop.failed).c_str(),
                               stop.why.c_str(), state_label(im, from).c_str()),
                          stop.rc);
    }
  }
  // POST_DEAD: hotplug write lock dropped, writers' lock still held.
  if (status.ok() && target < kStateNotifyPrepare && from >= kStateNotifyPrepare)
    notify_post_dead(im, cpu, frozen);
  return status;
}

}  // namespace cpuhp
