// Retry policy for AWS calls: the shared one (cloud/retry.h: exponential backoff with FULL jitter, a cap, a
// maximum number of attempts and an overall deadline). The only retry loop in Sluice's AWS path is the one
// aws::Executor::Call runs (cloud::RetryLoop); nothing below it (transport) or above it (S3 client, STS client)
// retries again.
//
// Usage:
//   aws::RetryPolicy policy;             // defaults in cloud/retry.h
//   policy.max_attempts = 8;
//   auto delay = aws::BackoffDelay(policy, /*retry=*/2, ErrorCode::kThrottled, /*uniform01=*/0.37);
#pragma once

#include "cloud/retry.h"

namespace sluice::aws {

using RetryPolicy = cloud::RetryPolicy;
using cloud::BackoffCeiling;
using cloud::BackoffDelay;
using Sleeper = cloud::Sleeper;

}  // namespace sluice::aws
