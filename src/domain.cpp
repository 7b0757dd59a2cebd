// Domain: construction, the writers' lock, and CPU transitions with rollback.
#include "cpuhp/domain.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <system_error>

#include "cpuhp/rcu.h"
#include "domain_impl.h"
#include "strf.h"

namespace cpuhp {

using detail::strf;

thread_local const CallbackContext* tl_callback_context = nullptr;

namespace {

thread_local char tl_writer_token;

long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

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

}  // namespace

// ------------------------------------------------------------ construction

Domain::Impl::Impl(Domain& domain) : d(domain), cpu_state(domain.capacity()) {
  auto builtin = [this](StateId id, const char* name, StepCallback up,
                        StepCallback down) {
    StateEntry& e = table[id];
    e.name = name;
    e.installed = e.builtin = true;
    e.startup = std::move(up);
    e.teardown = std::move(down);
  };
  builtin(kStateOffline, "offline", nullptr, nullptr);
  // The online bit, with RCU semantics per bit (Linus, 2013): set only after
  // the PREPARE startups built everything a reader may reach through it...
  builtin(
      kStateBringup, "bringup",
      [this](const Step& s) {
        d.online_.set(s.cpu);  // release: pairs with readers' acquire test/walk
        return 0;
      },
      // ...and on the way down, PREPARE teardowns (which free that data) run
      // only after every reader that could have seen the bit has finished.
      [this](const Step& s) {
        d.online_.clear(s.cpu);
        // The grace period protects what PREPARE teardowns free; without any,
        // readers that saw the bit have nothing to lose (domain.h, Masks).
        if (prepare_teardowns_installed()) rcu::rcu_synchronize();
        return 0;
      });
  builtin(
      kStateActive, "active",
      [this](const Step& s) {
        d.active_.set(s.cpu);
        return 0;
      },
      [this](const Step& s) {
        d.active_.clear(s.cpu);
        return 0;
      });
  install_notifier_states();
}

// Called by the writer (writers' lock held, so the table and the notifier
// chain are stable).
bool Domain::Impl::prepare_teardowns_installed() const {
  for (StateId id = kStatePrepareFirst; id < kStateBringup; ++id) {
    const StateEntry& e = table[id];
    if (!e.installed) continue;
    if (id == kStateNotifyPrepare) {
      if (!chain.empty()) return true;  // DEAD / UP_CANCELED to deliver
    } else if (e.multi ? (e.instance_teardown && !e.instances.empty())
                       : static_cast<bool>(e.teardown)) {
      return true;
    }
  }
  return false;
}

Domain::Domain(unsigned possible_cpus, unsigned online_cpus)
    : Domain(first_cpus(possible_cpus, possible_cpus, online_cpus),
             first_cpus(possible_cpus, online_cpus, online_cpus)) {}

Domain::Domain(const CpuMask& possible, const CpuMask& online)
    : possible_((check_masks(possible, online), possible)),
      present_(possible),
      online_(possible.capacity()),
      active_(possible.capacity()),
      impl_(std::make_unique<Impl>(*this)) {
  for (unsigned cpu : online) {
    online_.set(cpu);
    active_.set(cpu);
    impl_->cpu_state[cpu].store(kStateOnline, std::memory_order_relaxed);
  }
}

Domain::~Domain() = default;

void Domain::set_observer(std::function<void(const CallbackEvent&)> observer) {
  // Release: pairs with the acquire load in observe(), which then sees the
  // function object fully built.
  impl_->observer.store(
      observer ? std::make_shared<const Impl::Observer>(std::move(observer)) : nullptr,
      std::memory_order_release);
}

void Domain::Impl::observe(const CallbackEvent& event) const {
  if (auto fn = observer.load(std::memory_order_acquire)) (*fn)(event);
}

// ------------------------------------------------------------ writers' lock

bool Domain::Impl::owned_by_this_thread() const noexcept {
  return writers_owner.load(std::memory_order_relaxed) == &tl_writer_token;
}

Status Domain::Impl::check_may_lock(const char* what) const {
  if (const CallbackContext* ctx = tl_callback_context;
      ctx != nullptr && ctx->domain == this)
    return Error(
        Errc::kWouldDeadlock,
        strf("%s from inside a hotplug callback (CPU %u, state %s) would deadlock: "
             "the writers' lock is held by this thread; do it outside the "
             "callback, e.g. install states beforehand with setup_state_nocalls()",
             what, ctx->cpu, state_label(ctx->state).c_str()));
  if (owned_by_this_thread())
    return Error(
        Errc::kWouldDeadlock,
        strf("%s inside a register_begin() scope would deadlock: this thread holds "
             "the writers' lock; call it through the RegistrationScope instead",
             what));
  if (d.hotplug_lock_.held_shared_by_this_thread())
    return Error(
        Errc::kWouldDeadlock,
        strf("%s while this thread holds the hotplug read lock (cpus_read_lock) would "
             "deadlock against a hotplug writer (the ABBA of get_online_cpus(); "
             "register_cpu_notifier()); release it first, and to register and "
             "initialise the online CPUs in one step use register_begin()",
             what));
  if (rcu::rcu_read_section_held())
    return Error(
        Errc::kWouldDeadlock,
        strf("%s inside an RCU read section would deadlock: taking a CPU down waits "
             "for a grace period; leave the read section first",
             what));
  return {};
}

Status Domain::Impl::lock_writers(const char* what) {
  if (Status s = check_may_lock(what); !s) return s;
  writers_mutex.lock();
  writers_owner.store(&tl_writer_token, std::memory_order_relaxed);
  return {};
}

Status Domain::Impl::lock_writers_unless_held(const char* what, bool* locked) {
  *locked = false;
  if (owned_by_this_thread()) return {};
  if (Status s = lock_writers(what); !s) return s;
  *locked = true;
  return {};
}

void Domain::Impl::unlock_writers() {
  writers_owner.store(nullptr, std::memory_order_relaxed);
  writers_mutex.unlock();
}

Status Domain::Impl::require_writers_held(const char* what) const {
  if (owned_by_this_thread()) return {};
  return Error(Errc::kInvalidArgument,
               strf("%s needs the writers' lock: call it inside register_begin() "
                    "(cpu_maps_update_begin()), or use the locking variant",
                    what));
}

namespace {
// Holds the writers' lock of a Domain for one call.
class WritersLock {
 public:
  WritersLock(Domain::Impl& impl, const char* what)
      : impl_(impl), status_(impl.lock_writers(what)) {}
  ~WritersLock() {
    if (status_) impl_.unlock_writers();
  }
  const Status& status() const { return status_; }

 private:
  Domain::Impl& impl_;
  Status status_;
};
}  // namespace

// ------------------------------------------------------------ labels, checks

std::string Domain::Impl::state_label(StateId id) const {
  if (id < 0 || id >= kNumStates) return strf("%d (no such state)", id);
  const StateEntry& e = table[id];
  if (!e.installed && e.name.empty()) return strf("%d", id);
  return strf("'%s' (%d)", e.name.c_str(), id);
}

Status Domain::Impl::check_cpu(unsigned cpu) const {
  if (cpu >= d.capacity())
    return Error(Errc::kOutOfRange,
                 strf("CPU %u is out of range: the domain has %u possible CPUs (0-%u)",
                      cpu, d.capacity(), d.capacity() - 1));
  return {};
}

Result<StateId> Domain::cpu_state(unsigned cpu) const {
  if (Status s = impl_->check_cpu(cpu); !s) return s.error();
  return impl_->cpu_state[cpu].load(std::memory_order_relaxed);
}

// ------------------------------------------------------------ callbacks

bool Domain::Impl::take_injection(unsigned cpu, StateId id) {
  for (auto it = injected.begin(); it != injected.end(); ++it) {
    if (it->first == cpu && it->second == id) {
      injected.erase(it);
      return true;
    }
  }
  return false;
}

int Domain::Impl::call_guarded(StateId id, unsigned cpu, bool startup, bool rollback,
                               const std::function<int()>& fn, std::string* why) {
  const CallbackContext ctx{this, cpu, id};
  const CallbackContext* outer = tl_callback_context;
  tl_callback_context = &ctx;
  const long long begin = now_ns();
  int rc = 0;
  std::string reason;
  try {
    rc = fn();
    if (rc > 0) rc = -rc;  // tolerate positive errno
    if (rc != 0) reason = strf("error %d (%s)", rc, std::strerror(-rc));
  } catch (const std::system_error& e) {
    // Keep the errno: the caller's Error::cause() then says what failed.
    rc = e.code().category() == std::system_category() && e.code().value() > 0
             ? -e.code().value()
             : -ECANCELED;
    reason = strf("threw %s", e.what());
  } catch (const std::exception& e) {
    rc = -ECANCELED;
    reason = strf("threw %s", e.what());
  } catch (...) {
    rc = -ECANCELED;
    reason = "threw a non-standard exception";
  }
  const long long end = now_ns();
  tl_callback_context = outer;
  observe(CallbackEvent{cpu, id, &table[id].name, startup, rollback, rc, begin, end});
  if (rc != 0 && why != nullptr) *why = std::move(reason);
  return rc;
}

int Domain::Impl::invoke(StateId id, unsigned cpu, bool startup, bool rollback,
                         bool frozen, std::string* why) {
  StateEntry& e = table[id];
  const StepCallback& cb = startup ? e.startup : e.teardown;
  const bool may_fail = startup || e.teardown_may_veto;
  // An injection hits the callback that may fail: the startup, or for a
  // state whose teardown may veto (DOWN_PREPARE), the teardown.
  const bool injectable = e.teardown_may_veto ? !startup : startup;
  if (!rollback && injectable && take_injection(cpu, id)) {
    const long long t = now_ns();
    observe(CallbackEvent{cpu, id, &e.name, startup, false, -EIO, t, t});
    if (why != nullptr) *why = "injected failure (inject_failure)";
    return -EIO;
  }
  if (!cb) return 0;
  const Step step{cpu, id, rollback, frozen};
  std::string reason;
  int rc = call_guarded(
      id, cpu, startup, rollback, [&] { return cb(step); }, &reason);
  if (rc != 0 && (!may_fail || rollback)) {
    // Teardowns cannot fail: report and go on, as the kernel does.
    std::fprintf(stderr, "cpuhp: %s of state %s on CPU %u %s; ignored (%s cannot fail)\n",
                 startup ? "rollback startup" : "teardown", state_label(id).c_str(), cpu,
                 reason.c_str(), startup ? "a rollback" : "a teardown");
    return 0;
  }
  if (rc != 0 && why != nullptr) *why = std::move(reason);
  return rc;
}

// ------------------------------------------------------------ transitions

Status Domain::Impl::run_up(unsigned cpu, StateId from, StateId to, bool frozen) {
  for (StateId s = from + 1; s <= to; ++s) {
    if (table[s].installed) {
      std::string why;
      if (const int rc =
              invoke(s, cpu, /*startup=*/true, /*rollback=*/false, frozen, &why);
          rc != 0) {
        for (StateId t = s - 1; t > from; --t) {
          if (table[t].installed)
            (void)invoke(t, cpu, false, /*rollback=*/true, frozen, nullptr);
          cpu_state[cpu].store(t - 1, std::memory_order_relaxed);
        }
        cpu_state[cpu].store(from, std::memory_order_relaxed);
        return Error(
            Errc::kCallbackFailed,
            strf("bringing CPU %u up: startup of state %s failed: %s; rolled back "
                 "to state %s",
                 cpu, state_label(s).c_str(), why.c_str(), state_label(from).c_str()),
            rc);
      }
    }
    cpu_state[cpu].store(s, std::memory_order_relaxed);
  }
  return {};
}

Status Domain::Impl::run_down(unsigned cpu, StateId from, StateId to, bool frozen) {
  for (StateId s = from; s > to; --s) {
    if (table[s].installed) {
      std::string why;
      if (const int rc =
              invoke(s, cpu, /*startup=*/false, /*rollback=*/false, frozen, &why);
          rc != 0) {
        // Only a vetoable teardown gets here: undo what this down did.
        for (StateId t = s + 1; t <= from; ++t) {
          if (table[t].installed)
            (void)invoke(t, cpu, true, /*rollback=*/true, frozen, nullptr);
          cpu_state[cpu].store(t, std::memory_order_relaxed);
        }
        cpu_state[cpu].store(from, std::memory_order_relaxed);
        return Error(
            Errc::kCallbackFailed,
            strf("taking CPU %u down: state %s refused: %s; CPU is back at state %s", cpu,
                 state_label(s).c_str(), why.c_str(), state_label(from).c_str()),
            rc);
      }
    }
    cpu_state[cpu].store(s - 1, std::memory_order_relaxed);
  }
  return {};
}

Status Domain::Impl::transition(unsigned cpu, StateId target, bool frozen) {
  const StateId from = cpu_state[cpu].load(std::memory_order_relaxed);
  Status status;
  {
    // Callbacks run with the hotplug lock held for writing: readers that need
    // a stable mask wait; the callbacks themselves may take it for reading.
    WriteLock hotplug(d.hotplug_lock_);
    status = target > from ? run_up(cpu, from, target, frozen)
                           : run_down(cpu, from, target, frozen);
  }
  // POST_DEAD: hotplug write lock dropped, writers' lock still held.
  if (status && target < kStateNotifyPrepare && from >= kStateNotifyPrepare)
    notify_post_dead(cpu, frozen);
  return status;
}

Status Domain::bring_to(unsigned cpu, StateId target) {
  WritersLock lock(*impl_, "bring_to()");
  if (!lock.status()) return lock.status();
  Impl& im = *impl_;
  if (Status s = im.check_cpu(cpu); !s) return s;
  if (target < kStateOffline || target > kStateOnline)
    return Error(Errc::kInvalidArgument,
                 strf("target state %d for CPU %u is not a state (0..%d)", target, cpu,
                      kStateOnline));
  if (!present_.test(cpu))
    return Error(Errc::kNotPresent, strf("CPU %u is not present", cpu));
  if (im.disable_count > 0)
    return Error(Errc::kBusy,
                 strf("CPU %u: hotplug is disabled (disable count %d%s)", cpu,
                      im.disable_count, im.suspended ? ", suspended" : ""));
  const StateId from = im.cpu_state[cpu].load(std::memory_order_relaxed);
  if (from == target)
    return Error(Errc::kAlreadyInState, strf("CPU %u is already at state %s", cpu,
                                             im.state_label(target).c_str()));
  if (target < kStateBringup && online_.test(cpu) && online_.weight() == 1)
    return Error(Errc::kLastCpu, strf("CPU %u is the last online CPU", cpu));
  if (target == kStateNotifyPrepare && !im.chain.empty())
    return Error(
        Errc::kBusy,
        strf("CPU %u cannot stop at state %s while CPU notifiers are registered: it "
             "would have had UP_PREPARE without being online, which the 2014 "
             "register_begin() idiom (walk the online CPUs) cannot see",
             cpu, im.state_label(target).c_str()));
  return im.transition(cpu, target, /*frozen=*/false);
}

Status Domain::up(unsigned cpu) { return bring_to(cpu, kStateOnline); }
Status Domain::down(unsigned cpu) { return bring_to(cpu, kStateOffline); }

Status Domain::set_present(unsigned cpu, bool present) {
  WritersLock lock(*impl_, "set_present()");
  if (!lock.status()) return lock.status();
  if (Status s = impl_->check_cpu(cpu); !s) return s;
  if (!possible_.test(cpu))
    return Error(Errc::kNotPresent, strf("CPU %u is not possible (possible: %s)", cpu,
                                         possible_.to_string().c_str()));
  const StateId state = impl_->cpu_state[cpu].load(std::memory_order_relaxed);
  if (!present && state != kStateOffline)
    return Error(Errc::kBusy,
                 strf("CPU %u cannot leave the present mask: it is at state %s, "
                      "not offline",
                      cpu, impl_->state_label(state).c_str()));
  if (present) {
    present_.set(cpu);
  } else {
    present_.clear(cpu);
  }
  return {};
}

Status Domain::disable_hotplug() {
  bool locked = false;
  if (Status s = impl_->lock_writers_unless_held("disable_hotplug()", &locked); !s)
    return s;
  ++impl_->disable_count;
  if (locked) impl_->unlock_writers();
  return {};
}

Status Domain::enable_hotplug() {
  bool locked = false;
  if (Status s = impl_->lock_writers_unless_held("enable_hotplug()", &locked); !s)
    return s;
  Status result;
  if (impl_->disable_count == 0) {
    result = Error(Errc::kInvalidArgument,
                   "enable_hotplug() without a matching disable_hotplug()");
  } else if (impl_->suspended && impl_->disable_count == 1) {
    result = Error(Errc::kBusy,
                   "enable_hotplug(): the domain is suspended; use resume_nonboot()");
  } else {
    --impl_->disable_count;
  }
  if (locked) impl_->unlock_writers();
  return result;
}

Status Domain::inject_failure(unsigned cpu, StateId state) {
  WritersLock lock(*impl_, "inject_failure()");
  if (!lock.status()) return lock.status();
  if (Status s = impl_->check_cpu(cpu); !s) return s;
  if (state <= kStateOffline || state > kStateOnline || !impl_->table[state].installed)
    return Error(
        Errc::kNotFound,
        strf("cannot inject a failure into state %d on CPU %u: no such state installed",
             state, cpu));
  if (state == kStateBringup || state == kStateActive)
    return Error(Errc::kInvalidArgument,
                 strf("cannot inject a failure into state %s: it cannot fail",
                      impl_->state_label(state).c_str()));
  impl_->injected.emplace_back(cpu, state);
  return {};
}

// ------------------------------------------------------------ suspend/resume

Status Domain::suspend_nonboot() {
  WritersLock lock(*impl_, "suspend_nonboot()");
  if (!lock.status()) return lock.status();
  Impl& im = *impl_;
  if (im.suspended) return Error(Errc::kBusy, "suspend_nonboot(): already suspended");
  const unsigned boot = online_.first();
  std::vector<std::pair<unsigned, StateId>> taken;
  for (unsigned cpu = online_.last(); cpu != boot && cpu < capacity(); --cpu) {
    if (!online_.test(cpu)) continue;
    const StateId was = im.cpu_state[cpu].load(std::memory_order_relaxed);
    if (Status s = im.transition(cpu, kStateOffline, /*frozen=*/true); !s) {
      for (auto it = taken.rbegin(); it != taken.rend(); ++it)
        (void)im.transition(it->first, it->second, /*frozen=*/true);
      return Error(s.error().code(),
                   "suspend_nonboot() failed, CPUs restored: " + s.error().message());
    }
    taken.emplace_back(cpu, was);
  }
  im.suspended_cpus = std::move(taken);
  im.suspended = true;
  ++im.disable_count;
  return {};
}

Status Domain::resume_nonboot() {
  WritersLock lock(*impl_, "resume_nonboot()");
  if (!lock.status()) return lock.status();
  Impl& im = *impl_;
  if (!im.suspended)
    return Error(Errc::kInvalidArgument, "resume_nonboot(): not suspended");
  im.suspended = false;
  --im.disable_count;
  std::string failures;
  // Lowest first: the reverse of the order they went down in.
  for (auto it = im.suspended_cpus.rbegin(); it != im.suspended_cpus.rend(); ++it) {
    if (Status s = im.transition(it->first, it->second, /*frozen=*/true); !s)
      failures += (failures.empty() ? "" : "; ") + s.error().message();
  }
  im.suspended_cpus.clear();
  if (!failures.empty())
    return Error(Errc::kCallbackFailed,
                 "resume_nonboot(): some CPUs stayed down: " + failures);
  return {};
}

}  // namespace cpuhp
