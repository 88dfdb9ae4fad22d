#include "cloud/retry.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

namespace sluice::cloud {
namespace {

double DefaultRandom() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

std::chrono::milliseconds BackoffCeiling(const RetryPolicy& policy, int retry, ErrorCode code) {
  auto base = code == ErrorCode::kThrottled ? policy.throttled_base_delay : policy.base_delay;
  // Doubling saturates well before overflow: 2^30 * any sane base is beyond every cap.
  double ceiling = static_cast<double>(base.count()) * std::ldexp(1.0, std::clamp(retry, 0, 30));
  return std::chrono::milliseconds(
      static_cast<int64_t>(std::min(ceiling, static_cast<double>(policy.max_delay.count()))));
}

std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry, ErrorCode code, double uniform01) {
  double u = std::clamp(uniform01, 0.0, 1.0);
  return std::chrono::milliseconds(
      static_cast<int64_t>(std::floor(static_cast<double>(BackoffCeiling(policy, retry, code).count()) * u)));
}

RetryLoop::RetryLoop(Options options) : options_(std::move(options)) {
  if (!options_.sleep) options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  if (!options_.random) options_.random = &DefaultRandom;
  if (!options_.steady_now) options_.steady_now = [] { return std::chrono::steady_clock::now(); };
}

Result<http::OutboundResponse> RetryLoop::Run(const Call& call) const {
  const RetryPolicy& policy = options_.retry;
  const SteadyTime overall_deadline = options_.steady_now() + call.total_timeout.value_or(policy.total_timeout);
  const int max_attempts = std::max(1, policy.max_attempts);
  bool refreshed = false;
  bool resend = true;  // false when before_retry failed: that failure is this attempt's

  for (int attempt = 1;; ++attempt) {
    Error error;
    AttemptState state;
    if (attempt > 1 && call.before_retry) {
      Result<std::optional<http::OutboundResponse>> probe = call.before_retry();
      if (probe.ok() && probe->has_value()) return std::move(**probe);
      resend = probe.ok();
      if (!probe.ok()) error = probe.error();
    }
    if (resend) {
      SteadyTime attempt_deadline = std::min(overall_deadline, options_.steady_now() + policy.attempt_timeout);
      Result<http::OutboundResponse> response = call.attempt(attempt_deadline, state);
      if (response.ok()) return response;
      error = std::move(response).error();
      if (state.final) return error;
      // An attempt that ran out of its own time is a transient failure; the call's deadline is checked below.
      if (error.code == ErrorCode::kDeadlineExceeded && attempt_deadline < overall_deadline) {
        error.code = ErrorCode::kTransient;
      }
    }
    resend = true;

    if (!refreshed && call.refresh && call.refresh(error)) {
      refreshed = true;
      --attempt;  // the refresh retry does not consume an attempt
      continue;
    }
    if (!IsRetryable(error.code)) return error;
    if (state.delivered) {
      error.message += " (after part of the body was delivered; resume with a range request)";
      return error;
    }
    if (attempt >= max_attempts) {
      error.message += fmt::format(" (gave up after {} attempts)", attempt);
      return error;
    }
    auto delay = BackoffDelay(policy, attempt - 1, error.code, options_.random());
    if (options_.steady_now() + delay >= overall_deadline) {
      error.message += fmt::format(" (retry deadline of {} ms reached after {} attempts)",
                                   call.total_timeout.value_or(policy.total_timeout).count(), attempt);
      return error;
    }
    spdlog::warn("{} (attempt {}/{}); retrying in {} ms", error.ToString(), attempt, max_attempts, delay.count());
    options_.sleep(delay);
  }
}

}  // namespace sluice::cloud
