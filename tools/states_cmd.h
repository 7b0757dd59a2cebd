#pragma once

namespace cpuhp::tool {

// Prints the demo domain's state table, or (cpu >= 0) one CPU's state.
int run_states(int cpu);

}  // namespace cpuhp::tool
