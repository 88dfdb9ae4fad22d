#include "gcp/executor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <regex>

#include "cloud/provider_error.h"
#include "gcp/credentials.h"

namespace sluice::gcp {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

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
    if (auto oauth = cloud::ParseOAuthError(body)) {
      out.reason = std::move(oauth->error);
      out.message = std::move(oauth->description);
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


}  // namespace

std::string_view UrlAuthority(std::string_view url) {
  size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  return rest.substr(0, rest.find_first_of("/?#"));
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
  std::string permission = code == ErrorCode::kAccessDenied ? PermissionInMessage(body.message) : "";
  Error error = cloud::AnsweredError(code, operation, response, body.reason, body.message,
                                     {permission.empty() ? "" : "missing permission " + permission, hint},
                                     "x-guploader-uploadid");
  if (!permission.empty()) error.provider_code = permission;
  return error;
}

namespace {

cloud::RetryLoop MakeLoop(const Executor::Options& o) {
  return cloud::RetryLoop({o.retry, o.sleep, o.random, o.steady_now});
}

}  // namespace

Executor::Executor(Options options) : options_(std::move(options)), loop_(MakeLoop(options_)) {}

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
  SteadyTime deadline = loop_.Now() + options_.retry.attempt_timeout;
  return Attempt(std::move(request), call, deadline, nullptr);
}

Result<http::OutboundResponse> Executor::Call(const RequestFactory& factory, const CallOptions& call) const {
  cloud::RetryLoop::Call loop_call;
  loop_call.operation = call.operation;
  loop_call.total_timeout = call.total_timeout;
  loop_call.before_retry = call.before_retry;
  loop_call.attempt = [&](SteadyTime deadline, cloud::AttemptState& state) -> Result<http::OutboundResponse> {
    Result<http::OutboundRequest> request = factory();
    if (!request.ok()) {
      state.final = true;
      return std::move(request).error();
    }
    return Attempt(std::move(*request), call, deadline, &state.delivered);
  };
  // A token that expired mid-upload: fetch a new one and retry once.
  loop_call.refresh = [&](const Error& error) {
    if (error.code != ErrorCode::kUnauthenticated || error.http_status != 401 || !options_.tokens) return false;
    spdlog::info("{}: access token from {} was refused (expired?); fetching a new one and retrying once",
                 call.operation, options_.tokens->Name());
    options_.tokens->Invalidate();
    return true;
  };
  return loop_.Run(loop_call);
}

}  // namespace sluice::gcp
