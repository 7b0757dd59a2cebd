// Reader threads shared by the benchmarks: ones that took a read lock once
// and now sleep (their slots exist), and ones that hammer the read side.
#pragma once

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <latch>
#include <thread>
#include <vector>

namespace cpuhp_bench {

// What the sections protect. Readers load it (DoNotOptimize keeps the load,
// so no lock pair degenerates to nothing); writers increment it.
inline std::atomic<long> g_protected{1};

inline void read_section() {
  benchmark::DoNotOptimize(g_protected.load(std::memory_order_relaxed));
}

// Threads that take and release one read lock (so whatever per-thread state
// the lock keeps exists, e.g. a cpuhp reader slot the writer must sum), then
// sleep until destroyed. Asleep, they are not running, so membarrier(2) does
// not interrupt them.
template <class Lock>
class IdleReaders {
 public:
  IdleReaders(Lock& lock, int n) : ready_(n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, &lock] {
        lock.lock_shared();
        lock.unlock_shared();
        ready_.count_down();
        stop_.wait(false, std::memory_order_acquire);
      });
    }
    ready_.wait();
  }
  ~IdleReaders() {
    stop_.store(true, std::memory_order_release);
    stop_.notify_all();
    for (auto& t : threads_) t.join();
  }
  IdleReaders(const IdleReaders&) = delete;
  IdleReaders& operator=(const IdleReaders&) = delete;

 private:
  std::latch ready_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// Threads that take and release the read lock in a tight loop, each
// publishing how many pairs it has completed.
template <class Lock>
class HammeringReaders {
 public:
  HammeringReaders(Lock& lock, int n) : counts_(n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, &lock, i] {
        std::atomic<std::uint64_t>& count = counts_[i].value;
        std::uint64_t done = 0;
        while (!stop_.load(std::memory_order_relaxed)) {
          lock.lock_shared();
          read_section();
          lock.unlock_shared();
          count.store(++done, std::memory_order_relaxed);
        }
      });
    }
    // Every reader is in its loop before the timed region starts.
    for (auto& c : counts_)
      while (c.value.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  }
  ~HammeringReaders() {
    stop_.store(true, std::memory_order_relaxed);
    for (auto& t : threads_) t.join();
  }
  HammeringReaders(const HammeringReaders&) = delete;
  HammeringReaders& operator=(const HammeringReaders&) = delete;

  std::vector<std::uint64_t> counts() const {
    std::vector<std::uint64_t> out;
    for (auto& c : counts_) out.push_back(c.value.load(std::memory_order_relaxed));
    return out;
  }

 private:
  struct alignas(64) PaddedCount {
    std::atomic<std::uint64_t> value{0};
  };
  std::vector<PaddedCount> counts_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace cpuhp_bench
