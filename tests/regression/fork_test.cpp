// fork() in a process with cpuhp threads running (the behaviour is documented
// in cpuhp/rcu.h, "fork()"): the child gets working RCU (grace periods,
// callbacks on a new call_rcu worker, new threads), a usable default domain and
// usable hotplug locks; the parent's threads carry on undisturbed.
//
// The parent runs, while it forks again and again: RCU readers, a thread
// queuing rcu_call()/rcu_retire() in a loop, a thread in rcu_synchronize() in a
// loop, short-lived threads that register and exit, and hotplug storms on a
// Domain of its own with per-CPU data that RCU readers walk. Each child checks
// the promised behaviour without gtest (it must not report into the parent's
// run) and exits 0, or prints what failed and exits 1. A child that hangs is
// killed by its alarm() (SIGALRM) and the parent reports it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/kernel.h"
#include "cpuhp/percpu_rwsem.h"
#include "cpuhp/rcu.h"

#if defined(__SANITIZE_THREAD__)
#define FORK_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FORK_TEST_TSAN 1
#endif
#endif

#ifdef FORK_TEST_TSAN
// ThreadSanitizer and fork() in a multi-threaded process: by default TSAN kills
// a child that starts a thread, and the child must (the call_rcu worker). With
// die_after_fork=0 it goes on, but it ignores every access in such a child (it
// cannot trust its own state there), and its thread registry still lists the
// parent's threads: a new thread that glibc puts on one of their stacks makes
// TSAN die with "dup thread with used id" (exit 66). So under TSAN the children
// skip starting threads of their own, and a child exit 66 is accepted as TSAN's
// limitation; the child's behaviour is checked by the other builds. The parent
// side (the fork handlers against the parent's running threads) is fully
// checked by TSAN.
extern "C" const char* __tsan_default_options() { return "die_after_fork=0"; }
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif

#if defined(__SANITIZE_ADDRESS__)
#define FORK_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FORK_TEST_ASAN 1
#endif
#endif
// The sanitizer runtimes of GCC 12 do not lock all of their own allocators
// across fork(): a child of a process whose other threads were inside
// malloc()/free() (or, under TSAN, creating a sync object) at that moment can
// block forever in its first allocation; seen here under ASan and TSAN, in the
// setup of the child's new call_rcu worker. glibc's malloc does lock across
// fork(). So in sanitizer builds the test's own threads that allocate are paused
// between two iterations while the parent forks (their RCU registrations, the
// readers and cpuhp's threads are not); the full, unpaused version runs in the
// Release build.
#ifdef FORK_TEST_ASAN
constexpr bool kPauseAllocators = true;
#elif defined(FORK_TEST_TSAN)
constexpr bool kPauseAllocators = true;
#else
constexpr bool kPauseAllocators = false;
#endif

namespace cpuhp {
namespace {

using namespace std::chrono_literals;

// Pauses the allocating test threads around fork() in sanitizer builds (see above).
class AllocPause {
 public:
  class Iteration {
   public:
    explicit Iteration(AllocPause& p) : p_(p) { p_.enter(); }
    ~Iteration() { p_.exit(); }
    Iteration(const Iteration&) = delete;
    Iteration& operator=(const Iteration&) = delete;

   private:
    AllocPause& p_;
  };
  void pause() {
    if (!kPauseAllocators) return;
    std::unique_lock lock(mutex_);
    paused_ = true;
    cv_.wait(lock, [this] { return active_ == 0; });
  }
  void resume() {
    if (!kPauseAllocators) return;
    {
      std::lock_guard lock(mutex_);
      paused_ = false;
    }
    cv_.notify_all();
  }

 private:
  void enter() {
    if (!kPauseAllocators) return;
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return !paused_; });
    ++active_;
  }
  void exit() {
    if (!kPauseAllocators) return;
    std::lock_guard lock(mutex_);
    if (--active_ == 0) cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  int active_ = 0;
  bool paused_ = false;
};

constexpr unsigned kDefaultCpus = 8;
constexpr unsigned kStormCpus = 16;
constexpr int kForks = 6;
constexpr unsigned kChildAlarmSeconds = 30;

// ---- checks inside a child: no gtest ------------------------------------------------
int g_child_failures = 0;

#define CHILD_CHECK(cond)                                                        \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "fork child %d: %s:%d: check failed: %s\n", getpid(), \
                   __FILE__, __LINE__, #cond);                                   \
      ++g_child_failures;                                                        \
    }                                                                            \
  } while (0)

// An RCU-protected node: poisoned before it is freed, so a reader that could
// see a reclaimed node notices (and ASan reports the use after free).
constexpr std::uint64_t kPoison = 0xDEADDEADDEADDEADull;
struct Node {
  std::uint64_t seq;
  std::uint64_t check;
};
Node* make_node(std::uint64_t seq) { return new Node{seq, ~seq}; }
void reclaim_node(Node* n) {
  n->seq = kPoison;
  n->check = kPoison;
  delete n;
}
bool node_ok(const Node* n) { return n->seq != kPoison && n->check == ~n->seq; }

std::atomic<Node*> g_head{nullptr};

// Per-CPU data of the storm Domain, built by a PREPARE startup before the
// online bit is set and freed by its teardown after the grace period.
struct Stats {
  std::uint64_t magic = 0x57A75;
  std::atomic<long> hits{0};
};

void init_default_domain() {
  static const bool done = [] {
    const Status s = kernel::init(kDefaultCpus, kDefaultCpus);
    if (!s.ok()) std::abort();
    return true;
  }();
  (void)done;
}

// A child's status is a pass: exit 0 (or, under TSAN, TSAN's own exit 66; see
// __tsan_default_options above).
bool child_passed(int status) {
  if (!WIFEXITED(status)) return false;
  return WEXITSTATUS(status) == 0 || (kTsan && WEXITSTATUS(status) == 66);
}

// What a child checks. Returns the exit status.
int child_main(int generation) {
  alarm(kChildAlarmSeconds);  // a hang ends as SIGALRM, which the parent reports

  // RCU: grace periods, callbacks, reclamation.
  rcu::rcu_synchronize();
  std::atomic<bool> called{false};
  rcu::rcu_call([&called] { called.store(true); });
  rcu::rcu_barrier();
  CHILD_CHECK(called.load());
  {
    rcu::ReadGuard guard;
    CHILD_CHECK(node_ok(g_head.load(std::memory_order_acquire)));
  }
  Node* old = g_head.exchange(make_node(1000000 + generation), std::memory_order_acq_rel);
  rcu::rcu_retire(old, reclaim_node);
  rcu::rcu_synchronize();
  rcu::rcu_barrier();

  // New threads: they get the stacks (and TLS) of the parent's threads that do
  // not exist here; each registers, reads, queues a callback and exits.
  std::atomic<int> thread_callbacks{0};
  std::vector<std::thread> threads;
  const int new_threads = kTsan ? 0 : 6;  // see __tsan_default_options above
  for (int i = 0; i < new_threads; ++i) {
    threads.emplace_back([&thread_callbacks] {
      for (int k = 0; k < 50; ++k) {
        rcu::ReadGuard guard;
        if (!node_ok(g_head.load(std::memory_order_acquire))) std::abort();
      }
      rcu::rcu_call([&thread_callbacks] { thread_callbacks.fetch_add(1); });
      rcu::rcu_synchronize();
    });
  }
  for (auto& t : threads) t.join();
  rcu::rcu_barrier();
  CHILD_CHECK(thread_callbacks.load() == new_threads);

  // The default domain: hotplug, registration, the hotplug lock.
  Domain& dd = kernel::default_domain();
  CHILD_CHECK(dd.capacity() == kDefaultCpus);
  CHILD_CHECK(cpu_online(1));
  CHILD_CHECK(cpu_down(1) == 0);
  CHILD_CHECK(!cpu_online(1));
  CHILD_CHECK(cpu_up(1) == 0);
  CHILD_CHECK(cpu_online(1));
  static std::atomic<int> startups{0};
  static std::atomic<int> teardowns{0};
  startups = 0;
  teardowns = 0;
  const int state = cpuhp_setup_state(
      CPUHP_AP_ONLINE_DYN, "fork:child",
      [](unsigned) {
        startups.fetch_add(1);
        return 0;
      },
      [](unsigned) {
        teardowns.fetch_add(1);
        return 0;
      });
  CHILD_CHECK(state > 0);
  CHILD_CHECK(startups.load() == static_cast<int>(num_online_cpus()));
  CHILD_CHECK(cpu_down(2) == 0);
  CHILD_CHECK(teardowns.load() == 1);
  CHILD_CHECK(cpu_up(2) == 0);
  if (state > 0) cpuhp_remove_state(state);
  cpus_read_lock();
  CHILD_CHECK(num_online_cpus() == kDefaultCpus);
  cpus_read_unlock();
  {
    WriteLock w(dd.hotplug_lock());
    CHILD_CHECK(dd.hotplug_lock().held_exclusive_by_this_thread());
  }

  // A PercpuRwSemaphore made in the child, both sides.
  {
    PercpuRwSemaphore sem;
    { WriteLock w(sem); }
    { ReadLock r(sem); }
    { WriteLock w(sem); }
  }

  // And forking again from here works the same.
  if (generation == 0) {
    const pid_t grandchild = fork();
    if (grandchild == 0) _exit(child_main(1));
    int status = 0;
    CHILD_CHECK(grandchild > 0);
    if (grandchild > 0) {
      CHILD_CHECK(waitpid(grandchild, &status, 0) == grandchild);
      CHILD_CHECK(child_passed(status));
    }
  }
  return g_child_failures == 0 ? 0 : 1;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    std::string s = "killed by signal " + std::to_string(WTERMSIG(status));
    if (WTERMSIG(status) == SIGALRM) s += " (SIGALRM: the child hung)";
    return s;
  }
  return "status " + std::to_string(status);
}

// Waits for `pid` at most `timeout`; kills it if it is still running.
int wait_with_timeout(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return status;
    }
    std::this_thread::sleep_for(5ms);
  }
}

// ---- the parent's activity ------------------------------------------------------------
class Activity {
 public:
  Activity() : storm_(kStormCpus, kStormCpus) {}
  ~Activity() {
    if (!threads_.empty()) stop();  // a failed ASSERT left them running
  }
  Activity(const Activity&) = delete;
  Activity& operator=(const Activity&) = delete;

  void start() {
    g_head.store(make_node(0), std::memory_order_release);
    stats_ = std::make_unique<std::atomic<Stats*>[]>(kStormCpus);
    auto id = storm_.setup_state(
        Section::kPrepare, "fork_test:stats",
        [this](unsigned cpu) {
          stats_[cpu].store(new Stats, std::memory_order_release);
          return 0;
        },
        [this](unsigned cpu) {
          Stats* s = stats_[cpu].exchange(nullptr, std::memory_order_acq_rel);
          if (s != nullptr) s->magic = 0;
          delete s;
          return 0;
        });
    ASSERT_TRUE(id.ok()) << id.error().message();
    state_ = *id;

    for (int r = 0; r < 2; ++r) threads_.emplace_back([this] { reader(); });
    threads_.emplace_back([this] { caller(); });
    threads_.emplace_back([this] { synchronizer(); });
    threads_.emplace_back([this] { churner(); });
    threads_.emplace_back([this] { hotplugger(); });
  }

  void stop() {
    stop_.store(true);
    for (auto& t : threads_) t.join();
    threads_.clear();
    rcu::rcu_barrier();
    // No reader left: the teardowns free every CPU's Stats.
    if (state_ != StateId{}) {
      const Status removed = storm_.remove_state(state_);
      EXPECT_TRUE(removed.ok()) << removed.error().message();
      state_ = StateId{};
    }
  }

  AllocPause& alloc_pause() { return alloc_pause_; }

  long progress() const {
    return reads_.load() + callbacks_run_.load() + hotplug_cycles_.load() +
           synchronizes_.load() + churned_.load();
  }

  void check() {
    EXPECT_EQ(violations_.load(), 0);
    EXPECT_EQ(hotplug_errors_.load(), 0) << last_hotplug_error_;
    EXPECT_EQ(callbacks_run_.load(), callbacks_queued_.load());
    EXPECT_GT(reads_.load(), 0);
    EXPECT_GT(hotplug_cycles_.load(), 0);
    EXPECT_GT(synchronizes_.load(), 0);
    EXPECT_GT(churned_.load(), 0);
    std::printf(
        "parent: %ld reads, %ld callbacks, %ld grace periods, %ld short-lived threads, "
        "%ld hotplug cycles\n",
        reads_.load(), callbacks_run_.load(), synchronizes_.load(), churned_.load(),
        hotplug_cycles_.load());
  }

 private:
  void reader() {
    while (!stop_.load(std::memory_order_relaxed)) {
      rcu::ReadGuard guard;
      if (!node_ok(g_head.load(std::memory_order_acquire))) violations_.fetch_add(1);
      for (unsigned cpu : storm_.online()) {
        Stats* s = stats_[cpu].load(std::memory_order_acquire);
        if (s == nullptr || s->magic != 0x57A75) {
          violations_.fetch_add(1);
          continue;
        }
        s->hits.fetch_add(1, std::memory_order_relaxed);
      }
      reads_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void caller() {
    std::uint64_t seq = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      AllocPause::Iteration it(alloc_pause_);
      callbacks_queued_.fetch_add(1, std::memory_order_relaxed);
      rcu::rcu_call([this] { callbacks_run_.fetch_add(1, std::memory_order_relaxed); });
      Node* old = g_head.exchange(make_node(++seq), std::memory_order_acq_rel);
      rcu::rcu_retire(old, reclaim_node);
      if (seq % 64 == 0) std::this_thread::sleep_for(100us);
    }
  }

  void synchronizer() {
    while (!stop_.load(std::memory_order_relaxed)) {
      rcu::rcu_synchronize();
      synchronizes_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void churner() {
    while (!stop_.load(std::memory_order_relaxed)) {
      AllocPause::Iteration it(alloc_pause_);
      std::thread t([this] {
        rcu::ReadGuard guard;
        if (!node_ok(g_head.load(std::memory_order_acquire))) violations_.fetch_add(1);
      });
      t.join();
      churned_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void hotplugger() {
    unsigned cpu = 1;
    while (!stop_.load(std::memory_order_relaxed)) {
      AllocPause::Iteration it(alloc_pause_);
      Status down = storm_.down(cpu);
      Status up = storm_.up(cpu);
      if (!down.ok() || !up.ok()) {
        hotplug_errors_.fetch_add(1);
        last_hotplug_error_ = !down.ok() ? down.error().message() : up.error().message();
      }
      {
        ReadLock lock(storm_.hotplug_lock());  // a hotplug-lock reader too
        if (storm_.online().weight() != kStormCpus) violations_.fetch_add(1);
      }
      hotplug_cycles_.fetch_add(1, std::memory_order_relaxed);
      cpu = cpu % (kStormCpus - 1) + 1;
    }
  }

  Domain storm_;
  StateId state_{};
  AllocPause alloc_pause_;
  std::unique_ptr<std::atomic<Stats*>[]> stats_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<long> violations_{0};
  std::atomic<long> reads_{0};
  std::atomic<long> callbacks_queued_{0};
  std::atomic<long> callbacks_run_{0};
  std::atomic<long> synchronizes_{0};
  std::atomic<long> churned_{0};
  std::atomic<long> hotplug_cycles_{0};
  std::atomic<long> hotplug_errors_{0};
  std::string last_hotplug_error_;  // written by the hotplug thread only
};

TEST(Fork, ChildGetsWorkingRcuAndDefaultDomainParentUndisturbed) {
  init_default_domain();
  // The parent has used the default domain too (its state is inherited).
  ASSERT_EQ(cpu_down(3), 0) << kernel::last_error();
  ASSERT_EQ(cpu_up(3), 0) << kernel::last_error();

  Activity activity;
  activity.start();
  if (HasFatalFailure()) return;
  std::this_thread::sleep_for(100ms);

  for (int i = 0; i < kForks; ++i) {
    const long before = activity.progress();
    std::fflush(stdout);
    std::fflush(stderr);
    activity.alloc_pause().pause();
    const pid_t pid = fork();
    if (pid == 0) _exit(child_main(0));
    activity.alloc_pause().resume();
    ASSERT_GE(pid, 0) << "fork failed";
    const int status =
        wait_with_timeout(pid, std::chrono::seconds(kChildAlarmSeconds + 30));
    EXPECT_TRUE(child_passed(status))
        << "fork " << i << ": child " << describe_status(status);
    if (HasFailure()) break;  // one broken child says it all; do not wait for more
    // The parent's threads kept going while the child ran.
    std::this_thread::sleep_for(30ms);
    EXPECT_GT(activity.progress(), before)
        << "the parent's threads stalled after fork " << i;
  }

  activity.stop();
  activity.check();
  // The parent's RCU and default domain still work after the forks.
  std::atomic<bool> called{false};
  rcu::rcu_call([&called] { called.store(true); });
  rcu::rcu_barrier();
  EXPECT_TRUE(called.load());
  EXPECT_EQ(cpu_down(1), 0) << kernel::last_error();
  EXPECT_EQ(cpu_up(1), 0) << kernel::last_error();
  reclaim_node(g_head.exchange(nullptr));
}

// The parent holds the default domain's hotplug read lock on the forking thread
// itself: the child inherits the hold as its own and can release it.
TEST(Fork, ForkingThreadsOwnHotplugReadHoldCarriesOver) {
  init_default_domain();
  cpus_read_lock();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(kChildAlarmSeconds);
    cpus_read_unlock();
    CHILD_CHECK(cpu_down(1) == 0);
    CHILD_CHECK(cpu_up(1) == 0);
    _exit(g_child_failures == 0 ? 0 : 1);
  }
  cpus_read_unlock();
  const int status =
      wait_with_timeout(pid, std::chrono::seconds(kChildAlarmSeconds + 30));
  EXPECT_TRUE(child_passed(status)) << "child " << describe_status(status);
}

// fork() inside a read section would wait for itself: cpuhp aborts with a
// message instead. Likewise from an RCU callback (the call_rcu worker).
TEST(ForkDeathTest, InsideReadSectionAbortsWithMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        rcu::ReadGuard guard;
        const pid_t pid = fork();
        if (pid == 0) _exit(0);
      },
      "fork\\(\\): called inside an RCU read-side critical section");
}

TEST(ForkDeathTest, FromRcuCallbackAbortsWithMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        rcu::rcu_call([] {
          const pid_t pid = fork();
          if (pid == 0) _exit(0);
        });
        rcu::rcu_barrier();
      },
      "fork\\(\\): called from an RCU callback");
}

}  // namespace
}  // namespace cpuhp
