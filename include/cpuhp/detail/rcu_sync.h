// SPDX-License-Identifier: MIT
// cpuhp/detail/rcu_sync.h — the gate in front of the hotplug lock's fast read
// path, after the kernel's rcu_sync (kernel/rcu/sync.c).
//
// Not a public API; PercpuRwSemaphore is its only user.
//
// Readers test a gate word: open means no writer can be about, take the fast
// path; closed means take the slow path, which looks for a writer. A writer
// calls enter() before it looks for readers and exit() after it has let them
// in again. enter() on an open gate closes it ([W1]) and then runs a
// membarrier ([W2]), after which every reader either sees the gate closed or
// is seen by the writer (percpu_rwsem.h explains the pairing). exit() by the
// last writer does not reopen the gate: an RCU callback does, a grace period
// later ([W6]), so that a writer that comes back within it finds the gate
// still closed and skips the membarrier.
//
// STATES (`writers`: enter() calls not yet matched by exit())
//
//                 enter(): [W1] [W2]
//     kIdle ─────────────────────────────► kPassed ◄──────── enter() ──────┐
//     gate open                            closed                          │
//       ▲                              last │     │ last exit(); a callback │
//       │                           exit(); │     │ is still queued         │
//       │                       queue the   │     ▼                         │
//       │                        callback   │   kReplay ── enter() ────────►┤
//       │                                   ▼     │                         │
//       └──── callback: [W6] ──── kExitPending ◄──┘ callback: queue again   │
//                                    closed   └──────── enter() ────────────┘
//
//   kClosedForGood (the fenced read side): closed from the start and for
//   good; enter() and exit() only count writers; no callback is ever queued.
//
//   A callback that runs while a writer is inside (kPassed) changes nothing:
//   that writer's last exit() queues a new one. kReplay exists because the
//   queued callback's grace period began before the latest writer left: it
//   must wait one more, or it would reopen the gate less than a grace period
//   after that writer's exit(). Every other combination (exit() without
//   enter(), a callback in kIdle, ...) is a bug: detail::fatal.
//
// CONTRACT
//
//   RcuSync(gate, cell_gate, can_open)  two copies of one gate, written
//       together: `gate` for readers that test it inside their call (the
//       lock's own word, next to what its fast path reads anyway), `cell_gate`
//       for what a reader tests after its releasing store, when the lock may
//       be gone (it lives in a type-stable LockCell). Both are closed before
//       the membarrier [W2] and opened together at [W6], so each pairs with
//       [W2] on its own. Both must outlive every callback that may run while
//       the RcuSync exists. can_open: start kIdle with the gate open, else
//       kClosedForGood with it closed.
//   enter() / exit()   any thread, paired, never inside an RCU read section
//       of the caller's that a writer could wait for (they do not wait for a
//       grace period themselves). enter() may call membarrier(2).
//   state()            any thread; a snapshot (tests, diagnostics).
//   ~RcuSync()         precondition: no writer inside (checked: fatal). Never
//       waits for a grace period: a queued callback finds its owner gone and
//       does nothing; one running now is waited for (it holds the token's
//       mutex), so the gate is never written after the destructor returns.
//
// ORDERING: the gate's reopening [W6] is a release store made under the
// mutex after the last exit() (which took the same mutex after its write
// section), so every write section happens-before the reads of any reader
// whose acquire load of the gate sees it open. enter() orders [W1] before the
// caller's next loads with the membarrier ([W2]), and the closed-gate skip
// paths rely on the gate having stayed closed since the last [W2].
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "cpuhp/detail/mutex.h"
#include "cpuhp/detail/thread_annotations.h"

namespace cpuhp::detail {

class RcuSync {
 public:
  enum class State { kIdle, kPassed, kExitPending, kReplay, kClosedForGood };

  RcuSync(std::atomic<std::uint32_t>& gate, std::atomic<std::uint32_t>& cell_gate,
          bool can_open);
  ~RcuSync();
  RcuSync(const RcuSync&) = delete;
  RcuSync& operator=(const RcuSync&) = delete;

  void enter() CPUHP_EXCLUDES(mutex_);
  void exit() CPUHP_EXCLUDES(mutex_);
  State state() const CPUHP_EXCLUDES(mutex_);

  static const char* name(State state) noexcept;

 private:
  struct Token;  // shared with queued callbacks

  void queue_callback() CPUHP_REQUIRES(mutex_);
  void callback() CPUHP_EXCLUDES(mutex_);
  [[noreturn]] void impossible(const char* event) const CPUHP_REQUIRES(mutex_);

  // Writes both copies of the gate.
  void set_gate(std::uint32_t value, std::memory_order order) noexcept;

  std::atomic<std::uint32_t>& gate_;
  std::atomic<std::uint32_t>& cell_gate_;
  mutable Mutex mutex_;
  State state_ CPUHP_GUARDED_BY(mutex_);
  int writers_ CPUHP_GUARDED_BY(mutex_) = 0;
  bool callback_queued_ CPUHP_GUARDED_BY(mutex_) = false;
  const std::shared_ptr<Token> token_;
};

}  // namespace cpuhp::detail
