#include "common/json_text.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(JsonTextTest, EscapesOnlyWhatJsonRequires) {
  std::string out;
  AppendJsonString(out, std::string("a\"b\\c\nd\x01\xc3\xbc", 10));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\u0001\xc3\xbc\"");
  out.clear();
  AppendJsonString(out, "");
  EXPECT_EQ(out, "\"\"");
}

TEST(JsonTextTest, AppendsIntegers) {
  std::string out;
  AppendInt(out, -1700000000123LL);
  EXPECT_EQ(out, "-1700000000123");
}

}  // namespace
}  // namespace sluice
