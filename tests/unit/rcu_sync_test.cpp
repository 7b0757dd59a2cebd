// SPDX-License-Identifier: MIT
// Unit tests for cpuhp::detail::RcuSync (include/cpuhp/detail/rcu_sync.h), the
// gate of the hotplug lock. Grace periods are held off, where a test needs a
// state to last, by an RCU read section on the test thread: enter() and exit()
// never wait for one, and no reopen callback can run until the section ends.
#include "cpuhp/detail/rcu_sync.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <ostream>

#include "cpuhp/detail/lock_cell.h"
#include "cpuhp/membarrier.h"
#include "cpuhp/rcu.h"
#include "support/waiting.h"

namespace cpuhp::detail {

// Names the state in gtest's messages (found by argument-dependent lookup).
static void PrintTo(RcuSync::State state, std::ostream* os) {
  *os << RcuSync::name(state);
}

namespace {

using State = RcuSync::State;
using testing_support::eventually;

bool gate_open(const std::atomic<std::uint32_t>& gate) {
  return gate.load(std::memory_order_acquire) == kGateOpen;
}

// Runs every reopen callback queued so far, and those they queue again.
void run_callbacks() {
  rcu::rcu_barrier();
  rcu::rcu_barrier();
}

class RcuSyncTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!membarrier_available())
      GTEST_SKIP() << "membarrier unavailable: an open gate cannot be closed";
  }
  std::atomic<std::uint32_t> gate_{0xdead};
  std::atomic<std::uint32_t> cell_gate_{0xbeef};  // the copy in the LockCell
};

TEST_F(RcuSyncTest, StartsIdleWithTheGateOpen) {
  RcuSync sync(gate_, cell_gate_, /*can_open=*/true);
  EXPECT_EQ(sync.state(), State::kIdle);
  EXPECT_TRUE(gate_open(gate_));
}

TEST_F(RcuSyncTest, EnterClosesExitReopensAGracePeriodLater) {
  RcuSync sync(gate_, cell_gate_, true);
  {
    rcu::ReadGuard hold_off_grace_periods;
    sync.enter();
    EXPECT_EQ(sync.state(), State::kPassed);
    EXPECT_FALSE(gate_open(gate_));
    sync.exit();
    EXPECT_EQ(sync.state(), State::kExitPending);
    EXPECT_FALSE(gate_open(gate_)) << "reopened without a grace period";
  }
  run_callbacks();
  EXPECT_EQ(sync.state(), State::kIdle);
  EXPECT_TRUE(gate_open(gate_));
}

// A writer that comes back while the reopen is pending skips [W1]/[W2]; the
// callback finds it inside and leaves the gate closed; its exit() queues a
// new callback.
TEST_F(RcuSyncTest, WriterBackBeforeTheCallbackKeepsTheGateClosed) {
  RcuSync sync(gate_, cell_gate_, true);
  {
    rcu::ReadGuard hold_off_grace_periods;
    sync.enter();
    sync.exit();
    sync.enter();
    EXPECT_EQ(sync.state(), State::kPassed);
  }
  run_callbacks();  // runs with the writer inside
  EXPECT_EQ(sync.state(), State::kPassed);
  EXPECT_FALSE(gate_open(gate_));
  sync.exit();
  EXPECT_EQ(sync.state(), State::kExitPending);
  run_callbacks();
  EXPECT_EQ(sync.state(), State::kIdle);
  EXPECT_TRUE(gate_open(gate_));
}

// A writer that comes and goes while a callback is queued: that callback's
// grace period began before the writer left, so it queues itself once more
// (replay) instead of opening the gate.
TEST_F(RcuSyncTest, WriterInAndOutWhileACallbackIsQueuedReplays) {
  RcuSync sync(gate_, cell_gate_, true);
  {
    rcu::ReadGuard hold_off_grace_periods;
    sync.enter();
    sync.exit();  // callback queued
    sync.enter();
    sync.exit();
    EXPECT_EQ(sync.state(), State::kReplay);
  }
  rcu::rcu_barrier();  // the first callback ran: it queued itself again
  const State after_one = sync.state();
  EXPECT_TRUE(after_one == State::kExitPending || after_one == State::kIdle)
      << RcuSync::name(after_one);
  run_callbacks();
  EXPECT_EQ(sync.state(), State::kIdle);
  EXPECT_TRUE(gate_open(gate_));
}

TEST_F(RcuSyncTest, NestedWritersCountedOnce) {
  RcuSync sync(gate_, cell_gate_, true);
  sync.enter();
  sync.enter();
  sync.exit();
  EXPECT_EQ(sync.state(), State::kPassed);  // one still inside
  EXPECT_FALSE(gate_open(gate_));
  sync.exit();
  run_callbacks();
  EXPECT_EQ(sync.state(), State::kIdle);
}

// The lock's own copy of the gate (read at [R2]) and the cell's (read at [R4],
// after the releasing store) are written together: closed before [W2], open
// together at [W6].
TEST_F(RcuSyncTest, BothCopiesOfTheGateMoveTogether) {
  RcuSync sync(gate_, cell_gate_, true);
  EXPECT_TRUE(gate_open(gate_) && gate_open(cell_gate_));
  sync.enter();
  EXPECT_FALSE(gate_open(gate_));
  EXPECT_FALSE(gate_open(cell_gate_));
  sync.exit();
  run_callbacks();
  EXPECT_TRUE(eventually([&] { return sync.state() == State::kIdle; }));
  EXPECT_TRUE(gate_open(gate_));
  EXPECT_TRUE(gate_open(cell_gate_));
}

TEST(RcuSyncClosedForGood, TheGateNeverOpens) {
  std::atomic<std::uint32_t> gate{kGateOpen}, cell_gate{kGateOpen};
  RcuSync sync(gate, cell_gate, /*can_open=*/false);
  EXPECT_FALSE(gate_open(cell_gate));
  EXPECT_EQ(sync.state(), State::kClosedForGood);
  EXPECT_FALSE(gate_open(gate));
  for (int i = 0; i < 3; ++i) {
    sync.enter();
    sync.exit();
  }
  run_callbacks();
  EXPECT_EQ(sync.state(), State::kClosedForGood);
  EXPECT_FALSE(gate_open(gate));
}

// The destructor never waits for a grace period: a queued callback finds its
// owner gone and leaves the gate alone.
TEST_F(RcuSyncTest, DestroyedWithACallbackQueued) {
  {
    rcu::ReadGuard hold_off_grace_periods;
    auto sync = std::make_unique<RcuSync>(gate_, cell_gate_, true);
    sync->enter();
    sync->exit();
    sync.reset();  // inside a read section: waiting for a grace period would hang
  }
  run_callbacks();
  EXPECT_FALSE(gate_open(gate_));
}

TEST(RcuSyncStateNames, EveryStateHasOne) {
  for (State s : {State::kIdle, State::kPassed, State::kExitPending, State::kReplay,
                  State::kClosedForGood})
    EXPECT_STRNE(RcuSync::name(s), "?");
}

using RcuSyncDeathTest = RcuSyncTest;

TEST_F(RcuSyncDeathTest, ExitWithoutEnterIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        RcuSync sync(gate_, cell_gate_, true);
        sync.exit();
      },
      "RcuSync: impossible transition: exit\\(\\) without enter\\(\\) in state 'idle'");
  EXPECT_DEATH(
      {
        RcuSync sync(gate_, cell_gate_, false);
        sync.exit();
      },
      "impossible transition: exit\\(\\) without enter\\(\\) in state 'closed for good'");
}

TEST_F(RcuSyncDeathTest, DestroyedWithAWriterInsideIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        RcuSync sync(gate_, cell_gate_, true);
        sync.enter();
      },
      "impossible transition: destruction in state 'passed' with 1 writer");
}

}  // namespace
}  // namespace cpuhp::detail
