// cpuhp states: the state table, like /sys/devices/system/cpu/hotplug/states,
// of the demo's domain.
#include "states_cmd.h"

#include <cstdio>

#include "demo.h"
#include "scenario.h"

namespace cpuhp::tool {

int run_states(int cpu) {
  const DemoOptions defaults;
  Scenario sc(defaults.cpus, defaults.online);
  if (Status s = sc.install(); !s) {
    std::fprintf(stderr, "cpuhp states: %s\n", s.error().message().c_str());
    return 1;
  }
  if (cpu < 0) {
    for (const StateInfo& st : sc.domain.states())
      std::printf("%3d: %s%s\n", st.id, st.name.c_str(),
                  st.multi_instance ? " (multi)" : "");
    return 0;
  }
  auto state = sc.domain.cpu_state(static_cast<unsigned>(cpu));
  if (!state.ok()) {
    std::fprintf(stderr, "cpuhp states: %s\n", state.error().message().c_str());
    return 2;
  }
  // No transition is in progress here, so the target is the state itself.
  std::printf("cpu%d: state %d, target %d, %s\n", cpu, *state, *state,
              sc.domain.cpu_online(static_cast<unsigned>(cpu)) ? "online" : "offline");
  return 0;
}

}  // namespace cpuhp::tool
