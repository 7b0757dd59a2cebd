// Signals in a process that uses cpuhp.
//
// 1. The threads cpuhp creates block every signal: liburcu's call_rcu worker
//    (started by cpuhp with all signals blocked) and PerCpuThreads workers. A
//    process-directed signal therefore goes to an application thread. Checked
//    two ways: each non-application thread's SigBlk in /proc/self/task; and
//    with SIGUSR1 blocked on the only application thread, kill(getpid()) must
//    leave the signal pending (any cpuhp thread that did not block it would
//    take it at once), and unblocking delivers it there.
// 2. A signal handler may take an RCU read section (ReadGuard) on a registered
//    thread: the main thread replaces an RCU-protected node in a loop and
//    reclaims the old one with rcu_retire() (and sometimes rcu_synchronize()
//    or rcu_barrier(), so signals also land in grace-period and barrier
//    waits), while another thread fires SIGUSR2 at it; the handler reads the
//    node under a ReadGuard and checks it was not reclaimed (a reclaimed node
//    is poisoned, and ASan reports a use after free). The main thread is
//    registered before the first signal: registration is not
//    async-signal-safe, so a handler must not be a thread's first read section.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/percpu_threads.h"
#include "cpuhp/rcu.h"
#include "support/os_state.h"

namespace cpuhp {
namespace {

using namespace std::chrono_literals;

pid_t gettid_() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// ---- 1. cpuhp's threads block signals ------------------------------------------------
std::atomic<int> g_usr1_count{0};
std::atomic<pid_t> g_usr1_last_tid{0};
std::atomic<int> g_usr1_foreign{0};  // deliveries to a thread other than main
pid_t g_main_tid = 0;

void on_usr1(int) {
  const pid_t tid = gettid_();
  g_usr1_last_tid.store(tid);
  if (tid != g_main_tid) g_usr1_foreign.fetch_add(1);
  g_usr1_count.fetch_add(1);
}

struct TaskInfo {
  pid_t tid;
  std::string name;
  std::uint64_t blocked;
};

std::vector<TaskInfo> tasks() {
  std::vector<TaskInfo> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    TaskInfo t{static_cast<pid_t>(std::stol(entry.path().filename().string())), "", 0};
    std::ifstream status(entry.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Name:", 0) == 0)
        t.name = line.substr(line.find_first_not_of(" \t", 5));
      if (line.rfind("SigBlk:", 0) == 0)
        t.blocked = std::stoull(line.substr(7), nullptr, 16);
    }
    out.push_back(t);
  }
  return out;
}

bool blocks(std::uint64_t mask, int sig) { return (mask >> (sig - 1)) & 1; }

TEST(Signals, CpuhpThreadsBlockSignals) {
  g_main_tid = gettid_();
  // This (the only application) thread accepts SIGUSR1 while cpuhp starts its
  // threads, so they cannot simply have inherited a blocked mask from it.
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr), 0);
  struct sigaction sa {};
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, nullptr), 0);

  // liburcu's call_rcu worker.
  std::atomic<bool> called{false};
  rcu::rcu_call([&called] { called.store(true); });
  rcu::rcu_barrier();
  ASSERT_TRUE(called.load());
  // PerCpuThreads workers, on a small Domain.
  Domain d(4, 4);
  PerCpuThreads::Hooks hooks;
  hooks.should_run = [](unsigned) { return false; };
  hooks.run = [](unsigned) {};
  auto workers = PerCpuThreads::create(d, "sigtest", std::move(hooks));
  ASSERT_TRUE(workers.ok()) << workers.error().message();

  // Every thread but this one is cpuhp's (or liburcu's on cpuhp's behalf).
  // /proc shows what the kernel has now: checked until it settles (a thread
  // that exited may still be listed a moment; see support/os_state.h).
  auto not_blocking = [] {
    const std::vector<TaskInfo> all = tasks();
    std::string bad;
    if (all.size() < 1U + 1U + 4U)
      bad += std::to_string(all.size()) + " threads: expected 4 workers and liburcu's\n";
    for (const TaskInfo& t : all) {
      if (t.tid == g_main_tid) {
        if (blocks(t.blocked, SIGUSR1)) bad += "the test thread itself blocks SIGUSR1\n";
        continue;
      }
      for (int sig :
           {SIGUSR1, SIGUSR2, SIGINT, SIGTERM, SIGHUP, SIGALRM, SIGCHLD, SIGPIPE}) {
        if (blocks(t.blocked, sig)) continue;
        std::ostringstream os;
        os << "cpuhp thread " << t.tid << " (" << t.name << ") does not block signal "
           << sig << " (SigBlk " << std::hex << t.blocked << ")\n";
        bad += os.str();
      }
    }
    return bad;
  };
  EXPECT_TRUE(testing_support::settles_to("what /proc/self/task shows wrong",
                                          not_blocking, std::string()));

  // Behaviour: with SIGUSR1 blocked here, nobody may take it.
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr1, nullptr), 0);
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
    std::this_thread::sleep_for(1ms);
    rcu::rcu_call([] {});  // keep the call_rcu worker busy, awake
  }
  rcu::rcu_barrier();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(g_usr1_count.load(), 0)
      << "a cpuhp thread ran the handler (thread " << g_usr1_last_tid.load() << ")";
  sigset_t pending;
  ASSERT_EQ(sigpending(&pending), 0);
  EXPECT_EQ(sigismember(&pending, SIGUSR1), 1)
      << "SIGUSR1 is not pending for the process";
  // Unblocked, it is delivered here (at once; ThreadSanitizer defers handlers a
  // little, to its next interception point).
  ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr), 0);
  EXPECT_TRUE(testing_support::eventually([] { return g_usr1_count.load() != 0; }));
  EXPECT_EQ(g_usr1_count.load(), 1);
  EXPECT_EQ(g_usr1_foreign.load(), 0);
  EXPECT_EQ(g_usr1_last_tid.load(), g_main_tid);

  EXPECT_TRUE((*workers)->stop().ok());
  signal(SIGUSR1, SIG_DFL);
}

// ---- 2. a signal handler takes an RCU read guard -------------------------------------
constexpr std::uint64_t kPoison = 0xDEADDEADDEADDEADull;
struct Node {
  std::uint64_t seq;
  std::uint64_t check;
};
std::atomic<Node*> g_node{nullptr};
std::atomic<long> g_handler_reads{0};
std::atomic<long> g_handler_nested{0};  // the handler interrupted a read section
std::atomic<long> g_handler_violations{0};

void reclaim(Node* n) {
  n->seq = kPoison;
  n->check = kPoison;
  delete n;
}

void on_usr2(int) {
  const int saved_errno = errno;
  if (rcu::rcu_read_section_held())
    g_handler_nested.fetch_add(1, std::memory_order_relaxed);
  {
    rcu::ReadGuard guard;
    const Node* n = g_node.load(std::memory_order_acquire);
    if (n == nullptr || n->seq == kPoison || n->check != ~n->seq)
      g_handler_violations.fetch_add(1, std::memory_order_relaxed);
    g_handler_reads.fetch_add(1, std::memory_order_relaxed);
  }
  errno = saved_errno;
}

TEST(Signals, HandlerTakesRcuReadGuard) {
  // Register this thread (its first read section) before any signal can come.
  { rcu::ReadGuard first; }
  ASSERT_TRUE(URCU_TLS(urcu_memb_reader).registered);

  g_node.store(new Node{0, ~std::uint64_t{0}}, std::memory_order_release);
  struct sigaction sa {};
  sa.sa_handler = on_usr2;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR2, &sa, nullptr), 0);
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &usr2, nullptr), 0);

  const pthread_t main_thread = pthread_self();
  std::atomic<bool> stop{false};
  std::atomic<long> sent{0};
  std::thread sender([&] {
    // The sender takes no SIGUSR2 itself.
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, nullptr);
    while (!stop.load(std::memory_order_relaxed)) {
      if (pthread_kill(main_thread, SIGUSR2) == 0) sent.fetch_add(1);
      std::this_thread::yield();
    }
  });

  std::uint64_t seq = 0;
  long local_violations = 0;
  const auto end = std::chrono::steady_clock::now() + 1s;
  while (std::chrono::steady_clock::now() < end) {
    Node* old = g_node.exchange(new Node{++seq, ~seq}, std::memory_order_acq_rel);
    if (seq % 128 == 0) {
      rcu::rcu_synchronize();  // signals land in the grace-period wait
      reclaim(old);
    } else {
      rcu::rcu_retire(old, reclaim);
    }
    {  // signals land inside a read section of this thread too (nesting)
      rcu::ReadGuard guard;
      const Node* n = g_node.load(std::memory_order_acquire);
      for (int i = 0; i < 256; ++i) {
        if (n->seq == kPoison || n->check != ~n->seq) ++local_violations;
        std::atomic_signal_fence(std::memory_order_seq_cst);  // re-read each time
      }
    }
    if (seq % 1024 == 0) rcu::rcu_barrier();  // and in the barrier wait
  }
  stop = true;
  sender.join();
  // Let the last signals land, then stop taking them.
  std::this_thread::sleep_for(5ms);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr2, nullptr), 0);
  signal(SIGUSR2, SIG_DFL);
  rcu::rcu_barrier();

  EXPECT_EQ(g_handler_violations.load(), 0);
  EXPECT_EQ(local_violations, 0);
  EXPECT_GT(g_handler_reads.load(), 10) << sent.load() << " signals sent";
  std::printf(
      "%ld signals sent, %ld handler read sections (%ld inside a read section), "
      "%llu replacements\n",
      sent.load(), g_handler_reads.load(), g_handler_nested.load(),
      static_cast<unsigned long long>(seq));
  reclaim(g_node.exchange(nullptr));
}

}  // namespace
}  // namespace cpuhp
