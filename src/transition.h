// SPDX-License-Identifier: MIT
// Moving one CPU of a Domain between states (the kernel's cpuhp_up_callbacks /
// cpuhp_down_callbacks and their undo), and the POST_DEAD that follows a down.
#pragma once

#include "domain_impl.h"

namespace cpuhp {

// Walks `cpu` from its state to `target`, one state at a time, running the
// startups (up) or teardowns (down) of the installed states in between with
// the hotplug write lock held, and storing the CPU's state after each. If a
// callback fails, walks back to where it started (rollback: the opposite
// callbacks, failures reported and ignored) and returns an error naming the
// CPU, the state and the reason. After a down past the notifier layer,
// delivers POST_DEAD with the hotplug write lock dropped.
Status transition(Domain::Impl& im, unsigned cpu, StateId target, bool frozen)
    CPUHP_REQUIRES(im.writers);

// The online bit's RCU protocol (Linus, 2013: clear the bit, wait a grace
// period, then free). Clears `cpu`'s bit; waits for a grace period if a
// PREPARE teardown (or a notifier, for DEAD) will free what readers reach
// through it, else only records that the CPU is owed one.
void clear_online_bit(Domain::Impl& im, unsigned cpu) CPUHP_REQUIRES(im.writers);
// Before a PREPARE teardown: if `cpu`'s bit is clear and the grace period
// after clearing it was skipped, wait for it now. A reader that saw the CPU
// online before it went down may still be reading, and may have found data a
// PREPARE startup published for the CPU since.
void pay_grace_period_owed(Domain::Impl& im, unsigned cpu) CPUHP_REQUIRES(im.writers);

}  // namespace cpuhp
