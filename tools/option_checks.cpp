// SPDX-License-Identifier: MIT
#include "option_checks.h"

#include <cmath>
#include <cstdio>
#include <string>

namespace cpuhp::tool {

namespace {

// "%g": 0.1, 3600, 1 (not CLI::Range's "0.100000").
std::string number_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

FiniteRange::FiniteRange(double min, double max) {
  const std::string range = number_text(min) + " to " + number_text(max);
  description("FLOAT in [" + number_text(min) + " - " + number_text(max) + "]");
  func_ = [min, max, range](std::string& text) -> std::string {
    double v = 0;
    // The option's own conversion is CLI11's: the check parses the same way.
    if (!CLI::detail::lexical_cast(text, v))
      return "'" + text + "' is not a number (wanted " + range + ")";
    if (!std::isfinite(v))
      return "'" + text + "' is not a finite number (wanted " + range + ")";
    if (v < min || v > max)
      return "'" + text + "' is out of range (wanted " + range + ")";
    return {};
  };
}

}  // namespace cpuhp::tool
