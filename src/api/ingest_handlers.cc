// /import, /track and /engage: request decoding (auth, body forms, gzip, limits, rate limit), then the pure
// ingest module for validation, then the store. Answers exactly as Mixpanel's endpoints do (SPEC §3).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/request_util.h"
#include "api/service_impl.h"
#include "common/compression.h"
#include "common/crypto.h"
#include "common/strings.h"
#include "ingest/profile_ops.h"

namespace sluice::api {
namespace {

// A 1x1 transparent GIF: what Mixpanel answers to img=1 (tracking pixels).
constexpr unsigned char kPixelGif[] = {0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00,
                                       0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00,
                                       0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02,
                                       0x44, 0x01, 0x00, 0x3b};

http::Response ImportJson(int status, boost::json::object body) {
  return http::Response::Json(status, boost::json::serialize(body));
}

http::Response ImportError(int status, std::string_view message) {
  std::string_view label = status == 400   ? "Bad Request"
                           : status == 401 ? "Unauthorized"
                           : status == 413 ? "Request Entity Too Large"
                           : status == 429 ? "Too Many Requests"
                           : status == 503 ? "Service Unavailable"
                                           : "Error";
  return ImportJson(status, {{"code", status}, {"error", message}, {"status", label}});
}

http::Response TooManyRequests(int64_t retry_after_s, std::string_view message, bool import_shape) {
  http::Response r = import_shape ? ImportError(429, message)
                                  : http::Response::Json(429, boost::json::serialize(boost::json::object{
                                                                  {"status", 0}, {"error", message}}));
  r.headers.Set("Retry-After", std::to_string(retry_after_s));
  return r;
}

/// The 429 of the endpoints authenticated by a project's token (/track, /engage, /groups): the caller holds
/// only that public token, so the answer does not name the project's id.
http::Response TokenCallerTooManyRequests(int64_t retry_after_s) {
  return TooManyRequests(retry_after_s,
                         fmt::format("Too Many Requests: a project of this request is over its limit of "
                                     "uncompressed JSON per minute; retry after {} s",
                                     retry_after_s),
                         false);
}

/// How /track and /engage answer: "1"/"0", verbose JSON, a pixel, or JSONP (Mixpanel's browser SDK).
struct ClientAnswerStyle {
  bool verbose = false;
  bool img = false;
  std::string callback;
};

bool IsValidCallbackName(std::string_view cb) {
  if (cb.empty() || cb.size() > 128) return false;
  return std::all_of(cb.begin(), cb.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' || c == '.';
  });
}

http::Response ClientAnswer(const ClientAnswerStyle& style, bool ok, std::string_view error) {
  if (style.img) {
    http::Response r = http::Response::Text(
        200, std::string(reinterpret_cast<const char*>(kPixelGif), sizeof(kPixelGif)), "image/gif");
    r.headers.Set("Cache-Control", "no-cache, no-store");
    return r;
  }
  std::string body;
  if (style.verbose) {
    boost::json::object o{{"status", ok ? 1 : 0}};
    if (ok) o["error"] = nullptr;
    else o["error"] = error;
    body = boost::json::serialize(o);
  } else {
    body = ok ? "1" : "0";
  }
  http::Response r =
      style.callback.empty()
          ? http::Response::Text(200, std::move(body), style.verbose ? "application/json" : "text/plain")
          : http::Response::Text(200, fmt::format("{}({});", style.callback, body), "application/javascript");
  // A JSON or text answer loaded by a <script> element is refused by the browser instead of being sniffed.
  r.headers.Set("X-Content-Type-Options", "nosniff");
  return r;
}

/// JSONP is for pages of other sites (Mixpanel's browser SDK on a customer's site). A page of this origin —
/// only the web console is served from here — never needs it, and honouring it there would hand any HTML
/// injection into the console a script its Content-Security-Policy ('self') allows: so a same-origin request
/// gets the plain answer, which nosniff keeps from running as a script.
ClientAnswerStyle AnswerStyleOf(const http::Request& req, const RequestParams& params) {
  ClientAnswerStyle style{.verbose = params.Flag("verbose"), .img = params.Flag("img")};
  const bool same_origin = EqualsIgnoreCase(req.headers.Get("Sec-Fetch-Site").value_or(""), "same-origin");
  if (auto cb = params.Get("callback"); cb && IsValidCallbackName(*cb) && !same_origin) {
    style.callback = std::string(*cb);
  }
  return style;
}

/// The answer to a /track or /engage request whose payload could not be decoded: 413 for size (SDKs back off on
/// it), otherwise Mixpanel's `0` with the reason when verbose.
http::Response UndecodableClientRequest(const ClientAnswerStyle& style, const Error& error) {
  if (error.code == ErrorCode::kTooLarge) return ImportError(413, error.message);
  return ClientAnswer(style, false, error.message);
}

std::string SummariseErrors(const std::vector<ingest::RecordError>& errors) {
  std::string out;
  for (size_t i = 0; i < errors.size() && i < 5; ++i) {
    if (i) out += "; ";
    out += fmt::format("record {}: {}", errors[i].index, errors[i].message);
  }
  if (errors.size() > 5) out += fmt::format("; and {} more", errors.size() - 5);
  return out;
}

/// The request thread's written events, refilled by its next /import or /track (ingest::EventSpares): one
/// batch's worth, each with at most 2 KB of strings (~2 MB a thread, memory a batch allocated anyway).
ingest::EventSpares& ThreadEventSpares() {
  thread_local ingest::EventSpares spares(ingest::kMaxEventsPerBatch, 2048);
  return spares;
}

}  // namespace

bool ServiceImpl::StoreEvents(uint32_t project, const ingest::ParsedEvents& parsed, std::string_view endpoint,
                              std::string& error, store::EventStore::EventBatch* batch) {
  // The parser's links: one per event carrying both ids (the first such event maps the device to the user).
  const std::vector<IdentityLink>& links = parsed.links;
  Status s =
      batch != nullptr ? store_.WriteEventBatch(*batch, links) : store_.WriteEvents(project, parsed.events, links);
  if (!s.ok()) {
    error = StoreFailureForTenant(fmt::format("{} events were not stored", parsed.events.size()), project,
                                  s.error());
    metrics_->events_rejected.WithLabels({std::string(endpoint), "store_error"}).Inc(parsed.events.size());
    return false;
  }
  metrics_->events_accepted.WithLabels({std::string(endpoint)}).Inc(parsed.events.size());
  return true;
}

// ---- /import ------------------------------------------------------------------------------------------------

http::Response ServiceImpl::HandleImport(http::Request& req) {
  RequestParams params(req);
  // Legacy forms, as Mixpanel's older SDKs send them: `data=` in a form body (import_batch) or, with GET, in
  // the query (the official Node SDK's import()).
  const bool get = req.method == "GET";
  const bool legacy = get || (IsFormUrlEncoded(req) && params.Form("data").has_value());
  const bool verbose = params.Flag("verbose");

  // Authentication: Basic with the API secret (or the project token) as user; legacy clients may send
  // api_key=<secret> in the query instead.
  std::optional<store::Project> project;
  if (auto basic = http::ParseBasicAuth(req.headers)) {
    project = projects_.BySecret(basic->user);
    if (!project) project = projects_.ByToken(basic->user);
    if (!project && !basic->password.empty()) project = projects_.BySecret(basic->password);
  } else if (auto key = params.Get("api_key")) {
    project = projects_.BySecret(*key);
  }
  auto legacy_answer = [&](bool ok, std::string_view error) {
    return ClientAnswer(ClientAnswerStyle{.verbose = verbose}, ok, error);
  };
  if (!project) {
    http::Response r = ImportError(401, "Invalid credentials");
    r.headers.Set("WWW-Authenticate", "Basic realm=\"Mixpanel\"");
    return r;
  }
  if (auto pid = params.Get("project_id"); pid && !pid->empty()) {
    auto parsed = ParseUint<uint32_t>("project_id", *pid);
    if (!parsed.ok()) return ImportError(400, parsed.error().message);
    if (*parsed != project->id) {
      return ImportError(
          401, fmt::format("project_id {} does not match the credentials (they belong to project {})",
                           *parsed, project->id));
    }
  }

  std::string payload_storage;
  std::string_view payload;
  bool padded = false;  // a gzip body inflated into a padded buffer: parsed in place
  ingest::PayloadFormat format = ingest::PayloadFormat::kJson;
  if (legacy) {
    std::optional<std::string_view> data = get ? params.Get("data") : params.Form("data");
    if (!data || data->empty()) {
      return legacy_answer(false,
                           "the 'data' parameter is missing: send the events as data=<base64 JSON> in the "
                           "query (GET) or in a form body (POST)");
    }
    auto decoded = DecodeDataParam(*data);
    if (!decoded.ok()) return legacy_answer(false, decoded.error().message);
    payload_storage = std::move(decoded).value();
    payload = payload_storage;
  } else {
    auto body = DecodedBodyView(req, ingest::kMaxBatchBytes, payload_storage, &padded);
    if (!body.ok()) {
      return ImportError(body.error().code == ErrorCode::kTooLarge ? 413 : 400, body.error().message);
    }
    payload = *body;
    auto ct = ContentType(req);
    if (ct == "application/x-ndjson" || ct == "application/ndjson" || ct == "application/jsonl") {
      format = ingest::PayloadFormat::kNdjson;
    } else if (!ct.empty() && ct != "application/json" && ct != "text/plain" &&
               ct != "application/x-www-form-urlencoded" && ct != "application/octet-stream") {
      return ImportError(400,
                         fmt::format("unsupported Content-Type '{}': send application/json (a JSON array of "
                                     "events) or application/x-ndjson (one event per line)",
                                     ingest::Echo(ct)));
    }
  }
  metrics_->bytes_in.WithLabels({"/import"}).Inc(payload.size());
  if (payload.size() > ingest::kMaxBatchBytes) {
    return ImportError(413, fmt::format("Request Entity Too Large: {} bytes of uncompressed JSON; the limit is {} "
                                        "bytes per request",
                                        payload.size(), ingest::kMaxBatchBytes));
  }
  if (int64_t wait = rate_limiter_.Acquire(project->id, payload.size())) {
    metrics_->events_rejected.WithLabels({"import", "rate_limited"}).Inc();
    return TooManyRequests(wait, fmt::format("Too Many Requests: project {} is over its limit of uncompressed JSON "
                                             "per minute; retry after {} s",
                                             project->id, wait),
                           !legacy);
  }

  ingest::ParseOptions opts{.endpoint = ingest::Endpoint::kImport,
                            .format = format,
                            .now_us = NowMicros(),
                            .geoip = options_.geoip,
                            .derive_insert_id = legacy,
                            .payload_padded = padded,
                            .recycled_events = ThreadEventSpares().pool()};
  // Each event goes into the store's write batch as the parser accepts it (its properties are copied once,
  // while still in the cache); nothing is written unless the whole request parses.
  std::unique_ptr<store::EventStore::EventBatch> batch = store_.NewEventBatch(project->id, payload.size());
  opts.sink = batch.get();
  auto parsed = ingest::ParseEvents(payload, opts);
  if (!parsed.ok()) {
    metrics_->events_rejected.WithLabels({"import", "malformed_request"}).Inc();
    if (legacy) return legacy_answer(false, parsed.error().message);
    return ImportError(parsed.error().code == ErrorCode::kTooLarge ? 413 : 400, parsed.error().message);
  }
  for (const auto& e : parsed->errors) metrics_->events_rejected.WithLabels({"import", e.reason}).Inc();

  std::string store_error;
  if (!parsed->events.empty() && !StoreEvents(project->id, *parsed, "import", store_error, batch.get())) {
    if (legacy) return legacy_answer(false, store_error);
    return ImportError(503, store_error);
  }
  const size_t imported = parsed->events.size();
  ThreadEventSpares().Recycle(parsed->events);
  if (legacy) return legacy_answer(parsed->errors.empty(), SummariseErrors(parsed->errors));

  // strict=1 is the default, as in Mixpanel's current API; strict=0 drops invalid records silently.
  const bool strict = params.Get("strict").value_or("1") != "0";
  if (strict && !parsed->errors.empty()) {
    boost::json::array failed;
    for (const auto& e : parsed->errors) {
      failed.push_back(boost::json::object{{"index", e.index},
                                           {"$insert_id", e.insert_id},
                                           {"field", e.field},
                                           {"message", e.message}});
    }
    return ImportJson(400, {{"code", 400},
                            {"error", "some data points in the request failed validation"},
                            {"failed_records", std::move(failed)},
                            {"num_records_imported", imported},
                            {"status", "Bad Request"}});
  }
  return ImportJson(200, {{"code", 200}, {"num_records_imported", imported}, {"status", "OK"}});
}

// ---- /track -------------------------------------------------------------------------------------------------

http::Response ServiceImpl::HandleTrack(http::Request& req) {
  RequestParams params(req);
  const ClientAnswerStyle style = AnswerStyleOf(req, params);
  auto payload = ClientPayload(req, params, ingest::kMaxBatchBytes);
  if (!payload.ok()) return UndecodableClientRequest(style, payload.error());
  metrics_->bytes_in.WithLabels({"/track"}).Inc(payload->json.size());
  ingest::ParseOptions opts{.endpoint = ingest::Endpoint::kTrack,
                            .format = payload->format,
                            .now_us = NowMicros(),
                            .geoip = options_.geoip,
                            .recycled_events = ThreadEventSpares().pool()};
  // ip=1: Mixpanel's geolocation of the request's address (its country, with Debian's country database); the
  // address itself is not stored, as Mixpanel does not keep it.
  if (params.Flag("ip") && options_.geoip != nullptr)
    opts.client_country = options_.geoip->CountryOf(req.remote_ip);
  auto parsed = ingest::ParseEvents(payload->json, opts);
  if (!parsed.ok()) {
    metrics_->events_rejected.WithLabels({"track", "malformed_request"}).Inc();
    if (parsed.error().code == ErrorCode::kTooLarge) return ImportError(413, parsed.error().message);
    return ClientAnswer(style, false, parsed.error().message);
  }
  std::vector<ingest::RecordError> errors = parsed->errors;
  for (const auto& e : errors) metrics_->events_rejected.WithLabels({"track", e.reason}).Inc();

  // Events carry their project's token each; group them per project.
  std::map<uint32_t, ingest::ParsedEvents> by_project;
  for (size_t i = 0; i < parsed->events.size(); ++i) {
    auto project = projects_.ByToken(parsed->tokens[i]);
    if (!project) {
      errors.push_back({.index = parsed->event_indexes[i],
                        .insert_id = parsed->events[i].insert_id,
                        .field = "properties.token",
                        .message = parsed->tokens[i].empty() ? "'properties.token' is missing: every /track event "
                                                               "must carry its project token"
                                                             : "'properties.token' is not the token of any project",
                        .reason = "invalid_token"});
      metrics_->events_rejected.WithLabels({"track", "invalid_token"}).Inc();
      continue;
    }
    ingest::ParsedEvents& group = by_project[project->id];
    Event& event = parsed->events[i];
    if (!event.device_id.empty() && !event.user_id.empty()) group.links.push_back({event.device_id, event.user_id});
    group.events.push_back(std::move(event));
  }
  // Every project's allowance is checked before anything is stored: a 429 must mean "nothing of this request
  // was kept", or the client's retry would duplicate events that had no $insert_id of their own.
  for (auto& [project_id, group] : by_project) {
    size_t bytes = 0;
    for (const auto& e : group.events) bytes += e.properties.size() + e.name.size() + 64;
    if (int64_t wait = rate_limiter_.Acquire(project_id, bytes)) {
      metrics_->events_rejected.WithLabels({"track", "rate_limited"}).Inc(parsed->events.size());
      return TokenCallerTooManyRequests(wait);
    }
  }
  for (auto& [project_id, group] : by_project) {
    std::string store_error;
    if (!StoreEvents(project_id, group, "track", store_error)) return ImportError(503, store_error);
    ThreadEventSpares().Recycle(group.events);
  }
  std::sort(errors.begin(), errors.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  return ClientAnswer(style, errors.empty(), SummariseErrors(errors));
}

// ---- /engage and /groups ------------------------------------------------------------------------------------

http::Response ServiceImpl::HandleEngage(http::Request& req) {
  return HandleProfileUpdates(req, /*groups=*/false);
}

http::Response ServiceImpl::HandleGroups(http::Request& req) {
  return HandleProfileUpdates(req, /*groups=*/true);
}

http::Response ServiceImpl::HandleProfileUpdates(http::Request& req, bool groups) {
  const std::string endpoint = groups ? "/groups" : "/engage";
  RequestParams params(req);
  const ClientAnswerStyle style = AnswerStyleOf(req, params);
  auto payload = ClientPayload(req, params, ingest::kMaxBatchBytes);
  if (!payload.ok()) return UndecodableClientRequest(style, payload.error());
  metrics_->bytes_in.WithLabels({endpoint}).Inc(payload->json.size());
  auto parsed = groups ? ingest::ParseGroupProfileUpdates(payload->json, payload->format, NowMicros())
                       : ingest::ParseProfileUpdates(payload->json, payload->format, NowMicros());
  if (!parsed.ok()) {
    if (parsed.error().code == ErrorCode::kTooLarge) return ImportError(413, parsed.error().message);
    return ClientAnswer(style, false, parsed.error().message);
  }
  std::vector<ingest::RecordError> errors = parsed->errors;
  // User profiles are geolocated (their $country_code); group profiles are not, as in Mixpanel.
  if (!groups) {
    const bool ip_flag = params.Flag("ip");
    for (ingest::ProfileUpdate& u : parsed->updates)
      u.country = ingest::ProfileCountry(options_.geoip, u, ip_flag ? req.remote_ip : std::string_view());
  }

  // Group per (project, group key), then per profile in order of first appearance; updates of one profile
  // apply in order. User profiles have an empty group key.
  struct ProfileSetUpdates {
    std::vector<std::string> ids;
    std::unordered_map<std::string, std::vector<const ingest::ProfileUpdate*>> by_id;
  };
  std::map<std::pair<uint32_t, std::string>, ProfileSetUpdates> by_set;
  for (size_t i = 0; i < parsed->updates.size(); ++i) {
    const auto& u = parsed->updates[i];
    auto project = projects_.ByToken(u.token);
    if (!project) {
      errors.push_back({.index = parsed->update_indexes[i],
                        .field = "$token",
                        .message = u.token.empty() ? "'$token' is missing" : "'$token' is not the token of any project",
                        .reason = "invalid_token"});
      continue;
    }
    auto& set = by_set[{project->id, u.group_key}];
    auto [it, inserted] = set.by_id.try_emplace(u.distinct_id);
    if (inserted) set.ids.push_back(u.distinct_id);
    it->second.push_back(&u);
  }
  // The project's allowance of uncompressed JSON covers profile updates as it covers events (a token is
  // public: without it anyone holding one could write without bound). Each project is charged its share of
  // the request's bytes, all checked before anything is applied, so a 429 means nothing of the request was.
  std::map<uint32_t, size_t> updates_of;
  for (const auto& [set_key, set] : by_set) {
    for (const auto& [id, updates] : set.by_id) updates_of[set_key.first] += updates.size();
  }
  for (const auto& [project_id, count] : updates_of) {
    const uint64_t bytes = payload->json.size() * count / std::max<size_t>(1, parsed->updates.size());
    if (int64_t wait = rate_limiter_.Acquire(project_id, bytes)) {
      metrics_->profile_updates.WithLabels({"rate_limited"}).Inc(parsed->updates.size());
      return TokenCallerTooManyRequests(wait);
    }
  }
  const size_t parse_errors = errors.size();
  for (auto& [set_key, set] : by_set) {
    const auto& [project_id, group_key] = set_key;
    // The updates travel to the store as data (ingest/profile_ops.h), so a store shared by several nodes can
    // apply them without a read-modify-write race.
    std::vector<store::ProfileOps> changes;
    changes.reserve(set.ids.size());
    for (const std::string& id : set.ids) {
      store::ProfileOps& change = changes.emplace_back();
      change.id = id;
      for (const ingest::ProfileUpdate* u : set.by_id.at(id))
        change.ops.push_back(ingest::EncodeProfileUpdate(*u));
    }
    std::vector<store::ProfileOpRefusal> refusals;
    Status s = store_.ApplyProfileOps(project_id, groups ? std::string_view(group_key) : std::string_view(),
                                      changes, ingest::ProfileUpdateFolder(), &refusals);
    for (const store::ProfileOpRefusal& r : refusals) {
      const auto& updates = set.by_id.at(changes[r.change].id);
      errors.push_back(
          {.index = parsed->update_indexes[static_cast<size_t>(updates[r.op] - parsed->updates.data())],
           .field = r.field,
           .message = fmt::format("{} '{}': {}", groups ? "group" : "profile", ingest::Echo(changes[r.change].id),
                                  r.message),
           .reason = r.reason});
    }
    if (!s.ok()) {
      metrics_->profile_updates.WithLabels({"store_error"}).Inc(set.ids.size());
      return ImportError(503, StoreFailureForTenant(groups ? "group profile updates were not stored"
                                                           : "profile updates were not stored",
                                                    project_id, s.error()));
    }
  }
  const size_t refused = errors.size() - parse_errors;
  metrics_->profile_updates.WithLabels({"applied"})
      .Inc(parsed->updates.size() - (errors.size() - parsed->errors.size()));
  metrics_->profile_updates.WithLabels({"rejected"}).Inc(errors.size());
  if (refused > 0)
    spdlog::warn("{}: {} profile updates refused (out-of-range numbers or profile limits)", endpoint,
                 refused);
  std::sort(errors.begin(), errors.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  return ClientAnswer(style, errors.empty(), SummariseErrors(errors));
}

}  // namespace sluice::api
