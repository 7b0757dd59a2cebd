// Domain: installing and removing states and instances, and the
// register_begin() scope. All of it runs under the writers' lock, which is
// what makes "run startup on the CPUs already there, then install" one step
// that hotplug cannot interleave with.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <exception>

#include "domain_impl.h"
#include "strf.h"

namespace cpuhp {

using detail::strf;

namespace {

bool in_static_range(StateId id) {
  return (id >= kStatePrepareFirst && id <= kStatePrepareLast) ||
         (id >= kStateOnlineFirst && id <= kStateOnlineLast);
}

StepCallback wrap(StateCallback cb) {
  if (!cb) return nullptr;
  return [cb = std::move(cb)](const Step& s) { return cb(s.cpu); };
}

StateEntry single_entry(std::string name, StateCallback startup, StateCallback teardown) {
  StateEntry e;
  e.name = std::move(name);
  e.startup = wrap(std::move(startup));
  e.teardown = wrap(std::move(teardown));
  return e;
}

}  // namespace

Result<StateId> Domain::Impl::install(StateId id, Section section, bool dynamic,
                                      StateEntry entry, bool calls) {
  if (entry.name.empty())
    return Error(Errc::kInvalidArgument, "a state needs a non-empty name");
  for (StateId s = 0; s < kNumStates; ++s)
    if (table[s].installed && table[s].name == entry.name)
      return Error(Errc::kBusy, strf("state name '%s' is already used by state %d",
                                     entry.name.c_str(), s));
  if (dynamic) {
    const StateId first =
        section == Section::kPrepare ? kStatePrepareDyn : kStateOnlineDyn;
    const StateId last =
        section == Section::kPrepare ? kStatePrepareDynEnd : kStateOnlineDynEnd;
    id = -1;
    for (StateId s = first; s <= last && id < 0; ++s)
      if (!table[s].installed) id = s;
    if (id < 0)
      return Error(Errc::kBusy,
                   strf("cannot install state '%s': all %d dynamic %s slots are in use",
                        entry.name.c_str(), last - first + 1,
                        section == Section::kPrepare ? "PREPARE" : "ONLINE"));
  } else {
    if (!in_static_range(id))
      return Error(
          Errc::kInvalidArgument,
          strf("cannot install state '%s' at %d: static states are %d-%d (PREPARE) "
               "and %d-%d (ONLINE); use a Section for a dynamic slot",
               entry.name.c_str(), id, kStatePrepareFirst, kStatePrepareLast,
               kStateOnlineFirst, kStateOnlineLast));
    if (table[id].installed)
      return Error(Errc::kBusy, strf("cannot install state '%s' at %d: state %s is there",
                                     entry.name.c_str(), id, state_label(id).c_str()));
  }

  StateEntry& slot = table[id];
  {
    std::lock_guard table_guard(table_mutex);
    slot = std::move(entry);  // not yet installed: transitions cannot run meanwhile
  }
  if (calls && slot.startup) {
    // As in a transition: readers that need a stable view wait, and the
    // callbacks may take the hotplug read lock.
    WriteLock hotplug(d.hotplug_lock());
    std::vector<unsigned> done;
    for (unsigned cpu = 0; cpu < d.capacity(); ++cpu) {
      if (cpu_state[cpu].load(std::memory_order_relaxed) < id) continue;
      std::string why;
      if (const int rc =
              invoke(id, cpu, /*startup=*/true, /*rollback=*/false, false, &why);
          rc != 0) {
        for (auto it = done.rbegin(); it != done.rend(); ++it)
          (void)invoke(id, *it, /*startup=*/false, /*rollback=*/true, false, nullptr);
        const std::string name = slot.name;
        std::lock_guard table_guard(table_mutex);
        slot = StateEntry{};
        return Error(
            Errc::kCallbackFailed,
            strf("installing state '%s' (%d): startup failed on CPU %u: %s; rolled "
                 "back on %zu CPU(s), state not installed",
                 name.c_str(), id, cpu, why.c_str(), done.size()),
            rc);
      }
      done.push_back(cpu);
    }
  }
  std::lock_guard table_guard(table_mutex);
  slot.installed = true;
  return id;
}

Status Domain::Impl::uninstall(StateId id, bool calls) {
  if (id < 0 || id >= kNumStates || !table[id].installed)
    return Error(Errc::kNotFound,
                 strf("cannot remove state %d: no such state installed", id));
  if (table[id].builtin)
    return Error(Errc::kInvalidArgument,
                 strf("cannot remove built-in state %s", state_label(id).c_str()));
  if (calls && table[id].teardown) {
    WriteLock hotplug(d.hotplug_lock());
    for (unsigned cpu = d.capacity(); cpu-- > 0;)
      if (cpu_state[cpu].load(std::memory_order_relaxed) >= id)
        (void)invoke(id, cpu, /*startup=*/false, /*rollback=*/false, false, nullptr);
  }
  {
    std::lock_guard table_guard(table_mutex);
    table[id] = StateEntry{};
  }
  // A failure injected into this state must not hit a later state at this id.
  std::erase_if(injected, [id](const auto& inj) { return inj.second == id; });
  return {};
}

// ------------------------------------------------------------ multi-instance

namespace {

// Teardowns cannot fail: one instance's failure must not skip the others.
void teardown_one_instance(StateEntry& st, unsigned cpu, std::size_t i) {
  if (!st.instance_teardown) return;
  int rc = 0;
  std::string why;
  try {
    rc = st.instance_teardown(cpu, st.instances[i]);
  } catch (const std::exception& e) {
    rc = -ECANCELED;
    why = e.what();
  } catch (...) {
    rc = -ECANCELED;
  }
  if (rc != 0)
    std::fprintf(
        stderr,
        "cpuhp: teardown of instance %p of state '%s' on CPU %u failed (%d%s%s); "
        "ignored (a teardown cannot fail)\n",
        st.instances[i], st.name.c_str(), cpu, rc, why.empty() ? "" : ": ", why.c_str());
}

// The state's callbacks for a transition: every instance in turn; a failing
// instance startup tears the ones before it down again on that CPU.
StateEntry multi_entry(Domain::Impl* im, std::string name, InstanceCallback up,
                       InstanceCallback down) {
  StateEntry e;
  e.name = std::move(name);
  e.multi = true;
  e.instance_startup = std::move(up);
  e.instance_teardown = std::move(down);
  if (e.instance_startup)
    e.startup = [im](const Step& s) {
      StateEntry& st = im->table[s.state];
      auto roll_back_before = [&](std::size_t failed) {
        while (failed-- > 0) teardown_one_instance(st, s.cpu, failed);
      };
      for (std::size_t i = 0; i < st.instances.size(); ++i) {
        int rc;
        try {
          rc = st.instance_startup(s.cpu, st.instances[i]);
        } catch (...) {
          roll_back_before(i);
          throw;  // invoke() reports it, with its message
        }
        if (rc != 0) {
          roll_back_before(i);
          return rc;
        }
      }
      return 0;
    };
  if (e.instance_teardown)
    e.teardown = [im](const Step& s) {
      StateEntry& st = im->table[s.state];
      for (std::size_t i = st.instances.size(); i-- > 0;)
        teardown_one_instance(st, s.cpu, i);
      return 0;
    };
  return e;
}

}  // namespace

Status Domain::Impl::add_instance(StateId id, void* instance, bool calls) {
  if (id < 0 || id >= kNumStates || !table[id].installed || !table[id].multi)
    return Error(
        Errc::kNotFound,
        strf("cannot add an instance to state %d: no multi-instance state there", id));
  StateEntry& st = table[id];
  if (instance == nullptr)
    return Error(Errc::kInvalidArgument,
                 strf("cannot add a null instance to state %s", state_label(id).c_str()));
  for (void* have : st.instances)
    if (have == instance)
      return Error(Errc::kBusy, strf("instance %p is already added to state %s", instance,
                                     state_label(id).c_str()));
  if (calls && st.instance_startup) {
    WriteLock hotplug(d.hotplug_lock());
    std::vector<unsigned> done;
    for (unsigned cpu = 0; cpu < d.capacity(); ++cpu) {
      if (cpu_state[cpu].load(std::memory_order_relaxed) < id) continue;
      std::string why;
      if (const int rc = call_guarded(
              id, cpu, true, false, [&] { return st.instance_startup(cpu, instance); },
              &why);
          rc != 0) {
        for (auto it = done.rbegin(); it != done.rend(); ++it)
          if (st.instance_teardown)
            (void)call_guarded(
                id, *it, false, true, [&] { return st.instance_teardown(*it, instance); },
                nullptr);
        return Error(
            Errc::kCallbackFailed,
            strf("adding instance %p to state %s: startup failed on CPU %u: %s; "
                 "rolled back on %zu CPU(s), instance not added",
                 instance, state_label(id).c_str(), cpu, why.c_str(), done.size()),
            rc);
      }
      done.push_back(cpu);
    }
  }
  st.instances.push_back(instance);
  return {};
}

Status Domain::Impl::remove_instance(StateId id, void* instance, bool calls) {
  if (id < 0 || id >= kNumStates || !table[id].installed || !table[id].multi)
    return Error(
        Errc::kNotFound,
        strf("cannot remove an instance from state %d: no multi-instance state there",
             id));
  StateEntry& st = table[id];
  auto it = std::find(st.instances.begin(), st.instances.end(), instance);
  if (it == st.instances.end())
    return Error(Errc::kNotFound, strf("instance %p is not added to state %s", instance,
                                       state_label(id).c_str()));
  if (calls && st.instance_teardown) {
    WriteLock hotplug(d.hotplug_lock());
    for (unsigned cpu = d.capacity(); cpu-- > 0;)
      if (cpu_state[cpu].load(std::memory_order_relaxed) >= id)
        (void)call_guarded(
            id, cpu, false, false, [&] { return st.instance_teardown(cpu, instance); },
            nullptr);
  }
  st.instances.erase(it);
  return {};
}

// ------------------------------------------------------------ public calls

namespace {
// Runs fn with the writers' lock held, or returns why it may not be taken.
template <typename Fn>
auto locked(Domain::Impl& im, const char* what, Fn&& fn) -> decltype(fn()) {
  if (Status s = im.lock_writers(what); !s) return s.error();
  struct Unlock {
    Domain::Impl& im;
    ~Unlock() { im.unlock_writers(); }
  } unlock{im};
  return fn();
}
}  // namespace

Result<StateId> Domain::setup_state(Section section, std::string name,
                                    StateCallback startup, StateCallback teardown) {
  return locked(*impl_, "setup_state()", [&] {
    return impl_->install(
        0, section, true,
        single_entry(std::move(name), std::move(startup), std::move(teardown)), true);
  });
}

Result<StateId> Domain::setup_state_nocalls(Section section, std::string name,
                                            StateCallback startup,
                                            StateCallback teardown) {
  return locked(*impl_, "setup_state_nocalls()", [&] {
    return impl_->install(
        0, section, true,
        single_entry(std::move(name), std::move(startup), std::move(teardown)), false);
  });
}

Result<StateId> Domain::setup_state_at(StateId id, std::string name,
                                       StateCallback startup, StateCallback teardown) {
  return locked(*impl_, "setup_state_at()", [&] {
    return impl_->install(
        id, Section::kPrepare, false,
        single_entry(std::move(name), std::move(startup), std::move(teardown)), true);
  });
}

Result<StateId> Domain::setup_state_at_nocalls(StateId id, std::string name,
                                               StateCallback startup,
                                               StateCallback teardown) {
  return locked(*impl_, "setup_state_at_nocalls()", [&] {
    return impl_->install(
        id, Section::kPrepare, false,
        single_entry(std::move(name), std::move(startup), std::move(teardown)), false);
  });
}

Status Domain::remove_state(StateId id) {
  return locked(*impl_, "remove_state()", [&] { return impl_->uninstall(id, true); });
}

Status Domain::remove_state_nocalls(StateId id) {
  return locked(*impl_, "remove_state_nocalls()",
                [&] { return impl_->uninstall(id, false); });
}

Result<StateId> Domain::setup_multi_state(Section section, std::string name,
                                          InstanceCallback startup,
                                          InstanceCallback teardown) {
  return locked(*impl_, "setup_multi_state()", [&] {
    return impl_->install(0, section, true,
                          multi_entry(impl_.get(), std::move(name), std::move(startup),
                                      std::move(teardown)),
                          /*calls=*/false);  // no instances yet: nothing to call
  });
}

Status Domain::add_instance(StateId id, void* instance) {
  return locked(*impl_, "add_instance()",
                [&] { return impl_->add_instance(id, instance, true); });
}
Status Domain::add_instance_nocalls(StateId id, void* instance) {
  return locked(*impl_, "add_instance_nocalls()",
                [&] { return impl_->add_instance(id, instance, false); });
}
Status Domain::remove_instance(StateId id, void* instance) {
  return locked(*impl_, "remove_instance()",
                [&] { return impl_->remove_instance(id, instance, true); });
}
Status Domain::remove_instance_nocalls(StateId id, void* instance) {
  return locked(*impl_, "remove_instance_nocalls()",
                [&] { return impl_->remove_instance(id, instance, false); });
}

std::vector<StateInfo> Domain::states() const {
  std::lock_guard guard(impl_->table_mutex);
  std::vector<StateInfo> out;
  for (StateId s = 0; s < kNumStates; ++s) {
    const StateEntry& e = impl_->table[s];
    if (e.installed) out.push_back(StateInfo{s, e.name, e.multi, e.builtin});
  }
  return out;
}

Result<StateId> Domain::find_state(const std::string& name) const {
  std::lock_guard guard(impl_->table_mutex);
  for (StateId s = 0; s < kNumStates; ++s)
    if (impl_->table[s].installed && impl_->table[s].name == name) return s;
  return Error(Errc::kNotFound, strf("no state named '%s'", name.c_str()));
}

// ------------------------------------------------------------ register_begin

Result<RegistrationScope> Domain::register_begin() {
  if (Status s = impl_->lock_writers("register_begin()"); !s) return s.error();
  return RegistrationScope(this);
}

RegistrationScope::RegistrationScope(RegistrationScope&& other) noexcept
    : domain_(std::exchange(other.domain_, nullptr)) {}

RegistrationScope::~RegistrationScope() { done(); }

void RegistrationScope::done() {
  if (domain_ == nullptr) return;
  if (!domain_->impl_->owned_by_this_thread()) {
    // The writers' lock is a std::mutex: unlocking it on another thread is
    // undefined behaviour, so refuse loudly rather than corrupt it.
    std::fprintf(stderr,
                 "cpuhp: a RegistrationScope must end on the thread that began it\n");
    std::abort();
  }
  std::exchange(domain_, nullptr)->impl_->unlock_writers();
}

namespace {
Status scope_gone() {
  return Error(Errc::kInvalidArgument, "RegistrationScope used after done()");
}
}  // namespace

Status RegistrationScope::register_notifier(NotifierBlock* nb) {
  if (domain_ == nullptr) return scope_gone();
  return domain_->impl_->register_notifier(nb);
}
Status RegistrationScope::unregister_notifier(NotifierBlock* nb) {
  if (domain_ == nullptr) return scope_gone();
  return domain_->impl_->unregister_notifier(nb);
}
bool RegistrationScope::is_registered(const NotifierBlock* nb) const {
  if (domain_ == nullptr) return false;
  const auto& chain = domain_->impl_->chain;
  return std::find(chain.begin(), chain.end(), nb) != chain.end();
}
Result<StateId> RegistrationScope::setup_state(Section section, std::string name,
                                               StateCallback startup,
                                               StateCallback teardown) {
  if (domain_ == nullptr) return scope_gone().error();
  return domain_->impl_->install(
      0, section, true,
      single_entry(std::move(name), std::move(startup), std::move(teardown)), true);
}
Result<StateId> RegistrationScope::setup_state_nocalls(Section section, std::string name,
                                                       StateCallback startup,
                                                       StateCallback teardown) {
  if (domain_ == nullptr) return scope_gone().error();
  return domain_->impl_->install(
      0, section, true,
      single_entry(std::move(name), std::move(startup), std::move(teardown)), false);
}
Status RegistrationScope::remove_state(StateId id) {
  if (domain_ == nullptr) return scope_gone();
  return domain_->impl_->uninstall(id, true);
}
Status RegistrationScope::remove_state_nocalls(StateId id) {
  if (domain_ == nullptr) return scope_gone();
  return domain_->impl_->uninstall(id, false);
}

}  // namespace cpuhp
