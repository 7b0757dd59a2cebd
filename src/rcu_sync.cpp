// SPDX-License-Identifier: MIT
// RcuSync (cpuhp/detail/rcu_sync.h): the state machine of the hotplug lock's
// gate. The [Wn] labels are those of percpu_rwsem.h and model/percpu_rwsem.pml.
#include "cpuhp/detail/rcu_sync.h"

#include "cpuhp/detail/lock_cell.h"  // kGateOpen, kGateClosed
#include "cpuhp/diagnostics.h"
#include "cpuhp/membarrier.h"
#include "cpuhp/rcu.h"

namespace cpuhp::detail {

struct RcuSync::Token {
  Mutex mutex;  // held while a callback works on owner
  RcuSync* owner CPUHP_GUARDED_BY(mutex);
  explicit Token(RcuSync* o) : owner(o) {}
};

RcuSync::RcuSync(std::atomic<std::uint32_t>& gate, std::atomic<std::uint32_t>& cell_gate,
                 bool can_open)
    : gate_(gate),
      cell_gate_(cell_gate),
      state_(can_open ? State::kIdle : State::kClosedForGood),
      token_(std::make_shared<Token>(this)) {
  // Relaxed: the semaphore is published to its users by whatever hands it to
  // them, which orders this store before their first read of the gate.
  set_gate(can_open ? kGateOpen : kGateClosed, std::memory_order_relaxed);
}

void RcuSync::set_gate(std::uint32_t value, std::memory_order order) noexcept {
  gate_.store(value, order);
  cell_gate_.store(value, order);
}

RcuSync::~RcuSync() {
  {
    MutexLock guard(mutex_);
    if (writers_ != 0) impossible("destruction");
  }
  // A queued callback finds no owner and does nothing; one running now holds
  // the token's mutex, so this waits only for it to finish.
  MutexLock guard(token_->mutex);
  token_->owner = nullptr;
}

const char* RcuSync::name(State state) noexcept {
  switch (state) {
    case State::kIdle:
      return "idle";
    case State::kPassed:
      return "passed";
    case State::kExitPending:
      return "exit pending";
    case State::kReplay:
      return "replay";
    case State::kClosedForGood:
      return "closed for good";
  }
  return "?";
}

RcuSync::State RcuSync::state() const {
  MutexLock guard(mutex_);
  return state_;
}

void RcuSync::impossible(const char* event) const {
  fatal("RcuSync", "impossible transition: %s in state '%s' with %d writer(s) inside%s",
        event, name(state_), writers_, callback_queued_ ? ", a callback queued" : "");
}

void RcuSync::enter() {
  MutexLock guard(mutex_);
  ++writers_;
  switch (state_) {
    case State::kIdle:
      if (writers_ != 1 || callback_queued_) impossible("enter()");
      // [W1] Relaxed: the membarrier below orders it before the caller's
      // loads that follow ([W4]) and makes it visible to every reader's next
      // [R2] (the pairing is spelled out in percpu_rwsem.h).
      set_gate(kGateClosed, std::memory_order_relaxed);
      membarrier_all_threads();  // [W2]
      state_ = State::kPassed;
      break;
    case State::kExitPending:
    case State::kReplay:
      // The gate is still closed and a callback is queued: skip [W1]/[W2].
      // The callback finds a writer inside and leaves the gate closed.
      if (!callback_queued_) impossible("enter()");
      state_ = State::kPassed;
      break;
    case State::kPassed:
      // Another writer is inside (after its own enter()).
      if (writers_ == 1) impossible("enter()");
      break;
    case State::kClosedForGood:
      break;
  }
}

void RcuSync::exit() {
  MutexLock guard(mutex_);
  if (writers_ <= 0) impossible("exit() without enter()");
  if (state_ != State::kPassed && state_ != State::kClosedForGood) impossible("exit()");
  if (--writers_ != 0 || state_ == State::kClosedForGood) return;
  if (callback_queued_) {
    // The queued callback's grace period began before this writer left:
    // make it wait one more (the kernel's GP_REPLAY).
    state_ = State::kReplay;
    return;
  }
  state_ = State::kExitPending;
  queue_callback();
}

void RcuSync::queue_callback() {
  callback_queued_ = true;
  rcu::rcu_call([token = token_] {
    MutexLock guard(token->mutex);
    if (token->owner != nullptr) token->owner->callback();
  });
}

void RcuSync::callback() {
  MutexLock guard(mutex_);
  if (!callback_queued_) impossible("a callback that was not queued");
  if (writers_ > 0) {
    // A writer is inside; its last exit() queues a new callback.
    if (state_ != State::kPassed) impossible("callback");
    callback_queued_ = false;
    return;
  }
  switch (state_) {
    case State::kReplay:
      state_ = State::kExitPending;
      callback_queued_ = false;
      queue_callback();
      return;
    case State::kExitPending:
      // [W6] Release: pairs with the readers' acquire load at [R2]; the last
      // write section (which ended before the exit() that queued us, under
      // this mutex) happens-before every fast-path read section after this.
      set_gate(kGateOpen, std::memory_order_release);
      state_ = State::kIdle;
      callback_queued_ = false;
      return;
    default:
      impossible("callback");
  }
}

}  // namespace cpuhp::detail
