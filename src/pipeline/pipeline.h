// JSON Pipelines (SPEC §4): the definitions, run history and the manager that owns them. This header is the
// pipeline module's public face for the API handlers (api/pipeline_handlers.cc), the CLI and `serve`.
//
//   PipelineSpec spec = …;                      // parsed and validated from the create form by the API layer
//   Result<std::vector<std::string>> names = manager.Create(spec);
//   manager.Pause(project, names->front());
//
// Errors the manager returns carry a message written for the API caller ({"error": message}):
//   kInvalidArgument    a parameter is wrong or a Mixpanel limit is hit (400)
//   kNotFound           no such pipeline in that project (404)
//   kConflict           the name is taken, or the pipeline's state forbids the action (e.g. resume a
//                       canceled pipeline) (400)
//   kAccessDenied       the destination check failed; the message is its report with what to fix (400)
//   others              kUnavailable/kInternal… (503/500)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/secret.h"
#include "objstore/object_store.h"

namespace sluice::pipeline {

enum class DataSource { kEvents, kPeople, kIdentity };
enum class Frequency { kHourly, kDaily };
enum class Compression { kGzip, kZstd, kNone };
enum class DestinationType { kS3, kGcs, kLocal, kAzure };

std::string_view ToString(DataSource v);         // "events" | "people" | "identity"
std::string_view ToString(Frequency v);          // "hourly" | "daily"
std::string_view ToString(Compression v);        // "gzip" | "zstd" | "none"
std::string_view ToString(DestinationType v);    // "s3" | "gcs" | "local" | "azure"
std::optional<DataSource> ParseDataSource(std::string_view s);
std::optional<Frequency> ParseFrequency(std::string_view s);
std::optional<Compression> ParseCompression(std::string_view s);
/// "s3" and "s3-raw" → kS3, "gcs" and "gcs-raw" → kGcs, "azure-raw" and "azure-blob" → kAzure, "local" → kLocal.
std::optional<DestinationType> ParseDestinationType(std::string_view s);

/// Where a pipeline writes.
struct Destination {
  DestinationType type = DestinationType::kS3;
  std::string s3_bucket;
  std::string s3_region;
  std::string s3_role;      // role ARN Sluice assumes
  std::string s3_prefix;    // may be empty
  std::string s3_endpoint;  // Sluice extension: S3-compatible endpoint ("" = AWS)
  // Sluice extension: a named static credential granted to the project, instead of s3_role (then empty).
  std::string s3_credential;
  objstore::Encryption encryption;  // s3_encryption none|aes|kms, s3_kms_key_id
  std::string local_path;   // kLocal: a directory on the server's disk
  // kGcs (Mixpanel's gcs_* parameters, plus Sluice's gcs_endpoint and gcs_kms_key_name extensions).
  std::string gcs_bucket;
  std::string gcs_prefix;        // may be empty
  std::string gcs_region;        // the bucket's location as given (informational)
  std::string gcs_endpoint;      // "" = STORAGE_EMULATOR_HOST or storage.googleapis.com
  std::string gcs_kms_key_name;  // CMEK: projects/P/locations/L/keyRings/R/cryptoKeys/K
  // kAzure (Mixpanel's storage_account, container_name, prefix, client_id, client_secret, tenant_id, plus
  // Sluice's azure_endpoint extension). The client secret is kept in the pipeline record (the store is the
  // server's own) and never returned by the API or logged.
  std::string azure_storage_account;
  std::string azure_container;
  std::string azure_prefix;  // may be empty
  std::string azure_client_id;
  Secret azure_client_secret;
  std::string azure_tenant_id;
  std::string azure_endpoint;  // "" = https://ACCOUNT.blob.core.windows.net; else an operator-allowed origin
};

/// The same place to write: type and bucket/container, prefix and endpoint (or local_path). Credentials,
/// region and encryption are how Sluice writes there, not where.
bool SameLocation(const Destination& a, const Destination& b);

/// A pipeline as created (and edited). Dates are "YYYY-MM-DD" in UTC.
struct PipelineSpec {
  uint32_t project_id = 0;
  /// Unique within the project; the manager assigns it at Create when empty.
  std::string name;
  std::string type_param = "s3";  // the `type` as given ("s3", "s3-raw", "local")
  bool trial = false;
  DataSource data_source = DataSource::kEvents;
  std::string from_date;
  std::string to_date;  // empty = recurring
  Frequency frequency = Frequency::kDaily;
  /// Deliver late data into already exported partitions (Sluice default: on).
  bool sync = true;
  std::vector<std::string> events;  // whitelist; empty = all
  std::string where;                // segmentation expression; empty = all
  Compression compression = Compression::kGzip;
  Destination destination;
  int64_t created_ms = 0;

  bool recurring() const { return to_date.empty(); }
};

/// Lifecycle of a pipeline.
enum class PipelineStatus { kActive, kPaused, kCanceled, kFinished };
std::string_view ToString(PipelineStatus v);  // "active" | "paused" | "canceled" | "finished"

/// Task states as Mixpanel reports them.
enum class TaskState { kPending, kRunning, kRetried, kFailed, kCanceled, kTimedOut, kSucceeded };
std::string_view ToString(TaskState v);  // "pending" "running" "retried" "failed" "canceled" "timed_out" "succeeded"

/// What the API reports about one pipeline (jobs, status).
struct PipelineInfo {
  PipelineSpec spec;
  PipelineStatus status = PipelineStatus::kActive;
  /// "backfill" while partitions before the recurring window are being exported, then "recurring" (Mixpanel's
  /// `Dispatcher` field).
  std::string dispatcher = "backfill";
  int64_t last_dispatched_ms = 0;  // 0 = never
  /// Set when a permanent error paused the pipeline: what failed and what to fix.
  std::string failure_message;
  uint64_t partitions_exported = 0;
  uint64_t events_exported = 0;
  uint64_t bytes_exported = 0;
};

/// One unit of work in the run history (timeline). `partition` is "YYYY-MM-DD" (daily), "YYYY-MM-DDTHH"
/// (hourly) or "snapshot" (people, identity).
struct TaskRecord {
  std::string task_id;
  std::string partition;
  std::string kind;  // "backfill" | "scheduled" | "sync" | "snapshot"
  TaskState state = TaskState::kPending;
  int attempts = 0;
  int64_t scheduled_ms = 0;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;  // compressed bytes written
  uint64_t generation = 0;
  std::string message;  // error text for failed/retried tasks
};

/// Per-day summary (Mixpanel's `day_syncs`): when each day was (re)delivered and its latest state.
struct DaySync {
  std::string date;                 // YYYY-MM-DD
  std::vector<int64_t> sync_times;  // epoch ms of each successful delivery
  TaskState status = TaskState::kPending;
};

class PipelineManager {
 public:
  virtual ~PipelineManager() = default;

  /// Checks Mixpanel's limits (from_date at most 6 months back, 2 recurring pipelines with different frequencies
  /// plus 1 date-ranged one per project, no overlapping dates to the same destination), runs the destination
  /// check (S3) or opens the directory (local), persists the pipeline and schedules its backfill. Returns the
  /// created pipeline names.
  virtual Result<std::vector<std::string>> Create(PipelineSpec spec) = 0;
  /// Edits an existing pipeline: `change` is applied to its spec as stored (data_source, type, from_date,
  /// frequency and the destination's location cannot change). A changed destination is checked again. With
  /// several nodes, `change` may be applied twice: to this node's view for the checks, then to the stored
  /// spec, so that an edit of another field through another node meanwhile is kept.
  virtual Status Edit(uint32_t project, std::string_view name,
                      const std::function<Status(PipelineSpec&)>& change) = 0;
  /// Replaces the editable fields with `updated`'s (its name and project_id select the pipeline).
  Status Edit(PipelineSpec updated) {
    const uint32_t project = updated.project_id;
    const std::string name = updated.name;
    return Edit(project, name, [&updated](PipelineSpec& spec) {
      spec = updated;
      return OkStatus();
    });
  }
  virtual Status Pause(uint32_t project, std::string_view name) = 0;
  /// Resumes a paused pipeline (also one paused by a failure: clears failure_message and retries).
  virtual Status Resume(uint32_t project, std::string_view name) = 0;
  /// Stops the pipeline for good; exported data stays in the bucket.
  virtual Status Cancel(uint32_t project, std::string_view name) = 0;
  /// Runs the pipeline's pending work now (backfill, late data, a snapshot) instead of at the next slot.
  virtual Status SyncNow(uint32_t project, std::string_view name) = 0;

  virtual Result<PipelineInfo> Get(uint32_t project, std::string_view name) = 0;
  /// Every pipeline of the project, canceled ones included, by name.
  virtual Result<std::vector<PipelineInfo>> List(uint32_t project) = 0;
  /// Task history, newest first, at most `limit` entries.
  virtual Result<std::vector<TaskRecord>> Timeline(uint32_t project, std::string_view name, size_t limit = 1000) = 0;
  /// Per-day sync summary, ascending by date.
  virtual Result<std::vector<DaySync>> DaySyncs(uint32_t project, std::string_view name) = 0;
};

}  // namespace sluice::pipeline
