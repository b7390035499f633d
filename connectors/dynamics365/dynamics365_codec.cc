#include "connectors/dynamics365/dynamics365_codec.h"

#include <cctype>

#include "src/core/time_util.h"

namespace crmbridge::dynamics365 {

using nlohmann::json;

std::string PrimaryKeyOf(const std::string& set) {
  if (set == "tasks" || set == "phonecalls" || set == "emails" || set == "activitypointers" ||
      set == "appointments")
    return "activityid";
  // Plural entity set -> logical name + "id" (accounts -> accountid, annotations -> annotationid).
  return LogicalNameOf(set) + "id";
}

std::string LogicalNameOf(const std::string& set) {
  if (set == "opportunities") return "opportunity";
  std::string logical = set;
  if (logical.size() > 3 && logical.compare(logical.size() - 3, 3, "ies") == 0)
    logical = logical.substr(0, logical.size() - 3) + "y";
  else if (!logical.empty() && logical.back() == 's')
    logical.pop_back();
  return logical;
}

int64_t ParseDataverseTime(const std::string& text) { return ParseIsoUtcMillis(text).value_or(0); }

Result<NativeRecord> RecordFromRow(const json& row, const std::string& primary_key,
                                   const std::string& key_column) {
  if (!row.is_object())
    return Status(StatusCode::kInvalidArgument, "a Dataverse row that is not an object");
  NativeRecord r;
  const std::string context = row.value("@odata.context", std::string());
  if (context.size() >= 15 && context.compare(context.size() - 15, 15, "/$deletedEntity") == 0) {
    r.deleted = true;
    r.id = row.value("id", std::string());
    if (r.id.empty()) return Status(StatusCode::kInvalidArgument, "a deleted entry without an id");
    return r;
  }
  auto pk = row.find(primary_key);
  if (pk == row.end() || !pk->is_string() || pk->get<std::string>().empty())
    return Status(StatusCode::kInvalidArgument, "a row without its primary key " + primary_key);
  r.id = pk->get<std::string>();
  for (const auto& [name, value] : row.items()) {
    if (name.find('@') != std::string::npos) continue;  // annotations, e.g. @odata.etag
    // A lookup's value property (_parentaccountid_value) is given under the lookup's name.
    if (name.size() > 7 && name[0] == '_' && name.compare(name.size() - 6, 6, "_value") == 0) {
      r.fields[name.substr(1, name.size() - 7)] = value;
      continue;
    }
    r.fields[name] = value;
  }
  // A row the Merge action absorbed: inactive, `merged`, pointing at the row it was merged into.
  if (auto merged = r.fields.find("merged"); merged != r.fields.end() && *merged == true) {
    auto master = r.fields.find("masterid");
    if (master != r.fields.end() && master->is_string()) r.merged_into = master->get<std::string>();
  }
  if (row.contains("modifiedon") && row["modifiedon"].is_string())
    r.modified_ms = ParseDataverseTime(row["modifiedon"].get<std::string>());
  if (!key_column.empty() && row.contains(key_column) && row[key_column].is_string())
    r.key = row[key_column].get<std::string>();
  return r;
}

std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '\'') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string AlternateKeySegment(const std::string& set, const std::string& column,
                                const std::string& value) {
  std::string quoted;
  for (char c : value) {
    quoted.push_back(c);
    if (c == '\'') quoted.push_back('\'');
  }
  return set + "(" + column + "='" + PercentEncode(quoted) + "')";
}

}  // namespace crmbridge::dynamics365

namespace crmbridge::dynamics365 {

namespace {

// Splits `text` into its lines' header block and the rest at the first blank line.
std::pair<std::string, std::string> SplitAtBlankLine(const std::string& text) {
  size_t at = text.find("\r\n\r\n");
  size_t skip = 4;
  if (at == std::string::npos) {
    at = text.find("\n\n");
    skip = 2;
  }
  if (at == std::string::npos) return {text, ""};
  return {text.substr(0, at), text.substr(at + skip)};
}

Headers ParseHeaderLines(const std::string& block, std::string* first_line) {
  Headers headers;
  size_t start = 0;
  bool first = first_line != nullptr;
  while (start < block.size()) {
    size_t end = block.find('\n', start);
    if (end == std::string::npos) end = block.size();
    std::string line = block.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    start = end + 1;
    if (first) {
      *first_line = line;
      first = false;
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    size_t v = colon + 1;
    while (v < line.size() && line[v] == ' ') ++v;
    headers.emplace_back(line.substr(0, colon), line.substr(v));
  }
  return headers;
}

// The status of "HTTP/1.1 204 No Content": three digits from 100 to 599, else 0. Anything else
// (a status line cut short, "HTTP/1.1 2") would read as a status below 300, a success.
int StatusOf(const std::string& status_line) {
  const size_t sp = status_line.find(' ');
  if (sp == std::string::npos || status_line.compare(0, 5, "HTTP/") != 0) return 0;
  const std::string code = status_line.substr(sp + 1, 3);
  const size_t after = sp + 4;
  if (code.size() != 3 || code.find_first_not_of("0123456789") != std::string::npos ||
      (after < status_line.size() && status_line[after] != ' '))
    return 0;
  const int status = std::stoi(code);  // three digits: cannot throw
  return status >= 100 && status <= 599 ? status : 0;
}

}  // namespace

std::string BatchBody(const std::string& boundary, const std::vector<Request>& requests) {
  std::string body;
  for (const Request& r : requests) {
    body += "--" + boundary + "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n";
    body += r.method + " " + r.url + " HTTP/1.1\r\n";
    for (const auto& [name, value] : r.headers) body += name + ": " + value + "\r\n";
    if (!r.body.empty()) body += "Content-Type: application/json; type=entry\r\n";
    body += "\r\n" + r.body + "\r\n";
  }
  return body + "--" + boundary + "--\r\n";
}

Result<std::vector<Response>> ParseBatchResponse(const std::string& content_type,
                                                 const std::string& body) {
  const size_t b = content_type.find("boundary=");
  if (content_type.rfind("multipart/mixed", 0) != 0 || b == std::string::npos)
    return Status(StatusCode::kInvalidArgument,
                  "not a batch answer (Content-Type \"" + content_type + "\")");
  std::string boundary = content_type.substr(b + 9);
  if (const size_t semi = boundary.find(';'); semi != std::string::npos) boundary.resize(semi);
  if (boundary.size() >= 2 && boundary.front() == '"') boundary = boundary.substr(1, boundary.size() - 2);
  const std::string delimiter = "--" + boundary;
  std::vector<Response> out;
  size_t at = body.find(delimiter);
  while (at != std::string::npos) {
    at += delimiter.size();
    if (body.compare(at, 2, "--") == 0) break;  // the closing delimiter
    const size_t next = body.find(delimiter, at);
    // A part is whole once a delimiter follows it. Without one the answer broke off inside this
    // part, which may be cut anywhere (a status line "HTTP/1.1 2", half a row): it is left out.
    if (next == std::string::npos) break;
    std::string part = body.substr(at, next - at);
    // The part's MIME headers, then the HTTP response: status line, headers, body.
    auto [mime, http] = SplitAtBlankLine(part);
    (void)mime;
    while (!http.empty() && (http[0] == '\r' || http[0] == '\n')) http.erase(0, 1);
    auto [head, payload] = SplitAtBlankLine(http);
    std::string status_line;
    Response r;
    r.headers = ParseHeaderLines(head, &status_line);
    r.status = StatusOf(status_line);
    while (!payload.empty() && (payload.back() == '\n' || payload.back() == '\r')) payload.pop_back();
    r.body = payload;
    if (r.status == 0)
      return Status(StatusCode::kInvalidArgument,
                    "a $batch part without an HTTP status line (HTTP/1.1 100..599)");
    out.push_back(std::move(r));
    at = next;
  }
  return out;
}

}  // namespace crmbridge::dynamics365
