#include "gcp/executor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <random>
#include <regex>
#include <thread>

#include "gcp/credentials.h"

namespace sluice::gcp {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

double DefaultRandom() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

struct GoogleErrorBody {
  std::string reason;
  std::string message;
};

// Reads either error shape Google answers with; empty fields when the body is not one of them (an HTML page
// from a proxy, a truncated body).
GoogleErrorBody ParseErrorBody(std::string_view body) {
  GoogleErrorBody out;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return out;
  const auto& o = v.as_object();
  const auto* err = o.if_contains("error");
  if (err == nullptr) return out;
  if (err->is_string()) {  // OAuth: {"error":"invalid_grant","error_description":"…"}
    out.reason = std::string(err->as_string());
    if (const auto* d = o.if_contains("error_description"); d && d->is_string()) {
      out.message = std::string(d->as_string());
    }
    return out;
  }
  if (!err->is_object()) return out;
  const auto& e = err->as_object();
  if (const auto* m = e.if_contains("message"); m && m->is_string())
    out.message = std::string(m->as_string());
  if (const auto* errors = e.if_contains("errors");
      errors && errors->is_array() && !errors->as_array().empty()) {
    const auto& first = errors->as_array().front();
    if (first.is_object()) {
      if (const auto* r = first.as_object().if_contains("reason"); r && r->is_string()) {
        out.reason = std::string(r->as_string());
      }
    }
  }
  if (out.reason.empty()) {
    if (const auto* s = e.if_contains("status"); s && s->is_string())
      out.reason = std::string(s->as_string());
  }
  return out;
}

std::string Printable(std::string_view body) {
  std::string s(body.substr(0, 300));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return s;
}

}  // namespace

std::string_view UrlAuthority(std::string_view url) {
  size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  return rest.substr(0, rest.find_first_of("/?#"));
}

std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry, ErrorCode code,
                                       double uniform01) {
  auto base = code == ErrorCode::kThrottled ? policy.throttled_base_delay : policy.base_delay;
  double ceiling = static_cast<double>(base.count()) * std::ldexp(1.0, std::clamp(retry, 0, 30));
  ceiling = std::min(ceiling, static_cast<double>(policy.max_delay.count()));
  return std::chrono::milliseconds(
      static_cast<int64_t>(std::floor(ceiling * std::clamp(uniform01, 0.0, 1.0))));
}

std::string PermissionInMessage(std::string_view message) {
  static const std::regex kPermission(R"(\b(storage\.[a-zA-Z]+\.[a-zA-Z]+)\b)");
  std::match_results<std::string_view::const_iterator> m;
  if (std::regex_search(message.begin(), message.end(), m, kPermission)) return m[1].str();
  return "";
}

Error ClassifyGoogleResponse(const http::OutboundResponse& response, std::string_view operation) {
  GoogleErrorBody body = ParseErrorBody(response.body);
  const int status = response.status;
  ErrorCode code = ErrorCode::kPermanent;
  std::string hint;
  if (status == 400) {
    if (body.reason == "invalid_grant" || body.reason == "invalid_client" ||
        body.reason == "unauthorized_client") {
      code = ErrorCode::kUnauthenticated;
      hint =
          "check that the service-account key is current (not deleted or disabled) and this machine's clock";
    } else {
      code = ErrorCode::kInvalidArgument;
    }
  } else if (status == 401) {
    code = ErrorCode::kUnauthenticated;
    hint = "check Sluice's Google credentials (GOOGLE_APPLICATION_CREDENTIALS or the metadata server)";
  } else if (status == 403) {
    if (body.reason == "rateLimitExceeded" || body.reason == "userRateLimitExceeded") {
      code = ErrorCode::kThrottled;
    } else {
      code = ErrorCode::kAccessDenied;
      hint = "check the IAM roles on the bucket (`sluice gcp roles --bucket B` prints them)";
    }
  } else if (status == 404) {
    code = ErrorCode::kNotFound;
  } else if (status == 408) {
    code = ErrorCode::kTransient;
  } else if (status == 409 || status == 412) {
    code = ErrorCode::kConflict;
  } else if (status == 413) {
    code = ErrorCode::kTooLarge;
  } else if (status == 429) {
    code = ErrorCode::kThrottled;
  } else if (status >= 500) {
    code = ErrorCode::kTransient;
  }
  std::string text = body.message.empty() ? Printable(response.body) : body.message;
  std::string message = fmt::format("{} answered HTTP {}", operation, status);
  if (!body.reason.empty()) message += fmt::format(" ({})", body.reason);
  if (!text.empty()) message += ": " + text;
  std::string permission = code == ErrorCode::kAccessDenied ? PermissionInMessage(body.message) : "";
  if (!permission.empty()) message += fmt::format("; missing permission {}", permission);
  if (!hint.empty()) message += "; " + hint;
  Error error(code, std::move(message));
  error.http_status = status;
  error.provider_code = permission.empty() ? body.reason : permission;
  error.request_id = std::string(response.Header("x-guploader-uploadid"));
  return error;
}

Executor::Executor(Options options) : options_(std::move(options)) {
  if (!options_.sleep) options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  if (!options_.random) options_.random = &DefaultRandom;
  if (!options_.steady_now) options_.steady_now = [] { return std::chrono::steady_clock::now(); };
}

Result<http::OutboundResponse> Executor::Attempt(http::OutboundRequest request, const CallOptions& call,
                                                 SteadyTime deadline, bool* delivered) const {
  const std::string host(UrlAuthority(request.url));
  auto context = [&](const Error& e) { return e.WithContext(fmt::format("{} {}", call.operation, host)); };
  if (options_.tokens) {
    Result<AccessToken> token = options_.tokens->Get();
    if (!token.ok()) {
      return token.error().WithContext(
          fmt::format("{} {}: access token from {}", call.operation, host, options_.tokens->Name()));
    }
    request.headers.emplace_back("Authorization", "Bearer " + token->token.Reveal());
  }
  Result<http::OutboundResponse> response = Error();
  if (call.sink) {
    auto sink = [&](std::string_view chunk) {
      if (delivered != nullptr) *delivered = true;
      return call.sink(chunk);
    };
    response = options_.transport->SendStreaming(request, deadline, sink);
  } else {
    response = options_.transport->Send(request, deadline);
  }
  if (!response.ok()) return context(response.error());
  int status = response->status;
  bool ok = (status >= 200 && status < 300) ||
            std::find(call.success_statuses.begin(), call.success_statuses.end(), status) !=
                call.success_statuses.end();
  if (ok) return response;
  return context(ClassifyGoogleResponse(*response, call.operation));
}

Result<http::OutboundResponse> Executor::SendOnce(http::OutboundRequest request,
                                                  const CallOptions& call) const {
  SteadyTime deadline = options_.steady_now() + options_.retry.attempt_timeout;
  return Attempt(std::move(request), call, deadline, nullptr);
}

Result<http::OutboundResponse> Executor::Call(const RequestFactory& factory, const CallOptions& call) const {
  const RetryPolicy& policy = options_.retry;
  const SteadyTime overall_deadline =
      options_.steady_now() + call.total_timeout.value_or(policy.total_timeout);
  const int max_attempts = std::max(1, policy.max_attempts);
  bool refreshed_after_401 = false;
  bool resend = true;  // false when before_retry failed: that failure is this attempt's

  for (int attempt = 1;; ++attempt) {
    Error error;
    bool delivered = false;
    if (attempt > 1 && call.before_retry) {
      Result<std::optional<http::OutboundResponse>> probe = call.before_retry();
      if (probe.ok() && probe->has_value()) return std::move(**probe);
      resend = probe.ok();
      if (!probe.ok()) error = probe.error();
    }
    if (resend) {
      SLUICE_ASSIGN_OR_RETURN(http::OutboundRequest request, factory());
      SteadyTime attempt_deadline =
          std::min(overall_deadline, options_.steady_now() + policy.attempt_timeout);
      Result<http::OutboundResponse> response =
          Attempt(std::move(request), call, attempt_deadline, &delivered);
      if (response.ok()) return response;
      error = response.error();
      if (error.code == ErrorCode::kDeadlineExceeded && attempt_deadline < overall_deadline) {
        error.code = ErrorCode::kTransient;  // this attempt's own time ran out; the call's is checked below
      }
    }
    resend = true;

    if (error.code == ErrorCode::kUnauthenticated && error.http_status == 401 && options_.tokens &&
        !refreshed_after_401) {
      refreshed_after_401 = true;
      spdlog::info("{}: access token from {} was refused (expired?); fetching a new one and retrying once",
                   call.operation, options_.tokens->Name());
      options_.tokens->Invalidate();
      --attempt;
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
    spdlog::warn("{} (attempt {}/{}); retrying in {} ms", error.ToString(), attempt, max_attempts,
                 delay.count());
    options_.sleep(delay);
  }
}

}  // namespace sluice::gcp
