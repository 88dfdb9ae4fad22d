// Issue 9 item 2: tenant endpoints are compared normalised against the operator's allow-list.
#include "aws/endpoint_policy.h"

#include <gtest/gtest.h>

#include <map>

namespace sluice::aws {
namespace {

EnvGetter Env(std::map<std::string, std::string> vars) {
  return [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(EndpointPolicyTest, NormalisesSchemeHostAndPort) {
  const std::vector<std::pair<std::string, std::string>> same = {
      {"http://127.0.0.1:9000", "http://127.0.0.1:9000"},
      {"HTTP://127.0.0.1:9000/", "http://127.0.0.1:9000"},
      {"https://S3.Example.COM", "https://s3.example.com:443"},
      {"https://s3.example.com.:443/", "https://s3.example.com:443"},
      {"http://minio", "http://minio:80"},
      {"http://[::1]:9000", "http://[::1]:9000"},
  };
  for (const auto& [in, want] : same) {
    auto n = NormalizeEndpoint(in);
    ASSERT_TRUE(n.ok()) << in << ": " << n.error().ToString();
    EXPECT_EQ(*n, want) << in;
  }
  for (const char* bad :
       {"ftp://x", "127.0.0.1:9000", "http://", "http://a/b", "http://a?b=1", "http://a#f", "http://u:p@a",
        "http://a@b", "http://a:0", "http://a:65536", "http://a:80x", "http://a:", "http://a b",
        "http://a\nb", "http://[::1", "http://..", "http://a..b", "http://-a"}) {
    EXPECT_FALSE(NormalizeEndpoint(bad).ok()) << bad;
  }
}

TEST(EndpointPolicyTest, AllowsOnlyTheOperatorsEndpoints) {
  auto none = EndpointPolicy::Create({}, Env({}));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->Check("").ok()) << "AWS itself is always allowed";
  for (const char* tenant : {"http://127.0.0.1:9000", "http://localhost", "http://10.0.0.1",
                             "http://169.254.169.254", "https://s3.amazonaws.com.evil.example"}) {
    auto s = none->Check(tenant);
    ASSERT_FALSE(s.ok()) << tenant;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message.find("--allow-endpoint"), std::string::npos) << s.error().message;
  }

  auto policy = EndpointPolicy::Create({"http://minio.internal:9000/"},
                                       Env({{"AWS_ENDPOINT_URL", "http://127.0.0.1:5000"},
                                            {"AWS_ENDPOINT_URL_S3", "https://S3.Example.com"}}));
  ASSERT_TRUE(policy.ok()) << policy.error().ToString();
  EXPECT_TRUE(policy->Check("http://MINIO.internal:9000").ok());
  EXPECT_TRUE(policy->Check("http://127.0.0.1:5000/").ok());
  EXPECT_TRUE(policy->Check("https://s3.example.com:443").ok());
  EXPECT_FALSE(policy->Check("http://127.0.0.1:5001").ok()) << "another port is another endpoint";
  EXPECT_FALSE(policy->Check("https://127.0.0.1:5000").ok()) << "another scheme is another endpoint";
  EXPECT_FALSE(policy->Check("http://minio.internal:9000/other-bucket").ok()) << "no paths at all";
  EXPECT_FALSE(policy->Check("http://x@minio.internal:9000").ok()) << "no user info";

  auto bad = EndpointPolicy::Create({"not a url"}, Env({}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("--allow-endpoint"), std::string::npos);
}

}  // namespace
}  // namespace sluice::aws
