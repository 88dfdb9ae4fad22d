#include "chstore/profiles.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "clickhouse/schema.h"
#include "common/crypto.h"
#include "common/json_text.h"

namespace sluice::chstore {
namespace {

constexpr const char* kColumns[] = {"project_id", "group_key", "profile_id", "version",
                                    "batch_id",   "seq",       "op"};

// Tenant ids reach SQL only as clickhouse::QuoteString literals.
using clickhouse::QuoteString;

// Reverses the escaping of ClickHouse's TSV output (\\, \t, \n, \', \0, \b, \f, \r).
std::string TsvUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    switch (c) {
      case 't':
        out += '\t';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case '0':
        out += '\0';
        break;
      default:
        out += c;
        break;  // \\ \' and anything else: the character itself
    }
  }
  return out;
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::string OnCluster(std::string_view cluster) {
  return cluster.empty() ? std::string() : fmt::format(" ON CLUSTER {}", cluster);
}

// One stored operation row.
struct OpRow {
  std::string profile_id;
  std::string version;  // kept as text: only compared for equality with the previous row
  std::string batch_id;
  std::string seq;
  std::string op;
};

// Splits one TSV line of `profile_id, version, batch_id, seq, op`; false when it has another shape.
bool ParseRow(std::string_view line, OpRow& row) {
  std::string_view fields[5];
  size_t n = 0;
  size_t start = 0;
  for (; n < 5; ++n) {
    const size_t tab = n < 4 ? line.find('\t', start) : std::string_view::npos;
    if (n < 4 && tab == std::string_view::npos) return false;
    fields[n] = line.substr(start, n < 4 ? tab - start : std::string_view::npos);
    start = tab + 1;
  }
  row.profile_id = TsvUnescape(fields[0]);
  row.version = std::string(fields[1]);
  row.batch_id = TsvUnescape(fields[2]);
  row.seq = std::string(fields[3]);
  row.op = TsvUnescape(fields[4]);
  return true;
}

}  // namespace

std::vector<std::string> ClickHouseProfileStore::SchemaStatements(std::string_view database,
                                                                  std::string_view cluster) {
  std::vector<std::string> out;
  out.push_back(fmt::format("CREATE DATABASE IF NOT EXISTS {}{}", database, OnCluster(cluster)));
  const std::string local =
      fmt::format("{}.{}", database, cluster.empty() ? "profile_ops" : "profile_ops_local");
  const std::string engine =
      cluster.empty()
          ? "ReplacingMergeTree()"
          : fmt::format(
                "ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{}/profile_ops_local', "
                "'{{replica}}')",
                database);
  out.push_back(
      fmt::format("CREATE TABLE IF NOT EXISTS {}{} (project_id UInt32, group_key String, profile_id String, "
                  "version UInt64, "
                  "batch_id String, seq UInt32, op String) ENGINE = {} "
                  "ORDER BY (project_id, group_key, profile_id, version, batch_id, seq) SETTINGS "
                  "index_granularity = 1024",
                  local, OnCluster(cluster), engine));
  if (!cluster.empty()) {
    out.push_back(
        fmt::format("CREATE TABLE IF NOT EXISTS {0}.profile_ops{1} AS {2} ENGINE = Distributed({3}, {0}, "
                    "profile_ops_local, "
                    "cityHash64(project_id, group_key, profile_id))",
                    database, OnCluster(cluster), local, cluster));
  }
  return out;
}

ClickHouseProfileStore::ClickHouseProfileStore(ProfileStoreOptions options)
    : options_(std::move(options)), versions_(options_.clock) {}

Result<std::unique_ptr<ClickHouseProfileStore>> ClickHouseProfileStore::Open(ProfileStoreOptions options) {
  if (!options.client) return InvalidArgument("the ClickHouse profile store needs a ClickHouse client");
  if (options.folder == nullptr)
    return InvalidArgument("the ClickHouse profile store needs a profile folder");
  if (!IsIdentifier(options.database) || (!options.cluster.empty() && !IsIdentifier(options.cluster))) {
    return InvalidArgument(fmt::format(
        "ClickHouse database '{}' and cluster '{}' must be plain identifiers (letters, digits, '_')",
        options.database, options.cluster));
  }
  if (options.scan_page_profiles == 0) options.scan_page_profiles = 1;
  clickhouse::RequestOptions ddl;
  // ON CLUSTER waits for every server; a stopped one would hold start-up for 180 s by default.
  if (!options.cluster.empty()) ddl.settings.emplace_back("distributed_ddl_task_timeout", "60");
  for (const std::string& sql : SchemaStatements(options.database, options.cluster)) {
    Status s = options.client->Execute(sql, ddl);
    if (!s.ok()) {
      return Error(s.error().code, "creating the ClickHouse profile tables: " + s.error().message);
    }
  }
  // A table left by another program (or an older Sluice) must have every column this version uses.
  SLUICE_TRY(clickhouse::CheckTableColumns(*options.client, options.database,
                                           options.cluster.empty() ? "profile_ops" : "profile_ops_local",
                                           {std::begin(kColumns), std::end(kColumns)}));
  return std::unique_ptr<ClickHouseProfileStore>(new ClickHouseProfileStore(std::move(options)));
}

Status ClickHouseProfileStore::FoldStored(
    uint32_t project, std::string_view group_key, std::span<const std::string> ids,
    const std::optional<IdRange>& range, const store::ProfileFolder& folder,
    const std::function<bool(std::string_view id, const std::optional<std::string>& profile)>& fn) {
  const std::string base = fmt::format("project_id = {} AND group_key = {}", project, QuoteString(group_key));
  if (range) {
    return FoldQuery(base + fmt::format(" AND profile_id >= {} AND profile_id <= {}",
                                        QuoteString(range->first), QuoteString(range->last)),
                     folder, fn);
  }
  // IN lists of at most ≈64 KB each: ClickHouse refuses queries over max_query_size (256 KiB by default), and
  // 2000 ids of 255 characters would be more. The set orders ids as the table does (bytes), so the profiles
  // still come in ascending order.
  std::set<std::string_view> unique(ids.begin(), ids.end());
  std::string list;
  bool stopped = false;
  auto run = [&]() -> Status {
    if (list.empty() || stopped) return OkStatus();
    Status s = FoldQuery(base + " AND profile_id IN (" + list + ")", folder,
                         [&](std::string_view id, const std::optional<std::string>& profile) {
                           if (fn(id, profile)) return true;
                           stopped = true;
                           return false;
                         });
    list.clear();
    return s;
  };
  for (std::string_view id : unique) {
    if (!list.empty()) list += ", ";
    list += QuoteString(id);
    if (list.size() > 64 * 1024) SLUICE_TRY(run());
  }
  return run();
}

Status ClickHouseProfileStore::FoldQuery(
    const std::string& where, const store::ProfileFolder& folder,
    const std::function<bool(std::string_view id, const std::optional<std::string>& profile)>& fn) {
  // The answer is folded as it streams in: a profile's operation log grows with every update (nothing
  // compacts it), so holding the whole answer cost memory in proportion to the log (80 MB of log for a 200 KB
  // profile), where folding as it arrives needs the profile, one change and one line.
  // Rows arrive sorted: a profile's rows together, a change's rows together, a duplicate right after its
  // original.
  std::optional<std::string> state;
  std::string current_id;
  bool have_profile = false;
  std::vector<std::string> change;
  OpRow row, prev;
  bool have_prev = false;
  bool stopped = false;  // by fn
  bool malformed = false;
  auto flush_change = [&] {
    if (change.empty()) return;
    store::ProfileFold fold = folder.Fold(state, change);
    if (fold.changed) state = std::move(fold.profile);
    change.clear();
  };
  // One TSV line; false stops the read (fn said so, or the line is not a row of ours).
  auto line_done = [&](std::string_view line) {
    if (line.empty()) return true;
    if (!ParseRow(line, row)) {
      malformed = true;
      return false;
    }
    if (have_prev && row.profile_id == prev.profile_id && row.batch_id == prev.batch_id &&
        row.seq == prev.seq && row.version == prev.version) {
      return true;  // a retried insert's copy of the same operation
    }
    const bool new_profile = !have_profile || row.profile_id != current_id;
    const bool new_change = new_profile || row.version != prev.version || row.batch_id != prev.batch_id;
    if (new_change) flush_change();
    if (new_profile) {
      if (have_profile && !fn(current_id, state)) {
        stopped = true;
        return false;
      }
      current_id = row.profile_id;
      state.reset();
      have_profile = true;
    }
    change.push_back(std::move(row.op));
    std::swap(prev, row);
    have_prev = true;
    return true;
  };
  std::string partial;  // a line the last chunk ended inside
  clickhouse::RequestOptions options;
  // An error while the answer streams must come as an error status, not as text after the rows.
  options.settings.emplace_back("wait_end_of_query", "1");
  Status s = options_.client->QueryStreaming(
      fmt::format("SELECT profile_id, version, batch_id, seq, op FROM {} WHERE {} "
                  "ORDER BY profile_id, version, batch_id, seq FORMAT TSV",
                  OpsTable(), where),
      [&](std::string_view chunk) {
        size_t start = 0;
        if (!partial.empty()) {
          const size_t nl = chunk.find('\n');
          if (nl == std::string_view::npos) {
            partial.append(chunk);
            return true;
          }
          partial.append(chunk.substr(0, nl));
          const bool go_on = line_done(partial);
          partial.clear();
          if (!go_on) return false;
          start = nl + 1;
        }
        while (start < chunk.size()) {
          const size_t nl = chunk.find('\n', start);
          if (nl == std::string_view::npos) {
            partial.assign(chunk.substr(start));
            break;
          }
          if (!line_done(chunk.substr(start, nl - start))) return false;
          start = nl + 1;
        }
        return true;
      },
      options);
  if (!s.ok())
    return Error(s.error().code, "reading profile operations from ClickHouse: " + s.error().message);
  if (!malformed && !stopped && !partial.empty()) line_done(partial);  // an answer without its last newline
  if (malformed) {
    return Error(
        ErrorCode::kPermanent,
        fmt::format("reading profile operations from ClickHouse: unexpected row shape in {}", OpsTable()));
  }
  if (stopped) return OkStatus();
  flush_change();
  if (have_profile) fn(current_id, state);
  return OkStatus();
}

Status ClickHouseProfileStore::ApplyProfileOps(uint32_t project, std::string_view group_key,
                                               std::span<const store::ProfileOps> changes,
                                               const store::ProfileFolder& folder,
                                               std::vector<store::ProfileOpRefusal>* refused) {
  if (changes.empty()) return OkStatus();
  // The refusal report: fold the new operations onto the profiles as stored now (best effort when another
  // node writes one of them at this moment; the stored log stays exact).
  if (refused != nullptr) {
    std::vector<std::string> ids;
    ids.reserve(changes.size());
    for (const store::ProfileOps& c : changes) ids.push_back(c.id);
    std::unordered_map<std::string, std::optional<std::string>> current;
    SLUICE_TRY(FoldStored(project, group_key, ids, std::nullopt, *options_.folder,
                          [&](std::string_view id, const std::optional<std::string>& profile) {
                            current[std::string(id)] = profile;
                            return true;
                          }));
    for (size_t c = 0; c < changes.size(); ++c) {
      std::optional<std::string>& state = current[changes[c].id];
      store::ProfileFold fold = folder.Fold(state, changes[c].ops);
      for (store::ProfileOpRefusal& r : fold.refused) {
        r.change = c;
        refused->push_back(std::move(r));
      }
      if (fold.changed) state = std::move(fold.profile);
    }
  }
  const std::string batch = RandomHex(128);
  clickhouse::InsertBody body;
  std::string line;
  for (size_t c = 0; c < changes.size(); ++c) {
    const uint64_t version = versions_.Next();
    for (size_t i = 0; i < changes[c].ops.size(); ++i) {
      line.clear();
      line += "{\"project_id\":";
      AppendInt(line, project);
      line += ",\"group_key\":";
      AppendJsonString(line, group_key);
      line += ",\"profile_id\":";
      AppendJsonString(line, changes[c].id);
      line += ",\"version\":";
      line += std::to_string(version);
      line += ",\"batch_id\":";
      AppendJsonString(line, fmt::format("{}-{}", batch, c));
      line += ",\"seq\":";
      AppendInt(line, static_cast<int64_t>(i));
      line += ",\"op\":";
      AppendJsonString(line, changes[c].ops[i]);
      line += '}';
      body.AppendRow(line);
    }
  }
  if (body.rows() == 0) return OkStatus();
  const http::RequestBody finished = body.Finish();
  clickhouse::RequestOptions insert;
  insert.settings = options_.insert_settings;
  insert.idempotent = true;  // unique operation ids: a re-sent block is dropped or skipped by the fold
  // ClickHouse 18.16 takes one quorum insert per replicated table at a time: a concurrent one fails with 286
  // (UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE) until the previous one has its quorum, typically within tens of
  // milliseconds. Several nodes writing profiles at once meet this all the time, so it is waited out here
  // (bounded) rather than with the client's few generic attempts. Re-sending is safe: operation ids are
  // unique.
  const auto deadline = std::chrono::steady_clock::now() + options_.quorum_wait;
  std::minstd_rand jitter(std::random_device{}());
  Status s = OkStatus();
  for (int attempt = 0;; ++attempt) {
    s = options_.client->InsertJsonEachRow(OpsTable(), finished, insert);
    if (s.ok() || s.error().provider_code != "286" || std::chrono::steady_clock::now() >= deadline) break;
    const int cap_ms = std::min(200, 10 << std::min(attempt, 4));
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + jitter() % cap_ms));
  }
  if (!s.ok()) return Error(s.error().code, "storing profile operations in ClickHouse: " + s.error().message);
  if (options_.after_insert_for_testing) options_.after_insert_for_testing(OpsTable(), finished);
  return OkStatus();
}

Result<std::optional<std::string>> ClickHouseProfileStore::Get(uint32_t project, std::string_view group_key,
                                                               std::string_view id) {
  std::optional<std::string> out;
  const std::string one(id);
  SLUICE_TRY(FoldStored(project, group_key, std::span<const std::string>(&one, 1), std::nullopt,
                        *options_.folder, [&](std::string_view, const std::optional<std::string>& profile) {
                          out = profile;
                          return true;
                        }));
  return out;
}

Status ClickHouseProfileStore::Scan(
    uint32_t project, std::string_view group_key, std::string_view from_after,
    const std::function<bool(std::string_view id, std::string_view json)>& fn) {
  // Page by profile id: one query names the next ids, a second folds their operations, so memory is bounded
  // by one page of profiles however many the project has.
  std::optional<std::string> after;
  if (!from_after.empty()) after.emplace(from_after);
  for (;;) {
    std::string sql = fmt::format("SELECT profile_id FROM {} WHERE project_id = {} AND group_key = {}",
                                  OpsTable(), project, QuoteString(group_key));
    if (after) sql += " AND profile_id > " + QuoteString(*after);
    sql += fmt::format(" GROUP BY profile_id ORDER BY profile_id LIMIT {} FORMAT TSV",
                       options_.scan_page_profiles);
    auto text = options_.client->Query(sql);
    if (!text.ok())
      return Error(text.error().code, "listing profiles in ClickHouse: " + text.error().message);
    std::vector<std::string> ids;
    for (size_t start = 0; start < text->size();) {
      size_t nl = text->find('\n', start);
      if (nl == std::string::npos) nl = text->size();
      if (nl > start) ids.push_back(TsvUnescape(std::string_view(*text).substr(start, nl - start)));
      start = nl + 1;
    }
    if (ids.empty()) return OkStatus();
    bool stopped = false;
    SLUICE_TRY(FoldStored(project, group_key, {}, IdRange{ids.front(), ids.back()}, *options_.folder,
                          [&](std::string_view id, const std::optional<std::string>& profile) {
                            if (!profile) return true;  // deleted
                            if (!fn(id, *profile)) {
                              stopped = true;
                              return false;
                            }
                            return true;
                          }));
    if (stopped || ids.size() < options_.scan_page_profiles) return OkStatus();
    after = ids.back();
  }
}

Result<std::optional<std::string>> ClickHouseProfileStore::GetProfile(uint32_t project,
                                                                      std::string_view distinct_id) {
  return Get(project, {}, distinct_id);
}

Status ClickHouseProfileStore::ScanProfiles(
    uint32_t project, std::string_view after,
    const std::function<bool(std::string_view distinct_id, std::string_view json)>& fn) {
  return Scan(project, {}, after, fn);
}

Result<std::optional<std::string>> ClickHouseProfileStore::GetGroupProfile(uint32_t project,
                                                                           std::string_view group_key,
                                                                           std::string_view group_id) {
  return Get(project, group_key, group_id);
}

Status ClickHouseProfileStore::ScanGroupProfiles(
    uint32_t project, std::string_view group_key, std::string_view after,
    const std::function<bool(std::string_view group_id, std::string_view json)>& fn) {
  return Scan(project, group_key, after, fn);
}

}  // namespace sluice::chstore
