// Runs fuzz/run --seconds 3: the libFuzzer targets (cpulist parser, uevent
// parser) built with clang, ASan and UBSan, each on its committed seed corpus
// for a few seconds. A crash, sanitizer report or failed oracle fails the test
// with the fuzzer's output and the failing input. Skipped (not failed) where
// clang++ or libFuzzer is missing: fuzz/run exits 77 then. The longer run is
// documented in fuzz/README.md.
//
// The fuzzers are built once per build tree, in fuzz-build/ beside this test
// binary, and rebuilt when a source changes.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "support/run_script.h"

namespace {

namespace fs = std::filesystem;
using cpuhp::testing_support::run_source_tree_script;
using cpuhp::testing_support::RunResult;
using cpuhp::testing_support::shell_quote;

TEST(FuzzSmoke, EachTargetRunsCleanOnItsSeedCorpus) {
  std::string args = "--seconds 3";
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    args += " --build-dir " + shell_quote((exe.parent_path() / "fuzz-build").string());
  const RunResult r = run_source_tree_script("CPUHP_FUZZ_RUN", "fuzz/run", args);
  if (r.exit_code == 77) GTEST_SKIP() << r.output;
  ASSERT_EQ(r.exit_code, 0) << "fuzz/run " << args << " failed:\n" << r.output;
  // Both targets ran: fuzz/run prints one "ok" line per target.
  for (const char* line : {"fuzz/run: cpulist: ok", "fuzz/run: uevent: ok"})
    EXPECT_NE(r.output.find(line), std::string::npos)
        << "missing \"" << line << "\" in:\n"
        << r.output;
  std::printf("%s", r.output.c_str());
}

}  // namespace
