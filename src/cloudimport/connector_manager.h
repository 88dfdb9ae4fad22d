// ConnectorManager: owns Cloud Import connectors (SPEC §6) — creates them (after an access check), persists
// them in the store's metadata, and runs discovery on a bounded pool of runner threads: every `frequency`
// minutes (the first run right after create) it lists the connector's prefix and imports every object not
// imported yet, or whose ETag or size changed. Per-file checkpoints make a restart resume instead of
// repeating or skipping files.
//
// Scheduling: a connector runs on one runner at a time; `max_concurrent_runs` runners share the connectors,
// the due connector of the project with the fewest runs in progress first (then the longest overdue), and one
// project never holds every runner while another project's connector is due — so one tenant's large import
// does not block every other tenant's.
//
//   ConnectorManager::Options o{.store = &store, .metrics = &metrics, .transport = transport,
//                               .own_credentials = own};
//   auto manager = ConnectorManager::Create(std::move(o));
//   (*manager)->Start();
//   ... serve the API (api/connector_handlers.cc) ...
//   (*manager)->Stop();          // before the store closes
//
// Run outcome:  success — every file imported (bad lines are dropped and counted, not failures);
//               failed  — some file could not be imported (compression mismatch, corrupt gzip, more than 2 GB
//                         of data once inflated, an inflation ratio over 500:1) or a
//                         transient error (retried with backoff: 30 s, 1 min, … capped at the frequency);
//               paused  — a permanent error (access denied, missing bucket): the connector waits for Resume
//               with
//                         a failure_message that says what to fix.
// Scheduling and leases are jobs::Runner's: a connector's run is a job under the lease "import.CONNECTOR_ID"
// (in-process by default; ZooKeeper when `leases` says so), renewed before every checkpoint is saved, so a
// node that lost the lease stops and commits nothing more; the connector's next holder resumes from the
// stored checkpoints. Each scheduling round reloads the connectors from the store, so connectors created,
// resumed or deleted through another node are seen here. Every write of a connector record (create, delete,
// resume, run now, a run's claim and outcome) is a read-modify-write of the stored record under one lease
// every node takes ("connectors.records"), so a node's view a moment old never overwrites another node's
// change, and the per-project limit is checked against every node's connectors.
// Thread-safe: API calls may come from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "aws/credentials.h"
#include "cloudimport/connector.h"
#include "cloudimport/line_reader.h"
#include "cloudimport/source.h"
#include "common/clock.h"
#include "common/geoip.h"
#include "common/metrics.h"
#include "common/result.h"
#include "http/transport.h"
#include "jobs/runner.h"
#include "store/store.h"

namespace sluice::cloudimport {

class ConnectorManager {
 public:
  /// Builds the source of a connector; the default opens the S3 bucket through the customer's role.
  using SourceFactory = std::function<Result<Source>(const ConnectorSpec&, const store::Project&)>;

  struct Options {
    store::Store* store = nullptr;       // required; must outlive the manager
    MetricsRegistry* metrics = nullptr;  // required
    std::shared_ptr<http::HttpTransport> transport;
    std::shared_ptr<aws::CredentialsProvider> own_credentials;
    const Clock* clock = &SystemClock::Instance();
    /// Null = OpenS3Source with `transport` and `own_credentials`.
    SourceFactory source_factory;
    /// Country database (serve --geoip-dir): imported events' `ip` and profile updates' `$ip` give their
    /// country, as on /import and /engage. Null = none. Must outlive the manager.
    const CountryLookup* geoip = nullptr;
    /// Retry schedule of runs that failed on a transient error: base × 2^(failures-1), capped at the
    /// frequency.
    std::chrono::milliseconds retry_base{30'000};
    /// How often the checkpoint of a file in progress (and the live run record) is persisted.
    std::chrono::milliseconds checkpoint_interval{2'000};
    /// … and at least every this many commits (the importer commits every 8000 lines).
    int checkpoint_every_commits = 8;
    /// Files one run takes on, so a prefix with millions of new objects is not held in memory at once; when
    /// the listing had more, the next run starts right after.
    size_t max_files_per_run = 20'000;
    /// Run history kept per connector (older runs are deleted).
    size_t max_runs_kept = 200;
    /// Connectors one project may have (every one is kept in memory, scheduled and listed). Tests lower it.
    size_t max_connectors_per_project = 100;
    /// Runner threads (serve --import-runs): how many connectors import at once. ≥ 1.
    int max_concurrent_runs = kDefaultConcurrentRuns;
    /// A file's data after inflation may not exceed this (Mixpanel's 2 GB applies to the data, not to the
    /// compressed object). Tests lower it.
    uint64_t max_file_bytes = kMaxFileBytes;
    /// A gzip file inflating more than this many times its compressed size fails (a gzip bomb), checked once
    /// it has produced `inflation_check_after` bytes.
    uint64_t max_inflation_ratio = kMaxInflationRatio;
    uint64_t inflation_check_after = kInflationCheckAfterBytes;
    /// Retries of a transient store error while reading a connector's project, before the run fails (and is
    /// retried with backoff) — never taken as "project deleted".
    std::chrono::milliseconds project_read_retry{100};
    /// Leases of connector runs: null = in-process (one node); a ZooKeeper lease service shares the
    /// connectors between nodes.
    std::shared_ptr<jobs::LeaseService> leases;
    /// This node's holder id in the leases; empty = "HOSTNAME-PID".
    std::string node_id;
    /// How often the scheduler looks for due runs and reloads the connectors from the store.
    std::chrono::milliseconds poll_interval{1000};
    /// A connector whose run another node holds is tried again this much later.
    std::chrono::milliseconds lease_retry{5000};
  };
  static constexpr int kDefaultConcurrentRuns = 2;

  /// Loads the connectors from the store. Runs that a previous process left queued/running are marked failed
  /// ("interrupted") and their connectors are due at once, so the import resumes from the checkpoints.
  static Result<std::unique_ptr<ConnectorManager>> Create(Options options);
  ~ConnectorManager();

  /// Starts the runner threads.
  void Start();
  /// Stops the imports in progress at the next batch boundary and joins the runners. Idempotent.
  void Stop();

  /// Checks access to the bucket, persists the connector and schedules its first run now. On a refusal fills
  /// `issue` (Mixpanel-style code and field) and returns kInvalidArgument / kAccessDenied / kNotFound.
  Result<ConnectorRecord> CreateConnector(ConnectorSpec spec, ValidationIssue* issue);
  Result<std::vector<ConnectorRecord>> List(uint32_t project);
  /// kNotFound when the project has no such connector.
  Result<ConnectorRecord> Get(uint32_t project, std::string_view id);
  /// Stops its run if one is going (waits for it), then deletes the connector, its history and checkpoints.
  /// Imported data stays.
  Status Delete(uint32_t project, std::string_view id);
  /// Runs newest first (the live one included), at most `limit`.
  Result<std::vector<RunRecord>> History(uint32_t project, std::string_view id, size_t limit = 100);
  /// Un-pauses a connector (clearing failure_message) and schedules a run now.
  Status Resume(uint32_t project, std::string_view id);
  /// Schedules a discovery run now (Sluice extension: "sync now").
  Status RunNow(uint32_t project, std::string_view id);

 private:
  struct Metrics {
    explicit Metrics(MetricsRegistry& r);
    Counter& events_imported;
    Counter& events_dropped;
    Counter& files_imported;
    Counter& files_failed;
    Counter& bytes_read;
    CounterFamily& runs;      // {status}
    GaugeFamily& connectors;  // {state}
  };
  struct Live {
    std::string connector_id;
    RunRecord run;
    std::atomic<bool> cancel{false};
    bool more_files = false;  // the listing had more files than one run takes
    bool executed = false;    // the run got its lease (guarded by mu_)
    std::atomic<bool> lease_lost{false};
    jobs::UnitLease* lease = nullptr;  // while executing
  };

  explicit ConnectorManager(Options options);
  Status Load();
  // The jobs::Runner::Source of the runner (an adapter: "Source" is also the import source's name here).
  void Reload();
  std::vector<jobs::Runner::Job> TakeDue(size_t limit);
  struct JobSource final : jobs::Runner::Source {
    explicit JobSource(ConnectorManager* m) : manager(m) {}
    void Reload() override { manager->Reload(); }
    std::vector<jobs::Runner::Job> TakeDue(size_t limit) override { return manager->TakeDue(limit); }
    ConnectorManager* manager;
  };
  /// The due connector to run next (nullptr: none may start now). Called with mu_ held.
  const ConnectorRecord* PickDueLocked(int64_t now) const;
  void Execute(ConnectorRecord record, std::shared_ptr<Live> live);
  /// The body of a run; fills `run` and returns how it ended.
  enum class Outcome { kSuccess, kFileFailures, kTransient, kPermanent, kCancelled };
  Outcome Discover(const ConnectorRecord& record, Live& live, std::string& message);
  /// The records lease (see the top comment), waited for up to 15 s: kUnavailable "busy" after that.
  Result<jobs::ScopedLease> LockRecords();
  /// Under the records lease: `change` applied to the stored record of (project, id), written fenced by the
  /// lease, and this node's view takes it. kNotFound when no such connector is stored; an error of `change`
  /// leaves the record unchanged (this node's view still takes the stored one).
  Result<ConnectorRecord> UpdateRecord(uint32_t project, std::string_view id,
                                       const std::function<Status(ConnectorRecord&)>& change);
  /// Under the records lease: the stored record of (project, id); kNotFound (and gone from this node's view)
  /// when there is none.
  Result<ConnectorRecord> ReadRecordLocked(uint32_t project, std::string_view id);
  /// Under the records lease: writes `record` fenced by it; this node's view takes it.
  Status WriteRecordLocked(const jobs::UnitLease& records, const ConnectorRecord& record);
  /// This node's view takes a record read or written under the records lease (not one deleted here).
  void AdoptLocked(const ConnectorRecord& record);
  /// Run `seq`, when still recorded as queued or running although nobody runs it any more, becomes failed
  /// with `why`. True when it did.
  bool EndInterruptedRun(const std::string& id, uint64_t seq, std::string_view why);
  /// Deletes the connector's run history and checkpoints.
  Status DeleteHistory(const std::string& id);
  void PersistRun(const std::string& connector_id, const RunRecord& run);
  void UpdateConnectorGauges();
  void AddError(Live& live, std::string file, uint64_t line, std::string reason);
  int64_t NowMs() const { return options_.clock->NowMillis(); }
  /// The project, nullopt when it does not exist (deleted); an error when the store could not say (transient,
  /// after a few retries).
  Result<std::optional<store::Project>> ProjectOf(uint32_t id);

  Options options_;
  Metrics metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, ConnectorRecord> connectors_;  // by id
  std::map<std::string, std::shared_ptr<Live>> live_;  // runs in progress, by connector id
  bool stop_ = false;
  uint64_t local_writes_ = 0;  // guarded by mu_: records adopted here (Reload skips a racing round)
  std::set<std::string> deleted_;          // guarded by mu_: deleted here, never reloaded
  std::map<std::string, int64_t> skip_until_;  // guarded by mu_: held by another node, not tried before
  JobSource job_source_{this};
  std::unique_ptr<jobs::Runner> runner_;
};

}  // namespace sluice::cloudimport
