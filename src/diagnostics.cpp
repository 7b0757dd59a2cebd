// SPDX-License-Identifier: MIT
// The one home of cpuhp's diagnostics: a replaceable handler (cpuhp/diagnostics.h).
#include "cpuhp/diagnostics.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace cpuhp {
namespace {

std::atomic<DiagnosticHandler> handler{&write_diagnostic_to_stderr};

std::string vformat(const char* fmt, va_list args) {
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string out(n > 0 ? static_cast<std::size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, args);
  return out;
}

void dispatch(Severity severity, const char* component, const std::string& message) {
  // Acquire: pairs with the release exchange in set_diagnostic_handler(), so
  // the handler's code and data are visible before it is called.
  handler.load(std::memory_order_acquire)(Diagnostic{severity, component, message});
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
  std::string message;
  try {
    message = vformat(fmt, args);
  } catch (...) {
    message = fmt;  // out of memory: the format string still says what happened
  }
  va_end(args);
  dispatch(Severity::kWarning, component, message);
}

void fatal(const char* component, const char* fmt, ...) noexcept {
  va_list args;
  va_start(args, fmt);
  std::string message;
  try {
    message = vformat(fmt, args);
  } catch (...) {
    message = fmt;
  }
  va_end(args);
  dispatch(Severity::kFatal, component, message);
  std::abort();
}

}  // namespace detail
}  // namespace cpuhp
