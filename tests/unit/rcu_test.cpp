// Unit tests for the RCU layer (cpuhp/rcu.h).
#include "cpuhp/rcu.h"

#include <gtest/gtest.h>
#include <urcu/urcu-memb.h>  // the application's direct use of liburcu (interop tests)

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace cpuhp::rcu {
namespace {

using namespace std::chrono_literals;

// Spins (yielding) until `flag` is set.
void wait_for(const std::atomic<bool>& flag) {
  while (!flag.load(std::memory_order_acquire)) std::this_thread::yield();
}

// Records its destruction.
struct Tracked {
  explicit Tracked(std::atomic<int>* destroyed) : destroyed_(destroyed) {}
  ~Tracked() { destroyed_->fetch_add(1, std::memory_order_relaxed); }
  std::atomic<int>* destroyed_;
};

class RcuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Death tests re-execute the binary: fork() with the call_rcu thread alive
    // is not safe, and TSAN requires it.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
  void TearDown() override {
    EXPECT_FALSE(rcu_read_section_held());
    rcu_barrier();  // no callback outlives the test that queued it
  }
};

using RcuDeathTest = RcuTest;

TEST_F(RcuTest, DefaultDomainIsOneObject) {
  EXPECT_EQ(&rcu_default_domain(), &rcu_default_domain());
  static_assert(!std::is_copy_constructible_v<rcu_domain>);
  static_assert(!std::is_copy_assignable_v<rcu_domain>);
  static_assert(!std::is_default_constructible_v<rcu_domain>);
  static_assert(!std::is_copy_constructible_v<ReadGuard>);
  static_assert(!std::is_copy_constructible_v<Callback>);
  static_assert(std::is_nothrow_move_constructible_v<Callback>);
}

TEST_F(RcuTest, LockNests) {
  rcu_domain& d = rcu_default_domain();
  EXPECT_FALSE(rcu_read_section_held());
  d.lock();
  EXPECT_TRUE(rcu_read_section_held());
  d.lock();
  EXPECT_TRUE(d.try_lock());
  d.unlock();
  d.unlock();
  EXPECT_TRUE(rcu_read_section_held());
  d.unlock();
  EXPECT_FALSE(rcu_read_section_held());
}

TEST_F(RcuTest, ReadGuard) {
  {
    ReadGuard outer;
    EXPECT_TRUE(rcu_read_section_held());
    {
      ReadGuard inner(rcu_default_domain());
      EXPECT_TRUE(rcu_read_section_held());
    }
    EXPECT_TRUE(rcu_read_section_held());
  }
  EXPECT_FALSE(rcu_read_section_held());
}

TEST_F(RcuTest, StandardLocks) {
  {
    std::scoped_lock lock(rcu_default_domain());
    EXPECT_TRUE(rcu_read_section_held());
  }
  EXPECT_FALSE(rcu_read_section_held());
  {
    std::unique_lock lock(rcu_default_domain());
    EXPECT_TRUE(rcu_read_section_held());
    lock.unlock();
    EXPECT_FALSE(rcu_read_section_held());
  }
  {
    std::mutex m;
    std::scoped_lock both(m, rcu_default_domain());  // needs try_lock (Lockable)
    EXPECT_TRUE(rcu_read_section_held());
  }
  EXPECT_FALSE(rcu_read_section_held());
}

TEST_F(RcuTest, ReadSectionHeldOnFreshThread) {
  std::thread([] {
    EXPECT_FALSE(rcu_read_section_held());  // unregistered thread
    {
      ReadGuard g;
      EXPECT_TRUE(rcu_read_section_held());
    }
    EXPECT_FALSE(rcu_read_section_held());
  }).join();
}

TEST_F(RcuTest, SynchronizeWaitsForPreexistingReader) {
  std::atomic<bool> entered{false}, synchronizing{false}, about_to_unlock{false};
  std::thread reader([&] {
    ReadGuard g;
    entered.store(true, std::memory_order_release);
    wait_for(synchronizing);
    std::this_thread::sleep_for(100ms);  // give rcu_synchronize() time to return early
    about_to_unlock.store(true, std::memory_order_release);
  });
  wait_for(entered);
  synchronizing.store(true, std::memory_order_release);
  rcu_synchronize();
  EXPECT_TRUE(about_to_unlock.load(std::memory_order_acquire));
  reader.join();
}

TEST_F(RcuTest, SynchronizeIsNotHeldUpByLaterReaders) {
  // A grace period that is waiting for an old reader must complete although new
  // readers keep entering and leaving sections the whole time.
  std::atomic<bool> entered{false}, release_old{false}, done{false};
  std::thread old_reader([&] {
    ReadGuard g;
    entered.store(true, std::memory_order_release);
    wait_for(release_old);
  });
  wait_for(entered);
  std::thread writer([&] {
    rcu_synchronize();
    done.store(true, std::memory_order_release);
  });
  std::vector<std::thread> new_readers;
  for (int i = 0; i < 2; ++i) {
    new_readers.emplace_back([&] {
      while (!done.load(std::memory_order_acquire)) {
        ReadGuard g;
        std::this_thread::yield();
      }
    });
  }
  std::this_thread::sleep_for(20ms);
  release_old.store(true, std::memory_order_release);
  writer.join();
  EXPECT_TRUE(done.load());
  for (auto& t : new_readers) t.join();
  old_reader.join();
}

TEST_F(RcuTest, RetireFreesOnlyAfterReadersFinish) {
  std::atomic<int> destroyed{0};
  rcu_default_domain().lock();
  rcu_retire(new Tracked(&destroyed));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(destroyed.load(), 0) << "reclaimed while a read section was held";
  rcu_default_domain().unlock();
  rcu_barrier();
  EXPECT_EQ(destroyed.load(), 1);
}

TEST_F(RcuTest, RetireWaitsForOtherThreadsReader) {
  std::atomic<int> destroyed{0};
  std::atomic<bool> entered{false}, release{false};
  std::thread reader([&] {
    ReadGuard g;
    entered.store(true, std::memory_order_release);
    wait_for(release);
  });
  wait_for(entered);
  rcu_retire(new Tracked(&destroyed));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(destroyed.load(), 0);
  release.store(true, std::memory_order_release);
  reader.join();
  rcu_barrier();
  EXPECT_EQ(destroyed.load(), 1);
}

TEST_F(RcuTest, RetireWithCustomDeleterAndNull) {
  std::atomic<int> destroyed{0};
  std::atomic<int> deleter_calls{0};
  rcu_retire(new Tracked(&destroyed), [&deleter_calls](Tracked* t) {
    deleter_calls.fetch_add(1);
    delete t;
  });
  rcu_retire(static_cast<Tracked*>(nullptr));  // ignored
  rcu_retire(new int[4], std::default_delete<int[]>());
  rcu_barrier();
  EXPECT_EQ(deleter_calls.load(), 1);
  EXPECT_EQ(destroyed.load(), 1);
}

TEST_F(RcuTest, CallSeesQueuersWritesAndRunsInOrder) {
  // Plain (non-atomic) data on purpose: under TSAN this checks the
  // happens-before edges queue -> callback and callback -> rcu_barrier().
  int before = 0;
  std::vector<int> order;
  int seen = -1;
  before = 42;
  rcu_call([&] { seen = before; });
  for (int i = 0; i < 100; ++i) rcu_call([&order, i] { order.push_back(i); });
  rcu_barrier();
  EXPECT_EQ(seen, 42);
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST_F(RcuTest, CallAcceptsMoveOnlyCallablesAndIgnoresEmpty) {
  int out = 0;
  rcu_call([p = std::make_unique<int>(7), &out] { out = *p; });
  rcu_call(Callback());
  Callback cb([&out] { out += 1; });
  EXPECT_TRUE(static_cast<bool>(cb));
  Callback moved = std::move(cb);
  EXPECT_FALSE(static_cast<bool>(cb));  // NOLINT(bugprone-use-after-move)
  rcu_call(std::move(moved));
  rcu_barrier();
  EXPECT_EQ(out, 8);
}

TEST_F(RcuTest, UnqueuedCallbackDestroysCallableWithoutRunning) {
  std::atomic<int> destroyed{0};
  bool ran = false;
  {
    auto tracked = std::make_shared<Tracked>(&destroyed);
    Callback cb([tracked, &ran] { ran = true; });
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(destroyed.load(), 1);
}

TEST_F(RcuTest, CallInsideReadSectionAndFromCallbacks) {
  std::atomic<int> steps{0};
  {
    ReadGuard g;
    rcu_call([&steps] {
      steps.fetch_add(1);
      {
        ReadGuard inner;  // read sections are fine in callbacks
      }
      rcu_synchronize();  // allowed in a callback (stalls the queue behind it)
      rcu_call([&steps] { steps.fetch_add(10); });
    });
  }
  // One barrier waits for the first callback; the one it queues may still be
  // pending, so wait for the count rather than assume.
  rcu_barrier();
  while (steps.load() != 11) rcu_barrier();
  EXPECT_EQ(steps.load(), 11);
}

TEST_F(RcuTest, BarrierWaitsForAllCallbacks) {
  constexpr int kThreads = 4, kPerThread = 250;
  std::atomic<int> ran{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ran] {
      rcu_call([&ran] {
        std::this_thread::sleep_for(20ms);  // slow callback: barrier must wait
        ran.fetch_add(1, std::memory_order_relaxed);
      });
      for (int i = 1; i < kPerThread; ++i) {
        rcu_call([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
      }
    });
  }
  for (auto& t : threads) t.join();
  rcu_barrier();
  EXPECT_EQ(ran.load(), kThreads * kPerThread);
}

TEST_F(RcuTest, ExitingThreadsUnregister) {
  const long before = detail::registered_thread_count();
  for (int batch = 0; batch < 10; ++batch) {
    std::vector<std::thread> threads;
    for (int i = 0; i < 20; ++i) {
      threads.emplace_back([] {
        ReadGuard g;
        EXPECT_TRUE(rcu_read_section_held());
      });
    }
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(detail::registered_thread_count(), before);
  rcu_synchronize();  // would crash or hang on a dangling registration
  std::atomic<int> destroyed{0};
  rcu_retire(new Tracked(&destroyed));
  rcu_barrier();
  EXPECT_EQ(destroyed.load(), 1);
}

TEST_F(RcuTest, ThreadUsingOnlyRcuCallRegistersAndUnregisters) {
  const long before = detail::registered_thread_count();
  std::atomic<bool> ran{false};
  std::thread([&ran] { rcu_call([&ran] { ran.store(true); }); }).join();
  EXPECT_EQ(detail::registered_thread_count(), before);
  rcu_barrier();
  EXPECT_TRUE(ran.load());
}

TEST_F(RcuTest, ReadSectionInLateThreadLocalDestructor) {
  // A thread_local destroyed after cpuhp's registration guard takes a read
  // section: the thread re-registers and must still be unregistered at exit.
  struct LateUser {
    ~LateUser() {
      ReadGuard g;
      rcu_call([] {});
    }
  };
  const long before = detail::registered_thread_count();
  std::thread([] {
    static thread_local LateUser late;  // constructed before the first lock():
    (void)&late;                        // destroyed after cpuhp's guard
    ReadGuard g;
  }).join();
  EXPECT_EQ(detail::registered_thread_count(), before);
  rcu_synchronize();
}

TEST_F(RcuTest, ApplicationRegisteredThreadIsLeftToTheApplication) {
  const long before = detail::registered_thread_count();
  std::thread([before] {
    urcu_memb_register_thread();
    {
      ReadGuard g;  // must not register a second time
      EXPECT_TRUE(urcu_memb_read_ongoing());
    }
    EXPECT_EQ(detail::registered_thread_count(), before);
    urcu_memb_unregister_thread();
  }).join();
  EXPECT_EQ(detail::registered_thread_count(), before);
  rcu_synchronize();
}

TEST_F(RcuTest, DirectLiburcuReaderDelaysOurSynchronize) {
  std::atomic<bool> entered{false}, synchronizing{false}, about_to_unlock{false};
  std::thread reader([&] {
    urcu_memb_register_thread();
    urcu_memb_read_lock();
    EXPECT_TRUE(rcu_read_section_held());
    entered.store(true, std::memory_order_release);
    wait_for(synchronizing);
    std::this_thread::sleep_for(100ms);
    about_to_unlock.store(true, std::memory_order_release);
    urcu_memb_read_unlock();
    EXPECT_FALSE(rcu_read_section_held());
    urcu_memb_unregister_thread();
  });
  wait_for(entered);
  synchronizing.store(true, std::memory_order_release);
  rcu_synchronize();
  EXPECT_TRUE(about_to_unlock.load(std::memory_order_acquire));
  reader.join();
}

TEST_F(RcuTest, OurReaderDelaysDirectLiburcuSynchronize) {
  std::atomic<bool> entered{false}, synchronizing{false}, about_to_unlock{false};
  std::thread reader([&] {
    ReadGuard g;
    EXPECT_TRUE(urcu_memb_read_ongoing());
    entered.store(true, std::memory_order_release);
    wait_for(synchronizing);
    std::this_thread::sleep_for(100ms);
    about_to_unlock.store(true, std::memory_order_release);
  });
  wait_for(entered);
  synchronizing.store(true, std::memory_order_release);
  urcu_memb_synchronize_rcu();
  EXPECT_TRUE(about_to_unlock.load(std::memory_order_acquire));
  reader.join();
}

// A callback queued through liburcu directly, as an application would.
struct DirectNode {
  rcu_head head;
  std::atomic<bool>* ran;
};

// Code that uses liburcu directly is invisible to TSAN (liburcu is not
// instrumented), so it annotates its own queue -> callback ordering, as cpuhp's
// rcu_call() does.
void direct_callback(rcu_head* head) {
  DirectNode* n = caa_container_of(head, DirectNode, head);
#ifdef CPUHP_RCU_TSAN
  __tsan_acquire(n);
#endif
  n->ran->store(true);
  delete n;
}

TEST_F(RcuTest, BarrierCoversDirectLiburcuCallbacks) {
  std::atomic<bool> ran{false};
  { ReadGuard g; }  // registered by cpuhp, which liburcu's call_rcu requires
  auto* node = new DirectNode{{}, &ran};
#ifdef CPUHP_RCU_TSAN
  __tsan_release(node);
#endif
  urcu_memb_call_rcu(&node->head, &direct_callback);
  rcu_barrier();
  EXPECT_TRUE(ran.load());
}

TEST_F(RcuTest, ExceptionInCallbackIsReportedAndLaterCallbacksRun) {
  std::atomic<bool> later_ran{false};
  ::testing::internal::CaptureStderr();
  rcu_call([] { throw std::runtime_error("boom-4711"); });
  rcu_call([] { throw 17; });
  rcu_call([&later_ran] { later_ran.store(true); });
  rcu_barrier();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(later_ran.load());
  EXPECT_NE(err.find("exception escaped an RCU callback"), std::string::npos) << err;
  EXPECT_NE(err.find("std::runtime_error: boom-4711"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown exception type"), std::string::npos) << err;
}

TEST_F(RcuDeathTest, SynchronizeInsideReadSectionAborts) {
  EXPECT_DEATH(
      {
        ReadGuard g;
        rcu_synchronize();
      },
      "rcu_synchronize\\(\\) called inside an RCU read-side critical section.*Fix: end "
      "the read section");
}

TEST_F(RcuDeathTest, SynchronizeInsideDirectLiburcuReadSectionAborts) {
  EXPECT_DEATH(
      {
        { ReadGuard registers_this_thread; }
        urcu_memb_read_lock();
        rcu_synchronize();
      },
      "rcu_synchronize\\(\\) called inside an RCU read-side critical section");
}

TEST_F(RcuDeathTest, BarrierInsideReadSectionAborts) {
  EXPECT_DEATH(
      {
        ReadGuard g;
        rcu_barrier();
      },
      "rcu_barrier\\(\\) called inside an RCU read-side critical section.*Fix: call "
      "rcu_barrier\\(\\) outside any read section");
}

TEST_F(RcuDeathTest, BarrierInsideCallbackAborts) {
  EXPECT_DEATH(
      {
        rcu_call([] { rcu_barrier(); });
        rcu_barrier();
      },
      "rcu_barrier\\(\\) called from an RCU callback.*Fix:");
}

TEST_F(RcuDeathTest, ThreadExitingInsideReadSectionAborts) {
  EXPECT_DEATH(std::thread([] { rcu_default_domain().lock(); }).join(),
               "thread is exiting inside an RCU read-side critical section.*Fix:");
}

TEST_F(RcuDeathTest, CallbackReturningInsideReadSectionAborts) {
  EXPECT_DEATH(
      {
        rcu_call([] { rcu_default_domain().lock(); });
        rcu_barrier();
      },
      "callback returned inside a read-side critical section");
}

}  // namespace
}  // namespace cpuhp::rcu
