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
  for (const ProfileUpdate& u : parsed.updates) {
    const std::string text = EncodeProfileUpdate(u, "10.0.0.7");
    EXPECT_EQ(text.find("secret-token"), std::string::npos) << "the token is not part of an operation";
    auto d = DecodeProfileUpdate(text);
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    EXPECT_EQ(d->request_ip, "10.0.0.7");
    EXPECT_EQ(d->update.op, u.op);
    EXPECT_EQ(SerializeProfileJson(d->update.argument), SerializeProfileJson(u.argument));
    EXPECT_EQ(d->update.time_ms, u.time_ms);
    EXPECT_EQ(d->update.ignore_time, u.ignore_time);
    EXPECT_EQ(d->update.ignore_alias, u.ignore_alias);
    EXPECT_EQ(d->update.ip, u.ip);
    EXPECT_EQ(EncodeProfileUpdate(d->update, d->request_ip), text);
  }
  EXPECT_NE(EncodeProfileUpdate(parsed.updates[0]).find("123456789012345678901234567890"), std::string::npos);
}

TEST(ProfileOpsTest, DecodingRefusesOtherText) {
  for (std::string_view bad :
       {"", "[]", R"({"op":"$drop","time_ms":1})", R"({"op":"$set","arg":{}})",
        R"({"op":"$set","arg":{},"time_ms":1,"ignore_time":1,"ignore_alias":false,"ip":"","request_ip":""})",
        R"({"op":"$set","arg":{},"time_ms":1,"ignore_time":true,"ignore_alias":false,"ip":""})"}) {
    auto d = DecodeProfileUpdate(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(ProfileOpsTest, FolderMatchesApplyProfileUpdatesAndReportsOpIndexes) {
  auto parsed = Parse(R"([{"$token":"t","$distinct_id":"u","$set":{"a":1,"p":1e308}},
                          {"$token":"t","$distinct_id":"u","$add":{"p":1e308}},
                          {"$token":"t","$distinct_id":"u","$union":{"l":[1,2]}},
                          {"$token":"t","$distinct_id":"u","$remove":{"l":1}}])");
  std::vector<const ProfileUpdate*> ptrs;
  std::vector<std::string> ops;
  for (const ProfileUpdate& u : parsed.updates) {
    ptrs.push_back(&u);
    ops.push_back(EncodeProfileUpdate(u, "9.9.9.9"));
  }
  const std::optional<std::string> stored = R"({"z":true})";
  ProfileEdit direct = ApplyProfileUpdates(stored, ptrs, "9.9.9.9");
  store::ProfileFold fold = ProfileUpdateFolder().Fold(stored, ops);
  EXPECT_EQ(fold.changed, direct.changed);
  ASSERT_TRUE(fold.profile.has_value());
  EXPECT_EQ(*fold.profile, *direct.profile);
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
