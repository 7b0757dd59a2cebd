// SPDX-License-Identifier: MIT
// cpuhp/trace.h — a Chrome trace-event recorder for a Domain (the cpuhp
// counterpart of the kernel's cpuhp_enter/cpuhp_exit tracepoints).
//
// CONTRACT
//
// What it records. attach(domain) installs the recorder as the domain's
// observer (Domain::set_observer); from then on every callback invocation
// (startup, teardown, rollback, injected failure) is appended as one event.
// A program may also record its own operations on the "writers" track with
// record_operation() (the `cpuhp trace` tool records every up/down and every
// registration that way) and instant markers with record_instant().
//
// Cost. The observer runs in the thread driving the transition, with the
// domain's writers' lock held: recording must be cheap. It is: one lock of an
// uncontended mutex and one append to a vector (state names are interned, so
// no string is copied per event). When max_events is reached further events
// are counted as dropped, not stored.
//
// Threads. Every member may be called from any thread at any time; the
// recorder has its own mutex. attach()/detach() call Domain::set_observer,
// so they take the domain's writers' lock and must not be called from a
// callback or while holding the hotplug read lock. The recorder must outlive
// its attachment: detach() (or destroy the domain) before destroying it.
//
// Output. write_json() writes the Chrome trace-event JSON object format
// (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAqzw),
// which Perfetto UI (ui.perfetto.dev) and chrome://tracing open:
//   {"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}
//   * pid 1 is the domain; tid 0 is the "writers" track; tid cpu+1 is the
//     track of CPU `cpu`, named "CPU <cpu>" by "M" (metadata) events.
//   * every callback is an "X" (complete) event on its CPU's track, named
//     after the state, category "startup", "teardown" or "rollback", with
//     args {cpu, state, direction, result} plus "instance" (its address) for
//     a multi-instance state; ts and dur are microseconds (fractional)
//     since the first recorded event.
//   * an "i" (instant) event marks each failed callback (result != 0; an
//     injected failure is one) and the start of each rollback run on a CPU.
//   * operations are "X" events on the writers track; failed operations also
//     get an instant event there. If no operation was recorded, the writers
//     track is inferred from the callbacks: one slice per run of consecutive
//     callbacks on one CPU in one direction (a failed startup or a rollback
//     ends the run, after the rollback callbacks that follow). That heuristic
//     cannot tell a registration from a transition.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "cpuhp/detail/mutex.h"
#include "cpuhp/error.h"
#include "cpuhp/states.h"

namespace cpuhp {

class Domain;

class TraceRecorder {
 public:
  struct Options {
    std::size_t max_events = 1u << 22;  // callbacks + operations + instants
  };

  TraceRecorder();
  explicit TraceRecorder(Options options);
  ~TraceRecorder();
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;

  // Domain::set_observer(recorder). Replaces any observer the domain had.
  void attach(Domain& domain);
  // Domain::set_observer(nullptr).
  void detach(Domain& domain);

  // What the observer calls; public so that a program with its own observer
  // can forward events to the recorder.
  void record(const CallbackEvent& event);

  // One slice on the writers track, e.g. "up CPU 3" or "setup_state demo:late";
  // `cpu` is -1 if the operation is not about one CPU. A non-empty `error`
  // marks the operation as failed (an instant event is added with it).
  // Times are std::chrono::steady_clock nanoseconds, as in CallbackEvent.
  void record_operation(std::string name, int cpu, long long begin_ns, long long end_ns,
                        std::string error = {});
  // An instant event on CPU `cpu`'s track, or on the writers track if cpu < 0.
  void record_instant(std::string name, int cpu, long long ts_ns);

  // steady_clock::now() in nanoseconds, the clock every timestamp uses.
  static long long now_ns() noexcept;

  std::size_t callback_events() const;
  std::size_t operations() const;
  std::size_t dropped() const;
  void clear();

  // The whole trace as one JSON object (see above). Valid JSON even if empty.
  void write_json(std::ostream& out) const;
  // write_json() to a file; an error names the file and the reason.
  Status write_file(const std::string& path) const;

 private:
  struct Callback {
    long long begin_ns, end_ns;
    unsigned cpu;
    StateId state;
    std::uint32_t name;  // index into names_
    bool startup, rollback;
    int result;
    const void* instance;  // multi-instance state: the instance; else nullptr
  };
  struct Operation {
    long long begin_ns, end_ns;
    int cpu;
    std::string name, error;
  };
  struct Instant {
    long long ts_ns;
    int cpu;
    std::string name;
  };

  bool full_locked() const CPUHP_REQUIRES(mutex_);
  std::uint32_t intern_locked(StateId state, const std::string& name)
      CPUHP_REQUIRES(mutex_);

  const Options options_;
  mutable detail::Mutex mutex_;
  std::vector<Callback> callbacks_ CPUHP_GUARDED_BY(mutex_);
  std::vector<Operation> operations_ CPUHP_GUARDED_BY(mutex_);
  std::vector<Instant> instants_ CPUHP_GUARDED_BY(mutex_);
  std::vector<std::string> names_ CPUHP_GUARDED_BY(mutex_);
  // kNumStates entries; UINT32_MAX: none
  std::vector<std::uint32_t> name_by_state_ CPUHP_GUARDED_BY(mutex_);
  std::size_t dropped_ CPUHP_GUARDED_BY(mutex_) = 0;
};

}  // namespace cpuhp
