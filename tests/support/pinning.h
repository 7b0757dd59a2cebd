// Runs test code on a thread pinned to one host CPU, for the tests of what
// cpuhp does with "this CPU" (PerCpu::this_cpu(), PerCpuCounter::add()).
#pragma once

#include <pthread.h>
#include <sched.h>

#include <thread>

#include "cpuhp/percpu.h"
#include "support/waiting.h"

namespace cpuhp::testing_support {

// Runs fn on a new thread pinned to host CPU `cpu` and joins it; false (fn not
// run) if pinning is not possible here: the CPU is not in the affinity mask,
// or the kernel did not move the thread there (within eventually()'s limit).
template <class F>
bool on_pinned_thread(unsigned cpu, F fn) {
  bool pinned = false;
  std::thread th([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) return;
    // The kernel moves a thread that pins itself before the call returns, and
    // the rseq CPU id is updated on the way back to user space; what it reads
    // back is still waited for, like every state the OS shows.
    if (!eventually([cpu] {
          sched_yield();
          return detail::raw_current_cpu() == cpu &&
                 sched_getcpu() == static_cast<int>(cpu);
        }))
      return;
    pinned = true;
    fn();
  });
  th.join();
  return pinned;
}

}  // namespace cpuhp::testing_support
