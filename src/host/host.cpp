// SPDX-License-Identifier: MIT
// HostCpus: a Domain that follows this machine's CPUs. See cpuhp/host.h.
#include "cpuhp/host.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "../json.h"
#include "../strf.h"
#include "cpuhp/detail/mutex.h"
#include "cpuhp/diagnostics.h"
#include "sources.h"
#include "uevent.h"

namespace cpuhp {

using detail::strf;
using Clock = std::chrono::steady_clock;

const char* to_string(HostCause cause) noexcept {
  switch (cause) {
    case HostCause::kUevent:
      return "uevent";
    case HostCause::kCgroup:
      return "cgroup";
    case HostCause::kAffinity:
      return "affinity";
    case HostCause::kRecheck:
      return "recheck";
  }
  return "?";
}

namespace {

std::string list_or_none(const CpuMask& m) {
  return m.empty() ? std::string("(none)") : m.to_string();
}

bool is_real_root(const std::string& root) {
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  return r.empty() || r == "/";
}

constexpr std::uint32_t kInotifyMask = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO |
                                       IN_CREATE | IN_DELETE | IN_ATTRIB |
                                       IN_DELETE_SELF | IN_MOVE_SELF;

}  // namespace

std::string to_json(const HostChange& c) {
  std::string out =
      strf("{\"cpu\":%u,\"change\":\"%s\",\"cause\":\"%s\",\"latency_us\":%lld", c.cpu,
           c.online ? "online" : "offline", to_string(c.cause),
           static_cast<long long>(c.latency_us));
  if (!c.error.empty()) {
    out += ",\"error\":";
    out += detail::json_string(c.error);
  }
  out += '}';
  return out;
}

HostSnapshot::HostSnapshot(unsigned cap)
    : capacity(cap),
      possible(cap),
      present(cap),
      sysfs_online(cap),
      affinity(cap),
      cpuset(cap),
      wanted(cap) {}

Result<HostSnapshot> read_host_snapshot(const std::string& root) {
  return host::read_snapshot(root, nullptr, nullptr, nullptr);
}

// ---------------------------------------------------------------------------

struct HostCpus::Impl {
  struct Trigger {
    bool uevent = false;    // an accepted kernel CPU uevent
    bool cgroup = false;    // an inotify event on a cgroup directory
    bool followup = false;  // a re-read shortly after a uevent (see run_follower)
    Clock::time_point arrival;
  };

  explicit Impl(HostOptions o) : opt(std::move(o)), possible(1) {}
  ~Impl() {
    if (inotify_fd >= 0) ::close(inotify_fd);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  HostOptions opt;
  CpuMask possible;
  std::unique_ptr<Domain> domain;

  // ---- guarded by apply_mu: the inputs last applied, failure memory ----
  detail::Mutex apply_mu;
  host::CgroupLayout layout CPUHP_GUARDED_BY(apply_mu);
  std::optional<HostSnapshot> last CPUHP_GUARDED_BY(apply_mu);
  // per CPU: +1 up, -1 down, 0 none
  std::vector<signed char> reported_failure CPUHP_GUARDED_BY(apply_mu);
  std::string last_warning CPUHP_GUARDED_BY(apply_mu);
  std::map<int, std::string> watches CPUHP_GUARDED_BY(apply_mu);  // inotify wd -> dir

  // ---- published copy for snapshot() ----
  mutable detail::Mutex snap_mu;
  std::optional<HostSnapshot> published CPUHP_GUARDED_BY(snap_mu);

  // ---- stats ----
  std::atomic<std::uint64_t> uevents_accepted{0}, uevents_ignored{0}, uevents_forged{0},
      uevent_overflows{0}, cgroup_events{0}, rechecks{0}, recomputations{0}, changes{0},
      failures{0}, warnings{0};
  std::atomic<std::size_t> watch_count{0};

  // ---- follower ----
  std::optional<host::UeventSocket> uevents;
  int inotify_fd = -1;
  int wake_fd = -1;
  std::thread thread;
  std::atomic<bool> stop{false};

  static thread_local const Impl* applying;  // this thread runs recompute()

  void warn(const std::string& msg, bool dedup) CPUHP_REQUIRES(apply_mu) {
    if (dedup) {
      if (msg == last_warning) return;
      last_warning = msg;
    }
    warnings.fetch_add(1, std::memory_order_relaxed);
    if (opt.on_warning) {
      opt.on_warning(msg);
    } else {
      detail::warn("HostCpus", "%s", msg.c_str());
    }
  }

  void publish(const HostSnapshot& s) {
    detail::MutexLock g(snap_mu);
    published = s;
  }

  // Refuses calls that would deadlock: from on_change/on_warning or a
  // callback run by our own recompute (we hold apply_mu), or from a context
  // where the Domain refuses to take its writers' lock (a hotplug callback,
  // a register_begin() scope, a hotplug read section).
  Status check_context(const char* what) {
    if (applying == this)
      return Error(Errc::kWouldDeadlock,
                   strf("HostCpus::%s called while HostCpus applies a change (from "
                        "on_change, on_warning or a hotplug callback it drives); "
                        "call it from another thread",
                        what));
    auto probe = domain->register_begin();
    if (!probe.ok())
      return Error(Errc::kWouldDeadlock,
                   strf("HostCpus::%s: %s", what, probe.error().message().c_str()));
    return {};
  }

  // The inputs' bits that differ for `cpu` since the last snapshot.
  static unsigned inputs_for(const HostSnapshot* prev, const HostSnapshot& now,
                             unsigned cpu) {
    if (!prev) return 0;
    unsigned in = 0;
    if (prev->sysfs_online.test(cpu) != now.sysfs_online.test(cpu) ||
        prev->present.test(cpu) != now.present.test(cpu))
      in |= kHostInputSysfs;
    if (prev->cpuset.test(cpu) != now.cpuset.test(cpu)) in |= kHostInputCpuset;
    if (prev->affinity.test(cpu) != now.affinity.test(cpu)) in |= kHostInputAffinity;
    return in;
  }

  static HostCause cause_for(unsigned in, const Trigger& t) {
    if ((in & kHostInputSysfs) && t.uevent) return HostCause::kUevent;
    if (in != 0 && t.followup) return HostCause::kUevent;
    if ((in & kHostInputCpuset) && t.cgroup) return HostCause::kCgroup;
    if ((in & kHostInputAffinity) && !(in & (kHostInputSysfs | kHostInputCpuset)))
      return HostCause::kAffinity;
    return HostCause::kRecheck;
  }

  // Makes the domain match `snap`. apply_mu held (or creation). `report`:
  // false for the initial synchronisation (nobody listens yet). Returns the
  // first error when !report (creation must fail loudly).
  Status apply(const HostSnapshot& snap, const Trigger& t, bool report)
      CPUHP_REQUIRES(apply_mu) {
    Domain& d = *domain;
    const HostSnapshot* prev = last ? &*last : nullptr;
    Status first_error;
    auto note_error = [&](const Error& e) {
      if (first_error.ok()) first_error = e;
    };

    auto run = [&](unsigned cpu, bool up) CPUHP_REQUIRES(apply_mu) {
      Status s = up ? d.up(cpu) : d.down(cpu);
      const auto end = Clock::now();
      const unsigned in = inputs_for(prev, snap, cpu);
      HostChange change{
          cpu,
          up,
          cause_for(in, t),
          in,
          std::chrono::duration_cast<std::chrono::microseconds>(end - t.arrival).count(),
          {}};
      const signed char dir = up ? 1 : -1;
      if (s.ok()) {
        if (report) changes.fetch_add(1, std::memory_order_relaxed);
        reported_failure[cpu] = 0;
      } else {
        failures.fetch_add(1, std::memory_order_relaxed);
        note_error(s.error());
        if (reported_failure[cpu] == dir) return;  // reported already; retried silently
        reported_failure[cpu] = dir;
        change.error = s.error().message();
        if (report)
          warn(strf("cannot bring CPU %u %s: %s (retried at every re-check)", cpu,
                    up ? "up" : "down", change.error.c_str()),
               false);
      }
      if (report && opt.on_change) opt.on_change(change);
    };

    // 1. CPUs that became present.
    for (unsigned cpu : snap.present)
      if (!d.present().test(cpu))
        if (Status s = d.set_present(cpu, true); !s) {
          note_error(s.error());
          if (report) warn(s.error().message(), true);
        }
    // Forget reported failures that no longer matter.
    for (unsigned cpu = 0; cpu < snap.capacity; ++cpu)
      if (snap.wanted.test(cpu) == d.online().test(cpu)) reported_failure[cpu] = 0;
    // 2. Up before down: the last online CPU is never in the way.
    const CpuMask online_before = d.online();
    for (unsigned cpu : snap.wanted)
      if (!online_before.test(cpu)) run(cpu, true);
    // 3. Down.
    const CpuMask online_now = d.online();
    for (unsigned cpu : online_now)
      if (!snap.wanted.test(cpu)) run(cpu, false);
    // 4. CPUs no longer present (offline by now, unless a down failed).
    const CpuMask present_now = d.present();
    for (unsigned cpu : present_now)
      if (!snap.present.test(cpu) && !d.online().test(cpu))
        if (Status s = d.set_present(cpu, false); !s) {
          note_error(s.error());
          if (report) warn(s.error().message(), true);
        }
    return first_error;
  }

  void rewatch() CPUHP_REQUIRES(apply_mu) {
    if (inotify_fd < 0) return;
    for (const auto& [wd, dir] : watches) (void)::inotify_rm_watch(inotify_fd, wd);
    watches.clear();
    for (const std::string& dir : host::cgroup_watch_dirs(layout)) {
      const int wd = ::inotify_add_watch(inotify_fd, dir.c_str(), kInotifyMask);
      if (wd < 0) {
        warn(strf("cannot watch %s (inotify: %s); cpuset changes there are seen by "
                  "the periodic re-check only",
                  dir.c_str(), std::strerror(errno)),
             true);
        continue;
      }
      watches.emplace(wd, dir);
    }
    watch_count.store(watches.size(), std::memory_order_relaxed);
  }

  // Re-reads the inputs and applies them. apply_mu held.
  Status recompute(const Trigger& t) CPUHP_REQUIRES(apply_mu) {
    const Impl* outer = applying;
    applying = this;
    struct Restore {
      const Impl* outer;
      ~Restore() { applying = outer; }
    } restore{outer};

    recomputations.fetch_add(1, std::memory_order_relaxed);
    bool relocated = false;
    auto snap = host::read_snapshot(opt.root, &possible, &layout, &relocated);
    if (!snap.ok()) {
      warn(snap.error().message() + "; keeping the current CPUs", true);
      return snap.error();
    }
    if (relocated) rewatch();
    if (snap->wanted.empty()) {
      const std::string msg = strf(
          "no CPU would be online (sysfs online %s, present %s, affinity %s, cpuset %s); "
          "keeping CPUs %s",
          list_or_none(snap->sysfs_online).c_str(), list_or_none(snap->present).c_str(),
          list_or_none(snap->affinity).c_str(), list_or_none(snap->cpuset).c_str(),
          domain->online().to_string().c_str());
      warn(msg, true);
      publish(*snap);
      return Error(Errc::kInvalidArgument, msg);
    }
    last_warning.clear();
    publish(*snap);  // before on_change runs: snapshot() shows what caused it
    (void)apply(*snap, t, /*report=*/true);
    last = std::move(*snap);
    return {};
  }

  void run_follower() {
    std::vector<pollfd> fds;
    fds.push_back({wake_fd, POLLIN, 0});
    const int uevent_ix = uevents ? static_cast<int>(fds.size()) : -1;
    if (uevents) fds.push_back({uevents->fd(), POLLIN, 0});
    const int inotify_ix = inotify_fd >= 0 ? static_cast<int>(fds.size()) : -1;
    if (inotify_fd >= 0) fds.push_back({inotify_fd, POLLIN, 0});
    const auto period = opt.recheck;
    auto next_tick = Clock::now() + period;
    // After a CPU uevent, re-read a few more times: before Linux 6.10 the
    // cpusets' effective CPUs are updated by a work item that may run after
    // the uevent is sent.
    constexpr std::chrono::milliseconds kFollowups[] = {std::chrono::milliseconds(5),
                                                        std::chrono::milliseconds(25),
                                                        std::chrono::milliseconds(100)};
    std::size_t followup = std::size(kFollowups);  // none pending
    Clock::time_point uevent_arrival{};

    while (!stop.load(std::memory_order_acquire)) {
      std::optional<Clock::time_point> wake_at;
      if (period.count() > 0) wake_at = next_tick;
      if (followup < std::size(kFollowups)) {
        const auto f = uevent_arrival + kFollowups[followup];
        if (!wake_at || f < *wake_at) wake_at = f;
      }
      timespec ts{};
      timespec* tsp = nullptr;
      if (wake_at) {
        auto left =
            std::chrono::duration_cast<std::chrono::nanoseconds>(*wake_at - Clock::now());
        if (left.count() < 0) left = std::chrono::nanoseconds(0);
        ts.tv_sec = static_cast<time_t>(left.count() / 1000000000);
        ts.tv_nsec = static_cast<long>(left.count() % 1000000000);
        tsp = &ts;
      }
      for (pollfd& p : fds) p.revents = 0;
      const int n = ::ppoll(fds.data(), fds.size(), tsp, nullptr);
      const auto arrival = Clock::now();
      if (n < 0 && errno != EINTR) {
        detail::MutexLock g(apply_mu);
        warn(strf("follower: poll: %s", std::strerror(errno)), true);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (stop.load(std::memory_order_acquire)) break;
      Trigger t;
      t.arrival = arrival;
      bool tick = false;
      if (fds[0].revents & POLLIN) {
        std::uint64_t v;
        (void)!::read(wake_fd, &v, sizeof v);
      }
      if (uevent_ix >= 0 && (fds[uevent_ix].revents & (POLLIN | POLLERR))) {
        for (int i = 0; i < 4096; ++i) {
          auto r = uevents->receive();
          if (r.status == host::UeventSocket::Recv::kEmpty) break;
          if (r.status == host::UeventSocket::Recv::kOverflow) {
            uevent_overflows.fetch_add(1, std::memory_order_relaxed);
            tick = true;  // events were lost: re-read at once
            continue;
          }
          if (r.status == host::UeventSocket::Recv::kError) break;
          switch (r.check.verdict) {
            case UeventVerdict::kAccepted:
              uevents_accepted.fetch_add(1, std::memory_order_relaxed);
              t.uevent = true;
              break;
            case UeventVerdict::kIgnored:
              uevents_ignored.fetch_add(1, std::memory_order_relaxed);
              break;
            case UeventVerdict::kForged:
              uevents_forged.fetch_add(1, std::memory_order_relaxed);
              break;
          }
        }
      }
      if (t.uevent) {
        uevent_arrival = arrival;
        followup = 0;
      } else if (followup < std::size(kFollowups) &&
                 arrival >= uevent_arrival + kFollowups[followup]) {
        // A consequence of that uevent: its cause, latency from its arrival.
        while (followup < std::size(kFollowups) &&
               arrival >= uevent_arrival + kFollowups[followup])
          ++followup;
        t.uevent = true;
        t.followup = true;
        t.arrival = uevent_arrival;
      }
      if (inotify_ix >= 0 && (fds[inotify_ix].revents & POLLIN)) {
        alignas(inotify_event) char buf[4096];
        while (true) {
          const ssize_t r = ::read(inotify_fd, buf, sizeof buf);
          if (r <= 0) break;
          t.cgroup = true;
        }
        if (t.cgroup) cgroup_events.fetch_add(1, std::memory_order_relaxed);
      }
      if (period.count() > 0 && arrival >= next_tick) {
        tick = true;
        rechecks.fetch_add(1, std::memory_order_relaxed);
        next_tick = arrival + period;
      }
      if (t.uevent || t.cgroup || tick) {
        detail::MutexLock g(apply_mu);
        (void)recompute(t);
      }
    }
  }
};

thread_local const HostCpus::Impl* HostCpus::Impl::applying = nullptr;

HostCpus::HostCpus(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HostCpus::~HostCpus() {
  if (impl_->thread.joinable()) {
    impl_->stop.store(true, std::memory_order_release);
    const std::uint64_t one = 1;
    (void)!::write(impl_->wake_fd, &one, sizeof one);
    impl_->thread.join();
  }
  impl_.reset();  // closes the descriptors, then the Domain goes
}

Result<std::unique_ptr<HostCpus>> HostCpus::create(HostOptions options) {
  if (options.recheck.count() < 0)
    return Error(Errc::kInvalidArgument,
                 strf("HostOptions::recheck must not be negative (got %lld ms)",
                      static_cast<long long>(options.recheck.count())));
  if (options.root.empty())
    options.root.push_back('/');  // (GCC 12 -Wrestrict false positive on = "/")
  auto impl = std::make_unique<Impl>(std::move(options));
  Impl& im = *impl;

  {
    // Nobody else sees the object yet; the lock states what it guards, and is
    // released before the follower starts.
    detail::MutexLock applying(im.apply_mu);
    auto snap = host::read_snapshot(im.opt.root, nullptr, &im.layout, nullptr);
    if (!snap.ok()) return snap.error();
    if (snap->wanted.empty())
      return Error(
          Errc::kInvalidArgument,
          strf("no CPU of %s is usable: sysfs online %s, present %s, affinity %s, "
               "cpuset %s%s%s",
               im.opt.root.c_str(), list_or_none(snap->sysfs_online).c_str(),
               list_or_none(snap->present).c_str(), list_or_none(snap->affinity).c_str(),
               list_or_none(snap->cpuset).c_str(),
               snap->cpuset_files.empty() ? "" : " from ",
               snap->cpuset_files.empty() ? "" : snap->cpuset_files[0].c_str()));
    im.possible = snap->possible;
    im.domain = std::make_unique<Domain>(snap->possible, snap->wanted);
    im.domain->set_host_bound(im.opt.host_bound.value_or(is_real_root(im.opt.root)));
    im.reported_failure.assign(snap->capacity, 0);
    Impl::Trigger initial;
    initial.arrival = Clock::now();
    if (Status s = im.apply(*snap, initial, /*report=*/false); !s)
      return Error(s.error().code(),
                   "cannot bring the domain to the host's CPUs: " + s.error().message());
    im.last = *snap;
    im.publish(*snap);

    if (im.opt.follow) {
      if (im.opt.uevents) {
        auto sock = host::UeventSocket::open();
        if (sock.ok()) {
          im.uevents.emplace(std::move(*sock));
        } else {
          im.warn(sock.error().message() +
                      "; kernel CPU hotplug is seen by the periodic re-check only",
                  true);
        }
      }
      if (im.opt.cgroup_events) {
        im.inotify_fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (im.inotify_fd < 0) {
          im.warn(strf("inotify_init1: %s; cpuset changes are seen by the periodic "
                       "re-check only",
                       std::strerror(errno)),
                  true);
        } else {
          im.rewatch();
        }
      }
      im.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (im.wake_fd < 0)
        return Error(Errc::kSystem, strf("eventfd: %s", std::strerror(errno)));
    }
  }
  // The object exists before the follower starts (so a pointer to it that the
  // program publishes is all on_change needs).
  std::unique_ptr<HostCpus> host(new HostCpus(std::move(impl)));
  if (im.opt.follow) {
    // The follower takes no signal: a program may sigwait() for SIGINT etc.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    try {
      im.thread = std::thread([&im] { im.run_follower(); });
    } catch (const std::system_error& e) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return Error(Errc::kSystem, strf("cannot start the follower thread: %s", e.what()));
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  return host;
}

Domain& HostCpus::domain() noexcept { return *impl_->domain; }
const CpuMask& HostCpus::possible() const noexcept { return impl_->possible; }
const std::string& HostCpus::root() const noexcept { return impl_->opt.root; }

HostSnapshot HostCpus::snapshot() const {
  detail::MutexLock g(impl_->snap_mu);
  return *impl_->published;
}

HostStats HostCpus::stats() const {
  const Impl& im = *impl_;
  HostStats s;
  s.uevents_accepted = im.uevents_accepted.load(std::memory_order_relaxed);
  s.uevents_ignored = im.uevents_ignored.load(std::memory_order_relaxed);
  s.uevents_forged = im.uevents_forged.load(std::memory_order_relaxed);
  s.uevent_overflows = im.uevent_overflows.load(std::memory_order_relaxed);
  s.cgroup_events = im.cgroup_events.load(std::memory_order_relaxed);
  s.rechecks = im.rechecks.load(std::memory_order_relaxed);
  s.recomputations = im.recomputations.load(std::memory_order_relaxed);
  s.changes = im.changes.load(std::memory_order_relaxed);
  s.failures = im.failures.load(std::memory_order_relaxed);
  s.warnings = im.warnings.load(std::memory_order_relaxed);
  return s;
}

bool HostCpus::following() const noexcept { return impl_->thread.joinable(); }
bool HostCpus::uevents_open() const noexcept { return impl_->uevents.has_value(); }
std::size_t HostCpus::cgroup_watches() const {
  return impl_->watch_count.load(std::memory_order_relaxed);
}

Status HostCpus::refresh() {
  if (Status s = impl_->check_context("refresh()"); !s) return s;
  Impl::Trigger t;
  t.arrival = Clock::now();
  detail::MutexLock g(impl_->apply_mu);
  return impl_->recompute(t);
}

Result<UeventVerdict> HostCpus::deliver_uevent(std::string_view datagram,
                                               const UeventSource& source) {
  Impl& im = *impl_;
  const auto arrival = Clock::now();
  const host::UeventCheck check = host::check_uevent(datagram, source);
  switch (check.verdict) {
    case UeventVerdict::kForged:
      im.uevents_forged.fetch_add(1, std::memory_order_relaxed);
      return check.verdict;
    case UeventVerdict::kIgnored:
      im.uevents_ignored.fetch_add(1, std::memory_order_relaxed);
      return check.verdict;
    case UeventVerdict::kAccepted:
      break;
  }
  if (Status s = im.check_context("deliver_uevent()"); !s) return s.error();
  im.uevents_accepted.fetch_add(1, std::memory_order_relaxed);
  Impl::Trigger t;
  t.uevent = true;
  t.arrival = arrival;
  detail::MutexLock g(im.apply_mu);
  if (Status s = im.recompute(t); !s) return s.error();
  return check.verdict;
}

}  // namespace cpuhp
