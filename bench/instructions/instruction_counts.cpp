// SPDX-License-Identifier: MIT
// cpuhp_instructions: fixed work for `valgrind --tool=callgrind`, whose
// instruction counts are the same run after run whatever else the machine does
// (timings on a shared VM are not). BENCHMARKS.md has the command; the
// difference between two counts (N and N + 1000 iterations) is the cost of
// 1000 iterations, without start-up and teardown.
//
//   cpuhp_instructions cycle N   N down+up cycles of one CPU of a 64-CPU
//                                Domain through 16 trivial ONLINE states
//   cpuhp_instructions read N    N lock_shared()+unlock_shared() pairs of an
//                                uncontended PercpuRwSemaphore
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpuhp/domain.h"
#include "cpuhp/percpu_rwsem.h"

namespace {
int trivial(unsigned) { return 0; }
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 ||
      (std::strcmp(argv[1], "cycle") != 0 && std::strcmp(argv[1], "read") != 0)) {
    std::fprintf(stderr, "usage: %s cycle|read N\n", argv[0]);
    return 2;
  }
  const long n = std::strtol(argv[2], nullptr, 10);
  if (std::strcmp(argv[1], "cycle") == 0) {
    cpuhp::Domain d(64, 64);
    for (int i = 0; i < 16; ++i)
      if (!d.setup_state(cpuhp::Section::kOnline, "count:" + std::to_string(i), trivial,
                         trivial)
               .ok())
        return 1;
    for (long i = 0; i < n; ++i)
      if (!d.down(63).ok() || !d.up(63).ok()) return 1;
  } else {
    cpuhp::PercpuRwSemaphore lock;
    for (long i = 0; i < n; ++i) {
      lock.lock_shared();
      lock.unlock_shared();
    }
  }
  return 0;
}
