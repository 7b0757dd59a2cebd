// SPDX-License-Identifier: MIT
// printf-style formatting into std::string (GCC 12 has no std::format).
#pragma once

#include <cstdarg>
#include <cstdio>
#include <string>

namespace cpuhp::detail {

// `args` is consumed (va_end is the caller's).
[[gnu::format(printf, 1, 0)]] inline std::string vstrf(const char* fmt, va_list args) {
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string out(n > 0 ? static_cast<std::size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, args);
  return out;
}

[[gnu::format(printf, 1, 2)]] inline std::string strf(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::string out = vstrf(fmt, args);
  va_end(args);
  return out;
}

}  // namespace cpuhp::detail
