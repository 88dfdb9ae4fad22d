// Cloud Import connectors API (SPEC §6, Mixpanel's connectors API):
//   POST   /api/app/projects/{id}/connectors                         create (JSON body), checks bucket access
//   GET    /api/app/projects/{id}/connectors                         list
//   GET    /api/app/projects/{id}/connectors/{connector_id}          one connector with its latest run
//   DELETE /api/app/projects/{id}/connectors/{connector_id}          delete (imported data stays)
//   GET    /api/app/projects/{id}/connectors/{connector_id}/history  runs, newest first (?limit=N)
// Sluice extensions:
//   POST   …/connectors/{connector_id}/run      start a discovery run now
//   POST   …/connectors/{connector_id}/resume   un-pause after fixing what failure_message says
// Auth: HTTP Basic with the project's API secret (the project must be {id}), or the admin Bearer token.
// Answers {"status":"ok","results":…}; lists (connectors, history) as Mixpanel pages them:
// {"status":"ok","results":{"url":null,"has_more":false,"data":[…]}}. Errors in Mixpanel's errorResponse
// shape
// {"status":"error","type":…,"message":…} plus, for refused create bodies, Sluice's "code" and "field"
// (type = code: missing_required_property, invalid_property, invalid_permissions_s3, invalid_permissions_gcs,
// invalid_permissions_azure).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "api/request_util.h"
#include "api/service_impl.h"
#include "cloudimport/connector_manager.h"

namespace sluice::api {
namespace {

namespace json = boost::json;
using cloudimport::ConnectorManager;

http::Response Ok(json::value results) {
  return http::Response::Json(
      200, json::serialize(json::object{{"status", "ok"}, {"results", std::move(results)}}));
}

/// A list as Mixpanel's connectors API pages it (Sluice answers every item at once).
http::Response OkList(json::array data) {
  return Ok(json::object{{"url", nullptr}, {"has_more", false}, {"data", std::move(data)}});
}

/// The errorResponse `type` of an HTTP status without a more specific code.
std::string_view TypeOf(int status) {
  switch (status) {
    case 400:
      return "invalid_request";
    case 401:
      return "unauthorized";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 429:
      return "rate_limited";
    default:
      return "unavailable";
  }
}

/// Mixpanel's errorResponse: {"status":"error","type":…,"message":…}, with Sluice's `code`/`field` when
/// known.
http::Response ErrorResponse(int status, std::string_view message, std::string_view code = {},
                             std::string_view field = {}) {
  json::object o{{"status", "error"}, {"type", code.empty() ? TypeOf(status) : code}, {"message", message}};
  if (!code.empty()) o["code"] = code;
  if (!field.empty()) o["field"] = field;
  return http::Response::Json(status, json::serialize(o));
}

http::Response IssueError(int status, const cloudimport::ValidationIssue& issue) {
  return ErrorResponse(status, issue.message, issue.code, issue.field);
}

/// An error answered by the shared authentication ({"error":…}) in the connectors API's shape.
http::Response AsErrorResponse(http::Response r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  std::string message = !ec && v.is_object() && v.as_object().contains("error") && v.at("error").is_string()
                            ? std::string(v.at("error").as_string())
                            : r.body;
  http::Response out = ErrorResponse(r.status, message);
  for (const char* header : {"WWW-Authenticate", "Retry-After"}) {
    if (auto h = r.headers.Get(header)) out.headers.Set(header, std::string(*h));
  }
  return out;
}

int StatusOf(const Error& e) {
  switch (e.code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kAccessDenied:
    case ErrorCode::kUnauthenticated:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kConflict:
      return 409;
    default:
      return 503;
  }
}

http::Response FromError(const Error& e) { return ErrorResponse(StatusOf(e), e.message); }

}  // namespace

void ServiceImpl::RegisterConnectorRoutes() {
  // Authenticates the request for the project in the path; nullopt after filling `error`.
  auto authenticate = [this](http::Request& req, http::Response& error) -> std::optional<store::Project> {
    auto it = req.path_params.find("id");
    const std::string& text = it == req.path_params.end() ? std::string() : it->second;
    auto parsed = ParseUint<uint32_t>("the project id in the path", text);
    if (!parsed.ok()) {
      error = JsonError(400, parsed.error().message);
      return std::nullopt;
    }
    const uint32_t id = *parsed;
    if (IsAdmin(req)) {
      auto project = projects().ById(id);
      if (!project) error = JsonError(404, fmt::format("project {} does not exist", id));
      return project;
    }
    auto project = AuthenticateProjectRequest(req, error);
    if (!project) return std::nullopt;
    if (project->id != id) {
      error = JsonError(401,
                        fmt::format("the credentials belong to project {}, not project {}", project->id, id));
      return std::nullopt;
    }
    return project;
  };
  // Wraps a handler: 503 without a manager, then authentication.
  auto route = [this, authenticate](auto fn) {
    return [this, authenticate, fn](http::Request& req) -> http::Response {
      ConnectorManager* manager = options().connectors;
      if (manager == nullptr) {
        return ErrorResponse(503, "Cloud Import is not enabled on this server");
      }
      http::Response error;
      auto project = authenticate(req, error);
      if (!project) return AsErrorResponse(std::move(error));
      return fn(*manager, *project, req);
    };
  };
  auto connector_id = [](const http::Request& req) {
    auto it = req.path_params.find("connector_id");
    return it == req.path_params.end() ? std::string() : it->second;
  };

  const std::string base = "/api/app/projects/{id}/connectors";
  router_->Add("POST", base, route([this](ConnectorManager& m, const store::Project& p, http::Request& req) {
                 boost::system::error_code ec;
                 json::value body = json::parse(req.body, ec);
                 cloudimport::ValidationIssue issue;
                 if (ec) {
                   issue = {"invalid_property", "body",
                            fmt::format("the body must be a JSON object: {}", ec.message())};
                   return IssueError(400, issue);
                 }
                 auto spec = cloudimport::ParseConnectorSpec(body, p.id, &issue);
                 if (!spec.ok()) return IssueError(400, issue);
                 spec->created_by = IsAdmin(req) ? "admin" : "api_secret";
                 http::Response busy;
                 std::shared_ptr<void> slot = TakeBucketCheckSlot(p.id, busy);
                 if (!slot) return AsErrorResponse(std::move(busy));
                 auto created = m.CreateConnector(std::move(spec).value(), &issue);
                 if (!created.ok()) {
                   if (issue.message.empty()) return FromError(created.error());
                   return IssueError(StatusOf(created.error()) == 503 ? 503 : 400, issue);
                 }
                 return Ok(cloudimport::ConnectorJson(*created));
               }));
  router_->Add("GET", base, route([](ConnectorManager& m, const store::Project& p, http::Request&) {
                 auto list = m.List(p.id);
                 if (!list.ok()) return FromError(list.error());
                 json::array out;
                 for (const auto& r : *list) out.push_back(cloudimport::ConnectorJson(r));
                 return OkList(std::move(out));
               }));
  router_->Add("GET", base + "/{connector_id}",
               route([connector_id](ConnectorManager& m, const store::Project& p, http::Request& req) {
                 auto record = m.Get(p.id, connector_id(req));
                 if (!record.ok()) return FromError(record.error());
                 json::object o = cloudimport::ConnectorJson(*record);
                 auto runs = m.History(p.id, connector_id(req), 1);
                 if (runs.ok() && !runs->empty())
                   o["last_run"] = cloudimport::RunJson(runs->front());
                 else
                   o["last_run"] = nullptr;
                 return Ok(std::move(o));
               }));
  router_->Add("DELETE", base + "/{connector_id}",
               route([connector_id](ConnectorManager& m, const store::Project& p, http::Request& req) {
                 Status s = m.Delete(p.id, connector_id(req));
                 if (!s.ok()) return FromError(s.error());
                 return http::Response::Json(200, R"({"status":"ok"})");
               }));
  router_->Add("GET", base + "/{connector_id}/history",
               route([connector_id](ConnectorManager& m, const store::Project& p, http::Request& req) {
                 size_t limit = 100;
                 if (auto l = req.Query("limit"); l && !l->empty()) {
                   // A number of runs (at most the kept history).
                   auto parsed = ParseUint<size_t>("limit", *l, 1, 1'000'000);
                   if (!parsed.ok()) return ErrorResponse(400, parsed.error().message);
                   limit = *parsed;
                 }
                 auto runs = m.History(p.id, connector_id(req), limit);
                 if (!runs.ok()) return FromError(runs.error());
                 json::array out;
                 for (const auto& r : *runs) out.push_back(cloudimport::RunJson(r));
                 return OkList(std::move(out));
               }));
  router_->Add("POST", base + "/{connector_id}/run",
               route([connector_id](ConnectorManager& m, const store::Project& p, http::Request& req) {
                 Status s = m.RunNow(p.id, connector_id(req));
                 if (!s.ok()) return FromError(s.error());
                 return http::Response::Json(200, R"({"status":"ok"})");
               }));
  router_->Add("POST", base + "/{connector_id}/resume",
               route([connector_id](ConnectorManager& m, const store::Project& p, http::Request& req) {
                 Status s = m.Resume(p.id, connector_id(req));
                 if (!s.ok()) return FromError(s.error());
                 return http::Response::Json(200, R"({"status":"ok"})");
               }));
}

}  // namespace sluice::api
