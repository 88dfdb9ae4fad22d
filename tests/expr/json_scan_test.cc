// The evaluator's JSON scanner and number/string helpers (src/expr/json_scan.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "expr/json_scan.h"

namespace sluice::expr::json {
namespace {

std::vector<std::pair<std::string, std::string>> Members(std::string_view object) {
  std::vector<std::pair<std::string, std::string>> out;
  MemberScanner s(object);
  std::string_view k, v;
  while (s.Next(k, v)) out.emplace_back(k, v);
  return out;
}

std::vector<std::string> Elements(std::string_view array) {
  std::vector<std::string> out;
  ElementScanner s(array);
  std::string_view v;
  while (s.Next(v)) out.emplace_back(v);
  return out;
}

using KV = std::vector<std::pair<std::string, std::string>>;
using List = std::vector<std::string>;

TEST(JsonScanTest, MembersInOrderWithRawKeysAndValueText) {
  EXPECT_EQ(Members(R"({"a":1,"b\"c":"x\"y","d":[1,{"e":"]"}],"f":{"g":"}"},"h":null,"i":-1.5e3})"),
            (KV{{"a", "1"},
                {R"(b\"c)", R"("x\"y")"},
                {"d", R"([1,{"e":"]"}])"},
                {"f", R"({"g":"}"})"},
                {"h", "null"},
                {"i", "-1.5e3"}}));
  EXPECT_EQ(Members(" { \"a\" : true ,\n\"b\":\"\\\\\" } "), (KV{{"a", "true"}, {"b", R"("\\")"}}));
  EXPECT_EQ(Members("{}"), KV{});
  EXPECT_EQ(Members("{ }"), KV{});
}

TEST(JsonScanTest, MembersStopAtMalformedText) {
  EXPECT_EQ(Members(""), KV{});
  EXPECT_EQ(Members("[1]"), KV{});
  EXPECT_EQ(Members(R"({"a":1,"b")"), (KV{{"a", "1"}}));
  EXPECT_EQ(Members(R"({"a":1 "b":2})"), (KV{{"a", "1"}}));
  EXPECT_EQ(Members(R"({"a":1,,"b":2})"), (KV{{"a", "1"}}));
  EXPECT_EQ(Members(R"({"a":)"), KV{});
  EXPECT_EQ(Members(R"({"a":"x)"), KV{});
  EXPECT_EQ(Members(R"({"a":[1,2)"), KV{});
  EXPECT_EQ(Members(R"({a:1})"), KV{});
  EXPECT_EQ(Members(R"({"a":1})"), (KV{{"a", "1"}}));
  // A string ending in an escaped backslash is closed by the next quote.
  EXPECT_EQ(Members(R"({"a":"x\\","b":2})"), (KV{{"a", R"("x\\")"}, {"b", "2"}}));
}

TEST(JsonScanTest, Elements) {
  EXPECT_EQ(Elements(R"([1,"a,b",[2,[3]],{"k":[4]},null])"), (List{"1", R"("a,b")", "[2,[3]]", R"({"k":[4]})", "null"}));
  EXPECT_EQ(Elements("[ 1 , 2 ]"), (List{"1", "2"}));
  EXPECT_EQ(Elements("[]"), List{});
  EXPECT_EQ(Elements("[1,"), List{"1"});
  EXPECT_EQ(Elements("{}"), List{});
  EXPECT_EQ(Elements("[1 2]"), List{"1"});
}

std::string Lenient(std::string_view body) {
  std::string out;
  EXPECT_TRUE(Unescape(body, out, nullptr));
  return out;
}

TEST(JsonScanTest, Unescape) {
  EXPECT_EQ(Lenient(R"(plain)"), "plain");
  EXPECT_EQ(Lenient(R"(a\"b\\c\/d\'e)"), "a\"b\\c/d'e");
  EXPECT_EQ(Lenient(R"(\b\f\n\r\t)"), "\b\f\n\r\t");
  EXPECT_EQ(Lenient(R"(\u0041\u00fc\u20AC\ud83d\ude00)"), "A\xC3\xBC\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(Lenient(R"(\u0000)"), std::string(1, '\0'));
  // Lenient: lone surrogates become U+FFFD, unknown escapes stay as written.
  EXPECT_EQ(Lenient(R"(\ud800x)"), "\xEF\xBF\xBDx");
  EXPECT_EQ(Lenient(R"(\udc00)"), "\xEF\xBF\xBD");
  EXPECT_EQ(Lenient(R"(\ud800\u0041)"), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(Lenient(R"(\q\u12)"), R"(\q\u12)");
  EXPECT_EQ(Lenient("x\\"), "x\\");

  std::string out;
  UnescapeError error;
  EXPECT_FALSE(Unescape(R"(ab\q)", out, &error));
  EXPECT_EQ(error.offset, 2u);
  EXPECT_FALSE(Unescape(R"(\u12g4)", out, &error));
  EXPECT_EQ(error.offset, 0u);
  EXPECT_FALSE(Unescape(R"(x\ud800)", out, &error));
  EXPECT_EQ(error.offset, 1u);
  EXPECT_FALSE(Unescape(R"(\udfff)", out, &error));
  EXPECT_FALSE(Unescape("\\", out, &error));
}

TEST(JsonScanTest, ParseJsonNumber) {
  EXPECT_EQ(ParseJsonNumber("0"), 0.0);
  EXPECT_EQ(ParseJsonNumber("-12"), -12.0);
  EXPECT_EQ(ParseJsonNumber("1.10"), 1.1);
  EXPECT_EQ(ParseJsonNumber("1.5e3"), 1500.0);
  EXPECT_EQ(ParseJsonNumber("2E-2"), 0.02);
  EXPECT_EQ(ParseJsonNumber("123456789012345678901234567890"), 1.2345678901234568e29);
  EXPECT_EQ(ParseJsonNumber("1e999"), HUGE_VAL);
  EXPECT_EQ(ParseJsonNumber("-1e999"), -HUGE_VAL);
  EXPECT_EQ(ParseJsonNumber("1e-999"), 0.0);
  EXPECT_TRUE(std::signbit(*ParseJsonNumber("-0")));
  for (std::string_view bad : {"", "-", "01", "1.", ".5", "+1", "1e", "1e+", "0x10", "1 ", " 1", "NaN", "Infinity",
                               "1.2.3", "--1"}) {
    EXPECT_FALSE(ParseJsonNumber(bad).has_value()) << bad;
  }
}

TEST(JsonScanTest, ParseLooseNumber) {
  EXPECT_EQ(ParseLooseNumber(" 12 "), 12.0);
  EXPECT_EQ(ParseLooseNumber("+5"), 5.0);
  EXPECT_EQ(ParseLooseNumber("-5.5"), -5.5);
  EXPECT_EQ(ParseLooseNumber(".5"), 0.5);
  EXPECT_EQ(ParseLooseNumber("5."), 5.0);
  EXPECT_EQ(ParseLooseNumber("007"), 7.0);
  EXPECT_EQ(ParseLooseNumber("1e3"), 1000.0);
  EXPECT_EQ(ParseLooseNumber("-1e999"), -HUGE_VAL);
  for (std::string_view bad : {"", " ", "+", ".", "abc", "1a", "0x10", "1e", "Infinity", "NaN", "1 2", "+-1"}) {
    EXPECT_FALSE(ParseLooseNumber(bad).has_value()) << bad;
  }
}

TEST(JsonScanTest, FormatNumberLikeJavaScript) {
  const std::pair<double, std::string_view> cases[] = {
      {0, "0"},
      {-0.0, "0"},
      {5, "5"},
      {-5, "-5"},
      {1.5, "1.5"},
      {9.99, "9.99"},
      {0.1 + 0.2, "0.30000000000000004"},
      {123456789, "123456789"},
      {1e20, "100000000000000000000"},
      {1e21, "1e+21"},
      {1.2345678901234568e29, "1.2345678901234568e+29"},
      {0.000001, "0.000001"},
      {0.0000012, "0.0000012"},
      {1e-7, "1e-7"},
      {-1.5e-10, "-1.5e-10"},
      {9007199254740993.0, "9007199254740992"},
      {HUGE_VAL, "Infinity"},
      {-HUGE_VAL, "-Infinity"},
      {NAN, "NaN"},
      {5e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
  };
  for (const auto& [value, text] : cases) EXPECT_EQ(FormatNumber(value), text) << text;
}

}  // namespace
}  // namespace sluice::expr::json
