// WhereFilter: the grammar (precedence, every operator and function), the value rules (types, missing
// properties, promoted fields), strings and numbers as stored, error positions, and the limits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "expr/where.h"

namespace sluice::expr {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Stored properties as ingest keeps them: minified, values as the text that arrived, promoted fields removed.
constexpr std::string_view kProps =
    R"({"$os":"Linux","plan":"pro","count":12,"price":9.99,"tags":["a","b"],"n":null,"vip":true,"no":false,)"
    R"("zero":0,"empty":"","str_num":"12","big":123456789012345678901234567890,"exp":1.5e3,)"
    R"("nested":{"k":"v","a":[1,2]},"uni":"Gr\u00fc\u00dfe","utf8":"Grüße","esc":"a\"b\\c",)"
    R"("emoji":"\ud83d\ude00","$browser":"Mozilla Chrome/120","list_num":[1,2.0,3e0],"obj_empty":{},)"
    R"("list_empty":[],"caf\u00e9":"key-escaped","neg":-3.5,"nested_list":[["x",1],[]],"s_true":"true"})";

// 2024-05-01T12:00:00.5Z
constexpr int64_t kTimeUs = 1'714'564'800'500'000;

EventFields Event(std::string_view props = kProps) {
  EventFields e;
  e.name = "Signed up";
  e.time_us = kTimeUs;
  e.distinct_id = "u1";
  e.insert_id = "ins-1";
  e.device_id = "dev-1";
  e.user_id = "";  // undefined
  e.properties = props;
  return e;
}

/// Compiles `expression` (failing the test when it does not compile) and evaluates it against `props`.
bool Match(std::string_view expression, std::string_view props = kProps) {
  auto f = WhereFilter::Compile(expression);
  EXPECT_TRUE(f.ok()) << expression << ": " << (f.ok() ? "" : f.error().message);
  if (!f.ok()) return false;
  return f->Matches(Event(props));
}

/// The compile error of `expression` (failing the test when it compiles).
std::string CompileError(std::string_view expression) {
  auto f = WhereFilter::Compile(expression);
  EXPECT_FALSE(f.ok()) << expression << " compiled";
  if (f.ok()) return {};
  EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
  return f.error().message;
}

TEST(WhereTest, BriefExamples) {
  EXPECT_TRUE(Match(R"(properties["$os"] == "Linux" and defined(properties["plan"]))"));
  EXPECT_FALSE(Match(R"(properties["$os"] == "Linux" and defined(properties["plan2"]))"));
  EXPECT_TRUE(Match(R"(not (properties["count"] < 10) or properties["country"] in ["US", "CA"])"));
  EXPECT_TRUE(Match(R"(not (properties["count"] < 10) or properties["country"] in ["US", "CA"])",
                    R"({"count":5,"country":"CA"})"));
  EXPECT_FALSE(Match(R"(not (properties["count"] < 10) or properties["country"] in ["US", "CA"])",
                     R"({"count":5,"country":"DE"})"));
  EXPECT_TRUE(Match(R"("Chrome" in properties["$browser"])"));
  EXPECT_TRUE(Match(R"("Chrome" in properties["$browser"])", R"({"$browser":["Safari","Chrome"]})"));
  EXPECT_FALSE(Match(R"("Chrome" in properties["$browser"])", R"({"$browser":["Safari","Chrome 120"]})"));
  EXPECT_TRUE(Match(R"(number(properties["price"]) >= 9.99 and boolean(properties["vip"]) == true and )"
                    R"(string(properties["n"]) == "5")",
                    R"({"price":"9.99","vip":1,"n":5})"));
}

TEST(WhereTest, Precedence) {
  EXPECT_TRUE(Match("true or false and false"));      // and binds tighter than or
  EXPECT_FALSE(Match("(true or false) and false"));
  EXPECT_TRUE(Match("not true or true"));             // (not true) or true
  EXPECT_FALSE(Match("not (true or true)"));
  EXPECT_TRUE(Match("not false and true"));
  EXPECT_TRUE(Match("1 + 2 * 3 == 7"));
  EXPECT_TRUE(Match("(1 + 2) * 3 == 9"));
  EXPECT_TRUE(Match("10 - 2 - 3 == 5"));               // left to right
  EXPECT_TRUE(Match("12 / 2 / 3 == 2"));
  EXPECT_TRUE(Match("-2 * 3 == -6"));
  EXPECT_TRUE(Match("- (2 + 1) == -3"));
  EXPECT_TRUE(Match("1 < 2 == true"));                 // (1 < 2) == true
  // not binds tighter than comparisons (Mixpanel's unary operator): (not 0) == true.
  EXPECT_TRUE(Match(R"(not properties["zero"] == true)"));
  EXPECT_TRUE(Match("not not true"));
  EXPECT_TRUE(Match(R"(properties["count"] > 10 and properties["plan"] == "pro" or properties["missing"])"));
  EXPECT_FALSE(Match(R"(properties["count"] > 10 and (properties["plan"] == "x" or properties["missing"]))"));
}

TEST(WhereTest, ComparisonOperators) {
  EXPECT_TRUE(Match(R"(properties["count"] == 12)"));
  EXPECT_FALSE(Match(R"(properties["count"] != 12)"));
  EXPECT_TRUE(Match(R"(properties["count"] != 13)"));
  EXPECT_TRUE(Match(R"(properties["count"] < 13)"));
  EXPECT_FALSE(Match(R"(properties["count"] < 12)"));
  EXPECT_TRUE(Match(R"(properties["count"] <= 12)"));
  EXPECT_FALSE(Match(R"(properties["count"] <= 11.5)"));
  EXPECT_TRUE(Match(R"(properties["count"] > 11.5)"));
  EXPECT_FALSE(Match(R"(properties["count"] > 12)"));
  EXPECT_TRUE(Match(R"(properties["count"] >= 12)"));
  EXPECT_FALSE(Match(R"(properties["count"] >= 12.01)"));
  // Strings: by bytes (UTF-8 order = code point order).
  EXPECT_TRUE(Match(R"(properties["plan"] > "pre")"));
  EXPECT_TRUE(Match(R"(properties["plan"] < "pro2")"));
  EXPECT_TRUE(Match(R"(properties["plan"] <= "pro" and properties["plan"] >= "pro")"));
  EXPECT_TRUE(Match(R"("Z" < "a" and "a" < "é")"));
  EXPECT_TRUE(Match(R"(properties["plan"] != "Pro")"));
  // Booleans: false < true.
  EXPECT_TRUE(Match(R"(properties["no"] < properties["vip"])"));
  EXPECT_TRUE(Match(R"(properties["vip"] == true and properties["no"] == false)"));
  // null equals only null.
  EXPECT_TRUE(Match(R"(properties["n"] == null)"));
  EXPECT_FALSE(Match(R"(properties["zero"] == null)"));
  EXPECT_FALSE(Match(R"(properties["n"] < properties["n"])"));
  // Lists and objects compare structurally / by stored text.
  EXPECT_TRUE(Match(R"(properties["tags"] == ["a", "b"])"));
  EXPECT_FALSE(Match(R"(properties["tags"] == ["b", "a"])"));
  EXPECT_FALSE(Match(R"(properties["tags"] == ["a"])"));
  EXPECT_TRUE(Match(R"(properties["list_num"] == [1, 2, 3])"));
  EXPECT_TRUE(Match(R"(properties["nested_list"] == [["x", 1], []])"));
  EXPECT_TRUE(Match(R"(properties["list_empty"] == [])"));
  EXPECT_TRUE(Match(R"(properties["nested"] == properties["nested"])"));
  EXPECT_FALSE(Match(R"(properties["nested"] == properties["obj_empty"])"));
  EXPECT_FALSE(Match(R"(properties["tags"] < properties["tags"])"));
}

TEST(WhereTest, MixedTypesAreNeverEqualOrOrdered) {
  EXPECT_FALSE(Match(R"(properties["str_num"] == 12)"));
  EXPECT_TRUE(Match(R"(properties["str_num"] != 12)"));
  EXPECT_FALSE(Match(R"(properties["str_num"] < 13)"));
  EXPECT_FALSE(Match(R"(properties["str_num"] >= 12)"));
  EXPECT_FALSE(Match(R"(properties["count"] == "12")"));
  EXPECT_FALSE(Match(R"(properties["vip"] == 1)"));
  EXPECT_FALSE(Match(R"(properties["zero"] == false)"));
  EXPECT_FALSE(Match(R"(properties["n"] == 0)"));
  EXPECT_FALSE(Match(R"(properties["n"] == "")"));
  EXPECT_FALSE(Match(R"(properties["s_true"] == true)"));
  EXPECT_FALSE(Match(R"(properties["tags"] == "a")"));
  EXPECT_TRUE(Match(R"(number(properties["str_num"]) == 12)"));
  EXPECT_TRUE(Match(R"(string(properties["count"]) == "12")"));
}

TEST(WhereTest, MissingPropertiesCompareFalseExceptNotEquals) {
  for (std::string_view op : {"==", "<", "<=", ">", ">="}) {
    EXPECT_FALSE(Match(std::string(R"(properties["missing"] )") + std::string(op) + " 1")) << op;
    EXPECT_FALSE(Match(std::string(R"(properties["missing"] )") + std::string(op) + R"( "")")) << op;
    EXPECT_FALSE(Match(std::string(R"(properties["missing"] )") + std::string(op) + R"( properties["other"])"))
        << op;
  }
  EXPECT_TRUE(Match(R"(properties["missing"] != 1)"));
  EXPECT_TRUE(Match(R"(properties["missing"] != null)"));
  EXPECT_TRUE(Match(R"(properties["missing"] != properties["missing"])"));
  EXPECT_FALSE(Match(R"(properties["missing"] == null)"));
  EXPECT_FALSE(Match(R"(properties["missing"])"));
  EXPECT_TRUE(Match(R"(not properties["missing"])"));
  EXPECT_FALSE(Match(R"(properties["missing"] in ["a", "b"])"));
  EXPECT_FALSE(Match(R"(properties["missing"] in properties["tags"])"));
  EXPECT_FALSE(Match(R"("a" in properties["missing"])"));
  EXPECT_FALSE(Match(R"(defined(properties["missing"] + 1))"));
  EXPECT_FALSE(Match(R"(defined(properties["plan"] - 1))"));  // a string minus a number is undefined
  EXPECT_FALSE(Match(R"(defined(-properties["plan"]))"));
  EXPECT_FALSE(Match(R"(defined(properties["count"] + "x"))"));
  // An event without properties at all.
  EXPECT_FALSE(Match(R"(properties["plan"] == "pro")", "{}"));
  EXPECT_TRUE(Match(R"(properties["plan"] != "pro")", "{}"));
}

TEST(WhereTest, InOperator) {
  EXPECT_TRUE(Match(R"(properties["plan"] in ["free", "pro"])"));
  EXPECT_FALSE(Match(R"(properties["plan"] in ["free", "team"])"));
  EXPECT_FALSE(Match(R"(properties["plan"] in [])"));
  EXPECT_TRUE(Match(R"(properties["count"] in [11, 12.0])"));   // numeric equality
  EXPECT_FALSE(Match(R"(properties["count"] in ["12"])"));      // no coercion
  EXPECT_TRUE(Match(R"(properties["n"] in [1, null])"));
  EXPECT_TRUE(Match(R"("pro" in [properties["$os"], properties["plan"]])"));  // elements may be expressions
  // Substring.
  EXPECT_TRUE(Match(R"("Chrome" in properties["$browser"])"));
  EXPECT_FALSE(Match(R"("chrome" in properties["$browser"])"));  // case-sensitive
  EXPECT_TRUE(Match(R"("" in properties["plan"])"));
  EXPECT_TRUE(Match(R"("ü" in properties["uni"])"));
  EXPECT_FALSE(Match(R"(properties["count"] in properties["str_num"])"));  // a number is not a substring
  // Membership in a list-valued property.
  EXPECT_TRUE(Match(R"("a" in properties["tags"])"));
  EXPECT_FALSE(Match(R"("c" in properties["tags"])"));
  EXPECT_TRUE(Match(R"(2 in properties["list_num"] and 3 in properties["list_num"])"));
  EXPECT_TRUE(Match(R"(["x", 1] in properties["nested_list"])"));
  EXPECT_FALSE(Match(R"("a" in properties["list_empty"])"));
  // Keys of an object-valued property.
  EXPECT_TRUE(Match(R"("k" in properties["nested"])"));
  EXPECT_FALSE(Match(R"("v" in properties["nested"])"));
  EXPECT_FALSE(Match(R"(1 in properties["nested"])"));
  // A scalar property on the right that is neither a string nor a list.
  EXPECT_FALSE(Match(R"(1 in properties["count"])"));
  EXPECT_FALSE(Match(R"(true in properties["vip"])"));
}

TEST(WhereTest, LargeConstantListsAnswerLikeSmallOnes) {
  // Lists of >= 8 constants are looked up through a hash set; the answers must be the scan's.
  const std::string strings = R"(["a","b","c","d","e","f","g","pro"])";
  EXPECT_TRUE(Match(R"(properties["plan"] in )" + strings));
  EXPECT_FALSE(Match(R"(properties["$os"] in )" + strings));
  EXPECT_FALSE(Match(R"(properties["missing"] in )" + strings));
  EXPECT_FALSE(Match(R"(properties["tags"] in )" + strings));
  const std::string numbers = "[1,2,3,4,5,6,7,12,-0]";
  EXPECT_TRUE(Match(R"(properties["count"] in )" + numbers));
  EXPECT_TRUE(Match(R"(properties["zero"] in )" + numbers));  // 0 == -0
  EXPECT_TRUE(Match("-0 in " + numbers));
  EXPECT_FALSE(Match(R"(properties["price"] in )" + numbers));
  EXPECT_FALSE(Match(R"(properties["str_num"] in )" + numbers));
  EXPECT_FALSE(Match(R"(0 / 0 in )" + numbers));  // NaN is in nothing
  const std::string mixed = R"([1,2,3,4,5,6,"x",null,false])";
  EXPECT_TRUE(Match(R"(properties["n"] in )" + mixed));
  EXPECT_TRUE(Match(R"(properties["no"] in )" + mixed));
  EXPECT_FALSE(Match(R"(properties["vip"] in )" + mixed));
  EXPECT_FALSE(Match(R"(properties["missing"] in )" + mixed));
  // Same list as a scan (a non-constant element disables the set).
  const std::string scanned = R"([1,2,3,4,5,6,"x",null,false,properties["missing"]])";
  EXPECT_TRUE(Match(R"(properties["n"] in )" + scanned));
  EXPECT_TRUE(Match(R"(properties["no"] in )" + scanned));
  EXPECT_FALSE(Match(R"(properties["vip"] in )" + scanned));
  // Many ids, as people paste them.
  std::string ids = "[";
  for (int i = 0; i < 1000; ++i) ids += (i ? "," : "") + std::string("\"id-") + std::to_string(i) + "\"";
  ids += "]";
  EXPECT_TRUE(Match(R"(properties["id"] in )" + ids, R"({"id":"id-999"})"));
  EXPECT_FALSE(Match(R"(properties["id"] in )" + ids, R"({"id":"id-1000"})"));
}

TEST(WhereTest, DefinedAndBoolean) {
  EXPECT_TRUE(Match(R"(defined(properties["plan"]))"));
  EXPECT_TRUE(Match(R"(defined(properties["n"]))"));  // null is a value
  EXPECT_TRUE(Match(R"(defined(properties["empty"]))"));
  EXPECT_FALSE(Match(R"(defined(properties["missing"]))"));
  EXPECT_TRUE(Match(R"(not defined(properties["missing"]))"));
  // Truthiness.
  for (std::string_view truthy : {"vip", "count", "plan", "tags", "nested", "neg", "s_true", "price"}) {
    EXPECT_TRUE(Match(R"(boolean(properties[")" + std::string(truthy) + R"("]))")) << truthy;
    EXPECT_TRUE(Match(R"(properties[")" + std::string(truthy) + R"("])")) << truthy;
  }
  for (std::string_view falsy : {"no", "zero", "empty", "n", "missing", "list_empty", "obj_empty"}) {
    EXPECT_FALSE(Match(R"(boolean(properties[")" + std::string(falsy) + R"("]))")) << falsy;
    EXPECT_FALSE(Match(R"(properties[")" + std::string(falsy) + R"("])")) << falsy;
  }
  EXPECT_TRUE(Match(R"(boolean(properties["vip"]) == true)"));
  EXPECT_FALSE(Match("boolean(0 / 0)"));  // NaN
  EXPECT_TRUE(Match("boolean([0])"));
  EXPECT_FALSE(Match("boolean([])"));
}

TEST(WhereTest, NumberConversion) {
  EXPECT_TRUE(Match(R"(number(properties["str_num"]) == 12)"));
  EXPECT_TRUE(Match(R"(number(properties["count"]) == 12)"));
  EXPECT_TRUE(Match(R"(number(properties["vip"]) == 1 and number(properties["no"]) == 0)"));
  EXPECT_TRUE(Match(R"(number(properties["v"]) == 12)", R"({"v":" 12 "})"));
  EXPECT_TRUE(Match(R"(number(properties["v"]) == 1500)", R"({"v":"1.5e3"})"));
  EXPECT_TRUE(Match(R"(number(properties["v"]) == -5)", R"({"v":"-5"})"));
  EXPECT_TRUE(Match(R"(number(properties["v"]) == 5)", R"({"v":"+5"})"));
  EXPECT_TRUE(Match(R"(number(properties["v"]) == 0.5)", R"({"v":".5"})"));
  EXPECT_TRUE(Match(R"(number(properties["v"]) == 5)", R"({"v":"5."})"));
  EXPECT_TRUE(Match(R"(number("12") == 12)"));
  for (std::string_view bad : {R"("abc")", R"("")", R"("12abc")", R"("0x10")", R"("1e")", "null", "[1]", "{}"}) {
    EXPECT_FALSE(Match(R"(defined(number(properties["v"])))", R"({"v":)" + std::string(bad) + "}")) << bad;
  }
  EXPECT_FALSE(Match(R"(defined(number(properties["missing"])))"));
}

TEST(WhereTest, StringConversion) {
  EXPECT_TRUE(Match(R"(string(properties["count"]) == "12")"));
  EXPECT_TRUE(Match(R"(string(properties["plan"]) == "pro")"));
  EXPECT_TRUE(Match(R"(string(properties["exp"]) == "1500")"));
  EXPECT_TRUE(Match(R"(string(properties["v"]) == "5")", R"({"v":5.0})"));
  EXPECT_TRUE(Match(R"(string(properties["price"]) == "9.99")"));
  EXPECT_TRUE(Match(R"(string(properties["neg"]) == "-3.5")"));
  EXPECT_TRUE(Match(R"(string(properties["big"]) == "1.2345678901234568e+29")"));
  EXPECT_TRUE(Match(R"(string(0.000001) == "0.000001" and string(0.0000001) == "1e-7")"));
  EXPECT_TRUE(Match(R"(string(1e21) == "1e+21" and string(1e20) == "100000000000000000000")"));
  EXPECT_TRUE(Match(R"(string(-0) == "0" and string(1/0) == "Infinity" and string(0/0) == "NaN")"));
  EXPECT_TRUE(Match(R"(string(0.1 + 0.2) == "0.30000000000000004")"));
  EXPECT_TRUE(Match(R"(string(properties["vip"]) == "true" and string(properties["no"]) == "false")"));
  EXPECT_TRUE(Match(R"(string(properties["n"]) == "null")"));
  EXPECT_TRUE(Match(R"(string(properties["tags"]) == '["a","b"]')"));
  EXPECT_TRUE(Match(R"(string(properties["nested"]) == '{"k":"v","a":[1,2]}')"));
  EXPECT_TRUE(Match(R"(string([1, "a\"", null, [true], 0/0]) == '[1,"a\\"",null,[true],null]')"));
  EXPECT_FALSE(Match(R"(defined(string(properties["missing"])))"));
  EXPECT_TRUE(Match(R"(string(properties["count"]) + "x" == "12x")"));
}

TEST(WhereTest, MathFunctionsAndArithmetic) {
  EXPECT_TRUE(Match(R"(properties["count"] * 2 + 1 == 25)"));
  EXPECT_TRUE(Match(R"(properties["count"] % 5 == 2)"));
  EXPECT_TRUE(Match(R"(properties["count"] / 8 == 1.5)"));
  EXPECT_TRUE(Match(R"(properties["count"] - 20 == -8)"));
  EXPECT_TRUE(Match(R"(1 / 0 > 1e308 and -1 / 0 < -1e308)"));
  EXPECT_FALSE(Match(R"(5 % 0 == 5 % 0)"));  // NaN
  EXPECT_TRUE(Match(R"("a" + "b" == "ab")"));
  EXPECT_TRUE(Match(R"(properties["plan"] + "!" == "pro!")"));
  EXPECT_TRUE(Match(R"(floor(properties["price"]) == 9 and ceil(properties["price"]) == 10)"));
  EXPECT_TRUE(Match(R"(round(2.5) == 3 and round(-2.5) == -2 and round(0.49999999999999994) == 0)"));
  EXPECT_TRUE(Match(R"(round(properties["neg"]) == -3 and floor(properties["neg"]) == -4)"));
  EXPECT_FALSE(Match(R"(defined(floor(properties["plan"])))"));
  EXPECT_TRUE(Match(R"(-properties["neg"] == 3.5)"));
}

TEST(WhereTest, PromotedFields) {
  EXPECT_TRUE(Match(R"(properties["time"] > 1714564800 and properties["time"] < 1714564801)"));
  EXPECT_TRUE(Match(R"(properties["time"] == 1714564800.5)"));
  EXPECT_TRUE(Match(R"(floor(properties["time"]) == 1714564800)"));
  EXPECT_TRUE(Match(R"(properties["distinct_id"] == "u1")"));
  EXPECT_TRUE(Match(R"(properties["$insert_id"] == "ins-1")"));
  EXPECT_TRUE(Match(R"(properties["$device_id"] == "dev-1")"));
  EXPECT_FALSE(Match(R"(defined(properties["$user_id"]))"));  // empty = undefined
  EXPECT_TRUE(Match(R"(properties["$user_id"] != "")"));
  // The promoted fields win over a stray key of the same name in the JSON (ingest never stores one).
  EXPECT_TRUE(Match(R"(properties["distinct_id"] == "u1" and properties["time"] > 1000)",
                    R"({"distinct_id":"other","time":1})"));
  // Names are exact: these are ordinary properties.
  EXPECT_FALSE(Match(R"(defined(properties["Time"]) or defined(properties["$time"]))"));
  // The event name is not a property.
  EXPECT_FALSE(Match(R"(defined(properties["event"]) or defined(properties["name"]))"));
  EventFields e = Event();
  e.user_id = "user-7";
  auto f = WhereFilter::Compile(R"(properties["$user_id"] == "user-7")");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Matches(e));
}

TEST(WhereTest, UnicodeAndEscapes) {
  EXPECT_TRUE(Match(R"(properties["uni"] == "Grüße")"));           // stored escaped, written as UTF-8
  EXPECT_TRUE(Match(R"(properties["uni"] == "Gr\u00fc\u00dfe")"));  // escapes in the expression
  EXPECT_TRUE(Match(R"(properties["uni"] == properties["utf8"])"));
  EXPECT_TRUE(Match(R"(properties["utf8"] == "Gr\u00FC\u00DFe")"));
  EXPECT_TRUE(Match(R"(properties["esc"] == "a\"b\\c")"));
  EXPECT_TRUE(Match(R"(properties["esc"] == 'a"b\\c')"));           // single quotes
  EXPECT_TRUE(Match(R"(properties['plan'] == 'pro')"));
  EXPECT_TRUE(Match(R"('it\'s' == "it's")"));
  EXPECT_TRUE(Match(R"(properties["emoji"] == "😀")"));
  EXPECT_TRUE(Match(R"(properties["emoji"] == "\ud83d\ude00")"));
  EXPECT_TRUE(Match(R"("\t\n\r\b\f\/" == "	" + "
" + "\r\b\f/")"));
  // Property names: the stored key is "caf\u00e9"; either spelling in the expression finds it.
  EXPECT_TRUE(Match(R"(properties["café"] == "key-escaped")"));
  EXPECT_TRUE(Match(R"(properties["caf\u00e9"] == "key-escaped")"));
  EXPECT_TRUE(Match(R"(properties["a\"b"] == 1)", R"({"a\"b":1})"));
  EXPECT_TRUE(Match(R"(properties["日本"] == "語")", R"({"日本":"語"})"));
  // A lone surrogate in stored data is read as U+FFFD.
  EXPECT_TRUE(Match(R"(properties["s"] == "a\ufffdb")", R"({"s":"a\ud800b"})"));
}

TEST(WhereTest, NumbersAsStored) {
  EXPECT_TRUE(Match(R"(properties["exp"] == 1500)"));
  EXPECT_TRUE(Match(R"(properties["price"] == 9.99)"));
  EXPECT_TRUE(Match(R"(properties["v"] == 1.1)", R"({"v":1.10})"));
  EXPECT_TRUE(Match(R"(properties["big"] > 1e29 and properties["big"] == 123456789012345678901234567890)"));
  EXPECT_TRUE(Match(R"(properties["v"] == 9007199254740993)", R"({"v":9007199254740993})"));
  EXPECT_TRUE(Match(R"(properties["v"] > 1e308)", R"({"v":1e999})"));  // beyond double: infinity
  EXPECT_TRUE(Match(R"(properties["v"] == 0)", R"({"v":1e-999})"));
  EXPECT_TRUE(Match(R"(properties["v"] == -0.0025)", R"({"v":-2.5E-3})"));
  EXPECT_TRUE(Match(R"(properties["neg"] < -3 and -3.5 == properties["neg"])"));
  EXPECT_TRUE(Match("1E2 == 100 and 2.5e-3 == 0.0025 and 1e+2 == 100 and .5 == 0.5"));
  EXPECT_TRUE(Match("1e999 > 1e308"));
  EXPECT_TRUE(Match("007 == 7"));
}

TEST(WhereTest, KeywordsAreCaseInsensitive) {
  EXPECT_TRUE(Match(R"(properties["vip"] AND NOT properties["no"])"));
  EXPECT_TRUE(Match(R"(FALSE Or True)"));
  EXPECT_TRUE(Match(R"(Defined(properties["plan"]) and "a" IN properties["tags"] and NULL == null)"));
  EXPECT_TRUE(Match(R"(NUMBER(properties["str_num"]) == 12 and STRING(1) == "1" and Boolean(1))"));
  EXPECT_TRUE(Match(R"(PROPERTIES["plan"] == "pro")"));
}

TEST(WhereTest, WhitespaceAndFormatting) {
  EXPECT_TRUE(Match(" \t\r\n properties [ \"plan\" ] \n==\t\"pro\"  "));
  EXPECT_TRUE(Match(R"((properties["count"]>=12)and(properties["plan"]=="pro"))"));
  // Properties text need not be minified.
  EXPECT_TRUE(Match(R"(properties["b"] == [1, 2] and properties["a"] == 1)", "{ \"a\" : 1 ,\n \"b\" : [ 1 , 2 ] }"));
}

TEST(WhereTest, ManyPropertiesAndDuplicates) {
  // More than the inline slots and the linear-lookup threshold.
  std::string props = "{";
  std::string expr;
  for (int i = 0; i < 20; ++i) {
    props += (i ? "," : "") + std::string("\"p") + std::to_string(i) + "\":" + std::to_string(i);
    expr += (i ? " and " : "") + std::string("properties[\"p") + std::to_string(i) + "\"] == " + std::to_string(i);
  }
  props += "}";
  EXPECT_TRUE(Match(expr, props));
  EXPECT_FALSE(Match(expr + R"( and defined(properties["p20"]))", props));
  EXPECT_TRUE(Match(R"(properties["p19"] == 19 and properties["p0"] == 0 and properties["p7"] == 7)", props));
  // Ingest never stores a duplicate key; if one is there, the first counts.
  EXPECT_TRUE(Match(R"(properties["a"] == 1 and properties["b"] == 2)", R"({"a":1,"b":2,"a":3})"));
}

TEST(WhereTest, MalformedPropertiesTextHasNoProperties) {
  for (std::string_view bad : std::vector<std::string_view>{"", "not json", "{", R"({"a":)", R"({"a":1,)", R"([1,2])", R"({"a" 1})", R"({"a":1 "b":2})",
        R"({"a":"unterminated)", R"({"a":[1,2)", R"({"a":{"b":)", std::string_view("\x00\x01", 2), R"({"a":1}})", R"({,"a":1})", std::string_view("{\"a\":\x00}", 7),
        R"({"a":tru})", R"({"a":-})", R"({"a":"\)"}) {
    EXPECT_FALSE(Match(R"(properties["a"] == 1 and properties["b"] == 2)", bad)) << bad;
    EXPECT_TRUE(Match(R"(properties["zzz"] != 1)", bad)) << bad;
  }
  // What parses before the damage is still seen.
  EXPECT_TRUE(Match(R"(properties["a"] == 1)", R"({"a":1,"b":)"));
  EXPECT_FALSE(Match(R"(defined(properties["b"]))", R"({"a":1,"b":)"));
}

TEST(WhereTest, ErrorsPointAtThePosition) {
  struct Case {
    std::string_view expression;
    std::string_view message;  // the expected message, exactly
  };
  const Case cases[] = {
      {R"~(properties["plan")~",
       R"~(where: expected ']' after the property name, found the end of the expression at position 17 (at the end of the expression))~"},
      {R"~(properties["plan" and x)~",
       R"~(where: expected ']' after the property name, found 'and' at position 18 (near "and x"))~"},
      {"", "where: the expression is empty"},
      {"  \n ", "where: the expression is empty"},
      {R"~(properties[plan] == 1)~",
       R"~(where: expected a property name in quotes, e.g. properties["$os"], found 'plan' at position 11 (near "plan] == 1"))~"},
      {R"~(properties["a"] = 1)~", R"~(where: '=' is not an operator; compare with '==' at position 16 (near "= 1"))~"},
      {R"~(properties["a"] == )~",
       R"~(where: expected a value (a property, a literal, a list or a function call) at position 19 (at the end of the expression))~"},
      {R"~((properties["a"] == 1)~",
       R"~(where: expected ')' to close the '(' at position 0, found the end of the expression at position 21 (at the end of the expression))~"},
      {R"~("unterminated)~", R"~(where: unterminated string (the closing " is missing) at position 0 (near "\"unterminated"))~"},
      {R"~("bad \q" == "x")~",
       R"~(where: unknown escape (use \" \' \\ \/ \b \f \n \r \t or \uXXXX) at position 5 (near "\\q\" == \"x\""))~"},
      {R"~("\ud800" == "x")~",
       R"~(where: unpaired UTF-16 surrogate in \u escape at position 1 (near "\\ud800\" == \"x\""))~"},
      {R"~("\u12" == "x")~", R"~(where: \u must be followed by 4 hexadecimal digits at position 1 (near "\\u12\" == \"x\""))~"},
      {"1. == 1", R"~(where: expected digits after the decimal point at position 2 (near " == 1"))~"},
      {"1e+ == 1", R"~(where: expected digits in the exponent at position 3 (near " == 1"))~"},
      {"12abc == 1", R"~(where: malformed number at position 0 (near "12abc == 1"))~"},
      {"foo(1)",
       R"~(where: unknown name 'foo'; expressions read properties["name"] and call defined, boolean, number, string, floor, round or ceil at position 0 (near "foo(1)"))~"},
      {"defined()", R"~(where: defined() takes one argument at position 8 (near ")"))~"},
      {"defined(1, 2)", R"~(where: defined() takes exactly one argument at position 9 (near ", 2)"))~"},
      {"defined 1", R"~(where: expected '(' after defined, found a number at position 8 (near "1"))~"},
      {R"~(properties["a"] && true)~",
       R"~(where: '&' is not an operator; combine conditions with 'and' at position 16 (near "&& true"))~"},
      {R"~(properties["a"] || true)~",
       R"~(where: '|' is not an operator; combine conditions with 'or' at position 16 (near "|| true"))~"},
      {"!true", R"~(where: '!' is not an operator; negate with 'not', compare with '!=' at position 0 (near "!true"))~"},
      {"[1, 2", R"~(where: expected ',' or ']' to close the list opened at position 0, found the end of the expression at position 5 (at the end of the expression))~"},
      {R"~(properties["a"] == 1 1)~",
       R"~(where: expected an operator (and, or, ==, in, …) or the end of the expression, found a number at position 21 (near "1"))~"},
      {"1 == \"1\"",
       R"~(where: '==' compares a number with a string, which is never true; convert one side with number(), string() or boolean() at position 2 (near "== \"1\""))~"},
      {R"~(properties["a"] in 5)~",
       R"~(where: the right side of 'in' must be a list, a string or a property, not a number at position 16 (near "in 5"))~"},
      {R"~(5 in "abc")~",
       R"~(where: 'in' with a string on the right looks for a substring, so the left side must be a string, not a number at position 2 (near "in \"abc\""))~"},
      {R"~("a" - 1)~", R"~(where: '-' needs numbers, not a string; convert with number() at position 4 (near "- 1"))~"},
      {R"~(properties["a"] + true)~", R"~(where: '+' adds numbers or joins strings, not a boolean at position 16 (near "+ true"))~"},
      {R"~(1 + "a")~",
       R"~(where: '+' cannot combine a number with a string; convert one side with number() or string() at position 2 (near "+ \"a\""))~"},
      {R"~(-"a")~", R"~(where: '-' needs a number, not a string; convert with number() at position 0 (near "-\"a\""))~"},
      {R"~(floor("a"))~", R"~(where: floor() needs a number, not a string; convert with number() at position 6 (near "\"a\")"))~"},
      {"[1] < [2]", R"~(where: '<' orders numbers, strings or booleans, not a list at position 4 (near "< [2]"))~"},
      {R"~(properties["a"] > null)~", R"~(where: '>' orders numbers, strings or booleans, not a null at position 16 (near "> null"))~"},
      {R"~(true in ["a", "b"])~",
       R"~(where: 'in' looks for a boolean in a list that holds no boolean, which is never true at position 5 (near "in [\"a\", \"b\"]"))~"},
      {R"~(not properties["a"] == "x")~",
       R"~(where: '==' compares a boolean with a string, which is never true; convert one side with number(), string() or boolean() at position 20 (near "== \"x\"") (note: 'not' binds tighter than comparisons; write not (a == b)))~"},
      {R"~(properties["time"] > "2024-01-01")~",
       R"~(where: '>' compares a number with a string, which is never true; convert one side with number() or string() at position 19 (near "> \"2024-01-01\""))~"},
      {R"~(properties["distinct_id"] == 5)~",
       R"~(where: '==' compares a string with a number, which is never true; convert one side with number(), string() or boolean() at position 26 (near "== 5"))~"},
      {"and true", R"~(where: expected a value before 'and' at position 0 (near "and true"))~"},
      {"true and", R"~(where: expected a value (a property, a literal, a list or a function call) at position 8 (at the end of the expression))~"},
      {"@", R"~(where: unexpected character '@' at position 0 (near "@"))~"},
      {R"~(properties.plan == 1)~", R"~(where: expected '[' after properties (write properties["name"]), found '.' at position 10 (near ".plan == 1"))~"},
      {"properties", R"~(where: expected '[' after properties (write properties["name"]), found the end of the expression at position 10 (at the end of the expression))~"},
      {R"~(properties["a"]["b"])~",
       R"~(where: expected an operator (and, or, ==, in, …) or the end of the expression, found '[' at position 15 (near "[\"b\"]"))~"},
      {"(1 == 1))", R"~(where: expected an operator (and, or, ==, in, …) or the end of the expression, found ')' at position 8 (near ")"))~"},
  };
  for (const Case& c : cases) EXPECT_EQ(CompileError(c.expression), c.message) << c.expression;
}

TEST(WhereTest, ErrorTextIsSafeToEmbed) {
  // Control characters, invalid UTF-8 and long tails are escaped or cut; valid UTF-8 is kept whole.
  EXPECT_EQ(CompileError("1 == 1 \x01 \"x\""), R"(where: unexpected byte at position 7 (near "\x01 \"x\""))");
  EXPECT_EQ(CompileError("1 == 1 \xff\xfe"), R"(where: unexpected byte at position 7 (near "\xFF\xFE"))");
  EXPECT_EQ(CompileError("1 == 1 1 éééééééééééééééééééé"),
            "where: expected an operator (and, or, ==, in, …) or the end of the expression, found a number at "
            "position 7 (near \"1 ééééééééééé...\")");
}

TEST(WhereTest, PropertyNamesInErrorsAreTruncated) {
  const std::string name(100, 'x');
  EXPECT_THAT(CompileError(name), HasSubstr("unknown name '" + std::string(32, 'x') + "';"));
}

TEST(WhereTest, LengthLimit) {
  // A string literal filling exactly the limit compiles; one byte more does not.
  std::string at_limit = "\"" + std::string(kMaxWhereBytes - 9, 'a') + "\" == \"a\"";
  ASSERT_EQ(at_limit.size(), kMaxWhereBytes);
  EXPECT_TRUE(WhereFilter::Compile(at_limit).ok());
  EXPECT_EQ(CompileError(at_limit + " "), "where: the expression is 16385 bytes long; the limit is 16384 bytes");
}

TEST(WhereTest, DepthLimit) {
  auto nested = [](int depth, std::string_view open, std::string_view inner, std::string_view close) {
    std::string s;
    for (int i = 0; i < depth; ++i) s += open;
    s += inner;
    for (int i = 0; i < depth; ++i) s += close;
    return s;
  };
  EXPECT_TRUE(Match(nested(kMaxWhereDepth, "(", "true", ")")));
  EXPECT_THAT(CompileError(nested(kMaxWhereDepth + 1, "(", "true", ")")),
              StartsWith("where: the expression nests deeper than 64 levels (parentheses, lists, function calls and "
                         "unary operators) at position 64 (near \"(true)"));
  EXPECT_TRUE(Match(nested(kMaxWhereDepth, "not ", "false", "") + " or true"));
  EXPECT_THAT(CompileError(nested(kMaxWhereDepth + 1, "not ", "true", "")), HasSubstr("nests deeper than 64"));
  EXPECT_THAT(CompileError(nested(kMaxWhereDepth + 1, "-", "1", "")), HasSubstr("nests deeper than 64"));
  EXPECT_TRUE(Match(nested(kMaxWhereDepth - 1, "[", "1", "]") + " == " + nested(kMaxWhereDepth - 1, "[", "1", "]")));
  EXPECT_THAT(CompileError(nested(kMaxWhereDepth + 1, "[", "", "]")), HasSubstr("nests deeper than 64"));
  EXPECT_THAT(CompileError(nested(kMaxWhereDepth + 1, "boolean(", "1", ")")), HasSubstr("nests deeper than 64"));
  // Adversarial input fails cleanly instead of overflowing the stack.
  EXPECT_THAT(CompileError(std::string(kMaxWhereBytes, '(')), HasSubstr("nests deeper than 64"));
  EXPECT_THAT(CompileError(std::string(kMaxWhereBytes, '[')), HasSubstr("nests deeper than 64"));
  // Long flat chains are not nesting.
  std::string ors = "false";
  while (ors.size() < kMaxWhereBytes - 20) ors += " or false";
  EXPECT_FALSE(Match(ors));
  EXPECT_TRUE(Match(ors + " or true"));
  std::string sum = "0";
  int terms = 0;
  while (sum.size() < kMaxWhereBytes - 20) sum += "+1", ++terms;
  EXPECT_TRUE(Match(sum + " == " + std::to_string(terms)));
}

TEST(WhereTest, DeeplyNestedStoredValuesAreSafe) {
  // Stored values nested far deeper than ingest allows are compared and searched without recursion trouble.
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  const std::string props = R"({"a":)" + deep + R"(,"b":)" + deep + R"(,"c":1})";
  EXPECT_TRUE(Match(R"(properties["a"] == properties["b"] and properties["c"] == 1)", props));
  EXPECT_FALSE(Match(R"("x" in properties["a"])", props));
  EXPECT_TRUE(Match(R"(properties["a"])", props));
}

TEST(WhereTest, TextAndCopiesShareTheProgram) {
  const std::string expression = R"(properties["plan"] == "pro")";
  auto f = WhereFilter::Compile(expression);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->text(), expression);
  WhereFilter copy = *f;
  WhereFilter moved = std::move(copy);
  EXPECT_EQ(moved.text(), expression);
  EXPECT_TRUE(moved.Matches(Event()));
  EXPECT_FALSE(moved.Matches(Event(R"({"plan":"free"})")));
}

TEST(WhereTest, ConcurrentMatchesAgree) {
  auto f = WhereFilter::Compile(
      R"(string(properties["i"]) + "" == properties["s"] and properties["i"] % 2 == 0 and )"
      R"(properties["s"] in ["0","2","4","6","8","10","12","14","16","18"])");
  ASSERT_TRUE(f.ok()) << f.error().message;
  std::vector<std::string> props;
  for (int i = 0; i < 20; ++i) {
    props.push_back(R"({"i":)" + std::to_string(i) + R"(,"s":")" + std::to_string(i) + "\"}");
  }
  std::vector<int> matches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 500; ++round) {
        for (const auto& p : props) matches[t] += f->Matches(Event(p)) ? 1 : 0;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : matches) EXPECT_EQ(m, 10 * 500);
}

}  // namespace
}  // namespace sluice::expr
