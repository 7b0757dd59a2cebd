// SPDX-License-Identifier: MIT
// cpuhp/diagnostics.h — where cpuhp's messages to people go.
//
// CONTRACT
//
// cpuhp reports two kinds of events that no return value can carry:
//
//   warnings  something failed that cannot fail the call it happened in (a
//             teardown or an observer that failed or threw, a thread that
//             exited holding a read lock, a hook that stalls); the call goes on.
//   fatal     misuse that would corrupt state or deadlock and that no error
//             return can report (unlock without a hold, a destructor that
//             cannot unregister, lockdep-style assertions); the process aborts
//             right after the handler returns.
//
// Every message goes through one handler. The default writes one line,
// "cpuhp: <component>: <message>", to stderr and flushes it. An application
// that logs elsewhere installs its own with set_diagnostic_handler().
//
// The handler may be called from any thread, including cpuhp's own threads,
// hotplug callbacks, RCU callbacks and with cpuhp's locks held, and
// concurrently with itself. So it must not call into cpuhp (no Domain call, no
// hotplug lock, no rcu_synchronize) and must not throw (it is called from
// noexcept code: a throw terminates). For a fatal diagnostic, returning from
// the handler aborts the process; the handler may also end it itself.
//
// ORDERING: set_diagnostic_handler() is a release store and every report an
// acquire load of the handler, so a handler installed before a thread's report
// (in happens-before order) is the one that report uses; a report racing with
// the change may use either.
#pragma once

#include <string_view>

namespace cpuhp {

enum class Severity { kWarning, kFatal };

struct Diagnostic {
  Severity severity;
  std::string_view component;  // "PercpuRwSemaphore", "Domain", "rcu", ...
  std::string_view message;    // one line, no trailing newline
};

using DiagnosticHandler = void (*)(const Diagnostic&) noexcept;

// Installs `handler` (nullptr: the default, stderr) and returns the previous
// one (never nullptr). Any thread, any time.
DiagnosticHandler set_diagnostic_handler(DiagnosticHandler handler) noexcept;

// The default handler: "cpuhp: <component>: <message>\n" on stderr, flushed.
void write_diagnostic_to_stderr(const Diagnostic& diagnostic) noexcept;

namespace detail {
// For cpuhp's own code (printf-style): pass the message through the handler.
[[gnu::format(printf, 2, 3)]] void warn(const char* component, const char* fmt,
                                        ...) noexcept;
[[noreturn, gnu::format(printf, 2, 3), gnu::cold]] void fatal(const char* component,
                                                              const char* fmt,
                                                              ...) noexcept;
}  // namespace detail

}  // namespace cpuhp
