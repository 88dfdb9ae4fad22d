// Evaluation of a compiled `where` expression against one event. The value rules (documented for users in
// docs/ingestion.md, "Where expressions") follow Mixpanel's loose, JavaScript-like behaviour:
//
// - A property that is not there is *undefined*. Every comparison with undefined is false, except `!=`, which
//   is true; `defined(x)` tells them apart. JSON null is a value of its own (null == null).
// - Numbers are IEEE doubles and compare numerically (a stored 1.10 equals the literal 1.1); strings compare by
//   bytes, which for UTF-8 is code point order; booleans compare false < true. Values of different types are
//   never equal and never ordered (`"5" == 5` is false; convert with number() or string()).
// - Lists (JSON arrays, list literals) are equal when their elements are, in order; JSON objects when their
//   stored text is.
// - `a in b`: b a string → a is a substring of b (a must be a string); b a list → some element equals a;
//   b an object → a is one of its keys; anything else → false.
// - and/or/not use truthiness and give booleans. Truthy: true, numbers other than 0 and NaN, non-empty
//   strings, non-empty lists and objects. Falsy: false, 0, NaN, "", [], {}, null, undefined.
// - number(x): numbers as they are, strings holding a decimal number (whitespace, sign, exponent allowed)
//   parsed, true/false → 1/0, anything else undefined. string(x): strings as they are, numbers formatted as
//   JavaScript does (5.0 → "5", 1e21 → "1e+21"), true/false/null as words, lists and objects as JSON text,
//   undefined stays undefined. boolean(x): truthiness.
// - Arithmetic: + adds numbers or joins strings; - * / % need numbers (x / 0 is ±Infinity, x % 0 NaN);
//   floor/round/ceil as JavaScript's Math (round(-2.5) = -2). Anything else gives undefined.
#include <array>
#include <cmath>
#include <cstring>
#include <forward_list>
#include <memory>
#include <string>
#include <vector>

#include "common/json_text.h"
#include "expr/json_scan.h"
#include "expr/program.h"

namespace sluice::expr {
namespace {

constexpr uint32_t kNoNode = UINT32_MAX;
/// Properties resolved without a heap allocation per event.
constexpr size_t kInlineSlots = 8;

struct Value {
  Kind kind = Kind::kUndefined;
  bool boolean = false;
  double number = 0;
  std::string_view text;       // kString: the string; kList/kObject read from JSON: their text
  uint32_t list = kNoNode;     // kList written as a literal: its node

  static Value Bool(bool b) {
    Value v;
    v.kind = Kind::kBool;
    v.boolean = b;
    return v;
  }
  static Value Number(double d) {
    Value v;
    v.kind = Kind::kNumber;
    v.number = d;
    return v;
  }
  static Value String(std::string_view s) {
    Value v;
    v.kind = Kind::kString;
    v.text = s;
    return v;
  }
};

/// Round half towards +infinity, as JavaScript's Math.round (floor(x + 0.5) is wrong for 0.49999999999999994).
double JsRound(double x) {
  double r = std::floor(x);
  if (x - r >= 0.5) r += 1;
  return r;
}

class Evaluator {
 public:
  Evaluator(const Program& program, const EventFields& event)
      : program_(program), event_(event), scanner_(event.properties) {
    const size_t n = program.property_names.size();
    if (n > kInlineSlots) {
      heap_slots_ = std::make_unique<Slot[]>(n);
      slots_ = heap_slots_.get();
    } else {
      slots_ = inline_slots_.data();
    }
    unresolved_ = n;
    scan_done_ = n == 0;
  }

  bool Run() { return Truthy(Eval(program_.root)); }

 private:
  struct Slot {
    Value value;
    bool found = false;
  };

  // ---- values from the event ------------------------------------------------------------------------------
  /// The property of `slot`, scanning the object only as far as needed. Every referenced key met on the way is
  /// remembered, so the object is read at most once per event however many properties the expression names.
  Value Property(uint32_t slot) {
    if (slots_[slot].found) return slots_[slot].value;
    std::string_view raw_key, raw_value;
    std::string unescaped;
    while (!scan_done_) {
      if (!scanner_.Next(raw_key, raw_value)) {
        scan_done_ = true;
        break;
      }
      std::string_view key = raw_key;
      if (std::memchr(raw_key.data(), '\\', raw_key.size()) != nullptr) {
        unescaped.clear();
        json::Unescape(raw_key, unescaped, nullptr);
        key = unescaped;
      }
      const int64_t s = Lookup(key);
      if (s < 0 || slots_[s].found) continue;  // not referenced, or a duplicate key (the first one counts)
      slots_[s].value = FromJson(raw_value);
      slots_[s].found = true;
      if (--unresolved_ == 0) scan_done_ = true;
      if (static_cast<uint32_t>(s) == slot) return slots_[s].value;
    }
    return Value{};
  }

  int64_t Lookup(std::string_view key) const {
    if (!program_.property_index.empty()) {
      auto it = program_.property_index.find(key);
      return it == program_.property_index.end() ? -1 : it->second;
    }
    const auto& names = program_.property_names;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == key) return static_cast<int64_t>(i);
    }
    return -1;
  }

  Value PromotedField(uint32_t field) const {
    switch (static_cast<expr::Promoted>(field)) {
      case Promoted::kTime:
        return Value::Number(static_cast<double>(event_.time_us) / 1e6);
      case Promoted::kDistinctId:
        return Value::String(event_.distinct_id);
      case Promoted::kInsertId:
        return Value::String(event_.insert_id);
      case Promoted::kDeviceId:
        return event_.device_id.empty() ? Value{} : Value::String(event_.device_id);
      case Promoted::kUserId:
        return event_.user_id.empty() ? Value{} : Value::String(event_.user_id);
    }
    return Value{};
  }

  /// The value of one JSON value's text. Text that is not JSON (the scanner only delimits it) is undefined.
  Value FromJson(std::string_view raw) {
    Value v;
    if (raw.empty()) return v;
    switch (raw.front()) {
      case '"': {
        if (raw.size() < 2 || raw.back() != '"') return v;
        const std::string_view body = raw.substr(1, raw.size() - 2);
        if (std::memchr(body.data(), '\\', body.size()) == nullptr) return Value::String(body);
        std::string& s = Keep();
        json::Unescape(body, s, nullptr);
        return Value::String(s);
      }
      case '[':
        v.kind = Kind::kList;
        v.text = raw;
        return v;
      case '{':
        v.kind = Kind::kObject;
        v.text = raw;
        return v;
      case 't':
        return raw == "true" ? Value::Bool(true) : v;
      case 'f':
        return raw == "false" ? Value::Bool(false) : v;
      case 'n':
        if (raw == "null") v.kind = Kind::kNull;
        return v;
      default:
        if (auto d = json::ParseJsonNumber(raw)) return Value::Number(*d);
        return v;
    }
  }

  /// A string that lives as long as this evaluation (values hold views into it).
  std::string& Keep() {
    arena_.emplace_front();
    return arena_.front();
  }

  // ---- evaluation -----------------------------------------------------------------------------------------
  Value Eval(uint32_t index) {
    const Node& n = program_.nodes[index];
    switch (n.op) {
      case NodeOp::kConst: {
        Value v;
        v.kind = n.const_kind;
        v.boolean = n.boolean;
        v.number = n.number;
        v.text = n.text;
        return v;
      }
      case NodeOp::kProperty:
        return Property(n.slot);
      case NodeOp::kPromoted:
        return PromotedField(n.slot);
      case NodeOp::kList: {
        Value v;
        v.kind = Kind::kList;
        v.list = index;
        return v;
      }
      case NodeOp::kAnd:
        for (uint32_t c : n.children) {
          if (!Truthy(Eval(c))) return Value::Bool(false);
        }
        return Value::Bool(true);
      case NodeOp::kOr:
        for (uint32_t c : n.children) {
          if (Truthy(Eval(c))) return Value::Bool(true);
        }
        return Value::Bool(false);
      case NodeOp::kNot:
        return Value::Bool(!Truthy(Eval(n.children[0])));
      case NodeOp::kNeg: {
        Value v = Eval(n.children[0]);
        return v.kind == Kind::kNumber ? Value::Number(-v.number) : Value{};
      }
      case NodeOp::kChain:
        return EvalChain(n);
      case NodeOp::kDefined:
        return Value::Bool(Eval(n.children[0]).kind != Kind::kUndefined);
      case NodeOp::kBoolean:
        return Value::Bool(Truthy(Eval(n.children[0])));
      case NodeOp::kNumber:
        return ToNumber(Eval(n.children[0]));
      case NodeOp::kString:
        return ToString(Eval(n.children[0]));
      case NodeOp::kFloor:
      case NodeOp::kRound:
      case NodeOp::kCeil: {
        Value v = Eval(n.children[0]);
        if (v.kind != Kind::kNumber) return Value{};
        if (n.op == NodeOp::kFloor) return Value::Number(std::floor(v.number));
        if (n.op == NodeOp::kCeil) return Value::Number(std::ceil(v.number));
        return Value::Number(JsRound(v.number));
      }
    }
    return Value{};
  }

  Value EvalChain(const Node& n) {
    Value acc = Eval(n.children[0]);
    for (size_t i = 0; i < n.ops.size(); ++i) {
      const Node& rhs = program_.nodes[n.children[i + 1]];
      if (n.ops[i] == BinaryOp::kIn && rhs.op == NodeOp::kList && rhs.const_set >= 0) {
        acc = Value::Bool(InConstSet(acc, program_.const_sets[static_cast<size_t>(rhs.const_set)]));
        continue;
      }
      acc = Binary(n.ops[i], acc, Eval(n.children[i + 1]));
    }
    return acc;
  }

  Value Binary(BinaryOp op, const Value& a, const Value& b) {
    switch (op) {
      case BinaryOp::kEq: return Value::Bool(Equals(a, b, 0));
      case BinaryOp::kNe: return Value::Bool(!Equals(a, b, 0));
      case BinaryOp::kLt:
      case BinaryOp::kLe:
      case BinaryOp::kGt:
      case BinaryOp::kGe: return Value::Bool(Ordered(op, a, b));
      case BinaryOp::kIn: return Value::Bool(In(a, b));
      case BinaryOp::kAdd:
        if (a.kind == Kind::kNumber && b.kind == Kind::kNumber) return Value::Number(a.number + b.number);
        if (a.kind == Kind::kString && b.kind == Kind::kString) {
          std::string& s = Keep();
          s.reserve(a.text.size() + b.text.size());
          s.append(a.text).append(b.text);
          return Value::String(s);
        }
        return Value{};
      case BinaryOp::kSub:
      case BinaryOp::kMul:
      case BinaryOp::kDiv:
      case BinaryOp::kMod:
        if (a.kind != Kind::kNumber || b.kind != Kind::kNumber) return Value{};
        if (op == BinaryOp::kSub) return Value::Number(a.number - b.number);
        if (op == BinaryOp::kMul) return Value::Number(a.number * b.number);
        if (op == BinaryOp::kDiv) return Value::Number(a.number / b.number);
        return Value::Number(std::fmod(a.number, b.number));
    }
    return Value{};
  }

  // ---- the value rules ------------------------------------------------------------------------------------
  bool Truthy(const Value& v) {
    switch (v.kind) {
      case Kind::kUndefined:
      case Kind::kNull: return false;
      case Kind::kBool: return v.boolean;
      case Kind::kNumber: return v.number != 0 && !std::isnan(v.number);
      case Kind::kString: return !v.text.empty();
      case Kind::kList: {
        if (v.list != kNoNode) return !program_.nodes[v.list].children.empty();
        json::ElementScanner s(v.text);
        std::string_view first;
        return s.Next(first);
      }
      case Kind::kObject: {
        json::MemberScanner s(v.text);
        std::string_view key, value;
        return s.Next(key, value);
      }
    }
    return false;
  }

  bool Equals(const Value& a, const Value& b, int depth) {
    if (a.kind == Kind::kUndefined || a.kind != b.kind) return false;
    switch (a.kind) {
      case Kind::kUndefined: return false;
      case Kind::kNull: return true;
      case Kind::kBool: return a.boolean == b.boolean;
      case Kind::kNumber: return a.number == b.number;
      case Kind::kString: return a.text == b.text;
      case Kind::kObject: return a.text == b.text;
      case Kind::kList: return ListEquals(a, b, depth);
    }
    return false;
  }

  bool ListEquals(const Value& a, const Value& b, int depth) {
    // Lists nested deeper than expressions may nest are compared by their text (JSON only, never literals).
    if (depth >= kMaxWhereDepth) return a.list == kNoNode && b.list == kNoNode && a.text == b.text;
    std::vector<Value> left, right;
    ForEachElement(a, [&](const Value& v) {
      left.push_back(v);
      return true;
    });
    ForEachElement(b, [&](const Value& v) {
      right.push_back(v);
      return true;
    });
    if (left.size() != right.size()) return false;
    for (size_t i = 0; i < left.size(); ++i) {
      if (!Equals(left[i], right[i], depth + 1)) return false;
    }
    return true;
  }

  bool Ordered(BinaryOp op, const Value& a, const Value& b) const {
    if (a.kind != b.kind) return false;
    int cmp = 0;
    switch (a.kind) {
      case Kind::kNumber:
        if (std::isnan(a.number) || std::isnan(b.number)) return false;
        cmp = a.number < b.number ? -1 : (a.number > b.number ? 1 : 0);
        break;
      case Kind::kString:
        cmp = a.text.compare(b.text);
        break;
      case Kind::kBool:
        cmp = static_cast<int>(a.boolean) - static_cast<int>(b.boolean);
        break;
      default:
        return false;
    }
    switch (op) {
      case BinaryOp::kLt: return cmp < 0;
      case BinaryOp::kLe: return cmp <= 0;
      case BinaryOp::kGt: return cmp > 0;
      case BinaryOp::kGe: return cmp >= 0;
      default: return false;
    }
  }

  bool In(const Value& needle, const Value& haystack) {
    switch (haystack.kind) {
      case Kind::kString:
        // memmem (glibc's two-way search) is linear in the haystack whatever the needle; string_view::find
        // is quadratic when the needle's first byte repeats ("q1" in "qqqq…": a tenant-chosen worst case).
        return needle.kind == Kind::kString &&
               (needle.text.empty() || ::memmem(haystack.text.data(), haystack.text.size(),
                                                needle.text.data(), needle.text.size()) != nullptr);
      case Kind::kList: {
        if (needle.kind == Kind::kUndefined) return false;
        bool found = false;
        ForEachElement(haystack, [&](const Value& e) {
          found = Equals(needle, e, 0);
          return !found;
        });
        return found;
      }
      case Kind::kObject: {
        if (needle.kind != Kind::kString) return false;
        json::MemberScanner s(haystack.text);
        std::string_view raw_key, raw_value;
        std::string unescaped;
        while (s.Next(raw_key, raw_value)) {
          if (std::memchr(raw_key.data(), '\\', raw_key.size()) == nullptr) {
            if (raw_key == needle.text) return true;
            continue;
          }
          unescaped.clear();
          json::Unescape(raw_key, unescaped, nullptr);
          if (unescaped == needle.text) return true;
        }
        return false;
      }
      default:
        return false;
    }
  }

  static bool InConstSet(const Value& needle, const ConstSet& set) {
    switch (needle.kind) {
      case Kind::kString: return set.strings.contains(needle.text);
      case Kind::kNumber:
        return !std::isnan(needle.number) && set.numbers.contains(needle.number == 0 ? 0.0 : needle.number);
      case Kind::kNull: return set.has_null;
      case Kind::kBool: return needle.boolean ? set.has_true : set.has_false;
      default: return false;
    }
  }

  /// Calls fn(element) for each element of a list value until fn returns false.
  template <typename Fn>
  void ForEachElement(const Value& list, Fn&& fn) {
    if (list.list != kNoNode) {
      for (uint32_t c : program_.nodes[list.list].children) {
        if (!fn(Eval(c))) return;
      }
      return;
    }
    json::ElementScanner s(list.text);
    std::string_view raw;
    while (s.Next(raw)) {
      if (!fn(FromJson(raw))) return;
    }
  }

  Value ToNumber(const Value& v) {
    switch (v.kind) {
      case Kind::kNumber: return v;
      case Kind::kBool: return Value::Number(v.boolean ? 1 : 0);
      case Kind::kString:
        if (auto d = json::ParseLooseNumber(v.text)) return Value::Number(*d);
        return Value{};
      default: return Value{};
    }
  }

  Value ToString(const Value& v) {
    switch (v.kind) {
      case Kind::kUndefined: return Value{};
      case Kind::kString: return v;
      case Kind::kNull: return Value::String("null");
      case Kind::kBool: return Value::String(v.boolean ? "true" : "false");
      case Kind::kNumber: {
        std::string& s = Keep();
        s = json::FormatNumber(v.number);
        return Value::String(s);
      }
      case Kind::kObject: return Value::String(v.text);
      case Kind::kList: {
        if (v.list == kNoNode) return Value::String(v.text);
        std::string& s = Keep();
        AppendJson(s, v);
        return Value::String(s);
      }
    }
    return Value{};
  }

  /// JSON text of a value (list literals only reach here; undefined elements become null, as JSON.stringify).
  void AppendJson(std::string& out, const Value& v) {
    switch (v.kind) {
      case Kind::kUndefined:
      case Kind::kNull: out += "null"; return;
      case Kind::kBool: out += v.boolean ? "true" : "false"; return;
      case Kind::kNumber:
        // JSON has no NaN or Infinity; JSON.stringify writes null.
        out += std::isfinite(v.number) ? json::FormatNumber(v.number) : "null";
        return;
      case Kind::kString: AppendJsonString(out, v.text); return;
      case Kind::kObject: out += v.text; return;
      case Kind::kList:
        if (v.list == kNoNode) {
          out += v.text;
          return;
        }
        out += '[';
        bool first = true;
        ForEachElement(v, [&](const Value& e) {
          if (!first) out += ',';
          first = false;
          AppendJson(out, e);
          return true;
        });
        out += ']';
        return;
    }
  }

  const Program& program_;
  const EventFields& event_;
  json::MemberScanner scanner_;
  bool scan_done_ = false;
  size_t unresolved_ = 0;
  Slot* slots_ = nullptr;
  std::array<Slot, kInlineSlots> inline_slots_;
  std::unique_ptr<Slot[]> heap_slots_;
  std::forward_list<std::string> arena_;
};

}  // namespace

bool EvaluateWhere(const Program& program, const EventFields& event) {
  Evaluator evaluator(program, event);
  return evaluator.Run();
}

}  // namespace sluice::expr
