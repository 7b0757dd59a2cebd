// cpuhp torture: the kernel's torture_onoff + locktorture for cpuhp.
#pragma once

namespace cpuhp::tool {

struct TortureOptions {
  unsigned cpus = 16;
  unsigned online = 0;  // 0: all of them
  double seconds = 5;
  unsigned rcu_readers = 2;
  unsigned lock_readers = 1;
  unsigned interval_us = 50;   // pause between hotplug attempts (onoff_interval)
  double failure_rate = 0.05;  // fraction of attempts with an injected failure
  unsigned churn = 1;          // registration churn threads
  unsigned seed = 1;
  unsigned stall_seconds = 10;  // watchdog: no progress for this long is a stall
  bool json = false;            // one JSON object on stdout instead of the report
  // Test-only knobs (hidden options), to prove the checks can fail:
  bool break_grace_period = false;  // free per-CPU data before the online bit clears
  bool inject_stall = false;        // a hotplug callback blocks forever
};

// Runs the torture test. Returns the exit status: 0 every check held,
// 1 a violation was seen, 3 the watchdog found a stall (it exits the process
// itself, after a diagnostic dump on stderr).
int run_torture(const TortureOptions& options);

}  // namespace cpuhp::tool
