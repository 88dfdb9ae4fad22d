#include "aws/executor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <ctime>

#include "aws/errors.h"

namespace sluice::aws {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

std::string HostOf(std::string_view url) { return std::string(SplitUrl(url).authority); }

}  // namespace

std::optional<TimePoint> ParseHttpDate(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Executor::Executor(Options options)
    : options_(std::move(options)),
      loop_({options_.retry, options_.sleep, options_.random, options_.steady_now}) {
  if (options_.clock == nullptr) options_.clock = &SystemClock::Instance();
}

Result<http::OutboundResponse> Executor::Call(const RequestFactory& factory, const CallOptions& call) const {
  std::string payload_hash = call.payload_hash;  // hashed once per call, not per attempt
  cloud::RetryLoop::Call loop_call;
  loop_call.operation = call.operation;
  loop_call.total_timeout = call.total_timeout;
  std::string host;
  loop_call.attempt = [&](SteadyTime attempt_deadline,
                          cloud::AttemptState& state) -> Result<http::OutboundResponse> {
    Result<http::OutboundRequest> built = factory();
    if (!built.ok()) {
      state.final = true;
      return std::move(built).error();
    }
    http::OutboundRequest request = std::move(*built);
    host = HostOf(request.url);
    auto context = [&](const Error& e) { return e.WithContext(fmt::format("{} {}", call.operation, host)); };

    if (options_.credentials) {
      Result<Credentials> creds = options_.credentials->Get();
      if (!creds.ok()) {
        state.final = true;
        return creds.error().WithContext(
            fmt::format("{} {}: credentials from {}", call.operation, host, options_.credentials->Name()));
      }
      SigningOptions signing = options_.signing;
      if (payload_hash.empty() && request.body.data) payload_hash = HexEncode(Sha256(*request.body.data));
      signing.payload_hash = payload_hash;
      TimePoint now = options_.clock->Now() + std::chrono::seconds(clock_offset_s_.load());
      Status signed_ok = Sign(request, *creds, signing, now);
      if (!signed_ok.ok()) {
        state.final = true;
        return context(signed_ok.error());
      }
    }

    Result<http::OutboundResponse> response = Error();
    if (call.sink) {
      auto sink = [&](std::string_view chunk) {
        state.delivered = true;
        return call.sink(chunk);
      };
      response = options_.transport->SendStreaming(request, attempt_deadline, sink);
    } else {
      response = options_.transport->Send(request, attempt_deadline);
    }

    if (!response.ok()) return context(response.error());
    if (response->status >= 200 && response->status < 300) {
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
      return context(*hook_error);
    }
    Error error = context(ErrorFromResponse(*response, call.operation));
    if (error.code == ErrorCode::kClockSkew) {
      if (auto server_time = ParseHttpDate(response->Header("date"))) {
        auto offset = std::chrono::duration_cast<std::chrono::seconds>(*server_time - options_.clock->Now());
        clock_offset_s_.store(offset.count());
        spdlog::warn("{}: server clock differs from ours by {} s; signing with the server's time", call.operation,
                     offset.count());
      }
    }
    return error;
  };
  loop_call.refresh = [&](const Error& error) {
    if (error.code != ErrorCode::kExpiredToken || !options_.credentials) return false;
    spdlog::info("{} {}: credentials from {} expired; refreshing and retrying once", call.operation, host,
                 options_.credentials->Name());
    options_.credentials->Invalidate();
    return true;
  };
  return loop_.Run(loop_call);
}

}  // namespace sluice::aws
