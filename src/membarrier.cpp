// SPDX-License-Identifier: MIT
// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): what lets the hotplug lock's
// read side skip its fence (cpuhp/membarrier.h; percpu_rwsem.h, [W2]).
#include "cpuhp/membarrier.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cpuhp/diagnostics.h"

namespace cpuhp {
namespace {

long sys_membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0U, 0); }

bool detect_membarrier() {
  if (const char* off = std::getenv("CPUHP_NO_MEMBARRIER");
      off != nullptr && *off != '\0' && std::strcmp(off, "0") != 0)
    return false;
  // ENOSYS (old kernel, or seccomp) and EPERM (seccomp) both land here.
  const long supported = sys_membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return sys_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

}  // namespace

bool membarrier_available() noexcept {
  static const bool available = detect_membarrier();
  return available;
}

namespace detail {

void membarrier_all_threads() {
  if (sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
    fatal("membarrier", "membarrier(PRIVATE_EXPEDITED) failed after registration: %s",
          std::strerror(errno));
}

}  // namespace detail
}  // namespace cpuhp
