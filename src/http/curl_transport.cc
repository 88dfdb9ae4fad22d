// libcurl implementation of HttpTransport.
//
// Design: one CURLSH shares the DNS cache, the connection cache and TLS sessions between a pool of easy
// handles. A Send borrows a handle, resets it (curl_easy_reset keeps live connections and the share), sets every
// option it needs, performs, and returns the handle. So keep-alive connections are reused across threads and
// requests without per-thread state that would outlive the transport.
//
// What we deliberately do NOT do: CURLOPT_AWS_SIGV4 (Debian's 7.88 mis-signs; the aws module signs), setting
// CURLOPT_PROXY/NOPROXY (that would override the proxy environment variables libcurl honours by default),
// following redirects (an S3 301/307 is an error the caller must see, and a redirect would leak the signed
// headers to another host), logging headers (they carry Authorization and session tokens).
#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <mutex>
#include <optional>

#include "http/transport.h"
#include "common/strings.h"

namespace sluice::http {
namespace {

using SteadyClock = std::chrono::steady_clock;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

/// "host[:port]" of an absolute URL, without any userinfo — the only part of a URL that error messages show
/// (paths and queries of presigned URLs carry signatures).
std::string HostOf(std::string_view url) {
  size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string_view authority = url.substr(start, end == std::string_view::npos ? url.size() - start : end - start);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  return std::string(authority);
}

struct CurlSlist {
  curl_slist* list = nullptr;
  ~CurlSlist() { curl_slist_free_all(list); }
  void Append(const std::string& line) { list = curl_slist_append(list, line.c_str()); }
};

/// Per-transfer state shared with the libcurl callbacks.
struct Transfer {
  const OutboundRequest* request = nullptr;
  // Upload side.
  uint64_t offset = 0;                                          // in-memory body position
  std::function<Result<size_t>(char*, size_t)> reader;          // streaming body reader
  std::optional<Error> body_error;                              // the reader failed
  // Download side.
  CURL* easy = nullptr;
  OutboundResponse* response = nullptr;
  const std::function<bool(std::string_view)>* sink = nullptr;  // SendStreaming only
  uint64_t max_body = 0;
  bool too_large = false;
  bool sink_aborted = false;
  // Stall detection: the last time any byte moved in either direction.
  std::chrono::milliseconds idle_timeout{0};
  SteadyClock::time_point last_progress;
  curl_off_t last_dl = 0;
  curl_off_t last_ul = 0;
  bool stalled = false;
};

/// Our own stall detector: libcurl's LOW_SPEED_* averages over a ~5 s window, so after a burst it fires seconds
/// late; this aborts once nothing has moved for `idle_timeout` (checked about once a second by libcurl).
int ProgressCallback(void* userdata, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(userdata);
  auto now = SteadyClock::now();
  if (dlnow != t->last_dl || ulnow != t->last_ul) {
    t->last_dl = dlnow;
    t->last_ul = ulnow;
    t->last_progress = now;
    return 0;
  }
  if (now - t->last_progress >= t->idle_timeout) {
    t->stalled = true;
    return 1;  // CURLE_ABORTED_BY_CALLBACK
  }
  return 0;
}

size_t ReadCallback(char* buffer, size_t size, size_t nitems, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  size_t capacity = size * nitems;
  const RequestBody& body = t->request->body;
  if (body.data) {
    const std::string& data = *body.data;
    if (t->offset >= data.size()) return 0;
    size_t n = std::min<uint64_t>(capacity, data.size() - t->offset);
    std::memcpy(buffer, data.data() + t->offset, n);
    t->offset += n;
    return n;
  }
  if (!t->reader) {
    if (!body.open) return 0;
    t->reader = body.open();
  }
  Result<size_t> n = t->reader(buffer, capacity);
  if (!n.ok()) {
    t->body_error = n.error();
    return CURL_READFUNC_ABORT;
  }
  return *n;
}

/// libcurl rewinds the body when it re-sends a request on a fresh connection (a kept-alive connection the peer
/// had closed). In-memory bodies seek anywhere; streams can only restart from 0 (RequestBody::open re-creates).
int SeekCallback(void* userdata, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(userdata);
  if (origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  const RequestBody& body = t->request->body;
  if (body.data) {
    if (offset < 0 || static_cast<uint64_t>(offset) > body.data->size()) return CURL_SEEKFUNC_FAIL;
    t->offset = static_cast<uint64_t>(offset);
    return CURL_SEEKFUNC_OK;
  }
  if (offset != 0 || !body.open) return CURL_SEEKFUNC_CANTSEEK;
  t->reader = body.open();
  return CURL_SEEKFUNC_OK;
}

size_t HeaderCallback(char* buffer, size_t size, size_t nitems, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  size_t n = size * nitems;
  std::string_view line(buffer, n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.starts_with("HTTP/")) {
    // A new status line: an interim 1xx response or the final one. Keep only the final response's headers.
    t->response->headers.clear();
    return n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  t->response->headers.emplace_back(AsciiLower(line.substr(0, colon)), std::string(value));
  return n;
}

size_t WriteCallback(char* data, size_t size, size_t nmemb, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  size_t n = size * nmemb;
  if (t->sink != nullptr) {
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      if (!(*t->sink)(std::string_view(data, n))) {
        t->sink_aborted = true;
        return 0;  // CURLE_WRITE_ERROR
      }
      return n;
    }
  }
  if (t->response->body.size() + n > t->max_body) {
    t->too_large = true;
    return 0;
  }
  t->response->body.append(data, n);
  return n;
}

/// Maps a libcurl failure to our error classes. Connect-phase failures are kUnavailable (nothing was sent, the
/// peer may come back), mid-transfer ones kTransient (the request may or may not have been applied; callers
/// retry only idempotent requests, which all AWS requests Sluice sends are).
Error MapCurlError(CURLcode code, const OutboundRequest& request, const char* errbuf,
                   SteadyClock::time_point deadline) {
  std::string host = HostOf(request.url);
  std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(code));
  auto make = [&](ErrorCode ec, std::string_view what) {
    return Error(ec, fmt::format("{} {}: {} ({})", request.method, host, what, detail));
  };
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return make(ErrorCode::kUnavailable,
                  "cannot resolve host (check the host name, the server's DNS and any proxy it must use)");
    case CURLE_COULDNT_CONNECT:
      return make(ErrorCode::kUnavailable,
                  "cannot connect (check that the service is up and that the server may reach it: firewall, "
                  "egress rules, proxy)");
    case CURLE_OPERATION_TIMEDOUT:
      // The whole-request timeout is the deadline; the connect timeout is the other source.
      if (SteadyClock::now() >= deadline - std::chrono::milliseconds(5)) {
        return make(ErrorCode::kDeadlineExceeded, "request deadline exceeded");
      }
      return make(ErrorCode::kTransient, "timed out (connect timeout or a stalled transfer)");
    case CURLE_SSL_CONNECT_ERROR:
      return make(ErrorCode::kUnavailable, "TLS handshake failed");
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      // Retrying cannot fix a certificate the CA bundle does not trust.
      return make(ErrorCode::kPermanent, "TLS certificate verification failed (check the CA bundle)");
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_SHUTDOWN_FAILED:
      return make(ErrorCode::kTransient, "connection failed during the transfer");
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Error(ErrorCode::kInvalidArgument, fmt::format("{} {}: malformed URL", request.method, host));
    default:
      return make(ErrorCode::kTransient, "transfer failed");
  }
}

class CurlTransport final : public HttpTransport {
 public:
  explicit CurlTransport(const TransportOptions& options) : options_(options) {
    GlobalInitOnce();
    share_ = curl_share_init();
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &CurlTransport::Lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &CurlTransport::Unlock);
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  }

  ~CurlTransport() override {
    // Easy handles first: they reference the share.
    for (CURL* easy : idle_) curl_easy_cleanup(easy);
    curl_share_cleanup(share_);
  }

  Result<OutboundResponse> Send(const OutboundRequest& request, SteadyClock::time_point deadline) override {
    return Perform(request, deadline, nullptr);
  }

  Result<OutboundResponse> SendStreaming(const OutboundRequest& request, SteadyClock::time_point deadline,
                                         const std::function<bool(std::string_view)>& sink) override {
    return Perform(request, deadline, &sink);
  }

 private:
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* userptr) {
    static_cast<CurlTransport*>(userptr)->locks_[static_cast<size_t>(data) % kLockCount].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* userptr) {
    static_cast<CurlTransport*>(userptr)->locks_[static_cast<size_t>(data) % kLockCount].unlock();
  }

  CURL* Acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mu_);
      if (!idle_.empty()) {
        CURL* easy = idle_.back();
        idle_.pop_back();
        return easy;
      }
    }
    return curl_easy_init();
  }

  void Release(CURL* easy) {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (idle_.size() < static_cast<size_t>(std::max(1, options_.max_idle_connections))) {
      idle_.push_back(easy);
      return;
    }
    curl_easy_cleanup(easy);
  }

  Result<OutboundResponse> Perform(const OutboundRequest& request, SteadyClock::time_point deadline,
                                   const std::function<bool(std::string_view)>* sink) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (remaining.count() <= 0) {
      return Error(ErrorCode::kDeadlineExceeded,
                   fmt::format("{} {}: deadline passed before sending", request.method, HostOf(request.url)));
    }
    if (!request.body.empty() && request.body.data == nullptr && request.body.length == 0 &&
        !request.body.open) {
      return InvalidArgument("request body without data or reader");
    }

    CURL* easy = Acquire();
    if (easy == nullptr) return Internal("curl_easy_init failed");
    curl_easy_reset(easy);

    OutboundResponse response;
    Transfer transfer;
    transfer.request = &request;
    transfer.easy = easy;
    transfer.response = &response;
    transfer.sink = sink;
    transfer.max_body = options_.max_response_bytes;
    char errbuf[CURL_ERROR_SIZE] = {0};

    curl_easy_setopt(easy, CURLOPT_SHARE, share_);
    curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    // The path as built: object keys may hold "." and ".." segments (a key "a/../b" is its own object), which
    // libcurl would otherwise resolve away, sending the request for another object, or another bucket.
    curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM-based DNS timeouts
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXCONNECTS, static_cast<long>(std::max(1, options_.max_idle_connections)));
    // Deadline for the whole exchange; connect timeout and stall detection inside it.
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min(remaining, options_.connect_timeout).count()));
    transfer.idle_timeout = options_.idle_timeout;
    transfer.last_progress = SteadyClock::now();
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &ProgressCallback);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &transfer);
    // TLS: verification always on unless explicitly disabled for tests.
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, options_.insecure_skip_verify ? 0L : 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, options_.insecure_skip_verify ? 0L : 2L);
    if (!options_.ca_bundle.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_bundle.c_str());

    // Headers exactly as given. "Name:" removes a header libcurl would add on its own; "Name;" sends an empty one.
    CurlSlist headers;
    bool has_content_type = false;
    for (const auto& [name, value] : request.headers) {
      if (EqualsIgnoreCase(name, "content-type")) has_content_type = true;
      headers.Append(value.empty() ? name + ";" : name + ": " + value);
    }
    headers.Append("Expect:");  // no 100-continue round trip
    headers.Append("Accept:");
    if (!has_content_type) headers.Append("Content-Type:");  // libcurl adds a form type to POSTs otherwise
    headers.Append("Transfer-Encoding:");                    // lengths are always known: Content-Length
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers.list);

    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &HeaderCallback);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &WriteCallback);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);

    const bool has_body = !request.body.empty();
    if (request.method == "HEAD") {
      curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (has_body || request.method == "PUT" || request.method == "POST") {
      uint64_t length = request.body.data ? request.body.data->size() : request.body.length;
      curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(length));
      curl_easy_setopt(easy, CURLOPT_READFUNCTION, &ReadCallback);
      curl_easy_setopt(easy, CURLOPT_READDATA, &transfer);
      curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, &SeekCallback);
      curl_easy_setopt(easy, CURLOPT_SEEKDATA, &transfer);
      if (request.method != "PUT") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    } else if (request.method != "GET") {
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }

    CURLcode code = curl_easy_perform(easy);
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    // Detach per-request pointers before the handle goes back to the pool.
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, nullptr);
    Release(easy);

    if (code != CURLE_OK) {
      if (transfer.body_error) {
        return transfer.body_error->WithContext(
            fmt::format("{} {}: reading the request body", request.method, HostOf(request.url)));
      }
      if (transfer.sink_aborted) {
        return Error(ErrorCode::kCancelled,
                     fmt::format("{} {}: the response consumer stopped the download", request.method,
                                 HostOf(request.url)));
      }
      if (transfer.too_large) {
        return Error(ErrorCode::kTooLarge, fmt::format("{} {}: response body larger than {} bytes",
                                                       request.method, HostOf(request.url), transfer.max_body));
      }
      if (transfer.stalled) {
        return Error(ErrorCode::kTransient,
                     fmt::format("{} {}: no data moved for {} ms (stalled peer)", request.method,
                                 HostOf(request.url), options_.idle_timeout.count()));
      }
      return MapCurlError(code, request, errbuf, deadline);
    }
    response.status = static_cast<int>(status);
    return response;
  }

  static constexpr size_t kLockCount = 16;  // > CURL_LOCK_DATA_LAST in 7.88

  TransportOptions options_;
  CURLSH* share_ = nullptr;
  std::array<std::mutex, kLockCount> locks_;
  std::mutex pool_mu_;
  std::vector<CURL*> idle_;
};

}  // namespace

std::unique_ptr<HttpTransport> MakeCurlTransport(const TransportOptions& options) {
  return std::make_unique<CurlTransport>(options);
}

}  // namespace sluice::http
