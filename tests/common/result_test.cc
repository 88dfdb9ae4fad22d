#include "common/result.h"

#include <gtest/gtest.h>

#include "common/secret.h"

namespace sluice {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  SLUICE_ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

Status CheckEven(int x) {
  SLUICE_TRY(Half(x));
  return OkStatus();
}

TEST(ResultTest, PropagatesErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  auto bad = Quarter(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message, "odd");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_FALSE(CheckEven(5).ok());
}

TEST(ErrorTest, ToStringCarriesProviderDetails) {
  Error e(ErrorCode::kAccessDenied, "role cannot write");
  e.provider_code = "AccessDenied";
  e.request_id = "R1";
  e.http_status = 403;
  EXPECT_EQ(e.ToString(), "access_denied: role cannot write (AccessDenied, request id R1, HTTP 403)");
  EXPECT_EQ(e.WithContext("put a/b").message, "put a/b: role cannot write");
  EXPECT_TRUE(IsRetryable(ErrorCode::kThrottled));
  EXPECT_FALSE(IsRetryable(ErrorCode::kAccessDenied));
}

TEST(SecretTest, NeverPrints) {
  Secret s("hunter2");
  EXPECT_EQ(fmt::format("{}", s), "***");
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "***");
  EXPECT_EQ(s.Reveal(), "hunter2");
}

}  // namespace
}  // namespace sluice
