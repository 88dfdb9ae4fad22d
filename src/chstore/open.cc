#include "chstore/open.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <utility>

#include "chstore/events.h"
#include "chstore/profiles.h"
#include "chstore/zk_meta.h"
#include "clickhouse/schema.h"
#include "clickhouse/url.h"
#include "coord/url.h"

namespace sluice::chstore {

Status CheckClockAgainstClickHouse(clickhouse::Client& client, const Clock& clock,
                                   std::chrono::milliseconds max) {
  using std::chrono::duration;
  const TimePoint before = clock.Now();
  auto text = client.Query("SELECT toUnixTimestamp(now()) FORMAT TSV");
  const TimePoint after = clock.Now();
  if (!text.ok()) return text.error();
  int64_t server_s = 0;
  const std::string_view answer = *text;
  if (std::from_chars(answer.data(), answer.data() + answer.size(), server_s).ec != std::errc()) {
    return Error(ErrorCode::kInternal, "reading ClickHouse's clock: not a number of seconds");
  }
  const double local_s = duration<double>((before + (after - before) / 2).time_since_epoch()).count();
  const double offset = local_s - (static_cast<double>(server_s) + 0.5);  // now() drops the fraction
  const double uncertainty = duration<double>(after - before).count() / 2 + 0.5;
  const double limit = duration<double>(max).count();
  if (std::abs(offset) - uncertainty <= limit) return OkStatus();
  return Error(
      ErrorCode::kClockSkew,
      fmt::format("this node's clock is {:.0f} s {} ClickHouse's: rows are versioned, and exports find "
                  "late events, by the nodes' clocks, which must agree within {:.0f} s (check NTP on "
                  "this node and on the ClickHouse servers)",
                  std::abs(offset), offset > 0 ? "ahead of" : "behind", limit));
}

Result<ClusterStore> OpenClusterStore(const ClusterStoreOptions& options) {
  if (!options.transport) return InvalidArgument("OpenClusterStore: no HTTP transport");
  if (!options.profile_folder) return InvalidArgument("OpenClusterStore: no profile folder");
  auto store_url = clickhouse::ParseClickHouseUrl(options.store_url);
  if (!store_url.ok()) return store_url.error().WithContext("--store");
  auto coordination_url = coord::ParseZooKeeperUrl(options.coordination_url);
  if (!coordination_url.ok()) return coordination_url.error().WithContext("--coordination");

  // Coordination first: it is the smaller dependency and holds the projects every request needs.
  coord::Session::Options session_options;
  session_options.url = *coordination_url;
  session_options.session_timeout = options.session_timeout;
  auto session = coord::Session::Open(session_options);
  if (!session.ok()) {
    return session.error().WithContext(
        fmt::format("the coordination service {} does not answer (check that ZooKeeper or ClickHouse Keeper "
                    "runs there and this node may reach it)",
                    coordination_url->ToString()));
  }
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<ZkMetaStore> meta,
                          ZkMetaStore::Open(*session, ZkMetaOptions{.clock = options.clock}));

  clickhouse::ClientOptions client_options;
  client_options.url = *store_url;
  client_options.transport = options.transport;
  client_options.user = options.clickhouse_user;
  client_options.password = options.clickhouse_password;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<clickhouse::Client> created,
                          clickhouse::Client::Create(client_options));
  std::shared_ptr<clickhouse::Client> client = std::move(created);
  const Clock& clock = options.clock ? *options.clock : SystemClock::Instance();
  if (options.max_clock_skew.count() > 0) {
    if (Status skew = CheckClockAgainstClickHouse(*client, clock, options.max_clock_skew);
        !skew.ok() && skew.error().code == ErrorCode::kClockSkew) {
      return skew.error();  // (ClickHouse not answering is reported by the schema check below)
    }
  }

  EventStoreOptions event_options;
  event_options.clock = options.clock;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<ClickHouseEventStore> events,
                          ClickHouseEventStore::Open(client, event_options));
  const clickhouse::EventsSchema schema = events->schema();

  ProfileStoreOptions profile_options;
  profile_options.client = client;
  profile_options.database = schema.database;
  profile_options.cluster = schema.cluster;
  profile_options.insert_settings = schema.DurableInsertSettings();
  profile_options.folder = options.profile_folder;
  profile_options.clock = options.clock;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<ClickHouseProfileStore> profiles,
                          ClickHouseProfileStore::Open(std::move(profile_options)));

  // /healthz: each service answers for itself, with what to check; neither message carries a credential
  // (the ClickHouse password travels only in the Authorization header).
  std::shared_ptr<coord::Session> coordination = *session;
  ZkMetaStore* meta_part = meta.get();  // owned by the composed store, which owns this check too
  const std::chrono::milliseconds max_skew = options.max_clock_skew;
  auto check = [client, meta_part, &clock, max_skew]() {
    // One query answers both: whether ClickHouse answers, and (when checked) how far its clock is.
    const bool clock_checked = max_skew.count() > 0;
    Status probe = clock_checked ? CheckClockAgainstClickHouse(*client, clock, max_skew) : client->Execute("SELECT 1");
    const bool answered = probe.ok() || probe.error().code == ErrorCode::kClockSkew;
    std::vector<store::Reachability> parts;
    parts.push_back({"store", answered ? OkStatus()
                                       : Status(probe.error().WithContext("ClickHouse does not answer (check the "
                                                                          "servers of --store)"))});
    parts.push_back({"coordination", meta_part->CheckReachable()});
    if (answered && clock_checked) parts.push_back({"clock", probe});
    return parts;
  };

  store::StoreParts parts;
  parts.events = std::move(events);
  parts.profiles = std::move(profiles);
  parts.meta = std::move(meta);
  parts.check_reachable = std::move(check);
  ClusterStore out;
  out.store = store::ComposeStore(std::move(parts));
  out.coordination = std::move(coordination);
  out.clickhouse = std::move(client);
  return out;
}

}  // namespace sluice::chstore
