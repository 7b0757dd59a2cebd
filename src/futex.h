// SPDX-License-Identifier: MIT
// src/futex.h — futex(2) wait and wake on a 32-bit atomic word. Internal header.
//
// CONTRACT
//
//   futex_wait(word, expected)  any thread. Sleeps while *word == expected; the
//       kernel compares and enqueues the caller as one step against every
//       futex_wake() on the same address. Returns when woken, at once if
//       *word != expected, on a signal, or for no reason at all: every caller
//       re-checks its condition in a loop.
//   futex_wake(word, n)         any thread. Wakes up to n threads sleeping in
//       futex_wait() on `word` (futex_wake_all: every one).
//
// Both are process-private (FUTEX_*_PRIVATE). A private futex_wake() only
// hashes the address: it reads nothing at it in user space, so it may be
// called on memory that another thread has freed since (at worst a waiter of
// whatever lives there now wakes spuriously, which that waiter tolerates).
//
// ORDERING: a waker that changes *word and then calls futex_wake() never
// misses a waiter that called futex_wait() with the old value: either the
// waiter's comparison sees the new value, or the wake-up finds it enqueued
// (the kernel orders the two; see futex(2)). The syscalls order nothing else:
// the data a waiter needs is published by the atomic operations on `word` or
// on the words the caller re-checks, each with its own pairing.
//
// Why not std::atomic<T>::wait/notify: libstdc++'s notify skips the wake-up
// when its own waiter count reads zero, a plain load placed after the
// caller's store; whether that load can pass the store depends on the
// caller's memory order and on the CPU (it cannot on x86 after a locked
// instruction; it can on Arm after a relaxed read-modify-write). Here the
// "is anyone asleep" decision is the caller's, made on the futex word itself.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

namespace cpuhp::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "a futex is a plain 32-bit word");

inline void futex_wait(const std::atomic<std::uint32_t>* word,
                       std::uint32_t expected) noexcept {
  ::syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

inline void futex_wake(const std::atomic<std::uint32_t>* word, int n) noexcept {
  ::syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}

inline void futex_wake_all(const std::atomic<std::uint32_t>* word) noexcept {
  futex_wake(word, INT_MAX);
}

}  // namespace cpuhp::detail
