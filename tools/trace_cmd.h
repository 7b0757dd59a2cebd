// cpuhp trace: run a scenario under a TraceRecorder, write Chrome trace JSON.
#pragma once

#include <string>

namespace cpuhp::tool {

struct TraceOptions {
  std::string out;                // the trace file (required)
  std::string scenario = "demo";  // "demo" (the demo's subsystems) or "minimal"
  unsigned cpus = 8;
  unsigned online = 0;         // 0: three quarters of --cpus
  unsigned transitions = 200;  // hotplug attempts
  double failure_rate = 0.1;   // fraction of attempts with an injected failure
  unsigned seed = 1;
};

// Returns the exit status: 0 written, 1 the scenario or the file failed.
int run_trace(const TraceOptions& options);

}  // namespace cpuhp::tool
