// FaultProxy: an HTTP/1.1 proxy on 127.0.0.1 between the code under test and an upstream server (moto) that
// injects scripted faults per request, then passes through. Proves that retries ride out 500s, 503 SlowDown,
// connection resets, stalls and truncated bodies, and that persistent faults surface as classified errors.
//
//   FaultProxy proxy(moto->port());
//   proxy.Script({{FaultKind::kSlowDown}, {FaultKind::kReset, "PUT"}});  // the next matching requests
//   store = S3 client pointed at proxy.Endpoint();
//
// Every loop is bounded (poll timeouts, deadlines, stop flag), so a broken client cannot hang a test.
//
// HTTPS (Azurite in its OAuth mode): the proxy terminates TLS with a given certificate and key and connects
// upstream with TLS, trusting a given CA file and checking the certificate is for 127.0.0.1; the faults then
// happen inside the TLS connections (a reset is a TCP RST under the TLS session). Error bodies follow the
// upstream's dialect (S3's or Azure's XML). Plain HTTP with S3 bodies stays the default.
//
//   FaultProxy proxy(azurite->port(), {.tls_cert_path = cert.cert_path, .tls_key_path = cert.key_path,
//                                      .upstream_ca_path = cert.cert_path, .dialect = FaultDialect::kAzure});
//   proxy.Endpoint();   // "https://127.0.0.1:PORT"
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "support/loopback_http.h"

namespace sluice::testing {

enum class FaultKind {
  kPassThrough,    // forward untouched (useful to skip a matching request)
  kInternalError,  // 500 with an <Error><Code>InternalError</Code> body (S3's or Azure's, per the dialect)
  kSlowDown,       // 503 throttling: S3's <Code>SlowDown</Code>, or Azure's ServerBusy (also x-ms-error-code)
  kReset,          // read the request, then reset the connection (RST) without answering
  kStall,          // read the request, then send nothing for `stall` (the client's idle timeout must fire)
  kTruncateBody,   // forward, then send the upstream's headers and only half of its body, then close
};

std::string_view FaultKindName(FaultKind kind);

/// Whose error documents the proxy answers injected 500/503s with (what the client under test parses).
enum class FaultDialect {
  kS3,     // <Error><Code>…</Code><Message>…</Message><RequestId>…</RequestId></Error>, x-amz-request-id
  kAzure,  // <Error><Code>…</Code><Message>…\nRequestId:…\nTime:…</Message></Error>, x-ms-error-code
};

struct FaultProxyOptions {
  /// Serve TLS to clients with this certificate and private key (PEM files); both empty = plain HTTP.
  std::string tls_cert_path;
  std::string tls_key_path;
  /// Connect to the upstream with TLS, trusting the CA certificates in this PEM file (a self-signed server
  /// certificate is its own CA) and requiring a certificate for 127.0.0.1; empty = plain HTTP upstream.
  std::string upstream_ca_path;
  FaultDialect dialect = FaultDialect::kS3;
};

/// One scripted fault. It applies to the next request whose method equals `method` (empty = any) and whose
/// target contains `target_contains` (empty = any); `times` < 0 makes it persistent.
struct FaultRule {
  FaultKind kind = FaultKind::kPassThrough;
  std::string method;
  std::string target_contains;
  int times = 1;
  std::chrono::milliseconds stall{3000};
};

class FaultProxy {
 public:
  /// Listens on a free 127.0.0.1 port and forwards to 127.0.0.1:`upstream_port`. Check ok() after (a
  /// certificate, key or CA file that cannot be loaded is a start error).
  explicit FaultProxy(uint16_t upstream_port, FaultProxyOptions options = {});
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  /// Empty when listening; otherwise why not.
  const std::string& start_error() const { return start_error_; }
  bool ok() const { return start_error_.empty(); }
  uint16_t port() const { return port_; }
  /// "http://127.0.0.1:PORT", or "https://…" when serving TLS.
  std::string Endpoint() const;
  /// TLS handshakes with clients that failed (an untrusted certificate, a plain-HTTP client), since construction.
  int tls_handshake_failures() const { return tls_handshake_failures_.load(); }

  /// Replaces the script. Rules are consumed in order; a request matching none passes through.
  void Script(std::vector<FaultRule> rules);
  /// Drops all remaining rules.
  void Clear();

  /// Requests seen (completely read) since construction or ResetCounters().
  int requests() const { return requests_.load(); }
  /// Faults injected (kPassThrough rules excluded).
  int faults_injected() const { return faults_.load(); }
  /// Per-request log "METHOD target -> fault|status" (bounded to the last 1000 entries).
  std::vector<std::string> Log() const;
  void ResetCounters();

  /// Stops accepting, wakes stalls, closes connections and joins all threads. Idempotent.
  void Stop();

 private:
  struct Tls;   // OpenSSL contexts (fault_proxy.cc), absent for plain HTTP
  class Conn;  // a socket, with TLS over it when configured

  void AcceptLoop();
  void ServeConnection(Fd client);
  FaultRule NextFault(const WireMessage& request);
  Status Forward(const WireMessage& request, WireMessage& response);
  /// The error document for an injected 500 / 503 in the configured dialect.
  std::string ErrorResponse(FaultKind kind) const;
  void Record(std::string entry);
  /// Sleeps up to `d` or until Stop(); returns false when stopped.
  bool SleepUnlessStopped(std::chrono::milliseconds d);

  uint16_t upstream_port_;
  FaultProxyOptions options_;
  std::unique_ptr<Tls> tls_;
  uint16_t port_ = 0;
  std::string start_error_;
  Fd listen_fd_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  std::deque<FaultRule> rules_;
  std::deque<std::string> log_;
  std::vector<std::thread> workers_;
  std::vector<int> open_fds_;  // client sockets, shut down on Stop() to unblock workers

  std::atomic<int> requests_{0};
  std::atomic<int> faults_{0};
  std::atomic<int> tls_handshake_failures_{0};
};

}  // namespace sluice::testing
