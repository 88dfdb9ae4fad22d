// Profile updates as data (ingest/profile_ops.h): the encoding round-trips every field, numbers keep their
// text, and ProfileUpdateFolder folds exactly as ApplyProfileUpdates does on the same updates.
#include "ingest/profile_ops.h"

#include <gtest/gtest.h>

namespace sluice::ingest {
namespace {

constexpr int64_t kNowUs = 1'764'979'200'000'000;

ParsedProfileUpdates Parse(std::string_view payload) {
  auto parsed = ParseProfileUpdates(payload, PayloadFormat::kJson, kNowUs);
  EXPECT_TRUE(parsed.ok()) << parsed.error().ToString();
  EXPECT_TRUE(parsed->errors.empty());
  return std::move(parsed).value();
}

TEST(ProfileOpsTest, EncodingRoundTripsEveryField) {
  auto parsed = Parse(R"([{"$token":"secret-token","$distinct_id":"u","$time":1764979200123,"$ip":"1.2.3.4",
                           "$ignore_time":true,"$add":{"n":19.90,"big":123456789012345678901234567890}},
                          {"$token":"t","$distinct_id":"u","$ignore_alias":true,"$delete":""},
                          {"$token":"t","$distinct_id":"u","$unset":["a","\u0001b"]}])");
  ASSERT_EQ(parsed.updates.size(), 3u);
  parsed.updates[0].country = "DE";
  for (const ProfileUpdate& u : parsed.updates) {
    const std::string text = EncodeProfileUpdate(u);
    EXPECT_EQ(text.find("secret-token"), std::string::npos) << "the token is not part of an operation";
    EXPECT_EQ(text.find("1.2.3.4"), std::string::npos) << "no address is part of an operation";
    auto d = DecodeProfileUpdate(text);
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    EXPECT_EQ(d->op, u.op);
    EXPECT_EQ(SerializeProfileJson(d->argument), SerializeProfileJson(u.argument));
    EXPECT_EQ(d->time_ms, u.time_ms);
    EXPECT_EQ(d->ignore_time, u.ignore_time);
    EXPECT_EQ(d->ignore_alias, u.ignore_alias);
    EXPECT_EQ(d->country, u.country);
    EXPECT_EQ(d->ip, "");
    EXPECT_EQ(EncodeProfileUpdate(*d), text);
  }
  EXPECT_EQ(DecodeProfileUpdate(EncodeProfileUpdate(parsed.updates[0]))->country, "DE");
  EXPECT_NE(EncodeProfileUpdate(parsed.updates[0]).find("123456789012345678901234567890"), std::string::npos);
}

TEST(ProfileOpsTest, DecodingRefusesOtherText) {
  for (std::string_view bad :
       {"", "[]", R"({"op":"$drop","time_ms":1})", R"({"op":"$set","arg":{}})",
        R"({"op":"$set","arg":{},"time_ms":1,"ignore_time":1,"ignore_alias":false,"country":""})",
        R"({"op":"$set","arg":{},"time_ms":1,"ignore_time":true,"ignore_alias":false,"country":7})"}) {
    auto d = DecodeProfileUpdate(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
  }
}

// Operations stored before "country" existed carried the request's address; they still fold, and the address
// is not turned into a $ip property any more (Mixpanel keeps no address).
TEST(ProfileOpsTest, OperationsWithAddressesFromEarlierReleasesFoldWithoutThem) {
  const std::string legacy =
      R"({"op":"$set","arg":{"a":1},"time_ms":1764979200000,"ignore_time":true,"ignore_alias":false,)"
      R"("ip":"","request_ip":"10.0.0.7"})";
  auto d = DecodeProfileUpdate(legacy);
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->country, "");
  EXPECT_EQ(d->ip, "");
  const std::vector<std::string> ops{legacy};
  store::ProfileFold fold = ProfileUpdateFolder().Fold(std::nullopt, ops);
  ASSERT_TRUE(fold.changed);
  EXPECT_EQ(fold.profile, R"({"a":1})");
}

TEST(ProfileOpsTest, FolderMatchesApplyProfileUpdatesAndReportsOpIndexes) {
  auto parsed = Parse(R"([{"$token":"t","$distinct_id":"u","$set":{"a":1,"p":1e308}},
                          {"$token":"t","$distinct_id":"u","$add":{"p":1e308}},
                          {"$token":"t","$distinct_id":"u","$union":{"l":[1,2]}},
                          {"$token":"t","$distinct_id":"u","$remove":{"l":1}}])");
  parsed.updates[0].country = "JP";
  std::vector<const ProfileUpdate*> ptrs;
  std::vector<std::string> ops;
  for (const ProfileUpdate& u : parsed.updates) {
    ptrs.push_back(&u);
    ops.push_back(EncodeProfileUpdate(u));
  }
  const std::optional<std::string> stored = R"({"z":true})";
  ProfileEdit direct = ApplyProfileUpdates(stored, ptrs);
  store::ProfileFold fold = ProfileUpdateFolder().Fold(stored, ops);
  EXPECT_EQ(fold.changed, direct.changed);
  ASSERT_TRUE(fold.profile.has_value());
  EXPECT_EQ(*fold.profile, *direct.profile);
  EXPECT_NE(fold.profile->find(R"("$country_code":"JP")"), std::string::npos) << *fold.profile;
  ASSERT_EQ(fold.refused.size(), 1u);
  EXPECT_EQ(fold.refused[0].op, 1u);
  EXPECT_EQ(fold.refused[0].reason, "number_out_of_range");

  // An unreadable operation is refused alone; the others still fold.
  ops.insert(ops.begin() + 1, "not an operation");
  fold = ProfileUpdateFolder().Fold(stored, ops);
  EXPECT_EQ(*fold.profile, *direct.profile);
  ASSERT_EQ(fold.refused.size(), 2u);
  EXPECT_EQ(fold.refused[0].op, 1u);
  EXPECT_EQ(fold.refused[0].reason, "unreadable_operation");
  EXPECT_EQ(fold.refused[1].op, 2u);

  // $delete folds to no profile.
  auto del = Parse(R"([{"$token":"t","$distinct_id":"u","$delete":""}])");
  std::vector<std::string> del_ops = {EncodeProfileUpdate(del.updates[0])};
  fold = ProfileUpdateFolder().Fold(stored, del_ops);
  EXPECT_TRUE(fold.changed);
  EXPECT_FALSE(fold.profile.has_value());
}

}  // namespace
}  // namespace sluice::ingest
