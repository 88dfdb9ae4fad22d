// Projects (/api/app/projects), /healthz and /metrics, and the authentication helpers shared by handlers.
#include <algorithm>
#include <cstring>
#include <boost/json.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/request_util.h"
#include "api/service_impl.h"
#include "common/crypto.h"
#include "storage_access/location.h"

namespace sluice::api {
namespace {

boost::json::object ProjectJson(const store::Project& p) {
  return {{"id", p.id}, {"name", p.name}, {"token", p.token}, {"api_secret", p.api_secret.Reveal()},
          {"created_ms", p.created_ms}, {"external_id", storage_access::EffectiveExternalId(p)}};
}

}  // namespace

http::Response JsonError(int status, std::string_view message) {
  return http::Response::Json(status, boost::json::serialize(boost::json::object{{"error", message},
                                                                                 {"status", "error"}}));
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
  if (ec || !body.is_object() || !body.as_object().contains("external_id") || !body.at("external_id").is_string()) {
    return JsonError(400, "the body must be a JSON object with a string 'external_id' (\"\" = use the project token), "
                          "e.g. {\"external_id\":\"acme-7f3a\"}");
  }
  std::string external_id(body.at("external_id").as_string());
  // AWS accepts 2-1224 characters of [\w+=,.@:/-] for sts:ExternalId.
  const bool valid = external_id.empty() || (external_id.size() >= 2 && external_id.size() <= 1224 &&
                     std::all_of(external_id.begin(), external_id.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || (c != '\0' && std::strchr("_+=,.@:/-", c) != nullptr);
                     }));
  if (!valid) return JsonError(400, "external_id must be 2 to 1224 characters of letters, digits and _+=,.@:/-");
  auto project = projects_.SetExternalId(id, std::move(external_id));
  if (!project.ok()) {
    const ErrorCode code = project.error().code;
    return JsonError(code == ErrorCode::kNotFound ? 404 : code == ErrorCode::kConflict ? 409 : 503,
                     project.error().message);
  }
  spdlog::info("project {}: external ID updated", id);
  return http::Response::Json(200, boost::json::serialize(ProjectJson(*project)));
}

http::Response ServiceImpl::HandleListProjects(http::Request& req) {
  if (!IsAdmin(req)) return JsonError(401, "an admin token is required: Authorization: Bearer <admin token>");
  boost::json::array list;
  for (const auto& p : projects_.List()) list.push_back(ProjectJson(p));
  return http::Response::Json(200, boost::json::serialize(boost::json::object{{"projects", std::move(list)}}));
}

http::Response ServiceImpl::HandleHealth(http::Request&) {
  return http::Response::Json(200, R"({"status":"ok"})");
}

http::Response ServiceImpl::HandleMetrics(http::Request&) {
  return http::Response::Text(200, registry_->Render(), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace sluice::api
