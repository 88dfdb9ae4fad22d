// A tiny blocking HTTP/1.1 client for the server tests, plain or TLS, built on Beast. Every operation has a
// deadline (Beast's tcp_stream timeouts apply to async operations only, so each call runs an async operation on
// a private io_context until it completes).
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace sluice::http::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

using StringResponse = bhttp::response<bhttp::string_body>;

template <typename Stream>
class BasicTestClient {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  explicit BasicTestClient(std::chrono::milliseconds timeout = std::chrono::seconds(10)) : timeout_(timeout) {
    if constexpr (kTls) {
      ssl_ = std::make_unique<net::ssl::context>(net::ssl::context::tls_client);
      ssl_->set_verify_mode(net::ssl::verify_none);  // the test certificate is self-signed
      stream_ = std::make_unique<Stream>(ioc_, *ssl_);
    } else {
      stream_ = std::make_unique<Stream>(ioc_);
    }
  }

  /// Connects (and handshakes, for TLS) to 127.0.0.1:port.
  beast::error_code Connect(uint16_t port) {
    net::ip::tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), port);
    auto ec = Run([&](auto done) { Lowest().async_connect(endpoint, done); });
    if (ec) return ec;
    if constexpr (kTls) {
      ec = Run([&](auto done) { stream_->async_handshake(net::ssl::stream_base::client, done); });
    }
    return ec;
  }

  /// Limits the kernel receive buffer, so a test can reason about how far the server can run ahead.
  void SetReceiveBuffer(int bytes) { Lowest().socket().set_option(net::socket_base::receive_buffer_size(bytes)); }

  beast::error_code Send(std::string_view raw) {
    return Run([&](auto done) { net::async_write(*stream_, net::buffer(raw.data(), raw.size()), done); });
  }

  beast::error_code Write(bhttp::request<bhttp::string_body>& request) {
    request.prepare_payload();
    return Run([&](auto done) { bhttp::async_write(*stream_, request, done); });
  }

  /// Reads one whole response (no body size limit).
  beast::error_code Read(StringResponse& response) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(boost::none);
    auto ec = Run([&](auto done) { bhttp::async_read(*stream_, buffer_, parser, done); });
    response = parser.release();
    return ec;
  }

  /// Reads part of a response into `parser` (for streamed bodies).
  template <typename Parser>
  beast::error_code ReadSome(Parser& parser) {
    return Run([&](auto done) { bhttp::async_read_some(*stream_, buffer_, parser, done); });
  }

  /// GET/POST helper: writes the request and reads the response; `extra` headers as name/value pairs.
  StringResponse Request(std::string_view method, std::string_view target, std::string body = {},
                         std::initializer_list<std::pair<std::string_view, std::string_view>> extra = {}) {
    bhttp::request<bhttp::string_body> request(bhttp::string_to_verb(method), target, 11);
    request.set(bhttp::field::host, "127.0.0.1");
    for (const auto& [name, value] : extra) request.set(name, value);
    request.body() = std::move(body);
    StringResponse response;
    last_error_ = Write(request);
    if (!last_error_) last_error_ = Read(response);
    return response;
  }

  /// Reads until the server closes the connection; returns the error that ended the read (eof, reset) or
  /// `timeout` when the connection stayed open for the whole client timeout. Data received is discarded.
  beast::error_code WaitForClose() {
    char scratch[16 * 1024];
    for (;;) {
      auto ec = Run([&](auto done) { stream_->async_read_some(net::buffer(scratch), done); });
      if (ec) return ec;
    }
  }

  beast::error_code last_error() const { return last_error_; }
  beast::flat_buffer& buffer() { return buffer_; }
  Stream& stream() { return *stream_; }

 private:
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(*stream_); }

  template <typename Start>
  beast::error_code Run(Start start) {
    beast::error_code result;
    bool finished = false;
    Lowest().expires_after(timeout_);
    start([&result, &finished](beast::error_code ec, auto&&...) {
      result = ec;
      finished = true;
    });
    ioc_.restart();
    ioc_.run();
    return finished ? result : beast::error_code(net::error::timed_out);
  }

  net::io_context ioc_;
  std::unique_ptr<net::ssl::context> ssl_;
  std::unique_ptr<Stream> stream_;
  beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
  beast::error_code last_error_;
};

using TestClient = BasicTestClient<beast::tcp_stream>;
using TlsTestClient = BasicTestClient<beast::ssl_stream<beast::tcp_stream>>;

}  // namespace sluice::http::testing
