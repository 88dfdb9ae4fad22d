// ParseEvents: one test per SPEC §3 validation rule and boundary, lossless property copying, payload forms.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "ingest/ingest.h"

namespace sluice::ingest {
namespace {

using ::testing::HasSubstr;

// 2024-05-01T12:00:00Z
constexpr int64_t kNowS = 1'714'564'800;
constexpr int64_t kNowUs = kNowS * 1'000'000;

ParseOptions Import(PayloadFormat format = PayloadFormat::kJson) {
  return ParseOptions{.endpoint = Endpoint::kImport, .format = format, .now_us = kNowUs};
}
ParseOptions Track(PayloadFormat format = PayloadFormat::kJson) {
  return ParseOptions{.endpoint = Endpoint::kTrack, .format = format, .now_us = kNowUs};
}

/// One /import record with valid required fields plus `extra` (JSON members, may be empty).
std::string Record(std::string_view extra = "", std::string_view insert_id = "id-1") {
  std::string r = R"({"event":"Signed Up","properties":{"time":)" + std::to_string(kNowS - 60) +
                  R"(,"distinct_id":"u1","$insert_id":")" + std::string(insert_id) + "\"";
  if (!extra.empty()) r += "," + std::string(extra);
  return r + "}}";
}

/// A record whose properties are exactly `props` (a JSON object body without braces).
std::string RecordWithProps(std::string_view props) {
  return R"({"event":"e","properties":{)" + std::string(props) + "}}";
}

ParsedEvents MustParse(std::string_view payload, const ParseOptions& options) {
  auto r = ParseEvents(payload, options);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : ParsedEvents{};
}

/// Parses one record and returns its single error (failing the test if it was accepted).
RecordError OnlyError(std::string_view record, const ParseOptions& options = Import()) {
  ParsedEvents p = MustParse(record, options);
  EXPECT_EQ(p.events.size(), 0u);
  EXPECT_EQ(p.errors.size(), 1u);
  return p.errors.empty() ? RecordError{} : p.errors[0];
}

Event OnlyEvent(std::string_view record, const ParseOptions& options = Import()) {
  ParsedEvents p = MustParse(record, options);
  EXPECT_EQ(p.errors.size(), 0u) << (p.errors.empty() ? "" : p.errors[0].reason + ": " + p.errors[0].message);
  EXPECT_EQ(p.events.size(), 1u);
  return p.events.empty() ? Event{} : p.events[0];
}

std::string TimeProps(std::string_view time_json) {
  return R"("time":)" + std::string(time_json) + R"(,"distinct_id":"u1","$insert_id":"id-1")";
}

// ---- basics ----------------------------------------------------------------------------------------------------

/// A JSON array of /import records of about `bytes` in all.
std::string BatchOfAbout(size_t bytes) {
  std::string out = "[";
  for (int i = 0; out.size() < bytes; ++i) {
    if (i > 0) out += ",";
    out += Record(R"("pad":")" + std::string(200, 'p') + "\"", "id-" + std::to_string(i));
  }
  return out + "]";
}

TEST(ParseEvents, TheThreadsParserGrowsWithSpareSoSlightlyLongerBatchesDoNotReallocateIt) {
  // On a thread of its own: the parser is per thread and starts empty.
  std::thread([] {
    EXPECT_EQ(internal::ThreadParserCapacity(), 0u);
    const std::string first = BatchOfAbout(100'000);
    EXPECT_GT(MustParse(first, Import()).events.size(), 300u);
    const size_t after_first = internal::ThreadParserCapacity();
    EXPECT_GE(after_first, first.size() + first.size() / 4);  // not the exact length simdjson would take
    const std::string longer = BatchOfAbout(110'000);
    EXPECT_GT(MustParse(longer, Import()).events.size(), 300u);
    EXPECT_EQ(internal::ThreadParserCapacity(), after_first);
    const std::string much_longer = BatchOfAbout(300'000);
    EXPECT_GT(MustParse(much_longer, Import()).events.size(), 900u);
    EXPECT_GE(internal::ThreadParserCapacity(), much_longer.size());
    // A server sizes each request thread's parser once, before it serves.
    EXPECT_TRUE(ReserveThreadParser(kMaxBatchBytes));
    const size_t reserved = internal::ThreadParserCapacity();
    EXPECT_GE(reserved, kMaxBatchBytes);
    EXPECT_EQ(MustParse(longer, Import()).events.size(), MustParse(longer, Import()).events.size());
    EXPECT_EQ(internal::ThreadParserCapacity(), reserved);
  }).join();
}

TEST(ParseEvents, ValidImportRecordBecomesEvent) {
  Event e = OnlyEvent("[" + Record(R"("plan":"pro","n":3)") + "]");
  EXPECT_EQ(e.name, "Signed Up");
  EXPECT_EQ(e.time_us, (kNowS - 60) * 1'000'000);
  EXPECT_EQ(e.distinct_id, "u1");
  EXPECT_EQ(e.insert_id, "id-1");
  EXPECT_EQ(e.device_id, "");
  EXPECT_EQ(e.user_id, "");
  EXPECT_EQ(e.properties, R"({"plan":"pro","n":3})");
}

TEST(ParseEvents, SingleObjectPayloadIsOneRecord) {
  ParsedEvents p = MustParse(Record(), Import());
  EXPECT_EQ(p.total_records, 1u);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.event_indexes[0], 0u);
  EXPECT_EQ(p.events[0].properties, "{}");
}

TEST(ParseEvents, EmptyArrayIsZeroRecords) {
  ParsedEvents p = MustParse(" [ ] ", Import());
  EXPECT_EQ(p.total_records, 0u);
  EXPECT_TRUE(p.events.empty());
}

TEST(ParseEvents, OneBadRecordDoesNotAffectOthers) {
  std::string payload = "[" + Record("", "a1") + "," + RecordWithProps(R"("distinct_id":"u","$insert_id":"b2")") +
                        "," + Record("", "c3") + "]";
  ParsedEvents p = MustParse(payload, Import());
  EXPECT_EQ(p.total_records, 3u);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.event_indexes, (std::vector<size_t>{0, 2}));
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].index, 1u);
  EXPECT_EQ(p.errors[0].insert_id, "b2");
  EXPECT_EQ(p.errors[0].field, "properties.time");
  EXPECT_EQ(p.errors[0].reason, "missing_time");
}

// ---- event name --------------------------------------------------------------------------------------------------

TEST(ParseEvents, MissingEventRejected) {
  RecordError e = OnlyError(R"({"properties":{)" + TimeProps("1714564000") + "}}");
  EXPECT_EQ(e.field, "event");
  EXPECT_EQ(e.reason, "missing_event");
  EXPECT_EQ(e.insert_id, "id-1");
}

TEST(ParseEvents, EmptyEventRejected) {
  EXPECT_EQ(OnlyError(R"({"event":"","properties":{)" + TimeProps("1714564000") + "}}").reason, "missing_event");
}

TEST(ParseEvents, NonStringEventRejected) {
  RecordError e = OnlyError(R"({"event":42,"properties":{)" + TimeProps("1714564000") + "}}");
  EXPECT_EQ(e.reason, "missing_event");
  EXPECT_THAT(e.message, HasSubstr("a number"));
}

TEST(ParseEvents, DuplicateTopLevelEventLastWins) {
  Event e = OnlyEvent(R"({"event":"first","event":"second","properties":{)" + TimeProps("1714564000") + "}}");
  EXPECT_EQ(e.name, "second");
}

TEST(ParseEvents, DuplicatePropertiesObjectLastWins) {
  Event e = OnlyEvent(R"({"event":"e","properties":{"a":1},"properties":{)" + TimeProps("1714564000") + R"(,"b":2}})");
  EXPECT_EQ(e.properties, R"({"b":2})");
  EXPECT_EQ(OnlyEvent(R"({"event":"e","properties":7,"properties":{)" + TimeProps("1714564000") + "}}").properties,
            "{}");
}

TEST(ParseEvents, RecordThatIsNotAnObjectRejected) {
  ParsedEvents p = MustParse(R"([1,"x",null,[]])", Import());
  ASSERT_EQ(p.errors.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(p.errors[i].index, i);
    EXPECT_EQ(p.errors[i].reason, "not_an_object");
  }
}

TEST(ParseEvents, PropertiesThatIsNotAnObjectRejected) {
  RecordError e = OnlyError(R"({"event":"e","properties":[1,2]})");
  EXPECT_EQ(e.field, "properties");
  EXPECT_EQ(e.reason, "not_an_object");
}

// ---- time ----------------------------------------------------------------------------------------------------------

TEST(NormaliseTimeToMicros, SecondsBelow1e11MillisecondsAbove) {
  EXPECT_EQ(NormaliseTimeToMicros(1714564800), 1714564800LL * 1'000'000);
  EXPECT_EQ(NormaliseTimeToMicros(1714564800123.0), 1714564800123LL * 1'000);
  EXPECT_EQ(NormaliseTimeToMicros(99'999'999'999.0), 99'999'999'999LL * 1'000'000);  // still seconds
  EXPECT_EQ(NormaliseTimeToMicros(100'000'000'000.0), 100'000'000'000LL * 1'000);    // milliseconds
}

TEST(NormaliseTimeToMicros, FractionalValuesRoundToNearestMicrosecond) {
  EXPECT_EQ(NormaliseTimeToMicros(1714564800.5), 1714564800'500000LL);
  EXPECT_EQ(NormaliseTimeToMicros(1714564800.123456), 1714564800'123456LL);
  EXPECT_EQ(NormaliseTimeToMicros(1714564800123.456), 1714564800'123456LL);
  EXPECT_EQ(NormaliseTimeToMicros(1714564800123.4567), 1714564800'123457LL);
}

TEST(NormaliseTimeToMicros, RejectsNonPositiveAndNonFinite) {
  EXPECT_EQ(NormaliseTimeToMicros(0), std::nullopt);
  EXPECT_EQ(NormaliseTimeToMicros(-5), std::nullopt);
  EXPECT_EQ(NormaliseTimeToMicros(std::numeric_limits<double>::infinity()), std::nullopt);
  EXPECT_EQ(NormaliseTimeToMicros(std::numeric_limits<double>::quiet_NaN()), std::nullopt);
  EXPECT_EQ(NormaliseTimeToMicros(1e300), std::nullopt);
}

TEST(ParseEvents, TimeInSecondsAndMillisecondsNormaliseAlike) {
  Event s = OnlyEvent(RecordWithProps(TimeProps("1714564000")));
  Event ms = OnlyEvent(RecordWithProps(TimeProps("1714564000000")));
  EXPECT_EQ(s.time_us, 1714564000LL * 1'000'000);
  EXPECT_EQ(ms.time_us, s.time_us);
  Event frac = OnlyEvent(RecordWithProps(TimeProps("1714564000.25")));
  EXPECT_EQ(frac.time_us, 1714564000'250000LL);
  Event frac_ms = OnlyEvent(RecordWithProps(TimeProps("1714564000123.5")));
  EXPECT_EQ(frac_ms.time_us, 1714564000'123500LL);
  Event exp = OnlyEvent(RecordWithProps(TimeProps("1.714564e9")));
  EXPECT_EQ(exp.time_us, 1714564000LL * 1'000'000);
}

TEST(ParseEvents, TimeIsNotKeptInProperties) {
  EXPECT_EQ(OnlyEvent(RecordWithProps(TimeProps("1714564000"))).properties, "{}");
}

TEST(ParseEvents, MissingTimeRejectedForImport) {
  RecordError e = OnlyError(RecordWithProps(R"("distinct_id":"u1","$insert_id":"id-1")"));
  EXPECT_EQ(e.field, "properties.time");
  EXPECT_EQ(e.reason, "missing_time");
}

TEST(ParseEvents, MissingTimeIsNowForTrack) {
  Event e = OnlyEvent(RecordWithProps(R"("distinct_id":"u1")"), Track());
  EXPECT_EQ(e.time_us, kNowUs);
}

TEST(ParseEvents, NumericStringTimeRejectedWithHint) {
  RecordError e = OnlyError(RecordWithProps(TimeProps(R"("1714564000")")));
  EXPECT_EQ(e.field, "properties.time");
  EXPECT_EQ(e.reason, "invalid_time");
  EXPECT_THAT(e.message, HasSubstr("JSON number"));
  EXPECT_THAT(e.message, HasSubstr("without quotes"));
}

TEST(ParseEvents, NonNumericTimeRejected) {
  EXPECT_EQ(OnlyError(RecordWithProps(TimeProps("true"))).reason, "invalid_time");
  EXPECT_EQ(OnlyError(RecordWithProps(TimeProps("{}"))).reason, "invalid_time");
  EXPECT_EQ(OnlyError(RecordWithProps(TimeProps("-5"))).reason, "invalid_time");
  EXPECT_EQ(OnlyError(RecordWithProps(TimeProps("0"))).reason, "invalid_time");
}

TEST(ParseEvents, HugeTimeRejectedAsFuture) {
  EXPECT_EQ(OnlyError(RecordWithProps(TimeProps("1e400"))).reason, "time_in_future");
  EXPECT_EQ(OnlyError(RecordWithProps(TimeProps("99999999999999999999999"))).reason, "time_in_future");
}

TEST(ParseEvents, Times1971Boundary) {
  // 1971-01-01T00:00:00Z is 31536000 s: accepted; one second earlier is refused.
  EXPECT_EQ(OnlyEvent(RecordWithProps(TimeProps("31536000"))).time_us, kMinTimeUs);
  RecordError e = OnlyError(RecordWithProps(TimeProps("31535999")));
  EXPECT_EQ(e.field, "properties.time");
  EXPECT_EQ(e.reason, "time_too_old");
  EXPECT_THAT(e.message, HasSubstr("days in the past"));
  EXPECT_THAT(e.message, HasSubstr("1970-12-31T23:59:59"));
  EXPECT_THAT(e.message, HasSubstr("1971-01-01"));
  // 31535999.999999 s is still before the boundary.
  EXPECT_EQ(OnlyError(RecordWithProps(TimeProps("31535999.999999"))).reason, "time_too_old");
}

TEST(ParseEvents, OneHourInFutureBoundary) {
  EXPECT_EQ(OnlyEvent(RecordWithProps(TimeProps(std::to_string(kNowS + 3600)))).time_us, kNowUs + kMaxFutureUs);
  EXPECT_EQ(OnlyEvent(RecordWithProps(TimeProps(std::to_string((kNowS + 3600) * 1000)))).time_us,
            kNowUs + kMaxFutureUs);
  RecordError e = OnlyError(RecordWithProps(TimeProps(std::to_string(kNowS + 3601))));
  EXPECT_EQ(e.reason, "time_in_future");
  EXPECT_THAT(e.message, HasSubstr("1 hour"));
  EXPECT_EQ(OnlyError(RecordWithProps(TimeProps(std::to_string((kNowS + 3600) * 1000 + 1)))).reason,
            "time_in_future");
}

TEST(ParseEvents, TrackAcceptsOnlyLastFiveDays) {
  const int64_t five_days = 5 * 86400;
  EXPECT_EQ(OnlyEvent(RecordWithProps(TimeProps(std::to_string(kNowS - five_days))), Track()).time_us,
            kNowUs - kTrackWindowUs);
  RecordError e = OnlyError(RecordWithProps(TimeProps(std::to_string(kNowS - five_days - 1))), Track());
  EXPECT_EQ(e.reason, "time_outside_track_window");
  EXPECT_THAT(e.message, HasSubstr("/import"));
  // /import has no such window.
  EXPECT_EQ(OnlyEvent(RecordWithProps(TimeProps(std::to_string(kNowS - 400 * 86400)))).time_us,
            (kNowS - 400 * 86400) * 1'000'000);
}

TEST(ParseEvents, DuplicateTimeLastWins) {
  Event e = OnlyEvent(RecordWithProps(R"("time":"bad",)" + TimeProps("1714564000")));
  EXPECT_EQ(e.time_us, 1714564000LL * 1'000'000);
}

// ---- distinct_id and identity --------------------------------------------------------------------------------------

TEST(ParseEvents, MissingDistinctIdRejectedForImport) {
  RecordError e = OnlyError(RecordWithProps(R"("time":1714564000,"$insert_id":"x1")"));
  EXPECT_EQ(e.field, "properties.distinct_id");
  EXPECT_EQ(e.reason, "missing_distinct_id");
  EXPECT_EQ(OnlyError(RecordWithProps(R"("time":1714564000,"distinct_id":null,"$insert_id":"x1")")).reason,
            "missing_distinct_id");
}

// Mixpanel's import API: "distinct_id": "" marks an event that belongs to no user; it is stored with an empty
// distinct_id (and exported so), while a $user_id or $device_id still derives one.
TEST(ParseEvents, EmptyDistinctIdMeansNoUserForImport) {
  Event e = OnlyEvent(RecordWithProps(R"("time":1714564000,"distinct_id":"","$insert_id":"x1")"));
  EXPECT_EQ(e.distinct_id, "");
  EXPECT_EQ(e.insert_id, "x1");
  EXPECT_EQ(
      OnlyEvent(RecordWithProps(R"("time":1714564000,"distinct_id":"","$device_id":"d1","$insert_id":"x1")"))
          .distinct_id,
      "$device:d1");
}

TEST(ParseEvents, MissingDistinctIdAllowedForTrack) {
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("time":1714564000)"), Track()).distinct_id, "");
}

TEST(ParseEvents, NumericDistinctIdKeepsItsText) {
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("time":1714564000,"distinct_id":12345,"$insert_id":"x1")")).distinct_id,
            "12345");
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("time":1714564000,"distinct_id":1.50,"$insert_id":"x1")")).distinct_id,
            "1.50");
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("time":1714564000,"distinct_id":123456789012345678901234567890,)"
                                      R"("$insert_id":"x1")"))
                .distinct_id,
            "123456789012345678901234567890");
}

TEST(ParseEvents, DistinctIdOfWrongTypeRejected) {
  RecordError e = OnlyError(RecordWithProps(R"("time":1714564000,"distinct_id":{"a":1},"$insert_id":"x1")"));
  EXPECT_EQ(e.field, "properties.distinct_id");
  EXPECT_EQ(e.reason, "invalid_distinct_id");
}

TEST(ParseEvents, DistinctIdKeptExactlyAsItArrived) {
  Event e = OnlyEvent(RecordWithProps(R"("time":1714564000,"distinct_id":" Ab\u00e9 ","$insert_id":"x1")"));
  EXPECT_EQ(e.distinct_id, " Ab\xc3\xa9 ");
}

TEST(ParseEvents, OnlyDeviceIdDerivesDeviceDistinctId) {
  Event e = OnlyEvent(RecordWithProps(R"("time":1714564000,"$device_id":"d1","$insert_id":"x1","k":1)"));
  EXPECT_EQ(e.distinct_id, "$device:d1");
  EXPECT_EQ(e.device_id, "d1");
  EXPECT_EQ(e.user_id, "");
  EXPECT_EQ(e.properties, R"({"k":1})");
}

TEST(ParseEvents, UserIdBecomesDistinctIdAndLinksTheDevice) {
  ParsedEvents p = MustParse(
      RecordWithProps(R"("time":1714564000,"$device_id":"d1","$user_id":"alice","$insert_id":"x1")"), Import());
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].distinct_id, "alice");
  EXPECT_EQ(p.events[0].device_id, "d1");
  EXPECT_EQ(p.events[0].user_id, "alice");
  EXPECT_EQ(p.events[0].properties, "{}");
  ASSERT_EQ(p.links.size(), 1u);
  EXPECT_EQ(p.links[0].device_id, "d1");
  EXPECT_EQ(p.links[0].user_id, "alice");
}

TEST(ParseEvents, UserIdAloneNeedsNoDistinctId) {
  ParsedEvents p = MustParse(RecordWithProps(R"("time":1714564000,"$user_id":"bob","$insert_id":"x1")"), Import());
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].distinct_id, "bob");
  EXPECT_TRUE(p.links.empty());
}

TEST(ParseEvents, ExplicitDistinctIdWinsOverDerivation) {
  ParsedEvents p = MustParse(RecordWithProps(R"("time":1714564000,"distinct_id":"$device:d1","$device_id":"d1",)"
                                             R"("$user_id":"alice","$insert_id":"x1")"),
                             Import());
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].distinct_id, "$device:d1");
  EXPECT_EQ(p.links.size(), 1u);
}

TEST(ParseEvents, InvalidEventsYieldNoIdentityLinks) {
  ParsedEvents p = MustParse(RecordWithProps(R"("$device_id":"d1","$user_id":"alice","$insert_id":"x1")"), Import());
  EXPECT_TRUE(p.events.empty());
  EXPECT_TRUE(p.links.empty());
}

TEST(IsPlaceholderId, KnownPlaceholdersCaseInsensitive) {
  for (std::string_view id : {"anon", "ANONYMOUS", "Nil", "none", "NULL", "n/a", "N/A", "na", "Undefined",
                              "unknown", "<nil>", "<NIL>", "0", "-1", "TRUE", "false", "[]", "{}",
                              "00000000-0000-0000-0000-000000000000"}) {
    EXPECT_TRUE(IsPlaceholderId(id)) << id;
  }
  for (std::string_view id : {"", "anon1", "nulll", "00", "1", "-2", "user-0", "00000000-0000-0000-0000-000000000001",
                              " null"}) {
    EXPECT_FALSE(IsPlaceholderId(id)) << id;
  }
}

TEST(ParseEvents, PlaceholderDistinctIdRejected) {
  for (std::string_view id : {R"("Anonymous")", R"("NULL")", R"("n/a")", R"("<NIL>")", "0", "-1",
                              R"("00000000-0000-0000-0000-000000000000")"}) {
    RecordError e = OnlyError(RecordWithProps(R"("time":1714564000,"distinct_id":)" + std::string(id) +
                                              R"(,"$insert_id":"x1")"));
    EXPECT_EQ(e.field, "properties.distinct_id") << id;
    EXPECT_EQ(e.reason, "placeholder_distinct_id") << id;
  }
}

TEST(ParseEvents, PlaceholderUserIdRejected) {
  RecordError e = OnlyError(RecordWithProps(R"("time":1714564000,"$user_id":"undefined","$insert_id":"x1")"));
  EXPECT_EQ(e.field, "properties.$user_id");
  EXPECT_EQ(e.reason, "placeholder_distinct_id");
}

// ---- $insert_id ----------------------------------------------------------------------------------------------------

std::string InsertIdProps(std::string_view insert_id_json) {
  return R"("time":1714564000,"distinct_id":"u1","$insert_id":)" + std::string(insert_id_json);
}

TEST(ParseEvents, MissingInsertIdRejectedForImport) {
  RecordError e = OnlyError(RecordWithProps(R"("time":1714564000,"distinct_id":"u1")"));
  EXPECT_EQ(e.field, "properties.$insert_id");
  EXPECT_EQ(e.reason, "missing_insert_id");
}

TEST(ParseEvents, MissingInsertIdGeneratedForTrack) {
  Event a = OnlyEvent(RecordWithProps(R"("distinct_id":"u1")"), Track());
  Event b = OnlyEvent(RecordWithProps(R"("distinct_id":"u1")"), Track());
  ASSERT_EQ(a.insert_id.size(), 32u);
  EXPECT_EQ(a.insert_id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a.insert_id, b.insert_id);
}

TEST(ParseEvents, InsertIdLengthBoundary) {
  const std::string id36(36, 'a');
  EXPECT_EQ(OnlyEvent(RecordWithProps(InsertIdProps("\"" + id36 + "\""))).insert_id, id36);
  RecordError e = OnlyError(RecordWithProps(InsertIdProps("\"" + id36 + "b\"")));
  EXPECT_EQ(e.field, "properties.$insert_id");
  EXPECT_EQ(e.reason, "invalid_insert_id");
  EXPECT_EQ(e.insert_id, id36 + "b");
  EXPECT_THAT(e.message, HasSubstr("37 characters"));
}

TEST(ParseEvents, InsertIdCharset) {
  EXPECT_EQ(OnlyEvent(RecordWithProps(InsertIdProps(R"("AZaz09-")"))).insert_id, "AZaz09-");
  for (std::string_view bad : {R"("a_b")", R"("a b")", R"("a.b")", R"("\u00e9")", R"("a/b")"}) {
    EXPECT_EQ(OnlyError(RecordWithProps(InsertIdProps(bad))).reason, "invalid_insert_id") << bad;
  }
  EXPECT_EQ(OnlyError(RecordWithProps(InsertIdProps("12345"))).reason, "invalid_insert_id");
}

TEST(ParseEvents, PlaceholderInsertIdRejected) {
  for (std::string_view bad : {R"("UNDEFINED")", R"("null")", R"("N/A")", R"("0")",
                               R"("00000000-0000-0000-0000-000000000000")"}) {
    RecordError e = OnlyError(RecordWithProps(InsertIdProps(bad)));
    EXPECT_EQ(e.reason, "placeholder_insert_id") << bad;
    EXPECT_EQ(e.field, "properties.$insert_id");
  }
}

TEST(ParseEvents, TrackValidatesAGivenInsertId) {
  EXPECT_EQ(OnlyError(RecordWithProps(R"("$insert_id":"no spaces")"), Track()).reason, "invalid_insert_id");
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("$insert_id":"abc")"), Track()).insert_id, "abc");
}

// ---- token and ip ---------------------------------------------------------------------------------------------------

TEST(ParseEvents, TrackTokenExtractedAndRemoved) {
  ParsedEvents p = MustParse(R"([{"event":"a","properties":{"token":"tok1","k":"v"}},)"
                             R"({"event":"b","properties":{"k":"v"}}])",
                             Track());
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.tokens, (std::vector<std::string>{"tok1", ""}));
  EXPECT_EQ(p.events[0].properties, R"({"k":"v"})");
}

TEST(ParseEvents, ImportTokenRemovedFromProperties) {
  EXPECT_EQ(OnlyEvent(Record(R"("token":"tok1","k":"v")")).properties, R"({"k":"v"})");
}

// mp_processing_time_ms is the server's (the time the event was stored, as Mixpanel sets it): a client's
// value is dropped, so an export line never carries the key twice or a forged value; a malformed one still
// refuses the event like any malformed property.
TEST(ParseEvents, ClientProcessingTimeIsDroppedFromProperties) {
  EXPECT_EQ(OnlyEvent(Record(R"("mp_processing_time_ms":1,"k":"v")")).properties, R"({"k":"v"})");
  EXPECT_EQ(OnlyEvent(Record(R"("k":"v","mp_processing_time_ms":{"a":[1,2]})")).properties, R"({"k":"v"})");
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("mp_processing_time_ms":"x")"), Track()).properties, "{}");
  EXPECT_EQ(OnlyEvent(Record(R"("mp_processing_time_msx":1)")).properties, R"({"mp_processing_time_msx":1})");
}

// ip=1: the request's country becomes mp_country_code when the event has none (its own wins); the address is
// never stored, and a client's own "ip" property stays as sent.
TEST(ParseEvents, ClientCountryAddedWhenEventHasNone) {
  ParseOptions opts = Track();
  opts.client_country = "DE";
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("k":1)"), opts).properties, R"({"k":1,"mp_country_code":"DE"})");
  EXPECT_EQ(OnlyEvent(RecordWithProps(""), opts).properties, R"({"mp_country_code":"DE"})");
  EXPECT_EQ(OnlyEvent(R"({"event":"e"})", opts).properties, R"({"mp_country_code":"DE"})");
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("mp_country_code":"FR")"), opts).properties,
            R"({"mp_country_code":"FR"})");
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("k":1)"), Track()).properties, R"({"k":1})");
}

// Mixpanel's server-side geolocation: an event's own `ip` property is the address it is placed by, instead of
// the request's, and is not stored.
TEST(ParseEvents, AnEventsOwnIpGivesItsCountryAndIsNeverStored) {
  auto geo = CountryLookup::Open();
  ASSERT_TRUE(geo.ok()) << geo.error().ToString();
  ParseOptions opts = Track();
  opts.geoip = geo->get();
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("k":1,"ip":"8.8.8.8")"), opts).properties,
            R"({"k":1,"mp_country_code":"US"})");
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("mp_country_code":"FR","ip":"8.8.8.8")"), opts).properties,
            R"({"mp_country_code":"FR"})");
  opts.client_country = "DE";  // ip=1: the request's country, which the event's own address overrides
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("ip":"8.8.8.8")"), opts).properties, R"({"mp_country_code":"US"})");
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("ip":"10.0.0.1","k":1)"), opts).properties, R"({"k":1})")
      << "a private address places the event nowhere";
  EXPECT_EQ(OnlyEvent(RecordWithProps(R"("ip":5)"), opts).properties, R"({"ip":5,"mp_country_code":"DE"})")
      << "an ip that is no address text is an ordinary property";
  // On /import too, and without a database the address is still not stored.
  const std::string record = Record(R"("ip":"8.8.8.8")");
  opts = Import();
  opts.geoip = geo->get();
  EXPECT_NE(OnlyEvent(record, opts).properties.find(R"("mp_country_code":"US")"), std::string::npos);
  EXPECT_EQ(OnlyEvent(record, Import()).properties.find("8.8.8.8"), std::string::npos);
}

// ---- limits ----------------------------------------------------------------------------------------------------------

std::string ManyProps(size_t n) {
  std::string props = TimeProps("1714564000");  // 3 keys
  for (size_t i = 3; i < n; ++i) props += ",\"p" + std::to_string(i) + "\":" + std::to_string(i);
  return props;
}

TEST(ParseEvents, PropertyCountBoundary) {
  Event e = OnlyEvent(RecordWithProps(ManyProps(254)));
  EXPECT_EQ(std::count(e.properties.begin(), e.properties.end(), ':'), 251);
  RecordError err = OnlyError(RecordWithProps(ManyProps(255)));
  EXPECT_EQ(err.field, "properties");
  EXPECT_EQ(err.reason, "too_many_properties");
}

TEST(ParseEvents, NestingDepthBoundary) {
  // A property value nesting three containers is accepted...
  EXPECT_EQ(OnlyEvent(Record(R"("a":{"b":{"c":{"d":1}}})")).properties, R"({"a":{"b":{"c":{"d":1}}}})");
  EXPECT_EQ(OnlyEvent(Record(R"("a":[[[1]]])")).properties, R"({"a":[[[1]]]})");
  EXPECT_EQ(OnlyEvent(Record(R"("a":[{"b":[]}])")).properties, R"({"a":[{"b":[]}]})");
  // ...and so are properties shaped like {"a":{"b":{"c":1}}}.
  EXPECT_EQ(OnlyEvent(Record(R"("a":{"b":{"c":1}})")).properties, R"({"a":{"b":{"c":1}}})");
  // A fourth level is refused, objects or arrays alike.
  RecordError e = OnlyError(Record(R"("a":{"b":{"c":{"d":{"e":1}}}})"));
  EXPECT_EQ(e.field, "properties.a");
  EXPECT_EQ(e.reason, "too_deep");
  EXPECT_EQ(OnlyError(Record(R"("a":[[[[1]]]])")).reason, "too_deep");
  EXPECT_EQ(OnlyError(Record(R"("a":[{"b":[{}]}])")).reason, "too_deep");
}

std::string ArrayOf(size_t n) {
  std::string a = "[";
  for (size_t i = 0; i < n; ++i) a += (i ? ",\"x\"" : "\"x\"");
  return a + "]";
}

TEST(ParseEvents, ArrayLengthBoundary) {
  EXPECT_EQ(OnlyEvent(Record("\"a\":" + ArrayOf(254))).properties, "{\"a\":" + ArrayOf(254) + "}");
  RecordError e = OnlyError(Record("\"a\":" + ArrayOf(255)));
  EXPECT_EQ(e.field, "properties.a");
  EXPECT_EQ(e.reason, "array_too_long");
  // Every level counts.
  EXPECT_EQ(OnlyError(Record("\"a\":{\"b\":" + ArrayOf(255) + "}")).reason, "array_too_long");
  EXPECT_EQ(OnlyError(Record("\"a\":[[" + ArrayOf(255) + "]]")).reason, "array_too_long");
}

TEST(ParseEvents, EventSizeBoundary) {
  EXPECT_EQ(OnlyEvent(Record("\"big\":\"" + std::string(900'000, 'x') + "\"")).properties.size(), 900'010u);
  RecordError e = OnlyError(Record("\"big\":\"" + std::string(kMaxEventBytes, 'x') + "\""));
  EXPECT_EQ(e.reason, "event_too_large");
  // Spread over many properties, too.
  std::string props;
  for (int i = 0; i < 20; ++i) props += (i ? "," : "") + ("\"p" + std::to_string(i) + "\":\"") + std::string(60'000, 'y') + "\"";
  EXPECT_EQ(OnlyError(Record(props)).reason, "event_too_large");
}

TEST(ParseEvents, TooManyEventsFailsTheRequest) {
  std::string payload = "[";
  for (size_t i = 0; i < 2001; ++i) payload += (i ? "," : "") + Record();
  auto r = ParseEvents(payload + "]", Import());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge);
  EXPECT_EQ(r.error().message.find("too many events: 2001 > 2000"), 0u) << r.error().message;

  std::string ok = "[";
  for (size_t i = 0; i < 2000; ++i) ok += (i ? "," : "") + Record("", "i" + std::to_string(i));
  EXPECT_EQ(MustParse(ok + "]", Import()).events.size(), 2000u);
}

TEST(ParseEvents, TooManyNdjsonLinesFailsTheRequest) {
  std::string payload;
  for (size_t i = 0; i < 2001; ++i) payload += Record() + "\n";
  auto r = ParseEvents(payload, Import(PayloadFormat::kNdjson));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge);
  EXPECT_THAT(r.error().message, HasSubstr("too many events: 2001 > 2000"));
}

TEST(ParseEvents, PayloadOverTenMegabytesFailsTheRequest) {
  std::string payload(kMaxBatchBytes + 1, ' ');
  payload[0] = '[';
  payload.back() = ']';
  auto r = ParseEvents(payload, Import());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge);
  EXPECT_THAT(r.error().message, HasSubstr("10000000"));
}

// ---- lossless properties -------------------------------------------------------------------------------------------

TEST(ParseEvents, NumbersKeepTheirExactText) {
  const std::string numbers =
      R"("big":123456789012345678901234567890,"dec":1.10,"max":1.7976931348623157e308,"neg":-0.0,"exp":1E+2,)"
      R"("tiny":5e-324,"under":1e-400,"u64":18446744073709551616,"zero":0,)"
      R"("frac":0.1000000000000000055511151231257827)";
  EXPECT_EQ(OnlyEvent(Record(numbers)).properties, "{" + numbers + "}");
  // The longest integers that still fit a double keep every digit too.
  const std::string digits300 = "\"d\":" + std::string(300, '9');
  const std::string digits308 = "\"e\":1" + std::string(308, '0');
  EXPECT_EQ(OnlyEvent(Record(digits300 + "," + digits308)).properties,
            "{" + digits300 + "," + digits308 + "}");
}

// A number past the largest double is valid JSON, but Go's encoding/json, BigQuery's loaders and other strict
// readers refuse the whole export file that holds one. Such an event is refused (as a profile update is), at
// any depth, naming the property; the other events of the batch are stored.
TEST(ParseEvents, NumbersThatDoNotFitADoubleRefuseTheEvent) {
  for (const std::string& value :
       std::vector<std::string>{"1e400", "-1e999", "1E+309", "1.8e308", "[1,2,1e400]", "{\"k\":[-1e400]}",
                                "1" + std::string(309, '0'), "-" + std::string(309, '9')}) {
    RecordError e = OnlyError(Record("\"n\":" + value));
    EXPECT_EQ(e.reason, "number_out_of_range") << value;
    EXPECT_EQ(e.field, "properties.n") << value;
    EXPECT_THAT(e.message, HasSubstr("does not fit a 64-bit double")) << value;
    EXPECT_THAT(e.message, HasSubstr("send it as a string")) << value;
  }
  // The message shows a long number cut short.
  EXPECT_THAT(OnlyError(Record("\"n\":1" + std::string(400, '0'))).message,
              HasSubstr("1" + std::string(kMaxEchoedChars - 1, '0') + "\u2026"));
  ParsedEvents p =
      MustParse("[" + Record("\"n\":1e400") + "," + Record("\"n\":1e300", "id-2") + "]", Import());
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].properties, R"({"n":1e300})");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].index, 0u);
}

TEST(ParseEvents, StringsKeepTheirEscapes) {
  const std::string strings =
      R"("u":"\u00e9\ud83d\ude00","q":"a\"b\\c\/d","ctl":"\n\t\r\b\f\u0000","raw":"é😀","e":"")";
  EXPECT_EQ(OnlyEvent(Record(strings)).properties, "{" + strings + "}");
}

TEST(ParseEvents, KeysKeepTheirEscapes) {
  const std::string props = R"("a\"b":1,"\u00e9":2,"x\\y":3,"":4)";
  EXPECT_EQ(OnlyEvent(Record(props)).properties, "{" + props + "}");
}

TEST(ParseEvents, WhitespaceIsRemoved) {
  Event e = OnlyEvent("[ {\n \"event\" : \"e\" ,\r\n \"properties\" : {\t\"time\" : 1714564000 , \"distinct_id\" : "
                      "\"u1\" , \"$insert_id\" : \"x1\" , \"a\" : [ 1 , { \"b\" : \"c d\" } , [ ] , { } ] ,"
                      " \"n\" : null , \"t\" : true , \"f\" : false , \"s\" : \" s \" } } ]");
  EXPECT_EQ(e.properties, R"({"a":[1,{"b":"c d"},[],{}],"n":null,"t":true,"f":false,"s":" s "})");
}

TEST(ParseEvents, NestedObjectsCopiedAsTheyArrived) {
  // Only top-level properties are deduplicated; nested values are copied byte for byte (minified).
  EXPECT_EQ(OnlyEvent(Record(R"("o":{"k":1,"k":2})")).properties, R"({"o":{"k":1,"k":2}})");
}

TEST(ParseEvents, DuplicatePropertyLastWins) {
  EXPECT_EQ(OnlyEvent(Record(R"("a":1,"b":2,"a":3)")).properties, R"({"b":2,"a":3})");
  // Names are compared after unescaping.
  EXPECT_EQ(OnlyEvent(Record(R"("a":1,"\u0061":{"x":[1]})")).properties, R"({"\u0061":{"x":[1]}})");
  EXPECT_EQ(OnlyEvent(Record(R"("a":1,"a":2,"a":3,"c":4)")).properties, R"({"a":3,"c":4})");
}

TEST(ParseEvents, EscapedPromotedKeysAreRecognised) {
  Event e = OnlyEvent(RecordWithProps(R"("\u0074ime":1714564000,"distinct_\u0069d":"u1","$insert_id":"x1")"));
  EXPECT_EQ(e.time_us, 1714564000LL * 1'000'000);
  EXPECT_EQ(e.distinct_id, "u1");
  EXPECT_EQ(e.properties, "{}");
}

TEST(ParseEvents, ManyPropertiesRoundTrip) {
  std::string props;
  for (int i = 0; i < 200; ++i) props += (i ? "," : "") + ("\"key_number_" + std::to_string(i) + "\":" + std::to_string(i));
  EXPECT_EQ(OnlyEvent(Record(props)).properties, "{" + props + "}");
}

// ---- malformed JSON --------------------------------------------------------------------------------------------------

void ExpectMalformed(std::string_view payload, std::string_view needle = "malformed JSON") {
  auto r = ParseEvents(payload, Import());
  ASSERT_FALSE(r.ok()) << payload;
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr(std::string(needle))) << payload;
}

TEST(ParseEvents, NotJsonFailsTheRequest) {
  ExpectMalformed("hello", "at byte 0");
  ExpectMalformed("", "empty payload");
  ExpectMalformed("   ", "empty payload");
  ExpectMalformed("[" + Record() + "," + Record(), "malformed JSON");
  ExpectMalformed("[" + Record() + " " + Record() + "]", "malformed JSON");
  ExpectMalformed("[" + Record() + "] x", "not closed, or other content follows");
  ExpectMalformed("[" + Record() + "] []", "after the array");
  ExpectMalformed("\"just a string\"", "at byte 0");
}

TEST(ParseEvents, MalformedErrorSaysWhere) {
  const std::string first = Record();
  auto r = ParseEvents("[" + first + "," + Record(R"("bad":tru)") + "]", Import());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("record 1"));
  EXPECT_THAT(r.error().message, HasSubstr("at byte "));
}

TEST(ParseEvents, InvalidScalarsInPropertiesFailTheRequest) {
  ExpectMalformed(Record(R"("n":01)"));
  ExpectMalformed(Record(R"("n":1.)"));
  ExpectMalformed(Record(R"("n":-)"));
  ExpectMalformed(Record(R"("n":+1)"));
  ExpectMalformed(Record(R"("n":NaN)"));
  ExpectMalformed(Record(R"("b":tru)"));
  ExpectMalformed(Record(R"("b":nul)"));
  ExpectMalformed(Record(R"("s":"\x")"));
  ExpectMalformed(Record(R"("s":"\u12")"));
  ExpectMalformed(Record(R"("a":[1,{"s":"\q"}])"));
  ExpectMalformed(Record(R"("a\q":1)"));
  ExpectMalformed(R"([{"ev\ent":"e"}])");                     // found by fuzz_ingest_events
  ExpectMalformed(R"([{"event":"e","properties":{"o":{"\e":1}}}])");
  ExpectMalformed(Record(R"("s":")" + std::string("a\x01") + "\""));
  ExpectMalformed(Record(R"("s":")" + std::string("a\tb") + "\""));  // a raw tab must be escaped
  ExpectMalformed(Record(R"("k)" + std::string("\x1f") + R"(":1)"));
  ExpectMalformed(Record(R"("s":"\ud800")"));  // a lone surrogate escape
}

TEST(ParseEvents, InvalidUtf8FailsTheRequestWithOffset) {
  std::string payload = Record(R"("s":"ab)" + std::string("\xff") + "\"");
  auto r = ParseEvents(payload, Import());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("at byte " + std::to_string(payload.find('\xff'))));
  EXPECT_THAT(r.error().message, HasSubstr("UTF-8"));
}

TEST(ParseEvents, RecordAbandonedMidWalkDoesNotDisturbTheNext) {
  std::string payload = "[" + Record(R"("deep":[[[[[1,2]]]]],"after":{"x":[1,2,3]})", "a1") + "," +
                        Record(R"("ok":[1,{"y":2}])", "b2") + "," + Record("\"long\":" + ArrayOf(300), "c3") + "," +
                        Record(R"("fine":true)", "d4") + "]";
  ParsedEvents p = MustParse(payload, Import());
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[0].insert_id, "b2");
  EXPECT_EQ(p.events[0].properties, R"({"ok":[1,{"y":2}]})");
  EXPECT_EQ(p.events[1].insert_id, "d4");
  ASSERT_EQ(p.errors.size(), 2u);
  EXPECT_EQ(p.errors[0].reason, "too_deep");
  EXPECT_EQ(p.errors[1].reason, "array_too_long");
}

TEST(ParseEvents, SingleInvalidObjectWithTrailingGarbageFailsTheRequest) {
  ExpectMalformed(R"({"event":"e","properties":{"a":[[[[1]]]]}} x)", "other content follows");
  ExpectMalformed(R"({"event":"e","properties":{"a":[[[[1]]]]}} {})", "after the event object");
  ExpectMalformed(Record() + " " + Record(), "after the event object");
}

// ---- NDJSON ----------------------------------------------------------------------------------------------------------

TEST(ParseEvents, NdjsonWithBlankAndBadLines) {
  std::string payload = Record("", "a1") + "\n\n   \r\n" + "{\"event\": oops}\n" + Record("", "b2") + "\r\n" +
                        "[1,2]\n" + Record("", "c3") + " " + Record("", "c4") + "\n" + Record("", "d5");
  ParsedEvents p = MustParse(payload, Import(PayloadFormat::kNdjson));
  EXPECT_EQ(p.total_records, 6u);
  ASSERT_EQ(p.events.size(), 3u);
  EXPECT_EQ(p.events[0].insert_id, "a1");
  EXPECT_EQ(p.events[1].insert_id, "b2");
  EXPECT_EQ(p.events[2].insert_id, "d5");
  EXPECT_EQ(p.event_indexes, (std::vector<size_t>{0, 2, 5}));
  ASSERT_EQ(p.errors.size(), 3u);
  EXPECT_EQ(p.errors[0].index, 1u);
  EXPECT_EQ(p.errors[0].reason, "malformed_json");
  EXPECT_THAT(p.errors[0].message, HasSubstr("line 4"));
  EXPECT_EQ(p.errors[1].index, 3u);
  EXPECT_EQ(p.errors[1].reason, "not_an_object");
  EXPECT_EQ(p.errors[2].index, 4u);
  EXPECT_EQ(p.errors[2].reason, "malformed_json");
  EXPECT_THAT(p.errors[2].message, HasSubstr("line 7"));  // two objects on one line
}

TEST(ParseEvents, NdjsonLastLineWithoutNewline) {
  ParsedEvents p = MustParse(Record("", "a1") + "\n" + Record("", "b2"), Import(PayloadFormat::kNdjson));
  EXPECT_EQ(p.events.size(), 2u);
}

TEST(ParseEvents, NdjsonAllLinesBadFailsTheRequest) {
  auto r = ParseEvents("nope\n{bad\n", Import(PayloadFormat::kNdjson));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("line 1"));
  auto empty = ParseEvents("\n \n", Import(PayloadFormat::kNdjson));
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.error().message, HasSubstr("empty payload"));
}

TEST(ParseEvents, NdjsonLineWithInvalidRecordIsJustARecordError) {
  ParsedEvents p = MustParse(R"({"event":"e"})", Import(PayloadFormat::kNdjson));
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].reason, "missing_time");
}

TEST(ParseEvents, NdjsonSentAsJsonIsParsedAsNdjson) {
  ParsedEvents p = MustParse(Record("", "a1") + "\n" + Record("", "b2") + "\n", Import());
  EXPECT_EQ(p.total_records, 2u);
  EXPECT_EQ(p.events.size(), 2u);
  ParsedEvents q = MustParse(RecordWithProps("") + "\n" + Record("", "b2") + "\n", Import());
  EXPECT_EQ(q.total_records, 2u);
  EXPECT_EQ(q.events.size(), 1u);
  EXPECT_EQ(q.errors.size(), 1u);
}

TEST(ParseEvents, OtherTopLevelKeysIgnored) {
  Event e = OnlyEvent(R"({"event":"e","$mp_metadata":{"x":1},"properties":{)" + TimeProps("1714564000") + "}}");
  EXPECT_EQ(e.properties, "{}");
}

// ---- legacy /import: derived $insert_id (issue 10 item 4); echoed values truncated (issue 9 item 8) ----

ParseOptions LegacyImport() {
  ParseOptions o = Import();
  o.derive_insert_id = true;
  return o;
}

std::string NoIdRecord(std::string_view props) {
  return R"({"event":"E","properties":{"time":)" + std::to_string(kNowS - 60) + R"(,"distinct_id":"u1",)" +
         std::string(props) + "}}";
}

TEST(LegacyImport, DerivesADeterministicInsertIdFromTheContent) {
  Event a = OnlyEvent(NoIdRecord(R"("plan":"pro","n":1)"), LegacyImport());
  EXPECT_EQ(a.insert_id.size(), 32u);
  EXPECT_TRUE(std::all_of(a.insert_id.begin(), a.insert_id.end(),
                          [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
  // The same event again (key order does not matter) gets the same id, so the store deduplicates the resend.
  EXPECT_EQ(OnlyEvent(NoIdRecord(R"("n":1,"plan":"pro")"), LegacyImport()).insert_id, a.insert_id);
  // Any difference in content gives another id.
  EXPECT_NE(OnlyEvent(NoIdRecord(R"("plan":"pro","n":2)"), LegacyImport()).insert_id, a.insert_id);
  EXPECT_NE(OnlyEvent(NoIdRecord(R"("plan":"pro","n":1,"$device_id":"d")"), LegacyImport()).insert_id,
            a.insert_id);
  // An $insert_id that was sent is kept; strict /import still requires one.
  EXPECT_EQ(OnlyEvent(NoIdRecord(R"("$insert_id":"mine-1")"), LegacyImport()).insert_id, "mine-1");
  EXPECT_EQ(OnlyError(NoIdRecord(R"("plan":"pro")")).reason, "missing_insert_id");
}

TEST(EchoedValues, AHugeInvalidInsertIdIsTruncatedInTheError) {
  const std::string huge(9'000'000, '!');  // the issue's 10 MB, within one request's limit
  RecordError e = OnlyError(NoIdRecord(R"("$insert_id":")" + huge + "\""));
  EXPECT_EQ(e.reason, "invalid_insert_id");
  EXPECT_LT(e.message.size(), 300u);
  EXPECT_LT(e.insert_id.size(), 80u);
  EXPECT_THAT(e.insert_id, HasSubstr("\u2026"));
  const std::string long_id(5000, 'p');
  RecordError placeholder_like = OnlyError(NoIdRecord(R"("$insert_id":")" + long_id + "\""));
  EXPECT_LT(placeholder_like.message.size(), 300u);
}

TEST(PaddedPayloadTest, ParsesInPlaceExactlyAsACopiedPayload) {
  std::string payload = "[" + Record(R"("plan":"pro","n":1.50,"nested":{"a":[1,2]})", "id-1") + "," +
                        Record("", "id-2") + "," + R"({"event":"x"})" + "]";
  // The payload as GunzipBoundedPadded hands it over: followed by kParsePadding zero bytes.
  std::string buffer = payload + std::string(kParsePadding, '\0');
  ParseOptions padded = Import();
  padded.payload_padded = true;
  ParsedEvents in_place = MustParse(std::string_view(buffer.data(), payload.size()), padded);
  ParsedEvents copied = MustParse(payload, Import());
  ASSERT_EQ(in_place.events.size(), 2u);
  ASSERT_EQ(in_place.events.size(), copied.events.size());
  for (size_t i = 0; i < copied.events.size(); ++i) {
    EXPECT_EQ(in_place.events[i].properties, copied.events[i].properties);
    EXPECT_EQ(in_place.events[i].insert_id, copied.events[i].insert_id);
    EXPECT_EQ(in_place.events[i].time_us, copied.events[i].time_us);
  }
  ASSERT_EQ(in_place.errors.size(), 1u);
  EXPECT_EQ(in_place.errors[0].message, copied.errors[0].message);

  // Malformed JSON: the same message, byte offset included.
  const std::string bad = "[" + Record() + ",{\"event\":}]";
  std::string bad_buffer = bad + std::string(kParsePadding, '\0');
  auto a = ParseEvents(std::string_view(bad_buffer.data(), bad.size()), padded);
  auto b = ParseEvents(bad, Import());
  ASSERT_FALSE(a.ok());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(a.error().message, b.error().message);
}

}  // namespace
}  // namespace sluice::ingest

namespace sluice::ingest {
namespace {

void ExpectSameParse(const ParsedEvents& a, const ParsedEvents& b) {
  ASSERT_EQ(a.events.size(), b.events.size());
  for (size_t i = 0; i < a.events.size(); ++i) {
    EXPECT_EQ(a.events[i].name, b.events[i].name) << i;
    EXPECT_EQ(a.events[i].time_us, b.events[i].time_us) << i;
    EXPECT_EQ(a.events[i].distinct_id, b.events[i].distinct_id) << i;
    EXPECT_EQ(a.events[i].device_id, b.events[i].device_id) << i;
    EXPECT_EQ(a.events[i].user_id, b.events[i].user_id) << i;
    EXPECT_EQ(a.events[i].insert_id, b.events[i].insert_id) << i;
    EXPECT_EQ(a.events[i].properties, b.events[i].properties) << i;
  }
  EXPECT_EQ(a.event_indexes, b.event_indexes);
  ASSERT_EQ(a.links.size(), b.links.size());
  for (size_t i = 0; i < a.links.size(); ++i) {
    EXPECT_EQ(a.links[i].device_id, b.links[i].device_id);
    EXPECT_EQ(a.links[i].user_id, b.links[i].user_id);
  }
  ASSERT_EQ(a.errors.size(), b.errors.size());
  for (size_t i = 0; i < a.errors.size(); ++i) {
    EXPECT_EQ(a.errors[i].index, b.errors[i].index);
    EXPECT_EQ(a.errors[i].reason, b.errors[i].reason);
    EXPECT_EQ(a.errors[i].message, b.errors[i].message);
  }
  EXPECT_EQ(a.total_records, b.total_records);
}

// Cloud Import hands its batch buffer over padded: each NDJSON line is parsed where it lies, so simdjson's
// look-ahead past a line reads the next lines (and, after the last, padding that need not be zeros).
TEST(PaddedPayloadTest, NdjsonLinesParseInPlaceExactlyAsCopiedLines) {
  const std::string lines[] = {
      Record(R"("$device_id":"dev-1","$user_id":"user-1","n":1.50)", "id-1"),
      R"({"event":"cut","properties":{"time":17)",                  // truncated inside a number
      "12",                                                          // a root number, followed by digits below
      "34",
      "tru",                                                         // a truncated atom
      R"({"event":"e","properties":{"a":"unterminated)",            // an unclosed string
      Record("", "id-2") + R"( {"event":"second"})",                 // trailing content
      "null",
      RecordWithProps(R"("time":1714564000,"$device_id":"d9","$insert_id":"id-3")"),  // distinct_id derived
      R"({"event":"x","properties":{"time":1714564000,"distinct_id":"u2","$insert_id":"id-4","v":[1,{"k":null}]}})",
  };
  std::string payload;
  for (const auto& l : lines) payload += l + "\n";
  payload += "  " + Record("", "id-5");  // the last line without a newline
  // Padding of structural garbage: were it parsed as part of the last line, the result would differ.
  std::string buffer = payload;
  while (buffer.size() < payload.size() + kParsePadding) buffer += "\"]}1e9,{\"";
  ParseOptions padded = Import(PayloadFormat::kNdjson);
  padded.payload_padded = true;
  ParsedEvents in_place = MustParse(std::string_view(buffer.data(), payload.size()), padded);
  ParsedEvents copied = MustParse(payload, Import(PayloadFormat::kNdjson));
  EXPECT_EQ(in_place.events.size(), 4u);
  EXPECT_EQ(in_place.errors.size(), 7u);
  ExpectSameParse(in_place, copied);

  // A line ending exactly at the payload's end, directly followed by the padding.
  const std::string one = Record("", "id-6");
  std::string one_buffer = one + std::string(kParsePadding, '9');
  ExpectSameParse(MustParse(std::string_view(one_buffer.data(), one.size()), padded),
                  MustParse(one, Import(PayloadFormat::kNdjson)));
}

// Cloud Import hands written events back for the next batch: each is filled again in place (its strings keep
// their buffers), and no value of the earlier event survives.
TEST(RecycledEventsTest, ReusesTheStringsAndOverwritesEveryField) {
  std::vector<Event> spare(2);
  for (Event& e : spare) {
    e.name = std::string(300, 'n');
    e.time_us = 42;
    e.distinct_id = std::string(300, 'd');
    e.device_id = std::string(300, 'v');
    e.user_id = std::string(300, 'u');
    e.insert_id = std::string(300, 'i');
    e.properties = std::string(3000, 'p');
  }
  const char* properties_buffer = spare.back().properties.data();
  const char* distinct_buffer = spare.back().distinct_id.data();
  const std::string payload = Record(R"("plan":"pro")", "id-1") + "\n" +
                              RecordWithProps(R"("time":1714564000,"$device_id":"d9","$insert_id":"id-2")") + "\n" +
                              Record("", "id-3") + "\n";
  ParseOptions recycling = Import(PayloadFormat::kNdjson);
  recycling.recycled_events = &spare;
  ParsedEvents reused = MustParse(payload, recycling);
  ParsedEvents fresh = MustParse(payload, Import(PayloadFormat::kNdjson));
  ExpectSameParse(reused, fresh);
  ASSERT_EQ(reused.events.size(), 3u);
  EXPECT_TRUE(spare.empty());  // both taken, the third event is new
  EXPECT_EQ(reused.events[0].properties.data(), properties_buffer);
  EXPECT_EQ(reused.events[0].distinct_id.data(), distinct_buffer);
  EXPECT_TRUE(reused.events[0].device_id.empty());
  EXPECT_TRUE(reused.events[0].user_id.empty());
  EXPECT_EQ(reused.events[1].distinct_id, "$device:d9");
  EXPECT_EQ(reused.events[1].device_id, "d9");
  EXPECT_TRUE(reused.events[1].user_id.empty());
}

/// Keeps what a sink is handed, as a store's event batch would.
class RecordingSink final : public EventSink {
 public:
  void Add(const Event& event, std::string_view properties) override {
    Event& e = events.emplace_back(event);
    EXPECT_TRUE(e.properties.empty()) << "the properties come apart from the event";
    e.properties.assign(properties);
  }
  std::vector<Event> events;
};

// With a sink, every accepted record reaches it with its properties (the same as without a sink), in order,
// and only accepted ones: invalid records, and an NDJSON line whose valid record is followed by more JSON, do
// not. The parsed events keep every field but their properties.
TEST(ParseEvents, ASinkGetsEveryAcceptedEventWithItsPropertiesAndNothingElse) {
  for (PayloadFormat format : {PayloadFormat::kJson, PayloadFormat::kNdjson}) {
    const bool nd = format == PayloadFormat::kNdjson;
    const std::string sep = nd ? "\n" : ",";
    std::string payload = nd ? "" : "[";
    payload += Record(R"("plan":"pro","nested":{"a":[1,2]})", "id-1") + sep;
    payload += RecordWithProps(R"("time":1714564000,"$insert_id":"id-2")") + sep;  // no distinct_id: refused
    payload += RecordWithProps(R"("time":1714564000,"distinct_id":"u2","$device_id":"d9","$user_id":"u2",)"
                               R"("$insert_id":"id-3","n":1.10)") + sep;
    if (nd) payload += Record("", "id-4") + " {\"more\":1}" + sep;  // trailing content: a line error
    payload += Record(R"("big":")" + std::string(3000, 'b') + "\"", "id-5");
    payload += nd ? "\n" : "]";

    RecordingSink sink;
    ParseOptions with_sink = Import(format);
    with_sink.sink = &sink;
    ParsedEvents parsed = MustParse(payload, with_sink);
    ParsedEvents plain = MustParse(payload, Import(format));
    ASSERT_EQ(plain.events.size(), 3u) << nd;
    ASSERT_EQ(sink.events.size(), plain.events.size()) << nd;
    ExpectSameParse(ParsedEvents{.events = sink.events,
                                 .event_indexes = parsed.event_indexes,
                                 .links = parsed.links,
                                 .errors = parsed.errors,
                                 .total_records = parsed.total_records},
                    plain);
    for (const Event& e : parsed.events) EXPECT_TRUE(e.properties.empty());
    EXPECT_EQ(parsed.events[1].insert_id, "id-3");
    EXPECT_EQ(parsed.events[1].device_id, "d9");
  }
  // A payload that fails as a whole may have handed records over first: the caller drops the sink's work.
  RecordingSink sink;
  ParseOptions with_sink = Import();
  with_sink.sink = &sink;
  auto failed = ParseEvents("[" + Record("", "id-1") + "," + Record("", "id-2") + ", {\"event\": ]", with_sink);
  ASSERT_FALSE(failed.ok());
  EXPECT_LE(sink.events.size(), 2u);
}

TEST(EventSparesTest, KeepsAtMostItsBoundAndNoEventWithLargeStrings) {
  EventSpares spares(3, 1000);
  std::vector<Event> written(5);
  written[1].properties = std::string(2000, 'p');  // too large to keep
  written[3].insert_id = std::string(2000, 'i');   // any string counts
  spares.Recycle(written);
  EXPECT_TRUE(written.empty());
  EXPECT_EQ(spares.size(), 3u);  // events 0, 2 and 4
  for (const Event& e : *spares.pool()) {
    EXPECT_LT(e.properties.capacity(), 1000u);
    EXPECT_LT(e.insert_id.capacity(), 1000u);
  }
  std::vector<Event> more(4);
  spares.Recycle(more);
  EXPECT_EQ(spares.size(), 3u) << "full: nothing more is kept";
  EXPECT_TRUE(more.empty());
  // The parser takes them back.
  ParseOptions options = Import(PayloadFormat::kNdjson);
  options.recycled_events = spares.pool();
  ParsedEvents parsed = MustParse(Record("", "id-1") + "\n" + Record("", "id-2") + "\n", options);
  EXPECT_EQ(parsed.events.size(), 2u);
  EXPECT_EQ(spares.size(), 1u);
}

}  // namespace
}  // namespace sluice::ingest
