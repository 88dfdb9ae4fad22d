// The Beast/Asio implementation of http::Server: one C++20 coroutine per connection, run on a strand so a
// connection's requests are processed strictly one after another (pipelining-safe), while connections spread
// over the I/O threads.
#include "http/server.h"

#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <fstream>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include "common/thread_name.h"

namespace sluice::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using beast::error_code;
using std::chrono::steady_clock;

constexpr auto kUseTuple = net::as_tuple(net::use_awaitable);
/// Request line + headers. /track and /engage GET carry the whole payload base64-encoded in `?data=`, so the
/// target alone may be tens of KB; 64 KiB leaves room for ≥ 32 KB targets plus ordinary headers.
constexpr uint32_t kMaxHeaderBytes = 64 * 1024;
/// Bytes read per read_some while waiting for a request to start.
constexpr size_t kFirstReadBytes = 16 * 1024;
/// How long a closing connection waits for the peer: draining unread request bytes after an early error
/// response (so the kernel does not answer them with a RST that destroys our response), or for TLS close_notify.
constexpr auto kLingerTime = std::chrono::seconds(1);
/// How long a streamed response waits before asking a producer that had nothing ready again (BodyProducer).
constexpr std::chrono::milliseconds kStreamIdleWaitFirst{1};
constexpr std::chrono::milliseconds kStreamIdleWaitMax{20};
/// At max_connections with every connection busy, how often the accept loop looks for one that ended.
constexpr std::chrono::milliseconds kConnectionLimitPoll{5};
/// After the grace period and the forced close, how long Shutdown lets connections unwind before stopping
/// the io_context outright.
constexpr auto kForcedCloseWait = std::chrono::milliseconds(250);

// ---- small helpers --------------------------------------------------------------------------------------------

/// RFC 9110 IMF-fixdate, cached per thread for the current second (formatting per response is measurable).
const std::string& HttpDate() {
  thread_local std::time_t cached_second = 0;
  thread_local std::string cached;
  std::time_t now = std::time(nullptr);
  if (now != cached_second || cached.empty()) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    size_t n = std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached.assign(buf, n);
    cached_second = now;
  }
  return cached;
}

std::string RemoteIp(const tcp::socket& socket) {
  error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec) return {};
  auto address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

/// Splits the request target into a decoded path and query. Boost.URL handles origin-form and absolute-form
/// targets; a target it rejects (SDKs and hand-written curl commands send `|`, `"`, `{` unescaped) is split
/// at the first '?' instead of being refused, since Beast already accepted it as HTTP.
void SplitTarget(std::string_view target, Request& request) {
  std::string_view encoded_path = target;
  std::string_view encoded_query;
  auto parsed = boost::urls::parse_uri_reference(target);
  if (parsed) {
    encoded_path = std::string_view(parsed->encoded_path());
    if (parsed->has_query()) encoded_query = std::string_view(parsed->encoded_query());
  } else {
    size_t hash = target.find('#');
    if (hash != std::string_view::npos) target = target.substr(0, hash);
    size_t question = target.find('?');
    encoded_path = target.substr(0, question);
    if (question != std::string_view::npos) encoded_query = target.substr(question + 1);
  }
  auto path = PercentDecode(encoded_path, /*plus_as_space=*/false);
  request.path = path ? std::move(*path) : std::string(encoded_path);
  if (request.path.empty()) request.path = "/";
  request.query = ParseForm(encoded_query);
}

bool IsHttpParseError(const error_code& ec) {
  static const auto& category = bhttp::make_error_code(bhttp::error::bad_target).category();
  return ec.category() == category && ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message &&
         ec != bhttp::error::need_more;
}

/// The method label of a finished request: a method token is whatever the client sent, so labelling metrics
/// with it raw would let anyone add a time series per request (4,000 odd methods made a 198 MB scrape).
std::string_view MetricsMethod(std::string_view method) {
  static constexpr std::string_view kKnown[] = {"GET",     "HEAD",  "POST",  "PUT",    "DELETE",
                                                "OPTIONS", "PATCH", "TRACE", "CONNECT"};
  for (std::string_view known : kKnown) {
    if (method == known) return known;
  }
  return "other";
}

/// RFC 9112 §6.1: the only transfer coding a request may use here is exactly `chunked`. Anything else
/// (`chunked, identity`, `identity`, `gzip`, `xchunked`, several Transfer-Encoding fields) is refused, since
/// a proxy in front may frame such a body differently from us and smuggle the rest in as a second request.
/// Returns the reason to refuse, or nullopt when the request has no Transfer-Encoding or exactly `chunked`.
template <typename Fields>
std::optional<std::string> UnsupportedTransferEncoding(const Fields& fields) {
  size_t count = 0;
  std::string_view value;
  for (const auto& field : fields) {
    if (field.name() != bhttp::field::transfer_encoding) continue;
    ++count;
    value = field.value();
  }
  if (count == 0) return std::nullopt;
  if (count > 1) return std::string("more than one Transfer-Encoding header; send exactly one: chunked");
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (beast::iequals(value, "chunked")) return std::nullopt;
  return std::string(
      "unsupported Transfer-Encoding; the only transfer coding accepted is exactly \"chunked\" "
      "(send Content-Length or Transfer-Encoding: chunked)");
}

bool IsHopByHop(std::string_view name) {
  return beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding") ||
         beast::iequals(name, "connection");
}

template <typename Message>
void FillHeaders(Message& res, int status, unsigned version, const Headers& headers, bool keep_alive) {
  res.version(version);
  res.result(static_cast<unsigned>(status));
  bool has_date = false;
  bool has_server = false;
  for (const auto& [name, value] : headers.entries()) {
    if (IsHopByHop(name)) continue;
    has_date = has_date || beast::iequals(name, "date");
    has_server = has_server || beast::iequals(name, "server");
    res.insert(name, value);
  }
  if (!has_server) res.set(bhttp::field::server, "sluice");
  if (!has_date) res.set(bhttp::field::date, HttpDate());
  res.keep_alive(keep_alive);
}

/// True when the peer has closed its side or reset the connection (its FIN or RST has arrived), whatever it
/// sent before (a pipelined byte, a TLS close_notify): poll's POLLRDHUP, without waiting or reading.
/// A socket the server closed itself (shutdown's forced close) counts as closed.
bool PeerClosed(tcp::socket& socket) {
  if (!socket.is_open()) return true;
  pollfd p{socket.native_handle(), POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

Result<bool> CallProducer(const BodyProducer& producer, std::string& chunk) {
  try {
    return producer(chunk);
  } catch (const std::exception& e) {
    return Internal(std::string("response body producer threw: ") + e.what());
  } catch (...) {
    return Internal("response body producer threw");
  }
}

Status CheckReadable(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) return InvalidArgument("cannot read TLS " + std::string(what) + " file " + path + ": no such file or not readable");
  return OkStatus();
}

// ---- connection bookkeeping -------------------------------------------------------------------------------------

/// What Shutdown needs to reach a connection. `stream` and `idle` are touched only on the connection's
/// strand. `idle` and `last_request` are also read by the accept loop (atomics) to pick a connection to close
/// at max_connections; it closes it on the connection's strand, and only if it is still idle there.
struct Connection {
  Connection(net::any_io_executor ex, steady_clock::time_point accepted)
      : executor(std::move(ex)), last_request(accepted.time_since_epoch().count()) {}
  net::any_io_executor executor;
  beast::tcp_stream* stream = nullptr;
  /// Waiting for a request to start (a new connection, or keep-alive between requests): nothing is in flight,
  /// so shutdown and the connection limit may close it right away.
  std::atomic<bool> idle{true};
  /// When its latest request began, or when it was accepted (steady clock, ns): at the connection limit the
  /// idle connection least recently used goes first. Stamped before the request is answered, so a client that
  /// has its answer knows its connection counts as used.
  std::atomic<int64_t> last_request;
  /// The accept loop has asked the strand to close it (so it does not pick it twice).
  std::atomic<bool> closing_at_limit{false};

  /// On the strand. `stats` (may be null) counts idle connections.
  void SetIdle(ConnectionStats* stats) {
    if (!idle.exchange(true) && stats) stats->idle.fetch_add(1);
  }
  void StartRequest(ConnectionStats* stats) {
    last_request.store(steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    if (idle.exchange(false) && stats) stats->idle.fetch_sub(1);
  }
};

/// Touches `bytes` of this thread's malloc heap and gives them back to it (not to the kernel, when the process
/// keeps freed memory), so later allocations of this thread land on pages that are already mapped.
void WarmUpThreadHeap(size_t bytes) {
  auto* p = static_cast<volatile char*>(std::malloc(bytes));
  if (p == nullptr) return;
  for (size_t off = 0; off < bytes; off += 4096) p[off] = 0;
  std::free(const_cast<char*>(p));
}

class ServerImpl;

/// Held by a connection coroutine's frame (as a parameter, so it is released even when the frame is destroyed
/// without ever running); unregisters the connection.
class ConnectionLease {
 public:
  ConnectionLease(ServerImpl* server, uint64_t id, std::shared_ptr<Connection> connection)
      : server_(server), id_(id), connection_(std::move(connection)) {}
  ConnectionLease(ConnectionLease&& other) noexcept
      : server_(std::exchange(other.server_, nullptr)), id_(other.id_), connection_(std::move(other.connection_)) {}
  ConnectionLease& operator=(ConnectionLease&&) = delete;
  ~ConnectionLease();
  Connection& connection() const { return *connection_; }

 private:
  ServerImpl* server_;
  uint64_t id_;
  std::shared_ptr<Connection> connection_;
};

/// Clears Connection::stream before the stream it points to is destroyed.
struct StreamRegistration {
  StreamRegistration(Connection& c, beast::tcp_stream& stream) : connection(c) { connection.stream = &stream; }
  ~StreamRegistration() { connection.stream = nullptr; }
  StreamRegistration(const StreamRegistration&) = delete;
  StreamRegistration& operator=(const StreamRegistration&) = delete;
  Connection& connection;
};

// ---- the server -------------------------------------------------------------------------------------------------

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& options, std::shared_ptr<const Router> router, RequestObserver observer)
      : options_(options),
        router_(std::move(router)),
        observer_(std::move(observer)),
        ioc_(std::max(1, options.threads)),
        acceptor_(net::make_strand(ioc_)) {}

  ~ServerImpl() override {
    if (started_) Shutdown(std::chrono::milliseconds(0));
  }

  Status Init() {
    if (!router_) return InvalidArgument("http server needs a router");
    if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
      return InvalidArgument("TLS needs both tls_cert_file and tls_key_file (only one is set)");
    }
    if (!options_.tls_cert_file.empty()) SLUICE_TRY(InitTls());

    error_code ec;
    tcp::endpoint endpoint;
    auto address = net::ip::make_address(options_.listen_host, ec);
    if (!ec) {
      endpoint = tcp::endpoint(address, options_.listen_port);
    } else {
      tcp::resolver resolver(ioc_);
      auto results = resolver.resolve(options_.listen_host, std::to_string(options_.listen_port),
                                      tcp::resolver::passive, ec);
      if (ec || results.empty()) {
        return InvalidArgument("cannot resolve listen host '" + options_.listen_host + "': " + ec.message());
      }
      endpoint = results.begin()->endpoint();
    }
    const std::string where = options_.listen_host + ":" + std::to_string(options_.listen_port);
    if (acceptor_.open(endpoint.protocol(), ec); ec) return Unavailable("cannot listen on " + where + ": " + ec.message());
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (acceptor_.bind(endpoint, ec); ec) {
      return Unavailable("cannot listen on " + where + ": " + ec.message() +
                         (ec == net::error::address_in_use ? " (another process is using the port)" : ""));
    }
    if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec) {
      return Unavailable("cannot listen on " + where + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint(ec).port();
    return OkStatus();
  }

  uint16_t port() const override { return port_; }

  void Start() override {
    std::lock_guard lock(mu_);
    if (started_ || shutdown_) return;
    started_ = true;
    work_.emplace(ioc_.get_executor());
    net::co_spawn(acceptor_.get_executor(), AcceptLoop(), net::detached);
    int threads = std::max(1, options_.threads);
    threads_.reserve(static_cast<size_t>(threads));
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        SetCurrentThreadName("sl-http");
        // Raising one's own nice value needs no privilege; failing to is harmless (scheduling only).
        if (options_.worker_niceness > 0) {
          (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), options_.worker_niceness);
        }
        if (options_.worker_start) options_.worker_start();
        if (options_.worker_heap_warmup_bytes > 0) WarmUpThreadHeap(options_.worker_heap_warmup_bytes);
        ioc_.run();
      });
    }
  }

  void Shutdown(std::chrono::milliseconds grace) override {
    {
      std::lock_guard lock(mu_);
      if (shutdown_) return;
      shutdown_ = true;
    }
    stopping_.store(true);
    if (!started_) {
      error_code ec;
      acceptor_.close(ec);
      return;
    }
    net::post(acceptor_.get_executor(), [this] {
      error_code ec;
      acceptor_.close(ec);
    });
    // Idle keep-alive connections have nothing in flight: close them now. Busy ones see stopping_ after their
    // response (sent with Connection: close) and end themselves.
    ForEachConnection([](Connection& c) {
      if (c.idle && c.stream != nullptr) c.stream->close();
    });
    std::unique_lock lock(mu_);
    auto all_closed = [this] { return connections_.empty(); };
    if (!cv_.wait_for(lock, grace, all_closed)) {
      lock.unlock();
      ForEachConnection([](Connection& c) {
        if (c.stream != nullptr) c.stream->close();
      });
      lock.lock();
      cv_.wait_for(lock, kForcedCloseWait, all_closed);
    }
    lock.unlock();
    work_.reset();
    // A handler that is still blocked keeps its thread until it returns; join waits for it (nothing else can).
    ioc_.stop();
    for (auto& thread : threads_) thread.join();
    threads_.clear();
  }

  void Release(uint64_t id) {
    std::lock_guard lock(mu_);
    if (auto it = connections_.find(id); it != connections_.end()) {
      // Its coroutine has ended: nothing changes `idle` any more.
      if (it->second->idle.exchange(false) && stats_) stats_->idle.fetch_sub(1);
      connections_.erase(it);
    }
    if (stats_) stats_->open.store(connections_.size());
    if (connections_.empty()) cv_.notify_all();
  }

 private:
  Status InitTls() {
    SLUICE_TRY(CheckReadable(options_.tls_cert_file, "certificate"));
    SLUICE_TRY(CheckReadable(options_.tls_key_file, "key"));
    ssl_ = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
    SSL_CTX_set_min_proto_version(ssl_->native_handle(), TLS1_2_VERSION);
    ssl_->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                      net::ssl::context::no_sslv3 | net::ssl::context::single_dh_use);
    error_code ec;
    ssl_->use_certificate_chain_file(options_.tls_cert_file, ec);
    if (ec) {
      return InvalidArgument("cannot load TLS certificate file " + options_.tls_cert_file + ": " + ec.message() +
                             " (expected a PEM certificate chain)");
    }
    ssl_->use_private_key_file(options_.tls_key_file, net::ssl::context::pem, ec);
    if (ec) {
      return InvalidArgument("cannot load TLS key file " + options_.tls_key_file + ": " + ec.message() +
                             " (expected an unencrypted PEM private key matching " + options_.tls_cert_file + ")");
    }
    if (SSL_CTX_check_private_key(ssl_->native_handle()) != 1) {
      return InvalidArgument("TLS key file " + options_.tls_key_file + " does not match certificate file " +
                             options_.tls_cert_file);
    }
    return OkStatus();
  }

  template <typename F>
  void ForEachConnection(F f) {
    std::lock_guard lock(mu_);
    for (const auto& [id, connection] : connections_) {
      net::post(connection->executor, [connection, f] { f(*connection); });
    }
  }

  net::awaitable<void> AcceptLoop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(net::make_strand(ioc_), kUseTuple);
      if (stopping_.load() || !acceptor_.is_open() || ec == net::error::operation_aborted) co_return;
      if (ec) {
        // EMFILE/ENFILE and friends: back off instead of spinning on a listen socket that stays readable.
        net::steady_timer timer(acceptor_.get_executor(), std::chrono::milliseconds(50));
        co_await timer.async_wait(kUseTuple);
        continue;
      }
      const auto accepted = steady_clock::now();  // before any wait for room: when the client came
      if (!co_await MakeRoom()) co_return;
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto connection = std::make_shared<Connection>(socket.get_executor(), accepted);
      uint64_t id;
      {
        std::lock_guard lock(mu_);
        id = next_id_++;
        connections_.emplace(id, connection);
        if (stats_) {
          stats_->open.store(connections_.size());
          stats_->idle.fetch_add(1);  // a new connection is idle until its first request begins
        }
      }
      auto executor = socket.get_executor();
      net::co_spawn(executor, ServeConnection(tcp::socket(std::move(socket)), ConnectionLease(this, id, connection)),
                    net::detached);
    }
  }

  /// Returns once fewer than max_connections are open (false: the server is stopping). Called with a newly
  /// accepted connection in hand, so it works only while a client is actually waiting: at the limit it closes
  /// the idle connection used least recently, and when every connection is busy it waits (polling, every
  /// kConnectionLimitPoll) for one to end.
  net::awaitable<bool> MakeRoom() {
    std::optional<net::steady_timer> timer;
    bool paused = false;
    for (;;) {
      if (stopping_.load()) co_return false;
      std::shared_ptr<Connection> victim;
      {
        std::lock_guard lock(mu_);
        if (connections_.size() < max_connections_) co_return true;
        for (const auto& [id, c] : connections_) {
          if (!c->idle.load() || c->closing_at_limit.load()) continue;
          if (!victim || c->last_request.load(std::memory_order_relaxed) <
                             victim->last_request.load(std::memory_order_relaxed)) {
            victim = c;
          }
        }
        if (victim) victim->closing_at_limit.store(true);
      }
      if (victim) {
        net::post(victim->executor, [victim, stats = stats_] {
          // On the connection's strand: close it only if it is still between requests.
          if (victim->idle.load() && victim->stream != nullptr) {
            victim->stream->close();
            if (stats) stats->closed_idle_at_limit.fetch_add(1);
          } else {
            victim->closing_at_limit.store(false);
          }
        });
      } else if (!paused) {
        paused = true;
        if (stats_) stats_->accept_paused_at_limit.fetch_add(1);
      }
      if (!timer) timer.emplace(acceptor_.get_executor());
      timer->expires_after(kConnectionLimitPoll);
      co_await timer->async_wait(kUseTuple);
    }
  }

  net::awaitable<void> ServeConnection(tcp::socket socket, ConnectionLease lease) {
    std::string remote_ip = RemoteIp(socket);
    if (ssl_) {
      beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *ssl_);
      co_await Serve(stream, lease.connection(), remote_ip);
    } else {
      beast::tcp_stream stream(std::move(socket));
      co_await Serve(stream, lease.connection(), remote_ip);
    }
  }

  template <typename Stream>
  static constexpr bool kIsTls = !std::is_same_v<Stream, beast::tcp_stream>;

  template <typename Stream>
  net::awaitable<void> Serve(Stream& stream, Connection& connection, const std::string& remote_ip) {
    beast::tcp_stream& tcp_layer = beast::get_lowest_layer(stream);
    StreamRegistration registration(connection, tcp_layer);
    if (stopping_.load()) co_return;
    // The first request (and the TLS handshake) must arrive within request_timeout of connecting.
    tcp_layer.expires_after(options_.request_timeout);
    if constexpr (kIsTls<Stream>) {
      auto [ec] = co_await stream.async_handshake(net::ssl::stream_base::server, kUseTuple);
      if (ec) co_return;
    }
    beast::flat_buffer buffer;
    for (bool first = true;; first = false) {
      if (buffer.size() == 0) {
        // Idle between requests: the only state in which shutdown may close the connection right away.
        connection.SetIdle(stats_.get());
        if (stopping_.load()) break;
        if (!first) tcp_layer.expires_after(options_.idle_timeout);
        auto [ec, n] = co_await stream.async_read_some(buffer.prepare(kFirstReadBytes), kUseTuple);
        if (ec) co_return;  // the registration's end takes it off the idle count
        buffer.commit(n);
      }
      connection.StartRequest(stats_.get());  // a request's first bytes, or a pipelined one already buffered
      if (stopping_.load()) break;  // shutdown began: no new request is read on this connection
      if (!first) tcp_layer.expires_after(options_.request_timeout);
      auto outcome = co_await ServeRequest(stream, buffer, remote_ip);
      if (outcome == Outcome::kAbort) co_return;
      if (outcome == Outcome::kLinger) {
        co_await Linger(tcp_layer);
        co_return;
      }
      if (outcome == Outcome::kClose) break;
    }
    co_await CloseGracefully(stream);
  }

  enum class Outcome {
    kKeepAlive,  // ready for the next request
    kClose,      // response complete, close cleanly
    kLinger,     // responded before reading the whole request: half-close and drain
    kAbort,      // transport error or truncated response: just drop the connection
  };

  template <typename Stream>
  net::awaitable<Outcome> ServeRequest(Stream& stream, beast::flat_buffer& buffer, const std::string& remote_ip) {
    beast::tcp_stream& tcp_layer = beast::get_lowest_layer(stream);
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(options_.max_body_bytes);
    const auto start = steady_clock::now();

    auto [header_ec, header_bytes] = co_await bhttp::async_read_header(stream, buffer, parser, kUseTuple);
    if (!header_ec) {
      // Checked before any body byte is read: the connection closes after the 400, so bytes of a body we
      // cannot frame are never parsed as a next request.
      if (auto refused = UnsupportedTransferEncoding(parser.get())) {
        co_return co_await SendError(stream, 400, *refused, std::string(parser.get().method_string()), start);
      }
    }
    if (!header_ec && beast::iequals(parser.get()[bhttp::field::expect], "100-continue") &&
        !parser.is_done()) {
      // curl and some SDKs wait (up to 1 s) for this before sending a body larger than 1 MB.
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      auto [ec, n] =
          co_await net::async_write(stream, net::buffer(kContinue.data(), kContinue.size()), kUseTuple);
      if (ec) co_return Outcome::kAbort;
    }
    error_code ec = header_ec;
    if (!ec && !parser.is_done()) {
      auto [body_ec, body_bytes] = co_await bhttp::async_read(stream, buffer, parser, kUseTuple);
      ec = body_ec;
    }
    const std::string method(parser.get().method_string());
    if (ec == bhttp::error::body_limit) {
      // Beast reports an oversized Content-Length while still parsing the header, when content_length() is not
      // yet valid; the header field itself is.
      const std::string_view declared = parser.get()[bhttp::field::content_length];
      std::string message = !declared.empty()
                                ? "request body of " + std::string(declared) + " bytes exceeds the limit of " +
                                      std::to_string(options_.max_body_bytes) + " bytes"
                                : "request body exceeds the limit of " + std::to_string(options_.max_body_bytes) + " bytes";
      // A browser SDK reads a 413 to split its batch: on CORS paths it must be readable cross-origin.
      Headers cors;
      router_->AddCrossOriginHeaders(parser.get().target(), parser.get()[bhttp::field::origin], cors);
      co_return co_await SendError(stream, 413, message, method, start, std::move(cors));
    }
    if (ec == bhttp::error::header_limit) {
      co_return co_await SendError(
          stream, 431, "request line and headers exceed " + std::to_string(kMaxHeaderBytes) + " bytes", method, start);
    }
    if (IsHttpParseError(ec)) {
      co_return co_await SendError(stream, 400, "malformed HTTP request: " + ec.message(), method, start);
    }
    if (ec) co_return Outcome::kAbort;  // timeout, reset, EOF mid-request: nobody to answer

    auto& message = parser.get();
    const unsigned version = message.version();
    const bool client_keep_alive = message.keep_alive();
    Request request;
    request.method = method;
    request.target = std::string(message.target());
    SplitTarget(request.target, request);
    for (const auto& field : message) request.headers.Add(std::string(field.name_string()), std::string(field.value()));
    request.body = std::move(message.body());
    request.remote_ip = remote_ip;
    request.tls = kIsTls<Stream>;
    const size_t bytes_in = request.body.size();

    std::string label;
    Response response = router_->Dispatch(request, &label);
    if (response.status < 100 || response.status > 999) {
      response = Response::Json(500, JsonErrorBody("handler returned invalid HTTP status " +
                                                   std::to_string(response.status)));
    }
    bool keep_alive = client_keep_alive && !stopping_.load();
    if (auto connection = response.headers.Get("Connection"); connection && beast::iequals(*connection, "close")) {
      keep_alive = false;
    }

    // Writing gets its own deadline: the handler may have used up the read deadline.
    tcp_layer.expires_after(options_.request_timeout);
    Outcome outcome;
    if (response.stream) {
      outcome = co_await WriteStream(stream, response, version, keep_alive);
    } else {
      outcome = co_await WriteBuffered(stream, response, version, keep_alive, request.method == "HEAD");
    }
    // Truncated or failed responses are requests that finished too (badly): they are recorded alike.
    if (observer_) {
      observer_(label, MetricsMethod(request.method), response.status,
                std::chrono::duration<double>(steady_clock::now() - start).count(), bytes_in);
    }
    co_return outcome;
  }

  template <typename Stream>
  net::awaitable<Outcome> WriteBuffered(Stream& stream, Response& response, unsigned version, bool keep_alive,
                                        bool head) {
    bhttp::response<bhttp::string_body> res;
    FillHeaders(res, response.status, version, response.headers, keep_alive);
    const int status = response.status;
    if (status < 200 || status == 204 || status == 304) {
      response.body.clear();  // these statuses carry no body (RFC 9110 §6.4.1)
    }
    res.body() = std::move(response.body);
    res.prepare_payload();
    error_code ec;
    if (head) {
      bhttp::response_serializer<bhttp::string_body> serializer(res);
      auto [write_ec, n] = co_await bhttp::async_write_header(stream, serializer, kUseTuple);
      ec = write_ec;
    } else {
      auto [write_ec, n] = co_await bhttp::async_write(stream, res, kUseTuple);
      ec = write_ec;
    }
    if (ec) co_return Outcome::kAbort;
    co_return keep_alive ? Outcome::kKeepAlive : Outcome::kClose;
  }

  /// Chunked transfer encoding; each produced chunk is written before the next is asked for, so memory stays
  /// at one chunk however long the body. HTTP/1.0 clients get the raw bytes and a close instead.
  template <typename Stream>
  net::awaitable<Outcome> WriteStream(Stream& stream, Response& response, unsigned version, bool keep_alive) {
    beast::tcp_stream& tcp_layer = beast::get_lowest_layer(stream);
    const bool chunked = version >= 11;
    if (!chunked) keep_alive = false;
    bhttp::response<bhttp::empty_body> res;
    FillHeaders(res, response.status, version, response.headers, keep_alive);
    res.chunked(chunked);
    bhttp::response_serializer<bhttp::empty_body> serializer(res);
    {
      auto [ec, n] = co_await bhttp::async_write_header(stream, serializer, kUseTuple);
      if (ec) co_return Outcome::kAbort;
    }
    std::string chunk;
    // A producer with nothing ready (its data comes from another thread, e.g. a store scan) is asked again
    // after a wait that doubles while nothing comes: this I/O thread serves other connections meanwhile.
    net::steady_timer idle(co_await net::this_coro::executor);
    std::chrono::milliseconds idle_wait = kStreamIdleWaitFirst;
    for (;;) {
      chunk.clear();
      Result<bool> more = CallProducer(response.stream, chunk);
      // A producer error truncates the body: closing without the last chunk tells the client it is incomplete.
      if (!more.ok()) co_return Outcome::kAbort;
      if (chunk.empty() && *more) {
        // Nothing is being written, so a client that went away would go unnoticed until the producer has
        // data: look for its FIN (or reset) without consuming anything, and drop the stream at once.
        if (PeerClosed(tcp_layer.socket())) co_return Outcome::kAbort;
        idle.expires_after(idle_wait);
        auto [wait_ec] = co_await idle.async_wait(kUseTuple);
        if (wait_ec) co_return Outcome::kAbort;  // the server is stopping
        idle_wait = std::min(idle_wait * 2, kStreamIdleWaitMax);
        continue;
      }
      idle_wait = kStreamIdleWaitFirst;
      if (!chunk.empty()) {
        tcp_layer.expires_after(options_.request_timeout);
        error_code ec;
        if (chunked) {
          // An empty chunk would be the terminator, hence the check above.
          auto [write_ec, n] = co_await net::async_write(stream, bhttp::make_chunk(net::buffer(chunk)), kUseTuple);
          ec = write_ec;
        } else {
          auto [write_ec, n] = co_await net::async_write(stream, net::buffer(chunk), kUseTuple);
          ec = write_ec;
        }
        if (ec) co_return Outcome::kAbort;
      }
      if (!*more) break;
    }
    if (chunked) {
      tcp_layer.expires_after(options_.request_timeout);
      auto [ec, n] = co_await net::async_write(stream, bhttp::make_chunk_last(), kUseTuple);
      if (ec) co_return Outcome::kAbort;
    }
    co_return keep_alive ? Outcome::kKeepAlive : Outcome::kClose;
  }

  /// Answers a request the server refused before routing it; the connection then closes (lingering, since the
  /// request may not have been read to its end).
  template <typename Stream>
  net::awaitable<Outcome> SendError(Stream& stream, int status, const std::string& message, const std::string& method,
                                    steady_clock::time_point start, Headers headers = {}) {
    beast::get_lowest_layer(stream).expires_after(options_.request_timeout);
    bhttp::response<bhttp::string_body> res;
    headers.Add("Content-Type", "application/json");
    FillHeaders(res, status, 11, headers, /*keep_alive=*/false);
    res.body() = JsonErrorBody(message);
    res.prepare_payload();
    auto [ec, n] = co_await bhttp::async_write(stream, res, kUseTuple);
    if (observer_) {
      observer_("unmatched", MetricsMethod(method), status,
                std::chrono::duration<double>(steady_clock::now() - start).count(), 0);
    }
    co_return ec ? Outcome::kAbort : Outcome::kLinger;
  }

  /// Half-closes and discards what the client is still sending, for at most kLingerTime, so that our error
  /// response is not wiped out by a RST for unread data.
  net::awaitable<void> Linger(beast::tcp_stream& tcp_layer) {
    error_code ignored;
    tcp_layer.socket().shutdown(tcp::socket::shutdown_send, ignored);
    tcp_layer.expires_after(kLingerTime);
    std::array<char, 16 * 1024> discard;
    for (;;) {
      auto [ec, n] = co_await tcp_layer.async_read_some(net::buffer(discard), kUseTuple);
      if (ec) break;
    }
  }

  template <typename Stream>
  net::awaitable<void> CloseGracefully(Stream& stream) {
    beast::tcp_stream& tcp_layer = beast::get_lowest_layer(stream);
    if constexpr (kIsTls<Stream>) {
      // close_notify, so the client can tell a complete close from a truncation attack; bounded wait.
      tcp_layer.expires_after(kLingerTime);
      auto [ec] = co_await stream.async_shutdown(kUseTuple);
    } else {
      error_code ignored;
      tcp_layer.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  const ServerOptions options_;
  const std::shared_ptr<const Router> router_;
  const RequestObserver observer_;
  std::unique_ptr<net::ssl::context> ssl_;
  uint16_t port_ = 0;

  // Declared before ioc_: connection frames destroyed by ~io_context still unregister here.
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<uint64_t, std::shared_ptr<Connection>> connections_;
  uint64_t next_id_ = 0;
  bool started_ = false;
  bool shutdown_ = false;
  std::atomic<bool> stopping_{false};
  const size_t max_connections_ = std::max<size_t>(1, options_.max_connections);
  const std::shared_ptr<ConnectionStats> stats_ = options_.connection_stats;

  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

ConnectionLease::~ConnectionLease() {
  if (server_ != nullptr) server_->Release(id_);
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options, std::shared_ptr<const Router> router,
                                               RequestObserver observer) {
  auto server = std::make_unique<ServerImpl>(options, std::move(router), std::move(observer));
  SLUICE_TRY(server->Init());
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace sluice::http
