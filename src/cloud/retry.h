// The one retry loop of every provider client (aws::Executor, gcp::Executor, azure::Executor): exponential
// backoff with FULL jitter, a cap, a maximum number of attempts and an overall deadline. Nothing below it
// (HttpTransport) or above it (object stores, token sources) retries again.
//
// A provider's executor supplies one attempt (build, authorise/sign, send, classify) and, optionally, the rule
// for "credentials were refused: refresh once and retry without using up an attempt":
//
//   cloud::RetryLoop loop(options);                       // policy, injectable sleep/random/clock
//   cloud::RetryLoop::Call call;
//   call.operation = "PutBlob";
//   call.attempt = [&](cloud::SteadyTime deadline, cloud::AttemptState& state) -> Result<http::OutboundResponse> {
//     ... send with `deadline`; set state.delivered when a streamed byte reached the caller's sink, state.final
//     for an error that no retry can mend (credentials that could not be fetched) ...
//   };
//   call.refresh = [&](const Error& e) { if (!IsExpired(e)) return false; tokens->Invalidate(); return true; };
//   Result<http::OutboundResponse> r = loop.Run(call);
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/result.h"
#include "http/transport.h"

namespace sluice::cloud {

struct RetryPolicy {
  /// Attempts including the first (1 = no retries). A refresh-and-retry after refused credentials does not count.
  int max_attempts = 5;
  /// Backoff ceiling before the first retry for transient errors; doubles per retry up to `max_delay`.
  std::chrono::milliseconds base_delay{100};
  /// Throttling (SlowDown, 429, rateLimitExceeded, ServerBusy) starts higher: backing off harder is the point.
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
using SteadyTime = std::chrono::steady_clock::time_point;

/// What one attempt tells the loop besides its result.
struct AttemptState {
  /// A byte of a streamed body reached the caller's sink: the failure is returned, never retried (the sink
  /// cannot un-see bytes; resume with a Range request).
  bool delivered = false;
  /// The error is returned as it is, without retry (e.g. the credentials themselves could not be fetched:
  /// their source already retried).
  bool final = false;
};

class RetryLoop {
 public:
  struct Options {
    RetryPolicy retry;
    /// Backoff sleeps; default std::this_thread::sleep_for.
    Sleeper sleep;
    /// Uniform [0,1) draws for jitter; default a thread-local PRNG.
    std::function<double()> random;
    /// Monotonic time for deadlines; default steady_clock::now. Tests advance it from their sleeper.
    std::function<SteadyTime()> steady_now;
  };

  struct Call {
    /// For messages and logs, e.g. "PutObject".
    std::string operation = "request";
    /// Overrides RetryPolicy::total_timeout for this call.
    std::optional<std::chrono::milliseconds> total_timeout;
    /// One attempt, to be finished by `deadline`: the success response, or the classified Error.
    std::function<Result<http::OutboundResponse>(SteadyTime deadline, AttemptState& state)> attempt;
    /// Optional: after a failed attempt, drops refused credentials and returns true to retry once at once (not
    /// counted as an attempt); false = handle the error normally. Asked at most once per call.
    std::function<bool(const Error&)> refresh;
    /// Optional: before each retry (after the backoff), e.g. to ask a resumable session how much it kept. A
    /// response finishes the call with it; nullopt sends again; an error counts as that attempt's failure.
    std::function<Result<std::optional<http::OutboundResponse>>()> before_retry;
  };

  explicit RetryLoop(Options options);

  /// Runs attempts until one succeeds, the error is not retryable (common/error.h IsRetryable), attempts run
  /// out ("gave up after N attempts") or the next backoff would pass the deadline. Thread-safe.
  Result<http::OutboundResponse> Run(const Call& call) const;

  const Options& options() const { return options_; }
  SteadyTime Now() const { return options_.steady_now(); }

 private:
  Options options_;
};

}  // namespace sluice::cloud
