// SPDX-License-Identifier: MIT
// The state table of a Domain (src/state_table.h).
#include "state_table.h"

#include "strf.h"

namespace cpuhp {

using detail::strf;

namespace {

bool in_static_range(StateId id) {
  return (id >= kStatePrepareFirst && id <= kStatePrepareLast) ||
         (id >= kStateOnlineFirst && id <= kStateOnlineLast);
}

// Writes the entry's slot and mirrors it (and the name) into the index.
void set_slot(Domain::Impl& im, StateId id, SlotState slot) CPUHP_REQUIRES(im.writers) {
  StateEntry& e = im.table[id];
  e.slot = slot;
  detail::MutexLock guard(im.index_mutex);
  StateIndexEntry& x = im.index[id];
  x.slot = slot;
  x.name = slot == SlotState::kFree ? std::string() : e.name;
  x.multi = e.multi;
  x.builtin = e.builtin;
}

}  // namespace

Result<StateId> reserve_state(Domain::Impl& im, StateId id, Section section, bool dynamic,
                              StateEntry entry) {
  im.writers.assert_held("reserve_state()");
  if (entry.name.empty())
    return Error(Errc::kInvalidArgument, "a state needs a non-empty name");
  for (StateId s = 0; s < kNumStates; ++s)
    if (im.table[s].slot != SlotState::kFree && im.table[s].name == entry.name)
      return Error(Errc::kBusy, strf("state name '%s' is already used by state %d",
                                     entry.name.c_str(), s));
  if (dynamic) {
    const bool prepare = section == Section::kPrepare;
    const StateId first = prepare ? kStatePrepareDyn : kStateOnlineDyn;
    const StateId last = prepare ? kStatePrepareDynEnd : kStateOnlineDynEnd;
    id = -1;
    for (StateId s = first; s <= last && id < 0; ++s)
      if (im.table[s].slot == SlotState::kFree) id = s;
    if (id < 0)
      return Error(
          Errc::kBusy,
          strf("cannot install state '%s': all %d dynamic %s slots are in use",
               entry.name.c_str(), last - first + 1, prepare ? "PREPARE" : "ONLINE"));
  } else {
    if (!in_static_range(id))
      return Error(
          Errc::kInvalidArgument,
          strf("cannot install state '%s' at %d: static states are %d-%d (PREPARE) "
               "and %d-%d (ONLINE); use a Section for a dynamic slot",
               entry.name.c_str(), id, kStatePrepareFirst, kStatePrepareLast,
               kStateOnlineFirst, kStateOnlineLast));
    if (im.table[id].slot != SlotState::kFree)
      return Error(Errc::kBusy,
                   strf("cannot install state '%s' at %d: state %s is there",
                        entry.name.c_str(), id, state_label(im, id).c_str()));
  }
  im.table[id] = std::move(entry);
  set_slot(im, id, SlotState::kReserved);
  return id;
}

void commit_state(Domain::Impl& im, StateId id) {
  im.writers.assert_held("commit_state()");
  set_slot(im, id, SlotState::kInstalled);
}

void release_state(Domain::Impl& im, StateId id) {
  im.writers.assert_held("release_state()");
  set_slot(im, id, SlotState::kFree);
  im.table[id] = StateEntry{};
  // A failure injected into this state must not hit a later state at this id.
  std::erase_if(im.injected, [id](const auto& inj) { return inj.second == id; });
}

void install_builtin(Domain::Impl& im, StateId id, const char* name, StepCallback startup,
                     StepCallback teardown) {
  StateEntry& e = im.table[id];
  e.name = name;
  e.builtin = true;
  e.startup = std::move(startup);
  e.teardown = std::move(teardown);
  set_slot(im, id, SlotState::kInstalled);
}

std::string state_label(const Domain::Impl& im, StateId id) {
  if (id < 0 || id >= kNumStates) return strf("%d (no such state)", id);
  detail::MutexLock guard(im.index_mutex);
  const StateIndexEntry& x = im.index[id];
  if (x.name.empty()) return strf("%d", id);
  return strf("'%s' (%d)", x.name.c_str(), id);
}

std::vector<StateInfo> installed_states(const Domain::Impl& im) {
  detail::MutexLock guard(im.index_mutex);
  std::vector<StateInfo> out;
  for (StateId s = 0; s < kNumStates; ++s) {
    const StateIndexEntry& x = im.index[s];
    if (x.slot == SlotState::kInstalled)
      out.push_back(StateInfo{s, x.name, x.multi, x.builtin});
  }
  return out;
}

bool prepare_teardowns_installed(const Domain::Impl& im) {
  for (StateId id = kStatePrepareFirst; id < kStateBringup; ++id)
    if (prepare_teardown_frees(im, id)) return true;
  return false;
}

}  // namespace cpuhp
