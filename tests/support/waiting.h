// Shared pieces of the tests that wait for another thread: how long to let a
// thread reach a blocking call, and a poll for a condition with a deadline (a
// hang becomes a failed assertion, never a hung test).
#pragma once

#include <chrono>
#include <thread>

namespace cpuhp::testing_support {

// Long enough for a thread that is going to block to reach the blocking call.
inline constexpr std::chrono::milliseconds kSettle{50};

// Polls `pred` every millisecond until it holds (true) or `limit` passes
// (false). Only "eventually" is asserted: the limit is generous on purpose.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace cpuhp::testing_support
