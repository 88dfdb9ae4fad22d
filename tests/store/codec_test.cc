#include "store/codec.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::store::internal {
namespace {

Event MakeEvent() {
  Event e;
  e.name = "Signed Up";
  e.time_us = 1'700'000'123'456'789;
  e.distinct_id = "user-1";
  e.device_id = "dev-9";
  e.user_id = "user-1";
  e.insert_id = "abc-123";
  e.properties = R"({"plan":"pro","n":1.50})";
  return e;
}

TEST(CodecTest, EventValueHeadPlusPropertiesIsTheWholeValue) {
  // The write path puts head and properties as two parts of one WriteBatch value.
  for (size_t size : {size_t{2}, size_t{127}, size_t{128}, size_t{100'000}}) {
    Event e = MakeEvent();
    e.properties = "{" + std::string(size - 2, 'p') + "}";
    std::string whole;
    EncodeEventValue(e, 42, whole);
    std::string head;
    EncodeEventValueHead(e, 42, e.properties.size(), head);
    EXPECT_EQ(head + e.properties, whole) << size;
    // An event batch has the properties apart from the event: the head takes their size, not the event's.
    Event apart = e;
    apart.properties.clear();
    std::string head_apart;
    EncodeEventValueHead(apart, 42, e.properties.size(), head_apart);
    EXPECT_EQ(head_apart, head) << size;
    EventView v;
    const std::string joined = head + e.properties;  // named: the view points into it
    ASSERT_TRUE(DecodeEventValue(joined, &v));
    EXPECT_EQ(v.properties, e.properties);
  }
}

TEST(CodecTest, EventValueRoundTripsEveryField) {
  Event e = MakeEvent();
  e.properties = std::string(100'000, 'x');  // needs a 3-byte varint length
  std::string value;
  EncodeEventValue(e, 1'700'000'999'000, value);
  EventView v;
  ASSERT_TRUE(DecodeEventValue(value, &v));
  EXPECT_EQ(v.name, e.name);
  EXPECT_EQ(v.time_us, e.time_us);
  EXPECT_EQ(v.distinct_id, e.distinct_id);
  EXPECT_EQ(v.device_id, e.device_id);
  EXPECT_EQ(v.user_id, e.user_id);
  EXPECT_EQ(v.insert_id, e.insert_id);
  EXPECT_EQ(v.properties, e.properties);
  EXPECT_EQ(v.ingested_ms, 1'700'000'999'000);
  // Zero-copy: the views point into the encoded value.
  EXPECT_GE(v.properties.data(), value.data());
  EXPECT_LE(v.properties.data() + v.properties.size(), value.data() + value.size());
}

TEST(CodecTest, EventValueRoundTripsEmptyFieldsAndBinary) {
  Event e;
  e.properties = std::string("{\"a\":\"\0\xff\"}", 10);
  std::string value;
  EncodeEventValue(e, 0, value);
  EventView v;
  ASSERT_TRUE(DecodeEventValue(value, &v));
  EXPECT_TRUE(v.name.empty());
  EXPECT_TRUE(v.device_id.empty());
  EXPECT_EQ(v.properties, e.properties);
}

TEST(CodecTest, DecodeRejectsMalformedValues) {
  std::string value;
  EncodeEventValue(MakeEvent(), 5, value);
  EventView v;
  for (size_t n = 0; n < value.size(); ++n) {
    EXPECT_FALSE(DecodeEventValue(std::string_view(value).substr(0, n), &v)) << "truncated to " << n;
  }
  EXPECT_FALSE(DecodeEventValue(value + "x", &v));  // trailing garbage
  std::string wrong_version = value;
  wrong_version[0] = 99;
  EXPECT_FALSE(DecodeEventValue(wrong_version, &v));
}

TEST(CodecTest, VarintRejectsOverlongAndTruncated) {
  std::string s;
  AppendVarint32(s, 0xffffffffu);
  uint32_t v = 0;
  const char* p = s.data();
  ASSERT_TRUE(ReadVarint32(&p, s.data() + s.size(), &v));
  EXPECT_EQ(v, 0xffffffffu);
  const std::string overlong = "\xff\xff\xff\xff\x1f";
  p = overlong.data();
  EXPECT_FALSE(ReadVarint32(&p, overlong.data() + overlong.size(), &v));
  const std::string truncated = "\x80";
  p = truncated.data();
  EXPECT_FALSE(ReadVarint32(&p, truncated.data() + truncated.size(), &v));
}

TEST(CodecTest, DedupHashIgnoresSubSecondTime) {
  Event a = MakeEvent();
  Event b = a;
  a.time_us = 1'700'000'123'000'000;
  b.time_us = 1'700'000'123'999'999;
  EXPECT_EQ(EventDedupHash(a), EventDedupHash(b));
  b.time_us = 1'700'000'124'000'000;
  EXPECT_NE(EventDedupHash(a), EventDedupHash(b));
}

TEST(CodecTest, DedupHashCoversEveryKeyFieldOnly) {
  const Event base = MakeEvent();
  Event e = base;
  e.insert_id = "abc-124";
  EXPECT_NE(EventDedupHash(base), EventDedupHash(e));
  e = base;
  e.name = "Signed Up2";
  EXPECT_NE(EventDedupHash(base), EventDedupHash(e));
  e = base;
  e.distinct_id = "user-2";
  EXPECT_NE(EventDedupHash(base), EventDedupHash(e));
  // Not part of the key: a later copy with other properties replaces the earlier one.
  e = base;
  e.properties = "{}";
  e.device_id = "other";
  EXPECT_EQ(EventDedupHash(base), EventDedupHash(e));
}

TEST(CodecTest, DedupHashLengthPrefixesFields) {
  Event a = MakeEvent();
  Event b = a;
  a.name = "ab";
  a.distinct_id = "c";
  b.name = "a";
  b.distinct_id = "bc";
  EXPECT_NE(EventDedupHash(a), EventDedupHash(b));
}

TEST(CodecTest, TruncateToSecondFloors) {
  EXPECT_EQ(TruncateToSecond(1'999'999), 1);
  EXPECT_EQ(TruncateToSecond(0), 0);
  EXPECT_EQ(TruncateToSecond(-1), -1);
  EXPECT_EQ(TruncateToSecond(-1'000'000), -1);
}

TEST(CodecTest, EventKeyIsProjectHourHash) {
  const Event e = MakeEvent();
  const std::string key = EventKey(0x01020304, e);
  ASSERT_EQ(key.size(), kEventKeyBytes);
  EXPECT_EQ(key.substr(0, 4), std::string("\x01\x02\x03\x04"));
  EXPECT_EQ(LoadBigEndian32(key.data() + 4), HourOf(e.time_us));
  EXPECT_EQ(key.substr(0, 8), PartitionPrefix(0x01020304, HourOf(e.time_us)));
}

TEST(CodecTest, PrefixSuccessor) {
  EXPECT_EQ(PrefixSuccessor("ab"), "ac");
  EXPECT_EQ(PrefixSuccessor(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixSuccessor(std::string("\xff\xff", 2)), "");
  EXPECT_EQ(PrefixSuccessor(""), "");
}

TEST(CodecTest, PartitionCountersRoundTrip) {
  PartitionCounters c{3, 1ull << 40, 77};
  PartitionCounters d;
  ASSERT_TRUE(DecodePartitionCounters(EncodePartitionCounters(c), &d));
  EXPECT_EQ(d.writes, 3u);
  EXPECT_EQ(d.bytes, 1ull << 40);
  EXPECT_EQ(d.change_seq, 77u);
  EXPECT_FALSE(DecodePartitionCounters("short", &d));
}

TEST(CodecTest, ProjectRoundTrip) {
  Project p;
  p.id = 42;
  p.name = "web";
  p.token = "tok";
  p.api_secret = Secret("sec");
  p.created_ms = 123;
  p.external_id = "ext";
  auto q = DecodeProject(EncodeProject(p));
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->id, 42u);
  EXPECT_EQ(q->name, "web");
  EXPECT_EQ(q->token, "tok");
  EXPECT_EQ(q->api_secret.Reveal(), "sec");
  EXPECT_EQ(q->created_ms, 123);
  EXPECT_EQ(q->external_id, "ext");
  EXPECT_FALSE(DecodeProject("x").has_value());
}

// GCS bucket bindings (docs/gcs.md#binding) round-trip; a project stored before them (format v1) reads as
// bound to no bucket, and a truncated list is refused rather than read short.
TEST(CodecTest, ProjectGcsBucketsRoundTripAndV1ReadsAsNone) {
  Project p;
  p.id = 7;
  p.name = "web";
  p.token = "tok";
  p.api_secret = Secret("sec");
  p.gcs_buckets = {"acme-events", "acme.backup"};
  const std::string encoded = EncodeProject(p);
  auto q = DecodeProject(encoded);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->gcs_buckets, p.gcs_buckets);
  EXPECT_EQ(q->token, "tok");
  EXPECT_FALSE(DecodeProject(encoded.substr(0, encoded.size() - 1)).has_value());

  // v1 as the previous release wrote it: version 1, id, created_ms, then four length-prefixed strings.
  std::string v1;
  v1.push_back(1);
  v1.append({0, 0, 0, 9});
  v1.append(8, '\0');
  for (std::string_view f : {"old", "t1", "s1", ""}) {
    v1.push_back(static_cast<char>(f.size()));
    v1.append(f);
  }
  auto old_project = DecodeProject(v1);
  ASSERT_TRUE(old_project.has_value());
  EXPECT_EQ(old_project->id, 9u);
  EXPECT_EQ(old_project->name, "old");
  EXPECT_TRUE(old_project->gcs_buckets.empty());
}

TEST(CodecTest, MetaKeysOfNamespacesDoNotOverlap) {
  // "a"+"bc" and "ab"+"c" must not collide, and no key of ns "a" may sort inside ns "ab"'s range.
  EXPECT_NE(MetaKey("a", "bc"), MetaKey("ab", "c"));
  EXPECT_NE(MetaKey("a", "bc").substr(0, 3), MetaKey("ab", "").substr(0, 3));
}

TEST(CodecTest, GroupProfileKeysOfOneGroupKeyShareAPrefixNoOtherHas) {
  const std::string team = GroupProfilePrefix(7, "team");
  const std::string key = GroupProfileKey(7, "team", "acme");
  EXPECT_EQ(key.substr(0, team.size()), team);
  EXPECT_EQ(key.substr(team.size()), "acme");
  // "teams"/"x" must not fall in the range of "team", nor another project's.
  EXPECT_NE(GroupProfileKey(7, "teams", "x").substr(0, team.size()), team);
  EXPECT_NE(GroupProfileKey(8, "team", "acme").substr(0, team.size()), team);
  EXPECT_NE(GroupProfileKey(7, "te", "amacme"), key);
}

}  // namespace
}  // namespace sluice::store::internal
