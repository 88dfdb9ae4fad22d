#include "support/fault_proxy.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include <fmt/format.h>

namespace sluice::testing {
namespace {

constexpr auto kIdleClientTimeout = std::chrono::seconds(120);
constexpr auto kUpstreamTimeout = std::chrono::seconds(120);
constexpr size_t kMaxLogEntries = 1000;
constexpr int kMaxRequestsPerConnection = 100000;

std::string S3ErrorResponse(int status, std::string_view reason, std::string_view code, std::string_view message) {
  std::string body = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>"
      "<RequestId>FAULTPROXY{}</RequestId></Error>",
      code, message, status);
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/xml\r\nx-amz-request-id: FAULTPROXY{}\r\n"
                     "Content-Length: {}\r\n\r\n{}",
                     status, reason, status, body.size(), body);
}

// Azure Storage's error document: the message carries RequestId and Time lines, as Azure's do.
std::string AzureErrorResponse(int status, std::string_view reason, std::string_view code, std::string_view message) {
  std::string body = fmt::format(
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}\n"
      "RequestId:faultproxy-{}\nTime:2026-01-01T00:00:00.0000000Z</Message></Error>",
      code, message, status);
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/xml\r\nx-ms-error-code: {}\r\n"
                     "x-ms-request-id: faultproxy-{}\r\nx-ms-version: 2021-12-02\r\nContent-Length: {}\r\n\r\n{}",
                     status, reason, code, status, body.size(), body);
}

std::string OpenSslErrors() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string("no OpenSSL error queued") : out;
}

int RemainingMs(SteadyTime deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// Waits until `fd` is ready for what OpenSSL asked (SSL_ERROR_WANT_READ / WANT_WRITE), or the deadline.
Status WaitFor(int fd, int ssl_error, SteadyTime deadline) {
  pollfd p{fd, static_cast<short>(ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
  for (int spins = 0; spins < 100'000; ++spins) {
    int ms = RemainingMs(deadline);
    if (ms == 0) return Error(ErrorCode::kDeadlineExceeded, "timed out on a TLS connection");
    int rc = ::poll(&p, 1, std::min(ms, 1000));
    if (rc > 0) return OkStatus();
    if (rc < 0 && errno != EINTR) return Error(ErrorCode::kUnavailable, fmt::format("poll: {}", std::strerror(errno)));
  }
  return Error(ErrorCode::kInternal, "poll loop did not terminate");
}

// A HEAD answer as received: its Content-Length is the resource's size, not that of the (absent) body.
std::string SerializeHeadAnswer(const WireMessage& m) {
  std::string out = m.start_line + "\r\n";
  for (const auto& [k, v] : m.headers) out += k + ": " + v + "\r\n";
  return out + "\r\n";
}

void ResetConnection(int fd) {
  // SO_LINGER with a zero timeout makes close() send RST instead of FIN.
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

std::string RequestTarget(const WireMessage& m) {
  auto a = m.start_line.find(' ');
  auto b = m.start_line.rfind(' ');
  if (a == std::string::npos || b <= a) return {};
  return m.start_line.substr(a + 1, b - a - 1);
}

}  // namespace

// OpenSSL contexts: one to serve clients (the given certificate), one to reach the upstream (the given CA).
struct FaultProxy::Tls {
  SSL_CTX* server = nullptr;
  SSL_CTX* client = nullptr;
  ~Tls() {
    if (server != nullptr) SSL_CTX_free(server);
    if (client != nullptr) SSL_CTX_free(client);
  }
};

// One side of an exchange: a socket, or TLS over a non-blocking socket (every wait bounded by a deadline).
class FaultProxy::Conn {
 public:
  explicit Conn(Fd fd) : fd_(std::move(fd)) {}
  ~Conn() {
    if (ssl_ != nullptr) SSL_free(ssl_);  // no close_notify: the socket just closes (or resets)
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  int fd() const { return fd_.get(); }

  /// TLS handshake as the server (`accept`) or the client; on the client side the peer must present a
  /// certificate for 127.0.0.1 that `ctx`'s CA file vouches for.
  Status Handshake(SSL_CTX* ctx, bool accept, SteadyTime deadline) {
    ::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
    ssl_ = SSL_new(ctx);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_.get()) != 1) {
      return Error(ErrorCode::kInternal, "SSL_new: " + OpenSslErrors());
    }
    if (!accept && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1") != 1) {
      return Error(ErrorCode::kInternal, "X509_VERIFY_PARAM_set1_ip_asc: " + OpenSslErrors());
    }
    for (int spins = 0; spins < 10'000; ++spins) {
      ERR_clear_error();
      int rc = accept ? SSL_accept(ssl_) : SSL_connect(ssl_);
      if (rc == 1) return OkStatus();
      int err = SSL_get_error(ssl_, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        std::string why = OpenSslErrors();
        if (!accept && SSL_get_verify_result(ssl_) != X509_V_OK) {
          why = X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
        }
        return Error(ErrorCode::kUnavailable, "TLS handshake failed: " + why);
      }
      SLUICE_TRY(WaitFor(fd_.get(), err, deadline));
    }
    return Error(ErrorCode::kInternal, "TLS handshake loop did not terminate");
  }

  Result<WireMessage> Read(std::string& buffer, SteadyTime deadline, bool is_response,
                           bool is_response_to_head = false) {
    if (ssl_ == nullptr) return ReadMessage(fd_.get(), buffer, deadline, is_response, is_response_to_head);
    return ReadMessage([this](std::string& b, SteadyTime d) { return ReadMore(b, d); }, buffer, deadline,
                       is_response, is_response_to_head);
  }

  Status Write(std::string_view data, SteadyTime deadline) {
    if (ssl_ == nullptr) return WriteAll(fd_.get(), data, deadline);
    size_t off = 0;
    for (int spins = 0; off < data.size() && spins < 10'000'000; ++spins) {
      ERR_clear_error();
      int chunk = static_cast<int>(std::min<size_t>(data.size() - off, INT_MAX));
      int n = SSL_write(ssl_, data.data() + off, chunk);  // all of `chunk` or nothing (no partial writes)
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      int err = SSL_get_error(ssl_, n);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        return Error(ErrorCode::kUnavailable, "TLS write: " + OpenSslErrors());
      }
      SLUICE_TRY(WaitFor(fd_.get(), err, deadline));
    }
    if (off < data.size()) return Error(ErrorCode::kInternal, "TLS write loop did not terminate");
    return OkStatus();
  }

 private:
  // Appends decrypted bytes to `buffer`; 0 at EOF (close_notify, or a peer that just closed).
  Result<size_t> ReadMore(std::string& buffer, SteadyTime deadline) {
    for (int spins = 0; spins < 1'000'000; ++spins) {
      char tmp[16 * 1024];
      ERR_clear_error();
      int n = SSL_read(ssl_, tmp, sizeof(tmp));
      if (n > 0) {
        buffer.append(tmp, static_cast<size_t>(n));
        return static_cast<size_t>(n);
      }
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_ZERO_RETURN) return size_t{0};
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        SLUICE_TRY(WaitFor(fd_.get(), err, deadline));
        continue;
      }
      if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) return size_t{0};
      return Error(ErrorCode::kUnavailable, "TLS read: " + OpenSslErrors());
    }
    return Error(ErrorCode::kInternal, "TLS read loop did not terminate");
  }

  Fd fd_;
  SSL* ssl_ = nullptr;
};

std::string_view FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kPassThrough: return "pass";
    case FaultKind::kInternalError: return "500";
    case FaultKind::kSlowDown: return "503-slowdown";
    case FaultKind::kReset: return "reset";
    case FaultKind::kStall: return "stall";
    case FaultKind::kTruncateBody: return "truncate";
  }
  return "?";
}

FaultProxy::FaultProxy(uint16_t upstream_port, FaultProxyOptions options)
    : upstream_port_(upstream_port), options_(std::move(options)) {
  if (!options_.tls_cert_path.empty() || !options_.tls_key_path.empty() || !options_.upstream_ca_path.empty()) {
    tls_ = std::make_unique<Tls>();
    if (!options_.tls_cert_path.empty() || !options_.tls_key_path.empty()) {
      tls_->server = SSL_CTX_new(TLS_server_method());
      if (tls_->server == nullptr ||
          SSL_CTX_use_certificate_chain_file(tls_->server, options_.tls_cert_path.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(tls_->server, options_.tls_key_path.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(tls_->server) != 1) {
        start_error_ = fmt::format("fault proxy TLS certificate {} / key {}: {}", options_.tls_cert_path,
                                   options_.tls_key_path, OpenSslErrors());
        return;
      }
      // A client that hangs up without close_notify is EOF, not an error (curl does, on a pooled connection).
      SSL_CTX_set_options(tls_->server, SSL_OP_IGNORE_UNEXPECTED_EOF);
    }
    if (!options_.upstream_ca_path.empty()) {
      tls_->client = SSL_CTX_new(TLS_client_method());
      if (tls_->client == nullptr ||
          SSL_CTX_load_verify_locations(tls_->client, options_.upstream_ca_path.c_str(), nullptr) != 1) {
        start_error_ = fmt::format("fault proxy upstream CA {}: {}", options_.upstream_ca_path, OpenSslErrors());
        return;
      }
      SSL_CTX_set_verify(tls_->client, SSL_VERIFY_PEER, nullptr);
      SSL_CTX_set_options(tls_->client, SSL_OP_IGNORE_UNEXPECTED_EOF);
    }
  }
  auto fd = ListenLoopback(port_);
  if (!fd.ok()) {
    start_error_ = fd.error().ToString();
    return;
  }
  listen_fd_ = std::move(fd).value();
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FaultProxy::~FaultProxy() { Stop(); }

std::string FaultProxy::Endpoint() const {
  return fmt::format("{}://127.0.0.1:{}", tls_ && tls_->server ? "https" : "http", port_);
}

std::string FaultProxy::ErrorResponse(FaultKind kind) const {
  const bool busy = kind == FaultKind::kSlowDown;
  if (options_.dialect == FaultDialect::kAzure) {
    return busy ? AzureErrorResponse(503, "Service Unavailable", "ServerBusy",
                                     "The server is currently unable to receive requests. Please retry your request.")
                : AzureErrorResponse(500, "Internal Server Error", "InternalError",
                                     "Server encountered an internal error. Please try again after some time.");
  }
  return busy ? S3ErrorResponse(503, "Slow Down", "SlowDown", "Please reduce your request rate.")
              : S3ErrorResponse(500, "Internal Server Error", "InternalError",
                                "We encountered an internal error. Please try again.");
}

void FaultProxy::Script(std::vector<FaultRule> rules) {
  std::lock_guard lock(mu_);
  rules_.assign(rules.begin(), rules.end());
}

void FaultProxy::Clear() {
  std::lock_guard lock(mu_);
  rules_.clear();
}

std::vector<std::string> FaultProxy::Log() const {
  std::lock_guard lock(mu_);
  return {log_.begin(), log_.end()};
}

void FaultProxy::ResetCounters() {
  std::lock_guard lock(mu_);
  requests_ = 0;
  faults_ = 0;
  log_.clear();
}

void FaultProxy::Record(std::string entry) {
  std::lock_guard lock(mu_);
  log_.push_back(std::move(entry));
  if (log_.size() > kMaxLogEntries) log_.pop_front();
}

void FaultProxy::Stop() {
  if (stopping_.exchange(true)) return;
  stop_cv_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  listen_fd_.Reset();
}

bool FaultProxy::SleepUnlessStopped(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return !stop_cv_.wait_for(lock, d, [this] { return stopping_.load(); });
}

void FaultProxy::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_.get(), POLLIN, 0};
    int rc = ::poll(&p, 1, 100);  // wake regularly to notice Stop()
    if (rc <= 0) continue;
    int cfd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (cfd < 0) continue;
    std::lock_guard lock(mu_);
    if (stopping_.load()) {
      ::close(cfd);
      break;
    }
    open_fds_.push_back(cfd);
    workers_.emplace_back([this, cfd] { ServeConnection(Fd(cfd)); });
  }
}

FaultRule FaultProxy::NextFault(const WireMessage& request) {
  std::lock_guard lock(mu_);
  std::string method = request.Method();
  std::string target = RequestTarget(request);
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (!it->method.empty() && it->method != method) continue;
    if (!it->target_contains.empty() && target.find(it->target_contains) == std::string::npos) continue;
    FaultRule rule = *it;
    if (it->times > 0 && --it->times == 0) rules_.erase(it);
    return rule;
  }
  return FaultRule{};
}

Status FaultProxy::Forward(const WireMessage& request, WireMessage& response) {
  auto deadline = std::chrono::steady_clock::now() + kUpstreamTimeout;
  SLUICE_ASSIGN_OR_RETURN(Fd fd, ConnectLoopback(upstream_port_, deadline));
  Conn up(std::move(fd));
  if (tls_ && tls_->client) SLUICE_TRY(up.Handshake(tls_->client, /*accept=*/false, deadline));
  SLUICE_TRY(up.Write(request.Serialize(), deadline));
  std::string buffer;
  SLUICE_ASSIGN_OR_RETURN(response, up.Read(buffer, deadline, /*is_response=*/true, request.Method() == "HEAD"));
  return OkStatus();
}

void FaultProxy::ServeConnection(Fd client_fd) {
  const int cfd = client_fd.get();
  Conn client(std::move(client_fd));
  bool usable = true;
  if (tls_ && tls_->server) {
    Status hs = client.Handshake(tls_->server, /*accept=*/true, std::chrono::steady_clock::now() + kUpstreamTimeout);
    if (!hs.ok()) {
      ++tls_handshake_failures_;
      Record("client " + hs.error().message);
      usable = false;
    }
  }
  std::string buffer;
  for (int n = 0; usable && n < kMaxRequestsPerConnection && !stopping_.load(); ++n) {
    auto req = client.Read(buffer, std::chrono::steady_clock::now() + kIdleClientTimeout, /*is_response=*/false);
    if (!req.ok()) break;  // client closed or went idle
    ++requests_;
    FaultRule rule = NextFault(*req);
    std::string what = fmt::format("{} {}", req->Method(), RequestTarget(*req));
    auto out_deadline = std::chrono::steady_clock::now() + kUpstreamTimeout;
    bool keep_open = true;
    switch (rule.kind) {
      case FaultKind::kInternalError:
        ++faults_;
        Record(what + " -> 500");
        keep_open = client.Write(ErrorResponse(rule.kind), out_deadline).ok();
        break;
      case FaultKind::kSlowDown:
        ++faults_;
        Record(what + (options_.dialect == FaultDialect::kAzure ? " -> 503 ServerBusy" : " -> 503 SlowDown"));
        keep_open = client.Write(ErrorResponse(rule.kind), out_deadline).ok();
        break;
      case FaultKind::kReset:
        ++faults_;
        Record(what + " -> reset");
        ResetConnection(cfd);
        keep_open = false;
        break;
      case FaultKind::kStall:
        ++faults_;
        Record(what + " -> stall");
        SleepUnlessStopped(rule.stall);
        keep_open = false;
        break;
      case FaultKind::kTruncateBody:
      case FaultKind::kPassThrough: {
        WireMessage resp;
        Status st = Forward(*req, resp);
        if (!st.ok()) {
          Record(what + " -> upstream failed: " + st.error().message);
          keep_open = client
                          .Write(options_.dialect == FaultDialect::kAzure
                                     ? AzureErrorResponse(502, "Bad Gateway", "BadGateway", st.error().message)
                                     : S3ErrorResponse(502, "Bad Gateway", "BadGateway", st.error().message),
                                 out_deadline)
                          .ok();
          break;
        }
        if (rule.kind == FaultKind::kPassThrough) {
          Record(fmt::format("{} -> {}", what, resp.Status()));
          std::string answer = req->Method() == "HEAD" ? SerializeHeadAnswer(resp) : resp.Serialize();
          keep_open = client.Write(answer, out_deadline).ok() && !resp.saw_eof;
          break;
        }
        ++faults_;
        Record(fmt::format("{} -> {} truncated", what, resp.Status()));
        // Announce the full length (at least 1 byte), deliver half, then hang up.
        size_t full = std::max<size_t>(resp.body.size(), 1);
        std::string head = resp.start_line + "\r\n";
        for (const auto& [k, v] : resp.headers) {
          std::string lower = k;
          std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
          if (lower == "content-length" || lower == "transfer-encoding") continue;
          head += k + ": " + v + "\r\n";
        }
        head += fmt::format("Content-Length: {}\r\n\r\n", full);
        (void)client.Write(head + resp.body.substr(0, resp.body.size() / 2), out_deadline);
        keep_open = false;
        break;
      }
    }
    if (!keep_open) break;
  }
  std::lock_guard lock(mu_);
  open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), cfd), open_fds_.end());
  // `client` closes the socket when it goes out of scope (after this erase: the fd number may be reused).
}

}  // namespace sluice::testing
