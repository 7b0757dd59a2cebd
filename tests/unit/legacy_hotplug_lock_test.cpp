// Unit tests for cpuhp::LegacyHotplugLock, the pre-2014 hotplug lock kept as
// the benchmarks' baseline (include/cpuhp/legacy_hotplug_lock.h).
#include "cpuhp/legacy_hotplug_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "support/waiting.h"

namespace cpuhp {
namespace {

using namespace std::chrono_literals;
using cpuhp::testing_support::eventually;
using cpuhp::testing_support::kSettle;

void wait_for(const std::atomic<bool>& flag) {
  while (!flag.load()) flag.wait(false);
}

void raise(std::atomic<bool>& flag) {
  flag.store(true);
  flag.notify_all();
}

TEST(LegacyHotplugLock, WriterBlocksReaderUntilUnlock) {
  LegacyHotplugLock lock;
  int data = 0;
  std::atomic<bool> started{false}, acquired{false};
  std::atomic<int> seen{-1};
  lock.lock();
  std::thread reader([&] {
    raise(started);
    lock.lock_shared();
    raise(acquired);
    seen = data;
    lock.unlock_shared();
  });
  wait_for(started);
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(acquired.load());
  data = 7;
  lock.unlock();
  EXPECT_TRUE(eventually([&] { return acquired.load(); }));
  reader.join();
  EXPECT_EQ(seen.load(), 7);
}

TEST(LegacyHotplugLock, WriterWaitsForEarlierReader) {
  LegacyHotplugLock lock;
  int data = 0;
  std::atomic<bool> started{false}, acquired{false};
  lock.lock_shared();
  std::thread writer([&] {
    raise(started);
    lock.lock();
    raise(acquired);
    data = 1;
    lock.unlock();
  });
  wait_for(started);
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(acquired.load());
  EXPECT_EQ(data, 0);
  lock.unlock_shared();
  EXPECT_TRUE(eventually([&] { return acquired.load(); }));
  writer.join();
  lock.lock_shared();
  EXPECT_EQ(data, 1);
  lock.unlock_shared();
}

TEST(LegacyHotplugLock, NestedReadLocks) {
  LegacyHotplugLock lock;
  lock.lock_shared();
  lock.lock_shared();
  lock.lock_shared();
  lock.unlock_shared();
  lock.unlock_shared();
  std::thread([&] { EXPECT_FALSE(lock.try_lock()); }).join();
  lock.unlock_shared();
  std::thread([&] {
    EXPECT_TRUE(lock.try_lock());
    lock.unlock();
  }).join();
}

// The writer's own thread takes the read lock (kernel: active_writer == current).
TEST(LegacyHotplugLock, WriteLockHolderCanTakeReadLock) {
  LegacyHotplugLock lock;
  lock.lock();
  lock.lock_shared();
  lock.lock_shared();
  EXPECT_TRUE(lock.try_lock_shared());
  lock.unlock_shared();
  lock.unlock_shared();
  lock.unlock_shared();
  {
    std::shared_lock<LegacyHotplugLock> r(lock);
    EXPECT_TRUE(r.owns_lock());
  }
  std::thread([&] { EXPECT_FALSE(lock.try_lock_shared()); }).join();
  lock.unlock();
  // The recursive read holds left nothing behind.
  std::thread([&] {
    EXPECT_TRUE(lock.try_lock());
    lock.unlock();
    EXPECT_TRUE(lock.try_lock_shared());
    lock.unlock_shared();
  }).join();
}

TEST(LegacyHotplugLock, TryLockAndTryLockShared) {
  LegacyHotplugLock lock;
  // Uncontended: both succeed.
  ASSERT_TRUE(lock.try_lock_shared());
  lock.unlock_shared();
  ASSERT_TRUE(lock.try_lock());
  lock.unlock();

  // try_lock fails while another thread reads.
  std::atomic<bool> holding{false}, release{false};
  std::thread reader([&] {
    lock.lock_shared();
    raise(holding);
    wait_for(release);
    lock.unlock_shared();
  });
  wait_for(holding);
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock());
  raise(release);
  reader.join();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();

  // try_lock_shared and try_lock fail while another thread writes.
  std::atomic<bool> locked{false}, release_writer{false};
  std::thread writer([&] {
    lock.lock();
    raise(locked);
    wait_for(release_writer);
    lock.unlock();
  });
  wait_for(locked);
  EXPECT_FALSE(lock.try_lock_shared());
  EXPECT_FALSE(lock.try_lock());
  raise(release_writer);
  writer.join();
  EXPECT_TRUE(lock.try_lock_shared());
  lock.unlock_shared();
}

TEST(LegacyHotplugLock, StdSharedLockAndUniqueLockWork) {
  LegacyHotplugLock lock;
  {
    std::shared_lock<LegacyHotplugLock> r(lock);
    EXPECT_TRUE(r.owns_lock());
    std::thread([&] {
      std::unique_lock<LegacyHotplugLock> w(lock, std::try_to_lock);
      EXPECT_FALSE(w.owns_lock());
    }).join();
  }
  {
    std::unique_lock<LegacyHotplugLock> w(lock);
    EXPECT_TRUE(w.owns_lock());
  }
  std::unique_lock<LegacyHotplugLock> w(lock, std::try_to_lock);
  EXPECT_TRUE(w.owns_lock());
}

TEST(LegacyHotplugLock, ReadersAndWritersNeverOverlap) {
  LegacyHotplugLock lock;
  std::atomic<int> readers_inside{0};
  std::atomic<bool> writer_inside{false};
  std::atomic<int> violations{0};
  std::atomic<bool> stop{false};
  long data = 0;
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        std::shared_lock<LegacyHotplugLock> guard(lock);
        readers_inside.fetch_add(1, std::memory_order_relaxed);
        if (writer_inside.load(std::memory_order_relaxed)) ++violations;
        if (data < 0) ++violations;
        readers_inside.fetch_sub(1, std::memory_order_relaxed);
      }
    });
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        std::unique_lock<LegacyHotplugLock> guard(lock);
        if (writer_inside.exchange(true, std::memory_order_relaxed)) ++violations;
        if (readers_inside.load(std::memory_order_relaxed) != 0) ++violations;
        ++data;
        lock.lock_shared();  // writer's-thread recursion
        lock.unlock_shared();
        writer_inside.store(false, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : writers) t.join();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(data, 400);
}

}  // namespace
}  // namespace cpuhp
