// SPDX-License-Identifier: MIT
// Domain and RegistrationScope (cpuhp/domain.h): construction, and every
// public call as an entry check plus one internal call. The work itself is in
// transition.cpp, registration.cpp, notifier_chain.cpp and state_table.cpp.
#include "cpuhp/domain.h"

#include <algorithm>
#include <stdexcept>

#include "cpuhp/diagnostics.h"
#include "cpuhp/rcu.h"
#include "domain_impl.h"
#include "notifier_chain.h"
#include "registration.h"
#include "state_table.h"
#include "strf.h"
#include "transition.h"

namespace cpuhp {

using detail::strf;
using Lock = Entry::Lock;

namespace {

void check_construction(unsigned possible_cpus, unsigned online_cpus) {
  if (possible_cpus == 0 || possible_cpus > kMaxCpus)
    throw std::invalid_argument(
        strf("cpuhp::Domain: %u possible CPUs is not in 1..%u", possible_cpus, kMaxCpus));
  if (online_cpus == 0 || online_cpus > possible_cpus)
    throw std::invalid_argument(strf("cpuhp::Domain: %u online CPUs is not in 1..%u",
                                     online_cpus, possible_cpus));
}

// CPUs 0..n-1 of a mask of `capacity`, after the counts are checked.
CpuMask first_cpus(unsigned capacity, unsigned n, unsigned online) {
  check_construction(capacity, online);
  CpuMask mask(capacity);
  for (unsigned cpu = 0; cpu < n; ++cpu) mask.set(cpu);
  return mask;
}

void check_masks(const CpuMask& possible, const CpuMask& online) {
  if (online.capacity() != possible.capacity())
    throw std::invalid_argument(
        strf("cpuhp::Domain: online mask capacity %u differs from "
             "possible mask capacity %u",
             online.capacity(), possible.capacity()));
  if (online.empty()) throw std::invalid_argument("cpuhp::Domain: no CPU online");
  if (!online.is_subset_of(possible)) {
    CpuMask extra = online;
    extra.and_not(possible);
    throw std::invalid_argument(
        strf("cpuhp::Domain: online CPUs %s are not possible (%s)",
             extra.to_string().c_str(), possible.to_string().c_str()));
  }
}

Status check_cpu(const Domain& d, unsigned cpu) {
  if (cpu >= d.capacity())
    return Error(Errc::kOutOfRange,
                 strf("CPU %u is out of range: the domain has %u possible CPUs (0-%u)",
                      cpu, d.capacity(), d.capacity() - 1));
  return {};
}

StateEntry single_entry(std::string name, StateCallback startup, StateCallback teardown) {
  StateEntry e;
  e.name = std::move(name);
  if (startup) e.startup = [cb = std::move(startup)](const Call& c) { return cb(c.cpu); };
  if (teardown)
    e.teardown = [cb = std::move(teardown)](const Call& c) { return cb(c.cpu); };
  return e;
}

StateEntry multi_entry(std::string name, InstanceCallback startup,
                       InstanceCallback teardown) {
  StateEntry e;
  e.name = std::move(name);
  e.multi = true;
  e.instance_startup = std::move(startup);
  e.instance_teardown = std::move(teardown);
  return e;
}

// The body of every public call that installs a state: the entry checks and
// the lock, then install_state().
Result<StateId> enter_and_install(Domain::Impl& im, const Entry& entry, StateId id,
                                  Section section, bool dynamic, StateEntry state,
                                  bool calls) {
  WritersLock lock(im, entry);
  if (!lock.ok()) return lock.status().error();
  return install_state(im, id, section, dynamic, std::move(state), calls);
}

// The same for removing one.
Status enter_and_remove(Domain::Impl& im, const Entry& entry, StateId id, bool calls) {
  WritersLock lock(im, entry);
  if (!lock.ok()) return lock.status();
  return remove_state(im, id, calls);
}

}  // namespace

// ------------------------------------------------------------ construction

Domain::Impl::Impl(Domain& domain)
    : d(domain), cpu_state(domain.capacity()), grace_period_owed(domain.capacity(), 0) {
  writers.lock();  // nobody else can see the Domain yet; this satisfies the checks
  install_builtin(*this, kStateOffline, "offline", nullptr, nullptr);
  // The online bit, with RCU semantics per bit (Linus, 2013): set only after
  // the PREPARE startups built everything a reader may reach through it...
  install_builtin(
      *this, kStateBringup, "bringup",
      [this](const Call& c) {
        d.online_.set(c.cpu);  // release: pairs with readers' acquire test/walk
        return 0;
      },
      // ...and on the way down, PREPARE teardowns (which free that data) run
      // only after every reader that could have seen the bit has finished.
      [this](const Call& c) CPUHP_NO_THREAD_SAFETY_ANALYSIS {
        clear_online_bit(*this, c.cpu);
        return 0;
      });
  install_builtin(
      *this, kStateActive, "active",
      [this](const Call& c) {
        d.active_.set(c.cpu);
        return 0;
      },
      [this](const Call& c) {
        d.active_.clear(c.cpu);
        return 0;
      });
  install_notifier_states(*this);
  writers.unlock();
}

Domain::Domain(unsigned possible_cpus, unsigned online_cpus)
    : Domain(first_cpus(possible_cpus, possible_cpus, online_cpus),
             first_cpus(possible_cpus, online_cpus, online_cpus)) {}

Domain::Domain(const CpuMask& possible, const CpuMask& online)
    : possible_((check_masks(possible, online), possible)),
      present_(possible),
      online_(possible.capacity()),
      active_(possible.capacity()),
      hotplug_lock_(ReadSide::kAuto, WriterWaits::kForRcuGracePeriods),
      impl_(std::make_unique<Impl>(*this)) {
  for (unsigned cpu : online) {
    online_.set(cpu);
    active_.set(cpu);
    impl_->cpu_state[cpu].store(kStateOnline, std::memory_order_relaxed);
  }
}

Domain::~Domain() = default;

void Domain::set_observer(std::function<void(const CallbackEvent&)> observer) {
  // Release: pairs with the acquire load in observe() (callback.cpp), which
  // then sees the function object fully built.
  impl_->observer.store(
      observer ? std::make_shared<const Impl::Observer>(std::move(observer)) : nullptr,
      std::memory_order_release);
}

Result<StateId> Domain::cpu_state(unsigned cpu) const {
  if (Status s = check_cpu(*this, cpu); !s) return s.error();
  return impl_->cpu_state[cpu].load(std::memory_order_relaxed);
}

// ------------------------------------------------------------ hotplug

Status Domain::hotplug(unsigned cpu, StateId target, const char* what) {
  WritersLock lock(*impl_, {what, Lock::kTakes, true});
  if (!lock.ok()) return lock.status();
  if (Status s = check_cpu(*this, cpu); !s) return s;
  if (target < kStateOffline || target > kStateOnline)
    return Error(Errc::kInvalidArgument,
                 strf("target state %d for CPU %u is not a state (0..%d)", target, cpu,
                      kStateOnline));
  if (!present_.test(cpu))
    return Error(Errc::kNotPresent, strf("CPU %u is not present", cpu));
  if (impl_->disable_count > 0)
    return Error(Errc::kBusy,
                 strf("CPU %u: hotplug is disabled (disable count %d%s)", cpu,
                      impl_->disable_count, impl_->suspended ? ", suspended" : ""));
  const StateId from = impl_->cpu_state[cpu].load(std::memory_order_relaxed);
  if (from == target)
    return Error(Errc::kAlreadyInState, strf("CPU %u is already at state %s", cpu,
                                             state_label(*impl_, target).c_str()));
  if (target < kStateBringup && online_.test(cpu) && online_.weight() == 1)
    return Error(Errc::kLastCpu, strf("CPU %u is the last online CPU", cpu));
  if (target == kStateNotifyPrepare && !impl_->chain.empty())
    return Error(
        Errc::kBusy,
        strf("CPU %u cannot stop at state %s while CPU notifiers are registered: it "
             "would have had UP_PREPARE without being online, which the 2014 "
             "register_begin() idiom (walk the online CPUs) cannot see",
             cpu, state_label(*impl_, target).c_str()));
  return transition(*impl_, cpu, target, /*frozen=*/false);
}

Status Domain::bring_to(unsigned cpu, StateId target) {
  return hotplug(cpu, target, "bring_to()");
}
Status Domain::up(unsigned cpu) { return hotplug(cpu, kStateOnline, "up()"); }
Status Domain::down(unsigned cpu) { return hotplug(cpu, kStateOffline, "down()"); }

Status Domain::set_present(unsigned cpu, bool present) {
  WritersLock lock(*impl_, {"set_present()", Lock::kTakes, false});
  if (!lock.ok()) return lock.status();
  if (Status s = check_cpu(*this, cpu); !s) return s;
  if (!possible_.test(cpu))
    return Error(Errc::kNotPresent, strf("CPU %u is not possible (possible: %s)", cpu,
                                         possible_.to_string().c_str()));
  const StateId state = impl_->cpu_state[cpu].load(std::memory_order_relaxed);
  if (!present && std::any_of(impl_->suspended_cpus.begin(), impl_->suspended_cpus.end(),
                              [cpu](const auto& taken) { return taken.first == cpu; }))
    return Error(Errc::kBusy,
                 strf("CPU %u was taken down by suspend_nonboot() and comes back at "
                      "resume_nonboot(): it cannot leave the present mask before",
                      cpu));
  if (!present && state != kStateOffline)
    return Error(Errc::kBusy,
                 strf("CPU %u cannot leave the present mask: it is at state %s, "
                      "not offline",
                      cpu, state_label(*impl_, state).c_str()));
  if (present) {
    present_.set(cpu);
  } else {
    present_.clear(cpu);
  }
  return {};
}

Status Domain::disable_hotplug() {
  WritersLock lock(*impl_, {"disable_hotplug()", Lock::kTakesUnlessHeld, false});
  if (!lock.ok()) return lock.status();
  ++impl_->disable_count;
  return {};
}

Status Domain::enable_hotplug() {
  WritersLock lock(*impl_, {"enable_hotplug()", Lock::kTakesUnlessHeld, false});
  if (!lock.ok()) return lock.status();
  if (impl_->disable_count == 0)
    return Error(Errc::kInvalidArgument,
                 "enable_hotplug() without a matching disable_hotplug()");
  if (impl_->suspended && impl_->disable_count == 1)
    return Error(Errc::kBusy,
                 "enable_hotplug(): the domain is suspended; use resume_nonboot()");
  --impl_->disable_count;
  return {};
}

Status Domain::inject_failure(unsigned cpu, StateId state) {
  WritersLock lock(*impl_, {"inject_failure()", Lock::kTakes, false});
  if (!lock.ok()) return lock.status();
  if (Status s = check_cpu(*this, cpu); !s) return s;
  if (state <= kStateOffline || state > kStateOnline || !impl_->table[state].installed())
    return Error(
        Errc::kNotFound,
        strf("cannot inject a failure into state %d on CPU %u: no such state installed",
             state, cpu));
  if (state == kStateBringup || state == kStateActive)
    return Error(Errc::kInvalidArgument,
                 strf("cannot inject a failure into state %s: it cannot fail",
                      state_label(*impl_, state).c_str()));
  impl_->injected.emplace_back(cpu, state);
  return {};
}

// ------------------------------------------------------------ suspend/resume

Status Domain::suspend_nonboot() {
  WritersLock lock(*impl_, {"suspend_nonboot()", Lock::kTakes, true});
  if (!lock.ok()) return lock.status();
  if (impl_->suspended) return Error(Errc::kBusy, "suspend_nonboot(): already suspended");
  const unsigned boot = online_.first();
  std::vector<std::pair<unsigned, StateId>> taken;
  for (unsigned cpu = online_.last(); cpu != boot && cpu < capacity(); --cpu) {
    if (!online_.test(cpu)) continue;
    const StateId was = impl_->cpu_state[cpu].load(std::memory_order_relaxed);
    Status s = transition(*impl_, cpu, kStateOffline, /*frozen=*/true);
    if (s.ok()) {
      taken.emplace_back(cpu, was);
      continue;
    }
    // Bring back the CPUs already taken, lowest last, and say exactly which
    // of them could not be: they stay where their rollback left them.
    std::string left_down;
    for (auto it = taken.rbegin(); it != taken.rend(); ++it)
      if (Status r = transition(*impl_, it->first, it->second, /*frozen=*/true); !r)
        left_down += strf("; CPU %u stays at state %s: %s", it->first,
                          state_label(*impl_, impl_->cpu_state[it->first].load()).c_str(),
                          r.error().message().c_str());
    const Error& e = s.error();
    if (left_down.empty())
      return Error(e.code(), "suspend_nonboot() failed, CPUs restored: " + e.message(),
                   e.cause());
    return Error(e.code(),
                 "suspend_nonboot() failed: " + e.message() +
                     "; bringing back the CPUs already taken down failed too" + left_down,
                 e.cause());
  }
  impl_->suspended_cpus = std::move(taken);
  impl_->suspended = true;
  ++impl_->disable_count;
  return {};
}

Status Domain::resume_nonboot() {
  WritersLock lock(*impl_, {"resume_nonboot()", Lock::kTakes, true});
  if (!lock.ok()) return lock.status();
  if (!impl_->suspended)
    return Error(Errc::kInvalidArgument, "resume_nonboot(): not suspended");
  impl_->suspended = false;
  --impl_->disable_count;
  std::string failures;
  // Lowest first: the reverse of the order they went down in.
  for (auto it = impl_->suspended_cpus.rbegin(); it != impl_->suspended_cpus.rend();
       ++it) {
    if (Status s = transition(*impl_, it->first, it->second, /*frozen=*/true); !s)
      failures += (failures.empty() ? "" : "; ") + s.error().message();
  }
  impl_->suspended_cpus.clear();
  if (!failures.empty())
    return Error(Errc::kCallbackFailed,
                 "resume_nonboot(): some CPUs stayed down: " + failures);
  return {};
}

// ------------------------------------------------------------ states

Result<StateId> Domain::setup_state(Section section, std::string name,
                                    StateCallback startup, StateCallback teardown) {
  return enter_and_install(
      *impl_, {"setup_state()", Lock::kTakes, true}, 0, section, true,
      single_entry(std::move(name), std::move(startup), std::move(teardown)),
      /*calls=*/true);
}

Result<StateId> Domain::setup_state_nocalls(Section section, std::string name,
                                            StateCallback startup,
                                            StateCallback teardown) {
  return enter_and_install(
      *impl_, {"setup_state_nocalls()", Lock::kTakes, false}, 0, section, true,
      single_entry(std::move(name), std::move(startup), std::move(teardown)),
      /*calls=*/false);
}

Result<StateId> Domain::setup_state_at(StateId id, std::string name,
                                       StateCallback startup, StateCallback teardown) {
  return enter_and_install(
      *impl_, {"setup_state_at()", Lock::kTakes, true}, id, Section::kPrepare, false,
      single_entry(std::move(name), std::move(startup), std::move(teardown)),
      /*calls=*/true);
}

Result<StateId> Domain::setup_state_at_nocalls(StateId id, std::string name,
                                               StateCallback startup,
                                               StateCallback teardown) {
  return enter_and_install(
      *impl_, {"setup_state_at_nocalls()", Lock::kTakes, false}, id, Section::kPrepare,
      false, single_entry(std::move(name), std::move(startup), std::move(teardown)),
      /*calls=*/false);
}

Status Domain::remove_state(StateId id) {
  return enter_and_remove(*impl_, {"remove_state()", Lock::kTakes, true}, id, true);
}

Status Domain::remove_state_nocalls(StateId id) {
  return enter_and_remove(*impl_, {"remove_state_nocalls()", Lock::kTakes, false}, id,
                          false);
}

Result<StateId> Domain::setup_multi_state(Section section, std::string name,
                                          InstanceCallback startup,
                                          InstanceCallback teardown) {
  // No instances yet: nothing to call.
  return enter_and_install(
      *impl_, {"setup_multi_state()", Lock::kTakes, false}, 0, section, true,
      multi_entry(std::move(name), std::move(startup), std::move(teardown)),
      /*calls=*/false);
}

Status Domain::add_instance(StateId id, void* instance) {
  WritersLock lock(*impl_, {"add_instance()", Lock::kTakes, true});
  if (!lock.ok()) return lock.status();
  return cpuhp::add_instance(*impl_, id, instance, /*calls=*/true);
}

Status Domain::add_instance_nocalls(StateId id, void* instance) {
  WritersLock lock(*impl_, {"add_instance_nocalls()", Lock::kTakes, false});
  if (!lock.ok()) return lock.status();
  return cpuhp::add_instance(*impl_, id, instance, /*calls=*/false);
}

Status Domain::remove_instance(StateId id, void* instance) {
  WritersLock lock(*impl_, {"remove_instance()", Lock::kTakes, true});
  if (!lock.ok()) return lock.status();
  return cpuhp::remove_instance(*impl_, id, instance, /*calls=*/true);
}

Status Domain::remove_instance_nocalls(StateId id, void* instance) {
  WritersLock lock(*impl_, {"remove_instance_nocalls()", Lock::kTakes, false});
  if (!lock.ok()) return lock.status();
  return cpuhp::remove_instance(*impl_, id, instance, /*calls=*/false);
}

std::vector<StateInfo> Domain::states() const { return installed_states(*impl_); }

Result<StateId> Domain::find_state(const std::string& name) const {
  for (const StateInfo& s : installed_states(*impl_))
    if (s.name == name) return s.id;
  return Error(Errc::kNotFound, strf("no state named '%s'", name.c_str()));
}

// ------------------------------------------------------------ notifiers

Status Domain::register_notifier(NotifierBlock* nb) {
  WritersLock lock(*impl_, {"register_notifier()", Lock::kTakes, false});
  if (!lock.ok()) return lock.status();
  return cpuhp::register_notifier(*impl_, nb);
}

Status Domain::unregister_notifier(NotifierBlock* nb) {
  WritersLock lock(*impl_, {"unregister_notifier()", Lock::kTakes, false});
  if (!lock.ok()) return lock.status();
  return cpuhp::unregister_notifier(*impl_, nb);
}

// ------------------------------------------------------------ register_begin

Result<RegistrationScope> Domain::register_begin() CPUHP_NO_THREAD_SAFETY_ANALYSIS {
  // The scope holds the writers' lock past this call: lock by hand.
  if (Status s = check_entry(*impl_, {"register_begin()", Lock::kTakes, false}); !s)
    return s.error();
  impl_->writers.lock();
  return RegistrationScope(this);
}

RegistrationScope::RegistrationScope(RegistrationScope&& other) noexcept
    : domain_(std::exchange(other.domain_, nullptr)) {}

RegistrationScope::~RegistrationScope() { done(); }

void RegistrationScope::done() CPUHP_NO_THREAD_SAFETY_ANALYSIS {
  if (domain_ == nullptr) return;
  if (const CallbackContext* c = callback_context(*domain_->impl_))
    detail::fatal("RegistrationScope",
                  "done() from inside a %s of its own domain (CPU %u, state %s): the "
                  "scope's call is still running; end the scope after it returns",
                  c->kind, c->cpu, state_label(*domain_->impl_, c->state).c_str());
  // The writers' lock is a std::mutex: unlocking it on another thread is
  // undefined behaviour, so refuse loudly rather than corrupt it.
  if (!domain_->impl_->writers.held_by_this_thread())
    detail::fatal("RegistrationScope", "a scope must end on the thread that began it");
  std::exchange(domain_, nullptr)->impl_->writers.unlock();
}

namespace {
Error scope_gone(const char* what) {
  return Error(Errc::kInvalidArgument,
               strf("%s: the scope has ended (done(), or moved from); a scope's "
                    "methods are for the thread inside register_begin() .. done()",
                    what));
}
}  // namespace

Status RegistrationScope::register_notifier(NotifierBlock* nb) {
  const char* what = "RegistrationScope::register_notifier()";
  if (domain_ == nullptr) return scope_gone(what);
  WritersLock lock(*domain_->impl_, {what, Lock::kHeldByScope, false});
  if (!lock.ok()) return lock.status();
  return cpuhp::register_notifier(*domain_->impl_, nb);
}

Status RegistrationScope::unregister_notifier(NotifierBlock* nb) {
  const char* what = "RegistrationScope::unregister_notifier()";
  if (domain_ == nullptr) return scope_gone(what);
  WritersLock lock(*domain_->impl_, {what, Lock::kHeldByScope, false});
  if (!lock.ok()) return lock.status();
  return cpuhp::unregister_notifier(*domain_->impl_, nb);
}

bool RegistrationScope::is_registered(const NotifierBlock* nb) const
    CPUHP_NO_THREAD_SAFETY_ANALYSIS {
  if (domain_ == nullptr || !domain_->impl_->writers.held_by_this_thread()) return false;
  return notifier_registered(*domain_->impl_, nb);
}

Result<StateId> RegistrationScope::setup_state(Section section, std::string name,
                                               StateCallback startup,
                                               StateCallback teardown) {
  const char* what = "RegistrationScope::setup_state()";
  if (domain_ == nullptr) return scope_gone(what);
  return enter_and_install(
      *domain_->impl_, {what, Lock::kHeldByScope, true}, 0, section, true,
      single_entry(std::move(name), std::move(startup), std::move(teardown)),
      /*calls=*/true);
}

Result<StateId> RegistrationScope::setup_state_nocalls(Section section, std::string name,
                                                       StateCallback startup,
                                                       StateCallback teardown) {
  const char* what = "RegistrationScope::setup_state_nocalls()";
  if (domain_ == nullptr) return scope_gone(what);
  return enter_and_install(
      *domain_->impl_, {what, Lock::kHeldByScope, false}, 0, section, true,
      single_entry(std::move(name), std::move(startup), std::move(teardown)),
      /*calls=*/false);
}

Status RegistrationScope::remove_state(StateId id) {
  const char* what = "RegistrationScope::remove_state()";
  if (domain_ == nullptr) return scope_gone(what);
  return enter_and_remove(*domain_->impl_, {what, Lock::kHeldByScope, true}, id, true);
}

Status RegistrationScope::remove_state_nocalls(StateId id) {
  const char* what = "RegistrationScope::remove_state_nocalls()";
  if (domain_ == nullptr) return scope_gone(what);
  return enter_and_remove(*domain_->impl_, {what, Lock::kHeldByScope, false}, id, false);
}

}  // namespace cpuhp
