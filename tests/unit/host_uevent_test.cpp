// Kernel CPU uevents (src/host/uevent.h): the datagram parser on well-formed,
// foreign and hostile bytes; the sender check (kernel vs forged) as a pure
// function; and the real thing: a forged "offline@/devices/system/cpu/cpuN"
// sent from user space to the kernel's multicast group must be dropped and
// counted by a HostCpus following the real machine, which keeps its CPUs.
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/host.h"
#include "host/uevent.h"
#include "support/waiting.h"

namespace cpuhp {
namespace {

using namespace std::chrono_literals;
using host::check_uevent;
using host::CpuUevent;
using host::parse_cpu_uevent;

// A datagram as the kernel builds it: header, then KEY=VALUE fields, each
// followed by a NUL.
std::string kernel_datagram(const std::string& action, const std::string& devpath,
                            const std::vector<std::string>& extra = {"SUBSYSTEM=cpu",
                                                                     "SEQNUM=4711"}) {
  std::string d = action + "@" + devpath;
  d.push_back('\0');
  for (const std::string& f :
       std::vector<std::string>{"ACTION=" + action, "DEVPATH=" + devpath}) {
    d += f;
    d.push_back('\0');
  }
  for (const std::string& f : extra) {
    d += f;
    d.push_back('\0');
  }
  return d;
}

// A string literal with its embedded NULs.
template <std::size_t N>
std::string lit(const char (&s)[N]) {
  return std::string(s, N - 1);
}

// ------------------------------------------------------------------ parser

TEST(ParseCpuUevent, EveryActionOfACpu) {
  const std::pair<const char*, CpuUevent::Action> cases[] = {
      {"online", CpuUevent::Action::kOnline}, {"offline", CpuUevent::Action::kOffline},
      {"add", CpuUevent::Action::kAdd},       {"remove", CpuUevent::Action::kRemove},
      {"change", CpuUevent::Action::kChange},
  };
  for (const auto& [name, action] : cases) {
    auto ev = parse_cpu_uevent(kernel_datagram(name, "/devices/system/cpu/cpu3"));
    ASSERT_TRUE(ev.has_value()) << name;
    EXPECT_EQ(ev->action, action) << name;
    EXPECT_EQ(ev->cpu, 3u);
    EXPECT_EQ(ev->seqnum, 4711u);
    EXPECT_STREQ(host::to_string(ev->action), name);
  }
}

TEST(ParseCpuUevent, CpuIds) {
  EXPECT_EQ(parse_cpu_uevent(kernel_datagram("online", "/devices/system/cpu/cpu0"))->cpu,
            0u);
  EXPECT_EQ(
      parse_cpu_uevent(kernel_datagram("online", "/devices/system/cpu/cpu8191"))->cpu,
      8191u);
  // Beyond kMaxCpus, leading zeros, signs, nothing: not a CPU of ours.
  for (const char* bad :
       {"/devices/system/cpu/cpu8192", "/devices/system/cpu/cpu01",
        "/devices/system/cpu/cpu+1", "/devices/system/cpu/cpu-1",
        "/devices/system/cpu/cpu", "/devices/system/cpu/cpu99999999999999999999999",
        "/devices/system/cpu/cpu1 "})
    EXPECT_FALSE(parse_cpu_uevent(kernel_datagram("online", bad)).has_value()) << bad;
}

TEST(ParseCpuUevent, OtherDevicesAreNotCpuEvents) {
  for (const char* devpath :
       {"/devices/system/cpu/cpu1/cache/index0", "/devices/system/cpu/cpufreq",
        "/devices/system/memory/memory3", "/devices/system/cpu", "/devices/system/cpu/",
        "/devices/virtual/net/lo", "/devices/system/cpu/cpu1/"})
    EXPECT_FALSE(parse_cpu_uevent(kernel_datagram("online", devpath)).has_value())
        << devpath;
  // Other actions (bind, move) are not hotplug.
  EXPECT_FALSE(
      parse_cpu_uevent(kernel_datagram("bind", "/devices/system/cpu/cpu1")).has_value());
  EXPECT_FALSE(
      parse_cpu_uevent(kernel_datagram("move", "/devices/system/cpu/cpu1")).has_value());
}

TEST(ParseCpuUevent, InconsistentFieldsAreRejected) {
  const std::string dp = "/devices/system/cpu/cpu1";
  std::string d = "offline@" + dp;
  d.push_back('\0');
  d += "ACTION=online";  // disagrees with the header
  d.push_back('\0');
  EXPECT_FALSE(parse_cpu_uevent(d).has_value());
  EXPECT_FALSE(parse_cpu_uevent(kernel_datagram("offline", dp, {"SUBSYSTEM=memory"})));
  EXPECT_FALSE(parse_cpu_uevent(kernel_datagram("offline", dp, {"SEQNUM=12x"})));
  EXPECT_FALSE(parse_cpu_uevent(kernel_datagram("offline", dp, {"NOEQUALS"})));
  EXPECT_FALSE(parse_cpu_uevent(kernel_datagram("offline", dp, {"=value"})));
  std::string other = "offline@" + dp;
  other.push_back('\0');
  other += "DEVPATH=/devices/system/cpu/cpu2";
  EXPECT_FALSE(parse_cpu_uevent(other).has_value());
}

TEST(ParseCpuUevent, MinimalAndTolerantForms) {
  // Header only, no NUL at all; empty fields; unknown keys; no trailing NUL.
  auto ev = parse_cpu_uevent("offline@/devices/system/cpu/cpu1");
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->action, CpuUevent::Action::kOffline);
  EXPECT_EQ(ev->seqnum, 0u);
  std::string d = "online@/devices/system/cpu/cpu2";
  d += lit("\0\0FOO=bar\0SEQNUM=18446744073709551615");
  ev = parse_cpu_uevent(d);
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->cpu, 2u);
  EXPECT_EQ(ev->seqnum, 18446744073709551615u);
  EXPECT_FALSE(parse_cpu_uevent(kernel_datagram("online", "/devices/system/cpu/cpu2",
                                                {"SEQNUM=18446744073709551616"})));
}

TEST(ParseCpuUevent, GarbageIsRejected) {
  const std::string cases[] = {
      "",
      std::string(1, '\0'),
      "@",
      "online@",
      "@/devices/system/cpu/cpu1",
      lit("libudev\0\xfe\xed\xca\xfe"),
      "online/devices/system/cpu/cpu1",
      lit("online\0@/devices/system/cpu/cpu1"),
      "ONLINE@/devices/system/cpu/cpu1",
      "online@@/devices/system/cpu/cpu1",
  };
  for (const std::string& c : cases) EXPECT_FALSE(parse_cpu_uevent(c).has_value());
}

TEST(ParseCpuUevent, RandomBytesNeverCrash) {
  // The fuzzer's job, in small: mutations of a valid datagram and random bytes.
  std::mt19937 rng(12345);
  const std::string base = kernel_datagram("offline", "/devices/system/cpu/cpu7");
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string d = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 3) {
        case 0:
          d[rng() % d.size()] = static_cast<char>(rng());
          break;
        case 1:
          d.resize(rng() % (d.size() + 1));
          if (d.empty()) d = "x";
          break;
        default:
          d.insert(d.begin() + static_cast<long>(rng() % d.size()),
                   static_cast<char>(rng()));
      }
    }
    auto ev = parse_cpu_uevent(d);
    if (ev) {
      ++accepted;
      EXPECT_LT(ev->cpu, kMaxCpus);
    }
  }
  for (int i = 0; i < 5000; ++i) {
    std::string d(rng() % 64, '\0');
    for (char& c : d) c = static_cast<char>(rng());
    (void)parse_cpu_uevent(d);
  }
  EXPECT_GT(accepted, 0);  // some mutations (in unknown fields) stay valid
}

// ------------------------------------------------------------- sender check

TEST(CheckUevent, OnlyTheKernelIsTrusted) {
  const std::string d = kernel_datagram("offline", "/devices/system/cpu/cpu1");
  auto ok = check_uevent(d, UeventSource::kernel());
  EXPECT_EQ(ok.verdict, UeventVerdict::kAccepted);
  ASSERT_TRUE(ok.event.has_value());
  EXPECT_EQ(ok.event->cpu, 1u);

  UeventSource s = UeventSource::kernel();
  s.nl_pid = 4242;  // a user-space socket's port id
  EXPECT_EQ(check_uevent(d, s).verdict, UeventVerdict::kForged);
  s = UeventSource::kernel();
  s.has_credentials = false;  // no SCM_CREDENTIALS: cannot tell
  EXPECT_EQ(check_uevent(d, s).verdict, UeventVerdict::kForged);
  s = UeventSource::kernel();
  s.pid = 1234;  // a process sent it, even as root
  EXPECT_EQ(check_uevent(d, s).verdict, UeventVerdict::kForged);
  s = UeventSource::kernel();
  s.uid = 1000;
  EXPECT_EQ(check_uevent(d, s).verdict, UeventVerdict::kForged);
  EXPECT_FALSE(check_uevent(d, s).event.has_value());
}

TEST(CheckUevent, KernelDatagramsAboutOtherThingsAreIgnored) {
  EXPECT_EQ(check_uevent(kernel_datagram("add", "/devices/virtual/net/lo"),
                         UeventSource::kernel())
                .verdict,
            UeventVerdict::kIgnored);
  EXPECT_EQ(check_uevent("garbage", UeventSource::kernel()).verdict,
            UeventVerdict::kIgnored);
  // A truncated datagram is never trusted to say anything.
  EXPECT_EQ(check_uevent(kernel_datagram("offline", "/devices/system/cpu/cpu1"),
                         UeventSource::kernel(), /*truncated=*/true)
                .verdict,
            UeventVerdict::kIgnored);
}

// ------------------------------------------------- forged uevent, for real

TEST(ForgedUevent, FromUserSpaceIsDroppedAndCounted) {
  auto sock = host::UeventSocket::open();
  if (!sock.ok()) GTEST_SKIP() << "no uevent socket here: " << sock.error().message();

  std::mutex mu;
  std::vector<HostChange> changes;
  HostOptions opt;
  opt.recheck = 20ms;
  opt.on_change = [&](const HostChange& c) {
    std::lock_guard<std::mutex> g(mu);
    changes.push_back(c);
  };
  opt.on_warning = [](const std::string&) {};
  auto host = HostCpus::create(opt);
  ASSERT_TRUE(host.ok()) << host.error().message();
  HostCpus& h = **host;
  ASSERT_TRUE(h.uevents_open());
  const CpuMask before = h.domain().online();
  // The victim: CPU 1 if the domain has it online, else the highest online CPU.
  const unsigned victim = before.test(1) ? 1u : before.last();

  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  sockaddr_nl self{};
  self.nl_family = AF_NETLINK;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof self), 0)
      << std::strerror(errno);
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  to.nl_pid = 0;
  to.nl_groups = 1;  // the kernel's uevent group
  const std::string forged =
      kernel_datagram("offline", "/devices/system/cpu/cpu" + std::to_string(victim));
  const ssize_t sent = ::sendto(fd, forged.data(), forged.size(), 0,
                                reinterpret_cast<sockaddr*>(&to), sizeof to);
  const int send_errno = errno;
  ::close(fd);
  if (sent < 0 && (send_errno == EPERM || send_errno == EACCES))
    GTEST_SKIP() << "sending to uevent group 1 needs CAP_NET_ADMIN: "
                 << std::strerror(send_errno);
  ASSERT_EQ(sent, static_cast<ssize_t>(forged.size())) << std::strerror(send_errno);

  EXPECT_TRUE(testing_support::eventually([&] { return h.stats().uevents_forged >= 1; }))
      << "the forged uevent was not seen and dropped";
  // Let a few re-checks pass: nothing may change.
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(h.domain().online().test(victim)) << "a forged uevent took CPU down";
  EXPECT_EQ(h.domain().online(), before);
  std::lock_guard<std::mutex> g(mu);
  for (const HostChange& c : changes)
    ADD_FAILURE() << "unexpected change: " << to_json(c);
}

TEST(ForgedUevent, DeliveredDatagramsGoThroughTheSameCheck) {
  // deliver_uevent() is the socket path without a socket: a forged source is
  // counted and dropped before anything is read or applied.
  HostOptions opt;
  opt.follow = false;
  auto host = HostCpus::create(opt);
  ASSERT_TRUE(host.ok()) << host.error().message();
  UeventSource forged = UeventSource::kernel();
  forged.nl_pid = static_cast<std::uint32_t>(::getpid());
  forged.pid = ::getpid();
  auto v = (*host)->deliver_uevent(kernel_datagram("offline", "/devices/system/cpu/cpu0"),
                                   forged);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, UeventVerdict::kForged);
  EXPECT_EQ((*host)->stats().uevents_forged, 1u);
  EXPECT_EQ((*host)->stats().recomputations, 0u);
  v = (*host)->deliver_uevent("add@/devices/virtual/net/lo", UeventSource::kernel());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, UeventVerdict::kIgnored);
  EXPECT_EQ((*host)->stats().recomputations, 0u);
  v = (*host)->deliver_uevent(kernel_datagram("online", "/devices/system/cpu/cpu0"),
                              UeventSource::kernel());
  ASSERT_TRUE(v.ok()) << v.error().message();
  EXPECT_EQ(*v, UeventVerdict::kAccepted);
  EXPECT_EQ((*host)->stats().recomputations, 1u);
  EXPECT_EQ((*host)->stats().uevents_accepted, 1u);
}

}  // namespace
}  // namespace cpuhp
