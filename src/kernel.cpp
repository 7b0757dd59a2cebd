// SPDX-License-Identifier: MIT
// The kernel spellings (cpuhp/kernel.h) on a process-wide default Domain.
#include "cpuhp/kernel.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "cpuhp/diagnostics.h"

namespace cpuhp::kernel {
namespace {

std::mutex g_init_mutex;
std::atomic<Domain*> g_domain{nullptr};  // release on publish, acquire on use
thread_local std::string tl_last_error;
thread_local std::optional<RegistrationScope> tl_maps_scope;  // cpu_maps_update_begin()

unsigned machine_possible_cpus() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string text;
  if (std::getline(in, text)) {
    if (auto mask = CpuMask::parse(text, kMaxCpus); mask.ok() && !mask->empty())
      return mask->last() + 1;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : (n > kMaxCpus ? kMaxCpus : n);
}

[[noreturn]] void die(const std::string& what) {
  cpuhp::detail::fatal("kernel", "%s", what.c_str());
}

int fail(const Error& error) {
  tl_last_error = error.message();
  return to_errno(error);
}

int status_to_int(const Status& s) { return s ? 0 : fail(s.error()); }

}  // namespace

Status init(unsigned nr_cpus, unsigned nr_online) {
  if (nr_cpus == 0 || nr_cpus > kMaxCpus || nr_online == 0 || nr_online > nr_cpus)
    return Error(Errc::kInvalidArgument,
                 "cpuhp::kernel::init(" + std::to_string(nr_cpus) + ", " +
                     std::to_string(nr_online) +
                     "): need 1 <= nr_online <= nr_cpus <= " + std::to_string(kMaxCpus));
  std::lock_guard guard(g_init_mutex);
  // The old domain is deliberately kept alive: a stale reference must not
  // become a use-after-free. init() is rare (tests, program start).
  g_domain.store(new Domain(nr_cpus, nr_online), std::memory_order_release);
  return {};
}

Domain& default_domain() {
  // Acquire: pairs with the release store in init() or below.
  if (Domain* d = g_domain.load(std::memory_order_acquire)) [[likely]]
    return *d;
  std::lock_guard guard(g_init_mutex);
  if (Domain* d = g_domain.load(std::memory_order_relaxed)) return *d;
  const unsigned n = machine_possible_cpus();
  auto* d = new Domain(n, n);
  g_domain.store(d, std::memory_order_release);
  return *d;
}

const std::string& last_error() { return tl_last_error; }

int to_errno(const Error& error) {
  switch (error.code()) {
    case Errc::kOk:
      return 0;
    case Errc::kBusy:
    case Errc::kLastCpu:
      return -EBUSY;
    case Errc::kNotFound:
      return -ENOENT;
    case Errc::kWouldDeadlock:
      return -EDEADLK;
    case Errc::kCallbackFailed:
      return error.cause() != 0 ? error.cause() : -EIO;
    case Errc::kSystem:
      return -EIO;
    case Errc::kAlreadyInState:
      return 0;
    case Errc::kInvalidArgument:
    case Errc::kOutOfRange:
    case Errc::kNotPresent:
      return -EINVAL;
  }
  return -EINVAL;
}

int next_cpu(int cpu, const CpuMask& mask) {
  const unsigned next = cpu < 0 ? mask.first() : mask.next(static_cast<unsigned>(cpu));
  return static_cast<int>(next);  // capacity() (== nr_cpu_ids) when done
}

}  // namespace cpuhp::kernel

// ---- the kernel's spellings ----------------------------------------------------
using cpuhp::kernel::default_domain;
using cpuhp::kernel::fail;
using cpuhp::kernel::status_to_int;
using cpuhp::kernel::tl_maps_scope;

void cpu_maps_update_begin() {
  if (tl_maps_scope.has_value())
    cpuhp::kernel::die(
        "cpu_maps_update_begin() twice on one thread: would deadlock on "
        "the writers' lock");
  auto scope = default_domain().register_begin();
  if (!scope.ok()) cpuhp::kernel::die(scope.error().message());
  tl_maps_scope.emplace(std::move(*scope));
}

void cpu_maps_update_done() {
  if (!tl_maps_scope.has_value())
    cpuhp::kernel::die("cpu_maps_update_done() without cpu_maps_update_begin()");
  tl_maps_scope.reset();
}

void cpu_notifier_register_begin() { cpu_maps_update_begin(); }
void cpu_notifier_register_done() { cpu_maps_update_done(); }

namespace {
cpuhp::Error no_scope(const char* what) {
  return cpuhp::Error(cpuhp::Errc::kInvalidArgument,
                      std::string(what) +
                          " needs cpu_maps_update_begin() on this thread; "
                          "use the variant without __ otherwise");
}

// Registers a kernel notifier_block through its embedded cpuhp block. The
// embedded block is filled in only once the registration is sure to go
// through: a block already in the chain may be running on another thread.
int register_in_scope(cpuhp::RegistrationScope& scope, struct notifier_block* nb,
                      const char* what) {
  if (nb == nullptr || nb->notifier_call == nullptr)
    return fail(cpuhp::Error(cpuhp::Errc::kInvalidArgument,
                             std::string(what) + ": no notifier_call"));
  if (scope.is_registered(&nb->cpuhp_block))
    return fail(
        cpuhp::Error(cpuhp::Errc::kBusy,
                     std::string(what) + ": this notifier_block is already registered"));
  nb->cpuhp_block.priority = nb->priority;
  nb->cpuhp_block.call = [nb](cpuhp::NotifierBlock*, unsigned long action, unsigned cpu) {
    return nb->notifier_call(nb, action,
                             reinterpret_cast<void*>(static_cast<std::uintptr_t>(cpu)));
  };
  return status_to_int(scope.register_notifier(&nb->cpuhp_block));
}
}  // namespace

int register_cpu_notifier(struct notifier_block* nb) {
  auto scope = default_domain().register_begin();
  if (!scope.ok()) return fail(scope.error());
  return register_in_scope(*scope, nb, "register_cpu_notifier()");
}

int __register_cpu_notifier(struct notifier_block* nb) {
  if (!tl_maps_scope.has_value()) return fail(no_scope("__register_cpu_notifier()"));
  return register_in_scope(*tl_maps_scope, nb, "__register_cpu_notifier()");
}

void unregister_cpu_notifier(struct notifier_block* nb) {
  (void)status_to_int(default_domain().unregister_notifier(&nb->cpuhp_block));
}

void __unregister_cpu_notifier(struct notifier_block* nb) {
  if (!tl_maps_scope.has_value()) {
    (void)fail(no_scope("__unregister_cpu_notifier()"));
    return;
  }
  (void)status_to_int(tl_maps_scope->unregister_notifier(&nb->cpuhp_block));
}

void get_online_cpus() { default_domain().hotplug_lock().lock_shared(); }
void put_online_cpus() { default_domain().hotplug_lock().unlock_shared(); }
void cpus_read_lock() { default_domain().hotplug_lock().lock_shared(); }
void cpus_read_unlock() { default_domain().hotplug_lock().unlock_shared(); }

namespace {
cpuhp::StateCallback callback(int (*fn)(unsigned int)) {
  if (fn == nullptr) return nullptr;
  return [fn](unsigned cpu) { return fn(cpu); };
}

bool is_dynamic(enum cpuhp_state state) {
  return state == CPUHP_BP_PREPARE_DYN || state == CPUHP_AP_ONLINE_DYN;
}

int setup(enum cpuhp_state state, const char* name, int (*startup)(unsigned int),
          int (*teardown)(unsigned int), bool calls) {
  cpuhp::Domain& d = default_domain();
  const cpuhp::Section section =
      state == CPUHP_BP_PREPARE_DYN ? cpuhp::Section::kPrepare : cpuhp::Section::kOnline;
  std::string label = name != nullptr ? name : "";
  cpuhp::Result<cpuhp::StateId> r =
      is_dynamic(state)
          ? (calls ? d.setup_state(section, label, callback(startup), callback(teardown))
                   : d.setup_state_nocalls(section, label, callback(startup),
                                           callback(teardown)))
          : (calls ? d.setup_state_at(state, label, callback(startup), callback(teardown))
                   : d.setup_state_at_nocalls(state, label, callback(startup),
                                              callback(teardown)));
  if (!r.ok()) return fail(r.error());
  return is_dynamic(state) ? *r : 0;
}
}  // namespace

int cpuhp_setup_state(enum cpuhp_state state, const char* name,
                      int (*startup)(unsigned int), int (*teardown)(unsigned int)) {
  return setup(state, name, startup, teardown, true);
}

int cpuhp_setup_state_nocalls(enum cpuhp_state state, const char* name,
                              int (*startup)(unsigned int),
                              int (*teardown)(unsigned int)) {
  return setup(state, name, startup, teardown, false);
}

void cpuhp_remove_state(enum cpuhp_state state) {
  (void)status_to_int(default_domain().remove_state(state));
}

void cpuhp_remove_state_nocalls(enum cpuhp_state state) {
  (void)status_to_int(default_domain().remove_state_nocalls(state));
}

int cpu_up(unsigned int cpu) { return status_to_int(default_domain().up(cpu)); }
int cpu_down(unsigned int cpu) { return status_to_int(default_domain().down(cpu)); }
int add_cpu(unsigned int cpu) { return cpu_up(cpu); }
int remove_cpu(unsigned int cpu) { return cpu_down(cpu); }

bool cpu_online(unsigned int cpu) { return default_domain().cpu_online(cpu); }
unsigned int num_online_cpus() { return default_domain().online().weight(); }
unsigned int cpuhp_kernel_nr_cpu_ids() { return default_domain().capacity(); }
