// SPDX-License-Identifier: MIT
// The state table of a Domain: slots, names, labels (the kernel's
// cpuhp_hp_states[] with cpuhp_reserve_state/cpuhp_store_callbacks).
//
// A slot goes kFree -> kReserved (reserve_state: name checked, callbacks
// stored, the slot taken so nothing else can claim it while its startups run)
// -> kInstalled (commit_state) -> kFree (release_state). Writers change both
// the entry (guarded by the writers' lock) and its index mirror (names and
// slots, guarded by index_mutex, read by the queries from any thread).
#pragma once

#include <string>
#include <vector>

#include "domain_impl.h"

namespace cpuhp {

// Reserves `id` (dynamic: the lowest free slot of `section`) for `entry`.
// Refuses an empty or used name, a full section, a bad or taken static id.
Result<StateId> reserve_state(Domain::Impl& im, StateId id, Section section, bool dynamic,
                              StateEntry entry) CPUHP_REQUIRES(im.writers);
void commit_state(Domain::Impl& im, StateId id) CPUHP_REQUIRES(im.writers);
void release_state(Domain::Impl& im, StateId id) CPUHP_REQUIRES(im.writers);

// A built-in state, installed at construction.
void install_builtin(Domain::Impl& im, StateId id, const char* name, StepCallback startup,
                     StepCallback teardown) CPUHP_REQUIRES(im.writers);

// "'name' (id)", or the bare id for an unnamed one. Any thread.
std::string state_label(const Domain::Impl& im, StateId id);

// The installed states, for Domain::states() / find_state(). Any thread.
std::vector<StateInfo> installed_states(const Domain::Impl& im);

// Whether the teardown of PREPARE state `id` may free what readers reach
// through the online bit: it is installed and has a teardown (a multi-instance
// state: and an instance; the notifier state: and a notifier, for DEAD).
inline bool prepare_teardown_frees(const Domain::Impl& im, StateId id)
    CPUHP_REQUIRES(im.writers) {
  const StateEntry& e = im.table[id];
  if (id <= kStateOffline || id >= kStateBringup || !e.installed()) return false;
  if (id == kStateNotifyPrepare) return !im.chain.empty();  // DEAD to deliver
  return e.multi ? (e.instance_teardown && !e.instances.empty())
                 : static_cast<bool>(e.teardown);
}
// Whether a down must wait a grace period after clearing the online bit: some
// PREPARE state's teardown may free.
bool prepare_teardowns_installed(const Domain::Impl& im) CPUHP_REQUIRES(im.writers);

}  // namespace cpuhp
