// The onboarding report's writers (src/report/onboarding_report.h) fed with hostile record values:
// BuildOnboardingReport over snapshots and stage history as the state store returns them, then
// RenderText, RenderJson and RenderHtml.
//
// The input, one item a line, values separated by tabs (so they may hold spaces and markup):
//   options <now ms> <stuck after ms> <overdue after ms> [ended]
//   stages <stage>\t<stage>...            the declared stages, in process order
//   end <stage>\t<stage>...               the end stages
//   snapshot <id>\t<title>\t<stage>\t<stage changed ms>\t<updated ms>\t<deleted ms>
//   move <id>\t<system>\t<from>\t<to>\t<at ms>
// Times are any 64-bit numbers: vendors' modification times reach the history unbounded.
//
// Whatever the values:
//   - the HTML is the writer's own markup and nothing else: every tag and attribute is one it
//     writes, each attribute value is quoted whole, no text holds a '<' or '>', and there is no
//     script; record values only ever appear escaped;
//   - the JSON report, as `crmbridge report --format json` prints it, parses back, and is valid
//     UTF-8; when every value is UTF-8 it is written without replacing anything, and the HTML is
//     UTF-8 too (titles are cut between characters, never inside one).
#include <cctype>
#include <cstdint>
#include <set>

#include "fuzz/fuzz_util.h"
#include "src/core/utf8.h"
#include "src/report/onboarding_report.h"

namespace crmbridge::fuzz {
namespace {

using nlohmann::json;

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> out;
  size_t at = 0;
  while (true) {
    const size_t end = text.find(separator, at);
    out.push_back(text.substr(at, end == std::string::npos ? end : end - at));
    if (end == std::string::npos) return out;
    at = end + 1;
  }
}

// A signed decimal number of at most 19 digits; 0 for anything else.
int64_t Millis(const std::string& text) {
  size_t i = 0;
  bool negative = false;
  if (i < text.size() && text[i] == '-') negative = true, ++i;
  if (i == text.size() || text.size() - i > 19) return 0;
  uint64_t n = 0;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return 0;
    n = n * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  if (n > static_cast<uint64_t>(INT64_MAX)) return negative ? INT64_MIN : INT64_MAX;
  return negative ? -static_cast<int64_t>(n) : static_cast<int64_t>(n);
}

const std::set<std::string>& Tags() {
  static const std::set<std::string> tags = {
      "!DOCTYPE", "html",    "head",  "meta",  "title", "style", "body", "header", "h1",    "h2",
      "p",        "section", "div",   "b",     "i",     "span",  "svg",  "g",      "text",  "tspan",
      "rect",     "line",    "table", "thead", "tbody", "tr",    "th",   "td",     "footer"};
  return tags;
}

const std::set<std::string>& Attributes() {
  static const std::set<std::string> attributes = {
      "html",         "lang",        "charset",     "name",     "content", "class",
      "id",           "style",       "viewBox",     "width",    "height",  "role",
      "aria-label",   "data-stage",  "data-count",  "data-id",  "x",       "y",
      "x1",           "y1",          "x2",          "y2",       "rx",      "fill",
      "fill-opacity", "text-anchor", "font-weight", "font-size", "title"};
  return attributes;
}

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '!';
}

// Reads the HTML as a browser would tokenise it, allowing only the writer's own tags and
// attributes, each attribute value in double quotes.
void CheckMarkup(const std::string& html) {
  std::string lower = html;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  FUZZ_CHECK(lower.find("<script") == std::string::npos, "a script in the HTML");
  size_t i = 0;
  const auto excerpt = [&html](size_t at) {
    return PrintableText(html.substr(at < 80 ? 0 : at - 80, 160));
  };
  while (i < html.size()) {
    const char c = html[i];
    FUZZ_CHECK(c != '>', "a '>' outside a tag: " + excerpt(i));
    if (c != '<') {
      ++i;
      continue;
    }
    ++i;
    const bool closing = i < html.size() && html[i] == '/';
    if (closing) ++i;
    size_t start = i;
    while (i < html.size() && NameChar(html[i])) ++i;
    const std::string tag = html.substr(start, i - start);
    FUZZ_CHECK(Tags().count(tag) == 1,
               "a tag the writer does not write: <" + tag + " at " + excerpt(start));
    while (true) {
      while (i < html.size() && (html[i] == ' ' || html[i] == '\n')) ++i;
      FUZZ_CHECK(i < html.size(), "a tag left open: " + excerpt(start));
      if (html[i] == '>') {
        ++i;
        break;
      }
      if (html[i] == '/' && i + 1 < html.size() && html[i + 1] == '>') {
        i += 2;
        break;
      }
      start = i;
      while (i < html.size() && NameChar(html[i])) ++i;
      const std::string attribute = html.substr(start, i - start);
      FUZZ_CHECK(Attributes().count(attribute) == 1,
                 "an attribute the writer does not write: " + attribute + " at " + excerpt(start));
      if (attribute == "html") continue;  // <!DOCTYPE html>
      FUZZ_CHECK(i + 1 < html.size() && html[i] == '=' && html[i + 1] == '"',
                 "an attribute value not quoted: " + excerpt(start));
      const size_t end = html.find('"', i + 2);
      FUZZ_CHECK(end != std::string::npos, "an attribute value left open: " + excerpt(start));
      const std::string value = html.substr(i + 2, end - i - 2);
      FUZZ_CHECK(value.find_first_of("<>") == std::string::npos,
                 "markup in an attribute value: " + excerpt(start));
      i = end + 1;
    }
    if (tag == "style" && !closing) {
      // The writer's own CSS, up to its end tag.
      const size_t end = html.find("</style>", i);
      FUZZ_CHECK(end != std::string::npos, "a style left open");
      i = end;
    }
  }
}

}  // namespace
}  // namespace crmbridge::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crmbridge;
  using namespace crmbridge::fuzz;
  const std::string input = Text(data, size);
  report::ReportOptions options;
  options.now_ms = 1767225600000LL;
  std::vector<Snapshot> snapshots;
  std::vector<StageTransition> moves;
  for (const std::string& line : Split(input, '\n')) {
    const size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    const std::string kind = line.substr(0, space);
    const std::vector<std::string> v = Split(line.substr(space + 1), '\t');
    if (kind == "options") {
      const std::vector<std::string> w = Words(line.substr(space + 1));
      if (w.size() >= 3) {
        options.now_ms = Millis(w[0]);
        options.stuck_after_ms = Millis(w[1]);
        options.escalate_after_ms = Millis(w[2]);
      }
      options.include_ended = w.size() >= 4 && w[3] == "ended";
    } else if (kind == "stages") {
      options.stages = v;
    } else if (kind == "end") {
      options.end_stages.insert(v.begin(), v.end());
    } else if (kind == "snapshot" && v.size() >= 6) {
      Snapshot s;
      s.entity = options.entity;
      s.canonical_id = v[0];
      s.fields = {{"title", v[1]}, {options.stage_field, v[2]}};
      s.changed_ms = {{options.stage_field, Millis(v[3])}};
      s.updated_ms = Millis(v[4]);
      s.deleted_ms = Millis(v[5]);
      snapshots.push_back(std::move(s));
    } else if (kind == "move" && v.size() >= 5) {
      moves.push_back(StageTransition{options.entity, v[0], v[1], v[2], v[3], Millis(v[4])});
    }
  }

  const report::OnboardingReport built = report::BuildOnboardingReport(snapshots, moves, options);
  (void)report::RenderText(built);

  const json j = report::RenderJson(built);
  const bool utf8 = IsValidUtf8(input);
  if (utf8) {
    try {
      (void)j.dump();
    } catch (const json::exception& e) {
      FUZZ_CHECK(false,
                 std::string("the JSON report of UTF-8 values cannot be written: ") + e.what());
    }
  }
  // As the command line writes it (src/cli/commands.cc JsonText).
  const std::string printed = j.dump(2, ' ', false, json::error_handler_t::replace);
  FUZZ_CHECK(IsValidUtf8(printed), "a JSON report that is not UTF-8");
  FUZZ_CHECK(json::accept(printed), "a JSON report that does not parse");

  const std::string html = report::RenderHtml(built);
  CheckMarkup(html);
  if (utf8) FUZZ_CHECK(IsValidUtf8(html), "an HTML report of UTF-8 values that is not UTF-8");
  return 0;
}
