// aws::Executor: the one layer that sends AWS requests with retries (the shared cloud::RetryLoop). Per attempt it builds the request (bodies
// are re-creatable), gets credentials, signs with the current time, sends through HttpTransport with a deadline,
// classifies the response (aws/errors.h) and, for retryable classes, backs off with full jitter and tries again —
// re-signing every attempt. On ExpiredToken it invalidates the credentials provider and retries once.
//
// Usage (what the S3 client does):
//   aws::Executor::Options o;
//   o.transport = transport;                       // std::shared_ptr<http::HttpTransport>
//   o.credentials = assume_role_provider;          // std::shared_ptr<aws::CredentialsProvider>
//   o.signing = aws::SigningOptions::S3("eu-west-1");
//   aws::Executor s3(std::move(o));
//
//   aws::CallOptions call;
//   call.operation = "CompleteMultipartUpload";
//   call.error_in_200_body = true;                 // S3 may answer 200 with an <Error> document
//   Result<http::OutboundResponse> r = s3.Call([&]() -> Result<http::OutboundRequest> {
//     return http::OutboundRequest{"POST", url + "?uploadId=" + aws::UriEncode(id, true), {},
//                                  http::RequestBody::FromString(xml)};
//   }, call);
//   // r: a 2xx response, or an Error with class, AWS code, request id and HTTP status.
//
// Streaming GET: set call.sink; 2xx bytes go to the sink. A failure after the first byte reached the sink is
// returned (not retried), since the sink cannot un-see bytes: resume with a Range request.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "aws/credentials.h"
#include "aws/retry.h"
#include "aws/sigv4.h"
#include "common/clock.h"
#include "common/result.h"
#include "http/transport.h"

namespace sluice::aws {

/// Builds the request for one attempt. Called again for every retry, so it must produce the same request
/// (RequestBody is shared/re-openable, so this is cheap). Headers to sign go in; signing headers come out.
using RequestFactory = std::function<Result<http::OutboundRequest>()>;

struct CallOptions {
  /// Operation name for messages and logs, e.g. "PutObject".
  std::string operation = "request";
  /// Payload hash for signing: kUnsignedPayload, a precomputed hex SHA-256 (required for streamed bodies), or
  /// empty to hash the in-memory body (once per call, not per attempt).
  std::string payload_hash;
  /// S3 CompleteMultipartUpload, CopyObject, UploadPartCopy: a 200 response whose body is an <Error> document
  /// is that error (and retried when its class is retryable).
  bool error_in_200_body = false;
  /// Optional extra check of a 2xx response; returning an Error makes the attempt fail with it (retried when
  /// its class is retryable). For operation-specific rules the executor cannot know.
  std::function<std::optional<Error>(const http::OutboundResponse&)> check_response;
  /// Streaming download: 2xx bodies go here instead of response.body; returning false cancels (kCancelled).
  std::function<bool(std::string_view)> sink;
  /// Overrides RetryPolicy::total_timeout for this call.
  std::optional<std::chrono::milliseconds> total_timeout;
};

class Executor {
 public:
  struct Options {
    std::shared_ptr<http::HttpTransport> transport;
    /// Null = send unsigned (STS AssumeRoleWithWebIdentity authenticates with the token in the body).
    std::shared_ptr<CredentialsProvider> credentials;
    SigningOptions signing;
    RetryPolicy retry;
    /// Signing time. Not owned; must outlive the executor.
    const Clock* clock = &SystemClock::Instance();
    /// Backoff sleeps; default std::this_thread::sleep_for.
    Sleeper sleep;
    /// Uniform [0,1) draws for jitter; default a thread-local PRNG.
    std::function<double()> random;
    /// Monotonic time for deadlines; default steady_clock::now. Tests advance it from their sleeper.
    std::function<std::chrono::steady_clock::time_point()> steady_now;
  };

  explicit Executor(Options options);

  /// Sends with retries (see the file comment). Thread-safe; one Executor serves all threads.
  /// Returns the 2xx response, or the last attempt's classified Error (message prefixed with the operation and
  /// host; a "gave up after N attempts" note when retries ran out).
  Result<http::OutboundResponse> Call(const RequestFactory& factory, const CallOptions& call = {}) const;

  const SigningOptions& signing() const { return options_.signing; }
  /// Offset applied to the clock when signing, learnt from the server's Date header after a clock-skew error.
  std::chrono::seconds clock_offset() const { return std::chrono::seconds(clock_offset_s_.load()); }

 private:
  Options options_;
  cloud::RetryLoop loop_;
  mutable std::atomic<int64_t> clock_offset_s_{0};
};

/// Parses an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT"); nullopt when malformed.
std::optional<TimePoint> ParseHttpDate(std::string_view text);

}  // namespace sluice::aws
