// Unit tests for cpuhp::TraceRecorder (include/cpuhp/trace.h): what it records
// from a Domain, and that write_json() is valid Chrome trace-event JSON with
// the promised tracks, slices and instants. The JSON is checked with a small
// strict parser (RFC 8259) below, not by searching for substrings.
#include "cpuhp/trace.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cpuhp/domain.h"
#include "support/json.h"

namespace cpuhp {
namespace {

using testing_support::Json;
using testing_support::JsonParser;

// ------------------------------------------------------------ helpers

// The recorder's JSON, parsed; fails the test if it is not valid.
Json trace_of(const TraceRecorder& rec) {
  std::ostringstream os;
  rec.write_json(os);
  Json doc;
  std::string error;
  EXPECT_TRUE(JsonParser::parse(os.str(), doc, error)) << error << "\n" << os.str();
  return doc;
}

const std::vector<Json>& events_of(const Json& doc) {
  static const std::vector<Json> kNone;
  const Json* ev = doc.get("traceEvents");
  EXPECT_TRUE(ev != nullptr && ev->kind == Json::kArray) << "no traceEvents array";
  return ev != nullptr && ev->kind == Json::kArray ? ev->array : kNone;
}

// Names of the tracks ("thread_name" metadata), by tid.
std::map<int, std::string> track_names(const std::vector<Json>& events) {
  std::map<int, std::string> names;
  for (const Json& e : events)
    if (e.str("ph") == "M" && e.str("name") == "thread_name" && e.get("args") != nullptr)
      names[static_cast<int>(e.num("tid"))] = e.get("args")->str("name");
  return names;
}

std::vector<const Json*> with_phase(const std::vector<Json>& events, const char* ph) {
  std::vector<const Json*> out;
  for (const Json& e : events)
    if (e.str("ph") == ph) out.push_back(&e);
  return out;
}

// Every event has the fields its phase needs, with sane values.
void expect_well_formed(const std::vector<Json>& events) {
  for (const Json& e : events) {
    const std::string ph = e.str("ph");
    ASSERT_TRUE(ph == "X" || ph == "i" || ph == "M") << "phase '" << ph << "'";
    EXPECT_FALSE(e.str("name").empty());
    EXPECT_EQ(e.num("pid"), 1);
    EXPECT_GE(e.num("tid"), 0);
    if (ph == "X") {
      EXPECT_GE(e.num("ts"), 0) << e.str("name");
      EXPECT_GE(e.num("dur"), 0) << e.str("name");
    }
    if (ph == "i") {
      EXPECT_GE(e.num("ts"), 0);
      EXPECT_EQ(e.str("s"), "t");
    }
  }
}

int noop(unsigned) { return 0; }

// ------------------------------------------------------------ tests

TEST(TraceRecorder, EmptyRecorderWritesValidJson) {
  TraceRecorder rec;
  const Json doc = trace_of(rec);
  const auto& events = events_of(doc);
  expect_well_formed(events);
  EXPECT_TRUE(with_phase(events, "X").empty());
  EXPECT_EQ(track_names(events).at(0), "writers");
  EXPECT_EQ(rec.callback_events(), 0u);
}

TEST(TraceRecorder, RecordsEveryCallbackOfATransitionOnTheCpusTrack) {
  Domain d(4, 2);
  TraceRecorder rec;
  rec.attach(d);
  auto prep = d.setup_state(Section::kPrepare, "test:prep", noop, noop);
  auto online = d.setup_state(Section::kOnline, "test:online", noop, noop);
  ASSERT_TRUE(prep.ok() && online.ok());
  const std::size_t after_setup = rec.callback_events();
  EXPECT_EQ(after_setup, 4u);  // each state's startup on CPUs 0 and 1

  ASSERT_TRUE(d.up(3).ok());
  ASSERT_TRUE(d.down(3).ok());
  rec.detach(d);
  ASSERT_TRUE(d.up(2).ok());  // detached: not recorded
  // up: the six startups (the notifier layer's two states included); down:
  // the six teardowns.
  EXPECT_EQ(rec.callback_events(), after_setup + 12);

  const Json doc = trace_of(rec);
  const auto& events = events_of(doc);
  expect_well_formed(events);
  const auto names = track_names(events);
  EXPECT_EQ(names.at(0), "writers");
  EXPECT_EQ(names.at(4), "CPU 3");
  EXPECT_EQ(names.count(3), 0u) << "CPU 2 moved while detached";

  std::vector<std::pair<std::string, std::string>> cpu3;  // (cat, name) in order
  for (const Json* e : with_phase(events, "X"))
    if (e->num("tid") == 4) cpu3.emplace_back(e->str("cat"), e->str("name"));
  // Startups in ascending state order, teardowns in descending order (the
  // notifier layer's two built-in states included, wherever they sit).
  std::vector<std::pair<StateId, std::string>> by_id = {
      {kStateNotifyPrepare, "notify:prepare"},
      {*prep, "test:prep"},
      {kStateBringup, "bringup"},
      {*online, "test:online"},
      {kStateNotifyOnline, "notify:online"},
      {kStateActive, "active"}};
  std::sort(by_id.begin(), by_id.end());
  std::vector<std::pair<std::string, std::string>> want;
  for (const auto& [id, name] : by_id) want.emplace_back("startup", name);
  for (auto it = by_id.rbegin(); it != by_id.rend(); ++it)
    want.emplace_back("teardown", it->second);
  EXPECT_EQ(cpu3, want);

  // args carry the CPU and the state id.
  for (const Json* e : with_phase(events, "X")) {
    if (e->num("tid") != 4) continue;
    const Json* args = e->get("args");
    ASSERT_NE(args, nullptr);
    EXPECT_EQ(args->num("cpu"), 3);
    EXPECT_EQ(args->num("result"), 0);
    if (e->str("name") == "test:prep") EXPECT_EQ(args->num("state"), *prep);
  }
  ASSERT_TRUE(d.remove_state(*online).ok());
  ASSERT_TRUE(d.remove_state(*prep).ok());
}

// A multi-instance state runs once per (CPU, instance): each run is its own
// event, and args name the instance.
TEST(TraceRecorder, MultiInstanceCallbacksNameTheirInstance) {
  Domain d(2, 2);
  TraceRecorder rec;
  rec.attach(d);
  auto id = d.setup_multi_state(
      Section::kOnline, "test:multi", [](unsigned, void*) { return 0; }, nullptr);
  ASSERT_TRUE(id.ok());
  int a = 0, b = 0;
  ASSERT_TRUE(d.add_instance(*id, &a).ok());
  ASSERT_TRUE(d.add_instance(*id, &b).ok());
  const std::size_t before = rec.callback_events();
  ASSERT_TRUE(d.down(1).ok());
  ASSERT_TRUE(d.up(1).ok());
  rec.detach(d);
  std::vector<std::string> instances;  // of CPU 1's test:multi startups, in order
  const Json doc = trace_of(rec);
  for (const Json* e : with_phase(events_of(doc), "X"))
    if (e->str("name") == "test:multi" && e->num("tid") == 2 &&
        e->str("cat") == "startup")
      instances.push_back(e->get("args")->str("instance"));
  std::ostringstream pa, pb;
  pa << static_cast<const void*>(&a);
  pb << static_cast<const void*>(&b);
  // Once each when added, then once each when CPU 1 came back up.
  EXPECT_EQ(instances,
            (std::vector<std::string>{pa.str(), pb.str(), pa.str(), pb.str()}));
  EXPECT_GT(rec.callback_events(), before);
  ASSERT_TRUE(d.remove_instance(*id, &a).ok());
  ASSERT_TRUE(d.remove_instance(*id, &b).ok());
  ASSERT_TRUE(d.remove_state(*id).ok());
}

TEST(TraceRecorder, FailuresAndRollbacksGetInstantEvents) {
  Domain d(4, 2);
  TraceRecorder rec;
  rec.attach(d);
  auto prep = d.setup_state(Section::kPrepare, "test:prep", noop, noop);
  auto online = d.setup_state(Section::kOnline, "test:online", noop, noop);
  ASSERT_TRUE(prep.ok() && online.ok());
  rec.clear();

  ASSERT_TRUE(d.inject_failure(2, *online).ok());
  const Status s = d.up(2);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Errc::kCallbackFailed);
  rec.detach(d);

  const Json doc = trace_of(rec);
  const auto& events = events_of(doc);
  expect_well_formed(events);
  std::vector<const Json*> failures, rollbacks, rollback_slices;
  for (const Json* e : with_phase(events, "i")) {
    EXPECT_EQ(e->num("tid"), 3);  // CPU 2's track
    if (e->str("cat") == "failure") failures.push_back(e);
    if (e->str("cat") == "rollback") rollbacks.push_back(e);
  }
  for (const Json* e : with_phase(events, "X"))
    if (e->str("cat") == "rollback") rollback_slices.push_back(e);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(failures[0]->str("name").find("test:online"), std::string::npos);
  EXPECT_EQ(failures[0]->get("args")->num("result"), -EIO);
  // One instant for the rollback run, one slice per state rolled back: the
  // states below test:online, in descending order.
  std::vector<std::pair<StateId, std::string>> below = {
      {kStateNotifyPrepare, "notify:prepare"},
      {*prep, "test:prep"},
      {kStateBringup, "bringup"}};
  std::sort(below.rbegin(), below.rend());
  ASSERT_EQ(rollbacks.size(), 1u);
  ASSERT_EQ(rollback_slices.size(), below.size());
  for (std::size_t i = 0; i < below.size(); ++i)
    EXPECT_EQ(rollback_slices[i]->str("name"), below[i].second) << i;
  EXPECT_EQ(rollbacks[0]->num("ts"), rollback_slices[0]->num("ts"));
  ASSERT_TRUE(d.remove_state(*online).ok());
  ASSERT_TRUE(d.remove_state(*prep).ok());
}

TEST(TraceRecorder, OperationsGoOnTheWritersTrack) {
  Domain d(4, 2);
  TraceRecorder rec;
  rec.attach(d);
  long long t0 = TraceRecorder::now_ns();
  ASSERT_TRUE(d.up(2).ok());
  rec.record_operation("up CPU 2", 2, t0, TraceRecorder::now_ns());
  t0 = TraceRecorder::now_ns();
  const Status s = d.down(7);
  ASSERT_FALSE(s.ok());
  rec.record_operation("down CPU 7", 7, t0, TraceRecorder::now_ns(), s.error().message());
  rec.record_instant("mark \"here\"", -1, TraceRecorder::now_ns());
  rec.detach(d);
  EXPECT_EQ(rec.operations(), 2u);

  const Json doc = trace_of(rec);
  const auto& events = events_of(doc);
  expect_well_formed(events);
  std::vector<const Json*> ops, failed, marks;
  for (const Json& e : events) {
    if (e.num("tid") != 0) continue;
    if (e.str("cat") == "operation") ops.push_back(&e);
    if (e.str("cat") == "failure") failed.push_back(&e);
    if (e.str("cat") == "mark") marks.push_back(&e);
  }
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0]->str("name"), "up CPU 2");
  EXPECT_EQ(ops[0]->get("args")->get("ok")->boolean, true);
  EXPECT_EQ(ops[1]->get("args")->get("ok")->boolean, false);
  EXPECT_EQ(ops[1]->get("args")->str("error"), s.error().message());
  ASSERT_EQ(failed.size(), 1u);
  ASSERT_EQ(marks.size(), 1u);
  EXPECT_EQ(marks[0]->str("name"), "mark \"here\"");
  // The up's callbacks lie inside its operation slice.
  const double op_begin = ops[0]->num("ts"), op_end = op_begin + ops[0]->num("dur");
  for (const Json& e : events)
    if (e.str("ph") == "X" && e.num("tid") == 3) {
      EXPECT_GE(e.num("ts"), op_begin);
      EXPECT_LE(e.num("ts") + e.num("dur"), op_end + 0.001);
    }
}

TEST(TraceRecorder, InfersTheWritersTrackWhenNoOperationWasRecorded) {
  Domain d(4, 2);
  TraceRecorder rec;
  rec.attach(d);
  auto prep = d.setup_state_nocalls(Section::kPrepare, "test:prep", noop, noop);
  ASSERT_TRUE(prep.ok());
  ASSERT_TRUE(d.up(2).ok());
  ASSERT_TRUE(d.up(3).ok());
  ASSERT_TRUE(d.down(3).ok());
  ASSERT_TRUE(d.inject_failure(3, *prep).ok());
  ASSERT_FALSE(d.up(3).ok());  // fails at test:prep
  ASSERT_TRUE(d.up(3).ok());
  ASSERT_TRUE(d.inject_failure(3, kStateNotifyOnline).ok());
  ASSERT_FALSE(d.down(3).ok());  // vetoed: "active" is started again (rollback)
  ASSERT_TRUE(d.down(3).ok());
  rec.detach(d);

  const Json doc = trace_of(rec);
  std::vector<std::string> slices;
  for (const Json& e : events_of(doc))
    if (e.str("ph") == "X" && e.num("tid") == 0) slices.push_back(e.str("name"));
  const std::vector<std::string> want = {"up CPU 2",  "up CPU 3", "down CPU 3",
                                         "up CPU 3",  "up CPU 3", "down CPU 3",
                                         "down CPU 3"};
  EXPECT_EQ(slices, want);
  ASSERT_TRUE(d.remove_state(*prep).ok());
}

TEST(TraceRecorder, EscapesNamesAndFollowsReusedStateIds) {
  Domain d(2, 1);
  TraceRecorder rec;
  rec.attach(d);
  const std::string odd = "odd \"name\"\\ with\ttab\nand newline \x01";
  auto a = d.setup_state(Section::kOnline, odd, noop, noop);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(d.remove_state(*a).ok());
  auto b = d.setup_state(Section::kOnline, "second", noop, noop);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b) << "expected the dynamic slot to be reused";
  rec.detach(d);

  // Only CPU 0 is online: the startup and teardown of `odd`, then the
  // startup of "second" at the same id. (\x01 round-trips as \u0001.)
  const Json doc = trace_of(rec);
  std::vector<std::string> names;
  for (const Json& e : events_of(doc))
    if (e.str("ph") == "X" && e.num("tid") == 1) names.push_back(e.str("name"));
  const std::vector<std::string> want = {odd, odd, "second"};
  EXPECT_EQ(names, want);
  ASSERT_TRUE(d.remove_state(*b).ok());
}

TEST(TraceRecorder, StopsAtMaxEventsAndCountsTheRest) {
  TraceRecorder rec(TraceRecorder::Options{5});
  Domain d(8, 1);
  rec.attach(d);
  // Four callbacks per up: notify:prepare, bringup, notify:online, active.
  for (unsigned cpu = 1; cpu < 8; ++cpu) ASSERT_TRUE(d.up(cpu).ok());
  rec.detach(d);
  EXPECT_EQ(rec.callback_events(), 5u);
  EXPECT_EQ(rec.dropped(), 7u * 4u - 5u);
  const Json doc = trace_of(rec);
  ASSERT_NE(doc.get("otherData"), nullptr);
  EXPECT_EQ(doc.get("otherData")->num("dropped"), 7 * 4 - 5);
}

TEST(TraceRecorder, WriteFileReportsTheFileAndWritesValidJson) {
  TraceRecorder rec;
  rec.record_operation("op", -1, 1000, 2000);
  const Status bad = rec.write_file("/nonexistent-dir/trace.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Errc::kSystem);
  EXPECT_NE(bad.error().message().find("/nonexistent-dir/trace.json"), std::string::npos);

  const std::string path = testing::TempDir() + "/cpuhp_trace_test.json";
  ASSERT_TRUE(rec.write_file(path).ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  Json doc;
  std::string error;
  ASSERT_TRUE(JsonParser::parse(text.str(), doc, error)) << error;
  EXPECT_EQ(events_of(doc).size(), 4u);  // 3 metadata + the operation
  std::remove(path.c_str());
}

TEST(TraceRecorder, RecordsFromManyThreadsWhileWriting) {
  TraceRecorder rec;
  Domain d(16, 1);
  rec.attach(d);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) {
      std::ostringstream os;
      rec.write_json(os);
    }
  });
  std::vector<std::thread> others;
  for (int t = 0; t < 2; ++t)
    others.emplace_back([&rec, t] {
      for (int i = 0; i < 200; ++i)
        rec.record_instant("tick", t, TraceRecorder::now_ns());
    });
  for (int round = 0; round < 20; ++round)
    for (unsigned cpu = 1; cpu < 16; ++cpu) {
      ASSERT_TRUE(d.up(cpu).ok());
      ASSERT_TRUE(d.down(cpu).ok());
    }
  for (auto& t : others) t.join();
  stop.store(true);
  writer.join();
  rec.detach(d);
  EXPECT_EQ(rec.callback_events(), 20u * 15u * 8u);
  const Json doc = trace_of(rec);
  expect_well_formed(events_of(doc));
}

}  // namespace
}  // namespace cpuhp
