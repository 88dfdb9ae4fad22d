// FaultProxy: an HTTP/1.1 proxy on 127.0.0.1 between the code under test and an upstream server (moto) that
// injects scripted faults per request, then passes through. Proves that retries ride out 500s, 503 SlowDown,
// connection resets, stalls and truncated bodies, and that persistent faults surface as classified errors.
//
//   FaultProxy proxy(moto->port());
//   proxy.Script({{FaultKind::kSlowDown}, {FaultKind::kReset, "PUT"}});  // the next matching requests
//   store = S3 client pointed at proxy.Endpoint();
//
// Every loop is bounded (poll timeouts, deadlines, stop flag), so a broken client cannot hang a test.
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
  kInternalError,  // 500 with an S3 <Error><Code>InternalError</Code> body
  kSlowDown,       // 503 with an S3 <Error><Code>SlowDown</Code> body
  kReset,          // read the request, then reset the connection (RST) without answering
  kStall,          // read the request, then send nothing for `stall` (the client's idle timeout must fire)
  kTruncateBody,   // forward, then send the upstream's headers and only half of its body, then close
};

std::string_view FaultKindName(FaultKind kind);

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
  /// Listens on a free 127.0.0.1 port and forwards to 127.0.0.1:`upstream_port`. Check ok() after.
  explicit FaultProxy(uint16_t upstream_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  /// Empty when listening; otherwise why not.
  const std::string& start_error() const { return start_error_; }
  bool ok() const { return start_error_.empty(); }
  uint16_t port() const { return port_; }
  /// "http://127.0.0.1:PORT"
  std::string Endpoint() const;

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
  void AcceptLoop();
  void ServeConnection(Fd client);
  FaultRule NextFault(const WireMessage& request);
  Status Forward(const WireMessage& request, WireMessage& response);
  void Record(std::string entry);
  /// Sleeps up to `d` or until Stop(); returns false when stopped.
  bool SleepUnlessStopped(std::chrono::milliseconds d);

  uint16_t upstream_port_;
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
};

}  // namespace sluice::testing
