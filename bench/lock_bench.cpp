// cpuhp_bench — the hotplug lock measured against its peers (DESIGN.md,
// "Measured, not assumed"; the figures are recorded in BENCHMARKS.md).
//
//   BM_ReadLock_<impl>        one read lock + unlock pair per iteration, at 1 and
//                             2 threads sharing one lock object per impl.
//   BM_WriteLock_<impl>...    one write lock + unlock per iteration on one
//                             thread, with idle readers (their slots exist) and,
//                             for *_contended, two readers hammering the lock
//                             (a watchdog aborts the binary if writes stop).
//   BM_WriteLock_cpuhp_spaced a write lock taken after a pause long enough (or
//                             not) for the gate to reopen: the cold cost.
//   BM_Membarrier_expedited   the raw membarrier(2) a cold cpuhp writer pays.
//
// Google Benchmark's convention for threaded runs: the reported real time per
// iteration is the wall time divided by the pairs of all threads together
// (the inverse of aggregate throughput); `pairs_per_s` is that throughput.
#include <benchmark/benchmark.h>
#include <ck_brlock.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "bench_readers.h"
#include "cpuhp/legacy_hotplug_lock.h"
#include "cpuhp/percpu_rwsem.h"

// liburcu's inline read side (the LGPL static API, as an application that
// cares about read-side cost would use it).
#define _LGPL_SOURCE 1
#include <urcu/urcu-memb.h>

using cpuhp_bench::g_protected;
using cpuhp_bench::HammeringReaders;
using cpuhp_bench::IdleReaders;
using cpuhp_bench::read_section;

namespace {

using Clock = std::chrono::steady_clock;

inline void write_section() {
  g_protected.store(g_protected.load(std::memory_order_relaxed) + 1,
                    std::memory_order_relaxed);
}

// The lock objects are static and deliberately never destroyed: a
// PercpuRwSemaphore's destructor waits for its deferred gate reopening, which
// needs the RCU machinery still running, and static destruction order at exit
// gives no such guarantee. Each benchmark has its own object, so that one
// benchmark's writers cannot leave the gate closed for the next one's readers.
template <class Lock, class... Args>
Lock& leak(Args... args) {
  return *new Lock(args...);
}

// ---------------------------------------------------------------- readers
// Per-thread reader handles. Registration (and, for cpuhp, claiming the
// thread's slot) happens in the constructor, outside the timed loop.

template <class Lock>
struct SharedLockableReader {
  explicit SharedLockableReader(Lock& l) : lock_(l) {
    lock_.lock_shared();  // first use claims per-thread state, if any
    lock_.unlock_shared();
  }
  void lock() { lock_.lock_shared(); }
  void unlock() { lock_.unlock_shared(); }
  Lock& lock_;
};

struct PthreadRwlockReader {
  explicit PthreadRwlockReader(pthread_rwlock_t& l) : lock_(l) {}
  void lock() { pthread_rwlock_rdlock(&lock_); }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  pthread_rwlock_t& lock_;
};

// A thread that called cpuhp::rcu::rcu_call() (any cpuhp writer does, to
// reopen the gate) stays registered with liburcu-memb until it exits, and
// registering twice corrupts liburcu's registry: register only if needed.
struct UrcuReader {
  UrcuReader() : registered_here_(!URCU_TLS(urcu_memb_reader).registered) {
    if (registered_here_) urcu_memb_register_thread();
  }
  ~UrcuReader() {
    if (registered_here_) urcu_memb_unregister_thread();
  }
  UrcuReader(const UrcuReader&) = delete;
  UrcuReader& operator=(const UrcuReader&) = delete;
  void lock() { urcu_memb_read_lock(); }
  void unlock() { urcu_memb_read_unlock(); }
  const bool registered_here_;
};

struct CkBrlockReader {
  explicit CkBrlockReader(ck_brlock_t& l) : lock_(l) {
    ck_brlock_read_register(&lock_, &reader_);
  }
  ~CkBrlockReader() { ck_brlock_read_unregister(&lock_, &reader_); }
  CkBrlockReader(const CkBrlockReader&) = delete;
  CkBrlockReader& operator=(const CkBrlockReader&) = delete;
  void lock() { ck_brlock_read_lock(&lock_, &reader_); }
  void unlock() { ck_brlock_read_unlock(&reader_); }
  ck_brlock_t& lock_;
  alignas(64) ck_brlock_reader_t reader_;
};

template <class Reader>
void run_read_pairs(benchmark::State& state, Reader& reader) {
  for (auto _ : state) {
    reader.lock();
    read_section();
    reader.unlock();
  }
  // Summed over the threads of the run, divided by the wall time.
  state.counters["pairs_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_ReadLock_cpuhp(benchmark::State& state) {
  static auto& sem = leak<cpuhp::PercpuRwSemaphore>(cpuhp::ReadSide::kAuto);
  if (sem.read_side() != cpuhp::ReadSide::kAuto) {
    state.SkipWithError("membarrier unavailable: the fast path is off (see _fenced)");
    return;
  }
  SharedLockableReader reader(sem);
  run_read_pairs(state, reader);
}

void BM_ReadLock_cpuhp_fenced(benchmark::State& state) {
  static auto& sem = leak<cpuhp::PercpuRwSemaphore>(cpuhp::ReadSide::kFenced);
  SharedLockableReader reader(sem);
  run_read_pairs(state, reader);
}

void BM_ReadLock_urcu(benchmark::State& state) {
  UrcuReader reader;
  run_read_pairs(state, reader);
}

void BM_ReadLock_shared_mutex(benchmark::State& state) {
  static auto& lock = leak<std::shared_mutex>();
  SharedLockableReader reader(lock);
  run_read_pairs(state, reader);
}

void BM_ReadLock_pthread_rwlock(benchmark::State& state) {
  static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
  PthreadRwlockReader reader(lock);
  run_read_pairs(state, reader);
}

void BM_ReadLock_ck_brlock(benchmark::State& state) {
  static ck_brlock_t lock = CK_BRLOCK_INITIALIZER;
  CkBrlockReader reader(lock);
  run_read_pairs(state, reader);
}

void BM_ReadLock_legacy2013(benchmark::State& state) {
  static auto& lock = leak<cpuhp::LegacyHotplugLock>();
  SharedLockableReader reader(lock);
  run_read_pairs(state, reader);
}

// ------------------------------------------------------ background threads

constexpr int kIdleReaders = 3;
constexpr int kHammeringReaders = 2;

// ---------------------------------------------------------------- writers

template <class Lock>
void run_writes(benchmark::State& state, Lock& lock) {
  for (auto _ : state) {
    lock.lock();
    write_section();
    lock.unlock();
  }
  state.counters["writes_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Aborts the run, with a message, if the writer stops making progress: a lock
// that loses a wake-up would otherwise hang the benchmark binary for good.
template <class Lock>
class StallWatchdog {
 public:
  static constexpr std::chrono::seconds kLimit{10};

  StallWatchdog(const char* what, const std::atomic<std::uint64_t>& writes,
                const HammeringReaders<Lock>& readers)
      : thread_([this, what, &writes, &readers] {
          std::uint64_t seen = writes.load(std::memory_order_relaxed);
          auto since = Clock::now();
          while (!stop_.load(std::memory_order_relaxed)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            const std::uint64_t now = writes.load(std::memory_order_relaxed);
            if (now != seen) {
              seen = now;
              since = Clock::now();
            } else if (Clock::now() - since > kLimit) {
              std::fprintf(
                  stderr,
                  "cpuhp_bench: %s: no write lock completed for %lld s after %llu "
                  "writes (read pairs per hammering reader so far:",
                  what, static_cast<long long>(kLimit.count()),
                  static_cast<unsigned long long>(now));
              for (std::uint64_t c : readers.counts())
                std::fprintf(stderr, " %llu", static_cast<unsigned long long>(c));
              std::fprintf(stderr, "): the lock under test is stuck; aborting\n");
              std::abort();
            }
          }
        }) {}
  ~StallWatchdog() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
  }
  StallWatchdog(const StallWatchdog&) = delete;
  StallWatchdog& operator=(const StallWatchdog&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

template <class Lock>
void run_contended_writes(benchmark::State& state, Lock& lock, const char* what) {
  IdleReaders<Lock> idle(lock, kIdleReaders);
  HammeringReaders<Lock> readers(lock, kHammeringReaders);
  std::atomic<std::uint64_t> writes{0};
  StallWatchdog<Lock> watchdog(what, writes, readers);
  const std::vector<std::uint64_t> before = readers.counts();
  for (auto _ : state) {
    lock.lock();
    write_section();
    lock.unlock();
    writes.store(writes.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  const std::vector<std::uint64_t> after = readers.counts();
  std::uint64_t total = 0;
  std::uint64_t least = UINT64_MAX;
  for (std::size_t i = 0; i < after.size(); ++i) {
    total += after[i] - before[i];
    least = std::min(least, after[i] - before[i]);
  }
  using benchmark::Counter;
  state.counters["writes_per_s"] =
      Counter(static_cast<double>(state.iterations()), Counter::kIsRate);
  state.counters["read_pairs"] = Counter(static_cast<double>(total));
  state.counters["read_pairs_per_s"] =
      Counter(static_cast<double>(total), Counter::kIsRate);
  // The reader that got the least: nonzero means no reader starved.
  state.counters["read_pairs_min_thread"] = Counter(static_cast<double>(least));
  state.counters["reads_per_write"] =
      Counter(static_cast<double>(total) / static_cast<double>(state.iterations()));
}

// Back to back: after the first writer, each next one arrives within the grace
// period that would reopen the gate, so it skips membarrier ([W1]/[W2]).
void BM_WriteLock_cpuhp(benchmark::State& state) {
  static auto& sem = leak<cpuhp::PercpuRwSemaphore>(cpuhp::ReadSide::kAuto);
  IdleReaders idle(sem, kIdleReaders);
  run_writes(state, sem);
}

void BM_WriteLock_legacy2013(benchmark::State& state) {
  static auto& lock = leak<cpuhp::LegacyHotplugLock>();
  IdleReaders idle(lock, kIdleReaders);
  run_writes(state, lock);
}

void BM_WriteLock_shared_mutex(benchmark::State& state) {
  static auto& lock = leak<std::shared_mutex>();
  IdleReaders idle(lock, kIdleReaders);
  run_writes(state, lock);
}

void BM_WriteLock_cpuhp_contended(benchmark::State& state) {
  static auto& sem = leak<cpuhp::PercpuRwSemaphore>(cpuhp::ReadSide::kAuto);
  run_contended_writes(state, sem, "BM_WriteLock_cpuhp_contended");
}

void BM_WriteLock_legacy2013_contended(benchmark::State& state) {
  static auto& lock = leak<cpuhp::LegacyHotplugLock>();
  run_contended_writes(state, lock, "BM_WriteLock_legacy2013_contended");
}

void BM_WriteLock_shared_mutex_contended(benchmark::State& state) {
  static auto& lock = leak<std::shared_mutex>();
  run_contended_writes(state, lock, "BM_WriteLock_shared_mutex_contended");
}

// One writer after a pause of range(0) ms with no writer: if the pause is longer
// than the gate's deferred reopening (a grace period after the last writer
// left, plus the RCU callback thread's latency), the gate is open again and
// the writer pays [W1]/[W2], membarrier included. Timed by hand around lock
// and unlock only (manual time): PauseTiming/ResumeTiming read the thread CPU
// clock too, which would add its own cost to every iteration.
void BM_WriteLock_cpuhp_spaced(benchmark::State& state) {
  static auto& sem = leak<cpuhp::PercpuRwSemaphore>(cpuhp::ReadSide::kAuto);
  IdleReaders idle(sem, kIdleReaders);
  const auto gap = std::chrono::milliseconds(state.range(0));
  double lock_s = 0;
  double unlock_s = 0;
  for (auto _ : state) {
    std::this_thread::sleep_for(gap);
    const auto t0 = Clock::now();
    sem.lock();
    write_section();
    const auto t1 = Clock::now();
    sem.unlock();
    const auto t2 = Clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t2 - t0).count());
    lock_s += std::chrono::duration<double>(t1 - t0).count();
    unlock_s += std::chrono::duration<double>(t2 - t1).count();
  }
  using benchmark::Counter;
  state.counters["lock_ns"] = Counter(lock_s * 1e9, Counter::kAvgIterations);
  state.counters["unlock_ns"] = Counter(unlock_s * 1e9, Counter::kAvgIterations);
}

// The barrier a cold cpuhp writer issues ([W2]), alone, with range(0) other
// threads of the process spinning (running threads are the ones interrupted).
void BM_Membarrier_expedited(benchmark::State& state) {
  if (!cpuhp::membarrier_available()) {  // also registers the process
    state.SkipWithError("membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) unavailable");
    return;
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> spinners;
  for (int i = 0; i < state.range(0); ++i) {
    spinners.emplace_back([&stop] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  }
  for (auto _ : state) {
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0U, 0) != 0) {
      state.SkipWithError("membarrier failed");
      break;
    }
  }
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : spinners) t.join();
}

// Short runs: the whole binary, three repetitions included, stays well under a
// minute on the 2-core machine of BENCHMARKS.md.
void read_config(benchmark::internal::Benchmark* b) {
  b->Threads(1)->Threads(2)->UseRealTime()->MinTime(0.2);
}
void write_config(benchmark::internal::Benchmark* b) { b->UseRealTime()->MinTime(0.2); }

}  // namespace

BENCHMARK(BM_ReadLock_cpuhp)->Apply(read_config);
BENCHMARK(BM_ReadLock_cpuhp_fenced)->Apply(read_config);
BENCHMARK(BM_ReadLock_urcu)->Apply(read_config);
BENCHMARK(BM_ReadLock_shared_mutex)->Apply(read_config);
BENCHMARK(BM_ReadLock_pthread_rwlock)->Apply(read_config);
BENCHMARK(BM_ReadLock_ck_brlock)->Apply(read_config);
BENCHMARK(BM_ReadLock_legacy2013)->Apply(read_config);

BENCHMARK(BM_WriteLock_cpuhp)->Apply(write_config);
BENCHMARK(BM_WriteLock_legacy2013)->Apply(write_config);
BENCHMARK(BM_WriteLock_shared_mutex)->Apply(write_config);
BENCHMARK(BM_WriteLock_cpuhp_contended)->Apply(write_config);
BENCHMARK(BM_WriteLock_legacy2013_contended)->Apply(write_config);
BENCHMARK(BM_WriteLock_shared_mutex_contended)->Apply(write_config);
BENCHMARK(BM_WriteLock_cpuhp_spaced)
    ->ArgName("gap_ms")
    ->Arg(2)
    ->Arg(20)
    ->Iterations(50)
    ->UseManualTime();
BENCHMARK(BM_Membarrier_expedited)->ArgName("spinning")->Arg(0)->Arg(1)->MinTime(0.2);

BENCHMARK_MAIN();
