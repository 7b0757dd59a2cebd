// SPDX-License-Identifier: MIT
// One handler for every cpuhp diagnostic: replaceable, restored by nullptr,
// and a fatal report still aborts after the handler returns.
#include "cpuhp/diagnostics.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cpuhp {
namespace {

std::vector<std::string>* captured = nullptr;

void capture(const Diagnostic& d) noexcept {
  captured->push_back(std::string(d.severity == Severity::kFatal ? "fatal " : "warn ") +
                      std::string(d.component) + ": " + std::string(d.message));
}

TEST(Diagnostics, HandlerReceivesWarningsAndIsRestoredByNullptr) {
  std::vector<std::string> lines;
  captured = &lines;
  const DiagnosticHandler before = set_diagnostic_handler(&capture);
  EXPECT_EQ(before, &write_diagnostic_to_stderr);
  detail::warn("Test", "value %d of %s", 42, "x");
  EXPECT_EQ(set_diagnostic_handler(nullptr), &capture);
  testing::internal::CaptureStderr();
  detail::warn("Test", "to stderr");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "cpuhp: Test: to stderr\n");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "warn Test: value 42 of x");
  captured = nullptr;
}

TEST(DiagnosticsDeathTest, FatalAbortsAfterTheHandler) {
  EXPECT_DEATH(
      {
        set_diagnostic_handler(+[](const Diagnostic& d) noexcept {
          write_diagnostic_to_stderr(Diagnostic{d.severity, "handled", d.message});
        });
        detail::fatal("Test", "bad %s", "thing");
      },
      "cpuhp: handled: bad thing");
}

}  // namespace
}  // namespace cpuhp
