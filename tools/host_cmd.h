#pragma once

#include <string>

namespace cpuhp::tool {

// The exit status of `cpuhp host` when the reader of its stdout went away
// (EPIPE, or POLLERR on the pipe): 128 + SIGPIPE, what a shell shows for a
// filter killed by SIGPIPE. The tool blocks SIGPIPE and stops cleanly instead.
inline constexpr int kExitReaderGone = 141;

struct HostCmdOptions {
  std::string root = "/";  // a fake tree for tests
  bool follow = false;     // one line per change until SIGINT/SIGTERM or EPIPE
  bool json = false;       // JSON objects, one per line
  unsigned recheck_ms = 100;
  bool uevents = true;
};

// Prints the host's masks (possible, present, sysfs online, affinity, cpuset,
// effective online) and, with follow, one line per CPU change until
// SIGINT/SIGTERM (returns 0) or until the reader of stdout goes away (returns
// kExitReaderGone). Returns the exit code.
int run_host(const HostCmdOptions& options);

}  // namespace cpuhp::tool
