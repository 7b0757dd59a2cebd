// Unit tests for the state machine of cpuhp::Domain (include/cpuhp/states.h,
// the state half of include/cpuhp/domain.h), checked against a recorded
// trace: every callback invocation is recorded twice, by the callbacks
// themselves (with what they saw: the CPU's online and active bits) and by
// Domain::set_observer (with the rollback flag and the result).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cpuhp/domain.h"
#include "support/status_matchers.h"

namespace cpuhp {
namespace {

using testing_support::Fails;
using testing_support::state_of;
using testing_support::Succeeds;

using namespace std::chrono_literals;

// ------------------------------------------------------------------ helpers

std::string masks(const Domain& d) {
  std::string s = "present=" + d.present().to_string() +
                  " online=" + d.online().to_string() +
                  " active=" + d.active().to_string() + " states=";
  for (unsigned cpu = 0; cpu < d.capacity(); ++cpu)
    s += (cpu ? "," : "") + std::to_string(state_of(d, cpu));
  return s;
}

// One callback invocation as the observer saw it.
struct Ev {
  unsigned cpu;
  StateId state;
  bool startup;
  bool rollback = false;
  int result = 0;
  bool operator==(const Ev&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Ev& e) {
  os << "{cpu " << e.cpu << ", " << e.state << (e.startup ? " up" : " down");
  if (e.rollback) os << " rollback";
  if (e.result != 0) os << " rc=" << e.result;
  return os << "}";
}

// Shorthands for expected traces.
Ev up(unsigned cpu, StateId s, int rc = 0) { return Ev{cpu, s, true, false, rc}; }
Ev dn(unsigned cpu, StateId s, int rc = 0) { return Ev{cpu, s, false, false, rc}; }
Ev undo(unsigned cpu, StateId s) { return Ev{cpu, s, false, true, 0}; }

// One invocation as a callback saw it.
struct Seen {
  std::string state;
  unsigned cpu;
  bool startup;
  bool online;  // d.cpu_online(cpu) during the call
  bool active;
  bool operator==(const Seen&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
  return os << "{" << s.state << " cpu " << s.cpu << (s.startup ? " up" : " down")
            << (s.online ? " online" : "") << (s.active ? " active" : "") << "}";
}

// Records the observer trace and the callbacks' own view. Callbacks made by
// cb() can be told to fail (error code or exception) on a given CPU.
class Recorder {
 public:
  explicit Recorder(Domain& d) : d_(d) {
    d.set_observer([this](const CallbackEvent& e) {
      EXPECT_NE(e.name, nullptr);
      EXPECT_LE(e.begin_ns, e.end_ns);
      events.push_back(Ev{e.cpu, e.state, e.startup, e.rollback, e.result});
    });
  }
  ~Recorder() { d_.set_observer(nullptr); }

  // How a callback made by cb() misbehaves.
  struct Fault {
    std::string state;
    unsigned cpu;
    bool startup;
    int rc;                 // returned if nonzero
    std::string throw_msg;  // thrown (std::runtime_error) if not empty
  };

  StateCallback cb(const std::string& name, bool startup) {
    return [this, name, startup](unsigned cpu) -> int {
      seen.push_back(Seen{name, cpu, startup, d_.cpu_online(cpu), d_.active().test(cpu)});
      for (const Fault& f : faults) {
        if (f.state == name && f.cpu == cpu && f.startup == startup) {
          if (!f.throw_msg.empty()) throw std::runtime_error(f.throw_msg);
          return f.rc;
        }
      }
      return 0;
    };
  }
  Result<StateId> setup(Section section, const std::string& name) {
    return d_.setup_state(section, name, cb(name, true), cb(name, false));
  }
  Result<StateId> setup_at(StateId id, const std::string& name) {
    return d_.setup_state_at(id, name, cb(name, true), cb(name, false));
  }
  void clear() {
    events.clear();
    seen.clear();
  }
  // Observer events of `cpu`.
  std::vector<Ev> of(unsigned cpu) const {
    std::vector<Ev> out;
    for (const Ev& e : events)
      if (e.cpu == cpu) out.push_back(e);
    return out;
  }

  std::vector<Ev> events;
  std::vector<Seen> seen;
  std::vector<Fault> faults;

 private:
  Domain& d_;
};

// A free static PREPARE id and a free static ONLINE id, for bring_to().
constexpr StateId kPrepareMid = 10;
constexpr StateId kOnlineMid = 70;

// The states most tests install: two static and three dynamic ones.
struct Table {
  StateId p_static = 5, p_dyn1 = -1, p_dyn2 = -1, o_static = 60, o_dyn = -1;
};

Table install_table(Recorder& rec) {
  Table t;
  EXPECT_TRUE(Succeeds(rec.setup_at(t.p_static, "p:static")));
  Result<StateId> r = rec.setup(Section::kPrepare, "p:dyn1");
  EXPECT_TRUE(Succeeds(r));
  t.p_dyn1 = r ? *r : -1;
  r = rec.setup(Section::kPrepare, "p:dyn2");
  EXPECT_TRUE(Succeeds(r));
  t.p_dyn2 = r ? *r : -1;
  EXPECT_TRUE(Succeeds(rec.setup_at(t.o_static, "o:static")));
  r = rec.setup(Section::kOnline, "o:dyn");
  EXPECT_TRUE(Succeeds(r));
  t.o_dyn = r ? *r : -1;
  EXPECT_EQ(t.p_dyn1, kStatePrepareDyn);
  EXPECT_EQ(t.p_dyn2, kStatePrepareDyn + 1);
  EXPECT_EQ(t.o_dyn, kStateOnlineDyn);
  rec.clear();
  return t;
}

// Every state with callbacks in (from, to], ascending: built-ins and the table.
std::vector<StateId> with_callbacks(const Table& t, StateId from, StateId to) {
  std::vector<StateId> all = {t.p_static,    t.p_dyn1,   t.p_dyn2, kStateNotifyPrepare,
                              kStateBringup, t.o_static, t.o_dyn,  kStateNotifyOnline,
                              kStateActive};
  std::vector<StateId> out;
  for (StateId s : all)
    if (s > from && s <= to) out.push_back(s);
  return out;
}

// ------------------------------------------------------------ order

TEST(StatesOrder, UpAndDownAcrossSections) {
  Domain d(4, 1);
  Recorder rec(d);
  const Table t = install_table(rec);
  ASSERT_TRUE(Succeeds(d.up(2)));
  EXPECT_EQ(rec.events,
            (std::vector<Ev>{up(2, t.p_static), up(2, t.p_dyn1), up(2, t.p_dyn2),
                             up(2, kStateNotifyPrepare), up(2, kStateBringup),
                             up(2, t.o_static), up(2, t.o_dyn), up(2, kStateNotifyOnline),
                             up(2, kStateActive)}));
  // PREPARE startups before the online bit, ONLINE startups after it and
  // before the active bit.
  EXPECT_EQ(rec.seen, (std::vector<Seen>{{"p:static", 2, true, false, false},
                                         {"p:dyn1", 2, true, false, false},
                                         {"p:dyn2", 2, true, false, false},
                                         {"o:static", 2, true, true, false},
                                         {"o:dyn", 2, true, true, false}}));
  rec.clear();
  ASSERT_TRUE(Succeeds(d.down(2)));
  EXPECT_EQ(rec.events,
            (std::vector<Ev>{dn(2, kStateActive), dn(2, kStateNotifyOnline),
                             dn(2, t.o_dyn), dn(2, t.o_static), dn(2, kStateBringup),
                             dn(2, kStateNotifyPrepare), dn(2, t.p_dyn2), dn(2, t.p_dyn1),
                             dn(2, t.p_static)}));
  // ONLINE teardowns with the bit still set (active already clear), PREPARE
  // teardowns after it is clear.
  EXPECT_EQ(rec.seen, (std::vector<Seen>{{"o:dyn", 2, false, true, false},
                                         {"o:static", 2, false, true, false},
                                         {"p:dyn2", 2, false, false, false},
                                         {"p:dyn1", 2, false, false, false},
                                         {"p:static", 2, false, false, false}}));
}

TEST(StatesOrder, BringToMiddleThenUp) {
  Domain d(4, 1);
  Recorder rec(d);
  const Table t = install_table(rec);
  ASSERT_TRUE(Succeeds(d.bring_to(2, t.p_dyn1)));
  EXPECT_EQ(state_of(d, 2), t.p_dyn1);
  EXPECT_EQ(rec.events, (std::vector<Ev>{up(2, t.p_static), up(2, t.p_dyn1)}));
  EXPECT_FALSE(d.cpu_online(2));
  rec.clear();
  ASSERT_TRUE(Succeeds(d.bring_to(2, kOnlineMid)));  // between o:static and o:dyn
  EXPECT_EQ(rec.events, (std::vector<Ev>{up(2, t.p_dyn2), up(2, kStateNotifyPrepare),
                                         up(2, kStateBringup), up(2, t.o_static)}));
  EXPECT_TRUE(d.cpu_online(2));
  EXPECT_FALSE(d.active().test(2));
  rec.clear();
  ASSERT_TRUE(Succeeds(d.up(2)));
  EXPECT_EQ(rec.events, (std::vector<Ev>{up(2, t.o_dyn), up(2, kStateNotifyOnline),
                                         up(2, kStateActive)}));
  rec.clear();
  ASSERT_TRUE(Succeeds(d.bring_to(2, t.o_static)));
  EXPECT_EQ(rec.events, (std::vector<Ev>{dn(2, kStateActive), dn(2, kStateNotifyOnline),
                                         dn(2, t.o_dyn)}));
  rec.clear();
  ASSERT_TRUE(Succeeds(d.bring_to(2, t.p_static)));
  EXPECT_EQ(rec.events, (std::vector<Ev>{dn(2, t.o_static), dn(2, kStateBringup),
                                         dn(2, kStateNotifyPrepare), dn(2, t.p_dyn2),
                                         dn(2, t.p_dyn1)}));
  EXPECT_FALSE(d.cpu_online(2));
  rec.clear();
  ASSERT_TRUE(Succeeds(d.down(2)));
  EXPECT_EQ(rec.events, (std::vector<Ev>{dn(2, t.p_static)}));
}

// Per CPU, every startup is matched by exactly one teardown in reverse order,
// and the states whose startup has run are exactly those up to cpu_state.
TEST(StatesOrder, StartupsAndTeardownsPairPerCpu) {
  constexpr unsigned kCpus = 5;
  Domain d(kCpus, 1);
  Recorder rec(d);
  const Table t = install_table(rec);
  const StateId targets[] = {kStateOffline,
                             kStateNotifyPrepare,
                             3,
                             t.p_static,
                             t.p_dyn1,
                             t.p_dyn2,
                             45,
                             kStateBringup,
                             t.o_static,
                             kOnlineMid,
                             t.o_dyn,
                             kStateNotifyOnline,
                             kStateOnline};
  std::vector<std::vector<StateId>> stack(kCpus);
  stack[0] = with_callbacks(t, kStateOffline, kStateOnline);
  unsigned seed = 7;
  auto rnd = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) & 0x7fff;
  };
  std::size_t consumed = 0;
  for (int i = 0; i < 400; ++i) {
    const unsigned cpu = rnd() % kCpus;
    const StateId target = targets[rnd() % std::size(targets)];
    Status s = d.bring_to(cpu, target);
    if (!s) {
      EXPECT_TRUE(s.error().code() == Errc::kAlreadyInState ||
                  s.error().code() == Errc::kLastCpu)
          << s.error().message();
    }
    for (; consumed < rec.events.size(); ++consumed) {
      const Ev& e = rec.events[consumed];
      ASSERT_FALSE(e.rollback) << e;
      std::vector<StateId>& st = stack[e.cpu];
      if (e.startup) {
        ASSERT_TRUE(st.empty() || st.back() < e.state) << e << " after " << st.back();
        st.push_back(e.state);
      } else {
        ASSERT_FALSE(st.empty()) << "teardown without startup: " << e;
        ASSERT_EQ(st.back(), e.state) << "teardown out of order: " << e;
        st.pop_back();
      }
    }
    for (unsigned c = 0; c < kCpus; ++c)
      ASSERT_EQ(stack[c], with_callbacks(t, kStateOffline, state_of(d, c)))
          << "CPU " << c << " at state " << state_of(d, c) << ", step " << i;
  }
}

// ------------------------------------------------------------ rollback

TEST(StatesRollback, FailingStartupAtSeveralPositions) {
  const char* names[] = {"p:static", "p:dyn1", "p:dyn2", "o:static", "o:dyn"};
  for (bool throws : {false, true}) {
    for (int fail_at = 0; fail_at < 5; ++fail_at) {
      for (StateId start : {kStateOffline, 3, kPrepareMid, kStateBringup, kOnlineMid}) {
        Domain d(4, 2);
        Recorder rec(d);
        const Table t = install_table(rec);
        const StateId ids[] = {t.p_static, t.p_dyn1, t.p_dyn2, t.o_static, t.o_dyn};
        const StateId fail_id = ids[fail_at];
        if (start >= fail_id) continue;
        SCOPED_TRACE(std::string(throws ? "throw" : "error code") + " in " +
                     names[fail_at] + ", CPU 2 starting at state " +
                     std::to_string(start));
        if (start != kStateOffline) ASSERT_TRUE(Succeeds(d.bring_to(2, start)));
        rec.clear();
        rec.faults.push_back({names[fail_at], 2, true, -ENOMEM,
                              throws ? std::string("kaboom") : std::string()});
        const std::string before = masks(d);
        Status s = d.up(2);
        if (throws) {
          EXPECT_TRUE(
              Fails(s, Errc::kCallbackFailed, {"CPU 2", names[fail_at], "kaboom"}));
          if (!s) EXPECT_EQ(s.error().cause(), -ECANCELED);
        } else {
          EXPECT_TRUE(Fails(s, Errc::kCallbackFailed, {"CPU 2", names[fail_at], "-12"}));
          if (!s) EXPECT_EQ(s.error().cause(), -ENOMEM);
        }
        EXPECT_EQ(state_of(d, 2), start);
        EXPECT_EQ(masks(d), before);
        // The startups that ran, the failing one, then the teardowns of those
        // that ran, in reverse, flagged rollback.
        std::vector<Ev> want;
        const std::vector<StateId> ran = with_callbacks(t, start, fail_id - 1);
        for (StateId st : ran) want.push_back(up(2, st));
        want.push_back(up(2, fail_id, throws ? -ECANCELED : -ENOMEM));
        for (auto it = ran.rbegin(); it != ran.rend(); ++it) want.push_back(undo(2, *it));
        EXPECT_EQ(rec.events, want);
        // The CPU goes up fine once the fault is gone, and down again.
        rec.faults.clear();
        rec.clear();
        ASSERT_TRUE(Succeeds(d.up(2)));
        EXPECT_EQ(rec.events.size(), with_callbacks(t, start, kStateOnline).size());
        ASSERT_TRUE(Succeeds(d.down(2)));
      }
    }
  }
}

TEST(StatesRollback, RollbackOfAnUpFromTheOnlineSectionKeepsTheCpuOnline) {
  Domain d(4, 1);
  Recorder rec(d);
  const Table t = install_table(rec);
  ASSERT_TRUE(Succeeds(d.bring_to(3, t.o_static)));
  rec.clear();
  rec.faults.push_back({"o:dyn", 3, true, -EAGAIN, {}});
  EXPECT_TRUE(Fails(d.up(3), Errc::kCallbackFailed, {"CPU 3", "o:dyn"}));
  EXPECT_EQ(state_of(d, 3), t.o_static);
  EXPECT_TRUE(d.cpu_online(3));
  EXPECT_FALSE(d.active().test(3));
  EXPECT_EQ(rec.events, (std::vector<Ev>{up(3, t.o_dyn, -EAGAIN)}));
}

TEST(StatesRollback, InjectedFailureFailsExactlyOnce) {
  Domain d(4, 1);
  Recorder rec(d);
  const Table t = install_table(rec);
  ASSERT_TRUE(Succeeds(d.inject_failure(2, t.p_dyn2)));
  ASSERT_TRUE(Succeeds(d.inject_failure(3, t.o_static)));
  Status s = d.up(2);
  EXPECT_TRUE(Fails(s, Errc::kCallbackFailed, {"CPU 2", "p:dyn2", "inject"}));
  if (!s) EXPECT_EQ(s.error().cause(), -EIO);
  EXPECT_EQ(state_of(d, 2), kStateOffline);
  EXPECT_EQ(rec.events,
            (std::vector<Ev>{up(2, t.p_static), up(2, t.p_dyn1), up(2, t.p_dyn2, -EIO),
                             undo(2, t.p_dyn1), undo(2, t.p_static)}));
  // The injected failure replaces the callback: p:dyn2's startup never ran.
  for (const Seen& seen : rec.seen) EXPECT_NE(seen.state, "p:dyn2") << seen;
  rec.clear();
  ASSERT_TRUE(Succeeds(d.up(2)));  // once only
  EXPECT_EQ(rec.of(2).size(), with_callbacks(t, kStateOffline, kStateOnline).size());
  // CPU 3's injection is untouched by CPU 2 and hits CPU 3 once.
  EXPECT_TRUE(Fails(d.up(3), Errc::kCallbackFailed, {"CPU 3", "o:static"}));
  EXPECT_EQ(state_of(d, 3), kStateOffline);
  EXPECT_FALSE(d.cpu_online(3));
  EXPECT_TRUE(Succeeds(d.up(3)));
}

TEST(StatesRollback, InjectionWaitsForTheNextStartup) {
  Domain d(4, 3);
  Recorder rec(d);
  const Table t = install_table(rec);
  ASSERT_TRUE(Succeeds(d.inject_failure(2, t.o_static)));  // CPU 2 is up: teardown next
  ASSERT_TRUE(Succeeds(d.down(2)));                        // teardowns cannot fail
  EXPECT_TRUE(Fails(d.up(2), Errc::kCallbackFailed, {"CPU 2", "o:static", "inject"}));
  EXPECT_TRUE(Succeeds(d.up(2)));
}

// An injected failure is for state S: once S is removed it must not make an
// unrelated state installed later in the same slot fail.
TEST(StatesRollback, InjectionDoesNotOutliveItsState) {
  Domain d(4, 1);
  Result<StateId> a = d.setup_state(Section::kPrepare, "inj:a", nullptr, nullptr);
  ASSERT_TRUE(Succeeds(a));
  ASSERT_TRUE(Succeeds(d.inject_failure(2, *a)));
  ASSERT_TRUE(Succeeds(d.remove_state(*a)));
  Result<StateId> b = d.setup_state(
      Section::kPrepare, "inj:b", [](unsigned) { return 0; }, nullptr);
  ASSERT_TRUE(Succeeds(b));
  EXPECT_EQ(*b, *a);  // the same slot
  EXPECT_TRUE(Succeeds(d.up(2)))
      << "a failure injected into removed state 'inj:a' hit 'inj:b'";
}

TEST(StatesRollback, ThrowingOrFailingTeardownIsReportedAndDownCompletes) {
  Domain d(4, 3);
  Recorder rec(d);
  const Table t = install_table(rec);
  rec.faults.push_back({"o:dyn", 2, false, 0, "td-boom"});
  rec.faults.push_back({"p:dyn1", 2, false, -EBUSY, {}});
  testing::internal::CaptureStderr();
  Status s = d.down(2);
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(Succeeds(s));
  EXPECT_EQ(state_of(d, 2), kStateOffline);
  EXPECT_FALSE(d.cpu_online(2));
  EXPECT_EQ(rec.events, (std::vector<Ev>{dn(2, kStateActive), dn(2, kStateNotifyOnline),
                                         dn(2, t.o_dyn, -ECANCELED), dn(2, t.o_static),
                                         dn(2, kStateBringup), dn(2, kStateNotifyPrepare),
                                         dn(2, t.p_dyn2), dn(2, t.p_dyn1, -EBUSY),
                                         dn(2, t.p_static)}));
  EXPECT_NE(err.find("CPU 2"), std::string::npos) << err;
  EXPECT_NE(err.find("o:dyn"), std::string::npos) << err;
  EXPECT_NE(err.find("td-boom"), std::string::npos) << err;
  EXPECT_NE(err.find("p:dyn1"), std::string::npos) << err;
  rec.faults.clear();
  EXPECT_TRUE(Succeeds(d.up(2)));
}

// ------------------------------------------------------------ setup_state

TEST(StatesSetup, RunsStartupExactlyOnCpusAtOrPastTheState) {
  Domain d(8, 4);
  ASSERT_TRUE(Succeeds(d.bring_to(4, kOnlineMid)));     // ONLINE section
  ASSERT_TRUE(Succeeds(d.bring_to(5, kPrepareMid)));    // PREPARE section
  ASSERT_TRUE(Succeeds(d.bring_to(6, kStateBringup)));  // exactly at bringup
  Recorder rec(d);                                      // CPU 7 offline
  auto cpus_of = [&rec](const std::string& name, bool startup) {
    std::vector<unsigned> out;
    for (const Seen& s : rec.seen)
      if (s.state == name && s.startup == startup) out.push_back(s.cpu);
    return out;
  };
  using V = std::vector<unsigned>;
  Result<StateId> prep = rec.setup(Section::kPrepare, "s:prep");
  ASSERT_TRUE(Succeeds(prep));
  EXPECT_EQ(cpus_of("s:prep", true), (V{0, 1, 2, 3, 4, 6}));
  Result<StateId> onl = rec.setup(Section::kOnline, "s:online");
  ASSERT_TRUE(Succeeds(onl));
  EXPECT_EQ(*onl, kStateOnlineDyn);
  EXPECT_EQ(cpus_of("s:online", true), (V{0, 1, 2, 3}));  // CPU 4 is at 70 < 80
  ASSERT_TRUE(Succeeds(rec.setup_at(65, "s:65")));
  EXPECT_EQ(cpus_of("s:65", true), (V{0, 1, 2, 3, 4}));
  ASSERT_TRUE(Succeeds(rec.setup_at(kPrepareMid, "s:at10")));  // CPU 5 is exactly at it
  EXPECT_EQ(cpus_of("s:at10", true), (V{0, 1, 2, 3, 4, 5, 6}));
  ASSERT_TRUE(Succeeds(rec.setup_at(kPrepareMid + 1, "s:at11")));
  EXPECT_EQ(cpus_of("s:at11", true), (V{0, 1, 2, 3, 4, 6}));
  for (const Ev& e : rec.events) EXPECT_FALSE(e.rollback) << e;
  EXPECT_TRUE(cpus_of("s:prep", false).empty());

  // CPUs that move later run the new states as usual.
  rec.clear();
  ASSERT_TRUE(Succeeds(d.up(5)));
  EXPECT_EQ(cpus_of("s:at10", true), V{});  // already ran
  EXPECT_EQ(cpus_of("s:at11", true), V{5});
  EXPECT_EQ(cpus_of("s:prep", true), V{5});
  EXPECT_EQ(cpus_of("s:online", true), V{5});

  // remove_state runs the teardown on exactly the CPUs at or past the state.
  rec.clear();
  ASSERT_TRUE(Succeeds(d.remove_state(*onl)));
  V got = cpus_of("s:online", false);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (V{0, 1, 2, 3, 5}));
  ASSERT_TRUE(Succeeds(d.remove_state(*prep)));
  got = cpus_of("s:prep", false);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (V{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(cpus_of("s:prep", true).empty());
  EXPECT_TRUE(Fails(d.find_state("s:prep"), Errc::kNotFound, {"s:prep"}));
  // A removed state is not called any more.
  rec.clear();
  ASSERT_TRUE(Succeeds(d.down(5)));
  EXPECT_TRUE(cpus_of("s:prep", false).empty());
  EXPECT_EQ(cpus_of("s:at10", false), V{5});
}

TEST(StatesSetup, FailureRollsBackAndDoesNotInstall) {
  for (bool throws : {false, true}) {
    SCOPED_TRACE(throws ? "throws" : "error code");
    Domain d(6, 4);
    ASSERT_TRUE(Succeeds(d.bring_to(4, kOnlineMid)));
    Recorder rec(d);
    const std::size_t n_states = d.states().size();
    rec.faults.push_back({"s:fail", 2, true, -ENODEV, throws ? "setup-boom" : ""});
    Result<StateId> r = rec.setup(Section::kPrepare, "s:fail");
    EXPECT_TRUE(
        Fails(r, Errc::kCallbackFailed,
              {"CPU 2", "s:fail", throws ? "setup-boom" : "-19", "not installed"}));
    if (!r) EXPECT_EQ(r.error().cause(), throws ? -ECANCELED : -ENODEV);
    EXPECT_EQ(rec.events,
              (std::vector<Ev>{up(0, kStatePrepareDyn), up(1, kStatePrepareDyn),
                               up(2, kStatePrepareDyn, throws ? -ECANCELED : -ENODEV),
                               undo(1, kStatePrepareDyn), undo(0, kStatePrepareDyn)}));
    EXPECT_TRUE(Fails(d.find_state("s:fail"), Errc::kNotFound, {"s:fail"}));
    EXPECT_EQ(d.states().size(), n_states);
    // Nothing of it runs on a transition; the name and the slot are free.
    rec.clear();
    ASSERT_TRUE(Succeeds(d.up(5)));
    for (const Seen& s : rec.seen) EXPECT_NE(s.state, "s:fail") << s;
    rec.faults.clear();
    rec.clear();
    Result<StateId> again = rec.setup(Section::kPrepare, "s:fail");
    ASSERT_TRUE(Succeeds(again));
    EXPECT_EQ(*again, kStatePrepareDyn);
    EXPECT_EQ(rec.seen.size(), 6u);  // CPUs 0-5
  }
}

TEST(StatesSetup, StaticFailureAtCpuK) {
  Domain d(6, 6);
  Recorder rec(d);
  rec.faults.push_back({"s:static", 4, true, -EINVAL, {}});
  Result<StateId> r = rec.setup_at(kOnlineMid, "s:static");
  EXPECT_TRUE(Fails(r, Errc::kCallbackFailed, {"CPU 4", "s:static"}));
  EXPECT_EQ(rec.events.size(), 5u + 4u);  // 0-4 startups, 3-0 teardowns
  EXPECT_TRUE(Fails(d.find_state("s:static"), Errc::kNotFound));
  rec.faults.clear();
  EXPECT_TRUE(Succeeds(rec.setup_at(kOnlineMid, "s:static")));  // the id is free again
}

TEST(StatesSetup, NocallsVariantsCallNothing) {
  Domain d(4, 2);
  Recorder rec(d);
  Result<StateId> a = d.setup_state_nocalls(Section::kPrepare, "n:a", rec.cb("n:a", true),
                                            rec.cb("n:a", false));
  ASSERT_TRUE(Succeeds(a));
  Result<StateId> b = d.setup_state_at_nocalls(kOnlineMid, "n:b", rec.cb("n:b", true),
                                               rec.cb("n:b", false));
  ASSERT_TRUE(Succeeds(b));
  EXPECT_EQ(*b, kOnlineMid);
  EXPECT_TRUE(rec.events.empty());
  EXPECT_TRUE(rec.seen.empty());
  EXPECT_TRUE(Succeeds(d.find_state("n:a")));
  // Transitions call them.
  ASSERT_TRUE(Succeeds(d.up(3)));
  EXPECT_EQ(rec.seen, (std::vector<Seen>{{"n:a", 3, true, false, false},
                                         {"n:b", 3, true, true, false}}));
  rec.clear();
  ASSERT_TRUE(Succeeds(d.remove_state_nocalls(*a)));
  ASSERT_TRUE(Succeeds(d.remove_state_nocalls(*b)));
  EXPECT_TRUE(rec.seen.empty());
  ASSERT_TRUE(Succeeds(d.down(3)));
  EXPECT_TRUE(rec.seen.empty());
  // A failing startup does not matter to nocalls.
  rec.faults.push_back({"n:c", 0, true, -EIO, {}});
  EXPECT_TRUE(Succeeds(d.setup_state_nocalls(Section::kOnline, "n:c", rec.cb("n:c", true),
                                             rec.cb("n:c", false))));
  EXPECT_TRUE(rec.seen.empty());
}

TEST(StatesSetup, NullCallbacks) {
  Domain d(4, 2);
  Recorder rec(d);
  Result<StateId> id = d.setup_state(Section::kOnline, "null", nullptr, nullptr);
  ASSERT_TRUE(Succeeds(id));
  ASSERT_TRUE(Succeeds(d.up(2)));
  ASSERT_TRUE(Succeeds(d.down(2)));
  for (const Ev& e : rec.events) EXPECT_NE(e.state, *id) << e;
  ASSERT_TRUE(Succeeds(d.remove_state(*id)));
}

// ------------------------------------------------------------ ids and names

TEST(StatesIds, StaticIdRangeChecks) {
  Domain d(4, 2);
  const std::size_t n = d.states().size();
  for (StateId bad :
       {-1, kStateOffline, kStateNotifyPrepare, kStatePrepareDyn, kStatePrepareDynEnd,
        kStateBringup, kStateOnlineDyn, kStateOnlineDynEnd, kStateNotifyOnline,
        kStateActive, kNumStates, 1000}) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(Fails(d.setup_state_at(bad, "bad", nullptr, nullptr),
                      Errc::kInvalidArgument, {std::to_string(bad), "static"}));
    EXPECT_TRUE(Fails(d.setup_state_at_nocalls(bad, "bad", nullptr, nullptr),
                      Errc::kInvalidArgument));
  }
  EXPECT_EQ(d.states().size(), n);
  for (StateId good :
       {kStatePrepareFirst, kStatePrepareLast, kStateOnlineFirst, kStateOnlineLast}) {
    Result<StateId> r =
        d.setup_state_at(good, "good" + std::to_string(good), nullptr, nullptr);
    ASSERT_TRUE(Succeeds(r));
    EXPECT_EQ(*r, good);
  }
  // Occupied.
  EXPECT_TRUE(Fails(
      d.setup_state_at(kStatePrepareFirst, "other", nullptr, nullptr), Errc::kBusy,
      {"good" + std::to_string(kStatePrepareFirst), std::to_string(kStatePrepareFirst)}));
  EXPECT_TRUE(Fails(d.find_state("other"), Errc::kNotFound));
}

TEST(StatesIds, DynamicSlotsExhaustion) {
  Domain d(4, 2);
  const struct {
    Section section;
    StateId first, last;
    const char* word;
  } sections[] = {{Section::kPrepare, kStatePrepareDyn, kStatePrepareDynEnd, "PREPARE"},
                  {Section::kOnline, kStateOnlineDyn, kStateOnlineDynEnd, "ONLINE"}};
  for (const auto& s : sections) {
    SCOPED_TRACE(s.word);
    for (StateId want = s.first; want <= s.last; ++want) {
      Result<StateId> r = d.setup_state(
          s.section, std::string(s.word) + std::to_string(want), nullptr, nullptr);
      ASSERT_TRUE(Succeeds(r));
      EXPECT_EQ(*r, want);
    }
    const std::size_t n = d.states().size();
    EXPECT_TRUE(Fails(d.setup_state(s.section, "one-too-many", nullptr, nullptr),
                      Errc::kBusy, {"dynamic", "slots", s.word, "one-too-many"}));
    EXPECT_TRUE(Fails(d.setup_state_nocalls(s.section, "one-too-many", nullptr, nullptr),
                      Errc::kBusy, {"dynamic"}));
    EXPECT_TRUE(Fails(d.setup_multi_state(s.section, "one-too-many", nullptr, nullptr),
                      Errc::kBusy, {"dynamic"}));
    EXPECT_EQ(d.states().size(), n);
    // A freed slot is handed out again.
    const StateId mid = s.first + 5;
    ASSERT_TRUE(Succeeds(d.remove_state(mid)));
    Result<StateId> r = d.setup_state(s.section, "reuse", nullptr, nullptr);
    ASSERT_TRUE(Succeeds(r));
    EXPECT_EQ(*r, mid);
    ASSERT_TRUE(Succeeds(d.remove_state(mid)));
  }
  // Hotplug still works with a full table.
  EXPECT_TRUE(Succeeds(d.up(3)));
  EXPECT_TRUE(Succeeds(d.down(3)));
}

TEST(StatesIds, DuplicateAndEmptyNames) {
  Domain d(4, 2);
  ASSERT_TRUE(Succeeds(d.setup_state(Section::kPrepare, "dup", nullptr, nullptr)));
  const std::size_t n = d.states().size();
  EXPECT_TRUE(Fails(d.setup_state(Section::kOnline, "dup", nullptr, nullptr), Errc::kBusy,
                    {"dup"}));
  EXPECT_TRUE(Fails(d.setup_state_nocalls(Section::kPrepare, "dup", nullptr, nullptr),
                    Errc::kBusy, {"dup"}));
  EXPECT_TRUE(Fails(d.setup_state_at(7, "dup", nullptr, nullptr), Errc::kBusy, {"dup"}));
  EXPECT_TRUE(Fails(d.setup_multi_state(Section::kOnline, "dup", nullptr, nullptr),
                    Errc::kBusy, {"dup"}));
  for (const char* builtin :
       {"offline", "notify:prepare", "bringup", "notify:online", "active"})
    EXPECT_TRUE(Fails(d.setup_state(Section::kOnline, builtin, nullptr, nullptr),
                      Errc::kBusy, {builtin}));
  EXPECT_TRUE(Fails(d.setup_state(Section::kOnline, "", nullptr, nullptr),
                    Errc::kInvalidArgument));
  EXPECT_EQ(d.states().size(), n);
}

TEST(StatesIds, UnknownIdsAndBuiltinsCannotBeRemoved) {
  Domain d(4, 2);
  Recorder rec(d);
  for (StateId bad : {-1, 40, kStatePrepareFirst, kNumStates, 1000}) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(Fails(d.remove_state(bad), Errc::kNotFound, {std::to_string(bad)}));
    EXPECT_TRUE(
        Fails(d.remove_state_nocalls(bad), Errc::kNotFound, {std::to_string(bad)}));
  }
  const std::vector<std::pair<StateId, const char*>> builtins = {
      {kStateOffline, "offline"},
      {kStateNotifyPrepare, "notify:prepare"},
      {kStateBringup, "bringup"},
      {kStateNotifyOnline, "notify:online"},
      {kStateActive, "active"}};
  for (auto [id, name] : builtins) {
    SCOPED_TRACE(name);
    Status s = d.remove_state(id);
    EXPECT_TRUE(Fails(s, Errc::kInvalidArgument, {name, "built-in"}));
    EXPECT_TRUE(Fails(d.remove_state_nocalls(id), Errc::kInvalidArgument, {name}));
  }
  EXPECT_TRUE(rec.events.empty());  // nothing was torn down
  EXPECT_EQ(d.states().size(), 5u);
  EXPECT_TRUE(Succeeds(d.up(3)));
  EXPECT_TRUE(d.active().test(3));
}

TEST(StatesIds, StatesListsBuiltinsAndInstalledInOrder) {
  Domain d(4, 2);
  auto list = [&d] {
    std::vector<std::string> out;
    for (const StateInfo& s : d.states())
      out.push_back(std::to_string(s.id) + ":" + s.name + (s.builtin ? ":b" : "") +
                    (s.multi_instance ? ":m" : ""));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(list(), (V{"0:offline:b", "49:notify:prepare:b", "50:bringup:b",
                       "120:notify:online:b", "121:active:b"}));
  ASSERT_TRUE(Succeeds(d.setup_state(Section::kOnline, "z-online", nullptr, nullptr)));
  ASSERT_TRUE(Succeeds(d.setup_state(Section::kPrepare, "a-prep", nullptr, nullptr)));
  ASSERT_TRUE(Succeeds(d.setup_state_at(3, "static3", nullptr, nullptr)));
  ASSERT_TRUE(Succeeds(d.setup_multi_state(Section::kOnline, "multi", nullptr, nullptr)));
  ASSERT_TRUE(Succeeds(d.setup_state_at(51, "static51", nullptr, nullptr)));
  EXPECT_EQ(list(), (V{"0:offline:b", "3:static3", "29:a-prep", "49:notify:prepare:b",
                       "50:bringup:b", "51:static51", "80:z-online", "81:multi:m",
                       "120:notify:online:b", "121:active:b"}));
  Result<StateId> f = d.find_state("multi");
  ASSERT_TRUE(Succeeds(f));
  EXPECT_EQ(*f, 81);
  f = d.find_state("bringup");
  ASSERT_TRUE(Succeeds(f));
  EXPECT_EQ(*f, kStateBringup);
  EXPECT_TRUE(Fails(d.find_state("nope"), Errc::kNotFound, {"nope"}));
  ASSERT_TRUE(Succeeds(d.remove_state(kStatePrepareDyn)));
  EXPECT_EQ(list().size(), 9u);
  EXPECT_TRUE(Fails(d.find_state("a-prep"), Errc::kNotFound));
}

// ------------------------------------------------------------ multi-instance

struct InstanceLog {
  struct Call {
    unsigned cpu;
    int instance;
    bool startup;
    bool operator==(const Call&) const = default;
  };
  std::vector<Call> calls;
  std::map<std::pair<unsigned, int>, int>
      live;  // (cpu, instance) -> startups - teardowns
  int fail_instance = -1;
  unsigned fail_cpu = ~0u;
  bool fail_throws = false;
  int throw_teardown_instance = -1;

  InstanceCallback startup() {
    return [this](unsigned cpu, void* p) -> int {
      const int i = *static_cast<int*>(p);
      calls.push_back({cpu, i, true});
      if (i == fail_instance && cpu == fail_cpu) {
        if (fail_throws) throw std::runtime_error("instance-boom");
        return -ENOSPC;
      }
      ++live[{cpu, i}];
      return 0;
    };
  }
  InstanceCallback teardown() {
    return [this](unsigned cpu, void* p) -> int {
      const int i = *static_cast<int*>(p);
      calls.push_back({cpu, i, false});
      --live[{cpu, i}];
      if (i == throw_teardown_instance)
        throw std::runtime_error("instance-teardown-boom");
      return 0;
    };
  }
  // Every (cpu, instance) balanced except those listed as live.
  testing::AssertionResult balanced(const std::set<std::pair<unsigned, int>>& up) const {
    for (auto [key, n] : live) {
      const int want = up.count(key) ? 1 : 0;
      if (n != want)
        return testing::AssertionFailure()
               << "CPU " << key.first << " instance " << key.second << ": " << n
               << " live, want " << want;
    }
    for (auto key : up)
      if (!live.count(key))
        return testing::AssertionFailure()
               << "CPU " << key.first << " instance " << key.second << " never started";
    return testing::AssertionSuccess();
  }
};

std::ostream& operator<<(std::ostream& os, const InstanceLog::Call& c) {
  return os << "{cpu " << c.cpu << " inst " << c.instance
            << (c.startup ? " up}" : " down}");
}

using Calls = std::vector<InstanceLog::Call>;

TEST(StatesMulti, InstancesPerCpu) {
  Domain d(4, 3);
  InstanceLog log;
  Result<StateId> id =
      d.setup_multi_state(Section::kOnline, "m", log.startup(), log.teardown());
  ASSERT_TRUE(Succeeds(id));
  EXPECT_TRUE(log.calls.empty());  // no instances yet
  int a = 1, b = 2, c = 3;
  ASSERT_TRUE(Succeeds(d.add_instance(*id, &a)));
  EXPECT_EQ(log.calls, (Calls{{0, 1, true}, {1, 1, true}, {2, 1, true}}));
  log.calls.clear();
  ASSERT_TRUE(Succeeds(d.add_instance(*id, &b)));
  EXPECT_EQ(log.calls, (Calls{{0, 2, true}, {1, 2, true}, {2, 2, true}}));
  log.calls.clear();
  ASSERT_TRUE(Succeeds(d.up(3)));
  EXPECT_EQ(log.calls, (Calls{{3, 1, true}, {3, 2, true}}));
  log.calls.clear();
  ASSERT_TRUE(Succeeds(d.down(3)));
  EXPECT_EQ(log.calls, (Calls{{3, 2, false}, {3, 1, false}}));
  log.calls.clear();
  // Errors, nothing called.
  EXPECT_TRUE(Fails(d.add_instance(*id, &b), Errc::kBusy, {"m"}));
  EXPECT_TRUE(Fails(d.add_instance(*id, nullptr), Errc::kInvalidArgument, {"null"}));
  EXPECT_TRUE(Fails(d.add_instance_nocalls(*id, &a), Errc::kBusy));
  EXPECT_TRUE(Fails(d.remove_instance(*id, &c), Errc::kNotFound));
  EXPECT_TRUE(Fails(d.add_instance(kStateBringup, &c), Errc::kNotFound));
  EXPECT_TRUE(Fails(d.add_instance(40, &c), Errc::kNotFound, {"40"}));
  EXPECT_TRUE(Fails(d.add_instance(-1, &c), Errc::kNotFound));
  EXPECT_TRUE(Fails(d.remove_instance(1000, &a), Errc::kNotFound));
  Result<StateId> single = d.setup_state(Section::kOnline, "single", nullptr, nullptr);
  ASSERT_TRUE(Succeeds(single));
  EXPECT_TRUE(Fails(d.add_instance(*single, &c), Errc::kNotFound));
  EXPECT_TRUE(log.calls.empty());
  // remove_instance tears it down on the CPUs at or past the state.
  ASSERT_TRUE(Succeeds(d.remove_instance(*id, &a)));
  Calls got = log.calls;
  std::sort(got.begin(), got.end(),
            [](const auto& x, const auto& y) { return x.cpu < y.cpu; });
  EXPECT_EQ(got, (Calls{{0, 1, false}, {1, 1, false}, {2, 1, false}}));
  log.calls.clear();
  ASSERT_TRUE(Succeeds(d.up(3)));
  EXPECT_EQ(log.calls, (Calls{{3, 2, true}}));
  // nocalls variants.
  log.calls.clear();
  ASSERT_TRUE(Succeeds(d.add_instance_nocalls(*id, &c)));
  EXPECT_TRUE(log.calls.empty());
  ASSERT_TRUE(Succeeds(d.down(3)));
  EXPECT_EQ(log.calls, (Calls{{3, 3, false}, {3, 2, false}}));
  log.calls.clear();
  ASSERT_TRUE(Succeeds(d.remove_instance_nocalls(*id, &c)));
  EXPECT_TRUE(log.calls.empty());
  EXPECT_TRUE(Fails(d.remove_instance_nocalls(*id, &c), Errc::kNotFound));
}

TEST(StatesMulti, AddInstanceRollsBackOnFailureAtCpuK) {
  for (bool throws : {false, true}) {
    SCOPED_TRACE(throws ? "throws" : "error code");
    Domain d(4, 4);
    InstanceLog log;
    Result<StateId> id =
        d.setup_multi_state(Section::kPrepare, "m:add", log.startup(), log.teardown());
    ASSERT_TRUE(Succeeds(id));
    int a = 1, c = 3;
    ASSERT_TRUE(Succeeds(d.add_instance(*id, &a)));
    log.calls.clear();
    log.fail_instance = 3;
    log.fail_cpu = 2;
    log.fail_throws = throws;
    Status s = d.add_instance(*id, &c);
    EXPECT_TRUE(Fails(s, Errc::kCallbackFailed,
                      {"CPU 2", "m:add", throws ? "instance-boom" : "-28"}));
    EXPECT_EQ(
        log.calls,
        (Calls{{0, 3, true}, {1, 3, true}, {2, 3, true}, {1, 3, false}, {0, 3, false}}));
    EXPECT_TRUE(log.balanced({{0, 1}, {1, 1}, {2, 1}, {3, 1}}));
    // Not added: transitions do not call it, and it can be added again.
    log.calls.clear();
    ASSERT_TRUE(Succeeds(d.down(3)));
    EXPECT_EQ(log.calls, (Calls{{3, 1, false}}));
    log.fail_instance = -1;
    ASSERT_TRUE(Succeeds(d.add_instance(*id, &c)));
  }
}

// A failing instance startup during a transition undoes the instances before
// it on that CPU, and the up fails and rolls back.
TEST(StatesMulti, FailingInstanceOnTransitionRollsBackEarlierInstances) {
  for (bool throws : {false, true}) {
    SCOPED_TRACE(throws ? "throws" : "error code");
    Domain d(4, 3);
    InstanceLog log;
    Result<StateId> id =
        d.setup_multi_state(Section::kOnline, "m:up", log.startup(), log.teardown());
    ASSERT_TRUE(Succeeds(id));
    int a = 1, b = 2, c = 3;
    ASSERT_TRUE(Succeeds(d.add_instance(*id, &a)));
    ASSERT_TRUE(Succeeds(d.add_instance(*id, &b)));
    ASSERT_TRUE(Succeeds(d.add_instance(*id, &c)));
    log.calls.clear();
    log.fail_instance = 3;
    log.fail_cpu = 3;
    log.fail_throws = throws;
    Status s = d.up(3);
    EXPECT_TRUE(Fails(s, Errc::kCallbackFailed,
                      {"CPU 3", "m:up", throws ? "instance-boom" : "-28"}));
    EXPECT_EQ(state_of(d, 3), kStateOffline);
    EXPECT_FALSE(d.cpu_online(3));
    EXPECT_EQ(
        log.calls,
        (Calls{{3, 1, true}, {3, 2, true}, {3, 3, true}, {3, 2, false}, {3, 1, false}}));
    EXPECT_TRUE(log.balanced(
        {{0, 1}, {1, 1}, {2, 1}, {0, 2}, {1, 2}, {2, 2}, {0, 3}, {1, 3}, {2, 3}}));
    log.fail_instance = -1;
    EXPECT_TRUE(Succeeds(d.up(3)));
  }
}

// Teardowns cannot fail: an instance teardown that throws is reported, and
// the other instances on that CPU are still torn down.
TEST(StatesMulti, ThrowingInstanceTeardownDoesNotSkipOtherInstances) {
  Domain d(4, 4);
  InstanceLog log;
  Result<StateId> id =
      d.setup_multi_state(Section::kOnline, "m:td", log.startup(), log.teardown());
  ASSERT_TRUE(Succeeds(id));
  int a = 1, b = 2, c = 3;
  ASSERT_TRUE(Succeeds(d.add_instance(*id, &a)));
  ASSERT_TRUE(Succeeds(d.add_instance(*id, &b)));
  ASSERT_TRUE(Succeeds(d.add_instance(*id, &c)));
  log.calls.clear();
  log.throw_teardown_instance = 2;
  testing::internal::CaptureStderr();
  Status s = d.down(3);
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(Succeeds(s));
  EXPECT_EQ(state_of(d, 3), kStateOffline);
  EXPECT_NE(err.find("instance-teardown-boom"), std::string::npos) << err;
  EXPECT_EQ(log.calls, (Calls{{3, 3, false}, {3, 2, false}, {3, 1, false}}));
  EXPECT_TRUE(log.balanced(
      {{0, 1}, {1, 1}, {2, 1}, {0, 2}, {1, 2}, {2, 2}, {0, 3}, {1, 3}, {2, 3}}));
}

// ------------------------------------------------------------ register_begin

TEST(StatesScope, WalkOnlineAndRegisterWhileHotplugWaits) {
  Domain d(6, 3);
  std::vector<std::atomic<int>> initialised(6);
  auto start = [&initialised](unsigned cpu) {
    initialised[cpu].fetch_add(1);
    return 0;
  };
  auto stop = [&initialised](unsigned cpu) {
    initialised[cpu].fetch_sub(1);
    return 0;
  };
  std::atomic<bool> started{false}, finished{false};
  Status up_status;
  std::thread hotplug;
  {
    Result<RegistrationScope> scope = d.register_begin();
    ASSERT_TRUE(Succeeds(scope));
    hotplug = std::thread([&] {
      started.store(true);
      up_status = d.up(4);
      finished.store(true);
    });
    while (!started.load()) std::this_thread::yield();
    // The mail's pattern: init the online CPUs, then register without calls.
    for (unsigned cpu : d.online()) start(cpu);
    Result<StateId> id =
        scope->setup_state_nocalls(Section::kOnline, "scope:s", start, stop);
    ASSERT_TRUE(Succeeds(id));
    NotifierBlock nb;
    EXPECT_TRUE(Succeeds(scope->register_notifier(&nb)));
    EXPECT_TRUE(Succeeds(scope->unregister_notifier(&nb)));
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(finished.load()) << "up() ran inside the register_begin() scope";
    EXPECT_EQ(d.online().to_string(), "0-2");
    EXPECT_EQ(&scope->domain(), &d);
  }  // scope ends
  hotplug.join();
  EXPECT_TRUE(finished.load());
  EXPECT_TRUE(Succeeds(up_status));
  for (unsigned cpu = 0; cpu < 6; ++cpu)
    EXPECT_EQ(initialised[cpu].load(), d.cpu_online(cpu) ? 1 : 0) << "CPU " << cpu;
  EXPECT_EQ(initialised[4].load(), 1);
}

TEST(StatesScope, ScopeMethodsWithCallsAndDoneEarly) {
  Domain d(4, 2);
  Recorder rec(d);
  Result<RegistrationScope> scope = d.register_begin();
  ASSERT_TRUE(Succeeds(scope));
  Result<StateId> id =
      scope->setup_state(Section::kPrepare, "scope:calls", rec.cb("scope:calls", true),
                         rec.cb("scope:calls", false));
  ASSERT_TRUE(Succeeds(id));
  EXPECT_EQ(rec.seen, (std::vector<Seen>{{"scope:calls", 0, true, true, true},
                                         {"scope:calls", 1, true, true, true}}));
  rec.clear();
  ASSERT_TRUE(Succeeds(scope->remove_state(*id)));
  EXPECT_EQ(rec.seen.size(), 2u);
  EXPECT_TRUE(Fails(scope->remove_state(*id), Errc::kNotFound));
  Result<StateId> id2 =
      scope->setup_state_nocalls(Section::kOnline, "scope:nocalls", nullptr, nullptr);
  ASSERT_TRUE(Succeeds(id2));
  // Moving the scope moves the lock.
  RegistrationScope moved = std::move(*scope);
  EXPECT_TRUE(Fails(scope->setup_state_nocalls(Section::kOnline, "x", nullptr, nullptr),
                    Errc::kInvalidArgument, {"done"}));
  ASSERT_TRUE(Succeeds(moved.remove_state_nocalls(*id2)));
  moved.done();                    // early
  EXPECT_TRUE(Succeeds(d.up(3)));  // the writers' lock is free
  // Using the scope after done() is an error.
  NotifierBlock nb;
  EXPECT_TRUE(Fails(moved.setup_state(Section::kOnline, "late", nullptr, nullptr),
                    Errc::kInvalidArgument, {"done"}));
  EXPECT_TRUE(Fails(moved.setup_state_nocalls(Section::kOnline, "late", nullptr, nullptr),
                    Errc::kInvalidArgument, {"done"}));
  EXPECT_TRUE(
      Fails(moved.remove_state(kStatePrepareDyn), Errc::kInvalidArgument, {"done"}));
  EXPECT_TRUE(
      Fails(moved.remove_state_nocalls(kStatePrepareDyn), Errc::kInvalidArgument));
  EXPECT_TRUE(Fails(moved.register_notifier(&nb), Errc::kInvalidArgument, {"done"}));
  EXPECT_TRUE(Fails(moved.unregister_notifier(&nb), Errc::kInvalidArgument));
  moved.done();  // twice: harmless
  EXPECT_TRUE(Fails(d.find_state("late"), Errc::kNotFound));
  // A new scope can be opened.
  Result<RegistrationScope> again = d.register_begin();
  EXPECT_TRUE(Succeeds(again));
}

// states.h: callbacks run "with the writers' lock and the hotplug write lock
// held" — those of a transition, and (domain.h: callbacks run in the thread
// that calls up/down/bring_to/setup_state) those run by registration.
TEST(StatesLocking, CallbacksRunWithHotplugWriteLockHeld) {
  Domain d(4, 2);
  std::vector<std::string> not_held;
  auto check = [&d, &not_held](const char* where) {
    return [&d, &not_held, where](unsigned cpu) {
      if (!d.hotplug_lock().held_exclusive_by_this_thread())
        not_held.push_back(std::string(where) + " on CPU " + std::to_string(cpu));
      return 0;
    };
  };
  Result<StateId> id = d.setup_state_nocalls(
      Section::kOnline, "lk:t", check("transition"), check("transition teardown"));
  ASSERT_TRUE(Succeeds(id));
  ASSERT_TRUE(Succeeds(d.up(2)));
  ASSERT_TRUE(Succeeds(d.down(2)));
  EXPECT_TRUE(not_held.empty()) << not_held.front();
  not_held.clear();
  Result<StateId> id2 =
      d.setup_state(Section::kPrepare, "lk:s", check("setup_state startup"),
                    check("remove_state teardown"));
  ASSERT_TRUE(Succeeds(id2));
  ASSERT_TRUE(Succeeds(d.remove_state(*id2)));
  EXPECT_TRUE(not_held.empty())
      << not_held.size() << " callbacks without it, first: " << not_held.front();
}

}  // namespace
}  // namespace cpuhp
