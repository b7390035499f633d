// The connector harnesses' common part: what the first line of a script asks for, and the checks
// every connector's answers must pass whatever the vendor sent.
//
// The first line: "read <object> [name=value...] [cursor=<the rest of the line>]" or
// "write <object> [ops=<n>] [merges] [name=value...]". name=value words are the object's params
// (as a mapping gives them), except those a harness reads itself; `merges` makes every fifth op
// a merge of one record into another. A read follows the cursors it is
// given for up to three pages, so the cursors a connector writes are read back by it.
//
// A write's ops carry the harness's fields unless a line "fields <JSON object>" gives others (the
// values a sync hands a connector: any JSON a mapping lets through), and ids of their own unless a
// line "id <text>" gives the text each native id begins with.
#pragma once

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/connector.h"
#include "connectors/registry.h"
#include "fuzz/fuzz_util.h"
#include "src/core/utf8.h"

namespace crmbridge::fuzz {

struct Call {
  bool write = false;
  ObjectRef object;
  std::string cursor;
  int ops = 1;
  bool merges = false;  // every fifth op a merge (WriteOp::Kind::kMerge)
  std::map<std::string, std::string> options;  // the words a harness reads itself
};

// `own`: the names a harness takes for itself rather than as params.
inline bool ParseCall(const std::string& line, const std::vector<std::string>& own, Call* call) {
  // The line stands for a mapping's names and values: the integration engineer's, not a
  // vendor's, and spelled as the APIs spell theirs (printable ASCII; HubSpot property names and
  // Dataverse columns are lower-case letters, digits and underscores).
  for (unsigned char c : line)
    if (c < 0x20 || c >= 0x7f) return false;
  std::string words_part = line;
  if (const size_t at = line.find(" cursor="); at != std::string::npos) {
    call->cursor = line.substr(at + 8);
    words_part = line.substr(0, at);
  }
  const std::vector<std::string> words = Words(words_part);
  if (words.size() < 2 || (words[0] != "read" && words[0] != "write")) return false;
  call->write = words[0] == "write";
  call->object.object = words[1];
  for (size_t i = 2; i < words.size(); ++i) {
    const size_t eq = words[i].find('=');
    const std::string name = words[i].substr(0, eq);
    const std::string value = eq == std::string::npos ? "true" : words[i].substr(eq + 1);
    if (name == "ops") {
      call->ops = static_cast<int>(Number(value));
      if (call->ops < 1 || call->ops > 50) return false;
    } else if (name == "merges") {
      call->merges = true;
    } else if (name == "field") {
      call->object.fields.push_back(value);
    } else if (name == "ref") {
      call->object.fields.push_back(value);
      call->object.ref_fields.insert(value);
    } else if (std::find(own.begin(), own.end(), name) != own.end()) {
      call->options[name] = value;
    } else {
      call->object.params[name] = value;
    }
  }
  return true;
}

// The fields of a write: the script's "fields" line, else `fallback`; null when the line is no
// JSON object (the input is not one a sync could make).
inline std::optional<nlohmann::json> WriteFields(const Script& script, nlohmann::json fallback) {
  for (const std::string& line : script.lines) {
    if (line.rfind("fields ", 0) != 0) continue;
    nlohmann::json fields = nlohmann::json::parse(line.substr(7), nullptr, false);
    if (!fields.is_object()) return std::nullopt;
    return fields;
  }
  return fallback;
}

// The script's "id" line: the text every native id of a write begins with ("" when none, or when
// it is not UTF-8: ids come from the systems' JSON, through the state store).
inline std::string IdText(const Script& script) {
  for (const std::string& line : script.lines)
    if (line.rfind("id ", 0) == 0 && IsValidUtf8(line)) return line.substr(3);
  return "";
}

// Whether a mapping may name `object` for a system of `kind`: one the kind declares, or one its
// pattern allows (as the mapping loader checks it; an object name is the integration engineer's,
// not a vendor's).
inline bool ObjectOfKind(const std::string& kind, const std::string& object) {
  const Capabilities* caps = CapabilitiesOfKind(kind);
  if (caps == nullptr || object.size() > 256) return false;
  if (std::find(caps->objects.begin(), caps->objects.end(), object) != caps->objects.end())
    return true;
  if (caps->other_objects.empty()) return false;
  static std::map<std::string, std::regex> compiled;  // by pattern: compiled once, not per input
  auto it = compiled.find(caps->other_objects);
  if (it == compiled.end())
    it = compiled.emplace(caps->other_objects, std::regex(caps->other_objects)).first;
  return std::regex_match(object, it->second);
}

// `n` writes of `fields`, cycling upsert, update, delete (and, every fourth, a retried upsert),
// with a reference to `ref` when it is not empty; with `merges`, every fifth is a merge of one
// record into another instead. Native ids are `id` and a number.
inline std::vector<WriteOp> Ops(int n, const nlohmann::json& fields, const std::string& ref,
                                const std::string& id = "", bool merges = false) {
  std::vector<WriteOp> ops;
  for (int i = 0; i < n; ++i) {
    WriteOp op;
    if (merges && i % 5 == 4) {
      op.kind = WriteOp::Kind::kMerge;
      op.native_id = id + std::to_string(100 + i);
      op.merge_into = id + std::to_string(100 + i - 1);
      op.attempt = i % 2;
      ops.push_back(std::move(op));
      continue;
    }
    op.kind = i % 3 == 0 ? WriteOp::Kind::kUpsert
              : i % 3 == 1 ? WriteOp::Kind::kUpdate
                           : WriteOp::Kind::kDelete;
    op.key = "crmb-key-" + std::to_string(i % 5);
    if (op.kind != WriteOp::Kind::kUpsert || i % 2 == 1)
      op.native_id = id + std::to_string(100 + i);
    if (op.kind != WriteOp::Kind::kDelete) op.fields = fields;
    if (!ref.empty() && op.kind != WriteOp::Kind::kDelete)
      op.refs[ref] = NativeRef{ref, i % 2 ? std::to_string(200 + i) : "", i % 4 ? "" : "199", ""};
    op.attempt = i % 4 == 3 ? 1 : 0;
    ops.push_back(std::move(op));
  }
  return ops;
}

// A failure a connector reports is a Status with a code and words.
inline void CheckFailure(const Status& status) {
  FUZZ_CHECK(!status.ok(), "a failure that is OK");
  FUZZ_CHECK(!status.message().empty(), "a failure without a message: " + status.ToString());
}

// The outcome of each op, one per op; a write done names the record it wrote.
inline void CheckOutcomes(const Result<std::vector<WriteOutcome>>& outcomes,
                          const std::vector<WriteOp>& ops) {
  if (!outcomes.ok()) return CheckFailure(outcomes.status());
  FUZZ_CHECK(outcomes->size() == ops.size(),
             std::to_string(outcomes->size()) + " outcomes for " + std::to_string(ops.size()) +
                 " ops");
  for (size_t i = 0; i < ops.size(); ++i) {
    const WriteOutcome& o = (*outcomes)[i];
    if (!o.status.ok()) {
      CheckFailure(o.status);
      continue;
    }
    if (ops[i].kind != WriteOp::Kind::kDelete)
      FUZZ_CHECK(!o.native_id.empty(), "op " + std::to_string(i) + " written without an id");
  }
}

// Whether `url` is `origin` or below it ("https://host" then "/", "?" or nothing; the host
// compared without case).
inline bool UnderOrigin(const std::string& url, const std::string& origin) {
  if (url.size() < origin.size()) return false;
  for (size_t i = 0; i < origin.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(url[i])) !=
        std::tolower(static_cast<unsigned char>(origin[i])))
      return false;
  return url.size() == origin.size() || url[origin.size()] == '/' || url[origin.size()] == '?';
}

// What every request a connector sends must be, whatever the vendor answered and whatever values
// it was given: addressed to one of `origins` (a paging link from an answer included: a link to
// another host would take the system's token there), a URL with no space, control character or
// byte beyond ASCII, no native id of `ops` pasted into it (or into a batch's body) unencoded, and a
// body that is JSON when the request says so.
// The lines of a multipart body that are not a part's JSON: boundaries, headers, request lines.
inline std::vector<std::string_view> NonJsonLines(std::string_view body) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find("\r\n", start);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view line = body.substr(start, end - start);
    if (!line.empty() && line[0] != '{' && line[0] != '[') lines.push_back(line);
    start = end + 2;
  }
  return lines;
}

inline void CheckRequests(const std::vector<Request>& requests,
                          const std::vector<std::string>& origins,
                          const std::vector<WriteOp>& ops = {}) {
  for (const Request& r : requests) {
    FUZZ_CHECK(std::any_of(origins.begin(), origins.end(),
                           [&](const std::string& o) { return UnderOrigin(r.url, o); }),
               "a request to another host: " + r.method + " " + PrintableText(r.url));
    for (unsigned char c : r.url)
      FUZZ_CHECK(c > 0x20 && c < 0x7f, "a URL that cannot be sent: " + PrintableText(r.url));
    const auto type = FindHeader(r.headers, "Content-Type");
    // A batch (Dataverse's $batch) carries its requests' lines in its body: an id pasted there
    // could end a request line and start a header or a request of its own.
    const bool batch = type && type->rfind("multipart/", 0) == 0;
    std::optional<std::vector<std::string_view>> batch_lines;  // split once, when first needed
    for (const WriteOp& op : ops) {
      const bool plain = std::all_of(op.native_id.begin(), op.native_id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
               c == '~';
      });
      if (plain || op.native_id.size() <= 3) continue;
      FUZZ_CHECK(r.url.find(op.native_id) == std::string::npos,
                 "an id in a URL unencoded: " + PrintableText(r.url));
      if (!batch) continue;
      // Its request lines and headers; a part's JSON may hold any text, but no line break.
      if (op.native_id.find_first_of("\r\n") != std::string::npos)
        FUZZ_CHECK(r.body.find(op.native_id) == std::string::npos,
                   "an id in a batch body unencoded: " + PrintableText(r.body.substr(0, 300)));
      if (!batch_lines) batch_lines = NonJsonLines(r.body);
      for (const std::string_view line : *batch_lines)
        FUZZ_CHECK(line.find(op.native_id) == std::string_view::npos,
                   "an id in a batch body unencoded: " +
                       PrintableText(std::string(line.substr(0, 300))));
    }
    if (type && type->find("json") != std::string::npos) {
      FUZZ_CHECK(nlohmann::json::accept(r.body),
                 "a body sent as JSON that is none: " + PrintableText(r.body.substr(0, 300)));
    }
  }
}

// Reads a page, then the pages its cursors lead to, up to three in all; `check_next` checks a
// cursor the connector gave before it is read back.
template <typename CheckNext>
void ReadPages(Connector& connector, const Call& call, CheckNext check_next) {
  Cursor cursor = call.cursor;
  ReadContext context;
  context.run_start_ms = 1767225600000LL;
  context.page_size = 3;
  for (int page = 0; page < 3; ++page) {
    auto read = connector.ReadChanges(call.object, cursor, context);
    if (!read.ok()) {
      // A cursor the connector wrote itself, refused by it: the system could read no more.
      FUZZ_CHECK(page == 0 || read.status().code() != StatusCode::kInvalidArgument ||
                     read.status().http_status() != 0 ||
                     read.status().message().find("cursor") == std::string::npos,
                 "its own cursor refused: " + read.status().ToString() + "\n  cursor: " + cursor);
      return CheckFailure(read.status());
    }
    for (const NativeRecord& r : read->records) {
      // An undecodable record is handed on marked invalid, for the engine to count rejected.
      FUZZ_CHECK(!r.id.empty() || !r.invalid.empty(), "a record without an id, not marked invalid");
      (void)r.fields.dump();  // what the engine stores of it
    }
    if (!read->has_more) return;
    FUZZ_CHECK(!read->next.empty(), "more to read, and no cursor to read it from");
    check_next(read->next);
    cursor = read->next;
  }
}

}  // namespace crmbridge::fuzz
