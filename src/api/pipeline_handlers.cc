// Routes of the JSON Pipelines management API (SPEC §4): Mixpanel's Data Pipelines API plus Sluice extensions.
// All under /api/2.0/nessie/pipeline/:
//
//   POST      create    form → PipelineSpec → manager->Create → {"pipeline_names":[…]}
//   POST      edit      name + editable params → Get, apply, Edit → {"name","status":"ok"}
//   POST      pause | resume | cancel | sync    name → {"name","status":"ok"}
//   GET|POST  status    name[, summary][, status][, limit] → tasks by state, day_syncs, Sluice fields
//   GET|POST  jobs      → {"<project_id>":[{name, Dispatcher, last_dispatched, …}]}
//   GET|POST  timeline  name[, limit][, status] → {"day_syncs":[…]} (Mixpanel's), plus Sluice's
//   "name","tasks"
//
// Parameters come from the query or a form body (Mixpanel's clients use both). Authentication: the project's
// API secret in Basic auth, or the admin token as Bearer with project_id. docs/pipelines.md documents every
// shape.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "api/pipeline_params.h"
#include "api/request_util.h"
#include "api/service_impl.h"
#include "pipeline/pipeline.h"

namespace sluice::api {
namespace {

namespace json = boost::json;
using pipeline::PipelineInfo;
using pipeline::PipelineManager;
using pipeline::TaskRecord;
using pipeline::TaskState;

constexpr std::string_view kRoutePrefix = "/api/2.0/nessie/pipeline/";
constexpr size_t kDefaultTimelineLimit = 1000;
constexpr size_t kMaxTimelineLimit = 10'000;

/// What a pipeline handler works with once the manager exists and the caller is authenticated.
struct PipelineCall {
  ServiceImpl& service;
  PipelineManager& manager;
  const store::Project& project;
  const PipelineParams& params;
};

using PipelineHandler = http::Response (*)(PipelineCall&);

/// The manager's error as an API answer (error contract of pipeline/pipeline.h).
http::Response ManagerError(const Error& e, std::string_view action, std::string_view name,
                            uint32_t project) {
  int status = 400;
  switch (e.code) {
    case ErrorCode::kNotFound:
      status = 404;
      break;
    case ErrorCode::kInternal:
      status = 500;
      break;
    case ErrorCode::kUnavailable:
    case ErrorCode::kTransient:
    case ErrorCode::kThrottled:
    case ErrorCode::kDeadlineExceeded:
    case ErrorCode::kCancelled:
      status = 503;
      break;
    default:
      status = 400;  // invalid, conflict, destination check refused (access denied, …)
      break;
  }
  if (status >= 500) {
    spdlog::error("pipeline {} failed (project {}, pipeline '{}'): {}", action, project, name, e.ToString());
  } else {
    spdlog::info("pipeline {} refused (project {}, pipeline '{}'): {}", action, project, name, e.message);
  }
  return JsonError(status, e.message.empty()
                               ? fmt::format("pipeline {} failed ({})", action, ErrorCodeName(e.code))
                               : e.message);
}

http::Response JsonOk(const json::value& v) { return http::Response::Json(200, json::serialize(v)); }

/// The required `name` parameter, or a 400 in `error`.
std::optional<std::string> RequireName(const PipelineCall& call, http::Response& error) {
  auto name = call.params.Get("name");
  if (!name || name->empty()) {
    error =
        JsonError(400, "name is required: the pipeline's name as create returned it (see …/pipeline/jobs)");
    return std::nullopt;
  }
  return std::string(*name);
}

json::value TimestampOrNull(int64_t ms) {
  if (ms <= 0) return nullptr;
  return json::value(FormatTimestampMs(ms));
}

json::object DestinationJson(const pipeline::Destination& d) {
  json::object o;
  o["type"] = pipeline::ToString(d.type);
  if (d.type == pipeline::DestinationType::kLocal) {
    o["local_path"] = d.local_path;
    return o;
  }
  if (d.type == pipeline::DestinationType::kAzure) {
    // client_secret is never returned: the caller set it and can replace it with an edit.
    o["storage_account"] = d.azure_storage_account;
    o["container_name"] = d.azure_container;
    o["prefix"] = d.azure_prefix;
    o["client_id"] = d.azure_client_id;
    o["tenant_id"] = d.azure_tenant_id;
    o["azure_endpoint"] = d.azure_endpoint;
    return o;
  }
  if (d.type == pipeline::DestinationType::kGcs) {
    o["gcs_bucket"] = d.gcs_bucket;
    o["gcs_prefix"] = d.gcs_prefix;
    o["gcs_region"] = d.gcs_region;
    o["gcs_endpoint"] = d.gcs_endpoint;
    o["gcs_kms_key_name"] = d.gcs_kms_key_name;
    return o;
  }
  o["s3_bucket"] = d.s3_bucket;
  o["s3_region"] = d.s3_region;
  o["s3_role"] = d.s3_role;
  o["s3_prefix"] = d.s3_prefix;
  o["s3_endpoint"] = d.s3_endpoint;
  if (!d.s3_credential.empty()) o["s3_credential"] = d.s3_credential;
  switch (d.encryption.mode) {
    case objstore::Encryption::Mode::kNone:
      o["s3_encryption"] = "none";
      break;
    case objstore::Encryption::Mode::kAes256:
      o["s3_encryption"] = "aes";
      break;
    case objstore::Encryption::Mode::kKms:
      o["s3_encryption"] = "kms";
      break;
  }
  o["s3_kms_key_id"] = d.encryption.kms_key_id;
  return o;
}

/// One entry of …/jobs: Mixpanel's fields first, then Sluice's.
json::object JobJson(const PipelineInfo& info) {
  const auto& s = info.spec;
  json::array events;
  for (const auto& e : s.events) events.emplace_back(e);
  json::object o;
  o["name"] = s.name;
  o["Dispatcher"] = info.dispatcher;
  o["last_dispatched"] = TimestampOrNull(info.last_dispatched_ms);
  o["frequency"] = pipeline::ToString(s.frequency);
  o["sync_enabled"] = s.sync;
  o["status"] = pipeline::ToString(info.status);
  o["failure_message"] = info.failure_message;
  o["type"] = s.type_param;
  o["data_source"] = pipeline::ToString(s.data_source);
  o["trial"] = s.trial;
  o["from_date"] = s.from_date;
  o["to_date"] = s.to_date;
  o["events"] = std::move(events);
  o["where"] = s.where;
  o["compression"] = pipeline::ToString(s.compression);
  o["destination"] = DestinationJson(s.destination);
  o["created"] = TimestampOrNull(s.created_ms);
  o["partitions_exported"] = info.partitions_exported;
  o["events_exported"] = info.events_exported;
  o["bytes_exported"] = info.bytes_exported;
  return o;
}

/// The start of a task's partition as ISO-8601 ("YYYY-MM-DD" → midnight, "YYYY-MM-DDTHH" → that hour); null
/// for snapshots.
json::value PartitionStart(std::string_view partition) {
  if (partition.size() == 10) return json::value(fmt::format("{}T00:00:00Z", partition));
  if (partition.size() == 13 && partition[10] == 'T') return json::value(fmt::format("{}:00:00Z", partition));
  return nullptr;
}

/// A task as Mixpanel's …/status lists it (name, state, last_finish, run_at, from_date, to_date), plus
/// Sluice's task fields.
json::object StatusTaskJson(const PipelineInfo& info, uint32_t project_id, const TaskRecord& t) {
  json::object o;
  o["project_id"] = project_id;
  o["name"] = info.spec.name;
  o["state"] = pipeline::ToString(t.state);
  o["last_finish"] = TimestampOrNull(t.finished_ms);
  o["run_at"] = TimestampOrNull(t.scheduled_ms);
  o["from_date"] = PartitionStart(t.partition);
  o["to_date"] = PartitionStart(t.partition);
  o["task_id"] = t.task_id;
  o["partition"] = t.partition;
  o["kind"] = t.kind;
  o["attempts"] = t.attempts;
  o["records"] = t.records;
  o["bytes"] = t.bytes;
  o["generation"] = t.generation;
  o["message"] = t.message;
  return o;
}

/// A task as …/timeline lists it: the TaskRecord fields as they are.
json::object TimelineTaskJson(const TaskRecord& t) {
  return {{"task_id", t.task_id},
          {"partition", t.partition},
          {"kind", t.kind},
          {"state", pipeline::ToString(t.state)},
          {"attempts", t.attempts},
          {"scheduled_ms", t.scheduled_ms},
          {"started_ms", t.started_ms},
          {"finished_ms", t.finished_ms},
          {"records", t.records},
          {"bytes", t.bytes},
          {"generation", t.generation},
          {"message", t.message}};
}

/// A sync time as Mixpanel's timeline writes it: Go's time.String() ("2019-08-19 14:27:46.044605 -0700 PDT"),
/// here in UTC with the milliseconds Sluice keeps ("2026-11-22 00:31:40.123 +0000 UTC"; trailing zeros and a
/// zero fraction dropped, as Go does).
std::string FormatGoTimeUtc(int64_t ms) {
  using namespace std::chrono;
  sys_time<milliseconds> t{milliseconds{ms}};
  auto day = floor<days>(t);
  hh_mm_ss<milliseconds> hms{t - day};
  std::string fraction;
  if (int64_t sub = hms.subseconds().count(); sub != 0) {
    fraction = fmt::format(".{:03d}", sub);
    while (fraction.back() == '0') fraction.pop_back();
  }
  return fmt::format("{} {:02d}:{:02d}:{:02d}{} +0000 UTC", FormatDate(day.time_since_epoch().count()),
                     hms.hours().count(), hms.minutes().count(), static_cast<int64_t>(hms.seconds().count()),
                     fraction);
}

/// A day's status as Mixpanel's timeline names it: "synced" once delivered and nothing newer is pending;
/// otherwise Sluice's state of the day's latest task (pending, running, retried, failed, canceled,
/// timed_out).
std::string_view TimelineDayStatus(TaskState s) {
  return s == TaskState::kSucceeded ? std::string_view("synced") : pipeline::ToString(s);
}

bool Wanted(const std::vector<TaskState>& filter, TaskState s) {
  return filter.empty() || std::find(filter.begin(), filter.end(), s) != filter.end();
}

// ---- handlers
// ---------------------------------------------------------------------------------------------------

http::Response CreateRoute(PipelineCall& call) {
  const Clock& clock = *call.service.options().clock;
  int64_t now_ms = clock.NowMillis();
  std::string today =
      FormatDate(std::chrono::floor<std::chrono::days>(clock.Now()).time_since_epoch().count());
  auto spec = ParseCreateParams(call.params, call.project.id, today);
  if (!spec.ok()) return JsonError(400, spec.error().message);
  spec->created_ms = now_ms;
  std::string requested = spec->name;
  http::Response busy;
  std::shared_ptr<void> slot = call.service.TakeBucketCheckSlot(call.project.id, busy);
  if (!slot) return busy;
  auto names = call.manager.Create(std::move(spec).value());
  if (!names.ok()) return ManagerError(names.error(), "create", requested, call.project.id);
  json::array list;
  for (const auto& n : *names) list.emplace_back(n);
  spdlog::info("project {}: created pipeline(s) {}", call.project.id, json::serialize(list));
  return JsonOk(json::object{{"pipeline_names", std::move(list)}});
}

http::Response EditRoute(PipelineCall& call) {
  http::Response error;
  auto name = RequireName(call, error);
  if (!name) return error;
  auto info = call.manager.Get(call.project.id, *name);
  if (!info.ok()) return ManagerError(info.error(), "edit", *name, call.project.id);
  // The parameters are checked here (a 400 names them); the manager applies them to the stored spec, so an
  // edit of other fields through another node meanwhile is kept.
  pipeline::PipelineSpec spec = info->spec;
  if (auto st = ApplyEditParams(call.params, spec); !st.ok()) return JsonError(400, st.error().message);
  std::shared_ptr<void> slot = call.service.TakeBucketCheckSlot(call.project.id, error);
  if (!slot) return error;
  auto change = [&call](pipeline::PipelineSpec& stored) { return ApplyEditParams(call.params, stored); };
  if (auto st = call.manager.Edit(call.project.id, *name, change); !st.ok()) {
    return ManagerError(st.error(), "edit", *name, call.project.id);
  }
  spdlog::info("project {}: edited pipeline '{}'", call.project.id, *name);
  return JsonOk(json::object{{"name", *name}, {"status", "ok"}});
}

/// pause, resume, cancel and sync: `name` → one manager call → {"name","status":"ok"}.
template <Status (PipelineManager::*Action)(uint32_t, std::string_view)>
http::Response SimpleAction(PipelineCall& call, std::string_view action) {
  http::Response error;
  auto name = RequireName(call, error);
  if (!name) return error;
  if (auto st = (call.manager.*Action)(call.project.id, *name); !st.ok()) {
    return ManagerError(st.error(), action, *name, call.project.id);
  }
  spdlog::info("project {}: pipeline '{}': {}", call.project.id, *name, action);
  return JsonOk(json::object{{"name", *name}, {"status", "ok"}});
}

http::Response PauseRoute(PipelineCall& call) { return SimpleAction<&PipelineManager::Pause>(call, "pause"); }
http::Response ResumeRoute(PipelineCall& call) {
  return SimpleAction<&PipelineManager::Resume>(call, "resume");
}
http::Response CancelRoute(PipelineCall& call) {
  return SimpleAction<&PipelineManager::Cancel>(call, "cancel");
}
http::Response SyncRoute(PipelineCall& call) { return SimpleAction<&PipelineManager::SyncNow>(call, "sync"); }

/// `limit` of …/status and …/timeline.
Result<size_t> LimitParam(const PipelineParams& params) {
  auto v = params.Get("limit");
  if (!v || v->empty()) return kDefaultTimelineLimit;
  // A number of tasks.
  return ParseUint<size_t>("limit", *v, 1, kMaxTimelineLimit);
}

http::Response StatusRoute(PipelineCall& call) {
  http::Response error;
  auto name = RequireName(call, error);
  if (!name) return error;
  auto states = ParseTaskStatesParam(call.params.All("status"));
  if (!states.ok()) return JsonError(400, states.error().message);
  bool summary = false;
  if (auto v = call.params.Get("summary")) {
    auto b = ParseBoolParam("summary", *v);
    if (!b.ok()) return JsonError(400, b.error().message);
    summary = *b;
  }
  auto limit = LimitParam(call.params);
  if (!limit.ok()) return JsonError(400, limit.error().message);

  auto info = call.manager.Get(call.project.id, *name);
  if (!info.ok()) return ManagerError(info.error(), "status", *name, call.project.id);
  auto tasks = call.manager.Timeline(call.project.id, *name, *limit);
  if (!tasks.ok()) return ManagerError(tasks.error(), "status", *name, call.project.id);
  auto days = call.manager.DaySyncs(call.project.id, *name);
  if (!days.ok()) return ManagerError(days.error(), "status", *name, call.project.id);

  json::object out;
  // Mixpanel's shape: one key per task state, each the list of tasks in it (or their count with
  // summary=true).
  for (const TaskRecord& t : *tasks) {
    if (!Wanted(*states, t.state)) continue;
    std::string key(pipeline::ToString(t.state));
    if (summary) {
      auto& slot = out[key];
      slot = slot.is_int64() ? slot.as_int64() + 1 : int64_t{1};
    } else {
      auto& slot = out[key];
      if (!slot.is_array()) slot = json::array();
      slot.as_array().push_back(StatusTaskJson(*info, call.project.id, t));
    }
  }
  json::array day_syncs;
  for (const auto& d : *days) {
    if (!Wanted(*states, d.status)) continue;
    json::array times;
    for (int64_t ms : d.sync_times) times.emplace_back(FormatTimestampMs(ms));
    day_syncs.push_back(json::object{
        {"date", d.date}, {"sync_times", std::move(times)}, {"status", pipeline::ToString(d.status)}});
  }
  out["day_syncs"] = std::move(day_syncs);
  // Sluice's fields: the pipeline as a whole.
  out["name"] = info->spec.name;
  out["status"] = pipeline::ToString(info->status);
  out["failure_message"] = info->failure_message;
  out["dispatcher"] = info->dispatcher;
  out["last_dispatched"] = TimestampOrNull(info->last_dispatched_ms);
  out["counters"] = json::object{{"partitions_exported", info->partitions_exported},
                                 {"events_exported", info->events_exported},
                                 {"bytes_exported", info->bytes_exported}};
  return JsonOk(out);
}

http::Response JobsRoute(PipelineCall& call) {
  auto list = call.manager.List(call.project.id);
  if (!list.ok()) return ManagerError(list.error(), "jobs", "", call.project.id);
  json::array jobs;
  for (const auto& info : *list) jobs.push_back(JobJson(info));
  json::object out;
  out[std::to_string(call.project.id)] = std::move(jobs);
  return JsonOk(out);
}

http::Response TimelineRoute(PipelineCall& call) {
  http::Response error;
  auto name = RequireName(call, error);
  if (!name) return error;
  auto states = ParseTaskStatesParam(call.params.All("status"));
  if (!states.ok()) return JsonError(400, states.error().message);
  auto limit = LimitParam(call.params);
  if (!limit.ok()) return JsonError(400, limit.error().message);
  auto tasks = call.manager.Timeline(call.project.id, *name, *limit);
  if (!tasks.ok()) return ManagerError(tasks.error(), "timeline", *name, call.project.id);
  auto days = call.manager.DaySyncs(call.project.id, *name);
  if (!days.ok()) return ManagerError(days.error(), "timeline", *name, call.project.id);
  // Mixpanel's answer is day_syncs alone; the task list stands beside it for Sluice's CLI and operators.
  json::array day_syncs;
  for (const auto& d : *days) {
    if (!Wanted(*states, d.status)) continue;
    json::array times;
    for (int64_t ms : d.sync_times) times.emplace_back(FormatGoTimeUtc(ms));
    day_syncs.push_back(json::object{
        {"date", d.date}, {"sync_times", std::move(times)}, {"status", TimelineDayStatus(d.status)}});
  }
  json::array list;
  for (const TaskRecord& t : *tasks) {
    if (Wanted(*states, t.state)) list.push_back(TimelineTaskJson(t));
  }
  return JsonOk(
      json::object{{"day_syncs", std::move(day_syncs)}, {"name", *name}, {"tasks", std::move(list)}});
}

}  // namespace

void ServiceImpl::RegisterPipelineRoutes() {
  auto add = [this](std::string_view method, std::string_view action, PipelineHandler handler) {
    router_->Add(method, std::string(kRoutePrefix) + std::string(action),
                 [this, handler](http::Request& req) {
                   PipelineManager* manager = options_.pipelines;
                   if (!manager) return JsonError(503, "pipelines are not enabled on this server");
                   http::Response error;
                   auto project = AuthenticateProjectRequest(req, error);
                   if (!project) return error;
                   PipelineParams params(req);
                   PipelineCall call{*this, *manager, *project, params};
                   return handler(call);
                 });
  };
  // Changes are POST only (Mixpanel's clients send them as forms); reads answer GET and POST, since
  // Mixpanel's own examples send status with curl -d.
  add("POST", "create", &CreateRoute);
  add("POST", "edit", &EditRoute);
  add("POST", "pause", &PauseRoute);
  add("POST", "resume", &ResumeRoute);
  add("POST", "cancel", &CancelRoute);
  add("POST", "sync", &SyncRoute);
  for (const char* method : {"GET", "POST"}) {
    add(method, "status", &StatusRoute);
    add(method, "jobs", &JobsRoute);
    add(method, "timeline", &TimelineRoute);
  }
}

}  // namespace sluice::api
