// cpuhp trace: runs a scenario (the demo's by default: a per-CPU counter, a
// 2014-style notifier, a subsystem registered and removed mid-run) under a
// TraceRecorder, and writes Chrome trace-event JSON that Perfetto UI and
// chrome://tracing open: one track per CPU with every callback as a slice,
// a "writers" track with one slice per operation, instants for failures and
// rollbacks.
#include "trace_cmd.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cpuhp/trace.h"
#include "scenario.h"

namespace cpuhp::tool {
namespace {

// The "minimal" scenario: one PREPARE and one ONLINE state that do nothing.
Status install_minimal(Domain& d, std::vector<StateId>& ids) {
  auto noop = [](unsigned) { return 0; };
  auto prep = d.setup_state(Section::kPrepare, "minimal:prepare", noop, noop);
  if (!prep.ok()) return prep.error();
  ids.push_back(*prep);
  auto online = d.setup_state(Section::kOnline, "minimal:online", noop, noop);
  if (!online.ok()) return online.error();
  ids.push_back(*online);
  return {};
}

}  // namespace

int run_trace(const TraceOptions& o) {
  const bool demo = o.scenario == "demo";
  const unsigned online = o.online != 0 ? o.online : std::max(1u, o.cpus * 3 / 4);
  TraceRecorder rec;
  Scenario sc(o.cpus, online);  // after rec: its destructor's teardowns are not traced
  rec.attach(sc.domain);

  std::vector<StateId> injectable_up = {kStateNotifyPrepare};
  std::vector<StateId> minimal_ids;
  long long t0 = TraceRecorder::now_ns();
  Status installed = demo ? sc.install() : install_minimal(sc.domain, minimal_ids);
  rec.record_operation(demo ? "install demo scenario (demo:counter, notifier)"
                            : "install minimal scenario",
                       -1, t0, TraceRecorder::now_ns(),
                       installed ? std::string() : installed.error().message());
  if (!installed) {
    rec.detach(sc.domain);
    std::fprintf(stderr, "cpuhp trace: %s\n", installed.error().message().c_str());
    return 1;
  }
  if (demo) {
    injectable_up.push_back(sc.counter_state);
  } else {
    injectable_up.insert(injectable_up.end(), minimal_ids.begin(), minimal_ids.end());
  }

  std::mt19937 rng(o.seed);
  std::uniform_real_distribution<double> coin(0, 1);
  std::vector<bool> late_up(o.cpus);
  StateId late = -1;
  unsigned ok = 0, failed = 0;
  for (unsigned i = 0; i < o.transitions; ++i) {
    if (demo && i == o.transitions / 3) {
      // A subsystem arrives mid-run: register_begin() makes "initialise the
      // online CPUs, then install" one step.
      t0 = TraceRecorder::now_ns();
      std::string error;
      auto scope = sc.domain.register_begin();
      if (!scope.ok()) {
        error = scope.error().message();
      } else {
        auto id = scope->setup_state(
            Section::kOnline, "demo:late",
            [&late_up](unsigned cpu) {
              late_up[cpu] = true;
              return 0;
            },
            [&late_up](unsigned cpu) {
              late_up[cpu] = false;
              return 0;
            });
        if (id.ok()) {
          late = *id;
        } else {
          error = id.error().message();
        }
        scope->done();
      }
      rec.record_operation("register_begin + setup_state demo:late", -1, t0,
                           TraceRecorder::now_ns(), error);
    }
    if (late >= 0 && i == 2 * o.transitions / 3) {
      t0 = TraceRecorder::now_ns();
      Status s = sc.domain.remove_state(late);
      rec.record_operation("remove_state demo:late", -1, t0, TraceRecorder::now_ns(),
                           s ? std::string() : s.error().message());
      late = -1;
    }

    const unsigned cpu = static_cast<unsigned>(rng() % o.cpus);
    const bool going_up = !sc.domain.cpu_online(cpu);
    if (coin(rng) < o.failure_rate) {
      const StateId state =
          going_up ? injectable_up[rng() % injectable_up.size()] : kStateNotifyOnline;
      if (Status s = sc.domain.inject_failure(cpu, state); s)
        rec.record_instant("inject_failure state " + std::to_string(state),
                           static_cast<int>(cpu), TraceRecorder::now_ns());
    }
    t0 = TraceRecorder::now_ns();
    Status s = going_up ? sc.domain.up(cpu) : sc.domain.down(cpu);
    rec.record_operation((going_up ? "up CPU " : "down CPU ") + std::to_string(cpu),
                         static_cast<int>(cpu), t0, TraceRecorder::now_ns(),
                         s ? std::string() : s.error().message());
    (s ? ok : failed)++;
  }
  if (late >= 0) (void)sc.domain.remove_state(late);
  rec.detach(sc.domain);

  if (Status s = rec.write_file(o.out); !s) {
    std::fprintf(stderr, "cpuhp trace: %s\n", s.error().message().c_str());
    return 1;
  }
  std::printf(
      "cpuhp trace: %s scenario, %u CPUs: %u transitions, %u failed or refused; %zu "
      "callback events, %zu operations written to %s\n"
      "  open it in https://ui.perfetto.dev or chrome://tracing\n",
      o.scenario.c_str(), o.cpus, ok, failed, rec.callback_events(), rec.operations(),
      o.out.c_str());
  return 0;
}

}  // namespace cpuhp::tool
