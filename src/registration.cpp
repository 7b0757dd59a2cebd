// SPDX-License-Identifier: MIT
// Installing and removing states and instances (src/registration.h).
#include "registration.h"

#include <algorithm>

#include "callback.h"
#include "state_table.h"
#include "strf.h"

namespace cpuhp {

using detail::strf;

namespace {

struct Issued {
  int rc = 0;
  unsigned failed_cpu = 0;
  std::size_t rolled_back = 0;  // CPUs undone after the failure
  std::string why;
};

// The kernel's cpuhp_rollback_install: the teardown of `id` (or of one
// instance) on the CPUs whose startup succeeded, last first.
std::size_t rollback_install(Domain::Impl& im, StateId id, void* instance,
                             const std::vector<unsigned>& done)
    CPUHP_REQUIRES(im.writers) {
  for (auto it = done.rbegin(); it != done.rend(); ++it)
    (void)invoke_callback(im, Call{*it, id, false, true, false, instance}, nullptr);
  return done.size();
}

// The kernel's cpuhp_issue_call over every CPU at or past `id`: startups in
// ascending CPU order (a failure rolls back the CPUs done and stops),
// teardowns in descending order (they cannot fail). With the hotplug write
// lock held, as in a transition.
Issued issue_calls(Domain::Impl& im, StateId id, void* instance, bool startup)
    CPUHP_REQUIRES(im.writers) {
  WriteLock hotplug(im.d.hotplug_lock());
  Issued out;
  const unsigned n = im.d.capacity();
  std::vector<unsigned> done;
  for (unsigned i = 0; i < n; ++i) {
    const unsigned cpu = startup ? i : n - 1 - i;
    if (im.cpu_state[cpu].load(std::memory_order_relaxed) < id) continue;
    const Call call{cpu, id, startup, false, false, instance};
    if ((out.rc = invoke_callback(im, call, &out.why)) != 0) {
      out.failed_cpu = cpu;
      out.rolled_back = rollback_install(im, id, instance, done);
      return out;
    }
    done.push_back(cpu);
  }
  return out;
}

bool installed(const Domain::Impl& im, StateId id) CPUHP_REQUIRES(im.writers) {
  return id >= 0 && id < kNumStates && im.table[id].installed();
}

}  // namespace

Result<StateId> install_state(Domain::Impl& im, StateId id, Section section, bool dynamic,
                              StateEntry entry, bool calls) {
  im.writers.assert_held("install_state()");
  const bool has_startup = static_cast<bool>(entry.startup);
  Result<StateId> reserved = reserve_state(im, id, section, dynamic, std::move(entry));
  if (!reserved) return reserved;
  id = *reserved;
  if (calls && has_startup) {
    Issued r = issue_calls(im, id, nullptr, /*startup=*/true);
    if (r.rc != 0) {
      const std::string name = im.table[id].name;
      release_state(im, id);
      return Error(Errc::kCallbackFailed,
                   strf("installing state '%s' (%d): startup failed on CPU %u: %s; "
                        "rolled back on %zu CPU(s), state not installed",
                        name.c_str(), id, r.failed_cpu, r.why.c_str(), r.rolled_back),
                   r.rc);
    }
  }
  commit_state(im, id);
  return id;
}

Status remove_state(Domain::Impl& im, StateId id, bool calls) {
  im.writers.assert_held("remove_state()");
  if (!installed(im, id))
    return Error(Errc::kNotFound,
                 strf("cannot remove state %d: no such state installed", id));
  const StateEntry& e = im.table[id];
  if (e.builtin)
    return Error(Errc::kInvalidArgument,
                 strf("cannot remove built-in state %s", state_label(im, id).c_str()));
  const bool has_teardown =
      e.multi ? (e.instance_teardown && !e.instances.empty()) : bool(e.teardown);
  if (calls && has_teardown) (void)issue_calls(im, id, nullptr, /*startup=*/false);
  release_state(im, id);
  return {};
}

Status add_instance(Domain::Impl& im, StateId id, void* instance, bool calls) {
  im.writers.assert_held("add_instance()");
  if (!installed(im, id) || !im.table[id].multi)
    return Error(
        Errc::kNotFound,
        strf("cannot add an instance to state %d: no multi-instance state there", id));
  if (instance == nullptr)
    return Error(Errc::kInvalidArgument, strf("cannot add a null instance to state %s",
                                              state_label(im, id).c_str()));
  const std::vector<void*>& have = im.table[id].instances;
  if (std::find(have.begin(), have.end(), instance) != have.end())
    return Error(Errc::kBusy, strf("instance %p is already added to state %s", instance,
                                   state_label(im, id).c_str()));
  if (calls && im.table[id].instance_startup) {
    Issued r = issue_calls(im, id, instance, /*startup=*/true);
    if (r.rc != 0)
      return Error(Errc::kCallbackFailed,
                   strf("adding instance %p to state %s: startup failed on CPU %u: %s; "
                        "rolled back on %zu CPU(s), instance not added",
                        instance, state_label(im, id).c_str(), r.failed_cpu,
                        r.why.c_str(), r.rolled_back),
                   r.rc);
  }
  im.table[id].instances.push_back(instance);
  return {};
}

Status remove_instance(Domain::Impl& im, StateId id, void* instance, bool calls) {
  im.writers.assert_held("remove_instance()");
  if (!installed(im, id) || !im.table[id].multi)
    return Error(
        Errc::kNotFound,
        strf("cannot remove an instance from state %d: no multi-instance state there",
             id));
  std::vector<void*>& have = im.table[id].instances;
  if (std::find(have.begin(), have.end(), instance) == have.end())
    return Error(Errc::kNotFound, strf("instance %p is not added to state %s", instance,
                                       state_label(im, id).c_str()));
  if (calls && im.table[id].instance_teardown)
    (void)issue_calls(im, id, instance, /*startup=*/false);
  std::erase(have, instance);
  return {};
}

}  // namespace cpuhp
