// cpuhp host: the host's CPU masks and, with --follow, one line per change.
//
// --follow stops on SIGINT/SIGTERM (exit 0) and, like any filter, when the
// reader of stdout goes away (`cpuhp host --follow | head -n 2`): exit
// kExitReaderGone, 141, what a shell reports for a filter killed by SIGPIPE.
// Only the main thread writes to stdout; the follower thread, which blocks
// every signal (so SIGPIPE could never end the process from there), queues.
#include "host_cmd.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "cpuhp/host.h"
#include "json.h"

namespace cpuhp::tool {

namespace {

using detail::json_string;

// false when writing to stdout failed (errno says why: EPIPE when the reader
// went away).
bool print_masks(const HostSnapshot& s, const std::string& root, bool json) {
  std::string files;
  for (const std::string& f : s.cpuset_files) {
    if (!files.empty()) files += ", ";
    files += f;
  }
  if (json) {
    std::string list;
    for (const std::string& f : s.cpuset_files) {
      if (!list.empty()) list += ',';
      list += json_string(f);
    }
    std::printf(
        "{\"root\":%s,\"possible\":\"%s\",\"present\":\"%s\",\"online\":\"%s\","
        "\"affinity\":\"%s\",\"cpuset\":\"%s\",\"cpuset_limited\":%s,"
        "\"cpuset_files\":[%s],\"cgroup_v1\":%s,\"cgroup_v2\":%s,\"effective\":\"%s\"}\n",
        json_string(root).c_str(), s.possible.to_string().c_str(),
        s.present.to_string().c_str(), s.sysfs_online.to_string().c_str(),
        s.affinity.to_string().c_str(), s.cpuset.to_string().c_str(),
        s.cpuset_limited ? "true" : "false", list.c_str(),
        json_string(s.cgroup_v1).c_str(), json_string(s.cgroup_v2).c_str(),
        s.wanted.to_string().c_str());
  } else {
    std::printf("possible   %-12s sysfs possible\n", s.possible.to_string().c_str());
    std::printf("present    %-12s sysfs present\n", s.present.to_string().c_str());
    std::printf("online     %-12s sysfs online\n", s.sysfs_online.to_string().c_str());
    std::printf("affinity   %-12s Cpus_allowed_list of the main thread\n",
                s.affinity.to_string().c_str());
    std::printf("cpuset     %-12s %s\n", s.cpuset.to_string().c_str(),
                s.cpuset_limited ? files.c_str() : "no cpuset: unrestricted");
    std::printf("effective  %-12s online & present & affinity & cpuset\n",
                s.wanted.to_string().c_str());
  }
  return std::fflush(stdout) == 0 && std::ferror(stdout) == 0;
}

std::string change_line(const HostChange& c, bool json) {
  if (json) return to_json(c) + "\n";
  char buf[128];
  std::snprintf(buf, sizeof buf, "cpu%u %-7s cause=%-8s latency=%lldus", c.cpu,
                c.online ? "online" : "offline", to_string(c.cause),
                static_cast<long long>(c.latency_us));
  std::string line = buf;
  if (!c.error.empty()) line += " FAILED: " + c.error;
  return line + "\n";
}

// Lines for stdout: the follower thread queues them (on_change runs there,
// with HostCpus's apply lock held: it must not block on a slow or gone
// reader), the main thread writes them. The eventfd wakes the main thread.
// Unbounded: one line per CPU hotplug, which the kernel does slowly.
class LineQueue {
 public:
  LineQueue() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~LineQueue() {
    if (fd_ >= 0) ::close(fd_);
  }
  LineQueue(const LineQueue&) = delete;
  LineQueue& operator=(const LineQueue&) = delete;

  int fd() const { return fd_; }

  void push(std::string line) {
    {
      std::lock_guard<std::mutex> g(mu_);
      lines_.push_back(std::move(line));
    }
    const std::uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof one);
  }

  std::deque<std::string> take() {
    std::uint64_t n = 0;
    (void)!::read(fd_, &n, sizeof n);
    std::lock_guard<std::mutex> g(mu_);
    return std::exchange(lines_, {});
  }

 private:
  int fd_;
  std::mutex mu_;
  std::deque<std::string> lines_;
};

// false when writing to stdout failed (errno says why).
bool write_lines(const std::deque<std::string>& lines) {
  for (const std::string& line : lines) std::fputs(line.c_str(), stdout);
  return std::fflush(stdout) == 0 && std::ferror(stdout) == 0;
}

// Why the main loop ended.
enum class Stop { kSigint, kSigterm, kReaderGone, kWriteError, kPollError };

}  // namespace

int run_host(const HostCmdOptions& o) {
  if (!o.follow) {
    auto snap = read_host_snapshot(o.root);
    if (!snap.ok()) {
      std::fprintf(stderr, "cpuhp host: %s\n", snap.error().message().c_str());
      return 1;
    }
    if (!print_masks(*snap, o.root, o.json)) {
      if (errno == EPIPE) return kExitReaderGone;
      std::fprintf(stderr, "cpuhp host: cannot write to stdout: %s\n",
                   std::strerror(errno));
      return 1;
    }
    return 0;
  }

  // Block SIGINT/SIGTERM before any thread exists: every cpuhp thread inherits
  // the mask (the follower blocks all signals anyway) and the main thread
  // takes them from a signalfd. SIGPIPE is blocked too: a write to a pipe
  // whose reader went away fails with EPIPE instead, and the tool stops as
  // cleanly as it does on SIGINT (exit kExitReaderGone).
  sigset_t stop_signals, blocked;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  blocked = stop_signals;
  sigaddset(&blocked, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
  const int sig_fd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (sig_fd < 0) {
    std::fprintf(stderr, "cpuhp host: signalfd: %s\n", std::strerror(errno));
    return 1;
  }
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } close_sig_fd{sig_fd};
  LineQueue lines;
  if (lines.fd() < 0) {
    std::fprintf(stderr, "cpuhp host: eventfd: %s\n", std::strerror(errno));
    return 1;
  }

  HostOptions ho;
  ho.root = o.root;
  ho.recheck = std::chrono::milliseconds(o.recheck_ms);
  ho.uevents = o.uevents;
  const bool json = o.json;
  ho.on_change = [&lines, json](const HostChange& c) {
    lines.push(change_line(c, json));
  };
  ho.on_warning = [](const std::string& msg) {
    std::fprintf(stderr, "cpuhp host: warning: %s\n", msg.c_str());
  };
  auto host = HostCpus::create(ho);
  if (!host.ok()) {
    std::fprintf(stderr, "cpuhp host: %s\n", host.error().message().c_str());
    return 1;
  }
  // A state with the usual callback pair, so each change runs callbacks (and
  // the reported latency includes them).
  auto id = (*host)->domain().setup_state(
      Section::kOnline, "host:follow", [](unsigned) { return 0; },
      [](unsigned) { return 0; });
  if (!id.ok()) {
    std::fprintf(stderr, "cpuhp host: %s\n", id.error().message().c_str());
    return 1;
  }
  // The main loop: queued lines to stdout, until a stop signal, or until
  // stdout's reader goes away. A pipe's writer sees POLLERR when its last
  // reader closes (a terminal POLLHUP when it hangs up): that ends the loop
  // at once, without waiting for a CPU change to fail a write.
  Stop stop = Stop::kPollError;
  int error = 0;
  if (!print_masks((*host)->snapshot(), o.root, json)) {
    error = errno;
    stop = error == EPIPE ? Stop::kReaderGone : Stop::kWriteError;
  } else {
    std::fprintf(stderr,
                 "cpuhp host: following (uevents %s, %zu cgroup directories watched, "
                 "re-check every %u ms); Ctrl-C to stop\n",
                 (*host)->uevents_open() ? "on" : "off", (*host)->cgroup_watches(),
                 o.recheck_ms);
    pollfd fds[3] = {{sig_fd, POLLIN, 0}, {lines.fd(), POLLIN, 0}, {STDOUT_FILENO, 0, 0}};
    for (bool running = true; running;) {
      if (::poll(fds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        error = errno;
        stop = Stop::kPollError;
        break;
      }
      if (fds[1].revents & POLLIN) {
        if (!write_lines(lines.take())) {
          error = errno;
          stop = error == EPIPE ? Stop::kReaderGone : Stop::kWriteError;
          break;
        }
      }
      if (fds[2].revents & POLLNVAL) fds[2].fd = -1;  // no stdout: nothing to watch
      if (fds[2].revents & (POLLERR | POLLHUP)) {
        stop = Stop::kReaderGone;
        break;
      }
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si{};
        if (::read(sig_fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
          stop = si.ssi_signo == SIGINT ? Stop::kSigint : Stop::kSigterm;
          running = false;
        }
      }
    }
  }

  const HostStats st = (*host)->stats();
  (void)(*host)->domain().remove_state(*id);
  host->reset();  // joins the follower: no line is queued after this
  // Stopped by a signal: what the follower queued last still goes out.
  if ((stop == Stop::kSigint || stop == Stop::kSigterm) && !write_lines(lines.take())) {
    error = errno;
    stop = error == EPIPE ? Stop::kReaderGone : Stop::kWriteError;
  }
  const char* why = "";
  std::string why_text;
  switch (stop) {
    case Stop::kSigint:
      why = "stopped by SIGINT";
      break;
    case Stop::kSigterm:
      why = "stopped by SIGTERM";
      break;
    case Stop::kReaderGone:
      why = "stopped: the reader of stdout went away";
      break;
    case Stop::kWriteError:
      why_text = std::string("stopped: cannot write to stdout: ") + std::strerror(error);
      why = why_text.c_str();
      break;
    case Stop::kPollError:
      why_text = std::string("stopped: poll: ") + std::strerror(error);
      why = why_text.c_str();
      break;
  }
  std::fprintf(
      stderr,
      "cpuhp host: %s: %llu changes, %llu failed, %llu kernel CPU "
      "uevents, %llu forged uevents dropped, %llu cgroup events, %llu re-checks\n",
      why, static_cast<unsigned long long>(st.changes),
      static_cast<unsigned long long>(st.failures),
      static_cast<unsigned long long>(st.uevents_accepted),
      static_cast<unsigned long long>(st.uevents_forged),
      static_cast<unsigned long long>(st.cgroup_events),
      static_cast<unsigned long long>(st.rechecks));
  switch (stop) {
    case Stop::kSigint:
    case Stop::kSigterm:
      return 0;
    case Stop::kReaderGone:
      return kExitReaderGone;
    default:
      return 1;
  }
}

}  // namespace cpuhp::tool
