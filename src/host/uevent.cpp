// Kernel CPU uevents: parser, sender check, netlink socket. See uevent.h.
#include "uevent.h"

#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../strf.h"
#include "cpuhp/cpumask.h"

namespace cpuhp::host {

using detail::strf;

const char* to_string(CpuUevent::Action action) noexcept {
  switch (action) {
    case CpuUevent::Action::kAdd:
      return "add";
    case CpuUevent::Action::kRemove:
      return "remove";
    case CpuUevent::Action::kChange:
      return "change";
    case CpuUevent::Action::kOnline:
      return "online";
    case CpuUevent::Action::kOffline:
      return "offline";
  }
  return "?";
}

namespace {

constexpr std::string_view kCpuDevpathPrefix = "/devices/system/cpu/cpu";

std::optional<CpuUevent::Action> parse_action(std::string_view s) noexcept {
  if (s == "add") return CpuUevent::Action::kAdd;
  if (s == "remove") return CpuUevent::Action::kRemove;
  if (s == "change") return CpuUevent::Action::kChange;
  if (s == "online") return CpuUevent::Action::kOnline;
  if (s == "offline") return CpuUevent::Action::kOffline;
  return std::nullopt;
}

// Decimal without sign or leading zero (except "0" itself), at most `max`.
std::optional<std::uint64_t> parse_decimal(std::string_view s,
                                           std::uint64_t max) noexcept {
  if (s.empty() || s.size() > 20) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (max - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// CPU id of exactly "/devices/system/cpu/cpuN".
std::optional<unsigned> parse_cpu_devpath(std::string_view devpath) noexcept {
  if (devpath.size() <= kCpuDevpathPrefix.size() ||
      devpath.substr(0, kCpuDevpathPrefix.size()) != kCpuDevpathPrefix)
    return std::nullopt;
  auto n = parse_decimal(devpath.substr(kCpuDevpathPrefix.size()), kMaxCpus - 1);
  if (!n) return std::nullopt;
  return static_cast<unsigned>(*n);
}

}  // namespace

std::optional<CpuUevent> parse_cpu_uevent(std::string_view datagram) noexcept {
  const std::size_t header_end = std::min(datagram.find('\0'), datagram.size());
  const std::string_view header = datagram.substr(0, header_end);
  const std::size_t at = header.find('@');
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view action_text = header.substr(0, at);
  const std::string_view devpath = header.substr(at + 1);
  const auto action = parse_action(action_text);
  if (!action) return std::nullopt;
  const auto cpu = parse_cpu_devpath(devpath);
  if (!cpu) return std::nullopt;

  CpuUevent ev{*action, *cpu, 0};
  std::size_t pos = header_end;  // at the NUL ending the header, or the end
  while (pos < datagram.size()) {
    ++pos;  // skip the NUL
    const std::size_t end = std::min(datagram.find('\0', pos), datagram.size());
    const std::string_view field = datagram.substr(pos, end - pos);
    pos = end;
    if (field.empty()) continue;
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos || eq == 0) return std::nullopt;
    const std::string_view key = field.substr(0, eq);
    const std::string_view value = field.substr(eq + 1);
    if (key == "ACTION") {
      if (value != action_text) return std::nullopt;
    } else if (key == "DEVPATH") {
      if (value != devpath) return std::nullopt;
    } else if (key == "SUBSYSTEM") {
      if (value != "cpu") return std::nullopt;
    } else if (key == "SEQNUM") {
      auto seq = parse_decimal(value, ~std::uint64_t{0});
      if (!seq) return std::nullopt;
      ev.seqnum = *seq;
    }
  }
  return ev;
}

UeventCheck check_uevent(std::string_view datagram, const UeventSource& source,
                         bool truncated) noexcept {
  const bool from_kernel =
      source.nl_pid == 0 && source.has_credentials && source.pid == 0 && source.uid == 0;
  if (!from_kernel) return {UeventVerdict::kForged, std::nullopt};
  if (truncated) return {UeventVerdict::kIgnored, std::nullopt};
  auto ev = parse_cpu_uevent(datagram);
  if (!ev) return {UeventVerdict::kIgnored, std::nullopt};
  return {UeventVerdict::kAccepted, ev};
}

// ---- socket ----------------------------------------------------------------

Result<UeventSocket> UeventSocket::open() {
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                          NETLINK_KOBJECT_UEVENT);
  if (fd < 0)
    return Error(Errc::kSystem, strf("cannot open a NETLINK_KOBJECT_UEVENT socket: %s",
                                     std::strerror(errno)));
  UeventSocket sock(fd);
  const int on = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
    return Error(Errc::kSystem,
                 strf("uevent socket: SO_PASSCRED: %s", std::strerror(errno)));
  // A burst (hundreds of CPUs, SMT toggled) must not overflow the queue.
  // SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped by rmem_max.
  const int size = 1 << 20;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_pid = 0;  // the kernel picks our port id
  addr.nl_groups = 1;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return Error(Errc::kSystem,
                 strf("uevent socket: bind to group 1: %s", std::strerror(errno)));
  return sock;
}

UeventSocket& UeventSocket::operator=(UeventSocket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

UeventSocket::~UeventSocket() {
  if (fd_ >= 0) ::close(fd_);
}

UeventSocket::Received UeventSocket::receive() noexcept {
  // The kernel's uevent buffer is 2 KiB (UEVENT_BUFFER_SIZE); room to spare.
  char buf[8192];
  char control[CMSG_SPACE(sizeof(ucred))];
  sockaddr_nl from{};
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {Recv::kEmpty};
    if (errno == ENOBUFS) return {Recv::kOverflow};
    return {Recv::kError, {UeventVerdict::kIgnored, std::nullopt}, errno};
  }
  UeventSource source;
  if (msg.msg_namelen >= sizeof(sockaddr_nl) && from.nl_family == AF_NETLINK) {
    source.nl_pid = from.nl_pid;
    source.nl_groups = from.nl_groups;
  } else {
    source.nl_pid = ~std::uint32_t{0};  // unknown sender: not the kernel
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
        c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      source.has_credentials = true;
      source.pid = cred.pid;
      source.uid = cred.uid;
      source.gid = cred.gid;
    }
  }
  const bool truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  const std::size_t len =
      static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf;
  return {Recv::kDatagram, check_uevent(std::string_view(buf, len), source, truncated)};
}

}  // namespace cpuhp::host
