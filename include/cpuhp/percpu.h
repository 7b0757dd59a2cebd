// cpuhp/percpu.h — one T per CPU of a Domain (the kernel's alloc_percpu).
//
// CONTRACT
//
// Policies, chosen at construction:
//
//   PerCpuPolicy::kOnline    A CPU's T is built in a PREPARE startup, before the
//       CPU's online bit is set, and destroyed in the PREPARE teardown, which
//       the Domain runs only after the bit is clear and an RCU grace period has
//       passed: a reader that saw the bit set under an RCU read guard may keep
//       using the T until its guard ends. A CPU that is not online has no
//       reachable T (get() returns nullptr). A CPU parked by bring_to() in a
//       PREPARE state above this PerCpu's keeps its T (still built, not
//       reachable through get(); see get_prepared()).
//   PerCpuPolicy::kPossible  A T for every possible CPU, built by the
//       constructor and destroyed by the destructor, never by hotplug (the
//       kernel's advice for data that must survive offline). get() returns it
//       for every possible CPU, online or not.
//
// Registration. Every online-policy PerCpu of a Domain (and every
// possible-policy one with an on_offline hook) is one instance of a single
// multi-instance PREPARE state named "cpuhp:percpu" (kPerCpuStateName), which
// the first such PerCpu installs in a dynamic PREPARE slot and which then
// stays installed for the Domain's life (its callbacks are stateless). So any
// number of PerCpus use one slot. The name is reserved: do not install a state
// of that name nor remove this one. The constructor adds the instance with
// Domain::add_instance(), which builds the T of every CPU at or past the
// state in one step hotplug cannot interleave with: a PerCpu built while CPUs
// come and go ends with exactly the CPUs at or past its state (the online
// ones and any parked above it) populated. The destructor removes it with
// remove_instance(), which waits for a transition in progress and then
// destroys the Ts. A plain client of the state API: nothing here reaches into
// the Domain's internals.
//
//   Ordering against the program's own states: the percpu state takes the
//   lowest free dynamic PREPARE slot when the first PerCpu of the Domain is
//   made. A PREPARE state with a higher id (e.g. installed afterwards) sees
//   this CPU's T built in its startup (get_prepared()) and still built in its
//   teardown; an ONLINE state always does, and get() works there.
//
// Who may construct / destroy: any thread outside an RCU read section,
// without the Domain's hotplug read lock, outside a hotplug callback and
// outside a register_begin() scope (those would deadlock; construction
// reports Errc::kWouldDeadlock, destruction aborts with a message because a
// destructor cannot fail). The Domain must outlive the PerCpu. Construction
// failures (a throwing `make`, a deadlock, no free PREPARE slot) leave
// nothing behind: the constructor throws std::system_error whose code() is
// the cpuhp::Errc, create() returns the Error. Destruction requires that no
// thread still uses the object (get()/this_cpu()/values() in progress, or a
// T& obtained earlier); it may race with hotplug on other threads.
//
// Accessors (all noexcept, a few loads each, no stores):
//
//   get(cpu)         Under an RCU read guard (cpuhp::rcu::ReadGuard) or the
//                    Domain's hotplug read lock. The T of an online CPU, or
//                    nullptr (cpu not online, out of range, or this PerCpu's
//                    constructor has not finished with it). The pointer is
//                    valid until the guard / lock is released. Online policy:
//                    an acquire test of the online bit, then an acquire load
//                    of the CPU's slot pointer; the bit's release set follows
//                    the slot's release store, so a set bit implies a built T.
//                    Possible policy: the slot load only (no bit test).
//   values()         Range over {cpu, T&} of the online CPUs that have a T,
//                    ascending; same guard rules. Concurrent hotplug may add
//                    or drop CPUs during an RCU walk (CpuMask iteration rules).
//   this_cpu()       The T of "this thread's CPU", or nullptr only before the
//                    constructor has returned; same guard rules. The CPU is
//                    read from glibc's rseq area (one TLS load; sched_getcpu()
//                    if rseq is not registered) and mapped onto the Domain:
//                    a host-bound Domain uses the id as is; a virtual one
//                    uses id % capacity(). If that CPU is not online (it is
//                    going away, or the Domain is virtual), the nearest online
//                    CPU above it is used, wrapping around. The thread may
//                    migrate right after: this_cpu() is a good shard, not a
//                    claim of exclusivity, so concurrent updates of a T must
//                    still be atomic. this_cpu_id() returns the CPU alone.
//   get_prepared(cpu), prepared()
//                    The T of any CPU that has one, online or not (a possible
//                    CPU with the possible policy; a CPU at or past the state
//                    with the online policy), and the mask of those CPUs. Only
//                    where no transition can run: under the hotplug read lock,
//                    or in a hotplug callback of this Domain.
//
// Hooks (PerCpuHooks):
//
//   make(cpu) -> T   builds a CPU's T (empty: value-initialised T). Online
//                    policy: runs in the PREPARE startup, in the thread driving
//                    the transition (or the constructor's thread), with the
//                    writers' lock and the hotplug write lock held; it may
//                    throw: the up (or the construction) fails and is rolled
//                    back. Possible policy: runs in the constructor.
//   on_offline(cpu, T&)
//                    runs when a CPU goes offline (including the rollback of a
//                    failed up that got past this state): after its online bit
//                    is clear and a grace period has passed, so no reader still
//                    uses this CPU's T (online policy: just before the T is
//                    destroyed), in the thread driving the transition, with the
//                    writers' lock and the hotplug write lock held, so no other
//                    CPU comes or goes meanwhile. Use it to fold the dying
//                    CPU's value into a survivor (another online CPU's T via
//                    get(), or a total of your own); RCU readers may be
//                    updating the survivor concurrently, so fold atomically.
//                    Not called by the destructor, nor for Ts that were never
//                    published (the rollback of a failed construction). If it
//                    throws, the T is still destroyed and the Domain reports
//                    the throw on stderr (a teardown cannot fail).
//
// Layout: each T lives in its own allocation, aligned to (and a multiple of)
// a 64-byte cache line, so neighbouring CPUs' values never false-share.
#pragma once

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "cpuhp/cpumask.h"
#include "cpuhp/domain.h"
#include "cpuhp/error.h"
#include "cpuhp/states.h"

#if defined(__has_include)
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#endif
#endif
#if defined(RSEQ_SIG) && defined(__has_builtin)
#if __has_builtin(__builtin_thread_pointer)
#define CPUHP_PERCPU_RSEQ 1
#if defined(__x86_64__)
#define CPUHP_PERCPU_RSEQ_ADD 1
#define CPUHP_PERCPU_STR2(x) #x
#define CPUHP_PERCPU_STR(x) CPUHP_PERCPU_STR2(x)
#endif
#endif
#endif

namespace cpuhp {

enum class PerCpuPolicy {
  kOnline,    // built before the online bit is set, freed a grace period after it clears
  kPossible,  // built for every possible CPU up front, never freed by hotplug
};

// The multi-instance PREPARE state every PerCpu of a Domain shares.
inline constexpr const char* kPerCpuStateName = "cpuhp:percpu";

template <class T>
struct PerCpuHooks {
  std::function<T(unsigned cpu)> make;                     // empty: T()
  std::function<void(unsigned cpu, T& value)> on_offline;  // empty: nothing
};

namespace detail {

inline constexpr std::size_t kPerCpuAlign = 64;

#ifdef CPUHP_PERCPU_RSEQ
// The calling thread's rseq area, registered by glibc (>= 2.35) for every
// thread, or nullptr if glibc did not register it (old kernel, or
// GLIBC_TUNABLES=glibc.pthread.rseq=0).
inline struct rseq* rseq_area() noexcept {
  if (__rseq_size == 0) return nullptr;
  return reinterpret_cast<struct rseq*>(static_cast<char*>(__builtin_thread_pointer()) +
                                        __rseq_offset);
}
#endif

#ifdef CPUHP_PERCPU_RSEQ_ADD
// `*v += n` as a restartable sequence (the user-space this_cpu_add): a plain,
// unlocked add that commits only if the calling thread is running on CPU
// `cpu` from the check to the add. Returns false, having added nothing, if it
// is not on `cpu` or is preempted, migrated or signalled before the add (the
// kernel then restarts at the abort label). So if every writer of *v adds
// through this with the same `cpu`, the writes all come from that one CPU and
// never race; readers load *v atomically (an aligned 8-byte add is
// single-copy atomic). The descriptor is static (section __rseq_cs), as in
// librseq; the abort handler carries glibc's RSEQ_SIG signature. Any thread;
// x86-64 only; rs must be the calling thread's rseq_area().
[[gnu::always_inline]] inline bool rseq_add_on_cpu(struct rseq* rs, unsigned cpu,
                                                   std::int64_t* v,
                                                   std::int64_t n) noexcept {
  asm goto(
      ".pushsection __rseq_cs, \"aw\"\n\t"
      ".balign 32\n\t"
      "3:\n\t"
      ".long 0x0, 0x0\n\t"          // version, flags
      ".quad 1f, (2f - 1f), 4f\n\t"  // start_ip, post_commit_offset, abort_ip
      ".popsection\n\t"
      "leaq 3b(%%rip), %%rax\n\t"
      "movq %%rax, %[rseq_cs]\n\t"  // the sequence is armed from here
      "1:\n\t"
      "cmpl %[cpu], %[current_cpu]\n\t"
      "jnz 4f\n\t"
      "addq %[n], %[v]\n\t"  // the commit
      "2:\n\t"
      // Disarm on both exits, so that rseq_cs never points into code that may
      // be unloaded (dlclose) by the time the kernel next looks.
      "movq $0, %[rseq_cs]\n\t"
      ".pushsection __rseq_failure, \"ax\"\n\t"
      ".byte 0x0f, 0xb9, 0x3d\n\t"  // ud1 <sig>(%rip), %edi: the signature
      ".long " CPUHP_PERCPU_STR(RSEQ_SIG) "\n\t"
      "4:\n\t"
      "movq $0, %[rseq_cs]\n\t"  // already done by the kernel, not by jnz 4f
      "jmp %l[aborted]\n\t"
      ".popsection\n\t"
      :
      : [rseq_cs] "m"(rs->rseq_cs), [current_cpu] "m"(rs->cpu_id), [cpu] "r"(cpu),
        [v] "m"(*v), [n] "er"(n)
      : "memory", "cc", "rax"
      : aborted);
  return true;
aborted:
  return false;
}
#endif

// The calling thread's CPU as the kernel last reported it: glibc's rseq area
// (registered by glibc >= 2.35 for every thread), else sched_getcpu().
inline unsigned raw_current_cpu() noexcept {
#ifdef CPUHP_PERCPU_RSEQ
  if (__rseq_size > 0) [[likely]] {
    const auto* area = reinterpret_cast<const volatile struct rseq*>(
        static_cast<const char*>(__builtin_thread_pointer()) + __rseq_offset);
    const unsigned cpu = area->cpu_id;
    // (unsigned)-1: not registered yet, (unsigned)-2: registration failed.
    if (cpu < 0xfffffff0u) [[likely]]
      return cpu;
  }
#endif
  const int cpu = ::sched_getcpu();
  return cpu < 0 ? 0u : static_cast<unsigned>(cpu);
}

// A host CPU id mapped onto a Domain of `capacity` CPUs (identity when it fits).
inline unsigned map_cpu(unsigned raw, unsigned capacity) noexcept {
  return raw < capacity ? raw : raw % capacity;
}

// Nearest CPU in `online` at or above `cpu`, wrapping around; retries if a
// concurrent walk momentarily sees no CPU (the Domain never has none).
unsigned nearest_online(const CpuMask& online, unsigned cpu) noexcept;

// The non-template half of PerCpu: registration with the Domain's percpu state.
class PerCpuBase {
 public:
  PerCpuBase(const PerCpuBase&) = delete;
  PerCpuBase& operator=(const PerCpuBase&) = delete;

  // The stateless callbacks of the shared state; `instance` is a PerCpuBase*.
  static int instance_startup(unsigned cpu, void* instance);
  static int instance_teardown(unsigned cpu, void* instance);

 protected:
  using CpuFn = int (*)(PerCpuBase* self, unsigned cpu);

  PerCpuBase(Domain& domain, std::string name, CpuFn startup, CpuFn teardown);
  ~PerCpuBase();

  // Finds or installs the percpu state and adds this instance (running
  // startup on every CPU at or past it). On failure nothing is registered.
  Status attach();
  // Removes the instance (running teardown where it is built); aborts with a
  // message if the Domain refuses (a deadlock context). No-op if not attached.
  void detach() noexcept;
  // True while this thread runs attach() or detach(): teardowns then come from
  // a rolled-back construction or from destruction, not from a CPU going away.
  bool registering_on_this_thread() const noexcept;
  // An Error that names this PerCpu.
  Error named(const Error& e) const;
  [[noreturn]] static void throw_error(const Error& e);

  Domain* domain_;
  const CpuMask* online_;
  unsigned capacity_;
  StateId state_ = kStateOffline;  // kStateOffline: not attached
  std::string name_;
  CpuMask prepared_;  // CPUs that have a T; written only by callbacks / ctor / dtor

 private:
  CpuFn startup_;
  CpuFn teardown_;
  std::atomic<const void*> registering_thread_{nullptr};
};

}  // namespace detail

template <class T>
class PerCpu : private detail::PerCpuBase {
  struct alignas(std::max(detail::kPerCpuAlign, alignof(T))) Slot {
    T value;
  };
  static_assert(sizeof(Slot) % detail::kPerCpuAlign == 0);
  struct Private {};

 public:
  using value_type = T;
  using Hooks = PerCpuHooks<T>;

  // Throws std::system_error (code(): the cpuhp::Errc) on failure; see CONTRACT.
  PerCpu(Domain& domain, std::string name, PerCpuPolicy policy = PerCpuPolicy::kOnline,
         Hooks hooks = {})
      : PerCpu(Private{}, domain, std::move(name), policy, std::move(hooks)) {
    // The delegated constructor has finished, so a throw here runs ~PerCpu,
    // which copes with a PerCpu that never attached.
    if (Status s = init(); !s) throw_error(s.error());
  }
  explicit PerCpu(Domain& domain) : PerCpu(domain, "percpu") {}

  // The same without exceptions.
  static Result<std::unique_ptr<PerCpu>> create(
      Domain& domain, std::string name, PerCpuPolicy policy = PerCpuPolicy::kOnline,
      Hooks hooks = {}) {
    std::unique_ptr<PerCpu> p(
        new PerCpu(Private{}, domain, std::move(name), policy, std::move(hooks)));
    if (Status s = p->init(); !s) return s.error();
    return p;
  }

  ~PerCpu() {
    detach();  // teardowns destroy the Ts of CPUs at or past the state
    for (unsigned cpu = 0; cpu < capacity_; ++cpu)
      delete slots_[cpu].exchange(nullptr, std::memory_order_relaxed);
  }

  Domain& domain() const noexcept { return *domain_; }
  const std::string& name() const noexcept { return name_; }
  PerCpuPolicy policy() const noexcept { return policy_; }
  // The shared percpu state this PerCpu is an instance of, or kStateOffline if
  // it has none (possible policy without on_offline).
  StateId state() const noexcept { return state_; }

  T* get(unsigned cpu) noexcept {
    if (cpu >= capacity_) return nullptr;
    if (policy_ == PerCpuPolicy::kOnline && !online_->test(cpu)) return nullptr;
    Slot* s = slots_[cpu].load(std::memory_order_acquire);
    return s != nullptr ? &s->value : nullptr;
  }
  const T* get(unsigned cpu) const noexcept {
    return const_cast<PerCpu*>(this)->get(cpu);
  }

  T* this_cpu() noexcept {
    const unsigned cpu = detail::map_cpu(detail::raw_current_cpu(), capacity_);
    if (online_->test(cpu)) [[likely]] {
      if (Slot* s = slots_[cpu].load(std::memory_order_acquire)) [[likely]]
        return &s->value;
    }
    return this_cpu_slow(cpu);
  }
  unsigned this_cpu_id() const noexcept {
    const unsigned cpu = detail::map_cpu(detail::raw_current_cpu(), capacity_);
    if (online_->test(cpu)) [[likely]]
      return cpu;
    return detail::nearest_online(*online_, cpu);
  }

  T* get_prepared(unsigned cpu) noexcept {
    if (cpu >= capacity_) return nullptr;
    Slot* s = slots_[cpu].load(std::memory_order_acquire);
    return s != nullptr ? &s->value : nullptr;
  }
  const CpuMask& prepared() const noexcept { return prepared_; }

  // ---- iteration over online CPUs' values --------------------------------
  struct Entry {
    unsigned cpu;
    T& value;
  };
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Entry;
    using difference_type = std::ptrdiff_t;
    using reference = Entry;
    using pointer = void;

    iterator() = default;
    Entry operator*() const noexcept { return Entry{*it_, *value_}; }
    iterator& operator++() noexcept {
      ++it_;
      settle();
      return *this;
    }
    iterator operator++(int) noexcept {
      iterator old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.it_ == b.it_;
    }

   private:
    friend class PerCpu;
    iterator(PerCpu* owner, CpuMask::const_iterator it, CpuMask::const_iterator end)
        : owner_(owner), it_(it), end_(end) {
      settle();
    }
    void settle() noexcept {
      for (; it_ != end_; ++it_)
        if ((value_ = owner_->get(*it_)) != nullptr) return;
    }
    PerCpu* owner_ = nullptr;
    CpuMask::const_iterator it_, end_;
    T* value_ = nullptr;
  };
  class Range {
   public:
    iterator begin() const noexcept {
      return iterator(owner_, owner_->online_->begin(), owner_->online_->end());
    }
    iterator end() const noexcept {
      return iterator(owner_, owner_->online_->end(), owner_->online_->end());
    }

   private:
    friend class PerCpu;
    explicit Range(PerCpu* owner) : owner_(owner) {}
    PerCpu* owner_;
  };
  Range values() noexcept { return Range(this); }

 private:
  PerCpu(Private, Domain& domain, std::string name, PerCpuPolicy policy, Hooks hooks)
      : PerCpuBase(domain, std::move(name), &Startup, &Teardown),
        policy_(policy),
        hooks_(std::move(hooks)),
        slots_(new std::atomic<Slot*>[capacity_]) {
    for (unsigned cpu = 0; cpu < capacity_; ++cpu)
      slots_[cpu].store(nullptr, std::memory_order_relaxed);
  }

  Slot* make_slot(unsigned cpu) {
    if (hooks_.make) return new Slot{hooks_.make(cpu)};
    if constexpr (std::is_default_constructible_v<T>) {
      return new Slot();
    } else {
      throw std::invalid_argument(
          "cpuhp::PerCpu: T is not default-constructible; give make");
    }
  }

  Status init() {
    if (policy_ == PerCpuPolicy::kPossible) {
      const CpuMask& possible = domain_->possible();
      try {
        for (unsigned cpu : possible) {
          slots_[cpu].store(make_slot(cpu), std::memory_order_release);
          prepared_.set(cpu);
        }
      } catch (const std::exception& e) {
        destroy_all();
        return named(
            Error(Errc::kCallbackFailed,
                  std::string("building a possible CPU's value threw ") + e.what()));
      } catch (...) {
        destroy_all();
        return named(
            Error(Errc::kCallbackFailed,
                  "building a possible CPU's value threw a non-standard exception"));
      }
      if (!hooks_.on_offline) return {};
    }
    if (Status s = attach(); !s) {
      destroy_all();
      return s;
    }
    return {};
  }

  void destroy_all() noexcept {
    for (unsigned cpu = 0; cpu < capacity_; ++cpu) {
      delete slots_[cpu].exchange(nullptr, std::memory_order_relaxed);
      prepared_.clear(cpu);
    }
  }

  static int Startup(PerCpuBase* base, unsigned cpu) {
    auto* self = static_cast<PerCpu*>(base);
    if (self->policy_ != PerCpuPolicy::kOnline) return 0;  // built up front
    if (self->slots_[cpu].load(std::memory_order_relaxed) != nullptr) return 0;
    Slot* s = self->make_slot(cpu);  // may throw: the Domain rolls back
    // Release: pairs with get()'s acquire; the online bit is set later.
    self->slots_[cpu].store(s, std::memory_order_release);
    self->prepared_.set(cpu);
    return 0;
  }

  static int Teardown(PerCpuBase* base, unsigned cpu) {
    auto* self = static_cast<PerCpu*>(base);
    const bool hook = self->hooks_.on_offline && !self->registering_on_this_thread();
    if (self->policy_ != PerCpuPolicy::kOnline) {
      if (hook) {
        if (Slot* s = self->slots_[cpu].load(std::memory_order_relaxed))
          self->hooks_.on_offline(cpu, s->value);
      }
      return 0;
    }
    // The online bit is clear and a grace period has passed (or, from
    // destruction, no reader may use this PerCpu any more).
    Slot* s = self->slots_[cpu].exchange(nullptr, std::memory_order_acq_rel);
    self->prepared_.clear(cpu);
    if (s == nullptr) return 0;
    std::unique_ptr<Slot> owner(s);
    if (hook) self->hooks_.on_offline(cpu, s->value);
    return 0;
  }

  [[gnu::noinline, gnu::cold]] T* this_cpu_slow(unsigned cpu) noexcept {
    // Nearest online CPU with a value, wrapping; twice round in case the walk
    // raced with hotplug.
    for (unsigned round = 0; round < 2; ++round) {
      for (unsigned c = online_->next(cpu); c < capacity_; c = online_->next(c))
        if (T* p = online_value(c)) return p;
      for (unsigned c = online_->first(); c < capacity_ && c <= cpu; c = online_->next(c))
        if (T* p = online_value(c)) return p;
    }
    return nullptr;
  }
  T* online_value(unsigned cpu) noexcept {
    if (!online_->test(cpu)) return nullptr;
    Slot* s = slots_[cpu].load(std::memory_order_acquire);
    return s != nullptr ? &s->value : nullptr;
  }

  const PerCpuPolicy policy_;
  const Hooks hooks_;
  const std::unique_ptr<std::atomic<Slot*>[]> slots_;
};

}  // namespace cpuhp
