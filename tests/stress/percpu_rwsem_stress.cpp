// Stress test of cpuhp::PercpuRwSemaphore, for both read sides.
//
// Readers (kReaders threads) take the read lock every way there is and check
// that a protected record of plain fields is consistent and does not change
// under them; writers (kWriters threads, one of them mixing in try_lock())
// check that no reader and no other writer is inside, rewrite the record, and
// sometimes take the read lock from inside the write section. The record's
// fields are deliberately not atomic: ThreadSanitizer reports any missing
// happens-before between a write section and a read section. The
// readers-inside count and writer-inside flag are relaxed atomics for the same
// reason (they detect overlap without adding happens-before of their own).
//
// At the end: zero violations, and every reader and every writer made
// progress (nobody starved). Total duration: CPUHP_STRESS_SECONDS (default 3),
// split between the read sides.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/percpu_rwsem.h"

namespace cpuhp {

// Names the parameter in gtest's messages (found by argument-dependent lookup).
static void PrintTo(ReadSide side, std::ostream* os) {
  *os << (side == ReadSide::kAuto ? "kAuto" : "kFenced");
}

namespace {

constexpr int kReaders = 3;
constexpr int kWriters = 2;
constexpr int kFields = 7;

double total_seconds() {
  const char* env = std::getenv("CPUHP_STRESS_SECONDS");
  if (env == nullptr || *env == '\0') return 3.0;
  char* end = nullptr;
  const double seconds = std::strtod(env, &end);
  return (end != env && seconds > 0) ? seconds : 3.0;
}

long checksum_of(long version) { return version * 2654435761L ^ 0x5bd1e995L; }

// Written only inside write sections; plain fields on purpose.
struct Record {
  long version = 0;
  long fields[kFields] = {};
  long checksum = checksum_of(0);
};

class Harness {
 public:
  explicit Harness(ReadSide side) : sem_(side) {}

  void run(std::chrono::duration<double> duration) {
    std::vector<std::thread> threads;
    for (int r = 0; r < kReaders; ++r) threads.emplace_back([this, r] { reader(r); });
    for (int w = 0; w < kWriters; ++w) threads.emplace_back([this, w] { writer(w); });
    std::this_thread::sleep_for(duration);
    stop_.store(true, std::memory_order_relaxed);
    for (auto& t : threads) t.join();
  }

  void report_and_check(const char* side_name) {
    long total_reads = 0, total_writes = 0;
    std::printf("[%s] read side %s\n", side_name,
                sem_.read_side() == ReadSide::kAuto ? "auto (membarrier)" : "fenced");
    for (int r = 0; r < kReaders; ++r) {
      std::printf("[%s] reader %d: %ld reads (%ld nested, %ld try, %ld failed try)\n",
                  side_name, r, reads_[r].load(), nested_[r].load(), try_ok_[r].load(),
                  try_failed_[r].load());
      total_reads += reads_[r].load();
      EXPECT_GE(reads_[r].load(), 1) << "reader " << r << " starved";
    }
    for (int w = 0; w < kWriters; ++w) {
      std::printf(
          "[%s] writer %d: %ld writes (%ld via try_lock, %ld failed try_lock, %ld "
          "recursive reads)\n",
          side_name, w, writes_[w].load(), try_writes_[w].load(),
          try_write_failed_[w].load(), recursive_reads_[w].load());
      total_writes += writes_[w].load();
      EXPECT_GE(writes_[w].load(), 1) << "writer " << w << " starved";
    }
    std::printf("[%s] total: %ld reads, %ld writes, %ld violations\n", side_name,
                total_reads, total_writes, violations_.load());
    EXPECT_EQ(violations_.load(), 0) << first_violation_;
    // Joined: the record is ours. Every write bumped the version exactly once.
    EXPECT_EQ(record_.version, total_writes);
    check_record(record_, record_.version, "after the run");
  }

 private:
  void violation(const std::string& what) {
    if (violations_.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::lock_guard guard(message_mutex_);
      first_violation_ = what;
    }
  }

  // Checks the record is consistent; returns its version.
  long check_record(const Record& rec, long expected_version, const char* where) {
    const long v = rec.version;
    if (expected_version >= 0 && v != expected_version)
      violation(std::string("version changed ") + where);
    for (int i = 0; i < kFields; ++i) {
      if (rec.fields[i] != v) {
        violation(std::string("torn record ") + where);
        break;
      }
    }
    if (rec.checksum != checksum_of(v)) violation(std::string("bad checksum ") + where);
    return v;
  }

  static void spin(int n) {
    for (int i = 0; i < n; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
  }

  // One read section; the caller holds the read lock.
  void read_section() {
    readers_inside_.fetch_add(1, std::memory_order_relaxed);
    if (writer_inside_.load(std::memory_order_relaxed))
      violation("reader saw a writer inside");
    const long v = check_record(record_, -1, "on entry");
    spin(50);
    check_record(record_, v, "during a read section");
    if (writer_inside_.load(std::memory_order_relaxed))
      violation("writer came in during a read section");
    readers_inside_.fetch_sub(1, std::memory_order_relaxed);
  }

  void reader(int self) {
    for (long iter = 0; !stop_.load(std::memory_order_relaxed); ++iter) {
      switch (iter % 4) {
        case 0:
          sem_.lock_shared();
          read_section();
          sem_.unlock_shared();
          break;
        case 1:
          sem_.lock_shared();
          sem_.lock_shared();  // nested: never blocks, even with a writer queued
          read_section();
          sem_.unlock_shared();
          read_section();  // still inside the outer hold
          sem_.unlock_shared();
          nested_[self].fetch_add(1, std::memory_order_relaxed);
          break;
        case 2:
          if (!sem_.try_lock_shared()) {
            try_failed_[self].fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          read_section();
          sem_.unlock_shared();
          try_ok_[self].fetch_add(1, std::memory_order_relaxed);
          break;
        default: {
          ReadLock guard(sem_);
          read_section();
          break;
        }
      }
      reads_[self].fetch_add(1, std::memory_order_relaxed);
    }
  }

  void writer(int self) {
    for (long iter = 0; !stop_.load(std::memory_order_relaxed); ++iter) {
      const bool use_try = self == 1 && iter % 3 == 0;
      if (use_try) {
        if (!sem_.try_lock()) {
          try_write_failed_[self].fetch_add(1, std::memory_order_relaxed);
          std::this_thread::yield();
          continue;
        }
        try_writes_[self].fetch_add(1, std::memory_order_relaxed);
      } else {
        sem_.lock();
      }
      if (writer_inside_.exchange(true, std::memory_order_relaxed))
        violation("two writers inside");
      if (readers_inside_.load(std::memory_order_relaxed) != 0)
        violation("writer entered with a reader inside");
      const long v = check_record(record_, -1, "at writer entry") + 1;
      record_.version = v;
      for (int i = 0; i < kFields; ++i) {
        record_.fields[i] = v;
        if (i == kFields / 2) spin(20);  // widen the torn window
      }
      record_.checksum = checksum_of(v);
      if (iter % 4 == 0) {
        // A hotplug callback on the writer's thread takes the read lock.
        sem_.lock_shared();
        check_record(record_, v, "in the writer's own read section");
        if (iter % 8 == 0) {
          ReadLock nested(sem_);
          check_record(record_, v, "in the writer's nested read section");
        }
        sem_.unlock_shared();
        recursive_reads_[self].fetch_add(1, std::memory_order_relaxed);
      }
      if (readers_inside_.load(std::memory_order_relaxed) != 0)
        violation("a reader came in during a write section");
      writer_inside_.store(false, std::memory_order_relaxed);
      sem_.unlock();
      writes_[self].fetch_add(1, std::memory_order_relaxed);
      if (iter % 16 == 0) std::this_thread::yield();
    }
  }

  PercpuRwSemaphore sem_;
  Record record_;
  std::atomic<bool> stop_{false};
  std::atomic<int> readers_inside_{0};
  std::atomic<bool> writer_inside_{false};
  std::atomic<long> violations_{0};
  std::mutex message_mutex_;
  std::string first_violation_;
  std::atomic<long> reads_[kReaders] = {}, nested_[kReaders] = {}, try_ok_[kReaders] = {},
                    try_failed_[kReaders] = {};
  std::atomic<long> writes_[kWriters] = {}, try_writes_[kWriters] = {},
                    try_write_failed_[kWriters] = {}, recursive_reads_[kWriters] = {};
};

class PercpuRwSemStress : public testing::TestWithParam<ReadSide> {};

TEST_P(PercpuRwSemStress, ReadersAndWritersNeverOverlapAndNobodyStarves) {
  const std::chrono::duration<double> duration(total_seconds() / 2);
  const char* name = GetParam() == ReadSide::kAuto ? "auto" : "fenced";
  std::printf("[%s] running %.2f s with %d readers and %d writers\n", name,
              duration.count(), kReaders, kWriters);
  Harness harness(GetParam());
  harness.run(duration);
  harness.report_and_check(name);
}

INSTANTIATE_TEST_SUITE_P(ReadSides, PercpuRwSemStress,
                         testing::Values(ReadSide::kAuto, ReadSide::kFenced),
                         [](const testing::TestParamInfo<ReadSide>& info) {
                           return info.param == ReadSide::kAuto ? "Auto" : "Fenced";
                         });

}  // namespace
}  // namespace cpuhp
