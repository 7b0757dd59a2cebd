// SPDX-License-Identifier: MIT
// The helpers of tests/support/os_state.h against the race they exist for: a
// thread that has been joined may still be listed in /proc/self/task (glibc's
// pthread_join returns when the kernel clears the thread id, before the task
// is reaped). A single read right after join() is therefore a flaky check;
// settles_to() waits. The test counts how often the single read would have
// failed (printed, not asserted: it depends on the machine's load) and
// asserts that the waiting form never does.
#include "support/os_state.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace cpuhp::testing_support {
namespace {

TEST(OsState, ThreadsNamedSeesALiveThread) {
  std::atomic<bool> named{false}, stop{false};
  std::atomic<pid_t> tid{0};
  std::thread t([&] {
    pthread_setname_np(pthread_self(), "ut-osstate/0");
    tid = ::gettid();
    named = true;
    while (!stop.load()) std::this_thread::yield();
  });
  ASSERT_TRUE(eventually([&] { return named.load(); }));
  EXPECT_TRUE(threads_named_settle_to("ut-osstate", 1));
  EXPECT_TRUE(settles_to(
      "thread listed", [&] { return task_listed(tid.load()); }, true));
  EXPECT_TRUE(settles_to(
      "its name", [&] { return task_comm(tid.load()); }, std::string("ut-osstate/0")));
  EXPECT_EQ(threads_named("ut-osstat"), 0) << "the prefix is a whole name up to '/'";
  stop = true;
  t.join();
  EXPECT_TRUE(threads_named_settle_to("ut-osstate", 0));
  EXPECT_TRUE(settles_to(
      "thread listed", [&] { return task_listed(tid.load()); }, false));
}

// The race made wide: each thread unshares its file table (a private copy of
// this process's kDups extra descriptors) and so closes all of them in the
// kernel's exit path, after the thread id has been cleared and join() may
// return, before the task leaves /proc/self/task. A single read right after
// join() then sees the thread most of the time (about 2 rounds in 3 with 1000
// descriptors on a 2-CPU VM); it also happens, rarely, to any thread (4 in
// 20 000 PerCpuThreads joins under ThreadSanitizer). settles_to() must see it
// go every time.
TEST(OsState, AJoinedThreadLeavesProcSelfTaskEventually) {
  constexpr int kRounds = 300;
  constexpr int kDups = 256;  // well under the usual 1024 descriptors
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(null_fd, 0);
  std::vector<int> dups;
  for (int i = 0; i < kDups; ++i) {
    const int fd = ::fcntl(null_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) break;
    dups.push_back(fd);
  }
  int listed_after_join = 0;  // how often a single read right after join() fails
  for (int round = 0; round < kRounds; ++round) {
    std::atomic<pid_t> tid{0};
    std::thread t([&] {
      pthread_setname_np(pthread_self(), "ut-reap/0");
      tid = static_cast<pid_t>(::gettid());
      (void)::unshare(CLONE_FILES);  // the exit path closes the private copy
    });
    t.join();
    if (task_listed(tid.load()) || threads_named("ut-reap") != 0) ++listed_after_join;
    ASSERT_TRUE(threads_named_settle_to("ut-reap", 0)) << "round " << round;
    ASSERT_TRUE(settles_to(
        "thread " + std::to_string(tid.load()) + " listed in /proc/self/task",
        [&] { return task_listed(tid.load()); }, false))
        << "round " << round;
  }
  for (int fd : dups) ::close(fd);
  ::close(null_fd);
  std::printf(
      "a joined thread (closing %zu descriptors on exit) was still listed right after "
      "join() in %d of %d rounds: a single read there would have failed\n",
      dups.size(), listed_after_join, kRounds);
}

TEST(OsState, SettlesToReportsTheLastValue) {
  int calls = 0;
  const ::testing::AssertionResult r = settles_to(
      "the counter", [&] { return ++calls > 1000000 ? 0 : 7; }, 0,
      std::chrono::milliseconds(20));
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("the counter is still 7"), std::string::npos)
      << r.message();
  EXPECT_TRUE(settles_to(
      "x", [] { return 3; }, 3));
}

}  // namespace
}  // namespace cpuhp::testing_support
