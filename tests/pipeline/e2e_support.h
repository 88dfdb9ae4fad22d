// End-to-end harness for JSON Pipelines: the real `sluice serve` binary (tests/app/server_process.h) exporting
// to moto in auth mode (tests/support/moto_server.h), and the assertions that matter to a customer, made with
// the test's own administrator credentials:
//   * every partition has manifest.json and `complete`, and the manifest's files (checked against its sizes
//     and SHA-256s, decompressed independently with zlib/zstd) hold exactly the store's events for that
//     partition, as /api/2.0/export reads them back: same keys, each once, properties byte for byte;
//   * no data file exists that no manifest lists (leftovers of older generations or interrupted attempts).
//
//   E2eMoto moto;                                       // one per suite: moto + setup + auth mode
//   SluiceServer server(dir, moto.env());               // sets Sluice's own AWS identity, --pipeline-delay 0
//   Project p = server.CreateProject("shop");
//   std::string role = moto.CreateRoleFor(p, "full");   // trust policy: ExternalId = the project's token
//   server.Import(p, events);
//   ... POST …/pipeline/create, WaitForPartitions(…)
//   std::string diff = ComparePartition(*admin, dir, server.ReadBack(p, day));   // "" = equal
//
// Why per-project roles: Sluice presents the project's token as the ExternalId (SPEC §5) and projects get random
// tokens, while moto_setup.py's roles trust one fixed external ID. CreateRoleFor() creates, with the admin user,
// a role with exactly the same permission policy as setup's variant and a trust policy naming Sluice's user
// with sts:ExternalId = the project's token — the set-up a customer makes.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "app/server_process.h"
#include "common/result.h"
#include "objstore/object_store.h"
#include "pipeline/manifest.h"
#include "support/moto_server.h"

namespace sluice::testing::e2e {

using Params = std::vector<std::pair<std::string, std::string>>;

/// Days since the epoch (UTC) of now, and "YYYY-MM-DD" of a day number.
int64_t TodayUtc();
std::string DateOf(int64_t day);
/// Seconds since the epoch of the start of `day`.
inline int64_t DayStartSeconds(int64_t day) { return day * 86400; }

/// "a=1&b=x%20y": form encoding with AWS's UriEncode (every reserved byte escaped).
std::string FormEncode(const Params& params);

/// moto with tests/support/moto_setup.py's world, in auth mode. `error()` is non-empty when it could not start.
class E2eMoto {
 public:
  E2eMoto();
  ~E2eMoto();
  const std::string& error() const { return error_; }
  const MotoEnvironment& env() const { return *env_; }
  MotoServer& server() { return *moto_; }
  std::string Endpoint() const { return moto_->Endpoint(); }

  /// Creates (with the admin user) role `name` trusted by Sluice's user with sts:ExternalId = `external_id`
  /// and allowed exactly `actions` on the customer bucket. Returns its ARN.
  Result<std::string> CreateRole(const std::string& name, const std::string& external_id,
                                 const std::vector<std::string>& actions);
  /// The bucket seen with administrator credentials (assertions only; Sluice never gets them).
  std::shared_ptr<objstore::ObjectStore> AdminBucket();

 private:
  std::unique_ptr<MotoServer> moto_;
  std::optional<MotoEnvironment> env_;
  std::string error_;
};

/// s3:PutObject, s3:GetObject, s3:ListBucket, s3:DeleteObject — setup's "full" role.
std::vector<std::string> FullActions();

struct Project {
  uint32_t id = 0;
  std::string token;
  std::string secret;
  /// "Basic base64(secret:)"
  std::string Authorization() const;
};

/// One event as the store holds it, read back through /api/2.0/export.
struct StoredEvent {
  std::string event;
  std::string distinct_id;
  std::string insert_id;
  std::string device_id;  // "" when absent
  std::string user_id;
  int64_t time_s = 0;      // whole seconds (the export's unit)
  std::string properties;  // the stored properties object text, byte for byte
};
using EventsByInsertId = std::map<std::string, StoredEvent>;

/// `sluice serve` with Sluice's own AWS identity (the assume-only user) in its environment and the pipeline
/// scheduler's delay at 0 minutes, so closed days export at once.
class SluiceServer {
 public:
  /// `operator_endpoint` (e.g. moto's URL) becomes the server's AWS_ENDPOINT_URL: the operator's S3/STS endpoint,
  /// which tenants may then name as s3_endpoint (issue 9: STS never goes to a tenant-chosen host).
  SluiceServer(std::filesystem::path data_dir, const MotoEnvironment* aws, std::vector<std::string> extra_args = {},
               std::string operator_endpoint = {});
  bool Start(std::string* error);
  void Kill() { process_->Kill(); }
  int Terminate() { return process_->Terminate(); }
  ServerProcess& process() { return *process_; }
  const std::filesystem::path& data_dir() const { return dir_; }

  Result<Project> CreateProject(const std::string& name);
  /// POST /api/app/projects/<id> with `body` (JSON) as the admin: external_id, gcs_buckets.
  ServerProcess::Reply UpdateProject(uint32_t id, const std::string& body);
  /// Binds exactly `buckets` (GCS) to the project (docs/gcs.md#binding); fails unless answered 200.
  Status BindGcsBuckets(const Project& p, const std::vector<std::string>& buckets);
  /// POST /import?strict=1 in batches of at most 1000 events; every record must be accepted.
  Status Import(const Project& p, const std::vector<std::string>& events);
  /// POST /engage (JSON) of profile updates; every update must be accepted.
  Status Engage(const std::vector<std::string>& updates);

  /// POST …/nessie/pipeline/<action> with a form body, Basic auth with the project's secret.
  ServerProcess::Reply PipelinePost(const Project& p, const std::string& action, const Params& params);
  /// GET …/nessie/pipeline/<action>?<params>.
  ServerProcess::Reply PipelineGet(const Project& p, const std::string& action, const Params& params);

  /// Every stored event of `day` (/api/2.0/export). kInternal when an insert_id occurs twice.
  Result<EventsByInsertId> ReadBack(const Project& p, int64_t day);
  /// Every stored event of the hour [day*24+hour].
  Result<EventsByInsertId> ReadBackHour(const Project& p, int64_t day, int hour);
  /// distinct_id → parsed $properties of every profile (/api/2.0/engage, all pages).
  Result<std::map<std::string, std::string>> ReadProfiles(const Project& p);

 private:
  std::filesystem::path dir_;
  std::unique_ptr<ServerProcess> process_;
};

/// A partition directory as the bucket holds it.
struct PartitionContent {
  pipeline::Manifest manifest;
  bool complete = false;
  /// Decompressed lines of every listed file, in manifest order.
  std::vector<std::string> lines;
};

/// Reads `dir`/manifest.json and every file it lists; checks each file's size and SHA-256 against the manifest,
/// that it decompresses (per the manifest's compression) to `uncompressed_bytes` and `records` lines.
Result<PartitionContent> ReadPartition(objstore::ObjectStore& bucket, const std::string& dir);

/// Compares exported event records with the store's events: every key once, no extra record, fields and the
/// properties text byte-exact. Returns "" when equal, else a bounded description of the differences.
std::string CompareEvents(const std::vector<std::string>& lines, const EventsByInsertId& expected);

/// Data files (layout's IsDataFileName) under "<project>/" that no manifest in their directory lists, and
/// directories with data files but no manifest. `keys` is the whole bucket listing.
std::vector<std::string> StrayDataFiles(const std::vector<std::string>& keys, uint32_t project,
                                        objstore::ObjectStore& bucket);

/// Every key of the bucket (admin List without a prefix: moto rejects prefixes with '/' in auth mode).
Result<std::vector<std::string>> AllKeys(objstore::ObjectStore& bucket);

/// Polls `done` every `interval` until it returns true or `timeout` passes; `describe` says what was awaited.
/// Returns "" on success, else a message with `describe()`'s last answer.
std::string WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                      const std::function<std::string()>& describe,
                      std::chrono::milliseconds interval = std::chrono::milliseconds(250));

/// Waits until every partition in `labels` has a succeeded task of a generation above `min_generation`'s entry
/// (0 when absent). "" on success, else what was still missing and the latest task.
std::string WaitForSucceededPartitions(SluiceServer& server, const Project& p, const std::string& name,
                                       const std::vector<std::string>& labels,
                                       std::map<std::string, uint64_t> min_generation = {},
                                       std::chrono::milliseconds timeout = std::chrono::seconds(120));

/// The tasks of …/timeline (newest first) as (partition, kind, state, generation).
struct TimelineTask {
  std::string partition;
  std::string kind;
  std::string state;
  uint64_t generation = 0;
  int attempts = 0;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  std::string message;
};
Result<std::vector<TimelineTask>> Timeline(SluiceServer& server, const Project& p, const std::string& name);
/// The pipeline's `status` field from …/status ("active", "paused", …) and its failure_message.
Result<std::pair<std::string, std::string>> PipelineState(SluiceServer& server, const Project& p,
                                                          const std::string& name);

/// Deterministic test events of one day with unicode, escapes, big and exact numbers, nested values, and
/// device/user ids. insert ids are "<tag>-<day>-<i>" (unique per (tag, day, i)).
std::vector<std::string> MakeDayEvents(int64_t day, int count, const std::string& tag, uint64_t seed,
                                       int hour_from = 0, int hour_to = 24);

/// Runs `cmd` through the shell: its stdout and stderr together, and its exit status.
std::pair<std::string, int> RunShell(const std::string& cmd);

/// Waits for the newest run of a Cloud Import connector to finish (success, failed or paused) and returns it as
/// JSON text in `run`. "" on success, else what the history last said.
std::string WaitForConnectorRun(SluiceServer& server, uint32_t project_id, const std::string& connector_id,
                                std::string* run, std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace sluice::testing::e2e
