// Where a pipeline's objects go (SPEC §4), and the calendar arithmetic of export units. Pure functions.
//
//   <project>/mp_master_event/YYYY/MM/DD/[HH/]sluice-g000004-p00000.json.gz
//   <project>/mp_people_data/sluice-g000004-p00000.json.gz
//   <project>/mp_identity_mappings_data/…
// plus `manifest.json` and `complete` in each of those directories. Keys are relative to the destination's
// root; the ObjectStore adds the customer's `s3_prefix`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pipeline/pipeline.h"

namespace sluice::pipeline {

/// One export unit of an events pipeline: a UTC day (daily pipelines) or hour (hourly), in store hours.
struct Unit {
  int64_t first_hour = 0;  // hours since the epoch
  int hours = 24;          // 24 or 1

  int64_t end_hour() const { return first_hour + hours; }  // exclusive
  bool operator==(const Unit&) const = default;
  bool operator<(const Unit& o) const { return first_hour < o.first_hour; }
};

/// Days since the epoch of "YYYY-MM-DD" (a real calendar date), else nullopt.
std::optional<int64_t> ParseDate(std::string_view date);
/// "YYYY-MM-DD" of a day number.
std::string FormatDate(int64_t day);

/// The unit containing `hour` for `frequency`.
Unit UnitOf(Frequency frequency, int64_t hour);
/// "YYYY-MM-DD" (daily) or "YYYY-MM-DDTHH" (hourly): the partition label used in state, manifests, timeline.
std::string UnitLabel(const Unit& unit);
/// Inverse of UnitLabel.
std::optional<Unit> ParseUnitLabel(std::string_view label);

/// Directory (no trailing '/') of an events unit: "<project>/mp_master_event/YYYY/MM/DD[/HH]".
std::string EventsUnitDir(uint32_t project, const Unit& unit);
/// Directory of a snapshot: "<project>/mp_people_data" or "<project>/mp_identity_mappings_data".
std::string SnapshotDir(uint32_t project, DataSource source);

/// ".json.gz", ".json.zst" or ".json".
std::string_view FileExtension(Compression compression);
/// "sluice-g<generation:06>-p<part:05><ext>": deterministic per (partition, generation, part).
std::string DataFileName(uint64_t generation, int part, Compression compression);
/// True for names DataFileName produces (any generation, part or compression).
bool IsDataFileName(std::string_view name);

inline constexpr std::string_view kManifestName = "manifest.json";
inline constexpr std::string_view kCompleteName = "complete";

}  // namespace sluice::pipeline
