#include "pipeline/layout.h"

#include <chrono>

#include <fmt/format.h>

namespace sluice::pipeline {
namespace {

bool ParseDigits(std::string_view s, int& out) {
  out = 0;
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

std::optional<int64_t> ParseDate(std::string_view date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return std::nullopt;
  int y = 0, m = 0, d = 0;
  if (!ParseDigits(date.substr(0, 4), y) || !ParseDigits(date.substr(5, 2), m) || !ParseDigits(date.substr(8, 2), d)) {
    return std::nullopt;
  }
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(m)),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days(ymd).time_since_epoch().count();
}

std::string FormatDate(int64_t day) {
  std::chrono::year_month_day ymd{std::chrono::sys_days(std::chrono::days(day))};
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()));
}

Unit UnitOf(Frequency frequency, int64_t hour) {
  if (frequency == Frequency::kHourly) return Unit{hour, 1};
  return Unit{FloorDiv(hour, 24) * 24, 24};
}

std::string UnitLabel(const Unit& unit) {
  const int64_t day = FloorDiv(unit.first_hour, 24);
  if (unit.hours == 24) return FormatDate(day);
  return fmt::format("{}T{:02}", FormatDate(day), unit.first_hour - day * 24);
}

std::optional<Unit> ParseUnitLabel(std::string_view label) {
  auto day = ParseDate(label.substr(0, 10));
  if (!day) return std::nullopt;
  if (label.size() == 10) return Unit{*day * 24, 24};
  int hh = 0;
  if (label.size() != 13 || label[10] != 'T' || !ParseDigits(label.substr(11), hh) || hh > 23) return std::nullopt;
  return Unit{*day * 24 + hh, 1};
}

std::string EventsUnitDir(uint32_t project, const Unit& unit) {
  std::string label = UnitLabel(unit);  // YYYY-MM-DD[THH]
  std::string dir = fmt::format("{}/mp_master_event/{}/{}/{}", project, label.substr(0, 4), label.substr(5, 2),
                                label.substr(8, 2));
  if (unit.hours == 1) dir += fmt::format("/{}", label.substr(11, 2));
  return dir;
}

std::string SnapshotDir(uint32_t project, DataSource source) {
  return fmt::format("{}/{}", project,
                     source == DataSource::kPeople ? "mp_people_data" : "mp_identity_mappings_data");
}

std::string_view FileExtension(Compression compression) {
  switch (compression) {
    case Compression::kGzip: return ".json.gz";
    case Compression::kZstd: return ".json.zst";
    case Compression::kNone: return ".json";
  }
  return ".json";
}

std::string DataFileName(uint64_t generation, int part, Compression compression) {
  return fmt::format("sluice-g{:06}-p{:05}{}", generation, part, FileExtension(compression));
}

bool IsDataFileName(std::string_view name) {
  // sluice-g<digits>-p<digits>.json[.gz|.zst]
  if (!name.starts_with("sluice-g")) return false;
  size_t i = 8, digits = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i, ++digits;
  if (digits == 0 || name.substr(i, 2) != "-p") return false;
  i += 2;
  digits = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i, ++digits;
  if (digits == 0) return false;
  std::string_view ext = name.substr(i);
  return ext == ".json.gz" || ext == ".json.zst" || ext == ".json";
}

}  // namespace sluice::pipeline
