// SPDX-License-Identifier: MIT
// What the OS shows of this process's threads (/proc/self/task), and how to
// check it. The kernel updates what it shows after the call that caused the
// change has returned: glibc's pthread_join() (so std::thread::join()) returns
// once the kernel has cleared the thread id, before the task is reaped, so a
// joined thread may still be listed, name and all, for a moment (seen in 4 of
// 20 000 joins under ThreadSanitizer). Every check of state the OS shows made
// right after an action therefore waits for it: settles_to() (eventually()
// with the last value in the failure message), never a single read.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/waiting.h"

namespace cpuhp::testing_support {

// The comm of every thread of this process, as /proc/self/task lists them now.
inline std::vector<std::string> thread_names() {
  std::vector<std::string> out;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    if (std::getline(f, name)) out.push_back(name);
  }
  ::closedir(dir);
  return out;
}

// Threads listed now whose name starts with "<prefix>/" (PerCpuThreads'
// "name/cpu").
inline int threads_named(const std::string& prefix) {
  int n = 0;
  for (const std::string& name : thread_names())
    if (name.rfind(prefix + "/", 0) == 0) ++n;
  return n;
}

// Thread `tid` of this process is listed in /proc/self/task now.
inline bool task_listed(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/comm");
  return f.good();
}

// The comm of thread `tid`, "" if it is not listed.
inline std::string task_comm(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string name;
  std::getline(f, name);
  return name;
}

// `read()` returns `want` within `limit` (polled with eventually()); the
// failure says what was read last.
template <class Read, class T>
::testing::AssertionResult settles_to(
    const std::string& what, Read read, const T& want,
    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto last = read();
  if (last == want || eventually(
                          [&] {
                            last = read();
                            return last == want;
                          },
                          limit))
    return ::testing::AssertionSuccess();
  std::ostringstream os;
  os << what << " is still " << ::testing::PrintToString(last) << " after "
     << limit.count() << " ms; expected " << ::testing::PrintToString(want);
  return ::testing::AssertionFailure() << os.str();
}

// threads_named(prefix) settles to `want`.
inline ::testing::AssertionResult threads_named_settle_to(const std::string& prefix,
                                                          int want) {
  return settles_to(
      "the number of threads named " + prefix + "/*",
      [&] { return threads_named(prefix); }, want);
}

}  // namespace cpuhp::testing_support
