// Process-wide expedited memory barrier (membarrier(2)), detected once.
#pragma once

namespace cpuhp::detail {

// Executes a full memory barrier on every thread of this process that is
// running, and orders the caller's accesses around it. Precondition:
// membarrier_available() returned true. Aborts if the kernel refuses a call
// it accepted at registration.
void membarrier_all_threads();

}  // namespace cpuhp::detail
