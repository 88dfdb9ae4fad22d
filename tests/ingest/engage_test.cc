// /engage: ParseProfileUpdates validation and every ApplyProfileUpdate operation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <string>

#include "ingest/ingest.h"

namespace sluice::ingest {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

constexpr int64_t kNowUs = 1'714'564'800'000'000;  // 2024-05-01T12:00:00Z

ParsedProfileUpdates MustParse(std::string_view payload, PayloadFormat format = PayloadFormat::kJson) {
  auto r = ParseProfileUpdates(payload, format, kNowUs);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : ParsedProfileUpdates{};
}

ProfileUpdate OnlyUpdate(std::string_view payload) {
  ParsedProfileUpdates p = MustParse(payload);
  EXPECT_TRUE(p.errors.empty()) << (p.errors.empty() ? "" : p.errors[0].message);
  EXPECT_EQ(p.updates.size(), 1u);
  return p.updates.empty() ? ProfileUpdate{} : p.updates[0];
}

RecordError OnlyError(std::string_view payload) {
  ParsedProfileUpdates p = MustParse(payload);
  EXPECT_TRUE(p.updates.empty());
  EXPECT_EQ(p.errors.size(), 1u);
  return p.errors.empty() ? RecordError{} : p.errors[0];
}

std::string Update(std::string_view op_json) {
  return R"({"$token":"tok","$distinct_id":"u1",)" + std::string(op_json) + "}";
}

json::object Apply(json::object props, std::string_view update_json, bool* kept = nullptr) {
  ProfileUpdate u = OnlyUpdate(update_json);
  bool k = ApplyProfileUpdate(props, u);
  if (kept != nullptr) *kept = k;
  return props;
}

// ---- parsing ---------------------------------------------------------------------------------------------------------

TEST(ParseProfileUpdates, SetRecord) {
  ProfileUpdate u = OnlyUpdate(Update(R"("$set":{"plan":"pro"})"));
  EXPECT_EQ(u.token, "tok");
  EXPECT_EQ(u.distinct_id, "u1");
  EXPECT_EQ(u.op, ProfileOp::kSet);
  EXPECT_EQ(json::serialize(u.argument), R"({"plan":"pro"})");
  EXPECT_FALSE(u.ignore_time);
  EXPECT_FALSE(u.ignore_alias);
  EXPECT_EQ(u.time_ms, kNowUs / 1000);
  EXPECT_EQ(u.ip, "");
}

TEST(ParseProfileUpdates, EveryOperationRecognised) {
  struct Case {
    std::string_view json;
    ProfileOp op;
  };
  for (const Case& c : {Case{R"("$set":{})", ProfileOp::kSet}, Case{R"("$set_once":{})", ProfileOp::kSetOnce},
                        Case{R"("$add":{"n":1})", ProfileOp::kAdd}, Case{R"("$union":{"l":[1]})", ProfileOp::kUnion},
                        Case{R"("$append":{"l":1})", ProfileOp::kAppend},
                        Case{R"("$remove":{"l":1})", ProfileOp::kRemove},
                        Case{R"("$unset":["a"])", ProfileOp::kUnset}, Case{R"("$delete":"")", ProfileOp::kDelete}}) {
    EXPECT_EQ(OnlyUpdate(Update(c.json)).op, c.op) << c.json;
  }
}

TEST(ParseProfileUpdates, OptionalFields) {
  ProfileUpdate u = OnlyUpdate(Update(
      R"("$set":{"a":1},"$ignore_time":true,"$ignore_alias":"true","$time":1714564000123,"$ip":"198.51.100.4")"));
  EXPECT_TRUE(u.ignore_time);
  EXPECT_TRUE(u.ignore_alias);
  EXPECT_EQ(u.time_ms, 1714564000123);
  EXPECT_EQ(u.ip, "198.51.100.4");
  EXPECT_EQ(OnlyUpdate(Update(R"("$set":{},"$time":1714564000)")).time_ms, 1714564000000);
  EXPECT_FALSE(OnlyUpdate(Update(R"("$set":{},"$ignore_time":false)")).ignore_time);
}

TEST(ParseProfileUpdates, NumericDistinctIdBecomesText) {
  EXPECT_EQ(OnlyUpdate(R"({"$token":"t","$distinct_id":42,"$set":{}})").distinct_id, "42");
}

TEST(ParseProfileUpdates, MissingTokenRejected) {
  RecordError e = OnlyError(R"({"$distinct_id":"u1","$set":{}})");
  EXPECT_EQ(e.field, "$token");
  EXPECT_EQ(e.reason, "missing_token");
}

TEST(ParseProfileUpdates, MissingDistinctIdRejected) {
  RecordError e = OnlyError(R"({"$token":"t","$set":{}})");
  EXPECT_EQ(e.field, "$distinct_id");
  EXPECT_EQ(e.reason, "missing_distinct_id");
  EXPECT_EQ(OnlyError(R"({"$token":"t","$distinct_id":"","$set":{}})").reason, "missing_distinct_id");
  EXPECT_EQ(OnlyError(R"({"$token":"t","$distinct_id":[1],"$set":{}})").reason, "invalid_distinct_id");
}

TEST(ParseProfileUpdates, PlaceholderDistinctIdRejected) {
  EXPECT_EQ(OnlyError(R"({"$token":"t","$distinct_id":"Undefined","$set":{}})").reason, "placeholder_distinct_id");
}

TEST(ParseProfileUpdates, NoOperationRejected) {
  RecordError e = OnlyError(R"({"$token":"t","$distinct_id":"u1"})");
  EXPECT_EQ(e.reason, "missing_operation");
  EXPECT_THAT(e.message, HasSubstr("$set"));
}

TEST(ParseProfileUpdates, MoreThanOneOperationRejectedNamingThem) {
  RecordError e = OnlyError(Update(R"("$set":{"a":1},"$add":{"n":1})"));
  EXPECT_EQ(e.reason, "multiple_operations");
  EXPECT_THAT(e.message, HasSubstr("$set, $add"));
}

TEST(ParseProfileUpdates, AddNeedsNumbers) {
  RecordError e = OnlyError(Update(R"("$add":{"n":"5"})"));
  EXPECT_EQ(e.field, "$add.n");
  EXPECT_EQ(e.reason, "invalid_operation");
  EXPECT_THAT(e.message, HasSubstr("must be a number"));
  OnlyUpdate(Update(R"("$add":{"a":1,"b":-2.5,"c":18446744073709551615})"));
}

TEST(ParseProfileUpdates, OperationArgumentShapes) {
  EXPECT_EQ(OnlyError(Update(R"("$set":[1])")).reason, "invalid_operation");
  EXPECT_EQ(OnlyError(Update(R"("$union":{"l":1})")).field, "$union.l");
  EXPECT_EQ(OnlyError(Update(R"("$unset":"a")")).reason, "invalid_operation");
  EXPECT_EQ(OnlyError(Update(R"("$unset":["a",1])")).reason, "invalid_operation");
}

TEST(ParseProfileUpdates, InvalidTimeRejected) {
  RecordError e = OnlyError(Update(R"("$set":{},"$time":"yesterday")"));
  EXPECT_EQ(e.field, "$time");
  EXPECT_EQ(e.reason, "invalid_time");
}

TEST(ParseProfileUpdates, NotAnObjectRecord) {
  ParsedProfileUpdates p = MustParse(R"([1,)" + Update(R"("$set":{})") + "]");
  EXPECT_EQ(p.total_records, 2u);
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].index, 0u);
  EXPECT_EQ(p.errors[0].reason, "not_an_object");
  EXPECT_EQ(p.update_indexes, (std::vector<size_t>{1}));
}

TEST(ParseProfileUpdates, BatchLimit) {
  std::string ok = "[";
  for (int i = 0; i < 2000; ++i) ok += (i ? "," : "") + Update(R"("$set":{"a":1})");
  EXPECT_EQ(MustParse(ok + "]").updates.size(), 2000u);
  auto r = ParseProfileUpdates(ok + "," + Update(R"("$set":{})") + "]", PayloadFormat::kJson, kNowUs);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge);
  EXPECT_THAT(r.error().message, HasSubstr("2001 > 2000"));

  std::string lines;
  for (int i = 0; i < 2001; ++i) lines += Update(R"("$set":{})") + "\n";
  auto n = ParseProfileUpdates(lines, PayloadFormat::kNdjson, kNowUs);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, ErrorCode::kTooLarge);
}

TEST(ParseProfileUpdates, PayloadOverTenMegabytes) {
  auto r = ParseProfileUpdates(std::string(kMaxBatchBytes + 1, ' '), PayloadFormat::kJson, kNowUs);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge);
}

TEST(ParseProfileUpdates, MalformedJsonSaysWhere) {
  auto r = ParseProfileUpdates(R"([{"$token":"t",}])", PayloadFormat::kJson, kNowUs);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("at byte 15"));
  auto empty = ParseProfileUpdates("  ", PayloadFormat::kJson, kNowUs);
  ASSERT_FALSE(empty.ok());
  auto scalar = ParseProfileUpdates("3", PayloadFormat::kJson, kNowUs);
  ASSERT_FALSE(scalar.ok());
}

TEST(ParseProfileUpdates, NdjsonWithBadLine) {
  ParsedProfileUpdates p =
      MustParse(Update(R"("$set":{"a":1})") + "\n\n{oops\n" + Update(R"("$unset":["a"])"), PayloadFormat::kNdjson);
  EXPECT_EQ(p.total_records, 3u);
  EXPECT_EQ(p.updates.size(), 2u);
  EXPECT_EQ(p.update_indexes, (std::vector<size_t>{0, 2}));
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].reason, "malformed_json");
  EXPECT_THAT(p.errors[0].message, HasSubstr("line 3"));
  auto all_bad = ParseProfileUpdates("{oops\nnope\n", PayloadFormat::kNdjson, kNowUs);
  ASSERT_FALSE(all_bad.ok());
}

TEST(ParseProfileUpdates, NdjsonSentAsJson) {
  ParsedProfileUpdates p = MustParse(Update(R"("$set":{"a":1})") + "\n" + Update(R"("$set":{"b":1})") + "\n");
  EXPECT_EQ(p.updates.size(), 2u);
}

// ---- applying ---------------------------------------------------------------------------------------------------------

TEST(ApplyProfileUpdate, SetOverwritesAndStampsLastSeen) {
  json::object p = Apply({{"a", 1}, {"b", "x"}}, Update(R"("$set":{"a":2,"c":[1]})"));
  EXPECT_EQ(p, (json::object{{"a", 2}, {"b", "x"}, {"c", json::array{1}}, {"$last_seen", "2024-05-01T12:00:00"}}));
}

TEST(ApplyProfileUpdate, LastSeenUsesTheUpdateTime) {
  json::object p = Apply({}, Update(R"("$set":{},"$time":1714564000123)"));
  EXPECT_EQ(p.at("$last_seen"), "2024-05-01T11:46:40");
}

TEST(ApplyProfileUpdate, IgnoreTimeLeavesLastSeen) {
  json::object p = Apply({{"$last_seen", "2020-01-01T00:00:00"}}, Update(R"("$set":{"a":1},"$ignore_time":true)"));
  EXPECT_EQ(p.at("$last_seen"), "2020-01-01T00:00:00");
  json::object q = Apply({}, Update(R"("$set":{"a":1},"$ignore_time":true)"));
  EXPECT_FALSE(q.contains("$last_seen"));
}

TEST(ApplyProfileUpdate, SetOnceOnlySetsMissingNames) {
  json::object p = Apply({{"a", 1}}, Update(R"("$set_once":{"a":2,"b":3},"$ignore_time":true)"));
  EXPECT_EQ(p, (json::object{{"a", 1}, {"b", 3}}));
}

TEST(ApplyProfileUpdate, AddOnMissingExistingAndMixed) {
  json::object p = Apply({{"n", 5}, {"f", 1.5}, {"s", "text"}},
                         Update(R"("$add":{"n":-2,"f":1,"m":7,"s":1},"$ignore_time":true)"));
  EXPECT_EQ(p.at("n"), 3);
  EXPECT_TRUE(p.at("n").is_int64());
  EXPECT_EQ(p.at("f"), 2.5);
  EXPECT_EQ(p.at("m"), 7);         // missing counts as 0
  EXPECT_EQ(p.at("s"), "text");    // a non-numeric value is left alone
}

TEST(ApplyProfileUpdate, AddOverflowFallsBackToDouble) {
  json::object p = Apply({{"n", INT64_MAX}}, Update(R"("$add":{"n":1},"$ignore_time":true)"));
  EXPECT_TRUE(p.at("n").is_double());
  EXPECT_EQ(p.at("n").as_double(), 9223372036854775808.0);
}

TEST(ApplyProfileUpdate, UnionDeduplicates) {
  json::object p = Apply({{"l", json::array{1, "a"}}, {"s", "scalar"}},
                         Update(R"("$union":{"l":["a",2,2,{"k":1}],"new":[3,3],"s":[1]},"$ignore_time":true)"));
  EXPECT_EQ(p.at("l"), (json::array{1, "a", 2, json::object{{"k", 1}}}));
  EXPECT_EQ(p.at("new"), (json::array{3}));
  EXPECT_EQ(p.at("s"), "scalar");
}

TEST(ApplyProfileUpdate, AppendAddsOneItem) {
  json::object p =
      Apply({{"l", json::array{1}}}, Update(R"("$append":{"l":1,"m":[2],"n":"x"},"$ignore_time":true)"));
  EXPECT_EQ(p.at("l"), (json::array{1, 1}));
  EXPECT_EQ(p.at("m"), (json::array{json::array{2}}));
  EXPECT_EQ(p.at("n"), (json::array{"x"}));
}

TEST(ApplyProfileUpdate, RemoveDropsEveryEqualItem) {
  json::object p = Apply({{"l", json::array{1, "a", 1, 2}}, {"s", 1}},
                         Update(R"("$remove":{"l":1,"s":1,"missing":1},"$ignore_time":true)"));
  EXPECT_EQ(p.at("l"), (json::array{"a", 2}));
  EXPECT_EQ(p.at("s"), 1);
  EXPECT_FALSE(p.contains("missing"));
}

TEST(ApplyProfileUpdate, UnsetRemovesNames) {
  json::object p = Apply({{"a", 1}, {"b", 2}, {"c", 3}}, Update(R"("$unset":["a","c","zz"],"$ignore_time":true)"));
  EXPECT_EQ(p, (json::object{{"b", 2}}));
}

TEST(ApplyProfileUpdate, DeleteReturnsFalse) {
  bool kept = true;
  Apply({{"a", 1}}, Update(R"("$delete":"","$ignore_alias":true)"), &kept);
  EXPECT_FALSE(kept);
  ProfileUpdate u = OnlyUpdate(Update(R"("$delete":"","$ignore_alias":true)"));
  EXPECT_TRUE(u.ignore_alias);
}

TEST(ApplyProfileUpdate, UpdatesApplyInOrder) {
  ParsedProfileUpdates parsed = MustParse("[" + Update(R"("$set":{"n":1})") + "," + Update(R"("$add":{"n":2})") +
                                          "," + Update(R"("$unset":["n"])") + "," + Update(R"("$add":{"n":5})") + "]");
  json::object p;
  for (const ProfileUpdate& u : parsed.updates) ASSERT_TRUE(ApplyProfileUpdate(p, u));
  EXPECT_EQ(p.at("n"), 5);
}

}  // namespace
}  // namespace sluice::ingest
