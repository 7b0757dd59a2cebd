// SPDX-License-Identifier: MIT
// Installing and removing states and instances of a Domain (the kernel's
// __cpuhp_setup_state_cpuslocked, __cpuhp_state_add_instance_cpuslocked,
// cpuhp_state_remove_instance, __cpuhp_remove_state_cpuslocked).
//
// All of it runs with the writers' lock held, which is what makes "run the
// startup on the CPUs already there, then install" one step hotplug cannot
// interleave with. Callbacks run with the hotplug write lock held too, as in
// a transition (the caller's entry check made sure this thread holds no read
// lock). On failure nothing is left changed.
//
// The teardowns run here are not a CPU going down: a PREPARE teardown run by
// remove_state(), remove_instance() or the rollback of a failed install may
// find the CPU online, its online bit set, and RCU readers still holding what
// the startup published (domain.h, "Who waits for readers").
#pragma once

#include "domain_impl.h"

namespace cpuhp {

// Reserves a slot for `entry` (dynamic: in `section`; else at `id`), runs its
// startup on every CPU at or past it if `calls`, and installs it. A failing
// startup rolls back the CPUs done (teardowns) and frees the slot.
Result<StateId> install_state(Domain::Impl& im, StateId id, Section section, bool dynamic,
                              StateEntry entry, bool calls) CPUHP_REQUIRES(im.writers);
// Runs the teardown on every CPU at or past the state if `calls`, then frees it.
Status remove_state(Domain::Impl& im, StateId id, bool calls) CPUHP_REQUIRES(im.writers);
Status add_instance(Domain::Impl& im, StateId id, void* instance, bool calls)
    CPUHP_REQUIRES(im.writers);
Status remove_instance(Domain::Impl& im, StateId id, void* instance, bool calls)
    CPUHP_REQUIRES(im.writers);

}  // namespace cpuhp
