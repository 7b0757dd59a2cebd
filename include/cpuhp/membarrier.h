// SPDX-License-Identifier: MIT
// cpuhp/membarrier.h — the process-wide expedited memory barrier that lets the
// hotplug lock's read side go without a fence (membarrier(2),
// MEMBARRIER_CMD_PRIVATE_EXPEDITED).
//
// CONTRACT
//
//   membarrier_available()  any thread, any time. True if this process can
//       use MEMBARRIER_CMD_PRIVATE_EXPEDITED. Decided once, on the first call,
//       which also registers the process for it; later calls return the same
//       answer. False where the kernel lacks the command or a seccomp filter
//       refuses it (ENOSYS, EPERM), and when the environment variable
//       CPUHP_NO_MEMBARRIER is set to anything but "" or "0" at the first
//       call. PercpuRwSemaphore(ReadSide::kAuto) uses the fast read side only
//       if it returns true.
//
//   detail::membarrier_all_threads()  cpuhp's own code (not a public API).
//       Precondition: membarrier_available() returned true. Executes a full
//       memory barrier on every thread of this process that is running at the
//       moment, and orders the caller's memory accesses before and after it
//       against those barriers. A kernel that refuses the call after having
//       accepted the registration is a fatal error (detail::fatal).
#pragma once

namespace cpuhp {

bool membarrier_available() noexcept;

namespace detail {
void membarrier_all_threads();
}  // namespace detail

}  // namespace cpuhp
