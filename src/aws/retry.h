// Retry policy for AWS calls: exponential backoff with FULL jitter, a cap, a maximum number of attempts and an
// overall deadline. The only retry loop in Sluice's AWS path is aws::Executor::Call (executor.h); nothing below
// it (transport) or above it (S3 client, STS client) retries again.
//
// Usage:
//   aws::RetryPolicy policy;             // defaults below
//   policy.max_attempts = 8;
//   auto delay = aws::BackoffDelay(policy, /*retry=*/2, ErrorCode::kThrottled, /*uniform01=*/0.37);
#pragma once

#include <chrono>
#include <functional>

#include "common/error.h"

namespace sluice::aws {

struct RetryPolicy {
  /// Attempts including the first (1 = no retries). An ExpiredToken refresh-and-retry does not count.
  int max_attempts = 5;
  /// Backoff ceiling before the first retry for transient errors; doubles per retry up to `max_delay`.
  std::chrono::milliseconds base_delay{100};
  /// Throttling (SlowDown, 429) starts higher: backing off harder is the point.
  std::chrono::milliseconds throttled_base_delay{500};
  /// Cap on any one backoff.
  std::chrono::milliseconds max_delay{20'000};
  /// Deadline of a single attempt (connect + send + receive).
  std::chrono::milliseconds attempt_timeout{120'000};
  /// Deadline of the whole call, all attempts and sleeps included.
  std::chrono::milliseconds total_timeout{600'000};
};

/// Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): a uniform draw in
/// [0, min(max_delay, base * 2^retry)], where `retry` is 0 before the first retry and `uniform01` is in [0, 1).
/// Full rather than equal jitter because many Sluice workers retrying the same throttled prefix must spread out.
std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry, ErrorCode code, double uniform01);

/// The ceiling BackoffDelay draws under (exposed for tests and logs).
std::chrono::milliseconds BackoffCeiling(const RetryPolicy& policy, int retry, ErrorCode code);

/// Sleeps for a duration; injectable so tests run retry schedules instantly.
using Sleeper = std::function<void(std::chrono::milliseconds)>;

}  // namespace sluice::aws
