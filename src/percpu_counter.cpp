// SPDX-License-Identifier: MIT
// PerCpuCounter's out-of-line half (cpuhp/percpu_counter.h).
#include "cpuhp/percpu_counter.h"

#include "cpuhp/diagnostics.h"

namespace cpuhp::detail {

void percpu_counter_sum_in_read_section(const std::string& name) noexcept {
  fatal("PerCpuCounter",
        "'%s': sum() inside an RCU read section could deadlock (it takes the hotplug "
        "read lock, and a CPU going down holds the write lock while it waits for the "
        "grace period); call it outside the read section, or use sum_approx()",
        name.c_str());
}

}  // namespace cpuhp::detail
