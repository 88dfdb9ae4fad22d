// Cloud Import connectors (SPEC §6): the connector definition as the API creates it, its run history and
// per-file checkpoints, with their JSON forms (API answers and the records kept in the store's metadata).
//
//   ValidationIssue issue;
//   Result<ConnectorSpec> spec = ParseConnectorSpec(body, project_id, &issue);   // POST …/connectors body
//   if (!spec.ok()) answer 400 {"error": issue.message, "code": issue.code, "field": issue.field}
//
// Persistence (store meta namespaces):
//   "connector"       key "<project>/<connector id>"           ConnectorRecord JSON (spec + state)
//   "connector_run"   key "<connector id>/<run seq, 12 digits>" RunRecord JSON
//   "connector_ckpt"  key "<connector id>/<object key>"         FileCheckpoint JSON
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/secret.h"

namespace sluice::cloudimport {

enum class DataFormat { kMixpanelEvent, kMixpanelPeople, kRemapEvent, kRemapPeople };
enum class Compression { kNone, kGzip };
/// Run states as Mixpanel reports them.
enum class RunStatus { kQueued, kRunning, kSuccess, kFailed, kPaused };

std::string_view ToString(
    DataFormat v);  // "mixpanel_event" | "mixpanel_people" | "remap_event" | "remap_people"
std::string_view ToString(Compression v);  // "none" | "gzip"
std::string_view ToString(RunStatus v);    // "queued" "running" "success" "failed" "paused"
std::optional<DataFormat> ParseDataFormat(std::string_view s);
std::optional<Compression> ParseCompression(std::string_view s);
std::optional<RunStatus> ParseRunStatus(std::string_view s);
inline bool IsPeopleFormat(DataFormat f) {
  return f == DataFormat::kMixpanelPeople || f == DataFormat::kRemapPeople;
}
inline bool IsRemapFormat(DataFormat f) {
  return f == DataFormat::kRemapEvent || f == DataFormat::kRemapPeople;
}

/// Default minutes between discovery runs (Mixpanel's hourly import).
inline constexpr int kDefaultFrequencyMinutes = 60;
/// Files larger than this are refused (SPEC §6: "up to 2 GB each").
inline constexpr uint64_t kMaxFileBytes = 2ull * 1000 * 1000 * 1000;

/// A connector as created through the API.
struct ConnectorSpec {
  std::string id;  // assigned at create
  uint32_t project_id = 0;
  std::string connector_type = "s3Import";
  std::string label;
  std::string s3_bucket;
  std::string s3_prefix;  // a raw key prefix ("" = whole bucket)
  std::string s3_region;
  std::string s3_role;
  /// Sluice extension: S3-compatible endpoint ("" = AWS); never used as the STS endpoint.
  std::string s3_endpoint;
  /// Sluice extension: a named static credential the operator granted the project (HMAC keys of MinIO, Ceph,
  /// GCS's XML API), used instead of s3_role (then empty); STS is not called.
  std::string s3_credential;
  /// connector_type gcsImport: the bucket Sluice's service account may read (Storage Object Viewer).
  std::string gcs_bucket;
  std::string gcs_prefix;  // a raw key prefix ("" = whole bucket)
  /// Sluice extension: GCS endpoint the operator allowed ("" = STORAGE_EMULATOR_HOST or Google).
  std::string gcs_endpoint;
  /// connector_type azureImport (the Azure pipeline's names): the container `azure_container` (container_name) of
  /// `azure_storage_account`, read as the customer's service principal (tenant_id, client_id, client_secret) with
  /// Storage Blob Data Reader. The secret is kept in the stored record and never in an API answer.
  std::string azure_storage_account;
  std::string azure_container;
  std::string azure_prefix;  // `prefix`: a raw blob-name prefix ("" = whole container)
  std::string azure_tenant_id;
  std::string azure_client_id;
  Secret azure_client_secret;
  /// Sluice extension: blob endpoint origin the operator allowed (serve --allow-azure-endpoint; "" = Azure).
  std::string azure_endpoint;
  DataFormat data_format = DataFormat::kMixpanelEvent;
  Compression compression = Compression::kNone;
  /// Remap formats: Mixpanel field → source field, e.g. {"event_name","action"}, {"time","ts"}. In the order
  /// given.
  std::vector<std::pair<std::string, std::string>> property_remap;
  int frequency_minutes = kDefaultFrequencyMinutes;
  int64_t created_ms = 0;
  /// Who created it, as Mixpanel's `created_by` (Sluice has no users: "admin" for the admin token,
  /// "api_secret" for the project's API secret; "" for connectors created before Sluice recorded it → null).
  std::string created_by;

  bool is_gcs() const { return connector_type == "gcsImport"; }
  bool is_azure() const { return connector_type == "azureImport"; }
  /// The bucket (Azure: container) and the raw key prefix discovery lists, whichever the provider.
  const std::string& bucket() const { return is_azure() ? azure_container : is_gcs() ? gcs_bucket : s3_bucket; }
  const std::string& key_prefix() const { return is_azure() ? azure_prefix : is_gcs() ? gcs_prefix : s3_prefix; }

  /// The source field mapped to `target`, or nullopt.
  std::optional<std::string_view> RemapOf(std::string_view target) const;
};

/// Why a create body was refused, Mixpanel-shaped: code is "missing_required_property" or "invalid_property".
struct ValidationIssue {
  std::string code;
  std::string field;  // e.g. "connector_properties.s3_bucket"
  std::string message;
};

/// Parses and validates the create body {connector_type, label, connector_properties, category_properties}.
/// On failure returns kInvalidArgument and fills `issue`.
Result<ConnectorSpec> ParseConnectorSpec(const boost::json::value& body, uint32_t project_id,
                                         ValidationIssue* issue);

/// One discovery run.
struct RunRecord {
  uint64_t seq = 0;    // 1, 2, … per connector
  std::string run_id;  // "<connector id>-<seq>"
  RunStatus status = RunStatus::kQueued;
  double progress = 0;  // 0..1 of the bytes to import in this run
  uint64_t num_events_imported = 0;
  uint64_t num_events_processed = 0;
  uint64_t num_events_dropped = 0;
  uint64_t num_files_imported = 0;
  uint64_t num_files_failed = 0;
  uint64_t num_files_found = 0;  // objects listed that needed importing
  uint64_t size_imported = 0;    // bytes of files read (as stored, i.e. compressed)
  uint64_t size_total = 0;       // bytes of the files to import in this run
  int64_t queued_ms = 0;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  /// For failed/paused runs: what went wrong and what to fix.
  std::string failure_message;
  struct LineError {
    std::string file;
    uint64_t line = 0;  // 1-based line of the (decompressed) file; 0 = the whole file
    std::string reason;
  };
  /// The first errors of the run (bounded by kMaxRunErrors).
  std::vector<LineError> errors;
  uint64_t errors_omitted = 0;  // errors beyond the kept ones
};
inline constexpr size_t kMaxRunErrors = 100;

/// Connector lifecycle: active (runs every frequency minutes) or paused (a permanent error; resume to retry).
struct ConnectorRecord {
  ConnectorSpec spec;
  bool paused = false;
  std::string failure_message;
  int64_t next_run_ms = 0;  // when the next discovery starts (0 = now)
  uint64_t last_run_seq = 0;
  /// Consecutive failed runs on transient errors (drives the retry backoff); 0 after a success.
  int consecutive_failures = 0;
};

/// How the $insert_id of an event line without one is derived. Kept in the file's checkpoint: a file keeps
/// the scheme its first import used, so importing it again after it changed deduplicates against that import.
enum class InsertIdScheme : int {
  /// Files whose import began before the content scheme: the key's tag and the line (DerivedInsertId). A line
  /// inserted or removed gives every later line a new id.
  kLineNumber = 1,
  /// The line's content and how many identical lines came before it (InsertIdDeriver::Next).
  kContent = 2,
};

/// Progress of one object of the bucket.
struct FileCheckpoint {
  enum class State { kInProgress, kDone, kFailed };
  std::string etag;
  uint64_t size = 0;
  State state = State::kInProgress;
  /// Lines (of the decompressed file) whose events are durably stored: a resumed import skips them.
  uint64_t lines_done = 0;
  uint64_t events_imported = 0;
  uint64_t events_dropped = 0;
  std::string message;  // kFailed: why
  int64_t updated_ms = 0;
  /// How its lines without a $insert_id got one (a checkpoint stored without it: kLineNumber).
  InsertIdScheme insert_ids = InsertIdScheme::kContent;

  /// True when this checkpoint describes `etag`/`size` (the object did not change since).
  bool Matches(std::string_view other_etag, uint64_t other_size) const {
    return etag == other_etag && size == other_size;
  }
};

// ---- JSON
// ---------------------------------------------------------------------------------------------------
/// The API form of a connector, with Mixpanel's names: {connector_id, project_id, connector_type, label,
/// connector_properties, category_properties, status, failure_message, created_at (ISO 8601 UTC), created_by,
/// next_run, last_run_seq}.
boost::json::object ConnectorJson(const ConnectorRecord& record);
/// The API form of a run: {run_id, status, progress, num_events_imported, …, errors:[{file,line,reason}]}.
boost::json::object RunJson(const RunRecord& run);

/// The stored form: the API's names plus `created_ms`, the lifecycle state and (azureImport) `client_secret`,
/// which ConnectorJson leaves out. ParseRecord also reads records
/// written before the rename (`id`, `created` in ms).
std::string SerializeRecord(const ConnectorRecord& record);
Result<ConnectorRecord> ParseRecord(std::string_view json);
/// Milliseconds since the epoch as "2026-01-31T12:00:00.123Z".
std::string IsoTimestamp(int64_t ms);
std::string SerializeRun(const RunRecord& run);
Result<RunRecord> ParseRun(std::string_view json);
std::string SerializeCheckpoint(const FileCheckpoint& cp);
Result<FileCheckpoint> ParseCheckpoint(std::string_view json);

}  // namespace sluice::cloudimport
