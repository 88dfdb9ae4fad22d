#include "objstore/s3/multipart.h"

#include <algorithm>

#include <fmt/format.h>

namespace sluice::objstore::s3 {

PartSizer::PartSizer(uint64_t base, uint64_t size_hint) : base_(base), fixed_(size_hint > 0) {
  if (fixed_) {
    uint64_t needed = (size_hint + kMaxParts - 1) / kMaxParts;
    needed = (needed + kMiB - 1) / kMiB * kMiB;
    base_ = std::min(std::max(base_, needed), kMaxPartSize);
  }
}

uint64_t PartSizer::PartSize(int part_number) const {
  if (fixed_ || part_number <= kPartsPerSizeStep) return base_;
  int step = (part_number - 1) / kPartsPerSizeStep;
  uint64_t size = base_;
  for (int i = 0; i < step && size < kMaxPartSize; ++i) size *= 2;
  return std::min(size, kMaxPartSize);
}

uint64_t PartSizer::MaxObjectSize() const {
  uint64_t total = 0;
  // Sum step by step (at most 10 steps), saturating at S3's limit.
  for (int first = 1; first <= kMaxParts && total < kMaxObjectSize; first += kPartsPerSizeStep) {
    int count = std::min(kPartsPerSizeStep, kMaxParts - first + 1);
    total += PartSize(first) * static_cast<uint64_t>(count);
  }
  return std::min(total, kMaxObjectSize);
}

Status ValidatePartSize(uint64_t part_size) {
  if (part_size < kMinPartSize || part_size > kMaxPartSize) {
    return InvalidArgument(fmt::format(
        "S3 part size {} bytes is outside S3's limits of 5 MiB to 5 GiB per part", part_size));
  }
  return OkStatus();
}

Status ValidateSizeHint(uint64_t size_hint) {
  if (size_hint > kMaxObjectSize) {
    return Error(ErrorCode::kTooLarge,
                 fmt::format("object of {} bytes exceeds S3's maximum object size of 5 TiB", size_hint));
  }
  return OkStatus();
}

}  // namespace sluice::objstore::s3
