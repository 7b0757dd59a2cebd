// cpuhp/percpu_counter.h — a counter split over the CPUs of a Domain that never
// loses an increment across hotplug (the kernel's percpu_counter).
//
// CONTRACT
//
// Built on PerCpu<Cell> (online policy) whose on_offline hook folds a dying
// CPU's count into `folded()`, a total owned by the counter. Every add() is
// therefore in exactly one place at any time: a CPU's cell or the folded
// total, and it moves from the first to the second only in a PREPARE teardown,
// after the CPU's online bit is clear and a grace period has passed, so no
// add() is still writing the cell.
//
//   add(n)          Any thread, any time between construction and destruction,
//                   inside or outside an RCU read section or the hotplug read
//                   lock, from hotplug callbacks too. Lock-free, wait-free, no
//                   lock-prefixed instruction on the fast path: inside an RCU
//                   read guard (inline, no shared write) it reads this
//                   thread's CPU from glibc's rseq area and, if that CPU is
//                   online in the Domain, adds to the CPU's cell with an
//                   unlocked add in a restartable sequence that commits only
//                   while the thread is still on that CPU (the user-space
//                   this_cpu_add(); x86-64 with glibc rseq). Otherwise (the
//                   sequence was aborted by preemption or migration, the
//                   thread's CPU is offline or beyond the Domain, no rseq) it
//                   adds with a relaxed fetch_add to the cell of
//                   PerCpu::this_cpu(). Either way the cell's line is normally
//                   touched by one CPU only. No ordering with other memory is
//                   implied (relaxed).
//   sum()           Exact: every add() that returned before sum() was called is
//                   included, none is counted twice, and an add() concurrent
//                   with it is either in or out. Takes the Domain's hotplug read
//                   lock (so no CPU is between clearing its bit and folding) and
//                   walks every CPU that has a cell, online or parked; it may
//                   wait for a hotplug transition in progress. Any thread
//                   outside an RCU read section (aborts with a message there:
//                   it could deadlock against a down waiting for the grace
//                   period); allowed in a hotplug callback. A counter that only
//                   grows reads non-decreasing values from successive sum()s.
//   sum_approx()    Lock-free, never blocks, callable anywhere (an RCU guard of
//                   its own). Equals sum() when no hotplug is in progress and no
//                   CPU is parked by bring_to() between the percpu state and
//                   the online bit; otherwise it may miss the count of such a
//                   CPU (never counts anything twice).
//   folded()        The counts folded in from CPUs that went offline.
//
// Construction and destruction: as PerCpu (cpuhp/percpu.h): not inside an RCU
// read section, the hotplug read lock, a callback or a register_begin() scope;
// throws std::system_error (create(): returns the Error). The Domain must
// outlive the counter, and no add()/sum() may run once destruction starts.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "cpuhp/domain.h"
#include "cpuhp/error.h"
#include "cpuhp/percpu.h"
#include "cpuhp/rcu.h"

namespace cpuhp {

namespace detail {
[[noreturn]] void percpu_counter_sum_in_read_section(const std::string& name) noexcept;
}  // namespace detail

class PerCpuCounter {
 public:
  // One CPU's share of the count: value() = local + shared.
  struct Cell {
    // Added to only by rseq sequences running on this very CPU (plain adds,
    // see detail::rseq_add_on_cpu); read and folded atomically.
    alignas(std::atomic_ref<std::int64_t>::required_alignment) std::int64_t local = 0;
    // Added to atomically by every other path (a thread whose own CPU is not
    // online or not in the Domain, an aborted sequence, no rseq).
    std::atomic<std::int64_t> shared{0};

    std::int64_t value() noexcept {
      return std::atomic_ref<std::int64_t>(local).load(std::memory_order_relaxed) +
             shared.load(std::memory_order_relaxed);
    }
  };

  // Throws std::system_error (code(): the cpuhp::Errc) on failure.
  explicit PerCpuCounter(Domain& domain, std::string name = "counter") {
    if (Status s = init(domain, std::move(name)); !s)
      throw std::system_error(make_error_code(s.error().code()), s.error().message());
  }

  // The same without exceptions.
  static Result<std::unique_ptr<PerCpuCounter>> create(Domain& domain,
                                                       std::string name = "counter") {
    std::unique_ptr<PerCpuCounter> c(new PerCpuCounter());
    if (Status s = c->init(domain, std::move(name)); !s) return s.error();
    return c;
  }

  PerCpuCounter(const PerCpuCounter&) = delete;
  PerCpuCounter& operator=(const PerCpuCounter&) = delete;

  void add(std::int64_t n = 1) noexcept {
    rcu::ReadGuard guard;
#ifdef CPUHP_PERCPU_RSEQ_ADD
    // Fast path: this thread's own CPU is an online CPU of the Domain; add to
    // its cell with an unlocked add that commits only on that CPU.
    if (struct rseq* rs = detail::rseq_area()) [[likely]] {
      const unsigned cpu = *static_cast<volatile std::uint32_t*>(&rs->cpu_id);
      if (Cell* cell = cells_->get(cpu)) [[likely]] {
        if (detail::rseq_add_on_cpu(rs, cpu, &cell->local, n)) [[likely]]
          return;
        cell->shared.fetch_add(n, std::memory_order_relaxed);  // moved or preempted
        return;
      }
    }
#endif
    if (Cell* cell = cells_->this_cpu()) [[likely]] {
      cell->shared.fetch_add(n, std::memory_order_relaxed);
    } else {
      folded_.fetch_add(n, std::memory_order_relaxed);  // unreachable once constructed
    }
  }
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }

  std::int64_t sum() {
    if (rcu::rcu_read_section_held()) detail::percpu_counter_sum_in_read_section(name());
    ReadLock lock(cells_->domain().hotplug_lock());
    // Under the read lock no teardown runs, so the cells and folded_ are a
    // consistent split of the count.
    std::int64_t total = folded_.load(std::memory_order_acquire);
    for (unsigned cpu : cells_->prepared())
      if (Cell* cell = cells_->get_prepared(cpu)) total += cell->value();
    return total;
  }

  std::int64_t sum_approx() noexcept {
    rcu::ReadGuard guard;
    // folded_ first: a cell read below can be folded only after this guard
    // ends, so nothing is counted twice.
    std::int64_t total = folded_.load(std::memory_order_acquire);
    for (auto [cpu, cell] : cells_->values()) total += cell.value();
    return total;
  }

  std::int64_t folded() const noexcept { return folded_.load(std::memory_order_relaxed); }

  Domain& domain() const noexcept { return cells_->domain(); }
  const std::string& name() const noexcept { return cells_->name(); }
  // The per-CPU cells, for inspection (PerCpu's rules apply).
  PerCpu<Cell>& cells() noexcept { return *cells_; }

 private:
  PerCpuCounter() = default;

  Status init(Domain& domain, std::string name) {
    PerCpuHooks<Cell> hooks;
    hooks.on_offline = [this](unsigned, Cell& cell) {
      // After the grace period: every add() to this cell happened-before us.
      const std::int64_t v = std::atomic_ref<std::int64_t>(cell.local)
                                 .exchange(0, std::memory_order_relaxed) +
                             cell.shared.exchange(0, std::memory_order_relaxed);
      folded_.fetch_add(v, std::memory_order_release);
    };
    auto cells = PerCpu<Cell>::create(domain, std::move(name), PerCpuPolicy::kOnline,
                                      std::move(hooks));
    if (!cells) return cells.error();
    cells_ = std::move(*cells);
    return {};
  }

  // Declared first: destroyed after the cells, whose teardowns may fold into it.
  std::atomic<std::int64_t> folded_{0};
  std::unique_ptr<PerCpu<Cell>> cells_;
};

}  // namespace cpuhp
