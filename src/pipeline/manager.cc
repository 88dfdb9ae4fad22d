#include "pipeline/manager.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/thread_name.h"
#include "jobs/fenced_write.h"
#include "jobs/runner.h"
#include "pipeline/layout.h"
#include "pipeline/state.h"
#include "storage_access/location.h"
#include "storage_access/open.h"

namespace sluice::pipeline {
namespace {

constexpr int64_t kHourMs = 3'600'000;
constexpr size_t kSyncTimesKept = 20;

// The job runner's one failure policy.
bool IsTransient(ErrorCode code) { return jobs::IsRetryableError(code); }

/// What the customer should do about a permanent failure.
std::string FixHint(const Error& e, const Destination& d) {
  if (d.type == DestinationType::kAzure) {
    switch (e.code) {
      case ErrorCode::kAccessDenied:
        return fmt::format(
            "assign Storage Blob Data Contributor to the service principal {} on container {} of account {} "
            "(az role assignment create --assignee {} --role \"Storage Blob Data Contributor\" --scope "
            "<the container's resource ID>), then resume the pipeline",
            d.azure_client_id, d.azure_container, d.azure_storage_account, d.azure_client_id);
      case ErrorCode::kNotFound:
        return fmt::format("check that the container {} exists in storage account {}, then resume the pipeline",
                           d.azure_container, d.azure_storage_account);
      case ErrorCode::kUnauthenticated:
        return fmt::format(
            "Microsoft Entra ID refused the service principal {}: check client_secret (not expired; its Value), "
            "client_id and tenant_id, edit the pipeline, then resume it",
            d.azure_client_id);
      default:
        break;
    }
  }
  if (d.type == DestinationType::kGcs) {
    // The GCS store's error already names the missing permission, the role and Sluice's service account.
    if (e.provider_code == storage_access::kUnboundGcsBucket) {
      return "once the operator has bound the bucket, resume the pipeline";
    }
    switch (e.code) {
      case ErrorCode::kAccessDenied:
        return fmt::format(
            "grant Storage Object Admin (roles/storage.objectAdmin) to Sluice's service account on gs://{} "
            "(`sluice gcp roles --bucket {}` prints the binding), then resume the pipeline",
            d.gcs_bucket, d.gcs_bucket);
      case ErrorCode::kNotFound:
        return fmt::format("check that the bucket gs://{} exists, then resume the pipeline", d.gcs_bucket);
      case ErrorCode::kUnauthenticated:
        return "Sluice's own Google credentials were refused or are missing: check the server's "
               "GOOGLE_APPLICATION_CREDENTIALS key file or metadata server, then resume the pipeline";
      default:
        break;
    }
  }
  switch (e.code) {
    case ErrorCode::kAccessDenied:
      // Only a KMS error code or a denied kms:* action means the key policy; our own generic hint for a denied
      // S3 call mentions "the KMS key policy" too, so the word alone must not pick this advice.
      if (e.provider_code.starts_with("KMS") || e.message.find("kms:") != std::string::npos) {
        return "the role may not use the KMS key: grant kms:GenerateDataKey, kms:Encrypt and kms:Decrypt on it to the "
               "role (`sluice aws policies` prints the key policy), then resume the pipeline";
      }
      return fmt::format(
          "grant the role s3:PutObject, s3:GetObject, s3:ListBucket and s3:DeleteObject on arn:aws:s3:::{0} and "
          "arn:aws:s3:::{0}/* (`sluice aws policies` prints the policy) and check the trust policy allows Sluice "
          "with the project's external ID, then resume the pipeline",
          d.s3_bucket);
    case ErrorCode::kNotFound:
      return fmt::format("check that the bucket {} exists in region {} (or the local path exists), then resume the "
                         "pipeline",
                         d.type == DestinationType::kLocal ? d.local_path : d.s3_bucket, d.s3_region);
    case ErrorCode::kUnauthenticated:
      return "Sluice's own AWS credentials were refused or are missing: check the server's AWS_* environment or "
             "profile, then resume the pipeline";
    case ErrorCode::kTooLarge:
      return "the partition exceeds a destination limit; lower the file size or contact support";
    default:
      return "fix the destination settings with `pipeline edit`, then resume the pipeline";
  }
}

/// A spec as stored (for comparing two specs).
std::string SpecText(const PipelineSpec& spec) {
  PipelineRecord r;
  r.info.spec = spec;
  return PipelineRecordToJson(r);
}

/// Whether an edit changes where or as whom Sluice writes (the destination is checked again).
bool DestinationChanged(const Destination& u, const Destination& c) {
  return u.s3_role != c.s3_role || u.s3_credential != c.s3_credential || u.s3_region != c.s3_region ||
         u.encryption.mode != c.encryption.mode || u.encryption.kms_key_id != c.encryption.kms_key_id ||
         u.azure_client_id != c.azure_client_id || u.azure_tenant_id != c.azure_tenant_id ||
         u.azure_client_secret.Reveal() != c.azure_client_secret.Reveal() ||
         u.gcs_kms_key_name != c.gcs_kms_key_name || u.gcs_region != c.gcs_region;
}

Error CanceledError(std::string_view name) {
  return Error(ErrorCode::kConflict, fmt::format("pipeline {} is canceled and cannot be edited", name));
}

/// Why a finished pipeline cannot resume or sync, and what reopens it.
std::string FinishedHint(std::string_view name, const PipelineSpec& spec) {
  return fmt::format(
      "pipeline {} has finished its date range (to_date {}); edit its to_date to a later day, or to empty "
      "for a recurring pipeline, to export more",
      name, spec.to_date);
}

/// The directory a type=local `local_path` confines to (ConfineLocalPath), as a root-relative path with a
/// trailing '/' ("" + "/" is the root itself); nullopt when it leaves the root (ConfineLocalPath refuses it).
/// Lexical: ConfineLocalPath follows no symbolic link, so equal results here mean the same directory.
std::optional<std::string> ConfinedLocalKey(const std::string& root, std::string_view local_path) {
  auto split = [](std::string_view path) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos <= path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string_view::npos) slash = path.size();
      std::string_view part = path.substr(pos, slash - pos);
      if (!part.empty() && part != ".") out.push_back(part);
      pos = slash + 1;
    }
    return out;
  };
  std::vector<std::string_view> parts = split(local_path);
  if (!local_path.empty() && local_path.front() == '/') {
    std::vector<std::string_view> root_parts = split(root);
    if (parts.size() < root_parts.size() ||
        !std::equal(root_parts.begin(), root_parts.end(), parts.begin())) {
      return std::nullopt;
    }
    parts.erase(parts.begin(), parts.begin() + static_cast<std::ptrdiff_t>(root_parts.size()));
  }
  std::string key = "/";
  for (std::string_view part : parts) {
    if (part == "..") return std::nullopt;
    key.append(part).push_back('/');
  }
  return key;
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

class Pipelines::Impl : public jobs::Runner::Source {
 public:
  struct Entry {
    PipelineRecord record;  // guarded by Impl::mu_
    bool running = false;   // guarded by mu_
    bool dispatched = false;  // guarded by mu_; the running job got the pipeline's lease
    bool not_due = false;     // guarded by mu_; the stored record said another node ran it meanwhile
    int64_t skip_until_ms = 0;  // guarded by mu_; another node held it: not tried here before
    std::atomic<bool> interrupt{false};
    std::shared_ptr<objstore::ObjectStore> destination;  // guarded by mu_; reset when the spec changes
    int64_t exported_until_ms = 0;                       // end of the newest published unit (export lag)
    // Guarded by mu_: the spec the current run started with, and what it did so far (put onto the stored
    // record when the run is saved, whatever other nodes wrote meanwhile: SaveRunOutcome).
    std::string run_spec;
    bool run_recurring = false;
    uint64_t run_partitions = 0;
    uint64_t run_events = 0;
    uint64_t run_bytes = 0;
  };

  explicit Impl(ManagerOptions options) : o_(std::move(options)), store_(*o_.store) {
    jobs::Runner::Options ro;
    ro.leases = o_.leases;
    ro.node_id = o_.node_id;
    ro.workers = std::max(1, o_.max_concurrent_runs);
    ro.poll_interval = o_.poll_interval;
    ro.retry = {.max_attempts = o_.max_attempts, .base_delay = o_.retry_base_delay, .max_delay = o_.retry_max_delay};
    runner_ = std::make_unique<jobs::Runner>(std::move(ro), *this);
    if (o_.metrics) {
      MetricsRegistry& r = *o_.metrics;
      partitions_ = &r.Counter("sluice_pipeline_partitions_exported_total", "Partitions (units, snapshots) exported",
                               {"data_source"});
      events_ = &r.Counter("sluice_pipeline_records_exported_total", "Records written to destinations",
                           {"data_source"});
      bytes_ = &r.Counter("sluice_pipeline_bytes_exported_total", "Compressed bytes written to destinations",
                          {"data_source"});
      failures_ = &r.Counter("sluice_pipeline_failures_total",
                             "Failed export attempts by kind (transient = retried, permanent = pipeline paused)",
                             {"kind"});
      // The registry may outlive the manager: callbacks reach it through a weak handle.
      std::weak_ptr<Impl*> self = self_;
      r.GaugeCallback("sluice_pipeline_export_lag_seconds",
                      "Largest delay over active event pipelines between now and the end of the newest exported "
                      "unit",
                      [self] {
                        auto p = self.lock();
                        return p ? (*p)->ExportLagSeconds() : 0.0;
                      });
      r.GaugeCallback("sluice_pipelines_active", "Pipelines that are active (not paused, canceled or finished)",
                      [self] {
                        auto p = self.lock();
                        return p ? (*p)->ActiveCount() : 0.0;
                      });
    }
  }

  ~Impl() override {
    self_.reset();
    Stop();
  }

  Status Load() {
    std::vector<PipelineRecord> records;
    Status scan_error;
    SLUICE_TRY(store_.ScanMeta(kPipelineNs, "", [&](std::string_view key, std::string_view value) {
      auto r = ParsePipelineRecord(value);
      if (!r.ok()) {
        scan_error = r.error().WithContext(fmt::format("pipeline record {}", key));
        return false;
      }
      records.push_back(std::move(r).value());
      return true;
    }));
    SLUICE_TRY(scan_error);
    for (const PipelineRecord& r : records) SLUICE_TRY(FailInterruptedTasks(r.info.spec));
    std::lock_guard lock(mu_);
    for (PipelineRecord& r : records) {
      auto e = std::make_shared<Entry>();
      e->record = std::move(r);
      entries_[PipelineKey(e->record.info.spec.project_id, e->record.info.spec.name)] = std::move(e);
    }
    if (!entries_.empty()) spdlog::info("loaded {} pipeline(s)", entries_.size());
    return OkStatus();
  }

  /// A task still recorded as running at start-up was interrupted by a crash (a clean stop records it as
  /// canceled). If its unit's state shows the attempt published (a crash between the unit's commit and the
  /// task's own record of it), it succeeded: record that, with the unit's figures; nothing exports it again.
  /// Otherwise record it as failed: its unit stays in progress and the next run exports it again.
  Status FailInterruptedTasks(const PipelineSpec& spec) {
    std::vector<std::pair<std::string, TaskRecord>> interrupted;
    SLUICE_TRY(store_.ScanMeta(kTaskNs, TaskKeyPrefix(spec.project_id, spec.name),
                               [&](std::string_view key, std::string_view v) {
                                 auto t = ParseTaskRecord(v);
                                 if (t.ok() && t->state == TaskState::kRunning) {
                                   interrupted.emplace_back(std::string(key), std::move(t).value());
                                 }
                                 return true;
                               }));
    for (auto& [key, t] : interrupted) {
      // With shared leases another node may be running this task right now: only a unit nobody holds was
      // interrupted.
      auto free = runner_->leases().TryAcquire(ExportUnitName(spec, t.partition), runner_->node_id());
      if (!free.ok()) continue;
      SLUICE_ASSIGN_OR_RETURN(std::optional<std::string> saved,
                              store_.GetMeta(kUnitNs, UnitKey(spec.project_id, spec.name, t.partition)));
      std::optional<UnitState> unit;
      if (saved) {
        if (auto u = ParseUnitState(*saved); u.ok()) unit = std::move(u).value();
      }
      if (unit && !unit->in_progress && unit->published_generation == t.generation) {
        t.state = TaskState::kSucceeded;
        t.records = unit->records;
        t.bytes = unit->bytes;
        t.message.clear();
        if (!unit->sync_times.empty()) t.finished_ms = unit->sync_times.back();
      } else {
        t.state = TaskState::kFailed;
        t.message = "interrupted: the server stopped before the task finished; the partition is exported again";
      }
      SLUICE_TRY(store_.PutMeta(kTaskNs, key, TaskRecordToJson(t)));
    }
    return OkStatus();
  }

  // ---- lifecycle ---------------------------------------------------------------------------------------------

  void Start() {
    if (stopping_) return;
    runner_->Start();
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      for (auto& [k, e] : entries_) e->interrupt = true;
    }
    wake_.notify_all();
    runner_->Stop();
  }

  Status RunDueNow() { return runner_->RunDueNow(); }

  /// jobs::Runner::Source: picks up pipelines created, edited, paused, resumed or canceled through another
  /// node (they share the store). A pipeline running here keeps its record, except that a pause or cancel
  /// stored by another node interrupts it.
  void Reload() override {
    uint64_t writes_before = 0;
    {
      std::lock_guard lock(mu_);
      writes_before = local_writes_;
    }
    auto stored = ScanRecords();
    if (!stored.ok()) {
      spdlog::warn("pipelines: reloading from the store failed (retried next round): {}",
                   stored.error().message);
      return;
    }
    std::lock_guard lock(mu_);
    // This node saved a record while the scan ran: the scan may predate it; the next round reloads.
    if (local_writes_ != writes_before) return;
    MergeStoredLocked(std::move(stored).value());
  }

  /// Under the records lease (no node writes a record meanwhile): this node's view becomes the stored one, so
  /// that limits, names and shared directories are checked against every node's pipelines.
  Status RefreshUnderRecordsLock() {
    SLUICE_ASSIGN_OR_RETURN(auto stored, ScanRecords());
    std::lock_guard lock(mu_);
    MergeStoredLocked(std::move(stored));
    return OkStatus();
  }

  Result<std::map<std::string, PipelineRecord>> ScanRecords() {
    std::map<std::string, PipelineRecord> stored;
    SLUICE_TRY(store_.ScanMeta(kPipelineNs, "", [&](std::string_view key, std::string_view value) {
      if (auto r = ParsePipelineRecord(value); r.ok()) stored.emplace(std::string(key), std::move(r).value());
      return true;
    }));
    return stored;
  }

  void MergeStoredLocked(std::map<std::string, PipelineRecord> stored) {
    for (auto& [key, record] : stored) {
      const std::string k = PipelineKey(record.info.spec.project_id, record.info.spec.name);
      auto it = entries_.find(k);
      if (it == entries_.end()) {
        auto e = std::make_shared<Entry>();
        e->record = std::move(record);
        entries_[k] = std::move(e);
        continue;
      }
      Entry& e = *it->second;
      if (e.running) {
        // The run keeps the rest of its record (it saves its outcome onto the stored one: SaveRunOutcome),
        // but limits are checked against the current spec, and a pause or cancel stops it.
        if (SpecText(e.record.info.spec) != SpecText(record.info.spec)) {
          e.record.info.spec = record.info.spec;
          e.destination.reset();
        }
        if (e.record.info.status == PipelineStatus::kActive && record.info.status != PipelineStatus::kActive &&
            record.info.status != PipelineStatus::kFinished) {
          e.record.info.status = record.info.status;
          e.record.info.failure_message = record.info.failure_message;
          e.interrupt = true;
        }
        continue;
      }
      if (PipelineRecordToJson(e.record) == PipelineRecordToJson(record)) continue;
      e.record = std::move(record);
      e.destination.reset();
    }
    for (auto it = entries_.begin(); it != entries_.end();) {
      const PipelineSpec& spec = it->second->record.info.spec;
      if (!it->second->running && !stored.contains(PipelineKey(spec.project_id, spec.name))) {
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // ---- API ---------------------------------------------------------------------------------------------------

  Result<std::vector<std::string>> Create(PipelineSpec spec) {
    SLUICE_ASSIGN_OR_RETURN(std::optional<store::Project> project, store_.GetProject(spec.project_id));
    if (!project) return NotFound(fmt::format("project {} does not exist", spec.project_id));
    SLUICE_TRY(ValidateSpec(spec, /*creating=*/true));
    if (!spec.name.empty() && !ValidName(spec.name)) {
      return InvalidArgument("name may contain only letters, digits, '-', '_' and '.', at most 64 characters");
    }
    {
      std::lock_guard lock(mu_);
      SLUICE_TRY(CheckLimits(spec, /*ignore_name=*/""));
    }
    // The destination check talks to AWS and can take seconds: never under a lock.
    SLUICE_TRY(o_.destinations->Check(spec.destination, ExternalId(*project), TenantOf(*project)));

    // Again against every node's pipelines, under the records lease: another node's create may have raced us.
    SLUICE_ASSIGN_OR_RETURN(jobs::ScopedLease records, LockRecords());
    SLUICE_TRY(RefreshUnderRecordsLock());
    std::lock_guard lock(mu_);
    SLUICE_TRY(CheckLimits(spec, ""));
    if (spec.name.empty()) {
      std::string base = fmt::format("{}{}-{}-{}", spec.trial ? "trial-" : "", ToString(spec.data_source),
                                     ToString(spec.frequency), spec.type_param.empty() ? "s3" : spec.type_param);
      spec.name = base;
      for (int i = 2; entries_.contains(PipelineKey(spec.project_id, spec.name)); ++i) {
        spec.name = fmt::format("{}-{}", base, i);
      }
    } else if (entries_.contains(PipelineKey(spec.project_id, spec.name))) {
      return Error(ErrorCode::kConflict, fmt::format("a pipeline named {} already exists", spec.name));
    }
    spec.created_ms = NowMs();
    auto e = std::make_shared<Entry>();
    e->record.info.spec = spec;
    e->record.info.status = PipelineStatus::kActive;
    e->record.info.dispatcher = spec.data_source == DataSource::kEvents ? "backfill" : "recurring";
    e->record.next_run_ms = 0;  // backfill starts now
    SLUICE_TRY(WriteRecordLocked(*records, e->record));
    entries_[PipelineKey(spec.project_id, spec.name)] = e;
    spdlog::info("pipeline {} created for project {}: {} {} from {} to {} -> {}", spec.name, spec.project_id,
                 ToString(spec.data_source), ToString(spec.frequency), spec.from_date,
                 spec.to_date.empty() ? "(recurring)" : spec.to_date, DescribeDestination(spec.destination));
    wake_.notify_all();
    return std::vector<std::string>{spec.name};
  }

  Status Edit(uint32_t project, std::string_view name, const std::function<Status(PipelineSpec&)>& change) {
    // First against this node's view: the checks, then the destination check (slow: outside every lock).
    PipelineSpec current;
    {
      std::lock_guard lock(mu_);
      SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<Entry> e, FindLocked(project, name));
      if (e->record.info.status == PipelineStatus::kCanceled) return CanceledError(name);
      current = e->record.info.spec;
    }
    SLUICE_ASSIGN_OR_RETURN(PipelineSpec updated, EditedSpec(current, change));
    {
      std::lock_guard lock(mu_);
      SLUICE_TRY(CheckLimits(updated, updated.name));
    }
    // Any change of where or as whom Sluice writes is checked as at create: a new Azure service principal or
    // secret, or a GCS key the bucket's service agent may not use, would otherwise fail only at the next
    // export.
    if (DestinationChanged(updated.destination, current.destination)) {
      SLUICE_ASSIGN_OR_RETURN(std::optional<store::Project> p, store_.GetProject(project));
      if (!p) return NotFound(fmt::format("project {} does not exist", project));
      SLUICE_TRY(o_.destinations->Check(updated.destination, ExternalId(*p), TenantOf(*p)));
    }

    // Then onto the stored record, under the records lease: an edit through another node since this node's
    // view (of another field, say) is kept, and the limits are checked against every node's pipelines.
    SLUICE_ASSIGN_OR_RETURN(jobs::ScopedLease records, LockRecords());
    SLUICE_TRY(RefreshUnderRecordsLock());
    SLUICE_ASSIGN_OR_RETURN(std::optional<PipelineRecord> stored, ReadRecord(project, name));
    if (!stored) return NotFound(fmt::format("no pipeline named {} in project {}", name, project));
    if (stored->info.status == PipelineStatus::kCanceled) return CanceledError(name);
    const PipelineSpec before = stored->info.spec;
    if (SpecText(before) != SpecText(current)) {
      SLUICE_ASSIGN_OR_RETURN(PipelineSpec again, EditedSpec(before, change));
      if (DestinationChanged(again.destination, updated.destination)) {
        return Error(
            ErrorCode::kConflict,
            fmt::format("pipeline {} was edited through another request while this edit's destination "
                        "was being checked; send the edit again",
                        name));
      }
      updated = std::move(again);
    }
    std::lock_guard lock(mu_);
    SLUICE_TRY(CheckLimits(updated, updated.name));
    PipelineRecord record = std::move(stored).value();
    record.info.spec = updated;
    PipelineInfo& info = record.info;
    if (info.status == PipelineStatus::kFinished &&
        (updated.recurring() || updated.to_date > before.to_date)) {
      // A later to_date (or none) reopens a finished pipeline: its next run exports the added days (and late
      // data of the earlier ones), and it finishes again once the new range is closed and exported.
      info.status = PipelineStatus::kActive;
      record.next_run_ms = 0;
      spdlog::info("pipeline {} of project {} is active again: its date range now ends {}", updated.name,
                   updated.project_id, updated.recurring() ? "never (recurring)" : updated.to_date);
    }
    SLUICE_TRY(WriteRecordLocked(*records, record));
    AdoptLocked(record);
    wake_.notify_all();
    return OkStatus();
  }

  Status SetStatus(uint32_t project, std::string_view name, PipelineStatus to) {
    SLUICE_ASSIGN_OR_RETURN(jobs::ScopedLease records, LockRecords());
    SLUICE_ASSIGN_OR_RETURN(std::optional<PipelineRecord> stored, ReadRecord(project, name));
    if (!stored) return NotFound(fmt::format("no pipeline named {} in project {}", name, project));
    PipelineRecord record = std::move(stored).value();
    PipelineInfo& info = record.info;
    if (info.status == PipelineStatus::kCanceled && to != PipelineStatus::kCanceled) {
      return Error(ErrorCode::kConflict, fmt::format("pipeline {} is canceled; create a new one", name));
    }
    if (to == PipelineStatus::kActive) {
      if (info.status == PipelineStatus::kFinished) {
        return Error(ErrorCode::kConflict, FinishedHint(name, info.spec));
      }
      info.failure_message.clear();
      record.next_run_ms = 0;  // run now: retry what failed, catch up what was missed while paused
    }
    info.status = to;
    std::lock_guard lock(mu_);
    SLUICE_TRY(WriteRecordLocked(*records, record));
    // A run here stops at its next batch (its unit resumes later); a run on another node sees the stored
    // status when it claims its next unit, or at its next reload.
    if (to != PipelineStatus::kActive)
      AdoptLocked(record)->interrupt = true;
    else
      AdoptLocked(record);
    spdlog::info("pipeline {} of project {} is now {}", name, project, ToString(to));
    wake_.notify_all();
    return OkStatus();
  }

  Status SyncNow(uint32_t project, std::string_view name) {
    SLUICE_ASSIGN_OR_RETURN(jobs::ScopedLease records, LockRecords());
    SLUICE_ASSIGN_OR_RETURN(std::optional<PipelineRecord> stored, ReadRecord(project, name));
    if (!stored) return NotFound(fmt::format("no pipeline named {} in project {}", name, project));
    PipelineRecord record = std::move(stored).value();
    if (record.info.status == PipelineStatus::kFinished) {
      return Error(ErrorCode::kConflict, FinishedHint(name, record.info.spec));
    }
    if (record.info.status != PipelineStatus::kActive) {
      return Error(ErrorCode::kConflict,
                   fmt::format("pipeline {} is {}; resume it first", name, ToString(record.info.status)));
    }
    record.next_run_ms = 0;
    std::lock_guard lock(mu_);
    SLUICE_TRY(WriteRecordLocked(*records, record));
    AdoptLocked(record);
    wake_.notify_all();
    return OkStatus();
  }

  Result<PipelineInfo> Get(uint32_t project, std::string_view name) {
    std::lock_guard lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<Entry> e, FindLocked(project, name));
    return e->record.info;
  }

  Result<std::vector<PipelineInfo>> List(uint32_t project) {
    std::lock_guard lock(mu_);
    std::vector<PipelineInfo> out;
    for (auto& [k, e] : entries_) {
      if (e->record.info.spec.project_id == project) out.push_back(e->record.info);
    }
    return out;
  }

  Result<std::vector<TaskRecord>> Timeline(uint32_t project, std::string_view name, size_t limit) {
    {
      std::lock_guard lock(mu_);
      if (auto found = FindLocked(project, name); !found.ok()) return std::move(found).error();
    }
    std::vector<TaskRecord> tasks;
    SLUICE_TRY(store_.ScanMeta(kTaskNs, TaskKeyPrefix(project, name), [&](std::string_view, std::string_view v) {
      if (auto t = ParseTaskRecord(v); t.ok()) tasks.push_back(std::move(t).value());
      return true;
    }));
    std::reverse(tasks.begin(), tasks.end());
    if (tasks.size() > limit) tasks.resize(limit);
    return tasks;
  }

  Result<std::vector<DaySync>> DaySyncs(uint32_t project, std::string_view name) {
    PipelineInfo info;
    {
      std::lock_guard lock(mu_);
      SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<Entry> e, FindLocked(project, name));
      info = e->record.info;
    }
    std::map<std::string, DaySync> days;
    std::map<int64_t, uint64_t> covered;  // delivered event units by first hour: what they cover
    SLUICE_TRY(store_.ScanMeta(kUnitNs, UnitKeyPrefix(project, name), [&](std::string_view key, std::string_view v) {
      auto u = ParseUnitState(v);
      if (!u.ok()) return true;
      std::string label(key.substr(key.rfind('/') + 1));
      auto add = [&](const std::string& date, int64_t t) {
        DaySync& d = days[date];
        d.date = date;
        if (t) d.sync_times.push_back(t);
        d.status = Worse(d.status, u->last_state, d.sync_times.size() > (t ? 1u : 0u));
      };
      if (label == "snapshot") {
        for (int64_t t : u->sync_times) add(FormatDate(t / (24 * kHourMs)), t);
        if (u->sync_times.empty()) add(FormatDate(NowMs() / (24 * kHourMs)), 0);
      } else {
        const std::string date = label.substr(0, 10);
        if (u->sync_times.empty()) add(date, 0);
        for (int64_t t : u->sync_times) add(date, t);
        if (auto unit = ParseUnitLabel(label); unit && u->published_generation > 0 && !u->in_progress) {
          covered[unit->first_hour] = u->covered_seq;
        }
      }
      return true;
    }));
    SLUICE_TRY(MarkUndeliveredChanges(info, covered, days));
    std::vector<DaySync> out;
    for (auto& [d, s] : days) {
      std::sort(s.sync_times.begin(), s.sync_times.end());
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  /// A delivered day whose events changed since (late events, which the pipeline's next run or a sync
  /// delivers) is "pending", not "synced": the timeline must not call a day complete that is not. Only where
  /// the pipeline will deliver them (active or paused, sync on, within the sync window).
  Status MarkUndeliveredChanges(const PipelineInfo& info, const std::map<int64_t, uint64_t>& covered,
                                std::map<std::string, DaySync>& days) {
    const PipelineSpec& spec = info.spec;
    if (covered.empty() || spec.data_source != DataSource::kEvents || !spec.sync) return OkStatus();
    if (info.status != PipelineStatus::kActive && info.status != PipelineStatus::kPaused) return OkStatus();
    const int64_t oldest_sync_hour = OldestSyncHour(NowMs(), o_.schedule);
    const int64_t first = std::max(covered.begin()->first, oldest_sync_hour);
    const int64_t last = UnitOf(spec.frequency, covered.rbegin()->first).end_hour() - 1;
    if (first > last) return OkStatus();
    SLUICE_ASSIGN_OR_RETURN(
        std::vector<store::PartitionInfo> partitions,
        store_.ListPartitions(spec.project_id, static_cast<store::Hour>(std::max<int64_t>(0, first)),
                              static_cast<store::Hour>(std::max<int64_t>(0, last))));
    for (const store::PartitionInfo& p : partitions) {
      const Unit unit = UnitOf(spec.frequency, p.hour);
      auto it = covered.find(unit.first_hour);
      if (it == covered.end() || p.change_seq <= it->second || unit.end_hour() <= oldest_sync_hour) continue;
      auto day = days.find(UnitLabel(unit).substr(0, 10));
      if (day != days.end() && day->second.status == TaskState::kSucceeded)
        day->second.status = TaskState::kPending;
    }
    return OkStatus();
  }

  // The state of a day from the states of its units: a failure or activity anywhere shows.
  static TaskState Worse(TaskState have, TaskState unit, bool have_any) {
    if (!have_any) return unit;
    auto rank = [](TaskState s) {
      switch (s) {
        case TaskState::kFailed: return 6;
        case TaskState::kTimedOut: return 5;
        case TaskState::kRunning: return 4;
        case TaskState::kRetried: return 3;
        case TaskState::kPending: return 2;
        case TaskState::kCanceled: return 1;
        case TaskState::kSucceeded: return 0;
      }
      return 0;
    };
    return rank(unit) > rank(have) ? unit : have;
  }

  int64_t NowMs() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(o_.clock->Now().time_since_epoch()).count();
  }

  static std::string ExternalId(const store::Project& p) { return storage_access::EffectiveExternalId(p); }
  static storage_access::Tenant TenantOf(const store::Project& p) {
    return {.project_id = p.id, .gcs_buckets = p.gcs_buckets};
  }

  Result<std::shared_ptr<Entry>> FindLocked(uint32_t project, std::string_view name) {
    auto it = entries_.find(PipelineKey(project, name));
    if (it == entries_.end()) return NotFound(fmt::format("no pipeline named {} in project {}", name, project));
    return it->second;
  }

  // ---- pipeline records, shared by every node ------------------------------------------------------------
  // Every write of a pipeline record (create, edit, pause, resume, cancel, sync, and a run's own progress) is
  // a read-modify-write of the stored record under one lease that every node sharing the store takes, and is
  // written fenced by it (jobs::PutMetaUnderLease). A node whose view is a moment old can thus neither
  // overwrite another node's change (a cancel, an edit of another field) nor check a name, a limit or a
  // shared directory against an old list. Writes are rare and short (a read and a write): one lease serves all.

  static constexpr std::string_view kRecordsLease = "pipelines.records";

  /// Waits for the records lease (held for a few store round trips by each writer) up to 15 s.
  Result<jobs::ScopedLease> LockRecords() {
    return jobs::AcquireWithin(
        runner_->leases(), kRecordsLease, runner_->node_id(), std::chrono::seconds(15),
        "locking the pipeline records",
        "the pipeline records are busy (other requests or nodes are changing them); retry");
  }

  Result<std::optional<PipelineRecord>> ReadRecord(uint32_t project, std::string_view name) {
    SLUICE_ASSIGN_OR_RETURN(std::optional<std::string> text,
                            store_.GetMeta(kPipelineNs, PipelineKey(project, name)));
    if (!text) return std::optional<PipelineRecord>();
    SLUICE_ASSIGN_OR_RETURN(PipelineRecord record, ParsePipelineRecord(*text));
    return std::optional<PipelineRecord>(std::move(record));
  }

  /// Under the records lease and mu_.
  Status WriteRecordLocked(const jobs::UnitLease& records, const PipelineRecord& record) {
    ++local_writes_;
    const PipelineSpec& s = record.info.spec;
    return jobs::PutMetaUnderLease(store_, records, kPipelineNs, PipelineKey(s.project_id, s.name),
                                   PipelineRecordToJson(record));
  }

  /// This node's entry takes the record just written (an entry is made when this node had not seen it yet).
  std::shared_ptr<Entry> AdoptLocked(const PipelineRecord& record) {
    std::shared_ptr<Entry>& e = entries_[PipelineKey(record.info.spec.project_id, record.info.spec.name)];
    if (!e) e = std::make_shared<Entry>();
    if (SpecText(e->record.info.spec) != SpecText(record.info.spec)) e->destination.reset();
    e->record = record;
    return e;
  }

  /// `current` with an edit applied, checked: data_source, type, from_date, frequency and location are fixed.
  Result<PipelineSpec> EditedSpec(const PipelineSpec& current,
                                  const std::function<Status(PipelineSpec&)>& change) {
    PipelineSpec updated = current;
    SLUICE_TRY(change(updated));
    updated.project_id = current.project_id;
    updated.name = current.name;
    if (updated.data_source != current.data_source) return InvalidArgument("data_source cannot be changed");
    if (updated.destination.type != current.destination.type)
      return InvalidArgument("type cannot be changed");
    if (updated.from_date != current.from_date) return InvalidArgument("from_date cannot be changed");
    // Units are kept by partition label at one location: another frequency would export every partition
    // again under the other layout beside the files already there, and another location would get only what
    // changes from now on while the old one keeps its files.
    if (updated.frequency != current.frequency) {
      return InvalidArgument(
          fmt::format("frequency cannot be changed (the pipeline exports {} partitions): "
                      "cancel it and create a new one",
                      ToString(current.frequency)));
    }
    if (!SameLocation(updated.destination, current.destination)) {
      return InvalidArgument(
          "the destination's location (bucket, container, prefix, endpoint or local_path) cannot be changed: "
          "create a pipeline for the new location, which exports every day from its from_date, and cancel "
          "this one");
    }
    updated.created_ms = current.created_ms;
    updated.type_param = current.type_param;
    SLUICE_TRY(ValidateSpec(updated, /*creating=*/false));
    return updated;
  }

  Status ValidateSpec(const PipelineSpec& spec, bool creating) {
    auto from = ParseDate(spec.from_date);
    if (!from) return InvalidArgument(fmt::format("from_date '{}' must be a date YYYY-MM-DD", spec.from_date));
    const int64_t today = NowMs() / (24 * kHourMs);
    if (creating && *from < today - o_.max_from_date_age_days) {
      return InvalidArgument(fmt::format("from_date {} is more than 6 months ago (the earliest allowed is {})",
                                         spec.from_date, FormatDate(today - o_.max_from_date_age_days)));
    }
    if (creating && *from > today) {
      return InvalidArgument(fmt::format("from_date {} is in the future", spec.from_date));
    }
    if (!spec.to_date.empty()) {
      auto to = ParseDate(spec.to_date);
      if (!to) return InvalidArgument(fmt::format("to_date '{}' must be a date YYYY-MM-DD", spec.to_date));
      if (*to < *from) return InvalidArgument("to_date must not be before from_date");
    }
    const Destination& d = spec.destination;
    if (d.type == DestinationType::kS3) {
      if (d.s3_bucket.empty()) return InvalidArgument("s3_bucket is required");
      if (d.s3_region.empty()) return InvalidArgument("s3_region is required");
      if (d.s3_role.empty() && d.s3_credential.empty()) {
        return InvalidArgument("s3_role (the role ARN Sluice assumes) or s3_credential is required");
      }
      if (!d.encryption.kms_key_id.empty() && d.encryption.mode != objstore::Encryption::Mode::kKms) {
        return InvalidArgument("s3_kms_key_id needs s3_encryption=kms");
      }
    } else if (d.type == DestinationType::kGcs) {
      if (d.gcs_bucket.empty()) return InvalidArgument("gcs_bucket is required");
    } else if (d.type == DestinationType::kAzure) {
      if (d.azure_storage_account.empty() || d.azure_container.empty()) {
        return InvalidArgument("storage_account and container_name are required for type=azure-raw");
      }
    } else if (d.local_path.empty()) {
      return InvalidArgument("local_path is required for type=local");
    }
    if (spec.data_source == DataSource::kEvents) {
      if (auto selector = EventSelector::Create(spec.events, spec.where); !selector.ok()) {
        return std::move(selector).error();
      }
    }
    return OkStatus();
  }

  /// Mixpanel's limits, per data source: 2 recurring pipelines with different frequencies and 1 date-ranged
  /// one; no two pipelines to the same destination with overlapping dates.
  Status CheckLimits(const PipelineSpec& spec, std::string_view ignore_name) {
    SLUICE_TRY(CheckLocalPathNotShared(spec));
    int recurring = 0, ranged = 0;
    const int64_t from = *ParseDate(spec.from_date);
    const int64_t to = spec.to_date.empty() ? INT64_MAX : *ParseDate(spec.to_date);
    for (auto& [k, e] : entries_) {
      const PipelineInfo& info = e->record.info;
      const PipelineSpec& other = info.spec;
      if (other.project_id != spec.project_id || other.data_source != spec.data_source) continue;
      if (other.name == ignore_name) continue;
      if (info.status == PipelineStatus::kCanceled || info.status == PipelineStatus::kFinished) continue;
      if (spec.trial && other.trial) {
        return InvalidArgument(fmt::format("project {} already has a trial {} pipeline ({}): Mixpanel allows one "
                                           "trial pipeline per data source; cancel it or create a regular one",
                                           spec.project_id, ToString(spec.data_source), other.name));
      }
      if (other.recurring()) {
        ++recurring;
        if (spec.recurring() && other.frequency == spec.frequency) {
          return InvalidArgument(fmt::format("project {} already has a recurring {} {} pipeline ({}); recurring "
                                             "pipelines must have different frequencies",
                                             spec.project_id, ToString(spec.frequency), ToString(spec.data_source),
                                             other.name));
        }
      } else {
        ++ranged;
      }
      const int64_t ofrom = *ParseDate(other.from_date);
      const int64_t oto = other.to_date.empty() ? INT64_MAX : *ParseDate(other.to_date);
      if (SameLocation(spec.destination, other.destination) && from <= oto && ofrom <= to) {
        return InvalidArgument(fmt::format("pipeline {} already exports {} to {} for overlapping dates", other.name,
                                           ToString(spec.data_source), DescribeDestination(other.destination)));
      }
    }
    if (spec.recurring() && recurring >= 2) {
      return InvalidArgument(fmt::format("project {} already has 2 recurring {} pipelines (the limit)",
                                         spec.project_id, ToString(spec.data_source)));
    }
    if (!spec.recurring() && ranged >= 1) {
      return InvalidArgument(fmt::format("project {} already has a date-ranged {} pipeline (the limit is 1)",
                                         spec.project_id, ToString(spec.data_source)));
    }
    return OkStatus();
  }

  /// The local export root is shared by every project: a type=local pipeline may not write to a directory
  /// that is, contains or lies inside another project's pipeline directory (any status: finished and canceled
  /// pipelines' files are still there). The message names neither the other project nor its pipeline.
  Status CheckLocalPathNotShared(const PipelineSpec& spec) const {
    if (spec.destination.type != DestinationType::kLocal) return OkStatus();
    const auto mine = ConfinedLocalKey(o_.local_export_root, spec.destination.local_path);
    if (!mine) return OkStatus();  // outside the root: the destination check refuses it
    for (const auto& [k, e] : entries_) {
      const PipelineSpec& other = e->record.info.spec;
      if (other.project_id == spec.project_id || other.destination.type != DestinationType::kLocal) continue;
      const auto theirs = ConfinedLocalKey(o_.local_export_root, other.destination.local_path);
      if (!theirs) continue;
      if (mine->starts_with(*theirs) || theirs->starts_with(*mine)) {
        return InvalidArgument(
            fmt::format("local_path '{}' is used by another project's pipeline; choose another directory "
                        "under the export root",
                        spec.destination.local_path.substr(0, 200)));
      }
    }
    return OkStatus();
  }

  // ---- scheduling ----------------------------------------------------------------------------------------------

  /// jobs::Runner::Source: marks up to `limit` due pipelines running and returns their runs as jobs under the
  /// lease of the pipeline (one node runs a pipeline at a time).
  std::vector<jobs::Runner::Job> TakeDue(size_t limit) override {
    std::lock_guard lock(mu_);
    std::vector<jobs::Runner::Job> due;
    const int64_t now = NowMs();
    for (auto& [k, e] : entries_) {
      if (due.size() >= limit || stopping_) break;
      if (e->running || e->record.info.status != PipelineStatus::kActive) continue;
      if (e->record.next_run_ms > now || e->skip_until_ms > now) continue;
      e->running = true;
      e->interrupt = false;
      ++running_;
      const PipelineSpec& spec = e->record.info.spec;
      due.push_back({jobs::UnitName({"pipeline", fmt::format("p{}", spec.project_id), spec.name}),
                     [this, e](jobs::UnitLease&) { return RunPipeline(*e); },
                     [this, e](const Status& status) { FinishRun(*e, status); }});
    }
    return due;
  }

  std::string ExportUnitName(const PipelineSpec& spec, std::string_view label) const {
    return jobs::UnitName({"export", fmt::format("p{}", spec.project_id), spec.name, label});
  }

  /// One run of one pipeline: every due unit (events) or one snapshot (people, identity).
  Status RunPipeline(Entry& e) {
    // Under the pipeline's lease now, the stored record decides: another node may have run, paused or
    // canceled the pipeline since this node last reloaded it, and its work must not be done again.
    const std::string key = [&] {
      std::lock_guard lock(mu_);
      return PipelineKey(e.record.info.spec.project_id, e.record.info.spec.name);
    }();
    if (auto stored = store_.GetMeta(kPipelineNs, key); stored.ok() && stored->has_value()) {
      if (auto r = ParsePipelineRecord(**stored); r.ok()) {
        std::lock_guard lock(mu_);
        if (PipelineRecordToJson(*r) != PipelineRecordToJson(e.record)) {
          e.record = std::move(r).value();
          e.destination.reset();
          if (e.record.info.status != PipelineStatus::kActive || e.record.next_run_ms > NowMs()) {
            e.not_due = true;
            return OkStatus();
          }
        }
      }
    }
    PipelineSpec spec;
    std::shared_ptr<objstore::ObjectStore> destination;
    {
      std::lock_guard lock(mu_);
      spec = e.record.info.spec;
      destination = e.destination;
      e.record.info.last_dispatched_ms = NowMs();
      e.dispatched = true;
      e.run_spec = SpecText(spec);
      e.run_recurring = false;
      ClearRunTotalsLocked(e);
    }
    return RunPipelineUnlocked(e, spec, destination);
  }

  /// The outcome of a run (or of its skip: another node held the pipeline or one of its units), after the
  /// job runner's failure policy.
  void FinishRun(Entry& e, const Status& status) {
    std::unique_lock lock(mu_);
    const PipelineSpec spec = e.record.info.spec;
    PipelineInfo& info = e.record.info;
    const int64_t now = NowMs();
    const bool dispatched = std::exchange(e.dispatched, false);
    if (std::exchange(e.not_due, false)) {
      // Another node ran it since this node's last reload: nothing to do, nothing to save.
      e.running = false;
      --running_;
      wake_.notify_all();
      return;
    }
    if (!status.ok() && jobs::Classify(status) == jobs::Disposition::kSkipped) {
      // Another node holds the pipeline or a unit of it: not this run's failure; look again soon. The record
      // is left to the holder (unless part of this run was done: then its progress is saved below).
      e.record.next_run_ms = now + o_.lease_retry.count();
      // Not only in the record (a reload replaces it with the holder's): this node's own wait.
      e.skip_until_ms = e.record.next_run_ms;
      if (!dispatched) {
        e.running = false;
        --running_;
        wake_.notify_all();
        return;
      }
    } else if (status.ok()) {
      // A date-ranged pipeline ends once its last unit is closed and exported (late data after that is not
      // delivered, as with Mixpanel's date-ranged pipelines).
      if (spec.data_source == DataSource::kEvents && !spec.recurring() && RangeFullyClosed(spec, now, o_.schedule) &&
          info.status == PipelineStatus::kActive) {
        info.status = PipelineStatus::kFinished;
        spdlog::info("pipeline {} finished its date range", spec.name);
      }
      e.record.next_run_ms = NextSlotMs(spec.frequency, now, o_.schedule);
    } else if (jobs::Classify(status) == jobs::Disposition::kCancelled) {
      e.record.next_run_ms = 0;  // paused/canceled/stopping: whatever comes next decides
    } else if (IsTransient(status.error().code)) {
      e.record.next_run_ms = now + o_.failed_run_retry.count();
    } else if (info.status == PipelineStatus::kActive) {
      info.status = PipelineStatus::kPaused;
      info.failure_message = fmt::format("{} — {}", status.error().message, FixHint(status.error(), spec.destination));
      spdlog::error("pipeline {} of project {} paused: {}", spec.name, spec.project_id, info.failure_message);
      if (failures_) failures_->WithLabels({"permanent"}).Inc();
    }
    const PipelineRecord outcome = e.record;
    lock.unlock();
    if (auto s = SaveRunOutcome(e, outcome); !s.ok()) {
      spdlog::error("pipeline {}: cannot save its state: {}", spec.name, s.error().message);
    }
    lock.lock();
    e.running = false;
    --running_;
    wake_.notify_all();
  }

  /// A run's outcome onto the stored record, under the records lease. What other nodes (or requests) wrote
  /// while it ran wins: an edit, pause, cancel or sync. The run contributes what is its own: when it runs
  /// next, its task ids, its totals, "recurring", and — only while the stored record is still active with the
  /// spec it ran with — its pause on a permanent failure or the end of a date range.
  Status SaveRunOutcome(Entry& e, const PipelineRecord& outcome) {
    const PipelineSpec& spec = outcome.info.spec;
    SLUICE_ASSIGN_OR_RETURN(jobs::ScopedLease records, LockRecords());
    SLUICE_ASSIGN_OR_RETURN(std::optional<PipelineRecord> stored, ReadRecord(spec.project_id, spec.name));
    std::lock_guard lock(mu_);
    PipelineRecord record = stored ? *stored : outcome;
    if (stored) {
      PipelineInfo& info = record.info;
      const bool same_run = info.status == PipelineStatus::kActive && SpecText(info.spec) == e.run_spec;
      if (same_run) {
        record.next_run_ms = outcome.next_run_ms;
        if (outcome.info.status != PipelineStatus::kActive) {
          info.status = outcome.info.status;
          info.failure_message = outcome.info.failure_message;
        }
      } else if (info.status == PipelineStatus::kActive) {
        record.next_run_ms = 0;  // edited (or resumed) meanwhile: run again soon with the stored spec
      }
      record.next_task_seq = std::max(record.next_task_seq, outcome.next_task_seq);
      info.last_dispatched_ms = std::max(info.last_dispatched_ms, outcome.info.last_dispatched_ms);
      if (e.run_recurring) info.dispatcher = "recurring";
      AddRunTotalsLocked(e, info);
    }
    SLUICE_TRY(WriteRecordLocked(*records, record));
    ClearRunTotalsLocked(e);
    e.record = record;
    return OkStatus();
  }

  Status RunPipelineUnlocked(Entry& e, const PipelineSpec& spec, std::shared_ptr<objstore::ObjectStore> destination) {
    // Read before looking at partitions: every write below this sequence is visible to the scans that follow.
    const uint64_t covered_seq = store_.LastChangeSeq();
    SLUICE_ASSIGN_OR_RETURN(std::optional<store::Project> project, store_.GetProject(spec.project_id));
    if (!project) return NotFound(fmt::format("project {} no longer exists", spec.project_id));
    if (destination) {
      // The store is kept across runs, but the operator may have unbound its GCS bucket since: every run asks.
      if (Status bound = storage_access::CheckGcsBinding(ToLocation(spec.destination), project->gcs_buckets);
          !bound.ok()) {
        std::lock_guard lock(mu_);
        e.destination.reset();
        return bound;
      }
    }
    if (!destination) {
      auto opened = o_.destinations->Open(spec.destination, ExternalId(*project),
                                          fmt::format("p{}-{}", spec.project_id, spec.name), TenantOf(*project));
      if (!opened.ok()) return opened.error();
      destination = std::move(opened).value();
      std::lock_guard lock(mu_);
      e.destination = destination;
    }
    if (spec.data_source != DataSource::kEvents) {
      return ExportUnit(e, spec, *destination, "snapshot", Unit{}, nullptr, covered_seq, "snapshot");
    }
    SLUICE_ASSIGN_OR_RETURN(EventSelector selector, EventSelector::Create(spec.events, spec.where));
    const int64_t now = NowMs();
    std::optional<HourRange> hours = ClosedHours(spec, now, o_.schedule);
    if (!hours) return OkStatus();
    SLUICE_ASSIGN_OR_RETURN(
        std::vector<store::PartitionInfo> partitions,
        store_.ListPartitions(spec.project_id, static_cast<store::Hour>(std::max<int64_t>(0, hours->first)),
                              static_cast<store::Hour>(std::max<int64_t>(0, hours->last))));
    std::map<std::string, UnitProgress> progress;
    SLUICE_TRY(store_.ScanMeta(kUnitNs, UnitKeyPrefix(spec.project_id, spec.name),
                               [&](std::string_view key, std::string_view v) {
                                 if (auto u = ParseUnitState(v); u.ok()) {
                                   progress[std::string(key.substr(key.rfind('/') + 1))] =
                                       UnitProgress{u->published_generation > 0, u->in_progress, u->covered_seq};
                                 }
                                 return true;
                               }));
    std::vector<Unit> due = PlanUnits(spec, *hours, partitions, progress, now, o_.schedule);
    if (due.empty()) {
      MarkRecurring(e, *hours);
      return OkStatus();
    }
    // The first run of a pipeline is its backfill; later runs deliver the window just closed and late data.
    const bool backfill = progress.empty();
    spdlog::info("pipeline {}: exporting {} unit(s) from {} to {}", spec.name, due.size(), UnitLabel(due.front()),
                 UnitLabel(due.back()));

    // Bounded parallelism: workers take the next unit until done, interrupted or a unit fails for good.
    std::atomic<size_t> next{0};
    std::mutex err_mu;
    Status first_error;
    Status skipped;  // a unit another node holds: the others go on, the run is retried soon
    auto worker = [&] {
      ScopedThreadName role("sl-export");  // this run's partitions, on the pool's threads and this one
      for (;;) {
        {
          std::lock_guard g(err_mu);
          if (!first_error.ok()) return;
        }
        if (e.interrupt) {
          std::lock_guard g(err_mu);
          if (first_error.ok()) first_error = Error(ErrorCode::kCancelled, "run interrupted");
          return;
        }
        const size_t i = next.fetch_add(1);
        if (i >= due.size()) return;
        const Unit& u = due[i];
        const std::string label = UnitLabel(u);
        const auto seen = progress.find(label);  // read-only: the map is shared by the workers
        const bool late = seen != progress.end() && seen->second.exported;
        Status s = ExportUnit(e, spec, *destination, label, u, &selector, covered_seq,
                              backfill ? "backfill" : late ? "sync" : "scheduled");
        if (!s.ok() && jobs::Classify(s) == jobs::Disposition::kSkipped) {
          std::lock_guard g(err_mu);
          if (skipped.ok()) skipped = s;
          continue;
        }
        if (!s.ok()) {
          std::lock_guard g(err_mu);
          if (first_error.ok()) first_error = s;
          return;
        }
      }
    };
    const int threads = std::clamp<int>(o_.unit_parallelism, 1, static_cast<int>(due.size()));
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    if (!first_error.ok()) return first_error;
    if (!skipped.ok()) return skipped;
    MarkRecurring(e, *hours);
    return OkStatus();
  }

  void MarkRecurring(Entry& e, const HourRange& hours) {
    std::lock_guard lock(mu_);
    e.record.info.dispatcher = "recurring";
    e.run_recurring = true;
    e.exported_until_ms = std::max(e.exported_until_ms, (hours.last + 1) * kHourMs);
  }

  /// Exports one unit under its lease (held by another node: a kLeaseHeld error, nothing done).
  Status ExportUnit(Entry& e, const PipelineSpec& spec, objstore::ObjectStore& destination, const std::string& label,
                    const Unit& unit, const EventSelector* selector, uint64_t covered_seq, std::string_view kind) {
    return runner_->RunLeased(ExportUnitName(spec, label), [&](jobs::UnitLease& lease) {
      return ExportUnitLeased(lease, e, spec, destination, label, unit, selector, covered_seq, kind);
    });
  }

  /// Exports one unit with retries; persists the attempt before writing and the outcome after, each after
  /// renewing the lease (a node that lost it commits nothing).
  Status ExportUnitLeased(jobs::UnitLease& lease, Entry& e, const PipelineSpec& spec, objstore::ObjectStore& destination,
                          const std::string& label, const Unit& unit, const EventSelector* selector,
                          uint64_t covered_seq, std::string_view kind) {
    SLUICE_TRY(lease.Renew());
    const std::string key = UnitKey(spec.project_id, spec.name, label);
    UnitState state;
    SLUICE_ASSIGN_OR_RETURN(std::optional<std::string> saved, store_.GetMeta(kUnitNs, key));
    if (saved) {
      SLUICE_ASSIGN_OR_RETURN(state, ParseUnitState(*saved));
    }

    // A new generation for this attempt, persisted before anything is written.
    if (state.in_progress) state.abandoned.push_back({state.attempt_generation, state.attempt_compression});
    const uint64_t generation = std::max(state.published_generation, state.attempt_generation) + 1;
    state.in_progress = true;
    state.attempt_generation = generation;
    state.attempt_compression = spec.compression;
    state.last_state = TaskState::kRunning;

    // The task is recorded before the generation is claimed, so every generation a unit used has a task in the
    // history (a crash in between leaves a task whose generation the next attempt claims again).
    TaskRecord task;
    task.partition = label;
    task.kind = std::string(kind);
    task.state = TaskState::kRunning;
    task.generation = generation;
    task.scheduled_ms = task.started_ms = NowMs();
    // Persisted before the task is: after a crash the next run must not reuse this id (it would overwrite the
    // interrupted task's record and the timeline would lose the attempt).
    SLUICE_ASSIGN_OR_RETURN(uint64_t task_seq, ClaimTaskSeq(e, spec));
    task.task_id = fmt::format("{}-{}", spec.name, task_seq);
    SaveTask(spec, task_seq, task);
    // Fenced (jobs::PutMetaUnderLease): a holder paused past its lease's takeover cannot claim it.
    Status claimed = lease.Renew();
    if (claimed.ok()) claimed = jobs::PutMetaUnderLease(store_, lease, kUnitNs, key, UnitStateToJson(state));
    if (!claimed.ok()) {
      task.state = TaskState::kFailed;
      task.message = claimed.error().message;
      task.finished_ms = NowMs();
      SaveTask(spec, task_seq, task);
      return claimed.error();
    }

    ExportJob job;
    job.project = spec.project_id;
    job.pipeline = spec.name;
    job.source = spec.data_source;
    job.unit = unit;
    job.generation = generation;
    job.change_seq = covered_seq;
    job.compression = spec.compression;
    job.selector = selector;
    job.previous_files = state.files;
    job.previous_files.insert(job.previous_files.end(), state.undeleted.begin(), state.undeleted.end());
    job.abandoned = state.abandoned;
    ExporterOptions eo = o_.exporter;
    eo.clock = o_.clock;
    // Lost() is local and cheap: a holder whose ZooKeeper session expired stops at the next batch.
    eo.cancelled = [this, &e, &lease] { return e.interrupt.load() || stopping_.load() || lease.Lost(); };

    // The job runner's retry policy: retryable errors are retried with backoff, each retry recorded.
    Result<ExportResult> result = Error(ErrorCode::kInternal, "not run");
    int attempt = 0;
    jobs::AttemptHooks hooks;
    hooks.on_retry = [&](int n, const Error& err, std::chrono::milliseconds) {
      if (failures_) failures_->WithLabels({"transient"}).Inc();
      task.state = TaskState::kRetried;
      task.message = err.message;
      SaveTask(spec, task_seq, task);
      spdlog::warn("pipeline {} {}: attempt {} failed, retrying: {}", spec.name, label, n, err.message);
    };
    hooks.sleep = [&](std::chrono::milliseconds d) { return SleepInterruptible(e, d); };
    Status attempted = runner_->Attempts(lease, [&](jobs::UnitLease&) -> Status {
      task.attempts = ++attempt;
      result = ExportPartition(store_, destination, job, eo);
      return result.ok() ? OkStatus() : Status(result.error());
    }, hooks);
    if (!attempted.ok() && (result.ok() || jobs::IsLeaseError(attempted.error()))) {
      result = attempted.error();  // the lease was lost between attempts
    } else if (!attempted.ok() && attempted.error().code == ErrorCode::kCancelled && !result.ok() &&
               result.error().code != ErrorCode::kCancelled) {
      result = Error(ErrorCode::kCancelled, "export interrupted");
    }
    task.finished_ms = NowMs();
    if (!result.ok()) {
      const Error& err = result.error();
      task.state = err.code == ErrorCode::kCancelled ? TaskState::kCanceled : TaskState::kFailed;
      task.message = err.message;
      SaveTask(spec, task_seq, task);
      state.last_state = task.state;
      // The attempt stays in progress: the next one cleans up what it may have left. A lost lease writes
      // nothing: the unit's state is its next holder's.
      if (jobs::IsLeaseError(err) || lease.Lost()) {
        spdlog::warn("pipeline {} {}: lease lost, leaving the unit to its next holder: {}", spec.name, label,
                     err.message);
      } else if (auto s = jobs::PutMetaUnderLease(store_, lease, kUnitNs, key, UnitStateToJson(state)); !s.ok()) {
        spdlog::error("pipeline {} {}: cannot save state: {}", spec.name, label, s.error().message);
      }
      if (err.code != ErrorCode::kCancelled && failures_ && IsTransient(err.code)) {
        failures_->WithLabels({"transient"}).Inc();
      }
      Error out = err;
      out.message = fmt::format("exporting {} to {}: {}", label, DescribeDestination(spec.destination), err.message);
      return out;
    }
    const Manifest& m = result->manifest;
    state.published_generation = generation;
    state.covered_seq = covered_seq;
    state.files.clear();
    for (const ManifestFile& f : m.files) state.files.push_back(f.key);
    state.records = m.record_count();
    state.bytes = m.bytes();
    state.in_progress = false;
    state.abandoned.clear();
    state.undeleted = result->undeleted;
    state.sync_times.push_back(task.finished_ms);
    if (state.sync_times.size() > kSyncTimesKept) {
      state.sync_times.erase(state.sync_times.begin(), state.sync_times.end() - kSyncTimesKept);
    }
    state.last_state = TaskState::kSucceeded;
    // The commit is fenced by the lease's token in the same atomic step as the write (jobs::PutMetaUnderLease):
    // a holder paused between its last renewal and this write (GC, SIGSTOP) is refused once another node took
    // the unit over, and the new holder's state stays.
    Status held = lease.Renew();
    const bool renewed = held.ok();
    if (renewed) held = jobs::PutMetaUnderLease(store_, lease, kUnitNs, key, UnitStateToJson(state));
    if (!held.ok()) {
      // Published files of this generation are replaced by the next holder's export of the unit (the same
      // names under its next generation; ours are listed as abandoned by its claim).
      task.state = TaskState::kFailed;
      task.message = held.error().message;
      SaveTask(spec, task_seq, task);
      Error lost = held.error();
      if (!renewed || lost.code == ErrorCode::kConflict) lost.provider_code = std::string(jobs::kLeaseLost);
      return lost;
    }
    task.state = TaskState::kSucceeded;
    task.records = m.record_count();
    task.bytes = m.bytes();
    task.message.clear();
    SaveTask(spec, task_seq, task);
    const std::string source(ToString(spec.data_source));
    if (partitions_) {
      partitions_->WithLabels({source}).Inc();
      events_->WithLabels({source}).Inc(m.record_count());
      bytes_->WithLabels({source}).Inc(m.bytes());
    }
    std::lock_guard lock(mu_);
    e.record.info.partitions_exported += 1;
    e.record.info.events_exported += m.record_count();
    e.record.info.bytes_exported += m.bytes();
    e.run_partitions += 1;
    e.run_events += m.record_count();
    e.run_bytes += m.bytes();
    if (spec.data_source == DataSource::kEvents) {
      e.exported_until_ms = std::max(e.exported_until_ms, unit.end_hour() * kHourMs);
    } else {
      e.exported_until_ms = task.finished_ms;
    }
    return OkStatus();
  }

  /// Adds what the run exported since its last save to `stored` (under mu_); the caller clears the run's
  /// totals once the record is written (ClearRunTotalsLocked).
  static void AddRunTotalsLocked(const Entry& e, PipelineInfo& stored) {
    stored.partitions_exported += e.run_partitions;
    stored.events_exported += e.run_events;
    stored.bytes_exported += e.run_bytes;
  }
  static void ClearRunTotalsLocked(Entry& e) { e.run_partitions = e.run_events = e.run_bytes = 0; }

  /// The next task id of the pipeline, claimed in the stored record before a unit's export starts. A pipeline
  /// paused or canceled through another node meanwhile is not exported further (kCancelled).
  Result<uint64_t> ClaimTaskSeq(Entry& e, const PipelineSpec& spec) {
    SLUICE_ASSIGN_OR_RETURN(jobs::ScopedLease records, LockRecords());
    SLUICE_ASSIGN_OR_RETURN(std::optional<PipelineRecord> stored, ReadRecord(spec.project_id, spec.name));
    std::lock_guard lock(mu_);
    if (!stored)
      return NotFound(fmt::format("pipeline {} of project {} no longer exists", spec.name, spec.project_id));
    if (stored->info.status != PipelineStatus::kActive) {
      e.record.info.status = stored->info.status;
      e.record.info.failure_message = stored->info.failure_message;
      e.interrupt = true;
      return Error(ErrorCode::kCancelled,
                   fmt::format("pipeline {} is {} (changed through another request or node)", spec.name,
                               ToString(stored->info.status)));
    }
    const uint64_t seq = std::max(stored->next_task_seq, e.record.next_task_seq);
    stored->next_task_seq = seq + 1;
    // The totals of the units exported so far go in with it, so a node killed mid-run loses at most the last
    // unit's from the status.
    AddRunTotalsLocked(e, stored->info);
    SLUICE_TRY(WriteRecordLocked(*records, *stored));
    ClearRunTotalsLocked(e);
    e.record.next_task_seq = seq + 1;
    return seq;
  }

  /// Sleeps unless the pipeline is interrupted or the manager stops; false when interrupted.
  bool SleepInterruptible(Entry& e, std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, d, [&] { return stopping_.load() || e.interrupt.load(); });
    return !(stopping_ || e.interrupt);
  }

  void SaveTask(const PipelineSpec& spec, uint64_t seq, const TaskRecord& task) {
    if (auto s = store_.PutMeta(kTaskNs, TaskKey(spec.project_id, spec.name, seq), TaskRecordToJson(task)); !s.ok()) {
      spdlog::error("pipeline {}: cannot save task {}: {}", spec.name, task.task_id, s.error().message);
    }
    if (seq > o_.max_tasks_kept && task.state == TaskState::kRunning) {
      (void)store_.DeleteMeta(kTaskNs, TaskKey(spec.project_id, spec.name, seq - o_.max_tasks_kept));
    }
  }

  double ActiveCount() {
    std::lock_guard lock(mu_);
    double n = 0;
    for (auto& [k, e] : entries_) n += e->record.info.status == PipelineStatus::kActive;
    return n;
  }

  double ExportLagSeconds() {
    std::lock_guard lock(mu_);
    const int64_t now = NowMs();
    double lag = 0;
    for (auto& [k, e] : entries_) {
      if (e->record.info.status != PipelineStatus::kActive || e->exported_until_ms == 0) continue;
      lag = std::max(lag, (now - e->exported_until_ms) / 1000.0);
    }
    return lag;
  }

  std::shared_ptr<Impl*> self_ = std::make_shared<Impl*>(this);
  ManagerOptions o_;
  store::Store& store_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  std::atomic<bool> stopping_{false};
  size_t running_ = 0;
  uint64_t local_writes_ = 0;  // guarded by mu_: records this node saved (Reload skips a round that raced one)
  std::unique_ptr<jobs::Runner> runner_;
  CounterFamily* partitions_ = nullptr;
  CounterFamily* events_ = nullptr;
  CounterFamily* bytes_ = nullptr;
  CounterFamily* failures_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------------

Pipelines::Pipelines(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipelines::~Pipelines() = default;

Result<std::unique_ptr<Pipelines>> Pipelines::Create(ManagerOptions options) {
  if (!options.store) return InvalidArgument("pipelines: no store");
  if (!options.destinations) return InvalidArgument("pipelines: no destination factory");
  if (!options.clock) options.clock = &SystemClock::Instance();
  auto impl = std::make_unique<Impl>(std::move(options));
  SLUICE_TRY(impl->Load());
  return std::unique_ptr<Pipelines>(new Pipelines(std::move(impl)));
}

void Pipelines::Start() { impl_->Start(); }
void Pipelines::Stop() { impl_->Stop(); }
Status Pipelines::RunDueNow() { return impl_->RunDueNow(); }
Result<std::vector<std::string>> Pipelines::Create(PipelineSpec spec) { return impl_->Create(std::move(spec)); }
Status Pipelines::Edit(uint32_t project, std::string_view name,
                       const std::function<Status(PipelineSpec&)>& change) {
  return impl_->Edit(project, name, change);
}
Status Pipelines::Pause(uint32_t project, std::string_view name) {
  return impl_->SetStatus(project, name, PipelineStatus::kPaused);
}
Status Pipelines::Resume(uint32_t project, std::string_view name) {
  return impl_->SetStatus(project, name, PipelineStatus::kActive);
}
Status Pipelines::Cancel(uint32_t project, std::string_view name) {
  return impl_->SetStatus(project, name, PipelineStatus::kCanceled);
}
Status Pipelines::SyncNow(uint32_t project, std::string_view name) { return impl_->SyncNow(project, name); }
Result<PipelineInfo> Pipelines::Get(uint32_t project, std::string_view name) { return impl_->Get(project, name); }
Result<std::vector<PipelineInfo>> Pipelines::List(uint32_t project) { return impl_->List(project); }
Result<std::vector<TaskRecord>> Pipelines::Timeline(uint32_t project, std::string_view name, size_t limit) {
  return impl_->Timeline(project, name, limit);
}
Result<std::vector<DaySync>> Pipelines::DaySyncs(uint32_t project, std::string_view name) {
  return impl_->DaySyncs(project, name);
}

}  // namespace sluice::pipeline
