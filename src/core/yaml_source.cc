#include "src/core/yaml_source.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "src/core/utf8.h"

namespace crmbridge {

std::string SourcePos::ToString() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace {

// yaml-cpp counts from 0 and reports -1 for nodes it built itself (position unknown).
SourcePos PosAt(const YAML::Mark& mark, const std::string& file) {
  SourcePos pos;
  pos.file = file;
  if (mark.line >= 0) {
    pos.line = mark.line + 1;
    pos.column = mark.column + 1;
  }
  return pos;
}

// yaml-cpp places a value left empty (`native:` and nothing after it) at the token after it, often
// the next line's key, where an error about it would send the reader to the wrong line. The
// parse of each file notes where such values' keys are, by the place yaml-cpp gives the value.
using MarkAt = std::pair<int, int>;  // line, column
std::mutex g_empty_values_mu;
std::map<std::string, std::map<MarkAt, YAML::Mark>> g_empty_value_keys;  // by file

}  // namespace

SourcePos PosOf(const YAML::Node& node, const std::string& file) {
  SourcePos pos = PosAt(node.Mark(), file);
  // A file with nothing in it (or only comments) is a null document yaml-cpp places nowhere: a
  // problem with it is at the start of the file.
  if (pos.line == 0 && node.IsNull()) {
    pos.line = 1;
    pos.column = 1;
  }
  if (node.IsNull() && pos.line > 0) {
    std::lock_guard<std::mutex> lock(g_empty_values_mu);
    if (auto keys = g_empty_value_keys.find(file); keys != g_empty_value_keys.end())
      if (auto key = keys->second.find({node.Mark().line, node.Mark().column});
          key != keys->second.end())
        return PosAt(key->second, file);
  }
  return pos;
}

std::string Diagnostic::ToString() const {
  // Messages quote keys and values from the file (and yaml-cpp the character it stopped at): a
  // line break or control character in one would split the diagnostic, which callers read one
  // per line (PrintableText).
  const std::string where = pos.ToString();
  std::string out = (where.empty() ? "" : where + ": ") + (warning ? "warning: " : "error: ") +
                    PrintableText(message);
  if (!hint.empty()) out += " (hint: " + PrintableText(hint) + ")";
  return out;
}

void Diagnostics::Error(const SourcePos& pos, std::string message, std::string hint) {
  items_.push_back(Diagnostic{pos, std::move(message), std::move(hint)});
}

void Diagnostics::Warning(const SourcePos& pos, std::string message, std::string hint) {
  warnings_.push_back(Diagnostic{pos, std::move(message), std::move(hint), /*warning=*/true});
}

std::string Diagnostics::ToString() const {
  std::string out;
  for (const Diagnostic& d : items_) {
    if (!out.empty()) out += "\n";
    out += d.ToString();
  }
  return out;
}

Status Diagnostics::ToStatus() const {
  if (items_.empty()) return Status::Ok();
  return Status(StatusCode::kInvalidArgument, ToString());
}

namespace {

// Where `text` stops being UTF-8 (npos when it is UTF-8 throughout): the well-formed sequences of
// Unicode's table 3-7, so no overlong forms, no surrogates, nothing past U+10FFFF.
size_t NotUtf8At(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t follow = 0;
    unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      follow = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      follow = 2;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      follow = 3;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    }
    if (follow == 0 || i + follow >= text.size()) return i;
    for (size_t k = 1; k <= follow; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if (k == 1 ? (b < low || b > high) : (b < 0x80 || b > 0xBF)) return i;
    }
    i += follow + 1;
  }
  return std::string::npos;
}

// What yaml-cpp lets through and a crmbridge file must not hold, found on the parser's events
// (they carry the positions a loaded Node has lost): a key given twice in one map (yaml-cpp keeps
// one of the two, silently), anchors and aliases (one alias can stand for a whole subtree, and a
// few nested ones for more nodes than memory holds: refused, not expanded), and values that are
// not UTF-8 (yaml-cpp passes any byte on, and nlohmann::json throws when it writes such a string:
// the value would fail every record it reached), and tags (`!!str 5`, `!secret x`: the loaders
// read a value as it is written, and would pass the tag over in silence).
class StrictnessCheck : public YAML::EventHandler {
 public:
  StrictnessCheck(std::string file, Diagnostics* diagnostics)
      : file_(std::move(file)), diagnostics_(diagnostics) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Anchored(mark, anchor);
    // A map's value left empty, placed by yaml-cpp on a later line than its key.
    if (!stack_.empty() && stack_.back().is_map && !stack_.back().expecting_key &&
        mark.line > stack_.back().last_key.line)
      empty_value_keys_[{mark.line, mark.column}] = stack_.back().last_key;
    Node(mark, nullptr);
  }
  // Where each map value left empty is given by yaml-cpp, and where its key is.
  const std::map<MarkAt, YAML::Mark>& empty_value_keys() const { return empty_value_keys_; }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    diagnostics_->Error(PosAt(mark, file_), "an alias (*name) is not accepted here",
                        "write the value out where it is used");
    Node(mark, nullptr);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Anchored(mark, anchor);
    Tagged(mark, tag);
    if (const size_t at = NotUtf8At(value); at != std::string::npos) {
      static const char kHex[] = "0123456789ABCDEF";
      const auto byte = static_cast<unsigned char>(value[at]);
      diagnostics_->Error(PosAt(mark, file_),
                          std::string("this value is not UTF-8 text (byte 0x") + kHex[byte >> 4] +
                              kHex[byte & 15] + ")",
                          "save the file as UTF-8");
    }
    Node(mark, &value);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Anchored(mark, anchor);
    Tagged(mark, tag);
    Node(mark, nullptr);
    stack_.push_back(Container{false, {}, true, YAML::Mark()});
  }
  void OnSequenceEnd() override { stack_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Anchored(mark, anchor);
    Tagged(mark, tag);
    Node(mark, nullptr);
    stack_.push_back(Container{true, {}, true, YAML::Mark()});
  }
  void OnMapEnd() override { stack_.pop_back(); }

 private:
  struct Container {
    bool is_map;
    std::map<std::string, YAML::Mark> keys;  // a map's scalar keys, where first given
    bool expecting_key;                      // a map's next node is a key
    YAML::Mark last_key;                     // a map's latest key
  };

  void Anchored(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor)
      diagnostics_->Error(PosAt(mark, file_), "an anchor (&name) is not accepted here",
                          "write the value out where it is used");
  }
  // yaml-cpp gives a node written without a tag "?" (plain) or "!" (quoted).
  void Tagged(const YAML::Mark& mark, const std::string& tag) {
    if (!tag.empty() && tag != "?" && tag != "!")
      diagnostics_->Error(PosAt(mark, file_),
                          "a tag (" + PrintableText(tag) + ") is not accepted here",
                          "write the value alone; quote it ('5') to make a number text");
  }
  // A node begins (`scalar`: its text when it is a scalar) in the innermost container.
  void Node(const YAML::Mark& mark, const std::string* scalar) {
    if (stack_.empty() || !stack_.back().is_map) return;
    Container& map = stack_.back();
    const bool is_key = map.expecting_key;
    map.expecting_key = !map.expecting_key;
    if (is_key) map.last_key = mark;
    if (!is_key || scalar == nullptr) return;
    auto [first, inserted] = map.keys.emplace(*scalar, mark);
    if (!inserted) {
      diagnostics_->Error(PosAt(mark, file_), "key '" + *scalar + "' is given twice in this map",
                          "it was first given at line " + std::to_string(first->second.line + 1) +
                              "; keep one");
    }
  }

  std::string file_;
  Diagnostics* diagnostics_;
  std::vector<Container> stack_;
  std::map<MarkAt, YAML::Mark> empty_value_keys_;
};

// Where a quoted value that is never closed begins, if one is: yaml-cpp reports such a value
// where it gave up (often the end of the file, far from the mistake), or takes the rest of the
// file as its text. A quote opens a value only where a value may begin: first on its line (after
// indentation or "- "), or after ": ", "[", "{" or ",". Comments, plain text (an apostrophe
// inside a word) and the lines of block scalars (after "|" or ">") are skipped. A "," starts a
// value only inside brackets or braces (`Ny,'x` is one plain value). With `on_its_line`, a quote
// still open at the end of the line it began on is the one returned: for a text the parser refused,
// where a stray quote pairs with the next one further down and no quote is left open at the end.
std::optional<YAML::Mark> UnclosedQuote(const std::string& text, bool on_its_line = false) {
  std::istringstream lines(text);
  std::string line;
  char open = 0;  // the quote being read, if any, across lines
  YAML::Mark opened;
  int block_indent = -1;  // inside a block scalar: the indentation of the line that began it
  int flow = 0;           // brackets and braces open outside quotes
  for (int n = 0; std::getline(lines, line); ++n) {
    const size_t first = line.find_first_not_of(" \t\r");
    const int indent = first == std::string::npos ? -1 : static_cast<int>(first);
    if (open == 0 && block_indent >= 0) {
      if (indent < 0 || indent > block_indent) continue;  // the block's text
      block_indent = -1;
    }
    char last = '\n';  // the last character that is not a space ('\n' at the line's start)
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (open != 0) {
        if (open == '"' && c == '\\') {
          ++i;  // an escaped character
        } else if (c == open) {
          if (open == '\'' && i + 1 < line.size() && line[i + 1] == '\'') {
            ++i;  // '' is a quote inside single quotes
          } else {
            open = 0;
            last = c;
          }
        }
      } else if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
        break;  // a comment, to the end of the line
      } else if ((c == '\'' || c == '"') &&
                 (last == '\n' || last == ':' || last == '[' || last == '{' ||
                  (last == ',' && flow > 0) || last == '-' || last == '?')) {
        open = c;
        opened.line = n;
        opened.column = static_cast<int>(i);
      } else if (c != ' ' && c != '\t' && c != '\r') {
        if (c == '[' || c == '{') ++flow;
        if ((c == ']' || c == '}') && flow > 0) --flow;
        // A '-' begins a value only as a list item ("- " at the start of the line or after
        // another); inside text (o-'neil) it is a letter like any other.
        const bool item = c == '-' && (last == '\n' || last == '-') &&
                          (i + 1 == line.size() || line[i + 1] == ' ');
        last = c == '-' && !item ? 'a' : c;
      }
    }
    if (on_its_line && open != 0 && opened.line == n) return opened;
    // A block scalar's indicator ends the line: "|", ">", with chomping or indentation digits.
    if (open == 0) {
      std::string tail = line.substr(0, line.find(" #"));
      while (!tail.empty() && (tail.back() == ' ' || tail.back() == '\t' || tail.back() == '\r'))
        tail.pop_back();
      size_t k = tail.size();
      while (k > 0 && (tail[k - 1] == '-' || tail[k - 1] == '+' ||
                       (tail[k - 1] >= '0' && tail[k - 1] <= '9')))
        --k;
      if (k > 0 && (tail[k - 1] == '|' || tail[k - 1] == '>') &&
          (k == 1 || tail[k - 2] == ' ' || tail[k - 2] == ':'))
        block_indent = std::max(indent, 0);
    }
  }
  if (open != 0) return opened;
  return std::nullopt;
}

// Where a document after the first one starts, if the text has one.
class DocumentStart : public YAML::EventHandler {
 public:
  std::optional<YAML::Mark> start;
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

Result<YAML::Node> ParseYaml(const std::string& text, const std::string& name) {
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp stops where nesting gets deeper than it recurses, and calls that "bad file".
    Diagnostic d{PosAt(e.mark, name), "not valid YAML: nested too deeply to read",
                 "crmbridge files nest a few levels: look for a bracket or brace left open"};
    return Status(StatusCode::kInvalidArgument, d.ToString());
  } catch (const YAML::Exception& e) {
    Diagnostic d{PosAt(e.mark, name), "not valid YAML: " + e.msg, ""};
    if (!UnclosedQuote(text)) {
      // A stray quote mid-file pairs with the next quote further down, and the parser gives up
      // far from it: the quote left open at the end of its own line is the likely mistake.
      if (auto quote = UnclosedQuote(text, /*on_its_line=*/true)) {
        Diagnostic q{PosAt(*quote, name),
                     "not valid YAML: this quoted value is not closed on its line",
                     "end it with the same quote (the parser stopped at " +
                         PosAt(e.mark, name).ToString() + ": " + e.msg + ")"};
        return Status(StatusCode::kInvalidArgument, q.ToString());
      }
      return Status(StatusCode::kInvalidArgument, d.ToString());
    }
  }
  // Checked when yaml-cpp refused the text too: it reports an unclosed quote where it gave up,
  // or reads it as a value running to the end of the file.
  if (auto quote = UnclosedQuote(text)) {
    Diagnostic d{PosAt(*quote, name), "not valid YAML: this quoted value is never closed",
                 "end it with the same quote, or remove the opening one"};
    return Status(StatusCode::kInvalidArgument, d.ToString());
  }
  Diagnostics strictness;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    StrictnessCheck check(name, &strictness);
    parser.HandleNextDocument(check);
    {
      std::lock_guard<std::mutex> lock(g_empty_values_mu);
      g_empty_value_keys[name] = check.empty_value_keys();
    }
    // YAML::Load read the first document only: whatever follows a `---` or `...` would be
    // silently dropped, a whole section of a mapping among it.
    try {
      DocumentStart second;
      if (parser.HandleNextDocument(second))
        strictness.Error(PosAt(second.start.value_or(YAML::Mark()), name),
                         "a second YAML document: crmbridge reads one document per file",
                         "remove the `---` or `...` line, or move what follows into a file of its "
                         "own");
    } catch (const YAML::Exception& e) {
      strictness.Error(PosAt(e.mark, name),
                       "not valid YAML after the end of the first document: " + e.msg,
                       "crmbridge reads one document per file");
    }
  } catch (const YAML::Exception&) {
    // Loaded above: the events of the same text parse too.
  }
  CRMB_RETURN_IF_ERROR(strictness.ToStatus());
  return doc;
}

Result<YAML::Node> LoadYamlFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return Status(StatusCode::kInvalidArgument, path + ": is a folder, not a YAML file");
  // A device or a pipe (/dev/zero) would be read without end.
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    return Status(StatusCode::kInvalidArgument, path + ": is not a regular file");
  constexpr std::uintmax_t kMaxBytes = 64u << 20;  // far above any mapping or configuration
  if (const std::uintmax_t size = std::filesystem::file_size(path, ec); !ec && size > kMaxBytes)
    return Status(StatusCode::kInvalidArgument,
                  path + ": " + std::to_string(size >> 20) + " MB, more than the 64 MB a YAML file "
                  "crmbridge reads may hold");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kNotFound, path + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  return ParseYaml(text.str(), path);
}

}  // namespace crmbridge
