// The demo's virtual machine: a Domain with a few realistic subsystems
// registered, shared by `cpuhp demo` and `cpuhp states`.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "cpuhp/domain.h"

namespace cpuhp::tool {

// One CPU's counter slot. Built in a PREPARE startup before the CPU's online
// bit is set, poisoned and freed in the PREPARE teardown, which runs a grace
// period after the bit is cleared.
struct CounterSlot {
  static constexpr std::uint64_t kAlive = 0xC0FFEE;
  static constexpr std::uint64_t kPoison = 0xDEADDEAD;
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> magic{kAlive};
};

struct Scenario {
  Scenario(unsigned cpus, unsigned online);
  ~Scenario();
  // Installs the counter state and the 2014-style notifier. Error if either fails.
  Status install();

  Domain domain;
  std::vector<std::atomic<CounterSlot*>> slots;  // published before the online bit
  std::atomic<std::uint64_t> folded{0};          // counts of CPUs that went away
  StateId counter_state = -1;

  // The 2014-style notifier: tracks which CPUs it believes are online.
  NotifierBlock notifier;
  std::vector<std::atomic<bool>> notifier_online;
  std::atomic<std::uint64_t> notifier_events{0};
  std::atomic<std::uint64_t> post_dead_events{0};
  std::atomic<std::uint64_t> pairing_violations{0};
  bool notifier_registered = false;
};

}  // namespace cpuhp::tool
