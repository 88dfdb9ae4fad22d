// gcp::Executor: the one layer that sends Google API requests (token endpoint, metadata server, GCS JSON API)
// with retries — the Google counterpart of aws::Executor, on the same retry loop (cloud::RetryLoop: full-jitter
// exponential backoff, attempt and call deadlines). Per attempt it builds the request, adds "Authorization: Bearer
// <token>" from the token provider (when it has one), sends through HttpTransport, classifies the answer once
// (ClassifyGoogleResponse) and retries 429 / rateLimitExceeded / 408 / 5xx / resets. A 401 invalidates the
// cached token and retries once with a fresh one (a token that expired mid-upload).
//
// Usage:
//   gcp::Executor::Options o;
//   o.transport = transport;            // std::shared_ptr<http::HttpTransport>
//   o.tokens = token_provider;          // std::shared_ptr<gcp::TokenProvider>; null = unauthenticated
//   gcp::Executor gcs(std::move(o));
//   gcp::CallOptions call;
//   call.operation = "objects.insert";
//   Result<http::OutboundResponse> r = gcs.Call([&] { return BuildInsert(...); }, call);
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cloud/retry.h"
#include "common/error.h"
#include "common/result.h"
#include "http/transport.h"

namespace sluice::gcp {

class TokenProvider;

/// The shared retry policy and full-jitter backoff (cloud/retry.h), as for AWS and Azure.
using RetryPolicy = cloud::RetryPolicy;
using cloud::BackoffDelay;

/// Classifies a non-2xx Google answer. JSON API errors ({"error":{"code","message","errors":[{"reason"}]}})
/// and OAuth errors ({"error":"invalid_grant","error_description"}) are understood. provider_code is the
/// missing permission a 403 names (e.g. "storage.objects.create") when it names one, else the reason
/// ("rateLimitExceeded", "invalid_grant", …). request_id is x-guploader-uploadid when present.
Error ClassifyGoogleResponse(const http::OutboundResponse& response, std::string_view operation);

/// The permission a GCS denial message names ("… does not have storage.objects.create access …"), or "".
std::string PermissionInMessage(std::string_view message);

using RequestFactory = std::function<Result<http::OutboundRequest>()>;

struct CallOptions {
  std::string operation = "request";
  /// Statuses outside 2xx that are answers, not errors (resumable uploads: 308 Resume Incomplete).
  std::vector<int> success_statuses;
  /// Streaming download: 2xx bodies go here; returning false cancels (kCancelled). A failure after the first
  /// byte reached the sink is returned, not retried (resume with a Range request).
  std::function<bool(std::string_view)> sink;
  /// Called before each retry (after the backoff), e.g. to ask a resumable session how much it kept. Returns
  /// a response to finish the call with it (the upload turned out complete), nullopt to send the request
  /// again, or an error that counts as that attempt's failure.
  std::function<Result<std::optional<http::OutboundResponse>>()> before_retry;
  std::optional<std::chrono::milliseconds> total_timeout;
};

class Executor {
 public:
  struct Options {
    std::shared_ptr<http::HttpTransport> transport;
    /// Null = unauthenticated (the token endpoint itself; the metadata server).
    std::shared_ptr<TokenProvider> tokens;
    RetryPolicy retry;
    std::function<void(std::chrono::milliseconds)> sleep;
    std::function<double()> random;
    std::function<std::chrono::steady_clock::time_point()> steady_now;
  };

  explicit Executor(Options options);

  /// Sends with retries. Returns the 2xx (or success_statuses) response, or the last attempt's classified
  /// Error prefixed with the operation and host.
  Result<http::OutboundResponse> Call(const RequestFactory& factory, const CallOptions& call = {}) const;
  /// One authenticated attempt, classified, no retry (for the resumable status query inside before_retry).
  Result<http::OutboundResponse> SendOnce(http::OutboundRequest request, const CallOptions& call = {}) const;

  const std::shared_ptr<TokenProvider>& tokens() const { return options_.tokens; }

 private:
  Result<http::OutboundResponse> Attempt(http::OutboundRequest request, const CallOptions& call,
                                         std::chrono::steady_clock::time_point deadline,
                                         bool* delivered) const;
  Options options_;
  cloud::RetryLoop loop_;
};

/// "host[:port]" of an absolute URL.
std::string_view UrlAuthority(std::string_view url);

}  // namespace sluice::gcp
