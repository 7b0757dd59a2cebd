// src/spin_wait.h — a bounded poll before a blocking wait. Internal header.
//
// spin_briefly(done) polls done() for at most kSpinBudget and returns whether
// it became true; the caller then sleeps (futex, condition variable) only if
// it did not. Why: the waits it guards are usually short (a read or write
// section of the hotplug lock, a per-CPU worker's reply), and a sleeper pays
// for its wake-up: two context switches and, if its CPU went idle, an IPI
// (tens of microseconds in a VM); a sleeper woken while every CPU is busy also
// waits for a time slice (milliseconds). Bounded in time, not in polls (a pause
// instruction takes 10 to 140 cycles depending on the CPU), so a long wait
// costs only the budget. Any thread may call it; done() must be cheap and must
// not block.
#pragma once

#include <chrono>

namespace cpuhp::detail {

#ifndef CPUHP_SPIN_BUDGET_US
#define CPUHP_SPIN_BUDGET_US 50
#endif
inline constexpr auto kSpinBudget = std::chrono::microseconds(CPUHP_SPIN_BUDGET_US);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

template <class Done>
bool spin_briefly(Done done) noexcept {
  if (done()) return true;  // the common case pays no clock read
  const auto deadline = std::chrono::steady_clock::now() + kSpinBudget;
  do {
    for (int i = 0; i < 16; ++i) {  // a clock read (vDSO, ~20 ns) every 16 polls
      cpu_relax();
      if (done()) return true;
    }
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

}  // namespace cpuhp::detail
