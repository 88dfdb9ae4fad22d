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

TEST(CompressionTest, PaddedInflatesIntoAReusedBufferFollowedByZeroPadding) {
  std::string big(300000, 'x');
  for (size_t i = 0; i < big.size(); i += 5) big[i] = static_cast<char>('a' + i % 26);
  auto r = GunzipBoundedPadded(Gzip(big), 1 << 20, 64);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, big);
  for (size_t i = 0; i < 64; ++i) ASSERT_EQ(r->data()[r->size() + i], '\0') << i;
  // A smaller body next on the same thread: the view holds exactly it, padding zeroed again after it.
  const char* first = r->data();
  auto small = GunzipBoundedPadded(Gzip("hello ") + Gzip("world"), 1 << 20, 64);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(*small, "hello world");
  EXPECT_EQ(small->data(), first);  // the buffer was reused, not allocated again
  for (size_t i = 0; i < 64; ++i) ASSERT_EQ(small->data()[small->size() + i], '\0') << i;
  // Empty output still yields a readable, padded view.
  auto empty = GunzipBoundedPadded(Gzip(""), 100, 64);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(CompressionTest, PaddedKeepsTheLimitsAndErrors) {
  auto over = GunzipBoundedPadded(Gzip(std::string(1 << 20, 'a')), 1000, 64);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, ErrorCode::kTooLarge);
  auto gz = Gzip(std::string(5000, 'q'));
  auto cut = GunzipBoundedPadded(std::string_view(gz).substr(0, gz.size() / 2), 1 << 20, 64);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.error().message.find("truncated"), std::string::npos);
  EXPECT_FALSE(GunzipBoundedPadded("{\"a\":1}", 100, 64).ok());
}

}  // namespace
}  // namespace sluice
