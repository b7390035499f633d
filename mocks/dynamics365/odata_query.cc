#include "mocks/dynamics365/odata_query.h"

#include <cctype>
#include <regex>
#include <utility>

namespace crmbridge::mocks::d365 {

namespace {

using nlohmann::json;

enum class Tok { kEnd, kLParen, kRParen, kComma, kIdent, kString, kNumber, kGuid, kDateTime };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // identifier text, or the literal's (unescaped) value
  size_t pos = 0;
};

enum class LitKind { kNull, kBool, kInt, kDecimal, kString, kGuid, kDateTime };

bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/';
}

Status SyntaxError(size_t pos, const std::string& text) {
  return Status(StatusCode::kInvalidArgument,
                "Syntax error at position " + std::to_string(pos) + " in '" + text + "'.");
}

Status UnknownProperty(const std::string& name, const TableSchema& schema) {
  return Status(StatusCode::kInvalidArgument, "Could not find a property named '" + name +
                                                  "' on type '" + schema.qualified_type() + "'.");
}

// Matches `re` at exactly `pos` and not followed by an identifier character (so "2024-01-01x"
// is not a date and a GUID is not the head of a longer word).
size_t MatchAt(const std::string& text, size_t pos, const std::regex& re) {
  std::smatch m;
  auto begin = text.begin() + static_cast<std::ptrdiff_t>(pos);
  if (!std::regex_search(begin, text.end(), m, re, std::regex_constants::match_continuous)) {
    return 0;
  }
  size_t len = static_cast<size_t>(m.length(0));
  if (pos + len < text.size() && IsIdentChar(text[pos + len])) return 0;
  return len;
}

Result<std::vector<Token>> Lex(const std::string& text) {
  static const std::regex kGuidRe(
      "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
  static const std::regex kDateRe(
      R"(\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)");
  static const std::regex kNumberRe(R"(-?\d+(\.\d+)?([eE][+-]?\d+)?)");
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    Token t;
    t.pos = i;
    if (c == '(' || c == ')' || c == ',') {
      t.kind = c == '(' ? Tok::kLParen : (c == ')' ? Tok::kRParen : Tok::kComma);
      t.text = std::string(1, c);
      ++i;
    } else if (c == '\'') {
      // A quote ends the literal unless doubled ('' is an escaped quote).
      std::string value;
      size_t j = i + 1;
      bool closed = false;
      while (j < text.size()) {
        if (text[j] == '\'') {
          if (j + 1 < text.size() && text[j + 1] == '\'') {
            value.push_back('\'');
            j += 2;
            continue;
          }
          closed = true;
          ++j;
          break;
        }
        value.push_back(text[j++]);
      }
      if (!closed) {
        return Status(StatusCode::kInvalidArgument,
                      "There is an unterminated literal at position " +
                          std::to_string(text.size()) + " in '" + text + "'.");
      }
      t.kind = Tok::kString;
      t.text = std::move(value);
      i = j;
    } else if (size_t n = MatchAt(text, i, kGuidRe)) {
      t.kind = Tok::kGuid;
      t.text = ToLowerAscii(text.substr(i, n));
      i += n;
    } else if (size_t n2 = MatchAt(text, i, kDateRe)) {
      t.kind = Tok::kDateTime;
      t.text = text.substr(i, n2);
      i += n2;
    } else if (size_t n3 = MatchAt(text, i, kNumberRe)) {
      t.kind = Tok::kNumber;
      t.text = text.substr(i, n3);
      i += n3;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < text.size() && IsIdentChar(text[j])) ++j;
      t.kind = Tok::kIdent;
      t.text = text.substr(i, j - i);
      i = j;
    } else {
      return SyntaxError(i, text);
    }
    tokens.push_back(std::move(t));
  }
  Token end;
  end.kind = Tok::kEnd;
  end.pos = text.size();
  tokens.push_back(end);
  return tokens;
}

struct Operand {
  bool is_property = false;
  std::string property;
  ColumnType type = ColumnType::kString;  // the column's type, for properties
  LitKind lit = LitKind::kNull;           // for literals
  json value;                             // the literal, normalised to the stored form
};

}  // namespace

struct FilterNode {
  enum class Kind { kAnd, kOr, kNot, kCompare, kFunction } kind = Kind::kCompare;
  std::unique_ptr<FilterNode> left, right;  // kAnd/kOr: both; kNot: left
  std::string op;                           // comparison operator or function name
  ColumnType type = ColumnType::kString;    // how kCompare compares
  Operand a, b;
};

namespace {

const char* OperatorKind(const std::string& op) {
  if (op == "eq") return "Equal";
  if (op == "ne") return "NotEqual";
  if (op == "gt") return "GreaterThan";
  if (op == "ge") return "GreaterThanOrEqual";
  if (op == "lt") return "LessThan";
  return "LessThanOrEqual";
}

const char* LiteralEdmType(LitKind kind) {
  switch (kind) {
    case LitKind::kNull: return "Edm.Untyped";
    case LitKind::kBool: return "Edm.Boolean";
    case LitKind::kInt: return "Edm.Int32";
    case LitKind::kDecimal: return "Edm.Decimal";
    case LitKind::kString: return "Edm.String";
    case LitKind::kGuid: return "Edm.Guid";
    case LitKind::kDateTime: return "Edm.DateTimeOffset";
  }
  return "Edm.Untyped";
}

// Whether a literal may be compared with a column of `type`. A quoted GUID is accepted for a GUID
// or lookup column because the Dataverse docs show that form too (reference.md §3).
bool LiteralFits(const Operand& lit, ColumnType type) {
  switch (lit.lit) {
    case LitKind::kNull: return true;
    case LitKind::kBool: return type == ColumnType::kBool;
    case LitKind::kInt:
    case LitKind::kDecimal: return type == ColumnType::kInt || type == ColumnType::kDecimal;
    case LitKind::kString:
      return type == ColumnType::kString ||
             ((type == ColumnType::kGuid || type == ColumnType::kLookup) &&
              lit.value.is_string() && IsGuid(lit.value.get<std::string>()));
    case LitKind::kGuid: return type == ColumnType::kGuid || type == ColumnType::kLookup;
    case LitKind::kDateTime: return type == ColumnType::kDateTime;
  }
  return false;
}

ColumnType LiteralColumnType(LitKind kind) {
  switch (kind) {
    case LitKind::kBool: return ColumnType::kBool;
    case LitKind::kInt:
    case LitKind::kDecimal: return ColumnType::kDecimal;
    case LitKind::kGuid: return ColumnType::kGuid;
    case LitKind::kDateTime: return ColumnType::kDateTime;
    default: return ColumnType::kString;
  }
}

bool SameFamily(ColumnType x, ColumnType y) {
  auto family = [](ColumnType t) {
    if (t == ColumnType::kDecimal) return ColumnType::kInt;
    if (t == ColumnType::kLookup) return ColumnType::kGuid;
    return t;
  };
  return family(x) == family(y);
}

class Parser {
 public:
  Parser(const std::string& text, std::vector<Token> tokens, const TableSchema& schema)
      : text_(text), tokens_(std::move(tokens)), schema_(schema) {}

  Result<std::unique_ptr<FilterNode>> ParseAll() {
    auto node = ParseOr();
    if (!node.ok()) return node.status();
    if (Peek().kind != Tok::kEnd) return SyntaxError(Peek().pos, text_);
    return std::move(node).value();
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  bool PeekKeyword(const char* word) const {
    return Peek().kind == Tok::kIdent && Peek().text == word;
  }

  Result<std::unique_ptr<FilterNode>> ParseOr() {
    auto left = ParseAnd();
    if (!left.ok()) return left.status();
    std::unique_ptr<FilterNode> node = std::move(left).value();
    while (PeekKeyword("or")) {
      ++pos_;
      auto right = ParseAnd();
      if (!right.ok()) return right.status();
      auto parent = std::make_unique<FilterNode>();
      parent->kind = FilterNode::Kind::kOr;
      parent->left = std::move(node);
      parent->right = std::move(right).value();
      node = std::move(parent);
    }
    return node;
  }

  Result<std::unique_ptr<FilterNode>> ParseAnd() {
    auto left = ParseUnary();
    if (!left.ok()) return left.status();
    std::unique_ptr<FilterNode> node = std::move(left).value();
    while (PeekKeyword("and")) {
      ++pos_;
      auto right = ParseUnary();
      if (!right.ok()) return right.status();
      auto parent = std::make_unique<FilterNode>();
      parent->kind = FilterNode::Kind::kAnd;
      parent->left = std::move(node);
      parent->right = std::move(right).value();
      node = std::move(parent);
    }
    return node;
  }

  Result<std::unique_ptr<FilterNode>> ParseUnary() {
    if (PeekKeyword("not")) {
      ++pos_;
      auto inner = ParseUnary();
      if (!inner.ok()) return inner.status();
      auto node = std::make_unique<FilterNode>();
      node->kind = FilterNode::Kind::kNot;
      node->left = std::move(inner).value();
      return node;
    }
    if (Peek().kind == Tok::kLParen) {
      ++pos_;
      auto inner = ParseOr();
      if (!inner.ok()) return inner.status();
      if (Peek().kind != Tok::kRParen) return SyntaxError(Peek().pos, text_);
      ++pos_;
      return inner;
    }
    if (Peek().kind == Tok::kIdent && Peek(1).kind == Tok::kLParen) return ParseFunction();
    return ParseComparison();
  }

  Result<std::unique_ptr<FilterNode>> ParseFunction() {
    const std::string name = Peek().text;
    if (name != "contains" && name != "startswith" && name != "endswith") {
      if (name.rfind("Microsoft.Dynamics.CRM.", 0) == 0) {
        return Status(StatusCode::kInvalidArgument,
                      "The query function '" + name +
                          "' is not implemented by the crmbridge Dynamics 365 mock.");
      }
      return Status(StatusCode::kInvalidArgument,
                    "An unknown function with name '" + name +
                        "' was found. This may also be a function import or a key lookup on a "
                        "navigation property, which is not allowed.");
    }
    pos_ += 2;  // name and '('
    auto property = ParseOperand();
    if (!property.ok()) return property.status();
    if (Peek().kind != Tok::kComma) return SyntaxError(Peek().pos, text_);
    ++pos_;
    auto literal = ParseOperand();
    if (!literal.ok()) return literal.status();
    if (Peek().kind != Tok::kRParen) return SyntaxError(Peek().pos, text_);
    ++pos_;
    if (!property->is_property || property->type != ColumnType::kString || literal->is_property ||
        literal->lit != LitKind::kString) {
      return Status(StatusCode::kInvalidArgument,
                    "No function signature for the function with name '" + name +
                        "' matches the specified arguments. The function signatures considered "
                        "are: " + name + "(Edm.String Nullable=true, Edm.String Nullable=true).");
    }
    auto node = std::make_unique<FilterNode>();
    node->kind = FilterNode::Kind::kFunction;
    node->op = name;
    node->a = std::move(property).value();
    node->b = std::move(literal).value();
    node->b.value = ToLowerAscii(node->b.value.get<std::string>());
    return node;
  }

  Result<std::unique_ptr<FilterNode>> ParseComparison() {
    auto a = ParseOperand();
    if (!a.ok()) return a.status();
    const Token& op = Peek();
    static const char* kOps[] = {"eq", "ne", "gt", "ge", "lt", "le"};
    bool known = false;
    for (const char* k : kOps) known = known || (op.kind == Tok::kIdent && op.text == k);
    if (!known) return SyntaxError(op.pos, text_);
    std::string op_text = op.text;
    ++pos_;
    auto b = ParseOperand();
    if (!b.ok()) return b.status();

    auto node = std::make_unique<FilterNode>();
    node->kind = FilterNode::Kind::kCompare;
    node->op = op_text;
    node->a = std::move(a).value();
    node->b = std::move(b).value();
    const Operand& x = node->a;
    const Operand& y = node->b;
    bool fits;
    if (x.is_property && y.is_property) {
      fits = SameFamily(x.type, y.type);
      node->type = x.type;
    } else if (x.is_property) {
      fits = LiteralFits(y, x.type);
      node->type = x.type;
    } else if (y.is_property) {
      fits = LiteralFits(x, y.type);
      node->type = y.type;
    } else {
      fits = x.lit == LitKind::kNull || y.lit == LitKind::kNull ||
             SameFamily(LiteralColumnType(x.lit), LiteralColumnType(y.lit));
      node->type = LiteralColumnType(x.lit == LitKind::kNull ? y.lit : x.lit);
    }
    if (!fits) {
      auto edm = [](const Operand& o) {
        return o.is_property ? EdmTypeName(o.type) : LiteralEdmType(o.lit);
      };
      return Status(StatusCode::kInvalidArgument,
                    std::string("A binary operator with incompatible types was detected. Found "
                                "operand types '") +
                        edm(x) + "' and '" + edm(y) + "' for operator kind '" +
                        OperatorKind(op_text) + "'.");
    }
    return node;
  }

  Result<Operand> ParseOperand() {
    const Token t = Peek();
    Operand o;
    switch (t.kind) {
      case Tok::kString:
        o.lit = LitKind::kString;
        o.value = t.text;
        break;
      case Tok::kGuid:
        o.lit = LitKind::kGuid;
        o.value = t.text;
        break;
      case Tok::kDateTime: {
        auto seconds = ParseIsoDateTime(t.text);
        if (!seconds) return SyntaxError(t.pos, text_);
        o.lit = LitKind::kDateTime;
        o.value = FormatIsoDateTime(*seconds);
        break;
      }
      case Tok::kNumber:
        if (t.text.find_first_of(".eE") == std::string::npos) {
          o.lit = LitKind::kInt;
          o.value = std::stoll(t.text);
        } else {
          o.lit = LitKind::kDecimal;
          o.value = std::stod(t.text);
        }
        break;
      case Tok::kIdent:
        if (t.text == "null") {
          o.lit = LitKind::kNull;
        } else if (t.text == "true" || t.text == "false") {
          o.lit = LitKind::kBool;
          o.value = t.text == "true";
        } else {
          const Column* column = schema_.FindByProperty(t.text);
          if (column == nullptr) return UnknownProperty(t.text, schema_);
          o.is_property = true;
          o.property = t.text;
          o.type = column->type;
        }
        break;
      default:
        return SyntaxError(t.pos, text_);
    }
    ++pos_;
    return o;
  }

  const std::string& text_;
  std::vector<Token> tokens_;
  const TableSchema& schema_;
  size_t pos_ = 0;
};

const json& ValueOf(const Operand& o, const json& row) {
  static const json kNull;
  if (!o.is_property) return o.value;
  auto it = row.find(o.property);
  return it == row.end() ? kNull : *it;
}

bool Evaluate(const FilterNode& node, const json& row) {
  switch (node.kind) {
    case FilterNode::Kind::kAnd: return Evaluate(*node.left, row) && Evaluate(*node.right, row);
    case FilterNode::Kind::kOr: return Evaluate(*node.left, row) || Evaluate(*node.right, row);
    case FilterNode::Kind::kNot: return !Evaluate(*node.left, row);
    case FilterNode::Kind::kFunction: {
      const json& v = ValueOf(node.a, row);
      if (!v.is_string()) return false;
      const std::string hay = ToLowerAscii(v.get<std::string>());
      const std::string& needle = node.b.value.get_ref<const std::string&>();
      if (node.op == "contains") return hay.find(needle) != std::string::npos;
      if (needle.size() > hay.size()) return false;
      if (node.op == "startswith") return hay.compare(0, needle.size(), needle) == 0;
      return hay.compare(hay.size() - needle.size(), needle.size(), needle) == 0;
    }
    case FilterNode::Kind::kCompare: {
      const json& x = ValueOf(node.a, row);
      const json& y = ValueOf(node.b, row);
      if (node.op == "eq" || node.op == "ne") {
        bool equal = (x.is_null() || y.is_null()) ? (x.is_null() && y.is_null())
                                                  : CompareValues(x, y, node.type) == 0;
        return node.op == "eq" ? equal : !equal;
      }
      if (x.is_null() || y.is_null()) return false;
      int c = CompareValues(x, y, node.type);
      if (node.op == "gt") return c > 0;
      if (node.op == "ge") return c >= 0;
      if (node.op == "lt") return c < 0;
      return c <= 0;
    }
  }
  return false;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> SplitComma(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    out.push_back(Trim(text.substr(start, comma == std::string::npos ? std::string::npos
                                                                      : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

Filter::Filter() = default;
Filter::~Filter() = default;
Filter::Filter(Filter&&) noexcept = default;
Filter& Filter::operator=(Filter&&) noexcept = default;

Result<Filter> Filter::Parse(const std::string& text, const TableSchema& schema) {
  auto tokens = Lex(text);
  if (!tokens.ok()) return tokens.status();
  Parser parser(text, std::move(tokens).value(), schema);
  auto root = parser.ParseAll();
  if (!root.ok()) return root.status();
  Filter filter;
  filter.root_ = std::move(root).value();
  return filter;
}

bool Filter::Matches(const nlohmann::json& row) const {
  return root_ == nullptr || Evaluate(*root_, row);
}

Result<std::vector<OrderKey>> ParseOrderBy(const std::string& text, const TableSchema& schema) {
  std::vector<OrderKey> keys;
  for (const std::string& item : SplitComma(text)) {
    size_t space = item.find_first_of(" \t");
    std::string name = item.substr(0, space);
    std::string direction = space == std::string::npos ? "" : Trim(item.substr(space));
    if (name.empty()) return SyntaxError(0, text);
    const Column* column = schema.FindByProperty(name);
    if (column == nullptr) return UnknownProperty(name, schema);
    if (!direction.empty() && direction != "asc" && direction != "desc") {
      return SyntaxError(item.find(direction), text);
    }
    keys.push_back(OrderKey{name, column->type, direction == "desc"});
  }
  return keys;
}

Result<std::vector<std::string>> ParseSelect(const std::string& text, const TableSchema& schema) {
  std::vector<std::string> columns;
  for (const std::string& name : SplitComma(text)) {
    if (name.empty()) return SyntaxError(0, text);
    if (schema.FindByProperty(name) == nullptr) return UnknownProperty(name, schema);
    columns.push_back(name);
  }
  return columns;
}

int CompareRows(const nlohmann::json& a, const nlohmann::json& b, const std::vector<OrderKey>& keys,
                const std::string& primary_key) {
  static const json kNull;
  auto get = [](const json& row, const std::string& key) -> const json& {
    auto it = row.find(key);
    return it == row.end() ? kNull : *it;
  };
  for (const OrderKey& key : keys) {
    int c = CompareValues(get(a, key.property), get(b, key.property), key.type);
    if (c != 0) return key.descending ? -c : c;
  }
  return CompareValues(get(a, primary_key), get(b, primary_key), ColumnType::kGuid);
}

}  // namespace crmbridge::mocks::d365
