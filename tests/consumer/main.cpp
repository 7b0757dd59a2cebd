// Uses the installed headers and library: a cpulist, an RCU read section and
// the hotplug lock. Exit status 0 only if all behave.
#include <cpuhp/cpumask.h>
#include <cpuhp/percpu_rwsem.h>
#include <cpuhp/rcu.h>

#include <cstdio>
#include <mutex>
#include <shared_mutex>

int main() {
  auto mask = cpuhp::CpuMask::parse("0-3,8", 16);
  if (!mask.ok() || mask->weight() != 5 || mask->to_string() != "0-3,8") return 1;
  { std::scoped_lock reader(cpuhp::rcu::rcu_default_domain()); }
  cpuhp::rcu::rcu_synchronize();
  cpuhp::PercpuRwSemaphore lock;
  { std::shared_lock reader(lock); }
  { std::unique_lock writer(lock); }
  std::puts("consumer ok");
  return 0;
}
