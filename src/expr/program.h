// The compiled form of a `where` expression: a flat array of nodes the parser (parser.cc) builds and the
// evaluator (eval.cc) walks. Internal to the expr module.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/result.h"
#include "expr/where.h"

namespace sluice::expr {

/// The kinds of value an expression produces. kUndefined is a property that is not there (or a conversion
/// that failed); kNull is JSON null.
enum class Kind : uint8_t { kUndefined, kNull, kBool, kNumber, kString, kList, kObject };

/// What the parser knows about a node's value before any event is seen. kAny: depends on the event.
/// kNumber/kString also cover "undefined" for number(x)/string(x), which changes no type rule.
enum class StaticType : uint8_t { kAny, kNull, kBool, kNumber, kString, kList };

/// Fields of the event that are not in the properties JSON (see EventFields).
enum class Promoted : uint8_t { kTime, kDistinctId, kInsertId, kDeviceId, kUserId };

enum class NodeOp : uint8_t {
  kConst,      // literal: const_kind + boolean/number/text
  kProperty,   // properties["name"] read from the JSON; slot = index into Program::property_names
  kPromoted,   // properties["time"] etc.; slot = Promoted
  kList,       // list literal; children = elements
  kAnd,        // n-ary, short-circuit; children
  kOr,         // n-ary, short-circuit; children
  kNot,        // children[0]
  kNeg,        // unary minus; children[0]
  kChain,      // left fold: children[0] ops[0] children[1] ops[1] children[2] …
  kDefined,    // functions of one argument, children[0]
  kBoolean,
  kNumber,
  kString,
  kFloor,
  kRound,
  kCeil,
};

enum class BinaryOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kAdd, kSub, kMul, kDiv, kMod };

/// Membership test for a list literal whose elements are all constant scalars, so `x in [ …1000 ids… ]` is one
/// hash lookup instead of a scan.
struct ConstSet {
  std::unordered_set<std::string_view> strings;  // views into the elements' Node::text
  std::unordered_set<double> numbers;            // -0 stored as 0
  bool has_null = false;
  bool has_true = false;
  bool has_false = false;
};

struct Node {
  NodeOp op = NodeOp::kConst;
  StaticType type = StaticType::kAny;
  Kind const_kind = Kind::kUndefined;  // kConst
  bool boolean = false;                // kConst kBool
  double number = 0;                   // kConst kNumber
  std::string text;                    // kConst kString (unescaped)
  uint32_t slot = 0;                   // kProperty, kPromoted
  uint32_t pos = 0;                    // byte offset in the expression, for messages
  int32_t const_set = -1;              // kList: index into Program::const_sets, -1 = none
  std::vector<uint32_t> children;
  std::vector<BinaryOp> ops;           // kChain
};

struct Program {
  std::string text;
  std::vector<Node> nodes;
  uint32_t root = 0;
  /// Distinct names of the properties read from the JSON object (promoted fields excluded), unescaped.
  std::vector<std::string> property_names;
  /// name → slot, used instead of a linear search when there are many names.
  std::unordered_map<std::string_view, uint32_t> property_index;
  std::vector<ConstSet> const_sets;
};

/// Parses `text` into a Program (parser.cc). Errors are kInvalidArgument, "where: … at position N (…)". The
/// program is built in place on the heap because its lookup tables hold views into its own nodes.
Result<std::shared_ptr<Program>> ParseWhere(std::string_view text);

/// Evaluates a compiled program against one event and returns the truthiness of its value (eval.cc).
bool EvaluateWhere(const Program& program, const EventFields& event);

}  // namespace sluice::expr
