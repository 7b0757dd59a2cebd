// Runs model/check: the Promela models of the hotplug lock, of registration
// against hotplug and of the RCU online mask must verify with spin, every
// mutant must be rejected by the property meant to catch it, every "limit"
// (a stronger property the code is documented not to keep) must be refuted,
// and no finding may have gone stale. Skipped (not failed) where spin or a C
// compiler is missing: model/check exits 77 then.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "support/run_script.h"

namespace {

using cpuhp::testing_support::run_source_tree_script;
using cpuhp::testing_support::RunResult;

TEST(ModelCheck, EveryModelVerifiesAndEveryMutantIsCaught) {
  const RunResult r = run_source_tree_script("CPUHP_MODEL_CHECK", "model/check");
  if (r.exit_code == 77) GTEST_SKIP() << r.output;
  EXPECT_EQ(r.exit_code, 0) << "model/check failed:\n" << r.output;
  // Something ran: one PASS line at least per model.
  for (const char* model : {"PASS model percpu_rwsem ", "PASS model registration ",
                            "PASS model rcu_online_mask "})
    EXPECT_NE(r.output.find(model), std::string::npos)
        << "missing \"" << model << "\" in:\n"
        << r.output;
  std::printf("%s", r.output.c_str());
}

}  // namespace
