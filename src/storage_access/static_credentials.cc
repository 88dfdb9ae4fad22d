#include "storage_access/static_credentials.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>

namespace sluice::storage_access {
namespace {

namespace json = boost::json;

constexpr std::string_view kNamespace = "s3_credential";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

std::string Serialize(const StaticCredential& c) {
  json::object o{{"access_key_id", c.access_key_id},
                 {"secret_access_key", c.secret_access_key.Reveal()},
                 {"created_ms", c.created_ms}};
  if (c.projects) {
    json::array ids;
    for (uint32_t id : *c.projects) ids.push_back(id);
    o["projects"] = std::move(ids);
  }
  return json::serialize(o);
}

Result<StaticCredential> Parse(std::string_view name, std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  const json::object* o = ec ? nullptr : v.if_object();
  const json::value* id = o ? o->if_contains("access_key_id") : nullptr;
  const json::value* secret = o ? o->if_contains("secret_access_key") : nullptr;
  if (!id || !id->is_string() || !secret || !secret->is_string()) {
    return Internal(
        fmt::format("the stored s3 credential '{}' is damaged: delete and create it again", name));
  }
  StaticCredential c;
  c.name = std::string(name);
  c.access_key_id = std::string(id->as_string());
  c.secret_access_key = Secret(std::string(secret->as_string()));
  if (const json::value* ms = o->if_contains("created_ms"); ms && ms->is_number()) {
    c.created_ms = ms->to_number<int64_t>();
  }
  if (const json::value* projects = o->if_contains("projects"); projects && projects->is_array()) {
    c.projects.emplace();
    for (const auto& p : projects->as_array()) {
      if (p.is_number()) c.projects->push_back(p.to_number<uint32_t>());
    }
  }
  return c;
}

}  // namespace

bool StaticCredential::GrantedTo(uint32_t project) const {
  // No list grants nothing: a key that can reach one tenant's store must never default to every tenant.
  return projects && std::find(projects->begin(), projects->end(), project) != projects->end();
}

Status ValidateCredentialName(std::string_view name, std::string_view field) {
  const bool ok =
      !name.empty() && name.size() <= 64 && IsLowerAlnum(name.front()) &&
      std::all_of(name.begin(), name.end(), [](char c) { return IsLowerAlnum(c) || c == '-' || c == '_'; });
  if (ok) return OkStatus();
  return InvalidArgument(
      fmt::format("{} must be a credential name: 1 to 64 lower-case letters, digits, '-' and '_', starting "
                  "with a letter or "
                  "digit, e.g. minio-eu",
                  field));
}

Status ValidateAccessKeyId(std::string_view id, std::string_view field) {
  const bool ok = id.size() >= 3 && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
                    return IsAlnum(c) || c == '.' || c == '_' || c == '-';
                  });
  if (ok) return OkStatus();
  return InvalidArgument(
      fmt::format("{} must be 3 to 128 letters, digits, '.', '_' and '-' (the key id your store issued, e.g. "
                  "GOOG1E… for a "
                  "GCS HMAC key)",
                  field));
}

Status ValidateSecretAccessKey(std::string_view secret, std::string_view field) {
  const bool ok = secret.size() >= 8 && secret.size() <= 256 &&
                  std::all_of(secret.begin(), secret.end(), [](char c) { return c > ' ' && c < 0x7f; });
  if (ok) return OkStatus();
  return InvalidArgument(fmt::format(
      "{} must be 8 to 256 printable ASCII characters without spaces (the secret your store issued with the "
      "key id)",
      field));
}

Status StaticCredentialRegistry::Create(const StaticCredential& c) {
  SLUICE_TRY(ValidateCredentialName(c.name, "name"));
  SLUICE_TRY(ValidateAccessKeyId(c.access_key_id, "access_key_id"));
  SLUICE_TRY(ValidateSecretAccessKey(c.secret_access_key.Reveal(), "secret_access_key"));
  // One project per key: a key reaches every bucket its policy allows, so projects holding the same key could
  // each point a pipeline or an import at another's bucket.
  if (c.projects && c.projects->size() > 1) {
    return InvalidArgument(
        "'projects' must name one project: a key reaches every bucket its policy allows, so projects sharing "
        "it could read and overwrite each other's data; register a separate key, limited to that project's "
        "bucket, for each project");
  }
  SLUICE_ASSIGN_OR_RETURN(auto existing, store_.GetMeta(kNamespace, c.name));
  if (existing) {
    return Error(ErrorCode::kConflict,
                 fmt::format("a credential named '{}' exists: delete it first to replace it", c.name));
  }
  // The same key under another name for another project would share it all the same.
  SLUICE_ASSIGN_OR_RETURN(std::vector<StaticCredential> all, List());
  for (const StaticCredential& other : all) {
    if (other.access_key_id == c.access_key_id && other.projects != c.projects) {
      return Error(
          ErrorCode::kConflict,
          fmt::format("access key id {} is already registered as '{}' for another project: a key may "
                      "serve one project only",
                      c.access_key_id, other.name));
    }
  }
  return store_.PutMeta(kNamespace, c.name, Serialize(c));
}

Status StaticCredentialRegistry::Delete(std::string_view name) {
  SLUICE_TRY(ValidateCredentialName(name, "the credential name"));
  SLUICE_ASSIGN_OR_RETURN(auto existing, store_.GetMeta(kNamespace, name));
  if (!existing) return NotFound(fmt::format("no credential named '{}'", name));
  return store_.DeleteMeta(kNamespace, name);
}

Result<std::optional<StaticCredential>> StaticCredentialRegistry::Get(std::string_view name) const {
  SLUICE_ASSIGN_OR_RETURN(auto text, store_.GetMeta(kNamespace, name));
  if (!text) return std::optional<StaticCredential>();
  SLUICE_ASSIGN_OR_RETURN(StaticCredential c, Parse(name, *text));
  return std::optional<StaticCredential>(std::move(c));
}

Result<std::vector<StaticCredential>> StaticCredentialRegistry::List() const {
  std::vector<StaticCredential> out;
  Status parsed = OkStatus();
  SLUICE_TRY(store_.ScanMeta(kNamespace, "", [&](std::string_view key, std::string_view value) {
    auto c = Parse(key, value);
    if (!c.ok()) {
      parsed = c.error();
      return false;
    }
    out.push_back(std::move(c).value());
    return true;
  }));
  SLUICE_TRY(parsed);
  return out;
}

Result<StaticCredential> StaticCredentialRegistry::ResolveFor(std::string_view name, uint32_t project,
                                                              std::string_view field) const {
  SLUICE_TRY(ValidateCredentialName(name, field));
  SLUICE_ASSIGN_OR_RETURN(auto c, Get(name));
  // One message for "absent" and "not granted": which names exist is the operator's business.
  if (c && c->GrantedTo(project) && c->projects->size() > 1) {
    // Registered before keys were limited to one project: refused for every project it names until the
    // operator registers it again for one.
    return InvalidArgument(
        fmt::format("{} '{}' is granted to several projects, which lets each reach the others' buckets: the "
                    "operator must "
                    "register it again for one project (DELETE, then POST /api/app/credentials)",
                    field, name));
  }
  if (!c || !c->GrantedTo(project)) {
    return InvalidArgument(
        fmt::format("{} '{}' is not a credential project {} may use: ask the operator to create it (POST "
                    "/api/app/credentials) with this project in its \"projects\"",
                    field, name, project));
  }
  return std::move(*c);
}

}  // namespace sluice::storage_access
