// The operator's named static credentials (/api/app/credentials): create, list (never the secret), delete.
// Admin token only; storage_access/static_credentials.h holds the rules and the records.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "api/service_impl.h"
#include "storage_access/static_credentials.h"

namespace sluice::api {
namespace {

namespace json = boost::json;

constexpr std::string_view kNeedAdmin = "an admin token is required: Authorization: Bearer <admin token>";

/// What the API shows of a credential: everything but the secret.
json::object CredentialJson(const storage_access::StaticCredential& c) {
  json::object o{{"name", c.name}, {"access_key_id", c.access_key_id}, {"created_ms", c.created_ms}};
  if (c.projects) {
    json::array ids;
    for (uint32_t id : *c.projects) ids.push_back(id);
    o["projects"] = std::move(ids);
  } else {
    o["projects"] = json::array();  // granted to no project
  }
  return o;
}

int StatusOf(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kConflict:
      return 409;
    default:
      return 503;
  }
}

}  // namespace

void ServiceImpl::RegisterCredentialRoutes() {
  router_->Add("POST", "/api/app/credentials", [this](http::Request& req) {
    if (!IsAdmin(req)) return JsonError(401, kNeedAdmin);
    constexpr std::string_view kShape =
        "the body must be a JSON object {\"name\", \"access_key_id\", \"secret_access_key\", "
        "\"projects\": [the id of the one project that may use it]}";
    boost::system::error_code ec;
    json::value body = json::parse(req.body, ec);
    const json::object* o = ec ? nullptr : body.if_object();
    if (o == nullptr) return JsonError(400, kShape);
    storage_access::StaticCredential c;
    for (auto [field, out] :
         {std::pair<std::string_view, std::string*>{"name", &c.name}, {"access_key_id", &c.access_key_id}}) {
      const json::value* v = o->if_contains(field);
      if (v == nullptr || !v->is_string())
        return JsonError(400, fmt::format("'{}' is required: {}", field, kShape));
      *out = std::string(v->as_string());
    }
    const json::value* secret = o->if_contains("secret_access_key");
    if (secret == nullptr || !secret->is_string()) {
      return JsonError(400, fmt::format("'secret_access_key' is required: {}", kShape));
    }
    c.secret_access_key = Secret(std::string(secret->as_string()));
    for (const auto& [key, value] : *o) {
      if (key != "name" && key != "access_key_id" && key != "secret_access_key" && key != "projects") {
        return JsonError(400, fmt::format("unknown field '{}': {}", std::string_view(key), kShape));
      }
    }
    // Required: a key that reaches one tenant's store must name who may use it, never default to everyone.
    const json::value* projects = o->if_contains("projects");
    if (projects == nullptr || !projects->is_array() || projects->as_array().empty()) {
      return JsonError(400, fmt::format("'projects' is required: {}", kShape));
    }
    {
      c.projects.emplace();
      for (const auto& p : projects->as_array()) {
        const bool id = (p.is_uint64() && p.get_uint64() <= UINT32_MAX) ||
                        (p.is_int64() && p.get_int64() >= 0 && p.get_int64() <= UINT32_MAX);
        if (!id) return JsonError(400, "'projects' must be an array of one project id, e.g. [3]");
        const auto pid = p.to_number<uint32_t>();
        if (!projects_.ById(pid))
          return JsonError(400, fmt::format("'projects': project {} does not exist", pid));
        c.projects->push_back(pid);
      }
    }
    c.created_ms = NowMicros() / 1000;
    storage_access::StaticCredentialRegistry registry(store_);
    if (Status s = registry.Create(c); !s.ok()) return JsonError(StatusOf(s.error().code), s.error().message);
    spdlog::info("created s3 credential '{}' (key id {})", c.name, c.access_key_id);
    return http::Response::Json(200, json::serialize(CredentialJson(c)));
  });
  router_->Add("GET", "/api/app/credentials", [this](http::Request& req) {
    if (!IsAdmin(req)) return JsonError(401, kNeedAdmin);
    auto list = storage_access::StaticCredentialRegistry(store_).List();
    if (!list.ok()) return JsonError(503, list.error().message);
    json::array out;
    for (const auto& c : *list) out.push_back(CredentialJson(c));
    return http::Response::Json(200, json::serialize(json::object{{"credentials", std::move(out)}}));
  });
  router_->Add("DELETE", "/api/app/credentials/{name}", [this](http::Request& req) {
    if (!IsAdmin(req)) return JsonError(401, kNeedAdmin);
    const std::string& name = req.path_params.at("name");
    Status s = storage_access::StaticCredentialRegistry(store_).Delete(name);
    if (!s.ok()) return JsonError(StatusOf(s.error().code), s.error().message);
    spdlog::info("deleted s3 credential '{}'", name);
    return http::Response::Json(200, json::serialize(json::object{{"deleted", name}}));
  });
}

}  // namespace sluice::api
