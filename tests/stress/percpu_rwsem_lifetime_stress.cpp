// SPDX-License-Identifier: MIT
// Stress test of PercpuRwSemaphore's lifetime: semaphores created, shared,
// released and destroyed by their last user at once, their memory reused
// right away by the next one. The contract (percpu_rwsem.h, "Destruction")
// lets the last user free the lock while the others are still inside their
// release calls; a release that touched the semaphore after its releasing step
// is a heap-use-after-free under AddressSanitizer and a race with the next
// semaphore's construction under ThreadSanitizer, so this file is meant for
// the sanitizer builds (the suite runs it in all three).
//
// One creator thread and kReaders reader threads meet in rounds; each round
// uses a fresh semaphore (and the two read sides alternate) and one pattern:
//   kWriterFrees    each reader takes a read hold (lock_shared, ReadLock or
//                   try_lock_shared), says so, and releases it; the creator,
//                   once every reader said so, takes the write lock, releases
//                   it and deletes the semaphore at once.
//   kReaderFrees    the creator takes the write lock, then hands the semaphore
//                   out; the readers wait for it in lock_shared(); the creator
//                   unlocks; each reader releases, and the last one to do so
//                   deletes the semaphore at once (the creator may still be
//                   inside unlock()).
//   kDisowned       each reader takes a hold and disowns it; once all have, each
//                   ends one disowned hold (maybe another reader's) with
//                   unlock_disowned_shared(), while the creator waits in
//                   lock(), then unlocks and deletes.
// A plain field of the semaphore's record is written in the write sections
// and read in the read sections (ThreadSanitizer checks the happens-before).
// Duration: CPUHP_STRESS_SECONDS (default 2).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "cpuhp/percpu_rwsem.h"
#include "support/stress.h"

namespace cpuhp {
namespace {

constexpr int kReaders = 3;

enum class Pattern { kWriterFrees, kReaderFrees, kDisowned };

struct Shared {
  explicit Shared(ReadSide side) : sem(side) {}
  PercpuRwSemaphore sem;
  long payload = 0;                        // plain: written only in write sections
  std::atomic<int> holding{0};             // readers that took their hold
  std::atomic<int> still_using{kReaders};  // kReaderFrees: who deletes
};

class Rounds {
 public:
  void run(double seconds) {
    std::vector<std::thread> readers;
    for (int r = 0; r < kReaders; ++r) readers.emplace_back([this, r] { reader(r); });
    const auto end =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (unsigned n = 0; std::chrono::steady_clock::now() < end; ++n) round(n);
    publish(nullptr, Pattern::kWriterFrees);  // tells the readers to stop
    for (auto& t : readers) t.join();
    std::printf("%u rounds (%u per pattern and read side at least), %ld violations\n",
                rounds_, rounds_ / 6, violations_.count());
    EXPECT_EQ(violations_.count(), 0) << violations_.first();
    EXPECT_GE(rounds_, 6U);
  }

 private:
  void round(unsigned n) {
    const auto pattern = static_cast<Pattern>(n % 3);
    const ReadSide side = (n / 3) % 2 == 0 ? ReadSide::kAuto : ReadSide::kFenced;
    auto* shared = new Shared(side);
    switch (pattern) {
      case Pattern::kWriterFrees:
      case Pattern::kDisowned:
        publish(shared, pattern);
        wait_until([&] { return shared->holding.load() == kReaders; });
        shared->sem.lock();  // waits for the holds to end
        ++shared->payload;
        shared->sem.unlock();
        delete shared;  // at once: readers may still be inside their releases
        break;
      case Pattern::kReaderFrees:
        shared->sem.lock();
        shared->payload = 1;
        publish(shared, pattern);
        wait_until([&] { return shared->holding.load() == kReaders; });
        shared->sem.unlock();  // the last reader deletes; we touch nothing after
        break;
    }
    wait_until([&] { return done_.load() == kReaders; });
    done_.store(0);
    ++rounds_;
  }

  void reader(int self) {
    unsigned seen = 0;
    for (long iter = self;; ++iter) {
      generation_.wait(seen);
      seen = generation_.load();
      Shared* shared = current_.load();
      if (shared == nullptr) return;
      switch (pattern_.load()) {
        case Pattern::kWriterFrees:
          take_and_release(shared, iter);
          break;
        case Pattern::kReaderFrees: {
          shared->holding.fetch_add(1);  // about to wait in lock_shared()
          shared->sem.lock_shared();
          if (shared->payload != 1)
            violations_.add("reader got in before the writer left");
          shared->sem.unlock_shared();
          if (shared->still_using.fetch_sub(1) == 1) delete shared;
          break;
        }
        case Pattern::kDisowned: {
          shared->sem.lock_shared();
          shared->sem.disown_shared();
          // Wait until every reader disowned one, so that each of the
          // releases below may be the last one.
          shared->holding.fetch_add(1);
          wait_until([&] { return shared->holding.load() == kReaders; });
          shared->sem.unlock_disowned_shared();
          break;
        }
      }
      done_.fetch_add(1);  // nothing touches `shared` after this
    }
  }

  // kWriterFrees: one of three ways to hold, then the last access.
  void take_and_release(Shared* shared, long iter) {
    switch (iter % 3) {
      case 0: {
        ReadLock hold(shared->sem);
        if (shared->payload != 0) violations_.add("read section saw a later write");
        shared->holding.fetch_add(1);
        break;  // ~ReadLock is the last access
      }
      case 1:
        shared->sem.lock_shared();
        shared->holding.fetch_add(1);
        shared->sem.unlock_shared();
        break;
      default:
        while (!shared->sem.try_lock_shared()) std::this_thread::yield();
        shared->holding.fetch_add(1);
        shared->sem.unlock_shared();
        break;
    }
  }

  void publish(Shared* shared, Pattern pattern) {
    pattern_.store(pattern);
    current_.store(shared);
    generation_.fetch_add(1);
    generation_.notify_all();
  }

  template <class Pred>
  static void wait_until(Pred pred) {
    while (!pred()) std::this_thread::yield();
  }

  std::atomic<Shared*> current_{nullptr};
  std::atomic<Pattern> pattern_{Pattern::kWriterFrees};
  std::atomic<unsigned> generation_{0};
  std::atomic<int> done_{0};
  unsigned rounds_ = 0;
  testing_support::Violations violations_;
};

TEST(PercpuRwSemLifetimeStress, LastUserFreesTheSemaphoreAtOnce) {
  const double seconds = testing_support::stress_seconds(2.0);
  std::printf("running %.2f s with %d readers\n", seconds, kReaders);
  Rounds().run(seconds);
}

}  // namespace
}  // namespace cpuhp
