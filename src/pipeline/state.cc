#include "pipeline/state.h"

#include <boost/json.hpp>
#include <fmt/format.h>

namespace sluice::pipeline {
namespace json = boost::json;
namespace {

// Small typed readers that tolerate missing fields (records written by older versions) with defaults.
std::string Str(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}
int64_t I64(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  if (!v) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  return 0;
}
uint64_t U64(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  if (!v) return 0;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() >= 0) return static_cast<uint64_t>(v->as_int64());
  return 0;
}
bool Bool(const json::object& o, std::string_view k, bool def = false) {
  const json::value* v = o.if_contains(k);
  return v && v->is_bool() ? v->as_bool() : def;
}
std::vector<std::string> Strings(const json::object& o, std::string_view k) {
  std::vector<std::string> out;
  if (const json::value* v = o.if_contains(k); v && v->is_array()) {
    for (const auto& e : v->as_array()) {
      if (e.is_string()) out.emplace_back(e.as_string());
    }
  }
  return out;
}
json::array ToArray(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}
Result<json::object> ParseObject(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return Internal(fmt::format("corrupt {} record in the store", what));
  return std::move(v.as_object());
}
TaskState ParseTaskState(std::string_view s) {
  for (TaskState t : {TaskState::kPending, TaskState::kRunning, TaskState::kRetried, TaskState::kFailed,
                      TaskState::kCanceled, TaskState::kTimedOut, TaskState::kSucceeded}) {
    if (ToString(t) == s) return t;
  }
  return TaskState::kPending;
}
PipelineStatus ParseStatus(std::string_view s) {
  for (PipelineStatus t : {PipelineStatus::kActive, PipelineStatus::kPaused, PipelineStatus::kCanceled,
                           PipelineStatus::kFinished}) {
    if (ToString(t) == s) return t;
  }
  return PipelineStatus::kActive;
}

}  // namespace

std::string PipelineKey(uint32_t project, std::string_view name) { return fmt::format("{:010}/{}", project, name); }
std::string UnitKeyPrefix(uint32_t project, std::string_view name) { return fmt::format("{:010}/{}/", project, name); }
std::string UnitKey(uint32_t project, std::string_view name, std::string_view label) {
  return UnitKeyPrefix(project, name) + std::string(label);
}
std::string TaskKeyPrefix(uint32_t project, std::string_view name) { return fmt::format("{:010}/{}/", project, name); }
std::string TaskKey(uint32_t project, std::string_view name, uint64_t seq) {
  return fmt::format("{}{:012}", TaskKeyPrefix(project, name), seq);
}

std::string PipelineRecordToJson(const PipelineRecord& r) {
  const PipelineSpec& s = r.info.spec;
  const Destination& d = s.destination;
  json::object o;
  o["project_id"] = s.project_id;
  o["name"] = s.name;
  o["type"] = s.type_param;
  o["trial"] = s.trial;
  o["data_source"] = ToString(s.data_source);
  o["from_date"] = s.from_date;
  o["to_date"] = s.to_date;
  o["frequency"] = ToString(s.frequency);
  o["sync"] = s.sync;
  o["events"] = ToArray(s.events);
  o["where"] = s.where;
  o["compression"] = ToString(s.compression);
  o["created_ms"] = s.created_ms;
  json::object dest;
  dest["type"] = ToString(d.type);
  dest["s3_bucket"] = d.s3_bucket;
  dest["s3_region"] = d.s3_region;
  dest["s3_role"] = d.s3_role;
  dest["s3_prefix"] = d.s3_prefix;
  dest["s3_endpoint"] = d.s3_endpoint;
  if (!d.s3_credential.empty()) dest["s3_credential"] = d.s3_credential;
  dest["s3_encryption"] = d.encryption.mode == objstore::Encryption::Mode::kAes256 ? "aes"
                          : d.encryption.mode == objstore::Encryption::Mode::kKms  ? "kms"
                                                                                    : "none";
  dest["s3_kms_key_id"] = d.encryption.kms_key_id;
  dest["local_path"] = d.local_path;
  if (d.type == DestinationType::kGcs) {
    dest["gcs_bucket"] = d.gcs_bucket;
    dest["gcs_prefix"] = d.gcs_prefix;
    dest["gcs_region"] = d.gcs_region;
    dest["gcs_endpoint"] = d.gcs_endpoint;
    dest["gcs_kms_key_name"] = d.gcs_kms_key_name;
  }
  if (d.type == DestinationType::kAzure) {
    dest["storage_account"] = d.azure_storage_account;
    dest["container_name"] = d.azure_container;
    dest["prefix"] = d.azure_prefix;
    dest["client_id"] = d.azure_client_id;
    dest["client_secret"] = d.azure_client_secret.Reveal();  // the server's own store; never sent to a client
    dest["tenant_id"] = d.azure_tenant_id;
    dest["azure_endpoint"] = d.azure_endpoint;
  }
  o["destination"] = std::move(dest);
  o["status"] = ToString(r.info.status);
  o["dispatcher"] = r.info.dispatcher;
  o["last_dispatched_ms"] = r.info.last_dispatched_ms;
  o["failure_message"] = r.info.failure_message;
  o["partitions_exported"] = r.info.partitions_exported;
  o["events_exported"] = r.info.events_exported;
  o["bytes_exported"] = r.info.bytes_exported;
  o["next_run_ms"] = r.next_run_ms;
  o["next_task_seq"] = r.next_task_seq;
  return json::serialize(o);
}

Result<PipelineRecord> ParsePipelineRecord(std::string_view text) {
  SLUICE_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "pipeline"));
  PipelineRecord r;
  PipelineSpec& s = r.info.spec;
  s.project_id = static_cast<uint32_t>(U64(o, "project_id"));
  s.name = Str(o, "name");
  s.type_param = Str(o, "type");
  s.trial = Bool(o, "trial");
  s.data_source = ParseDataSource(Str(o, "data_source")).value_or(DataSource::kEvents);
  s.from_date = Str(o, "from_date");
  s.to_date = Str(o, "to_date");
  s.frequency = ParseFrequency(Str(o, "frequency")).value_or(Frequency::kDaily);
  s.sync = Bool(o, "sync", true);
  s.events = Strings(o, "events");
  s.where = Str(o, "where");
  s.compression = ParseCompression(Str(o, "compression")).value_or(Compression::kGzip);
  s.created_ms = I64(o, "created_ms");
  if (const json::value* dv = o.if_contains("destination"); dv && dv->is_object()) {
    const json::object& dest = dv->as_object();
    Destination& d = s.destination;
    d.type = ParseDestinationType(Str(dest, "type")).value_or(DestinationType::kS3);
    d.s3_bucket = Str(dest, "s3_bucket");
    d.s3_region = Str(dest, "s3_region");
    d.s3_role = Str(dest, "s3_role");
    d.s3_prefix = Str(dest, "s3_prefix");
    d.s3_endpoint = Str(dest, "s3_endpoint");
    d.s3_credential = Str(dest, "s3_credential");
    const std::string enc = Str(dest, "s3_encryption");
    d.encryption.mode = enc == "aes"   ? objstore::Encryption::Mode::kAes256
                        : enc == "kms" ? objstore::Encryption::Mode::kKms
                                       : objstore::Encryption::Mode::kNone;
    d.encryption.kms_key_id = Str(dest, "s3_kms_key_id");
    d.local_path = Str(dest, "local_path");
    d.gcs_bucket = Str(dest, "gcs_bucket");
    d.gcs_prefix = Str(dest, "gcs_prefix");
    d.gcs_region = Str(dest, "gcs_region");
    d.gcs_endpoint = Str(dest, "gcs_endpoint");
    d.gcs_kms_key_name = Str(dest, "gcs_kms_key_name");
    d.azure_storage_account = Str(dest, "storage_account");
    d.azure_container = Str(dest, "container_name");
    d.azure_prefix = Str(dest, "prefix");
    d.azure_client_id = Str(dest, "client_id");
    d.azure_client_secret = Secret(Str(dest, "client_secret"));
    d.azure_tenant_id = Str(dest, "tenant_id");
    d.azure_endpoint = Str(dest, "azure_endpoint");
  }
  r.info.status = ParseStatus(Str(o, "status"));
  r.info.dispatcher = Str(o, "dispatcher");
  r.info.last_dispatched_ms = I64(o, "last_dispatched_ms");
  r.info.failure_message = Str(o, "failure_message");
  r.info.partitions_exported = U64(o, "partitions_exported");
  r.info.events_exported = U64(o, "events_exported");
  r.info.bytes_exported = U64(o, "bytes_exported");
  r.next_run_ms = I64(o, "next_run_ms");
  r.next_task_seq = std::max<uint64_t>(1, U64(o, "next_task_seq"));
  if (s.name.empty()) return Internal("corrupt pipeline record in the store: no name");
  return r;
}

std::string UnitStateToJson(const UnitState& u) {
  json::object o;
  o["published_generation"] = u.published_generation;
  o["covered_seq"] = u.covered_seq;
  o["files"] = ToArray(u.files);
  o["records"] = u.records;
  o["bytes"] = u.bytes;
  o["in_progress"] = u.in_progress;
  o["attempt_generation"] = u.attempt_generation;
  o["attempt_compression"] = ToString(u.attempt_compression);
  json::array ab;
  for (const AbandonedGeneration& g : u.abandoned) {
    ab.emplace_back(json::object{{"generation", g.generation}, {"compression", ToString(g.compression)}});
  }
  o["abandoned"] = std::move(ab);
  o["undeleted"] = ToArray(u.undeleted);
  json::array times;
  for (int64_t t : u.sync_times) times.emplace_back(t);
  o["sync_times"] = std::move(times);
  o["last_state"] = ToString(u.last_state);
  return json::serialize(o);
}

Result<UnitState> ParseUnitState(std::string_view text) {
  SLUICE_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "pipeline unit"));
  UnitState u;
  u.published_generation = U64(o, "published_generation");
  u.covered_seq = U64(o, "covered_seq");
  u.files = Strings(o, "files");
  u.records = U64(o, "records");
  u.bytes = U64(o, "bytes");
  u.in_progress = Bool(o, "in_progress");
  u.attempt_generation = U64(o, "attempt_generation");
  u.attempt_compression = ParseCompression(Str(o, "attempt_compression")).value_or(Compression::kGzip);
  if (const json::value* v = o.if_contains("abandoned"); v && v->is_array()) {
    for (const auto& e : v->as_array()) {
      if (!e.is_object()) continue;
      u.abandoned.push_back({U64(e.as_object(), "generation"),
                             ParseCompression(Str(e.as_object(), "compression")).value_or(Compression::kGzip)});
    }
  }
  u.undeleted = Strings(o, "undeleted");
  if (const json::value* v = o.if_contains("sync_times"); v && v->is_array()) {
    for (const auto& e : v->as_array()) {
      if (e.is_int64()) u.sync_times.push_back(e.as_int64());
      else if (e.is_uint64()) u.sync_times.push_back(static_cast<int64_t>(e.as_uint64()));
    }
  }
  u.last_state = ParseTaskState(Str(o, "last_state"));
  return u;
}

std::string TaskRecordToJson(const TaskRecord& t) {
  json::object o;
  o["task_id"] = t.task_id;
  o["partition"] = t.partition;
  o["kind"] = t.kind;
  o["state"] = ToString(t.state);
  o["attempts"] = t.attempts;
  o["scheduled_ms"] = t.scheduled_ms;
  o["started_ms"] = t.started_ms;
  o["finished_ms"] = t.finished_ms;
  o["records"] = t.records;
  o["bytes"] = t.bytes;
  o["generation"] = t.generation;
  o["message"] = t.message;
  return json::serialize(o);
}

Result<TaskRecord> ParseTaskRecord(std::string_view text) {
  SLUICE_ASSIGN_OR_RETURN(json::object o, ParseObject(text, "pipeline task"));
  TaskRecord t;
  t.task_id = Str(o, "task_id");
  t.partition = Str(o, "partition");
  t.kind = Str(o, "kind");
  t.state = ParseTaskState(Str(o, "state"));
  t.attempts = static_cast<int>(I64(o, "attempts"));
  t.scheduled_ms = I64(o, "scheduled_ms");
  t.started_ms = I64(o, "started_ms");
  t.finished_ms = I64(o, "finished_ms");
  t.records = U64(o, "records");
  t.bytes = U64(o, "bytes");
  t.generation = U64(o, "generation");
  t.message = Str(o, "message");
  return t;
}

}  // namespace sluice::pipeline
