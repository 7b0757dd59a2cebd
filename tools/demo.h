#pragma once

namespace cpuhp::tool {

struct DemoOptions {
  unsigned cpus = 64;
  unsigned online = 48;
  double seconds = 10;
  unsigned rcu_readers = 2;
  unsigned lock_readers = 1;
  double failure_rate = 0.05;  // fraction of hotplug attempts with an injected failure
  unsigned seed = 1;
};

// Runs the demo; returns the process exit status (0: every invariant held).
int run_demo(const DemoOptions& options);

}  // namespace cpuhp::tool
