#include "clickhouse/schema.h"

#include <fmt/format.h>

#include <charconv>
#include <set>

#include "common/json_text.h"

namespace sluice::clickhouse {
namespace {

constexpr const char* kColumns[] = {"project_id", "time",      "time_us", "distinct_id", "name",
                                    "insert_id",  "device_id", "user_id", "properties",  "version"};

constexpr std::string_view kColumnDdl =
    "(project_id UInt32, time DateTime('UTC'), time_us Int64, distinct_id String, name String, "
    "insert_id String, device_id String, user_id String, properties String, version UInt64)";

constexpr const char* kChangesColumns[] = {"project_id", "hour", "version", "rows", "bytes"};
constexpr const char* kIdentityColumns[] = {"project_id", "device_id", "user_id", "rank"};

std::string OnCluster(const EventsSchema& s) { return s.cluster.empty() ? "" : " ON CLUSTER " + s.cluster; }

// Floor division: events before 1970 keep the second they belong to.
int64_t SecondOf(int64_t time_us) {
  return time_us >= 0 ? time_us / 1000000 : -((-time_us + 999999) / 1000000);
}

}  // namespace

Settings EventsSchema::DurableInsertSettings() const {
  Settings s;
  if (!cluster.empty()) s.emplace_back("insert_distributed_sync", "1");
  if (replicas_per_shard > 1) s.emplace_back("insert_quorum", std::to_string(replicas_per_shard / 2 + 1));
  return s;
}

std::vector<std::string> EventsSchema::Statements() const {
  std::vector<std::string> out;
  out.push_back(fmt::format("CREATE DATABASE IF NOT EXISTS {}{}", database, OnCluster(*this)));
  std::string engine =
      cluster.empty()
          ? "ReplacingMergeTree(version)"
          : fmt::format(
                "ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{}/events_local', '{{replica}}', "
                "version)",
                database);
  out.push_back(fmt::format(
      "CREATE TABLE IF NOT EXISTS {}{} {} ENGINE = {} PARTITION BY toDate(time) "
      "ORDER BY (project_id, time, distinct_id, name, insert_id) SETTINGS index_granularity = 1024",
      LocalTable(), OnCluster(*this), kColumnDdl, engine));
  if (!cluster.empty()) {
    out.push_back(
        fmt::format("CREATE TABLE IF NOT EXISTS {}{} AS {} ENGINE = Distributed({}, {}, events_local, "
                    "cityHash64(project_id, distinct_id))",
                    EventsTable(), OnCluster(*this), LocalTable(), cluster, database));
  }
  return out;
}

std::vector<std::string> EventsSchema::SupportStatements() const {
  std::vector<std::string> out;
  auto engine = [&](std::string_view replicated, std::string_view local, std::string_view args) {
    if (cluster.empty()) return fmt::format("{}({})", replicated.substr(std::string_view("Replicated").size()), args);
    return fmt::format("{}('/clickhouse/tables/{{shard}}/{}/{}', '{{replica}}'{}{})", replicated, database,
                       local.substr(local.find('.') + 1), args.empty() ? "" : ", ", args);
  };
  auto distributed = [&](const std::string& table, const std::string& local, std::string_view key) {
    if (cluster.empty()) return;
    out.push_back(fmt::format("CREATE TABLE IF NOT EXISTS {}{} AS {} ENGINE = Distributed({}, {}, {}, {})", table,
                              OnCluster(*this), local, cluster, database, local.substr(local.find('.') + 1), key));
  };
  // hour = hours since the epoch; 720-hour (30-day) partitions keep the part count low for a tiny table.
  out.push_back(fmt::format(
      "CREATE TABLE IF NOT EXISTS {}{} (project_id UInt32, hour UInt32, version UInt64, rows UInt64, bytes "
      "UInt64) ENGINE = {} PARTITION BY intDiv(hour, 720) ORDER BY (project_id, hour)",
      ChangesLocalTable(), OnCluster(*this), engine("ReplicatedMergeTree", ChangesLocalTable(), "")));
  distributed(ChangesTable(), ChangesLocalTable(), "cityHash64(project_id)");
  out.push_back(fmt::format(
      "CREATE TABLE IF NOT EXISTS {}{} (project_id UInt32, device_id String, user_id String, rank UInt64) "
      "ENGINE = {} ORDER BY (project_id, device_id) SETTINGS index_granularity = 1024",
      IdentityLocalTable(), OnCluster(*this), engine("ReplicatedReplacingMergeTree", IdentityLocalTable(), "rank")));
  distributed(IdentityTable(), IdentityLocalTable(), "cityHash64(project_id, device_id)");
  return out;
}

std::string QuoteString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '\'';
  for (char c : s) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

Result<EventsSchema> DescribeEventsSchema(Client& client) {
  EventsSchema schema;
  schema.database = client.url().database;
  schema.cluster = client.url().cluster;
  if (schema.cluster.empty()) return schema;
  RequestOptions on_system;
  SLUICE_ASSIGN_OR_RETURN(
      std::string text,
      client.Query(fmt::format("SELECT max(replica_num) FROM system.clusters WHERE cluster = '{}' FORMAT TSV",
                               schema.cluster),
                   on_system));
  int replicas = 0;
  std::from_chars(text.data(), text.data() + text.size(), replicas);
  if (replicas <= 0) {
    return InvalidArgument(fmt::format(
        "--store names cluster '{}', which the ClickHouse servers do not define in <remote_servers>",
        schema.cluster));
  }
  schema.replicas_per_shard = replicas;
  return schema;
}

namespace {

template <size_t N>
Status CheckColumns(Client& client, const std::string& database, const std::string& table,
                    const char* const (&columns)[N]) {
  size_t dot = table.find('.');
  SLUICE_ASSIGN_OR_RETURN(
      std::string text,
      client.Query(fmt::format("SELECT name FROM system.columns WHERE database = '{}' AND table = '{}' FORMAT TSV",
                               database, table.substr(dot + 1))));
  std::set<std::string> have;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    have.insert(text.substr(start, nl - start));
    start = nl + 1;
  }
  std::string missing;
  for (const char* c : columns) {
    if (!have.count(c)) missing += std::string(missing.empty() ? "" : ", ") + c;
  }
  if (!missing.empty()) {
    return Error(ErrorCode::kPermanent,
                 fmt::format("ClickHouse table {} exists without the columns {}: it was "
                             "not created by this Sluice version",
                             table, missing));
  }
  return OkStatus();
}

}  // namespace

Status EnsureEventsSchema(Client& client, const EventsSchema& schema) {
  RequestOptions ddl;
  // ON CLUSTER waits for every server; a stopped one would hold start-up for 180 s by default.
  if (!schema.cluster.empty()) ddl.settings.emplace_back("distributed_ddl_task_timeout", "60");
  for (const std::string& sql : schema.Statements()) {
    SLUICE_TRY(client.Execute(sql, ddl));
  }
  for (const std::string& sql : schema.SupportStatements()) {
    SLUICE_TRY(client.Execute(sql, ddl));
  }
  // An existing table from an older Sluice must have every column this version writes.
  SLUICE_TRY(CheckColumns(client, schema.database, schema.LocalTable(), kColumns));
  SLUICE_TRY(CheckColumns(client, schema.database, schema.ChangesLocalTable(), kChangesColumns));
  SLUICE_TRY(CheckColumns(client, schema.database, schema.IdentityLocalTable(), kIdentityColumns));
  return OkStatus();
}

void AppendEventRow(InsertBody& body, uint32_t project_id, const Event& event, uint64_t version) {
  thread_local std::string row;
  row.clear();
  row += "{\"project_id\":";
  AppendInt(row, project_id);
  row += ",\"time\":";
  AppendInt(row, SecondOf(event.time_us));
  row += ",\"time_us\":";
  AppendInt(row, event.time_us);
  row += ",\"distinct_id\":";
  AppendJsonString(row, event.distinct_id);
  row += ",\"name\":";
  AppendJsonString(row, event.name);
  row += ",\"insert_id\":";
  AppendJsonString(row, event.insert_id);
  row += ",\"device_id\":";
  AppendJsonString(row, event.device_id);
  row += ",\"user_id\":";
  AppendJsonString(row, event.user_id);
  row += ",\"properties\":";
  AppendJsonString(row, event.properties);
  row += ",\"version\":";
  row += std::to_string(version);
  row += '}';
  body.AppendRow(row);
}

Status CheckTableColumns(Client& client, const std::string& database, const std::string& table,
                         const std::vector<std::string>& columns) {
  SLUICE_ASSIGN_OR_RETURN(
      std::string text,
      client.Query(fmt::format("SELECT name FROM system.columns WHERE database = '{}' AND table = '{}' FORMAT TSV",
                               database, table)));
  std::set<std::string, std::less<>> have;
  for (size_t start = 0; start < text.size();) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    have.insert(text.substr(start, nl - start));
    start = nl + 1;
  }
  std::string missing;
  for (const std::string& c : columns) {
    if (!have.count(c)) missing += (missing.empty() ? "" : ", ") + c;
  }
  if (missing.empty()) return OkStatus();
  return Error(ErrorCode::kPermanent, fmt::format("ClickHouse table {}.{} exists without the columns {}: it was "
                                                  "not created by this Sluice version",
                                                  database, table, missing));
}

}  // namespace sluice::clickhouse
