// SPDX-License-Identifier: MIT
// Unit tests for cpuhp::PercpuRwSemaphore (include/cpuhp/percpu_rwsem.h), run
// for both read sides: kAuto (membarrier fast path where the kernel allows it)
// and kFenced (always the fenced slow path).
//
// Blocking is checked the usual way: the thread that should block sets a
// "started" flag, then tries; the test waits for "started", sleeps kSettle and
// checks that the thread did not get in. "Eventually" means within 5 s of
// polling; there are no other timing assertions.
#include "cpuhp/percpu_rwsem.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <mutex>
#include <new>
#include <ostream>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "cpuhp/membarrier.h"
#include "cpuhp/rcu.h"
#include "support/waiting.h"

namespace cpuhp {

// Names the parameter in gtest's messages (found by argument-dependent lookup).
static void PrintTo(ReadSide side, std::ostream* os) {
  *os << (side == ReadSide::kAuto ? "kAuto" : "kFenced");
}

namespace {

using namespace std::chrono_literals;
using cpuhp::testing_support::eventually;
using cpuhp::testing_support::kSettle;

bool is_set(const std::atomic<bool>& flag) { return flag.load(); }

void wait_for(const std::atomic<bool>& flag) {
  while (!flag.load()) flag.wait(false);
}

void raise(std::atomic<bool>& flag) {
  flag.store(true);
  flag.notify_all();
}

std::string side_name(const testing::TestParamInfo<ReadSide>& info) {
  return info.param == ReadSide::kAuto ? "Auto" : "Fenced";
}

class PercpuRwSemTest : public testing::TestWithParam<ReadSide> {
 protected:
  PercpuRwSemaphore sem_{GetParam()};
};

// While the calling thread holds the write lock, another thread's read lock
// blocks; it gets in once the writer leaves and sees what the writer wrote.
void expect_writer_excludes_reader(PercpuRwSemaphore& sem) {
  int data = 0;  // plain: ThreadSanitizer checks the lock's happens-before
  std::atomic<bool> started{false}, acquired{false};
  std::atomic<int> seen{-1};
  sem.lock();
  data = 1;
  std::thread reader([&] {
    raise(started);
    sem.lock_shared();
    raise(acquired);
    seen = data;
    sem.unlock_shared();
  });
  wait_for(started);
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(acquired)) << "a reader got in while the write lock was held";
  data = 2;
  sem.unlock();
  EXPECT_TRUE(eventually([&] { return is_set(acquired); }));
  reader.join();
  EXPECT_EQ(seen.load(), 2);
}

// A writer waits for a read section (on the calling thread) that started
// before it, and sees what was written before that section ended.
void expect_reader_excludes_writer(PercpuRwSemaphore& sem) {
  int data = 0;
  std::atomic<bool> started{false}, acquired{false};
  std::atomic<int> seen{-1};
  sem.lock_shared();
  std::thread writer([&] {
    raise(started);
    sem.lock();
    raise(acquired);
    seen = data;
    data = 100;
    sem.unlock();
  });
  wait_for(started);
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(acquired)) << "a writer got in while a read lock was held";
  EXPECT_EQ(data, 0);
  sem.unlock_shared();
  EXPECT_TRUE(eventually([&] { return is_set(acquired); }));
  writer.join();
  EXPECT_EQ(seen.load(), 0);
  sem.lock_shared();
  EXPECT_EQ(data, 100);
  sem.unlock_shared();
}

// ------------------------------------------------------------ read side

TEST_P(PercpuRwSemTest, LockSharedAndUnlockShared) {
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  sem_.lock_shared();
  EXPECT_TRUE(sem_.held_shared_by_this_thread());
  EXPECT_FALSE(sem_.held_exclusive_by_this_thread());
  sem_.unlock_shared();
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  for (int i = 0; i < 100; ++i) {
    sem_.lock_shared();
    sem_.unlock_shared();
  }
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  // Fully released: a writer on another thread gets in without waiting.
  std::thread([&] {
    EXPECT_TRUE(sem_.try_lock());
    sem_.unlock();
  }).join();
}

TEST_P(PercpuRwSemTest, NestedReadLockDepthThree) {
  for (int depth = 1; depth <= 3; ++depth) {
    sem_.lock_shared();
    EXPECT_TRUE(sem_.held_shared_by_this_thread()) << "depth " << depth;
  }
  sem_.unlock_shared();
  EXPECT_TRUE(sem_.held_shared_by_this_thread());
  sem_.unlock_shared();
  EXPECT_TRUE(sem_.held_shared_by_this_thread());
  // Still held once: a writer on another thread cannot get in.
  std::thread([&] { EXPECT_FALSE(sem_.try_lock()); }).join();
  sem_.unlock_shared();
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  std::thread([&] {
    EXPECT_TRUE(sem_.try_lock());
    sem_.unlock();
  }).join();
}

TEST_P(PercpuRwSemTest, TryLockSharedSucceedsWithoutWriter) {
  ASSERT_TRUE(sem_.try_lock_shared());
  EXPECT_TRUE(sem_.held_shared_by_this_thread());
  ASSERT_TRUE(sem_.try_lock_shared());  // nested
  sem_.unlock_shared();
  EXPECT_TRUE(sem_.held_shared_by_this_thread());
  sem_.unlock_shared();
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  // Also after a writer has come and gone.
  sem_.lock();
  sem_.unlock();
  ASSERT_TRUE(sem_.try_lock_shared());
  sem_.unlock_shared();
}

TEST_P(PercpuRwSemTest, TryLockSharedFailsWhileAnotherThreadHoldsWriteLock) {
  std::atomic<bool> locked{false}, release{false};
  std::thread writer([&] {
    sem_.lock();
    raise(locked);
    wait_for(release);
    sem_.unlock();
  });
  wait_for(locked);
  EXPECT_FALSE(sem_.try_lock_shared());
  EXPECT_FALSE(sem_.held_shared_by_this_thread())
      << "a failed try_lock_shared() left a hold";
  EXPECT_FALSE(sem_.try_lock_shared());
  {
    ReadLock guard(sem_, std::try_to_lock);
    EXPECT_FALSE(guard.owns_lock());
  }
  raise(release);
  writer.join();
  ASSERT_TRUE(sem_.try_lock_shared());
  sem_.unlock_shared();
  // A failed try_lock_shared() must not hold up the next writer.
  std::thread([&] {
    EXPECT_TRUE(sem_.try_lock());
    sem_.unlock();
  }).join();
}

TEST_P(PercpuRwSemTest, StdSharedLockAndUniqueLockWork) {
  {
    ReadLock r(sem_);
    EXPECT_TRUE(r.owns_lock());
    EXPECT_TRUE(sem_.held_shared_by_this_thread());
    ReadLock nested(sem_, std::try_to_lock);
    EXPECT_TRUE(nested.owns_lock());
    ReadLock deferred(sem_, std::defer_lock);
    EXPECT_FALSE(deferred.owns_lock());
    deferred.lock();
    EXPECT_TRUE(deferred.owns_lock());
    deferred.unlock();
  }
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  {
    WriteLock w(sem_);
    EXPECT_TRUE(w.owns_lock());
    EXPECT_TRUE(sem_.held_exclusive_by_this_thread());
    std::thread([&] {
      ReadLock r(sem_, std::try_to_lock);
      EXPECT_FALSE(r.owns_lock());
    }).join();
  }
  EXPECT_FALSE(sem_.held_exclusive_by_this_thread());
  {
    WriteLock w(sem_, std::try_to_lock);
    EXPECT_TRUE(w.owns_lock());
    w.unlock();
    EXPECT_FALSE(sem_.held_exclusive_by_this_thread());
    w.lock();
    EXPECT_TRUE(sem_.held_exclusive_by_this_thread());
  }
  {
    ReadLock r(sem_);
    std::thread([&] {
      WriteLock w(sem_, std::try_to_lock);
      EXPECT_FALSE(w.owns_lock());
    }).join();
  }
  // std::shared_mutex-style generic code compiles against it.
  std::shared_lock<PercpuRwSemaphore> s(sem_);
  EXPECT_TRUE(s.owns_lock());
}

// ------------------------------------------------------------ exclusion

TEST_P(PercpuRwSemTest, WriterBlocksReaderUntilUnlock) {
  expect_writer_excludes_reader(sem_);
}

TEST_P(PercpuRwSemTest, WriterWaitsForEarlierReader) {
  expect_reader_excludes_writer(sem_);
}

TEST_P(PercpuRwSemTest, WriterWaitsForReaderOnAnotherThread) {
  std::atomic<bool> holding{false}, release{false}, acquired{false};
  std::thread reader([&] {
    ReadLock r(sem_);
    raise(holding);
    wait_for(release);
  });
  wait_for(holding);
  std::thread writer([&] {
    sem_.lock();
    raise(acquired);
    sem_.unlock();
  });
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(acquired));
  raise(release);
  EXPECT_TRUE(eventually([&] { return is_set(acquired); }));
  reader.join();
  writer.join();
}

TEST_P(PercpuRwSemTest, WritersAreSerialised) {
  std::atomic<bool> started{false}, acquired{false};
  sem_.lock();
  std::thread second([&] {
    raise(started);
    sem_.lock();
    raise(acquired);
    sem_.unlock();
  });
  wait_for(started);
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(acquired));
  std::thread([&] { EXPECT_FALSE(sem_.try_lock()); }).join();
  sem_.unlock();
  EXPECT_TRUE(eventually([&] { return is_set(acquired); }));
  second.join();
}

// try_lock() never blocks, so on a thread that holds a read lock it cannot
// deadlock: it fails instead of aborting as lock() does.
TEST_P(PercpuRwSemTest, TryLockByReadHolderFails) {
  sem_.lock_shared();
  EXPECT_FALSE(sem_.try_lock());
  EXPECT_FALSE(sem_.held_exclusive_by_this_thread());
  sem_.unlock_shared();
  EXPECT_TRUE(sem_.try_lock());
  sem_.unlock();
}

TEST_P(PercpuRwSemTest, TryLockFailsWhileReaderHoldsAndSucceedsWhenNone) {
  EXPECT_TRUE(sem_.try_lock());
  sem_.unlock();
  std::atomic<bool> holding{false}, release{false};
  std::thread reader([&] {
    sem_.lock_shared();
    raise(holding);
    wait_for(release);
    sem_.unlock_shared();
  });
  wait_for(holding);
  EXPECT_FALSE(sem_.try_lock());
  EXPECT_FALSE(sem_.held_exclusive_by_this_thread());
  EXPECT_FALSE(sem_.try_lock());
  // The failed try_lock() let go: readers still get in.
  std::thread([&] {
    EXPECT_TRUE(sem_.try_lock_shared());
    sem_.unlock_shared();
    sem_.lock_shared();
    sem_.unlock_shared();
  }).join();
  raise(release);
  reader.join();
  EXPECT_TRUE(sem_.try_lock());
  EXPECT_TRUE(sem_.held_exclusive_by_this_thread());
  sem_.unlock();
}

// A read section that starts while a writer is queued waits for that writer
// (writers do not starve), and gets in after it.
TEST_P(PercpuRwSemTest, NewReaderWaitsBehindQueuedWriter) {
  std::atomic<bool> holding{false}, release_first{false};
  std::atomic<bool> writer_in{false}, release_writer{false};
  std::atomic<bool> second_started{false}, second_in{false};
  std::thread first([&] {
    sem_.lock_shared();
    raise(holding);
    wait_for(release_first);
    sem_.unlock_shared();
  });
  wait_for(holding);
  std::thread writer([&] {
    sem_.lock();
    raise(writer_in);
    wait_for(release_writer);
    sem_.unlock();
  });
  std::this_thread::sleep_for(kSettle);  // the writer is queued behind `first`
  ASSERT_FALSE(is_set(writer_in));
  std::thread second([&] {
    raise(second_started);
    sem_.lock_shared();
    raise(second_in);
    sem_.unlock_shared();
  });
  wait_for(second_started);
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(second_in)) << "a new reader overtook a queued writer";
  raise(release_first);
  EXPECT_TRUE(eventually([&] { return is_set(writer_in); }));
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(second_in)) << "a reader got in while the writer was inside";
  raise(release_writer);
  EXPECT_TRUE(eventually([&] { return is_set(second_in); }));
  first.join();
  writer.join();
  second.join();
}

// Readers that waited for one writer get in before the next writer (readers
// do not starve either).
TEST_P(PercpuRwSemTest, ReaderThatWaitedGetsInBeforeNextWriter) {
  std::atomic<int> order{0}, reader_order{0}, writer_order{0};
  std::atomic<bool> reader_started{false}, writer_started{false};
  sem_.lock();
  std::thread reader([&] {
    raise(reader_started);
    sem_.lock_shared();
    reader_order = ++order;
    std::this_thread::sleep_for(kSettle);  // give the next writer every chance
    sem_.unlock_shared();
  });
  wait_for(reader_started);
  std::this_thread::sleep_for(kSettle);  // the reader waits for us
  std::thread writer([&] {
    raise(writer_started);
    sem_.lock();
    writer_order = ++order;
    sem_.unlock();
  });
  wait_for(writer_started);
  std::this_thread::sleep_for(kSettle);  // the next writer is queued
  EXPECT_EQ(order.load(), 0);
  sem_.unlock();
  reader.join();
  writer.join();
  EXPECT_EQ(reader_order.load(), 1) << "the next writer overtook a waiting reader";
  EXPECT_EQ(writer_order.load(), 2);
}

// The reader that the queued writer is waiting for takes the lock again: it
// must not block (the writer waits for it, so that would deadlock).
TEST_P(PercpuRwSemTest, NestedReadLockWithQueuedWriterDoesNotDeadlock) {
  std::atomic<int> step{0};
  std::atomic<bool> writer_started{false}, writer_in{false};
  std::thread reader([&] {
    sem_.lock_shared();
    step = 1;
    while (step.load() != 2) std::this_thread::sleep_for(1ms);
    sem_.lock_shared();  // must return although a writer is queued
    EXPECT_TRUE(sem_.try_lock_shared());
    { ReadLock again(sem_); }
    sem_.unlock_shared();
    step = 3;
    while (step.load() != 4) std::this_thread::sleep_for(1ms);
    sem_.unlock_shared();
    sem_.unlock_shared();
  });
  ASSERT_TRUE(eventually([&] { return step.load() == 1; }));
  std::thread writer([&] {
    raise(writer_started);
    sem_.lock();
    raise(writer_in);
    sem_.unlock();
  });
  wait_for(writer_started);
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(writer_in));
  step = 2;
  ASSERT_TRUE(eventually([&] { return step.load() == 3; }))
      << "a nested read lock blocked behind a queued writer (deadlock)";
  EXPECT_FALSE(is_set(writer_in));
  step = 4;
  EXPECT_TRUE(eventually([&] { return is_set(writer_in); }));
  reader.join();
  writer.join();
}

// A hotplug callback running on the writer's thread takes the read lock.
TEST_P(PercpuRwSemTest, WriteLockHolderCanTakeReadLock) {
  int data = 0;
  sem_.lock();
  EXPECT_TRUE(sem_.held_exclusive_by_this_thread());
  data = 1;
  sem_.lock_shared();
  EXPECT_TRUE(sem_.held_shared_by_this_thread());
  sem_.lock_shared();
  EXPECT_TRUE(sem_.try_lock_shared());
  EXPECT_EQ(data, 1);
  sem_.unlock_shared();
  sem_.unlock_shared();
  sem_.unlock_shared();
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  {
    ReadLock r(sem_);
    EXPECT_TRUE(r.owns_lock());
  }
  // Other threads are still shut out.
  std::thread([&] { EXPECT_FALSE(sem_.try_lock_shared()); }).join();
  EXPECT_TRUE(sem_.held_exclusive_by_this_thread());
  data = 2;
  sem_.unlock();
  EXPECT_FALSE(sem_.held_exclusive_by_this_thread());
  std::thread([&] {
    ReadLock r(sem_);
    EXPECT_EQ(data, 2);
  }).join();
  // And the next writer is not held up by the recursive read holds.
  std::thread([&] {
    EXPECT_TRUE(sem_.try_lock());
    sem_.unlock();
  }).join();
}

// ------------------------------------------------------------ disowned holds

TEST_P(PercpuRwSemTest, DisownedHoldIsReleasedByAnotherThread) {
  std::atomic<bool> disowned{false}, done{false};
  std::atomic<bool> writer_started{false}, writer_in{false};
  std::thread holder([&] {
    sem_.lock_shared();
    sem_.disown_shared();
    EXPECT_FALSE(sem_.held_shared_by_this_thread());
    raise(disowned);
    wait_for(done);  // stays alive: the hold must not depend on it
  });
  wait_for(disowned);
  std::thread writer([&] {
    raise(writer_started);
    sem_.lock();
    raise(writer_in);
    sem_.unlock();
  });
  wait_for(writer_started);
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(writer_in)) << "a writer got in past a disowned read hold";
  std::thread releaser([&] { sem_.unlock_disowned_shared(); });
  releaser.join();
  EXPECT_TRUE(eventually([&] { return is_set(writer_in); }));
  writer.join();
  raise(done);
  holder.join();
}

TEST_P(PercpuRwSemTest, DisownOneOfNestedHolds) {
  sem_.lock_shared();
  sem_.lock_shared();
  sem_.disown_shared();
  EXPECT_TRUE(sem_.held_shared_by_this_thread());  // one hold left
  sem_.unlock_shared();
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  std::thread([&] { EXPECT_FALSE(sem_.try_lock()); }).join();
  std::thread([&] { sem_.unlock_disowned_shared(); }).join();
  std::thread([&] {
    EXPECT_TRUE(sem_.try_lock());
    sem_.unlock();
  }).join();
}

TEST_P(PercpuRwSemTest, ThreadExitingWithReadLockKeepsItHeld) {
  testing::internal::CaptureStderr();
  std::thread([&] {
    sem_.lock_shared();
    sem_.lock_shared();
  }).join();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("exited holding 2 read hold"), std::string::npos) << err;
  EXPECT_FALSE(sem_.try_lock());
  std::atomic<bool> writer_started{false}, writer_in{false};
  std::thread writer([&] {
    raise(writer_started);
    sem_.lock();
    raise(writer_in);
    sem_.unlock();
  });
  wait_for(writer_started);
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(writer_in));
  sem_.unlock_disowned_shared();
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(is_set(writer_in)) << "one of two abandoned holds is still held";
  sem_.unlock_disowned_shared();
  EXPECT_TRUE(eventually([&] { return is_set(writer_in); }));
  writer.join();
  EXPECT_TRUE(sem_.try_lock());
  sem_.unlock();
}

// ------------------------------------------------------------ introspection

TEST_P(PercpuRwSemTest, IntrospectionAndReadSide) {
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  EXPECT_FALSE(sem_.held_exclusive_by_this_thread());
  sem_.lock();
  EXPECT_TRUE(sem_.held_exclusive_by_this_thread());
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  std::thread([&] {
    EXPECT_FALSE(sem_.held_exclusive_by_this_thread());
    EXPECT_FALSE(sem_.held_shared_by_this_thread());
  }).join();
  sem_.unlock();
  EXPECT_FALSE(sem_.held_exclusive_by_this_thread());

  const bool available = membarrier_available();
  EXPECT_EQ(membarrier_available(), available);  // decided once
  if (GetParam() == ReadSide::kFenced) {
    EXPECT_EQ(sem_.read_side(), ReadSide::kFenced);
  } else {
    EXPECT_EQ(sem_.read_side(), available ? ReadSide::kAuto : ReadSide::kFenced);
  }
  PercpuRwSemaphore by_default;
  EXPECT_EQ(by_default.read_side(), available ? ReadSide::kAuto : ReadSide::kFenced);
  std::printf("membarrier_available() = %s\n", available ? "true" : "false");
}

// No fixture object here: the child must call membarrier_available() first.
class PercpuRwSemEnvDeathTest : public testing::TestWithParam<ReadSide> {};

TEST_P(PercpuRwSemEnvDeathTest, NoMembarrierEnvironmentForcesFencedReadSide) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::setenv("CPUHP_NO_MEMBARRIER", "1", 1);
        PercpuRwSemaphore sem(GetParam());
        const bool ok = !membarrier_available() && sem.read_side() == ReadSide::kFenced;
        if (ok) {
          sem.lock_shared();
          sem.unlock_shared();
          sem.lock();
          sem.unlock();
        }
        std::fprintf(stderr, "available=%d read_side_fenced=%d\n", membarrier_available(),
                     sem.read_side() == ReadSide::kFenced);
        std::_Exit(ok ? 0 : 1);
      },
      testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(ReadSides, PercpuRwSemEnvDeathTest,
                         testing::Values(ReadSide::kAuto, ReadSide::kFenced), side_name);

// ------------------------------------------------------------ misuse aborts

class PercpuRwSemDeathTest : public PercpuRwSemTest {};

TEST_P(PercpuRwSemDeathTest, UnlockSharedWithoutHoldAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      sem_.unlock_shared(),
      "unlock_shared.*holds no read lock.*disown_shared.*unlock_disowned_shared");
  // Also after the thread's own hold was disowned.
  EXPECT_DEATH(
      {
        sem_.lock_shared();
        sem_.disown_shared();
        sem_.unlock_shared();
      },
      "holds no read lock");
}

TEST_P(PercpuRwSemDeathTest, LockWhileHoldingReadLockAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        sem_.lock_shared();
        sem_.lock();
      },
      "would deadlock");
  EXPECT_DEATH(
      {
        ReadLock r(sem_);
        WriteLock w(sem_);
      },
      "would deadlock");
}

TEST_P(PercpuRwSemDeathTest, LockTwiceOnOneThreadAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        sem_.lock();
        sem_.lock();
      },
      "already holds the write lock");
}

TEST_P(PercpuRwSemDeathTest, UnlockByNonHolderAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(sem_.unlock(), "does not hold the write lock");
  EXPECT_DEATH(
      {
        std::atomic<bool> locked{false};
        std::atomic<bool> release{false};
        std::thread holder([&] {
          sem_.lock();
          raise(locked);
          wait_for(release);
        });
        wait_for(locked);
        sem_.unlock();
      },
      "does not hold the write lock");
}

TEST_P(PercpuRwSemDeathTest, UnlockDisownedWithoutDisownedHoldAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(sem_.unlock_disowned_shared(), "without a disowned read lock");
  EXPECT_DEATH(
      {
        sem_.lock_shared();
        sem_.disown_shared();
        sem_.unlock_disowned_shared();
        sem_.unlock_disowned_shared();  // only one was disowned
      },
      "without a disowned read lock");
  // A plain read hold is not a disowned one.
  EXPECT_DEATH(
      {
        sem_.lock_shared();
        sem_.unlock_disowned_shared();
      },
      "without a disowned read lock");
}

TEST_P(PercpuRwSemDeathTest, DisownWithoutHoldAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(sem_.disown_shared(), "disown_shared.*holds no read lock");
}

TEST_P(PercpuRwSemDeathTest, DestroyingWhileWriteLockedAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto sem = std::make_unique<PercpuRwSemaphore>(GetParam());
        sem->lock();
        sem.reset();
      },
      "destroyed while write-locked");
}

// The header's contract: "Misuse that would deadlock (..., destroying a held
// lock) aborts with a message". A read hold is a hold too.
TEST_P(PercpuRwSemDeathTest, DestroyingWhileReadLockedAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto sem = std::make_unique<PercpuRwSemaphore>(GetParam());
        sem->lock_shared();
        sem.reset();
      },
      "PercpuRwSemaphore");
}

// The destructor waits for the deferred gate reopening, an RCU callback
// queued by the last unlock() (kAuto only). Where that wait can never end it
// must not hang: the contract says misuse that would deadlock aborts with a
// message. So these accept a clean exit or an abort, and fail only if the
// child is still stuck when its alarm goes off.
bool did_not_hang(int status) {
  return !(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM);
}

TEST_P(PercpuRwSemDeathTest, DestroyingInsideRcuReadSectionDoesNotHang) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::alarm(3);
        auto sem = std::make_unique<PercpuRwSemaphore>(GetParam());
        sem->lock();
        sem->unlock();  // queues the reopening behind a grace period
        rcu::rcu_default_domain().lock();
        sem.reset();  // waits for a grace period our own read section blocks
        rcu::rcu_default_domain().unlock();
        std::_Exit(0);
      },
      did_not_hang, "");
}

TEST_P(PercpuRwSemDeathTest, DestroyingInsideRcuCallbackDoesNotHang) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::alarm(3);
        const ReadSide side = GetParam();
        rcu::rcu_call([side] {
          PercpuRwSemaphore sem(side);
          sem.lock();
          sem.unlock();  // queues the reopening on the callback thread...
        });  // ...whose callback the destructor then waits for, on that thread
        rcu::rcu_barrier();
        std::_Exit(0);
      },
      did_not_hang, "");
}

INSTANTIATE_TEST_SUITE_P(ReadSides, PercpuRwSemDeathTest,
                         testing::Values(ReadSide::kAuto, ReadSide::kFenced), side_name);

// ------------------------------------------------------------ many locks

// Uses every read-side and write-side call once.
void exercise(PercpuRwSemaphore& sem, bool write) {
  sem.lock_shared();
  sem.lock_shared();
  sem.unlock_shared();
  sem.unlock_shared();
  if (sem.try_lock_shared()) sem.unlock_shared();
  { ReadLock r(sem); }
  if (write) {
    WriteLock w(sem);
    sem.lock_shared();
    sem.unlock_shared();
  }
}

// 1000 semaphores, each created, used by two long-lived threads at once, then
// destroyed: the slot tables, the thread-local slot cache (ids never reused)
// and the pruning of dead tables' entries.
TEST_P(PercpuRwSemTest, ThousandLocksCreatedUsedAndDestroyed) {
  constexpr int kLocks = 1000;
  std::unique_ptr<PercpuRwSemaphore> current;
  std::barrier sync(3);
  auto worker = [&](int self) {
    for (int i = 0; i < kLocks; ++i) {
      sync.arrive_and_wait();  // `current` is set
      // Writes are one in ten: with kAuto, destroying a lock written within the
      // last grace period waits for its deferred gate reopening.
      for (int rep = 0; rep < 3; ++rep) exercise(*current, /*write=*/i % 20 == self);
      EXPECT_FALSE(current->held_shared_by_this_thread());
      sync.arrive_and_wait();  // done with `current`
    }
  };
  std::thread a(worker, 0), b(worker, 10);
  for (int i = 0; i < kLocks; ++i) {
    current = std::make_unique<PercpuRwSemaphore>(GetParam());
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    if (i % 20 == 0) {
      EXPECT_TRUE(current->try_lock()) << "lock " << i << " left held";
      current->unlock();
    } else {
      EXPECT_TRUE(current->try_lock_shared()) << "lock " << i << " left write-locked";
      current->unlock_shared();
    }
    current.reset();
  }
  a.join();
  b.join();
  // The long-lived threads' state still works with a fresh lock.
  PercpuRwSemaphore fresh(GetParam());
  std::thread([&] { exercise(fresh, true); }).join();
  exercise(fresh, true);
}

void short_lived_user(std::vector<std::unique_ptr<PercpuRwSemaphore>>& locks, int index) {
  for (int round = 0; round < 2; ++round) {
    for (std::size_t l = 0; l < locks.size(); ++l)
      exercise(*locks[l], /*write=*/(index + round) % 10 == static_cast<int>(l));
  }
  for (auto& lock : locks) EXPECT_FALSE(lock->held_shared_by_this_thread());
}

TEST_P(PercpuRwSemTest, ShortLivedThreadsExitBeforeLocksAreDestroyed) {
  std::vector<std::unique_ptr<PercpuRwSemaphore>> locks;
  for (int i = 0; i < 10; ++i)
    locks.push_back(std::make_unique<PercpuRwSemaphore>(GetParam()));
  for (int batch = 0; batch < 10; ++batch) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 10; ++t)
      threads.emplace_back(short_lived_user, std::ref(locks), batch * 10 + t);
    for (auto& t : threads) t.join();
  }
  for (auto& lock : locks) {
    EXPECT_TRUE(lock->try_lock());
    lock->unlock();
  }
  locks.clear();
}

TEST_P(PercpuRwSemTest, LocksDestroyedBeforeShortLivedThreadsExit) {
  std::vector<std::unique_ptr<PercpuRwSemaphore>> locks;
  for (int i = 0; i < 10; ++i)
    locks.push_back(std::make_unique<PercpuRwSemaphore>(GetParam()));
  std::atomic<int> finished{0};
  std::atomic<bool> exit_now{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 100; ++t) {
    threads.emplace_back([&, t] {
      short_lived_user(locks, t);
      ++finished;
      wait_for(exit_now);
      // The tables are gone; a fresh lock still works on this thread.
      PercpuRwSemaphore fresh(GetParam());
      exercise(fresh, true);
    });
  }
  ASSERT_TRUE(eventually([&] { return finished.load() == 100; }, 60000ms));
  locks.clear();  // destroyed while their users are still alive
  raise(exit_now);
  for (auto& t : threads) t.join();
  PercpuRwSemaphore after(GetParam());
  exercise(after, true);
}

// Regression: the slot cache is direct-mapped with 8 ways keyed by lock id,
// and a miss used to claim a *new* slot instead of finding the one this thread
// already owns in that table. Any 9 locks contain two whose ids share a way,
// so holding read locks of all 9 at once evicted one of the holds:
// held_shared_by_this_thread() said false, and unlock_shared() on it aborted
// ("holds no read lock").
TEST_P(PercpuRwSemTest, ThreadHoldsReadLocksOfNineLocksAtOnce) {
  constexpr int kLocks = 9;
  std::vector<std::unique_ptr<PercpuRwSemaphore>> locks;
  for (int i = 0; i < kLocks; ++i)
    locks.push_back(std::make_unique<PercpuRwSemaphore>(GetParam()));
  testing::internal::CaptureStderr();
  std::thread([&] {
    for (auto& lock : locks) lock->lock_shared();
    std::vector<bool> held;
    for (auto& lock : locks) held.push_back(lock->held_shared_by_this_thread());
    for (int i = 0; i < kLocks; ++i) {
      EXPECT_TRUE(held[i]) << "read hold of lock " << i << " of " << kLocks
                           << " lost from the thread's view";
      // Release what we can; a lost hold is released below, after this thread
      // exits and its slot's count moves to the disowned count.
      if (held[i]) locks[i]->unlock_shared();
    }
  }).join();
  testing::internal::GetCapturedStderr();
  for (auto& lock : locks) {
    if (!lock->try_lock()) {
      lock->unlock_disowned_shared();
      ASSERT_TRUE(lock->try_lock());
    }
    lock->unlock();
  }
}

// Regressions in the reader slots, with the symptoms a user would meet. Each
// runs in a child process (EXPECT_EXIT) so that an abort or a deadlock fails
// only this test.
class PercpuRwSemReaderSlotsDeathTest : public PercpuRwSemTest {};

// Nested read holds of several locks, released in reverse order.
TEST_P(PercpuRwSemReaderSlotsDeathTest, ReadLocksOfNineLocksNestAndUnwind) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::alarm(3);
        std::vector<std::unique_ptr<PercpuRwSemaphore>> locks;
        for (int i = 0; i < 9; ++i)
          locks.push_back(std::make_unique<PercpuRwSemaphore>(GetParam()));
        for (auto& lock : locks) lock->lock_shared();
        for (auto it = locks.rbegin(); it != locks.rend(); ++it) (*it)->unlock_shared();
        std::_Exit(0);
      },
      testing::ExitedWithCode(0), "");
}

// A nested read lock with a writer queued must not block, also after the
// thread touched a lock whose id shares the cache way (the bug: the nested call
// landed on a fresh slot with count 0 and waited for the writer, which waited
// for the old slot). Locks created in a row get consecutive ids, so locks[0]
// and locks[8] share a way.
TEST_P(PercpuRwSemReaderSlotsDeathTest, NestedReadAfterUsingAnotherLockWithQueuedWriter) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::alarm(3);  // a deadlock ends the child with SIGALRM
        std::vector<std::unique_ptr<PercpuRwSemaphore>> locks;
        for (int i = 0; i < 9; ++i)
          locks.push_back(std::make_unique<PercpuRwSemaphore>(GetParam()));
        PercpuRwSemaphore& a = *locks[0];
        PercpuRwSemaphore& b = *locks[8];
        a.lock_shared();
        b.lock_shared();
        b.unlock_shared();
        std::thread writer([&] {
          a.lock();
          a.unlock();
        });
        std::this_thread::sleep_for(kSettle);  // the writer is queued behind us
        a.lock_shared();                       // nested
        a.unlock_shared();
        a.unlock_shared();
        writer.join();
        std::_Exit(0);
      },
      testing::ExitedWithCode(0), "");
}

// Per-thread state that takes the read lock when its thread exits (say, to
// unregister itself under the hotplug read lock). If it was constructed before
// the thread first used the lock, its destructor runs after the thread's slot
// list (reader_slots.cpp, ThreadSlotList) was destroyed when that list was a
// C++ thread_local: the read lock then claimed a slot through the destroyed
// list (heap use-after-free, double free).
struct TakesReadLockAtThreadExit {
  PercpuRwSemaphore* sem;
  ~TakesReadLockAtThreadExit() {
    ReadLock r(*sem);
    EXPECT_TRUE(r.owns_lock());
  }
};

TEST_P(PercpuRwSemReaderSlotsDeathTest, ReadLockInThreadLocalDestructor) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::alarm(3);
        for (int i = 0; i < 3; ++i) {
          std::thread([&] {
            thread_local TakesReadLockAtThreadExit at_exit{&sem_};  // before first use
            ReadLock r(sem_);
          }).join();
        }
        sem_.lock();
        sem_.unlock();
        std::_Exit(0);
      },
      testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(ReadSides, PercpuRwSemReaderSlotsDeathTest,
                         testing::Values(ReadSide::kAuto, ReadSide::kFenced), side_name);

// ------------------------------------------------------------ gate reopening

// After unlock() the gate reopens a grace period later (kAuto); a writer that
// comes back before then skips closing it. Neither is observable directly, so
// after quiet periods of several lengths check that readers still get in and
// see the last write, and that exclusion still holds both ways.
TEST_P(PercpuRwSemTest, ExclusionHoldsAfterTheGateReopens) {
  int data = 0;
  int expected = 0;
  for (auto pause : {0ms, 1ms, 10ms, 50ms, 200ms, 500ms}) {
    sem_.lock();
    data = ++expected;
    sem_.unlock();
    std::this_thread::sleep_for(pause);
    std::atomic<int> seen{-1};
    std::thread([&] {
      ReadLock r(sem_);
      seen = data;
    }).join();
    EXPECT_EQ(seen.load(), expected) << "pause " << pause.count() << " ms";
    expect_writer_excludes_reader(sem_);
    std::this_thread::sleep_for(pause);
    expect_reader_excludes_writer(sem_);
    data = expected;  // the helpers wrote their own values
  }
  // Readers keep working through a long quiet period; poll (bounded) with
  // read-only traffic so that the deferred reopening has every chance to run.
  for (int poll = 0; poll < 50; ++poll) {
    std::this_thread::sleep_for(10ms);
    std::thread([&] {
      for (int i = 0; i < 100; ++i) {
        ReadLock r(sem_);
        ASSERT_EQ(data, expected);
      }
    }).join();
  }
  expect_writer_excludes_reader(sem_);
  expect_reader_excludes_writer(sem_);
}

// Writers back to back (the reopen of one racing the next writer's close)
// with readers in between: overlap is counted, never allowed.
TEST_P(PercpuRwSemTest, BackToBackWritersWithReaders) {
  std::atomic<int> readers_inside{0};
  std::atomic<bool> writer_inside{false};
  std::atomic<int> violations{0};
  std::atomic<bool> stop{false};
  long data = 0;
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        ReadLock guard(sem_);
        readers_inside.fetch_add(1, std::memory_order_relaxed);
        if (writer_inside.load(std::memory_order_relaxed)) ++violations;
        const long seen = data;
        if (seen < 0) ++violations;
        readers_inside.fetch_sub(1, std::memory_order_relaxed);
      }
    });
  }
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 300; ++i) {
        WriteLock guard(sem_);
        if (writer_inside.exchange(true, std::memory_order_relaxed)) ++violations;
        if (readers_inside.load(std::memory_order_relaxed) != 0) ++violations;
        ++data;
        writer_inside.store(false, std::memory_order_relaxed);
        if (i % 50 == 0) {
          guard.unlock();
          std::this_thread::sleep_for(std::chrono::milliseconds(w + 1));
        }
      }
    });
  }
  threads[2].join();
  threads[3].join();
  stop = true;
  threads[0].join();
  threads[1].join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(data, 600);
}

INSTANTIATE_TEST_SUITE_P(ReadSides, PercpuRwSemTest,
                         testing::Values(ReadSide::kAuto, ReadSide::kFenced), side_name);

// ------------------------------------------------------------ RCU read sections

class PercpuRwSemRcuDeathTest : public testing::TestWithParam<ReadSide> {};

// Regression: the Domain's writer (a CPU going down) holds the lock and waits
// for an RCU grace period; a reader that blocked in lock_shared() inside an
// RCU read section never ended that section: both waited for good, silently.
// With WriterWaits::kForRcuGracePeriods the reader aborts with a message
// instead. (Before the fix this child hangs until its alarm.)
TEST_P(PercpuRwSemRcuDeathTest, ReaderInsideRcuReadSectionThatWouldWaitAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ::alarm(10);
        PercpuRwSemaphore sem(GetParam(), WriterWaits::kForRcuGracePeriods);
        std::atomic<bool> locked{false};
        std::atomic<bool> in_section{false};
        std::thread writer([&] {
          sem.lock();
          raise(locked);
          wait_for(in_section);
          rcu::rcu_synchronize();  // waits for the reader's read section
          sem.unlock();
        });
        writer.detach();
        wait_for(locked);
        rcu::ReadGuard section;
        raise(in_section);
        sem.lock_shared();  // would wait for the writer
        std::_Exit(0);
      },
      "lock_shared\\(\\) inside an RCU read section.*deadlock.*Leave the RCU read "
      "section");
}

// The check costs nothing where no wait is needed, and does not fire for a
// lock whose writers do not wait for grace periods.
TEST_P(PercpuRwSemRcuDeathTest, ReaderInsideRcuReadSectionThatNeedNotWaitIsFine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::alarm(10);
        PercpuRwSemaphore sem(GetParam(), WriterWaits::kForRcuGracePeriods);
        {
          rcu::ReadGuard section;
          sem.lock_shared();  // no writer: the fast path, or the slow path's check
          sem.lock_shared();  // nested
          sem.unlock_shared();
          sem.unlock_shared();
        }
        // The writer's own thread takes the read lock (a hotplug callback)
        // inside a read section: it does not wait.
        sem.lock();
        {
          rcu::ReadGuard section;
          sem.lock_shared();
          sem.unlock_shared();
        }
        // try_lock_shared() never waits, so it fails instead.
        std::thread([&] {
          rcu::ReadGuard section;
          if (sem.try_lock_shared()) std::_Exit(3);
        }).join();
        sem.unlock();
        // A lock whose writers wait only for readers: the reader waits.
        PercpuRwSemaphore plain(GetParam());
        EXPECT_EQ(plain.writer_waits(), WriterWaits::kForReadersOnly);
        std::atomic<bool> locked{false};
        std::atomic<bool> in_section{false};
        std::thread writer([&] {
          plain.lock();
          raise(locked);
          wait_for(in_section);
          std::this_thread::sleep_for(kSettle);  // the reader waits
          plain.unlock();
        });
        wait_for(locked);
        {
          rcu::ReadGuard section;
          raise(in_section);
          plain.lock_shared();
          plain.unlock_shared();
        }
        writer.join();
        std::_Exit(0);
      },
      testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(ReadSides, PercpuRwSemRcuDeathTest,
                         testing::Values(ReadSide::kAuto, ReadSide::kFenced), side_name);

// ------------------------------------------------------------ ReadLock

TEST_P(PercpuRwSemTest, ReadLockInterface) {
  ReadLock empty;
  EXPECT_FALSE(empty.owns_lock());
  EXPECT_EQ(empty.mutex(), nullptr);
  EXPECT_THROW(empty.lock(), std::system_error);
  EXPECT_THROW(empty.unlock(), std::system_error);

  ReadLock r(sem_);
  EXPECT_TRUE(r.owns_lock());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.mutex(), &sem_);
  EXPECT_THROW(r.lock(), std::system_error);  // already owns
  r.unlock();
  EXPECT_FALSE(r.owns_lock());
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  EXPECT_TRUE(r.try_lock());
  ReadLock moved(std::move(r));  // moving on the same thread is fine
  EXPECT_FALSE(r.owns_lock());
  EXPECT_TRUE(moved.owns_lock());
  ReadLock other;
  other.swap(moved);
  EXPECT_TRUE(other.owns_lock());
  moved = std::move(other);
  EXPECT_TRUE(moved.owns_lock());
  PercpuRwSemaphore* released = moved.release();  // we now own the hold ourselves
  EXPECT_EQ(released, &sem_);
  EXPECT_FALSE(moved.owns_lock());
  EXPECT_TRUE(sem_.held_shared_by_this_thread());
  {
    ReadLock adopted(sem_, std::adopt_lock);
    EXPECT_TRUE(adopted.owns_lock());
  }
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
  // std::shared_lock keeps working as before.
  {
    std::shared_lock<PercpuRwSemaphore> s(sem_);
    EXPECT_TRUE(sem_.held_shared_by_this_thread());
  }
  EXPECT_FALSE(sem_.held_shared_by_this_thread());
}

// DESIGN: a read hold may be handed to another thread explicitly.
TEST_P(PercpuRwSemTest, ReadLockDisownHandsTheHoldToAnotherThread) {
  DisownedReadLock handed;
  {
    ReadLock r(sem_);
    handed = r.disown();
    EXPECT_FALSE(r.owns_lock());
    EXPECT_EQ(r.mutex(), &sem_);
    EXPECT_FALSE(sem_.held_shared_by_this_thread());
  }  // r owns nothing: destroying it ends nothing
  EXPECT_TRUE(handed.owns_lock());
  EXPECT_EQ(handed.mutex(), &sem_);
  std::thread([&] { EXPECT_FALSE(sem_.try_lock()); }).join();  // still held
  std::thread([h = std::move(handed)]() mutable {
    EXPECT_TRUE(h.owns_lock());
    h.unlock();
    EXPECT_FALSE(h.owns_lock());
    EXPECT_THROW(h.unlock(), std::system_error);
  }).join();
  EXPECT_FALSE(handed.owns_lock());
  std::thread([&] {
    EXPECT_TRUE(sem_.try_lock());
    sem_.unlock();
  }).join();
  // Destroying a DisownedReadLock ends its hold, on whatever thread.
  {
    ReadLock r(sem_);
    std::thread([h = r.disown()] {}).join();
  }
  EXPECT_TRUE(sem_.try_lock());
  sem_.unlock();
}

// Regression: unlock_shared() (through a ReadLock that had been moved to
// another thread) on a thread that held a read lock of its own ended that
// thread's hold instead: its nesting count went wrong, and a writer then
// waited for good for the original holder's slot. Now ReadLock notices.
TEST_P(PercpuRwSemDeathTest, ReadLockReleasedOnAnotherThreadAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ReadLock mine(sem_);
        std::thread([&] {
          ReadLock own(sem_);  // this thread's own hold
          { ReadLock moved(std::move(mine)); }
          std::_Exit(0);  // not reached: the release above aborts
        }).join();
      },
      "ReadLock released on a thread other than the one that took.*disown\\(\\)");
  EXPECT_DEATH(
      {
        ReadLock mine(sem_);
        std::thread([&] { mine.unlock(); }).join();
        std::_Exit(0);
      },
      "ReadLock released on a thread other than");
  EXPECT_DEATH(
      {
        ReadLock mine(sem_);
        std::thread([&] { (void)mine.disown(); }).join();
        std::_Exit(0);
      },
      "ReadLock disowned on a thread other than");
}

// ------------------------------------------------------------ object lifetime
//
// std::shared_mutex lets the last user free the lock: a thread that acquired
// it after every other user released it may destroy it at once, while the
// others may still be inside their unlock calls. These tests free a semaphore
// at the worst moment and make any later access to it fault: the semaphore
// lives on pages of its own, and "freeing" it runs the destructor and then
// mprotect()s the pages to PROT_NONE. That fails in every build, not only
// under AddressSanitizer.

// One semaphore on pages of its own.
class GuardedSemaphore {
 public:
  explicit GuardedSemaphore(ReadSide side)
      : bytes_(round_up(sizeof(PercpuRwSemaphore))),
        memory_(::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) {
    if (memory_ == MAP_FAILED) std::abort();
    sem_ = new (memory_) PercpuRwSemaphore(side);
  }
  ~GuardedSemaphore() {
    if (sem_ != nullptr) sem_->~PercpuRwSemaphore();
    ::munmap(memory_, bytes_);
  }
  GuardedSemaphore(const GuardedSemaphore&) = delete;
  GuardedSemaphore& operator=(const GuardedSemaphore&) = delete;

  PercpuRwSemaphore& operator*() const { return *sem_; }
  PercpuRwSemaphore* operator->() const { return sem_; }

  // Destroys the semaphore; from now on every access to its memory faults.
  void destroy() {
    PercpuRwSemaphore* sem = sem_;
    sem_ = nullptr;
    sem->~PercpuRwSemaphore();
    if (::mprotect(memory_, bytes_, PROT_NONE) != 0) std::abort();
  }

 private:
  static std::size_t round_up(std::size_t n) {
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return (n + page - 1) / page * page;
  }
  std::size_t bytes_;
  void* memory_;
  PercpuRwSemaphore* sem_ = nullptr;
};

// Freezing a thread inside a release call: the thread sets tl_releasing
// around the call; SIGUSR1, sent at random moments, finds it there or not.
// If it does, the handler reports "frozen" and waits until the test thread
// lets it go; meanwhile the test checks (with a try-lock from its own thread)
// whether the release already happened and, if so, destroys the semaphore.
namespace freeze {
thread_local volatile std::sig_atomic_t tl_releasing = 0;
std::atomic<unsigned> handled{0};  // handler runs
std::atomic<bool> frozen{false};
std::atomic<unsigned> thaw_generation{0};

void on_signal(int) {
  const int saved_errno = errno;
  if (tl_releasing != 0) {
    const unsigned generation = thaw_generation.load();
    frozen.store(true);
    handled.fetch_add(1);
    const timespec pause{0, 20'000};
    while (thaw_generation.load() == generation) ::nanosleep(&pause, nullptr);
    // Only now may the next signal be sent: one sent earlier would be
    // delivered the moment this handler returns, at the same instruction,
    // and the thread would never move on.
    frozen.store(false);
  } else {
    handled.fetch_add(1);
  }
  errno = saved_errno;
}

// Marks the calls of `release` (which must not be inlined into anything
// else: the fences keep the flag around exactly the call).
template <class Release>
void releasing(Release release) {
  tl_releasing = 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  release();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tl_releasing = 0;
}
}  // namespace freeze

enum class ReleasePath { kUnlockShared, kUnlockDisownedShared };

// Runs `rounds` rounds; in each, a reader thread takes and releases read
// holds of a fresh semaphore in a loop until the test thread freezes it
// just after a release and destroys the semaphore.
void free_behind_releasing_reader(ReadSide side, ReleasePath path, int rounds) {
  struct sigaction action {};
  action.sa_handler = freeze::on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (::sigaction(SIGUSR1, &action, nullptr) != 0) std::abort();
  for (int round = 0; round < rounds; ++round) {
    GuardedSemaphore sem(side);
    std::atomic<bool> destroyed{false};
    std::thread reader([&] {
      while (!destroyed.load()) {
        sem->lock_shared();
        if (path == ReleasePath::kUnlockShared) {
          freeze::releasing([&] { sem->unlock_shared(); });
        } else {
          sem->disown_shared();
          freeze::releasing([&] { sem->unlock_disowned_shared(); });
        }
      }
    });
    while (!destroyed.load()) {
      const unsigned seen = freeze::handled.load();
      ::pthread_kill(reader.native_handle(), SIGUSR1);
      while (freeze::handled.load() == seen) std::this_thread::yield();
      if (!freeze::frozen.load()) continue;
      // The reader is inside a release call. If its hold is already gone, a
      // writer gets in, and may then free the semaphore at once.
      if (sem->try_lock()) {
        sem->unlock();
        sem.destroy();
        destroyed.store(true);
      }
      freeze::thaw_generation.fetch_add(1);
      while (freeze::frozen.load()) std::this_thread::yield();
    }
    reader.join();
  }
}

bool under_thread_sanitizer() {
#if defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return true;
#endif
#endif
  return false;
}

class PercpuRwSemLifetimeTest : public PercpuRwSemTest {};

// unlock_shared() may be the last thing a reader does with the semaphore: a
// writer that gets in after it may destroy it while the reader is still
// inside unlock_shared(). Regression: the reader loaded the gate and woke the
// writer through the semaphore after its releasing store.
TEST_P(PercpuRwSemLifetimeTest, WriterMayFreeRightAfterUnlockShared) {
  if (under_thread_sanitizer())
    GTEST_SKIP() << "ThreadSanitizer defers signals to its interceptors: the reader "
                    "loop would never be interrupted";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        free_behind_releasing_reader(GetParam(), ReleasePath::kUnlockShared, 60);
        std::_Exit(0);
      },
      testing::ExitedWithCode(0), "");
}

// The same for a disowned hold ended by unlock_disowned_shared().
TEST_P(PercpuRwSemLifetimeTest, WriterMayFreeRightAfterUnlockDisownedShared) {
  if (under_thread_sanitizer())
    GTEST_SKIP() << "ThreadSanitizer defers signals to its interceptors: the reader "
                    "loop would never be interrupted";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        free_behind_releasing_reader(GetParam(), ReleasePath::kUnlockDisownedShared, 60);
        std::_Exit(0);
      },
      testing::ExitedWithCode(0), "");
}

// unlock() may be the last thing a writer does with the semaphore: a reader
// that it lets in may destroy it while the writer is still inside unlock().
// The writer runs at SCHED_IDLE on the same CPU as the reader, so the wake-up
// that unlock() sends the sleeping reader preempts the writer on the spot:
// the reader gets in, releases and destroys the semaphore before the writer
// runs another instruction. Regression: unlock() scheduled the gate's
// reopening and released its internal mutex after letting readers in.
// One CPU this thread may run on.
cpu_set_t one_allowed_cpu() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) std::abort();
  int cpu = 0;
  while (!CPU_ISSET(cpu, &allowed)) ++cpu;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return one;
}

void pin_to(const cpu_set_t& cpus) {
  if (::pthread_setaffinity_np(::pthread_self(), sizeof cpus, &cpus) != 0) std::abort();
}

// A writer lets a sleeping reader in, and the reader frees the semaphore
// before the writer runs another instruction (see the test below).
void free_behind_unlocking_writer(ReadSide side, int rounds) {
  const cpu_set_t cpu = one_allowed_cpu();
  for (int round = 0; round < rounds; ++round) {
    GuardedSemaphore sem(side);
    std::atomic<bool> locked{false}, reader_started{false};
    std::thread writer([&] {
      pin_to(cpu);
      const sched_param idle{};
      if (::pthread_setschedparam(::pthread_self(), SCHED_IDLE, &idle) != 0) std::abort();
      sem->lock();
      raise(locked);
      wait_for(reader_started);
      std::this_thread::sleep_for(kSettle);  // the reader sleeps in lock_shared()
      sem->unlock();                         // the last access to `sem`
    });
    std::thread reader([&] {
      pin_to(cpu);
      wait_for(locked);
      raise(reader_started);
      sem->lock_shared();
      sem->unlock_shared();
      sem.destroy();
    });
    reader.join();
    writer.join();
  }
}

// unlock() may be the last thing a writer does with the semaphore: a reader
// that it lets in may destroy it while the writer is still inside unlock().
// The writer runs at SCHED_IDLE on the same CPU as the reader, so the wake-up
// that unlock() sends the sleeping reader preempts the writer on the spot:
// the reader gets in, releases and destroys the semaphore before the writer
// runs another instruction (the destructor may wait for the writer, which
// then runs). Regression: unlock() scheduled the gate's reopening and
// released its internal mutex after letting readers in.
TEST_P(PercpuRwSemLifetimeTest, ReaderMayFreeRightAfterUnlock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        free_behind_unlocking_writer(GetParam(), 3);
        std::_Exit(0);
      },
      testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(ReadSides, PercpuRwSemLifetimeTest,
                         testing::Values(ReadSide::kAuto, ReadSide::kFenced), side_name);

}  // namespace
}  // namespace cpuhp
