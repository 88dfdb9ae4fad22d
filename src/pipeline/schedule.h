// When pipelines run and what a run exports. Pure functions of the pipeline, its saved state, the store's
// partition list and the time, so the scheduler is tested with plain values and a fake clock.
//
// Hourly runs target HH:00 + delay (default :30) for the hour just closed; daily runs 00:00 + delay UTC for the
// day just closed. A unit (day or hour) is *closed* once its end plus the delay has passed. A run exports every
// closed unit in [from_date, to_date] that was never exported, was interrupted, or — with sync — changed since
// its last export (late events), optionally only within `max_sync_age`.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/layout.h"
#include "pipeline/pipeline.h"
#include "store/store.h"

namespace sluice::pipeline {

struct ScheduleOptions {
  std::chrono::minutes delay{30};
  /// Late data older than this is not re-delivered; 0 = no limit.
  int max_sync_age_days = 0;
};

/// The first slot strictly after `now_ms` for `frequency`.
int64_t NextSlotMs(Frequency frequency, int64_t now_ms, const ScheduleOptions& options);

/// Hours [first, last] the pipeline covers that are closed at `now_ms`; nullopt when none is closed yet.
struct HourRange {
  int64_t first = 0;
  int64_t last = 0;  // inclusive
};
std::optional<HourRange> ClosedHours(const PipelineSpec& spec, int64_t now_ms, const ScheduleOptions& options);

/// True when a date-ranged pipeline has nothing left to close (its last unit is closed).
bool RangeFullyClosed(const PipelineSpec& spec, int64_t now_ms, const ScheduleOptions& options);

/// The first hour whose late data is still delivered (a unit ending at or before it is not synced again);
/// INT64_MIN when options.max_sync_age_days is 0 (no limit).
int64_t OldestSyncHour(int64_t now_ms, const ScheduleOptions& options);

/// The export state of one unit as the planner needs it.
struct UnitProgress {
  bool exported = false;     // a manifest was published
  bool in_progress = false;  // an attempt started and did not finish
  uint64_t covered_seq = 0;  // change sequence the published manifest covers
};

/// Units to export now, ascending. `partitions` are the store's partitions of the project within `hours`
/// (store::ListPartitions); `progress` is keyed by UnitLabel. Every closed unit is exported once, even
/// without data (an empty manifest and `complete` tell readers the unit is final).
std::vector<Unit> PlanUnits(const PipelineSpec& spec, const HourRange& hours,
                            const std::vector<store::PartitionInfo>& partitions,
                            const std::map<std::string, UnitProgress>& progress, int64_t now_ms,
                            const ScheduleOptions& options);

}  // namespace sluice::pipeline
