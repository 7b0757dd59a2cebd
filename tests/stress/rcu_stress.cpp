// Stress test for the RCU layer: readers dereference an RCU-protected pointer
// while writers replace it and reclaim the old node (rcu_retire, rcu_call, or
// rcu_synchronize + delete); a reclaimed node is poisoned before it is freed,
// so a reader that could see a reclaimed node counts a violation (and ASan
// reports the use after free). Short-lived reader threads churn registration.
//
// Runs CPUHP_STRESS_SECONDS seconds (default 2). Must pass under ASan and TSan.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "cpuhp/rcu.h"

namespace cpuhp::rcu {
namespace {

constexpr std::uint64_t kPoison = 0xDEADDEADDEADDEADull;

std::atomic<std::uint64_t> g_created{0};
std::atomic<std::uint64_t> g_freed{0};

constexpr std::uint64_t pattern(std::uint64_t seq, int i) {
  return seq * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(i) + 1;
}

// Plain (non-atomic) payload on purpose: under TSAN the readers' loads and the
// destructor's poisoning stores are ordered only through the RCU layer.
struct Node {
  static constexpr int kWords = 16;
  explicit Node(std::uint64_t s) : seq(s) {
    for (int i = 0; i < kWords; ++i) payload[i] = pattern(seq, i);
    g_created.fetch_add(1, std::memory_order_relaxed);
  }
  ~Node() {
    seq = kPoison;
    for (auto& w : payload) w = kPoison;
    g_freed.fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t seq;
  std::uint64_t payload[kWords];
};

// The RCU-protected pointer.
std::atomic<Node*> g_head{nullptr};

// Returns the number of corrupt words seen in `n`.
int check(const Node* n) {
  if (n == nullptr) return 1;
  const std::uint64_t seq = n->seq;
  if (seq == kPoison) return 1;
  int bad = 0;
  for (int i = 0; i < Node::kWords; ++i) bad += n->payload[i] != pattern(seq, i);
  return bad;
}

// rcu_dereference(): acquire stands in for memory_order_consume (which compilers
// promote to acquire anyway); it pairs with the writers' release in exchange(),
// so a node's payload, written before publication, is visible here.
Node* dereference() { return g_head.load(std::memory_order_acquire); }

double stress_seconds() {
  const char* env = std::getenv("CPUHP_STRESS_SECONDS");
  if (env == nullptr || *env == '\0') return 2.0;
  char* end = nullptr;
  const double s = std::strtod(env, &end);
  if (end == env || *end != '\0' || !(s > 0)) {
    std::fprintf(stderr, "CPUHP_STRESS_SECONDS=%s is not a positive number; using 2\n",
                 env);
    return 2.0;
  }
  return s;
}

struct Counters {
  std::atomic<std::uint64_t> reads{0};
  std::atomic<std::uint64_t> violations{0};
  std::atomic<std::uint64_t> replacements{0};
  std::atomic<std::uint64_t> churned_threads{0};
};

void reader(const std::atomic<bool>& stop, Counters& c, int flavour) {
  std::uint64_t reads = 0, bad = 0;
  for (std::uint64_t iter = 0; !stop.load(std::memory_order_relaxed); ++iter) {
    switch ((iter + flavour) % 4) {
      case 0: {
        ReadGuard g;
        bad += check(dereference());
        break;
      }
      case 1: {
        std::scoped_lock lock(rcu_default_domain());
        Node* n = dereference();
        {
          ReadGuard nested;
          bad += check(dereference());
        }
        bad += check(n);  // still protected by the outer section
        break;
      }
      case 2: {
        // A long section: holds the node across yields so that writers'
        // grace periods really have to wait for it.
        ReadGuard g;
        Node* n = dereference();
        for (int k = 0; k < 4; ++k) {
          std::this_thread::yield();
          bad += check(n);
        }
        break;
      }
      default: {
        rcu_domain& d = rcu_default_domain();
        d.lock();
        bad += check(dereference());
        d.unlock();
        break;
      }
    }
    ++reads;
  }
  c.reads.fetch_add(reads, std::memory_order_relaxed);
  c.violations.fetch_add(bad, std::memory_order_relaxed);
}

// Keeps the number of unreclaimed nodes bounded when writers outrun the
// call_rcu thread (TSAN builds especially).
void throttle() {
  if (g_created.load(std::memory_order_relaxed) -
          g_freed.load(std::memory_order_relaxed) >
      20000) {
    rcu_barrier();
  }
}

void writer(const std::atomic<bool>& stop, Counters& c, std::atomic<std::uint64_t>& seq,
            int mode) {
  std::uint64_t replaced = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    // Release: publishes the node's payload to readers (pairs with the acquire
    // in dereference()); acquire: this writer owns `old` and, before freeing it,
    // must see the other writer's initialization of it.
    Node* old = g_head.exchange(new Node(seq.fetch_add(1, std::memory_order_relaxed)),
                                std::memory_order_acq_rel);
    switch (mode == 0 ? replaced % 2 : 2) {
      case 0:
        rcu_retire(old);
        break;
      case 1:
        rcu_call([old] { delete old; });
        break;
      default:
        rcu_synchronize();
        delete old;
        break;
    }
    ++replaced;
    throttle();
  }
  c.replacements.fetch_add(replaced, std::memory_order_relaxed);
}

// Short-lived reader threads: registration and unregistration racing with
// grace periods.
void churn(const std::atomic<bool>& stop, Counters& c) {
  while (!stop.load(std::memory_order_relaxed)) {
    std::thread t([&c] {
      std::uint64_t bad = 0;
      for (int i = 0; i < 50; ++i) {
        ReadGuard g;
        bad += check(dereference());
      }
      c.violations.fetch_add(bad, std::memory_order_relaxed);
      c.reads.fetch_add(50, std::memory_order_relaxed);
    });
    t.join();
    c.churned_threads.fetch_add(1, std::memory_order_relaxed);
  }
}

TEST(RcuStress, ReadersNeverSeeReclaimedNodes) {
  const double seconds = stress_seconds();
  const long registered_before = detail::registered_thread_count();
  g_head.store(new Node(0), std::memory_order_release);
  std::atomic<std::uint64_t> seq{1};
  std::atomic<bool> stop{false};
  Counters c;

  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r)
    threads.emplace_back(reader, std::cref(stop), std::ref(c), r);
  threads.emplace_back(writer, std::cref(stop), std::ref(c), std::ref(seq), 0);
  threads.emplace_back(writer, std::cref(stop), std::ref(c), std::ref(seq), 1);
  threads.emplace_back(churn, std::cref(stop), std::ref(c));

  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : threads) t.join();

  delete g_head.exchange(nullptr, std::memory_order_acq_rel);  // no readers left
  rcu_barrier();

  std::printf("rcu_stress: %.1fs, %llu reads, %llu replacements, %llu churned threads\n",
              seconds, static_cast<unsigned long long>(c.reads.load()),
              static_cast<unsigned long long>(c.replacements.load()),
              static_cast<unsigned long long>(c.churned_threads.load()));
  EXPECT_EQ(c.violations.load(), 0u) << "a reader saw a reclaimed (poisoned) node";
  EXPECT_GT(c.reads.load(), 0u);
  EXPECT_GT(c.replacements.load(), 0u);
  EXPECT_EQ(g_freed.load(), g_created.load()) << "retired nodes were not all reclaimed";
  EXPECT_EQ(detail::registered_thread_count(), registered_before)
      << "exited threads are still registered";
}

}  // namespace
}  // namespace cpuhp::rcu
