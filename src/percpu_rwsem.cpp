// SPDX-License-Identifier: MIT
// PercpuRwSemaphore slow paths and writer side, and ReadLock's out-of-line
// parts. The fast paths and the meaning of the [Rn]/[Wn] labels are in
// include/cpuhp/percpu_rwsem.h; the same labels name the steps of
// model/percpu_rwsem.pml. The gate's state machine is detail::RcuSync.
#include "cpuhp/percpu_rwsem.h"

#include "cpuhp/diagnostics.h"
#include "cpuhp/rcu.h"
#include "futex.h"
#include "spin_wait.h"

namespace cpuhp {
namespace {

constexpr const char* kComponent = "PercpuRwSemaphore";

}  // namespace

PercpuRwSemaphore::PercpuRwSemaphore(ReadSide read_side, WriterWaits writer_waits)
    : read_side_(read_side == ReadSide::kAuto && membarrier_available()
                     ? ReadSide::kAuto
                     : ReadSide::kFenced),
      writer_waits_(writer_waits),
      // The fenced read side keeps the gate closed for good: every reader
      // takes the slow path, whose fence [R5] replaces the writer's [W2].
      rcu_sync_(gate_, cell_->gate, /*can_open=*/read_side_ == ReadSide::kAuto) {}

PercpuRwSemaphore::~PercpuRwSemaphore() {
  // Relaxed: a legitimate destroyer acquired the lock after the last
  // release ([W7] among them), which orders this load after it; a writer
  // still inside is a misuse that this check reports.
  if (block_.load(std::memory_order_relaxed) != kBlockOpen)
    detail::fatal(kComponent, "destroyed while write-locked");
  // A writer may still be inside unlock() after letting readers in ([W7]);
  // its last access is the release of writer_mutex_: wait for it.
  { detail::MutexLock wait_for_unlock(writer_mutex_); }
  if (slots_.sum_acquire() != 0) detail::fatal(kComponent, "destroyed while read-locked");
  // Then rcu_sync_ detaches (or waits for) its reopen callback, and cell_,
  // destroyed last, goes back to the pool.
}

// ---------------------------------------------------------------- readers

void PercpuRwSemaphore::lock_shared_slow(detail::ReaderSlot* slot) {
  // On entry our count is 1 ([R1] done, we held nothing before).
  bool counted_as_waiting = false;
  for (;;) {
    // [R5] Full fence: pairs with the writer's fence after [W3]. Dekker on
    // (our count, block_): either we see block_ set here, or the writer's
    // [W4] sees our count and waits for us.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // Acquire: pairs with the release exchange of block_ in open_block() [W7].
    if (block_.load(std::memory_order_acquire) == kBlockOpen) break;
    // The writer's own thread (a hotplug callback) reads what it writes.
    if (writer_owner_.load(std::memory_order_relaxed) == detail::this_thread_token())
      break;
    // We would wait for the writer; if it may wait for a grace period that
    // our read section holds up, that is a deadlock.
    if (writer_waits_ == WriterWaits::kForRcuGracePeriods && rcu::rcu_read_section_held())
      reader_would_deadlock_with_rcu();
    if (!counted_as_waiting) {
      // Counted before backing off, so the wake-up below cannot hand the CPU
      // to a writer that then overtakes us: the next writer waits for this
      // count to drain before [W3]. Between our load of block_ and this
      // increment our slot count is still 1, so the next writer waits at [W4]
      // until we are counted. A reader that found a writer inside is thus
      // overtaken by at most one more writer (model/percpu_rwsem.pml: READER_
      // FAIRNESS verifies; the stronger "none" is refuted, and needs a
      // waiter queue as the kernel has). Relaxed: the count orders no data;
      // the writer's wait for it is decided on this one word.
      waiting_readers_.fetch_add(1, std::memory_order_relaxed);
      counted_as_waiting = true;
    }
    // Back off: hold nothing while waiting, or the writer waits for us.
    // Release: pairs with the writer's acquire loads in [W4].
    slot->count.store(0, std::memory_order_release);
    wake_writer(cell_.get());
    wait_for_open_block();
    slot->count.store(1, std::memory_order_relaxed);  // [R1] again
  }
  if (counted_as_waiting) leave_waiting_readers();
}

// Returns once block_ was seen open (the caller re-checks with [R5]).
void PercpuRwSemaphore::wait_for_open_block() {
  // Acquire: pairs with the release exchange in open_block() [W7].
  if (detail::spin_briefly(
          [this] { return block_.load(std::memory_order_acquire) == kBlockOpen; }))
    return;
  // Relaxed loads here: they only decide whether to sleep; the caller's
  // acquire load after [R5] is the one that pairs with [W7].
  std::uint32_t seen = block_.load(std::memory_order_relaxed);
  while (seen != kBlockOpen) {
    // Mark the word before sleeping on it, so that [W7]'s exchange, which
    // comes after this compare-exchange or before it in the word's single
    // modification order, either reads "sleepers" and wakes us, or has
    // already opened the block (the compare-exchange then fails, or the
    // futex wait returns at once). Relaxed: the one word decides; the data
    // are published by [W7]'s release and our caller's acquire load.
    if (seen == kBlocked &&
        !block_.compare_exchange_weak(seen, kBlockedSleepers, std::memory_order_relaxed))
      continue;  // `seen` is reloaded
    detail::futex_wait(&block_, kBlockedSleepers);
    seen = block_.load(std::memory_order_relaxed);
  }
}

void PercpuRwSemaphore::leave_waiting_readers() {
  // The last waiting reader wakes the writer if it went to sleep on the
  // count: the writer sets kWriterAsleep on this same word before sleeping,
  // so this decrement either reads the bit or happens before the writer's
  // compare-exchange, which then fails. Relaxed: see the increment.
  const std::uint32_t before = waiting_readers_.fetch_sub(1, std::memory_order_relaxed);
  if (before == (kWriterAsleep | 1)) detail::futex_wake(&waiting_readers_, 1);
}

bool PercpuRwSemaphore::try_lock_shared() {
  detail::ReaderSlot* slot = slots_.slot_for_this_thread();
  const long held = slot->count.load(std::memory_order_relaxed);
  slot->count.store(held + 1, std::memory_order_relaxed);  // [R1], as in lock_shared()
  if (held > 0) return true;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  // [R2] Acquire: pairs with [W6], as in lock_shared().
  if (gate_.load(std::memory_order_acquire) == detail::kGateOpen) return true;
  std::atomic_thread_fence(std::memory_order_seq_cst);         // [R5]
  if (block_.load(std::memory_order_acquire) == kBlockOpen ||  // pairs with [W7]
      writer_owner_.load(std::memory_order_relaxed) == detail::this_thread_token())
    return true;
  slot->count.store(0, std::memory_order_release);  // back off, as in lock_shared_slow()
  wake_writer(cell_.get());
  return false;
}

// Touches only the cell: it runs after the caller's releasing store, when the
// semaphore may be gone.
void PercpuRwSemaphore::wake_writer(detail::LockCell* cell) noexcept {
  // [R6] Full fence: pairs with the writer's fence after it sets
  // writer_waiting. Either we see writer_waiting and wake it, or its [W4]
  // sees our count store that precedes this fence.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Relaxed: ordered after our count store by the fence above (the Dekker
  // pair with the writer's store of writer_waiting and its fence).
  if (cell->writer_waiting.load(std::memory_order_relaxed) == 0) return;
  // Release: pairs with the writer's acquire load of writer_wake_seq; a
  // writer that loads this increment also sees our count store. Bumping the
  // word before the wake means the writer's futex wait either sees the new
  // value or is woken.
  cell->writer_wake_seq.fetch_add(1, std::memory_order_release);
  detail::futex_wake(&cell->writer_wake_seq, 1);
}

void PercpuRwSemaphore::unlock_without_hold() {
  detail::fatal(
      kComponent,
      "unlock_shared() on a thread that holds no read lock of this semaphore; to release "
      "a read lock on another thread, call disown_shared() on the holder and "
      "unlock_disowned_shared() on the releaser (ReadLock::disown() does both)");
}

void PercpuRwSemaphore::reader_would_deadlock_with_rcu() {
  detail::fatal(
      kComponent,
      "lock_shared() inside an RCU read section while a writer holds or waits for this "
      "lock, and its writers wait for RCU grace periods (a CPU going down): the writer "
      "waits for this read section to end, this thread waits for the writer: deadlock. "
      "Leave the RCU read section before taking the hotplug read lock, or take the "
      "hotplug read lock first and enter the read section inside it");
}

void PercpuRwSemaphore::disown_shared() {
  detail::ReaderSlot* slot = slots_.slot_for_this_thread();
  if (slot->count.load(std::memory_order_relaxed) <= 0)
    detail::fatal(
        kComponent,
        "disown_shared() on a thread that holds no read lock of this semaphore");
  slots_.disown_one(slot);  // the sum is unchanged: no writer to wake
}

void PercpuRwSemaphore::unlock_disowned_shared() {
  // Loaded before the release, as in unlock_shared().
  detail::LockCell* const cell = cell_.get();
  if (!slots_.release_one_disowned())
    detail::fatal(kComponent,
                  "unlock_disowned_shared() without a disowned read lock (see "
                  "disown_shared())");
  wake_writer(cell);
}

// ---------------------------------------------------------------- writers

void PercpuRwSemaphore::lock() { enter_write_section(/*wait=*/true); }
bool PercpuRwSemaphore::try_lock() { return enter_write_section(/*wait=*/false); }

// Returns true holding writer_mutex_, which unlock() releases: held across
// calls, which clang's thread-safety analysis cannot follow (hence no
// analysis here; leave_write_section() states it with assume_held()).
bool PercpuRwSemaphore::enter_write_section(bool wait) {
  if (held_exclusive_by_this_thread())
    detail::fatal(kComponent, "lock() by the thread that already holds the write lock");
  if (held_shared_by_this_thread()) {
    if (!wait) return false;  // try_lock() never blocks, so it cannot deadlock either
    detail::fatal(kComponent,
                  "lock() by a thread that holds a read lock of this semaphore: would "
                  "deadlock");
  }
  if (wait) {
    writer_mutex_.lock();
  } else if (!writer_mutex_.try_lock()) {
    return false;
  }
  rcu_sync_.enter();  // [W1] [W2]
  if (!wait_for_waiting_readers(wait)) {
    rcu_sync_.exit();
    writer_mutex_.unlock();
    return false;
  }
  // [W3] and the flags: relaxed, ordered before our [W4] loads by the fence
  // below (block_ pairs with [R5], writer_waiting with [R6]); writer_owner_
  // is compared by readers only with their own thread's token.
  block_.store(kBlocked, std::memory_order_relaxed);  // [W3]
  writer_owner_.store(detail::this_thread_token(), std::memory_order_relaxed);
  cell_->writer_waiting.store(1, std::memory_order_relaxed);
  // Pairs with the readers' [R5] (they see block_ or we see their count) and
  // [R6] (they see writer_waiting or we see their count drop).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (;;) {  // [W4]
    // Acquire: pairs with the release increment in wake_writer().
    const std::uint32_t seq = cell_->writer_wake_seq.load(std::memory_order_acquire);
    if (detail::spin_briefly([this] { return slots_.sum_acquire() == 0; })) break;
    if (!wait) {
      cell_->writer_waiting.store(0, std::memory_order_relaxed);
      writer_owner_.store(nullptr, std::memory_order_relaxed);
      leave_write_section();
      return false;
    }
    // Returns at once if a reader bumped the sequence since our load.
    detail::futex_wait(&cell_->writer_wake_seq, seq);
  }
  cell_->writer_waiting.store(0, std::memory_order_relaxed);
  return true;
}

// Readers that waited for the previous writer get in before this one. Returns
// false (try_lock) instead of waiting for them.
bool PercpuRwSemaphore::wait_for_waiting_readers(bool wait) {
  constexpr std::uint32_t kCount = ~kWriterAsleep;
  // Relaxed throughout: the count orders no data (the readers it counts are
  // still waited for at [W4]); whether to sleep is decided on this one word.
  auto none = [this] {
    return (waiting_readers_.load(std::memory_order_relaxed) & kCount) == 0;
  };
  if (none()) return true;
  if (!wait) return false;  // try_lock() does not wait for them
  if (!detail::spin_briefly(none)) {
    std::uint32_t seen = waiting_readers_.load(std::memory_order_relaxed);
    while ((seen & kCount) != 0) {
      // Set our bit before sleeping on the word: the last reader's decrement
      // reads it (leave_waiting_readers()), or comes first and makes this
      // compare-exchange fail. Relaxed: the one word decides.
      if ((seen & kWriterAsleep) == 0 &&
          !waiting_readers_.compare_exchange_weak(seen, seen | kWriterAsleep,
                                                  std::memory_order_relaxed))
        continue;  // `seen` is reloaded
      detail::futex_wait(&waiting_readers_, seen | kWriterAsleep);
      seen = waiting_readers_.load(std::memory_order_relaxed);
    }
  }
  // Only the writer sets or clears the bit, and writers are serialised.
  if ((waiting_readers_.load(std::memory_order_relaxed) & kWriterAsleep) != 0)
    waiting_readers_.fetch_and(kCount, std::memory_order_relaxed);
  return true;
}

void PercpuRwSemaphore::unlock() {
  if (!held_exclusive_by_this_thread())
    detail::fatal(kComponent, "unlock() by a thread that does not hold the write lock");
  writer_owner_.store(nullptr, std::memory_order_relaxed);
  leave_write_section();
}

// The writer's release, in the order that lets the last user free the
// semaphore: nothing after [W7] but a futex wake on the address and the
// release of writer_mutex_, which the destructor takes.
void PercpuRwSemaphore::leave_write_section() {
  writer_mutex_.assume_held();
  rcu_sync_.exit();  // may queue the gate's reopening (it needs no reader in)
  open_block();      // [W7]
  writer_mutex_.unlock();
}

void PercpuRwSemaphore::open_block() noexcept {
  // [W7] Release: pairs with the acquire loads of block_ in the readers' slow
  // path, so the write section happens-before their read sections. The
  // exchange also reads whether a reader marked the word before sleeping
  // (wait_for_open_block()): one read-modify-write on the futex word, so no
  // sleeper is missed whatever the CPU's ordering of other accesses. After
  // it, only the wake, which dereferences nothing in user space.
  if (block_.exchange(kBlockOpen, std::memory_order_release) == kBlockedSleepers)
    detail::futex_wake_all(&block_);
}

// ---------------------------------------------------------------- ReadLock

DisownedReadLock ReadLock::disown() {
  if (holder_ == nullptr)
    detail::fatal(kComponent, "ReadLock::disown() on a guard that holds no read lock");
  if (holder_ != detail::this_thread_token()) released_on_another_thread("disowned");
  holder_ = nullptr;
  sem_->disown_shared();
  return DisownedReadLock(*sem_);
}

void ReadLock::released_on_another_thread(const char* what) {
  detail::fatal(
      kComponent,
      "a ReadLock %s on a thread other than the one that took the read lock (read holds "
      "are counted per thread, so this would end the wrong thread's hold). To hand a "
      "read hold to another thread, call disown() on the holding thread and pass the "
      "DisownedReadLock it returns; any thread may end that one",
      what);
}

}  // namespace cpuhp
