// clickhouse::Client: Sluice's client for ClickHouse's HTTP interface (port 8123), over http::HttpTransport.
//
// Every request is a POST to one replica named in the clickhouse:// URL:
//
//   POST /?query=INSERT%20INTO%20sluice.events%20FORMAT%20JSONEachRow&insert_quorum=2 HTTP/1.1
//   Content-Encoding: gzip
//   Authorization: Basic ***             (only when a user is configured; 18.16 knows no X-ClickHouse-Key)
//
//   <gzip of {"project_id":1,...}\n{"project_id":1,...}\n>
//
// A read or DDL sends the SQL as the body instead (no `query` parameter). SQL names every table with its
// database (EventsSchema gives the names), so no `database=` is sent. Settings (insert_quorum,
// insert_distributed_sync, max_execution_time, ...) travel as URL parameters; ClickHouse refuses unknown
// ones.
//
// This class is the one retry layer for ClickHouse (the transport never retries): an attempt that fails with
// a retryable class (unreachable, reset, 5xx-type server codes such as TOO_FEW_LIVE_REPLICAS) is retried with
// full-jitter backoff on the NEXT replica of the URL, so a stopped replica costs one failed connect. A
// request that is not marked idempotent is failed over only when nothing can have reached the server (connect
// refused). The replica that answered last is tried first next time.
//
// Thread-safe; one per process and URL.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clickhouse/url.h"
#include "common/result.h"
#include "common/secret.h"
#include "http/transport.h"

namespace sluice::clickhouse {

/// ClickHouse settings sent with a request, in order: {"insert_quorum", "2"}.
using Settings = std::vector<std::pair<std::string, std::string>>;

/// The oldest server Sluice's SQL is written for (Debian 12's package). Newer servers accept the same subset.
inline constexpr int kMinimumMajor = 18;
inline constexpr int kMinimumMinor = 16;

struct ClientOptions {
  ClickHouseUrl url;
  std::shared_ptr<http::HttpTransport> transport;
  /// Empty = ClickHouse's `default` user without a password.
  std::string user;
  Secret password;
  /// Sent with every request before the per-request settings (which may override them).
  Settings settings;
  /// Attempts per request including the first, across replicas.
  int max_attempts = 4;
  std::chrono::milliseconds base_delay{50};
  std::chrono::milliseconds max_delay{2000};
  /// Deadline of one attempt (a quorum insert waits for the replicas inside it).
  std::chrono::milliseconds attempt_timeout{60'000};
  /// Deadline of a whole request, sleeps included.
  std::chrono::milliseconds total_timeout{120'000};
  /// Backoff sleeps; injectable so tests run retry schedules instantly.
  std::function<void(std::chrono::milliseconds)> sleep;
};

struct RequestOptions {
  Settings settings;
  /// May this request be sent again after it possibly reached the server? Reads and IF NOT EXISTS DDL are;
  /// inserts are when the table deduplicates retried blocks (Replicated*MergeTree) or rows
  /// (ReplacingMergeTree read with FINAL) — true for Sluice's events table, so the default is true.
  bool idempotent = true;
  /// Send only to this replica (index into the URL's hosts); no failover. For tests and per-replica checks.
  std::optional<size_t> only_host;
  /// Overrides ClientOptions::total_timeout.
  std::optional<std::chrono::milliseconds> timeout;
};

/// A JSONEachRow insert body, gzip-compressed while rows are appended (raw JSON is never held whole), then
/// shared by every attempt of the insert. Not thread-safe.
class InsertBody {
 public:
  /// `level`: 0 = stored blocks only (gzip framing, no compression), else igzip's level 1 (isa-l).
  explicit InsertBody(int level = 1);
  ~InsertBody();
  InsertBody(InsertBody&&) noexcept;
  InsertBody& operator=(InsertBody&&) noexcept;

  /// Appends one row: a JSON object on one line (the caller renders it; no newline inside).
  void AppendRow(std::string_view json_object);
  size_t rows() const { return rows_; }
  uint64_t raw_bytes() const { return raw_bytes_; }
  /// Ends the gzip stream; the body can be sent any number of times afterwards. Appending after this is a
  /// bug.
  http::RequestBody Finish();

 private:
  void Deflate(std::string_view in, bool finish);
  struct Stream;
  std::unique_ptr<Stream> stream_;
  std::string out_;
  size_t rows_ = 0;
  uint64_t raw_bytes_ = 0;
};

/// Parsed "18.16.1" (the first three numbers of SELECT version()).
struct ServerVersion {
  int major = 0, minor = 0, patch = 0;
  std::string text;
  bool AtLeast(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
};
Result<ServerVersion> ParseServerVersion(std::string_view text);

/// Classifies a non-2xx ClickHouse HTTP answer ("Code: 60, e.displayText() = DB::Exception: ..."). The
/// numeric code goes to Error::provider_code; the class decides retries (TOO_FEW_LIVE_REPLICAS → kTransient,
/// UNKNOWN_TABLE → kNotFound, SYNTAX_ERROR/UNKNOWN_SETTING → kInvalidArgument, ...).
Error ClassifyResponse(int http_status, std::string_view body, std::string_view host);

class Client {
 public:
  /// kInvalidArgument when options are incomplete (no transport, no hosts).
  static Result<std::unique_ptr<Client>> Create(ClientOptions options);

  /// Runs a statement and returns the response body (use FORMAT JSONEachRow / TSV in `sql` to pick its
  /// shape).
  Result<std::string> Query(std::string_view sql, const RequestOptions& options = {});
  /// Runs a read and hands its answer to `sink` chunk by chunk as it arrives, so a large answer (a day of
  /// events) is never held whole. Retried and failed over like Query only while nothing has reached `sink`;
  /// a failure after that is returned (the caller discards what it got). `sink` returning false stops the
  /// read early, which is success. Send `wait_end_of_query=1` in the settings when an error in the middle of
  /// the answer must become an error status rather than text after the rows.
  Status QueryStreaming(std::string_view sql, const std::function<bool(std::string_view chunk)>& sink,
                        const RequestOptions& options = {});
  /// Runs a statement whose answer is not needed (DDL, ALTER, OPTIMIZE).
  Status Execute(std::string_view sql, const RequestOptions& options = {});
  /// INSERT INTO `table` FORMAT JSONEachRow with `body` (finished) as the gzip request body. `table` is
  /// "db.name" made of plain identifiers.
  Status InsertJsonEachRow(std::string_view table, const http::RequestBody& body,
                           const RequestOptions& options = {});

  /// SELECT version() answered by some replica.
  Result<ServerVersion> Version(const RequestOptions& options = {});
  /// Start-up check: reachable and at least 18.16. The messages name the URL's hosts and what to check.
  Status CheckServer();

  const ClickHouseUrl& url() const { return options_.url; }
  /// Index of the replica the next request goes to first.
  size_t preferred_host() const { return preferred_.load(std::memory_order_relaxed); }

 private:
  explicit Client(ClientOptions options);
  Result<http::OutboundResponse> Send(std::string_view query_param, http::RequestBody body, bool gzip_body,
                                      const RequestOptions& options,
                                      const std::function<bool(std::string_view)>* sink = nullptr);
  std::string BuildUrl(const HostPort& host, std::string_view query_param, const Settings& settings) const;

  ClientOptions options_;
  std::atomic<size_t> preferred_{0};
};

}  // namespace sluice::clickhouse
