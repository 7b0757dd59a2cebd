// libFuzzer target: the kernel uevent datagram parser and sender check
// (src/host/uevent.h) on arbitrary bytes, embedded NULs included.
//
// Oracles:
//   - parse_cpu_uevent() returns (never throws, never crashes, never reads
//     outside the datagram: ASan/UBSan catch the rest);
//   - an accepted event names a CPU below kMaxCpus, and the datagram's header
//     is exactly "<action>@/devices/system/cpu/cpu<N>" for that event;
//   - the canonical datagram the kernel would send for that event parses to
//     the same action, CPU and sequence number;
//   - check_uevent(): a datagram from anything but the kernel is kForged
//     whatever its bytes; from the kernel it is kAccepted with the parser's
//     event iff the parser accepts it and it was not truncated, else kIgnored.
// Build and run: fuzz/run (see fuzz/README.md).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "cpuhp/cpumask.h"
#include "cpuhp/host.h"
#include "host/uevent.h"

namespace {

using cpuhp::host::check_uevent;
using cpuhp::host::CpuUevent;
using cpuhp::host::parse_cpu_uevent;

[[noreturn]] void fail(const char* what, std::size_t size) {
  std::fprintf(stderr, "uevent_fuzzer: %s (%zu bytes)\n", what, size);
  std::abort();
}

bool same(const std::optional<CpuUevent>& a, const std::optional<CpuUevent>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return a->action == b->action && a->cpu == b->cpu && a->seqnum == b->seqnum;
}

std::string canonical_datagram(const CpuUevent& ev) {
  const std::string action = cpuhp::host::to_string(ev.action);
  const std::string devpath = "/devices/system/cpu/cpu" + std::to_string(ev.cpu);
  std::string d = action + "@" + devpath;
  d.push_back('\0');
  for (const std::string& field :
       {"ACTION=" + action, "DEVPATH=" + devpath, std::string("SUBSYSTEM=cpu"),
        "SEQNUM=" + std::to_string(ev.seqnum)}) {
    d += field;
    d.push_back('\0');
  }
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view datagram(reinterpret_cast<const char*>(data), size);

  const std::optional<CpuUevent> ev = parse_cpu_uevent(datagram);
  if (ev) {
    if (ev->cpu >= cpuhp::kMaxCpus) fail("accepted a CPU id >= kMaxCpus", size);
    const std::string header = std::string(cpuhp::host::to_string(ev->action)) +
                               "@/devices/system/cpu/cpu" + std::to_string(ev->cpu);
    const std::string_view actual = datagram.substr(0, datagram.find('\0'));
    if (actual != header) fail("accepted header is not <action>@<cpu devpath>", size);
    if (!same(parse_cpu_uevent(canonical_datagram(*ev)), ev))
      fail("the canonical datagram of an accepted event parses differently", size);
  }

  // Sender check: only the kernel is believed, whatever the bytes say.
  const cpuhp::UeventSource kernel = cpuhp::UeventSource::kernel();
  for (bool truncated : {false, true}) {
    const auto verdict = check_uevent(datagram, kernel, truncated);
    if (ev && !truncated) {
      if (verdict.verdict != cpuhp::UeventVerdict::kAccepted || !same(verdict.event, ev))
        fail("a kernel datagram the parser accepts is not kAccepted with its event",
             size);
    } else if (verdict.verdict != cpuhp::UeventVerdict::kIgnored || verdict.event) {
      fail("an unparsable or truncated kernel datagram is not kIgnored", size);
    }
  }
  cpuhp::UeventSource forged[4] = {kernel, kernel, kernel, kernel};
  forged[0].nl_pid = 4242;            // a user-space port id
  forged[1].has_credentials = false;  // no SCM_CREDENTIALS
  forged[2].pid = 1;                  // sent by a process
  forged[3].uid = 1000;               // sent by a user
  for (const auto& source : forged) {
    const auto verdict = check_uevent(datagram, source, false);
    if (verdict.verdict != cpuhp::UeventVerdict::kForged || verdict.event)
      fail("a datagram not from the kernel is not kForged", size);
  }
  return 0;
}
