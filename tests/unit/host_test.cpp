// HostCpus (include/cpuhp/host.h) on fake trees: every input file and format
// (sysfs cpulists, /proc/self/status, /proc/self/cgroup v1/v2/hybrid,
// /proc/self/mountinfo with escapes and non-root mounts), sparse possible
// CPUs, every error path, and change detection — by refresh(), by inotify on
// the cgroup directories, by the periodic re-check, by (delivered) uevents —
// with the state callbacks following. Also a smoke test on the real root.
//
// A fake tree is a temporary folder laid out like / (sys/devices/system/cpu,
// proc/self, sys/fs/cgroup/...). Files are replaced atomically (write a
// temporary file, rename), so the follower never reads a half-written file.
#include "cpuhp/host.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/percpu.h"
#include "cpuhp/percpu_threads.h"
#include "cpuhp/rcu.h"
#include "host/sources.h"
#include "support/waiting.h"

namespace cpuhp {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// ------------------------------------------------------------------ helpers

class FakeTree {
 public:
  FakeTree() {
    char tmpl[] = "/tmp/cpuhp-host-test-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = made;
  }
  ~FakeTree() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  FakeTree(const FakeTree&) = delete;
  FakeTree& operator=(const FakeTree&) = delete;

  const std::string& root() const { return root_; }
  std::string path(const std::string& rel) const { return root_ + rel; }

  // Atomic replace: write a temporary file beside it, then rename.
  void write(const std::string& rel, const std::string& content) {
    const fs::path p = path(rel);
    fs::create_directories(p.parent_path());
    const fs::path tmp = p.parent_path() / (".tmp." + p.filename().string());
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << content;
    }
    fs::rename(tmp, p);
  }
  void remove(const std::string& rel) { fs::remove(path(rel)); }
  void mkdir(const std::string& rel) { fs::create_directories(path(rel)); }

  void cpus(const std::string& possible, const std::string& present,
            const std::string& online) {
    write("/sys/devices/system/cpu/possible", possible + "\n");
    write("/sys/devices/system/cpu/present", present + "\n");
    write("/sys/devices/system/cpu/online", online + "\n");
  }
  void affinity(const std::string& list) {
    write("/proc/self/status",
          "Name:\tcpuhp-test\nState:\tR (running)\nTgid:\t42\nPid:\t42\n"
          "Cpus_allowed:\tff\nCpus_allowed_list:\t" +
              list + "\nMems_allowed:\t1\nMems_allowed_list:\t0\n");
  }

  static constexpr const char* kMountinfoV1 =
      "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
      "31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime master:3 - cgroup cgroup "
      "rw,cpuset\n";
  static constexpr const char* kMountinfoV2 =
      "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
      "31 22 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 "
      "cgroup2 rw,nsdelegate,memory_recursiveprot\n";
  static constexpr const char* kMountinfoHybrid =
      "31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

  // The process in v1 cpuset cgroup `cg` with effective CPUs `cpus`.
  void v1(const std::string& cg, const std::string& cpus) {
    write("/proc/self/cgroup",
          "9:name=systemd:/\n4:memory:/x\n3:cpuset:" + cg + "\n1:cpu:/\n");
    write("/proc/self/mountinfo", kMountinfoV1);
    write(v1_dir(cg) + "/cpuset.effective_cpus", cpus + "\n");
  }
  static std::string v1_dir(const std::string& cg) {
    return cg == "/" ? "/sys/fs/cgroup/cpuset" : "/sys/fs/cgroup/cpuset" + cg;
  }

  // A complete 4-CPU machine, all online, no cgroup restriction.
  void basic(const std::string& affinity_list = "0-3") {
    cpus("0-3", "0-3", "0-3");
    affinity(affinity_list);
    v1("/", "0-3");
  }

 private:
  std::string root_;
};

// Collects reports; waits for them.
class Recorder {
 public:
  void operator()(const HostChange& c) {
    std::lock_guard<std::mutex> g(mu_);
    changes_.push_back(c);
    cv_.notify_all();
  }
  // Waits until a change of `cpu` to `online` has been reported; returns it.
  std::optional<HostChange> wait(unsigned cpu, bool online,
                                 std::chrono::milliseconds timeout = 5000ms) {
    std::unique_lock<std::mutex> g(mu_);
    std::optional<HostChange> found;
    cv_.wait_for(g, timeout, [&] {
      for (const HostChange& c : changes_)
        if (c.cpu == cpu && c.online == online) {
          found = c;
          return true;
        }
      return false;
    });
    return found;
  }
  std::vector<HostChange> all() {
    std::lock_guard<std::mutex> g(mu_);
    return changes_;
  }
  void clear() {
    std::lock_guard<std::mutex> g(mu_);
    changes_.clear();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<HostChange> changes_;
};

struct Warnings {
  std::mutex mu;
  std::vector<std::string> list;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& m) {
      std::lock_guard<std::mutex> g(mu);
      list.push_back(m);
    };
  }
  std::size_t size() {
    std::lock_guard<std::mutex> g(mu);
    return list.size();
  }
  std::string last() {
    std::lock_guard<std::mutex> g(mu);
    return list.empty() ? std::string() : list.back();
  }
};

HostOptions fake_options(const FakeTree& t, Recorder* rec = nullptr,
                         Warnings* warn = nullptr) {
  HostOptions o;
  o.root = t.root();
  o.follow = false;
  o.uevents = false;
  if (rec) o.on_change = [rec](const HostChange& c) { (*rec)(c); };
  if (warn) o.on_warning = warn->sink();
  return o;
}

std::unique_ptr<HostCpus> must_create(HostOptions o) {
  auto h = HostCpus::create(std::move(o));
  if (!h.ok()) {
    ADD_FAILURE() << "HostCpus::create: " << h.error().message();
    return nullptr;
  }
  return std::move(*h);
}

template <class R>
testing::AssertionResult Fails(const R& r, Errc code,
                               const std::vector<std::string>& needles) {
  if (r.ok()) return testing::AssertionFailure() << "the call succeeded";
  if (r.error().code() != code)
    return testing::AssertionFailure()
           << "error code " << static_cast<int>(r.error().code()) << ", expected "
           << static_cast<int>(code) << ": " << r.error().message();
  for (const std::string& n : needles)
    if (r.error().message().find(n) == std::string::npos)
      return testing::AssertionFailure()
             << "message \"" << r.error().message() << "\" lacks \"" << n << "\"";
  return testing::AssertionSuccess();
}

// Per-CPU data built by a PREPARE state, as PerCpu does.
struct PerCpuProbe {
  std::mutex mu;
  std::set<unsigned> live;
  std::vector<std::string> log;
  int fail_startup_on = -1;  // a CPU whose startup fails (-EIO)
  StateId install(Domain& d) {
    auto id = d.setup_state(
        Section::kPrepare, "test:percpu",
        [this](unsigned cpu) {
          std::lock_guard<std::mutex> g(mu);
          if (static_cast<int>(cpu) == fail_startup_on) return -EIO;
          live.insert(cpu);
          log.push_back("up" + std::to_string(cpu));
          return 0;
        },
        [this](unsigned cpu) {
          std::lock_guard<std::mutex> g(mu);
          live.erase(cpu);
          log.push_back("down" + std::to_string(cpu));
          return 0;
        });
    EXPECT_TRUE(id.ok());
    return id.ok() ? *id : -1;
  }
  std::string live_list() {
    std::lock_guard<std::mutex> g(mu);
    std::string s;
    for (unsigned c : live) s += (s.empty() ? "" : ",") + std::to_string(c);
    return s;
  }
};

// ------------------------------------------------------------------ parsers

TEST(HostSources, JoinRoot) {
  EXPECT_EQ(host::join_root("/", "/proc/self/status"), "/proc/self/status");
  EXPECT_EQ(host::join_root("/tmp/x", "/proc/self/status"), "/tmp/x/proc/self/status");
  EXPECT_EQ(host::join_root("/tmp/x///", "/proc"), "/tmp/x/proc");
  EXPECT_EQ(host::join_root("", "/proc"), "/proc");
}

TEST(HostSources, StatusAffinity) {
  auto m = host::parse_status_affinity(
      "Name:\tx\nCpus_allowed:\t5\nCpus_allowed_list:\t0,2\nMems_allowed_list:\t0\n",
      "S");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->to_string(), "0,2");
  EXPECT_TRUE(Fails(host::parse_status_affinity("Name:\tx\n", "S"),
                    Errc::kInvalidArgument, {"S", "Cpus_allowed_list"}));
  EXPECT_TRUE(Fails(host::parse_status_affinity("Cpus_allowed_list:\t0-x\n", "S"),
                    Errc::kInvalidArgument, {"S", "Cpus_allowed_list", "0-x"}));
}

TEST(HostSources, ProcCgroup) {
  auto e = host::parse_proc_cgroup(
      "12:cpu,cpuacct:/a\n3:cpuset:/b:c\n1:name=systemd:/\n0::/user.slice/x.scope\n\n",
      "C");
  ASSERT_TRUE(e.ok()) << e.error().message();
  ASSERT_EQ(e->size(), 4u);
  EXPECT_EQ((*e)[0].hierarchy_id, 12u);
  EXPECT_EQ((*e)[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ((*e)[1].path, "/b:c");  // a path may contain ':'
  EXPECT_TRUE((*e)[3].controllers.empty());
  EXPECT_EQ((*e)[3].path, "/user.slice/x.scope");
  EXPECT_TRUE(Fails(host::parse_proc_cgroup("garbage\n", "C"), Errc::kInvalidArgument,
                    {"C", "line 1"}));
  EXPECT_TRUE(Fails(host::parse_proc_cgroup("0::/\nx:cpuset:/\n", "C"),
                    Errc::kInvalidArgument, {"line 2", "not a number"}));
  EXPECT_TRUE(Fails(host::parse_proc_cgroup("3:cpuset:relative\n", "C"),
                    Errc::kInvalidArgument, {"'/'"}));
}

TEST(HostSources, Mountinfo) {
  auto m = host::parse_mountinfo(
      "34 31 0:31 / /sys/fs/cgroup/cpu\\040set rw,relatime shared:1 master:2 - cgroup "
      "cgroup rw,cpuset\n"
      "41 31 0:38 /sub /mnt/u rw - cgroup2 cgroup2 rw\n",
      "M");
  ASSERT_TRUE(m.ok()) << m.error().message();
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].mount_point, "/sys/fs/cgroup/cpu set");
  EXPECT_EQ((*m)[0].fstype, "cgroup");
  EXPECT_EQ((*m)[0].super_options, "rw,cpuset");
  EXPECT_EQ((*m)[1].root, "/sub");
  EXPECT_EQ((*m)[1].fstype, "cgroup2");
  EXPECT_EQ(host::unescape_mountinfo("a\\134b\\011c\\9"), "a\\b\tc\\9");
  EXPECT_TRUE(Fails(host::parse_mountinfo("1 2 3\n", "M"), Errc::kInvalidArgument,
                    {"M", "line 1", "FSTYPE"}));
  EXPECT_TRUE(Fails(host::parse_mountinfo("1 2 0:1 / rel rw - tmpfs tmpfs rw\n", "M"),
                    Errc::kInvalidArgument, {"absolute"}));
}

// ----------------------------------------------------------- file formats

TEST(HostFake, V1CpusetAffinityAndSysfsIntersect) {
  FakeTree t;
  t.cpus("0-3", "0-3", "0-3");
  t.affinity("0-2");
  t.v1("/app", "1-3");
  auto h = must_create(fake_options(t));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->domain().capacity(), 4u);
  EXPECT_EQ(h->domain().online().to_string(), "1-2");
  EXPECT_EQ(h->domain().active().to_string(), "1-2");
  EXPECT_EQ(h->domain().present().to_string(), "0-3");
  EXPECT_FALSE(h->domain().host_bound()) << "fake CPU ids must not be pinned to";
  EXPECT_FALSE(h->following());
  const HostSnapshot s = h->snapshot();
  EXPECT_EQ(s.affinity.to_string(), "0-2");
  EXPECT_EQ(s.cpuset.to_string(), "1-3");
  EXPECT_TRUE(s.cpuset_limited);
  EXPECT_EQ(s.cgroup_v1, "/app");
  ASSERT_EQ(s.cpuset_files.size(), 1u);
  EXPECT_EQ(s.cpuset_files[0], t.path("/sys/fs/cgroup/cpuset/app/cpuset.effective_cpus"));
  EXPECT_EQ(s.wanted.to_string(), "1-2");

  auto snap = read_host_snapshot(t.root());
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  EXPECT_EQ(snap->wanted.to_string(), "1-2");
}

TEST(HostFake, V1FallsBackToCpusetCpus) {
  FakeTree t;
  t.basic();
  t.v1("/old", "2-3");
  t.remove("/sys/fs/cgroup/cpuset/old/cpuset.effective_cpus");
  t.write("/sys/fs/cgroup/cpuset/old/cpuset.cpus", "0,3\n");
  auto h = must_create(fake_options(t));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->domain().online().to_string(), "0,3");
  EXPECT_EQ(h->snapshot().cpuset_files[0],
            t.path("/sys/fs/cgroup/cpuset/old/cpuset.cpus"));
}

TEST(HostFake, V2EffectiveInheritedFromTheNearestAncestor) {
  FakeTree t;
  t.cpus("0-7", "0-7", "0-7");
  t.affinity("0-7");
  t.write("/proc/self/cgroup", "0::/a/b\n");
  t.write("/proc/self/mountinfo", FakeTree::kMountinfoV2);
  t.mkdir("/sys/fs/cgroup/a/b");
  t.write("/sys/fs/cgroup/cpuset.cpus.effective", "0-7\n");
  t.write("/sys/fs/cgroup/a/cpuset.cpus.effective", "2-5\n");
  t.write("/sys/fs/cgroup/a/b/cpuset.cpus.effective", "4-6\n");
  {
    auto s = read_host_snapshot(t.root());
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(s->cpuset.to_string(), "4-6");
    EXPECT_EQ(s->cgroup_v2, "/a/b");
    EXPECT_EQ(s->cgroup_v1, "");
  }
  t.remove("/sys/fs/cgroup/a/b/cpuset.cpus.effective");  // controller not enabled in b
  {
    auto s = read_host_snapshot(t.root());
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(s->cpuset.to_string(), "2-5");
    EXPECT_EQ(s->cpuset_files[0], t.path("/sys/fs/cgroup/a/cpuset.cpus.effective"));
  }
  t.remove("/sys/fs/cgroup/a/cpuset.cpus.effective");
  t.remove("/sys/fs/cgroup/cpuset.cpus.effective");  // no cpuset controller at all
  {
    auto s = read_host_snapshot(t.root());
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_FALSE(s->cpuset_limited);
    EXPECT_EQ(s->cpuset.to_string(), "0-7");
    EXPECT_EQ(s->wanted.to_string(), "0-7");
  }
}

TEST(HostFake, HybridIntersectsV1AndV2) {
  FakeTree t;
  t.cpus("0-3", "0-3", "0-3");
  t.affinity("0-3");
  t.write("/proc/self/cgroup", "3:cpuset:/\n0::/svc\n");
  t.write("/proc/self/mountinfo", FakeTree::kMountinfoHybrid);
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-2\n");
  t.write("/sys/fs/cgroup/unified/svc/cpuset.cpus.effective", "1-3\n");
  auto h = must_create(fake_options(t));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->domain().online().to_string(), "1-2");
  EXPECT_EQ(h->snapshot().cpuset_files.size(), 2u);
  // The usual hybrid machine: the unified hierarchy has no cpuset files.
  t.remove("/sys/fs/cgroup/unified/svc/cpuset.cpus.effective");
  ASSERT_TRUE(h->refresh().ok());
  EXPECT_EQ(h->domain().online().to_string(), "0-2");
}

TEST(HostFake, SparsePossibleCpus) {
  FakeTree t;
  t.cpus("0,2-3,8", "0,2-3,8-9", "0,2,8-9");  // 9 present/online but not possible
  t.affinity("0-15");
  t.v1("/", "0-15");
  auto h = must_create(fake_options(t));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->domain().capacity(), 9u);
  EXPECT_EQ(h->possible().to_string(), "0,2-3,8");
  EXPECT_EQ(h->domain().present().to_string(), "0,2-3,8");
  EXPECT_EQ(h->domain().online().to_string(), "0,2,8");
  // A CPU that is not present cannot be brought up by hand either.
  EXPECT_EQ(h->domain().up(1).error().code(), Errc::kNotPresent);
}

TEST(HostFake, CpuZeroNeitherWantedNorPossible) {
  FakeTree t;
  t.basic("2-3");
  auto h = must_create(fake_options(t));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->domain().online().to_string(), "2-3");
  EXPECT_TRUE(h->domain().present().test(0));

  FakeTree u;
  u.cpus("1-3", "1-3", "1-3");
  u.affinity("0-3");
  u.v1("/", "0-3");
  auto g = must_create(fake_options(u));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->domain().capacity(), 4u);
  EXPECT_EQ(g->domain().online().to_string(), "1-3");
  EXPECT_EQ(g->domain().present().to_string(), "1-3");
}

TEST(HostFake, MountOfASubtreeAndEscapedMountPoint) {
  // In a container the hierarchy's mounted root is the container's cgroup.
  FakeTree t;
  t.cpus("0-3", "0-3", "0-3");
  t.affinity("0-3");
  t.write("/proc/self/cgroup", "3:cpuset:/docker/abc/inner\n");
  t.write("/proc/self/mountinfo",
          "34 31 0:31 /docker/abc /sys/fs/cgroup/cpu\\040set rw - cgroup cgroup "
          "rw,cpuset\n");
  t.write("/sys/fs/cgroup/cpu set/inner/cpuset.effective_cpus", "3\n");
  auto s = read_host_snapshot(t.root());
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->cpuset.to_string(), "3");
  EXPECT_EQ(s->cpuset_files[0],
            t.path("/sys/fs/cgroup/cpu set/inner/cpuset.effective_cpus"));
}

TEST(HostFake, NoCgroupsOrCpusetNotMounted) {
  FakeTree t;
  t.cpus("0-1", "0-1", "0-1");
  t.affinity("0-1");
  {  // no /proc/self/cgroup at all (a kernel without cgroups)
    auto s = read_host_snapshot(t.root());
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_FALSE(s->cpuset_limited);
    EXPECT_EQ(s->wanted.to_string(), "0-1");
  }
  // cpuset listed, but its hierarchy is not mounted here: no restriction.
  t.write("/proc/self/cgroup", "3:cpuset:/x\n");
  t.write("/proc/self/mountinfo", "22 1 0:21 / /sys rw - sysfs sysfs rw\n");
  auto s = read_host_snapshot(t.root());
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_FALSE(s->cpuset_limited);
  EXPECT_EQ(s->cgroup_v1, "");
}

// ----------------------------------------------------------------- errors

TEST(HostFake, UnreadableAndMalformedFilesAreClearErrors) {
  struct Case {
    const char* what;
    std::function<void(FakeTree&)> spoil;
    Errc code;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {"possible missing",
       [](FakeTree& t) { t.remove("/sys/devices/system/cpu/possible"); },
       Errc::kSystem,
       {"/sys/devices/system/cpu/possible", "No such file"}},
      {"possible empty",
       [](FakeTree& t) { t.write("/sys/devices/system/cpu/possible", "\n"); },
       Errc::kInvalidArgument,
       {"possible", "no possible CPU"}},
      {"present missing",
       [](FakeTree& t) { t.remove("/sys/devices/system/cpu/present"); },
       Errc::kSystem,
       {"present"}},
      {"online malformed",
       [](FakeTree& t) { t.write("/sys/devices/system/cpu/online", "0-x\n"); },
       Errc::kInvalidArgument,
       {"/sys/devices/system/cpu/online", "0-x"}},
      {"online too large",
       [](FakeTree& t) { t.write("/sys/devices/system/cpu/online", "0-99999\n"); },
       Errc::kOutOfRange,
       {"/sys/devices/system/cpu/online"}},
      {"status missing",
       [](FakeTree& t) { t.remove("/proc/self/status"); },
       Errc::kSystem,
       {"/proc/self/status"}},
      {"status without the line",
       [](FakeTree& t) { t.write("/proc/self/status", "Name:\tx\n"); },
       Errc::kInvalidArgument,
       {"/proc/self/status", "Cpus_allowed_list"}},
      {"cgroup malformed",
       [](FakeTree& t) { t.write("/proc/self/cgroup", "nonsense\n"); },
       Errc::kInvalidArgument,
       {"/proc/self/cgroup", "line 1"}},
      {"mountinfo missing",
       [](FakeTree& t) { t.remove("/proc/self/mountinfo"); },
       Errc::kSystem,
       {"/proc/self/mountinfo"}},
      {"mountinfo malformed",
       [](FakeTree& t) { t.write("/proc/self/mountinfo", "1 2\n"); },
       Errc::kInvalidArgument,
       {"/proc/self/mountinfo", "line 1"}},
      {"cpuset files missing",
       [](FakeTree& t) { t.remove("/sys/fs/cgroup/cpuset/cpuset.effective_cpus"); },
       Errc::kSystem,
       {"neither cpuset.effective_cpus nor cpuset.cpus"}},
      {"cpuset malformed",
       [](FakeTree& t) {
         t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "1,,2\n");
       },
       Errc::kInvalidArgument,
       {"cpuset.effective_cpus", "1,,2"}},
      {"nothing usable",
       [](FakeTree& t) { t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "\n"); },
       Errc::kInvalidArgument,
       {"no CPU", "usable"}},
      {"affinity outside online",
       [](FakeTree& t) {
         t.affinity("3");
         t.write("/sys/devices/system/cpu/online", "0-2\n");
       },
       Errc::kInvalidArgument,
       {"no CPU", "affinity 3"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    FakeTree t;
    t.basic();
    c.spoil(t);
    auto h = HostCpus::create(fake_options(t));
    EXPECT_TRUE(Fails(h, c.code, c.needles));
    // The snapshot alone fails the same way, except for an empty wanted set,
    // which is a fact to report, not an unreadable input.
    auto snap = read_host_snapshot(t.root());
    if (c.needles[0] == "no CPU") {
      EXPECT_TRUE(snap.ok());
    } else {
      EXPECT_TRUE(Fails(snap, c.code, c.needles));
    }
  }
  FakeTree t;
  t.basic();
  HostOptions o = fake_options(t);
  o.recheck = -1ms;
  EXPECT_TRUE(Fails(HostCpus::create(o), Errc::kInvalidArgument, {"recheck"}));
}

TEST(HostFake, BadFilesAtRunTimeAreWarningsNotCrashes) {
  FakeTree t;
  t.basic();
  Recorder rec;
  Warnings warn;
  auto h = must_create(fake_options(t, &rec, &warn));
  ASSERT_TRUE(h);
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "garbage\n");
  EXPECT_TRUE(Fails(h->refresh(), Errc::kInvalidArgument, {"garbage"}));
  EXPECT_TRUE(Fails(h->refresh(), Errc::kInvalidArgument, {"garbage"}));
  EXPECT_EQ(warn.size(), 1u) << "a persistent problem is logged once";
  EXPECT_NE(warn.last().find("keeping the current CPUs"), std::string::npos);
  EXPECT_EQ(h->domain().online().to_string(), "0-3");
  // An empty wanted set (a torn write, a bad fake tree) never takes CPUs down.
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "\n");
  EXPECT_TRUE(Fails(h->refresh(), Errc::kInvalidArgument, {"no CPU would be online"}));
  EXPECT_EQ(h->domain().online().to_string(), "0-3");
  t.remove("/proc/self/status");
  EXPECT_TRUE(Fails(h->refresh(), Errc::kSystem, {"/proc/self/status"}));
  EXPECT_EQ(warn.size(), 3u);
  // Repaired: back to normal.
  t.affinity("0-3");
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-1\n");
  ASSERT_TRUE(h->refresh().ok());
  EXPECT_EQ(h->domain().online().to_string(), "0-1");
  EXPECT_EQ(rec.all().size(), 2u);
}

// ------------------------------------------------------- change detection

TEST(HostFake, RefreshDrivesUpAndDownWithCallbacks) {
  FakeTree t;
  t.basic();
  Recorder rec;
  auto h = must_create(fake_options(t, &rec));
  ASSERT_TRUE(h);
  PerCpuProbe probe;
  probe.install(h->domain());
  EXPECT_EQ(probe.live_list(), "0,1,2,3");

  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-1\n");
  ASSERT_TRUE(h->refresh().ok());
  EXPECT_EQ(h->domain().online().to_string(), "0-1");
  EXPECT_EQ(probe.live_list(), "0,1");
  auto all = rec.all();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].cpu, 2u);
  EXPECT_FALSE(all[0].online);
  EXPECT_EQ(all[0].cause, HostCause::kRecheck);  // no event told us: a re-check
  EXPECT_EQ(all[0].inputs, kHostInputCpuset);
  EXPECT_GE(all[0].latency_us, 0);
  EXPECT_TRUE(all[0].error.empty());

  rec.clear();
  t.affinity("0-2");
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-3\n");
  ASSERT_TRUE(h->refresh().ok());
  EXPECT_EQ(h->domain().online().to_string(), "0-2");
  all = rec.all();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].cpu, 2u);
  EXPECT_TRUE(all[0].online);
  EXPECT_EQ(all[0].cause, HostCause::kRecheck);  // CPU 2: only the cpuset moved

  rec.clear();
  t.affinity("0-3");
  ASSERT_TRUE(h->refresh().ok());
  all = rec.all();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].cause, HostCause::kAffinity);
  EXPECT_EQ(all[0].inputs, kHostInputAffinity);
  EXPECT_EQ(probe.live_list(), "0,1,2,3");
  EXPECT_EQ(h->stats().changes, 4u);
}

TEST(HostFake, KernelUeventsAndPresence) {
  FakeTree t;
  t.basic();
  Recorder rec;
  auto h = must_create(fake_options(t, &rec));
  ASSERT_TRUE(h);
  UeventSource kernel;
  kernel.has_credentials = true;
  kernel.nl_groups = 1;
  const std::string offline3 = std::string("offline@/devices/system/cpu/cpu3\0", 33);

  // The kernel took CPU 3 offline: sysfs says so and the uevent arrives.
  t.write("/sys/devices/system/cpu/online", "0-2\n");
  UeventSource forged = kernel;
  forged.nl_pid = 777;
  forged.pid = 777;
  auto v = h->deliver_uevent(offline3, forged);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, UeventVerdict::kForged);
  EXPECT_TRUE(h->domain().online().test(3)) << "a forged uevent must trigger nothing";
  v = h->deliver_uevent(offline3, kernel);
  ASSERT_TRUE(v.ok()) << v.error().message();
  EXPECT_EQ(*v, UeventVerdict::kAccepted);
  EXPECT_FALSE(h->domain().online().test(3));
  auto c = rec.wait(3, false, 0ms);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->cause, HostCause::kUevent);
  EXPECT_EQ(c->inputs, kHostInputSysfs);

  // Physical hot-remove: CPU 3 leaves present; then comes back.
  t.write("/sys/devices/system/cpu/present", "0-2\n");
  ASSERT_TRUE(h->refresh().ok());
  EXPECT_FALSE(h->domain().present().test(3));
  t.write("/sys/devices/system/cpu/present", "0-3\n");
  t.write("/sys/devices/system/cpu/online", "0-3\n");
  ASSERT_TRUE(
      h->deliver_uevent(std::string("online@/devices/system/cpu/cpu3\0", 32), kernel)
          .ok());
  EXPECT_TRUE(h->domain().present().test(3));
  EXPECT_TRUE(h->domain().online().test(3));
  c = rec.wait(3, true, 0ms);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->cause, HostCause::kUevent);
  EXPECT_EQ(h->stats().uevents_forged, 1u);
  EXPECT_EQ(h->stats().uevents_accepted, 2u);
}

TEST(HostFake, FailedStartupIsReportedOnceAndRetried) {
  FakeTree t;
  t.basic();
  Recorder rec;
  Warnings warn;
  auto h = must_create(fake_options(t, &rec, &warn));
  ASSERT_TRUE(h);
  PerCpuProbe probe;
  probe.install(h->domain());
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-2\n");
  ASSERT_TRUE(h->refresh().ok());
  {
    std::lock_guard<std::mutex> g(probe.mu);
    probe.fail_startup_on = 3;
  }
  rec.clear();
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-3\n");
  ASSERT_TRUE(h->refresh().ok());
  ASSERT_TRUE(h->refresh().ok());
  auto all = rec.all();
  ASSERT_EQ(all.size(), 1u) << "a failure is reported once";
  EXPECT_TRUE(all[0].online);
  EXPECT_NE(all[0].error.find("CPU 3"), std::string::npos) << all[0].error;
  EXPECT_NE(to_json(all[0]).find("\"error\":"), std::string::npos);
  EXPECT_EQ(h->stats().failures, 2u);
  EXPECT_EQ(warn.size(), 1u);
  EXPECT_FALSE(h->domain().online().test(3));
  {
    std::lock_guard<std::mutex> g(probe.mu);
    probe.fail_startup_on = -1;
  }
  ASSERT_TRUE(h->refresh().ok());  // the retry succeeds
  EXPECT_TRUE(h->domain().online().test(3));
  all = rec.all();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(all[1].error.empty());
  EXPECT_EQ(all[1].cause, HostCause::kRecheck);
}

TEST(HostFake, ReentryIsRefusedNotDeadlocked) {
  FakeTree t;
  t.basic();
  std::vector<Errc> from_on_change;
  HostCpus* self = nullptr;
  HostOptions o = fake_options(t);
  o.on_change = [&](const HostChange&) {
    Status s = self->refresh();
    from_on_change.push_back(s.ok() ? Errc::kOk : s.error().code());
  };
  auto h = must_create(o);
  ASSERT_TRUE(h);
  self = h.get();
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-2\n");
  ASSERT_TRUE(h->refresh().ok());
  EXPECT_EQ(from_on_change, std::vector<Errc>{Errc::kWouldDeadlock});

  // From a hotplug callback on another thread: the domain's writers' lock is
  // held there, so refresh() must refuse instead of waiting for it.
  Errc from_callback = Errc::kOk;
  std::string message;
  auto id = h->domain().setup_state(
      Section::kOnline, "test:reentry",
      [&](unsigned cpu) {
        if (cpu == 0) {
          Status s = h->refresh();
          from_callback = s.ok() ? Errc::kOk : s.error().code();
          if (!s.ok()) message = s.error().message();
        }
        return 0;
      },
      nullptr);
  ASSERT_TRUE(id.ok()) << id.error().message();
  EXPECT_EQ(from_callback, Errc::kWouldDeadlock) << message;
}

TEST(HostFake, InotifySeesCgroupWritesAtOnce) {
  FakeTree t;
  t.cpus("0-3", "0-3", "0-3");
  t.affinity("0-3");
  t.v1("/app/sub", "0-3");
  t.write("/sys/fs/cgroup/cpuset/app/cpuset.effective_cpus", "0-3\n");
  Recorder rec;
  HostOptions o = fake_options(t, &rec);
  o.follow = true;
  o.recheck = 3600000ms;  // effectively never: only events can be seen
  PerCpuProbe probe;      // outlives the follower, which runs its callbacks
  auto h = must_create(o);
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->following());
  EXPECT_FALSE(h->uevents_open());
  EXPECT_EQ(h->cgroup_watches(), 3u) << "app/sub, app and the mount's root";
  probe.install(h->domain());

  t.write("/sys/fs/cgroup/cpuset/app/sub/cpuset.effective_cpus", "0-1\n");
  auto c2 = rec.wait(2, false);
  auto c3 = rec.wait(3, false);
  ASSERT_TRUE(c2 && c3) << "no change seen by inotify";
  EXPECT_EQ(c3->cause, HostCause::kCgroup);
  EXPECT_EQ(c3->inputs, kHostInputCpuset);
  std::printf("inotify (fake tree): CPU 3 offline %lld us after the event\n",
              static_cast<long long>(c3->latency_us));
  EXPECT_EQ(probe.live_list(), "0,1");
  t.write("/sys/fs/cgroup/cpuset/app/sub/cpuset.effective_cpus", "0-3\n");
  ASSERT_TRUE(rec.wait(3, true));
  EXPECT_EQ(probe.live_list(), "0,1,2,3");

  // A write in an ancestor's directory wakes the follower too.
  const auto before = h->stats().cgroup_events;
  t.write("/sys/fs/cgroup/cpuset/app/cpuset.cpus", "0-3\n");
  EXPECT_TRUE(testing_support::eventually([&] {
    return h->stats().cgroup_events > before;
  })) << "no inotify event for a write in an ancestor's directory";
  EXPECT_EQ(h->stats().rechecks, 0u);
}

TEST(HostFake, PerCpuAndPerCpuThreadsFollowTheHost) {
  FakeTree t;
  t.basic();
  Recorder rec;
  HostOptions o = fake_options(t, &rec);
  o.follow = true;
  o.recheck = 3600000ms;
  auto h = must_create(o);
  ASSERT_TRUE(h);
  // Declared after the HostCpus: destroyed first, while the domain lives.
  auto data = PerCpu<int>::create(h->domain(), "host-test");
  ASSERT_TRUE(data.ok()) << data.error().message();
  std::mutex mu;
  std::vector<std::string> events;
  PerCpuThreads::Hooks hooks;
  hooks.should_run = [](unsigned) { return false; };
  hooks.run = [](unsigned) {};
  hooks.park = [&](unsigned cpu) {
    std::lock_guard<std::mutex> g(mu);
    events.push_back("park" + std::to_string(cpu));
  };
  hooks.unpark = [&](unsigned cpu) {
    std::lock_guard<std::mutex> g(mu);
    events.push_back("unpark" + std::to_string(cpu));
  };
  auto threads = PerCpuThreads::create(h->domain(), "hosttest", hooks);
  ASSERT_TRUE(threads.ok()) << threads.error().message();
  auto live = [&](unsigned cpu) {
    rcu::ReadGuard g;
    return (*data)->get(cpu) != nullptr;
  };
  EXPECT_TRUE(live(3));

  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-2\n");
  ASSERT_TRUE(rec.wait(3, false));
  EXPECT_FALSE(live(3));
  EXPECT_TRUE(live(2));
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-3\n");
  ASSERT_TRUE(rec.wait(3, true));
  EXPECT_TRUE(live(3));
  std::lock_guard<std::mutex> g(mu);
  EXPECT_EQ(events, (std::vector<std::string>{"park3", "unpark3"}));
}

TEST(HostFake, RecheckSeesAffinityAndUnwatchedChanges) {
  FakeTree t;
  t.basic();
  Recorder rec;
  HostOptions o = fake_options(t, &rec);
  o.follow = true;
  o.cgroup_events = false;
  o.recheck = 10ms;
  auto h = must_create(o);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->cgroup_watches(), 0u);
  t.affinity("0-2");
  auto c = rec.wait(3, false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cause, HostCause::kAffinity);
  EXPECT_GE(h->stats().rechecks, 1u);
  t.write("/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-1\n");
  c = rec.wait(2, false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cause, HostCause::kRecheck);
  t.write("/sys/devices/system/cpu/online", "0\n");  // no uevents here
  c = rec.wait(1, false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cause, HostCause::kRecheck);
  EXPECT_EQ(c->inputs, kHostInputSysfs);
  EXPECT_EQ(h->domain().online().to_string(), "0");
}

TEST(HostFake, MigrationToAnotherCgroupIsFollowedAndRewatched) {
  FakeTree t;
  t.basic();
  t.v1("/a", "0-3");
  t.write("/sys/fs/cgroup/cpuset/b/cpuset.effective_cpus", "0-2\n");
  Recorder rec;
  HostOptions o = fake_options(t, &rec);
  o.follow = true;
  o.recheck = 1000ms;
  auto h = must_create(o);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->cgroup_watches(), 2u);
  // Moved to /b: nothing is written in /a, so only the re-check can see it.
  t.write("/proc/self/cgroup", "3:cpuset:/b\n");
  auto c = rec.wait(3, false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cause, HostCause::kRecheck);
  EXPECT_EQ(h->snapshot().cgroup_v1, "/b");
  // /b is watched now.
  t.write("/sys/fs/cgroup/cpuset/b/cpuset.effective_cpus", "0-1\n");
  c = rec.wait(2, false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cause, HostCause::kCgroup);
}

TEST(HostFake, DestructionStopsTheFollowerPromptly) {
  FakeTree t;
  t.basic();
  HostOptions o = fake_options(t);
  o.follow = true;
  o.recheck = 3600000ms;
  auto h = must_create(o);
  ASSERT_TRUE(h);
  const auto start = std::chrono::steady_clock::now();
  h.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(HostChangeJson, Format) {
  HostChange c{1, false, HostCause::kCgroup, kHostInputCpuset, 123, {}};
  EXPECT_EQ(to_json(c),
            R"({"cpu":1,"change":"offline","cause":"cgroup","latency_us":123})");
  c = {7, true, HostCause::kUevent, kHostInputSysfs, 5, "bad \"x\"\n"};
  EXPECT_EQ(
      to_json(c),
      R"({"cpu":7,"change":"online","cause":"uevent","latency_us":5,"error":"bad \"x\"\n"})");
  EXPECT_STREQ(to_string(HostCause::kAffinity), "affinity");
  EXPECT_STREQ(to_string(HostCause::kRecheck), "recheck");
}

// ----------------------------------------------------------- the real root

TEST(HostReal, ThisMachine) {
  auto snap = read_host_snapshot("/");
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  HostOptions o;
  o.follow = false;
  auto h = HostCpus::create(o);
  ASSERT_TRUE(h.ok()) << h.error().message();
  EXPECT_TRUE((*h)->domain().host_bound());
  EXPECT_EQ((*h)->domain().capacity(), snap->capacity);
  EXPECT_EQ((*h)->domain().online(), (*h)->snapshot().wanted);
  EXPECT_FALSE((*h)->domain().online().empty());
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  for (unsigned cpu = 0; cpu < snap->capacity; ++cpu)
    EXPECT_EQ(snap->affinity.test(cpu), CPU_ISSET(cpu, &set) != 0)
        << "Cpus_allowed_list disagrees with sched_getaffinity for CPU " << cpu;
  std::printf("this machine: possible %s, online %s, affinity %s, cpuset %s, wanted %s\n",
              snap->possible.to_string().c_str(), snap->sysfs_online.to_string().c_str(),
              snap->affinity.to_string().c_str(), snap->cpuset.to_string().c_str(),
              snap->wanted.to_string().c_str());
}

}  // namespace
}  // namespace cpuhp
