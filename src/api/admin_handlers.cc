// Projects (/api/app/projects), /healthz and /metrics, and the authentication helpers shared by handlers.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cstring>

#include "api/request_util.h"
#include "api/service_impl.h"
#include "common/crypto.h"
#include "storage_access/location.h"

namespace sluice::api {
namespace {

boost::json::array GcsBucketsJson(const store::Project& p) {
  boost::json::array out;
  for (const std::string& b : p.gcs_buckets) out.emplace_back(b);
  return out;
}

boost::json::object ProjectJson(const store::Project& p) {
  return {{"id", p.id}, {"name", p.name}, {"token", p.token}, {"api_secret", p.api_secret.Reveal()},
          {"created_ms", p.created_ms}, {"external_id", storage_access::EffectiveExternalId(p)},
          {"gcs_buckets", GcsBucketsJson(p)}};
}

/// `"gcs_buckets": [...]` of an update body: at most kMaxGcsBuckets valid GCS bucket names, duplicates
/// dropped. The list replaces the project's bindings (docs/gcs.md#binding).
constexpr size_t kMaxGcsBuckets = 100;
Result<std::vector<std::string>> ParseGcsBuckets(const boost::json::value& v) {
  const char* const shape = R"(gcs_buckets must be an array of GCS bucket names, e.g. ["acme-events"] ([] = none))";
  if (!v.is_array()) return InvalidArgument(shape);
  if (v.as_array().size() > kMaxGcsBuckets) {
    return InvalidArgument(fmt::format("gcs_buckets may name at most {} buckets", kMaxGcsBuckets));
  }
  std::vector<std::string> out;
  for (const auto& item : v.as_array()) {
    if (!item.is_string()) return InvalidArgument(shape);
    std::string name(item.as_string());
    SLUICE_TRY(storage_access::ValidateGcsBucketName(name, "gcs_buckets item"));
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  }
  return out;
}

}  // namespace

http::Response JsonError(int status, std::string_view message) {
  return http::Response::Json(status, boost::json::serialize(boost::json::object{{"error", message},
                                                                                 {"status", "error"}}));
}

std::string StoreFailureForTenant(std::string_view what, uint32_t project, const Error& error) {
  spdlog::error("{} (project {}): {}", what, project, error.ToString());
  return fmt::format("{}: the store is unavailable; retry the request (the cause is in the server's log)",
                     what);
}

bool ServiceImpl::IsAdmin(const http::Request& req) const {
  auto bearer = http::ParseBearer(req.headers);
  return bearer && !options_.admin_token.empty() && ConstantTimeEquals(*bearer, options_.admin_token.Reveal());
}

std::optional<store::Project> ServiceImpl::AuthenticateProjectRequest(const http::Request& req,
                                                                      http::Response& error) {
  RequestParams params(req);
  auto pid_text = params.Get("project_id");
  std::optional<uint32_t> pid;
  if (pid_text && !pid_text->empty()) {
    auto parsed = ParseUint<uint32_t>("project_id", *pid_text);
    if (!parsed.ok()) {
      error = JsonError(400, parsed.error().message);
      return std::nullopt;
    }
    pid = *parsed;
  }
  std::optional<store::Project> project;
  if (IsAdmin(req)) {
    if (!pid) {
      error = JsonError(400, "project_id is required when authenticating with the admin token");
      return std::nullopt;
    }
    project = projects_.ById(*pid);
    if (!project) {
      error = JsonError(404, fmt::format("project {} does not exist", *pid));
      return std::nullopt;
    }
    return project;
  }
  if (auto basic = http::ParseBasicAuth(req.headers)) {
    project = projects_.BySecret(basic->user);
    if (!project && !basic->password.empty()) project = projects_.BySecret(basic->password);
  }
  if (!project) {
    error = JsonError(401, "Invalid credentials: authenticate with HTTP Basic auth, the project's API secret as "
                           "the user name and an empty password");
    error.headers.Set("WWW-Authenticate", "Basic realm=\"Sluice\"");
    return std::nullopt;
  }
  if (pid && *pid != project->id) {
    error = JsonError(401, fmt::format("project_id {} does not match the credentials", *pid));
    return std::nullopt;
  }
  return project;
}

http::Response ServiceImpl::HandleCreateProject(http::Request& req) {
  if (!IsAdmin(req)) return JsonError(401, "an admin token is required: Authorization: Bearer <admin token>");
  boost::system::error_code ec;
  auto body = boost::json::parse(req.body, ec);
  if (ec || !body.is_object() || !body.as_object().contains("name") || !body.at("name").is_string()) {
    return JsonError(400, "the body must be a JSON object with a string 'name', e.g. {\"name\":\"web app\"}");
  }
  std::string name(body.at("name").as_string());
  if (name.empty() || name.size() > 255) return JsonError(400, "'name' must be 1 to 255 characters");
  auto project = projects_.Create(name);
  if (!project.ok()) {
    spdlog::error("creating project failed: {}", project.error().ToString());
    return JsonError(project.error().code == ErrorCode::kConflict ? 409 : 503,
                     "the project was not created: " + project.error().message);
  }
  spdlog::info("created project {} ({})", project->id, project->name);
  return http::Response::Json(200, boost::json::serialize(ProjectJson(*project)));
}

http::Response ServiceImpl::HandleUpdateProject(http::Request& req) {
  if (!IsAdmin(req)) return JsonError(401, "an admin token is required: Authorization: Bearer <admin token>");
  auto parsed_id = ParseUint<uint32_t>("the project id in the path", req.path_params.at("id"));
  if (!parsed_id.ok()) return JsonError(400, parsed_id.error().message);
  const uint32_t id = *parsed_id;
  boost::system::error_code ec;
  auto body = boost::json::parse(req.body, ec);
  const bool has_external_id = !ec && body.is_object() && body.as_object().contains("external_id");
  const bool has_gcs_buckets = !ec && body.is_object() && body.as_object().contains("gcs_buckets");
  if (ec || !body.is_object() || (!has_external_id && !has_gcs_buckets) ||
      (has_external_id && !body.at("external_id").is_string())) {
    return JsonError(400, "the body must be a JSON object with a string 'external_id' (\"\" = use the project token), "
                          "e.g. {\"external_id\":\"acme-7f3a\"}, and/or 'gcs_buckets', the GCS buckets bound to the "
                          "project, e.g. {\"gcs_buckets\":[\"acme-events\"]}");
  }
  // Everything is validated, and every conflict checked, before anything changes: a refused update leaves the
  // external ID and the bindings as they were.
  ProjectRegistry::Update update;
  if (has_gcs_buckets) {
    auto parsed = ParseGcsBuckets(body.at("gcs_buckets"));
    if (!parsed.ok()) return JsonError(400, parsed.error().message);
    update.gcs_buckets = std::move(parsed).value();
  }
  if (has_external_id) {
    std::string external_id(body.at("external_id").as_string());
    // AWS accepts 2-1224 characters of [\w+=,.@:/-] for sts:ExternalId.
    const bool valid = external_id.empty() || (external_id.size() >= 2 && external_id.size() <= 1224 &&
                       std::all_of(external_id.begin(), external_id.end(), [](char c) {
                         return std::isalnum(static_cast<unsigned char>(c)) || (c != '\0' && std::strchr("_+=,.@:/-", c) != nullptr);
                       }));
    if (!valid) return JsonError(400, "external_id must be 2 to 1224 characters of letters, digits and _+=,.@:/-");
    update.external_id = std::move(external_id);
  }
  auto project = projects_.UpdateProject(id, std::move(update));
  if (!project.ok()) {
    const ErrorCode code = project.error().code;
    return JsonError(code == ErrorCode::kNotFound ? 404 : code == ErrorCode::kConflict ? 409 : 503,
                     project.error().message);
  }
  if (has_external_id) spdlog::info("project {}: external ID updated", id);
  if (has_gcs_buckets) {
    spdlog::info("project {}: GCS bucket bindings updated ({} buckets)", id, project->gcs_buckets.size());
  }
  return http::Response::Json(200, boost::json::serialize(ProjectJson(*project)));
}

http::Response ServiceImpl::HandleListProjects(http::Request& req) {
  if (!IsAdmin(req)) return JsonError(401, "an admin token is required: Authorization: Bearer <admin token>");
  boost::json::array list;
  for (const auto& p : projects_.List()) list.push_back(ProjectJson(p));
  return http::Response::Json(200, boost::json::serialize(boost::json::object{{"projects", std::move(list)}}));
}

http::Response ServiceImpl::HandleHealth(http::Request& req) {
  // Each part of the store answers for itself (the ClickHouse backend: "store", "coordination" and "clock"),
  // so a load balancer takes a node out while what it depends on is unreachable. What failed (hosts and ports
  // of the store, the coordination service) is for the operator: the admin token sees it, anyone else (the
  // port also serves tenants) sees "unavailable", and the log has it.
  const bool operator_view = IsAdmin(req);
  boost::json::object answer{{"status", "ok"}};
  bool healthy = true;
  std::string failures;
  for (const store::Reachability& r : store_.CheckReachable()) {
    if (r.status.ok()) {
      answer[r.part] = "ok";
    } else {
      healthy = false;
      answer[r.part] = operator_view ? r.status.error().message : std::string("unavailable");
      failures += fmt::format("{}{}: {}", failures.empty() ? "" : "; ", r.part, r.status.error().message);
    }
  }
  if (!healthy) {
    answer["status"] = "unavailable";
    // A load balancer polls every few seconds: one line per 10 s is enough.
    static std::atomic<int64_t> last_logged_ms{0};
    const int64_t now_ms = NowMicros() / 1000;
    if (int64_t last = last_logged_ms.load();
        now_ms - last >= 10'000 && last_logged_ms.compare_exchange_strong(last, now_ms)) {
      spdlog::warn("/healthz: unavailable: {}", failures);
    }
  }
  return http::Response::Json(healthy ? 200 : 503, boost::json::serialize(answer));
}

http::Response ServiceImpl::HandleMetrics(http::Request&) {
  return http::Response::Text(200, registry_->Render(), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace sluice::api
