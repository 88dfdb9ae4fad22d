// StringCacheSet: exact answers for members and non-members, its bounds, and no false "known".
#include "common/string_cache_set.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice {
namespace {

TEST(StringCacheSetTest, KnowsWhatWasInsertedAndNothingElse) {
  StringCacheSet set(1000, 1 << 20);
  EXPECT_FALSE(set.Contains("d1"));
  std::vector<std::string> members;
  for (int i = 0; i < 1000; ++i) members.push_back("d" + std::to_string(i * 7919));
  for (const auto& m : members) set.Insert(m);
  set.Insert(members[3]);  // again: no second copy
  EXPECT_EQ(set.size(), 1000u);
  for (const auto& m : members) EXPECT_TRUE(set.Contains(m)) << m;
  for (int i = 0; i < 1000; ++i) {
    const std::string other = "d" + std::to_string(i * 7919 + 1);
    EXPECT_FALSE(set.Contains(other)) << other;
  }
  // Prefixes and extensions of members are other strings.
  EXPECT_FALSE(set.Contains("d"));
  EXPECT_FALSE(set.Contains(members[5] + "x"));
  EXPECT_FALSE(set.Contains(members[5].substr(0, members[5].size() - 1)));
  set.Insert("");
  EXPECT_TRUE(set.Contains(""));
}

TEST(StringCacheSetTest, StartsOverWhenFullOfMembersOrOfBytes) {
  StringCacheSet by_count(3, 1 << 20);
  for (const char* s : {"a", "b", "c"}) by_count.Insert(s);
  EXPECT_EQ(by_count.size(), 3u);
  by_count.Insert("d");  // full: cleared, then d
  EXPECT_EQ(by_count.size(), 1u);
  EXPECT_TRUE(by_count.Contains("d"));
  EXPECT_FALSE(by_count.Contains("a"));

  StringCacheSet by_bytes(100, 10);
  by_bytes.Insert("12345");
  by_bytes.Insert("67890");
  EXPECT_EQ(by_bytes.size(), 2u);
  by_bytes.Insert("x");  // 11 bytes would exceed 10: cleared first
  EXPECT_EQ(by_bytes.size(), 1u);
  EXPECT_TRUE(by_bytes.Contains("x"));
  EXPECT_FALSE(by_bytes.Contains("12345"));
  by_bytes.Insert(std::string(11, 'z'));  // larger than the whole budget: not kept, nothing cleared
  EXPECT_FALSE(by_bytes.Contains(std::string(11, 'z')));
  EXPECT_TRUE(by_bytes.Contains("x"));

  by_bytes.Clear();
  EXPECT_EQ(by_bytes.size(), 0u);
  EXPECT_FALSE(by_bytes.Contains("x"));
}

}  // namespace
}  // namespace sluice
