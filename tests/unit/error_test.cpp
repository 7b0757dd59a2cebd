#include "cpuhp/error.h"

#include <gtest/gtest.h>

namespace cpuhp {
namespace {

TEST(Error, ResultHoldsValueOrError) {
  Result<int> good = 7;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad = Error(Errc::kOutOfRange, "CPU 9000 is out of range");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Errc::kOutOfRange);
  EXPECT_EQ(bad.error().message(), "CPU 9000 is out of range");
}

TEST(Error, StatusAndErrorCodeInterop) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  Status failed = Error(Errc::kLastCpu, "CPU 0 is the last online CPU");
  ASSERT_FALSE(failed.ok());
  std::error_code ec = failed.error().error_code();
  EXPECT_EQ(ec, Errc::kLastCpu);
  EXPECT_STREQ(ec.category().name(), "cpuhp");
  EXPECT_EQ(ec.message(), "last online CPU");
}

}  // namespace
}  // namespace cpuhp
