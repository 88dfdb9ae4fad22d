// Unit tests of the pipeline control plane: layout, manifest, schedule planning and persisted state.
#include <gtest/gtest.h>

#include "pipeline/layout.h"
#include "pipeline/manifest.h"
#include "pipeline/schedule.h"
#include "pipeline/state.h"

namespace sluice::pipeline {
namespace {

constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kDayMs = 24 * kHourMs;

int64_t Day(const char* date) { return *ParseDate(date); }
int64_t Ms(const char* date, int hour = 0, int minute = 0) {
  return Day(date) * kDayMs + hour * kHourMs + minute * 60'000;
}

TEST(LayoutTest, ParsesAndFormatsCalendarDates) {
  EXPECT_EQ(ParseDate("1970-01-01"), 0);
  EXPECT_EQ(ParseDate("2024-02-29"), 19782);
  EXPECT_FALSE(ParseDate("2023-02-29"));
  EXPECT_FALSE(ParseDate("2024-13-01"));
  EXPECT_FALSE(ParseDate("2024-1-01"));
  EXPECT_FALSE(ParseDate("2024/01/01"));
  EXPECT_FALSE(ParseDate(""));
  EXPECT_EQ(FormatDate(19782), "2024-02-29");
  EXPECT_EQ(FormatDate(-1), "1969-12-31");
}

TEST(LayoutTest, UnitsLabelsAndDirectories) {
  const int64_t hour = Day("2026-11-20") * 24 + 13;
  Unit daily = UnitOf(Frequency::kDaily, hour);
  EXPECT_EQ(daily.first_hour, Day("2026-11-20") * 24);
  EXPECT_EQ(daily.hours, 24);
  EXPECT_EQ(UnitLabel(daily), "2026-11-20");
  Unit hourly = UnitOf(Frequency::kHourly, hour);
  EXPECT_EQ(UnitLabel(hourly), "2026-11-20T13");
  EXPECT_EQ(ParseUnitLabel("2026-11-20T13"), hourly);
  EXPECT_EQ(ParseUnitLabel("2026-11-20"), daily);
  EXPECT_FALSE(ParseUnitLabel("2026-11-20T24"));
  EXPECT_FALSE(ParseUnitLabel("2026-11-20X"));

  EXPECT_EQ(EventsUnitDir(3, daily), "3/mp_master_event/2026/11/20");
  EXPECT_EQ(EventsUnitDir(3, hourly), "3/mp_master_event/2026/11/20/13");
  EXPECT_EQ(SnapshotDir(3, DataSource::kPeople), "3/mp_people_data");
  EXPECT_EQ(SnapshotDir(3, DataSource::kIdentity), "3/mp_identity_mappings_data");
}

TEST(LayoutTest, DataFileNamesAreDeterministicAndRecognised) {
  EXPECT_EQ(DataFileName(4, 0, Compression::kGzip), "sluice-g000004-p00000.json.gz");
  EXPECT_EQ(DataFileName(1234567, 12, Compression::kZstd), "sluice-g1234567-p00012.json.zst");
  EXPECT_EQ(DataFileName(1, 1, Compression::kNone), "sluice-g000001-p00001.json");
  EXPECT_TRUE(IsDataFileName("sluice-g000004-p00000.json.gz"));
  EXPECT_TRUE(IsDataFileName("sluice-g1-p2.json"));
  EXPECT_FALSE(IsDataFileName("manifest.json"));
  EXPECT_FALSE(IsDataFileName("complete"));
  EXPECT_FALSE(IsDataFileName("sluice-g-p1.json"));
  EXPECT_FALSE(IsDataFileName("sluice-g1-p1.csv"));
  EXPECT_FALSE(IsDataFileName(".sluice-probe-abc"));
}

TEST(ManifestTest, RoundTripsAndCountsTotals) {
  Manifest m;
  m.pipeline = "events-daily-s3";
  m.project_id = 3;
  m.data_source = "events";
  m.partition = "2026-11-20";
  m.generation = 4;
  m.change_seq = 99;
  m.created_at = FormatTimestamp(Ms("2026-11-21", 0, 31));
  m.compression = "gzip";
  m.files.push_back({"sluice-g000004-p00000.json.gz", "3/mp_master_event/2026/11/20/sluice-g000004-p00000.json.gz",
                     10, 900, 5000, std::string(64, 'a')});
  m.files.push_back({"sluice-g000004-p00001.json.gz", "3/mp_master_event/2026/11/20/sluice-g000004-p00001.json.gz",
                     5, 450, 2500, std::string(64, 'b')});
  EXPECT_EQ(m.created_at, "2026-11-21T00:31:00Z");
  EXPECT_EQ(m.record_count(), 15u);
  EXPECT_EQ(m.bytes(), 1350u);
  EXPECT_EQ(m.uncompressed_bytes(), 7500u);
  std::string json = ManifestToJson(m);
  EXPECT_NE(json.find("\"record_count\":15"), std::string::npos) << json;
  auto parsed = ParseManifest(json);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(*parsed, m);

  Manifest empty = m;
  empty.files.clear();
  auto parsed_empty = ParseManifest(ManifestToJson(empty));
  ASSERT_TRUE(parsed_empty.ok());
  EXPECT_TRUE(parsed_empty->files.empty());
}

TEST(ManifestTest, RejectsWhatIsNotAManifest) {
  EXPECT_FALSE(ParseManifest("[]").ok());
  EXPECT_FALSE(ParseManifest("{\"version\":2}").ok());
  auto missing = ParseManifest("{\"version\":1,\"pipeline\":\"p\"}");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("project_id"), std::string::npos);
}

PipelineSpec Spec(Frequency f, const char* from, const char* to = "") {
  PipelineSpec s;
  s.project_id = 1;
  s.name = "p";
  s.frequency = f;
  s.from_date = from;
  s.to_date = to;
  return s;
}

TEST(ScheduleTest, SlotsAreHalfPastTheHourAndHalfPastMidnight) {
  ScheduleOptions o;  // 30 min delay
  EXPECT_EQ(NextSlotMs(Frequency::kHourly, Ms("2026-11-20", 13, 10), o), Ms("2026-11-20", 13, 30));
  EXPECT_EQ(NextSlotMs(Frequency::kHourly, Ms("2026-11-20", 13, 30), o), Ms("2026-11-20", 14, 30));
  EXPECT_EQ(NextSlotMs(Frequency::kDaily, Ms("2026-11-20", 0, 10), o), Ms("2026-11-20", 0, 30));
  EXPECT_EQ(NextSlotMs(Frequency::kDaily, Ms("2026-11-20", 9, 0), o), Ms("2026-11-21", 0, 30));
  o.delay = std::chrono::minutes(0);
  EXPECT_EQ(NextSlotMs(Frequency::kDaily, Ms("2026-11-20", 9, 0), o), Ms("2026-11-21"));
}

TEST(ScheduleTest, ClosedHoursRespectDelayAndDateRange) {
  ScheduleOptions o;
  // Daily at 00:20 on the 22nd: the 21st is not closed yet (closes 00:30).
  auto r = ClosedHours(Spec(Frequency::kDaily, "2026-11-20"), Ms("2026-11-22", 0, 20), o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, Day("2026-11-20") * 24);
  EXPECT_EQ(r->last, Day("2026-11-21") * 24 - 1);
  r = ClosedHours(Spec(Frequency::kDaily, "2026-11-20"), Ms("2026-11-22", 0, 30), o);
  EXPECT_EQ(r->last, Day("2026-11-22") * 24 - 1);
  // Nothing closed on the first day.
  EXPECT_FALSE(ClosedHours(Spec(Frequency::kDaily, "2026-11-20"), Ms("2026-11-20", 23, 0), o));
  // Hourly: 14:29 → up to 12:59; 14:30 → up to 13:59.
  r = ClosedHours(Spec(Frequency::kHourly, "2026-11-20"), Ms("2026-11-20", 14, 29), o);
  EXPECT_EQ(r->last, Day("2026-11-20") * 24 + 12);
  r = ClosedHours(Spec(Frequency::kHourly, "2026-11-20"), Ms("2026-11-20", 14, 30), o);
  EXPECT_EQ(r->last, Day("2026-11-20") * 24 + 13);
  // to_date caps the range.
  r = ClosedHours(Spec(Frequency::kDaily, "2026-11-01", "2026-11-03"), Ms("2026-11-20"), o);
  EXPECT_EQ(r->last, Day("2026-11-04") * 24 - 1);
  EXPECT_TRUE(RangeFullyClosed(Spec(Frequency::kDaily, "2026-11-01", "2026-11-03"), Ms("2026-11-04", 0, 30), o));
  EXPECT_FALSE(RangeFullyClosed(Spec(Frequency::kDaily, "2026-11-01", "2026-11-03"), Ms("2026-11-04", 0, 29), o));
  EXPECT_FALSE(RangeFullyClosed(Spec(Frequency::kDaily, "2026-11-01"), Ms("2030-01-01"), o));
}

TEST(ScheduleTest, PlansNewInterruptedAndChangedUnits) {
  ScheduleOptions o;
  PipelineSpec spec = Spec(Frequency::kDaily, "2026-11-18");
  const int64_t now = Ms("2026-11-22", 1);
  auto hours = *ClosedHours(spec, now, o);  // 18th..21st
  const auto h = [](const char* d, int hh) { return static_cast<store::Hour>(Day(d) * 24 + hh); };
  std::vector<store::PartitionInfo> parts = {
      {1, h("2026-11-18", 3), 1, 10, 5},   // exported at seq 7: unchanged
      {1, h("2026-11-19", 5), 1, 10, 9},   // exported at seq 7: changed (late data)
      {1, h("2026-11-20", 1), 1, 10, 3},   // in progress
      {1, h("2026-11-22", 0), 1, 10, 50},  // not closed: ignored
  };
  std::map<std::string, UnitProgress> progress = {
      {"2026-11-18", {true, false, 7}},
      {"2026-11-19", {true, false, 7}},
      {"2026-11-20", {true, true, 2}},
  };
  auto due = PlanUnits(spec, hours, parts, progress, now, o);
  std::vector<std::string> labels;
  for (const Unit& u : due) labels.push_back(UnitLabel(u));
  // 19th changed, 20th interrupted, 21st never exported (no data: still exported, empty, to say it is final).
  EXPECT_EQ(labels, (std::vector<std::string>{"2026-11-19", "2026-11-20", "2026-11-21"}));

  // Without sync, the changed day is not re-delivered.
  spec.sync = false;
  due = PlanUnits(spec, hours, parts, progress, now, o);
  EXPECT_EQ(due.size(), 2u);
  // With a maximum sync age of 2 days, the 19th (ended 3 days ago) is too old.
  spec.sync = true;
  o.max_sync_age_days = 2;
  due = PlanUnits(spec, hours, parts, progress, now, o);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(UnitLabel(due[0]), "2026-11-20");
}

TEST(StateTest, RecordsRoundTrip) {
  PipelineRecord r;
  r.info.spec = Spec(Frequency::kHourly, "2026-11-01", "2026-11-05");
  r.info.spec.events = {"Played", "Signed up"};
  r.info.spec.where = "properties[\"$os\"] == \"Linux\"";
  r.info.spec.compression = Compression::kZstd;
  r.info.spec.destination.s3_bucket = "b";
  r.info.spec.destination.s3_region = "eu-west-1";
  r.info.spec.destination.s3_role = "arn:aws:iam::1:role/r";
  r.info.spec.destination.encryption = {objstore::Encryption::Mode::kKms, "arn:aws:kms:k"};
  r.info.status = PipelineStatus::kPaused;
  r.info.failure_message = "denied";
  r.info.events_exported = 12;
  r.next_run_ms = 5;
  r.next_task_seq = 9;
  auto back = ParsePipelineRecord(PipelineRecordToJson(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->info.spec.events, r.info.spec.events);
  EXPECT_EQ(back->info.spec.where, r.info.spec.where);
  EXPECT_EQ(back->info.spec.frequency, Frequency::kHourly);
  EXPECT_EQ(back->info.spec.compression, Compression::kZstd);
  EXPECT_EQ(back->info.spec.destination.encryption.mode, objstore::Encryption::Mode::kKms);
  EXPECT_EQ(back->info.spec.destination.encryption.kms_key_id, "arn:aws:kms:k");
  EXPECT_EQ(back->info.status, PipelineStatus::kPaused);
  EXPECT_EQ(back->info.failure_message, "denied");
  EXPECT_EQ(back->info.events_exported, 12u);
  EXPECT_EQ(back->next_run_ms, 5);
  EXPECT_EQ(back->next_task_seq, 9u);

  UnitState u;
  u.published_generation = 3;
  u.covered_seq = 44;
  u.files = {"a", "b"};
  u.in_progress = true;
  u.attempt_generation = 4;
  u.attempt_compression = Compression::kNone;
  u.abandoned = {{2, Compression::kGzip}};
  u.sync_times = {1, 2};
  u.last_state = TaskState::kRetried;
  auto ub = ParseUnitState(UnitStateToJson(u));
  ASSERT_TRUE(ub.ok());
  EXPECT_EQ(ub->files, u.files);
  EXPECT_EQ(ub->attempt_compression, Compression::kNone);
  ASSERT_EQ(ub->abandoned.size(), 1u);
  EXPECT_EQ(ub->abandoned[0].generation, 2u);
  EXPECT_EQ(ub->sync_times, u.sync_times);
  EXPECT_EQ(ub->last_state, TaskState::kRetried);
  EXPECT_FALSE(ParseUnitState("not json").ok());
  // Task keys sort by sequence.
  EXPECT_LT(TaskKey(1, "p", 9), TaskKey(1, "p", 10));
}

}  // namespace
}  // namespace sluice::pipeline
