// Fuzzes the `where` expression compiler and evaluator. The input is an expression, optionally followed by a NUL
// byte and a properties text (any bytes: the evaluator must be safe on text that is not JSON). Beyond "no crash,
// no sanitizer report, no stack overflow" it checks the contract: errors are kInvalidArgument, start with
// "where: " and are valid UTF-8 (they are sent back in JSON bodies); a compiled filter keeps its text, answers
// the same twice and through a copy, and `not (e)` answers the opposite of `e`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "expr/where.h"

namespace {

using sluice::expr::EventFields;
using sluice::expr::WhereFilter;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

constexpr std::string_view kFixedProperties[] = {
    "{}",
    R"({"$os":"Linux","plan":"pro","count":12,"price":9.99,"tags":["a","b"],"n":null,"vip":true,"no":false,)"
    R"("big":123456789012345678901234567890,"exp":1.5e3,"nested":{"k":"v","a":[1,[2,[3]]]},"uni":"Gr\u00fc\u00dfe",)"
    R"("esc":"a\"b\\c","emoji":"\ud83d\ude00","lone":"\ud800","caf\u00e9":1,"empty":"","list_empty":[]})",
    R"({"a":1,"b":"1","c":[1,"1",null,true,{"d":[]}],"d":-0,"e":1e999,"f":"  12.5e1 "})",
};

EventFields Fields(std::string_view properties) {
  EventFields e;
  e.name = "Signed up";
  e.time_us = 1'714'564'800'500'000;
  e.distinct_id = "u1";
  e.insert_id = "ins-1";
  e.device_id = "dev-1";
  e.properties = properties;
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view expression = input.substr(0, nul);
  const std::string_view extra = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);

  auto filter = WhereFilter::Compile(expression);
  if (!filter.ok()) {
    const auto& error = filter.error();
    Check(error.code == sluice::ErrorCode::kInvalidArgument);
    Check(error.message.rfind("where: ", 0) == 0);
    Check(error.message.size() < 1024);
    Check(ValidUtf8(error.message));
    return 0;
  }
  Check(filter->text() == expression);
  const WhereFilter copy = *filter;
  auto negated = WhereFilter::Compile("not (" + std::string(expression) + ")");  // may be too long or deep

  auto run = [&](std::string_view properties) {
    const EventFields event = Fields(properties);
    const bool matched = filter->Matches(event);
    Check(filter->Matches(event) == matched);
    Check(copy.Matches(event) == matched);
    if (negated.ok()) Check(negated->Matches(event) == !matched);
  };
  for (std::string_view properties : kFixedProperties) run(properties);
  if (nul != std::string_view::npos) run(extra);
  return 0;
}
