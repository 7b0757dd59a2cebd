#pragma once

#include <string>

namespace cpuhp::tool {

struct HostCmdOptions {
  std::string root = "/";  // a fake tree for tests
  bool follow = false;     // one line per change until SIGINT/SIGTERM
  bool json = false;       // JSON objects, one per line
  unsigned recheck_ms = 100;
  bool uevents = true;
};

// Prints the host's masks (possible, present, sysfs online, affinity, cpuset,
// effective online) and, with follow, one line per CPU change until
// interrupted. Returns the exit code.
int run_host(const HostCmdOptions& options);

}  // namespace cpuhp::tool
