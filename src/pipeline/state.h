// What the manager persists in the store's metadata (namespaces "pipeline", "pipeline_unit", "pipeline_task"),
// as JSON records, so every pipeline resumes where it was after a restart or a crash.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "pipeline/partition_exporter.h"
#include "pipeline/pipeline.h"

namespace sluice::pipeline {

inline constexpr std::string_view kPipelineNs = "pipeline";
inline constexpr std::string_view kUnitNs = "pipeline_unit";
inline constexpr std::string_view kTaskNs = "pipeline_task";

/// One pipeline: its spec plus its lifecycle.
struct PipelineRecord {
  PipelineInfo info;
  int64_t next_run_ms = 0;  // when the scheduler runs it next (0 = now)
  uint64_t next_task_seq = 1;
};

/// Export state of one unit (events day/hour) or snapshot.
struct UnitState {
  /// The generation of the published manifest (0 = none yet) and what it covers.
  uint64_t published_generation = 0;
  uint64_t covered_seq = 0;
  std::vector<std::string> files;  // keys the published manifest lists
  uint64_t records = 0;
  uint64_t bytes = 0;
  /// The attempt in flight (persisted before it writes anything).
  bool in_progress = false;
  uint64_t attempt_generation = 0;
  Compression attempt_compression = Compression::kGzip;
  /// Generations of attempts that never published, and superseded files whose delete failed.
  std::vector<AbandonedGeneration> abandoned;
  std::vector<std::string> undeleted;
  /// Epoch ms of each successful delivery (latest 20) and the last task's state.
  std::vector<int64_t> sync_times;
  TaskState last_state = TaskState::kPending;
};

std::string PipelineKey(uint32_t project, std::string_view name);
std::string UnitKey(uint32_t project, std::string_view name, std::string_view label);
std::string UnitKeyPrefix(uint32_t project, std::string_view name);
std::string TaskKey(uint32_t project, std::string_view name, uint64_t seq);
std::string TaskKeyPrefix(uint32_t project, std::string_view name);

std::string PipelineRecordToJson(const PipelineRecord& record);
Result<PipelineRecord> ParsePipelineRecord(std::string_view json);
std::string UnitStateToJson(const UnitState& state);
Result<UnitState> ParseUnitState(std::string_view json);
std::string TaskRecordToJson(const TaskRecord& task);
Result<TaskRecord> ParseTaskRecord(std::string_view json);

}  // namespace sluice::pipeline
