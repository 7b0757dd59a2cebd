// Shared pieces of the stress tests: how long to run, and a thread-safe
// collector of invariant violations that keeps the first few for the report.
#pragma once

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

namespace cpuhp::testing_support {

// CPUHP_STRESS_SECONDS if set to a positive number, else `fallback`.
inline double stress_seconds(double fallback) {
  if (const char* s = std::getenv("CPUHP_STRESS_SECONDS")) {
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (end != s && v > 0) return v;
  }
  return fallback;
}

// First few violations, with a total count.
class Violations {
 public:
  void add(const std::string& what) {
    if (count_.fetch_add(1) < 10) {
      std::lock_guard g(mu_);
      first_ += what + "\n";
    }
  }
  long count() const { return count_.load(); }
  std::string first() const {
    std::lock_guard g(mu_);
    return first_;
  }

 private:
  std::atomic<long> count_{0};
  mutable std::mutex mu_;
  std::string first_;
};

}  // namespace cpuhp::testing_support
