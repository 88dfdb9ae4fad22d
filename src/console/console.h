// The web console (docs/console.md): a single-page app served by Sluice itself under /ui/ — static files
// compiled into the binary — plus one read-only JSON endpoint of its own, /ui/api/projects. Everything else
// the page shows comes from the public APIs the CLI uses (pipelines, connectors, /metrics).
//
//   GET /                    302 → /ui/
//   GET /ui, /ui/            index.html
//   GET /ui/{asset}          an embedded file (ETag, If-None-Match → 304)
//   GET /ui/api/projects     the projects the credentials may see, with today's ingestion counts
//
// Every answer carries a strict Content-Security-Policy (scripts, styles and connections only from this
// origin, no inline code, no framing) and X-Content-Type-Options: nosniff.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "common/clock.h"
#include "http/server.h"
#include "store/store.h"

namespace sluice::console {

/// Who a request is, as the service's own authentication decides (the same check as the admin and pipeline
/// APIs): the admin token sees every project, a project's API secret only its own.
struct Viewer {
  bool admin = false;
  std::vector<store::Project> projects;
};
/// nullopt = the credentials are missing or wrong (the endpoint answers 401).
using Authenticator = std::function<std::optional<Viewer>(const http::Request&)>;

struct ConsoleOptions {
  /// Read for per-project partition counts. Borrowed; must outlive the router.
  store::Store* store = nullptr;
  const Clock* clock = &SystemClock::Instance();
  Authenticator authenticate;
};

/// The Content-Security-Policy of every console answer.
inline constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the console's routes to `router`.
void RegisterRoutes(http::Router& router, ConsoleOptions options);

}  // namespace sluice::console
