#include "common/compression.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(CompressionTest, RoundTripSingleAndMultiMember) {
  std::string text(100000, 'x');
  for (size_t i = 0; i < text.size(); i += 7) text[i] = static_cast<char>('a' + i % 26);
  auto gz = Gzip(text);
  EXPECT_TRUE(LooksLikeGzip(gz));
  EXPECT_EQ(*GunzipBounded(gz, 1 << 20), text);
  auto two = Gzip("hello ") + Gzip("world");
  EXPECT_EQ(*GunzipBounded(two, 1 << 20), "hello world");
}

TEST(CompressionTest, EnforcesOutputLimit) {
  auto gz = Gzip(std::string(1 << 20, 'a'));
  auto r = GunzipBounded(gz, 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge);
}

TEST(CompressionTest, RejectsTruncatedAndNonGzip) {
  auto gz = Gzip(std::string(5000, 'q'));
  auto r = GunzipBounded(std::string_view(gz).substr(0, gz.size() / 2), 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("truncated"), std::string::npos);
  EXPECT_FALSE(GunzipBounded("{\"a\":1}", 100).ok());
}

}  // namespace
}  // namespace sluice
