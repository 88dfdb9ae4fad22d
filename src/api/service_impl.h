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

/// Requests of one kind that hold an I/O thread (or a thread of their own) for long, counted per project and
/// server-wide: /api/2.0/export streams (a store scan for as long as the client reads) and requests that
/// check a customer's bucket (pipeline create and edit, connector create: assume role, list, write, read —
/// seconds, or longer against a slow endpoint or a prefix full of folder markers). Over a limit the request
/// gets 429, so one tenant cannot occupy the threads every tenant's ingestion needs.
class ProjectSlots : public std::enable_shared_from_this<ProjectSlots> {
 public:
  /// `total` = 0: no server-wide limit.
  ProjectSlots(int per_project, int total) : per_project_(per_project), total_(total) {}
  /// A slot of `project`, given back when the handle is destroyed; nullptr when the project's or the server's
  /// slots are all taken.
  std::shared_ptr<void> TryTake(uint32_t project);

 private:
  const int per_project_;
  const int total_;
  std::mutex mu_;
  int taken_ = 0;
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
  /// /api/2.0/export streams one project may run at once.
  static constexpr int kExportsPerProject = 4;
  /// A bucket check slot of `project` (see ProjectSlots), or a 429 in `busy`.
  std::shared_ptr<void> TakeBucketCheckSlot(uint32_t project, http::Response& busy);

 private:
  /// Stores parsed events grouped per project. Returns false with `error` on a store failure. With `batch`
  /// (the parse's ParseOptions::sink), the events are already in it and it is written instead.
  bool StoreEvents(uint32_t project, const ingest::ParsedEvents& parsed, std::string_view endpoint,
                   std::string& error, store::EventStore::EventBatch* batch = nullptr);

  store::Store& store_;
  ServiceOptions options_;
  ProjectRegistry projects_;
  RateLimiter rate_limiter_;
  std::shared_ptr<ProjectSlots> export_slots_ = std::make_shared<ProjectSlots>(kExportsPerProject, 0);
  std::shared_ptr<ProjectSlots> bucket_check_slots_;
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
