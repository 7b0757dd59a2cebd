// SPDX-License-Identifier: MIT
// The one function that runs a Domain callback (src/callback.h).
#include "callback.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <system_error>

#include "cpuhp/diagnostics.h"
#include "strf.h"
#include "transition.h"

namespace cpuhp {

using detail::strf;

namespace {

long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string label(const Domain::Impl& im, StateId id) CPUHP_REQUIRES(im.writers) {
  return strf("'%s' (%d)", im.table[id].name.c_str(), id);
}

std::string instance_label(const Call& call) {
  return call.instance != nullptr ? strf(" instance %p", call.instance) : std::string();
}

// An observer sees every call; it cannot fail it. Runs marked as an observer,
// so a call from it back into the Domain is refused.
void observe(Domain::Impl& im, const CallbackEvent& event) CPUHP_REQUIRES(im.writers) {
  // Acquire: pairs with the release store in Domain::set_observer().
  const auto fn = im.observer.load(std::memory_order_acquire);
  if (!fn) return;
  std::string why;
  const int rc = call_catching(
      [&] {
        InCallback marked(im, "observer", event.cpu, event.state);
        (*fn)(event);
        return 0;
      },
      &why);
  if (rc != 0)
    detail::warn("Domain",
                 "the observer %s at the %s of state %s on CPU %u; ignored (an observer "
                 "cannot fail a transition)",
                 why.c_str(), event.startup ? "startup" : "teardown",
                 label(im, event.state).c_str(), event.cpu);
}

bool take_injection(Domain::Impl& im, unsigned cpu, StateId id)
    CPUHP_REQUIRES(im.writers) {
  for (auto it = im.injected.begin(); it != im.injected.end(); ++it) {
    if (it->first == cpu && it->second == id) {
      im.injected.erase(it);
      return true;
    }
  }
  return false;
}

// Whether a failure of this call fails the operation (a startup, or the
// teardown of a state that may veto), or is only reported.
bool may_fail(const StateEntry& e, const Call& call) {
  return !call.rollback && (call.startup || e.teardown_may_veto);
}

// A PREPARE teardown that is about to run: it may free what readers reached
// through the CPU's online bit (the notifier state only if a notifier will
// hear DEAD or UP_CANCELED).
bool frees_past_the_online_bit(const Domain::Impl& im, const Call& call)
    CPUHP_REQUIRES(im.writers) {
  return !call.startup && call.state > kStateOffline && call.state < kStateBringup &&
         (call.state != kStateNotifyPrepare || !im.chain.empty());
}

// One callback: the state's own, or one instance's.
int run_one(Domain::Impl& im, const Call& call, std::string* why)
    CPUHP_REQUIRES(im.writers) {
  const StateEntry& e = im.table[call.state];
  if (e.multi) {
    const InstanceCallback& cb = call.startup ? e.instance_startup : e.instance_teardown;
    if (!cb) return 0;
    if (frees_past_the_online_bit(im, call)) pay_grace_period_owed(im, call.cpu);
    return run_guarded(
        im, call, "hotplug callback", e.name, [&] { return cb(call.cpu, call.instance); },
        why);
  }
  const StepCallback& cb = call.startup ? e.startup : e.teardown;
  if (!cb) return 0;
  if (frees_past_the_online_bit(im, call)) pay_grace_period_owed(im, call.cpu);
  return run_guarded(
      im, call, "hotplug callback", e.name, [&] { return cb(call); }, why);
}

// A failure that cannot fail anything: say so and go on, as the kernel does.
int ignore_failure(Domain::Impl& im, const Call& call, int rc, const std::string& why)
    CPUHP_REQUIRES(im.writers) {
  if (rc != 0)
    detail::warn("Domain", "%s of state %s%s on CPU %u %s; ignored (%s cannot fail)",
                 call.startup ? "rollback startup" : "teardown",
                 label(im, call.state).c_str(), instance_label(call).c_str(), call.cpu,
                 why.c_str(), call.startup ? "a rollback" : "a teardown");
  return 0;
}

// A multi-instance state for one CPU: every instance in turn; a failing
// startup tears the instances before it down again on that CPU.
int run_instances(Domain::Impl& im, const Call& call, std::string* why)
    CPUHP_REQUIRES(im.writers) {
  const StateEntry& e = im.table[call.state];
  const std::vector<void*>& all = e.instances;
  const bool fails = may_fail(e, call);
  if (call.startup) {
    for (std::size_t i = 0; i < all.size(); ++i) {
      Call one = call;
      one.instance = all[i];
      std::string reason;
      const int rc = run_one(im, one, &reason);
      if (rc == 0) continue;
      if (!fails) {
        ignore_failure(im, one, rc, reason);
        continue;
      }
      for (std::size_t j = i; j-- > 0;) {
        Call back{call.cpu, call.state, false, true, call.frozen, all[j]};
        std::string back_reason;
        ignore_failure(im, back, run_one(im, back, &back_reason), back_reason);
      }
      if (why != nullptr) *why = strf("instance %p %s", all[i], reason.c_str());
      return rc;
    }
    return 0;
  }
  for (std::size_t i = all.size(); i-- > 0;) {
    Call one = call;
    one.instance = all[i];
    std::string reason;
    ignore_failure(im, one, run_one(im, one, &reason), reason);
  }
  return 0;
}

}  // namespace

int describe_failure(int rc, std::string* why) noexcept {
  if (rc > 0) rc = -rc;  // tolerate a positive errno
  if (why != nullptr) {
    try {
      *why = strf("error %d (%s)", rc, std::strerror(-rc));
    } catch (...) {  // out of memory while describing the failure
    }
  }
  return rc;
}

int describe_current_exception(std::string* why) noexcept {
  int rc = -ECANCELED;
  std::string reason;
  try {
    try {
      throw;
    } catch (const std::system_error& e) {
      // Keep the errno: the caller's Error::cause() then says what failed.
      if (e.code().category() == std::system_category() && e.code().value() > 0)
        rc = -e.code().value();
      reason = strf("threw %s", e.what());
    } catch (const std::exception& e) {
      reason = strf("threw %s", e.what());
    } catch (...) {
      reason = "threw a non-standard exception";
    }
    if (why != nullptr) *why = std::move(reason);
  } catch (...) {  // out of memory while describing the failure
  }
  return rc;
}

int run_guarded(Domain::Impl& im, const Call& call, const char* kind,
                const std::string& name, const std::function<int()>& fn,
                std::string* why) {
  const long long begin = now_ns();
  int rc;
  {
    InCallback marked(im, kind, call.cpu, call.state);
    rc = call_catching(fn, why);
  }
  const long long end = now_ns();
  observe(im, CallbackEvent{call.cpu, call.state, &name, call.startup, call.rollback, rc,
                            begin, end, call.instance});
  return rc;
}

int invoke_callback(Domain::Impl& im, const Call& call, std::string* why) {
  const StateEntry& e = im.table[call.state];
  // An injection hits the callback that may fail: the startup, or for a state
  // whose teardown may veto (DOWN_PREPARE), the teardown.
  const bool injectable = e.teardown_may_veto ? !call.startup : call.startup;
  if (!call.rollback && injectable && take_injection(im, call.cpu, call.state)) {
    (void)run_guarded(
        im, call, "hotplug callback", e.name, [] { return -EIO; }, nullptr);
    if (why != nullptr) *why = "injected failure (inject_failure)";
    return -EIO;
  }
  std::string reason;
  const int rc = e.multi && call.instance == nullptr ? run_instances(im, call, &reason)
                                                     : run_one(im, call, &reason);
  if (rc == 0) return 0;
  if (!may_fail(e, call)) return ignore_failure(im, call, rc, reason);
  if (why != nullptr) *why = std::move(reason);
  return rc;
}

}  // namespace cpuhp
