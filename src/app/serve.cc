// `sluice serve`: open the store, load or mint the admin token, start the HTTP(S) server, drain on SIGTERM/SIGINT.
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "api/service.h"
#include "app/commands.h"
#include "app/config.h"
#include "aws/endpoint_policy.h"
#include "aws/sts.h"
#include "chstore/open.h"
#include "cloudimport/connector_manager.h"
#include "cloudimport/source.h"
#include "common/crypto.h"
#include "common/geoip.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process_memory.h"
#include "coord/session.h"
#include "gcp/credentials.h"
#include "http/server.h"
#include "http/transport.h"
#include "ingest/ingest.h"
#include "ingest/profile_ops.h"
#include "jobs/lease.h"
#include "pipeline/manager.h"
#include "storage_access/open.h"
#include "store/store.h"

namespace sluice::app {
namespace {

struct ServeFlags {
  std::string data_dir = "./data";
  std::string listen = "127.0.0.1:8080";
  std::string tls_cert;
  std::string tls_key;
  int threads = 4;
  size_t max_connections = 10000;
  bool max_connections_given = false;  // on the command line (a default lowered to fit is no warning)
  std::string log_level = "info";
  uint64_t rate_limit = 2'000'000'000ull;
  int shutdown_grace_s = 15;
  int pipeline_delay_minutes = 30;
  int pipeline_max_sync_age_days = 0;
  int pipeline_runs = 2;
  int import_runs = cloudimport::ConnectorManager::kDefaultConcurrentRuns;
  int pipeline_unit_parallelism = 2;
  std::string local_export_root;
  std::vector<std::string> allow_endpoints;
  std::vector<std::string> allow_gcs_endpoints;
  std::vector<std::string> allow_azure_endpoints;
  std::string ca_bundle;
  std::string gcp_credentials;
  std::string geoip_dir = "/usr/share/GeoIP";  // GeoIP.dat and GeoIPv6.dat; "" = ip=1 adds no country
  std::string store_url;         // empty = the embedded RocksDB store in --data-dir
  std::string coordination_url;  // required with a clickhouse:// store
  std::string clickhouse_user;
  std::string clickhouse_password_file;
  std::string node_id;
  bool reserve_memtables = true;  // the embedded store's memtable budget mapped and touched at start
  int coordination_session_timeout_s = 10;
};

/// File descriptors kept for everything that is not a client connection: the embedded store's table files
/// (RocksDB max_open_files 512), its journal and logs, outbound HTTPS to clouds, export files, the listen
/// socket.
constexpr uint64_t kNonConnectionDescriptors = 1024;

/// Raises the soft open-file limit to the hard one (as Go's runtime and systemd's services do: the soft limit
/// of 1024 exists for select(), which Sluice does not use) and returns `wanted` connections, or fewer when
/// the descriptors the limit leaves after kNonConnectionDescriptors cannot hold them: with a warning when the
/// operator asked for `wanted` (`given`), at info level when it is the default.
size_t ConnectionsTheFileLimitAllows(size_t wanted, bool given) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return wanted;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur == RLIM_INFINITY) return wanted;
  const uint64_t room =
      limit.rlim_cur > kNonConnectionDescriptors + 16 ? limit.rlim_cur - kNonConnectionDescriptors : 16;
  if (wanted <= room) return wanted;
  spdlog::log(given ? spdlog::level::warn : spdlog::level::info,
              "--max-connections {} lowered to {}: the open-file limit is {} descriptors and {} are kept for "
              "the store, outbound requests and exports; raise the limit (ulimit -n, or LimitNOFILE= in a "
              "systemd unit) for more",
              wanted, room, static_cast<uint64_t>(limit.rlim_cur), kNonConnectionDescriptors);
  return static_cast<size_t>(room);
}

/// 128 bits: a 32-character token is the shortest whose hex form carries that much randomness; anything
/// shorter can be brute-forced over the network against the admin API.
constexpr size_t kMinAdminTokenChars = 32;

/// The admin token: SLUICE_ADMIN_TOKEN, else DIR/admin-token, else a new random one written there (0600).
/// A token shorter than kMinAdminTokenChars is refused (its length is named, never its value).
Result<Secret> LoadOrCreateAdminToken(const std::filesystem::path& dir) {
  if (const char* env = std::getenv("SLUICE_ADMIN_TOKEN"); env && *env) {
    const size_t length = std::strlen(env);
    if (length < kMinAdminTokenChars) {
      return InvalidArgument(fmt::format(
          "SLUICE_ADMIN_TOKEN is {} characters; it must be at least {} (128 bits), e.g. the output of "
          "`openssl rand -hex 32`, or unset it to use the token in {}",
          length, kMinAdminTokenChars, (dir / "admin-token").string()));
    }
    return Secret(env);
  }
  auto path = dir / "admin-token";
  if (std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::string token;
    std::getline(in, token);
    if (token.empty()) return InvalidArgument(fmt::format("{} is empty: delete it to mint a new token", path.string()));
    if (token.size() < kMinAdminTokenChars) {
      return InvalidArgument(
          fmt::format("the token in {} is {} characters; it must be at least {} (128 bits): "
                      "delete the file to mint a new one, or write a longer one",
                      path.string(), token.size(), kMinAdminTokenChars));
    }
    return Secret(token);
  }
  std::string token = RandomHex(256);
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << token << "\n";
    if (!out) return Internal(fmt::format("cannot write {}", tmp.string()));
  }
  std::filesystem::permissions(tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::rename(tmp, path);
  spdlog::info("wrote a new admin token to {} (mode 0600)", path.string());
  return Secret(token);
}

/// A data dir that has served before but has no store/ is most likely a volume that is not mounted (or a
/// wrong --data-dir): starting would silently serve an empty store and write new data beside the real one.
/// "Has served before" is the admin-token file or a server.url left by a previous run; with
/// SLUICE_ADMIN_TOKEN set no admin-token is written, so server.url is what remains of an earlier start. A
/// first start (neither present) creates the store.
Status CheckStoreNotMissing(const std::filesystem::path& dir) {
  std::error_code ec;
  const auto store = dir / "store";
  if (std::filesystem::exists(store, ec)) return OkStatus();
  for (const char* marker : {"admin-token", "server.url"}) {
    const auto path = dir / marker;
    if (!std::filesystem::exists(path, ec)) continue;
    return Error(
        ErrorCode::kConflict,
        fmt::format("refusing to start: {} exists but the store {} does not. This data dir was used "
                    "before, so its store is missing: check that the data volume is mounted and that "
                    "--data-dir is right. If the data is really gone and you want an empty store, "
                    "delete {} and start again",
                    path.string(), store.string(), path.string()));
  }
  return OkStatus();
}

/// HOSTNAME:PORT-PID (the port of --listen): unique per node of one deployment, and per process of one node
/// (a restarted node is a new lease holder), readable in lease holders and logs.
std::string DefaultNodeId(const std::string& listen) {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == 0) std::snprintf(host, sizeof(host), "sluice");
  const auto colon = listen.rfind(':');
  return fmt::format("{}:{}-{}", host, colon == std::string::npos ? listen : listen.substr(colon + 1), ::getpid());
}

struct OpenedStore {
  std::unique_ptr<store::Store> store;
  /// The coordination session of a shared store (leases of the job runner); null for the embedded store.
  std::shared_ptr<coord::Session> coordination;
};

/// The embedded RocksDB store in DIR/store, or the shared ClickHouse + ZooKeeper store of --store and
/// --coordination.
Result<OpenedStore> OpenStore(const ServeFlags& f, const std::filesystem::path& dir,
                              std::shared_ptr<http::HttpTransport> transport) {
  if (f.store_url.empty()) {
    store::StoreOptions options;
    options.reserve_memtables = f.reserve_memtables;
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> embedded, store::Store::Open(dir / "store", options));
    return OpenedStore{std::move(embedded), nullptr};
  }
  chstore::ClusterStoreOptions options;
  options.store_url = f.store_url;
  options.coordination_url = f.coordination_url;
  options.transport = std::move(transport);
  options.clickhouse_user = f.clickhouse_user;
  if (!f.clickhouse_password_file.empty()) {
    std::ifstream in(f.clickhouse_password_file);
    std::string password;
    if (!in || !std::getline(in, password)) {
      return InvalidArgument(fmt::format("--clickhouse-password-file {}: cannot read a password from it",
                                         f.clickhouse_password_file));
    }
    options.clickhouse_password = Secret(password);
  } else if (const char* env = std::getenv("SLUICE_CLICKHOUSE_PASSWORD"); env && *env) {
    options.clickhouse_password = Secret(env);
  }
  static const ingest::ProfileUpdateFolder folder;  // stateless; outlives the store
  options.profile_folder = &folder;
  options.session_timeout = std::chrono::seconds(f.coordination_session_timeout_s);
  SLUICE_ASSIGN_OR_RETURN(chstore::ClusterStore opened, chstore::OpenClusterStore(options));
  spdlog::info("store: ClickHouse {}; coordination: {}", f.store_url, f.coordination_url);
  return OpenedStore{std::move(opened.store), std::move(opened.coordination)};
}

int Serve(const ServeFlags& f) {
  InitLogging(f.log_level);
  auto endpoint = ParseHostPort(f.listen);
  if (!endpoint) {
    spdlog::error("--listen '{}' must be HOST:PORT, e.g. 127.0.0.1:8080", f.listen);
    return 2;
  }
  std::filesystem::path dir(f.data_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    spdlog::error("cannot create data dir {}: {}", dir.string(), ec.message());
    return 1;
  }
  ::chmod(dir.c_str(), 0700);
  // --store and --coordination go together: the ClickHouse store's projects, pipeline state and leases live
  // in the coordination service, and the embedded store is one node's (nothing to coordinate).
  const bool shared_store = !f.store_url.empty();
  KeepFreedMemory();
  if (shared_store && f.coordination_url.empty()) {
    spdlog::error("--store {} needs --coordination zookeeper://HOST:PORT[,HOST:PORT...][/CHROOT]: the ZooKeeper "
                  "or ClickHouse Keeper ensemble every Sluice node shares (projects, pipeline state, leases)",
                  f.store_url);
    return 2;
  }
  if (!shared_store && !f.coordination_url.empty()) {
    spdlog::error("--coordination is for several nodes sharing a ClickHouse store: give --store "
                  "clickhouse://HOST:PORT[,HOST:PORT...]/DB[?cluster=NAME] too, or drop --coordination to use "
                  "the embedded store in {}",
                  dir.string());
    return 2;
  }
  // Every node of a shared store must accept the same admin token: it comes from the environment (the same
  // secret given to each node), never from a node's own data dir.
  if (shared_store && (std::getenv("SLUICE_ADMIN_TOKEN") == nullptr || *std::getenv("SLUICE_ADMIN_TOKEN") == 0)) {
    spdlog::error("with --store clickhouse://... set SLUICE_ADMIN_TOKEN to the same secret (at least {} "
                  "characters, e.g. `openssl rand -hex 32`) on every Sluice node",
                  kMinAdminTokenChars);
    return 2;
  }
  if (!shared_store) {
    if (auto s = CheckStoreNotMissing(dir); !s.ok()) {
      spdlog::error("{}", s.error().message);
      return 1;
    }
  }
  auto admin_token = LoadOrCreateAdminToken(dir);
  if (!admin_token.ok()) {
    spdlog::error("{}", admin_token.error().message);
    return 1;
  }
  // Which S3-compatible endpoints tenants may name, and where type=local pipelines may write: operator
  // decisions, checked before the store opens so a typo fails fast.
  auto endpoint_policy = aws::EndpointPolicy::Create(f.allow_endpoints, aws::SystemEnv());
  if (!endpoint_policy.ok()) {
    spdlog::error("{}", endpoint_policy.error().message);
    return 2;
  }
  std::string local_root;
  if (!f.local_export_root.empty()) {
    std::filesystem::create_directories(f.local_export_root, ec);
    char resolved[PATH_MAX];
    if (ec || ::realpath(f.local_export_root.c_str(), resolved) == nullptr ||
        !std::filesystem::is_directory(resolved)) {
      spdlog::error("--local-export-root {} is not a directory Sluice can create or open", f.local_export_root);
      return 2;
    }
    local_root = resolved;
    spdlog::info("type=local pipelines may write under {}", local_root);
  }
  for (const auto& allowed : endpoint_policy->allowed()) {
    spdlog::info("tenants may name the S3-compatible endpoint {}", allowed);
  }
  auto gcs_endpoint_policy = storage_access::MakeGcsEndpointPolicy(f.allow_gcs_endpoints, gcp::SystemEnv());
  if (!gcs_endpoint_policy.ok()) {
    spdlog::error("{}", gcs_endpoint_policy.error().message);
    return 2;
  }
  for (const auto& allowed : gcs_endpoint_policy->allowed()) {
    spdlog::info("tenants may name the GCS endpoint {}", allowed);
  }
  auto azure_endpoint_policy = storage_access::MakeAzureEndpointPolicy(f.allow_azure_endpoints);
  if (!azure_endpoint_policy.ok()) {
    spdlog::error("{}", azure_endpoint_policy.error().message);
    return 2;
  }
  for (const auto& allowed : azure_endpoint_policy->allowed()) {
    spdlog::info("tenants may name the Azure blob endpoint {}", allowed);
  }
  // Shared by the API and the background managers: one /metrics registry, one outbound HTTP transport
  // (connection and TLS session cache) and Sluice's own AWS identity, which signs every AssumeRole call.
  MetricsRegistry metrics;
  http::TransportOptions transport_options;
  transport_options.ca_bundle = f.ca_bundle;  // "" = the system's CA store
  std::shared_ptr<http::HttpTransport> transport = http::MakeCurlTransport(transport_options);
  auto opened = OpenStore(f, dir, transport);
  if (!opened.ok()) {
    spdlog::error("cannot open the store: {}", opened.error().message);
    return 1;
  }
  Result<std::unique_ptr<store::Store>> store(std::move(opened->store));
  aws::DefaultChainOptions chain;
  chain.transport = transport;
  std::shared_ptr<aws::CredentialsProvider> own_credentials = aws::MakeDefaultCredentialsChain(chain);
  // Sluice's own Google service account (GCS destinations and gcsImport): --gcp-credentials, else
  // GOOGLE_APPLICATION_CREDENTIALS, else the metadata server (asked only when a GCS bucket is used). A named
  // key file that is broken stops the start: the operator meant to use it.
  auto google_identity = gcp::MakeDefaultTokenProvider({.transport = transport}, f.gcp_credentials);
  if (!google_identity.ok()) {
    spdlog::error("{}", google_identity.error().message);
    return 2;
  }
  api::ServiceOptions service_options{.admin_token = *admin_token,
                                      .rate_limit_bytes_per_minute = f.rate_limit,
                                      .metrics = &metrics};
  // Other nodes create and change projects in a shared store: this node's view follows within 2 s.
  if (opened->coordination) {
    service_options.project_refresh = std::chrono::seconds(2);
    // A request waiting for the registry's check holds its I/O thread: half of them at most.
    service_options.project_miss_waiters = std::max(1, f.threads / 2);
  }
  // A check of a customer's bucket holds its I/O thread for seconds: half of them at most.
  service_options.bucket_checks = std::max(1, f.threads / 2);
  std::unique_ptr<CountryLookup> geoip;
  if (!f.geoip_dir.empty()) {
    auto opened_geoip = CountryLookup::Open(f.geoip_dir + "/GeoIP.dat", f.geoip_dir + "/GeoIPv6.dat");
    if (opened_geoip.ok()) {
      geoip = std::move(opened_geoip).value();
      service_options.geoip = geoip.get();
    } else {
      spdlog::warn("ip=1, ip properties and $ip add no country to events or profiles: {}",
                   opened_geoip.error().message);
    }
  }
  // [pipelines] and [cloud import] managers are created here and handed to the service.
  // The operator's named static S3 credentials (POST /api/app/credentials), for pipelines and imports.
  auto static_credentials = std::make_shared<const storage_access::StaticCredentialRegistry>(**store);
  pipeline::DestinationFactoryOptions destination_options;
  destination_options.static_credentials = static_credentials;
  destination_options.own_credentials = own_credentials;
  destination_options.transport = transport;
  destination_options.local_export_root = local_root;
  destination_options.endpoints = *endpoint_policy;
  destination_options.google_identity = *google_identity;
  destination_options.gcs_endpoints = *gcs_endpoint_policy;
  destination_options.azure_endpoints = *azure_endpoint_policy;
  pipeline::ManagerOptions pipeline_options;
  pipeline_options.store = store->get();
  pipeline_options.destinations = pipeline::MakeDestinationFactory(destination_options);
  pipeline_options.local_export_root = local_root;
  pipeline_options.metrics = &metrics;
  pipeline_options.schedule.delay = std::chrono::minutes(f.pipeline_delay_minutes);
  pipeline_options.schedule.max_sync_age_days = f.pipeline_max_sync_age_days;
  pipeline_options.max_concurrent_runs = f.pipeline_runs;
  pipeline_options.unit_parallelism = f.pipeline_unit_parallelism;
  // Units of work (a partition export, a connector run) are taken under leases: in-process on the embedded
  // store, in the coordination service when nodes share a ClickHouse store, so a dead node's unit is taken over
  // once its session expires (--coordination-session-timeout).
  std::shared_ptr<jobs::LeaseService> leases =
      opened->coordination ? jobs::MakeZooKeeperLeaseService(opened->coordination) : nullptr;
  const std::string node_id = f.node_id.empty() ? DefaultNodeId(f.listen) : f.node_id;
  pipeline_options.leases = leases;
  pipeline_options.node_id = node_id;
  auto pipelines = pipeline::Pipelines::Create(pipeline_options);
  if (!pipelines.ok()) {
    spdlog::error("cannot load pipelines: {}", pipelines.error().message);
    return 1;
  }
  service_options.pipelines = pipelines->get();
  cloudimport::ConnectorManager::Options import_options{
      .store = store->get(), .metrics = &metrics, .transport = transport, .own_credentials = own_credentials};
  import_options.max_concurrent_runs = f.import_runs;
  import_options.geoip = geoip.get();
  import_options.leases = leases;
  import_options.node_id = node_id;
  cloudimport::SourceContext source_context{.own_credentials = own_credentials,
                                            .google_identity = *google_identity,
                                            .transport = transport,
                                            .endpoints = *endpoint_policy,
                                            .gcs_endpoints = *gcs_endpoint_policy,
                                            .azure_endpoints = *azure_endpoint_policy,
                                            .static_credentials = static_credentials};
  import_options.source_factory = [source_context](const cloudimport::ConnectorSpec& spec,
                                                   const store::Project& project) {
    return cloudimport::OpenSource(spec, project, source_context);
  };
  auto connectors = cloudimport::ConnectorManager::Create(std::move(import_options));
  if (!connectors.ok()) {
    spdlog::error("cannot load cloud import connectors: {}", connectors.error().message);
    return 1;
  }
  service_options.connectors = connectors->get();
  auto service = api::Service::Create(**store, service_options);
  if (!service.ok()) {
    spdlog::error("cannot start: {}", service.error().message);
    return 1;
  }
  auto connection_stats = std::make_shared<http::ConnectionStats>();
  metrics.GaugeCallback("sluice_http_connections", "Client connections open",
                        [connection_stats] { return static_cast<double>(connection_stats->open.load()); });
  metrics.GaugeCallback("sluice_http_connections_idle",
                        "Client connections open and idle (between requests, or before the first)",
                        [connection_stats] { return static_cast<double>(connection_stats->idle.load()); });
  metrics.CounterCallback(
      "sluice_http_connections_closed_idle_at_limit_total",
      "Idle keep-alive connections closed to make room for a new one at --max-connections",
      [connection_stats] { return static_cast<double>(connection_stats->closed_idle_at_limit.load()); });
  metrics.CounterCallback(
      "sluice_http_accept_paused_at_limit_total",
      "Times new connections had to wait because every connection was busy at --max-connections",
      [connection_stats] { return static_cast<double>(connection_stats->accept_paused_at_limit.load()); });
  http::ServerOptions so{.listen_host = endpoint->host,
                         .listen_port = endpoint->port,
                         .threads = f.threads,
                         // Embedded store: its memtable flushes outrank request handling on a saturated core
                         // (bench/load: write stalls 0.15-0.18 s -> 0.03 s per 300,000 events).
                         .worker_niceness = shared_store ? 0 : 5,
                         .worker_heap_warmup_bytes = 8u << 20,
                         // The parser sized for the largest batch once: its buffers are virtual memory until a
                         // batch that size arrives, and never land on the warmed heap.
                         .worker_start = [] { (void)ingest::ReserveThreadParser(ingest::kMaxBatchBytes); },
                         .tls_cert_file = f.tls_cert,
                         .tls_key_file = f.tls_key};
  so.max_connections = ConnectionsTheFileLimitAllows(f.max_connections, f.max_connections_given);
  so.connection_stats = connection_stats;
  // Block the termination signals before any thread starts so that only sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = http::Server::Create(so, (*service)->router(), (*service)->observer());
  if (!server.ok()) {
    spdlog::error("cannot listen on {}: {}", f.listen, server.error().message);
    return 1;
  }
  (*server)->Start();
  (*pipelines)->Start();
  (*connectors)->Start();
  const bool tls = !f.tls_cert.empty();
  std::string url = fmt::format("{}://{}:{}", tls ? "https" : "http", endpoint->host, (*server)->port());
  WriteServerUrl(dir, url);
  spdlog::info("sluice listening on {} (data dir {})", url, dir.string());

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}, draining in-flight requests (up to {} s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               f.shutdown_grace_s);
  (*server)->Shutdown(std::chrono::seconds(f.shutdown_grace_s));
  server->reset();
  // Interrupted exports resume at the next start (their units stay in progress).
  (*pipelines)->Stop();
  (*connectors)->Stop();  // an import in progress resumes from its checkpoint at the next start
  service->reset();
  if (auto s = (*store)->Close(); !s.ok()) {
    spdlog::error("closing the store: {}", s.error().message);
    return 1;
  }
  std::filesystem::remove(dir / "server.url", ec);
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace

void RegisterServeCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ServeFlags>();
  auto* cmd = app.add_subcommand("serve", "Run the Sluice server (ingestion API, read-back, management API)");
  cmd->add_option("--data-dir", flags->data_dir, "Directory for the store, admin token and state")
      ->capture_default_str();
  cmd->add_option("--listen", flags->listen, "Address to listen on, HOST:PORT")->capture_default_str();
  cmd->add_option("--tls-cert", flags->tls_cert, "PEM certificate chain: serve HTTPS (with --tls-key)");
  cmd->add_option("--tls-key", flags->tls_key, "PEM private key for --tls-cert");
  cmd->add_option("--threads", flags->threads, "HTTP I/O threads")->capture_default_str()->check(CLI::Range(1, 256));
  auto* max_connections =
      cmd->add_option(
             "--max-connections", flags->max_connections,
             "Most client connections open at once; at the limit the least recently used idle connection is "
             "closed, or new connections wait in the listen queue while all are busy. Needs as many file "
             "descriptors: Sluice raises its soft open-file limit to the hard one and lowers this when even "
             "that "
             "is too low (with a warning when the value was given)")
          ->capture_default_str()
          ->check(CLI::Range(size_t{1}, size_t{1000000}));
  cmd->add_option("--log-level", flags->log_level, "trace, debug, info, warn, error")->capture_default_str();
  cmd->add_option("--rate-limit-bytes-per-minute", flags->rate_limit,
                  "Per-project limit of uncompressed JSON per minute (0 = none; Mixpanel's is 2 GB)")
      ->capture_default_str();
  cmd->add_option("--shutdown-grace", flags->shutdown_grace_s, "Seconds to let in-flight requests finish on SIGTERM")
      ->capture_default_str();
  cmd->add_option("--pipeline-delay-minutes", flags->pipeline_delay_minutes,
                  "Minutes after an hour/day closes before pipelines export it (hourly runs at :30 by default)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1440));
  cmd->add_option("--pipeline-max-sync-age-days", flags->pipeline_max_sync_age_days,
                  "Late events older than this many days are not re-delivered by pipelines (0 = no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--pipeline-runs", flags->pipeline_runs, "Pipelines exporting at the same time")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option(
         "--import-runs", flags->import_runs,
         "Cloud Import connectors importing at the same time (one project never takes the last one while "
         "another waits)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--pipeline-unit-parallelism", flags->pipeline_unit_parallelism,
                  "Partitions one pipeline run (e.g. a backfill) exports at the same time")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--local-export-root", flags->local_export_root,
                  "Allow type=local pipelines, confined to this directory (local_path is taken under it); without "
                  "it type=local is refused");
  cmd->add_option("--allow-endpoint", flags->allow_endpoints,
                  "An S3-compatible endpoint URL (scheme://host[:port]) tenants may name as s3_endpoint; repeatable. "
                  "AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_S3 are allowed too; no other endpoint is contacted")
      ->allow_extra_args(false);
  cmd->add_option("--allow-gcs-endpoint", flags->allow_gcs_endpoints,
                  "A GCS JSON-API endpoint URL (scheme://host[:port]) tenants may name as gcs_endpoint; repeatable. "
                  "STORAGE_EMULATOR_HOST is allowed too; Sluice's Google token goes to no other endpoint. Requests "
                  "there carry that token: allow only endpoints you trust as much as Google")
      ->allow_extra_args(false);
  cmd->add_option("--allow-azure-endpoint", flags->allow_azure_endpoints,
                  "An Azure blob endpoint origin (scheme://host[:port], e.g. Azurite's http://127.0.0.1:10000) "
                  "tenants may name as azure_endpoint, addressed path-style as ORIGIN/ACCOUNT; repeatable. No "
                  "environment variable adds to it; the Entra ID authority is AZURE_AUTHORITY_HOST (default "
                  "https://login.microsoftonline.com), never a tenant's")
      ->allow_extra_args(false);
  cmd->add_option("--ca-bundle", flags->ca_bundle,
                  "PEM file of the CAs trusted for outbound TLS (storage, STS and token endpoints; default: the "
                  "system's CA store), e.g. a private CA of an allowed S3-compatible or Azure endpoint")
      ->check(CLI::ExistingFile);
  cmd->add_option("--gcp-credentials", flags->gcp_credentials,
                  "Sluice's Google service-account JSON key (default: GOOGLE_APPLICATION_CREDENTIALS, else the "
                  "GCE/GKE metadata server)");
  cmd->add_option(
         "--geoip-dir", flags->geoip_dir,
         "Directory of the GeoIP country databases GeoIP.dat and GeoIPv6.dat (Debian's geoip-database) "
         "that turn an event's ip property (or /track's ip=1) into its mp_country_code, and an /engage "
         "update's $ip (or ip=1) into the profile's $country_code, also for Cloud Import; \"\" = no country "
         "is added. An address is never stored")
      ->capture_default_str();
  cmd->add_option("--store", flags->store_url,
                  "Where events, profiles and metadata live: without it, the embedded store in --data-dir (one "
                  "node); clickhouse://HOST:PORT[,HOST:PORT...]/DB[?cluster=NAME] = ClickHouse's HTTP interface "
                  "shared by several Sluice nodes (the hosts are replicas to fail over between; cluster = the "
                  "remote_servers name for ON CLUSTER DDL and the Distributed table). Needs --coordination and "
                  "SLUICE_ADMIN_TOKEN");
  cmd->add_option("--coordination", flags->coordination_url,
                  "zookeeper://HOST:PORT[,HOST:PORT...][/CHROOT]: the ZooKeeper or ClickHouse Keeper ensemble "
                  "shared by every node of a clickhouse:// --store (projects, pipeline and connector state, leases)");
  cmd->add_option("--clickhouse-user", flags->clickhouse_user, "ClickHouse user for --store (default: default)");
  cmd->add_option("--clickhouse-password-file", flags->clickhouse_password_file,
                  "File holding the ClickHouse password for --store (else SLUICE_CLICKHOUSE_PASSWORD; never logged)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--coordination-session-timeout", flags->coordination_session_timeout_s,
                  "Seconds the coordination service keeps a silent node's session: a dead node's export and import "
                  "work is taken over this long after it died")
      ->capture_default_str()
      ->check(CLI::Range(2, 120));
  cmd->add_option(
      "--node-id", flags->node_id,
      "This node's name in leases and logs (default: HOSTNAME:PORT-PID: the host name, the port of --listen "
      "and the process id)");
  cmd->add_flag("--reserve-memtables,!--no-reserve-memtables", flags->reserve_memtables,
                "Embedded store: map and touch the memory of two memtables (128 MB) and of the journal's write "
                "buffer (16 MB) at start, so ingest never waits for the kernel to provide fresh memory "
                "(--no-reserve-memtables: take it as memtables fill)")
      ->capture_default_str();
  cmd->callback([flags, max_connections, &exit_code] {
    flags->max_connections_given = max_connections->count() > 0;
    if (flags->tls_cert.empty() != flags->tls_key.empty()) {
      throw CLI::ValidationError("--tls-cert and --tls-key", "must be given together");
    }
    exit_code = Serve(*flags);
  });
}

}  // namespace sluice::app
