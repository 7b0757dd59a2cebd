// membarrier(2) refused by a seccomp filter, with EPERM and with ENOSYS (what
// container runtimes and old kernels do): the hotplug lock falls back to its
// fenced read side, liburcu to fences on its read side, and both stay correct
// under stress.
//
// How: the test forks; the child installs a seccomp filter that makes every
// membarrier() fail with the chosen errno, then execs this same binary with
// CPUHP_SECCOMP_CHILD=<errno name>, filtered to the SeccompChild tests. The exec
// matters: cpuhp decides once per process whether membarrier works (a static
// inherited across fork), and liburcu decides in its library constructor. Both
// run again in the exec'd image, after the filter is in place (a filter
// survives execve() under PR_SET_NO_NEW_PRIVS). The SeccompChild tests check
// that the fallback is in effect, then run a lock stress and an RCU stress.
// The stress binaries of tests/stress (percpu_rwsem_stress, rcu_stress), when
// built beside this one, also run under the filter.
//
// Skipped where seccomp filters cannot be installed (no CONFIG_SECCOMP_FILTER)
// or the architecture is not one the filter knows.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/percpu_rwsem.h"
#include "cpuhp/rcu.h"

extern char** environ;

namespace cpuhp {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kSkipExit = 77;  // the child could not install the filter
constexpr const char* kChildEnv = "CPUHP_SECCOMP_CHILD";

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr std::uint32_t kAuditArch = 0;  // unknown: the tests skip
#endif

// In a forked child, before exec: only async-signal-safe calls. Returns false
// if the kernel refuses the filter.
bool install_membarrier_filter(int err) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      // Another ABI (x32, ia32): not ours to filter.
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
      BPF_STMT(BPF_RET | BPF_K,
               SECCOMP_RET_ERRNO | (static_cast<std::uint32_t>(err) & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0;
}

struct ChildResult {
  int status = -1;  // waitpid status
  bool timed_out = false;
  std::string output;
};

// Runs `argv` (argv[0] is the program) with membarrier() refused with `err`,
// `extra_env` added to the environment; returns its status and output.
ChildResult run_filtered(int err, const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env,
                         std::chrono::seconds timeout = 300s) {
  // Everything the child needs is built before fork(): after it, only
  // async-signal-safe calls.
  std::vector<std::string> env_strings = extra_env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool overridden = entry.rfind("GTEST_OUTPUT=", 0) == 0;  // keep the parent's report
    for (const std::string& extra : extra_env)
      if (entry.substr(0, entry.find('=') + 1) == extra.substr(0, extra.find('=') + 1))
        overridden = true;
    if (!overridden) env_strings.push_back(entry);
  }
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argvp;
  for (std::string& s : args) argvp.push_back(s.data());
  argvp.push_back(nullptr);

  ChildResult result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    result.output = std::string("pipe2: ") + std::strerror(errno);
    return result;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    result.output = std::string("fork: ") + std::strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return result;
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    if (!install_membarrier_filter(err)) _exit(kSkipExit);
    execve(argvp[0], argvp.data(), envp.data());
    _exit(127);
  }
  close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    const int n = poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    const ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the child (and anything it forked) closed the pipe
    result.output.append(buf, static_cast<std::size_t>(got));
  }
  close(fds[0]);
  while (waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

std::string describe(const ChildResult& r) {
  std::string s;
  if (r.timed_out) s += "timed out and was killed; ";
  if (WIFEXITED(r.status))
    s += "exit status " + std::to_string(WEXITSTATUS(r.status));
  else if (WIFSIGNALED(r.status))
    s += "killed by signal " + std::to_string(WTERMSIG(r.status));
  else
    s += "status " + std::to_string(r.status);
  return s + "; output:\n" + r.output;
}

fs::path self_exe() { return fs::read_symlink("/proc/self/exe"); }

const char* errno_name(int err) { return err == EPERM ? "EPERM" : "ENOSYS"; }

void run_child_tests(int err) {
  if (kAuditArch == 0)
    GTEST_SKIP() << "no seccomp audit arch known for this architecture";
  const ChildResult r =
      run_filtered(err,
                   {self_exe().string(), "--gtest_filter=SeccompChild.*",
                    "--gtest_also_run_disabled_tests"},
                   {std::string(kChildEnv) + "=" + errno_name(err)});
  if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == kSkipExit)
    GTEST_SKIP() << "cannot install a seccomp filter here (prctl refused it)";
  ASSERT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << describe(r);
  // The child really ran the checks (not skipped them all).
  EXPECT_NE(r.output.find("[  PASSED  ] 3 tests"), std::string::npos) << r.output;
  std::printf("%s", r.output.c_str());
}

TEST(SeccompMembarrier, RefusedWithEpermFencedFallbackIsCorrect) {
  run_child_tests(EPERM);
}
TEST(SeccompMembarrier, RefusedWithEnosysFencedFallbackIsCorrect) {
  run_child_tests(ENOSYS);
}

// The project's own stress tests, when built beside this binary, pass with
// membarrier() refused.
TEST(SeccompMembarrier, StressTestsPassWithMembarrierRefused) {
  if (kAuditArch == 0)
    GTEST_SKIP() << "no seccomp audit arch known for this architecture";
  const fs::path dir = self_exe().parent_path();
  int ran = 0;
  for (const char* name : {"percpu_rwsem_stress", "rcu_stress"}) {
    const fs::path bin = dir / name;
    if (!fs::exists(bin)) continue;
    for (int err : {EPERM, ENOSYS}) {
      const ChildResult r = run_filtered(err, {bin.string()}, {"CPUHP_STRESS_SECONDS=1"});
      if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == kSkipExit)
        GTEST_SKIP() << "cannot install a seccomp filter here (prctl refused it)";
      EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0)
          << name << " with membarrier() refused (" << errno_name(err)
          << "): " << describe(r);
      ++ran;
    }
  }
  if (ran == 0)
    GTEST_SKIP() << "percpu_rwsem_stress and rcu_stress are not built in " << dir;
}

// ---- the exec'd child ---------------------------------------------------------------
// DISABLED_: they run only when the tests above exec this binary with
// --gtest_also_run_disabled_tests and CPUHP_SECCOMP_CHILD set (and skip if run
// by hand without it).

int child_errno() {
  const char* v = std::getenv(kChildEnv);
  if (v == nullptr) return 0;
  if (std::strcmp(v, "EPERM") == 0) return EPERM;
  if (std::strcmp(v, "ENOSYS") == 0) return ENOSYS;
  return -1;
}

#define SKIP_UNLESS_SECCOMP_CHILD()                                                   \
  const int expected_errno = child_errno();                                           \
  if (expected_errno == 0) GTEST_SKIP() << "runs only in the filtered child process"; \
  ASSERT_GT(expected_errno, 0) << kChildEnv << " has an unknown value"

double stress_seconds() {
  const char* env = std::getenv("CPUHP_STRESS_SECONDS");
  if (env == nullptr || *env == '\0') return 1.0;
  const double s = std::strtod(env, nullptr);
  return s > 0 ? s : 1.0;
}

TEST(SeccompChild, DISABLED_MembarrierRefusedAndFallbackSelected) {
  SKIP_UNLESS_SECCOMP_CHILD();
  errno = 0;
  EXPECT_EQ(syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0U, 0), -1);
  EXPECT_EQ(errno, expected_errno) << "the seccomp filter is not in effect";
  EXPECT_FALSE(membarrier_available());
  PercpuRwSemaphore sem;
  EXPECT_EQ(sem.read_side(), ReadSide::kFenced);
  Domain d(4, 2);
  EXPECT_EQ(d.hotplug_lock().read_side(), ReadSide::kFenced);
  // liburcu's own detection, in its constructor after exec: fences on the read side.
  EXPECT_EQ(urcu_memb_has_sys_membarrier, 0);
}

// Readers check, under the read lock, that a record of plain fields is
// consistent and stable; writers rewrite it under the write lock. A read
// section overlapping a write section shows up as a torn or changing record
// (and, in the TSAN build, as a data race).
TEST(SeccompChild, DISABLED_HotplugLockStressOnFencedReadSide) {
  SKIP_UNLESS_SECCOMP_CHILD();
  struct Record {
    long version = 0;
    long a = 0;
    long b = 0;
  };
  PercpuRwSemaphore sem;
  ASSERT_EQ(sem.read_side(), ReadSide::kFenced);
  Record rec;  // plain fields on purpose
  std::atomic<bool> stop{false};
  std::atomic<long> violations{0};
  std::atomic<long> reads{0};
  std::atomic<long> writes{0};
  std::atomic<int> readers_inside{0};
  std::atomic<bool> writer_inside{false};

  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      while (!stop.load(std::memory_order_relaxed)) {
        ReadLock lock(sem);
        readers_inside.fetch_add(1, std::memory_order_relaxed);
        if (writer_inside.load(std::memory_order_relaxed)) violations.fetch_add(1);
        const long v = rec.version;
        if (rec.a != v * 3 || rec.b != v * 7) violations.fetch_add(1);
        if (r == 1) {  // nested read lock, as hotplug callers do
          ReadLock inner(sem);
          if (rec.version != v) violations.fetch_add(1);
        }
        std::this_thread::yield();
        if (rec.version != v || rec.a != v * 3) violations.fetch_add(1);
        readers_inside.fetch_sub(1, std::memory_order_relaxed);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      WriteLock lock(sem);
      writer_inside.store(true, std::memory_order_relaxed);
      if (readers_inside.load(std::memory_order_relaxed) != 0) violations.fetch_add(1);
      const long v = rec.version + 1;
      rec.a = v * 3;
      rec.version = v;
      rec.b = v * 7;
      writer_inside.store(false, std::memory_order_relaxed);
      writes.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(stress_seconds()));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_GT(writes.load(), 0);
  std::printf("hotplug lock, fenced read side: %ld reads, %ld writes\n", reads.load(),
              writes.load());
}

// Readers dereference an RCU-protected node while the updater replaces it and
// reclaims the old one (rcu_retire, or rcu_synchronize then delete). A
// reclaimed node is poisoned before it is freed: a reader that could still see
// it counts a violation (and ASan reports the use after free).
TEST(SeccompChild, DISABLED_RcuStressOnFencedReadSide) {
  SKIP_UNLESS_SECCOMP_CHILD();
  constexpr std::uint64_t kPoison = 0xDEADDEADDEADDEADull;
  struct Node {
    std::uint64_t seq;
    std::uint64_t check;
  };
  static std::atomic<Node*> head{nullptr};
  static std::atomic<long> reclaimed{0};
  auto make = [](std::uint64_t seq) { return new Node{seq, ~seq}; };
  auto reclaim = [](Node* n) {
    n->seq = kPoison;
    n->check = kPoison;
    reclaimed.fetch_add(1, std::memory_order_relaxed);
    delete n;
  };
  head.store(make(0), std::memory_order_release);
  rcu::rcu_synchronize();  // a grace period with nobody inside

  std::atomic<bool> stop{false};
  std::atomic<long> violations{0};
  std::atomic<long> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        rcu::ReadGuard guard;
        const Node* n = head.load(std::memory_order_acquire);
        for (int i = 0; i < 8; ++i) {
          if (n->seq == kPoison || n->check != ~n->seq) violations.fetch_add(1);
        }
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::uint64_t seq = 0;
  long replaced = 0;
  const auto end =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds());
  while (std::chrono::steady_clock::now() < end) {
    Node* old = head.exchange(make(++seq), std::memory_order_acq_rel);
    if (seq % 16 == 0) {
      rcu::rcu_synchronize();
      reclaim(old);
    } else {
      rcu::rcu_retire(old, reclaim);
    }
    ++replaced;
  }
  stop = true;
  for (auto& t : readers) t.join();
  rcu::rcu_barrier();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(reclaimed.load(), replaced);
  EXPECT_GT(reads.load(), 0);
  reclaim(head.exchange(nullptr));
  std::printf("RCU with fences on the read side: %ld reads, %ld replacements\n",
              reads.load(), replaced);
}

}  // namespace
}  // namespace cpuhp
