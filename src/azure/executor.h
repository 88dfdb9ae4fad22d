// azure::Executor: the one layer that sends Azure requests (Entra ID token endpoint, Blob service) with retries —
// the Azure counterpart of aws::Executor and gcp::Executor, on the same loop (cloud::RetryLoop: full-jitter
// backoff, attempt and call deadlines). Per attempt it builds the request, and for storage requests adds
// x-ms-version (pinned) and x-ms-date, then authorises it: "Authorization: Bearer <token>", a Shared Key
// signature, or the SAS query. It sends through HttpTransport, classifies the answer once
// (ClassifyAzureResponse) and retries 408 / 429 / 5xx (ServerBusy, OperationTimedOut) / resets. A 401 to a
// bearer token invalidates it and retries once with a fresh one (a token that expired mid-upload).
//
//   azure::Executor::Options o;
//   o.transport = transport;
//   o.credential = azure::StorageCredential::SharedKey("account", key).value();   // nullopt: token endpoint
//   azure::Executor blob(std::move(o));
//   Result<http::OutboundResponse> r = blob.Call([&] { return BuildPutBlob(...); }, {.operation = "Put Blob"});
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "azure/credentials.h"
#include "cloud/retry.h"
#include "common/clock.h"
#include "common/result.h"
#include "http/transport.h"

namespace sluice::azure {

/// Classifies a non-2xx Azure answer: Storage errors (x-ms-error-code, or <Error><Code>…<Message> in the body)
/// and Entra ID OAuth errors ({"error":"invalid_client","error_description":"AADSTS7000215: …"}). The message
/// says what to check: the account key, the principal's secret, the role assignment, the container.
/// provider_code is the Azure code; request_id is x-ms-request-id. `credential` (when known) picks the advice for
/// a refused signature or token.
Error ClassifyAzureResponse(const http::OutboundResponse& response, std::string_view operation,
                            std::optional<StorageCredential::Kind> credential = std::nullopt);

using RequestFactory = std::function<Result<http::OutboundRequest>()>;

struct CallOptions {
  std::string operation = "request";
  /// Streaming download: 2xx bodies go here; returning false cancels (kCancelled). A failure after the first
  /// byte reached the sink is returned, not retried (resume with a Range request).
  std::function<bool(std::string_view)> sink;
  std::optional<std::chrono::milliseconds> total_timeout;
};

class Executor {
 public:
  struct Options {
    std::shared_ptr<http::HttpTransport> transport;
    /// How storage requests are authorised; nullopt = plain requests without x-ms-* headers (the token
    /// endpoint itself).
    std::optional<StorageCredential> credential;
    cloud::RetryPolicy retry;
    cloud::Sleeper sleep;
    std::function<double()> random;
    std::function<std::chrono::steady_clock::time_point()> steady_now;
    /// x-ms-date. Not owned.
    const Clock* clock = &SystemClock::Instance();
  };

  explicit Executor(Options options);

  /// Sends with retries. Returns the 2xx response, or the last attempt's classified Error prefixed with the
  /// operation and host. Thread-safe.
  Result<http::OutboundResponse> Call(const RequestFactory& factory, const CallOptions& call = {}) const;

  const Options& options() const { return options_; }

 private:
  Result<http::OutboundResponse> Attempt(http::OutboundRequest request, const CallOptions& call,
                                         std::chrono::steady_clock::time_point deadline,
                                         cloud::AttemptState& state) const;
  /// Adds x-ms-version, x-ms-date and the authorisation. An error here is final (no retry).
  Status Authorize(http::OutboundRequest& request) const;
  Options options_;
  cloud::RetryLoop loop_;
};

}  // namespace sluice::azure
