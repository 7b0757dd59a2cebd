// HostCpus against the real kernel's cgroup cpuset: the test creates its own
// cgroup (v1 under the cpuset hierarchy's mount, else v2 with the cpuset
// controller), starts a child process (this binary again, running only
// HostCgroupChild.Run) that moves itself into the cgroup and follows the host
// with a 20 ms re-check, then shrinks the cpuset by one CPU and grows it back,
// and checks that the child's domain took exactly that CPU down and up again.
// The child reports each change (cause, latency) through a pipe; the parent
// prints the latency from its write(2) to the cpuset file to the report.
//
// Skipped, with the reason, when not root, when no cpuset controller is
// available (v2 without cpuset, e.g. a hybrid machine's unified hierarchy),
// when fewer than two CPUs are usable, or when the cgroup cannot be made.
// Cleanup always runs: the child is told to exit (then killed if it must be),
// the cgroup removed, a v2 subtree_control change undone.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/host.h"
#include "host/sources.h"
#include "support/waiting.h"

extern char** environ;

namespace cpuhp {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kChildEnv = "CPUHP_HOST_CGROUP_CHILD";
constexpr int kReportFd = 100;   // child -> parent: one line per event
constexpr int kControlFd = 101;  // parent -> child: EOF means "exit"

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::optional<std::string> read_file(const std::string& path) {
  auto r = host::read_text(path);
  if (!r.ok()) return std::nullopt;
  return *r;
}

// write(2) of the whole text in one call, as `echo x > file` does. Returns
// "" or the error.
std::string write_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return path + ": " + std::strerror(errno);
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int e = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    return path + ": write \"" + trim(text) + "\": " + std::strerror(n < 0 ? e : EIO);
  return "";
}

void write_all(int fd, const std::string& s) {
  const char* p = s.data();
  std::size_t left = s.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

// ------------------------------------------------------------ the child

// Runs only in the child process (the environment variable names the cgroup
// directory); a no-op skip in a normal run.
TEST(HostCgroupChild, Run) {
  const char* dir = std::getenv(kChildEnv);
  if (dir == nullptr)
    GTEST_SKIP() << "helper process of HostCgroup.ChildFollowsShrinkAndGrow; runs only "
                    "when started by it";
  if (std::string err = write_file(std::string(dir) + "/cgroup.procs", "0\n");
      !err.empty()) {
    write_all(kReportFd, "error cannot join the cgroup: " + err + "\n");
    FAIL() << err;
  }
  // on_change may run before create() returns: publish the pointer atomically.
  std::atomic<HostCpus*> self{nullptr};
  HostOptions o;
  o.recheck = 20ms;
  o.on_change = [&self](const HostChange& c) {
    HostCpus* h = self.load(std::memory_order_acquire);
    std::ostringstream line;
    line << "change " << c.cpu << ' ' << (c.online ? "online" : "offline") << ' '
         << to_string(c.cause) << ' ' << c.latency_us << ' '
         << (h ? h->domain().online().to_string() : std::string("?"))
         << (c.error.empty() ? "" : " ERROR ") << c.error << '\n';
    write_all(kReportFd, line.str());
  };
  auto h = HostCpus::create(o);
  if (!h.ok()) {
    write_all(kReportFd, "error " + h.error().message() + "\n");
    FAIL() << h.error().message();
  }
  self.store(h->get(), std::memory_order_release);
  const HostSnapshot s = (*h)->snapshot();
  write_all(kReportFd, "ready " + (*h)->domain().online().to_string() + " " +
                           (s.cgroup_v1.empty() ? s.cgroup_v2 : s.cgroup_v1) + " " +
                           std::to_string((*h)->cgroup_watches()) + "\n");
  for (char byte;;) {  // until the parent closes the control pipe
    const ssize_t n = ::read(kControlFd, &byte, 1);
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  h->reset();
  write_all(kReportFd, "bye\n");
}

// ----------------------------------------------------------- the parent

class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // The next line, or nullopt on timeout / EOF.
  std::optional<std::string> next(Clock::time_point deadline) {
    while (true) {
      const std::size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        seen_.push_back(line);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char tmp[512];
      const ssize_t n = ::read(fd_, tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }
  // Reads until a line starts with `prefix`.
  std::optional<std::string> until(const std::string& prefix,
                                   std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (auto line = next(deadline))
      if (line->compare(0, prefix.size(), prefix) == 0) return line;
    return std::nullopt;
  }
  std::string transcript() const {
    std::string s;
    for (const std::string& l : seen_) s += "  " + l + "\n";
    return s;
  }

 private:
  int fd_;
  std::string buf_;
  std::vector<std::string> seen_;
};

struct CgroupPlan {
  int version = 0;
  std::string mount;         // the hierarchy's mount point
  std::string dir;           // our cgroup
  std::string cpus_file;     // cpuset.cpus of our cgroup
  std::string undo_subtree;  // v2: subtree_control to restore ("" = nothing)
  std::string skip;          // why the test cannot run here
};

std::optional<host::MountEntry> find_mount(bool v1) {
  auto text = read_file("/proc/self/mountinfo");
  if (!text) return std::nullopt;
  auto mounts = host::parse_mountinfo(*text, "/proc/self/mountinfo");
  if (!mounts.ok()) return std::nullopt;
  for (const host::MountEntry& m : *mounts) {
    if (m.root != "/") continue;
    if (v1 && m.fstype == "cgroup" &&
        ("," + m.super_options + ",").find(",cpuset,") != std::string::npos)
      return m;
    if (!v1 && m.fstype == "cgroup2") return m;
  }
  return std::nullopt;
}

// Makes the cgroup with `cpus`; on failure plan.skip says why.
CgroupPlan make_cgroup(const std::string& cpus) {
  CgroupPlan plan;
  const std::string name = "cpuhp-test-" + std::to_string(::getpid());
  if (auto m = find_mount(true)) {
    plan.version = 1;
    plan.mount = m->mount_point;
    plan.dir = plan.mount + "/" + name;
    if (::mkdir(plan.dir.c_str(), 0755) != 0) {
      plan.skip = "cannot create " + plan.dir + ": " + std::strerror(errno);
      plan.dir.clear();
      return plan;
    }
    // v1: a cpuset needs mems and cpus before it can hold a task.
    auto mems = read_file(plan.mount + "/cpuset.mems");
    if (!mems) {
      plan.skip = "cannot read " + plan.mount + "/cpuset.mems";
      return plan;
    }
    if (std::string e = write_file(plan.dir + "/cpuset.mems", trim(*mems) + "\n");
        !e.empty()) {
      plan.skip = "cannot set cpuset.mems: " + e;
      return plan;
    }
  } else if (auto m2 = find_mount(false)) {
    plan.version = 2;
    plan.mount = m2->mount_point;
    auto controllers = read_file(plan.mount + "/cgroup.controllers");
    if (!controllers ||
        (" " + trim(*controllers) + " ").find(" cpuset ") == std::string::npos) {
      plan.skip = "cgroup v2 at " + plan.mount +
                  " has no cpuset controller (it is not mounted as v1 either)";
      return plan;
    }
    auto subtree = read_file(plan.mount + "/cgroup.subtree_control");
    if (subtree && (" " + trim(*subtree) + " ").find(" cpuset ") == std::string::npos) {
      if (std::string e = write_file(plan.mount + "/cgroup.subtree_control", "+cpuset\n");
          !e.empty()) {
        plan.skip = "cannot enable the cpuset controller: " + e;
        return plan;
      }
      plan.undo_subtree = "-cpuset\n";
    }
    plan.dir = plan.mount + "/" + name;
    if (::mkdir(plan.dir.c_str(), 0755) != 0) {
      plan.skip = "cannot create " + plan.dir + ": " + std::strerror(errno);
      plan.dir.clear();
      return plan;
    }
  } else {
    plan.skip =
        "no cpuset controller: neither a v1 cpuset hierarchy nor cgroup v2 is "
        "mounted";
    return plan;
  }
  plan.cpus_file = plan.dir + "/cpuset.cpus";
  if (std::string e = write_file(plan.cpus_file, cpus + "\n"); !e.empty())
    plan.skip = "cannot set cpuset.cpus: " + e;
  return plan;
}

// Always runs: child told to exit (killed if it does not), cgroup removed.
struct Cleanup {
  pid_t child = -1;
  int control_w = -1;
  int report_r = -1;
  CgroupPlan* plan = nullptr;
  ~Cleanup() {
    if (control_w >= 0) ::close(control_w);  // EOF: the child exits
    if (child > 0) {
      const auto deadline = Clock::now() + 5s;
      int status = 0;
      pid_t r = 0;
      while ((r = ::waitpid(child, &status, WNOHANG)) == 0 && Clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
      if (r == 0) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
      }
    }
    if (report_r >= 0) ::close(report_r);
    if (plan && !plan->dir.empty()) {
      // The exited child may linger in the cgroup a moment after waitpid().
      (void)testing_support::eventually(
          [&] { return ::rmdir(plan->dir.c_str()) == 0 || errno == ENOENT; });
      if (::access(plan->dir.c_str(), F_OK) == 0)
        std::fprintf(stderr, "warning: could not remove %s\n", plan->dir.c_str());
    }
    if (plan && !plan->undo_subtree.empty())
      (void)write_file(plan->mount + "/cgroup.subtree_control", plan->undo_subtree);
  }
};

long long micros(Clock::duration d) {
  return static_cast<long long>(
      std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

// "change CPU online|offline CAUSE LATENCY_US DOMAIN_ONLINE"
struct ChangeLine {
  unsigned cpu = 0;
  std::string change, cause, online_after;
  long long latency_us = -1;
};
ChangeLine parse_change(const std::string& line) {
  ChangeLine c;
  std::istringstream in(line);
  std::string word;
  in >> word >> c.cpu >> c.change >> c.cause >> c.latency_us >> c.online_after;
  return c;
}

TEST(HostCgroup, ChildFollowsShrinkAndGrow) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a cgroup";
  auto snap = read_host_snapshot("/");
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  if (snap->wanted.weight() < 2)
    GTEST_SKIP() << "needs two usable CPUs, this process has "
                 << snap->wanted.to_string();
  const CpuMask all = snap->wanted;
  const unsigned victim = all.last();
  CpuMask shrunk = all;
  shrunk.clear(victim);

  CgroupPlan plan = make_cgroup(all.to_string());
  Cleanup cleanup;
  cleanup.plan = &plan;
  if (!plan.skip.empty()) GTEST_SKIP() << plan.skip;

  int report[2], control[2];
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(control, O_CLOEXEC), 0);
  cleanup.report_r = report[0];
  cleanup.control_w = control[1];

  char exe[4096];
  const ssize_t len = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  ASSERT_GT(len, 0);
  exe[len] = '\0';
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  env_store.push_back(std::string(kChildEnv) + "=" + plan.dir);
  std::vector<char*> envp;
  for (std::string& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string filter = "--gtest_filter=HostCgroupChild.Run";
  char* argv[] = {exe, filter.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, report[1], kReportFd);
  posix_spawn_file_actions_adddup2(&fa, control[0], kControlFd);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t child = -1;
  const int rc = ::posix_spawn(&child, exe, &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(report[1]);
  ::close(control[0]);
  ASSERT_EQ(rc, 0) << "posix_spawn: " << std::strerror(rc);
  cleanup.child = child;

  LineReader lines(report[0]);
  auto ready = lines.until("ready", 30s);
  ASSERT_TRUE(ready) << "the child did not start:\n" << lines.transcript();
  std::printf("child: %s (cgroup v%d %s)\n", ready->c_str(), plan.version,
              plan.dir.c_str());
  {
    std::istringstream in(*ready);
    std::string word, online, cg;
    in >> word >> online >> cg;
    EXPECT_EQ(online, all.to_string());
    EXPECT_NE(cg.find("cpuhp-test-"), std::string::npos)
        << "the child is not in our cgroup";
  }

  // Shrink: the victim must go down, nothing else.
  auto t0 = Clock::now();
  ASSERT_EQ(write_file(plan.cpus_file, shrunk.to_string() + "\n"), "");
  auto tw = Clock::now();
  auto down = lines.until("change", 10s);
  auto t1 = Clock::now();
  ASSERT_TRUE(down) << "no change reported after shrinking the cpuset:\n"
                    << lines.transcript();
  ChangeLine d = parse_change(*down);
  EXPECT_EQ(d.cpu, victim);
  EXPECT_EQ(d.change, "offline");
  EXPECT_EQ(d.online_after, shrunk.to_string());
  std::printf(
      "shrink %s -> %s: CPU %u offline, cause %s, follower latency %lld us; write(2) "
      "took "
      "%lld us, write-to-report %lld us\n",
      all.to_string().c_str(), shrunk.to_string().c_str(), d.cpu, d.cause.c_str(),
      d.latency_us, micros(tw - t0), micros(t1 - t0));

  // Grow back: the victim must come up again.
  t0 = Clock::now();
  ASSERT_EQ(write_file(plan.cpus_file, all.to_string() + "\n"), "");
  tw = Clock::now();
  auto up = lines.until("change", 10s);
  t1 = Clock::now();
  ASSERT_TRUE(up) << "no change reported after growing the cpuset:\n"
                  << lines.transcript();
  ChangeLine u = parse_change(*up);
  EXPECT_EQ(u.cpu, victim);
  EXPECT_EQ(u.change, "online");
  EXPECT_EQ(u.online_after, all.to_string());
  std::printf(
      "grow %s -> %s: CPU %u online, cause %s, follower latency %lld us; write(2) took "
      "%lld us, write-to-report %lld us\n",
      shrunk.to_string().c_str(), all.to_string().c_str(), u.cpu, u.cause.c_str(),
      u.latency_us, micros(tw - t0), micros(t1 - t0));

  // The child shuts down cleanly and reported nothing else.
  ::close(cleanup.control_w);
  cleanup.control_w = -1;
  auto bye = lines.until("bye", 10s);
  EXPECT_TRUE(bye) << lines.transcript();
  for (const std::string& l : {*down, *up})
    EXPECT_EQ(l.find("ERROR"), std::string::npos) << l;
  int changes = 0;
  std::istringstream tr(lines.transcript());
  for (std::string l; std::getline(tr, l);)
    if (l.find("change") != std::string::npos) ++changes;
  EXPECT_EQ(changes, 2) << lines.transcript();
}

}  // namespace
}  // namespace cpuhp
