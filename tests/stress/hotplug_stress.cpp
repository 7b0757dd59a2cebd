// Stress test of cpuhp::Domain: registration racing hotplug storms, readers
// under the hotplug read lock and under RCU, failure injection mixed in.
//
// Duration: CPUHP_STRESS_SECONDS (default 3) for the whole run.
//
// Threads, all on one Domain of 16 CPUs:
//   storm      random up / down / bring_to(intermediate state); now and then
//              injects a failure (inject_failure) into a state the next up of
//              that CPU must pass, and checks that exactly that up fails.
//   registrar  setup_state / setup_multi_state+add_instance / register_begin
//              scope + setup_state_nocalls with manual init, in either
//              section; callbacks count per (CPU, state) and flag a startup
//              that runs twice without a teardown (or a teardown without a
//              startup); inside a register_begin() scope (no hotplug possible)
//              checks that the count is exactly "CPU at or past the state";
//              removes the state and checks every count is back to 0.
//   lock reader  under the hotplug read lock: the masks do not change, active
//              ⊆ online ⊆ present ⊆ possible, cpu_state agrees with the masks.
//   rcu reader under an RCU read guard: every CPU whose online bit it sees has
//              its per-CPU object (built by a PREPARE state), not poisoned.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/rcu.h"
#include "support/stress.h"

namespace cpuhp {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr unsigned kCpus = 16;
constexpr StateId kDataState = 5;     // static PREPARE: per-CPU objects
constexpr StateId kOnlineState = 60;  // static ONLINE: per-CPU flag
constexpr std::uint64_t kAlive = 0x5AFE5AFE5AFE5AFEull;
constexpr std::uint64_t kPoison = 0xDEADBEEFDEADBEEFull;

double stress_seconds() { return testing_support::stress_seconds(3.0); }

using testing_support::Violations;

struct PerCpuObject {
  std::atomic<std::uint64_t> magic{kAlive};
};

// Startups minus teardowns per CPU for one registered state.
struct Counters {
  std::array<std::atomic<int>, kCpus> live{};
};

StateCallback counting_startup(std::shared_ptr<Counters> c, Violations* v,
                               std::string name) {
  return [c, v, name](unsigned cpu) {
    if (c->live[cpu].fetch_add(1) != 0)
      v->add(name + ": startup on CPU " + std::to_string(cpu) + " without a teardown");
    return 0;
  };
}
StateCallback counting_teardown(std::shared_ptr<Counters> c, Violations* v,
                                std::string name) {
  return [c, v, name](unsigned cpu) {
    if (c->live[cpu].fetch_sub(1) != 1)
      v->add(name + ": teardown on CPU " + std::to_string(cpu) + " without a startup");
    return 0;
  };
}

TEST(HotplugStress, RegistrationStormsReadersAndInjection) {
  const double seconds = stress_seconds();
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(seconds));
  Domain d(kCpus, kCpus);
  Violations v;

  // ---- long-lived states: per-CPU objects (PREPARE) and a flag (ONLINE)
  std::vector<std::atomic<PerCpuObject*>> objs(kCpus);
  std::atomic<bool> final_removal{false};  // remove_state tears down online CPUs
  for (auto& o : objs) o.store(nullptr);
  ASSERT_TRUE(d.setup_state_at(
                   kDataState, "stress:data",
                   [&](unsigned cpu) {
                     if (objs[cpu].load() != nullptr)
                       v.add("stress:data: startup twice on CPU " + std::to_string(cpu));
                     objs[cpu].store(new PerCpuObject, std::memory_order_release);
                     return 0;
                   },
                   [&](unsigned cpu) {
                     PerCpuObject* p = objs[cpu].exchange(nullptr);
                     if (p == nullptr) {
                       v.add("stress:data: teardown without object on CPU " +
                             std::to_string(cpu));
                       return 0;
                     }
                     if (!final_removal.load() && d.cpu_online(cpu))
                       v.add("stress:data: teardown with the online bit set, CPU " +
                             std::to_string(cpu));
                     p->magic.store(kPoison, std::memory_order_relaxed);
                     delete p;
                     return 0;
                   })
                  .ok());
  auto online_flags = std::make_shared<Counters>();
  ASSERT_TRUE(d.setup_state_at(kOnlineState, "stress:online",
                               counting_startup(online_flags, &v, "stress:online"),
                               counting_teardown(online_flags, &v, "stress:online"))
                  .ok());

  std::atomic<bool> stop{false};
  auto running = [&] { return !stop.load(std::memory_order_relaxed); };

  // ---- storm
  std::atomic<long> attempts{0}, successes{0}, expected_failures{0}, injected{0},
      injected_seen{0};
  std::thread storm([&] {
    std::mt19937 rng(1);
    const StateId targets[] = {
        kStateOffline,        kStateNotifyPrepare, kDataState,   20,
        kStatePrepareDyn + 3, kStateBringup,       kOnlineState, kStateOnlineDyn + 5,
        kStateNotifyOnline,   kStateOnline,        kStateOnline, kStateOffline};
    const StateId inject_into[] = {kStateNotifyPrepare, kDataState, kOnlineState};
    while (running()) {
      const unsigned cpu = rng() % kCpus;
      if (rng() % 8 == 0) {
        // Failure injection: the next up of `cpu` must fail, exactly once.
        const StateId s = inject_into[rng() % std::size(inject_into)];
        StateId at = *d.cpu_state(cpu);
        if (at >= s) {
          Status down = d.down(cpu);
          if (!down) continue;  // the last CPU: try another
          at = kStateOffline;
        }
        Status inj = d.inject_failure(cpu, s);
        if (!inj) {
          v.add("inject_failure: " + inj.error().message());
          continue;
        }
        injected.fetch_add(1);
        attempts.fetch_add(1);
        Status up = d.up(cpu);
        if (!up && up.error().code() == Errc::kCallbackFailed &&
            up.error().cause() == -EIO &&
            up.error().message().find("inject") != std::string::npos) {
          injected_seen.fetch_add(1);
          expected_failures.fetch_add(1);
          if (*d.cpu_state(cpu) != at)
            v.add("after an injected failure CPU " + std::to_string(cpu) + " is at " +
                  std::to_string(*d.cpu_state(cpu)) + ", not back at " +
                  std::to_string(at));
        } else {
          v.add("injected failure into state " + std::to_string(s) + " on CPU " +
                std::to_string(cpu) + " not seen: " +
                (up ? std::string("up succeeded") : up.error().message()));
          if (up) successes.fetch_add(1);
        }
        continue;
      }
      const StateId target = targets[rng() % std::size(targets)];
      attempts.fetch_add(1);
      Status s = d.bring_to(cpu, target);
      if (s) {
        successes.fetch_add(1);
        if (*d.cpu_state(cpu) != target)
          v.add("bring_to(" + std::to_string(cpu) + ", " + std::to_string(target) +
                ") left it at " + std::to_string(*d.cpu_state(cpu)));
      } else if (s.error().code() == Errc::kLastCpu ||
                 s.error().code() == Errc::kAlreadyInState) {
        expected_failures.fetch_add(1);
      } else {
        v.add("storm: " + s.error().message());
      }
      std::this_thread::yield();  // let the registrar in now and then
    }
  });

  // ---- registrar
  std::atomic<long> registrations{0};
  std::thread registrar([&] {
    std::mt19937 rng(2);
    auto check_live = [&](const Counters& c, StateId id, const std::string& name) {
      for (unsigned cpu = 0; cpu < kCpus; ++cpu) {
        const int want = *d.cpu_state(cpu) >= id ? 1 : 0;
        if (c.live[cpu].load() != want)
          v.add(name + " (" + std::to_string(id) + "): CPU " + std::to_string(cpu) +
                " at state " + std::to_string(*d.cpu_state(cpu)) + " has " +
                std::to_string(c.live[cpu].load()) + " live startups, want " +
                std::to_string(want));
      }
    };
    auto check_zero = [&](const Counters& c, const std::string& name) {
      for (unsigned cpu = 0; cpu < kCpus; ++cpu)
        if (c.live[cpu].load() != 0)
          v.add(name + ": " + std::to_string(c.live[cpu].load()) +
                " live startups on CPU " + std::to_string(cpu) + " after remove");
    };
    for (long n = 0; running(); ++n) {
      const Section section = rng() % 2 ? Section::kPrepare : Section::kOnline;
      const std::string name = "reg:" + std::to_string(n);
      auto c = std::make_shared<Counters>();
      StateId id = -1;
      const unsigned how = rng() % 3;
      if (how == 0) {
        // setup_state: startup on the CPUs at or past it, atomically.
        Result<StateId> r = d.setup_state(section, name, counting_startup(c, &v, name),
                                          counting_teardown(c, &v, name));
        if (!r) {
          v.add("setup_state: " + r.error().message());
          continue;
        }
        id = *r;
      } else if (how == 1) {
        // The 2014 pattern: inside the scope, init the CPUs already there
        // by hand, then register without calls.
        Result<RegistrationScope> scope = d.register_begin();
        if (!scope) {
          v.add("register_begin: " + scope.error().message());
          continue;
        }
        StateCallback start = counting_startup(c, &v, name);
        Result<StateId> r = scope->setup_state_nocalls(section, name, start,
                                                       counting_teardown(c, &v, name));
        if (!r) {
          v.add("scope setup_state_nocalls: " + r.error().message());
          continue;
        }
        id = *r;
        for (unsigned cpu = 0; cpu < kCpus; ++cpu)
          if (*d.cpu_state(cpu) >= id) (void)start(cpu);
      } else {
        // Multi-instance: the counts follow the one instance.
        auto cb_up = counting_startup(c, &v, name);
        auto cb_down = counting_teardown(c, &v, name);
        Result<StateId> r = d.setup_multi_state(
            section, name, [cb_up](unsigned cpu, void*) { return cb_up(cpu); },
            [cb_down](unsigned cpu, void*) { return cb_down(cpu); });
        if (!r) {
          v.add("setup_multi_state: " + r.error().message());
          continue;
        }
        id = *r;
        static int instance;
        if (Status s = d.add_instance(id, &instance); !s)
          v.add("add_instance: " + s.error().message());
      }
      registrations.fetch_add(1);
      // Let the storm move CPUs across the new state for a while, checking
      // with hotplug excluded.
      for (int k = 0; k < 2 && running(); ++k) {
        if (rng() % 2)
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
        Result<RegistrationScope> scope = d.register_begin();
        if (!scope) {
          v.add("register_begin: " + scope.error().message());
          break;
        }
        check_live(*c, id, name);
      }
      Status removed = d.remove_state(id);
      if (!removed) v.add("remove_state: " + removed.error().message());
      check_zero(*c, name);
    }
  });

  // ---- readers
  std::atomic<long> lock_sections{0}, rcu_sections{0}, rcu_reads{0};
  std::thread lock_reader([&] {
    while (running()) {
      ReadLock lock(d.hotplug_lock());
      const CpuMask online = d.online();
      const CpuMask active = d.active();
      const CpuMask present = d.present();
      if (!active.is_subset_of(online))
        v.add("active " + active.to_string() + " not in online " + online.to_string());
      if (!online.is_subset_of(present))
        v.add("online " + online.to_string() + " not in present " + present.to_string());
      if (!present.is_subset_of(d.possible())) v.add("present not in possible");
      if (online.empty()) v.add("no CPU online");
      for (unsigned cpu = 0; cpu < kCpus; ++cpu) {
        const StateId st = *d.cpu_state(cpu);
        if (online.test(cpu) != (st >= kStateBringup) ||
            active.test(cpu) != (st == kStateActive))
          v.add("CPU " + std::to_string(cpu) + " at state " + std::to_string(st) +
                " disagrees with the masks under the read lock");
      }
      for (int spin = 0; spin < 32; ++spin) std::this_thread::yield();
      if (!(d.online() == online) || !(d.active() == active))
        v.add("masks changed under the hotplug read lock: online " + online.to_string() +
              " -> " + d.online().to_string());
      lock_sections.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::thread rcu_reader([&] {
    while (running()) {
      rcu::ReadGuard guard;
      for (unsigned cpu : d.online()) {
        PerCpuObject* p = objs[cpu].load(std::memory_order_acquire);
        if (p == nullptr) {
          v.add("RCU reader: CPU " + std::to_string(cpu) + " online without its object");
          continue;
        }
        if (p->magic.load(std::memory_order_relaxed) != kAlive)
          v.add("RCU reader: CPU " + std::to_string(cpu) + " object poisoned");
        rcu_reads.fetch_add(1, std::memory_order_relaxed);
      }
      rcu_sections.fetch_add(1, std::memory_order_relaxed);
      if (rcu_sections.load(std::memory_order_relaxed) % 64 == 0)
        std::this_thread::yield();
    }
  });

  while (Clock::now() < deadline && v.count() == 0) std::this_thread::sleep_for(10ms);
  stop.store(true);
  storm.join();
  registrar.join();
  lock_reader.join();
  rcu_reader.join();

  std::printf(
      "hotplug_stress: %.1f s: %ld transitions (%ld ok, %ld expected failures), %ld "
      "injected "
      "(%ld seen), %ld registrations, %ld lock sections, %ld RCU sections (%ld reads)\n",
      seconds, attempts.load(), successes.load(), expected_failures.load(),
      injected.load(), injected_seen.load(), registrations.load(), lock_sections.load(),
      rcu_sections.load(), rcu_reads.load());

  EXPECT_EQ(v.count(), 0) << v.first();
  EXPECT_EQ(attempts.load(), successes.load() + expected_failures.load());
  EXPECT_EQ(injected.load(), injected_seen.load());
  EXPECT_GT(registrations.load(), 0);
  EXPECT_GT(lock_sections.load(), 0);
  EXPECT_GT(rcu_sections.load(), 0);

  // Everything returns to zero: all CPUs but 0 down, then the states removed.
  if (*d.cpu_state(0) != kStateOnline) EXPECT_TRUE(d.up(0).ok());
  for (unsigned cpu = 1; cpu < kCpus; ++cpu)
    if (*d.cpu_state(cpu) != kStateOffline) EXPECT_TRUE(d.down(cpu).ok()) << cpu;
  final_removal.store(true);
  EXPECT_TRUE(d.remove_state(kOnlineState).ok());
  EXPECT_TRUE(d.remove_state(kDataState).ok());
  for (unsigned cpu = 0; cpu < kCpus; ++cpu) {
    EXPECT_EQ(online_flags->live[cpu].load(), 0) << cpu;
    EXPECT_EQ(objs[cpu].load(), nullptr) << cpu;
  }
  EXPECT_EQ(v.count(), 0) << v.first();
}

}  // namespace
}  // namespace cpuhp
