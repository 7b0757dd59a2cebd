// SPDX-License-Identifier: MIT
// cpuhp/percpu_rwsem.h — the hotplug lock: a reader-writer lock whose read
// side costs a few instructions, after the kernel's percpu_rw_semaphore and
// rcu_sync (kernel/locking/percpu-rwsem.c, kernel/rcu/sync.c).
//
// CONTRACT
//
//   lock_shared() / unlock_shared()  any thread, any number of times, nested.
//       unlock_shared() must run on the thread whose hold it ends, as for
//       std::shared_mutex: holds are counted per thread, so another thread's
//       unlock_shared() would end a hold of its own instead (a thread holding
//       nothing aborts with a message; one holding a hold of its own cannot be
//       told apart, so use ReadLock, which checks). To end a hold on another
//       thread, hand it over with disown_shared() / unlock_disowned_shared().
//       Fast path (gate open, the normal case): a plain store to a counter
//       that only the calling thread writes, a compiler barrier and loads.
//       No atomic read-modify-write, no fence, no store to a shared line.
//       Nested read locks on one thread never block, even with a writer
//       queued (the writer is waiting for this very thread, so blocking
//       would deadlock). The thread that holds the write lock may also take
//       the read lock (hotplug callbacks do).
//   lock() / unlock()                any thread not holding a read lock of
//       this semaphore; unlock() on the thread that called lock(). Writers are
//       serialised. A writer waits for every read section that started before
//       it to end; read sections that start while it is queued or inside wait
//       for it (writers do not starve), and a reader that found a writer
//       inside is overtaken by at most one more writer (readers do not starve
//       either; model/percpu_rwsem.pml).
//   try_lock_shared() / try_lock()   never block on the other side; try_lock()
//       on a thread holding a read lock simply fails.
//   disown_shared() / unlock_disowned_shared()
//       A read hold ended by another thread: the holder calls disown_shared(),
//       after which the hold belongs to no thread and any thread may end it
//       with unlock_disowned_shared(). ReadLock::disown() wraps the pair.
//   Destruction: any thread, once no thread holds the semaphore or is inside
//       one of its calls that acquires. As with std::shared_mutex, the last
//       user may free it: a thread that acquired it after every other user
//       released it may destroy it at once, while those users are still
//       inside unlock_shared(), unlock_disowned_shared() or unlock() (none of
//       them touches the semaphore after its releasing step). The destructor
//       waits only for a writer still finishing unlock(), never for a grace
//       period.
//
//   WriterWaits::kForRcuGracePeriods (the hotplug Domain's lock, whose writer
//       waits for RCU grace periods inside its write section): a reader that
//       would have to wait for a writer while inside an RCU read section
//       (cpuhp::rcu::rcu_read_section_held()) would deadlock with it; it
//       aborts with a message instead (detail::fatal). Checked on the slow
//       path only; the fast path is unchanged.
//
//   Models SharedLockable and Lockable: std::shared_lock and std::unique_lock
//   work. ReadLock (below) is a std::shared_lock-like guard that also checks
//   that it is released on the thread that took the hold, and can hand the
//   hold over (disown()); WriteLock is std::unique_lock.
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
//   [R2] reader: load gate (the lock's own copy); open: done (fast path)
//   [R3] unlock: count -= 1 (release). The reader loaded the address of the
//        semaphore's LockCell before: after [R3] it touches only the cell
//   [R4] unlock: load gate (the cell's copy, written with the lock's own);
//        closed: wake the writer
//   [R5] slow path: fence, load block; set: back off (count = 0) and wait
//   [R6] wake_writer(): fence, load writer_waiting (cell), bump the wake
//        sequence (cell), futex-wake it
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
//   Lifetime. unlock() exits the gate's state machine first, then lets
//   readers in with [W7] and touches nothing after it but a futex wake on the
//   address and its internal writer mutex, which the destructor takes.
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
#include <system_error>
#include <utility>

#include "cpuhp/detail/lock_cell.h"
#include "cpuhp/detail/mutex.h"
#include "cpuhp/detail/rcu_sync.h"
#include "cpuhp/detail/reader_slots.h"
#include "cpuhp/detail/thread_annotations.h"
#include "cpuhp/membarrier.h"  // membarrier_available(): decides ReadSide::kAuto

namespace cpuhp {

enum class ReadSide {
  kAuto,    // membarrier-based fast path where the kernel allows it
  kFenced,  // always the fenced slow path (what kAuto falls back to)
};

// What a write section may wait for, besides the readers it excludes.
enum class WriterWaits {
  kForReadersOnly,
  // Write sections may wait for RCU grace periods (the hotplug Domain's
  // down()): a reader that would wait for a writer inside an RCU read section
  // aborts with a message (see the contract).
  kForRcuGracePeriods,
};

namespace detail {
// An address unique to the calling thread among the threads alive.
inline thread_local char tl_thread_token = 0;
inline const void* this_thread_token() noexcept { return &tl_thread_token; }
}  // namespace detail

class PercpuRwSemaphore {
 public:
  explicit PercpuRwSemaphore(ReadSide read_side = ReadSide::kAuto,
                             WriterWaits writer_waits = WriterWaits::kForReadersOnly);
  ~PercpuRwSemaphore();  // precondition: not held (checked: aborts)
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
    // Loaded before [R3]: once our hold is gone a writer may get in and
    // destroy the semaphore; the cell outlives it (cpuhp/detail/lock_cell.h).
    detail::LockCell* const cell = cell_.get();
    // [R3] Release: pairs with the writer's acquire loads in [W4], so the
    // read section happens-before the write section that follows it.
    slot->count.store(held - 1, std::memory_order_release);
    if (held > 1) return;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // [R4] If the gate is open no writer got past [W2] before [R3] became
    // visible, so the writer's [W4] will see [R3] without a wake-up.
    if (cell->gate.load(std::memory_order_relaxed) != detail::kGateOpen) [[unlikely]]
      wake_writer(cell);
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
  bool held_exclusive_by_this_thread() const noexcept {
    return writer_owner_.load(std::memory_order_relaxed) == detail::this_thread_token();
  }
  ReadSide read_side() const noexcept { return read_side_; }
  WriterWaits writer_waits() const noexcept { return writer_waits_; }

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
  [[noreturn]] void reader_would_deadlock_with_rcu();
  static void wake_writer(detail::LockCell* cell) noexcept;
  bool enter_write_section(bool wait) CPUHP_NO_THREAD_SAFETY_ANALYSIS;
  bool wait_for_waiting_readers(bool wait);
  void leave_write_section();
  void open_block() noexcept;  // [W7]: readers may enter again; wakes sleepers

  // First, so that they share a cache line with slots_'s id (all are read by
  // every fast path), and are destroyed last, after rcu_sync_ stopped writing
  // the gate. The gate has two copies (detail::RcuSync): gate_ for [R2],
  // read while the lock is surely alive (one load, as before issue 11), and
  // cell_->gate for [R4], read after the releasing store.
  detail::LockCellRef cell_;
  std::atomic<std::uint32_t> gate_;
  detail::ReaderSlotTable slots_;
  const ReadSide read_side_;
  const WriterWaits writer_waits_;
  detail::RcuSync rcu_sync_;  // writes gate_ and cell_->gate

  // Writer side; readers touch these only on slow paths, inside their calls.
  alignas(detail::kCacheLine) std::atomic<std::uint32_t> block_{kBlockOpen};
  std::atomic<const void*> writer_owner_{nullptr};
  std::atomic<std::uint32_t> waiting_readers_{0};
  detail::Mutex writer_mutex_;  // held from lock() to unlock()
};

class ReadLock;

// A read hold that belongs to no thread (ReadLock::disown()): any thread may
// end it, with unlock() or by destroying it (unlock_disowned_shared()).
// Movable, not copyable; an empty one (default, moved from) does nothing.
class DisownedReadLock {
 public:
  DisownedReadLock() noexcept = default;
  DisownedReadLock(DisownedReadLock&& other) noexcept
      : sem_(std::exchange(other.sem_, nullptr)) {}
  DisownedReadLock& operator=(DisownedReadLock&& other) noexcept {
    if (this != &other) {
      if (sem_ != nullptr) sem_->unlock_disowned_shared();
      sem_ = std::exchange(other.sem_, nullptr);
    }
    return *this;
  }
  ~DisownedReadLock() {
    if (sem_ != nullptr) sem_->unlock_disowned_shared();
  }
  DisownedReadLock(const DisownedReadLock&) = delete;
  DisownedReadLock& operator=(const DisownedReadLock&) = delete;

  // Ends the hold. Throws std::system_error (operation_not_permitted) if empty.
  void unlock() {
    if (sem_ == nullptr)
      throw std::system_error(std::make_error_code(std::errc::operation_not_permitted));
    std::exchange(sem_, nullptr)->unlock_disowned_shared();
  }
  bool owns_lock() const noexcept { return sem_ != nullptr; }
  explicit operator bool() const noexcept { return owns_lock(); }
  PercpuRwSemaphore* mutex() const noexcept { return sem_; }

 private:
  friend class ReadLock;
  explicit DisownedReadLock(PercpuRwSemaphore& sem) noexcept : sem_(&sem) {}
  PercpuRwSemaphore* sem_ = nullptr;
};

// The read-lock guard: std::shared_lock's interface (constructors with
// defer_lock / try_to_lock / adopt_lock, lock, try_lock, unlock, release,
// swap, owns_lock, mutex; the same exceptions), plus:
//   * it remembers the thread that took the hold, and releasing it on another
//     thread (a ReadLock moved to another thread, then destroyed or unlocked
//     there) aborts with a message instead of ending that thread's own hold;
//   * disown() hands the hold over: it returns a DisownedReadLock that any
//     thread may end.
// adopt_lock: the calling thread holds a read lock of `sem` that it passes in.
class ReadLock {
 public:
  using mutex_type = PercpuRwSemaphore;

  ReadLock() noexcept = default;
  [[nodiscard]] explicit ReadLock(PercpuRwSemaphore& sem) : sem_(&sem) {
    sem.lock_shared();
    holder_ = detail::this_thread_token();
  }
  ReadLock(PercpuRwSemaphore& sem, std::defer_lock_t) noexcept : sem_(&sem) {}
  ReadLock(PercpuRwSemaphore& sem, std::try_to_lock_t) : sem_(&sem) {
    if (sem.try_lock_shared()) holder_ = detail::this_thread_token();
  }
  ReadLock(PercpuRwSemaphore& sem, std::adopt_lock_t) noexcept
      : sem_(&sem), holder_(detail::this_thread_token()) {}
  ~ReadLock() {
    if (holder_ != nullptr) release_hold();
  }
  ReadLock(ReadLock&& other) noexcept
      : sem_(std::exchange(other.sem_, nullptr)),
        holder_(std::exchange(other.holder_, nullptr)) {}
  ReadLock& operator=(ReadLock&& other) noexcept {
    if (this != &other) {
      if (holder_ != nullptr) release_hold();
      sem_ = std::exchange(other.sem_, nullptr);
      holder_ = std::exchange(other.holder_, nullptr);
    }
    return *this;
  }
  ReadLock(const ReadLock&) = delete;
  ReadLock& operator=(const ReadLock&) = delete;

  void lock() {
    check_can_lock();
    sem_->lock_shared();
    holder_ = detail::this_thread_token();
  }
  bool try_lock() {
    check_can_lock();
    if (sem_->try_lock_shared()) holder_ = detail::this_thread_token();
    return holder_ != nullptr;
  }
  void unlock() {
    if (holder_ == nullptr)
      throw std::system_error(std::make_error_code(std::errc::operation_not_permitted));
    release_hold();
  }
  // Hands the hold over (see DisownedReadLock); this guard keeps its mutex()
  // and owns nothing afterwards. Precondition: owns_lock(), on the thread
  // that took the hold (checked: aborts).
  [[nodiscard]] DisownedReadLock disown();
  // The caller takes over the hold (if any), on this thread.
  PercpuRwSemaphore* release() noexcept {
    holder_ = nullptr;
    return std::exchange(sem_, nullptr);
  }
  void swap(ReadLock& other) noexcept {
    std::swap(sem_, other.sem_);
    std::swap(holder_, other.holder_);
  }

  bool owns_lock() const noexcept { return holder_ != nullptr; }
  explicit operator bool() const noexcept { return owns_lock(); }
  PercpuRwSemaphore* mutex() const noexcept { return sem_; }

 private:
  void check_can_lock() const {
    if (sem_ == nullptr)
      throw std::system_error(std::make_error_code(std::errc::operation_not_permitted));
    if (holder_ != nullptr)
      throw std::system_error(
          std::make_error_code(std::errc::resource_deadlock_would_occur));
  }
  void release_hold() {
    if (holder_ != detail::this_thread_token()) [[unlikely]]
      released_on_another_thread("released");
    holder_ = nullptr;
    sem_->unlock_shared();
  }
  [[noreturn]] static void released_on_another_thread(const char* what);

  PercpuRwSemaphore* sem_ = nullptr;
  const void* holder_ = nullptr;  // the holding thread's token; null: owns nothing
};

inline void swap(ReadLock& a, ReadLock& b) noexcept { a.swap(b); }

using WriteLock = std::unique_lock<PercpuRwSemaphore>;

}  // namespace cpuhp
