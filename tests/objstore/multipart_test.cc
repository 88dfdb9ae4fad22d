#include "objstore/s3/multipart.h"

#include <gtest/gtest.h>

namespace sluice::objstore::s3 {
namespace {

TEST(MultipartTest, PartSizeLimits) {
  EXPECT_FALSE(ValidatePartSize(kMinPartSize - 1).ok());
  EXPECT_TRUE(ValidatePartSize(kMinPartSize).ok());
  EXPECT_TRUE(ValidatePartSize(kMaxPartSize).ok());
  EXPECT_FALSE(ValidatePartSize(kMaxPartSize + 1).ok());
  EXPECT_EQ(ValidateSizeHint(kMaxObjectSize + 1).error().code, ErrorCode::kTooLarge);
  EXPECT_TRUE(ValidateSizeHint(kMaxObjectSize).ok());
}

TEST(MultipartTest, SizeHintFixesAPartSizeThatFitsTenThousandParts) {
  PartSizer small(8 * kMiB, 100 * kMiB);
  EXPECT_EQ(small.PartSize(1), 8 * kMiB);
  EXPECT_EQ(small.PartSize(5000), 8 * kMiB);
  // 200 GiB in 10,000 parts needs ~20.5 MiB parts: rounded up to whole MiB.
  const uint64_t big = uint64_t{200} << 30;
  PartSizer sized(8 * kMiB, big);
  EXPECT_EQ(sized.PartSize(1), 21 * kMiB);
  EXPECT_EQ(sized.PartSize(kMaxParts), 21 * kMiB);
  EXPECT_GE(sized.PartSize(1) * kMaxParts, big);
  // 5 TiB needs parts of ~525 MiB.
  PartSizer max(5 * kMiB, kMaxObjectSize);
  EXPECT_GE(max.PartSize(1) * kMaxParts, kMaxObjectSize);
  EXPECT_LE(max.PartSize(1), kMaxPartSize);
}

TEST(MultipartTest, UnknownSizeGrowsEveryThousandParts) {
  PartSizer s(8 * kMiB, 0);
  EXPECT_EQ(s.PartSize(1), 8 * kMiB);
  EXPECT_EQ(s.PartSize(1000), 8 * kMiB);
  EXPECT_EQ(s.PartSize(1001), 16 * kMiB);
  EXPECT_EQ(s.PartSize(2001), 32 * kMiB);
  EXPECT_EQ(s.PartSize(10000), 8 * kMiB << 9);
  // From 8 MiB parts the schedule reaches S3's 5 TiB object limit within 10,000 parts.
  EXPECT_EQ(s.MaxObjectSize(), kMaxObjectSize);
  EXPECT_GT(PartSizer(kMinPartSize, 0).MaxObjectSize(), uint64_t{4} << 40);  // ~4.99 TiB from 5 MiB parts
  // Never above S3's part maximum.
  EXPECT_EQ(PartSizer(kMaxPartSize, 0).PartSize(9999), kMaxPartSize);
}

}  // namespace
}  // namespace sluice::objstore::s3
