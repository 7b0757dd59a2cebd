// SPDX-License-Identifier: MIT
// The one home of cpuhp's diagnostics: a replaceable handler (cpuhp/diagnostics.h).
#include "cpuhp/diagnostics.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "strf.h"

namespace cpuhp {
namespace {

std::atomic<DiagnosticHandler> handler{&write_diagnostic_to_stderr};

// Formats one message and passes it to the handler; never throws.
[[gnu::format(printf, 3, 0)]] void dispatch(Severity severity, const char* component,
                                            const char* fmt, va_list args) noexcept {
  std::string message;
  std::string_view text = fmt;
  try {
    message = detail::vstrf(fmt, args);
    text = message;
  } catch (...) {  // out of memory: the format string still says what happened
  }
  // Acquire: pairs with the release exchange in set_diagnostic_handler(), so
  // the handler's code and data are visible before it is called.
  handler.load(std::memory_order_acquire)(Diagnostic{severity, component, text});
}

}  // namespace

DiagnosticHandler set_diagnostic_handler(DiagnosticHandler h) noexcept {
  if (h == nullptr) h = &write_diagnostic_to_stderr;
  // Release: pairs with the acquire load in dispatch().
  return handler.exchange(h, std::memory_order_acq_rel);
}

void write_diagnostic_to_stderr(const Diagnostic& d) noexcept {
  // One fprintf call: stdio locks the stream, so concurrent lines do not mix.
  std::fprintf(stderr, "cpuhp: %.*s: %.*s\n", static_cast<int>(d.component.size()),
               d.component.data(), static_cast<int>(d.message.size()), d.message.data());
  std::fflush(stderr);
}

namespace detail {

void warn(const char* component, const char* fmt, ...) noexcept {
  va_list args;
  va_start(args, fmt);
  dispatch(Severity::kWarning, component, fmt, args);
  va_end(args);
}

void fatal(const char* component, const char* fmt, ...) noexcept {
  va_list args;
  va_start(args, fmt);
  dispatch(Severity::kFatal, component, fmt, args);
  va_end(args);
  std::abort();
}

}  // namespace detail
}  // namespace cpuhp
