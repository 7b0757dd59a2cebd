// SPDX-License-Identifier: MIT
// Unit tests for cpuhp::detail::LockCellRef (include/cpuhp/detail/lock_cell.h):
// type-stable cells, never freed, reused.
#include "cpuhp/detail/lock_cell.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace cpuhp::detail {
namespace {

TEST(LockCell, FreshCellIsResetAndAligned) {
  LockCellRef ref;
  ASSERT_NE(ref.get(), nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(ref.get()) % kCacheLine, 0U);
  EXPECT_EQ(ref->gate.load(), kGateClosed);
  EXPECT_EQ(ref->writer_waiting.load(), 0U);
}

TEST(LockCell, LiveOwnersHaveDistinctCells) {
  std::vector<std::unique_ptr<LockCellRef>> refs;
  std::set<LockCell*> cells;
  for (int i = 0; i < 100; ++i) {
    refs.push_back(std::make_unique<LockCellRef>());
    cells.insert(refs.back()->get());
  }
  EXPECT_EQ(cells.size(), 100U);
}

// A returned cell is reused, reset, and was never freed: a late user may still
// touch it (under AddressSanitizer, a freed cell would be reported here).
TEST(LockCell, ReturnedCellStaysValidAndIsReusedReset) {
  LockCell* cell = nullptr;
  {
    LockCellRef ref;
    cell = ref.get();
    ref->gate.store(kGateOpen);
    ref->writer_waiting.store(1);
  }
  // What a reader whose semaphore is gone may still do.
  (void)cell->gate.load(std::memory_order_relaxed);
  (void)cell->writer_waiting.load(std::memory_order_relaxed);
  cell->writer_wake_seq.fetch_add(1, std::memory_order_release);
  LockCellRef again;  // the pool hands out the cell returned last
  EXPECT_EQ(again.get(), cell);
  EXPECT_EQ(again->gate.load(), kGateClosed);
  EXPECT_EQ(again->writer_waiting.load(), 0U);
}

TEST(LockCell, ConcurrentTakeAndReturn) {
  std::vector<std::thread> threads;
  std::atomic<int> overlaps{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        LockCellRef ref;
        // Ownership is exclusive: nobody else resets or owns it meanwhile.
        if (ref->writer_waiting.exchange(1) != 0) ++overlaps;
        ref->writer_waiting.store(0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps.load(), 0);
}

}  // namespace
}  // namespace cpuhp::detail
