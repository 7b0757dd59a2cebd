// libFuzzer target: CpuMask::parse (Linux cpulist text) on arbitrary bytes.
//
// Oracles, checked for every input at several capacities:
//   - parse() returns (never throws, never crashes, never reads out of bounds:
//     the ASan/UBSan build catches the rest);
//   - a failure carries kInvalidArgument or kOutOfRange and a message that
//     quotes the text ("cpulist ...");
//   - a success is a mask of exactly that capacity whose iteration, weight(),
//     first() and last() agree; its to_string() parses back to an equal mask,
//     also with the trailing newline sysfs files have, and is a fixed point;
//   - text without letters (no "all", no "N") does not depend on the capacity
//     except through range checks: if it parses at capacity c, it parses to the
//     same CPUs at kMaxCpus;
//   - capacities 0 and kMaxCpus + 1 are refused with kInvalidArgument.
// Build and run: fuzz/run (see fuzz/README.md).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cpuhp/cpumask.h"
#include "cpuhp/error.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view text, unsigned capacity,
                       const std::string& detail = {}) {
  std::fprintf(stderr, "cpulist_fuzzer: %s (capacity %u, %zu bytes)\n", what, capacity,
               text.size());
  if (!detail.empty()) std::fprintf(stderr, "  %s\n", detail.c_str());
  std::abort();
}

bool has_letter(std::string_view text) {
  for (char c : text)
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return false;
}

void check_mask(const cpuhp::CpuMask& m, std::string_view text, unsigned capacity) {
  if (m.capacity() != capacity) fail("capacity changed by parse", text, capacity);
  unsigned count = 0;
  unsigned prev = 0;
  bool first = true;
  for (unsigned cpu : m) {
    if (cpu >= capacity) fail("iteration yields a CPU >= capacity", text, capacity);
    if (!first && cpu <= prev) fail("iteration not strictly ascending", text, capacity);
    if (!m.test(cpu)) fail("iterated CPU does not test()", text, capacity);
    if (first && cpu != m.first())
      fail("first() disagrees with iteration", text, capacity);
    prev = cpu;
    first = false;
    ++count;
  }
  if (count != m.weight()) fail("weight() disagrees with iteration", text, capacity);
  if (count == 0 && (!m.empty() || m.first() != capacity || m.last() != capacity))
    fail("empty mask: empty()/first()/last() wrong", text, capacity);
  if (count != 0 && m.last() != prev)
    fail("last() disagrees with iteration", text, capacity);
}

void check_round_trip(const cpuhp::CpuMask& m, std::string_view text, unsigned capacity) {
  const std::string s = m.to_string();
  auto again = cpuhp::CpuMask::parse(s, capacity);
  if (!again.ok())
    fail("to_string() output does not parse", text, capacity,
         "\"" + s + "\": " + again.error().message());
  if (!(*again == m)) fail("parse(to_string(m)) != m", text, capacity, "\"" + s + "\"");
  if (again->to_string() != s)
    fail("to_string() is not a fixed point", text, capacity, "\"" + s + "\"");
  auto with_newline = cpuhp::CpuMask::parse(s + "\n", capacity);
  if (!with_newline.ok() || !(*with_newline == m))
    fail("to_string() + \"\\n\" does not parse to the same mask", text, capacity,
         "\"" + s + "\"");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  static constexpr unsigned kCapacities[] = {1, 4, 63, 64, 65, 200, cpuhp::kMaxCpus};
  for (unsigned capacity : kCapacities) {
    auto r = cpuhp::CpuMask::parse(text, capacity);
    if (!r.ok()) {
      const cpuhp::Errc code = r.error().code();
      if (code != cpuhp::Errc::kInvalidArgument && code != cpuhp::Errc::kOutOfRange)
        fail("unexpected error code", text, capacity, r.error().message());
      if (r.error().message().rfind("cpulist ", 0) != 0)
        fail("error message does not quote the text", text, capacity,
             r.error().message());
      continue;
    }
    check_mask(*r, text, capacity);
    check_round_trip(*r, text, capacity);
    if (capacity != cpuhp::kMaxCpus && !has_letter(text)) {
      auto wide = cpuhp::CpuMask::parse(text, cpuhp::kMaxCpus);
      if (!wide.ok())
        fail("parses at a small capacity but not at kMaxCpus", text, capacity,
             wide.error().message());
      if (wide->to_string() != r->to_string())
        fail("CPUs depend on the capacity", text, capacity,
             "\"" + r->to_string() + "\" vs \"" + wide->to_string() + "\"");
    }
  }

  for (unsigned bad : {0U, cpuhp::kMaxCpus + 1}) {
    auto r = cpuhp::CpuMask::parse(text, bad);
    if (r.ok() || r.error().code() != cpuhp::Errc::kInvalidArgument)
      fail("a bad capacity is not refused with kInvalidArgument", text, bad);
  }
  return 0;
}
