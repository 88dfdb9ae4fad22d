// Per-project rate limit on uncompressed JSON bytes (Mixpanel's is 2 GB per minute, SPEC §3): a token bucket
// per project whose capacity is one minute's allowance, refilled continuously.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "common/clock.h"

namespace sluice::api {

class RateLimiter {
 public:
  /// bytes_per_minute == 0 disables the limit.
  RateLimiter(uint64_t bytes_per_minute, const Clock& clock) : rate_(bytes_per_minute), clock_(clock) {}

  /// Takes `bytes` from the project's bucket. Returns 0 when allowed, otherwise the whole seconds to wait
  /// before that many bytes would be available (for Retry-After); nothing is taken then. More bytes than a
  /// minute's allowance are allowed when the bucket is full, leaving it in debt for the bytes after them.
  int64_t Acquire(uint32_t project, uint64_t bytes);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t last_us = 0;
  };
  const uint64_t rate_;
  const Clock& clock_;
  std::mutex mu_;
  std::unordered_map<uint32_t, Bucket> buckets_;
};

}  // namespace sluice::api
