// cpuhp/legacy_hotplug_lock.h — the hotplug lock as Linux had it before 2014
// (get_online_cpus()/put_online_cpus() and cpu_hotplug_begin()/done() in the
// old kernel/cpu.c): readers take a mutex to bump a reference count, the
// writer holds that mutex and waits for the count to drop to zero.
//
// FOR BENCHMARKS ONLY: it is the baseline the 2013 "Optimize the cpu hotplug
// locking" thread set out to beat. Every reader writes the same cache line
// and takes the same mutex. The writer's own thread may take the read lock
// (as in the kernel, where active_writer == current skips it).
//
// SharedLockable and Lockable; any thread may call any function.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace cpuhp {

class LegacyHotplugLock {
 public:
  void lock_shared();    // get_online_cpus()
  void unlock_shared();  // put_online_cpus()
  bool try_lock_shared();
  void lock();    // cpu_hotplug_begin()
  void unlock();  // cpu_hotplug_done()
  bool try_lock();

 private:
  bool is_active_writer() const noexcept;

  std::mutex mutex_;
  std::condition_variable readers_gone_;
  long refcount_ = 0;                                // guarded by mutex_
  std::atomic<const void*> active_writer_{nullptr};  // written under mutex_
};

}  // namespace cpuhp
