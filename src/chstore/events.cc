#include "chstore/events.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "clickhouse/url.h"
#include "common/json_text.h"

namespace sluice::chstore {
namespace {

using clickhouse::QuoteString;
using std::chrono::milliseconds;
using store::EventView;
using store::Hour;
using store::PartitionInfo;

constexpr size_t kMaxLinkedCache = 1u << 20;

// A cursor over ClickHouse RowBinary: each Read* returns false (consuming nothing it can be asked for
// again) when the buffer ends inside the value, so a row cut by a chunk boundary is parsed again whole.
class RowBinaryReader {
 public:
  explicit RowBinaryReader(std::string_view data) : data_(data) {}
  size_t pos() const { return pos_; }
  void Reset(size_t pos) { pos_ = pos; }

  bool ReadString(std::string_view& out) {
    uint64_t len = 0;
    int shift = 0;
    size_t p = pos_;
    while (true) {
      if (p >= data_.size() || shift > 63) return false;
      const auto byte = static_cast<unsigned char>(data_[p++]);
      len |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) break;
      shift += 7;
    }
    if (data_.size() - p < len) return false;
    out = data_.substr(p, len);
    pos_ = p + len;
    return true;
  }
  template <typename T>
  bool ReadFixed(T& out) {
    if (data_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(&out, data_.data() + pos_, sizeof(T));  // RowBinary is little-endian, as is every target
    pos_ += sizeof(T);
    return true;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// Feeds a streamed RowBinary answer to `parse_rows`, which consumes whole rows from the front of what it is
// given and returns how many bytes that was (and sets `stop` to end the read). Bytes of a row cut by a chunk
// boundary are kept, and only they are copied: whole rows are parsed straight from the chunk.
class RowStream {
 public:
  using Parser = std::function<size_t(std::string_view data, bool& stop)>;
  explicit RowStream(Parser parse) : parse_(std::move(parse)) {}

  bool Feed(std::string_view chunk) {
    bool stop = false;
    if (!carry_.empty()) {
      // Complete the cut row (and whatever follows) from a copy; rows are small next to a chunk.
      carry_.append(chunk);
      size_t used = parse_(carry_, stop);
      carry_.erase(0, used);
      return !stop;
    }
    size_t used = parse_(chunk, stop);
    carry_.assign(chunk.substr(used));
    return !stop;
  }
  /// After the answer ended: bytes that do not form a row mean a truncated or foreign answer.
  bool Clean() const { return carry_.empty(); }

 private:
  Parser parse_;
  std::string carry_;
};

Error AsWriteError(Error e, const clickhouse::EventsSchema& schema, std::string_view what) {
  const bool retryable =
      IsRetryable(e.code) || e.code == ErrorCode::kUnavailable || e.code == ErrorCode::kDeadlineExceeded;
  std::string context =
      schema.replicas_per_shard > 1
          ? fmt::format(
                "ClickHouse did not store the {} durably (each shard needs {} of {} replicas to "
                "acknowledge; check that the replicas run and reach ZooKeeper); nothing was "
                "acknowledged, retry the batch",
                what, schema.replicas_per_shard / 2 + 1, schema.replicas_per_shard)
          : fmt::format("ClickHouse did not store the {}; nothing was acknowledged, retry the batch", what);
  Error out = e.WithContext(context);
  // Whatever the cause, a write that may be retried must reach the client as "try again" (503), never as a
  // bad request.
  if (retryable && out.code != ErrorCode::kTransient && out.code != ErrorCode::kThrottled) {
    out.code = ErrorCode::kTransient;
  }
  return out;
}

double Jitter() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

Result<std::unique_ptr<ClickHouseEventStore>> ClickHouseEventStore::Open(
    std::shared_ptr<clickhouse::Client> client, EventStoreOptions options) {
  if (!client) return InvalidArgument("ClickHouseEventStore needs a clickhouse::Client");
  if (options.write_deadline <= std::chrono::milliseconds(0) ||
      options.max_clock_skew < std::chrono::milliseconds(0)) {
    return InvalidArgument("ClickHouseEventStore: write_deadline must be > 0 and max_clock_skew >= 0");
  }
  SLUICE_TRY(client->CheckServer());
  SLUICE_ASSIGN_OR_RETURN(clickhouse::EventsSchema schema, clickhouse::DescribeEventsSchema(*client));
  if (!options.database.empty()) schema.database = options.database;
  if (options.cluster && *options.cluster != schema.cluster) {
    schema.cluster = *options.cluster;
    schema.replicas_per_shard = 1;
    if (!schema.cluster.empty() && options.replicas_per_shard <= 0) {
      return InvalidArgument("ClickHouseEventStore: a cluster other than the URL's needs replicas_per_shard");
    }
  }
  if (options.replicas_per_shard > 0) schema.replicas_per_shard = options.replicas_per_shard;
  if (!clickhouse::IsPlainIdentifier(schema.database) ||
      (!schema.cluster.empty() && !clickhouse::IsPlainIdentifier(schema.cluster))) {
    return InvalidArgument(fmt::format("ClickHouse database '{}' / cluster '{}' must be plain identifiers",
                                       schema.database, schema.cluster));
  }
  SLUICE_TRY(clickhouse::EnsureEventsSchema(*client, schema));
  return std::unique_ptr<ClickHouseEventStore>(
      new ClickHouseEventStore(std::move(client), std::move(options), std::move(schema)));
}

ClickHouseEventStore::ClickHouseEventStore(std::shared_ptr<clickhouse::Client> client,
                                           EventStoreOptions options, clickhouse::EventsSchema schema)
    : client_(std::move(client)),
      options_(std::move(options)),
      schema_(std::move(schema)),
      clock_(options_.clock ? options_.clock : &SystemClock::Instance()),
      settle_(std::chrono::duration_cast<std::chrono::microseconds>(options_.write_deadline +
                                                                    options_.max_clock_skew)),
      versions_(clock_) {}

int64_t ClickHouseEventStore::NowMicros() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(clock_->Now().time_since_epoch()).count();
}

clickhouse::RequestOptions ClickHouseEventStore::InsertOptions(std::chrono::microseconds left) const {
  clickhouse::RequestOptions o;
  o.settings = schema_.DurableInsertSettings();
  if (schema_.replicas_per_shard > 1) {
    // The server gives up waiting for the quorum within the deadline too (its default is 10 minutes).
    o.settings.emplace_back("insert_quorum_timeout", std::to_string(options_.write_deadline.count()));
  }
  o.timeout =
      std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(left));
  return o;
}

clickhouse::RequestOptions ClickHouseEventStore::ReadOptions() const {
  clickhouse::RequestOptions o;
  // With quorum inserts, read only what reached the quorum (a lagging replica refuses instead of answering
  // stale, and the client fails over).
  if (schema_.replicas_per_shard > 1) o.settings.emplace_back("select_sequential_consistency", "1");
  return o;
}

Status ClickHouseEventStore::WriteEvents(uint32_t project, std::span<const Event> events,
                                         std::span<const IdentityLink> links) {
  if (events.empty() && links.empty()) return OkStatus();
  for (const Event& e : events) {
    if (e.time_us < 0) {
      return InvalidArgument("event time " + std::to_string(e.time_us) + " is before the Unix epoch");
    }
  }
  const uint64_t first_version = versions_.Next();
  const auto deadline_us = static_cast<int64_t>(first_version) + options_.write_deadline.count() * 1000;
  auto left = [&] { return std::chrono::microseconds(deadline_us - NowMicros()); };

  struct HourCounters {
    Hour hour;
    uint64_t rows = 0, bytes = 0;
  };
  std::vector<HourCounters> hours;
  uint64_t last_version = first_version;
  if (!events.empty()) {
    clickhouse::InsertBody body;
    for (size_t i = 0; i < events.size(); ++i) {
      const Event& e = events[i];
      // One version per row: a later copy of a key in the same call replaces an earlier one, as in
      // RocksStore.
      last_version = i == 0 ? first_version : versions_.Next();
      clickhouse::AppendEventRow(body, project, e, last_version);
      const Hour hour = store::HourOf(e.time_us);
      auto it = !hours.empty() && hours.back().hour == hour
                    ? hours.end() - 1
                    : std::find_if(hours.begin(), hours.end(),
                                   [&](const HourCounters& h) { return h.hour == hour; });
      if (it == hours.end()) it = hours.insert(hours.end(), HourCounters{hour});
      it->rows += 1;
      it->bytes += 40 + e.name.size() + e.distinct_id.size() + e.device_id.size() + e.user_id.size() +
                   e.insert_id.size() + e.properties.size();
    }
    Status st = DurableInsert(schema_.EventsTable(), body.Finish(), deadline_us);
    if (!st.ok()) return AsWriteError(st.error(), schema_, "events");
  }
  SLUICE_TRY(InsertLinks(project, links, first_version, deadline_us));
  if (!hours.empty()) {
    // After the events: a change row is never visible before the events it announces.
    clickhouse::InsertBody body;
    std::string row;
    for (const HourCounters& h : hours) {
      row.clear();
      row += "{\"project_id\":";
      AppendInt(row, project);
      row += ",\"hour\":";
      AppendInt(row, h.hour);
      row += ",\"version\":";
      row += std::to_string(last_version);
      row += ",\"rows\":";
      row += std::to_string(h.rows);
      row += ",\"bytes\":";
      row += std::to_string(h.bytes);
      row += '}';
      body.AppendRow(row);
    }
    Status st = DurableInsert(schema_.ChangesTable(), body.Finish(), deadline_us);
    if (!st.ok()) return AsWriteError(st.error(), schema_, "change-tracking rows of the events");
  }
  if (left().count() < 0) {
    // See events.h: acknowledging now could let an exporter's watermark pass this write unseen.
    return Error(ErrorCode::kTransient,
                 fmt::format("the ClickHouse write took longer than its {} ms deadline (is ClickHouse "
                             "overloaded?); nothing was acknowledged, retry the batch",
                             options_.write_deadline.count()));
  }
  return OkStatus();
}

Status ClickHouseEventStore::InsertLinks(uint32_t project, std::span<const IdentityLink> links,
                                         uint64_t version, int64_t deadline_us) {
  if (links.empty()) return OkStatus();
  std::vector<std::string> keys;
  std::unordered_set<std::string_view> seen;
  clickhouse::InsertBody body;
  std::string row;
  {
    std::lock_guard lock(linked_mu_);
    for (const IdentityLink& link : links) {
      if (link.device_id.empty() || link.user_id.empty()) continue;
      if (!seen.insert(link.device_id).second) continue;  // the first link in the call wins
      std::string key = std::to_string(project) + '\0' + link.device_id;
      if (linked_.contains(key)) continue;  // a link exists: any later one has a higher version and loses
      row.clear();
      row += "{\"project_id\":";
      AppendInt(row, project);
      row += ",\"device_id\":";
      AppendJsonString(row, link.device_id);
      row += ",\"user_id\":";
      AppendJsonString(row, link.user_id);
      row += ",\"rank\":";
      row += std::to_string(~version);
      row += '}';
      body.AppendRow(row);
      keys.push_back(std::move(key));
    }
  }
  if (keys.empty()) return OkStatus();
  Status st = DurableInsert(schema_.IdentityTable(), body.Finish(), deadline_us);
  if (!st.ok()) return AsWriteError(st.error(), schema_, "identity links");
  std::lock_guard lock(linked_mu_);
  if (linked_.size() + keys.size() > kMaxLinkedCache) linked_.clear();
  for (std::string& key : keys) linked_.insert(std::move(key));
  return OkStatus();
}

Status ClickHouseEventStore::DurableInsert(std::string_view table, const http::RequestBody& body,
                                           int64_t deadline_us) {
  // ClickHouse before 20.10 (no insert_quorum_parallel) allows one quorum insert in flight per table and
  // shard: a concurrent one, from this node or another, is refused with 286 until the first reached its
  // quorum (milliseconds). The same body is sent again until the write deadline: a replicated table drops a
  // block it already has, so a retry never stores twice. Any other error goes to the caller.
  for (int attempt = 0;; ++attempt) {
    const auto left = std::chrono::microseconds(deadline_us - NowMicros());
    Status st = client_->InsertJsonEachRow(table, body, InsertOptions(left));
    if (st.ok() || st.error().provider_code != "286" || deadline_us - NowMicros() < 100'000) return st;
    const int64_t ceiling_ms = std::min<int64_t>(200, 5LL << std::min(attempt, 5));
    std::this_thread::sleep_for(milliseconds(1 + static_cast<int64_t>(Jitter() * ceiling_ms)));
  }
}

Status ClickHouseEventStore::ScanPartition(uint32_t project, Hour hour,
                                           const std::function<bool(const EventView&)>& fn) {
  const int64_t from_s = int64_t{hour} * 3600;
  const std::string sql = fmt::format(
      "SELECT name, time_us, distinct_id, device_id, user_id, insert_id, properties, version FROM {} FINAL "
      "WHERE project_id = {} AND time >= toDateTime({}) AND time < toDateTime({}) "
      "ORDER BY time_us, distinct_id, name, insert_id FORMAT RowBinary",
      schema_.EventsTable(), project, from_s, from_s + 3600);
  clickhouse::RequestOptions o = ReadOptions();
  // An error while the answer streams must come as an error status, not as text after the rows.
  o.settings.emplace_back("wait_end_of_query", "1");
  // The ORDER BY makes the order stable between scans (a re-export writes the same bytes); a large hour is
  // sorted on the server's disk rather than in its memory.
  o.settings.emplace_back("max_bytes_before_external_sort", std::to_string(512u << 20));
  RowStream stream([&](std::string_view data, bool& stop) -> size_t {
    RowBinaryReader r(data);
    size_t used = 0;
    EventView v;
    uint64_t version = 0;
    while (!stop) {
      if (!(r.ReadString(v.name) && r.ReadFixed(v.time_us) && r.ReadString(v.distinct_id) &&
            r.ReadString(v.device_id) && r.ReadString(v.user_id) && r.ReadString(v.insert_id) &&
            r.ReadString(v.properties) && r.ReadFixed(version))) {
        break;
      }
      used = r.pos();
      v.ingested_ms = static_cast<int64_t>(version / 1000);  // versions are the writer's clock in µs
      if (!fn(v)) stop = true;
    }
    return used;
  });
  bool stopped = false;
  Status st = client_->QueryStreaming(
      sql, [&](std::string_view chunk) { return stream.Feed(chunk) || (stopped = true, false); }, o);
  if (!st.ok()) {
    return st.error().WithContext(
        fmt::format("reading project {} hour {} from ClickHouse {}", project, hour, schema_.EventsTable()));
  }
  if (!stopped && !stream.Clean()) {
    return Error(ErrorCode::kTransient,
                 fmt::format("ClickHouse's answer for project {} hour {} ended inside a row", project, hour));
  }
  return OkStatus();
}

Status ClickHouseEventStore::ScanPartitions(uint32_t project, Hour first, Hour end,
                                            const std::function<bool(const EventView&)>& fn) {
  // One FINAL query per hour: hour ascending without asking ClickHouse to sort a whole day at once.
  bool stopped = false;
  for (Hour hour = first; hour < end && !stopped; ++hour) {
    SLUICE_TRY(
        ScanPartition(project, hour, [&](const EventView& e) { return fn(e) || (stopped = true, false); }));
  }
  return OkStatus();
}

Result<std::vector<PartitionInfo>> ClickHouseEventStore::QueryPartitions(const std::string& sql) {
  std::vector<PartitionInfo> out;
  RowStream stream([&](std::string_view data, bool&) -> size_t {
    RowBinaryReader r(data);
    size_t used = 0;
    PartitionInfo p;
    while (r.ReadFixed(p.project) && r.ReadFixed(p.hour) && r.ReadFixed(p.writes) && r.ReadFixed(p.bytes) &&
           r.ReadFixed(p.change_seq)) {
      used = r.pos();
      out.push_back(p);
    }
    return used;
  });
  SLUICE_TRY(client_->QueryStreaming(
      sql, [&](std::string_view chunk) { return stream.Feed(chunk); }, ReadOptions()));
  if (!stream.Clean())
    return Error(ErrorCode::kTransient, "ClickHouse's change-tracking answer ended inside a row");
  return out;
}

Result<std::vector<PartitionInfo>> ClickHouseEventStore::ListPartitions(uint32_t project, Hour from,
                                                                        Hour to) {
  return QueryPartitions(
      fmt::format("SELECT project_id, hour, sum(rows), sum(bytes), max(version) FROM {} WHERE project_id = "
                  "{} AND hour >= {} "
                  "AND hour <= {} GROUP BY project_id, hour ORDER BY hour FORMAT RowBinary",
                  schema_.ChangesTable(), project, from, to));
}

Result<std::vector<PartitionInfo>> ClickHouseEventStore::ChangedPartitions(uint32_t project,
                                                                           uint64_t after_seq) {
  return QueryPartitions(fmt::format(
      "SELECT project_id, hour, sum(rows), sum(bytes), max(version) FROM {} WHERE project_id = {} "
      "GROUP BY project_id, hour HAVING max(version) > {} ORDER BY hour FORMAT RowBinary",
      schema_.ChangesTable(), project, after_seq));
}

uint64_t ClickHouseEventStore::LastChangeSeq() const {
  const int64_t now = NowMicros() - settle_.count();
  const uint64_t candidate = now > 0 ? static_cast<uint64_t>(now) : 0;
  // Never backwards, also when the clock is stepped back.
  uint64_t seen = watermark_.load(std::memory_order_relaxed);
  while (candidate > seen && !watermark_.compare_exchange_weak(seen, candidate, std::memory_order_relaxed)) {
  }
  return std::max(seen, candidate);
}

Result<std::optional<std::string>> ClickHouseEventStore::ResolveDevice(uint32_t project,
                                                                       std::string_view device_id) {
  std::optional<std::string> user;
  SLUICE_TRY(ScanIdentityWhere(project, fmt::format(" AND device_id = {}", QuoteString(device_id)),
                               [&](std::string_view, std::string_view u) {
                                 user = std::string(u);
                                 return false;
                               }));
  return user;
}

Status ClickHouseEventStore::ScanIdentity(
    uint32_t project, const std::function<bool(std::string_view device_id, std::string_view user_id)>& fn) {
  return ScanIdentityWhere(project, "", fn);
}

Status ClickHouseEventStore::ScanIdentityWhere(
    uint32_t project, const std::string& condition,
    const std::function<bool(std::string_view device_id, std::string_view user_id)>& fn) {
  const std::string sql = fmt::format(
      "SELECT device_id, argMax(user_id, rank) FROM {} WHERE project_id = {}{} GROUP BY device_id ORDER BY "
      "device_id FORMAT RowBinary",
      schema_.IdentityTable(), project, condition);
  clickhouse::RequestOptions o = ReadOptions();
  o.settings.emplace_back("wait_end_of_query", "1");
  RowStream stream([&](std::string_view data, bool& stop) -> size_t {
    RowBinaryReader r(data);
    size_t used = 0;
    std::string_view device, user;
    while (!stop && r.ReadString(device) && r.ReadString(user)) {
      used = r.pos();
      if (!fn(device, user)) stop = true;
    }
    return used;
  });
  bool stopped = false;
  SLUICE_TRY(client_->QueryStreaming(
      sql, [&](std::string_view chunk) { return stream.Feed(chunk) || (stopped = true, false); }, o));
  if (!stopped && !stream.Clean()) {
    return Error(ErrorCode::kTransient, "ClickHouse's identity answer ended inside a row");
  }
  return OkStatus();
}

}  // namespace sluice::chstore
