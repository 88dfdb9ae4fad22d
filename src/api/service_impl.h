// Internal: the state shared by the handler files of the api module.
#pragma once

#include <boost/json.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "api/project_registry.h"
#include "api/rate_limiter.h"
#include "api/service.h"
#include "common/metrics.h"
#include "http/server.h"
#include "ingest/ingest.h"
#include "store/store.h"

namespace sluice::api {

/// The instruments /metrics exposes for the API.
struct ApiMetrics {
  explicit ApiMetrics(MetricsRegistry& registry);
  MetricsRegistry& registry;
  CounterFamily& requests;          // {route, method, status}
  HistogramFamily& latency;         // {route}
  CounterFamily& bytes_in;          // {route}
  CounterFamily& events_accepted;   // {endpoint}
  CounterFamily& events_rejected;   // {endpoint, reason}
  CounterFamily& profile_updates;   // {result}
};

/// The /api/2.0/export streams running per project: each runs a store scan on a thread of its own for as long
/// as its client reads, so one project may hold only kPerProject of them at a time.
class ExportSlots : public std::enable_shared_from_this<ExportSlots> {
 public:
  static constexpr int kPerProject = 4;
  /// A slot of `project`, given back when the handle is destroyed; nullptr when all its slots are taken.
  std::shared_ptr<void> TryTake(uint32_t project);

 private:
  std::mutex mu_;
  std::unordered_map<uint32_t, int> running_;
};

class ServiceImpl final : public Service {
 public:
  ServiceImpl(store::Store& store, ServiceOptions options);
  Status Init();

  std::shared_ptr<const http::Router> router() const override { return router_; }
  http::RequestObserver observer() override;

  // ---- handlers (one file each: ingest_handlers.cc, read_handlers.cc, admin_handlers.cc) ----
  http::Response HandleImport(http::Request& req);
  http::Response HandleTrack(http::Request& req);
  http::Response HandleEngage(http::Request& req);
  http::Response HandleGroups(http::Request& req);
  /// /engage (user profiles) and /groups (group profiles): the same request forms, answers and semantics.
  http::Response HandleProfileUpdates(http::Request& req, bool groups);
  http::Response HandleExport(http::Request& req);
  http::Response HandleEngageQuery(http::Request& req);
  http::Response HandleCreateProject(http::Request& req);
  http::Response HandleListProjects(http::Request& req);
  http::Response HandleUpdateProject(http::Request& req);
  http::Response HandleHealth(http::Request& req);
  http::Response HandleMetrics(http::Request& req);
  /// /api/2.0/nessie/pipeline/* (pipeline_handlers.cc).
  void RegisterPipelineRoutes();
  /// /api/app/projects/{id}/connectors* (connector_handlers.cc).
  void RegisterConnectorRoutes();
  /// /api/app/credentials* (credential_handlers.cc): the operator's named static S3 credentials.
  void RegisterCredentialRoutes();

  /// The project a read/management request acts for: API secret in Basic auth (optionally with project_id), or
  /// the admin token as Bearer with project_id. nullopt after filling `error` with a 401/400 response.
  std::optional<store::Project> AuthenticateProjectRequest(const http::Request& req, http::Response& error);
  bool IsAdmin(const http::Request& req) const;

  store::Store& store() { return store_; }
  const ServiceOptions& options() const { return options_; }
  MetricsRegistry& metrics_registry() { return *registry_; }
  ProjectRegistry& projects() { return projects_; }
  int64_t NowMicros() const;

 private:
  /// Stores parsed events grouped per project. Returns false with `error` on a store failure. With `batch`
  /// (the parse's ParseOptions::sink), the events are already in it and it is written instead.
  bool StoreEvents(uint32_t project, const ingest::ParsedEvents& parsed, std::string_view endpoint,
                   std::string& error, store::EventStore::EventBatch* batch = nullptr);

  store::Store& store_;
  ServiceOptions options_;
  ProjectRegistry projects_;
  RateLimiter rate_limiter_;
  std::shared_ptr<ExportSlots> export_slots_ = std::make_shared<ExportSlots>();
  std::unique_ptr<MetricsRegistry> owned_registry_;
  MetricsRegistry* registry_;
  std::unique_ptr<ApiMetrics> metrics_;
  std::shared_ptr<http::Router> router_;

  friend class IngestHandlers;
};

/// {"error": message, "status": "error"} with `status`.
http::Response JsonError(int status, std::string_view message);

/// What a caller holding a project's token or secret is told when the store fails under its request: that
/// `what` (e.g. "events were not stored") happened and to retry — never the store's own message, which names
/// ClickHouse hosts, file paths and server exceptions. Logs that message (with the project) for the operator.
std::string StoreFailureForTenant(std::string_view what, uint32_t project, const Error& error);

}  // namespace sluice::api
