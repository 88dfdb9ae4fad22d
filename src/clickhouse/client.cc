#include "clickhouse/client.h"

#include <fmt/format.h>
#include <isa-l/igzip_lib.h>

#include <charconv>
#include <stdexcept>
#include <vector>
#include <random>
#include <thread>

#include "common/crypto.h"
#include "common/vector_state.h"

namespace sluice::clickhouse {
namespace {

using SteadyClock = std::chrono::steady_clock;

// ClickHouse error codes (src/Common/ErrorCodes.cpp) that Sluice treats specially. Stable across versions.
enum : int {
  kUnknownTable = 60,
  kSyntaxError = 62,
  kUnknownDatabase = 81,
  kUnknownSetting = 115,
  kTimeoutExceeded = 159,
  kUnknownUser = 192,
  kWrongPassword = 193,
  kRequiredPassword = 194,
  kTooManySimultaneousQueries = 202,
  kSocketTimeout = 209,
  kNetworkError = 210,
  kNoFreeConnection = 211,
  kTableIsReadOnly = 242,  // the replica lost its ZooKeeper session
  kTooManyParts = 252,     // parts_to_throw_insert: back off, merges catch up
  kAllConnectionTriesFailed = 279,
  kTooFewLiveReplicas = 285,  // insert_quorum cannot be met right now
  kUnsatisfiedQuorumForPreviousWrite = 286,
  kAllReplicasAreStale = 369,
  kUnknownStatusOfInsert = 319,
  kReadonly = 164,
  kAccessDenied = 497,
  kAuthenticationFailed = 516,
  kKeeperException = 999,
};

ErrorCode ClassOf(int code) {
  switch (code) {
    case kUnknownTable:
    case kUnknownDatabase:
      return ErrorCode::kNotFound;
    case kSyntaxError:
    case kUnknownSetting:
      return ErrorCode::kInvalidArgument;
    case kUnknownUser:
    case kWrongPassword:
    case kRequiredPassword:
    case kAuthenticationFailed:
      return ErrorCode::kUnauthenticated;
    case kAccessDenied:
    case kReadonly:
      return ErrorCode::kAccessDenied;
    case kTooManySimultaneousQueries:
    case kTooManyParts:
      return ErrorCode::kThrottled;
    case kTimeoutExceeded:
    case kSocketTimeout:
    case kNetworkError:
    case kNoFreeConnection:
    case kTableIsReadOnly:
    case kAllConnectionTriesFailed:
    case kTooFewLiveReplicas:
    case kUnsatisfiedQuorumForPreviousWrite:
    case kAllReplicasAreStale:
    case kUnknownStatusOfInsert:
    case kKeeperException:
      return ErrorCode::kTransient;
    default:
      return ErrorCode::kPermanent;
  }
}

// RFC 3986 unreserved characters pass; everything else is %XX (the query goes into a URL parameter).
std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '_' || c == '.' || c == '~';
    if (keep) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// "db.table": always qualified, since requests carry no database= parameter.
bool IsTableName(std::string_view table) {
  size_t dot = table.find('.');
  if (dot == std::string_view::npos) return false;
  return IsPlainIdentifier(table.substr(0, dot)) && IsPlainIdentifier(table.substr(dot + 1));
}

double Uniform01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

// ---- InsertBody ----

// isa-l's igzip level 1 instead of zlib: the insert body's compression was ≈40% of a cluster node's CPU per
// ingested event with zlib level 1 (perf, bench_cluster); igzip compresses the same JSON ≈4× faster at a
// similar ratio. Rows are staged in a small buffer and compressed a chunk at a time, so a big insert is never
// held uncompressed whole and igzip is not called per row.
struct InsertBody::Stream {
  isal_zstream z{};
  std::vector<uint8_t> level_buf;
  std::string pending;  // rows not yet compressed
};

namespace {
constexpr size_t kInsertChunkBytes = 256 * 1024;
}  // namespace

InsertBody::InsertBody(int level) : stream_(std::make_unique<Stream>()) {
  isal_deflate_init(&stream_->z);
  stream_->z.gzip_flag = IGZIP_GZIP;  // Content-Encoding: gzip
  if (level > 0) {
    stream_->level_buf.resize(ISAL_DEF_LVL1_DEFAULT);
    stream_->z.level = 1;
    stream_->z.level_buf = stream_->level_buf.data();
    stream_->z.level_buf_size = static_cast<uint32_t>(stream_->level_buf.size());
  } else {
    stream_->z.level = 0;
  }
  stream_->pending.reserve(kInsertChunkBytes + 4096);
}

InsertBody::~InsertBody() = default;
InsertBody::InsertBody(InsertBody&&) noexcept = default;
InsertBody& InsertBody::operator=(InsertBody&& other) noexcept = default;

void InsertBody::Deflate(std::string_view in, bool finish) {
  isal_zstream& z = stream_->z;
  z.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uint32_t>(in.size());
  z.end_of_stream = finish ? 1 : 0;
  z.flush = NO_FLUSH;
  // Bounded: each pass either consumes input or produces output until igzip has taken all input (and, when
  // finishing, written the trailer).
  while (true) {
    const size_t before = out_.size();
    const size_t room = std::max<size_t>(in.size() / 2, 64 * 1024);
    out_.resize(before + room);
    z.next_out = reinterpret_cast<uint8_t*>(out_.data() + before);
    z.avail_out = static_cast<uint32_t>(room);
    const int rc = isal_deflate(&z);
    ClearUpperVectorState();  // isa-l leaves the AVX upper state dirty (common/vector_state.h)
    out_.resize(before + (room - z.avail_out));
    if (rc != COMP_OK) throw std::logic_error("InsertBody: igzip stream error " + std::to_string(rc));
    if (finish ? z.internal_state.state == ZSTATE_END : (z.avail_in == 0 && z.avail_out != 0)) break;
  }
}

void InsertBody::AppendRow(std::string_view json_object) {
  std::string& pending = stream_->pending;
  pending.append(json_object);
  pending.push_back('\n');
  ++rows_;
  raw_bytes_ += json_object.size() + 1;
  if (pending.size() >= kInsertChunkBytes) {
    Deflate(pending, false);
    pending.clear();
  }
}

http::RequestBody InsertBody::Finish() {
  Deflate(stream_->pending, true);
  stream_.reset();
  return http::RequestBody::FromString(std::move(out_));
}

// ---- versions and errors ----

Result<ServerVersion> ParseServerVersion(std::string_view text) {
  std::string_view t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.remove_suffix(1);
  ServerVersion v;
  v.text = std::string(t);
  int* parts[] = {&v.major, &v.minor, &v.patch};
  const char* p = t.data();
  const char* end = t.data() + t.size();
  for (int i = 0; i < 3; ++i) {
    auto [next, ec] = std::from_chars(p, end, *parts[i]);
    if (ec != std::errc()) {
      if (i == 2) break;  // "21.8" without a patch number is still a version
      return Error(ErrorCode::kPermanent, fmt::format("ClickHouse answered SELECT version() with '{}'", t));
    }
    p = next;
    if (p == end || *p != '.') break;
    ++p;
  }
  return v;
}

Error ClassifyResponse(int http_status, std::string_view body, std::string_view host) {
  int code = 0;
  if (size_t at = body.find("Code: "); at != std::string_view::npos) {
    std::from_chars(body.data() + at + 6, body.data() + body.size(), code);
  }
  std::string_view message = body;
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.remove_suffix(1);
  if (message.size() > 600) message = message.substr(0, 600);
  ErrorCode cls;
  if (code != 0) {
    cls = ClassOf(code);
  } else if (http_status == 401 || http_status == 403) {
    cls = ErrorCode::kUnauthenticated;
  } else if (http_status >= 500 || http_status == 429) {
    cls = ErrorCode::kTransient;  // a proxy or load balancer in front of ClickHouse
  } else {
    cls = ErrorCode::kPermanent;
  }
  Error e(cls, fmt::format("ClickHouse {}: {}", host, message.empty() ? "(empty error body)" : message));
  e.http_status = http_status;
  if (code != 0) e.provider_code = std::to_string(code);
  return e;
}

// ---- Client ----

Result<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  if (!options.transport) return InvalidArgument("clickhouse::Client needs a transport");
  if (options.url.hosts.empty()) return InvalidArgument("clickhouse::Client needs at least one host");
  if (!IsPlainIdentifier(options.url.database))
    return InvalidArgument("clickhouse::Client: bad database name");
  if (options.max_attempts < 1) options.max_attempts = 1;
  if (!options.sleep) options.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  return std::unique_ptr<Client>(new Client(std::move(options)));
}

Client::Client(ClientOptions options) : options_(std::move(options)) {}

std::string Client::BuildUrl(const HostPort& host, std::string_view query_param,
                             const Settings& settings) const {
  // No `database=` parameter: Sluice's SQL names every table with its database, and a request must work
  // before the database exists (CREATE DATABASE, the start-up version check).
  std::string url = fmt::format("http://{}/", host.ToString());
  char sep = '?';
  auto add = [&](std::string_view k, std::string_view v) {
    url += sep;
    url += PercentEncode(k);
    url += '=';
    url += PercentEncode(v);
    sep = '&';
  };
  if (!query_param.empty()) add("query", query_param);
  for (const Settings* s : {&options_.settings, &settings}) {
    for (const auto& [k, v] : *s) add(k, v);
  }
  return url;
}

Result<http::OutboundResponse> Client::Send(std::string_view query_param, http::RequestBody body,
                                            bool gzip_body, const RequestOptions& options,
                                            const std::function<bool(std::string_view)>* sink) {
  const auto& hosts = options_.url.hosts;
  if (options.only_host && *options.only_host >= hosts.size()) {
    return InvalidArgument(fmt::format("clickhouse: no replica #{} in the URL", *options.only_host));
  }
  std::vector<std::pair<std::string, std::string>> headers;
  if (gzip_body) headers.emplace_back("Content-Encoding", "gzip");
  // A password without a user is ClickHouse's `default` user's (as clickhouse-client takes it), not dropped.
  if (!options_.user.empty() || !options_.password.empty()) {
    const std::string_view user = options_.user.empty() ? std::string_view("default") : options_.user;
    headers.emplace_back("Authorization",
                         "Basic " + Base64Encode(fmt::format("{}:{}", user, options_.password.Reveal())));
  }
  auto start = SteadyClock::now();
  auto total_deadline = start + options.timeout.value_or(options_.total_timeout);
  size_t first = options.only_host.value_or(preferred_.load(std::memory_order_relaxed));
  std::optional<Error> last;
  // Streaming: once a chunk reached the caller's sink, a retry would hand it the same rows twice.
  bool delivered = false;
  bool stopped_by_sink = false;
  std::function<bool(std::string_view)> forward;
  if (sink) {
    forward = [&](std::string_view chunk) {
      delivered = true;
      if ((*sink)(chunk)) return true;
      stopped_by_sink = true;
      return false;
    };
  }
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    size_t index = options.only_host ? *options.only_host : (first + attempt) % hosts.size();
    const HostPort& host = hosts[index];
    auto now = SteadyClock::now();
    if (now >= total_deadline) break;
    auto deadline = std::min(total_deadline, now + options_.attempt_timeout);
    http::OutboundRequest request{"POST", BuildUrl(host, query_param, options.settings), headers, body};
    auto response = sink ? options_.transport->SendStreaming(request, deadline, forward)
                         : options_.transport->Send(request, deadline);
    if (!response.ok() && stopped_by_sink) return http::OutboundResponse{200, {}, {}};
    Error error;
    if (response.ok() && response->status / 100 == 2) {
      if (!options.only_host) preferred_.store(index, std::memory_order_relaxed);
      return std::move(response).value();
    }
    if (response.ok()) {
      error = ClassifyResponse(response->status, response->body, host.ToString());
    } else {
      error = std::move(response).error();
      error.message = fmt::format("ClickHouse {} unreachable: {}", host.ToString(), error.message);
    }
    // kUnavailable from the transport means the connection never opened: nothing reached the server, so even
    // a non-idempotent request may go to the next replica. An error the server answered with is its answer.
    bool retry = !delivered &&
                 (error.code == ErrorCode::kUnavailable || (options.idempotent && IsRetryable(error.code)));
    last = std::move(error);
    if (!retry || attempt + 1 == options_.max_attempts) break;
    // Full jitter under an exponential ceiling; the first failover to another replica is immediate.
    if (attempt > 0 || options.only_host || hosts.size() == 1) {
      auto ceiling = std::min(options_.max_delay, options_.base_delay * (1 << std::min(attempt, 10)));
      auto delay = std::chrono::milliseconds(static_cast<int64_t>(Uniform01() * ceiling.count()));
      auto remaining =
          std::chrono::duration_cast<std::chrono::milliseconds>(total_deadline - SteadyClock::now());
      options_.sleep(std::min(delay, std::max(remaining, std::chrono::milliseconds(0))));
    }
  }
  if (!last)
    return Error(ErrorCode::kDeadlineExceeded, "ClickHouse request deadline passed before an attempt");
  return *std::move(last);
}

Result<std::string> Client::Query(std::string_view sql, const RequestOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto response,
                          Send({}, http::RequestBody::FromString(std::string(sql)), false, options));
  return std::move(response.body);
}

Status Client::QueryStreaming(std::string_view sql, const std::function<bool(std::string_view)>& sink,
                              const RequestOptions& options) {
  SLUICE_TRY(Send({}, http::RequestBody::FromString(std::string(sql)), false, options, &sink));
  return OkStatus();
}

Status Client::Execute(std::string_view sql, const RequestOptions& options) {
  SLUICE_TRY(Query(sql, options));
  return OkStatus();
}

Status Client::InsertJsonEachRow(std::string_view table, const http::RequestBody& body,
                                 const RequestOptions& options) {
  if (!IsTableName(table))
    return InvalidArgument(fmt::format("clickhouse insert: bad table name '{}' (DB.TABLE)", table));
  SLUICE_TRY(Send(fmt::format("INSERT INTO {} FORMAT JSONEachRow", table), body, true, options));
  return OkStatus();
}

Result<ServerVersion> Client::Version(const RequestOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(std::string text, Query("SELECT version()", options));
  return ParseServerVersion(text);
}

Status Client::CheckServer() {
  auto version = Version();
  if (!version.ok()) {
    return version.error().WithContext(
        fmt::format("ClickHouse at {} is not answering over HTTP (check --store, that the servers run and "
                    "listen on these ports)",
                    options_.url.ToString()));
  }
  if (!version->AtLeast(kMinimumMajor, kMinimumMinor)) {
    return Error(ErrorCode::kPermanent,
                 fmt::format("ClickHouse at {} is version {}, older than the {}.{} Sluice needs",
                             options_.url.ToString(), version->text, kMinimumMajor, kMinimumMinor));
  }
  return OkStatus();
}

}  // namespace sluice::clickhouse
