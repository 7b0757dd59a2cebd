// cpuhp — the command-line tool: demo (the main job), states, torture, trace.
#include <CLI/CLI.hpp>

#include "cpuhp/cpumask.h"
#include "demo.h"
#include "host_cmd.h"
#include "option_checks.h"
#include "states_cmd.h"
#include "torture.h"
#include "trace_cmd.h"

int main(int argc, char** argv) {
  CLI::App app{"cpuhp: CPU hotplug for user space"};
  // Every floating-point option is checked by FiniteRange (option_checks.h):
  // CLI::Range lets NaN through.
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
      ->check(cpuhp::tool::FiniteRange(0.1, 3600.0));
  demo_cmd->add_option("--rcu-readers", demo.rcu_readers, "RCU reader threads")
      ->check(CLI::Range(0u, 64u));
  demo_cmd->add_option("--lock-readers", demo.lock_readers, "Hotplug-lock reader threads")
      ->check(CLI::Range(0u, 64u));
  demo_cmd
      ->add_option("--failure-rate", demo.failure_rate,
                   "Fraction of hotplug attempts with an injected failure")
      ->check(cpuhp::tool::FiniteRange(0.0, 1.0));
  demo_cmd->add_option("--seed", demo.seed, "Random seed");

  int cpu = -1;
  CLI::App* states_cmd = app.add_subcommand("states",
                                            "Print the demo domain's state table (like "
                                            "/sys/devices/system/cpu/hotplug/states)");
  states_cmd->add_option("--cpu", cpu, "Show one CPU's state and target instead")
      ->check(CLI::Range(0, static_cast<int>(cpuhp::kMaxCpus) - 1));

  cpuhp::tool::TortureOptions torture;
  CLI::App* torture_cmd = app.add_subcommand(
      "torture",
      "torture_onoff + locktorture for cpuhp: hotplug storms with failure injection, "
      "RCU and hotplug-lock readers and registration churn, every invariant checked "
      "(exit 1 on a violation, 3 on a stall)");
  torture_cmd->add_option("--cpus", torture.cpus, "Possible CPUs")
      ->check(CLI::Range(2u, cpuhp::kMaxCpus))
      ->capture_default_str();
  torture_cmd
      ->add_option("--online", torture.online, "CPUs online at start (default: all)")
      ->check(CLI::Range(1u, cpuhp::kMaxCpus));
  torture_cmd->add_option("--seconds", torture.seconds, "Duration")
      ->check(cpuhp::tool::FiniteRange(0.1, 86400.0))
      ->capture_default_str();
  torture_cmd->add_option("--rcu-readers", torture.rcu_readers, "RCU reader threads")
      ->check(CLI::Range(0u, 64u))
      ->capture_default_str();
  torture_cmd
      ->add_option("--lock-readers", torture.lock_readers, "Hotplug-lock reader threads")
      ->check(CLI::Range(0u, 64u))
      ->capture_default_str();
  torture_cmd
      ->add_option("--interval-us", torture.interval_us,
                   "Pause between hotplug attempts, microseconds (onoff_interval)")
      ->check(CLI::Range(0u, 10000000u))
      ->capture_default_str();
  torture_cmd
      ->add_option("--failure-rate", torture.failure_rate,
                   "Fraction of hotplug attempts with an injected failure")
      ->check(cpuhp::tool::FiniteRange(0.0, 1.0))
      ->capture_default_str();
  torture_cmd
      ->add_option("--churn", torture.churn,
                   "Registration churn threads (setup_state/remove_state in a loop)")
      ->check(CLI::Range(0u, 8u))
      ->capture_default_str();
  torture_cmd->add_option("--seed", torture.seed, "Random seed")->capture_default_str();
  torture_cmd
      ->add_option(
          "--stall-seconds", torture.stall_seconds,
          "Watchdog: a thread without progress this long is a stall (dump, exit 3)")
      ->check(CLI::Range(1u, 3600u))
      ->capture_default_str();
  torture_cmd->add_flag("--json", torture.json,
                        "Print one JSON object with the results instead of the report");
  // Test-only knobs, hidden from --help: they prove that the checks can fail.
  torture_cmd
      ->add_flag("--break-grace-period", torture.break_grace_period,
                 "Free per-CPU data before the online bit clears (no grace period)")
      ->group("");
  torture_cmd
      ->add_flag("--inject-stall", torture.inject_stall,
                 "Make a hotplug callback block forever (the watchdog must fire)")
      ->group("");

  cpuhp::tool::TraceOptions trace;
  CLI::App* trace_cmd = app.add_subcommand(
      "trace",
      "Run a scenario and write a Chrome trace-event JSON file (Perfetto UI, "
      "chrome://tracing): a track per CPU, a track for the writers");
  trace_cmd->add_option("--out", trace.out, "Trace file to write")->required();
  trace_cmd
      ->add_option("--scenario", trace.scenario,
                   "demo: the demo's subsystems; minimal: two empty states")
      ->check(CLI::IsMember({"demo", "minimal"}))
      ->capture_default_str();
  trace_cmd->add_option("--cpus", trace.cpus, "Possible CPUs")
      ->check(CLI::Range(2u, cpuhp::kMaxCpus))
      ->capture_default_str();
  trace_cmd
      ->add_option("--online", trace.online,
                   "CPUs online at start (default: three quarters of --cpus)")
      ->check(CLI::Range(1u, cpuhp::kMaxCpus));
  trace_cmd->add_option("--transitions", trace.transitions, "Hotplug attempts")
      ->check(CLI::Range(0u, 1000000u))
      ->capture_default_str();
  trace_cmd
      ->add_option("--failure-rate", trace.failure_rate,
                   "Fraction of hotplug attempts with an injected failure")
      ->check(cpuhp::tool::FiniteRange(0.0, 1.0))
      ->capture_default_str();
  trace_cmd->add_option("--seed", trace.seed, "Random seed")->capture_default_str();

  cpuhp::tool::HostCmdOptions host;
  CLI::App* host_cmd = app.add_subcommand(
      "host",
      "Print this machine's CPU masks (sysfs possible/present/online, affinity, cgroup "
      "cpuset, effective online); with --follow, one line per change until interrupted "
      "(exit 0) or until the reader of stdout goes away (exit 141, as a filter killed "
      "by SIGPIPE: `cpuhp host --follow | head` ends)");
  host_cmd->add_flag("--follow", host.follow,
                     "Follow the host: one line per CPU change until SIGINT/SIGTERM "
                     "(exit 0) or a closed stdout (exit 141)");
  host_cmd->add_flag("--json", host.json, "JSON: one object per line");
  host_cmd->add_option("--root", host.root, "Read sysfs/procfs/cgroup under this folder")
      ->capture_default_str();
  host_cmd->add_option("--recheck-ms", host.recheck_ms, "Periodic re-check, ms (0: none)")
      ->check(CLI::Range(0u, 3600000u))
      ->capture_default_str();

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
  if (*host_cmd) return cpuhp::tool::run_host(host);
  if (*torture_cmd) {
    if (torture.online > torture.cpus) {
      std::fprintf(stderr, "cpuhp torture: --online %u exceeds --cpus %u\n",
                   torture.online, torture.cpus);
      return 2;
    }
    return cpuhp::tool::run_torture(torture);
  }
  if (*trace_cmd) {
    if (trace.online > trace.cpus) {
      std::fprintf(stderr, "cpuhp trace: --online %u exceeds --cpus %u\n", trace.online,
                   trace.cpus);
      return 2;
    }
    return cpuhp::tool::run_trace(trace);
  }
  return 2;
}
