// cpuhp/kernel.h — the kernel's own spellings, on a process-wide default
// Domain, so that kernel-style hotplug code compiles and runs in user space.
//
// CONTRACT
//   The default domain is made by cpuhp::kernel::init(nr_cpus, nr_online), or,
//   at first use without it, with this machine's possible CPU count
//   (/sys/devices/system/cpu/possible), all online. init() replaces it; call
//   it before any other use, never while another thread uses the domain.
//   Functions that return int return 0 or a negative errno, as the kernel's
//   do; cpuhp::kernel::last_error() gives the calling thread's last message.
//   Void kernel functions that cannot report an error (cpu_maps_update_begin()
//   from inside a hotplug read section, say) abort with the message instead
//   of deadlocking.
//
// Differences from the kernel, all deliberate:
//   - cpu_up()/add_cpu() of a CPU already online and cpu_down()/remove_cpu()
//     of one already offline return 0, like the kernel; cpuhp::Domain itself
//     reports Errc::kAlreadyInState.
//   - cpu_notifier_register_begin() is cpu_maps_update_begin(): both take the
//     writers' lock (the 2014 mail asked for the dedicated name; we give both).
#pragma once

#include <cstdint>
#include <string>

#include "cpuhp/domain.h"
#include "cpuhp/notifier.h"
#include "cpuhp/rcu.h"

namespace cpuhp::kernel {

// (Re)creates the default domain. kInvalidArgument for bad counts.
Status init(unsigned nr_cpus, unsigned nr_online);
Domain& default_domain();
const std::string& last_error();  // of the calling thread
// An Error as the kernel's negative errno.
int to_errno(const Error& error);

int next_cpu(int cpu, const CpuMask& mask);  // -1 starts; >= nr_cpu_ids ends

}  // namespace cpuhp::kernel

// ---- notifiers ---------------------------------------------------------------

struct notifier_block {
  int (*notifier_call)(struct notifier_block* nb, unsigned long action, void* hcpu);
  struct notifier_block* next;  // the kernel's chain link; cpuhp keeps its own
  int priority;
  cpuhp::NotifierBlock cpuhp_block;  // filled in at registration
};

#define NOTIFY_DONE ::cpuhp::kNotifyDone
#define NOTIFY_OK ::cpuhp::kNotifyOk
#define NOTIFY_STOP_MASK ::cpuhp::kNotifyStopMask
#define NOTIFY_BAD ::cpuhp::kNotifyBad

inline int notifier_from_errno(int err) { return ::cpuhp::notifier_from_errno(err); }
inline int notifier_to_errno(int ret) { return ::cpuhp::notifier_to_errno(ret); }

#define CPU_ONLINE ::cpuhp::kCpuOnline
#define CPU_UP_PREPARE ::cpuhp::kCpuUpPrepare
#define CPU_UP_CANCELED ::cpuhp::kCpuUpCanceled
#define CPU_DOWN_PREPARE ::cpuhp::kCpuDownPrepare
#define CPU_DOWN_FAILED ::cpuhp::kCpuDownFailed
#define CPU_DEAD ::cpuhp::kCpuDead
#define CPU_POST_DEAD ::cpuhp::kCpuPostDead
#define CPU_TASKS_FROZEN ::cpuhp::kCpuTasksFrozen

// The writers' lock (cpu_add_remove_lock).
void cpu_maps_update_begin();
void cpu_maps_update_done();
void cpu_notifier_register_begin();
void cpu_notifier_register_done();

int register_cpu_notifier(struct notifier_block* nb);
int __register_cpu_notifier(struct notifier_block* nb);  // inside cpu_maps_update_begin()
void unregister_cpu_notifier(struct notifier_block* nb);
void __unregister_cpu_notifier(struct notifier_block* nb);

// ---- the hotplug lock ----------------------------------------------------------

void get_online_cpus();
void put_online_cpus();
void cpus_read_lock();
void cpus_read_unlock();

// ---- states --------------------------------------------------------------------

enum cpuhp_state : int {
  CPUHP_OFFLINE = ::cpuhp::kStateOffline,
  CPUHP_BP_PREPARE_DYN = ::cpuhp::kStatePrepareDyn,
  CPUHP_BP_PREPARE_DYN_END = ::cpuhp::kStatePrepareDynEnd,
  CPUHP_BRINGUP_CPU = ::cpuhp::kStateBringup,
  CPUHP_AP_ONLINE_DYN = ::cpuhp::kStateOnlineDyn,
  CPUHP_AP_ONLINE_DYN_END = ::cpuhp::kStateOnlineDynEnd,
  CPUHP_AP_ACTIVE = ::cpuhp::kStateActive,
  CPUHP_ONLINE = ::cpuhp::kStateOnline,
};

// For a *_DYN state: the allocated state (> 0) or a negative errno; else 0 or
// a negative errno. NULL callbacks are allowed.
int cpuhp_setup_state(enum cpuhp_state state, const char* name,
                      int (*startup)(unsigned int cpu),
                      int (*teardown)(unsigned int cpu));
int cpuhp_setup_state_nocalls(enum cpuhp_state state, const char* name,
                              int (*startup)(unsigned int cpu),
                              int (*teardown)(unsigned int cpu));
void cpuhp_remove_state(enum cpuhp_state state);
void cpuhp_remove_state_nocalls(enum cpuhp_state state);
inline int cpuhp_setup_state(int state, const char* name, int (*startup)(unsigned int),
                             int (*teardown)(unsigned int)) {
  return cpuhp_setup_state(static_cast<enum cpuhp_state>(state), name, startup, teardown);
}
inline void cpuhp_remove_state(int state) {
  cpuhp_remove_state(static_cast<enum cpuhp_state>(state));
}

// ---- CPUs ------------------------------------------------------------------------

int cpu_up(unsigned int cpu);
int cpu_down(unsigned int cpu);
int add_cpu(unsigned int cpu);
int remove_cpu(unsigned int cpu);

bool cpu_online(unsigned int cpu);
unsigned int num_online_cpus();
unsigned int cpuhp_kernel_nr_cpu_ids();
#define nr_cpu_ids (::cpuhp_kernel_nr_cpu_ids())

#define CPUHP_FOR_EACH_CPU_IN(cpu, mask)                             \
  for ((cpu) = -1; (cpu) = ::cpuhp::kernel::next_cpu((cpu), (mask)), \
      static_cast<unsigned int>(cpu) < nr_cpu_ids;)
#define for_each_online_cpu(cpu) \
  CPUHP_FOR_EACH_CPU_IN(cpu, ::cpuhp::kernel::default_domain().online())
#define for_each_possible_cpu(cpu) \
  CPUHP_FOR_EACH_CPU_IN(cpu, ::cpuhp::kernel::default_domain().possible())
#define for_each_present_cpu(cpu) \
  CPUHP_FOR_EACH_CPU_IN(cpu, ::cpuhp::kernel::default_domain().present())

// ---- RCU -------------------------------------------------------------------------

inline void rcu_read_lock() { ::cpuhp::rcu::rcu_default_domain().lock(); }
inline void rcu_read_unlock() { ::cpuhp::rcu::rcu_default_domain().unlock(); }
inline void synchronize_rcu() { ::cpuhp::rcu::rcu_synchronize(); }
