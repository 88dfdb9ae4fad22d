// HttpTransport: the only code in Sluice that opens outbound network connections (libcurl underneath).
// It sends one request once: no retries here (they live in exactly one layer above, see aws/executor.h).
//
// Usage:
//   auto transport = http::MakeCurlTransport();          // one per process; thread-safe, pools connections
//   http::OutboundRequest req{"PUT", "https://b.s3.us-east-1.amazonaws.com/k%20ey", {{"Host", "..."}, ...},
//                             http::RequestBody::FromString(data)};
//   auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
//   Result<OutboundResponse> r = transport->Send(req, deadline);   // any HTTP status is ok() here
//
// Headers go on the wire exactly as given (the signer decided them): the transport adds only Host (when the
// caller did not give one) and Content-Length (from the body); never Accept, Content-Type, Expect or
// Transfer-Encoding. Error messages name the method and host, never headers, path or query (presigned URLs and
// Authorization carry credentials).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace sluice::http {

/// A request body that can be produced again from the start for each attempt (retries re-send it).
/// Either an in-memory string (shared, never copied per attempt) or a reader.
struct RequestBody {
  /// In-memory payload (the common case: parts and small objects).
  std::shared_ptr<const std::string> data;
  /// Streaming alternative: `open()` returns a fresh reader positioned at byte 0; the reader fills `buf` with up
  /// to `len` bytes and returns the count (0 at the end) or an error.
  std::function<std::function<Result<size_t>(char* buf, size_t len)>()> open;
  /// Exact length for Content-Length (required with `open`).
  uint64_t length = 0;

  static RequestBody FromString(std::string s) {
    RequestBody b;
    b.length = s.size();
    b.data = std::make_shared<const std::string>(std::move(s));
    return b;
  }
  bool empty() const { return !data && !open; }
};

struct OutboundRequest {
  std::string method;  // GET PUT POST DELETE HEAD
  std::string url;     // absolute, already percent-encoded as it must go on the wire
  /// Sent exactly as given and in this order (the signer decides them); the transport adds none except
  /// Content-Length (from the body) and never "Expect: 100-continue".
  std::vector<std::pair<std::string, std::string>> headers;
  RequestBody body;
};

struct OutboundResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  /// First header `name` (lower-case), or empty.
  std::string_view Header(std::string_view name) const;
};

struct TransportOptions {
  std::chrono::milliseconds connect_timeout{5000};
  /// Abort a transfer that moves no bytes in either direction for this long (a stalled peer), as kTransient.
  std::chrono::milliseconds idle_timeout{30000};
  /// CA bundle file for TLS verification; empty = the system default. Verification is always on unless
  /// `insecure_skip_verify` (tests with self-signed certificates only).
  std::string ca_bundle;
  bool insecure_skip_verify = false;
  /// Connections kept alive for reuse.
  int max_idle_connections = 16;
  /// Cap on a non-streamed response body (and on an error body in SendStreaming); larger fails kTooLarge.
  uint64_t max_response_bytes = uint64_t{1} << 31;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  /// Sends `request` and reads the whole response, or fails by `deadline`. Network failures (refused, reset,
  /// DNS, TLS, timeout) map to kUnavailable/kTransient/kDeadlineExceeded with a message naming the host — never
  /// the headers (they carry credentials). Any HTTP status is a success at this layer.
  virtual Result<OutboundResponse> Send(const OutboundRequest& request,
                                        std::chrono::steady_clock::time_point deadline) = 0;
  /// As Send, but streams the response body to `sink` (for large GETs); `sink` returning false aborts with
  /// kCancelled. Only 2xx bodies are streamed (the returned response then has an empty body); any other status's
  /// body (an error document, small) is returned in `body` instead so the caller can classify it.
  virtual Result<OutboundResponse> SendStreaming(const OutboundRequest& request,
                                                 std::chrono::steady_clock::time_point deadline,
                                                 const std::function<bool(std::string_view chunk)>& sink) = 0;
};

/// The libcurl transport. Thread-safe: a pool of easy handles on one libcurl share (DNS cache, connection cache,
/// TLS sessions), so a keep-alive connection is reused by whichever thread sends next to that host.
/// Honours the standard proxy variables (https_proxy/HTTPS_PROXY, http_proxy, NO_PROXY) as libcurl does.
/// TLS peer and host verification are on unless `insecure_skip_verify`.
std::unique_ptr<HttpTransport> MakeCurlTransport(const TransportOptions& options = {});

}  // namespace sluice::http
