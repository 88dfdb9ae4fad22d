// CurlTransport against a loopback HTTP/1.1 server started by the test (plain POSIX sockets, so each test can
// script exactly what the peer does: keep-alive, stall, reset, truncate).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/crypto.h"
#include "http/transport.h"

namespace sluice::http {
namespace {

using namespace std::chrono_literals;

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // as sent (original case)
  std::string body;
  bool Has(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (strcasecmp(k.c_str(), std::string(name).c_str()) == 0) return true;
    }
    return false;
  }
  std::string Get(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (strcasecmp(k.c_str(), std::string(name).c_str()) == 0) return v;
    }
    return "";
  }
};

/// What the server does with a request: write `raw` (a full HTTP response), optionally after `delay`, and
/// close the connection afterwards when `close`.
struct Reply {
  std::string raw;
  std::chrono::milliseconds delay{0};
  bool close = false;
};

Reply Ok(std::string body, std::string extra_headers = "") {
  return Reply{"HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers +
               "\r\n" + body};
}

class LoopbackServer {
 public:
  using Handler = std::function<Reply(const ReceivedRequest&)>;

  explicit LoopbackServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    EXPECT_EQ(::listen(listen_fd_, 64), 0);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~LoopbackServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    std::vector<std::thread> workers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      workers.swap(workers_);
    }
    for (auto& t : workers) t.join();
  }

  std::string Url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  std::string HostHeader() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }
  std::vector<ReceivedRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      connections_++;
      std::lock_guard<std::mutex> lock(mu_);
      open_fds_.push_back(fd);
      workers_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    std::string buffer;
    char chunk[65536];
    // Bounded: at most 1000 requests per connection.
    for (int served = 0; served < 1000; ++served) {
      size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) return Close(fd);
        buffer.append(chunk, static_cast<size_t>(n));
      }
      ReceivedRequest req;
      std::string head = buffer.substr(0, header_end);
      buffer.erase(0, header_end + 4);
      size_t line_end = head.find("\r\n");
      std::string request_line = head.substr(0, line_end);
      size_t sp1 = request_line.find(' ');
      size_t sp2 = request_line.rfind(' ');
      req.method = request_line.substr(0, sp1);
      req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t end = head.find("\r\n", pos);
        if (end == std::string::npos) end = head.size();
        std::string line = head.substr(pos, end - pos);
        size_t colon = line.find(':');
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        req.headers.emplace_back(line.substr(0, colon), value);
        pos = end + 2;
      }
      size_t length = req.Has("content-length") ? std::stoull(req.Get("content-length")) : 0;
      while (buffer.size() < length) {
        ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) return Close(fd);
        buffer.append(chunk, static_cast<size_t>(n));
      }
      req.body = buffer.substr(0, length);
      buffer.erase(0, length);
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(req);
      }
      Reply reply = handler_(req);
      if (reply.delay.count() > 0) {
        // Sleep in small steps so the destructor does not wait for long stalls.
        auto until = std::chrono::steady_clock::now() + reply.delay;
        while (!stopping_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
      }
      size_t sent = 0;
      while (sent < reply.raw.size()) {
        ssize_t n = ::send(fd, reply.raw.data() + sent, reply.raw.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return Close(fd);
        sent += static_cast<size_t>(n);
      }
      if (reply.close) return Close(fd);
    }
    Close(fd);
  }

  void Close(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
    ::close(fd);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<int> open_fds_;
  std::vector<ReceivedRequest> requests_;
};

std::chrono::steady_clock::time_point In(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

OutboundRequest Get(const LoopbackServer& server, std::string path = "/") {
  OutboundRequest req;
  req.method = "GET";
  req.url = server.Url(path);
  return req;
}

TEST(CurlTransportTest, ReusesKeepAliveConnection) {
  LoopbackServer server([](const ReceivedRequest& r) { return Ok("hello " + r.target, "X-Amz-Request-Id: R1\r\n"); });
  auto transport = MakeCurlTransport();
  for (int i = 0; i < 5; ++i) {
    auto resp = transport->Send(Get(server, "/obj" + std::to_string(i)), In(5s));
    ASSERT_TRUE(resp.ok()) << resp.error().ToString();
    EXPECT_EQ(resp->status, 200);
    EXPECT_EQ(resp->body, "hello /obj" + std::to_string(i));
    EXPECT_EQ(resp->Header("x-amz-request-id"), "R1");
    EXPECT_EQ(resp->Header("X-AMZ-REQUEST-ID"), "R1");  // case-insensitive lookup
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST(CurlTransportTest, ReusesConnectionsAcrossThreads) {
  LoopbackServer server([](const ReceivedRequest&) { return Ok("x"); });
  auto transport = MakeCurlTransport();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto resp = transport->Send(Get(server), In(5s));
        if (resp.ok() && resp->status == 200) ok++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
  // 80 requests from 4 threads share at most a handful of connections.
  EXPECT_LE(server.connections(), 8);
}

TEST(CurlTransportTest, SendsHeadersExactlyAsGivenAndNoExpect) {
  LoopbackServer server([](const ReceivedRequest&) { return Ok(""); });
  auto transport = MakeCurlTransport();
  OutboundRequest req;
  req.method = "PUT";
  req.url = server.Url("/bucket/key%20with%20space");
  req.headers = {{"Host", server.HostHeader()},
                 {"x-amz-date", "20130524T000000Z"},
                 {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"},
                 {"x-amz-meta-empty", ""},
                 {"Authorization", "AWS4-HMAC-SHA256 Credential=..."}};
  req.body = RequestBody::FromString(std::string(2 << 20, 'a'));  // big enough for libcurl to want 100-continue
  auto resp = transport->Send(req, In(10s));
  ASSERT_TRUE(resp.ok()) << resp.error().ToString();
  auto got = server.requests().at(0);
  EXPECT_EQ(got.method, "PUT");
  EXPECT_EQ(got.target, "/bucket/key%20with%20space");
  EXPECT_FALSE(got.Has("expect"));
  EXPECT_FALSE(got.Has("accept"));
  EXPECT_FALSE(got.Has("content-type"));
  EXPECT_FALSE(got.Has("transfer-encoding"));
  EXPECT_FALSE(got.Has("user-agent"));
  EXPECT_EQ(got.Get("content-length"), std::to_string(2 << 20));
  EXPECT_TRUE(got.Has("x-amz-meta-empty"));
  EXPECT_EQ(got.Get("x-amz-meta-empty"), "");
  // Given headers in the given order.
  std::vector<std::string> names;
  for (const auto& [k, v] : got.headers) {
    if (k != "Content-Length") names.push_back(k);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"Host", "x-amz-date", "x-amz-content-sha256", "x-amz-meta-empty",
                                             "Authorization"}));
  EXPECT_EQ(got.body.size(), size_t{2} << 20);
}

// An object key may hold "." and ".." segments ("a/../b" is its own object in S3, GCS and Azure): the path
// goes out exactly as built, never resolved into another object's or another bucket's.
TEST(CurlTransportTest, DotSegmentsInThePathAreSentAsTheyAre) {
  LoopbackServer server([](const ReceivedRequest&) { return Ok(""); });
  auto transport = MakeCurlTransport();
  for (const std::string path : {"/bucket/dots/../../other-bucket/secret.json", "/bucket/dots/./x.json",
                                 "/bucket/a/..", "/bucket/./"}) {
    OutboundRequest req;
    req.method = "GET";
    req.url = server.Url(path);
    req.headers = {{"Host", server.HostHeader()}};
    auto resp = transport->Send(req, In(10s));
    ASSERT_TRUE(resp.ok()) << resp.error().ToString();
    EXPECT_EQ(server.requests().back().target, path);
  }
}

TEST(CurlTransportTest, PostKeepsCallerContentTypeAndAddsNoFormType) {
  LoopbackServer server([](const ReceivedRequest&) { return Ok("<ok/>"); });
  auto transport = MakeCurlTransport();
  OutboundRequest req;
  req.method = "POST";
  req.url = server.Url("/");
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  req.body = RequestBody::FromString("Action=GetCallerIdentity&Version=2011-06-15");
  ASSERT_TRUE(transport->Send(req, In(5s)).ok());
  req.headers.clear();
  req.body = RequestBody::FromString("{}");
  ASSERT_TRUE(transport->Send(req, In(5s)).ok());
  auto got = server.requests();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].Get("content-type"), "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(got[0].body, "Action=GetCallerIdentity&Version=2011-06-15");
  EXPECT_FALSE(got[1].Has("content-type"));
  EXPECT_EQ(got[1].body, "{}");
}

TEST(CurlTransportTest, HeadAndDelete) {
  LoopbackServer server([](const ReceivedRequest& r) {
    if (r.method == "HEAD") return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nETag: \"abc\"\r\n\r\n"};
    return Reply{"HTTP/1.1 204 No Content\r\n\r\n"};
  });
  auto transport = MakeCurlTransport();
  OutboundRequest head = Get(server, "/k");
  head.method = "HEAD";
  auto r1 = transport->Send(head, In(5s));
  ASSERT_TRUE(r1.ok()) << r1.error().ToString();
  EXPECT_EQ(r1->Header("etag"), "\"abc\"");
  EXPECT_EQ(r1->Header("content-length"), "42");
  OutboundRequest del = Get(server, "/k");
  del.method = "DELETE";
  auto r2 = transport->Send(del, In(5s));
  ASSERT_TRUE(r2.ok()) << r2.error().ToString();
  EXPECT_EQ(r2->status, 204);
  EXPECT_EQ(server.requests().at(1).method, "DELETE");
  EXPECT_EQ(server.connections(), 1);
}

TEST(CurlTransportTest, StreamingUploadFromReader) {
  LoopbackServer server([](const ReceivedRequest& r) { return Ok(HexEncode(Sha256(r.body))); });
  auto transport = MakeCurlTransport();
  const size_t total = (3 << 20) + 123;
  std::string expected;
  for (size_t i = 0; i < total; ++i) expected.push_back(static_cast<char>('a' + i % 26));
  std::atomic<int> opens{0};
  OutboundRequest req;
  req.method = "PUT";
  req.url = server.Url("/big");
  req.body.length = total;
  req.body.open = [&]() {
    opens++;
    auto pos = std::make_shared<size_t>(0);
    return [pos, total](char* buf, size_t len) -> Result<size_t> {
      size_t n = std::min({len, total - *pos, size_t{65536}});
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<char>('a' + (*pos + i) % 26);
      *pos += n;
      return n;
    };
  };
  auto resp = transport->Send(req, In(10s));
  ASSERT_TRUE(resp.ok()) << resp.error().ToString();
  EXPECT_EQ(resp->body, HexEncode(Sha256(expected)));
  EXPECT_EQ(server.requests().at(0).Get("content-length"), std::to_string(total));
  EXPECT_GE(opens.load(), 1);
}

TEST(CurlTransportTest, ReaderErrorIsReturned) {
  LoopbackServer server([](const ReceivedRequest&) { return Ok(""); });
  auto transport = MakeCurlTransport();
  OutboundRequest req;
  req.method = "PUT";
  req.url = server.Url("/big");
  req.body.length = 1 << 20;
  req.body.open = []() {
    return [](char*, size_t) -> Result<size_t> { return Error(ErrorCode::kInternal, "spool file vanished"); };
  };
  auto resp = transport->Send(req, In(5s));
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.error().code, ErrorCode::kInternal);
  EXPECT_NE(resp.error().message.find("spool file vanished"), std::string::npos);
}

TEST(CurlTransportTest, StreamingDownloadAndErrorBody) {
  const std::string big(5 << 20, 'z');
  LoopbackServer server([&](const ReceivedRequest& r) {
    if (r.target == "/missing") {
      std::string body = "<Error><Code>NoSuchKey</Code></Error>";
      return Reply{"HTTP/1.1 404 Not Found\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body};
    }
    return Ok(big);
  });
  auto transport = MakeCurlTransport();
  size_t received = 0;
  int chunks = 0;
  auto sink = [&](std::string_view chunk) {
    received += chunk.size();
    chunks++;
    return true;
  };
  auto resp = transport->SendStreaming(Get(server, "/big"), In(10s), sink);
  ASSERT_TRUE(resp.ok()) << resp.error().ToString();
  EXPECT_EQ(resp->status, 200);
  EXPECT_TRUE(resp->body.empty());
  EXPECT_EQ(received, big.size());
  EXPECT_GT(chunks, 1);

  received = 0;
  auto missing = transport->SendStreaming(Get(server, "/missing"), In(10s), sink);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(received, 0u);  // error documents are not streamed to the sink
  EXPECT_EQ(missing->body, "<Error><Code>NoSuchKey</Code></Error>");
}

TEST(CurlTransportTest, SinkAbortIsCancelled) {
  LoopbackServer server([](const ReceivedRequest&) { return Ok(std::string(1 << 20, 'q')); });
  auto transport = MakeCurlTransport();
  auto resp = transport->SendStreaming(Get(server), In(5s), [](std::string_view) { return false; });
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.error().code, ErrorCode::kCancelled);
}

TEST(CurlTransportTest, DeadlineExceeded) {
  LoopbackServer server([](const ReceivedRequest&) { return Reply{Ok("late").raw, 3000ms}; });
  auto transport = MakeCurlTransport();
  auto start = std::chrono::steady_clock::now();
  auto resp = transport->Send(Get(server), In(300ms));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.error().code, ErrorCode::kDeadlineExceeded) << resp.error().ToString();
  EXPECT_LT(took, 2s);
  // Already past: fails without sending.
  auto past = transport->Send(Get(server), std::chrono::steady_clock::now() - 1ms);
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.error().code, ErrorCode::kDeadlineExceeded);
}

TEST(CurlTransportTest, StalledPeerHitsIdleTimeout) {
  // Headers and part of the body, then silence: the idle (low-speed) timeout fires long before the deadline.
  LoopbackServer server([](const ReceivedRequest&) {
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", 0ms, false};
  });
  TransportOptions options;
  options.idle_timeout = 1000ms;
  auto transport = MakeCurlTransport(options);
  auto start = std::chrono::steady_clock::now();
  auto resp = transport->Send(Get(server), In(20s));
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.error().code, ErrorCode::kTransient) << resp.error().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

TEST(CurlTransportTest, TruncatedResponseIsTransient) {
  LoopbackServer server([](const ReceivedRequest&) {
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly-this", 0ms, true};
  });
  auto transport = MakeCurlTransport();
  auto resp = transport->Send(Get(server), In(5s));
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.error().code, ErrorCode::kTransient) << resp.error().ToString();
}

TEST(CurlTransportTest, ConnectionRefusedNamesHostNeverHeaders) {
  // Find a free port, then close it so nothing listens there.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);

  auto transport = MakeCurlTransport();
  OutboundRequest req;
  req.method = "GET";
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/bucket/key?X-Amz-Signature=sig-in-query";
  req.headers = {{"Authorization", "AWS4-HMAC-SHA256 Credential=AKIDSECRET/x, Signature=topsecret"},
                 {"x-amz-security-token", "session-token-secret"}};
  auto resp = transport->Send(req, In(5s));
  ASSERT_FALSE(resp.ok());
  const Error& e = resp.error();
  EXPECT_EQ(e.code, ErrorCode::kUnavailable) << e.ToString();
  EXPECT_NE(e.message.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("firewall"), std::string::npos) << "says what to check: " << e.message;
  for (const char* secret : {"topsecret", "AKIDSECRET", "session-token-secret", "sig-in-query", "/bucket/key"}) {
    EXPECT_EQ(e.ToString().find(secret), std::string::npos) << secret << " leaked: " << e.ToString();
  }
}

TEST(CurlTransportTest, UnresolvableHostIsUnavailable) {
  auto transport = MakeCurlTransport();
  OutboundRequest req;
  req.method = "GET";
  req.url = "http://no-such-host.invalid/";
  auto resp = transport->Send(req, In(10s));
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.error().code, ErrorCode::kUnavailable) << resp.error().ToString();
  EXPECT_NE(resp.error().message.find("no-such-host.invalid"), std::string::npos);
}

TEST(CurlTransportTest, ServerClosingKeptAliveConnectionIsRetriedByCurlWithRewind) {
  // The first response closes the connection after answering; the next request must open a new one and still
  // carry its full body.
  LoopbackServer server([](const ReceivedRequest& r) {
    Reply reply = Ok(std::to_string(r.body.size()));
    reply.close = true;
    return reply;
  });
  auto transport = MakeCurlTransport();
  for (int i = 0; i < 3; ++i) {
    OutboundRequest req;
    req.method = "PUT";
    req.url = server.Url("/k");
    req.body = RequestBody::FromString(std::string(1000 + i, 'b'));
    auto resp = transport->Send(req, In(5s));
    ASSERT_TRUE(resp.ok()) << resp.error().ToString();
    EXPECT_EQ(resp->body, std::to_string(1000 + i));
  }
  EXPECT_EQ(server.connections(), 3);
}

}  // namespace
}  // namespace sluice::http
