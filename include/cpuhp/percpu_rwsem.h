// SPDX-License-Identifier: MIT
// cpuhp/percpu_rwsem.h — the hotplug lock: a reader-writer lock whose read
// side costs a few instructions, after the kernel's percpu_rw_semaphore and
// rcu_sync (kernel/locking/percpu-rwsem.c, kernel/rcu/sync.c).
//
// CONTRACT
//
//   lock_shared() / unlock_shared()  any thread, any number of times, nested.
//       Fast path (gate open, the normal case): a plain store to a counter
//       that only the calling thread writes, a compiler barrier and one load.
//       No atomic read-modify-write, no fence, no store to a shared line.
//       Nested read locks on one thread never block, even with a writer
//       queued (the writer is waiting for this very thread, so blocking
//       would deadlock). The thread that holds the write lock may also take
//       the read lock (hotplug callbacks do).
//   lock() / unlock()                any thread not holding a read lock of
//       this semaphore. Writers are serialised. A writer waits for every read
//       section that started before it to end; read sections that start while
//       it is queued or inside wait for it (writers do not starve), and a
//       reader that found a writer inside is overtaken by at most one more
//       writer (readers do not starve either; model/percpu_rwsem.pml).
//   try_lock_shared() / try_lock()   never block on the other side; try_lock()
//       on a thread holding a read lock simply fails.
//   disown_shared() / unlock_disowned_shared()
//       A read hold released by another thread: the holder calls
//       disown_shared(), after which the hold belongs to no thread and any
//       thread may end it with unlock_disowned_shared(). (Plain unlock_shared()
//       on a thread that holds nothing aborts with a message saying this.)
//
//   Models SharedLockable and Lockable: std::shared_lock and std::unique_lock
//   work; ReadLock / WriteLock below are those two.
//
//   Misuse that would deadlock (lock() while holding a read lock, lock()
//   twice on one thread, destroying a held lock) aborts with a message; the
//   hotplug Domain checks first and returns an error instead.
//
// ORDERING PROMISED
//
//   Everything written inside a write section happens-before every read
//   section that starts after unlock(), and every read section that ended
//   before lock() returned happens-before the write section. A read section
//   never overlaps a write section.
//
// HOW (the labels name the same steps in model/percpu_rwsem.pml, checked with
// spin with mutants for each step that matters, and in percpu_rwsem.cpp)
//
//   [R1] reader: count += 1 (plain store to its own slot)
//   [R2] reader: load gate; open: done (fast path)
//   [R3] unlock: count -= 1 (release)
//   [R4] unlock: load gate; closed: wake the writer
//   [R5] slow path: fence, load block; set: back off (count = 0) and wait
//   [R6] wake_writer(): fence, load writer_waiting, bump the wake sequence
//   [W1] writer: gate = closed          [W2] writer: membarrier() — a full
//                                             barrier on every running thread
//   [W3] writer: block = 1, fence       [W4] writer: wait until sum(counts) == 0
//   [W6] reopen callback: gate = open   [W7] unlock: exchange block = 0
//                                             (release), futex-wake if a
//                                             reader marked it "sleepers"
//   Dekker: either the reader's [R2] sees the gate closed (slow path: fenced
//   recheck of `block`, back off and wait), or the writer's [W4] sees its
//   count. The reader needs no fence because [W2] supplies it, which is what
//   MEMBARRIER_CMD_PRIVATE_EXPEDITED is for. Reopening the gate is deferred by
//   an RCU grace period after the last writer leaves, and a writer that comes
//   back before then skips [W1]/[W2] (detail::RcuSync, cpuhp/detail/rcu_sync.h).
//
//   Waits. Every wait (a reader at [R5], a writer at [W4] or for the readers
//   that waited for the previous writer) polls for up to 50 µs before it
//   sleeps on a futex: a sleeper's wake-up costs an IPI and, when every CPU
//   is busy, a scheduler time slice (BM_HotplugCycle: 6 ms -> 42 µs median).
//   Whether to wake is decided on the futex word itself: a reader marks
//   `block` "blocked with sleepers" (1 -> 2, compare-exchange) before it
//   sleeps, and [W7]'s exchange reads what it replaces; the last waiting
//   reader's decrement reads the writer's "asleep" bit. The writer's [W4]
//   sleep is the one Dekker pair: writer_waiting = 1, fence, sum; against
//   count store, fence [R6], load writer_waiting. Every sleeper re-checks its
//   condition when it wakes (spurious wake-ups are harmless).
//
//   Where membarrier is missing or refused (old kernel, seccomp EPERM/ENOSYS;
//   detected once at start, or forced with ReadSide::kFenced or the
//   environment variable CPUHP_NO_MEMBARRIER=1), the gate never opens and every
//   reader takes the fenced slow path: slower, equally correct.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>

#include "cpuhp/detail/lock_cell.h"  // kGateOpen, kGateClosed
#include "cpuhp/detail/rcu_sync.h"
#include "cpuhp/detail/reader_slots.h"
#include "cpuhp/membarrier.h"  // membarrier_available(): decides ReadSide::kAuto

namespace cpuhp {

enum class ReadSide {
  kAuto,    // membarrier-based fast path where the kernel allows it
  kFenced,  // always the fenced slow path (what kAuto falls back to)
};

class PercpuRwSemaphore {
 public:
  explicit PercpuRwSemaphore(ReadSide read_side = ReadSide::kAuto);
  ~PercpuRwSemaphore();  // precondition: not held (checked: aborts); never waits
  PercpuRwSemaphore(const PercpuRwSemaphore&) = delete;
  PercpuRwSemaphore& operator=(const PercpuRwSemaphore&) = delete;

  void lock_shared() {
    detail::ReaderSlot* slot = slots_.slot_for_this_thread();
    const long held = slot->count.load(std::memory_order_relaxed);
    // [R1] Relaxed: only this thread writes the slot. Paired with the
    // writer's [W2] membarrier + [W4] sum; the compiler barrier below keeps
    // [R1] before [R2] in program order, membarrier does it for the CPU.
    slot->count.store(held + 1, std::memory_order_relaxed);
    if (held > 0) return;  // nested: the writer is waiting for us; never block
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // [R2] Acquire: pairs with the release store that reopens the gate [W6],
    // which happens-after the last writer's section.
    if (gate_.load(std::memory_order_acquire) == detail::kGateOpen) [[likely]]
      return;
    lock_shared_slow(slot);
  }

  void unlock_shared() {
    detail::ReaderSlot* slot = slots_.slot_for_this_thread();
    const long held = slot->count.load(std::memory_order_relaxed);
    if (held <= 0) [[unlikely]]
      unlock_without_hold();
    // [R3] Release: pairs with the writer's acquire loads in [W4], so the
    // read section happens-before the write section that follows it.
    slot->count.store(held - 1, std::memory_order_release);
    if (held > 1) return;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // [R4] If the gate is open no writer got past [W2] before [R3] became
    // visible, so the writer's [W4] will see [R3] without a wake-up.
    if (gate_.load(std::memory_order_relaxed) != detail::kGateOpen) [[unlikely]]
      wake_writer();
  }

  bool try_lock_shared();

  void lock();
  bool try_lock();
  void unlock();

  void disown_shared();
  void unlock_disowned_shared();

  // Introspection for callers that must report misuse instead of deadlocking.
  bool held_shared_by_this_thread() {
    return slots_.slot_for_this_thread()->count.load(std::memory_order_relaxed) > 0;
  }
  bool held_exclusive_by_this_thread() const noexcept;
  ReadSide read_side() const noexcept { return read_side_; }

 private:
  // block_: no writer past [W3] / a writer is / and a reader sleeps on it.
  static constexpr std::uint32_t kBlockOpen = 0;
  static constexpr std::uint32_t kBlocked = 1;
  static constexpr std::uint32_t kBlockedSleepers = 2;
  // waiting_readers_: the count, and the writer's "asleep on it" bit.
  static constexpr std::uint32_t kWriterAsleep = 1U << 31;

  void lock_shared_slow(detail::ReaderSlot* slot);
  void wait_for_open_block();
  void leave_waiting_readers();
  [[noreturn]] void unlock_without_hold();
  void wake_writer();
  bool enter_write_section(bool wait_for_readers);
  bool wait_for_waiting_readers(bool wait);
  void open_block() noexcept;  // [W7]: readers may enter again; wakes sleepers

  detail::ReaderSlotTable slots_;
  const ReadSide read_side_;
  alignas(detail::kCacheLine) std::atomic<std::uint32_t> gate_;
  detail::RcuSync rcu_sync_;  // the gate's state machine: writes gate_

  // Writer side; readers touch these only on slow paths.
  alignas(detail::kCacheLine) std::atomic<std::uint32_t> block_{kBlockOpen};
  std::atomic<const void*> writer_owner_{nullptr};
  std::atomic<bool> writer_waiting_{false};
  std::atomic<std::uint32_t> writer_wake_seq_{0};
  std::atomic<std::uint32_t> waiting_readers_{0};
  std::mutex writer_mutex_;
};

using ReadLock = std::shared_lock<PercpuRwSemaphore>;
using WriteLock = std::unique_lock<PercpuRwSemaphore>;

}  // namespace cpuhp
