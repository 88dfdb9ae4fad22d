// Mixpanel segmentation expressions: the `where` parameter of the raw export API (/api/2.0/export) and of the
// Data Pipelines API (SPEC §3, §4), e.g.
//
//   properties["$os"] == "Linux" and defined(properties["plan"])
//   not (properties["count"] < 10) or properties["country"] in ["US", "CA"]
//   "Chrome" in properties["$browser"]
//
//   auto filter = expr::WhereFilter::Compile(where);      // once per request / pipeline
//   if (!filter.ok()) return JsonError(400, filter.error().message);
//   … filter->Matches(fields) …                           // per event, from any number of threads
//
// The language (grammar, precedence, the loose JavaScript-like value rules) is documented in
// docs/ingestion.md, "Where expressions"; the summary lives beside the evaluator (src/expr/eval.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::expr {

/// Longest expression Compile accepts, in bytes.
inline constexpr size_t kMaxWhereBytes = 16 * 1024;
/// Deepest nesting Compile accepts: parentheses, list literals, function calls and unary operators each add one
/// level (chains such as `a or b or c` and `1 + 2 + 3` do not). Bounds the recursion of parser and evaluator.
inline constexpr int kMaxWhereDepth = 64;

/// The fields of one stored event the expression can see. `properties` is the minified JSON object text of the
/// event's properties WITHOUT the promoted fields; `properties["time"]` (seconds, may be fractional),
/// `properties["distinct_id"]`, `properties["$insert_id"]`, `properties["$device_id"]`, `properties["$user_id"]`
/// resolve to the promoted fields below (an empty device_id/user_id means undefined). The event name is not
/// reachable from expressions (Mixpanel filters names with the separate `event` whitelist).
struct EventFields {
  std::string_view name;
  int64_t time_us = 0;
  std::string_view distinct_id, device_id, user_id, insert_id;
  std::string_view properties;  // JSON object text
};

struct Program;  // the compiled expression (src/expr/program.h)

/// A compiled `where` expression. Immutable once compiled; copies share the compiled program.
class WhereFilter {
 public:
  /// Parses and type-checks `expression`. kInvalidArgument with a message that names the byte position (counted
  /// from 0) and quotes the text there, e.g. `where: expected ']' at position 17 (near "and x")`, when it does
  /// not parse, is longer than kMaxWhereBytes, nests deeper than kMaxWhereDepth, or combines values in a way
  /// that can never be true (`1 == "1"`, `x in 5`, `"a" - 1`).
  static Result<WhereFilter> Compile(std::string_view expression);

  /// True when the expression's value is truthy for `event`. Thread-safe (const); may be called concurrently
  /// from many threads. Scans `event.properties` once, only as far as needed to find the properties the
  /// expression names, without materialising the object. Never fails: properties text that is not a JSON object
  /// simply has no properties.
  bool Matches(const EventFields& event) const;

  /// The expression as compiled.
  const std::string& text() const;

 private:
  explicit WhereFilter(std::shared_ptr<const Program> program) : program_(std::move(program)) {}
  std::shared_ptr<const Program> program_;
};

}  // namespace sluice::expr
