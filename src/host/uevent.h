// src/host/uevent.h — kernel uevents about CPUs: the datagram parser (pure,
// fuzzable), the sender check, and the NETLINK_KOBJECT_UEVENT socket.
//
// Wire format (lib/kobject_uevent.c): one datagram per event,
//   "ACTION@DEVPATH" '\0' "KEY=VALUE" '\0' "KEY=VALUE" '\0' ...
// e.g. "offline@/devices/system/cpu/cpu3\0ACTION=offline\0
//       DEVPATH=/devices/system/cpu/cpu3\0SUBSYSTEM=cpu\0SEQNUM=4711\0".
// udevd re-broadcasts events with a "libudev" header on group 2; the kernel
// uses group 1, the only one the socket here joins.
//
// Any local process may send to group 1 (root in the network namespace, or
// anyone on old kernels), so a datagram is trusted only if the kernel sent it:
// sender port id 0 in the source address AND SCM_CREDENTIALS present with
// pid 0 and uid 0. Everything else is dropped and counted as forged. User
// space cannot forge port id 0: the kernel stamps the sending socket's own,
// never-zero, port id.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "cpuhp/error.h"
#include "cpuhp/host.h"

namespace cpuhp::host {

struct CpuUevent {
  enum class Action { kAdd, kRemove, kChange, kOnline, kOffline };
  Action action;
  unsigned cpu;              // N of /devices/system/cpu/cpuN, < kMaxCpus
  std::uint64_t seqnum = 0;  // SEQNUM=, 0 if absent
};

const char* to_string(CpuUevent::Action action) noexcept;

// Parses one datagram. Returns the event if it is a well-formed kernel uevent
// whose DEVPATH is exactly /devices/system/cpu/cpuN (N decimal, no leading
// zero, < kMaxCpus) and whose ACTION is add/remove/change/online/offline;
// otherwise nullopt (other devices, "libudev" datagrams, garbage). Well formed:
// a header "ACTION@DEVPATH" before the first NUL, then NUL-separated
// KEY=VALUE fields (empty fields are skipped); ACTION=, DEVPATH= and
// SUBSYSTEM= must agree with the header and with "cpu" when present; SEQNUM=
// must be a decimal number when present. Total on any bytes: never reads
// outside `datagram`, never throws, never allocates.
std::optional<CpuUevent> parse_cpu_uevent(std::string_view datagram) noexcept;

// The sender check plus the parser: kForged unless the source is the kernel
// (see the file comment), then kAccepted for a CPU event, kIgnored for any
// other kernel datagram. `truncated`: the datagram did not fit the receive
// buffer (MSG_TRUNC); a truncated kernel datagram is kIgnored.
struct UeventCheck {
  UeventVerdict verdict;
  std::optional<CpuUevent> event;  // set iff kAccepted
};
UeventCheck check_uevent(std::string_view datagram, const UeventSource& source,
                         bool truncated = false) noexcept;

// The receiving socket: NETLINK_KOBJECT_UEVENT, group 1, SO_PASSCRED,
// non-blocking, close-on-exec.
class UeventSocket {
 public:
  static Result<UeventSocket> open();
  UeventSocket(UeventSocket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UeventSocket& operator=(UeventSocket&& other) noexcept;
  UeventSocket(const UeventSocket&) = delete;
  UeventSocket& operator=(const UeventSocket&) = delete;
  ~UeventSocket();

  int fd() const noexcept { return fd_; }

  // One datagram, without blocking.
  enum class Recv { kDatagram, kEmpty, kOverflow, kError };
  struct Received {
    Recv status;
    UeventCheck check{UeventVerdict::kIgnored, std::nullopt};
    int error = 0;  // errno for kError
  };
  Received receive() noexcept;

 private:
  explicit UeventSocket(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace cpuhp::host
