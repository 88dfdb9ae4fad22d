// HttpTransport: the only code in Sluice that opens outbound network connections (libcurl underneath).
// It sends one request once: no retries here (they live in exactly one layer above, see aws/retry.h).
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
  /// Abort a transfer that moves no bytes for this long (a stalled peer).
  std::chrono::milliseconds idle_timeout{30000};
  /// CA bundle file for TLS verification; empty = the system default. Verification is always on unless
  /// `insecure_skip_verify` (tests with self-signed certificates only).
  std::string ca_bundle;
  bool insecure_skip_verify = false;
  /// Connections kept alive for reuse.
  int max_idle_connections = 16;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  /// Sends `request` and reads the whole response, or fails by `deadline`. Network failures (refused, reset,
  /// DNS, TLS, timeout) map to kUnavailable/kTransient/kDeadlineExceeded with a message naming the host — never
  /// the headers (they carry credentials). Any HTTP status is a success at this layer.
  virtual Result<OutboundResponse> Send(const OutboundRequest& request,
                                        std::chrono::steady_clock::time_point deadline) = 0;
  /// As Send, but streams the response body to `sink` (for large GETs); `sink` returning false aborts.
  /// The returned response has an empty body.
  virtual Result<OutboundResponse> SendStreaming(const OutboundRequest& request,
                                                 std::chrono::steady_clock::time_point deadline,
                                                 const std::function<bool(std::string_view chunk)>& sink) = 0;
};

/// The libcurl transport. Thread-safe: connections are pooled per thread (libcurl share + per-thread easy handles).
/// Honours the standard proxy variables (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) as libcurl does.
std::unique_ptr<HttpTransport> MakeCurlTransport(const TransportOptions& options = {});

}  // namespace sluice::http
