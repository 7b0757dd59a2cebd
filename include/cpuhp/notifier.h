// cpuhp/notifier.h — the 2014 CPU notifier API (old kernel/cpu.c), delivered
// by a Domain through two of its states (kStateNotifyPrepare and
// kStateNotifyOnline) plus POST_DEAD after the hotplug write lock is dropped.
//
// Events, in the order a CPU sees them:
//   up:    UP_PREPARE (before the online bit; NOTIFY_BAD fails the up and
//          sends UP_CANCELED to the notifiers already told) ... ONLINE (last)
//   down:  DOWN_PREPARE (first after the active bit clears; NOTIFY_BAD fails
//          the down and sends DOWN_FAILED to those already told) ... DEAD
//          (after the online bit is clear and a grace period has passed) ...
//          POST_DEAD (hotplug write lock released, writers' lock still held:
//          a POST_DEAD callback may wait for a thread that takes the hotplug
//          read lock).
//   A failure later in an up sends UP_CANCELED to every notifier.
//   During suspend_nonboot()/resume_nonboot() every event has kCpuTasksFrozen set.
// Higher priority is called first; equal priorities in registration order.
#pragma once

#include <functional>

namespace cpuhp {

inline constexpr unsigned long kCpuOnline = 0x0002;
inline constexpr unsigned long kCpuUpPrepare = 0x0003;
inline constexpr unsigned long kCpuUpCanceled = 0x0004;
inline constexpr unsigned long kCpuDownPrepare = 0x0005;
inline constexpr unsigned long kCpuDownFailed = 0x0006;
inline constexpr unsigned long kCpuDead = 0x0007;
inline constexpr unsigned long kCpuPostDead = 0x0009;
inline constexpr unsigned long kCpuTasksFrozen = 0x0010;

inline constexpr int kNotifyDone = 0x0000;
inline constexpr int kNotifyOk = 0x0001;
inline constexpr int kNotifyStopMask = 0x8000;
inline constexpr int kNotifyBad = kNotifyStopMask | 0x0002;

// A negative errno as a notifier return value, and back (kernel semantics).
constexpr int notifier_from_errno(int err) {
  return err != 0 ? (kNotifyStopMask | (kNotifyOk - err)) : kNotifyOk;
}
constexpr int notifier_to_errno(int ret) {
  ret &= ~kNotifyStopMask;
  return ret > kNotifyOk ? kNotifyOk - ret : 0;
}

// One registered callback. The Domain keeps a pointer: the block must stay
// alive and unmoved until it is unregistered.
struct NotifierBlock {
  std::function<int(NotifierBlock* self, unsigned long action, unsigned cpu)> call;
  int priority = 0;
};

}  // namespace cpuhp
