#include "cloudimport/connector_manager.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <tuple>

#include "cloudimport/file_importer.h"
#include "common/crypto.h"
#include "jobs/fenced_write.h"

namespace sluice::cloudimport {
namespace {

constexpr char kConnectorNs[] = "connector";
constexpr char kRunNs[] = "connector_run";
constexpr char kCheckpointNs[] = "connector_ckpt";
/// The lease every write of a connector record is made under (ConnectorManager::UpdateRecord).
constexpr char kRecordsLease[] = "connectors.records";

std::string RecordKey(uint32_t project, std::string_view id) { return fmt::format("{:010}/{}", project, id); }
std::string RunKey(std::string_view id, uint64_t seq) { return fmt::format("{}/{:012}", id, seq); }
std::string CheckpointKey(std::string_view id, std::string_view object_key) {
  return fmt::format("{}/{}", id, object_key);
}

bool IsFileContentError(const Error& e) { return e.code == ErrorCode::kInvalidArgument; }

}  // namespace

ConnectorManager::Metrics::Metrics(MetricsRegistry& r)
    : events_imported(r.Counter("sluice_import_events_total", "Cloud Import records by result", {"result"})
                          .WithLabels({"imported"})),
      events_dropped(r.Counter("sluice_import_events_total", "Cloud Import records by result", {"result"})
                         .WithLabels({"dropped"})),
      files_imported(r.Counter("sluice_import_files_total", "Cloud Import files by result", {"result"})
                         .WithLabels({"imported"})),
      files_failed(r.Counter("sluice_import_files_total", "Cloud Import files by result", {"result"})
                       .WithLabels({"failed"})),
      bytes_read(
          r.Counter("sluice_import_bytes_total", "Bytes of customer files read by Cloud Import (as stored)")
              .WithLabels({})),
      runs(r.Counter("sluice_import_runs_total", "Cloud Import discovery runs finished, by status",
                     {"status"})),
      connectors(r.Gauge("sluice_import_connectors", "Cloud Import connectors by state", {"state"})) {}

ConnectorManager::ConnectorManager(Options options)
    : options_(std::move(options)), metrics_(*options_.metrics) {
  jobs::Runner::Options ro;
  ro.leases = options_.leases;
  ro.node_id = options_.node_id;
  ro.workers = options_.max_concurrent_runs;
  ro.poll_interval = options_.poll_interval;
  runner_ = std::make_unique<jobs::Runner>(std::move(ro), job_source_);
  if (!options_.source_factory) {
    SourceContext ctx{.own_credentials = options_.own_credentials,
                      .transport = options_.transport,
                      .static_credentials =
                          std::make_shared<const storage_access::StaticCredentialRegistry>(*options_.store)};
    options_.source_factory = [ctx](const ConnectorSpec& spec, const store::Project& project) {
      return OpenS3Source(spec, project, ctx);
    };
  }
}

Result<std::unique_ptr<ConnectorManager>> ConnectorManager::Create(Options options) {
  if (options.store == nullptr || options.metrics == nullptr) {
    return InvalidArgument("ConnectorManager needs a store and a metrics registry");
  }
  if (options.clock == nullptr) options.clock = &SystemClock::Instance();
  if (options.max_concurrent_runs < 1 || options.max_concurrent_runs > 256) {
    return InvalidArgument(fmt::format("the number of concurrent import runs must be 1 to 256, not {}",
                                       options.max_concurrent_runs));
  }
  std::unique_ptr<ConnectorManager> m(new ConnectorManager(std::move(options)));
  SLUICE_TRY(m->Load());
  return m;
}

ConnectorManager::~ConnectorManager() { Stop(); }

Status ConnectorManager::Load() {
  std::vector<ConnectorRecord> records;
  Status scanned =
      options_.store->ScanMeta(kConnectorNs, "", [&](std::string_view key, std::string_view value) {
        auto r = ParseRecord(value);
        if (!r.ok()) {
          spdlog::error("cloud import: skipping unreadable connector record {}: {}", key, r.error().message);
          return true;
        }
        records.push_back(std::move(r).value());
        return true;
      });
  SLUICE_TRY(scanned);
  std::vector<ConnectorRecord> interrupted;  // due again at once (not paused)
  std::unique_lock lock(mu_);
  for (auto& r : records) {
    if (r.last_run_seq > 0) {
      // With shared leases another node may be running it right now: only a run nobody holds was interrupted.
      auto free = runner_->leases().TryAcquire(jobs::UnitName({"import", r.spec.id}), runner_->node_id());
      if (free.ok() &&
          EndInterruptedRun(r.spec.id, r.last_run_seq,
                            "interrupted: Sluice stopped during this run; the next run resumes from the "
                            "per-file checkpoints") &&
          !r.paused) {
        interrupted.push_back(r);
      }
    }
    std::string id = r.spec.id;
    connectors_.emplace(std::move(id), std::move(r));
  }
  spdlog::info("cloud import: {} connector(s) loaded", connectors_.size());
  UpdateConnectorGauges();
  lock.unlock();
  // Stored too: every scheduling round reloads the records from the store.
  for (const ConnectorRecord& r : interrupted) {
    auto due = UpdateRecord(r.spec.project_id, r.spec.id, [](ConnectorRecord& stored) {
      if (!stored.paused) stored.next_run_ms = 0;
      return OkStatus();
    });
    if (!due.ok() && due.error().code != ErrorCode::kNotFound) {
      spdlog::warn("cloud import: connector {} could not be marked due again (it runs when next due): {}",
                   r.spec.id, due.error().ToString());
    }
  }
  return OkStatus();
}

void ConnectorManager::Start() { runner_->Start(); }

void ConnectorManager::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    for (auto& [id, live] : live_) live->cancel = true;
  }
  cv_.notify_all();
  runner_->Stop();
}

void ConnectorManager::UpdateConnectorGauges() {
  int active = 0, paused = 0;
  for (const auto& [id, r] : connectors_) (r.paused ? paused : active)++;
  metrics_.connectors.WithLabels({"active"}).Set(active);
  metrics_.connectors.WithLabels({"paused"}).Set(paused);
}

// ---- connector records, shared by every node -------------------------------------------------------------

Result<jobs::ScopedLease> ConnectorManager::LockRecords() {
  return jobs::AcquireWithin(
      runner_->leases(), kRecordsLease, runner_->node_id(), std::chrono::seconds(15),
      "locking the connector records",
      "the connector records are busy (other requests or nodes are changing them); retry");
}

void ConnectorManager::AdoptLocked(const ConnectorRecord& record) {
  if (deleted_.contains(record.spec.id)) return;
  ++local_writes_;
  connectors_[record.spec.id] = record;
  UpdateConnectorGauges();
}

Result<ConnectorRecord> ConnectorManager::ReadRecordLocked(uint32_t project, std::string_view id) {
  SLUICE_ASSIGN_OR_RETURN(std::optional<std::string> text,
                          options_.store->GetMeta(kConnectorNs, RecordKey(project, id)));
  if (!text) {
    std::lock_guard lock(mu_);
    if (connectors_.erase(std::string(id)) > 0) UpdateConnectorGauges();
    return NotFound(fmt::format("project {} has no connector {}", project, id));
  }
  return ParseRecord(*text);
}

Status ConnectorManager::WriteRecordLocked(const jobs::UnitLease& records, const ConnectorRecord& record) {
  SLUICE_TRY(jobs::PutMetaUnderLease(*options_.store, records, kConnectorNs,
                                     RecordKey(record.spec.project_id, record.spec.id),
                                     SerializeRecord(record)));
  std::lock_guard lock(mu_);
  AdoptLocked(record);
  return OkStatus();
}

Result<ConnectorRecord> ConnectorManager::UpdateRecord(
    uint32_t project, std::string_view id, const std::function<Status(ConnectorRecord&)>& change) {
  SLUICE_ASSIGN_OR_RETURN(jobs::ScopedLease records, LockRecords());
  SLUICE_ASSIGN_OR_RETURN(const ConnectorRecord stored, ReadRecordLocked(project, id));
  ConnectorRecord record = stored;
  if (Status changed = change(record); !changed.ok()) {
    std::lock_guard lock(mu_);
    AdoptLocked(stored);
    return changed.error();
  }
  SLUICE_TRY(WriteRecordLocked(*records, record));
  return record;
}

bool ConnectorManager::EndInterruptedRun(const std::string& id, uint64_t seq, std::string_view why) {
  auto stored = options_.store->GetMeta(kRunNs, RunKey(id, seq));
  if (!stored.ok() || !stored->has_value()) return false;
  auto run = ParseRun(**stored);
  if (!run.ok() || (run->status != RunStatus::kRunning && run->status != RunStatus::kQueued)) return false;
  run->status = RunStatus::kFailed;
  run->finished_ms = NowMs();
  run->failure_message = std::string(why);
  PersistRun(id, *run);
  spdlog::warn("cloud import: connector {} run {} was interrupted; the next run resumes it", id, run->run_id);
  return true;
}

Status ConnectorManager::DeleteHistory(const std::string& id) {
  for (const char* ns : {kRunNs, kCheckpointNs}) {
    std::vector<std::string> keys;
    SLUICE_TRY(options_.store->ScanMeta(ns, id + "/", [&](std::string_view key, std::string_view) {
      keys.emplace_back(key);
      return true;
    }));
    for (const auto& k : keys) SLUICE_TRY(options_.store->DeleteMeta(ns, k));
  }
  return OkStatus();
}

void ConnectorManager::PersistRun(const std::string& connector_id, const RunRecord& run) {
  Status s = options_.store->PutMeta(kRunNs, RunKey(connector_id, run.seq), SerializeRun(run));
  if (!s.ok()) spdlog::error("cloud import: saving run {} failed: {}", run.run_id, s.error().ToString());
}

Result<std::optional<store::Project>> ConnectorManager::ProjectOf(uint32_t id) {
  // Only "no such project" means deleted (which pauses the connector for good); a store error is retried here
  // and then reported as transient, so the run is retried later.
  constexpr int kAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    auto p = options_.store->GetProject(id);
    if (p.ok()) return std::move(p).value();
    if (p.error().code == ErrorCode::kNotFound) return std::optional<store::Project>();
    if (attempt == kAttempts) return p.error();
    spdlog::warn("cloud import: reading project {} failed (attempt {} of {}): {}", id, attempt, kAttempts,
                 p.error().ToString());
    std::this_thread::sleep_for(options_.project_read_retry * attempt);
  }
}

// ---- API
// ----------------------------------------------------------------------------------------------------

Result<ConnectorRecord> ConnectorManager::CreateConnector(ConnectorSpec spec, ValidationIssue* issue) {
  SLUICE_ASSIGN_OR_RETURN(std::optional<store::Project> project, ProjectOf(spec.project_id));
  if (!project) return NotFound(fmt::format("project {} does not exist", spec.project_id));
  // Refused before the source is checked (no request goes out for a connector that cannot be kept), and
  // again below against every node's connectors, under the records lease.
  const auto too_many = [&](size_t count) -> Status {
    if (count < options_.max_connectors_per_project) return OkStatus();
    return Error(
        ErrorCode::kConflict,
        fmt::format("project {} already has {} connectors, the most one project may have: delete one it "
                    "no longer needs (DELETE …/connectors/{{connector_id}}) before creating another",
                    spec.project_id, options_.max_connectors_per_project));
  };
  {
    std::lock_guard lock(mu_);
    size_t count = 0;
    for (const auto& [id, r] : connectors_) count += r.spec.project_id == spec.project_id;
    SLUICE_TRY(too_many(count));
  }
  spec.id = RandomHex(64);
  auto source = options_.source_factory(spec, *project);
  if (!source.ok()) {
    if (issue) *issue = {"invalid_property", "connector_properties", source.error().message};
    return source.error();
  }
  SLUICE_TRY(CheckSourceAccess(*source, spec, ExternalIdOf(*project), issue));
  ConnectorRecord record;
  record.spec = std::move(spec);
  record.next_run_ms = 0;  // the first run starts now
  {
    SLUICE_ASSIGN_OR_RETURN(jobs::ScopedLease records, LockRecords());
    // created_at orders the project's list, so two connectors created within one millisecond must not tie:
    // the stamp is the clock or one past the project's latest, whichever is later.
    size_t count = 0;
    int64_t latest = 0;
    SLUICE_TRY(options_.store->ScanMeta(kConnectorNs, RecordKey(record.spec.project_id, ""),
                                        [&](std::string_view, std::string_view value) {
                                          ++count;
                                          if (auto r = ParseRecord(value); r.ok()) {
                                            latest = std::max(latest, r->spec.created_ms);
                                          }
                                          return true;
                                        }));
    SLUICE_TRY(too_many(count));
    record.spec.created_ms = std::max(NowMs(), latest + 1);
    SLUICE_TRY(WriteRecordLocked(*records, record));
  }
  cv_.notify_all();
  runner_->Wake();
  spdlog::info("cloud import: created connector {} for project {} ({}://{}/{}, {})", record.spec.id,
               record.spec.project_id,
               record.spec.is_azure() ? "azure" : record.spec.is_gcs() ? "gs" : "s3", record.spec.bucket(),
               record.spec.key_prefix(),
               ToString(record.spec.data_format));
  return record;
}

Result<std::vector<ConnectorRecord>> ConnectorManager::List(uint32_t project) {
  std::lock_guard lock(mu_);
  std::vector<ConnectorRecord> out;
  for (const auto& [id, r] : connectors_) {
    if (r.spec.project_id == project) out.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.spec.created_ms, a.spec.id) < std::tie(b.spec.created_ms, b.spec.id);
  });
  return out;
}

Result<ConnectorRecord> ConnectorManager::Get(uint32_t project, std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = connectors_.find(std::string(id));
  if (it == connectors_.end() || it->second.spec.project_id != project) {
    return NotFound(fmt::format("project {} has no connector {}", project, id));
  }
  return it->second;
}

Status ConnectorManager::Delete(uint32_t project, std::string_view id_view) {
  const std::string id(id_view);
  {
    // Under the records lease: once the record is gone, no node writes it back (a run's outcome is written
    // only onto a stored record, UpdateRecord).
    SLUICE_ASSIGN_OR_RETURN(jobs::ScopedLease records, LockRecords());
    SLUICE_TRY(ReadRecordLocked(project, id));
    SLUICE_TRY(options_.store->DeleteMeta(kConnectorNs, RecordKey(project, id)));
  }
  {
    std::unique_lock lock(mu_);
    connectors_.erase(id);
    deleted_.insert(id);
    UpdateConnectorGauges();
    if (auto live = live_.find(id); live != live_.end()) {
      live->second->cancel = true;
      // Bounded by the importer's cancellation points (every chunk and batch).
      cv_.wait(lock, [&] { return !live_.contains(id); });
    }
  }
  // A run of it on another node stops at its next batch (that node's next reload) and deletes what it wrote
  // since, when it finds the record gone.
  SLUICE_TRY(DeleteHistory(id));
  spdlog::info("cloud import: deleted connector {} of project {}", id, project);
  return OkStatus();
}

Result<std::vector<RunRecord>> ConnectorManager::History(uint32_t project, std::string_view id,
                                                         size_t limit) {
  std::optional<RunRecord> live_run;
  std::optional<RunRecord> queued;  // due, waiting for a runner
  {
    std::lock_guard lock(mu_);
    auto it = connectors_.find(std::string(id));
    if (it == connectors_.end() || it->second.spec.project_id != project) {
      return NotFound(fmt::format("project {} has no connector {}", project, id));
    }
    // A run claimed by a runner but not started yet (seq 0) is shown as queued.
    auto live = live_.find(std::string(id));
    if (live != live_.end() && live->second->run.seq > 0) {
      live_run = live->second->run;
    } else if (const ConnectorRecord& r = it->second; !r.paused && r.next_run_ms <= NowMs()) {
      queued.emplace();
      queued->seq = r.last_run_seq + 1;
      queued->run_id = fmt::format("{}-{}", id, queued->seq);
      queued->status = RunStatus::kQueued;
      queued->queued_ms = r.next_run_ms > 0 ? r.next_run_ms : r.spec.created_ms;
    }
  }
  std::vector<RunRecord> runs;
  SLUICE_TRY(
      options_.store->ScanMeta(kRunNs, std::string(id) + "/", [&](std::string_view, std::string_view value) {
        auto r = ParseRun(value);
        if (r.ok()) runs.push_back(std::move(r).value());
        return true;
      }));
  std::reverse(runs.begin(), runs.end());
  if (live_run) {
    if (!runs.empty() && runs.front().seq == live_run->seq)
      runs.front() = *live_run;
    else
      runs.insert(runs.begin(), *live_run);
  } else if (queued && (runs.empty() || (runs.front().status != RunStatus::kRunning &&
                                         runs.front().status != RunStatus::kQueued))) {
    // Not running here, nor (as its last run's record says) on another node: the next run waits for a runner.
    runs.insert(runs.begin(), *queued);
  }
  if (runs.size() > limit) runs.resize(limit);
  return runs;
}

Status ConnectorManager::Resume(uint32_t project, std::string_view id) {
  SLUICE_TRY(UpdateRecord(project, id, [](ConnectorRecord& r) {
    r.paused = false;
    r.failure_message.clear();
    r.consecutive_failures = 0;
    r.next_run_ms = 0;
    return OkStatus();
  }));
  cv_.notify_all();
  runner_->Wake();
  return OkStatus();
}

Status ConnectorManager::RunNow(uint32_t project, std::string_view id) {
  SLUICE_TRY(UpdateRecord(project, id, [&](ConnectorRecord& r) -> Status {
    if (r.paused) {
      return Error(ErrorCode::kConflict,
                   fmt::format("connector {} is paused ({}); resume it instead", id, r.failure_message));
    }
    r.next_run_ms = 0;
    return OkStatus();
  }));
  cv_.notify_all();
  runner_->Wake();
  return OkStatus();
}

// ---- runner
// -------------------------------------------------------------------------------------------------

const ConnectorRecord* ConnectorManager::PickDueLocked(int64_t now) const {
  const int free_runners = options_.max_concurrent_runs - static_cast<int>(live_.size());
  if (free_runners <= 0) return nullptr;
  std::map<uint32_t, int> running;  // runs in progress by project
  for (const auto& [id, live] : live_) {
    auto it = connectors_.find(id);
    if (it != connectors_.end()) ++running[it->second.spec.project_id];
  }
  const ConnectorRecord* best = nullptr;
  int best_running = 0;
  for (const auto& [id, r] : connectors_) {
    if (r.paused || r.next_run_ms > now || live_.contains(id)) continue;
    if (auto skip = skip_until_.find(id); skip != skip_until_.end() && skip->second > now) continue;
    const auto it = running.find(r.spec.project_id);
    const int n = it == running.end() ? 0 : it->second;
    // Fairness: the project with the fewest runs going first, then the longest overdue connector.
    if (best == nullptr || n < best_running || (n == best_running && r.next_run_ms < best->next_run_ms)) {
      best = &r;
      best_running = n;
    }
  }
  // The last free runner is kept for a project that runs nothing yet: a project with many connectors (or one
  // slow import per connector) never holds every runner while another tenant's connector comes due.
  if (best != nullptr && free_runners == 1 && best_running > 0) return nullptr;
  return best;
}

void ConnectorManager::Reload() {
  uint64_t writes_before = 0;
  {
    std::lock_guard lock(mu_);
    writes_before = local_writes_;
  }
  std::map<std::string, ConnectorRecord> stored;
  Status scanned = options_.store->ScanMeta(kConnectorNs, "", [&](std::string_view, std::string_view value) {
    if (auto r = ParseRecord(value); r.ok()) {
      std::string id = r->spec.id;
      stored.emplace(std::move(id), std::move(r).value());
    }
    return true;
  });
  if (!scanned.ok()) {
    spdlog::warn("cloud import: reloading connectors from the store failed (retried next round): {}",
                 scanned.error().ToString());
    return;
  }
  std::lock_guard lock(mu_);
  // This node persisted a record while the scan ran: the scan may predate it; the next round reloads.
  if (local_writes_ != writes_before) return;
  bool changed = false;
  for (auto& [id, record] : stored) {
    if (deleted_.contains(id) || live_.contains(id)) continue;
    auto it = connectors_.find(id);
    if (it == connectors_.end()) {
      connectors_.emplace(id, std::move(record));
      changed = true;
    } else if (SerializeRecord(it->second) != SerializeRecord(record)) {
      it->second = std::move(record);
      changed = true;
    }
  }
  for (auto it = connectors_.begin(); it != connectors_.end();) {
    if (stored.contains(it->first)) {
      ++it;
      continue;
    }
    // Deleted through another node: a run of it here stops at its next batch.
    if (auto live = live_.find(it->first); live != live_.end()) live->second->cancel = true;
    it = connectors_.erase(it);
    changed = true;
  }
  if (changed) UpdateConnectorGauges();
}

std::vector<jobs::Runner::Job> ConnectorManager::TakeDue(size_t limit) {
  std::lock_guard lock(mu_);
  std::vector<jobs::Runner::Job> jobs;
  while (jobs.size() < limit && !stop_) {
    const ConnectorRecord* due = PickDueLocked(NowMs());
    if (due == nullptr) break;
    ConnectorRecord record = *due;
    // Claimed under the lock, so no other runner takes the same connector.
    auto live = std::make_shared<Live>();
    live->connector_id = record.spec.id;
    live_[record.spec.id] = live;
    const std::string id = record.spec.id;
    jobs.push_back({jobs::UnitName({"import", id}),
                    [this, record = std::move(record), live](jobs::UnitLease& lease) mutable {
                      {
                        std::lock_guard g(mu_);
                        live->executed = true;
                        live->lease = &lease;
                      }
                      Execute(std::move(record), live);
                      return OkStatus();
                    },
                    [this, id, live](const Status& status) {
                      std::lock_guard g(mu_);
                      if (live->executed) return;
                      // Another node runs this connector now: try again later, without a run record here.
                      if (!status.ok()) {
                        spdlog::debug("cloud import: connector {} skipped on this node: {}", id,
                                      status.error().message);
                      }
                      // Not in the record (a reload replaces it with the holder's): this node's own wait.
                      skip_until_[id] = NowMs() + options_.lease_retry.count();
                      live_.erase(id);
                      cv_.notify_all();
                    }});
  }
  return jobs;
}

void ConnectorManager::AddError(Live& live, std::string file, uint64_t line, std::string reason) {
  std::lock_guard lock(mu_);
  if (live.run.errors.size() < kMaxRunErrors) {
    live.run.errors.push_back({std::move(file), line, std::move(reason)});
  } else {
    ++live.run.errors_omitted;
  }
}

void ConnectorManager::Execute(ConnectorRecord record, std::shared_ptr<Live> live) {
  const std::string id = record.spec.id;
  const uint32_t project = record.spec.project_id;
  const auto done = [&] {
    std::lock_guard lock(mu_);
    live_.erase(id);
    cv_.notify_all();
  };
  bool stopped = false;
  {
    std::lock_guard lock(mu_);
    stopped = stop_ || deleted_.contains(id);
  }
  if (stopped) return done();
  // Under the run's lease now, the stored record decides (read and claimed under the records lease): another
  // node may have run, paused or deleted the connector since this node last reloaded it, and its work must
  // not be done again. The claim sets the next run to now: still due (a node that takes the connector over
  // after a crash runs it at once), and a "run now" or resume during the run moves it earlier (see below).
  const int64_t claimed_ms = NowMs();
  bool due = true;
  auto claimed = UpdateRecord(project, id, [&](ConnectorRecord& r) -> Status {
    due = !r.paused && r.next_run_ms <= claimed_ms;
    if (!due) return Error(ErrorCode::kConflict, "not due");
    ++r.last_run_seq;
    r.next_run_ms = claimed_ms;
    return OkStatus();
  });
  if (!claimed.ok()) {
    if (due && claimed.error().code != ErrorCode::kNotFound) {
      spdlog::warn("cloud import: connector {} could not start its run (tried again next round): {}", id,
                   claimed.error().ToString());
    }
    return done();
  }
  record = *claimed;
  // The run before, still recorded as going, was cut short on the node that ran it (killed, or its lease
  // expired): this node holds the connector now, so it ended there. (At start-up Load does the same for a
  // node's own runs.)
  if (record.last_run_seq > 1) {
    EndInterruptedRun(id, record.last_run_seq - 1,
                      "interrupted: the node running it stopped or lost the connector; the next run resumes "
                      "from the per-file checkpoints");
  }
  RunRecord started;
  {
    std::lock_guard lock(mu_);
    live->run.seq = record.last_run_seq;
    live->run.run_id = fmt::format("{}-{}", id, live->run.seq);
    live->run.status = RunStatus::kRunning;
    live->run.queued_ms = live->run.started_ms = NowMs();
    started = live->run;
  }
  PersistRun(id, started);
  spdlog::info("cloud import: connector {} run {} started", id, started.run_id);

  std::string message;
  const Outcome outcome = Discover(record, *live, message);
  if (live->lease_lost) {
    // Another node holds the connector now (this node's lease expired): its state and history are that
    // node's; the run resumes there from the stored checkpoints.
    return done();
  }

  RunRecord finished;
  {
    std::lock_guard lock(mu_);
    RunRecord& run = live->run;
    run.finished_ms = NowMs();
    switch (outcome) {
      case Outcome::kSuccess:
        run.status = RunStatus::kSuccess;
        run.progress = 1;
        break;
      case Outcome::kFileFailures:
        run.status = RunStatus::kFailed;
        run.progress = 1;
        run.failure_message = message;
        break;
      case Outcome::kTransient:
        run.status = RunStatus::kFailed;
        run.failure_message = message;
        break;
      case Outcome::kPermanent:
        run.status = RunStatus::kPaused;
        run.failure_message = message;
        break;
      case Outcome::kCancelled:
        run.status = RunStatus::kFailed;
        run.failure_message =
            "interrupted: the run was stopped (server shutdown or connector deleted); the next "
            "run resumes from the per-file checkpoints";
        break;
    }
    // Counted before the final status becomes visible (History shows the live run), so a reader that sees the
    // run finished also sees it in /metrics.
    metrics_.runs.WithLabels({std::string(ToString(run.status))}).Inc();
    finished = run;
  }
  // The outcome goes onto the stored record: what other nodes or requests wrote meanwhile is kept.
  auto saved = UpdateRecord(project, id, [&](ConnectorRecord& r) -> Status {
    // Only while this node still holds the connector (a node paused past its lease's expiry writes nothing).
    if (live->lease != nullptr) SLUICE_TRY(live->lease->Renew());
    const int64_t requested_ms = r.next_run_ms;  // below claimed_ms: "run now" or resume during the run
    r.last_run_seq = std::max(r.last_run_seq, finished.seq);
    const int64_t frequency_ms = int64_t{r.spec.frequency_minutes} * 60'000;
    switch (outcome) {
      case Outcome::kSuccess:
      case Outcome::kFileFailures:
        r.consecutive_failures = 0;
        r.next_run_ms = live->more_files ? 0 : finished.started_ms + frequency_ms;
        break;
      case Outcome::kTransient: {
        ++r.consecutive_failures;
        int64_t backoff = options_.retry_base.count() << std::min(r.consecutive_failures - 1, 20);
        r.next_run_ms = finished.finished_ms + std::min(backoff, frequency_ms);
        break;
      }
      case Outcome::kPermanent:
        r.paused = true;
        r.failure_message = message;
        break;
      case Outcome::kCancelled:
        r.next_run_ms = 0;  // due again as soon as the manager runs again
        break;
    }
    if (requested_ms < claimed_ms) r.next_run_ms = std::min(r.next_run_ms, requested_ms);
    return OkStatus();
  });
  if (saved.ok() ||
      (saved.error().code != ErrorCode::kNotFound && saved.error().code != ErrorCode::kConflict)) {
    if (!saved.ok()) {
      // The run's seq was claimed and its checkpoints saved: it is due again and resumes from them.
      spdlog::warn("cloud import: saving connector {}'s run outcome failed: {}", id,
                   saved.error().ToString());
    }
    PersistRun(id, finished);
    if (finished.seq > options_.max_runs_kept) {
      (void)options_.store->DeleteMeta(kRunNs, RunKey(id, finished.seq - options_.max_runs_kept));
    }
  } else if (saved.error().code == ErrorCode::kNotFound) {
    // Deleted (through any node) while it ran: what this run wrote since goes too.
    if (Status cleared = DeleteHistory(id); !cleared.ok()) {
      spdlog::warn("cloud import: deleting the history of deleted connector {} failed: {}", id,
                   cleared.error().ToString());
    }
  } else {
    spdlog::warn("cloud import: connector {} is another node's now; its run {} ends here: {}", id,
                 finished.run_id, saved.error().message);
  }
  {
    std::lock_guard lock(mu_);
    live_.erase(id);
  }
  cv_.notify_all();
  spdlog::info("cloud import: connector {} run {} {}: {} files, {} events imported, {} dropped{}{}", id,
               finished.run_id, ToString(finished.status), finished.num_files_imported,
               finished.num_events_imported, finished.num_events_dropped,
               finished.failure_message.empty() ? "" : " — ", finished.failure_message);
}

ConnectorManager::Outcome ConnectorManager::Discover(const ConnectorRecord& record, Live& live,
                                                     std::string& message) {
  const ConnectorSpec& spec = record.spec;
  const std::string& id = spec.id;
  auto project_read = ProjectOf(spec.project_id);
  if (!project_read.ok()) {
    message = fmt::format("reading project {} from the store failed: {}; the run is retried with backoff",
                          spec.project_id, project_read.error().message);
    return Outcome::kTransient;
  }
  if (!project_read->has_value()) {
    message = fmt::format("project {} no longer exists", spec.project_id);
    return Outcome::kPermanent;
  }
  const store::Project* project = &**project_read;
  auto source = options_.source_factory(spec, *project);
  if (!source.ok()) {
    message = "the connector's settings are invalid: " + source.error().message;
    return Outcome::kPermanent;
  }
  if (source->role) {
    auto creds = source->role->Get();
    if (!creds.ok()) {
      const Error& e = creds.error();
      message = fmt::format(
          "Sluice could not assume role {} with external ID {}: the role's trust policy must allow "
          "sts:AssumeRole for Sluice's principal with sts:ExternalId = {}. ({})",
          spec.s3_role, ExternalIdOf(*project), ExternalIdOf(*project), e.ToString());
      return e.code == ErrorCode::kAccessDenied || e.code == ErrorCode::kUnauthenticated
                 ? Outcome::kPermanent
                 : Outcome::kTransient;
    }
  }
  // The confused-deputy probe once per run, not only at create: a connector stored before the probe existed,
  // or whose role's trust policy was loosened since, must stop importing (and pause) until it is fixed.
  if (Status probe = CheckExternalIdEnforced(*source, spec, ExternalIdOf(*project)); !probe.ok()) {
    message = probe.error().message;
    return probe.error().code == ErrorCode::kAccessDenied ? Outcome::kPermanent : Outcome::kTransient;
  }
  objstore::ObjectStore& bucket = *source->store;

  // ---- discovery: every object not imported yet, or changed since.
  struct Todo {
    objstore::ObjectInfo info;
    std::optional<FileCheckpoint> checkpoint;
  };
  std::vector<Todo> todo;
  std::optional<Error> checkpoint_error;
  bool more = false;
  Status listed = bucket.ListEach(spec.key_prefix(), {}, [&](const objstore::ObjectInfo& info) {
    if (live.cancel) return false;
    if (info.key.ends_with('/')) return true;  // a "folder" marker object
    auto stored = options_.store->GetMeta(kCheckpointNs, CheckpointKey(id, info.key));
    if (!stored.ok()) {
      checkpoint_error = stored.error();
      return false;
    }
    std::optional<FileCheckpoint> cp;
    if (stored->has_value()) {
      auto parsed = ParseCheckpoint(**stored);
      if (parsed.ok()) cp = std::move(parsed).value();
    }
    if (cp && cp->state != FileCheckpoint::State::kInProgress && cp->Matches(info.etag, info.size))
      return true;
    if (todo.size() >= options_.max_files_per_run) {
      more = true;
      return false;
    }
    todo.push_back({info, std::move(cp)});
    return true;
  });
  if (live.cancel) return Outcome::kCancelled;
  if (checkpoint_error) {
    message = "reading import checkpoints from the store failed: " + checkpoint_error->message;
    return Outcome::kTransient;
  }
  if (!listed.ok()) {
    message = DescribeSourceError(listed.error(), spec, SourceOperation::kList);
    return IsPermanentSourceError(listed.error()) ? Outcome::kPermanent : Outcome::kTransient;
  }
  uint64_t size_total = 0;
  for (const auto& t : todo) size_total += t.info.size;
  if (more) {
    spdlog::info(
        "cloud import: connector {} has more than {} files to import; this run takes the first {}, the "
        "next starts right after it",
        id, options_.max_files_per_run, options_.max_files_per_run);
  }
  live.more_files = more;
  RunRecord snapshot;
  {
    std::lock_guard lock(mu_);
    live.run.num_files_found = todo.size();
    live.run.size_total = size_total;
    snapshot = live.run;
  }
  PersistRun(id, snapshot);

  uint64_t size_done = 0;
  std::string first_file_failure;
  StringCacheSet linked_devices(kMaxLinkedDevices, kMaxLinkedDeviceBytes);
  auto set_progress = [&](uint64_t current_bytes) {
    // Called with mu_ held.
    live.run.progress =
        size_total == 0 ? 1.0 : std::min(1.0, static_cast<double>(size_done + current_bytes) / size_total);
  };
  auto save_checkpoint = [&](const std::string& key, const FileCheckpoint& cp) -> Status {
    // A checkpoint is the unit's state: written only while this node still holds the connector's lease.
    if (live.lease != nullptr) {
      if (Status held = live.lease->Renew(); !held.ok()) {
        if (!live.lease_lost.exchange(true)) {
          spdlog::warn("cloud import: connector {} stops on this node: {}", id, held.error().message);
        }
        live.cancel = true;
        return held;
      }
    }
    // Fenced by the lease's token in the same atomic step as the write (jobs::PutMetaUnderLease), so a node
    // paused between the renewal above and this write cannot overwrite the checkpoint of the connector's next
    // holder: a stale token is refused (kConflict) and the run stops as on a lost lease.
    Status s = live.lease == nullptr
                   ? options_.store->PutMeta(kCheckpointNs, CheckpointKey(id, key), SerializeCheckpoint(cp))
                   : jobs::PutMetaUnderLease(*options_.store, *live.lease, kCheckpointNs, CheckpointKey(id, key),
                                             SerializeCheckpoint(cp));
    if (!s.ok() && live.lease != nullptr && s.error().code == ErrorCode::kConflict) {
      if (!live.lease_lost.exchange(true)) {
        spdlog::warn("cloud import: connector {} stops on this node: {}", id, s.error().message);
      }
      live.cancel = true;
      return s;
    }
    if (!s.ok())
      spdlog::error("cloud import: saving the checkpoint of {} failed: {}", key, s.error().ToString());
    return s;
  };
  auto file_failed = [&](const Todo& t, const std::string& why) {
    AddError(live, t.info.key, 0, why);
    metrics_.files_failed.Inc();
    {
      std::lock_guard lock(mu_);
      ++live.run.num_files_failed;
    }
    if (first_file_failure.empty()) first_file_failure = why;
    FileCheckpoint cp;
    cp.etag = t.info.etag;
    cp.size = t.info.size;
    cp.state = FileCheckpoint::State::kFailed;
    cp.message = why;
    cp.updated_ms = NowMs();
    if (t.checkpoint) cp.insert_ids = t.checkpoint->insert_ids;
    (void)save_checkpoint(t.info.key, cp);
  };

  for (const Todo& t : todo) {
    if (live.cancel) return Outcome::kCancelled;
    const std::string& key = t.info.key;
    if (t.info.size > options_.max_file_bytes) {
      file_failed(
          t, fmt::format("{} is {} bytes; Cloud Import reads files of up to {} bytes (2 GB) of data: split "
                         "it into smaller files",
                         key, t.info.size, options_.max_file_bytes));
      size_done += t.info.size;
      continue;
    }
    FileCheckpoint cp;
    cp.etag = t.info.etag;
    cp.size = t.info.size;
    cp.state = FileCheckpoint::State::kInProgress;
    // A file imported before (it changed since, or its import was interrupted) keeps its $insert_id scheme.
    if (t.checkpoint) cp.insert_ids = t.checkpoint->insert_ids;
    if (t.checkpoint && t.checkpoint->state == FileCheckpoint::State::kInProgress &&
        t.checkpoint->Matches(t.info.etag, t.info.size)) {
      cp.lines_done = t.checkpoint->lines_done;
      cp.events_imported = t.checkpoint->events_imported;
      cp.events_dropped = t.checkpoint->events_dropped;
      if (cp.lines_done > 0) spdlog::info("cloud import: resuming {} after line {}", key, cp.lines_done);
    }
    const uint64_t base_imported = cp.events_imported;
    const uint64_t base_dropped = cp.events_dropped;
    FileProgress accounted;  // what of this file's progress is already in the run counters
    auto account = [&](const FileProgress& p) {
      // Called with mu_ held.
      live.run.num_events_processed += p.events_processed - accounted.events_processed;
      live.run.num_events_imported += p.events_imported - accounted.events_imported;
      live.run.num_events_dropped += p.events_dropped - accounted.events_dropped;
      metrics_.events_imported.Inc(p.events_imported - accounted.events_imported);
      metrics_.events_dropped.Inc(p.events_dropped - accounted.events_dropped);
      metrics_.bytes_read.Inc(p.bytes_read - accounted.bytes_read);
      accounted = p;
      set_progress(p.bytes_read);
    };
    auto last_persist = std::chrono::steady_clock::now();
    int commits_since_persist = 0;
    FileImportOptions fo;
    fo.spec = &spec;
    fo.project_token = project->token;
    fo.key = key;
    fo.skip_lines = cp.lines_done;
    fo.insert_id_scheme = cp.insert_ids;
    fo.geoip = options_.geoip;
    fo.clock = options_.clock;
    fo.on_error = [&](uint64_t line, const std::string& reason) { AddError(live, key, line, reason); };
    fo.cancelled = [&] { return live.cancel.load(); };
    fo.linked_devices = &linked_devices;
    fo.max_file_bytes = options_.max_file_bytes;
    fo.max_inflation_ratio = options_.max_inflation_ratio;
    fo.inflation_check_after = options_.inflation_check_after;
    fo.on_commit = [&](const FileProgress& p) {
      RunRecord run_copy;
      {
        std::lock_guard lock(mu_);
        account(p);
        run_copy = live.run;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last_persist >= options_.checkpoint_interval ||
          ++commits_since_persist >= options_.checkpoint_every_commits) {
        last_persist = now;
        commits_since_persist = 0;
        cp.lines_done = p.lines_done;
        cp.events_imported = base_imported + p.events_imported;
        cp.events_dropped = base_dropped + p.events_dropped;
        cp.updated_ms = NowMs();
        (void)save_checkpoint(key, cp);
        PersistRun(id, run_copy);
      }
    };
    FileProgress progress;
    Status imported = ImportFile(bucket, *options_.store, fo, progress);
    {
      std::lock_guard lock(mu_);
      account(progress);
    }
    if (imported.ok()) {
      cp.state = FileCheckpoint::State::kDone;
      cp.lines_done = progress.lines_done;
      cp.events_imported = base_imported + progress.events_imported;
      cp.events_dropped = base_dropped + progress.events_dropped;
      cp.updated_ms = NowMs();
      Status saved = save_checkpoint(key, cp);
      size_done += t.info.size;
      metrics_.files_imported.Inc();
      {
        std::lock_guard lock(mu_);
        ++live.run.num_files_imported;
        live.run.size_imported += t.info.size;
        set_progress(0);
      }
      if (!saved.ok()) {
        message = "saving an import checkpoint failed: " + saved.error().message;
        return Outcome::kTransient;
      }
      continue;
    }
    const Error& e = imported.error();
    // Keep what is stored: a retry resumes after the last committed batch.
    if (progress.lines_done > cp.lines_done) {
      cp.lines_done = progress.lines_done;
      cp.events_imported = base_imported + progress.events_imported;
      cp.events_dropped = base_dropped + progress.events_dropped;
      cp.updated_ms = NowMs();
      (void)save_checkpoint(key, cp);
    }
    if (e.code == ErrorCode::kCancelled) return Outcome::kCancelled;
    if (IsFileContentError(e)) {
      file_failed(t, e.message);
      size_done += t.info.size;
      continue;
    }
    if (e.code == ErrorCode::kNotFound && !IsMissingBucket(e)) {
      // Deleted between the listing and the read: nothing to import; the next listing decides.
      AddError(live, key, 0, fmt::format("{} disappeared before it could be read; skipped", key));
      size_done += t.info.size;
      continue;
    }
    if (IsPermanentSourceError(e)) {
      message = DescribeSourceError(e, spec, SourceOperation::kRead, key);
      return Outcome::kPermanent;
    }
    message = fmt::format(
        "importing {} failed: {}; the run is retried with backoff and resumes after the last "
        "stored batch",
        key, e.ToString());
    return Outcome::kTransient;
  }
  if (!first_file_failure.empty()) {
    std::lock_guard lock(mu_);
    message = live.run.num_files_failed == 1 ? first_file_failure
                                             : fmt::format("{} files could not be imported; the first: {}",
                                                           live.run.num_files_failed, first_file_failure);
    return Outcome::kFileFailures;
  }
  return Outcome::kSuccess;
}

}  // namespace sluice::cloudimport
