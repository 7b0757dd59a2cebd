// SPDX-License-Identifier: MIT
// The check every floating-point option of the tool goes through.
#pragma once

#include <CLI/CLI.hpp>

namespace cpuhp::tool {

// A CLI11 validator for a floating-point option: the text must be a finite
// number in [min, max]. CLI::Range alone lets NaN through (every comparison
// with NaN is false), so `--seconds nan` used to run a torture that checked
// nothing; this one refuses NaN, +-inf and anything out of range. CLI11 puts
// the option's name in front of the message, which quotes the text:
//   --seconds: 'nan' is not a finite number (wanted 0.1 to 3600)
class FiniteRange : public CLI::Validator {
 public:
  FiniteRange(double min, double max);
};

}  // namespace cpuhp::tool
