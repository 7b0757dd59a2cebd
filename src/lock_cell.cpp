// SPDX-License-Identifier: MIT
// The process-wide pool of LockCells (cpuhp/detail/lock_cell.h): a free list
// under a mutex. Cells are allocated one at a time and never freed.
#include "cpuhp/detail/lock_cell.h"

#include "cpuhp/detail/mutex.h"
#include "cpuhp/detail/thread_annotations.h"

namespace cpuhp::detail {
namespace {

struct CellPool {
  Mutex mutex;
  LockCell* free CPUHP_GUARDED_BY(mutex) = nullptr;
};

CellPool& pool() {
  // Never destroyed: semaphores may be destroyed during static destruction,
  // and late readers may touch their cells after that.
  static CellPool* const cells = new CellPool;
  return *cells;
}

LockCell* take_cell() {
  CellPool& p = pool();
  LockCell* cell = nullptr;
  {
    MutexLock guard(p.mutex);
    cell = p.free;
    if (cell != nullptr) p.free = cell->next_free;
  }
  if (cell == nullptr) cell = new LockCell{};
  cell->next_free = nullptr;
  // Relaxed: a thread that used the cell's previous owner may still access
  // these words (see the header); the new owner's users see the values
  // through whatever publishes the semaphore to them.
  cell->gate.store(kGateClosed, std::memory_order_relaxed);  // until the owner opens it
  cell->writer_waiting.store(0, std::memory_order_relaxed);
  return cell;
}

}  // namespace

LockCellRef::LockCellRef() : cell_(take_cell()) {}

LockCellRef::~LockCellRef() {
  CellPool& p = pool();
  MutexLock guard(p.mutex);
  cell_->next_free = p.free;
  p.free = cell_;
}

}  // namespace cpuhp::detail
