// Multipart upload sizing. S3's limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html):
// every part but the last is 5 MiB to 5 GiB, at most 10,000 parts, objects up to 5 TiB.
#pragma once

#include <cstdint>

#include "common/result.h"

namespace sluice::objstore::s3 {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;
/// S3 rejects a non-final part smaller than 5 MiB (EntityTooSmall at CompleteMultipartUpload).
inline constexpr uint64_t kMinPartSize = 5 * kMiB;
/// S3's largest part.
inline constexpr uint64_t kMaxPartSize = uint64_t{5} << 30;
/// S3's part numbers run from 1 to 10,000.
inline constexpr int kMaxParts = 10'000;
/// S3's largest object.
inline constexpr uint64_t kMaxObjectSize = uint64_t{5} << 40;
/// Without a size hint the part size doubles every this many parts, so a stream of unknown length can reach
/// S3's 5 TiB object limit within 10,000 parts while small objects keep small parts (and little memory).
inline constexpr int kPartsPerSizeStep = 1'000;

/// Chooses part sizes for one upload.
class PartSizer {
 public:
  /// `base` is the configured part size (checked by ValidatePartSize); `size_hint` the expected object size
  /// (0 = unknown). With a hint the size is fixed: max(base, hint / 10,000 rounded up to a MiB).
  PartSizer(uint64_t base, uint64_t size_hint);

  /// Size of part `part_number` (1-based), never above kMaxPartSize.
  uint64_t PartSize(int part_number) const;
  /// The largest object these sizes can hold in kMaxParts parts (capped at kMaxObjectSize).
  uint64_t MaxObjectSize() const;

 private:
  uint64_t base_;
  bool fixed_;
};

/// kInvalidArgument unless kMinPartSize <= part_size <= kMaxPartSize.
Status ValidatePartSize(uint64_t part_size);
/// kTooLarge when `size_hint` cannot be uploaded at all (over 5 TiB).
Status ValidateSizeHint(uint64_t size_hint);

}  // namespace sluice::objstore::s3
