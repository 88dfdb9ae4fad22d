// Pipelines: the PipelineManager of `sluice serve`. It keeps every pipeline's definition and progress in the
// store's metadata, runs a scheduler thread that starts due runs (backfill first, then hourly/daily slots, late
// data with sync), exports units through PartitionExporter with bounded parallelism, retries transient
// failures with backoff and pauses a pipeline on a permanent one with a failure_message saying what to fix.
//
//   ManagerOptions o{.store = store.get(), .destinations = MakeDestinationFactory({...})};
//   auto pipelines = Pipelines::Create(o);   // loads saved pipelines; resumes interrupted exports at Start()
//   (*pipelines)->Start();
//   ...
//   (*pipelines)->Stop();                    // interrupts running exports; they resume after the restart
//
// Crash safety: before an export writes anything, the unit's new generation is persisted (in_progress); the
// published state (generation, covered change sequence, files) is persisted only after manifest + complete.
// A restart finds the unit in progress and exports it again under the next generation, deleting what the
// interrupted attempt left (see partition_exporter.h), so the manifests always list each event exactly once.
//
// Scheduling, retries and leases are jobs::Runner's: a pipeline run is a job under the lease
// "pipeline.pPROJECT.NAME", each unit export runs under "export.pPROJECT.NAME.LABEL" and renews it before it
// claims a generation and before it publishes the unit's state, so a node that lost its lease (its ZooKeeper
// session expired) never commits; the next holder exports the unit under the next generation. Every scheduling
// round reloads the pipelines from the store, so pipelines created, edited, paused, resumed or canceled through
// another node are seen here, and unit progress published by another node is never exported again.
#pragma once

#include <chrono>
#include <memory>

#include "common/clock.h"
#include "common/metrics.h"
#include "jobs/lease.h"
#include "pipeline/destination.h"
#include "pipeline/partition_exporter.h"
#include "pipeline/pipeline.h"
#include "pipeline/schedule.h"
#include "store/store.h"

namespace sluice::pipeline {

struct ManagerOptions {
  store::Store* store = nullptr;                     // required; must outlive the manager
  std::shared_ptr<DestinationFactory> destinations;  // required
  /// `sluice serve --local-export-root DIR` (canonical), as given to the destination factory: type=local
  /// paths are compared under it so that no two projects' pipelines share, nest or contain a directory.
  std::string local_export_root;
  const Clock* clock = &SystemClock::Instance();
  MetricsRegistry* metrics = nullptr;  // optional; must outlive the manager
  ScheduleOptions schedule;
  ExporterOptions exporter;
  /// Pipelines running at once, and units of one run exported at once (bounded memory: each unit export holds
  /// its compression blocks and upload parts).
  int max_concurrent_runs = 2;
  int unit_parallelism = 2;
  /// Attempts per unit for transient errors, with exponential backoff between them.
  int max_attempts = 4;
  std::chrono::milliseconds retry_base_delay{2000};
  std::chrono::milliseconds retry_max_delay{60000};
  /// After a run that failed transiently, the next run starts this much later (instead of the next slot).
  std::chrono::milliseconds failed_run_retry{std::chrono::minutes(5)};
  /// How often the scheduler thread looks for due runs.
  std::chrono::milliseconds poll_interval{1000};
  /// Mixpanel's limit on from_date.
  int max_from_date_age_days = 183;
  /// Task records kept per pipeline for the timeline.
  uint64_t max_tasks_kept = 2000;
  /// Leases of pipeline runs and of units (jobs::Runner): null = in-process (one node on the embedded store);
  /// `serve --coordination zookeeper://…` passes jobs::MakeZooKeeperLeaseService so that several nodes share
  /// the pipelines and never export the same unit at once.
  std::shared_ptr<jobs::LeaseService> leases;
  /// This node's holder id in the leases; empty = "HOSTNAME-PID".
  std::string node_id;
  /// A run or unit held by another node is tried again this much later.
  std::chrono::milliseconds lease_retry{5000};
};

class Pipelines final : public PipelineManager {
 public:
  /// Loads the saved pipelines. kInvalidArgument when a required option is missing.
  static Result<std::unique_ptr<Pipelines>> Create(ManagerOptions options);
  ~Pipelines() override;

  /// Starts the scheduler thread.
  void Start();
  /// Interrupts running exports and joins every thread. Idempotent; the destructor calls it.
  void Stop();
  /// Runs every due pipeline now and waits for them (tests drive the scheduler with a fake clock this way;
  /// don't mix with Start()). Returns the first run error, if any.
  Status RunDueNow();

  Result<std::vector<std::string>> Create(PipelineSpec spec) override;
  using PipelineManager::Edit;
  Status Edit(uint32_t project, std::string_view name,
              const std::function<Status(PipelineSpec&)>& change) override;
  Status Pause(uint32_t project, std::string_view name) override;
  Status Resume(uint32_t project, std::string_view name) override;
  Status Cancel(uint32_t project, std::string_view name) override;
  Status SyncNow(uint32_t project, std::string_view name) override;
  Result<PipelineInfo> Get(uint32_t project, std::string_view name) override;
  Result<std::vector<PipelineInfo>> List(uint32_t project) override;
  Result<std::vector<TaskRecord>> Timeline(uint32_t project, std::string_view name, size_t limit = 1000) override;
  Result<std::vector<DaySync>> DaySyncs(uint32_t project, std::string_view name) override;

  class Impl;

 private:
  explicit Pipelines(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::pipeline
