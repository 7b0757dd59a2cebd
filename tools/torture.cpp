// cpuhp torture: the kernel's torture_onoff + locktorture for cpuhp.
//
// One virtual Domain, and against it, concurrently:
//   onoff       every --interval-us picks a random CPU and takes it up or down,
//               with --failure-rate injected failures (Domain::inject_failure),
//               accounted as torture_onoff does;
//   rcu-reader  walks the online mask under an RCU read guard and checks that
//               every CPU whose bit it sees has live per-CPU data (poisoned on
//               free), holding it a while and checking it again;
//   lock-reader holds the hotplug read lock and checks that the online mask,
//               the active mask and every CPU's state stay put;
//   churn       registers and removes a state over and over (PREPARE or ONLINE,
//               plain or inside register_begin()), whose callbacks check that
//               no CPU is started twice or torn down unstarted, and checks
//               that exactly the CPUs at or past it are started;
//   watchdog    turns a thread that stops making progress into a diagnostic
//               dump on stderr and exit status 3.
// At the end: the per-CPU counter is exact, per-CPU data exists exactly where
// the CPU states say, the notifier agrees with the active mask, masks nest,
// and the onoff accounting balances.
#include "torture.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/rcu.h"
#include "json.h"

namespace cpuhp::tool {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRelaxed = std::memory_order_relaxed;

[[gnu::format(printf, 1, 2)]] std::string format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  const std::size_t i = std::min(
      v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

std::string churn_name(unsigned index) { return format("torture:churn%u", index); }

// One CPU's data: built by a PREPARE startup before the online bit is set,
// poisoned and retired (freed after a further grace period, so a reader that
// still holds it sees the poison instead of freed memory) when torn down.
struct Slot {
  static constexpr std::uint64_t kAlive = 0xA11CE5A1;
  static constexpr std::uint64_t kPoison = 0xDEADDEAD;
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> magic{kAlive};
};

// ------------------------------------------------------------------ checks

enum Check {
  kRcuReader,
  kLockReader,
  kPairing,
  kCounter,
  kRegistration,
  kNotifier,
  kAccounting,
  kFinalState,
  kErrors,
  kNumChecks
};

struct CheckInfo {
  const char* key;
  const char* what;
};

constexpr std::array<CheckInfo, kNumChecks> kCheckInfo = {{
    {"rcu_reader", "RCU readers: a set online bit always led to live per-CPU data"},
    {"lock_reader",
     "hotplug-lock readers: online/active masks and CPU states stayed put"},
    {"pairing", "per CPU, startups and teardowns pair up in state order"},
    {"counter", "per-CPU counter exact: live slots + folded = increments"},
    {"registration", "registration churn: no CPU missed or doubled, none left started"},
    {"notifier", "2014 notifier: ONLINE/DOWN_PREPARE/DOWN_FAILED/DEAD consistent"},
    {"accounting",
     "onoff accounting: attempts = successes + injected failures + refused"},
    {"final_state", "final state: masks nest, per-CPU data exactly where states say"},
    {"errors", "no unexpected error from the cpuhp API"},
}};

class Violations {
 public:
  static constexpr std::size_t kKeep = 20;

  [[gnu::format(printf, 3, 4)]] void report(Check check, const char* fmt, ...) {
    counts_[check].fetch_add(1, kRelaxed);
    if (kept_.load(kRelaxed) >= kKeep) return;
    va_list args;
    va_start(args, fmt);
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    std::lock_guard lock(mutex_);
    if (messages_.size() >= kKeep) return;
    messages_.push_back(std::string(kCheckInfo[check].key) + ": " + buf);
    kept_.store(messages_.size(), kRelaxed);
  }
  std::uint64_t count(Check check) const { return counts_[check].load(); }
  std::uint64_t total() const {
    std::uint64_t n = 0;
    for (const auto& c : counts_) n += c.load();
    return n;
  }
  std::vector<std::string> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kNumChecks> counts_{};
  std::atomic<std::size_t> kept_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
};

// ------------------------------------------------------------------ watchdog

// What one thread is doing, for the watchdog. Only the owner writes.
struct Heartbeat {
  explicit Heartbeat(std::string n) : name(std::move(n)) {}
  void beat(const char* what) {
    doing.store(what, kRelaxed);
    beats.store(beats.load(kRelaxed) + 1, kRelaxed);
  }
  void beat() { beats.store(beats.load(kRelaxed) + 1, kRelaxed); }
  const std::string name;
  std::atomic<std::uint64_t> beats{0};
  std::atomic<const char*> doing{"starting"};
  std::atomic<int> cpu{-1};  // the CPU it works on, if any
  std::atomic<bool> finished{false};
};

// ------------------------------------------------------------------ the test

struct Torture {
  Torture(const TortureOptions& options, unsigned online_at_start)
      : o(options),
        domain(options.cpus, online_at_start),
        slots(options.cpus),
        level(options.cpus),
        notifier_online(options.cpus) {
    churn_started.reserve(options.churn);
    for (unsigned i = 0; i < options.churn; ++i) churn_started.emplace_back(options.cpus);
  }

  const TortureOptions& o;
  Domain domain;
  Violations v;

  // torture:data (PREPARE, owns the slot) and torture:online (ONLINE).
  std::vector<std::atomic<Slot*>> slots;
  // Per CPU: 0 nothing, 1 torture:data started, 2 torture:online started too.
  std::vector<std::atomic<int>> level;
  std::atomic<std::uint64_t> folded{0};
  StateId data_state = -1, online_state = -1;
  // Off while states are installed/removed on online CPUs before and after
  // the run: the online-bit checks hold only for hotplug transitions.
  std::atomic<bool> transitions_only{false};

  NotifierBlock notifier;
  bool notifier_registered = false;
  std::vector<std::atomic<bool>> notifier_online;
  std::atomic<std::uint64_t> notifier_events{0}, post_dead_events{0};

  // onoff accounting (torture_onoff's n_online_attempts etc.)
  std::atomic<std::uint64_t> up_attempts{0}, up_successes{0};
  std::atomic<std::uint64_t> down_attempts{0}, down_successes{0};
  std::atomic<std::uint64_t> injections{0}, injected_failures{0}, injections_fired{0};
  std::atomic<std::uint64_t> refused{0}, other_failures{0}, rollback_callbacks{0};
  std::vector<double> latencies_us;  // onoff thread only, read after join

  std::atomic<std::uint64_t> rcu_ops{0}, lock_ops{0}, increments{0};
  std::atomic<std::uint64_t> registrations{0}, coverage_checks{0};
  // Per churn thread: which CPUs its state's startup has run on.
  std::vector<std::vector<std::atomic<bool>>> churn_started;

  std::atomic<bool> stop{false};

  void free_slot(unsigned cpu) {
    Slot* s = slots[cpu].exchange(nullptr, std::memory_order_acq_rel);
    if (s == nullptr) return;
    folded.fetch_add(s->count.load(kRelaxed), kRelaxed);
    s->magic.store(Slot::kPoison, kRelaxed);
    // A grace period after this, nobody can hold it: a reader that saw it
    // before the poison still finds mapped, poisoned memory.
    rcu::rcu_retire(s);
  }
  int build_slot(unsigned cpu) {
    auto* s = new (std::nothrow) Slot;
    if (s == nullptr) return -ENOMEM;
    // Release: pairs with the readers' acquire load after they see the
    // online bit, which is set later with release too.
    if (Slot* old = slots[cpu].exchange(s, std::memory_order_acq_rel); old != nullptr) {
      v.report(kPairing, "CPU %u: torture:data startup found data already there", cpu);
      old->magic.store(Slot::kPoison, kRelaxed);
      rcu::rcu_retire(old);
    }
    return 0;
  }
  void expect_level(unsigned cpu, int want, const char* callback) {
    const int have = level[cpu].load(kRelaxed);
    if (have != want)
      v.report(kPairing,
               "CPU %u: %s ran at level %d, expected %d (a startup or teardown was "
               "missed, doubled or out of order)",
               cpu, callback, have, want);
  }
  void expect_online_bit(unsigned cpu, bool want, const char* callback) {
    if (transitions_only.load(kRelaxed) && domain.cpu_online(cpu) != want)
      v.report(kPairing, "CPU %u: %s ran with the online bit %s", cpu, callback,
               want ? "clear" : "set");
  }

  Status install();
  void uninstall();
};

Status Torture::install() {
  notifier.priority = 0;
  notifier.call = [this](NotifierBlock*, unsigned long action, unsigned cpu) {
    notifier_events.fetch_add(1, kRelaxed);
    switch (action & ~kCpuTasksFrozen) {
      case kCpuUpPrepare:
        if (notifier_online[cpu].load())
          v.report(kNotifier, "CPU %u: UP_PREPARE for a CPU the notifier saw online",
                   cpu);
        break;
      case kCpuOnline:
      case kCpuDownFailed:
        if (notifier_online[cpu].exchange(true))
          v.report(kNotifier, "CPU %u: ONLINE/DOWN_FAILED twice without DOWN_PREPARE",
                   cpu);
        break;
      case kCpuDownPrepare:
        if (!notifier_online[cpu].exchange(false))
          v.report(kNotifier, "CPU %u: DOWN_PREPARE for a CPU not online", cpu);
        break;
      case kCpuDead:
        if (domain.cpu_online(cpu))
          v.report(kNotifier, "CPU %u: DEAD while the online bit is still set", cpu);
        break;
      case kCpuPostDead:
        post_dead_events.fetch_add(1, kRelaxed);
        break;
      default:
        break;
    }
    return kNotifyOk;
  };
  {
    auto scope = domain.register_begin();
    if (!scope.ok()) return scope.error();
    for (unsigned cpu : domain.online())
      notifier_online[cpu].store(domain.active().test(cpu));
    if (Status s = scope->register_notifier(&notifier); !s) return s;
    notifier_registered = true;
  }

  auto data = domain.setup_state(
      Section::kPrepare, "torture:data",
      [this](unsigned cpu) {
        expect_level(cpu, 0, "torture:data startup");
        expect_online_bit(cpu, false, "torture:data startup (PREPARE)");
        if (const int rc = build_slot(cpu); rc != 0) return rc;
        level[cpu].store(1, kRelaxed);
        return 0;
      },
      [this](unsigned cpu) {
        expect_level(cpu, 1, "torture:data teardown");
        // PREPARE teardown: the online bit is clear and a grace period has
        // passed, so no RCU reader can still hold the data.
        expect_online_bit(cpu, false, "torture:data teardown (PREPARE)");
        free_slot(cpu);
        level[cpu].store(0, kRelaxed);
        return 0;
      });
  if (!data.ok()) return data.error();
  data_state = *data;

  auto online = domain.setup_state(
      Section::kOnline, "torture:online",
      [this](unsigned cpu) {
        if (o.inject_stall && transitions_only.load(kRelaxed)) {
          // --inject-stall: a callback that never returns, with the writers'
          // lock and the hotplug write lock held. The watchdog must notice.
          for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        expect_level(cpu, 1, "torture:online startup");
        expect_online_bit(cpu, true, "torture:online startup (ONLINE)");
        if (o.break_grace_period && slots[cpu].load() == nullptr)
          if (const int rc = build_slot(cpu); rc != 0) return rc;
        level[cpu].store(2, kRelaxed);
        return 0;
      },
      [this](unsigned cpu) {
        expect_level(cpu, 2, "torture:online teardown");
        expect_online_bit(cpu, true, "torture:online teardown (ONLINE)");
        // --break-grace-period: free the per-CPU data here, while the online
        // bit is still set and without a grace period, as a subsystem that
        // skipped synchronize_rcu() would. RCU readers must catch it.
        if (o.break_grace_period) free_slot(cpu);
        level[cpu].store(1, kRelaxed);
        return 0;
      });
  if (!online.ok()) return online.error();
  online_state = *online;

  domain.set_observer([this](const CallbackEvent& e) {
    // Our callbacks never return -EIO: every -EIO is an injected failure.
    if (e.result == -EIO && !e.rollback) injections_fired.fetch_add(1, kRelaxed);
    if (e.rollback) rollback_callbacks.fetch_add(1, kRelaxed);
  });
  transitions_only.store(true);
  return {};
}

void Torture::uninstall() {
  transitions_only.store(false);
  domain.set_observer(nullptr);
  for (unsigned i = 0; i < o.churn; ++i) {
    // Each churn thread removes its state before it ends; one left behind
    // means a remove_state() failed (already reported).
    if (auto id = domain.find_state(churn_name(i)); id.ok()) {
      v.report(kErrors, "%s still installed at the end", churn_name(i).c_str());
      (void)domain.remove_state(*id);
    }
  }
  if (notifier_registered && !domain.unregister_notifier(&notifier))
    v.report(kErrors, "unregister_notifier failed at the end");
  if (online_state >= 0) {
    if (Status s = domain.remove_state(online_state); !s)
      v.report(kErrors, "remove_state(torture:online): %s", s.error().message().c_str());
  }
  if (data_state >= 0) {
    if (Status s = domain.remove_state(data_state); !s)
      v.report(kErrors, "remove_state(torture:data): %s", s.error().message().c_str());
  }
  for (unsigned cpu = 0; cpu < o.cpus; ++cpu) {
    if (level[cpu].load() != 0)
      v.report(kPairing, "CPU %u: level %d after both states were removed", cpu,
               level[cpu].load());
    free_slot(cpu);
  }
  rcu::rcu_barrier();  // every retired slot freed
}

// ------------------------------------------------------------------ threads

// Sleeps `d`, in slices that keep the heartbeat going and notice the stop.
void nap(const Torture& t, Heartbeat& hb, std::chrono::microseconds d) {
  constexpr auto kSlice = std::chrono::milliseconds(50);
  while (d.count() > 0 && !t.stop.load(kRelaxed)) {
    const auto step = std::min<std::chrono::microseconds>(d, kSlice);
    std::this_thread::sleep_for(step);
    d -= step;
    hb.beat();
  }
}

void onoff_thread(Torture& t, Heartbeat& hb) {
  std::mt19937_64 rng(t.o.seed);
  std::uniform_real_distribution<double> coin(0, 1);
  const unsigned n = t.o.cpus;
  const StateId up_injectable[] = {kStateNotifyPrepare, t.data_state, t.online_state};
  while (!t.stop.load(kRelaxed)) {
    const unsigned cpu = static_cast<unsigned>(rng() % n);
    hb.cpu.store(static_cast<int>(cpu), kRelaxed);
    // Only this thread changes CPUs, so this stays true until our call.
    const bool was_online = t.domain.cpu_online(cpu);
    const bool going_up = !was_online;
    StateId inject = -1;
    if (coin(rng) < t.o.failure_rate) {
      // Injected only where the attempt will reach the state, so that every
      // injection fires: a startup on the way up, the vetoable DOWN_PREPARE
      // on the way down (unless the down will be refused as the last CPU).
      if (going_up)
        inject = up_injectable[rng() % 3];
      else if (t.domain.online().weight() > 1)
        inject = kStateNotifyOnline;
    }
    if (inject >= 0) {
      hb.beat("inject_failure()");
      if (Status s = t.domain.inject_failure(cpu, inject); s) {
        t.injections.fetch_add(1, kRelaxed);
      } else {
        t.v.report(kErrors, "inject_failure(CPU %u, state %d): %s", cpu, inject,
                   s.error().message().c_str());
      }
    }
    hb.beat(going_up ? "up()" : "down()");
    (going_up ? t.up_attempts : t.down_attempts).fetch_add(1, kRelaxed);
    const auto t0 = Clock::now();
    const Status s = going_up ? t.domain.up(cpu) : t.domain.down(cpu);
    const double us =
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    hb.beat("checking the result");
    if (s) {
      (going_up ? t.up_successes : t.down_successes).fetch_add(1, kRelaxed);
      t.latencies_us.push_back(us);
      if (t.domain.cpu_online(cpu) != going_up)
        t.v.report(kErrors, "%s(%u) succeeded but the online bit is %s",
                   going_up ? "up" : "down", cpu, going_up ? "clear" : "set");
    } else {
      const Error& e = s.error();
      if (e.code() == Errc::kCallbackFailed &&
          e.message().find("injected") != std::string::npos) {
        t.injected_failures.fetch_add(1, kRelaxed);
      } else if (e.code() == Errc::kLastCpu && !going_up) {
        t.refused.fetch_add(1, kRelaxed);
      } else {
        t.other_failures.fetch_add(1, kRelaxed);
        t.v.report(kErrors, "%s(%u): %s", going_up ? "up" : "down", cpu,
                   e.message().c_str());
      }
      if (t.domain.cpu_online(cpu) != was_online)
        t.v.report(kErrors, "%s(%u) failed but the online bit changed",
                   going_up ? "up" : "down", cpu);
    }
    hb.cpu.store(-1, kRelaxed);
    if (t.o.interval_us > 0) {
      hb.beat("sleeping (--interval-us)");
      nap(t, hb, std::chrono::microseconds(t.o.interval_us));
    }
  }
}

void rcu_reader_thread(Torture& t, Heartbeat& hb, unsigned seed) {
  constexpr unsigned kMaxHeld = 4;
  constexpr unsigned kLongEvery = 4;
  constexpr auto kLongHold = std::chrono::microseconds(20);
  std::minstd_rand rng(seed);
  const unsigned n = t.o.cpus;
  std::array<Slot*, kMaxHeld> held{};
  std::array<unsigned, kMaxHeld> held_cpu{};
  std::uint64_t ops = 0, incs = 0;
  hb.beat("reading under rcu::ReadGuard");
  while (!t.stop.load(kRelaxed)) {
    {
      rcu::ReadGuard guard;
      const CpuMask& online = t.domain.online();
      const unsigned start = static_cast<unsigned>(rng() % n);
      unsigned cpu = start == 0 ? online.first() : online.next(start - 1);
      unsigned k = 0;
      bool wrapped = false;
      for (unsigned visited = 0; visited < kMaxHeld; ++visited) {
        if (cpu >= n) {
          if (wrapped) break;
          wrapped = true;
          cpu = online.first();
          if (cpu >= n) break;
        }
        if (wrapped && cpu >= start) break;
        // The bit was set when we looked: the data must be live until the
        // guard ends.
        Slot* s = t.slots[cpu].load(std::memory_order_acquire);
        if (s == nullptr) {
          t.v.report(kRcuReader,
                     "CPU %u: online bit set but its per-CPU data is already gone", cpu);
        } else if (s->magic.load(kRelaxed) != Slot::kAlive) {
          t.v.report(kRcuReader,
                     "CPU %u: online bit set but its per-CPU data is poisoned", cpu);
        } else {
          s->count.fetch_add(1, kRelaxed);
          ++incs;
          held[k] = s;
          held_cpu[k] = cpu;
          ++k;
        }
        cpu = online.next(cpu);
      }
      // Hold the data a while, as a real reader does, looking again and again:
      // it must not be freed under us. Most sections are short; one in
      // kLongEvery is a long reader (rcutorture's read delay), which a grace
      // period must wait for and a missing one cannot hide from.
      const bool long_reader = rng() % kLongEvery == 0;
      const auto until = long_reader ? Clock::now() + kLongHold : Clock::time_point{};
      do {
        for (unsigned i = 0; i < k; ++i) {
          if (held[i] != nullptr && held[i]->magic.load(kRelaxed) != Slot::kAlive) {
            t.v.report(kRcuReader,
                       "CPU %u: per-CPU data poisoned while an RCU reader that saw "
                       "the online bit still held it",
                       held_cpu[i]);
            held[i] = nullptr;
          }
        }
      } while (long_reader && Clock::now() < until);
    }
    hb.beat();
    if ((++ops & 15) == 0) {
      // Outside the read section, let a woken writer or lock reader have
      // this CPU (on a machine with fewer cores than threads, spinning
      // readers would otherwise delay every wake-up to the next tick).
      std::this_thread::yield();
      if (ops == 1024) {  // published in batches, for the progress line
        t.rcu_ops.fetch_add(ops, kRelaxed);
        ops = 0;
      }
    }
  }
  t.rcu_ops.fetch_add(ops);
  t.increments.fetch_add(incs);
}

void lock_reader_thread(Torture& t, Heartbeat& hb) {
  const unsigned n = t.o.cpus;
  std::uint64_t ops = 0;
  while (!t.stop.load(kRelaxed)) {
    hb.beat("waiting for the hotplug read lock");
    {
      ReadLock guard(t.domain.hotplug_lock());
      hb.beat("holding the hotplug read lock");
      const CpuMask online = t.domain.online();
      const CpuMask active = t.domain.active();
      // No transition can be in progress: every CPU is fully up or down.
      for (unsigned cpu = 0; cpu < n; ++cpu) {
        const StateId st = *t.domain.cpu_state(cpu);
        if ((st != kStateOffline && st != kStateOnline) ||
            online.test(cpu) != (st == kStateOnline))
          t.v.report(kLockReader,
                     "CPU %u at state %d (online bit %d) under the hotplug read lock",
                     cpu, st, online.test(cpu) ? 1 : 0);
      }
      // Hold it a moment (a spin: sleeping here would only slow the writers).
      for (int i = 0; i < 256; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
      if (!(t.domain.online() == online) || !(t.domain.active() == active))
        t.v.report(kLockReader,
                   "online mask changed under the hotplug read lock: %s -> %s",
                   online.to_string().c_str(), t.domain.online().to_string().c_str());
    }
    if (++ops == 64) {
      t.lock_ops.fetch_add(ops, kRelaxed);
      ops = 0;
    }
  }
  t.lock_ops.fetch_add(ops);
}

void churn_thread(Torture& t, Heartbeat& hb, unsigned index) {
  std::mt19937 rng(t.o.seed * 7919u + index + 1);
  const unsigned n = t.o.cpus;
  const std::string name = churn_name(index);
  // Owned by `t`, and the callbacks copy the name: they stay valid even if a
  // failed remove_state() leaves the state installed past this thread.
  std::vector<std::atomic<bool>>& started = t.churn_started[index];
  auto startup = [&t, &started, name](unsigned cpu) {
    if (started[cpu].exchange(true))
      t.v.report(kRegistration, "%s: startup on CPU %u, already started (doubled)",
                 name.c_str(), cpu);
    return 0;
  };
  auto teardown = [&t, &started, name](unsigned cpu) {
    if (!started[cpu].exchange(false))
      t.v.report(kRegistration, "%s: teardown on CPU %u, never started (missed)",
                 name.c_str(), cpu);
    return 0;
  };
  // With the writers' lock held: exactly the CPUs at or past the state are started.
  auto check_coverage = [&](StateId id, const char* when) {
    t.coverage_checks.fetch_add(1, kRelaxed);
    for (unsigned cpu = 0; cpu < n; ++cpu) {
      const bool want = *t.domain.cpu_state(cpu) >= id;
      if (started[cpu].load() != want)
        t.v.report(kRegistration, "%s (state %d) %s: CPU %u at state %d is %s",
                   name.c_str(), id, when, cpu, *t.domain.cpu_state(cpu),
                   want ? "not started (missed)" : "started (should not be)");
    }
  };
  auto pause = [&] {
    const unsigned us = t.o.interval_us == 0 ? 0 : rng() % (2 * t.o.interval_us + 1);
    if (us == 0) {
      std::this_thread::yield();
    } else {
      nap(t, hb, std::chrono::microseconds(us));
    }
  };

  while (!t.stop.load(kRelaxed)) {
    const Section section = (rng() & 1) != 0 ? Section::kPrepare : Section::kOnline;
    const bool scoped_setup = (rng() & 2) != 0;
    StateId id = -1;
    hb.beat(scoped_setup ? "register_begin() + setup_state()" : "setup_state()");
    if (scoped_setup) {
      auto scope = t.domain.register_begin();
      if (!scope.ok()) {
        t.v.report(kErrors, "register_begin(): %s", scope.error().message().c_str());
      } else if (auto r = scope->setup_state(section, name, startup, teardown); !r.ok()) {
        t.v.report(kErrors, "setup_state(%s) in a scope: %s", name.c_str(),
                   r.error().message().c_str());
      } else {
        id = *r;
        check_coverage(id, "right after setup_state");
      }
    } else if (auto r = t.domain.setup_state(section, name, startup, teardown); !r.ok()) {
      t.v.report(kErrors, "setup_state(%s): %s", name.c_str(),
                 r.error().message().c_str());
    } else {
      id = *r;
    }
    if (id < 0) {
      pause();
      continue;
    }
    t.registrations.fetch_add(1, kRelaxed);
    hb.beat("letting hotplug run over the state");
    pause();

    hb.beat("register_begin(): coverage check / remove_state()");
    bool removed = false;
    {
      auto scope = t.domain.register_begin();
      if (!scope.ok()) {
        t.v.report(kErrors, "register_begin(): %s", scope.error().message().c_str());
      } else {
        check_coverage(id, "while hotplug runs");
        if ((rng() & 1) != 0) {
          if (Status s = scope->remove_state(id); !s) {
            t.v.report(kErrors, "remove_state(%s) in a scope: %s", name.c_str(),
                       s.error().message().c_str());
          }
          removed = true;
        }
      }
    }
    if (!removed) {
      hb.beat("remove_state()");
      if (Status s = t.domain.remove_state(id); !s)
        t.v.report(kErrors, "remove_state(%s): %s", name.c_str(),
                   s.error().message().c_str());
    }
    for (unsigned cpu = 0; cpu < n; ++cpu)
      if (started[cpu].exchange(false))
        t.v.report(kRegistration, "%s: CPU %u still started after remove_state",
                   name.c_str(), cpu);
    hb.beat("idle");
    pause();
  }
}

// ------------------------------------------------------------------ watchdog

void dump_and_exit(Torture& t, const std::vector<Heartbeat*>& hbs,
                   const Heartbeat& stalled, double stalled_for) {
  std::fflush(stdout);
  std::fprintf(stderr,
               "cpuhp torture: STALL: thread '%s' made no progress for %.1f s (limit "
               "--stall-seconds %u); last doing: %s\n",
               stalled.name.c_str(), stalled_for, t.o.stall_seconds,
               stalled.doing.load());
  std::fprintf(stderr, "  threads:\n");
  for (const Heartbeat* hb : hbs) {
    const int cpu = hb->cpu.load();
    std::fprintf(stderr, "    %-16s beats %-10llu %-9s doing: %s%s\n", hb->name.c_str(),
                 static_cast<unsigned long long>(hb->beats.load()),
                 hb->finished.load() ? "finished" : "running", hb->doing.load(),
                 cpu >= 0 ? format(" (CPU %d)", cpu).c_str() : "");
  }
  // Lock-free reads only: a stalled writer may hold every lock of the domain.
  std::fprintf(stderr, "  domain: online %s, active %s\n",
               t.domain.online().to_string().c_str(),
               t.domain.active().to_string().c_str());
  std::fprintf(stderr,
               "  CPU states (torture:data = %d, torture:online = %d, online = %d):",
               t.data_state, t.online_state, kStateOnline);
  for (unsigned cpu = 0; cpu < t.o.cpus; ++cpu) {
    const StateId st = *t.domain.cpu_state(cpu);
    if (t.o.cpus <= 64 || (st != kStateOffline && st != kStateOnline))
      std::fprintf(stderr, " %u:%d", cpu, st);
  }
  std::fprintf(
      stderr,
      "\n  onoff: up %llu/%llu, down %llu/%llu (successes/attempts), injected "
      "failures %llu, refused %llu; registrations %llu; violations so far %llu\n",
      static_cast<unsigned long long>(t.up_successes.load()),
      static_cast<unsigned long long>(t.up_attempts.load()),
      static_cast<unsigned long long>(t.down_successes.load()),
      static_cast<unsigned long long>(t.down_attempts.load()),
      static_cast<unsigned long long>(t.injected_failures.load()),
      static_cast<unsigned long long>(t.refused.load()),
      static_cast<unsigned long long>(t.registrations.load()),
      static_cast<unsigned long long>(t.v.total()));
  std::fprintf(stderr,
               "  a CPU at a state other than 0 or %d is mid-transition: its callback is "
               "where the hotplug thread is stuck, holding the writers' lock and the "
               "hotplug write lock (so lock readers and registrations wait too)\n",
               kStateOnline);
  std::fflush(stderr);
  _exit(3);
}

void watchdog_thread(Torture& t, const std::vector<Heartbeat*>& hbs,
                     const std::atomic<bool>& done) {
  std::vector<std::uint64_t> last(hbs.size());
  std::vector<Clock::time_point> since(hbs.size(), Clock::now());
  const auto limit = std::chrono::seconds(t.o.stall_seconds);
  while (!done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto now = Clock::now();
    for (std::size_t i = 0; i < hbs.size(); ++i) {
      const std::uint64_t b = hbs[i]->beats.load();
      if (b != last[i] || hbs[i]->finished.load()) {
        last[i] = b;
        since[i] = now;
      } else if (now - since[i] >= limit) {
        dump_and_exit(t, hbs, *hbs[i],
                      std::chrono::duration<double>(now - since[i]).count());
      }
    }
  }
}

// ------------------------------------------------------------------ final checks

void final_checks(Torture& t) {
  const unsigned n = t.o.cpus;
  std::uint64_t live = 0;
  for (unsigned cpu = 0; cpu < n; ++cpu) {
    const StateId st = *t.domain.cpu_state(cpu);
    Slot* s = t.slots[cpu].load();
    if (s != nullptr) live += s->count.load();
    if ((s != nullptr) != (st >= t.data_state))
      t.v.report(kFinalState, "CPU %u at state %d %s per-CPU data", cpu, st,
                 s != nullptr ? "has" : "lacks");
    const int want_level = st >= t.online_state ? 2 : st >= t.data_state ? 1 : 0;
    if (t.level[cpu].load() != want_level)
      t.v.report(kPairing, "CPU %u at state %d: level %d, expected %d", cpu, st,
                 t.level[cpu].load(), want_level);
    if (t.notifier_online[cpu].load() != t.domain.active().test(cpu))
      t.v.report(kNotifier,
                 "CPU %u: the notifier thinks it is %s, the active bit says %s", cpu,
                 t.notifier_online[cpu].load() ? "online" : "offline",
                 t.domain.active().test(cpu) ? "active" : "inactive");
  }
  if (live + t.folded.load() != t.increments.load())
    t.v.report(kCounter, "live %llu + folded %llu != increments %llu",
               static_cast<unsigned long long>(live),
               static_cast<unsigned long long>(t.folded.load()),
               static_cast<unsigned long long>(t.increments.load()));
  if (!t.domain.active().is_subset_of(t.domain.online()) ||
      !t.domain.online().is_subset_of(t.domain.present()) ||
      !t.domain.present().is_subset_of(t.domain.possible()))
    t.v.report(kFinalState, "masks do not nest: active %s, online %s, present %s",
               t.domain.active().to_string().c_str(),
               t.domain.online().to_string().c_str(),
               t.domain.present().to_string().c_str());
  const std::uint64_t attempts = t.up_attempts + t.down_attempts;
  const std::uint64_t successes = t.up_successes + t.down_successes;
  if (attempts != successes + t.injected_failures + t.refused + t.other_failures)
    t.v.report(kAccounting,
               "attempts %llu != successes %llu + injected failures %llu + refused %llu "
               "+ other failures %llu",
               static_cast<unsigned long long>(attempts),
               static_cast<unsigned long long>(successes),
               static_cast<unsigned long long>(t.injected_failures.load()),
               static_cast<unsigned long long>(t.refused.load()),
               static_cast<unsigned long long>(t.other_failures.load()));
  if (t.injected_failures != t.injections || t.injections_fired != t.injections)
    t.v.report(
        kAccounting,
        "injections %llu, fired %llu (observer), failures reported as injected %llu",
        static_cast<unsigned long long>(t.injections.load()),
        static_cast<unsigned long long>(t.injections_fired.load()),
        static_cast<unsigned long long>(t.injected_failures.load()));
}

// ------------------------------------------------------------------ output

struct Summary {
  std::uint64_t attempts, successes, rollbacks, reader_ops;
  double p50, p99, max;
};

void print_json(const Torture& t, const Summary& s, unsigned online_at_start) {
  const TortureOptions& o = t.o;
  std::string out = "{";
  auto field = [&out](const char* key, const std::string& value) {
    if (out.size() > 1) out += ",";
    out += "\"";
    out += key;
    out += "\":";
    out += value;
  };
  auto num = [](std::uint64_t v) { return std::to_string(v); };
  auto real = [](double v) { return format("%.3f", v); };
  field("cpus", num(o.cpus));
  field("online_at_start", num(online_at_start));
  field("seconds", real(o.seconds));
  field("seed", num(o.seed));
  field("rcu_readers", num(o.rcu_readers));
  field("lock_readers", num(o.lock_readers));
  field("churn", num(o.churn));
  field("interval_us", num(o.interval_us));
  field("failure_rate", real(o.failure_rate));
  field("break_grace_period", o.break_grace_period ? "true" : "false");
  field("transitions", num(s.successes));
  field("attempts", num(s.attempts));
  field("rollbacks", num(s.rollbacks));
  field("injections", num(t.injections));
  field("injected_failures", num(t.injected_failures));
  field("refused", num(t.refused));
  field("other_failures", num(t.other_failures));
  field("rollback_callbacks", num(t.rollback_callbacks));
  field("onoff", format("{\"online_attempts\":%llu,\"online_successes\":%llu,"
                        "\"offline_attempts\":%llu,\"offline_successes\":%llu}",
                        static_cast<unsigned long long>(t.up_attempts.load()),
                        static_cast<unsigned long long>(t.up_successes.load()),
                        static_cast<unsigned long long>(t.down_attempts.load()),
                        static_cast<unsigned long long>(t.down_successes.load())));
  field("reader_ops", num(s.reader_ops));
  field("rcu_reader_ops", num(t.rcu_ops));
  field("lock_reader_ops", num(t.lock_ops));
  field("counter_increments", num(t.increments));
  field("registrations", num(t.registrations));
  field("coverage_checks", num(t.coverage_checks));
  field("notifier_events", num(t.notifier_events));
  field("post_dead_events", num(t.post_dead_events));
  field("latency_us",
        format("{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}", s.p50, s.p99, s.max));
  field("violations", num(t.v.total()));
  std::string checks = "{";
  for (int c = 0; c < kNumChecks; ++c)
    checks += format("%s\"%s\":%llu", c == 0 ? "" : ",", kCheckInfo[c].key,
                     static_cast<unsigned long long>(t.v.count(static_cast<Check>(c))));
  field("checks", checks + "}");
  std::string msgs = "[";
  for (const std::string& m : t.v.messages())
    msgs += (msgs.size() > 1 ? "," : "") + detail::json_string(m);
  field("first_violations", msgs + "]");
  field("ok", t.v.total() == 0 ? "true" : "false");
  out += "}\n";
  std::fputs(out.c_str(), stdout);
}

void print_report(const Torture& t, const Summary& s) {
  using ull = unsigned long long;
  std::printf("\ncpuhp torture report (%.1f s, seed %u%s)\n", t.o.seconds, t.o.seed,
              t.o.break_grace_period ? ", --break-grace-period" : "");
  std::printf(
      "  onoff                 %llu attempts: %llu transitions, %llu injected failures "
      "(rolled back), %llu refused\n",
      static_cast<ull>(s.attempts), static_cast<ull>(s.successes),
      static_cast<ull>(t.injected_failures.load()), static_cast<ull>(t.refused.load()));
  std::printf(
      "  online / offline      %llu/%llu up, %llu/%llu down (successes/attempts)\n",
      static_cast<ull>(t.up_successes.load()), static_cast<ull>(t.up_attempts.load()),
      static_cast<ull>(t.down_successes.load()),
      static_cast<ull>(t.down_attempts.load()));
  std::printf("  transition latency    p50 %.1f us, p99 %.1f us, max %.1f us\n", s.p50,
              s.p99, s.max);
  std::printf(
      "  reader ops            %llu RCU, %llu hotplug-lock (%llu counter increments)\n",
      static_cast<ull>(t.rcu_ops.load()), static_cast<ull>(t.lock_ops.load()),
      static_cast<ull>(t.increments.load()));
  std::printf("  registrations         %llu (%llu coverage checks)\n",
              static_cast<ull>(t.registrations.load()),
              static_cast<ull>(t.coverage_checks.load()));
  std::printf("  notifier events       %llu (POST_DEAD %llu)\n",
              static_cast<ull>(t.notifier_events.load()),
              static_cast<ull>(t.post_dead_events.load()));
  std::printf("  checks:\n");
  for (int c = 0; c < kNumChecks; ++c) {
    const std::uint64_t n = t.v.count(static_cast<Check>(c));
    if (n == 0) {
      std::printf("    %-76s held\n", kCheckInfo[c].what);
    } else {
      std::printf("    %-76s VIOLATED (%llu)\n", kCheckInfo[c].what, static_cast<ull>(n));
    }
  }
}

}  // namespace

int run_torture(const TortureOptions& o) {
  const unsigned online_at_start = o.online == 0 ? o.cpus : o.online;
  Torture t(o, online_at_start);
  if (Status s = t.install(); !s) {
    std::fprintf(stderr, "cpuhp torture: setting up: %s\n", s.error().message().c_str());
    t.uninstall();
    return 1;
  }

  std::vector<std::unique_ptr<Heartbeat>> beats;
  auto heartbeat = [&beats](std::string name) -> Heartbeat& {
    beats.push_back(std::make_unique<Heartbeat>(std::move(name)));
    return *beats.back();
  };
  Heartbeat& main_hb = heartbeat("main");
  Heartbeat& onoff_hb = heartbeat("onoff");
  std::vector<std::pair<Heartbeat*, unsigned>> rcu_hbs, churn_hbs;
  std::vector<Heartbeat*> lock_hbs;
  for (unsigned i = 0; i < o.rcu_readers; ++i)
    rcu_hbs.emplace_back(&heartbeat(format("rcu-reader-%u", i)), i);
  for (unsigned i = 0; i < o.lock_readers; ++i)
    lock_hbs.push_back(&heartbeat(format("lock-reader-%u", i)));
  for (unsigned i = 0; i < o.churn; ++i)
    churn_hbs.emplace_back(&heartbeat(format("churn-%u", i)), i);
  std::vector<Heartbeat*> all_hbs;
  for (auto& b : beats) all_hbs.push_back(b.get());

  std::atomic<bool> watchdog_done{false};
  std::thread watchdog(watchdog_thread, std::ref(t), std::cref(all_hbs),
                       std::cref(watchdog_done));

  auto run = [](Heartbeat& hb, auto&& body) {
    return std::thread([&hb, body = std::forward<decltype(body)>(body)]() mutable {
      body();
      hb.beat("finished");
      hb.finished.store(true);
    });
  };
  std::vector<std::thread> threads;
  for (auto [hb, i] : rcu_hbs)
    threads.push_back(run(*hb, [&t, hb = hb, seed = o.seed * 31u + i + 1] {
      rcu_reader_thread(t, *hb, seed);
    }));
  for (Heartbeat* hb : lock_hbs)
    threads.push_back(run(*hb, [&t, hb] { lock_reader_thread(t, *hb); }));
  for (auto [hb, i] : churn_hbs)
    threads.push_back(run(*hb, [&t, hb = hb, i = i] { churn_thread(t, *hb, i); }));
  threads.push_back(run(onoff_hb, [&t, &onoff_hb] { onoff_thread(t, onoff_hb); }));

  if (!o.json)
    std::printf(
        "cpuhp torture: %u virtual CPUs (%u online), %u RCU readers, %u hotplug-lock "
        "readers, %u churn threads, interval %u us, %.0f%% failure injection, %.1f s, "
        "seed %u%s\n",
        o.cpus, online_at_start, o.rcu_readers, o.lock_readers, o.churn, o.interval_us,
        o.failure_rate * 100, o.seconds, o.seed,
        o.break_grace_period ? " (--break-grace-period: expect violations)" : "");
  std::fflush(stdout);

  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(o.seconds));
  auto next_line = start + std::chrono::seconds(1);
  main_hb.beat("waiting for the run to end");
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(100),
                                                          deadline - Clock::now()));
    main_hb.beat();
    if (!o.json && Clock::now() >= next_line && Clock::now() < deadline) {
      std::printf(
          "[%5.1fs] online %3u  transitions %8llu  reader ops %10llu  violations %llu\n",
          std::chrono::duration<double>(Clock::now() - start).count(),
          t.domain.online().weight(),
          static_cast<unsigned long long>(t.up_successes + t.down_successes),
          static_cast<unsigned long long>(t.rcu_ops.load() + t.lock_ops.load()),
          static_cast<unsigned long long>(t.v.total()));
      std::fflush(stdout);
      next_line += std::chrono::seconds(1);
    }
  }
  main_hb.beat("joining the threads");
  t.stop.store(true);
  for (auto& th : threads) th.join();

  main_hb.beat("final checks");
  final_checks(t);
  main_hb.beat("removing states");
  t.uninstall();
  watchdog_done.store(true);
  watchdog.join();

  const Summary s{
      t.up_attempts + t.down_attempts,        t.up_successes + t.down_successes,
      t.injected_failures + t.other_failures, t.rcu_ops + t.lock_ops,
      percentile(t.latencies_us, 0.50),       percentile(t.latencies_us, 0.99),
      percentile(t.latencies_us, 1.0)};
  if (o.json) {
    print_json(t, s, online_at_start);
  } else {
    print_report(t, s);
  }
  const auto messages = t.v.messages();
  if (!messages.empty()) {
    std::fprintf(stderr, "cpuhp torture: %llu violations; the first ones:\n",
                 static_cast<unsigned long long>(t.v.total()));
    for (const std::string& m : messages) std::fprintf(stderr, "  %s\n", m.c_str());
  }
  return t.v.total() == 0 ? 0 : 1;
}

}  // namespace cpuhp::tool
