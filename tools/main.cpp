// cpuhp — the command-line tool: demo (the main job) and states.
#include <CLI/CLI.hpp>

#include "cpuhp/cpumask.h"
#include "demo.h"
#include "states_cmd.h"

int main(int argc, char** argv) {
  CLI::App app{"cpuhp: CPU hotplug for user space"};
  app.require_subcommand(1);

  cpuhp::tool::DemoOptions demo;
  CLI::App* demo_cmd = app.add_subcommand(
      "demo",
      "Run a hotplug storm on a virtual machine with readers, notifiers and "
      "registration, then report the invariants checked");
  demo_cmd->add_option("--cpus", demo.cpus, "Possible CPUs")
      ->check(CLI::Range(2u, cpuhp::kMaxCpus));
  demo_cmd->add_option("--online", demo.online, "CPUs online at start")
      ->check(CLI::Range(1u, cpuhp::kMaxCpus));
  demo_cmd->add_option("--seconds", demo.seconds, "Duration")
      ->check(CLI::Range(0.1, 3600.0));
  demo_cmd->add_option("--rcu-readers", demo.rcu_readers, "RCU reader threads")
      ->check(CLI::Range(0u, 64u));
  demo_cmd->add_option("--lock-readers", demo.lock_readers, "Hotplug-lock reader threads")
      ->check(CLI::Range(0u, 64u));
  demo_cmd
      ->add_option("--failure-rate", demo.failure_rate,
                   "Fraction of hotplug attempts with an injected failure")
      ->check(CLI::Range(0.0, 1.0));
  demo_cmd->add_option("--seed", demo.seed, "Random seed");

  int cpu = -1;
  CLI::App* states_cmd = app.add_subcommand("states",
                                            "Print the demo domain's state table (like "
                                            "/sys/devices/system/cpu/hotplug/states)");
  states_cmd->add_option("--cpu", cpu, "Show one CPU's state and target instead")
      ->check(CLI::NonNegativeNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; every usage error exits 2, as command-line tools do.
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*demo_cmd) {
    if (demo.online > demo.cpus) {
      std::fprintf(stderr, "cpuhp demo: --online %u exceeds --cpus %u\n", demo.online,
                   demo.cpus);
      return 2;
    }
    return cpuhp::tool::run_demo(demo);
  }
  if (*states_cmd) return cpuhp::tool::run_states(cpu);
  return 2;
}
