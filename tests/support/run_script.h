// Shared pieces of the tests that run a script of the source tree (model/check,
// fuzz/run): finding it, quoting it for the shell, and running it with its
// output captured.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace cpuhp::testing_support {

// `env_var` if set and not empty, else `relative` under the source tree, found
// from this header's path (absolute in CMake builds): tests/support/ -> ../..
inline std::filesystem::path source_tree_script(const char* env_var,
                                                const std::filesystem::path& relative) {
  if (const char* env = std::getenv(env_var); env != nullptr && *env != '\0') return env;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
         relative;
}

// `s` as one single-quoted shell word.
inline std::string shell_quote(const std::string& s) {
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
  int exit_code = -1;  // -1: could not run, or killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

// Runs `command` through /bin/sh and waits for it.
inline RunResult run_capturing(const std::string& command) {
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

// Runs the source tree's script `relative` (or `env_var`'s path, see
// source_tree_script()) with bash and `args` (already quoted). A missing script
// gives exit_code -1 and an output that names the path and `env_var`.
inline RunResult run_source_tree_script(const char* env_var,
                                        const std::filesystem::path& relative,
                                        const std::string& args = "") {
  const std::filesystem::path script = source_tree_script(env_var, relative);
  if (!std::filesystem::exists(script)) {
    return {-1, relative.string() + " not found at " + script.string() + " (set " +
                    env_var + " to its path if the sources moved)"};
  }
  return run_capturing("bash " + shell_quote(script.string()) +
                       (args.empty() ? "" : " ") + args);
}

}  // namespace cpuhp::testing_support
