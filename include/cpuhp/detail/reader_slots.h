// SPDX-License-Identifier: MIT
// cpuhp/detail/reader_slots.h — per-thread reader counters of one lock.
//
// Not a public API; PercpuRwSemaphore is its only user.
//
// Each (lock, thread) pair owns one cache-line-sized slot. Only the owning
// thread writes its slot's count, so the read side does a plain store to a
// line no other thread writes: no atomic read-modify-write, no contention.
// The writer sums every slot (plus the "disowned" holds, see below).
//
// A thread finds its slot through a small direct-mapped thread-local cache
// keyed by the lock's id (ids are never reused, so a stale entry can never
// match a newer lock). A miss claims a slot under the table's mutex.
//
// Disowned holds: a read hold that no thread owns any more, because its
// thread handed it to another (PercpuRwSemaphore::disown_shared) or exited
// while holding it. They are counted in `disowned_`, which the writer adds to
// the slot sum. To keep the sum from ever reading a false zero, the count is
// always added to `disowned_` before it is removed from the slot, and the
// writer reads the slots before `disowned_`.
#pragma once

#include <atomic>
#include <cstdint>

#include "cpuhp/detail/mutex.h"
#include "cpuhp/detail/thread_annotations.h"

namespace cpuhp::detail {

inline constexpr std::size_t kCacheLine = 64;

struct alignas(kCacheLine) ReaderSlot {
  // Read holds taken by the owning thread and not yet released by it.
  // Written only by the owning thread; read by writers.
  std::atomic<long> count{0};
  bool in_use = false;  // guarded by the owning ReaderSlotTable's mutex_
};

// Hot per-thread cache. Trivially constructible and destructible, so access
// needs no TLS guard or wrapper call.
struct SlotCache {
  static constexpr unsigned kWays = 8;
  std::uint64_t ids[kWays];
  ReaderSlot* slots[kWays];
};
inline thread_local SlotCache tl_slot_cache{};

class ReaderSlotTable {
 public:
  ReaderSlotTable();
  ~ReaderSlotTable();  // precondition: no thread holds or is taking a read hold
  ReaderSlotTable(const ReaderSlotTable&) = delete;
  ReaderSlotTable& operator=(const ReaderSlotTable&) = delete;

  // The calling thread's slot (claimed on first use). Never null.
  ReaderSlot* slot_for_this_thread() {
    SlotCache& cache = tl_slot_cache;
    const unsigned way = static_cast<unsigned>(id_ % SlotCache::kWays);
    if (cache.ids[way] == id_) [[likely]]
      return cache.slots[way];
    return claim_slot_for_this_thread();
  }

  // Sum of every thread's holds plus the disowned ones. Loads are acquire:
  // they pair with the release stores of the readers' unlocks, so once the
  // writer reads zero, every finished read section happens-before it.
  long sum_acquire() const;

  // Moves one hold of the calling thread's slot to the disowned count.
  void disown_one(ReaderSlot* slot);
  // Releases one disowned hold; returns false if there was none.
  bool release_one_disowned();

 private:
  friend struct ThreadSlotList;
  ReaderSlot*
  claim_slot_for_this_thread();  // cache miss: the thread's list, else a free slot
  ReaderSlot* claim_free_slot() CPUHP_EXCLUDES(mutex_);
  void release_slot(ReaderSlot* slot) CPUHP_EXCLUDES(mutex_);  // thread exit

  static constexpr std::size_t kChunkSlots = 64;
  static constexpr std::size_t kMaxChunks = 1024;  // 65536 concurrent threads
  struct Chunk {
    ReaderSlot slots[kChunkSlots];
  };

  // First: PercpuRwSemaphore keeps its other fast-path word on the same line.
  const std::uint64_t id_;
  Mutex mutex_;  // guards slot claiming/releasing (ReaderSlot::in_use), chunk growth
  // Chunks are published with a release store of nchunks_ after the pointer is
  // written; the writer's acquire load of nchunks_ pairs with it.
  std::atomic<Chunk*> chunks_[kMaxChunks] = {};
  std::atomic<std::size_t> nchunks_{0};
  // Not on a line of its own: written only when a hold is disowned or ended
  // disowned, and an alignment here would push id_ off the line that
  // PercpuRwSemaphore's fast path already reads.
  std::atomic<long> disowned_{0};
};

}  // namespace cpuhp::detail
