#include "aws/executor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <random>
#include <thread>

#include "aws/errors.h"

namespace sluice::aws {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

double DefaultRandom() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

std::string HostOf(std::string_view url) { return std::string(SplitUrl(url).authority); }

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

std::optional<TimePoint> ParseHttpDate(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Executor::Executor(Options options) : options_(std::move(options)) {
  if (!options_.sleep) options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  if (!options_.random) options_.random = &DefaultRandom;
  if (!options_.steady_now) options_.steady_now = [] { return std::chrono::steady_clock::now(); };
  if (options_.clock == nullptr) options_.clock = &SystemClock::Instance();
}

Result<http::OutboundResponse> Executor::Call(const RequestFactory& factory, const CallOptions& call) const {
  const RetryPolicy& policy = options_.retry;
  const SteadyTime start = options_.steady_now();
  const SteadyTime overall_deadline = start + call.total_timeout.value_or(policy.total_timeout);
  std::string payload_hash = call.payload_hash;
  bool refreshed_after_expiry = false;
  const int max_attempts = std::max(1, policy.max_attempts);

  for (int attempt = 1;; ++attempt) {
    SLUICE_ASSIGN_OR_RETURN(http::OutboundRequest request, factory());
    const std::string host = HostOf(request.url);
    auto context = [&](const Error& e) { return e.WithContext(fmt::format("{} {}", call.operation, host)); };

    if (options_.credentials) {
      Result<Credentials> creds = options_.credentials->Get();
      if (!creds.ok()) {
        return creds.error().WithContext(
            fmt::format("{} {}: credentials from {}", call.operation, host, options_.credentials->Name()));
      }
      SigningOptions signing = options_.signing;
      if (payload_hash.empty() && request.body.data) payload_hash = HexEncode(Sha256(*request.body.data));
      signing.payload_hash = payload_hash;
      TimePoint now = options_.clock->Now() + std::chrono::seconds(clock_offset_s_.load());
      Status signed_ok = Sign(request, *creds, signing, now);
      if (!signed_ok.ok()) return context(signed_ok.error());
    }

    SteadyTime attempt_deadline = std::min(overall_deadline, options_.steady_now() + policy.attempt_timeout);
    bool delivered = false;
    Result<http::OutboundResponse> response = Error();
    if (call.sink) {
      auto sink = [&](std::string_view chunk) {
        delivered = true;
        return call.sink(chunk);
      };
      response = options_.transport->SendStreaming(request, attempt_deadline, sink);
    } else {
      response = options_.transport->Send(request, attempt_deadline);
    }

    Error error;
    if (!response.ok()) {
      error = response.error();
      // An attempt that ran out of its own time is a transient failure; the call's deadline is checked below.
      if (error.code == ErrorCode::kDeadlineExceeded && attempt_deadline < overall_deadline) {
        error.code = ErrorCode::kTransient;
      }
      error = context(error);
    } else if (response->status >= 200 && response->status < 300) {
      std::optional<Error> hook_error;
      if (call.error_in_200_body) {
        if (auto doc = ParseErrorDocument(response->body)) {
          http::OutboundResponse as_error = *response;
          hook_error = ErrorFromResponse(as_error, call.operation);
          hook_error->code = ClassifyAwsError(0, doc->code, doc->message);
          hook_error->message += " (in a 200 response)";
        }
      }
      if (!hook_error && call.check_response) hook_error = call.check_response(*response);
      if (!hook_error) return response;
      error = context(*hook_error);
    } else {
      error = context(ErrorFromResponse(*response, call.operation));
      if (error.code == ErrorCode::kClockSkew) {
        if (auto server_time = ParseHttpDate(response->Header("date"))) {
          auto offset = std::chrono::duration_cast<std::chrono::seconds>(*server_time - options_.clock->Now());
          clock_offset_s_.store(offset.count());
          spdlog::warn("{}: server clock differs from ours by {} s; signing with the server's time",
                       call.operation, offset.count());
        }
      }
    }

    if (error.code == ErrorCode::kExpiredToken && options_.credentials && !refreshed_after_expiry) {
      refreshed_after_expiry = true;
      spdlog::info("{} {}: credentials from {} expired; refreshing and retrying once", call.operation, host,
                   options_.credentials->Name());
      options_.credentials->Invalidate();
      --attempt;  // the refresh retry does not consume an attempt
      continue;
    }
    if (!IsRetryable(error.code)) return error;
    if (delivered) {
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

}  // namespace sluice::aws
