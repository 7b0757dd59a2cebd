// cpuhp/host.h — a Domain bound to this machine's CPUs, following them as
// they come and go.
//
// CONTRACT
//
// What the domain holds. HostCpus owns a Domain (host_bound() true for the
// real root "/") whose CPU ids are the kernel's:
//   capacity  last id of <root>/sys/devices/system/cpu/possible, plus 1
//             (possible may be sparse, "0-3,8-11": capacity 12);
//   present   sysfs present ∩ possible. CPUs that are not possible are never
//             present. (Domain::possible() is 0..capacity-1 — Domain has no
//             sparse possible mask yet; HostCpus::possible() is the kernel's.)
//   online    the "wanted" set, sysfs online ∩ present ∩ affinity ∩ cpuset:
//     sysfs online  <root>/sys/devices/system/cpu/online
//     affinity      the main thread's allowed CPUs: the "Cpus_allowed_list:"
//                   line of <root>/proc/self/status (/proc/self is the thread
//                   group leader, i.e. the main thread, whatever thread reads)
//     cpuset        the process's cgroup cpuset, found from
//                   <root>/proc/self/cgroup and <root>/proc/self/mountinfo:
//                   v1 ("N:...cpuset...:/path", fstype "cgroup" with option
//                   "cpuset") <mount>/<path>/cpuset.effective_cpus, or
//                   cpuset.cpus on kernels without it; v2 ("0::/path", fstype
//                   "cgroup2") the first cpuset.cpus.effective found from
//                   <mount>/<path> up to the mount's root (a cgroup without the
//                   controller enabled inherits its parent's). Both, when both
//                   exist, are intersected. No cpuset file at all (no cgroups,
//                   the controller not mounted or not enabled): no restriction.
// Every file is parsed with CpuMask::parse (cpulist). Mount points listed in
// mountinfo are taken under <root> too, so a test can point `root` at a fake
// tree (a temporary folder) and exercise everything without privileges.
//
// How changes are seen.
//   By event (reaction in well under 10 ms):
//     * kernel CPU hotplug: a NETLINK_KOBJECT_UEVENT socket (group 1); the
//       kernel sends online/offline (and add/remove for physical hot-add) for
//       /devices/system/cpu/cpuN after the CPU's bit in sysfs online has
//       changed. Only datagrams from the kernel are accepted (source port id
//       0 and SCM_CREDENTIALS pid 0, uid 0); forged ones, which any local
//       process may send, are dropped and counted (HostStats::uevents_forged).
//       An accepted event makes HostCpus re-read the files: the event says
//       "look now", the files say what is true. The files are read again 5,
//       25 and 100 ms after the event: before Linux 6.10 the cpusets'
//       effective CPUs are updated by a work item that may run after the
//       uevent; a change found then is still the uevent's (cause, latency).
//     * cgroup cpuset writes: inotify on the cgroup's directory and each
//       ancestor up to the hierarchy's mount point (IN_MODIFY, IN_CLOSE_WRITE,
//       IN_MOVED_TO, IN_CREATE, IN_DELETE, IN_ATTRIB). cgroupfs reports a
//       write(2) to any of its files (cpuset.cpus of our cgroup or of an
//       ancestor, tasks / cgroup.procs), so shrinking or growing a cpuset is
//       seen at once. In a fake tree the same works for ordinary files.
//   By the periodic re-check only (HostOptions::recheck, default 100 ms: the
//   files are re-read and compared):
//     * affinity changes (sched_setaffinity, taskset): the kernel offers no
//       notification for them;
//     * cpuset changes with no write(2) in a watched directory: the process
//       migrated to another cgroup (the write goes to the destination's file;
//       after a migration the new cgroup's directories are watched), effective
//       CPUs recomputed by the kernel itself (v1 and v2 cpusets shrink on CPU
//       offline, v2 partitions);
//     * sysfs changes without a uevent (uevents off, another network
//       namespace) and any event lost to a receive-buffer overflow;
//     * in a fake tree, sysfs and procfs changes (no events there).
//
// Applying a change. The controlling thread is the follower thread (or the
// caller of refresh()/deliver_uevent()). Per recomputation, in this order:
// CPUs that became present are added to the present mask, every CPU that is
// wanted but not online gets Domain::up(), every online CPU not wanted gets
// Domain::down(), CPUs no longer present leave the present mask. So the
// state callbacks — and PerCpu / PerCpuThreads, clients of the same states —
// follow the machine, and the last online CPU is never taken down: if the
// wanted set is empty (a torn read, a misconfigured fake tree) a warning is
// logged and nothing changes. A failing up/down is reported (HostChange::
// error) once and retried at every later recomputation. HostCpus owns the
// online set: a CPU taken down or up by hand is put back at the next
// recomputation.
//
// Reports. on_change gets one HostChange per CPU that went up or down:
// cause, and latency from the trigger's arrival (the poll() wake-up that
// delivered the uevent or inotify event; for a re-check, the tick) to the
// return of up()/down(), i.e. the end of the teardown (or startup)
// callbacks. cause:
//   kUevent    the CPU's sysfs bit changed and a kernel uevent triggered it
//              (or any input changed at a re-read that follows a uevent);
//   kCgroup    the CPU's cpuset bit changed and a cgroup file event did;
//   kAffinity  the CPU's affinity bit changed (seen by re-check: no event);
//   kRecheck   anything else: a sysfs or cpuset change no event announced,
//              or a retry of an earlier failure.
//
// Errors. create() and read_host_snapshot() return an Error naming the file
// and the reason: kSystem for an unreadable file (with strerror),
// kInvalidArgument (kOutOfRange for a CPU id >= kMaxCpus) for malformed
// content (with CpuMask::parse's message, which quotes the group at fault),
// kInvalidArgument for an empty wanted set. At run time the same problems
// are warnings (on_warning, default: stderr), logged once per distinct
// message; the domain keeps its CPUs until the files make sense again.
//
// Threads. With follow = true one follower thread (all signals blocked)
// polls the uevent socket, the inotify descriptor and an eventfd with the
// re-check period as timeout. It starts at the end of create(), so
// on_change may run before create() has returned: a callback that needs the
// HostCpus must get the pointer through an atomic (or other synchronisation)
// published after create(). on_change and on_warning run on the thread
// that applies the change, with HostCpus's apply lock held: they may call
// snapshot(), stats(), possible(), read the domain's masks; refresh() or
// deliver_uevent() from them returns kWouldDeadlock; they must not destroy
// the HostCpus. The Domain itself may be used from any thread as its
// contract allows (setup_state, PerCpu, PerCpuThreads, readers). Destroying
// the HostCpus stops and joins the follower first (the eventfd wakes it),
// then destroys the Domain: objects registered on the domain must be gone
// before.
//
// fork(): the child has no follower thread; it must not use or destroy an
// inherited HostCpus (see cpuhp/rcu.h, "fork()").
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cpuhp/cpumask.h"
#include "cpuhp/domain.h"
#include "cpuhp/error.h"

namespace cpuhp {

enum class HostCause { kUevent, kCgroup, kAffinity, kRecheck };
const char* to_string(HostCause cause) noexcept;  // "uevent", "cgroup", ...

// Which inputs differed for a CPU (bits of HostChange::inputs).
inline constexpr unsigned kHostInputSysfs = 1;     // sysfs online or present
inline constexpr unsigned kHostInputCpuset = 2;    // cgroup cpuset
inline constexpr unsigned kHostInputAffinity = 4;  // main thread's affinity

struct HostChange {
  unsigned cpu;
  bool online;  // true: brought up; false: taken down
  HostCause cause;
  unsigned inputs;          // kHostInput* bits that changed for this CPU
  std::int64_t latency_us;  // trigger arrival -> up()/down() returned
  std::string error;        // empty on success, else why the CPU stayed as it was
};

// One JSON object, no newline:
//   {"cpu":1,"change":"offline","cause":"cgroup","latency_us":123}
// plus "error":"..." when the change failed.
std::string to_json(const HostChange& change);

// What the files say, at one moment. All masks have capacity `capacity`.
struct HostSnapshot {
  explicit HostSnapshot(unsigned capacity);
  unsigned capacity;
  CpuMask possible;             // sysfs possible
  CpuMask present;              // sysfs present ∩ possible
  CpuMask sysfs_online;         // sysfs online ∩ possible
  CpuMask affinity;             // Cpus_allowed_list of the main thread
  CpuMask cpuset;               // effective cpuset (all possible CPUs if unrestricted)
  CpuMask wanted;               // sysfs_online ∩ present ∩ affinity ∩ cpuset
  bool cpuset_limited = false;  // some cpuset file was found and read
  std::vector<std::string> cpuset_files;  // those files (under root)
  std::string cgroup_v1;                  // cpuset hierarchy path, "" if none
  std::string cgroup_v2;                  // unified hierarchy path, "" if none
};

// Reads every input once, without creating a Domain (the tool's report).
Result<HostSnapshot> read_host_snapshot(const std::string& root = "/");

// Where a uevent datagram came from (from recvmsg's sockaddr_nl and
// SCM_CREDENTIALS). The kernel is nl_pid 0 with credentials pid 0, uid 0.
struct UeventSource {
  std::uint32_t nl_pid = 0;
  std::uint32_t nl_groups = 0;
  bool has_credentials = false;
  std::int32_t pid = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;

  // What the kernel's own uevents carry: multicast group 1, credentials of
  // pid 0, uid 0, gid 0 (for deliver_uevent() in tests and replays).
  static UeventSource kernel() {
    UeventSource s;
    s.nl_groups = 1;
    s.has_credentials = true;
    return s;
  }
};
enum class UeventVerdict {
  kAccepted,  // from the kernel, about /devices/system/cpu/cpuN
  kIgnored,   // from the kernel, about something else (or not parsable)
  kForged,    // not from the kernel: dropped
};

struct HostOptions {
  std::string root = "/";                  // fake tree for tests
  std::chrono::milliseconds recheck{100};  // periodic re-check; 0: none
  bool follow = true;                      // run the follower thread
  // Open the netlink uevent socket (with a fake root, the real kernel's CPU
  // uevents merely trigger re-reads of the fake tree).
  bool uevents = true;
  bool cgroup_events = true;  // inotify on the cgroup directories
  // Domain::host_bound(); unset: true iff root is "/" (the CPU ids are real).
  std::optional<bool> host_bound;
  std::function<void(const HostChange&)> on_change;
  std::function<void(const std::string&)> on_warning;  // default: stderr
};

struct HostStats {
  std::uint64_t uevents_accepted = 0;  // kernel CPU uevents
  std::uint64_t uevents_ignored = 0;   // kernel uevents about other devices
  std::uint64_t uevents_forged = 0;    // dropped: not from the kernel
  std::uint64_t uevent_overflows = 0;  // ENOBUFS: events lost, re-read at once
  std::uint64_t cgroup_events = 0;     // wake-ups by inotify
  std::uint64_t rechecks = 0;          // periodic re-checks
  std::uint64_t recomputations = 0;    // times the files were read and applied
  std::uint64_t changes = 0;           // successful up/down
  std::uint64_t failures = 0;          // failed up/down attempts
  std::uint64_t warnings = 0;          // warnings logged
};

class HostCpus {
 public:
  // Reads the inputs (errors as above), builds the domain with the wanted
  // CPUs online, opens the uevent socket and the inotify watches (a failure
  // there is a warning: the re-check still follows), starts the follower.
  static Result<std::unique_ptr<HostCpus>> create(HostOptions options = {});
  ~HostCpus();
  HostCpus(const HostCpus&) = delete;
  HostCpus& operator=(const HostCpus&) = delete;

  Domain& domain() noexcept;
  const CpuMask& possible() const noexcept;  // the kernel's, possibly sparse
  const std::string& root() const noexcept;

  // The inputs as last read (already the new ones when on_change runs).
  HostSnapshot snapshot() const;
  HostStats stats() const;
  bool following() const noexcept;     // the follower thread runs
  bool uevents_open() const noexcept;  // the netlink socket is open
  std::size_t cgroup_watches() const;  // directories watched by inotify

  // Re-reads every input now and applies it, on the calling thread (cause
  // kRecheck unless an input-specific cause applies). For follow = false, or
  // to not wait for the next tick. kWouldDeadlock from on_change/on_warning
  // or a hotplug callback; a read error is returned (and nothing changes).
  Status refresh();

  // Hands one datagram to the same check as the netlink socket, on the
  // calling thread: a kAccepted one triggers a recomputation with cause
  // kUevent, anything else is counted and dropped. For tests and for
  // programs that already own a uevent socket.
  Result<UeventVerdict> deliver_uevent(std::string_view datagram,
                                       const UeventSource& source);

  struct Impl;

 private:
  explicit HostCpus(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cpuhp
