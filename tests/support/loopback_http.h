// Loopback-only socket and HTTP/1.1 wire helpers for test harnesses (MotoServer, FaultProxy).
// Deliberately tiny and blocking: production code talks HTTP only through http::HttpTransport; these helpers
// exist so the harness does not depend on the code under test.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace sluice::testing {

using SteadyTime = std::chrono::steady_clock::time_point;

/// An owned file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset();

 private:
  int fd_ = -1;
};

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back, close). Racy by nature;
/// callers that start a server on it retry on failure.
Result<uint16_t> FindFreeLoopbackPort();

/// Listens on 127.0.0.1:`port` (0 = any); the chosen port is written back to `port`.
Result<Fd> ListenLoopback(uint16_t& port);

/// Connects to 127.0.0.1:`port`, giving up at `deadline`.
Result<Fd> ConnectLoopback(uint16_t port, SteadyTime deadline);

/// Writes all of `data` or fails at `deadline`.
Status WriteAll(int fd, std::string_view data, SteadyTime deadline);

/// One HTTP/1.1 message (request or response) as read from the wire; a chunked body is de-chunked.
struct WireMessage {
  std::string start_line;  // "GET /path HTTP/1.1" or "HTTP/1.1 200 OK"
  std::vector<std::pair<std::string, std::string>> headers;  // as received (original case)
  std::string body;
  bool saw_eof = false;  // the peer closed after this message

  /// First header named `name` (case-insensitive), or empty.
  std::string_view Header(std::string_view name) const;
  /// Response status code from the start line (0 if not a response).
  int Status() const;
  /// Request method from the start line.
  std::string Method() const;
  /// Serialises with Content-Length (replacing any Transfer-Encoding/Content-Length received).
  std::string Serialize() const;
};

/// Reads one message from `fd`, using and refilling `buffer` (bytes read past the message stay in it, for
/// keep-alive). `is_response_to_head` skips the body. kUnavailable when the peer closed before any byte;
/// kDeadlineExceeded at `deadline`. Sizes are bounded (64 KiB head, 1 GiB body) so a broken peer cannot make
/// the loop run forever.
Result<WireMessage> ReadMessage(int fd, std::string& buffer, SteadyTime deadline, bool is_response,
                                bool is_response_to_head = false);

/// Appends the next bytes read to `buffer` and returns how many; 0 at EOF. Lets ReadMessage read from a stream
/// other than a plain socket (the fault proxy's TLS connections).
using ReadMoreFn = std::function<Result<size_t>(std::string& buffer, SteadyTime deadline)>;
/// ReadMessage over `read_more` instead of a socket; same bounds and errors.
Result<WireMessage> ReadMessage(const ReadMoreFn& read_more, std::string& buffer, SteadyTime deadline,
                                bool is_response, bool is_response_to_head = false);

/// A minimal request/response exchange with a loopback server (one connection, `Connection: close`).
Result<WireMessage> LoopbackRequest(uint16_t port, std::string_view method, std::string_view target,
                                    std::vector<std::pair<std::string, std::string>> headers,
                                    std::string_view body, std::chrono::milliseconds timeout);

}  // namespace sluice::testing
