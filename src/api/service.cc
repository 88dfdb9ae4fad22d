#include "api/service.h"

#include <chrono>

#include "api/service_impl.h"
#include "console/console.h"

namespace sluice::api {
namespace {
// Request latency buckets in seconds: sub-millisecond /track up to multi-second batches under load.
const std::vector<double> kLatencyBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
}  // namespace

ApiMetrics::ApiMetrics(MetricsRegistry& r)
    : registry(r),
      requests(r.Counter("sluice_http_requests_total", "HTTP requests by route, method and status",
                         {"route", "method", "status"})),
      latency(r.Histogram("sluice_http_request_duration_seconds", "HTTP request latency", {"route"},
                          kLatencyBuckets)),
      bytes_in(r.Counter("sluice_ingest_bytes_total", "Uncompressed JSON bytes received by ingestion endpoints",
                         {"endpoint"})),
      events_accepted(r.Counter("sluice_events_accepted_total", "Events stored durably", {"endpoint"})),
      events_rejected(r.Counter("sluice_events_rejected_total", "Events refused, by reason", {"endpoint", "reason"})),
      profile_updates(r.Counter("sluice_profile_updates_total", "Profile updates by result", {"result"})) {}

ServiceImpl::ServiceImpl(store::Store& store, ServiceOptions options)
    : store_(store),
      options_(std::move(options)),
      projects_(store, options_.project_refresh, options_.project_miss_waiters),
      rate_limiter_(options_.rate_limit_bytes_per_minute, *options_.clock),
      bucket_check_slots_(std::make_shared<ProjectSlots>(1, std::max(1, options_.bucket_checks))),
      owned_registry_(options_.metrics ? nullptr : std::make_unique<MetricsRegistry>()),
      registry_(options_.metrics ? options_.metrics : owned_registry_.get()),
      metrics_(std::make_unique<ApiMetrics>(*registry_)),
      router_(std::make_shared<http::Router>()) {}

Status ServiceImpl::Init() {
  SLUICE_TRY(projects_.Load());
  registry_->GaugeCallback("sluice_store_size_bytes", "Approximate on-disk size of the embedded store",
                           [this] { return static_cast<double>(store_.ApproximateSizeBytes()); });
  registry_->CounterCallback("sluice_store_stall_seconds_total",
                             "Seconds writes waited on store write stalls (flushes or L0 compaction behind)",
                             [this] { return store_.StallSeconds(); });
  registry_->GaugeCallback("sluice_projects", "Projects defined",
                           [this] { return static_cast<double>(projects_.List().size()); });
  auto bind = [this](http::Response (ServiceImpl::*fn)(http::Request&)) {
    return [this, fn](http::Request& req) { return (this->*fn)(req); };
  };
  // Ingestion (Mixpanel-compatible). SDKs use GET and POST on /track and /engage.
  for (const char* method : {"GET", "POST"}) {
    router_->Add(method, "/import", bind(&ServiceImpl::HandleImport));  // GET: the legacy ?data= form
    router_->Add(method, "/track", bind(&ServiceImpl::HandleTrack));
    router_->Add(method, "/engage", bind(&ServiceImpl::HandleEngage));
    router_->Add(method, "/groups", bind(&ServiceImpl::HandleGroups));
    router_->Add(method, "/api/2.0/export", bind(&ServiceImpl::HandleExport));
    router_->Add(method, "/api/2.0/engage", bind(&ServiceImpl::HandleEngageQuery));
  }
  // Browsers (mixpanel-browser on a customer's site) send these from other origins. Only these: the read,
  // admin and management APIs stay closed to cross-origin pages (http/server.h, Router).
  for (const char* path : {"/track", "/engage", "/groups", "/import"}) router_->AllowCrossOrigin(path);
  router_->Add("POST", "/api/app/projects", bind(&ServiceImpl::HandleCreateProject));
  router_->Add("GET", "/api/app/projects", bind(&ServiceImpl::HandleListProjects));
  router_->Add("POST", "/api/app/projects/{id}", bind(&ServiceImpl::HandleUpdateProject));
  router_->Add("GET", "/healthz", bind(&ServiceImpl::HandleHealth));
  router_->Add("GET", "/metrics", bind(&ServiceImpl::HandleMetrics));
  RegisterPipelineRoutes();
  RegisterConnectorRoutes();
  RegisterCredentialRoutes();
  // The web console (src/console, docs/console.md) at / and /ui/; its JSON trusts the same credentials as the
  // admin and pipeline APIs: the admin token sees every project, an API secret its own.
  console::RegisterRoutes(
      *router_, {.store = &store_,
                 .clock = options_.clock,
                 .authenticate = [this](const http::Request& req) -> std::optional<console::Viewer> {
                   if (IsAdmin(req)) return console::Viewer{true, projects_.List()};
                   http::Response ignored;
                   auto project = AuthenticateProjectRequest(req, ignored);
                   if (!project) return std::nullopt;
                   return console::Viewer{false, {*project}};
                 }});
  return OkStatus();
}

http::RequestObserver ServiceImpl::observer() {
  return [this](std::string_view route, std::string_view method, int status, double seconds, size_t) {
    metrics_->requests.WithLabels({std::string(route), std::string(method), std::to_string(status)}).Inc();
    metrics_->latency.WithLabels({std::string(route)}).Observe(seconds);
  };
}

int64_t ServiceImpl::NowMicros() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(options_.clock->Now().time_since_epoch()).count();
}

Result<std::unique_ptr<Service>> Service::Create(store::Store& store, ServiceOptions options) {
  auto service = std::make_unique<ServiceImpl>(store, std::move(options));
  SLUICE_TRY(service->Init());
  return std::unique_ptr<Service>(std::move(service));
}

}  // namespace sluice::api
