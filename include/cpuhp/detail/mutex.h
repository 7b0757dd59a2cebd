// SPDX-License-Identifier: MIT
// cpuhp/detail/mutex.h — std::mutex with clang thread-safety annotations.
//
// Not a public API. libstdc++'s std::mutex carries no capability attributes,
// so clang cannot check what it guards; this wrapper (no extra state, same
// cost) and its scoped guard can be named in CPUHP_GUARDED_BY / CPUHP_REQUIRES.
#pragma once

#include <mutex>

#include "cpuhp/detail/thread_annotations.h"

namespace cpuhp::detail {

class CPUHP_CAPABILITY("mutex") Mutex {
 public:
  void lock() CPUHP_ACQUIRE() { m_.lock(); }
  bool try_lock() CPUHP_TRY_ACQUIRE(true) { return m_.try_lock(); }
  void unlock() CPUHP_RELEASE() { m_.unlock(); }
  // Tells the analysis the caller holds it (checked by the caller's own logic).
  void assume_held() const CPUHP_ASSERT_CAPABILITY(this) {}

 private:
  std::mutex m_;
};

class CPUHP_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& m) CPUHP_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~MutexLock() CPUHP_RELEASE() { m_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& m_;
};

}  // namespace cpuhp::detail
