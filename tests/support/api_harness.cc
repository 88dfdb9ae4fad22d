#include "support/api_harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "chstore/open.h"
#include "common/crypto.h"
#include "ingest/profile_ops.h"
#include "support/clickhouse_cluster.h"
#include "support/zookeeper_server.h"

namespace sluice::testing {
namespace {

/// SLUICE_TEST_STORE=clickhouse runs a suite over the shared ClickHouse store (issue 13: one suite over both
/// backends). One loopback ZooKeeper and ClickHouse 1 shard × 2 replicas serve the whole process, started on
/// first use and stopped by PID when it exits; each harness gets its own database and coordination chroot.
bool UseClickHouseStore() {
  const char* backend = std::getenv("SLUICE_TEST_STORE");
  return backend != nullptr && std::string_view(backend) == "clickhouse";
}

struct LoopbackCluster {
  std::unique_ptr<ZooKeeperServer> zookeeper;
  std::unique_ptr<ClickHouseCluster> clickhouse;
  std::shared_ptr<http::HttpTransport> transport;
  Status started = OkStatus();
};

LoopbackCluster& SharedCluster() {
  static LoopbackCluster cluster = [] {
    LoopbackCluster c;
    auto zk = ZooKeeperServer::Start();
    if (!zk.ok()) {
      c.started = zk.error();
      return c;
    }
    c.zookeeper = std::move(zk).value();
    auto ch = ClickHouseCluster::Start({.shards = 1, .replicas = 2}, c.zookeeper->HostPort());
    if (!ch.ok()) {
      c.started = ch.error();
      return c;
    }
    c.clickhouse = std::move(ch).value();
    c.transport = http::MakeCurlTransport();
    return c;
  }();
  return cluster;
}

Result<std::unique_ptr<store::Store>> OpenClickHouseStore() {
  LoopbackCluster& cluster = SharedCluster();
  SLUICE_TRY(cluster.started);
  static const ingest::ProfileUpdateFolder folder;
  const std::string tag = RandomHex(48);
  chstore::ClusterStoreOptions options;
  options.store_url = cluster.clickhouse->StoreUrl("t_" + tag);
  options.coordination_url = cluster.zookeeper->Url("/t_" + tag);
  options.transport = cluster.transport;
  options.profile_folder = &folder;
  SLUICE_ASSIGN_OR_RETURN(chstore::ClusterStore opened, chstore::OpenClusterStore(options));
  return std::move(opened.store);
}

}  // namespace

namespace json = boost::json;

std::string Reply::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      return v;
    }
  }
  return {};
}

json::value Reply::Json() const { return json::parse(body); }

json::object Reply::Object() const {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  return !ec && v.is_object() ? v.as_object() : json::object{};
}

std::string Reply::Error() const {
  json::object o = Object();
  auto it = o.find("error");
  return it != o.end() && it->value().is_string() ? std::string(it->value().as_string()) : std::string();
}

ApiHarness::~ApiHarness() {
  StopServing();
  if (store_) (void)store_->Close();
  store_.reset();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

Status ApiHarness::OpenStore(store::StoreOptions options) {
  // 64 random hex digits: two fixtures running in parallel (ctest -j) never share a directory.
  dir_ = std::filesystem::temp_directory_path() / ("sluice-api-harness-" + RandomHex(64));
  auto st = UseClickHouseStore() ? OpenClickHouseStore() : store::Store::Open(dir_, std::move(options));
  if (!st.ok()) return st.error();
  store_ = std::move(st).value();
  return OkStatus();
}

Status ApiHarness::OpenStoreWrapped(
    const std::function<Result<std::unique_ptr<store::Store>>(std::unique_ptr<store::Store> opened,
                                                              const std::filesystem::path& dir)>& wrap) {
  SLUICE_TRY(OpenStore());
  std::filesystem::create_directories(dir_ / "wrapped");
  SLUICE_ASSIGN_OR_RETURN(store_, wrap(std::move(store_), dir_ / "wrapped"));
  return OkStatus();
}

Status ApiHarness::Serve(api::ServiceOptions options, http::ServerOptions server) {
  if (!store_) return Internal("ApiHarness::Serve before OpenStore");
  auto svc = api::Service::Create(*store_, std::move(options));
  if (!svc.ok()) return svc.error();
  service_ = std::move(svc).value();
  auto srv = http::Server::Create(server, service_->router(), service_->observer());
  if (!srv.ok()) return srv.error();
  server_ = std::move(srv).value();
  server_->Start();
  base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  if (!transport_) transport_ = http::MakeCurlTransport();
  return OkStatus();
}

void ApiHarness::StopServing() {
  if (server_) server_->Shutdown(std::chrono::seconds(5));
  server_.reset();
  service_.reset();
}

Reply ApiHarness::Send(const std::string& method, const std::string& path, std::string body,
                       Headers headers) {
  http::OutboundRequest req{.method = method, .url = base_ + path, .headers = std::move(headers)};
  if (!body.empty() || method == "POST") req.body = http::RequestBody::FromString(std::move(body));
  auto resp = transport_->Send(req, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  EXPECT_TRUE(resp.ok()) << method << ' ' << path << ": " << resp.error().ToString();
  if (!resp.ok()) return {};
  return Reply{resp->status, std::move(resp->body), std::move(resp->headers)};
}

TestProject ApiHarness::CreateProject(const std::string& name, std::string_view admin_token) {
  auto r = Send("POST", "/api/app/projects", json::serialize(json::object{{"name", name}}),
                {{"Authorization", Bearer(admin_token)}});
  EXPECT_EQ(r.status, 200) << r.body;
  json::object p = r.Object();
  if (r.status != 200 || !p.contains("id")) return {};
  return TestProject{.id = static_cast<uint32_t>(p.at("id").as_int64()),
                     .token = json::value_to<std::string>(p.at("token")),
                     .secret = json::value_to<std::string>(p.at("api_secret"))};
}

std::string ApiHarness::Bearer(std::string_view admin_token) { return "Bearer " + std::string(admin_token); }

std::string ApiHarness::Basic(std::string_view secret) {
  return "Basic " + Base64Encode(std::string(secret) + ":");
}

}  // namespace sluice::testing
