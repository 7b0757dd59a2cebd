// SPDX-License-Identifier: MIT
// The 2014 notifier API (cpuhp/notifier.h) as a layer on the state machine:
// two built-in states deliver the events (kStateNotifyPrepare: UP_PREPARE /
// UP_CANCELED / DEAD; kStateNotifyOnline: ONLINE / DOWN_PREPARE / DOWN_FAILED)
// and transition() delivers POST_DEAD once the hotplug write lock is dropped.
#pragma once

#include "domain_impl.h"

namespace cpuhp {

// Installs the two notifier states (at construction).
void install_notifier_states(Domain::Impl& im) CPUHP_REQUIRES(im.writers);

// POST_DEAD for `cpu`, run as a callback (re-entry refused, observer told).
void notify_post_dead(Domain::Impl& im, unsigned cpu, bool frozen)
    CPUHP_REQUIRES(im.writers);

// The no-lock variants (__register_cpu_notifier): the caller holds the lock.
Status register_notifier(Domain::Impl& im, NotifierBlock* nb) CPUHP_REQUIRES(im.writers);
Status unregister_notifier(Domain::Impl& im, NotifierBlock* nb)
    CPUHP_REQUIRES(im.writers);
bool notifier_registered(const Domain::Impl& im, const NotifierBlock* nb)
    CPUHP_REQUIRES(im.writers);

}  // namespace cpuhp
