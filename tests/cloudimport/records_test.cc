#include "cloudimport/records.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>

#include "cloudimport/file_importer.h"

namespace sluice::cloudimport {
namespace {

namespace json = boost::json;

std::vector<std::pair<std::string, std::string>> Members(std::string_view text, bool* ok = nullptr) {
  std::vector<std::pair<std::string, std::string>> out;
  bool r = ForEachMember(text, [&](std::string_view k, std::string_view v) { out.emplace_back(k, v); });
  if (ok) *ok = r;
  return out;
}

TEST(RecordsTest, ForEachMemberGivesExactValueText) {
  bool ok = false;
  auto m = Members(R"( {"a" : 1.50 , "b":"x,}\"y", "c":{"d":[1,{"e":"]"}]},"f":null,"g\u0041":true} )", &ok);
  ASSERT_TRUE(ok);
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0], (std::pair<std::string, std::string>{"a", "1.50"}));
  EXPECT_EQ(m[1].second, R"("x,}\"y")");
  EXPECT_EQ(m[2].second, R"({"d":[1,{"e":"]"}]})");
  EXPECT_EQ(m[3].second, "null");
  EXPECT_EQ(m[4].first, "g\\u0041");
  EXPECT_EQ(DecodeKey(m[4].first), "gA");
  EXPECT_TRUE(Members("{}", &ok).empty());
  EXPECT_TRUE(ok);
}

TEST(RecordsTest, ForEachMemberRefusesBrokenObjects) {
  for (std::string_view bad : {"", "[1]", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":\"x}", "{\"a\":1} x",
                               "{\"a\":{\"b\":1}", "{a:1}"}) {
    bool ok = true;
    Members(bad, &ok);
    EXPECT_FALSE(ok) << bad;
  }
}

TEST(RecordsTest, DerivedInsertIdsAreDeterministicAndValid) {
  std::string tag = FileTag("events/2024-01-01.json");
  EXPECT_EQ(tag.size(), 16u);
  EXPECT_EQ(tag, FileTag("events/2024-01-01.json"));
  EXPECT_NE(tag, FileTag("events/2024-01-02.json"));
  std::string id = DerivedInsertId(tag, 18'446'744'073'709'551'615ull);
  EXPECT_LE(id.size(), 36u);
  EXPECT_EQ(DerivedInsertId(tag, 255), tag + "-ff");
}

TEST(RecordsTest, ContentIdsFollowTheLineNotItsPlaceAndKeepIdenticalLinesApart) {
  const std::string a = R"({"event":"A","properties":{"time":1,"distinct_id":"u"}})";
  const std::string b = R"({"event":"B","properties":{"time":1,"distinct_id":"u"}})";
  InsertIdDeriver first(InsertIdScheme::kContent, "in/day.json");
  const std::string a0 = first.Next(a, 1), b0 = first.Next(b, 2), a1 = first.Next(a, 3);
  EXPECT_NE(a0, a1) << "two identical lines are two events";
  EXPECT_NE(a0, b0);
  for (const std::string& id : {a0, b0, a1}) {
    EXPECT_LE(id.size(), 36u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef-"), std::string::npos) << id;
  }
  // The same file rewritten with a line in front, under another key: every line keeps its id.
  InsertIdDeriver rewritten(InsertIdScheme::kContent, "copy/day.json");
  EXPECT_NE(rewritten.Next(R"({"event":"New","properties":{"time":2,"distinct_id":"v"}})", 1), a0);
  EXPECT_EQ(rewritten.Next(a, 2), a0);
  EXPECT_EQ(rewritten.Next(b, 3), b0);
  EXPECT_EQ(rewritten.Next(a, 4), a1);
  // Files whose import began with line-number ids keep them.
  InsertIdDeriver legacy(InsertIdScheme::kLineNumber, "in/day.json");
  EXPECT_EQ(legacy.Next(a, 7), DerivedInsertId(FileTag("in/day.json"), 7));
}

TEST(RecordsTest, ContentIdCountsAreBoundedAndStayUniqueBeyondTheBound) {
  InsertIdDeriver ids(InsertIdScheme::kContent, "big.json");
  std::set<std::string> seen;
  const uint64_t lines = kMaxDistinctDerivedLines + 1000;
  for (uint64_t i = 1; i <= lines; ++i) {
    std::string id = ids.Next(fmt::format("line {}", i), i);
    if (i > kMaxDistinctDerivedLines) {
      EXPECT_NE(id.find("-l"), std::string::npos) << i;
    }
    ASSERT_LE(id.size(), 36u);
    ASSERT_TRUE(seen.insert(std::move(id)).second) << "line " << i;
  }
  // Lines seen before the bound still count on.
  EXPECT_TRUE(ids.Next("line 1", lines + 1).ends_with("-1"));
}

TEST(RecordsTest, LinesThatNeedADerivedIdAreRecognised) {
  ConnectorSpec events;
  events.data_format = DataFormat::kMixpanelEvent;
  EXPECT_TRUE(NeedsDerivedInsertId(R"({"event":"e","properties":{"time":1}})", events));
  EXPECT_TRUE(NeedsDerivedInsertId(R"({"event":"e","properties":{"$insert_id":null}})", events));
  EXPECT_TRUE(NeedsDerivedInsertId(R"({"event":"e","properties":{"$insert_id":""}})", events));
  EXPECT_TRUE(NeedsDerivedInsertId(R"({"event":"e","properties":{"a":{"$insert_id":"x"}}})", events));
  EXPECT_FALSE(NeedsDerivedInsertId(R"({"event":"e","properties":{"$insert_id":"x"}})", events));
  EXPECT_FALSE(NeedsDerivedInsertId(R"({"event":"e"})", events));
  ConnectorSpec remap;
  remap.data_format = DataFormat::kRemapEvent;
  remap.property_remap = {{"event_name", "e"}, {"time", "t"}, {"distinct_id", "d"}, {"$insert_id", "id"}};
  EXPECT_TRUE(NeedsDerivedInsertId(R"({"e":"x","t":1,"d":"u"})", remap));
  EXPECT_TRUE(NeedsDerivedInsertId(R"({"e":"x","t":1,"d":"u","id":null})", remap));
  EXPECT_FALSE(NeedsDerivedInsertId(R"({"e":"x","t":1,"d":"u","id":"i"})", remap));
}

/// A derived $insert_id that is always `id`.
std::function<std::string()> Fixed(std::string id) {
  return [id] { return id; };
}

TEST(RecordsTest, InsertIdGoesIntoTheLastPropertiesObject) {
  std::string out;
  ASSERT_TRUE(AppendWithInsertId(R"({"event":"e","properties":{"time":1.0}})", "id-1", out));
  EXPECT_EQ(out, R"({"event":"e","properties":{"time":1.0,"$insert_id":"id-1"}})");
  out.clear();
  ASSERT_TRUE(AppendWithInsertId(R"({"properties":{ },"event":"e"})", "x", out));
  EXPECT_EQ(out, R"({"properties":{ "$insert_id":"x"},"event":"e"})");
  out.clear();
  // A "$insert_id" that is no id (null, "", a number) is replaced, not left in front of the derived one.
  ASSERT_TRUE(
      AppendWithInsertId(R"({"event":"e","properties":{"$insert_id":null,"a":{"$insert_id":1}}})", "x", out));
  EXPECT_EQ(out, R"({"event":"e","properties":{"a":{"$insert_id":1},"$insert_id":"x"}})");
  out.clear();
  ASSERT_TRUE(AppendWithInsertId(R"({"event":"e","properties":{"t":1, "$insert_id" : ""}})", "x", out));
  EXPECT_EQ(out, R"({"event":"e","properties":{"t":1,"$insert_id":"x"}})");
  out.clear();
  EXPECT_FALSE(AppendWithInsertId(R"({"event":"e"})", "x", out));
  EXPECT_FALSE(AppendWithInsertId(R"({"event":"e","properties":[1]})", "x", out));
  EXPECT_TRUE(out.empty());
}

TEST(RecordsTest, RemapEventRenamesFieldsAndKeepsTheRestAsProperties) {
  ConnectorSpec spec;
  spec.data_format = DataFormat::kRemapEvent;
  spec.property_remap = {{"event_name", "action"}, {"time", "ts"}, {"distinct_id", "user"}, {"ip", "addr"}};
  std::string out, error;
  ASSERT_TRUE(AppendRemappedEvent(R"({"action":"Signup","ts":1700000000123,"user":42,"addr":"1.2.3.4",)"
                                  R"("plan":"pro","time":"ignored","n":1.10})",
                                  spec, Fixed("derived-1"), out, error))
      << error;
  auto v = json::parse(out).as_object();
  EXPECT_EQ(v.at("event").as_string(), "Signup");
  auto props = v.at("properties").as_object();
  EXPECT_EQ(props.at("plan").as_string(), "pro");
  EXPECT_EQ(props.at("distinct_id").as_int64(), 42);
  EXPECT_EQ(props.at("ip").as_string(), "1.2.3.4");
  EXPECT_EQ(props.at("$insert_id").as_string(), "derived-1");
  EXPECT_NE(out.find("\"n\":1.10"), std::string::npos);  // value text untouched
  // The mapped time comes last, so it wins over a source field that is also called "time".
  EXPECT_LT(out.find("\"time\":\"ignored\""), out.find("\"time\":1700000000123"));

  out.clear();
  EXPECT_FALSE(AppendRemappedEvent(R"({"action":"x","user":"u"})", spec, Fixed("d"), out, error));
  EXPECT_EQ(error, "source field 'ts' (remapped to time) is missing");
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(AppendRemappedEvent("not json", spec, Fixed("d"), out, error));
}

TEST(RecordsTest, RemapEventUsesAMappedInsertId) {
  ConnectorSpec spec;
  spec.property_remap = {{"event_name", "e"}, {"time", "t"}, {"distinct_id", "d"}, {"$insert_id", "id"}};
  std::string out, error;
  ASSERT_TRUE(
      AppendRemappedEvent(R"({"e":"x","t":1,"d":"u","id":"own-id"})", spec, Fixed("derived"), out, error));
  EXPECT_EQ(json::parse(out).at("properties").at("$insert_id").as_string(), "own-id");
  // An empty one is no id: the derived one is used, as for null or a missing field.
  out.clear();
  ASSERT_TRUE(AppendRemappedEvent(R"({"e":"x","t":1,"d":"u","id":""})", spec, Fixed("derived"), out, error));
  EXPECT_EQ(json::parse(out).at("properties").at("$insert_id").as_string(), "derived");
}

TEST(RecordsTest, RemapEventWithoutAnIdMappingUsesTheLinesOwnInsertId) {
  ConnectorSpec spec;
  spec.data_format = DataFormat::kRemapEvent;
  spec.property_remap = {{"event_name", "e"}, {"time", "t"}, {"distinct_id", "d"}};
  std::string out, error;
  ASSERT_TRUE(AppendRemappedEvent(R"({"e":"x","t":1,"d":"u","$insert_id":"own"})", spec, Fixed("derived"),
                                  out, error));
  EXPECT_EQ(json::parse(out).at("properties").at("$insert_id").as_string(), "own");
  EXPECT_FALSE(NeedsDerivedInsertId(R"({"e":"x","t":1,"d":"u","$insert_id":"own"})", spec));
  out.clear();
  ASSERT_TRUE(AppendRemappedEvent(R"({"e":"x","t":1,"d":"u"})", spec, Fixed("derived"), out, error));
  EXPECT_EQ(json::parse(out).at("properties").at("$insert_id").as_string(), "derived");
}

TEST(RecordsTest, RemapEventGivesAFieldMappedTwiceToBothTargets) {
  ConnectorSpec spec;
  spec.property_remap = {{"event_name", "e"}, {"time", "t"}, {"distinct_id", "uid"}, {"$insert_id", "uid"}};
  std::string out, error;
  ASSERT_TRUE(AppendRemappedEvent(R"({"e":"x","t":1,"uid":"u-7"})", spec, Fixed("derived"), out, error))
      << error;
  auto properties = json::parse(out).at("properties").as_object();
  EXPECT_EQ(properties.at("distinct_id").as_string(), "u-7");
  EXPECT_EQ(properties.at("$insert_id").as_string(), "u-7");
  EXPECT_FALSE(properties.contains("uid"));
}

TEST(RecordsTest, PeopleRecordsCarryTheProjectToken) {
  ConnectorSpec spec;
  spec.data_format = DataFormat::kRemapPeople;
  spec.property_remap = {{"$distinct_id", "uid"}};
  std::string out, error;
  ASSERT_TRUE(AppendRemappedProfile(R"({"uid":"u1","plan":"pro","seats":3})", spec, "tok", out, error));
  auto v = json::parse(out).as_object();
  EXPECT_EQ(v.at("$token").as_string(), "tok");
  EXPECT_EQ(v.at("$distinct_id").as_string(), "u1");
  EXPECT_EQ(v.at("$set").at("plan").as_string(), "pro");
  EXPECT_FALSE(v.at("$set").as_object().contains("uid"));

  out.clear();
  ASSERT_TRUE(AppendProfileWithToken(R"({"$token":"other","$distinct_id":"u2","$add":{"n":1}})", "tok", out, error));
  v = json::parse(out).as_object();
  EXPECT_EQ(v.at("$token").as_string(), "tok");
  EXPECT_EQ(v.at("$add").at("n").as_int64(), 1);
  EXPECT_EQ(v.size(), 3u);
}

TEST(RecordsTest, LocaliseMessageDescribesTheLineOnItsOwn) {
  EXPECT_EQ(LocaliseMessage("line 3 is not valid JSON: malformed JSON at byte 120: unclosed string", 100),
            "the line is not valid JSON: malformed JSON at byte 20: unclosed string");
  EXPECT_EQ(LocaliseMessage("malformed NDJSON: none of the 1 lines is a JSON object (line 1 is not valid JSON: "
                            "malformed JSON at byte 4: x)",
                            0),
            "the line is not valid JSON: malformed JSON at byte 4: x");
  EXPECT_EQ(LocaliseMessage("'properties.time' is missing", 10), "'properties.time' is missing");
}

}  // namespace
}  // namespace sluice::cloudimport
