// SPDX-License-Identifier: MIT
// The one function that runs a Domain callback (the kernel's
// cpuhp_invoke_callback). Every caller goes through it: transitions,
// registration, instances, the notifier states and POST_DEAD.
#pragma once

#include <functional>
#include <string>

#include "domain_impl.h"

namespace cpuhp {

// Runs the callback of call.state for call.cpu (for a multi-instance state:
// call.instance, or every instance in order, rolling back the instances
// already started on that CPU if one fails). In one place:
//   - failure injection (inject_failure): the first non-rollback call that
//     may fail gets -EIO instead of running;
//   - the callback runs marked as such on this thread (re-entry refused);
//   - a throw becomes a negative errno (std::system_error keeps its errno,
//     anything else -ECANCELED) and a reason;
//   - the observer sees the call (its throw is reported and ignored);
//   - a teardown or rollback cannot fail: its failure is reported and 0
//     returned.
// Returns 0 or the negative errno; on failure *why (if given) says why.
// The lock is asserted (at run time) by the operations that call this, once
// per operation, not per callback; clang checks every call statically.
int invoke_callback(Domain::Impl& im, const Call& call, std::string* why)
    CPUHP_REQUIRES(im.writers);

// The guarded core of invoke_callback, for calls that are not a state's
// callback (POST_DEAD): runs fn marked as `kind` on this thread, converts a
// throw, shows the observer an event for (call.cpu, call.state) named `name`
// (which must outlive the call).
int run_guarded(Domain::Impl& im, const Call& call, const char* kind,
                const std::string& name, const std::function<int()>& fn, std::string* why)
    CPUHP_REQUIRES(im.writers);

// call_catching's cold halves: a nonzero return, and (only inside a catch
// handler) the exception being handled.
int describe_failure(int rc, std::string* why) noexcept;
int describe_current_exception(std::string* why) noexcept;

// Calls fn, converting a positive return into its negative and a throw into
// a negative errno (std::system_error of the system category keeps its errno,
// anything else is -ECANCELED), with *why (if given) saying what failed. The
// one place where an exception becomes an errno; notifier calls use it too.
template <class Fn>
int call_catching(Fn&& fn, std::string* why) noexcept {
  try {
    const int rc = fn();
    if (rc == 0) [[likely]]
      return 0;
    return describe_failure(rc, why);
  } catch (...) {
    return describe_current_exception(why);
  }
}
}  // namespace cpuhp
