// SPDX-License-Identifier: MIT
// cpuhp/detail/lock_cell.h — the part of a PercpuRwSemaphore that a thread may
// still touch after its release: type-stable cells that are never freed.
//
// Not a public API; PercpuRwSemaphore is its only user.
//
// WHY. A reader's unlock_shared() ends its hold with a releasing store; after
// it, a writer may get in, finish and destroy the semaphore (std::shared_mutex
// allows "the last user frees it"). Yet the reader still has to look at the
// gate ([R4]) and may have to wake that writer ([R6]). Those words therefore
// live in a LockCell rather than in the semaphore: cells come from a
// process-wide pool, are never freed and are reused by later semaphores. A
// late access by a thread whose semaphore is gone reads or bumps a valid
// atomic of some cell: at worst a spurious wake-up for the cell's next owner,
// which every wait of the lock tolerates (it re-checks its condition).
//
// CONTRACT
//
//   LockCellRef()   any thread. Takes a cell from the pool (allocating one if
//       the pool is empty) and resets it: gate closed, no writer waiting. The
//       owner sets the gate as it needs before publishing the semaphore.
//   ~LockCellRef()  any thread. Returns the cell to the pool. The owner must
//       no longer write its gate (no reopen callback running); threads that
//       loaded the cell's address before may still read it and bump
//       writer_wake_seq, now or after the cell's reuse.
//   The fields are atomics; only `next_free` is plain (the pool's, guarded by
//   its mutex, never touched by the cell's users).
//
// ORDERING: taking and returning cells is ordered by the pool's mutex. The
// reset uses relaxed atomic stores (a late access may race with it, and must
// not be a data race); the new owner's users see the reset through whatever
// publishes the semaphore to them.
#pragma once

#include <atomic>
#include <cstdint>

#include "cpuhp/detail/reader_slots.h"  // kCacheLine

namespace cpuhp::detail {

// Values of LockCell::gate.
inline constexpr std::uint32_t kGateOpen = 0;
inline constexpr std::uint32_t kGateClosed = 1;

struct alignas(kCacheLine) LockCell {
  // The gate (RcuSync's word): open = readers take the fast path. Read by
  // every reader at [R2] and [R4]; written only by the owner's RcuSync.
  std::atomic<std::uint32_t> gate;
  // A writer is (about to be) waiting in [W4] for the readers to drain.
  std::atomic<std::uint32_t> writer_waiting;
  // Bumped by a reader that wakes that writer ([R6]); the writer's futex word.
  // Never reset: it only counts up.
  std::atomic<std::uint32_t> writer_wake_seq;
  LockCell* next_free;  // the pool's free list (guarded by its mutex)
};

// Owns one cell for the lifetime of its owner. Neither copyable nor movable.
class LockCellRef {
 public:
  LockCellRef();
  ~LockCellRef();
  LockCellRef(const LockCellRef&) = delete;
  LockCellRef& operator=(const LockCellRef&) = delete;

  LockCell* get() const noexcept { return cell_; }
  LockCell* operator->() const noexcept { return cell_; }

 private:
  LockCell* const cell_;
};

}  // namespace cpuhp::detail
