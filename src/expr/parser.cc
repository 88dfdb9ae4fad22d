// Recursive-descent parser for `where` expressions. Grammar, loosest binding first (keywords and function names
// are case-insensitive):
//
//   or_expr     := and_expr ('or' and_expr)*
//   and_expr    := comparison ('and' comparison)*
//   comparison  := additive (('==' | '!=' | '<' | '<=' | '>' | '>=' | 'in') additive)*
//   additive    := multiplicative (('+' | '-') multiplicative)*
//   multiplicative := unary (('*' | '/' | '%') unary)*
//   unary       := ('not' | '-') unary | primary
//   primary     := 'properties' '[' string ']' | string | number | 'true' | 'false' | 'null'
//                | '[' [or_expr (',' or_expr)*] ']' | '(' or_expr ')'
//                | ('defined' | 'boolean' | 'number' | 'string' | 'floor' | 'round' | 'ceil') '(' or_expr ')'
//
// `not` is a unary operator as in Mixpanel's grammar, so it binds tighter than comparisons:
// `not properties["a"] == 1` is `(not properties["a"]) == 1`; write `not (properties["a"] == 1)`.
// Chains of one precedence level become one node (n-ary and/or, a left fold for the others), so only real
// nesting (parentheses, lists, calls, unary operators) deepens the tree; that is what kMaxWhereDepth bounds.
#include <fmt/format.h>

#include <cmath>
#include <string>
#include <string_view>

#include "common/strings.h"
#include "expr/json_scan.h"
#include "expr/program.h"

namespace sluice::expr {
namespace {

enum class Tok : uint8_t {
  kEnd, kIdent, kString, kNumber, kLParen, kRParen, kLBracket, kRBracket, kComma,
  kEq, kNe, kLt, kLe, kGt, kGe, kPlus, kMinus, kStar, kSlash, kPercent,
  kDot,  // never valid; a token of its own so that `properties.x` gets a clear message
};

struct Token {
  Tok kind = Tok::kEnd;
  uint32_t pos = 0;
  std::string_view text;  // the token as written
  std::string str;        // kString: unescaped value
  double number = 0;      // kNumber
};

/// Lists with at least this many constant elements get a hash set for `in` (a scan is faster below).
constexpr size_t kConstSetMinElements = 8;
/// Programs naming more distinct properties than this look names up in a hash map instead of a linear scan.
constexpr size_t kPropertyIndexMinNames = 8;
/// Bytes of the expression quoted in an error message.
constexpr size_t kNearBytes = 24;

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

/// Length of the valid UTF-8 sequence starting at s[i], 0 when the bytes there are not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

/// Up to kNearBytes of `text` from `pos`, safe to embed in a message (and in JSON): quotes and backslashes are
/// escaped, control characters and bytes that are not UTF-8 are shown as \xNN, no character is cut in half.
std::string NearText(std::string_view text, size_t pos) {
  std::string out;
  size_t i = pos;
  while (i < text.size() && i - pos < kNearBytes) {
    const char c = text[i];
    const size_t n = Utf8SequenceLength(text, i);
    if (n == 1 && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    } else if (n > 1) {
      out.append(text.substr(i, n));
      i += n;
      continue;
    } else {
      out += fmt::format("\\x{:02X}", static_cast<unsigned char>(c));
    }
    ++i;
  }
  if (i < text.size()) out += "...";
  return out;
}

std::string_view TypeName(StaticType t) {
  switch (t) {
    case StaticType::kNull: return "null";
    case StaticType::kBool: return "boolean";
    case StaticType::kNumber: return "number";
    case StaticType::kString: return "string";
    case StaticType::kList: return "list";
    case StaticType::kAny: break;
  }
  return "value";
}

std::string_view OpText(BinaryOp op) {
  switch (op) {
    case BinaryOp::kEq: return "==";
    case BinaryOp::kNe: return "!=";
    case BinaryOp::kLt: return "<";
    case BinaryOp::kLe: return "<=";
    case BinaryOp::kGt: return ">";
    case BinaryOp::kGe: return ">=";
    case BinaryOp::kIn: return "in";
    case BinaryOp::kAdd: return "+";
    case BinaryOp::kSub: return "-";
    case BinaryOp::kMul: return "*";
    case BinaryOp::kDiv: return "/";
    case BinaryOp::kMod: return "%";
  }
  return "?";
}

/// A value that can never be a number at run time (number(x), arithmetic and properties can).
bool NeverNumber(StaticType t) {
  return t == StaticType::kString || t == StaticType::kBool || t == StaticType::kNull || t == StaticType::kList;
}

class Parser {
 public:
  Parser(std::string_view text, Program& program) : text_(text), program_(program) {}

  Status Run() {
    SLUICE_TRY(Advance());
    if (cur_.kind == Tok::kEnd) return InvalidArgument("where: the expression is empty");
    SLUICE_ASSIGN_OR_RETURN(program_.root, ParseOr());
    if (cur_.kind != Tok::kEnd) {
      return Fail(cur_.pos, fmt::format("expected an operator (and, or, ==, in, …) or the end of the expression, "
                                        "found {}",
                                        Describe(cur_)));
    }
    return OkStatus();
  }

 private:
  // ---- errors ---------------------------------------------------------------------------------------------
  Error Fail(size_t pos, std::string_view what) const {
    if (pos >= text_.size()) {
      return InvalidArgument(fmt::format("where: {} at position {} (at the end of the expression)", what, pos));
    }
    return InvalidArgument(fmt::format("where: {} at position {} (near \"{}\")", what, pos, NearText(text_, pos)));
  }

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEnd: return "the end of the expression";
      case Tok::kString: return "a string";
      case Tok::kNumber: return "a number";
      case Tok::kIdent: return fmt::format("'{}'", t.text.size() > 32 ? t.text.substr(0, 32) : t.text);
      default: return fmt::format("'{}'", t.text);
    }
  }

  /// Counts one level of nesting; fails beyond kMaxWhereDepth.
  class Nest {
   public:
    explicit Nest(Parser& p) : p_(p) { ++p_.depth_; }
    ~Nest() { --p_.depth_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;
    bool too_deep() const { return p_.depth_ > kMaxWhereDepth; }

   private:
    Parser& p_;
  };
  Error TooDeep(size_t pos) const {
    return Fail(pos, fmt::format("the expression nests deeper than {} levels (parentheses, lists, function calls "
                                 "and unary operators)",
                                 kMaxWhereDepth));
  }

  // ---- lexer ----------------------------------------------------------------------------------------------
  /// Reads the next token into cur_.
  Status Advance() {
    while (pos_ < text_.size() && json::IsSpace(text_[pos_])) ++pos_;
    cur_ = Token{};
    cur_.pos = static_cast<uint32_t>(pos_);
    if (pos_ >= text_.size()) {
      cur_.kind = Tok::kEnd;
      return OkStatus();
    }
    const size_t start = pos_;
    const char c = text_[pos_];
    const char next = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
    auto single = [&](Tok kind) {
      cur_.kind = kind;
      ++pos_;
    };
    auto pair = [&](Tok kind) {
      cur_.kind = kind;
      pos_ += 2;
    };
    if (IsIdentStart(c)) {
      while (pos_ < text_.size() && IsIdentChar(text_[pos_])) ++pos_;
      cur_.kind = Tok::kIdent;
    } else if (IsDigit(c) || (c == '.' && IsDigit(next))) {
      SLUICE_TRY(LexNumber());
    } else if (c == '"' || c == '\'') {
      SLUICE_TRY(LexString(c));
    } else {
      switch (c) {
        case '(': single(Tok::kLParen); break;
        case ')': single(Tok::kRParen); break;
        case '[': single(Tok::kLBracket); break;
        case ']': single(Tok::kRBracket); break;
        case ',': single(Tok::kComma); break;
        case '+': single(Tok::kPlus); break;
        case '-': single(Tok::kMinus); break;
        case '*': single(Tok::kStar); break;
        case '/': single(Tok::kSlash); break;
        case '%': single(Tok::kPercent); break;
        case '.': single(Tok::kDot); break;
        case '<':
          if (next == '=') pair(Tok::kLe); else single(Tok::kLt);
          break;
        case '>':
          if (next == '=') pair(Tok::kGe); else single(Tok::kGt);
          break;
        case '=':
          if (next != '=') return Fail(start, "'=' is not an operator; compare with '=='");
          pair(Tok::kEq);
          break;
        case '!':
          if (next != '=') return Fail(start, "'!' is not an operator; negate with 'not', compare with '!='");
          pair(Tok::kNe);
          break;
        case '&':
          return Fail(start, "'&' is not an operator; combine conditions with 'and'");
        case '|':
          return Fail(start, "'|' is not an operator; combine conditions with 'or'");
        default:
          if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
            return Fail(start, "unexpected byte");
          }
          return Fail(start, fmt::format("unexpected character '{}'", c));
      }
    }
    cur_.text = text_.substr(start, pos_ - start);
    return OkStatus();
  }

  Status LexNumber() {
    const size_t start = pos_;
    while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (pos_ >= text_.size() || !IsDigit(text_[pos_])) return Fail(pos_, "expected digits after the decimal point");
      while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (pos_ >= text_.size() || !IsDigit(text_[pos_])) return Fail(pos_, "expected digits in the exponent");
      while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    }
    if (pos_ < text_.size() && (IsIdentChar(text_[pos_]) || text_[pos_] == '.')) {
      return Fail(start, "malformed number");
    }
    const auto v = json::ParseLooseNumber(text_.substr(start, pos_ - start));
    if (!v) return Fail(start, "malformed number");
    cur_.kind = Tok::kNumber;
    cur_.number = *v;
    return OkStatus();
  }

  Status LexString(char quote) {
    const size_t start = pos_;
    size_t i = pos_ + 1;
    while (i < text_.size() && text_[i] != quote) i += text_[i] == '\\' ? 2 : 1;
    if (i >= text_.size()) {
      return Fail(start, fmt::format("unterminated string (the closing {} is missing)", quote));
    }
    const std::string_view body = text_.substr(start + 1, i - start - 1);
    json::UnescapeError error;
    if (!json::Unescape(body, cur_.str, &error)) return Fail(start + 1 + error.offset, error.what);
    pos_ = i + 1;
    cur_.kind = Tok::kString;
    return OkStatus();
  }

  bool IsKeyword(std::string_view word) const {
    return cur_.kind == Tok::kIdent && EqualsIgnoreCase(cur_.text, word);
  }

  Status Expect(Tok kind, std::string_view what) {
    if (cur_.kind != kind) return Fail(cur_.pos, fmt::format("expected {}, found {}", what, Describe(cur_)));
    return Advance();
  }

  // ---- nodes ----------------------------------------------------------------------------------------------
  uint32_t Add(Node node) {
    program_.nodes.push_back(std::move(node));
    return static_cast<uint32_t>(program_.nodes.size() - 1);
  }
  const Node& At(uint32_t i) const { return program_.nodes[i]; }
  StaticType TypeOf(uint32_t i) const { return program_.nodes[i].type; }

  uint32_t Const(uint32_t pos, Kind kind, StaticType type) {
    Node n;
    n.op = NodeOp::kConst;
    n.const_kind = kind;
    n.type = type;
    n.pos = pos;
    return Add(std::move(n));
  }

  uint32_t Slot(std::string_view name) {
    for (size_t i = 0; i < program_.property_names.size(); ++i) {
      if (program_.property_names[i] == name) return static_cast<uint32_t>(i);
    }
    program_.property_names.emplace_back(name);
    return static_cast<uint32_t>(program_.property_names.size() - 1);
  }

  // ---- grammar --------------------------------------------------------------------------------------------
  Result<uint32_t> ParseOr() { return ParseNary("or", NodeOp::kOr, &Parser::ParseAnd); }
  Result<uint32_t> ParseAnd() { return ParseNary("and", NodeOp::kAnd, &Parser::ParseComparison); }

  Result<uint32_t> ParseNary(std::string_view keyword, NodeOp op, Result<uint32_t> (Parser::*operand)()) {
    SLUICE_ASSIGN_OR_RETURN(uint32_t first, (this->*operand)());
    if (!IsKeyword(keyword)) return first;
    Node n;
    n.op = op;
    n.type = StaticType::kBool;
    n.pos = At(first).pos;
    n.children.push_back(first);
    while (IsKeyword(keyword)) {
      SLUICE_TRY(Advance());
      SLUICE_ASSIGN_OR_RETURN(uint32_t next, (this->*operand)());
      n.children.push_back(next);
    }
    return Add(std::move(n));
  }

  std::optional<BinaryOp> ComparisonOp() const {
    switch (cur_.kind) {
      case Tok::kEq: return BinaryOp::kEq;
      case Tok::kNe: return BinaryOp::kNe;
      case Tok::kLt: return BinaryOp::kLt;
      case Tok::kLe: return BinaryOp::kLe;
      case Tok::kGt: return BinaryOp::kGt;
      case Tok::kGe: return BinaryOp::kGe;
      default: return IsKeyword("in") ? std::optional(BinaryOp::kIn) : std::nullopt;
    }
  }
  std::optional<BinaryOp> AdditiveOp() const {
    if (cur_.kind == Tok::kPlus) return BinaryOp::kAdd;
    if (cur_.kind == Tok::kMinus) return BinaryOp::kSub;
    return std::nullopt;
  }
  std::optional<BinaryOp> MultiplicativeOp() const {
    if (cur_.kind == Tok::kStar) return BinaryOp::kMul;
    if (cur_.kind == Tok::kSlash) return BinaryOp::kDiv;
    if (cur_.kind == Tok::kPercent) return BinaryOp::kMod;
    return std::nullopt;
  }

  Result<uint32_t> ParseComparison() {
    return ParseChain(&Parser::ComparisonOp, &Parser::ParseAdditive);
  }
  Result<uint32_t> ParseAdditive() { return ParseChain(&Parser::AdditiveOp, &Parser::ParseMultiplicative); }
  Result<uint32_t> ParseMultiplicative() { return ParseChain(&Parser::MultiplicativeOp, &Parser::ParseUnary); }

  Result<uint32_t> ParseChain(std::optional<BinaryOp> (Parser::*op_at)() const,
                              Result<uint32_t> (Parser::*operand)()) {
    SLUICE_ASSIGN_OR_RETURN(uint32_t first, (this->*operand)());
    auto op = (this->*op_at)();
    if (!op) return first;
    Node n;
    n.op = NodeOp::kChain;
    n.pos = At(first).pos;
    n.children.push_back(first);
    StaticType acc = TypeOf(first);
    while (op) {
      const uint32_t op_pos = cur_.pos;
      SLUICE_TRY(Advance());
      SLUICE_ASSIGN_OR_RETURN(uint32_t rhs, (this->*operand)());
      const bool left_is_not = n.children.size() == 1 && At(first).op == NodeOp::kNot;
      auto checked = CheckBinary(*op, acc, rhs, op_pos);
      if (!checked.ok()) {
        if (!left_is_not) return std::move(checked).error();
        Error e = std::move(checked).error();
        e.message += " (note: 'not' binds tighter than comparisons; write not (a == b))";
        return e;
      }
      acc = *checked;
      n.children.push_back(rhs);
      n.ops.push_back(*op);
      op = (this->*op_at)();
    }
    n.type = acc;
    return Add(std::move(n));
  }

  /// The type rules: combinations that can never be true (or never compute anything) are compile errors, so a
  /// typo does not silently export nothing. Returns the result type.
  Result<StaticType> CheckBinary(BinaryOp op, StaticType l, uint32_t rhs, uint32_t pos) const {
    const StaticType r = TypeOf(rhs);
    const bool known = l != StaticType::kAny && r != StaticType::kAny;
    switch (op) {
      case BinaryOp::kEq:
      case BinaryOp::kNe:
        if (known && l != r) {
          return Fail(pos, fmt::format("'{}' compares a {} with a {}, which is {}; convert one side with number(), "
                                       "string() or boolean()",
                                       OpText(op), TypeName(l), TypeName(r),
                                       op == BinaryOp::kEq ? "never true" : "always true"));
        }
        return StaticType::kBool;
      case BinaryOp::kLt:
      case BinaryOp::kLe:
      case BinaryOp::kGt:
      case BinaryOp::kGe:
        if (l == StaticType::kNull || l == StaticType::kList || r == StaticType::kNull || r == StaticType::kList) {
          return Fail(pos, fmt::format("'{}' orders numbers, strings or booleans, not a {}", OpText(op),
                                       TypeName(l == StaticType::kNull || l == StaticType::kList ? l : r)));
        }
        if (known && l != r) {
          return Fail(pos, fmt::format("'{}' compares a {} with a {}, which is never true; convert one side with "
                                       "number() or string()",
                                       OpText(op), TypeName(l), TypeName(r)));
        }
        return StaticType::kBool;
      case BinaryOp::kIn:
        if (r == StaticType::kNull || r == StaticType::kBool || r == StaticType::kNumber) {
          return Fail(pos, fmt::format("the right side of 'in' must be a list, a string or a property, not a {}",
                                       TypeName(r)));
        }
        if (r == StaticType::kString && l != StaticType::kAny && l != StaticType::kString) {
          return Fail(pos, fmt::format("'in' with a string on the right looks for a substring, so the left side "
                                       "must be a string, not a {}",
                                       TypeName(l)));
        }
        if (l != StaticType::kAny && At(rhs).op == NodeOp::kList && !At(rhs).children.empty()) {
          bool possible = false;
          for (uint32_t e : At(rhs).children) possible |= TypeOf(e) == l || TypeOf(e) == StaticType::kAny;
          if (!possible) {
            return Fail(pos, fmt::format("'in' looks for a {} in a list that holds no {}, which is never true",
                                         TypeName(l), TypeName(l)));
          }
        }
        return StaticType::kBool;
      case BinaryOp::kAdd:
        for (StaticType t : {l, r}) {
          if (t == StaticType::kBool || t == StaticType::kNull || t == StaticType::kList) {
            return Fail(pos, fmt::format("'+' adds numbers or joins strings, not a {}", TypeName(t)));
          }
        }
        if (known && l != r) {
          return Fail(pos, fmt::format("'+' cannot combine a {} with a {}; convert one side with number() or "
                                       "string()",
                                       TypeName(l), TypeName(r)));
        }
        return known ? l : StaticType::kAny;
      case BinaryOp::kSub:
      case BinaryOp::kMul:
      case BinaryOp::kDiv:
      case BinaryOp::kMod:
        for (StaticType t : {l, r}) {
          if (NeverNumber(t)) {
            return Fail(pos, fmt::format("'{}' needs numbers, not a {}; convert with number()", OpText(op),
                                         TypeName(t)));
          }
        }
        return StaticType::kNumber;
    }
    return StaticType::kAny;
  }

  Result<uint32_t> ParseUnary() {
    const bool is_not = IsKeyword("not");
    if (!is_not && cur_.kind != Tok::kMinus) return ParsePrimary();
    const uint32_t pos = cur_.pos;
    Nest nest(*this);
    if (nest.too_deep()) return TooDeep(pos);
    SLUICE_TRY(Advance());
    SLUICE_ASSIGN_OR_RETURN(uint32_t operand, ParseUnary());
    if (is_not) {
      Node n;
      n.op = NodeOp::kNot;
      n.type = StaticType::kBool;
      n.pos = pos;
      n.children.push_back(operand);
      return Add(std::move(n));
    }
    if (NeverNumber(TypeOf(operand))) {
      return Fail(pos, fmt::format("'-' needs a number, not a {}; convert with number()", TypeName(TypeOf(operand))));
    }
    if (At(operand).op == NodeOp::kConst && At(operand).const_kind == Kind::kNumber) {
      program_.nodes[operand].number = -program_.nodes[operand].number;  // fold: -5 is the literal -5
      program_.nodes[operand].pos = pos;
      return operand;
    }
    Node n;
    n.op = NodeOp::kNeg;
    n.type = StaticType::kNumber;
    n.pos = pos;
    n.children.push_back(operand);
    return Add(std::move(n));
  }

  Result<uint32_t> ParsePrimary() {
    const uint32_t pos = cur_.pos;
    switch (cur_.kind) {
      case Tok::kString: {
        uint32_t n = Const(pos, Kind::kString, StaticType::kString);
        program_.nodes[n].text = std::move(cur_.str);
        SLUICE_TRY(Advance());
        return n;
      }
      case Tok::kNumber: {
        uint32_t n = Const(pos, Kind::kNumber, StaticType::kNumber);
        program_.nodes[n].number = cur_.number;
        SLUICE_TRY(Advance());
        return n;
      }
      case Tok::kLParen: {
        Nest nest(*this);
        if (nest.too_deep()) return TooDeep(pos);
        SLUICE_TRY(Advance());
        SLUICE_ASSIGN_OR_RETURN(uint32_t inner, ParseOr());
        if (cur_.kind != Tok::kRParen) {
          return Fail(cur_.pos, fmt::format("expected ')' to close the '(' at position {}, found {}", pos,
                                            Describe(cur_)));
        }
        SLUICE_TRY(Advance());
        return inner;
      }
      case Tok::kLBracket:
        return ParseList();
      case Tok::kIdent:
        return ParseName();
      case Tok::kEnd:
        return Fail(pos, "expected a value (a property, a literal, a list or a function call)");
      default:
        return Fail(pos, fmt::format("expected a value (a property, a literal, a list or a function call), found {}",
                                     Describe(cur_)));
    }
  }

  Result<uint32_t> ParseList() {
    const uint32_t pos = cur_.pos;
    Nest nest(*this);
    if (nest.too_deep()) return TooDeep(pos);
    SLUICE_TRY(Advance());
    Node n;
    n.op = NodeOp::kList;
    n.type = StaticType::kList;
    n.pos = pos;
    if (cur_.kind != Tok::kRBracket) {
      while (true) {
        SLUICE_ASSIGN_OR_RETURN(uint32_t element, ParseOr());
        n.children.push_back(element);
        if (cur_.kind == Tok::kComma) {
          SLUICE_TRY(Advance());
          continue;
        }
        if (cur_.kind != Tok::kRBracket) {
          return Fail(cur_.pos, fmt::format("expected ',' or ']' to close the list opened at position {}, found {}",
                                            pos, Describe(cur_)));
        }
        break;
      }
    }
    SLUICE_TRY(Advance());
    return Add(std::move(n));
  }

  Result<uint32_t> ParseName() {
    const uint32_t pos = cur_.pos;
    const std::string name = AsciiLower(cur_.text);
    if (name == "true" || name == "false") {
      uint32_t n = Const(pos, Kind::kBool, StaticType::kBool);
      program_.nodes[n].boolean = name == "true";
      SLUICE_TRY(Advance());
      return n;
    }
    if (name == "null") {
      uint32_t n = Const(pos, Kind::kNull, StaticType::kNull);
      SLUICE_TRY(Advance());
      return n;
    }
    if (name == "properties") return ParseProperty();
    struct Function {
      std::string_view name;
      NodeOp op;
      StaticType type;
    };
    static constexpr Function kFunctions[] = {
        {"defined", NodeOp::kDefined, StaticType::kBool}, {"boolean", NodeOp::kBoolean, StaticType::kBool},
        {"number", NodeOp::kNumber, StaticType::kNumber}, {"string", NodeOp::kString, StaticType::kString},
        {"floor", NodeOp::kFloor, StaticType::kNumber},   {"round", NodeOp::kRound, StaticType::kNumber},
        {"ceil", NodeOp::kCeil, StaticType::kNumber},
    };
    for (const Function& f : kFunctions) {
      if (name == f.name) return ParseCall(f.name, f.op, f.type);
    }
    if (name == "and" || name == "or" || name == "in") {
      return Fail(pos, fmt::format("expected a value before '{}'", cur_.text));
    }
    return Fail(pos, fmt::format("unknown name {}; expressions read properties[\"name\"] and call defined, boolean, "
                                 "number, string, floor, round or ceil",
                                 Describe(cur_)));
  }

  Result<uint32_t> ParseProperty() {
    const uint32_t pos = cur_.pos;
    SLUICE_TRY(Advance());
    if (cur_.kind != Tok::kLBracket) {
      return Fail(cur_.pos, fmt::format("expected '[' after properties (write properties[\"name\"]), found {}",
                                        Describe(cur_)));
    }
    SLUICE_TRY(Advance());
    if (cur_.kind != Tok::kString) {
      return Fail(cur_.pos, fmt::format("expected a property name in quotes, e.g. properties[\"$os\"], found {}",
                                        Describe(cur_)));
    }
    std::string name = std::move(cur_.str);
    SLUICE_TRY(Advance());
    SLUICE_TRY(Expect(Tok::kRBracket, "']' after the property name"));
    Node n;
    n.pos = pos;
    static constexpr std::pair<std::string_view, Promoted> kPromoted[] = {
        {"time", Promoted::kTime},         {"distinct_id", Promoted::kDistinctId},
        {"$insert_id", Promoted::kInsertId}, {"$device_id", Promoted::kDeviceId},
        {"$user_id", Promoted::kUserId},
    };
    for (const auto& [promoted_name, field] : kPromoted) {
      if (name == promoted_name) {
        n.op = NodeOp::kPromoted;
        n.slot = static_cast<uint32_t>(field);
        // Ingest stores ids as text and time as a number; an absent $device_id/$user_id is undefined, which the
        // type rules treat like any string.
        n.type = field == Promoted::kTime ? StaticType::kNumber : StaticType::kString;
        return Add(std::move(n));
      }
    }
    n.op = NodeOp::kProperty;
    n.slot = Slot(name);
    return Add(std::move(n));
  }

  Result<uint32_t> ParseCall(std::string_view name, NodeOp op, StaticType type) {
    const uint32_t pos = cur_.pos;
    Nest nest(*this);
    if (nest.too_deep()) return TooDeep(pos);
    SLUICE_TRY(Advance());
    if (cur_.kind != Tok::kLParen) {
      return Fail(cur_.pos, fmt::format("expected '(' after {}, found {}", name, Describe(cur_)));
    }
    SLUICE_TRY(Advance());
    if (cur_.kind == Tok::kRParen) return Fail(cur_.pos, fmt::format("{}() takes one argument", name));
    SLUICE_ASSIGN_OR_RETURN(uint32_t arg, ParseOr());
    if (cur_.kind == Tok::kComma) return Fail(cur_.pos, fmt::format("{}() takes exactly one argument", name));
    if (cur_.kind != Tok::kRParen) {
      return Fail(cur_.pos, fmt::format("expected ')' to close {}( at position {}, found {}", name, pos,
                                        Describe(cur_)));
    }
    SLUICE_TRY(Advance());
    if ((op == NodeOp::kFloor || op == NodeOp::kRound || op == NodeOp::kCeil) && NeverNumber(TypeOf(arg))) {
      return Fail(At(arg).pos, fmt::format("{}() needs a number, not a {}; convert with number()", name,
                                           TypeName(TypeOf(arg))));
    }
    Node n;
    n.op = op;
    n.type = type;
    n.pos = pos;
    n.children.push_back(arg);
    return Add(std::move(n));
  }

  std::string_view text_;
  Program& program_;
  size_t pos_ = 0;
  int depth_ = 0;
  Token cur_;
};

/// Builds the lookup tables that hold views into the program's own strings; called once the program is at its
/// final address.
void BuildIndexes(Program& program) {
  if (program.property_names.size() > kPropertyIndexMinNames) {
    for (size_t i = 0; i < program.property_names.size(); ++i) {
      program.property_index.emplace(program.property_names[i], static_cast<uint32_t>(i));
    }
  }
  for (Node& list : program.nodes) {
    if (list.op != NodeOp::kList || list.children.size() < kConstSetMinElements) continue;
    ConstSet set;
    bool all_const = true;
    for (uint32_t c : list.children) {
      const Node& e = program.nodes[c];
      if (e.op != NodeOp::kConst) {
        all_const = false;
        break;
      }
      switch (e.const_kind) {
        case Kind::kString: set.strings.insert(e.text); break;
        case Kind::kNumber: set.numbers.insert(e.number == 0 ? 0.0 : e.number); break;
        case Kind::kNull: set.has_null = true; break;
        case Kind::kBool: (e.boolean ? set.has_true : set.has_false) = true; break;
        default: all_const = false; break;
      }
    }
    if (!all_const) continue;
    list.const_set = static_cast<int32_t>(program.const_sets.size());
    program.const_sets.push_back(std::move(set));
  }
}

}  // namespace

Result<std::shared_ptr<Program>> ParseWhere(std::string_view text) {
  if (text.size() > kMaxWhereBytes) {
    return InvalidArgument(fmt::format("where: the expression is {} bytes long; the limit is {} bytes", text.size(),
                                       kMaxWhereBytes));
  }
  auto program = std::make_shared<Program>();
  program->text = std::string(text);
  Parser parser(program->text, *program);
  SLUICE_TRY(parser.Run());
  BuildIndexes(*program);
  return program;
}

}  // namespace sluice::expr
