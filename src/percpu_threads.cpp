// SPDX-License-Identifier: MIT
// PerCpuThreads: the kernel's smpboot on the state API (see the header).
//
// Per worker there are two channels:
//
//   the wake word  `seq`, an event count the worker sleeps on with futex(2)
//                  when should_run() says there is nothing to do. wake() bumps
//                  it and issues FUTEX_WAKE only if `sleepers` is nonzero; the
//                  worker loads `seq` before it looks for work, so a wake that
//                  comes after that load makes its futex wait return at once.
//   the control   a mutex + condition variable for the rare requests of the
//                  controlling thread (park, unpark, stop) and the worker's
//                  replies (set up, parked, unparked, failed). A request to a
//                  running worker also sets `control_pending` and bumps `seq`,
//                  so that a sleeping worker sees it. The controlling thread
//                  polls the `replied` hint briefly before it sleeps on the
//                  condition variable (src/spin_wait.h).
//
// Why run() calling up()/down() is not turned into an error: the Domain refuses
// re-entry from its own callbacks by a thread-local mark on the controlling
// thread, but a worker is another thread, which the Domain cannot tell from any
// other caller; the worker just blocks on the writers' lock held by the
// controlling thread, which waits for the worker to park. Making that an error
// needs a hook in Domain::Impl::check_may_lock (a thread-local "this thread
// must not take the writers' lock of domain D" mark that PerCpuThreads would set
// in its workers). Until then the controlling thread diagnoses the stall after
// kStallWarning.
#include "cpuhp/percpu_threads.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "cpuhp/diagnostics.h"
#include "spin_wait.h"
#include "strf.h"

namespace cpuhp {

using detail::strf;

struct PerCpuThreads::Worker {
  Worker(PerCpuThreads* o, const Hooks* h, unsigned c) : owner(o), hooks(h), cpu(c) {}

  PerCpuThreads* const owner;
  const Hooks* const hooks;  // the owner's; const after create()
  const unsigned cpu;

  // ---- the wake word (any thread) ----
  alignas(64) std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> sleepers{0};
  std::atomic<bool> control_pending{false};

  // ---- control, guarded by m ----
  alignas(64) std::mutex m;
  std::condition_variable cv;
  enum class Reply { kNone, kOk, kFailed };
  Reply reply = Reply::kNone;
  // A hint for the controlling thread's poll before it sleeps on cv: set with
  // every reply, cleared with every request. Relaxed: the poll only decides
  // when to take m and read `reply`, which is the answer.
  std::atomic<bool> replied{false};
  bool want_park = false;
  bool want_stop = false;
  bool parked = false;  // park() called, unpark() not yet
  bool pin = false;     // pin to `cpu` on start / unpark
  std::string error;    // with Reply::kFailed
  Errc error_code = Errc::kOk;
  int error_cause = 0;  // negative errno
  // Controlling thread only (under the domain's writers' lock, or in stop()).
  std::thread thread;
};

namespace {

// Set on worker threads: the object they belong to (to refuse stop() there).
thread_local const PerCpuThreads* tl_owner = nullptr;

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t val) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word),
                 op | FUTEX_PRIVATE_FLAG, val, nullptr, nullptr, 0);
}

// wake(): seq_cst add, then seq_cst load of `sleepers`; the sleeper does the
// mirror image (add to `sleepers`, load `seq`), so at least one of the two sees
// the other: either the sleeper does not sleep or the waker issues FUTEX_WAKE.
// FUTEX_WAIT itself rechecks `seq` in the kernel.
void signal_worker(PerCpuThreads::Worker* w) noexcept {
  w->seq.fetch_add(1, std::memory_order_seq_cst);
  if (w->sleepers.load(std::memory_order_seq_cst) != 0)
    (void)futex(&w->seq, FUTEX_WAKE, INT_MAX);
}

void sleep_while(PerCpuThreads::Worker* w, std::uint32_t seen) noexcept {
  w->sleepers.fetch_add(1, std::memory_order_seq_cst);
  while (w->seq.load(std::memory_order_seq_cst) == seen)
    (void)futex(&w->seq, FUTEX_WAIT, seen);  // EAGAIN / EINTR: recheck
  w->sleepers.fetch_sub(1, std::memory_order_relaxed);
}

std::string errno_text(int err) { return strf("%s (errno %d)", std::strerror(err), err); }

// Pins the calling thread to `cpu`. Returns 0 or an errno.
int pin_self(unsigned cpu) {
  cpu_set_t* set = CPU_ALLOC(cpu + 1);
  if (set == nullptr) return ENOMEM;
  const std::size_t size = CPU_ALLOC_SIZE(cpu + 1);
  CPU_ZERO_S(size, set);
  CPU_SET_S(cpu, size, set);
  const int err = pthread_setaffinity_np(pthread_self(), size, set);
  CPU_FREE(set);
  return err;
}

// Calls a hook other than setup: an exception escaping it is fatal (contract).
template <class F>
auto guarded(const PerCpuThreads::Worker* w, const char* hook, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    detail::fatal("PerCpuThreads",
                  "per-CPU thread '%s' (CPU %u): %s() threw: %s; hooks other than setup "
                  "must not throw",
                  PerCpuThreads::thread_name(w->owner->name(), w->cpu).c_str(), w->cpu,
                  hook, e.what());
  } catch (...) {
    detail::fatal("PerCpuThreads",
                  "per-CPU thread '%s' (CPU %u): %s() threw a non-standard exception; "
                  "hooks other than setup must not throw",
                  PerCpuThreads::thread_name(w->owner->name(), w->cpu).c_str(), w->cpu,
                  hook);
  }
}

void call_hook(const PerCpuThreads::Worker* w, const char* hook,
               const std::function<void(unsigned)>& fn) {
  if (fn) guarded(w, hook, [&] { fn(w->cpu); });
}

// Worker side, m held: report a failure to the controlling thread.
void reply_failed(PerCpuThreads::Worker* w, Errc code, int cause, std::string why) {
  w->reply = PerCpuThreads::Worker::Reply::kFailed;
  w->error_code = code;
  w->error_cause = cause;
  w->error = std::move(why);
  w->replied.store(true, std::memory_order_relaxed);
  w->cv.notify_all();
}

void reply_ok(PerCpuThreads::Worker* w) {
  w->reply = PerCpuThreads::Worker::Reply::kOk;
  w->replied.store(true, std::memory_order_relaxed);
  w->cv.notify_all();
}

std::string pin_failure(const PerCpuThreads::Worker* w, int err) {
  return strf("cannot pin thread '%s' to CPU %u: pthread_setaffinity_np: %s",
              PerCpuThreads::thread_name(w->owner->name(), w->cpu).c_str(), w->cpu,
              errno_text(err).c_str());
}

// Parked: park() has been called. Returns true to stop, false once unparked
// (unpark() called). m held on entry and exit.
bool park_and_wait(PerCpuThreads::Worker* w, std::unique_lock<std::mutex>& lk,
                   const PerCpuThreads::Hooks& hooks) {
  lk.unlock();
  call_hook(w, "park", hooks.park);
  lk.lock();
  w->parked = true;
  reply_ok(w);
  for (;;) {
    w->cv.wait(lk, [w] { return w->want_stop || !w->want_park; });
    if (w->want_stop) return true;
    if (w->pin) {
      if (const int err = pin_self(w->cpu); err != 0) {
        w->want_park = true;  // stays parked; the startup fails
        reply_failed(w, Errc::kSystem, -err, pin_failure(w, err));
        continue;
      }
    }
    break;
  }
  lk.unlock();
  call_hook(w, "unpark", hooks.unpark);
  lk.lock();
  w->parked = false;
  reply_ok(w);
  return false;
}

void worker_main(PerCpuThreads::Worker* w) {
  // Created with every signal blocked already; this makes it explicit.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  tl_owner = w->owner;
  (void)pthread_setname_np(pthread_self(),
                           PerCpuThreads::thread_name(w->owner->name(), w->cpu).c_str());
  const PerCpuThreads::Hooks& hooks = *w->hooks;
  std::unique_lock lk(w->m);

  // ---- start: pin, setup ----
  if (w->pin) {
    if (const int err = pin_self(w->cpu); err != 0) {
      reply_failed(w, Errc::kSystem, -err, pin_failure(w, err));
      return;  // joined by the controlling thread
    }
  }
  if (hooks.setup) {
    lk.unlock();
    int rc = 0;
    std::string why;
    try {
      rc = hooks.setup(w->cpu);
      if (rc > 0) rc = -rc;
      if (rc != 0) why = strf("returned %d (%s)", rc, std::strerror(-rc));
    } catch (const std::exception& e) {
      rc = -ECANCELED;
      why = strf("threw %s", e.what());
    } catch (...) {
      rc = -ECANCELED;
      why = "threw a non-standard exception";
    }
    lk.lock();
    if (rc != 0) {
      reply_failed(w, Errc::kCallbackFailed, rc,
                   strf("setup(%u) of thread '%s' %s", w->cpu,
                        PerCpuThreads::thread_name(w->owner->name(), w->cpu).c_str(),
                        why.c_str()));
      return;  // no cleanup: setup did not succeed
    }
  }
  reply_ok(w);
  lk.unlock();

  // ---- the loop ----
  for (;;) {
    // Load the wake word before looking for work: a wake() or a request that
    // comes later changes it, and then the futex wait below returns at once.
    const std::uint32_t seen = w->seq.load(std::memory_order_acquire);
    if (w->control_pending.load(std::memory_order_acquire)) {
      lk.lock();
      w->control_pending.store(false, std::memory_order_relaxed);
      if (w->want_stop) break;
      if (w->want_park && park_and_wait(w, lk, hooks)) break;
      lk.unlock();
      continue;
    }
    if (guarded(w, "should_run", [&] { return hooks.should_run(w->cpu); })) {
      call_hook(w, "run", hooks.run);
      continue;
    }
    sleep_while(w, seen);
  }
  // ---- stop (m held) ----
  lk.unlock();
  call_hook(w, "cleanup", hooks.cleanup);
}

// Runs on the controlling thread with m held: waits for the worker's reply,
// warning on stderr while it takes suspiciously long.
void wait_reply(PerCpuThreads::Worker* w, std::unique_lock<std::mutex>& lk,
                const char* what) {
  using Reply = PerCpuThreads::Worker::Reply;
  if (w->reply == Reply::kNone) {
    // Replies come within microseconds; polling for one spares the worker a
    // futex wake of this thread, and this thread an IPI to come back.
    lk.unlock();
    detail::spin_briefly([w] { return w->replied.load(std::memory_order_relaxed); });
    lk.lock();
  }
  long long waited = 0;
  while (!w->cv.wait_for(lk, PerCpuThreads::kStallWarning,
                         [w] { return w->reply != Reply::kNone; })) {
    waited += PerCpuThreads::kStallWarning.count();
    detail::warn(
        "PerCpuThreads",
        "still waiting after %lld s for per-CPU thread '%s' (CPU %u) to %s. "
        "Its hooks run while this thread holds the domain's writers' lock and "
        "hotplug write lock: they must not call up/down/setup_state/remove_state, "
        "take the hotplug read lock, or wait for a thread that does, and run() "
        "must return promptly\n",
        waited, PerCpuThreads::thread_name(w->owner->name(), w->cpu).c_str(), w->cpu,
        what);
  }
}

// Creates the worker thread with every signal blocked (the new thread inherits
// the creator's mask). Returns 0 or an errno.
int spawn(PerCpuThreads::Worker* w) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = 0;
  try {
    w->thread = std::thread(worker_main, w);
  } catch (const std::system_error& e) {
    err = e.code().value() != 0 ? e.code().value() : EAGAIN;
  } catch (const std::bad_alloc&) {
    err = ENOMEM;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return err;
}

// The Domain reports a startup's exception with its what(): the message names
// the thread, the CPU and the errno.
[[noreturn]] void throw_startup_failure(const std::string& why) {
  throw std::runtime_error(why);
}

}  // namespace

// ------------------------------------------------------------ public

std::string PerCpuThreads::thread_name(std::string_view name, unsigned cpu) {
  const std::string suffix = strf("/%u", cpu);
  constexpr std::size_t kMax = 15;  // TASK_COMM_LEN - 1
  const std::size_t keep = suffix.size() < kMax ? kMax - suffix.size() : 0;
  return std::string(name.substr(0, keep)) + suffix;
}

PerCpuThreads::PerCpuThreads(Domain& domain, std::string name, Hooks hooks)
    : domain_(domain),
      name_(std::move(name)),
      hooks_(std::move(hooks)),
      workers_(std::make_unique<std::atomic<Worker*>[]>(domain.capacity())) {}

Result<std::unique_ptr<PerCpuThreads>> PerCpuThreads::create(Domain& domain,
                                                             std::string name,
                                                             Hooks hooks) {
  if (name.empty())
    return Error(Errc::kInvalidArgument, "PerCpuThreads: the name must not be empty");
  if (!hooks.should_run || !hooks.run)
    return Error(Errc::kInvalidArgument,
                 strf("PerCpuThreads '%s': hooks.should_run and hooks.run are required",
                      name.c_str()));
  std::unique_ptr<PerCpuThreads> self(
      new PerCpuThreads(domain, std::move(name), std::move(hooks)));
  PerCpuThreads* p = self.get();
  Result<StateId> id = domain.setup_state(
      Section::kOnline, "smpboot:" + p->name_,
      [p](unsigned cpu) { return p->startup(cpu); },
      [p](unsigned cpu) { return p->teardown(cpu); });
  if (!id.ok()) {
    // The state is not installed; workers that did start were parked by the
    // rollback. Clean them up and join them before the object goes.
    p->stop_workers();
    p->stopped_ = true;
    const Error& e = id.error();
    if (p->failure_.set)
      return Error(p->failure_.code,
                   strf("PerCpuThreads '%s': %s", p->name_.c_str(), e.message().c_str()),
                   p->failure_.cause);
    return Error(e.code(),
                 strf("PerCpuThreads '%s': %s", p->name_.c_str(), e.message().c_str()),
                 e.cause());
  }
  p->state_ = *id;
  p->installed_ = true;
  return self;
}

PerCpuThreads::~PerCpuThreads() {
  if (Status s = stop(); !s) {
    detail::fatal("PerCpuThreads", "~PerCpuThreads '%s': %s", name_.c_str(),
                  s.error().message().c_str());
  }
  for (unsigned cpu = 0; cpu < domain_.capacity(); ++cpu)
    delete workers_[cpu].load(std::memory_order_relaxed);
}

void PerCpuThreads::wake(unsigned cpu) noexcept {
  if (cpu >= domain_.capacity()) return;
  if (Worker* w = workers_[cpu].load(std::memory_order_acquire)) signal_worker(w);
}

Status PerCpuThreads::stop() {
  if (stopped_) return {};
  if (tl_owner == this)
    return Error(Errc::kWouldDeadlock,
                 strf("PerCpuThreads '%s': stop() or destruction from one of its own "
                      "worker threads would wait for itself; do it from another thread",
                      name_.c_str()));
  if (installed_) {
    if (Status s = domain_.remove_state(state_); !s) {
      // Someone removed our state behind our back: its teardowns have run or
      // not; stop_workers() copes with running workers too.
      if (s.error().code() != Errc::kNotFound)
        return Error(s.error().code(), strf("PerCpuThreads '%s': cannot stop: %s",
                                            name_.c_str(), s.error().message().c_str()));
    }
    installed_ = false;
  }
  stop_workers();
  stopped_ = true;
  return {};
}

// ------------------------------------------------------------ controlling side

int PerCpuThreads::startup(unsigned cpu) {
  Worker* w = workers_[cpu].load(std::memory_order_relaxed);
  if (w == nullptr) {
    w = new Worker(this, &hooks_, cpu);
    workers_[cpu].store(w, std::memory_order_release);  // wake() may see it now
  }
  failure_.set = false;
  const bool pin = domain_.host_bound();
  std::unique_lock lk(w->m);
  w->reply = Worker::Reply::kNone;
  w->replied.store(false, std::memory_order_relaxed);
  w->pin = pin;
  if (!w->thread.joinable()) {
    // First startup (or the first after a failed one): a new thread.
    w->want_park = w->want_stop = w->parked = false;
    w->control_pending.store(false, std::memory_order_relaxed);
    lk.unlock();
    if (const int err = spawn(w); err != 0) {
      failure_ = {true, Errc::kSystem, -err};
      throw_startup_failure(strf("cannot create thread '%s' for CPU %u: %s",
                                 thread_name(name_, cpu).c_str(), cpu,
                                 errno_text(err).c_str()));
    }
    lk.lock();
    wait_reply(w, lk, "start (pin and setup)");
    if (w->reply == Worker::Reply::kFailed) {
      lk.unlock();
      w->thread.join();  // it returned right after replying
      w->thread = std::thread();
      failure_ = {true, w->error_code, w->error_cause};
      throw_startup_failure(w->error);
    }
    return 0;
  }
  // The worker is parked: unpark it. (It is not parked only if someone removed
  // our state with remove_state_nocalls(); then it runs already.)
  if (!w->parked) return 0;
  w->want_park = false;
  w->cv.notify_all();
  wait_reply(w, lk, "unpark");
  if (w->reply == Worker::Reply::kFailed) {
    failure_ = {true, w->error_code, w->error_cause};
    const std::string why = w->error;
    lk.unlock();
    throw_startup_failure(why);
  }
  return 0;
}

int PerCpuThreads::teardown(unsigned cpu) {
  Worker* w = workers_[cpu].load(std::memory_order_relaxed);
  if (w == nullptr || !w->thread.joinable()) return 0;
  std::unique_lock lk(w->m);
  if (w->parked) return 0;
  w->reply = Worker::Reply::kNone;
  w->replied.store(false, std::memory_order_relaxed);
  w->want_park = true;
  w->control_pending.store(true, std::memory_order_release);
  signal_worker(w);
  wait_reply(w, lk, "park");
  return 0;
}

void PerCpuThreads::stop_workers() noexcept {
  const unsigned n = domain_.capacity();
  for (unsigned cpu = 0; cpu < n; ++cpu) {
    Worker* w = workers_[cpu].load(std::memory_order_relaxed);
    if (w == nullptr || !w->thread.joinable()) continue;
    std::lock_guard g(w->m);
    w->want_stop = true;
    w->control_pending.store(true, std::memory_order_release);
    signal_worker(w);
    w->cv.notify_all();
  }
  for (unsigned cpu = 0; cpu < n; ++cpu) {
    Worker* w = workers_[cpu].load(std::memory_order_relaxed);
    if (w != nullptr && w->thread.joinable()) w->thread.join();
  }
}

}  // namespace cpuhp
