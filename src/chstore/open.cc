#include "chstore/open.h"

#include <fmt/format.h>

#include <utility>

#include "chstore/events.h"
#include "chstore/profiles.h"
#include "chstore/zk_meta.h"
#include "clickhouse/schema.h"
#include "clickhouse/url.h"
#include "coord/url.h"

namespace sluice::chstore {

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
  auto check = [client, meta_part]() {
    std::vector<store::Reachability> parts;
    Status ch = client->Execute("SELECT 1");
    parts.push_back({"store", ch.ok() ? ch
                                      : Status(ch.error().WithContext("ClickHouse does not answer (check the "
                                                                      "servers of --store)"))});
    parts.push_back({"coordination", meta_part->CheckReachable()});
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
