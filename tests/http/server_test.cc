// The Beast server over real sockets on 127.0.0.1 (port 0): request decoding, keep-alive and pipelining, limits,
// streaming, timeouts, graceful shutdown and TLS.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/server.h"
#include "test_client.h"

namespace sluice::http {
namespace {

using namespace std::chrono_literals;
using testing::StringResponse;
using testing::TestClient;
using testing::TlsTestClient;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;

struct Observed {
  std::string route;
  std::string method;
  int status = 0;
  double seconds = 0;
  size_t bytes_in = 0;
};

/// Describes every field of the request, one per line, so tests can check what the server decoded.
Response EchoHandler(Request& request) {
  std::string out = "method=" + request.method + "\npath=" + request.path + "\ntarget=" + request.target + "\n";
  for (const auto& [name, value] : request.path_params) out += "param " + name + "=" + value + "\n";
  for (const auto& [name, value] : request.query) out += "query " + name + "=" + value + "\n";
  out += "remote=" + request.remote_ip + "\ntls=" + (request.tls ? "1" : "0") + "\n";
  out += "body_size=" + std::to_string(request.body.size()) + "\n";
  if (auto agent = request.headers.Get("x-test")) out += "x-test=" + std::string(*agent) + "\n";
  return Response::Text(200, out);
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class ServerTest : public ::testing::Test {
 protected:
  static ServerOptions Options() {
    ServerOptions options;
    options.listen_port = 0;
    options.threads = 2;
    return options;
  }

  /// Connects `client`, asks for `path` and reads the response's header: the stream behind it is running.
  void OpenStream(TestClient& client, const std::string& path) {
    ASSERT_FALSE(client.Connect(server_->port()));
    ASSERT_FALSE(client.Send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    bhttp::response_parser<bhttp::string_body> parser;
    for (int i = 0; i < 100 && !parser.is_header_done(); ++i) ASSERT_FALSE(client.ReadSome(parser));
    ASSERT_TRUE(parser.is_header_done());
  }

  void StartServer(std::shared_ptr<Router> router, ServerOptions options = Options()) {
    router_ = router;
    auto created = Server::Create(options, std::move(router),
                                  [this](std::string_view route, std::string_view method, int status,
                                         double seconds, size_t bytes_in) {
                                    std::lock_guard lock(mu_);
                                    observed_.push_back({std::string(route), std::string(method), status, seconds,
                                                         bytes_in});
                                    cv_.notify_all();
                                  });
    ASSERT_TRUE(created.ok()) << created.error().ToString();
    server_ = std::move(*created);
    ASSERT_NE(server_->port(), 0);
    server_->Start();
  }

  std::shared_ptr<Router> EchoRouter() {
    auto router = std::make_shared<Router>();
    router->Add("GET", "/echo/{name}", EchoHandler);
    router->Add("POST", "/echo", EchoHandler);
    router->Add("GET", "/echo", EchoHandler);
    return router;
  }

  /// Waits until the observer has seen `count` requests (it runs after the response is written).
  std::vector<Observed> WaitObserved(size_t count) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 5s, [&] { return observed_.size() >= count; });
    return observed_;
  }

  void TearDown() override {
    if (server_) server_->Shutdown(1s);
  }

  std::shared_ptr<Router> router_;
  std::unique_ptr<Server> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Observed> observed_;
};

TEST_F(ServerTest, DecodesRequestFieldsAndAddsStandardHeaders) {
  StartServer(EchoRouter());
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  StringResponse response = client.Request("GET", "/echo/hello%20world?a=1+2&b=%41%2b&c&d=100%", {},
                                           {{"X-Test", "yes"}});
  ASSERT_FALSE(client.last_error()) << client.last_error().message();
  EXPECT_EQ(response.result_int(), 200);
  const std::string& body = response.body();
  EXPECT_TRUE(Contains(body, "method=GET\n")) << body;
  EXPECT_TRUE(Contains(body, "path=/echo/hello world\n")) << body;
  EXPECT_TRUE(Contains(body, "target=/echo/hello%20world?a=1+2&b=%41%2b&c&d=100%\n")) << body;
  EXPECT_TRUE(Contains(body, "param name=hello world\n")) << body;
  EXPECT_TRUE(Contains(body, "query a=1 2\nquery b=A+\nquery c=\nquery d=100%\n")) << body;
  EXPECT_TRUE(Contains(body, "remote=127.0.0.1\ntls=0\n")) << body;
  EXPECT_TRUE(Contains(body, "x-test=yes\n")) << body;
  EXPECT_EQ(response[bhttp::field::server], "sluice");
  EXPECT_TRUE(response[bhttp::field::date].ends_with(" GMT"));
  EXPECT_EQ(response[bhttp::field::content_length], std::to_string(body.size()));
  EXPECT_EQ(response[bhttp::field::content_type], "text/plain; charset=utf-8");

  auto observed = WaitObserved(1);
  ASSERT_EQ(observed.size(), 1u);
  EXPECT_EQ(observed[0].route, "/echo/{name}");
  EXPECT_EQ(observed[0].method, "GET");
  EXPECT_EQ(observed[0].status, 200);
  EXPECT_GE(observed[0].seconds, 0.0);
}

TEST_F(ServerTest, WorkerStartRunsOnEveryIoThreadBeforeItServes) {
  std::mutex mu;
  std::condition_variable all_started;
  std::vector<std::thread::id> started;
  ServerOptions options = Options();
  options.threads = 3;
  options.worker_start = [&] {
    std::lock_guard lock(mu);
    started.push_back(std::this_thread::get_id());
    all_started.notify_all();
  };
  std::thread::id served_on;
  auto router = std::make_shared<Router>();
  router->Add("GET", "/where", [&](Request&) {
    served_on = std::this_thread::get_id();
    return Response::Text(200, "ok");
  });
  StartServer(router, options);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  StringResponse response = client.Request("GET", "/where");
  ASSERT_FALSE(client.last_error()) << client.last_error().message();
  EXPECT_EQ(response.result_int(), 200);
  // Threads may still be starting when the first request is served; each runs worker_start before its
  // io_context, so the one that served has run it. All three run it, once each.
  std::unique_lock lock(mu);
  all_started.wait_for(lock, 5s, [&] { return started.size() >= 3; });
  ASSERT_EQ(started.size(), 3u);
  EXPECT_NE(std::find(started.begin(), started.end(), served_on), started.end());
  std::vector<std::thread::id> distinct = started;
  std::sort(distinct.begin(), distinct.end());
  EXPECT_EQ(std::unique(distinct.begin(), distinct.end()), distinct.end()) << "a thread ran worker_start twice";
}

TEST_F(ServerTest, NotFoundAndMethodNotAllowedAreJson) {
  StartServer(EchoRouter());
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  StringResponse missing = client.Request("GET", "/nope");
  EXPECT_EQ(missing.result_int(), 404);
  EXPECT_EQ(missing.body(), R"({"error":"no route for GET /nope","status":"error"})");
  EXPECT_EQ(missing[bhttp::field::content_type], "application/json");
  StringResponse wrong_method = client.Request("DELETE", "/echo");
  EXPECT_EQ(wrong_method.result_int(), 405);
  EXPECT_TRUE(Contains(wrong_method.body(), R"("status":"error")"));
  auto observed = WaitObserved(2);
  ASSERT_EQ(observed.size(), 2u);
  EXPECT_EQ(observed[0].route, "unmatched");
  EXPECT_EQ(observed[1].status, 405);
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  StartServer(EchoRouter());
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  for (int i = 0; i < 5; ++i) {
    StringResponse response = client.Request("POST", "/echo?i=" + std::to_string(i), std::string(100 * i, 'x'));
    ASSERT_FALSE(client.last_error()) << "request " << i << ": " << client.last_error().message();
    EXPECT_EQ(response.result_int(), 200);
    EXPECT_TRUE(response.keep_alive());
    EXPECT_TRUE(Contains(response.body(), "query i=" + std::to_string(i) + "\n"));
    EXPECT_TRUE(Contains(response.body(), "body_size=" + std::to_string(100 * i) + "\n"));
  }
  auto observed = WaitObserved(5);
  EXPECT_EQ(observed.back().bytes_in, 400u);
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer(EchoRouter());
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  ASSERT_FALSE(client.Send(
      "GET /echo/one HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /echo/three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  StringResponse first, second, third;
  ASSERT_FALSE(client.Read(first));
  ASSERT_FALSE(client.Read(second));
  ASSERT_FALSE(client.Read(third));
  EXPECT_TRUE(Contains(first.body(), "param name=one\n"));
  EXPECT_TRUE(Contains(second.body(), "body_size=3\n"));
  EXPECT_TRUE(Contains(third.body(), "param name=three\n"));
  EXPECT_FALSE(third.keep_alive());
  EXPECT_EQ(client.WaitForClose(), net::error::eof);
}

TEST_F(ServerTest, LargeBodyWithExpectContinue) {
  StartServer(EchoRouter());
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  const std::string body(1'600'000, 'e');
  ASSERT_FALSE(client.Send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n"));
  StringResponse interim;
  ASSERT_FALSE(client.Read(interim));
  EXPECT_EQ(interim.result_int(), 100);
  ASSERT_FALSE(client.Send(body));
  StringResponse response;
  ASSERT_FALSE(client.Read(response));
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_TRUE(Contains(response.body(), "body_size=1600000\n")) << response.body();
}

TEST_F(ServerTest, OversizedContentLengthGets413BeforeTheBodyIsRead) {
  ServerOptions options = Options();
  options.max_body_bytes = 1 << 20;
  auto router = std::make_shared<Router>();
  std::atomic<int> calls{0};
  router->Add("POST", "/import", [&](Request&) {
    ++calls;
    return Response::Text(200, "1");
  });
  StartServer(router, options);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  // Only the headers are sent: the answer must come without the 100 MB body.
  ASSERT_FALSE(client.Send("POST /import HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n"));
  StringResponse response;
  ASSERT_FALSE(client.Read(response));
  EXPECT_EQ(response.result_int(), 413);
  EXPECT_EQ(response.body(),
            R"({"error":"request body of 104857600 bytes exceeds the limit of 1048576 bytes","status":"error"})");
  EXPECT_EQ(response[bhttp::field::content_type], "application/json");
  EXPECT_FALSE(response.keep_alive());
  EXPECT_EQ(client.WaitForClose(), net::error::eof);
  EXPECT_EQ(calls.load(), 0);
  auto observed = WaitObserved(1);
  EXPECT_EQ(observed[0].status, 413);
  EXPECT_EQ(observed[0].route, "unmatched");
}

TEST_F(ServerTest, OversizedContentLengthWithExpectContinueGets413Instead) {
  ServerOptions options = Options();
  options.max_body_bytes = 1000;
  StartServer(EchoRouter(), options);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  ASSERT_FALSE(client.Send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1001\r\n\r\n"));
  StringResponse response;
  ASSERT_FALSE(client.Read(response));
  EXPECT_EQ(response.result_int(), 413);
}

TEST_F(ServerTest, ChunkedUploadIsAssembledAndBounded) {
  ServerOptions options = Options();
  options.max_body_bytes = 1 << 20;
  StartServer(EchoRouter(), options);
  {
    TestClient client;
    ASSERT_FALSE(client.Connect(server_->port()));
    ASSERT_FALSE(client.Send(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    StringResponse response;
    ASSERT_FALSE(client.Read(response));
    EXPECT_EQ(response.result_int(), 200);
    EXPECT_TRUE(Contains(response.body(), "body_size=11\n"));
  }
  {
    TestClient client;
    ASSERT_FALSE(client.Connect(server_->port()));
    std::string upload = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string chunk(256 * 1024, 'c');
    for (int i = 0; i < 6; ++i) upload += "40000\r\n" + chunk + "\r\n";  // 1.5 MiB in 256 KiB chunks
    upload += "0\r\n\r\n";
    ASSERT_FALSE(client.Send(upload));
    StringResponse response;
    ASSERT_FALSE(client.Read(response));
    EXPECT_EQ(response.result_int(), 413);
    EXPECT_EQ(response.body(), R"({"error":"request body exceeds the limit of 1048576 bytes","status":"error"})");
  }
}

TEST_F(ServerTest, MalformedRequestGets400AndClose) {
  StartServer(EchoRouter());
  for (const char* raw : {"GARBAGE\r\n\r\n", "GET /echo HTTP/1.1\r\nBad Header Line\r\n\r\n",
                          "GET /echo HTTP/9.9\r\nHost: x\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n"}) {
    TestClient client;
    ASSERT_FALSE(client.Connect(server_->port()));
    ASSERT_FALSE(client.Send(raw));
    StringResponse response;
    ASSERT_FALSE(client.Read(response)) << raw;
    EXPECT_EQ(response.result_int(), 400) << raw;
    EXPECT_TRUE(Contains(response.body(), "malformed HTTP request")) << response.body();
    EXPECT_FALSE(response.keep_alive());
    EXPECT_EQ(client.WaitForClose(), net::error::eof);
  }
}

// RFC 9112 §6.1: only exactly `chunked` frames a request body here. Each body below hides a complete second
// request; a server that mis-frames the body would answer it (request smuggling through a proxy in front).
TEST_F(ServerTest, TransferEncodingOtherThanChunkedGets400AndCloseWithoutParsingTheBody) {
  StartServer(EchoRouter());
  const std::string smuggled = "GET /echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string chunked_body = "5\r\nhello\r\n0\r\n\r\n" + smuggled;
  const std::vector<std::string> cases = {
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n" + chunked_body,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n" + chunked_body,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" + chunked_body,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunked_body,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n" + chunked_body,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello" +
          smuggled,
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\n\r\nhello" +
          smuggled,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" +
          chunked_body,
  };
  for (const std::string& raw : cases) {
    TestClient client;
    ASSERT_FALSE(client.Connect(server_->port()));
    ASSERT_FALSE(client.Send(raw));
    StringResponse response;
    ASSERT_FALSE(client.Read(response)) << raw;
    EXPECT_EQ(response.result_int(), 400) << raw;
    EXPECT_TRUE(Contains(response.body(), "Transfer-Encoding")) << response.body();
    EXPECT_FALSE(response.keep_alive()) << raw;
    StringResponse second;
    EXPECT_TRUE(client.Read(second)) << "a second response was sent for: " << raw << "\n" << second.body();
  }
  // Exactly `chunked` (any case, surrounding blanks) still works.
  {
    TestClient client;
    ASSERT_FALSE(client.Connect(server_->port()));
    ASSERT_FALSE(client.Send(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  Chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    StringResponse response;
    ASSERT_FALSE(client.Read(response));
    EXPECT_EQ(response.result_int(), 200);
    EXPECT_TRUE(Contains(response.body(), "body_size=5\n")) << response.body();
  }
  std::lock_guard lock(mu_);
  for (const Observed& o : observed_) EXPECT_NE(o.route, "/echo/{name}") << "the smuggled request was served";
}

TEST_F(ServerTest, ObserverSeesOnlyKnownMethodsOrOther) {
  StartServer(EchoRouter());
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  for (const char* method : {"GET", "PURGE", "X-ODD-1", "POST"}) {
    ASSERT_FALSE(
        client.Send(std::string(method) + " /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
    StringResponse response;
    ASSERT_FALSE(client.Read(response)) << method;
  }
  auto observed = WaitObserved(4);
  ASSERT_EQ(observed.size(), 4u);
  EXPECT_EQ(observed[0].method, "GET");
  EXPECT_EQ(observed[1].method, "other");
  EXPECT_EQ(observed[2].method, "other");
  EXPECT_EQ(observed[3].method, "POST");
}

TEST_F(ServerTest, LongTrackTargetsAreAcceptedAndHugeHeadersRefused) {
  auto router = std::make_shared<Router>();
  router->Add("GET", "/track", [](Request& request) {
    return Response::Text(200, std::to_string(request.Query("data").value_or("").size()));
  });
  StartServer(router);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  const std::string data(40'000, 'A');
  StringResponse ok = client.Request("GET", "/track?data=" + data + "&verbose=1");
  ASSERT_FALSE(client.last_error());
  EXPECT_EQ(ok.result_int(), 200);
  EXPECT_EQ(ok.body(), "40000");

  TestClient huge;
  ASSERT_FALSE(huge.Connect(server_->port()));
  StringResponse refused = huge.Request("GET", "/track?data=" + std::string(70'000, 'A'));
  EXPECT_EQ(refused.result_int(), 431);
}

TEST_F(ServerTest, StreamsLargeChunkedBodyWithBoundedBuffering) {
  constexpr size_t kTotal = 50u << 20;
  constexpr size_t kChunk = 64u << 10;
  std::atomic<size_t> client_received{0};
  std::atomic<size_t> max_lag{0};
  std::atomic<int> producer_calls{0};
  auto router = std::make_shared<Router>();
  router->Add("GET", "/api/2.0/export", [&](Request&) {
    Response response;
    response.headers.Add("Content-Type", "application/x-ndjson");
    response.stream = [&, produced = size_t{0}](std::string& out) mutable -> Result<bool> {
      ++producer_calls;
      size_t lag = produced - std::min(produced, client_received.load());
      if (lag > max_lag.load()) max_lag.store(lag);
      size_t n = std::min(kChunk, kTotal - produced);
      out.append(n, static_cast<char>('a' + (produced / kChunk) % 26));
      produced += n;
      return produced < kTotal;
    };
    return response;
  });
  StartServer(router);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  // A small receive window makes "the server runs ahead by at most its send buffer" a tight statement.
  client.SetReceiveBuffer(128 * 1024);
  bhttp::request<bhttp::string_body> request(bhttp::verb::get, "/api/2.0/export", 11);
  request.set(bhttp::field::host, "x");
  ASSERT_FALSE(client.Write(request));
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(boost::none);
  while (!parser.is_done()) {
    auto ec = client.ReadSome(parser);
    ASSERT_FALSE(ec) << ec.message();
    client_received.store(parser.get().body().size());
  }
  const auto& response = parser.get();
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_TRUE(response.chunked());
  EXPECT_EQ(response[bhttp::field::content_type], "application/x-ndjson");
  ASSERT_EQ(response.body().size(), kTotal);
  EXPECT_EQ(response.body()[0], 'a');
  EXPECT_EQ(response.body()[kChunk], 'b');
  EXPECT_EQ(response.body()[kTotal - 1], static_cast<char>('a' + (kTotal / kChunk - 1) % 26));
  EXPECT_EQ(producer_calls.load(), static_cast<int>(kTotal / kChunk));
  // Kernel send buffer (≤ 4 MiB by default) + the client's window + one chunk; far below the 50 MiB body.
  EXPECT_LT(max_lag.load(), 8u << 20) << "server buffered " << max_lag.load() << " bytes ahead of the client";
  // The connection stays usable after a streamed response.
  StringResponse again = client.Request("GET", "/nope");
  EXPECT_EQ(again.result_int(), 404);
}

// A producer whose data is not ready yet (a store scan on another thread, stuck in events a filter refuses)
// does not hold its I/O thread: with one I/O thread, other requests are answered while the stream waits, and
// the stream still delivers everything once its data comes.
TEST_F(ServerTest, AStreamWaitingForItsDataLeavesItsIoThreadToOtherRequests) {
  std::atomic<bool> ready{false};
  std::atomic<int> idle_calls{0};
  auto router = std::make_shared<Router>();
  router->Add("GET", "/slow-export", [&](Request&) {
    Response response;
    response.stream = [&, sent = false](std::string& out) mutable -> Result<bool> {
      if (!ready.load()) {
        ++idle_calls;
        return true;  // nothing yet
      }
      if (sent) return false;
      out += "all of it\n";
      sent = true;
      return true;
    };
    return response;
  });
  router->Add("GET", "/ping", [](Request&) { return Response::Text(200, "pong"); });
  ServerOptions options = Options();
  options.threads = 1;
  StartServer(router, options);

  TestClient streaming;
  ASSERT_FALSE(streaming.Connect(server_->port()));
  bhttp::request<bhttp::string_body> request(bhttp::verb::get, "/slow-export", 11);
  request.set(bhttp::field::host, "x");
  ASSERT_FALSE(streaming.Write(request));
  for (int i = 0; i < 200 && idle_calls.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_GT(idle_calls.load(), 0) << "the stream never started";

  for (int i = 0; i < 3; ++i) {
    TestClient other;
    ASSERT_FALSE(other.Connect(server_->port()));
    const auto start = std::chrono::steady_clock::now();
    StringResponse pong = other.Request("GET", "/ping");
    EXPECT_EQ(pong.result_int(), 200);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2))
        << "the only I/O thread was held by the waiting stream";
  }
  // Asked again after waits that grow (1 ms doubling to 20 ms), not in a busy loop.
  const int calls_before = idle_calls.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(idle_calls.load() - calls_before, 40) << "the producer was polled in a busy loop";

  ready = true;
  bhttp::response_parser<bhttp::string_body> parser;
  boost::beast::error_code ec;
  for (int i = 0; i < 100 && !ec && !parser.is_done(); ++i) ec = streaming.ReadSome(parser);
  ASSERT_TRUE(parser.is_done()) << ec.message();
  EXPECT_EQ(parser.get().result_int(), 200);
  EXPECT_EQ(parser.get().body(), "all of it\n");
}

// A client that goes away while its stream waits for data is noticed without a write: the stream (and what
// it holds: an export's scan and its slot) is dropped at once, not when the data finally comes.
TEST_F(ServerTest, AWaitingStreamIsDroppedWhenItsClientGoesAway) {
  struct Held {
    explicit Held(std::atomic<bool>* d) : dropped(d) {}
    Held(const Held&) = delete;
    ~Held() { dropped->store(true); }
    std::atomic<bool>* dropped;
  };
  std::atomic<bool> dropped{false};
  auto router = std::make_shared<Router>();
  router->Add("GET", "/never", [&](Request&) {
    Response response;
    auto held = std::make_shared<Held>(&dropped);
    response.stream = [held](std::string&) -> Result<bool> { return true; };  // never has data
    return response;
  });
  StartServer(router);
  {
    TestClient client;
    ASSERT_NO_FATAL_FAILURE(OpenStream(client, "/never"));
    // A byte sent while the stream waits (the start of a pipelined request, or a TLS close_notify) stays
    // unread in the socket; it must not hide the close that follows.
    ASSERT_FALSE(client.Send("G"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(dropped.load());
  }  // the client closes
  for (int i = 0; i < 200 && !dropped.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(dropped.load()) << "the stream outlived its client";
}

TEST_F(ServerTest, ProducerErrorTruncatesTheBodyAndClosesTheConnection) {
  auto router = std::make_shared<Router>();
  router->Add("GET", "/export", [](Request&) {
    Response response;
    response.stream = [calls = 0](std::string& out) mutable -> Result<bool> {
      if (++calls > 2) return Internal("store read failed");
      out += "part" + std::to_string(calls) + "\n";
      return true;
    };
    return response;
  });
  StartServer(router);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  bhttp::request<bhttp::string_body> request(bhttp::verb::get, "/export", 11);
  ASSERT_FALSE(client.Write(request));
  bhttp::response_parser<bhttp::string_body> parser;
  boost::beast::error_code ec;
  for (int i = 0; i < 100 && !ec && !parser.is_done(); ++i) ec = client.ReadSome(parser);
  EXPECT_FALSE(parser.is_done());
  EXPECT_EQ(ec, bhttp::error::partial_message) << ec.message();
  EXPECT_EQ(parser.get().body(), "part1\npart2\n");
}

TEST_F(ServerTest, RequestTimeoutClosesSlowClients) {
  ServerOptions options = Options();
  options.request_timeout = 1s;
  StartServer(EchoRouter(), options);
  TestClient slow_headers;
  TestClient slow_body;
  // Before the connections: the server's timer starts at accept, so the lower bound below holds on any machine.
  const auto start = std::chrono::steady_clock::now();
  ASSERT_FALSE(slow_headers.Connect(server_->port()));
  ASSERT_FALSE(slow_body.Connect(server_->port()));
  ASSERT_FALSE(slow_headers.Send("GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  ASSERT_FALSE(slow_body.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-a-bit"));
  auto ec = slow_headers.WaitForClose();
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  ec = slow_body.WaitForClose();
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 5s);
  // A connection that never sends anything is bounded the same way.
  TestClient silent;
  ASSERT_FALSE(silent.Connect(server_->port()));
  ec = silent.WaitForClose();
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
}

TEST_F(ServerTest, IdleKeepAliveConnectionsClose) {
  ServerOptions options = Options();
  options.idle_timeout = 1s;
  options.request_timeout = 30s;
  StartServer(EchoRouter(), options);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  EXPECT_EQ(client.Request("GET", "/echo").result_int(), 200);
  const auto start = std::chrono::steady_clock::now();
  auto ec = client.WaitForClose();
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

/// Waits (bounded, 10 s) until `value` reaches `want`; returns what it saw last.
uint64_t WaitForCount(const std::atomic<uint64_t>& value, uint64_t want) {
  for (int i = 0; i < 1000 && value.load() < want; ++i) std::this_thread::sleep_for(10ms);
  return value.load();
}

// --max-connections: at the limit a new client gets the place of the idle connection used least recently; the
// others and the new one are served, and the one closed had nothing in flight. (Before each newcomer the test
// waits until the server counts every connection idle: a client has its answer a moment before the server is
// back to waiting on that connection.)
TEST_F(ServerTest, AtTheConnectionLimitTheLeastRecentlyUsedIdleConnectionMakesRoomForANewOne) {
  ServerOptions options = Options();
  options.max_connections = 3;
  options.connection_stats = std::make_shared<ConnectionStats>();
  StartServer(EchoRouter(), options);
  const auto& stats = *options.connection_stats;
  TestClient oldest, second, third, newcomer;
  ASSERT_FALSE(oldest.Connect(server_->port()));
  EXPECT_EQ(oldest.Request("GET", "/echo").result_int(), 200);
  ASSERT_FALSE(second.Connect(server_->port()));
  EXPECT_EQ(second.Request("GET", "/echo").result_int(), 200);
  ASSERT_FALSE(third.Connect(server_->port()));
  EXPECT_EQ(third.Request("GET", "/echo").result_int(), 200);
  EXPECT_EQ(second.Request("GET", "/echo").result_int(), 200);
  EXPECT_EQ(third.Request("GET", "/echo").result_int(), 200);
  EXPECT_EQ(stats.open.load(), 3u);
  ASSERT_EQ(WaitForCount(stats.idle, 3), 3u);

  ASSERT_FALSE(newcomer.Connect(server_->port()));
  EXPECT_EQ(newcomer.Request("GET", "/echo").result_int(), 200) << newcomer.last_error().message();
  auto ec = oldest.WaitForClose();
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  EXPECT_EQ(stats.closed_idle_at_limit.load(), 1u);
  EXPECT_EQ(stats.accept_paused_at_limit.load(), 0u);
  EXPECT_EQ(second.Request("GET", "/echo").result_int(), 200) << second.last_error().message();
  EXPECT_EQ(third.Request("GET", "/echo").result_int(), 200) << third.last_error().message();
  EXPECT_EQ(newcomer.Request("GET", "/echo").result_int(), 200);
  EXPECT_EQ(stats.open.load(), 3u);
  // A connection that never sent anything is idle too (a slow-loris' silent socket). Making room for it
  // closes `second`, the least recently used now; once the others are used again, the silent one is, and it
  // goes for the next newcomer.
  ASSERT_EQ(WaitForCount(stats.idle, 3), 3u);
  TestClient silent;
  ASSERT_FALSE(silent.Connect(server_->port()));
  ASSERT_EQ(WaitForCount(stats.closed_idle_at_limit, 2), 2u);
  ec = second.WaitForClose();
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  EXPECT_EQ(third.Request("GET", "/echo").result_int(), 200);
  EXPECT_EQ(newcomer.Request("GET", "/echo").result_int(), 200);
  ASSERT_EQ(WaitForCount(stats.idle, 3), 3u);
  TestClient late;
  ASSERT_FALSE(late.Connect(server_->port()));
  EXPECT_EQ(late.Request("GET", "/echo").result_int(), 200) << late.last_error().message();
  ec = silent.WaitForClose();
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  EXPECT_EQ(stats.closed_idle_at_limit.load(), 3u);
  EXPECT_EQ(third.Request("GET", "/echo").result_int(), 200) << third.last_error().message();
  EXPECT_EQ(stats.open.load(), 3u);
}

// When every connection is in the middle of a request, a new one waits (in the listen queue) instead of
// taking the place of a request in flight, and is served as soon as one of them is answered.
TEST_F(ServerTest, AtTheConnectionLimitWithEveryConnectionBusyANewOneWaitsForARequestToEnd) {
  ServerOptions options = Options();
  options.threads = 3;  // two blocked handlers, one thread left to accept
  options.max_connections = 2;
  options.connection_stats = std::make_shared<ConnectionStats>();
  auto router = EchoRouter();
  std::mutex mu;
  std::condition_variable cv;
  int entered = 0;
  bool release = false;
  router->Add("GET", "/block", [&](Request&) {
    std::unique_lock lock(mu);
    ++entered;
    cv.notify_all();
    cv.wait_for(lock, 20s, [&] { return release; });
    return Response::Text(200, "released");
  });
  StartServer(router, options);
  const auto& stats = *options.connection_stats;
  TestClient first, second, waiting;
  ASSERT_FALSE(first.Connect(server_->port()));
  ASSERT_FALSE(second.Connect(server_->port()));
  ASSERT_FALSE(first.Send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_FALSE(second.Send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n"));
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return entered == 2; }));
  }
  ASSERT_FALSE(waiting.Connect(server_->port()));  // the kernel completes the handshake: it is queued
  ASSERT_FALSE(waiting.Send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(WaitForCount(stats.accept_paused_at_limit, 1), 1u);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(stats.closed_idle_at_limit.load(), 0u) << "a connection with a request in flight was closed";
  EXPECT_EQ(stats.open.load(), 2u);
  EXPECT_TRUE(WaitObserved(0).empty()) << "nothing is answered while both requests are held";
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  StringResponse response;
  ASSERT_FALSE(waiting.Read(response));
  EXPECT_EQ(response.result_int(), 200);
  // Both held requests were answered whole; one of the two connections, idle afterwards, made the room.
  StringResponse a, b;
  ASSERT_FALSE(first.Read(a));
  ASSERT_FALSE(second.Read(b));
  EXPECT_EQ(a.body(), "released");
  EXPECT_EQ(b.body(), "released");
  EXPECT_EQ(stats.closed_idle_at_limit.load(), 1u);
  EXPECT_EQ(stats.open.load(), 2u);
}

TEST_F(ServerTest, GracefulShutdownFinishesInFlightRequestAndRefusesNewConnections) {
  std::atomic<bool> entered{false};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  auto router = EchoRouter();
  router->Add("POST", "/slow", [&](Request&) {
    entered = true;
    released.wait_for(10s);
    return Response::Text(200, "done");
  });
  StartServer(router);
  const uint16_t port = server_->port();

  TestClient idle;  // a keep-alive connection with nothing in flight: closed right away
  ASSERT_FALSE(idle.Connect(port));
  EXPECT_EQ(idle.Request("GET", "/echo").result_int(), 200);

  StringResponse slow_response;
  boost::beast::error_code slow_error;
  std::thread slow_client([&] {
    TestClient client;
    slow_error = client.Connect(port);
    if (slow_error) return;
    slow_response = client.Request("POST", "/slow", "payload");
    slow_error = client.last_error();
  });
  for (auto deadline = std::chrono::steady_clock::now() + 5s; !entered && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(entered);

  const auto shutdown_start = std::chrono::steady_clock::now();
  std::thread stopper([&] { server_->Shutdown(10s); });

  auto ec = idle.WaitForClose();
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();

  bool refused = false;
  for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;) {
    TestClient probe(1s);
    if (probe.Connect(port) == net::error::connection_refused) {
      refused = true;
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(refused) << "new connections were still accepted during shutdown";

  release.set_value();
  slow_client.join();
  stopper.join();
  EXPECT_FALSE(slow_error) << slow_error.message();
  EXPECT_EQ(slow_response.result_int(), 200);
  EXPECT_EQ(slow_response.body(), "done");
  EXPECT_FALSE(slow_response.keep_alive());  // Connection: close while shutting down
  EXPECT_LT(std::chrono::steady_clock::now() - shutdown_start, 8s);
  server_.reset();
}

TEST_F(ServerTest, ShutdownForceClosesConnectionsAfterGrace) {
  auto router = std::make_shared<Router>();
  router->Add("GET", "/endless", [](Request&) {
    Response response;
    response.stream = [](std::string& out) -> Result<bool> {
      out.append(256 * 1024, 'z');
      return true;  // never ends: only the forced close stops it
    };
    return response;
  });
  StartServer(router);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  client.SetReceiveBuffer(64 * 1024);
  bhttp::request<bhttp::string_body> request(bhttp::verb::get, "/endless", 11);
  ASSERT_FALSE(client.Write(request));
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(boost::none);
  ASSERT_FALSE(client.ReadSome(parser));  // headers arrive; then the client stops reading
  const auto start = std::chrono::steady_clock::now();
  server_->Shutdown(300ms);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 3s);
  boost::beast::error_code ec;
  for (int i = 0; i < 100000 && !ec; ++i) ec = client.ReadSome(parser);
  EXPECT_TRUE(ec) << "the endless body should end with an error";
  EXPECT_FALSE(parser.is_done());
}

// A stream waiting for data that never comes does not hold up shutdown: the forced close ends it (the socket
// the server closed counts as a gone client), within the grace period plus the unwinding time.
TEST_F(ServerTest, ShutdownEndsAStreamWaitingForData) {
  std::atomic<int> polls{0};
  auto router = std::make_shared<Router>();
  router->Add("GET", "/waiting", [&](Request&) {
    Response response;
    response.stream = [&](std::string&) -> Result<bool> {
      ++polls;
      return true;  // nothing, ever
    };
    return response;
  });
  StartServer(router);
  TestClient client;
  ASSERT_NO_FATAL_FAILURE(OpenStream(client, "/waiting"));
  const auto start = std::chrono::steady_clock::now();
  server_->Shutdown(300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  const int after = polls.load();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(polls.load(), after) << "the stream was still polled after shutdown";
}

TEST_F(ServerTest, AddressInUseFailsCreate) {
  StartServer(EchoRouter());
  ServerOptions options = Options();
  options.listen_port = server_->port();
  auto second = Server::Create(options, EchoRouter());
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(Contains(second.error().message, "cannot listen on 127.0.0.1:" + std::to_string(server_->port())))
      << second.error().message;
}

// ---- TLS --------------------------------------------------------------------------------------------------------

class TlsServerTest : public ServerTest {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/sluice-tls-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    cert_ = dir_ + "/c.pem";
    key_ = dir_ + "/k.pem";
    std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key_ + " -out " + cert_ +
                          " -days 1 -subj /CN=127.0.0.1 >/dev/null 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << "openssl could not create a test certificate";
  }
  void TearDown() override {
    ServerTest::TearDown();
    std::filesystem::remove_all(dir_);
  }
  ServerOptions TlsOptions() const {
    ServerOptions options = Options();
    options.tls_cert_file = cert_;
    options.tls_key_file = key_;
    return options;
  }

  std::string dir_, cert_, key_;
};

TEST_F(TlsServerTest, ServesHttpsWithKeepAliveAndBodies) {
  StartServer(EchoRouter(), TlsOptions());
  TlsTestClient client;
  auto ec = client.Connect(server_->port());
  ASSERT_FALSE(ec) << ec.message();
  StringResponse response = client.Request("GET", "/echo/secure?x=1");
  ASSERT_FALSE(client.last_error()) << client.last_error().message();
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_TRUE(Contains(response.body(), "tls=1\n")) << response.body();
  EXPECT_TRUE(Contains(response.body(), "query x=1\n"));
  StringResponse post = client.Request("POST", "/echo", std::string(1'600'000, 'p'));
  ASSERT_FALSE(client.last_error()) << client.last_error().message();
  EXPECT_TRUE(Contains(post.body(), "body_size=1600000\n"));
  // The negotiated protocol honours the TLS >= 1.2 floor.
  int version = SSL_version(client.stream().native_handle());
  EXPECT_GE(version, TLS1_2_VERSION);
}

TEST_F(TlsServerTest, PlainHttpToTlsPortIsRejected) {
  StartServer(EchoRouter(), TlsOptions());
  TestClient client(3s);
  ASSERT_FALSE(client.Connect(server_->port()));
  StringResponse response = client.Request("GET", "/echo");
  EXPECT_TRUE(client.last_error());
}

TEST_F(TlsServerTest, CurlTalksToTheServer) {
  StartServer(EchoRouter(), TlsOptions());
  std::string command = "curl -sk --max-time 10 https://127.0.0.1:" + std::to_string(server_->port()) +
                        "/echo/curl?via=curl 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) output.append(buf, n);
  int status = pclose(pipe);
  ASSERT_EQ(status, 0) << "curl (installed by scripts/install-deps.sh) failed: " << output;
  EXPECT_TRUE(Contains(output, "param name=curl\n")) << output;
  EXPECT_TRUE(Contains(output, "tls=1\n")) << output;
}

TEST_F(TlsServerTest, BadCertificateOrKeyFailsCreateNamingTheFile) {
  ServerOptions options = TlsOptions();
  options.tls_cert_file = dir_ + "/missing-cert.pem";
  auto missing_cert = Server::Create(options, EchoRouter());
  ASSERT_FALSE(missing_cert.ok());
  EXPECT_TRUE(Contains(missing_cert.error().message, dir_ + "/missing-cert.pem")) << missing_cert.error().message;

  options = TlsOptions();
  options.tls_key_file = dir_ + "/missing-key.pem";
  auto missing_key = Server::Create(options, EchoRouter());
  ASSERT_FALSE(missing_key.ok());
  EXPECT_TRUE(Contains(missing_key.error().message, dir_ + "/missing-key.pem")) << missing_key.error().message;

  const std::string garbage = dir_ + "/garbage.pem";
  std::ofstream(garbage) << "not a certificate\n";
  options = TlsOptions();
  options.tls_cert_file = garbage;
  auto bad_cert = Server::Create(options, EchoRouter());
  ASSERT_FALSE(bad_cert.ok());
  EXPECT_TRUE(Contains(bad_cert.error().message, garbage)) << bad_cert.error().message;

  options = TlsOptions();
  options.tls_key_file = garbage;
  auto bad_key = Server::Create(options, EchoRouter());
  ASSERT_FALSE(bad_key.ok());
  EXPECT_TRUE(Contains(bad_key.error().message, garbage)) << bad_key.error().message;

  options = TlsOptions();
  options.tls_key_file.clear();
  auto half = Server::Create(options, EchoRouter());
  ASSERT_FALSE(half.ok());
  EXPECT_TRUE(Contains(half.error().message, "tls_key_file")) << half.error().message;
}

}  // namespace
}  // namespace sluice::http
