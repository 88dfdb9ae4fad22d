#include "support/loopback_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace sluice::testing {
namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = size_t{1} << 30;

int RemainingMs(SteadyTime deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Reads more bytes into `buffer`. Returns 0 on EOF.
Result<size_t> ReadMore(int fd, std::string& buffer, SteadyTime deadline) {
  // Bounded: each iteration either reads, hits EOF, or consumes time until the deadline.
  for (int spins = 0; spins < 1'000'000; ++spins) {
    pollfd p{fd, POLLIN, 0};
    int ms = RemainingMs(deadline);
    if (ms == 0) return Error(ErrorCode::kDeadlineExceeded, "timed out reading from peer");
    int rc = ::poll(&p, 1, std::min(ms, 1000));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return Error(ErrorCode::kUnavailable, fmt::format("poll: {}", std::strerror(errno)));
    }
    if (rc == 0) continue;
    char tmp[64 * 1024];
    ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Error(ErrorCode::kUnavailable, fmt::format("recv: {}", std::strerror(errno)));
    }
    buffer.append(tmp, static_cast<size_t>(n));
    return static_cast<size_t>(n);
  }
  return Error(ErrorCode::kInternal, "read loop did not terminate");
}

}  // namespace

void Fd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Fd> ListenLoopback(uint16_t& port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error(ErrorCode::kUnavailable, fmt::format("socket: {}", std::strerror(errno)));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error(ErrorCode::kUnavailable, fmt::format("bind 127.0.0.1:{}: {}", port, std::strerror(errno)));
  }
  if (::listen(fd.get(), 64) != 0) {
    return Error(ErrorCode::kUnavailable, fmt::format("listen: {}", std::strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

Result<uint16_t> FindFreeLoopbackPort() {
  uint16_t port = 0;
  SLUICE_ASSIGN_OR_RETURN(Fd fd, ListenLoopback(port));
  return port;
}

Result<Fd> ConnectLoopback(uint16_t port, SteadyTime deadline) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Error(ErrorCode::kUnavailable, fmt::format("socket: {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc != 0 && errno != EINPROGRESS) {
    return Error(ErrorCode::kUnavailable, fmt::format("connect 127.0.0.1:{}: {}", port, std::strerror(errno)));
  }
  if (rc != 0) {
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, RemainingMs(deadline)) <= 0) {
      return Error(ErrorCode::kDeadlineExceeded, fmt::format("connect 127.0.0.1:{} timed out", port));
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return Error(ErrorCode::kUnavailable, fmt::format("connect 127.0.0.1:{}: {}", port, std::strerror(err)));
    }
  }
  // Back to blocking mode: reads and writes are guarded by poll with deadlines.
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

Status WriteAll(int fd, std::string_view data, SteadyTime deadline) {
  size_t off = 0;
  for (int spins = 0; off < data.size() && spins < 10'000'000; ++spins) {
    pollfd p{fd, POLLOUT, 0};
    int ms = RemainingMs(deadline);
    if (ms == 0) return Error(ErrorCode::kDeadlineExceeded, "timed out writing to peer");
    int rc = ::poll(&p, 1, std::min(ms, 1000));
    if (rc < 0 && errno != EINTR) {
      return Error(ErrorCode::kUnavailable, fmt::format("poll: {}", std::strerror(errno)));
    }
    if (rc <= 0) continue;
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Error(ErrorCode::kUnavailable, fmt::format("send: {}", std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  if (off < data.size()) return Error(ErrorCode::kInternal, "write loop did not terminate");
  return OkStatus();
}

std::string_view WireMessage::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) return v;
  }
  return {};
}

int WireMessage::Status() const {
  if (start_line.rfind("HTTP/", 0) != 0) return 0;
  auto sp = start_line.find(' ');
  if (sp == std::string::npos) return 0;
  return std::atoi(start_line.c_str() + sp + 1);
}

std::string WireMessage::Method() const { return start_line.substr(0, start_line.find(' ')); }

std::string WireMessage::Serialize() const {
  std::string out = start_line + "\r\n";
  for (const auto& [k, v] : headers) {
    if (IEquals(k, "Content-Length") || IEquals(k, "Transfer-Encoding")) continue;
    out += k + ": " + v + "\r\n";
  }
  out += fmt::format("Content-Length: {}\r\n\r\n", body.size());
  out += body;
  return out;
}

Result<WireMessage> ReadMessage(int fd, std::string& buffer, SteadyTime deadline, bool is_response,
                                bool is_response_to_head) {
  return ReadMessage([fd](std::string& b, SteadyTime d) { return ReadMore(fd, b, d); }, buffer, deadline,
                     is_response, is_response_to_head);
}

Result<WireMessage> ReadMessage(const ReadMoreFn& read_more, std::string& buffer, SteadyTime deadline,
                                bool is_response, bool is_response_to_head) {
  WireMessage msg;
  size_t head_end = std::string::npos;
  while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (buffer.size() > kMaxHeadBytes) return Error(ErrorCode::kInvalidArgument, "HTTP head too large");
    SLUICE_ASSIGN_OR_RETURN(size_t n, read_more(buffer, deadline));
    if (n == 0) {
      return Error(ErrorCode::kUnavailable,
                   buffer.empty() ? "peer closed the connection" : "peer closed mid-head");
    }
  }
  std::string_view head(buffer.data(), head_end);
  size_t line_end = head.find("\r\n");
  msg.start_line = std::string(head.substr(0, line_end));
  std::string_view rest = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view line = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    msg.headers.emplace_back(std::string(Trim(line.substr(0, colon))), std::string(Trim(line.substr(colon + 1))));
  }
  buffer.erase(0, head_end + 4);

  int status = msg.Status();
  bool no_body = is_response_to_head || (is_response && (status == 204 || status == 304 || status / 100 == 1));
  if (no_body) return msg;

  std::string_view te = msg.Header("Transfer-Encoding");
  std::string_view cl = msg.Header("Content-Length");
  if (!te.empty() && te.find("chunked") != std::string_view::npos) {
    for (int chunks = 0; chunks < 1'000'000; ++chunks) {
      size_t e;
      while ((e = buffer.find("\r\n")) == std::string::npos) {
        SLUICE_ASSIGN_OR_RETURN(size_t n, read_more(buffer, deadline));
        if (n == 0) return Error(ErrorCode::kUnavailable, "peer closed mid-chunk");
      }
      size_t size = std::strtoul(buffer.substr(0, e).c_str(), nullptr, 16);
      buffer.erase(0, e + 2);
      if (msg.body.size() + size > kMaxBodyBytes) return Error(ErrorCode::kTooLarge, "body too large");
      while (buffer.size() < size + 2) {
        SLUICE_ASSIGN_OR_RETURN(size_t n, read_more(buffer, deadline));
        if (n == 0) return Error(ErrorCode::kUnavailable, "peer closed mid-chunk");
      }
      msg.body.append(buffer, 0, size);
      buffer.erase(0, size + 2);
      if (size == 0) return msg;  // trailers are not used by any peer here
    }
    return Error(ErrorCode::kInvalidArgument, "too many chunks");
  }
  if (!cl.empty()) {
    size_t want = std::strtoull(std::string(cl).c_str(), nullptr, 10);
    if (want > kMaxBodyBytes) return Error(ErrorCode::kTooLarge, "body too large");
    msg.body.reserve(want);
    while (buffer.size() < want) {
      SLUICE_ASSIGN_OR_RETURN(size_t n, read_more(buffer, deadline));
      if (n == 0) return Error(ErrorCode::kUnavailable, "peer closed mid-body");
    }
    msg.body = buffer.substr(0, want);
    buffer.erase(0, want);
    return msg;
  }
  if (!is_response) return msg;  // a request without a length has no body
  // A response without a length runs to EOF.
  for (;;) {
    if (buffer.size() > kMaxBodyBytes) return Error(ErrorCode::kTooLarge, "body too large");
    SLUICE_ASSIGN_OR_RETURN(size_t n, read_more(buffer, deadline));
    if (n == 0) break;
  }
  msg.body = std::move(buffer);
  buffer.clear();
  msg.saw_eof = true;
  return msg;
}

Result<WireMessage> LoopbackRequest(uint16_t port, std::string_view method, std::string_view target,
                                    std::vector<std::pair<std::string, std::string>> headers,
                                    std::string_view body, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  SLUICE_ASSIGN_OR_RETURN(Fd fd, ConnectLoopback(port, deadline));
  WireMessage req;
  req.start_line = fmt::format("{} {} HTTP/1.1", method, target);
  req.headers = std::move(headers);
  req.headers.emplace_back("Host", fmt::format("127.0.0.1:{}", port));
  req.headers.emplace_back("Connection", "close");
  req.body = std::string(body);
  SLUICE_TRY(WriteAll(fd.get(), req.Serialize(), deadline));
  std::string buffer;
  return ReadMessage(fd.get(), buffer, deadline, /*is_response=*/true, method == "HEAD");
}

}  // namespace sluice::testing
