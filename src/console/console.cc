// Serving the console: embedded assets with caching headers, the / redirect and /ui/api/projects.
#include "console/console.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "console/assets.h"

namespace sluice::console {
namespace {

namespace json = boost::json;

/// Headers every console answer carries, JSON included: a page that cannot load foreign code, be framed, or
/// have its types sniffed into something executable.
void AddSecurityHeaders(http::Response& r) {
  r.headers.Set("Content-Security-Policy", kContentSecurityPolicy);
  r.headers.Set("X-Content-Type-Options", "nosniff");
  r.headers.Set("X-Frame-Options", "DENY");
  r.headers.Set("Referrer-Policy", "no-referrer");
}

http::Response ConsoleJsonError(int status, std::string_view message) {
  http::Response r = http::Response::Json(status, http::JsonErrorBody(message));
  r.headers.Set("Cache-Control", "no-store");
  AddSecurityHeaders(r);
  return r;
}

const Asset* FindAsset(std::string_view name) {
  for (const Asset& a : Assets()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

/// True when If-None-Match lists `etag` (or is "*"): the browser's copy is current.
bool NotModified(const http::Request& req, std::string_view etag) {
  auto inm = req.headers.Get("If-None-Match");
  if (!inm) return false;
  std::string_view v = *inm;
  if (v == "*") return true;
  size_t pos = 0;
  while (pos < v.size()) {
    size_t comma = v.find(',', pos);
    std::string_view item =
        v.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == etag) return true;
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return false;
}

http::Response ServeAsset(const http::Request& req, std::string_view name) {
  const Asset* asset = FindAsset(name);
  if (asset == nullptr) {
    // Echo at most a short prefix of what was asked for: error bodies never carry a client's bulk back.
    constexpr size_t kMaxEcho = 80;
    return ConsoleJsonError(404, fmt::format("the console has no file '{}{}': open /ui/",
                                             name.substr(0, kMaxEcho), name.size() > kMaxEcho ? "…" : ""));
  }
  http::Response r;
  if (NotModified(req, asset->etag)) {
    r.status = 304;
  } else {
    r.status = 200;
    r.body = std::string(asset->body);
    r.headers.Set("Content-Type", std::string(asset->content_type));
  }
  r.headers.Set("ETag", std::string(asset->etag));
  // Revalidate every time: a server upgrade must show its new console at once; the ETag keeps it cheap.
  r.headers.Set("Cache-Control", "no-cache");
  AddSecurityHeaders(r);
  return r;
}

/// Ingestion counts of one project from partition change tracking (replacements of a dedup key count again,
/// so these are "events received", not distinct events).
struct ProjectCounts {
  uint64_t today = 0;
  uint64_t bytes_today = 0;
  std::vector<uint64_t> last_24h =
      std::vector<uint64_t>(24, 0);  // oldest first; the last is the current hour
};

/// Today's UTC hours all lie within the last 24 hours, so one partition listing answers both.
Result<ProjectCounts> CountProject(store::Store& store, uint32_t project, store::Hour now_hour) {
  const store::Hour first = now_hour >= 23 ? now_hour - 23 : 0;
  const store::Hour day_start = now_hour - now_hour % 24;
  SLUICE_ASSIGN_OR_RETURN(auto parts, store.ListPartitions(project, first, now_hour));
  ProjectCounts c;
  for (const auto& part : parts) {
    if (part.hour < first || part.hour > now_hour) continue;
    c.last_24h[23 - (now_hour - part.hour)] += part.writes;
    if (part.hour >= day_start) {
      c.today += part.writes;
      c.bytes_today += part.bytes;
    }
  }
  return c;
}

http::Response ProjectsRoute(const ConsoleOptions& o, const http::Request& req) {
  auto viewer = o.authenticate ? o.authenticate(req) : std::nullopt;
  if (!viewer) {
    return ConsoleJsonError(
        401,
        "sign in with the admin token (Authorization: Bearer) or a project's API secret (HTTP "
        "Basic, the secret as the user name)");
  }
  const int64_t now_ms = o.clock->NowMillis();
  const store::Hour now_hour = store::HourOf(now_ms * 1000);
  const store::Hour day_start = now_hour - now_hour % 24;
  json::array projects;
  for (const store::Project& p : viewer->projects) {
    auto counts = CountProject(*o.store, p.id, now_hour);
    if (!counts.ok()) {
      return ConsoleJsonError(503,
                              fmt::format("reading project {}'s partition counts failed: {}; retry, and see "
                                          "the server log if it persists",
                                          p.id, counts.error().message));
    }
    json::array last_24h;
    for (uint64_t h : counts->last_24h) last_24h.emplace_back(h);
    // Only what the page shows: never the API secret, the token or the external ID.
    projects.push_back(json::object{{"id", p.id},
                                    {"name", p.name},
                                    {"created_ms", p.created_ms},
                                    {"events_today", counts->today},
                                    {"bytes_today", counts->bytes_today},
                                    {"events_last_hour", counts->last_24h.back()},
                                    {"events_last_24h", std::move(last_24h)}});
  }
  const std::chrono::year_month_day ymd{std::chrono::sys_days(std::chrono::days(day_start / 24))};
  const std::string day = fmt::format("{:04d}-{:02d}-{:02d}", static_cast<int>(ymd.year()),
                                      static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  json::object out{{"viewer", viewer->admin ? "admin" : "project"},
                   {"now_ms", now_ms},
                   {"day", day},
                   {"projects", std::move(projects)}};
  http::Response r = http::Response::Json(200, json::serialize(out));
  r.headers.Set("Cache-Control", "no-store");
  AddSecurityHeaders(r);
  return r;
}

}  // namespace

void RegisterRoutes(http::Router& router, ConsoleOptions options) {
  auto shared = std::make_shared<const ConsoleOptions>(std::move(options));
  router.Add("GET", "/", [](http::Request&) {
    http::Response r = http::Response::Text(302, "the console is at /ui/\n");
    r.headers.Set("Location", "/ui/");
    AddSecurityHeaders(r);
    return r;
  });
  router.Add("GET", "/ui", [](http::Request& req) { return ServeAsset(req, "index.html"); });
  router.Add("GET", "/ui/{asset}",
             [](http::Request& req) { return ServeAsset(req, req.path_params.at("asset")); });
  router.Add("GET", "/ui/api/projects", [shared](http::Request& req) { return ProjectsRoute(*shared, req); });
}

}  // namespace sluice::console
