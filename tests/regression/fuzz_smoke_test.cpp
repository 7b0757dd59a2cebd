// Runs fuzz/run: the libFuzzer targets built with clang, ASan and UBSan, each
// on its committed seed corpus for a bounded time. The parsers (cpulist,
// uevent) get 3 s each; the API sequence fuzzer (api: a whole Domain driven
// through random call sequences, with re-entrant callbacks and RCU readers)
// gets 25 s, long enough to find a defect of the kind it was written for in
// a few seconds. A crash, sanitizer report or failed oracle fails the test
// with the fuzzer's output and the failing input. Skipped (not failed) where
// clang++, libFuzzer or liburcu's pkg-config file is missing: fuzz/run exits
// 77 then. The longer run is documented in fuzz/README.md.
//
// The fuzzers are built once per build tree, in fuzz-build/ beside this test
// binary, and rebuilt when a source changes.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <string>

#include "support/run_script.h"

namespace {

namespace fs = std::filesystem;
using cpuhp::testing_support::run_source_tree_script;
using cpuhp::testing_support::RunResult;
using cpuhp::testing_support::shell_quote;

// fuzz/run with `args` and the shared build directory; skips on exit 77 and
// expects one "ok" line per target.
void run_fuzz(const std::string& args, std::initializer_list<const char*> targets) {
  std::string all = args;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    all += " --build-dir " + shell_quote((exe.parent_path() / "fuzz-build").string());
  const RunResult r = run_source_tree_script("CPUHP_FUZZ_RUN", "fuzz/run", all);
  if (r.exit_code == 77) GTEST_SKIP() << r.output;
  ASSERT_EQ(r.exit_code, 0) << "fuzz/run " << all << " failed:\n" << r.output;
  for (const char* target : targets) {
    const std::string line = std::string("fuzz/run: ") + target + ": ok";
    EXPECT_NE(r.output.find(line), std::string::npos)
        << "missing \"" << line << "\" in:\n"
        << r.output;
  }
  std::printf("%s", r.output.c_str());
}

TEST(FuzzSmoke, ParsersRunCleanOnTheirSeedCorpus) {
  run_fuzz("--seconds 3 --target cpulist --target uevent", {"cpulist", "uevent"});
}

TEST(FuzzSmoke, ApiSequencesRunClean) { run_fuzz("--seconds 25 --target api", {"api"}); }

}  // namespace
