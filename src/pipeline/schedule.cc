#include "pipeline/schedule.h"

#include <algorithm>

namespace sluice::pipeline {
namespace {

constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kDayMs = 24 * kHourMs;

int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t DelayMs(const ScheduleOptions& o) { return std::chrono::duration_cast<std::chrono::milliseconds>(o.delay).count(); }

}  // namespace

int64_t NextSlotMs(Frequency frequency, int64_t now_ms, const ScheduleOptions& options) {
  const int64_t period = frequency == Frequency::kHourly ? kHourMs : kDayMs;
  const int64_t delay = DelayMs(options);
  int64_t slot = FloorDiv(now_ms - delay, period) * period + delay;
  while (slot <= now_ms) slot += period;
  return slot;
}

std::optional<HourRange> ClosedHours(const PipelineSpec& spec, int64_t now_ms, const ScheduleOptions& options) {
  auto from_day = ParseDate(spec.from_date);
  if (!from_day) return std::nullopt;
  HourRange r;
  r.first = *from_day * 24;
  // The last closed unit ends at or before now - delay.
  const int64_t closed_end_hour = FloorDiv(now_ms - DelayMs(options), kHourMs);  // exclusive, hour granularity
  int64_t end = spec.frequency == Frequency::kDaily ? FloorDiv(closed_end_hour, 24) * 24 : closed_end_hour;
  if (!spec.to_date.empty()) {
    if (auto to_day = ParseDate(spec.to_date)) end = std::min(end, (*to_day + 1) * 24);
  }
  if (end <= r.first) return std::nullopt;
  r.last = end - 1;
  return r;
}

bool RangeFullyClosed(const PipelineSpec& spec, int64_t now_ms, const ScheduleOptions& options) {
  if (spec.to_date.empty()) return false;
  auto to_day = ParseDate(spec.to_date);
  if (!to_day) return true;
  return (*to_day + 1) * kDayMs + DelayMs(options) <= now_ms;
}

int64_t OldestSyncHour(int64_t now_ms, const ScheduleOptions& options) {
  return options.max_sync_age_days > 0 ? FloorDiv(now_ms, kHourMs) - int64_t{options.max_sync_age_days} * 24
                                       : INT64_MIN;
}

std::vector<Unit> PlanUnits(const PipelineSpec& spec, const HourRange& hours,
                            const std::vector<store::PartitionInfo>& partitions,
                            const std::map<std::string, UnitProgress>& progress, int64_t now_ms,
                            const ScheduleOptions& options) {
  // Highest change sequence per unit.
  std::map<int64_t, uint64_t> unit_seq;
  for (const store::PartitionInfo& p : partitions) {
    if (p.hour < hours.first || p.hour > hours.last) continue;
    Unit u = UnitOf(spec.frequency, p.hour);
    uint64_t& s = unit_seq[u.first_hour];
    s = std::max(s, p.change_seq);
  }
  const int64_t oldest_sync_hour = OldestSyncHour(now_ms, options);
  std::vector<Unit> due;
  for (Unit u = UnitOf(spec.frequency, hours.first); u.first_hour <= hours.last;
       u = UnitOf(spec.frequency, u.end_hour())) {
    auto it = progress.find(UnitLabel(u));
    if (it == progress.end() || !it->second.exported || it->second.in_progress) {
      due.push_back(u);
      continue;
    }
    if (!spec.sync || u.end_hour() <= oldest_sync_hour) continue;
    auto seq = unit_seq.find(u.first_hour);
    if (seq != unit_seq.end() && seq->second > it->second.covered_seq) due.push_back(u);
  }
  return due;
}

}  // namespace sluice::pipeline
