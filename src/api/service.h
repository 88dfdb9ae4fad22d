// Service: the assembled HTTP API of Sluice — ingestion (/import, /track, /engage), read-back
// (/api/2.0/export, /api/2.0/engage), projects (/api/app/projects), /healthz and /metrics — over one Store.
//
// Owns the ProjectRegistry, rate limiter and metrics; borrows the Store. Thread-safe: handlers run
// concurrently on the HTTP server's I/O threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/geoip.h"
#include "common/secret.h"
#include "http/server.h"
#include "store/store.h"

namespace sluice {
class MetricsRegistry;
}
namespace sluice::pipeline {
class PipelineManager;
}
namespace sluice::cloudimport {
class ConnectorManager;
}

namespace sluice::api {

struct ServiceOptions {
  /// Bearer token for /api/app/* administration.
  Secret admin_token;
  /// Per-project limit of uncompressed JSON bytes per minute; 0 = unlimited. Mixpanel's: 2 GB.
  uint64_t rate_limit_bytes_per_minute = 2'000'000'000ull;
  const Clock* clock = &SystemClock::Instance();
  /// Registry /metrics renders; null = the service's own. Shared with the pipeline and import managers.
  MetricsRegistry* metrics = nullptr;
  /// JSON Pipelines management API (/api/2.0/nessie/pipeline/*); null = those routes answer 503.
  pipeline::PipelineManager* pipelines = nullptr;
  /// Cloud Import connectors API (/api/app/projects/{id}/connectors*); null = those routes answer 503.
  cloudimport::ConnectorManager* connectors = nullptr;
  /// > 0 when other Sluice nodes share the store: how stale this node's view of projects may get (see
  /// ProjectRegistry). 0 = the embedded store, this process is the only writer.
  std::chrono::milliseconds project_refresh{0};
  /// With a shared store: how many requests with an unknown credential may wait at once for the registry's
  /// next check (ProjectRegistry's max_waiting_misses; serve gives half its I/O threads).
  int project_miss_waiters = 2;  // ProjectRegistry::kDefaultMaxWaitingMisses
  /// Requests that check a customer's bucket from an I/O thread (pipeline create and edit, Cloud Import
  /// connector create) at once, server-wide; one per project. More get 429 with Retry-After, so slow checks
  /// cannot hold every I/O thread (serve gives half its I/O threads).
  int bucket_checks = 2;
  /// Geolocation as Mixpanel's: /track's ip=1 makes the country of the request's address the event's
  /// mp_country_code; an /engage update's $ip (or, with ip=1, the request's address) gives the profile's
  /// $country_code. Null = no country is added (an address is never stored either way). serve opens Debian's
  /// geoip-database.
  const CountryLookup* geoip = nullptr;
};

class Service {
 public:
  /// Loads projects from `store`. `store` must outlive the Service.
  static Result<std::unique_ptr<Service>> Create(store::Store& store, ServiceOptions options);
  virtual ~Service() = default;

  /// The router with every route registered.
  virtual std::shared_ptr<const http::Router> router() const = 0;
  /// Records a finished request in /metrics (pass to http::Server::Create).
  virtual http::RequestObserver observer() = 0;
};

}  // namespace sluice::api
