// SPDX-License-Identifier: MIT
// libFuzzer target: random sequences of every mutating call of cpuhp::Domain
// (include/cpuhp/domain.h), with callbacks, notifiers and an observer whose
// behaviour the input decides, and RCU readers running alongside.
//
// INPUT FORMAT (every byte string is a valid program; a missing byte reads 0)
//   byte 0    possible CPUs: 2 + b % 7 (2..8); bit 7 set: sparse ids (a hole)
//   byte 1    online CPUs at construction: 1 + b % possible
//   byte 2    readers: bit 0 a second reader thread, bit 1 readers dawdle
//             inside their read sections, bit 2 readers also take the
//             hotplug read lock (and check the masks do not move under it)
//   then      operations, one byte each (op % kOpCount) followed by their
//             arguments, until the input ends. Callbacks, notifiers and the
//             observer read their behaviour from the same stream when they
//             run (see Behaviour), so a call's bytes follow the call.
//
// ORACLES (a violation prints the last operations and aborts)
//   - masks nested: active ⊆ online ⊆ present ⊆ possible;
//   - each CPU's cpu_state() in 0..kStateActive, online bit iff state ≥
//     kStateBringup, active bit iff state == kStateActive, state 0 if not present;
//   - states() is exactly the built-in states plus what the model installed;
//   - startups and teardowns pair per (state, instance, CPU): a model of the
//     triples our own callbacks brought up is checked against the CPUs'
//     states after every step (the _nocalls variants are modelled, not excused);
//   - per-CPU objects: PREPARE startups publish one per (state, instance,
//     CPU), teardowns free it (at once if the CPU's online bit is clear,
//     through rcu_retire if it is set); reader threads check a canary under
//     ReadGuard, reaching objects only through the online mask;
//   - every call's result agrees with a model of its preconditions (which
//     error codes are possible, when it must succeed, what state it leaves);
//     every refused call left masks, CPU states, states() and the callback
//     model as they were;
//   - calls from callbacks, notifiers and the observer, inside a scope,
//     under the hotplug read lock or an RCU read section are refused (any
//     call that would take the writers' lock: Errc::kWouldDeadlock) and change
//     nothing; queries, set_observer and disable/enable_hotplug work there
//     where the writers' lock is held;
//   - no exception escapes a cpuhp call (a throwing observer is a warning,
//     include/cpuhp/diagnostics.h);
//   - the 2014 notifiers: each chain walk calls a prefix of the chain in
//     priority order, stops after NOTIFY_STOP_MASK, and UP_CANCELED /
//     DOWN_FAILED after a refusal go to exactly those told before it; events
//     see the online bit and the hotplug write lock as notifier.h says, and
//     kCpuTasksFrozen exactly during suspend/resume;
//   - at the end everything is removed: no per-CPU object left, readers out.
// ASan and UBSan (fuzz/run) catch the rest; a deadlock is a libFuzzer timeout.
//
// CPUHP_FUZZ_SKIP=tag,tag... turns off behaviours whose bug is already known,
// so that a run can find the next one (fuzz/README.md lists the tags).
// CPUHP_FUZZ_TRACE=1 prints every operation as it runs.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "cpuhp/cpumask.h"
#include "cpuhp/diagnostics.h"
#include "cpuhp/domain.h"
#include "cpuhp/error.h"
#include "cpuhp/notifier.h"
#include "cpuhp/percpu_rwsem.h"
#include "cpuhp/rcu.h"
#include "cpuhp/states.h"

namespace {

using namespace cpuhp;

constexpr unsigned kCpus = 8;                // most CPUs an input asks for
constexpr unsigned kInstances = 4;           // instance pointers per input
constexpr unsigned kSlots = kInstances + 1;  // slot 0: a single-instance state
constexpr unsigned kNotifiers = 4;
constexpr int kMaxDepth = 4;                // nesting of blocks and re-entrant calls
constexpr int kOpBudget = 192;              // operations per input, nested ones included
constexpr int kBlockOps = 6;                // most operations inside one block
constexpr int kPrepareIds = kStateBringup;  // ids that may hold per-CPU objects

// ------------------------------------------------------------ reporting

int g_report_fd = STDERR_FILENO;
bool g_trace_live = false;
const char* g_note = "";  // prefixed to a violation's message

// The last operations, printed with a violation.
struct TraceRing {
  static constexpr unsigned kLines = 48;
  char lines[kLines][128];
  unsigned next = 0;
};
TraceRing g_ring;

void trace(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void trace(const char* fmt, ...) {
  char* line = g_ring.lines[g_ring.next++ % TraceRing::kLines];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(line, sizeof g_ring.lines[0], fmt, args);
  va_end(args);
  if (g_trace_live) dprintf(g_report_fd, "  . %s\n", line);
}

[[noreturn]] void violation(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void violation(const char* fmt, ...) {
  char msg[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, args);
  va_end(args);
  dprintf(g_report_fd, "api_sequence_fuzzer: VIOLATION: %s%s\n", g_note, msg);
  dprintf(g_report_fd, "api_sequence_fuzzer: last operations, oldest first:\n");
  const unsigned n = std::min(g_ring.next, TraceRing::kLines);
  for (unsigned i = g_ring.next - n; i != g_ring.next; ++i)
    dprintf(g_report_fd, "    %s\n", g_ring.lines[i % TraceRing::kLines]);
  std::abort();
}

const char* errc_name(Errc e) {
  switch (e) {
    case Errc::kOk:
      return "kOk";
    case Errc::kInvalidArgument:
      return "kInvalidArgument";
    case Errc::kOutOfRange:
      return "kOutOfRange";
    case Errc::kNotPresent:
      return "kNotPresent";
    case Errc::kAlreadyInState:
      return "kAlreadyInState";
    case Errc::kLastCpu:
      return "kLastCpu";
    case Errc::kBusy:
      return "kBusy";
    case Errc::kNotFound:
      return "kNotFound";
    case Errc::kCallbackFailed:
      return "kCallbackFailed";
    case Errc::kWouldDeadlock:
      return "kWouldDeadlock";
    case Errc::kSystem:
      return "kSystem";
  }
  return "?";
}

// Warnings (failing teardowns, refusing notifiers) are what the fuzzer asks
// for: count them, print nothing. Fatal ones go where violations go.
std::atomic<long> g_warnings{0};
void diagnostic_handler(const Diagnostic& d) noexcept {
  if (d.severity == Severity::kWarning) {
    g_warnings.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  dprintf(g_report_fd, "cpuhp: %.*s: %.*s\n", static_cast<int>(d.component.size()),
          d.component.data(), static_cast<int>(d.message.size()), d.message.data());
}

// ------------------------------------------------------------ skip tags

enum Skip : unsigned {
  kSkipObserverThrow = 1u << 0,        // the observer never throws
  kSkipScopeReenter = 1u << 1,         // no scope method from a callback/observer
  kSkipScopeUnderReadLock = 1u << 3,   // no scope setup/remove under the read lock
  kSkipScopeReenterLocking = 1u << 7,  // no scope setup/remove_state(calls) from one
  kSkipDownGrace = 1u << 8,  // PREPARE teardowns retire even with the online bit clear
};
unsigned g_skip = 0;

void parse_skip(const char* env) {
  static constexpr std::pair<const char*, unsigned> kTags[] = {
      {"observer_throw", kSkipObserverThrow},
      {"scope_reenter", kSkipScopeReenter},
      {"scope_under_read_lock", kSkipScopeUnderReadLock},
      {"scope_reenter_locking", kSkipScopeReenterLocking},
      {"down_grace", kSkipDownGrace},
  };
  if (env == nullptr) return;
  std::string s = env;
  std::size_t at = 0;
  while (at <= s.size()) {
    std::size_t end = s.find(',', at);
    if (end == std::string::npos) end = s.size();
    const std::string tag = s.substr(at, end - at);
    bool known = tag.empty();
    for (const auto& [name, bit] : kTags)
      if (tag == name) {
        g_skip |= bit;
        known = true;
      }
    if (!known) {
      dprintf(g_report_fd, "api_sequence_fuzzer: unknown CPUHP_FUZZ_SKIP tag '%s'\n",
              tag.c_str());
      std::exit(2);
    }
    at = end + 1;
  }
}

bool skipping(unsigned tag) { return (g_skip & tag) != 0; }

// ------------------------------------------------------------ per-CPU objects
//
// The contract (domain.h, Masks): a PREPARE startup builds a CPU's object and
// publishes it; readers reach it by seeing the CPU's online bit, then loading
// the pointer. A PREPARE teardown that runs with the bit clear may free at
// once (the Domain waited a grace period since it cleared the bit); one that
// runs with the bit set unpublishes and frees through rcu_retire.

constexpr std::uint64_t kAlive = 0x0b1ec7a11fe5eed5ULL;
constexpr std::uint64_t kDead = 0xdeadfa11deadfa11ULL;

struct PerCpuObj {
  std::atomic<std::uint64_t> canary{kAlive};
  StateId state;
  unsigned slot;
  unsigned cpu;
  std::uint64_t payload[3];
};

std::atomic<PerCpuObj*> g_obj[kPrepareIds][kSlots][kCpus];
std::atomic<std::uint64_t> g_obj_states{0};  // bit s: g_obj[s] may hold objects
std::atomic<long> g_built{0}, g_freed_now{0}, g_retired{0}, g_reclaimed{0};

void destroy_obj(PerCpuObj* o) {
  o->canary.store(kDead, std::memory_order_relaxed);  // a late reader sees it
  delete o;
}

void free_now(PerCpuObj* o) {
  g_freed_now.fetch_add(1, std::memory_order_relaxed);
  destroy_obj(o);
}

void retire(PerCpuObj* o) {
  g_retired.fetch_add(1, std::memory_order_relaxed);
  rcu::rcu_retire(o, [](PerCpuObj* p) {
    destroy_obj(p);
    g_reclaimed.fetch_add(1, std::memory_order_relaxed);
  });
}

void check_obj(const PerCpuObj* o, StateId s, unsigned slot, unsigned cpu,
               const char* who) {
  // A plain read first: ASan reports a freed object with its free stack (it
  // does not check the atomic load, and reuses freed memory for its own
  // bookkeeping: then the canary reads as "corrupt").
  const volatile StateId* state = &o->state;
  if (*state != s) violation("%s: object at state %d says state %d", who, s, *state);
  const std::uint64_t c = o->canary.load(std::memory_order_relaxed);
  if (c != kAlive)
    violation("%s: per-CPU object of state %d slot %u CPU %u is %s while reachable", who,
              s, slot, cpu,
              c == kDead ? "freed (canary overwritten)" : "freed or corrupt");
  if (o->state != s || o->slot != slot || o->cpu != cpu)
    violation("%s: object at state %d slot %u CPU %u says state %d slot %u CPU %u", who,
              s, slot, cpu, o->state, o->slot, o->cpu);
}

// ------------------------------------------------------------ reader threads
//
// Long-lived, shared across inputs. An input publishes its Domain in
// g_domain; a reader announces itself in g_users before loading it, and the
// input waits for g_users to drain after unpublishing and before destroying
// the Domain (seq_cst on both sides: either the reader sees null or the input
// sees the reader).

std::atomic<Domain*> g_domain{nullptr};
std::atomic<int> g_users{0};
std::atomic<unsigned> g_generation{0};
std::atomic<unsigned> g_reader_cfg{0};  // bit 0 second reader, 1 dawdle, 2 hotplug lock
std::atomic<long> g_reader_passes{0};

void dawdle(std::uint32_t& rng) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  for (unsigned i = rng % 64; i-- > 0;) asm volatile("pause" ::: "memory");
}

void reader_walk(Domain& d, bool slow, std::uint32_t& rng) {
  const std::uint64_t states = g_obj_states.load(std::memory_order_acquire);
  for (unsigned cpu : d.online()) {  // acquire: pairs with the online bit's release
    if (cpu >= kCpus) violation("reader: online CPU %u beyond the domain", cpu);
    if (slow) dawdle(rng);
    for (std::uint64_t bits = states; bits != 0; bits &= bits - 1) {
      const StateId s = static_cast<StateId>(__builtin_ctzll(bits));
      for (unsigned slot = 0; slot < kSlots; ++slot) {
        const PerCpuObj* o = g_obj[s][slot][cpu].load(std::memory_order_acquire);
        if (o == nullptr) continue;
        check_obj(o, s, slot, cpu, "reader");
        if (slow) {
          dawdle(rng);
          check_obj(o, s, slot, cpu, "reader (after a pause in the same read section)");
        }
      }
    }
  }
}

// A pinned read section (reader 0, on request): one read section across
// several operations of the input. It remembers the CPUs it saw online when
// it began and every object it loaded for them, and checks them all again on
// every walk: RCU keeps them alive until the section ends, however the CPUs
// come and go meanwhile. The driving thread waits for a fresh walk after
// each operation, so an object freed without a grace period is caught at the
// next one. It ends when the input does, when one operation of the driving
// thread has run for kPinPatience (it is then waiting for a grace period,
// which waits for the pin), or after kPinDeadline.
std::atomic<unsigned> g_pin_request{0};  // serial of the pin asked for
std::atomic<unsigned> g_pin_active{0};   // serial of the pin under way, 0: none
std::atomic<unsigned long> g_pin_walks{0};
std::atomic<long long> g_op_since{
    0};  // steady ns the current top-level op began; 0: none
constexpr long long kPinPatience = 5'000'000;  // ns
constexpr long long kPinGraceHint = 300'000;   // ns
constexpr auto kPinDeadline = std::chrono::milliseconds(100);

long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool pin_should_end(unsigned serial, std::chrono::steady_clock::time_point deadline) {
  if (g_pin_request.load(std::memory_order_acquire) != serial) return true;
  if (std::chrono::steady_clock::now() >= deadline) return true;
  const long long since = g_op_since.load(std::memory_order_relaxed);
  if (since == 0) return false;
  // liburcu's grace-period futex is -1 while a synchronize_rcu() sleeps
  // waiting for readers (urcu/static/urcu-common.h). If the driving thread's
  // operation has not finished for a while meanwhile, the sleeper is most
  // likely that operation (else the call_rcu thread: ending then only loses
  // a chance to catch something).
  const long long running = now_ns() - since;
  if (running > kPinGraceHint && uatomic_read(&urcu_memb_gp.futex) == -1) return true;
  return running > kPinPatience;
}

void pinned_section(Domain& d, unsigned serial) {
  struct Held {
    const PerCpuObj* o;
    StateId s;
    unsigned slot, cpu;
  };
  std::vector<Held> held;
  held.reserve(64);
  const auto deadline = std::chrono::steady_clock::now() + kPinDeadline;
  rcu::ReadGuard guard;
  std::uint64_t seen = 0;
  for (unsigned cpu : d.online()) seen |= 1ull << cpu;
  g_pin_active.store(serial, std::memory_order_release);
  while (!pin_should_end(serial, deadline)) {
    const std::uint64_t states = g_obj_states.load(std::memory_order_acquire);
    for (std::uint64_t cpus = seen; cpus != 0; cpus &= cpus - 1) {
      const unsigned cpu = static_cast<unsigned>(__builtin_ctzll(cpus));
      for (std::uint64_t bits = states; bits != 0; bits &= bits - 1) {
        const StateId s = static_cast<StateId>(__builtin_ctzll(bits));
        for (unsigned slot = 0; slot < kSlots; ++slot) {
          const PerCpuObj* o = g_obj[s][slot][cpu].load(std::memory_order_acquire);
          if (o == nullptr) continue;
          check_obj(o, s, slot, cpu, "pinned reader");
          const bool known = std::any_of(held.begin(), held.end(),
                                         [o](const Held& h) { return h.o == o; });
          if (!known && held.size() < 256) held.push_back(Held{o, s, slot, cpu});
        }
      }
    }
    for (const Held& h : held)
      check_obj(h.o, h.s, h.slot, h.cpu,
                "pinned reader (an object it loaded earlier in the same read section)");
    g_pin_walks.fetch_add(1, std::memory_order_release);
    std::this_thread::yield();  // the driving thread has work to do
  }
  g_pin_active.store(0, std::memory_order_release);
}

void reader_main(unsigned index) {
  std::uint32_t rng = 0x9e3779b9u * (index + 1);
  unsigned pins_handled = 0;
  for (long pass = 0;; ++pass) {
    const unsigned gen = g_generation.load(std::memory_order_acquire);
    const unsigned cfg = g_reader_cfg.load(std::memory_order_relaxed);
    if (index == 1 && (cfg & 1) == 0) {
      g_generation.wait(gen, std::memory_order_acquire);
      continue;
    }
    g_users.fetch_add(1, std::memory_order_seq_cst);
    Domain* d = g_domain.load(std::memory_order_seq_cst);
    if (d == nullptr) {
      g_users.fetch_sub(1, std::memory_order_seq_cst);
      g_generation.wait(gen, std::memory_order_acquire);
      continue;
    }
    const bool slow = (cfg & 2) != 0;
    if (const unsigned pin = g_pin_request.load(std::memory_order_acquire);
        index == 0 && pin != 0 && pin != pins_handled) {
      pins_handled = pin;
      pinned_section(*d, pin);
    } else if ((cfg & 4) != 0 && pass % 8 == 0) {
      // Under the hotplug read lock the online mask and the CPUs' states
      // stand still. (RCU inside it: a _nocalls removal retires objects
      // without the hotplug lock.)
      ReadLock lock(d->hotplug_lock());
      std::uint64_t online = 0;
      int st[kCpus] = {};
      for (unsigned cpu = 0; cpu < d->capacity(); ++cpu) {
        if (d->cpu_online(cpu)) online |= 1ull << cpu;
        st[cpu] = d->cpu_state(cpu).value();
      }
      {
        rcu::ReadGuard guard;
        reader_walk(*d, slow, rng);
      }
      for (unsigned cpu = 0; cpu < d->capacity(); ++cpu) {
        if (d->cpu_online(cpu) != ((online >> cpu) & 1))
          violation("reader: CPU %u's online bit changed under the hotplug read lock",
                    cpu);
        if (d->cpu_state(cpu).value() != st[cpu])
          violation(
              "reader: CPU %u's state changed under the hotplug read lock (%d -> %d)",
              cpu, st[cpu], d->cpu_state(cpu).value());
      }
    } else {
      rcu::ReadGuard guard;
      reader_walk(*d, slow, rng);
    }
    g_users.fetch_sub(1, std::memory_order_seq_cst);
    g_reader_passes.fetch_add(1, std::memory_order_relaxed);
    if (!slow || pass % 4 == 0) std::this_thread::yield();
  }
}

// ------------------------------------------------------------ input cursor

class Cursor {
 public:
  Cursor(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  unsigned below(unsigned n) { return byte() % n; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// What one callback invocation does, read from the stream when it runs.
struct Behaviour {
  enum Kind {
    kOk,
    kError,
    kPositiveError,
    kThrowRuntime,
    kThrowSystem,
    kThrowGeneric,
    kThrowOther
  } kind = kOk;
  int err = 0;
  bool reenter = false;
  bool fails() const { return kind != kOk; }
};

struct NonStdException {
  int code;
};

constexpr int kErrnos[] = {EIO, ENOMEM, EBUSY, EINVAL, EAGAIN, ENODEV};

[[noreturn]] void throw_kind(Behaviour::Kind k, int err, const char* what) {
  switch (k) {
    case Behaviour::kThrowRuntime:
      throw std::runtime_error(what);
    case Behaviour::kThrowSystem:
      throw std::system_error(err, std::system_category(), what);
    case Behaviour::kThrowGeneric:
      throw std::system_error(err, std::generic_category(), what);
    default:
      throw NonStdException{err};
  }
}

// ------------------------------------------------------------ the model

// One state we asked the Domain to install.
struct Reg {
  int serial = 0;
  StateId id = -1;
  std::string name;
  bool multi = false;
  bool has_startup = false, has_teardown = false;
  bool scripted_up = false, scripted_down = false;
  bool installed = false;
  bool installing = false;          // setup call under way: callbacks may run
  int adding_slot = -1;             // add_instance under way for this slot
  bool added[kSlots] = {};          // multi: instances added (slot 1..kInstances)
  bool up[kSlots][kCpus] = {};      // startup ran, teardown not yet
  bool exempt[kSlots][kCpus] = {};  // at/past the state without its startup (_nocalls)
  bool prepare() const { return id > kStateOffline && id < kStateBringup; }
};

constexpr std::uint64_t kClosureMagic = 0x5ca1ab1e0ddba11ULL;

// The captures of our state callbacks. If the Domain destroys or replaces a
// callback while it runs, reading them afterwards is a heap-use-after-free
// (ASan) or a different value (checked).
struct Closure {
  class Fuzz* fuzz;
  Reg* reg;
  bool startup;
  std::uint64_t magic;
};

constexpr StateId kBuiltins[] = {kStateOffline, kStateNotifyPrepare, kStateBringup,
                                 kStateNotifyOnline, kStateActive};
const char* const kBuiltinNames[] = {"offline", "notify:prepare", "bringup",
                                     "notify:online", "active"};
const char* const kNames[] = {"a", "b", "c", "d", "e", "f", "", "active"};
constexpr StateId kStaticIds[] = {2,
                                  5,
                                  20,
                                  kStatePrepareLast,
                                  kStateOnlineFirst,
                                  60,
                                  kStateOnlineLast,
                                  0,
                                  kStatePrepareDyn,
                                  kStateBringup,
                                  kStateOnlineDyn,
                                  -1};

bool is_builtin(StateId s) {
  return std::find(std::begin(kBuiltins), std::end(kBuiltins), s) != std::end(kBuiltins);
}

unsigned long base_event(unsigned long action) { return action & ~kCpuTasksFrozen; }

const char* event_name(unsigned long action) {
  switch (base_event(action)) {
    case kCpuOnline:
      return "ONLINE";
    case kCpuUpPrepare:
      return "UP_PREPARE";
    case kCpuUpCanceled:
      return "UP_CANCELED";
    case kCpuDownPrepare:
      return "DOWN_PREPARE";
    case kCpuDownFailed:
      return "DOWN_FAILED";
    case kCpuDead:
      return "DEAD";
    case kCpuPostDead:
      return "POST_DEAD";
  }
  return "?";
}

std::vector<std::uint8_t> model_of(const Reg& r) {
  std::vector<std::uint8_t> v;
  v.push_back(r.installed);
  for (unsigned slot = 0; slot < kSlots; ++slot) {
    v.push_back(r.added[slot]);
    for (unsigned cpu = 0; cpu < kCpus; ++cpu)
      // Torn down or not. Without a teardown nothing can undo a startup, and
      // without a startup nothing records one: the CPU's state says it all
      // then (a failed suspend takes such a CPU down and back, and its
      // exemption ends with the teardown, but the CPU is where it was).
      v.push_back(r.has_startup && r.has_teardown &&
                  (r.up[slot][cpu] || r.exempt[slot][cpu]));
  }
  return v;
}

// Everything a refused call must leave as it was.
struct Snapshot {
  std::uint64_t present = 0, online = 0, active = 0;
  int state[kCpus] = {};
  std::vector<std::pair<StateId, std::string>> states;
  std::vector<std::vector<std::uint8_t>> model;  // per Reg, in regs_ order
  std::vector<int> chain;
};

class Fuzz;

struct Depth {
  explicit Depth(int& d) : d_(d) { ++d_; }
  ~Depth() { --d_; }
  Depth(const Depth&) = delete;
  Depth& operator=(const Depth&) = delete;
  int& d_;
};

// The RegistrationScope(s) of an open register_begin() block: [0] the one
// register_begin() returned, [1] where a "move" op moved it.
struct ScopeHolder {
  std::optional<RegistrationScope> s[2];
  bool live[2] = {false, false};  // holds the writers' lock per the model
  bool any_live() const { return live[0] || live[1]; }
};

class Fuzz {
 public:
  Fuzz(Cursor& c, unsigned capacity, const CpuMask& possible, const CpuMask& online)
      : c_(c), cap_(capacity) {
    for (unsigned i = 0; i < kNotifiers; ++i) {
      nbs_[i].nb.call = [this, i](NotifierBlock* self, unsigned long action,
                                  unsigned cpu) {
        return notifier_call(i, self, action, cpu);
      };
    }
    d_ = std::make_unique<Domain>(possible, online);
  }

  Domain& domain() { return *d_; }
  void run();
  void cleanup();
  void destroy_domain();

  int state_callback(Reg* r, unsigned cpu, void* instance, bool startup);

 private:
  // ---- decoding
  unsigned pick_cpu() { return c_.below(cap_ + 1); }  // cap_: out of range
  StateId pick_state();
  StateId pick_target();
  Reg* pick_reg(bool installed_only);
  void* pick_instance(int* slot);
  Behaviour next_behaviour(bool scripted);

  // ---- operations
  void exec_op();
  void exec_block(const char* what);
  void op_bring_to(int which);
  void op_set_present();
  void op_suspend();
  void op_resume();
  void op_disable();
  void op_enable();
  void op_inject();
  void op_setup(bool at, bool calls, bool multi, RegistrationScope* scope, bool live);
  void op_remove(bool calls, RegistrationScope* scope, bool live);
  void op_instance(bool add, bool calls);
  void op_notifier(bool reg, RegistrationScope* scope, bool live);
  void op_scope_block();
  void op_scope_method();
  void op_rcu_block();
  void op_read_lock_block();
  void op_set_observer();
  void op_query();
  void op_pin();
  void pin_handshake();

  // ---- contexts
  bool writers_held() const {
    return cb_depth_ > 0 || obs_depth_ > 0 || (scope_ != nullptr && scope_->any_live());
  }
  bool in_callback() const { return cb_depth_ > 0 || obs_depth_ > 0; }
  // A Domain call that takes the writers' lock must be refused here.
  bool restricted() const { return writers_held() || rlock_depth_ > 0 || rcu_depth_ > 0; }
  bool at_boundary() const { return cb_depth_ == 0 && obs_depth_ == 0; }

  // ---- oracles
  Snapshot snapshot();
  void expect_unchanged(const char* what, const Snapshot& before);
  // A failed suspend_nonboot() whose restore failed too (domain.h, Errors):
  // every CPU is back where it was but those the message names.
  void expect_back_but_named(const char* what, const Snapshot& before,
                             const std::string& message);
  // A failed resume_nonboot() (best effort): the suspend is over and every CPU
  // it took is at its state from before, but those the message names.
  void expect_resumed_but_named(const char* what, const std::string& message);
  // A CPU the current suspend took down: it stays present until the resume.
  bool held_by_suspend(unsigned cpu) const {
    return suspended_ && cpu < kCpus && (suspend_taken_ >> cpu & 1) != 0;
  }
  void expect_refused(const char* what, const Error& e, const Snapshot& before,
                      long calls_before, const std::vector<Errc>& apply = {});
  void expect_code(const char* what, const Error& e, std::initializer_list<Errc> allowed);
  void check_boundary(const char* when);
  void check_masks(const char* when);
  void check_model(const char* when);
  [[noreturn]] void escaped(const std::string& what);

  // ---- model helpers
  bool installed(StateId s) const {
    if (s < 0 || s >= kNumStates) return false;
    return is_builtin(s) || by_id_[s] != nullptr;
  }
  bool name_used(const std::string& name) const;
  StateId first_free(Section section) const;
  bool some_cpu_at(StateId s) const;
  int state_of(unsigned cpu) const {
    Result<StateId> r = d_->cpu_state(cpu);
    if (!r) violation("cpu_state(%u) failed below the capacity %u", cpu, cap_);
    return *r;
  }
  void mark_exempt(Reg& r, int slot);
  void drop_leftovers(Reg& r, int slot);  // after a _nocalls removal
  void consume_injections(unsigned cpu, StateId from, StateId to, bool ok, long fails);
  bool injection_pending(unsigned cpu, StateId from, StateId to) const;

  // ---- notifiers
  int notifier_call(unsigned index, NotifierBlock* self, unsigned long action,
                    unsigned cpu);
  void close_walk();
  void observer_event(unsigned serial, int mode, unsigned n, const CallbackEvent& e);

  StateCallback make_state_cb(Reg* r, bool startup);
  InstanceCallback make_instance_cb(Reg* r, bool startup);

  Cursor& c_;
  unsigned cap_;

  // contexts of the driving thread
  int op_depth_ = 0;
  int cb_depth_ = 0;   // in a state callback or a notifier (incl. POST_DEAD)
  int obs_depth_ = 0;  // in the observer
  int rcu_depth_ = 0;
  int rlock_depth_ = 0;
  int ops_left_ = kOpBudget;
  bool quiet_ = false;  // cleanup: callbacks succeed and read nothing
  ScopeHolder* scope_ = nullptr;
  bool frozen_ = false;  // in suspend_nonboot/resume_nonboot: events are frozen
  long calls_ = 0;       // invocations of our callbacks and notifiers
  long fails_ = 0;       // startups that failed, UP/DOWN_PREPARE refusals

  // model
  std::vector<std::unique_ptr<Reg>> regs_;
  Reg* by_id_[kNumStates] = {};
  int disable_count_ = 0;
  bool suspended_ = false;
  int suspend_state_[kCpus] = {};
  std::uint64_t suspend_taken_ = 0;
  std::vector<std::pair<unsigned, StateId>> injected_;
  bool injections_unknown_ = false;

  struct Notifier {
    NotifierBlock nb;
    bool registered = false;
    bool scripted = false;
  };
  Notifier nbs_[kNotifiers];
  std::vector<int> chain_;

  // the current and the last chain walk
  struct Walk {
    bool active = false;
    unsigned long action = 0;
    unsigned cpu = 0;
    int pos = -1;
    int limit = 0;
    bool stopped = false;
    int refused_at = -1;
  };
  Walk walk_, last_walk_;

  unsigned pin_serial_ = 0;  // the pin this input asked for (one per input)
  unsigned observer_serial_ = 0;
  unsigned observer_events_ = 0;
  char instances_[kInstances] = {};

  std::unique_ptr<Domain> d_;  // last: destroyed first
};

// ------------------------------------------------------------ callbacks

StateCallback Fuzz::make_state_cb(Reg* r, bool startup) {
  return [cl = Closure{this, r, startup, kClosureMagic ^ r->serial}](unsigned cpu) {
    const Closure before = cl;
    const int rc = before.fuzz->state_callback(before.reg, cpu, nullptr, before.startup);
    const Closure* self = &cl;
    const volatile std::uint64_t* magic = &self->magic;
    if (*magic != before.magic || self->reg != before.reg)
      violation(
          "state '%s': the callback's closure changed while it ran (the Domain "
          "replaced a running callback)",
          before.reg->name.c_str());
    return rc;
  };
}

InstanceCallback Fuzz::make_instance_cb(Reg* r, bool startup) {
  return [cl = Closure{this, r, startup, kClosureMagic ^ r->serial}](unsigned cpu,
                                                                     void* instance) {
    const Closure before = cl;
    const int rc = before.fuzz->state_callback(before.reg, cpu, instance, before.startup);
    const Closure* self = &cl;
    const volatile std::uint64_t* magic = &self->magic;
    if (*magic != before.magic || self->reg != before.reg)
      violation("multi state '%s': the callback's closure changed while it ran",
                before.reg->name.c_str());
    return rc;
  };
}

Behaviour Fuzz::next_behaviour(bool scripted) {
  Behaviour b;
  if (!scripted || quiet_) return b;
  const std::uint8_t v = c_.byte();
  if (v >= 0xc0) {
    b.reenter = true;
    const std::uint8_t w = c_.byte();  // after the re-entry: ok or not
    if (w < 0xe0) return b;
    b.kind = static_cast<Behaviour::Kind>(1 + w % 6);
    b.err = kErrnos[w % std::size(kErrnos)];
    return b;
  }
  if (v < 0x90) return b;
  b.err = kErrnos[v % std::size(kErrnos)];
  if (v < 0xa0)
    b.kind = Behaviour::kError;
  else if (v < 0xa8)
    b.kind = Behaviour::kPositiveError;
  else if (v < 0xb0)
    b.kind = Behaviour::kThrowRuntime;
  else if (v < 0xb8)
    b.kind = Behaviour::kThrowSystem;
  else if (v < 0xbc)
    b.kind = Behaviour::kThrowGeneric;
  else
    b.kind = Behaviour::kThrowOther;
  return b;
}

int Fuzz::state_callback(Reg* r, unsigned cpu, void* instance, bool startup) {
  int slot = 0;
  if (r->multi) {
    const char* p = static_cast<const char*>(instance);
    if (p < instances_ || p >= instances_ + kInstances)
      violation("multi state '%s': callback got instance %p, not one of ours",
                r->name.c_str(), instance);
    slot = static_cast<int>(p - instances_) + 1;
    if (!r->added[slot] && r->adding_slot != slot)
      violation("multi state '%s': callback for instance %d, which is not added",
                r->name.c_str(), slot);
  }
  if (!r->installed && !r->installing)
    violation("state '%s' (%d): %s ran on CPU %u but the state is not installed",
              r->name.c_str(), r->id, startup ? "startup" : "teardown", cpu);
  if (cpu >= cap_) violation("callback for CPU %u beyond the domain", cpu);
  if (!d_->hotplug_lock().held_exclusive_by_this_thread())
    violation("state '%s': %s on CPU %u runs without the hotplug write lock",
              r->name.c_str(), startup ? "startup" : "teardown", cpu);
  check_masks("in a callback");
  ++calls_;
  Depth in_cb(cb_depth_);
  const Behaviour b = next_behaviour(startup ? r->scripted_up : r->scripted_down);
  trace("%*s%s '%s'(%d)/%d cpu %u%s%s", op_depth_ * 2, "",
        startup ? "startup" : "teardown", r->name.c_str(), r->id, slot, cpu,
        b.reenter ? " re-enters" : "", b.fails() ? " and fails" : "");
  if (b.reenter) exec_op();

  if (startup) {
    if (b.fails()) {
      ++fails_;
      if (b.kind == Behaviour::kError) return -b.err;
      if (b.kind == Behaviour::kPositiveError) return b.err;
      throw_kind(b.kind, b.err, "startup refused by the fuzzer");
    }
    if (r->has_teardown && r->up[slot][cpu] && !r->exempt[slot][cpu])
      violation("state '%s' (%d) slot %d: startup on CPU %u twice without a teardown",
                r->name.c_str(), r->id, slot, cpu);
    r->up[slot][cpu] = true;
    r->exempt[slot][cpu] = false;
    if (r->prepare()) {
      auto* o = new PerCpuObj;
      o->state = r->id;
      o->slot = static_cast<unsigned>(slot);
      o->cpu = cpu;
      g_built.fetch_add(1, std::memory_order_relaxed);
      g_obj_states.fetch_or(1ull << r->id, std::memory_order_release);
      if (PerCpuObj* old =
              g_obj[r->id][slot][cpu].exchange(o, std::memory_order_acq_rel)) {
        if (r->has_teardown)
          violation("state '%s' slot %d CPU %u: an object was still published at startup",
                    r->name.c_str(), slot, cpu);
        retire(old);  // no teardown: the owner replaces it
      }
      pin_handshake();  // let a pinned reader see it before anything else happens
    }
    return 0;
  }

  // Teardown: the work happens whatever it then returns (teardowns cannot fail).
  if (r->has_startup && !r->up[slot][cpu] && !r->exempt[slot][cpu])
    violation("state '%s' (%d) slot %d: teardown on CPU %u without a startup",
              r->name.c_str(), r->id, slot, cpu);
  r->up[slot][cpu] = false;
  r->exempt[slot][cpu] = false;
  if (r->prepare()) {
    if (PerCpuObj* o =
            g_obj[r->id][slot][cpu].exchange(nullptr, std::memory_order_acq_rel)) {
      if (d_->cpu_online(cpu) || skipping(kSkipDownGrace))
        retire(o);  // readers may hold it
      else
        free_now(o);  // the Domain waited a grace period since it cleared the bit
    }
  }
  if (b.kind == Behaviour::kError) return -b.err;
  if (b.kind == Behaviour::kPositiveError) return b.err;
  if (b.fails()) throw_kind(b.kind, b.err, "teardown failed in the fuzzer");
  return 0;
}

// ------------------------------------------------------------ notifiers

void Fuzz::close_walk() {
  if (!walk_.active) return;
  if (!walk_.stopped && walk_.pos + 1 != walk_.limit)
    violation("%s walk for CPU %u ended after %d of %d notifiers without a stop",
              event_name(walk_.action), walk_.cpu, walk_.pos + 1, walk_.limit);
  last_walk_ = walk_;
  walk_.active = false;
}

int Fuzz::notifier_call(unsigned index, NotifierBlock* self, unsigned long action,
                        unsigned cpu) {
  Notifier& n = nbs_[index];
  if (self != &n.nb) violation("notifier %u called with another block", index);
  if (!n.registered) violation("notifier %u called but not registered", index);
  if (cpu >= cap_) violation("notifier for CPU %u beyond the domain", cpu);
  if (((action & kCpuTasksFrozen) != 0) != frozen_)
    violation("notifier %s for CPU %u: kCpuTasksFrozen is %s %s suspend/resume",
              event_name(action), cpu, (action & kCpuTasksFrozen) ? "set" : "clear",
              frozen_ ? "during" : "outside");
  const unsigned long ev = base_event(action);
  const bool online = d_->cpu_online(cpu);
  switch (ev) {
    case kCpuUpPrepare:
    case kCpuUpCanceled:
    case kCpuDead:
    case kCpuPostDead:
      if (online) violation("%s for CPU %u with its online bit set", event_name(ev), cpu);
      break;
    case kCpuOnline:
    case kCpuDownPrepare:
    case kCpuDownFailed:
      if (!online)
        violation("%s for CPU %u with its online bit clear", event_name(ev), cpu);
      break;
    default:
      violation("notifier got unknown action 0x%lx", action);
  }
  const bool write_held = d_->hotplug_lock().held_exclusive_by_this_thread();
  if (write_held != (ev != kCpuPostDead))
    violation("%s for CPU %u %s the hotplug write lock", event_name(ev), cpu,
              write_held ? "holds" : "without");

  // Chain walks: a prefix of the chain, in order, cut by NOTIFY_STOP_MASK.
  const int k = static_cast<int>(
      std::find(chain_.begin(), chain_.end(), static_cast<int>(index)) - chain_.begin());
  if (k == static_cast<int>(chain_.size()))
    violation("notifier %u called but not in the chain", index);
  if (k == 0) {
    close_walk();
    walk_ = Walk{};
    walk_.active = true;
    walk_.action = action;
    walk_.cpu = cpu;
    walk_.limit = static_cast<int>(chain_.size());
    // After a refusal only those told before the refuser hear UP_CANCELED /
    // DOWN_FAILED.
    const unsigned long undo_of = ev == kCpuUpCanceled   ? kCpuUpPrepare
                                  : ev == kCpuDownFailed ? kCpuDownPrepare
                                                         : 0;
    if (undo_of != 0 && base_event(last_walk_.action) == undo_of &&
        last_walk_.cpu == cpu && last_walk_.refused_at >= 0)
      walk_.limit = last_walk_.refused_at;
    last_walk_ = Walk{};
  } else if (!walk_.active || walk_.action != action || walk_.cpu != cpu ||
             walk_.pos + 1 != k || walk_.stopped) {
    violation(
        "notifier %u (chain position %d, priority %d) got %s for CPU %u out of "
        "order (walk: %s CPU %u at %d%s)",
        index, k, n.nb.priority, event_name(action), cpu,
        walk_.active ? event_name(walk_.action) : "none", walk_.cpu, walk_.pos,
        walk_.stopped ? ", stopped" : "");
  }
  if (k >= walk_.limit)
    violation(
        "%s for CPU %u reached notifier at %d; only %d were told before the refusal",
        event_name(action), cpu, k, walk_.limit);
  walk_.pos = k;

  ++calls_;
  Depth in_cb(cb_depth_);
  const Behaviour b = next_behaviour(n.scripted);
  int ret = kNotifyOk;
  bool throws = false;
  switch (b.kind) {
    case Behaviour::kOk:
      break;
    case Behaviour::kError:
      ret = kNotifyBad;
      break;
    case Behaviour::kPositiveError:
      ret = notifier_from_errno(-b.err);
      break;
    case Behaviour::kThrowRuntime:
      ret = kNotifyStopMask | kNotifyOk;
      break;  // NOTIFY_STOP
    case Behaviour::kThrowSystem:
      ret = kNotifyDone;
      break;
    default:
      throws = true;
      break;
  }
  trace("%*snotifier %u %s cpu %u -> %s%s", op_depth_ * 2, "", index, event_name(action),
        cpu,
        throws                    ? "throws"
        : ret == kNotifyBad       ? "BAD"
        : (ret & kNotifyStopMask) ? "STOP/errno"
                                  : "ok",
        b.reenter ? " (re-enters)" : "");
  if (b.reenter) exec_op();
  const bool refuses = throws || notifier_to_errno(ret) != 0;
  if (throws || (ret & kNotifyStopMask)) walk_.stopped = true;
  if (refuses && (ev == kCpuUpPrepare || ev == kCpuDownPrepare)) {
    walk_.refused_at = k;
    ++fails_;
  }
  if (throws) throw_kind(b.kind, b.err, "notifier throws");
  return ret;
}

// ------------------------------------------------------------ observer

void Fuzz::observer_event(unsigned serial, int mode, unsigned n, const CallbackEvent& e) {
  if (e.name == nullptr) violation("observer: event without a name");
  const std::string name = *e.name;  // ASan: the name must be alive
  if (e.begin_ns > e.end_ns) violation("observer: event ends before it begins");
  if (e.cpu >= cap_ || e.state < 0 || e.state >= kNumStates)
    violation("observer: event for CPU %u state %d", e.cpu, e.state);
  if (quiet_ || serial != observer_serial_) return;
  ++observer_events_;
  if (observer_events_ % n != 0) return;
  if (mode == 4) return;
  if (mode == 3) {
    Depth in_obs(obs_depth_);
    trace("%*sobserver (event %s cpu %u) re-enters", op_depth_ * 2, "", name.c_str(),
          e.cpu);
    exec_op();
    return;
  }
  if (skipping(kSkipObserverThrow)) return;
  trace("%*sobserver throws at event %s/%d cpu %u", op_depth_ * 2, "", name.c_str(),
        e.state, e.cpu);
  if (mode == 1) throw std::runtime_error("observer throws");
  if (mode == 2) throw NonStdException{1};
}

// ------------------------------------------------------------ oracles

Snapshot Fuzz::snapshot() {
  Snapshot s;
  for (unsigned cpu = 0; cpu < cap_; ++cpu) {
    if (d_->present().test(cpu)) s.present |= 1ull << cpu;
    if (d_->online().test(cpu)) s.online |= 1ull << cpu;
    if (d_->active().test(cpu)) s.active |= 1ull << cpu;
    s.state[cpu] = state_of(cpu);
  }
  for (const StateInfo& info : d_->states()) s.states.emplace_back(info.id, info.name);
  for (const auto& r : regs_) s.model.push_back(model_of(*r));
  s.chain = chain_;
  return s;
}

void Fuzz::expect_unchanged(const char* what, const Snapshot& b) {
  const Snapshot a = snapshot();
  if (a.present != b.present || a.online != b.online || a.active != b.active)
    violation(
        "%s failed but changed the masks: present %llx->%llx online %llx->%llx "
        "active %llx->%llx",
        what, (unsigned long long)b.present, (unsigned long long)a.present,
        (unsigned long long)b.online, (unsigned long long)a.online,
        (unsigned long long)b.active, (unsigned long long)a.active);
  for (unsigned cpu = 0; cpu < cap_; ++cpu)
    if (a.state[cpu] != b.state[cpu])
      violation("%s failed but moved CPU %u from state %d to %d", what, cpu, b.state[cpu],
                a.state[cpu]);
  if (a.states != b.states) violation("%s failed but changed states()", what);
  // Regs made after `b` (by re-entrant calls) must have left no trace.
  for (std::size_t i = 0; i < a.model.size(); ++i) {
    const bool changed = i < b.model.size()
                             ? a.model[i] != b.model[i]
                             : std::any_of(a.model[i].begin(), a.model[i].end(),
                                           [](std::uint8_t v) { return v != 0; });
    if (changed)
      violation(
          "%s failed but changed state '%s' (%d): installed/instances/startups "
          "differ from before the call",
          what, regs_[i]->name.c_str(), regs_[i]->id);
  }
  if (a.chain != b.chain) violation("%s failed but changed the notifier chain", what);
}

namespace {
// Whether `message` names CPU `cpu` ("CPU 3" not followed by another digit).
bool names_cpu(const std::string& message, unsigned cpu) {
  const std::string needle = "CPU " + std::to_string(cpu);
  for (std::size_t at = message.find(needle); at != std::string::npos;
       at = message.find(needle, at + 1)) {
    const std::size_t end = at + needle.size();
    if (end >= message.size() || message[end] < '0' || message[end] > '9') return true;
  }
  return false;
}
}  // namespace

void Fuzz::expect_back_but_named(const char* what, const Snapshot& b,
                                 const std::string& message) {
  if (message.find("failed too") == std::string::npos) return expect_unchanged(what, b);
  const Snapshot a = snapshot();
  for (unsigned cpu = 0; cpu < cap_; ++cpu)
    if (a.state[cpu] != b.state[cpu] && !names_cpu(message, cpu))
      violation("%s moved CPU %u from state %d to %d and does not say so: %s", what, cpu,
                b.state[cpu], a.state[cpu], message.c_str());
  if (a.present != b.present) violation("%s failed but changed the present mask", what);
  if (a.states != b.states) violation("%s failed but changed states()", what);
  if (a.chain != b.chain) violation("%s failed but changed the notifier chain", what);
}

void Fuzz::expect_resumed_but_named(const char* what, const std::string& message) {
  for (unsigned cpu = 0; cpu < cap_; ++cpu)
    if ((suspend_taken_ >> cpu & 1) && state_of(cpu) != suspend_state_[cpu] &&
        !names_cpu(message, cpu))
      violation("%s left CPU %u at %d (before the suspend: %d) and does not say so: %s",
                what, cpu, state_of(cpu), suspend_state_[cpu], message.c_str());
}

void Fuzz::expect_code(const char* what, const Error& e,
                       std::initializer_list<Errc> allowed) {
  for (Errc a : allowed)
    if (e.code() == a) return;
  std::string list;
  for (Errc a : allowed) list += std::string(list.empty() ? "" : ", ") + errc_name(a);
  violation("%s failed with %s, expected one of {%s}: %s", what, errc_name(e.code()),
            list.empty() ? "success" : list.c_str(), e.message().c_str());
}

// A call that must be refused (it would deadlock here): with kWouldDeadlock,
// or with an error its arguments earn anyway (`apply`), and without effect.
void Fuzz::expect_refused(const char* what, const Error& e, const Snapshot& before,
                          long calls_before, const std::vector<Errc>& apply) {
  if (e.code() != Errc::kWouldDeadlock &&
      std::find(apply.begin(), apply.end(), e.code()) == apply.end())
    violation("%s from %s failed with %s, not kWouldDeadlock: %s", what,
              cb_depth_    ? "a callback"
              : obs_depth_ ? "the observer"
                           : "a locked context",
              errc_name(e.code()), e.message().c_str());
  if (calls_ != calls_before) violation("refused %s still ran callbacks", what);
  expect_unchanged(what, before);
}

// An exception escaped a cpuhp call: a violation in itself; first say what
// state it left behind, if that is inconsistent too.
[[noreturn]] void Fuzz::escaped(const std::string& what) {
  static std::string note;
  note = "after an exception (" + what + ") escaped a cpuhp call: ";
  g_note = note.c_str();
  if (at_boundary()) check_boundary("consistency");
  g_note = "";
  violation(
      "an exception escaped a cpuhp call: %s (an observer that throws is a "
      "warning, not the caller's problem: include/cpuhp/diagnostics.h)",
      what.c_str());
}

void Fuzz::check_masks(const char* when) {
  const CpuMask& possible = d_->possible();
  const CpuMask& present = d_->present();
  const CpuMask& online = d_->online();
  const CpuMask& active = d_->active();
  for (unsigned cpu = 0; cpu < cap_; ++cpu) {
    const bool p = possible.test(cpu), pr = present.test(cpu), o = online.test(cpu),
               a = active.test(cpu);
    if ((a && !o) || (o && !pr) || (pr && !p))
      violation(
          "%s: masks not nested at CPU %u: possible %d present %d online %d active %d",
          when, cpu, p, pr, o, a);
  }
}

void Fuzz::check_boundary(const char* when) {
  check_masks(when);
  for (unsigned cpu = 0; cpu < cap_; ++cpu) {
    const int st = state_of(cpu);
    if (st < kStateOffline || st > kStateActive)
      violation("%s: CPU %u is at state %d, not a state", when, cpu, st);
    if (d_->cpu_online(cpu) != (st >= kStateBringup))
      violation("%s: CPU %u at state %d has its online bit %s (a ghost CPU)", when, cpu,
                st, d_->cpu_online(cpu) ? "set" : "clear");
    if (d_->active().test(cpu) != (st == kStateActive))
      violation("%s: CPU %u at state %d has its active bit %s", when, cpu, st,
                d_->active().test(cpu) ? "set" : "clear");
    if (st != kStateOffline && !d_->present().test(cpu))
      violation("%s: CPU %u at state %d is not present", when, cpu, st);
  }
  // states(): the built-ins and what we installed, nothing else.
  std::vector<StateInfo> infos = d_->states();
  std::size_t want = std::size(kBuiltins);
  for (const auto& r : regs_) want += r->installed;
  if (infos.size() != want)
    violation("%s: states() lists %zu states, the model %zu", when, infos.size(), want);
  for (const StateInfo& info : infos) {
    if (info.id < 0 || info.id >= kNumStates)
      violation("%s: states() lists id %d", when, info.id);
    if (is_builtin(info.id)) {
      if (!info.builtin) violation("%s: state %d is not marked built-in", when, info.id);
      continue;
    }
    const Reg* r = by_id_[info.id];
    if (r == nullptr)
      violation("%s: states() lists '%s' (%d), which the model did not install", when,
                info.name.c_str(), info.id);
    if (info.name != r->name || info.multi_instance != r->multi || info.builtin)
      violation("%s: states() says '%s' (%d)%s, the model '%s'%s", when,
                info.name.c_str(), info.id, info.multi_instance ? " multi" : "",
                r->name.c_str(), r->multi ? " multi" : "");
  }
  check_model(when);
}

void Fuzz::check_model(const char* when) {
  // No object where no installed state or instance owns one.
  for (std::uint64_t bits = g_obj_states.load(); bits != 0; bits &= bits - 1) {
    const StateId s = static_cast<StateId>(__builtin_ctzll(bits));
    const Reg* r = by_id_[s];
    for (unsigned slot = 0; slot < kSlots; ++slot) {
      if (r != nullptr && (r->multi ? r->added[slot] : slot == 0)) continue;
      for (unsigned cpu = 0; cpu < kCpus; ++cpu)
        if (g_obj[s][slot][cpu].load(std::memory_order_relaxed) != nullptr)
          violation(
              "%s: a per-CPU object of state %d slot %u CPU %u is left where no "
              "installed state owns one",
              when, s, slot, cpu);
    }
  }
  for (const auto& rp : regs_) {
    Reg& r = *rp;
    for (unsigned slot = 0; slot < kSlots; ++slot) {
      const bool in_use = r.installed && (r.multi ? r.added[slot] : slot == 0);
      for (unsigned cpu = 0; cpu < cap_; ++cpu) {
        if (!in_use) {
          if (r.up[slot][cpu] && r.has_teardown)
            violation(
                "%s: state '%s' (%d) slot %u is %s but CPU %u still has its startup "
                "without a teardown",
                when, r.name.c_str(), r.id, slot,
                r.installed ? "not added" : "not installed", cpu);
          continue;
        }
        PerCpuObj* o = r.prepare()
                           ? g_obj[r.id][slot][cpu].load(std::memory_order_relaxed)
                           : nullptr;
        const int st = state_of(cpu);
        if (st >= r.id) {
          if (r.has_startup && !r.up[slot][cpu] && !r.exempt[slot][cpu])
            violation(
                "%s: CPU %u is at state %d, at or past '%s' (%d) slot %u, but that "
                "state's startup has not run there",
                when, cpu, st, r.name.c_str(), r.id, slot);
        } else {
          r.exempt[slot][cpu] = false;
          if (r.up[slot][cpu]) {
            if (r.has_teardown)
              violation(
                  "%s: CPU %u is at state %d, below '%s' (%d) slot %u, but its "
                  "teardown has not run there",
                  when, cpu, st, r.name.c_str(), r.id, slot);
            // No teardown: the owner disposes of what the startup built.
            r.up[slot][cpu] = false;
            if (r.prepare())
              if (PerCpuObj* old = g_obj[r.id][slot][cpu].exchange(nullptr)) retire(old);
            o = nullptr;
          }
        }
        if (r.prepare() && r.has_teardown && (o != nullptr) != r.up[slot][cpu])
          violation("%s: state '%s' slot %u CPU %u: object %s but startup %s", when,
                    r.name.c_str(), slot, cpu, o ? "published" : "missing",
                    r.up[slot][cpu] ? "ran" : "did not run");
      }
    }
  }
}

// ------------------------------------------------------------ model helpers

bool Fuzz::name_used(const std::string& name) const {
  for (const char* b : kBuiltinNames)
    if (name == b) return true;
  for (const auto& r : regs_)
    if (r->installed && r->name == name) return true;
  return false;
}

StateId Fuzz::first_free(Section section) const {
  const StateId first = section == Section::kPrepare ? kStatePrepareDyn : kStateOnlineDyn;
  const StateId last =
      section == Section::kPrepare ? kStatePrepareDynEnd : kStateOnlineDynEnd;
  for (StateId s = first; s <= last; ++s)
    if (by_id_[s] == nullptr) return s;
  return -1;
}

bool Fuzz::some_cpu_at(StateId s) const {
  for (unsigned cpu = 0; cpu < cap_; ++cpu)
    if (state_of(cpu) == s) return true;
  return false;
}

void Fuzz::mark_exempt(Reg& r, int slot) {
  for (unsigned cpu = 0; cpu < cap_; ++cpu)
    if (state_of(cpu) >= r.id && !r.up[slot][cpu]) r.exempt[slot][cpu] = true;
}

void Fuzz::drop_leftovers(Reg& r, int slot) {
  for (unsigned cpu = 0; cpu < cap_; ++cpu) {
    r.up[slot][cpu] = false;
    r.exempt[slot][cpu] = false;
    // Readers may still hold it whatever the bit says now.
    if (r.prepare())
      if (PerCpuObj* o = g_obj[r.id][slot][cpu].exchange(nullptr)) retire(o);
  }
}

// Would a transition of `cpu` from `from` to `to` meet a failure injected
// with inject_failure()? Startups going up (not notify:online, whose teardown
// is the one that may veto), notify:online's teardown going down.
bool Fuzz::injection_pending(unsigned cpu, StateId from, StateId to) const {
  for (const auto& [c, s] : injected_) {
    if (c != cpu) continue;
    if (to > from && s > from && s <= to && s != kStateNotifyOnline) return true;
    if (to < from && s == kStateNotifyOnline && s <= from && s > to) return true;
  }
  return false;
}

void Fuzz::consume_injections(unsigned cpu, StateId from, StateId to, bool ok,
                              long fails) {
  if (!injection_pending(cpu, from, to)) return;
  if (ok && !injections_unknown_)
    violation("CPU %u went from state %d to %d through a state with an injected failure",
              cpu, from, to);
  if (fails != 0 || injections_unknown_) {
    injections_unknown_ = true;  // which one fired first is not worth modelling
    return;
  }
  // The first one on the way fired.
  auto hit = injected_.end();
  for (auto it = injected_.begin(); it != injected_.end(); ++it) {
    if (it->first != cpu) continue;
    const StateId s = it->second;
    const bool on_path = to > from ? (s > from && s <= to && s != kStateNotifyOnline)
                                   : (s == kStateNotifyOnline && s <= from && s > to);
    if (!on_path) continue;
    if (hit == injected_.end() || (to > from ? s < hit->second : s > hit->second))
      hit = it;
  }
  injected_.erase(hit);
}

// ------------------------------------------------------------ decoding

StateId Fuzz::pick_state() {
  const std::uint8_t b = c_.byte();
  std::vector<StateId> live;
  for (const auto& r : regs_)
    if (r->installed) live.push_back(r->id);
  if (b < 150 && !live.empty()) return live[b % live.size()];
  if (b < 200) return kBuiltins[b % std::size(kBuiltins)];
  if (b < 230 && !regs_.empty()) return regs_[b % regs_.size()]->id;
  constexpr StateId kOdd[] = {-1, kNumStates, 10, 70, kStatePrepareDyn, kStateOnlineDyn};
  return kOdd[b % std::size(kOdd)];
}

StateId Fuzz::pick_target() {
  const std::uint8_t b = c_.byte();
  if (b < 64) return kStateOnline;
  if (b < 112) return kStateOffline;
  if (b < 200) {
    const StateId s = pick_state();
    return (b & 1) ? s : s - 1;
  }
  if (b < 250) return static_cast<StateId>(c_.below(kNumStates));
  return b == 250 ? -1 : kNumStates;
}

Reg* Fuzz::pick_reg(bool installed_only) {
  std::vector<Reg*> v;
  for (const auto& r : regs_)
    if (!installed_only || r->installed) v.push_back(r.get());
  const std::uint8_t b = c_.byte();
  return v.empty() ? nullptr : v[b % v.size()];
}

void* Fuzz::pick_instance(int* slot) {
  const unsigned i = c_.below(kInstances + 1);
  if (i == kInstances) {
    *slot = -1;
    return nullptr;
  }
  *slot = static_cast<int>(i) + 1;
  return &instances_[i];
}

// ------------------------------------------------------------ operations

enum Op : unsigned {
  kOpUp,
  kOpDown,
  kOpBringTo,
  kOpSetPresent,
  kOpSuspend,
  kOpResume,
  kOpDisable,
  kOpEnable,
  kOpInject,
  kOpSetup,
  kOpSetupNocalls,
  kOpSetupAt,
  kOpSetupAtNocalls,
  kOpRemove,
  kOpRemoveNocalls,
  kOpSetupMulti,
  kOpAddInstance,
  kOpAddInstanceNocalls,
  kOpRemoveInstance,
  kOpRemoveInstanceNocalls,
  kOpRegisterNotifier,
  kOpUnregisterNotifier,
  kOpScopeBlock,
  kOpScopeMethod,
  kOpRcuBlock,
  kOpReadLockBlock,
  kOpSetObserver,
  kOpQuery,
  kOpPin,
  kOpYield,
  kOpCount
};

void Fuzz::exec_op() {
  if (ops_left_ <= 0 || op_depth_ >= kMaxDepth) return;
  --ops_left_;
  Depth depth(op_depth_);
  const unsigned op = c_.below(kOpCount);
  // For the pinned reader: how long since the driving thread last finished
  // an operation (inside a block, the block's clock restarts after each).
  struct OpClock {
    OpClock(bool on, bool top) : on_(on), top_(top) {
      if (on_) g_op_since.store(now_ns(), std::memory_order_relaxed);
    }
    ~OpClock() {
      if (on_) g_op_since.store(top_ ? 0 : now_ns(), std::memory_order_relaxed);
    }
    bool on_, top_;
  } clock(at_boundary(), op_depth_ == 1);
  try {
    switch (op) {
      case kOpUp:
        op_bring_to(0);
        break;
      case kOpDown:
        op_bring_to(1);
        break;
      case kOpBringTo:
        op_bring_to(2);
        break;
      case kOpSetPresent:
        op_set_present();
        break;
      case kOpSuspend:
        op_suspend();
        break;
      case kOpResume:
        op_resume();
        break;
      case kOpDisable:
        op_disable();
        break;
      case kOpEnable:
        op_enable();
        break;
      case kOpInject:
        op_inject();
        break;
      case kOpSetup:
        op_setup(false, true, false, nullptr, false);
        break;
      case kOpSetupNocalls:
        op_setup(false, false, false, nullptr, false);
        break;
      case kOpSetupAt:
        op_setup(true, true, false, nullptr, false);
        break;
      case kOpSetupAtNocalls:
        op_setup(true, false, false, nullptr, false);
        break;
      case kOpRemove:
        op_remove(true, nullptr, false);
        break;
      case kOpRemoveNocalls:
        op_remove(false, nullptr, false);
        break;
      case kOpSetupMulti:
        op_setup(false, false, true, nullptr, false);
        break;
      case kOpAddInstance:
        op_instance(true, true);
        break;
      case kOpAddInstanceNocalls:
        op_instance(true, false);
        break;
      case kOpRemoveInstance:
        op_instance(false, true);
        break;
      case kOpRemoveInstanceNocalls:
        op_instance(false, false);
        break;
      case kOpRegisterNotifier:
        op_notifier(true, nullptr, false);
        break;
      case kOpUnregisterNotifier:
        op_notifier(false, nullptr, false);
        break;
      case kOpScopeBlock:
        op_scope_block();
        break;
      case kOpScopeMethod:
        op_scope_method();
        break;
      case kOpRcuBlock:
        op_rcu_block();
        break;
      case kOpReadLockBlock:
        op_read_lock_block();
        break;
      case kOpSetObserver:
        op_set_observer();
        break;
      case kOpQuery:
        op_query();
        break;
      case kOpPin:
        op_pin();
        break;
      default:
        trace("%*syield", op_depth_ * 2, "");
        if (at_boundary()) std::this_thread::yield();
        break;
    }
  } catch (const NonStdException&) {
    escaped("a non-std exception");
  } catch (const std::exception& e) {
    escaped(e.what());
  }
  if (at_boundary()) {
    close_walk();
    last_walk_ = Walk{};
    check_boundary("after an operation");
    pin_handshake();
  }
}

void Fuzz::op_pin() {
  // From a callback the reader might wait for the hotplug lock this thread holds.
  if (!at_boundary() || pin_serial_ != 0) return;
  static unsigned serial = 0;
  if (++serial == 0) ++serial;
  trace("%*spin a read section", op_depth_ * 2, "");
  g_op_since.store(0, std::memory_order_relaxed);  // waiting is no operation
  g_pin_request.store(serial, std::memory_order_release);
  pin_serial_ = serial;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  while (g_pin_active.load(std::memory_order_acquire) != serial &&
         std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  trace("%*s  -> %s", op_depth_ * 2, "",
        g_pin_active.load(std::memory_order_acquire) == serial ? "pinned"
                                                               : "no reader came");
}

// While a pin lasts, let it walk once more after each operation.
void Fuzz::pin_handshake() {
  if (pin_serial_ == 0) return;
  if (g_pin_active.load(std::memory_order_acquire) != pin_serial_) return;
  g_op_since.store(0, std::memory_order_relaxed);  // not an operation
  const unsigned long walks = g_pin_walks.load(std::memory_order_acquire);
  while (g_pin_active.load(std::memory_order_acquire) == pin_serial_ &&
         g_pin_walks.load(std::memory_order_acquire) < walks + 2)
    std::this_thread::yield();
  if (g_pin_active.load(std::memory_order_acquire) != pin_serial_)
    trace("%*spin over", op_depth_ * 2, "");
  g_op_since.store(now_ns(), std::memory_order_relaxed);
}

void Fuzz::exec_block(const char* what) {
  const int n = 1 + static_cast<int>(c_.below(kBlockOps));
  trace("%*s%s {", op_depth_ * 2, "", what);
  for (int i = 0; i < n && !c_.empty(); ++i) exec_op();
  trace("%*s} %s", op_depth_ * 2, "", what);
}

void Fuzz::op_bring_to(int which) {
  const unsigned cpu = pick_cpu();
  const StateId target = which == 0   ? kStateOnline
                         : which == 1 ? kStateOffline
                                      : pick_target();
  const char* what = which == 0 ? "up()" : which == 1 ? "down()" : "bring_to()";
  const bool r = restricted();
  const Snapshot before = snapshot();
  const long calls = calls_, fails = fails_;
  const StateId from = cpu < cap_ ? state_of(cpu) : 0;
  const int disabled = disable_count_;  // a callback may disable hotplug during the call
  const bool chain_empty = chain_.empty();
  trace("%*s%s cpu %u target %d (from %d)", op_depth_ * 2, "", what, cpu, target, from);
  Status s = which == 0   ? d_->up(cpu)
             : which == 1 ? d_->down(cpu)
                          : d_->bring_to(cpu, target);
  trace("%*s  -> %s", op_depth_ * 2, "", s ? "ok" : errc_name(s.error().code()));
  // The errors that apply; none: it must succeed unless a callback failed.
  std::vector<Errc> apply;
  if (cpu >= cap_) apply.push_back(Errc::kOutOfRange);
  if (target < kStateOffline || target > kStateOnline)
    apply.push_back(Errc::kInvalidArgument);
  if (cpu < cap_ && !(before.present >> cpu & 1)) apply.push_back(Errc::kNotPresent);
  if (disabled > 0) apply.push_back(Errc::kBusy);
  if (cpu < cap_ && from == target) apply.push_back(Errc::kAlreadyInState);
  if (cpu < cap_ && target < kStateBringup && (before.online >> cpu & 1) &&
      (before.online & (before.online - 1)) == 0)
    apply.push_back(Errc::kLastCpu);
  if (target == kStateNotifyPrepare && !chain_empty) apply.push_back(Errc::kBusy);
  if (r) {
    if (s) violation("%s succeeded where it must be refused", what);
    return expect_refused(what, s.error(), before, calls, apply);
  }
  const bool may_fail_cb =
      fails_ != fails || injection_pending(cpu, from, target) || injections_unknown_;
  if (s) {
    if (!apply.empty())
      violation("%s cpu %u -> %d succeeded though %s applies", what, cpu, target,
                errc_name(apply.front()));
    if (fails_ != fails)
      violation("%s succeeded though a startup or notifier refused", what);
    if (state_of(cpu) != target)
      violation("%s cpu %u -> %d succeeded but the CPU is at %d", what, cpu, target,
                state_of(cpu));
    consume_injections(cpu, from, target, true, 0);
    return;
  }
  if (apply.empty()) {
    if (s.error().code() != Errc::kCallbackFailed || !may_fail_cb)
      violation("%s cpu %u -> %d failed with %s though nothing refused: %s", what, cpu,
                target, errc_name(s.error().code()), s.error().message().c_str());
    consume_injections(cpu, from, target, false, fails_ - fails);
  } else {
    std::vector<Errc> ok = apply;
    bool allowed = std::find(ok.begin(), ok.end(), s.error().code()) != ok.end();
    if (!allowed)
      violation("%s cpu %u -> %d failed with %s, expected %s: %s", what, cpu, target,
                errc_name(s.error().code()), errc_name(apply.front()),
                s.error().message().c_str());
  }
  expect_unchanged(what, before);
}

void Fuzz::op_set_present() {
  const unsigned cpu = pick_cpu();
  const bool present = c_.byte() & 1;
  const bool r = restricted();
  const Snapshot before = snapshot();
  const long calls = calls_;
  trace("%*sset_present(%u, %d)", op_depth_ * 2, "", cpu, present);
  Status s = d_->set_present(cpu, present);
  trace("%*s  -> %s", op_depth_ * 2, "", s ? "ok" : errc_name(s.error().code()));
  if (r) {
    if (s) violation("set_present() succeeded where it must be refused");
    std::vector<Errc> apply;
    if (cpu >= cap_)
      apply.push_back(Errc::kOutOfRange);
    else if (!d_->possible().test(cpu))
      apply.push_back(Errc::kNotPresent);
    else if (!present && (before.state[cpu] != kStateOffline || held_by_suspend(cpu)))
      apply.push_back(Errc::kBusy);
    return expect_refused("set_present()", s.error(), before, calls, apply);
  }
  if (cpu >= cap_) {
    if (s) violation("set_present(%u) beyond the capacity succeeded", cpu);
    expect_code("set_present()", s.error(), {Errc::kOutOfRange});
  } else if (!d_->possible().test(cpu)) {
    if (s) violation("set_present(%u) of an impossible CPU succeeded", cpu);
    expect_code("set_present()", s.error(), {Errc::kNotPresent});
  } else if (!present && before.state[cpu] != kStateOffline) {
    if (s)
      violation("set_present(%u, false) at state %d succeeded", cpu, before.state[cpu]);
    expect_code("set_present()", s.error(), {Errc::kBusy});
  } else if (!present && held_by_suspend(cpu)) {
    // domain.h: a CPU suspend_nonboot() took down stays present until resume.
    if (s) violation("set_present(%u, false) of a CPU held by a suspend succeeded", cpu);
    expect_code("set_present()", s.error(), {Errc::kBusy});
  } else {
    if (!s)
      violation("set_present(%u, %d) failed: %s", cpu, present,
                s.error().message().c_str());
    if (d_->present().test(cpu) != present)
      violation("set_present(%u, %d) did not", cpu, present);
    return;
  }
  expect_unchanged("set_present()", before);
}

void Fuzz::op_suspend() {
  const bool r = restricted();
  const Snapshot before = snapshot();
  const long calls = calls_, fails = fails_;
  trace("%*ssuspend_nonboot()", op_depth_ * 2, "");
  Status s;
  {
    const bool outer = frozen_;
    frozen_ = true;
    s = d_->suspend_nonboot();
    frozen_ = outer;
  }
  trace("%*s  -> %s", op_depth_ * 2, "", s ? "ok" : s.error().message().c_str());
  if (r) {
    if (s) violation("suspend_nonboot() succeeded where it must be refused");
    return expect_refused("suspend_nonboot()", s.error(), before, calls);
  }
  if (!injected_.empty()) injections_unknown_ = true;
  if (suspended_) {
    if (s) violation("suspend_nonboot() succeeded twice");
    expect_code("suspend_nonboot()", s.error(), {Errc::kBusy});
    return expect_unchanged("suspend_nonboot()", before);
  }
  if (s) {
    const unsigned boot = static_cast<unsigned>(__builtin_ctzll(before.online));
    suspended_ = true;
    ++disable_count_;
    suspend_taken_ = 0;
    for (unsigned cpu = 0; cpu < cap_; ++cpu) {
      suspend_state_[cpu] = before.state[cpu];
      const bool taken = (before.online >> cpu & 1) && cpu != boot;
      if (taken) suspend_taken_ |= 1ull << cpu;
      const int want = taken ? kStateOffline : before.state[cpu];
      if (state_of(cpu) != want)
        violation("suspend_nonboot(): CPU %u at %d, expected %d", cpu, state_of(cpu),
                  want);
    }
    if (fails_ != fails)
      violation("suspend_nonboot() succeeded though a callback refused");
    return;
  }
  if (fails_ == fails && !injections_unknown_)
    violation("suspend_nonboot() failed though nothing refused: %s",
              s.error().message().c_str());
  expect_code("suspend_nonboot()", s.error(), {Errc::kCallbackFailed});
  // domain.h, Errors: if bringing back a CPU already taken down fails too, the
  // error names each such CPU ("CPU n stays at state ..."); every other CPU is
  // back where it was.
  expect_back_but_named("suspend_nonboot()", before, s.error().message());
}

void Fuzz::op_resume() {
  const bool r = restricted();
  const Snapshot before = snapshot();
  const long calls = calls_, fails = fails_;
  trace("%*sresume_nonboot()", op_depth_ * 2, "");
  // The Domain stops being suspended before it brings the CPUs back: its
  // callbacks may already enable_hotplug() down to zero.
  const bool was_suspended = suspended_;
  if (!r && was_suspended) {
    suspended_ = false;
    --disable_count_;
  }
  Status s;
  {
    const bool outer = frozen_;
    frozen_ = true;
    s = d_->resume_nonboot();
    frozen_ = outer;
  }
  trace("%*s  -> %s", op_depth_ * 2, "", s ? "ok" : s.error().message().c_str());
  if (r) {
    if (s) violation("resume_nonboot() succeeded where it must be refused");
    return expect_refused("resume_nonboot()", s.error(), before, calls);
  }
  if (!injected_.empty()) injections_unknown_ = true;
  if (!was_suspended) {
    if (s) violation("resume_nonboot() succeeded while not suspended");
    expect_code("resume_nonboot()", s.error(), {Errc::kInvalidArgument});
    return expect_unchanged("resume_nonboot()", before);
  }
  if (s) {
    for (unsigned cpu = 0; cpu < cap_; ++cpu)
      if ((suspend_taken_ >> cpu & 1) && state_of(cpu) != suspend_state_[cpu])
        violation("resume_nonboot(): CPU %u at %d, before the suspend it was at %d", cpu,
                  state_of(cpu), suspend_state_[cpu]);
    if (fails_ != fails)
      violation("resume_nonboot() succeeded though a callback refused");
    return;
  }
  if (s.error().code() == Errc::kInvalidArgument)
    violation(
        "resume_nonboot() says not suspended, but the last suspend_nonboot() "
        "succeeded and no resume did: %s",
        s.error().message().c_str());
  if (fails_ == fails && !injections_unknown_)
    violation("resume_nonboot() failed though nothing refused: %s",
              s.error().message().c_str());
  // domain.h, Errors: resume is best effort. The suspend is over; every CPU it
  // took is back at its state from before, but those the error names.
  expect_resumed_but_named("resume_nonboot()", s.error().message());
}

void Fuzz::op_disable() {
  trace("%*sdisable_hotplug()", op_depth_ * 2, "");
  const Snapshot before = snapshot();
  const long calls = calls_;
  Status s = d_->disable_hotplug();
  if (writers_held() || !restricted()) {
    if (!s)
      violation("disable_hotplug() failed %s: %s",
                writers_held() ? "where this thread holds the writers' lock" : "",
                s.error().message().c_str());
    ++disable_count_;
    return;
  }
  if (s) violation("disable_hotplug() succeeded under a read lock/section");
  expect_refused("disable_hotplug()", s.error(), before, calls);
}

void Fuzz::op_enable() {
  trace("%*senable_hotplug()", op_depth_ * 2, "");
  const Snapshot before = snapshot();
  const long calls = calls_;
  Status s = d_->enable_hotplug();
  if (writers_held() || !restricted()) {
    if (disable_count_ == 0) {
      if (s) violation("enable_hotplug() without a disable succeeded");
      expect_code("enable_hotplug()", s.error(), {Errc::kInvalidArgument});
    } else if (suspended_ && disable_count_ == 1) {
      if (s) violation("enable_hotplug() succeeded while suspended");
      expect_code("enable_hotplug()", s.error(), {Errc::kBusy});
    } else {
      if (!s) violation("enable_hotplug() failed: %s", s.error().message().c_str());
      --disable_count_;
      return;
    }
    return expect_unchanged("enable_hotplug()", before);
  }
  if (s) violation("enable_hotplug() succeeded under a read lock/section");
  expect_refused("enable_hotplug()", s.error(), before, calls);
}

void Fuzz::op_inject() {
  const unsigned cpu = pick_cpu();
  const StateId state = pick_state();
  const bool r = restricted();
  const Snapshot before = snapshot();
  const long calls = calls_;
  trace("%*sinject_failure(%u, %d)", op_depth_ * 2, "", cpu, state);
  Status s = d_->inject_failure(cpu, state);
  trace("%*s  -> %s", op_depth_ * 2, "", s ? "ok" : errc_name(s.error().code()));
  std::vector<Errc> apply;
  if (cpu >= cap_) apply.push_back(Errc::kOutOfRange);
  if (state <= kStateOffline || state > kStateOnline || !installed(state))
    apply.push_back(Errc::kNotFound);
  else if (state == kStateBringup || state == kStateActive)
    apply.push_back(Errc::kInvalidArgument);
  if (r) {
    if (s) violation("inject_failure() succeeded where it must be refused");
    return expect_refused("inject_failure()", s.error(), before, calls, apply);
  }
  if (s) {
    if (!apply.empty()) violation("inject_failure(%u, %d) succeeded", cpu, state);
    injected_.emplace_back(cpu, state);
    return;
  }
  if (apply.empty())
    violation("inject_failure(%u, %d) failed: %s", cpu, state,
              s.error().message().c_str());
  if (std::find(apply.begin(), apply.end(), s.error().code()) == apply.end())
    violation("inject_failure(%u, %d) failed with %s", cpu, state,
              errc_name(s.error().code()));
  expect_unchanged("inject_failure()", before);
}

// setup_state{,_nocalls,_at,_at_nocalls}, setup_multi_state, and the scope's
// setup_state{,_nocalls} (scope != nullptr; `live`: it holds the lock).
void Fuzz::op_setup(bool at, bool calls, bool multi, RegistrationScope* scope,
                    bool live) {
  auto reg = std::make_unique<Reg>();
  Reg* r = reg.get();
  r->serial = static_cast<int>(regs_.size());
  const Section section = (c_.byte() & 1) ? Section::kOnline : Section::kPrepare;
  const StateId static_id = at ? kStaticIds[c_.below(std::size(kStaticIds))] : 0;
  r->name = kNames[c_.below(std::size(kNames))];
  const unsigned f = c_.below(8);
  r->has_startup = f != 6 && f != 7;
  r->has_teardown = f != 5 && f != 7;
  const std::uint8_t scripted = c_.byte();
  r->scripted_up = scripted & 1;
  r->scripted_down = scripted & 2;
  r->multi = multi;
  regs_.push_back(std::move(reg));  // lives as long as the input: the Domain may keep it

  const char* what = scope != nullptr
                         ? (calls ? "scope.setup_state()" : "scope.setup_state_nocalls()")
                     : multi ? "setup_multi_state()"
                     : at    ? (calls ? "setup_state_at()" : "setup_state_at_nocalls()")
                             : (calls ? "setup_state()" : "setup_state_nocalls()");
  // Predicted id and the errors that apply.
  std::vector<Errc> apply;
  StateId predicted = -1;
  if (r->name.empty()) apply.push_back(Errc::kInvalidArgument);
  if (name_used(r->name)) apply.push_back(Errc::kBusy);
  if (at) {
    const bool in_range =
        (static_id >= kStatePrepareFirst && static_id <= kStatePrepareLast) ||
        (static_id >= kStateOnlineFirst && static_id <= kStateOnlineLast);
    if (!in_range)
      apply.push_back(Errc::kInvalidArgument);
    else if (by_id_[static_id] != nullptr)
      apply.push_back(Errc::kBusy);
    predicted = static_id;
  } else {
    predicted = first_free(section);
    if (predicted < 0) apply.push_back(Errc::kBusy);
  }
  r->id = predicted;

  const bool refuse = scope == nullptr ? restricted() : in_callback();
  const bool may_refuse =
      scope != nullptr && !refuse && (rlock_depth_ > 0 || rcu_depth_ > 0);
  const Snapshot before = snapshot();
  const long ncalls = calls_, fails = fails_;
  trace("%*s%s '%s' %s id %d cb %d%d scripted %d%d%s", op_depth_ * 2, "", what,
        r->name.c_str(), section == Section::kPrepare ? "prepare" : "online", predicted,
        r->has_startup, r->has_teardown, r->scripted_up, r->scripted_down,
        refuse ? " (must be refused)" : "");
  r->installing = !refuse && apply.empty();
  Result<StateId> res = Error(Errc::kOk, "");
  StateCallback up = r->has_startup ? make_state_cb(r, true) : nullptr;
  StateCallback down = r->has_teardown ? make_state_cb(r, false) : nullptr;
  if (scope != nullptr) {
    res = calls ? scope->setup_state(section, r->name, std::move(up), std::move(down))
                : scope->setup_state_nocalls(section, r->name, std::move(up),
                                             std::move(down));
  } else if (multi) {
    res = d_->setup_multi_state(section, r->name,
                                r->has_startup ? make_instance_cb(r, true) : nullptr,
                                r->has_teardown ? make_instance_cb(r, false) : nullptr);
  } else if (at) {
    res = calls ? d_->setup_state_at(static_id, r->name, std::move(up), std::move(down))
                : d_->setup_state_at_nocalls(static_id, r->name, std::move(up),
                                             std::move(down));
  } else {
    res = calls
              ? d_->setup_state(section, r->name, std::move(up), std::move(down))
              : d_->setup_state_nocalls(section, r->name, std::move(up), std::move(down));
  }
  r->installing = false;
  trace("%*s  -> %s %d", op_depth_ * 2, "", res ? "ok" : errc_name(res.error().code()),
        res ? *res : -1);
  if (scope != nullptr && !live) {
    if (res) violation("%s on a scope that is done succeeded", what);
    expect_code(what, res.error(), {Errc::kInvalidArgument});
    return expect_unchanged(what, before);
  }
  if (refuse) {
    if (res) {
      // Keep the model honest before reporting.
      violation(
          "%s from %s succeeded (state %d); it must be refused with "
          "kWouldDeadlock",
          what,
          cb_depth_    ? "a callback"
          : obs_depth_ ? "the observer"
                       : "a locked context",
          *res);
    }
    return expect_refused(what, res.error(), before, ncalls, apply);
  }
  if (!res) {
    // A failed install rolls back with the teardown; without one, what the
    // startups built is the owner's to dispose of.
    if (!r->has_teardown && r->id > 0 && r->id < kNumStates && by_id_[r->id] == nullptr)
      for (unsigned slot = 0; slot < kSlots; ++slot)
        drop_leftovers(*r, static_cast<int>(slot));
    if (may_refuse && res.error().code() == Errc::kWouldDeadlock)
      return expect_unchanged(what, before);
    if (apply.empty()) {
      if (!calls || res.error().code() != Errc::kCallbackFailed || fails_ == fails)
        violation("%s '%s' failed with %s though nothing applies: %s", what,
                  r->name.c_str(), errc_name(res.error().code()),
                  res.error().message().c_str());
    } else if (std::find(apply.begin(), apply.end(), res.error().code()) == apply.end()) {
      violation("%s failed with %s, expected %s: %s", what, errc_name(res.error().code()),
                errc_name(apply.front()), res.error().message().c_str());
    }
    return expect_unchanged(what, before);
  }
  if (!apply.empty())
    violation("%s '%s' at %d succeeded (id %d) though %s applies", what, r->name.c_str(),
              predicted, *res, errc_name(apply.front()));
  if (*res != predicted)
    violation("%s '%s' got id %d, expected the first free slot %d", what, r->name.c_str(),
              *res, predicted);
  if (fails_ != fails) violation("%s succeeded though a startup failed", what);
  r->installed = true;
  by_id_[r->id] = r;
  if (!calls && !multi) mark_exempt(*r, 0);
}

void Fuzz::op_remove(bool calls, RegistrationScope* scope, bool live) {
  const StateId id = pick_state();
  const char* what =
      scope != nullptr ? (calls ? "scope.remove_state()" : "scope.remove_state_nocalls()")
                       : (calls ? "remove_state()" : "remove_state_nocalls()");
  if (scope != nullptr && live && rlock_depth_ > 0 && calls &&
      skipping(kSkipScopeUnderReadLock))
    return;
  const bool refuse = scope == nullptr ? restricted() : in_callback();
  const bool may_refuse =
      scope != nullptr && !refuse && (rlock_depth_ > 0 || rcu_depth_ > 0);
  const Snapshot before = snapshot();
  const long ncalls = calls_;
  Reg* r = id >= 0 && id < kNumStates ? by_id_[id] : nullptr;
  trace("%*s%s %d%s", op_depth_ * 2, "", what, id, refuse ? " (must be refused)" : "");
  Status s = scope != nullptr
                 ? (calls ? scope->remove_state(id) : scope->remove_state_nocalls(id))
                 : (calls ? d_->remove_state(id) : d_->remove_state_nocalls(id));
  trace("%*s  -> %s", op_depth_ * 2, "", s ? "ok" : errc_name(s.error().code()));
  if (scope != nullptr && !live) {
    if (s) violation("%s on a scope that is done succeeded", what);
    expect_code(what, s.error(), {Errc::kInvalidArgument});
    return expect_unchanged(what, before);
  }
  if (refuse) {
    if (s)
      violation("%s(%d) from %s succeeded; it must be refused with kWouldDeadlock", what,
                id,
                cb_depth_    ? "a callback"
                : obs_depth_ ? "the observer"
                             : "a locked context");
    std::vector<Errc> apply;
    if (r == nullptr)
      apply.push_back(is_builtin(id) ? Errc::kInvalidArgument : Errc::kNotFound);
    return expect_refused(what, s.error(), before, ncalls, apply);
  }
  if (!s) {
    if (may_refuse && s.error().code() == Errc::kWouldDeadlock)
      return expect_unchanged(what, before);
    if (r != nullptr)
      violation("%s(%d) of '%s' failed: %s", what, id, r->name.c_str(),
                s.error().message().c_str());
    expect_code(what, s.error(),
                {is_builtin(id) ? Errc::kInvalidArgument : Errc::kNotFound});
    return expect_unchanged(what, before);
  }
  if (r == nullptr)
    violation("%s(%d) succeeded on a state the model does not have", what, id);
  by_id_[id] = nullptr;
  r->installed = false;
  std::erase_if(injected_, [id](const auto& inj) { return inj.second == id; });
  for (unsigned slot = 0; slot < kSlots; ++slot) {
    if (calls && r->has_teardown)
      for (unsigned cpu = 0; cpu < cap_; ++cpu)
        if (r->up[slot][cpu])
          violation("%s(%d) '%s': CPU %u slot %u still has its startup (no teardown ran)",
                    what, id, r->name.c_str(), cpu, slot);
    drop_leftovers(*r, static_cast<int>(slot));
    r->added[slot] = false;
  }
}

void Fuzz::op_instance(bool add, bool calls) {
  const StateId id = pick_state();
  int slot = -1;
  void* inst = pick_instance(&slot);
  const char* what = add ? (calls ? "add_instance()" : "add_instance_nocalls()")
                         : (calls ? "remove_instance()" : "remove_instance_nocalls()");
  const bool r = restricted();
  const Snapshot before = snapshot();
  const long ncalls = calls_, fails = fails_;
  Reg* reg = id >= 0 && id < kNumStates ? by_id_[id] : nullptr;
  std::vector<Errc> apply;
  if (reg == nullptr || !reg->multi)
    apply.push_back(Errc::kNotFound);
  else if (add && inst == nullptr)
    apply.push_back(Errc::kInvalidArgument);
  else if (add && reg->added[slot])
    apply.push_back(Errc::kBusy);
  else if (!add && (slot < 0 || !reg->added[slot]))
    apply.push_back(Errc::kNotFound);
  const int adding_before = reg != nullptr ? reg->adding_slot : -1;
  if (reg != nullptr && reg->multi && add && apply.empty() && !r) reg->adding_slot = slot;
  trace("%*s%s state %d instance %d", op_depth_ * 2, "", what, id, slot);
  Status s =
      add ? (calls ? d_->add_instance(id, inst) : d_->add_instance_nocalls(id, inst))
          : (calls ? d_->remove_instance(id, inst)
                   : d_->remove_instance_nocalls(id, inst));
  if (reg != nullptr) reg->adding_slot = adding_before;
  trace("%*s  -> %s", op_depth_ * 2, "", s ? "ok" : errc_name(s.error().code()));
  if (r) {
    if (s) violation("%s succeeded where it must be refused", what);
    return expect_refused(what, s.error(), before, ncalls, apply);
  }
  // An injected failure for this state on a CPU at or past it may fire in
  // add_instance()'s startups (it is "the next startup of the state there").
  auto injection_here = [&]() -> std::vector<std::pair<unsigned, StateId>>::iterator {
    for (auto it = injected_.begin(); it != injected_.end(); ++it)
      if (it->second == id && it->first < cap_ && before.state[it->first] >= id)
        return it;
    return injected_.end();
  };
  const bool may_inject = add && calls && injection_here() != injected_.end();
  if (!s) {
    if (add && reg != nullptr && reg->multi && slot > 0 && !reg->added[slot] &&
        !reg->has_teardown)
      drop_leftovers(*reg, slot);
    if (apply.empty()) {
      if (!add || !calls || s.error().code() != Errc::kCallbackFailed ||
          (fails_ == fails && !may_inject && !injections_unknown_))
        violation("%s failed: %s", what, s.error().message().c_str());
      if (fails_ == fails && may_inject) {
        // The lowest CPU's injection fired (CPUs are walked in order).
        auto first = injected_.end();
        for (auto it = injected_.begin(); it != injected_.end(); ++it)
          if (it->second == id && it->first < cap_ && before.state[it->first] >= id &&
              (first == injected_.end() || it->first < first->first))
            first = it;
        injected_.erase(first);
      } else if (fails_ != fails && may_inject) {
        injections_unknown_ = true;
      }
    } else if (std::find(apply.begin(), apply.end(), s.error().code()) == apply.end()) {
      violation("%s failed with %s, expected %s", what, errc_name(s.error().code()),
                errc_name(apply.front()));
    }
    return expect_unchanged(what, before);
  }
  if (!apply.empty())
    violation("%s succeeded though %s applies", what, errc_name(apply.front()));
  if (fails_ != fails) violation("%s succeeded though a startup failed", what);
  if (may_inject) injections_unknown_ = true;  // this library does not fire it here
  if (add) {
    reg->added[slot] = true;
    if (!calls) mark_exempt(*reg, slot);
  } else {
    if (calls && reg->has_teardown)
      for (unsigned cpu = 0; cpu < cap_; ++cpu)
        if (reg->up[slot][cpu])
          violation("%s: CPU %u still has instance %d's startup (no teardown ran)", what,
                    cpu, slot);
    drop_leftovers(*reg, slot);
    reg->added[slot] = false;
  }
}

void Fuzz::op_notifier(bool reg, RegistrationScope* scope, bool live) {
  const unsigned i = c_.below(kNotifiers + 1);
  NotifierBlock* nb = i < kNotifiers ? &nbs_[i].nb : nullptr;
  const std::uint8_t cfg = c_.byte();
  if (reg && nb != nullptr && !nbs_[i].registered) {
    nbs_[i].nb.priority = static_cast<int>(cfg % 5) - 2;
    nbs_[i].scripted = cfg & 8;
  }
  const char* what =
      scope != nullptr
          ? (reg ? "scope.register_notifier()" : "scope.unregister_notifier()")
          : (reg ? "register_notifier()" : "unregister_notifier()");
  const bool refuse = scope == nullptr ? restricted() : in_callback();
  const Snapshot before = snapshot();
  const long ncalls = calls_;
  trace("%*s%s %d prio %d", op_depth_ * 2, "", what, nb ? static_cast<int>(i) : -1,
        nb ? nb->priority : 0);
  Status s = scope != nullptr
                 ? (reg ? scope->register_notifier(nb) : scope->unregister_notifier(nb))
                 : (reg ? d_->register_notifier(nb) : d_->unregister_notifier(nb));
  trace("%*s  -> %s", op_depth_ * 2, "", s ? "ok" : errc_name(s.error().code()));
  if (scope != nullptr && !live) {
    if (s) violation("%s on a scope that is done succeeded", what);
    expect_code(what, s.error(), {Errc::kInvalidArgument});
    return expect_unchanged(what, before);
  }
  std::vector<Errc> apply;
  if (reg) {
    if (nb == nullptr)
      apply.push_back(Errc::kInvalidArgument);
    else if (nbs_[i].registered)
      apply.push_back(Errc::kBusy);
    else if (some_cpu_at(kStateNotifyPrepare))
      apply.push_back(Errc::kBusy);
  } else if (nb == nullptr || !nbs_[i].registered) {
    apply.push_back(Errc::kNotFound);
  }
  if (refuse) {
    if (s)
      violation("%s from %s succeeded; it must be refused with kWouldDeadlock", what,
                cb_depth_    ? "a callback"
                : obs_depth_ ? "the observer"
                             : "a locked context");
    return expect_refused(what, s.error(), before, ncalls, apply);
  }
  if (!s) {
    if (scope != nullptr && (rlock_depth_ > 0 || rcu_depth_ > 0) &&
        s.error().code() == Errc::kWouldDeadlock)
      return expect_unchanged(what, before);
    if (apply.empty()) violation("%s failed: %s", what, s.error().message().c_str());
    expect_code(what, s.error(), {apply.front()});
    return expect_unchanged(what, before);
  }
  if (!apply.empty())
    violation("%s succeeded though %s applies", what, errc_name(apply.front()));
  if (reg) {
    nbs_[i].registered = true;
    auto at = std::find_if(chain_.begin(), chain_.end(), [&](int have) {
      return nbs_[i].nb.priority > nbs_[have].nb.priority;
    });
    chain_.insert(at, static_cast<int>(i));
  } else {
    nbs_[i].registered = false;
    std::erase(chain_, static_cast<int>(i));
  }
}

void Fuzz::op_scope_block() {
  const bool r = restricted();
  const Snapshot before = snapshot();
  const long ncalls = calls_;
  trace("%*sregister_begin()", op_depth_ * 2, "");
  Result<RegistrationScope> res = d_->register_begin();
  if (!res) {
    if (!r) violation("register_begin() failed: %s", res.error().message().c_str());
    return expect_refused("register_begin()", res.error(), before, ncalls);
  }
  if (r)
    violation(
        "register_begin() from %s succeeded; it must be refused with kWouldDeadlock "
        "(does this thread still hold the writers' lock?)",
        cb_depth_    ? "a callback"
        : obs_depth_ ? "the observer"
                     : "a locked context");
  ScopeHolder holder;
  holder.s[0].emplace(std::move(*res));
  holder.live[0] = true;
  ScopeHolder* outer = scope_;
  scope_ = &holder;
  exec_block("scope");
  scope_ = outer;
  trace("%*send of scope", op_depth_ * 2, "");
}

void Fuzz::op_scope_method() {
  const unsigned m = c_.below(9);
  const unsigned which = c_.below(2);
  if (scope_ == nullptr) return;
  ScopeHolder& h = *scope_;
  const unsigned i = h.s[which] ? which : 0;
  if (!h.s[i]) return;
  RegistrationScope& s = *h.s[i];
  const bool live = h.live[i];
  if (in_callback() && live && skipping(kSkipScopeReenter)) return;
  switch (m) {
    case 0:
      return op_notifier(true, &s, live);
    case 1:
      return op_notifier(false, &s, live);
    case 2: {
      const unsigned n = c_.below(kNotifiers);
      const bool got = s.is_registered(&nbs_[n].nb);
      trace("%*sscope.is_registered(%u) -> %d", op_depth_ * 2, "", n, got);
      if (got != (live && nbs_[n].registered))
        violation("scope.is_registered(notifier %u) says %d, the model %d", n, got,
                  live && nbs_[n].registered);
      return;
    }
    case 3:
      if (rlock_depth_ > 0 && live && skipping(kSkipScopeUnderReadLock)) return;
      if (in_callback() && live && skipping(kSkipScopeReenterLocking)) return;
      return op_setup(false, true, false, &s, live);
    case 4:
      return op_setup(false, false, false, &s, live);
    case 5:
      if (in_callback() && live && skipping(kSkipScopeReenterLocking)) return;
      return op_remove(true, &s, live);
    case 6:
      return op_remove(false, &s, live);
    case 7: {
      // domain.h: done() from a callback its own call runs is fatal misuse.
      if (in_callback()) return;
      trace("%*sscope.done()", op_depth_ * 2, "");
      s.done();
      if (live) h.live[i] = false;
      return;
    }
    default: {
      if (h.s[1]) return;  // moved already
      trace("%*smove scope", op_depth_ * 2, "");
      h.s[1].emplace(std::move(*h.s[0]));
      h.live[1] = h.live[0];
      h.live[0] = false;
      return;
    }
  }
}

void Fuzz::op_rcu_block() {
  rcu::ReadGuard guard;
  Depth in_rcu(rcu_depth_);
  exec_block("rcu read section");
}

void Fuzz::op_read_lock_block() {
  ReadLock lock(d_->hotplug_lock());
  Depth in_rlock(rlock_depth_);
  exec_block("hotplug read lock");
}

void Fuzz::op_set_observer() {
  const int mode =
      static_cast<int>(c_.below(5));  // 0 none, 1/2 throw, 3 re-enter, 4 quiet
  const unsigned n = 1 + c_.below(24);
  const unsigned serial = ++observer_serial_;
  observer_events_ = 0;
  trace("%*sset_observer(mode %d every %u)", op_depth_ * 2, "", mode, n);
  if (mode == 0) {
    d_->set_observer(nullptr);
  } else {
    d_->set_observer([this, serial, mode, n](const CallbackEvent& e) {
      observer_event(serial, mode, n, e);
    });
  }
}

void Fuzz::op_query() {
  switch (c_.below(4)) {
    case 0: {
      const unsigned cpu = pick_cpu();
      Result<StateId> s = d_->cpu_state(cpu);
      if (cpu >= cap_) {
        if (s) violation("cpu_state(%u) beyond the capacity succeeded", cpu);
        expect_code("cpu_state()", s.error(), {Errc::kOutOfRange});
      } else if (!s) {
        violation("cpu_state(%u) failed: %s", cpu, s.error().message().c_str());
      }
      return;
    }
    case 1: {
      std::vector<StateInfo> v = d_->states();
      if (v.size() < std::size(kBuiltins)) violation("states() lost built-in states");
      return;
    }
    case 2: {
      const std::string name = kNames[c_.below(std::size(kNames))];
      Result<StateId> s = d_->find_state(name);
      if (!at_boundary()) return;
      StateId want = -1;
      for (const auto& r : regs_)
        if (r->installed && r->name == name) want = r->id;
      for (std::size_t b = 0; b < std::size(kBuiltins); ++b)
        if (name == kBuiltinNames[b]) want = kBuiltins[b];
      if (want < 0 ? static_cast<bool>(s) : (!s || *s != want))
        violation("find_state('%s') says %d, the model %d", name.c_str(), s ? *s : -1,
                  want);
      return;
    }
    default:
      check_masks("query");
      return;
  }
}

// ------------------------------------------------------------ input lifetime

void Fuzz::run() {
  check_boundary("at construction");
  while (!c_.empty() && ops_left_ > 0) exec_op();
}

void Fuzz::cleanup() {
  quiet_ = true;
  trace("cleanup");
  d_->set_observer(nullptr);
  ops_left_ = 1 << 20;
  if (suspended_) {
    const Snapshot before = snapshot();
    frozen_ = true;
    suspended_ = false;
    --disable_count_;
    Status s = d_->resume_nonboot();
    frozen_ = false;
    if (!s && !injections_unknown_ && injected_.empty())
      violation("resume_nonboot() in cleanup failed: %s", s.error().message().c_str());
    if (!s) expect_resumed_but_named("resume_nonboot() in cleanup", s.error().message());
    close_walk();
    last_walk_ = Walk{};
    check_boundary("cleanup: resume");
  }
  for (unsigned i = 0; i < kNotifiers; ++i) {
    if (!nbs_[i].registered) continue;
    if (Status s = d_->unregister_notifier(&nbs_[i].nb); !s)
      violation("cleanup: unregister_notifier(%u) failed: %s", i,
                s.error().message().c_str());
    nbs_[i].registered = false;
    std::erase(chain_, static_cast<int>(i));
  }
  for (StateId id = kNumStates; id-- > 0;) {
    Reg* r = by_id_[id];
    if (r == nullptr) continue;
    if (r->multi)
      for (unsigned slot = 1; slot < kSlots; ++slot) {
        if (!r->added[slot]) continue;
        if (Status s = d_->remove_instance(id, &instances_[slot - 1]); !s)
          violation("cleanup: remove_instance(%d, %u) failed: %s", id, slot,
                    s.error().message().c_str());
        if (r->has_teardown)
          for (unsigned cpu = 0; cpu < cap_; ++cpu)
            if (r->up[slot][cpu])
              violation("cleanup: remove_instance(%d, %u) left CPU %u up", id, slot, cpu);
        drop_leftovers(*r, static_cast<int>(slot));
        r->added[slot] = false;
      }
    if (Status s = d_->remove_state(id); !s)
      violation("cleanup: remove_state(%d) failed: %s", id, s.error().message().c_str());
    by_id_[id] = nullptr;
    r->installed = false;
    if (r->has_teardown)
      for (unsigned cpu = 0; cpu < cap_; ++cpu)
        if (r->up[0][cpu])
          violation("cleanup: remove_state(%d) '%s' left CPU %u up", id, r->name.c_str(),
                    cpu);
    for (unsigned slot = 0; slot < kSlots; ++slot)
      drop_leftovers(*r, static_cast<int>(slot));
    check_boundary("cleanup: remove_state");
  }
  for (StateId s = 0; s < kPrepareIds; ++s)
    for (auto& slots : g_obj[s])
      for (auto& p : slots)
        if (p.load() != nullptr)
          violation("cleanup: a per-CPU object of state %d is still published", s);
  const long built = g_built.load(), now = g_freed_now.load(), retired = g_retired.load();
  if (built != now + retired)
    violation("cleanup: %ld per-CPU objects built, %ld freed and %ld retired: %ld leaked",
              built, now, retired, built - now - retired);
}

void Fuzz::destroy_domain() {
  g_pin_request.store(0, std::memory_order_release);  // ends a pin early
  g_domain.store(nullptr, std::memory_order_seq_cst);
  while (g_users.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  g_obj_states.store(0, std::memory_order_relaxed);
  d_.reset();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // libFuzzer's -close_fd_mask=2 (fuzz/run) closes stderr: keep a copy for
  // violations and fatal diagnostics.
  const int fd = dup(STDERR_FILENO);
  if (fd >= 0) g_report_fd = fd;
  const char* trace_env = std::getenv("CPUHP_FUZZ_TRACE");
  g_trace_live = trace_env != nullptr && *trace_env != '\0' && *trace_env != '0';
  parse_skip(std::getenv("CPUHP_FUZZ_SKIP"));
  set_diagnostic_handler(&diagnostic_handler);
  for (unsigned i = 0; i < 2; ++i) std::thread(reader_main, i).detach();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Cursor c(data, size);
  const std::uint8_t b0 = c.byte();
  const unsigned possible = 2 + b0 % 7;
  const unsigned online = 1 + c.byte() % possible;
  const unsigned readers = c.byte();

  CpuMask possible_mask(possible), online_mask(possible);
  possible_mask.set_all();
  if ((b0 & 0x80) != 0 && possible > 2) possible_mask.clear(1 + b0 % (possible - 1));
  for (unsigned cpu = 0, n = 0; cpu < possible && n < online; ++cpu)
    if (possible_mask.test(cpu)) {
      online_mask.set(cpu);
      ++n;
    }
  g_ring.next = 0;
  g_built = g_freed_now = g_retired = 0;
  trace("domain: %u possible (%s), online %s, readers %#x", possible,
        possible_mask.to_string().c_str(), online_mask.to_string().c_str(), readers & 7);

  {
    Fuzz fuzz(c, possible, possible_mask, online_mask);
    g_reader_cfg.store(readers & 7, std::memory_order_relaxed);
    g_domain.store(&fuzz.domain(), std::memory_order_seq_cst);
    g_generation.fetch_add(1, std::memory_order_release);
    g_generation.notify_all();
    fuzz.run();
    fuzz.cleanup();
    fuzz.destroy_domain();
  }
  return 0;
}
