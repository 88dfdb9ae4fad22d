// The inbound HTTP/1.1 server (Boost.Beast over Asio, optional TLS via OpenSSL), with a small router.
//
// Threading: `threads` I/O threads run the io_context; a handler runs on one of them and may block (store
// writes block until the WAL is synced). Handlers must be thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace sluice::http {

/// Case-insensitive header map (names compared ASCII-case-insensitively).
class Headers {
 public:
  void Add(std::string name, std::string value);
  void Set(std::string name, std::string value);
  /// First value of `name`, or nullopt.
  std::optional<std::string_view> Get(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

struct Request {
  std::string method;        // "GET", "POST", ...
  std::string target;        // raw request target, e.g. "/track?data=...&verbose=1"
  std::string path;          // percent-decoded path without the query
  /// Query parameters in order, percent-decoded ('+' decoded as space, as browsers and SDKs send).
  std::vector<std::pair<std::string, std::string>> query;
  Headers headers;
  std::string body;          // raw body as received (not decompressed)
  std::string remote_ip;     // peer address, no port
  bool tls = false;
  /// Captures of `{name}` segments of the matched route.
  std::map<std::string, std::string, std::less<>> path_params;

  /// First query parameter named `name`.
  std::optional<std::string_view> Query(std::string_view name) const;
};

/// A streamed body: called repeatedly; appends the next chunk to `out` and returns true while more follows,
/// false once finished (the final call may still append). An error aborts the response (the connection is
/// closed, so the client sees a truncated chunked body rather than a silently short one).
/// It must not block waiting for its data: a producer with nothing ready yet returns true with `out` empty,
/// and the server asks again after a short wait (1 ms, doubling to 20 ms while nothing comes), its I/O thread
/// free for other connections meanwhile.
using BodyProducer = std::function<Result<bool>(std::string& out)>;

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  /// When set, the body is streamed with chunked transfer encoding and `body` is ignored.
  BodyProducer stream;

  static Response Json(int status, std::string json);
  static Response Text(int status, std::string text, std::string_view content_type = "text/plain; charset=utf-8");
};

using Handler = std::function<Response(Request&)>;

/// Matches (method, path) to handlers. Patterns are literal segments or `{name}` captures:
/// "/api/app/projects/{id}/connectors". A path that matches no route gives 404, a known path with another
/// method 405 (both with a JSON error body).
///
/// CORS (Fetch standard): only paths opened with AllowCrossOrigin answer browsers on other origins. There
/// every answer — errors, 429 and 503 included, so a browser SDK can see them and retry — carries
/// Access-Control-Allow-Origin (the request's Origin echoed, with Allow-Credentials, as mixpanel-browser
/// sends cookies-mode XHR; `*` without an Origin), and an OPTIONS preflight is answered 204 with the path's
/// methods, the requested headers and a Max-Age. Every other path gets no CORS header at all, and OPTIONS
/// there stays a 405, so browsers keep the admin and management APIs closed to other origins.
class Router {
 public:
  void Add(std::string_view method, std::string_view pattern, Handler handler);
  /// Opens `pattern` (same syntax as Add) to cross-origin browsers. May name a path before its routes are
  /// added; a preflight allows the methods of whatever routes the path has.
  void AllowCrossOrigin(std::string_view pattern);
  /// Route label for metrics: the matched pattern, or "unmatched".
  Response Dispatch(Request& request, std::string* route_label = nullptr) const;
  /// For answers the server gives before routing (413): adds the CORS headers Dispatch would add when
  /// `target` (the raw request target) is on a cross-origin path, so a browser SDK can read the status too.
  void AddCrossOriginHeaders(std::string_view target, std::string_view origin,
                             Headers& response_headers) const;

  /// How long a browser may cache a preflight answer (Chromium caps it at 2 h, Firefox at 24 h).
  static constexpr int kCorsMaxAgeSeconds = 86400;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
    std::string pattern;  // as registered, the metrics label
    int literal_segments = 0;  // more literal segments win: "/a/list" beats "/a/{id}"
  };
  Response DispatchRoute(Request& request, const std::vector<std::string_view>& segments,
                         std::string* route_label) const;
  Response Preflight(const Request& request, const std::vector<std::string_view>& segments,
                     std::string* route_label) const;
  bool CrossOriginAllowed(const std::vector<std::string_view>& segments) const;

  std::vector<Route> routes_;
  std::vector<std::vector<std::string>> cross_origin_patterns_;  // segments, as in Route
};

/// What the connection limit did, updated by the server as it happens (ServerOptions::connection_stats).
struct ConnectionStats {
  /// Connections open now.
  std::atomic<uint64_t> open{0};
  /// Of those, idle: between requests, or not yet sent their first.
  std::atomic<uint64_t> idle{0};
  /// Idle connections closed to make room for a new one at max_connections.
  std::atomic<uint64_t> closed_idle_at_limit{0};
  /// Times the server had to stop accepting because every connection was busy at max_connections.
  std::atomic<uint64_t> accept_paused_at_limit{0};
};

struct ServerOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;  // 0 picks a free port (see Server::port())
  int threads = 2;
  /// Largest request body accepted; larger ones get 413 before the body is read (chunked uploads as soon as
  /// they pass the limit). Request line + headers are limited to 64 KiB (431), which admits /track GET targets
  /// of well over 32 KB.
  size_t max_body_bytes = 16 * 1000 * 1000;
  /// How long a keep-alive connection may sit between requests.
  std::chrono::seconds idle_timeout{75};
  /// Slowloris bound: a request (and, on a new connection, the TLS handshake) must arrive completely within
  /// this time of its first byte; each response write gets the same bound.
  std::chrono::seconds request_timeout{60};
  /// Added to the I/O threads' nice value (Linux, per thread; 0 = unchanged). The embedded store's flush thread
  /// must not queue behind request threads on a busy core: every writer stalls until a full memtable is flushed.
  int worker_niceness = 0;
  /// Each I/O thread allocates, touches and frees this much of its malloc heap before serving, so the first
  /// requests after a start do not pay the kernel's page faults for their buffers (request bodies, inflated
  /// payloads, parser indexes, write batches: ~8 MB per thread for a 2000-event batch). Useful only when the
  /// process keeps freed memory (common/process_memory.h, KeepFreedMemory); 0 = off.
  size_t worker_heap_warmup_bytes = 0;
  /// Most connections open at once. At the limit the server first closes the idle connection used least
  /// recently (by when its latest request began, or it connected; idle: a keep-alive connection between
  /// requests, or one that has not started its first request:
  /// nothing is in flight on either, and HTTP/1.1 lets a server close such a connection at any time); when
  /// every connection is in the middle of a request, it accepts nothing more until one ends, and new
  /// connections wait in the kernel's listen queue (request_timeout bounds how long a request may hold its
  /// connection). Each connection costs a file descriptor, so the process's descriptor limit must leave room
  /// for it.
  size_t max_connections = 10000;
  /// Optional: the server counts here what the connection limit did (e.g. for /metrics).
  std::shared_ptr<ConnectionStats> connection_stats;
  /// Runs on each I/O thread before its heap warm-up and before it serves: per-thread state the handlers keep
  /// (e.g. the ingest parser's buffers, ingest::ReserveThreadParser) sized once, ahead of the warm heap.
  std::function<void()> worker_start;
  /// TLS when both are set (PEM files).
  std::string tls_cert_file;
  std::string tls_key_file;
};

/// Observes every finished request, e.g. for metrics. Called on the I/O thread after the response was written
/// (or failed). Requests the server refuses before routing (400 malformed, 413, 431) report route "unmatched"
/// and 0 bytes; connections that time out or reset before a complete request report nothing. `method` is one
/// of the standard methods (GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE, CONNECT) or "other", and
/// `route` a registered pattern or "unmatched", so labels built from them stay a small, fixed set.
using RequestObserver = std::function<void(std::string_view route, std::string_view method, int status,
                                           double seconds, size_t bytes_in)>;

class Server {
 public:
  /// Binds and listens (so port() is known); serving starts with Start(). Fails with a clear message when the
  /// address is in use or the TLS files cannot be loaded.
  static Result<std::unique_ptr<Server>> Create(const ServerOptions& options, std::shared_ptr<const Router> router,
                                                RequestObserver observer = {});
  virtual ~Server() = default;
  virtual uint16_t port() const = 0;
  /// Starts the I/O threads and returns.
  virtual void Start() = 0;
  /// Stops accepting, lets in-flight requests finish (up to `grace`), then closes every connection and joins
  /// the threads. Idle keep-alive connections close at once; a request being read or handled completes and is
  /// answered with `Connection: close`. A handler still blocked after the grace period delays the join until it
  /// returns (a thread cannot be interrupted). Call once, from a thread that is not an I/O thread (e.g. the one
  /// waiting for SIGTERM) — never from a handler. Later calls, and the destructor, do nothing more.
  virtual void Shutdown(std::chrono::milliseconds grace) = 0;
};

// ---- Request decoding helpers shared by the API handlers ----------------------------------------------------

/// Parses application/x-www-form-urlencoded text into ordered pairs ('+' is space, %XX decoded).
std::vector<std::pair<std::string, std::string>> ParseForm(std::string_view body);
/// Percent-decodes `text` ('+' as space when plus_as_space). nullopt on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_as_space);

struct BasicCredentials {
  std::string user;
  std::string password;
};
/// Parses "Authorization: Basic base64(user:password)". nullopt when absent or malformed.
std::optional<BasicCredentials> ParseBasicAuth(const Headers& headers);
/// Parses "Authorization: Bearer <token>".
std::optional<std::string> ParseBearer(const Headers& headers);

/// The JSON error body the router and server use: {"error":"<message>","status":"error"}.
std::string JsonErrorBody(std::string_view message);

}  // namespace sluice::http
