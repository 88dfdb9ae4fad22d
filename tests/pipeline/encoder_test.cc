#include "pipeline/record_encoder.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/json_text.h"

namespace sluice::pipeline {
namespace {

store::EventView MakeEvent() {
  store::EventView e;
  e.name = "Page Viewed";
  e.time_us = 1'700'000'000'123'000;
  e.distinct_id = "user-1";
  e.device_id = "dev-9";
  e.user_id = "user-1";
  e.insert_id = "ins-42";
  e.properties = R"({"$browser":"Chrome","price":9.99})";
  e.ingested_ms = 1'700'000'001'000;
  return e;
}

std::string Encode(const store::EventView& e) {
  std::string out;
  AppendEventRecord(e, out);
  return out;
}

std::string Seconds(int64_t time_us) {
  std::string out;
  AppendEpochSeconds(time_us, out);
  return out;
}

TEST(RecordEncoderTest, EventGoldenLine) {
  EXPECT_EQ(Encode(MakeEvent()),
            R"({"event_name":"Page Viewed","time":1700000000.123,"distinct_id":"user-1","device_id":"dev-9",)"
            R"("user_id":"user-1","insert_id":"ins-42","properties":{"$browser":"Chrome","price":9.99}})"
            "\n");
}

TEST(RecordEncoderTest, AppendsToExistingBufferAndEveryLineEndsInNewline) {
  std::string out = "previous\n";
  AppendEventRecord(MakeEvent(), out);
  AppendEventRecord(MakeEvent(), out);
  ASSERT_EQ(out.rfind("previous\n", 0), 0u);
  const std::string one = Encode(MakeEvent());
  EXPECT_EQ(out, "previous\n" + one + one);
  EXPECT_EQ(one.find('\n'), one.size() - 1);
}

TEST(RecordEncoderTest, EmptyDeviceAndUserIdsAreNull) {
  store::EventView e = MakeEvent();
  e.device_id = {};
  e.user_id = {};
  EXPECT_EQ(Encode(e),
            R"({"event_name":"Page Viewed","time":1700000000.123,"distinct_id":"user-1","device_id":null,)"
            R"("user_id":null,"insert_id":"ins-42","properties":{"$browser":"Chrome","price":9.99}})"
            "\n");
}

TEST(RecordEncoderTest, InsertIdIsAlwaysAStringAndEmptyPropertiesAreAnObject) {
  store::EventView e = MakeEvent();
  e.insert_id = "12345";
  e.properties = {};
  const std::string line = Encode(e);
  EXPECT_NE(line.find(R"("insert_id":"12345")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("properties":{}})"), std::string::npos) << line;
  e.properties = "{}";
  EXPECT_EQ(Encode(e), line);
}

TEST(RecordEncoderTest, TimeKeepsEveryDigitThatArrived) {
  EXPECT_EQ(Seconds(1'700'000'000'000'000), "1700000000");         // seconds input
  EXPECT_EQ(Seconds(1'700'000'000'123'000), "1700000000.123");     // milliseconds input
  EXPECT_EQ(Seconds(1'700'000'000'100'000), "1700000000.1");       // trailing zeros trimmed
  EXPECT_EQ(Seconds(1'700'000'000'000'001), "1700000000.000001");  // leading zeros of the fraction kept
  EXPECT_EQ(Seconds(1'700'000'000'010'200), "1700000000.0102");
  EXPECT_EQ(Seconds(1'700'000'000'999'999), "1700000000.999999");
  EXPECT_EQ(Seconds(0), "0");
  EXPECT_EQ(Seconds(1), "0.000001");
  EXPECT_EQ(Seconds(500'000), "0.5");
}

TEST(RecordEncoderTest, NegativeTimesAreExact) {
  EXPECT_EQ(Seconds(-1'500'000), "-1.5");
  EXPECT_EQ(Seconds(-2'000'000), "-2");
  EXPECT_EQ(Seconds(-1), "-0.000001");
  EXPECT_EQ(Seconds(-500'000), "-0.5");
  EXPECT_EQ(Seconds(-86'400'000'001), "-86400.000001");
  EXPECT_EQ(Seconds(std::numeric_limits<int64_t>::min()), "-9223372036854.775808");
  EXPECT_EQ(Seconds(std::numeric_limits<int64_t>::max()), "9223372036854.775807");
}

TEST(RecordEncoderTest, TimeRoundTripsThroughAJsonParser) {
  for (int64_t us : {int64_t{1'700'000'000'123'000}, int64_t{1'600'000'000'000'000}, int64_t{-1'500'000}}) {
    store::EventView e = MakeEvent();
    e.time_us = us;
    boost::json::value v = boost::json::parse(Encode(e));
    const boost::json::value& t = v.at("time");
    const double seconds = t.is_double() ? t.as_double() : static_cast<double>(t.to_number<int64_t>());
    EXPECT_DOUBLE_EQ(seconds * 1e6, static_cast<double>(us)) << us;
    EXPECT_EQ(t.is_double(), us % 1'000'000 != 0);
  }
}

TEST(RecordEncoderTest, IdsAreEscapedAndUnicodeIsCopied) {
  store::EventView e = MakeEvent();
  e.name = "say \"hi\"\\now";
  e.distinct_id = "line1\nline2\ttab\x01";
  e.device_id = "gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80";  // "grüß € 😀"
  e.user_id = "back\\slash";
  e.insert_id = "q\"uote";
  const std::string line = Encode(e);
  EXPECT_NE(line.find(R"("event_name":"say \"hi\"\\now")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("distinct_id":"line1\nline2\ttab\u0001")"), std::string::npos) << line;
  EXPECT_NE(line.find("\"device_id\":\"gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80\""), std::string::npos);
  EXPECT_NE(line.find(R"("user_id":"back\\slash")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("insert_id":"q\"uote")"), std::string::npos) << line;
  // Exactly one line, and a JSON parser reads the original strings back.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  boost::json::value v = boost::json::parse(line);
  EXPECT_EQ(v.at("event_name").as_string(), e.name);
  EXPECT_EQ(v.at("distinct_id").as_string(), e.distinct_id);
  EXPECT_EQ(v.at("device_id").as_string(), e.device_id);
  EXPECT_EQ(v.at("user_id").as_string(), e.user_id);
  EXPECT_EQ(v.at("insert_id").as_string(), e.insert_id);
}

TEST(RecordEncoderTest, EscapingMatchesTheReferenceForEveryByteAtEveryWordPosition) {
  // The encoder checks 8 bytes at a time before falling back to common/json_text.h; every byte value at every
  // offset (and around word boundaries, with UTF-8 high bytes as neighbours) must come out exactly as the
  // reference escaper writes it.
  for (size_t len : {size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{16}, size_t{17}}) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (int b = 0; b < 256; ++b) {
        for (char filler : {'a', '\xC3', '\x7F', '!'}) {
          std::string id(len, filler);
          id[pos] = static_cast<char>(b);
          std::string expected = "{\"distinct_id\":";
          AppendJsonString(expected, id);
          expected += ",\"resolved_distinct_id\":\"r\"}\n";
          std::string got;
          AppendIdentityRecord(id, "r", got);
          ASSERT_EQ(got, expected) << "byte " << b << " at " << pos << " of " << len;
        }
      }
    }
  }
}

TEST(RecordEncoderTest, PropertiesAreCopiedVerbatim) {
  store::EventView e = MakeEvent();
  // Numbers no double can hold, a float with many digits, escapes and unicode as they arrived, nesting.
  e.properties =
      R"({"big":123456789012345678901234567890,"neg":-98765432109876543210,"f":1.0000000000000000001,)"
      R"("e":1E+400,"s":"\u00fc\"x\"","u":"√","nested":{"a":[1,{"b":null}],"t":true}})";
  const std::string line = Encode(e);
  const std::string expected_tail = std::string(R"("properties":)") + std::string(e.properties) + "}\n";
  ASSERT_GE(line.size(), expected_tail.size());
  EXPECT_EQ(line.substr(line.size() - expected_tail.size()), expected_tail);
}

TEST(RecordEncoderTest, FieldOrderIsFixed) {
  boost::json::value v = boost::json::parse(Encode(MakeEvent()));
  std::vector<std::string> keys;
  for (const auto& kv : v.as_object()) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"event_name", "time", "distinct_id", "device_id", "user_id",
                                            "insert_id", "properties"}));
}

TEST(RecordEncoderTest, PeopleRecord) {
  std::string out;
  AppendPeopleRecord("user-\"7\"", R"({"$name":"Ada","$last_seen":"2024-01-02T03:04:05","n":12345678901234567890})",
                     out);
  EXPECT_EQ(out, R"({"distinct_id":"user-\"7\"","properties":{"$name":"Ada","$last_seen":"2024-01-02T03:04:05",)"
                 R"("n":12345678901234567890}})"
                 "\n");
  out.clear();
  AppendPeopleRecord("u", "", out);
  EXPECT_EQ(out, "{\"distinct_id\":\"u\",\"properties\":{}}\n");
}

TEST(RecordEncoderTest, IdentityRecord) {
  std::string out;
  AppendIdentityRecord("$device:abc", "user-1", out);
  AppendIdentityRecord("d\\2", "\xC3\xBC", out);
  EXPECT_EQ(out,
            "{\"distinct_id\":\"$device:abc\",\"resolved_distinct_id\":\"user-1\"}\n"
            "{\"distinct_id\":\"d\\\\2\",\"resolved_distinct_id\":\"\xC3\xBC\"}\n");
}

}  // namespace
}  // namespace sluice::pipeline
