// SPDX-License-Identifier: MIT
// TraceRecorder: Domain callbacks to Chrome trace-event JSON.
#include "cpuhp/trace.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <ostream>
#include <set>
#include <utility>

#include "cpuhp/domain.h"
#include "json.h"
#include "strf.h"

namespace cpuhp {

using detail::strf;

namespace {

constexpr std::uint32_t kNoName = std::numeric_limits<std::uint32_t>::max();

using detail::json_string;

// Microseconds since `base`, three decimals (nanosecond resolution).
std::string micros(long long ns, long long base) {
  const long long d = ns - base;
  const long long whole = d / 1000, frac = d % 1000;
  if (d < 0) return strf("-%lld.%03lld", -whole, -frac);
  return strf("%lld.%03lld", whole, frac);
}

int tid_for(int cpu) { return cpu < 0 ? 0 : cpu + 1; }

// Writes the comma-separated elements of the traceEvents array.
class EventWriter {
 public:
  explicit EventWriter(std::ostream& out) : out_(out) {}
  void event(const std::string& body) {
    out_ << (first_ ? "\n" : ",\n") << "{" << body << "}";
    first_ = false;
  }

 private:
  std::ostream& out_;
  bool first_ = true;
};

}  // namespace

TraceRecorder::TraceRecorder() : TraceRecorder(Options{}) {}

TraceRecorder::TraceRecorder(Options options)
    : options_(options), name_by_state_(kNumStates, kNoName) {}

TraceRecorder::~TraceRecorder() = default;

long long TraceRecorder::now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void TraceRecorder::attach(Domain& domain) {
  domain.set_observer([this](const CallbackEvent& e) { record(e); });
}

void TraceRecorder::detach(Domain& domain) { domain.set_observer(nullptr); }

bool TraceRecorder::full_locked() const {
  return callbacks_.size() + operations_.size() + instants_.size() >= options_.max_events;
}

std::uint32_t TraceRecorder::intern_locked(StateId state, const std::string& name) {
  const bool by_id = state >= 0 && state < kNumStates;
  if (by_id) {
    // A state id may be reused under another name: compare before trusting.
    const std::uint32_t have = name_by_state_[static_cast<std::size_t>(state)];
    if (have != kNoName && names_[have] == name) return have;
  }
  std::uint32_t index = kNoName;
  for (std::size_t i = names_.size(); i-- > 0;) {
    if (names_[i] == name) {
      index = static_cast<std::uint32_t>(i);
      break;
    }
  }
  if (index == kNoName) {
    index = static_cast<std::uint32_t>(names_.size());
    names_.push_back(name);
  }
  if (by_id) name_by_state_[static_cast<std::size_t>(state)] = index;
  return index;
}

void TraceRecorder::record(const CallbackEvent& e) {
  detail::MutexLock lock(mutex_);
  if (full_locked()) {
    ++dropped_;
    return;
  }
  static const std::string kUnnamed = "(unnamed state)";
  const std::string& name = e.name != nullptr && !e.name->empty() ? *e.name : kUnnamed;
  callbacks_.push_back(Callback{e.begin_ns, e.end_ns, e.cpu, e.state,
                                intern_locked(e.state, name), e.startup, e.rollback,
                                e.result, e.instance});
}

void TraceRecorder::record_operation(std::string name, int cpu, long long begin_ns,
                                     long long end_ns, std::string error) {
  detail::MutexLock lock(mutex_);
  if (full_locked()) {
    ++dropped_;
    return;
  }
  operations_.push_back(Operation{begin_ns, std::max(begin_ns, end_ns), cpu,
                                  std::move(name), std::move(error)});
}

void TraceRecorder::record_instant(std::string name, int cpu, long long ts_ns) {
  detail::MutexLock lock(mutex_);
  if (full_locked()) {
    ++dropped_;
    return;
  }
  instants_.push_back(Instant{ts_ns, cpu, std::move(name)});
}

std::size_t TraceRecorder::callback_events() const {
  detail::MutexLock lock(mutex_);
  return callbacks_.size();
}

std::size_t TraceRecorder::operations() const {
  detail::MutexLock lock(mutex_);
  return operations_.size();
}

std::size_t TraceRecorder::dropped() const {
  detail::MutexLock lock(mutex_);
  return dropped_;
}

void TraceRecorder::clear() {
  detail::MutexLock lock(mutex_);
  callbacks_.clear();
  operations_.clear();
  instants_.clear();
  dropped_ = 0;
}

void TraceRecorder::write_json(std::ostream& out) const {
  detail::MutexLock lock(mutex_);

  long long base = std::numeric_limits<long long>::max();
  std::set<int> cpus;
  for (const Callback& c : callbacks_) {
    base = std::min(base, c.begin_ns);
    cpus.insert(static_cast<int>(c.cpu));
  }
  for (const Operation& o : operations_) {
    base = std::min(base, o.begin_ns);
    if (o.cpu >= 0) cpus.insert(o.cpu);
  }
  for (const Instant& i : instants_) {
    base = std::min(base, i.ts_ns);
    if (i.cpu >= 0) cpus.insert(i.cpu);
  }
  if (base == std::numeric_limits<long long>::max()) base = 0;

  out << "{\"traceEvents\":[";
  EventWriter w(out);

  // ---- metadata: name and order the tracks
  w.event(
      R"("name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"cpuhp domain"})");
  w.event(R"("name":"thread_name","ph":"M","pid":1,"tid":0,"args":{"name":"writers"})");
  w.event(
      R"("name":"thread_sort_index","ph":"M","pid":1,"tid":0,"args":{"sort_index":0})");
  for (const int cpu : cpus) {
    w.event(
        strf(R"("name":"thread_name","ph":"M","pid":1,"tid":%d,"args":{"name":"CPU %d"})",
             tid_for(cpu), cpu));
    w.event(strf(
        R"("name":"thread_sort_index","ph":"M","pid":1,"tid":%d,"args":{"sort_index":%d})",
        tid_for(cpu), tid_for(cpu)));
  }

  // ---- callbacks: one slice each on the CPU's track, instants for failures
  // and for the start of each rollback run
  std::set<unsigned> in_rollback;
  for (const Callback& c : callbacks_) {
    const std::string& name = names_[c.name];
    const char* cat = c.rollback ? "rollback" : c.startup ? "startup" : "teardown";
    const int tid = tid_for(static_cast<int>(c.cpu));
    if (c.rollback && in_rollback.insert(c.cpu).second)
      w.event(strf(R"("name":"rollback","cat":"rollback","ph":"i","s":"t","ts":%s,)"
                   R"("pid":1,"tid":%d,"args":{"cpu":%u,"first_state":%s})",
                   micros(c.begin_ns, base).c_str(), tid, c.cpu,
                   json_string(name).c_str()));
    if (!c.rollback) in_rollback.erase(c.cpu);
    w.event(strf(
        R"("name":%s,"cat":"%s","ph":"X","ts":%s,"dur":%s,"pid":1,"tid":%d,)"
        R"("args":{"cpu":%u,"state":%d,"direction":"%s","result":%d%s})",
        json_string(name).c_str(), cat, micros(c.begin_ns, base).c_str(),
        micros(std::max(c.end_ns, c.begin_ns), c.begin_ns).c_str(), tid, c.cpu, c.state,
        c.startup ? "startup" : "teardown", c.result,
        c.instance != nullptr ? strf(R"(,"instance":"%p")", c.instance).c_str() : ""));
    if (c.result != 0)
      w.event(strf(R"("name":%s,"cat":"failure","ph":"i","s":"t","ts":%s,"pid":1,)"
                   R"("tid":%d,"args":{"cpu":%u,"state":%d,"result":%d,"error":%s})",
                   json_string(strf("failed: %s %s", name.c_str(),
                                    c.startup ? "startup" : "teardown"))
                       .c_str(),
                   micros(c.end_ns, base).c_str(), tid, c.cpu, c.state, c.result,
                   json_string(std::strerror(-c.result)).c_str()));
  }

  // ---- the writers track
  for (const Operation& o : operations_) {
    w.event(strf(R"("name":%s,"cat":"operation","ph":"X","ts":%s,"dur":%s,"pid":1,)"
                 R"("tid":0,"args":{"cpu":%d,"ok":%s%s%s})",
                 json_string(o.name).c_str(), micros(o.begin_ns, base).c_str(),
                 micros(o.end_ns, o.begin_ns).c_str(), o.cpu,
                 o.error.empty() ? "true" : "false", o.error.empty() ? "" : ",\"error\":",
                 o.error.empty() ? "" : json_string(o.error).c_str()));
    if (!o.error.empty())
      w.event(strf(R"("name":%s,"cat":"failure","ph":"i","s":"t","ts":%s,"pid":1,)"
                   R"("tid":0,"args":{"cpu":%d,"error":%s})",
                   json_string("failed: " + o.name).c_str(),
                   micros(o.end_ns, base).c_str(), o.cpu, json_string(o.error).c_str()));
  }
  if (operations_.empty()) {
    // Inferred: runs of consecutive callbacks on one CPU in one direction. A
    // run ends after its rollback callbacks, and after a failed startup (which
    // always aborts the up; a failed teardown aborts a down only if it was a
    // veto, and then rollback callbacks follow).
    auto ends_run = [](const Callback& c) {
      return c.rollback || (c.startup && c.result != 0);
    };
    std::size_t i = 0;
    while (i < callbacks_.size()) {
      const Callback& first = callbacks_[i];
      long long end = first.end_ns;
      bool rolled_back = first.rollback, failed = first.result != 0;
      bool ending = ends_run(first);
      std::size_t j = i + 1;
      for (; j < callbacks_.size(); ++j) {
        const Callback& c = callbacks_[j];
        if (c.cpu != first.cpu) break;
        if (!c.rollback && (c.startup != first.startup || ending)) break;
        rolled_back = rolled_back || c.rollback;
        failed = failed || c.result != 0;
        ending = ending || ends_run(c);
        end = std::max(end, c.end_ns);
      }
      w.event(strf(
          R"("name":"%s CPU %u","cat":"operation","ph":"X","ts":%s,"dur":%s,)"
          R"("pid":1,"tid":0,"args":{"cpu":%u,"callbacks":%zu,"inferred":true,)"
          R"("failed":%s,"rolled_back":%s})",
          first.startup ? "up" : "down", first.cpu, micros(first.begin_ns, base).c_str(),
          micros(std::max(end, first.begin_ns), first.begin_ns).c_str(), first.cpu, j - i,
          failed ? "true" : "false", rolled_back ? "true" : "false"));
      i = j;
    }
  }

  // ---- program-recorded instants
  for (const Instant& in : instants_)
    w.event(strf(R"("name":%s,"cat":"mark","ph":"i","s":"t","ts":%s,"pid":1,"tid":%d)",
                 json_string(in.name).c_str(), micros(in.ts_ns, base).c_str(),
                 tid_for(in.cpu)));

  out << "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"generator\":\"cpuhp "
         "TraceRecorder\",\"callbacks\":"
      << callbacks_.size() << ",\"operations\":" << operations_.size()
      << ",\"dropped\":" << dropped_ << "}}\n";
}

Status TraceRecorder::write_file(const std::string& path) const {
  std::ofstream file(path, std::ios::out | std::ios::trunc);
  if (!file)
    return Error(Errc::kSystem, strf("cannot open trace file '%s' for writing: %s",
                                     path.c_str(), std::strerror(errno)));
  write_json(file);
  file.flush();
  if (!file)
    return Error(Errc::kSystem, strf("writing trace file '%s' failed: %s", path.c_str(),
                                     std::strerror(errno)));
  return {};
}

}  // namespace cpuhp
