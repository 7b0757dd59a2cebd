// GoogleTest helpers for cpuhp's Status / Result<T>: the call succeeded, or
// failed with a given Errc and a message that names what it should.
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cpuhp/domain.h"
#include "cpuhp/error.h"

namespace cpuhp::testing_support {

inline std::string errc_name(Errc e) {
  std::ostringstream os;
  os << static_cast<int>(e) << " (" << make_error_code(e).message() << ")";
  return os.str();
}

// The call failed with `code` and its message contains every needle.
template <class R>
::testing::AssertionResult Fails(const R& r, Errc code,
                                 const std::vector<std::string>& needles = {}) {
  if (r.ok())
    return ::testing::AssertionFailure()
           << "the call succeeded; expected error " << errc_name(code);
  const Error& e = r.error();
  if (e.code() != code)
    return ::testing::AssertionFailure()
           << "error " << errc_name(e.code()) << ", expected " << errc_name(code)
           << "; message: " << e.message();
  for (const std::string& n : needles)
    if (e.message().find(n) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message \"" << e.message() << "\" does not mention \"" << n << "\"";
  return ::testing::AssertionSuccess() << e.message();
}

template <class R>
::testing::AssertionResult Succeeds(const R& r) {
  if (r.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "error " << errc_name(r.error().code()) << ": " << r.error().message();
}

// A CPU's state; fails the test if the CPU is out of range.
inline StateId state_of(const Domain& d, unsigned cpu) {
  Result<StateId> r = d.cpu_state(cpu);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : -1;
}

}  // namespace cpuhp::testing_support
