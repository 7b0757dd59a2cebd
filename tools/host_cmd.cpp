// cpuhp host: the host's CPU masks and, with --follow, one line per change.
#include "host_cmd.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "cpuhp/host.h"
#include "json.h"

namespace cpuhp::tool {

namespace {

using detail::json_string;

void print_masks(const HostSnapshot& s, const std::string& root, bool json) {
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
  std::fflush(stdout);
}

}  // namespace

int run_host(const HostCmdOptions& o) {
  if (!o.follow) {
    auto snap = read_host_snapshot(o.root);
    if (!snap.ok()) {
      std::fprintf(stderr, "cpuhp host: %s\n", snap.error().message().c_str());
      return 1;
    }
    print_masks(*snap, o.root, o.json);
    return 0;
  }

  // Block SIGINT/SIGTERM before any thread exists: every cpuhp thread inherits
  // the mask (the follower blocks all signals anyway) and the main thread
  // takes them with sigwait().
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::mutex out_mu;
  HostOptions ho;
  ho.root = o.root;
  ho.recheck = std::chrono::milliseconds(o.recheck_ms);
  ho.uevents = o.uevents;
  const bool json = o.json;
  ho.on_change = [&out_mu, json](const HostChange& c) {
    std::lock_guard<std::mutex> g(out_mu);
    if (json) {
      std::printf("%s\n", to_json(c).c_str());
    } else {
      std::printf("cpu%u %-7s cause=%-8s latency=%lldus%s%s\n", c.cpu,
                  c.online ? "online" : "offline", to_string(c.cause),
                  static_cast<long long>(c.latency_us),
                  c.error.empty() ? "" : " FAILED: ", c.error.c_str());
    }
    std::fflush(stdout);
  };
  ho.on_warning = [&out_mu](const std::string& msg) {
    std::lock_guard<std::mutex> g(out_mu);
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
  {
    std::lock_guard<std::mutex> g(out_mu);
    print_masks((*host)->snapshot(), o.root, json);
    std::fprintf(stderr,
                 "cpuhp host: following (uevents %s, %zu cgroup directories watched, "
                 "re-check every %u ms); Ctrl-C to stop\n",
                 (*host)->uevents_open() ? "on" : "off", (*host)->cgroup_watches(),
                 o.recheck_ms);
  }
  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  const HostStats st = (*host)->stats();
  (void)(*host)->domain().remove_state(*id);
  host->reset();
  std::fprintf(
      stderr,
      "cpuhp host: stopped by %s: %llu changes, %llu failed, %llu kernel CPU "
      "uevents, %llu forged uevents dropped, %llu cgroup events, %llu re-checks\n",
      sig == SIGINT ? "SIGINT" : "SIGTERM", static_cast<unsigned long long>(st.changes),
      static_cast<unsigned long long>(st.failures),
      static_cast<unsigned long long>(st.uevents_accepted),
      static_cast<unsigned long long>(st.uevents_forged),
      static_cast<unsigned long long>(st.cgroup_events),
      static_cast<unsigned long long>(st.rechecks));
  return 0;
}

}  // namespace cpuhp::tool
