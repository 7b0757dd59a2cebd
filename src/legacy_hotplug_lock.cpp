#include "cpuhp/legacy_hotplug_lock.h"

namespace cpuhp {
namespace {
thread_local char tl_legacy_token;
}

bool LegacyHotplugLock::is_active_writer() const noexcept {
  // Relaxed: only this thread ever stores its own token here.
  return active_writer_.load(std::memory_order_relaxed) == &tl_legacy_token;
}

void LegacyHotplugLock::lock_shared() {
  if (is_active_writer()) return;
  std::lock_guard guard(mutex_);
  ++refcount_;
}

bool LegacyHotplugLock::try_lock_shared() {
  if (is_active_writer()) return true;
  if (!mutex_.try_lock()) return false;
  ++refcount_;
  mutex_.unlock();
  return true;
}

void LegacyHotplugLock::unlock_shared() {
  if (is_active_writer()) return;
  std::lock_guard guard(mutex_);
  if (--refcount_ == 0) readers_gone_.notify_one();
}

void LegacyHotplugLock::lock() {
  std::unique_lock guard(mutex_);
  readers_gone_.wait(guard, [this] { return refcount_ == 0; });
  active_writer_.store(&tl_legacy_token, std::memory_order_relaxed);
  guard.release();  // the writer keeps mutex_ until unlock(), shutting readers out
}

bool LegacyHotplugLock::try_lock() {
  if (!mutex_.try_lock()) return false;
  if (refcount_ != 0) {
    mutex_.unlock();
    return false;
  }
  active_writer_.store(&tl_legacy_token, std::memory_order_relaxed);
  return true;
}

void LegacyHotplugLock::unlock() {
  active_writer_.store(nullptr, std::memory_order_relaxed);
  mutex_.unlock();
}

}  // namespace cpuhp
