#include "support/fault_proxy.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

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

FaultProxy::FaultProxy(uint16_t upstream_port) : upstream_port_(upstream_port) {
  auto fd = ListenLoopback(port_);
  if (!fd.ok()) {
    start_error_ = fd.error().ToString();
    return;
  }
  listen_fd_ = std::move(fd).value();
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FaultProxy::~FaultProxy() { Stop(); }

std::string FaultProxy::Endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }

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
  SLUICE_ASSIGN_OR_RETURN(Fd up, ConnectLoopback(upstream_port_, deadline));
  SLUICE_TRY(WriteAll(up.get(), request.Serialize(), deadline));
  std::string buffer;
  SLUICE_ASSIGN_OR_RETURN(response, ReadMessage(up.get(), buffer, deadline, /*is_response=*/true,
                                                request.Method() == "HEAD"));
  return OkStatus();
}

void FaultProxy::ServeConnection(Fd client) {
  const int cfd = client.get();
  std::string buffer;
  for (int n = 0; n < kMaxRequestsPerConnection && !stopping_.load(); ++n) {
    auto req = ReadMessage(cfd, buffer, std::chrono::steady_clock::now() + kIdleClientTimeout,
                           /*is_response=*/false);
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
        keep_open = WriteAll(cfd, S3ErrorResponse(500, "Internal Server Error", "InternalError",
                                                  "We encountered an internal error. Please try again."),
                             out_deadline)
                        .ok();
        break;
      case FaultKind::kSlowDown:
        ++faults_;
        Record(what + " -> 503 SlowDown");
        keep_open = WriteAll(cfd, S3ErrorResponse(503, "Slow Down", "SlowDown", "Please reduce your request rate."),
                             out_deadline)
                        .ok();
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
          keep_open = WriteAll(cfd, S3ErrorResponse(502, "Bad Gateway", "BadGateway", st.error().message),
                               out_deadline)
                          .ok();
          break;
        }
        if (rule.kind == FaultKind::kPassThrough) {
          Record(fmt::format("{} -> {}", what, resp.Status()));
          keep_open = WriteAll(cfd, resp.Serialize(), out_deadline).ok() && !resp.saw_eof;
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
        (void)WriteAll(cfd, head + resp.body.substr(0, resp.body.size() / 2), out_deadline);
        keep_open = false;
        break;
      }
    }
    if (!keep_open) break;
  }
  std::lock_guard lock(mu_);
  open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), cfd), open_fds_.end());
  // `client` closes the socket when it goes out of scope.
}

}  // namespace sluice::testing
