// SPDX-License-Identifier: MIT
// Unit tests for the internal futex wrapper (src/futex.h).
#include "futex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "support/waiting.h"

namespace cpuhp::detail {
namespace {

using testing_support::eventually;
using testing_support::kSettle;

TEST(Futex, WaitReturnsAtOnceWhenTheWordDiffers) {
  std::atomic<std::uint32_t> word{1};
  futex_wait(&word, 0);  // would sleep for good if it compared wrongly
  SUCCEED();
}

TEST(Futex, WakeWithNobodyWaitingReturns) {
  std::atomic<std::uint32_t> word{0};
  futex_wake(&word, 1);
  futex_wake_all(&word);
  SUCCEED();
}

// The waker's protocol: change the word, then wake. The sleeper re-checks in
// a loop, as every caller must.
TEST(Futex, WakeAfterChangeReleasesASleeper) {
  std::atomic<std::uint32_t> word{0};
  std::atomic<bool> started{false}, done{false};
  std::thread sleeper([&] {
    started = true;
    while (word.load(std::memory_order_acquire) == 0) futex_wait(&word, 0);
    done = true;
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  std::this_thread::sleep_for(kSettle);  // most likely asleep by now
  EXPECT_FALSE(done.load());
  word.store(1, std::memory_order_release);
  futex_wake(&word, 1);
  EXPECT_TRUE(eventually([&] { return done.load(); }));
  sleeper.join();
}

TEST(Futex, WakeAllReleasesEverySleeper) {
  std::atomic<std::uint32_t> word{0};
  std::atomic<int> done{0};
  std::thread sleepers[3];
  for (auto& t : sleepers)
    t = std::thread([&] {
      while (word.load(std::memory_order_acquire) == 0) futex_wait(&word, 0);
      ++done;
    });
  std::this_thread::sleep_for(kSettle);
  word.store(1, std::memory_order_release);
  futex_wake_all(&word);
  EXPECT_TRUE(eventually([&] { return done.load() == 3; }));
  for (auto& t : sleepers) t.join();
}

// The header's promise for lock release: a private wake on memory freed
// since is harmless (it only hashes the address).
TEST(Futex, WakeOnFreedMemoryIsHarmless) {
  auto word = std::make_unique<std::atomic<std::uint32_t>>(0);
  const std::atomic<std::uint32_t>* address = word.get();
  word.reset();
  futex_wake(address, 1);
  SUCCEED();
}

}  // namespace
}  // namespace cpuhp::detail
