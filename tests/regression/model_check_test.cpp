// Runs model/check: the Promela models of the hotplug lock, of registration
// against hotplug and of the RCU online mask must verify with spin, every
// mutant must be rejected by the property meant to catch it, every "limit"
// (a stronger property the code is documented not to keep) must be refuted,
// and no finding may have gone stale. Skipped (not failed) where spin or a C
// compiler is missing: model/check exits 77 then.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

namespace fs = std::filesystem;

// model/check in the source tree: CPUHP_MODEL_CHECK if set, else found from
// this file's path (absolute in CMake builds): tests/regression/ -> ../../model.
fs::path model_check_script() {
  if (const char* env = std::getenv("CPUHP_MODEL_CHECK"); env != nullptr && *env != '\0')
    return env;
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "model" / "check";
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

struct RunResult {
  int exit_code = -1;
  std::string output;
};

RunResult run_capturing(const std::string& command) {
  RunResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed";
    return result;
  }
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe) != nullptr)
    result.output += buffer.data();
  const int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

TEST(ModelCheck, EveryModelVerifiesAndEveryMutantIsCaught) {
  const fs::path script = model_check_script();
  ASSERT_TRUE(fs::exists(script))
      << "model/check not found at " << script
      << " (set CPUHP_MODEL_CHECK to its path if the sources moved)";
  const RunResult r = run_capturing("bash " + shell_quote(script.string()));
  if (r.exit_code == 77) GTEST_SKIP() << r.output;
  EXPECT_EQ(r.exit_code, 0) << "model/check failed:\n" << r.output;
  // Something ran: one PASS line at least per model.
  for (const char* model :
       {"PASS model percpu_rwsem ", "PASS model registration ", "PASS model rcu_online_mask "})
    EXPECT_NE(r.output.find(model), std::string::npos)
        << "missing \"" << model << "\" in:\n"
        << r.output;
  std::printf("%s", r.output.c_str());
}

}  // namespace
