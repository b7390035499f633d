#include "mocks/dynamics365/dynamics365_mock.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <utility>
#include <variant>
#include <vector>

#include "mocks/dynamics365/dynamics365_schema.h"
#include "mocks/dynamics365/dynamics365_webhook_sender.h"
#include "mocks/dynamics365/odata_query.h"
#include "src/core/jwt.h"

namespace crmbridge::mocks {

namespace {

using nlohmann::json;
using ojson = nlohmann::ordered_json;
using d365::Column;
using d365::ColumnType;
using d365::LookupTarget;
using d365::TableSchema;

constexpr char kApiPath[] = "/api/data/v9.2/";
constexpr char kJsonType[] = "application/json; odata.metadata=minimal";

// Dataverse error codes. reference.md §10/§11 and 2nd §6/§10 document the service-protection and
// validation codes; the others are the codes public clients record for these errors and are
// [UNCONFIRMED] in Learn (clients must key on the HTTP status, as Learn says).
constexpr char kCodeNotFound[] = "0x80040217";          // ObjectDoesNotExist
constexpr char kCodeDuplicate[] = "0x80040237";         // DuplicateRecord
constexpr char kCodeDuplicateKey[] = "0x80060892";      // DuplicateRecordEntityKey
constexpr char kCodeVersionMismatch[] = "0x80060882";   // ConcurrencyVersionMismatch
constexpr char kCodeQuery[] = "0x80060888";             // OData URI/query errors
constexpr char kCodePayload[] = "0x80048d19";           // OData payload errors
constexpr char kCodeSegment[] = "0x8006088a";           // unknown resource segment
constexpr char kCodeValidation[] = "0x80044331";        // reference.md §6 (subject length)
constexpr char kCodeRequestLimit[] = "0x80072322";      // reference.md §11
constexpr char kCodeConcurrencyLimit[] = "0x80072326";  // reference.md §11
constexpr char kCodeUserDisabled[] = "0x80040225";       // a disabled user cannot own a row
// The org's users (Impl::SeedUsersLocked): the application user crmbridge calls as owns the rows
// it creates without an owner.
constexpr char kApplicationUserId[] = "5d0b4a6e-0c1f-4e7a-9b1d-000000000001";
// The organisation (WhoAmI's OrganizationId, the one row of organizations).
constexpr char kOrganizationId[] = "5d5c2f1a-0000-4000-8000-00000000c001";
constexpr char kCodeNotImplemented[] = "0x8006088b";
constexpr char kCodeUnexpected[] = "0x80040216";        // UnExpected: a transient platform error

constexpr char kExpiredDeltaMessage[] =
    "Version stamp associated with the client has expired. Please perform a full sync.";

// audit.action (and audit.operation): what an audit row records.
constexpr int kAuditCreate = 1;
constexpr int kAuditUpdate = 2;
constexpr int kAuditDelete = 3;

struct ApiError {
  int status = 400;
  std::string code;
  std::string message;
};
using MaybeError = std::optional<ApiError>;

ApiError Err(int status, std::string code, std::string message) {
  return ApiError{status, std::move(code), std::move(message)};
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// Percent-encodes everything but RFC 3986 unreserved characters and ',' (kept so that $select
// lists stay readable in links, as Dataverse writes them).
std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string PercentDecode(const std::string& s, bool plus_as_space) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// application/x-www-form-urlencoded body -> fields (first value wins).
std::map<std::string, std::string> ParseForm(const std::string& body) {
  std::map<std::string, std::string> fields;
  size_t start = 0;
  while (start <= body.size()) {
    size_t amp = body.find('&', start);
    std::string pair = body.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = PercentDecode(pair.substr(0, eq), true);
      std::string value = eq == std::string::npos ? "" : PercentDecode(pair.substr(eq + 1), true);
      fields.emplace(key, value);
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  return fields;
}

// Standard base64 (HTTP Basic credentials). nullopt on a character outside the alphabet.
std::optional<std::string> Base64Decode(const std::string& in) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') break;
    else return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

std::string HexEncode(const std::string& in) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : in) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::optional<std::string> HexDecode(const std::string& in) {
  if (in.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < in.size(); i += 2) {
    if (!std::isxdigit(static_cast<unsigned char>(in[i])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 1]))) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>(std::stoi(in.substr(i, 2), nullptr, 16)));
  }
  return out;
}

size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Splits on `sep` outside single or double quotes (Prefer values carry quoted comma lists;
// key segments carry quoted strings).
std::vector<std::string> SplitOutsideQuotes(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string current;
  char quote = 0;
  for (char c : s) {
    if (quote != 0) {
      if (c == quote) quote = 0;
      current.push_back(c);
    } else if (c == '\'' || c == '"') {
      quote = c;
      current.push_back(c);
    } else if (c == sep) {
      parts.push_back(current);
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  parts.push_back(current);
  return parts;
}

// The Prefer header (reference.md §2): several values, comma-separated, possibly in several
// headers; dynamics-web-api sends "odata.maxpagesize=1,odata.track-changes" without spaces.
struct Preferences {
  bool return_representation = false;
  bool track_changes = false;
  int max_page_size = 0;  // 0 = not asked
  std::string annotations_raw;
  std::vector<std::string> annotations;
};

Preferences ParsePrefer(const httplib::Request& req) {
  Preferences p;
  size_t count = req.get_header_value_count("Prefer");
  for (size_t i = 0; i < count; ++i) {
    for (const std::string& raw : SplitOutsideQuotes(req.get_header_value("Prefer", i), ',')) {
      std::string item = Trim(raw);
      size_t eq = item.find('=');
      std::string name = Trim(item.substr(0, eq));
      std::string value = eq == std::string::npos ? "" : Trim(item.substr(eq + 1));
      if (name == "return" && value == "representation") {
        p.return_representation = true;
      } else if (name == "odata.track-changes") {
        p.track_changes = true;
      } else if (name == "odata.maxpagesize") {
        try {
          p.max_page_size = std::max(0, std::stoi(value));
        } catch (const std::exception&) {
          p.max_page_size = 0;  // an unusable preference is ignored, as preferences may be
        }
      } else if (name == "odata.include-annotations") {
        p.annotations_raw = value;
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
          value = value.substr(1, value.size() - 2);
        }
        for (const std::string& a : SplitOutsideQuotes(value, ',')) {
          if (!Trim(a).empty()) p.annotations.push_back(Trim(a));
        }
      }
    }
  }
  return p;
}

bool AnnotationWanted(const Preferences& p, const std::string& term) {
  for (const std::string& a : p.annotations) {
    if (a == "*" || a == term) return true;
    if (a.size() > 1 && a.back() == '*' && StartsWith(term, a.substr(0, a.size() - 1))) return true;
  }
  return false;
}

// "accounts(crmb_externalid='X')/parentcustomerid_account/$ref" split into its parts.
struct PathSpec {
  std::string set;
  bool has_key = false;
  std::string key_text;  // between the parentheses
  std::string tail;      // what follows the set or the key, "" or "/..."
};

std::optional<PathSpec> ParsePath(const std::string& rest) {
  PathSpec p;
  size_t i = 0;
  while (i < rest.size() && rest[i] != '(' && rest[i] != '/') ++i;
  p.set = rest.substr(0, i);
  if (i < rest.size() && rest[i] == '(') {
    // The closing parenthesis is the first one outside a quoted key value.
    bool quoted = false;
    size_t j = i + 1;
    for (; j < rest.size(); ++j) {
      if (rest[j] == '\'') quoted = !quoted;
      else if (rest[j] == ')' && !quoted) break;
    }
    if (j >= rest.size()) return std::nullopt;
    p.has_key = true;
    p.key_text = rest.substr(i + 1, j - i - 1);
    i = j + 1;
  }
  p.tail = rest.substr(i);
  return p;
}

// A key segment: the primary key, or the values of one declared alternate key
// (reference.md §5, "Alternate keys" in 2nd §6).
struct KeySpec {
  bool by_pk = false;
  std::string id;                                    // by_pk
  std::vector<std::pair<std::string, json>> values;  // alternate key: column -> value
  std::string text;                                  // the segment as written
};

ApiError InvalidKey(const TableSchema& schema) {
  return Err(400, kCodeQuery,
             "The key in the request URI is not valid for resource '" + schema.qualified_type() +
                 "'. Ensure that the names and number of key properties match the declared or "
                 "alternate key properties for the resource '" + schema.qualified_type() + "'.");
}

std::variant<KeySpec, ApiError> ParseKey(const std::string& text, const TableSchema& schema) {
  KeySpec key;
  key.text = text;
  std::string trimmed = Trim(text);
  if (d365::IsGuid(trimmed)) {
    key.by_pk = true;
    key.id = d365::ToLowerAscii(trimmed);
    return key;
  }
  std::vector<std::string> names;
  for (const std::string& part : SplitOutsideQuotes(trimmed, ',')) {
    size_t eq = part.find('=');
    if (eq == std::string::npos) return InvalidKey(schema);
    std::string name = Trim(part.substr(0, eq));
    std::string raw = Trim(part.substr(eq + 1));
    json value;
    if (raw.size() >= 2 && raw.front() == '\'' && raw.back() == '\'') {
      std::string s;
      for (size_t i = 1; i + 1 < raw.size(); ++i) {
        s.push_back(raw[i]);
        if (raw[i] == '\'' && i + 2 < raw.size() && raw[i + 1] == '\'') ++i;
      }
      value = s;
    } else if (d365::IsGuid(raw)) {
      value = d365::ToLowerAscii(raw);
    } else if (raw == "true" || raw == "false") {
      value = raw == "true";
    } else {
      try {
        size_t used = 0;
        long long n = std::stoll(raw, &used);
        if (used != raw.size()) return InvalidKey(schema);
        value = n;
      } catch (const std::exception&) {
        return InvalidKey(schema);
      }
    }
    names.push_back(name);
    key.values.emplace_back(name, value);
  }
  if (key.values.size() == 1 && names[0] == schema.primary_key) {
    const json& v = key.values[0].second;
    if (!v.is_string() || !d365::IsGuid(v.get<std::string>())) return InvalidKey(schema);
    key.by_pk = true;
    key.id = v.get<std::string>();
    key.values.clear();
    return key;
  }
  if (!schema.IsAlternateKey(names)) return InvalidKey(schema);
  for (const auto& [name, value] : key.values) {
    const Column* column = schema.FindByName(name);
    bool fits = column != nullptr &&
                ((column->type == ColumnType::kString && value.is_string()) ||
                 ((column->type == ColumnType::kInt || column->type == ColumnType::kDecimal) &&
                  value.is_number()) ||
                 (column->type == ColumnType::kBool && value.is_boolean()) ||
                 ((column->type == ColumnType::kGuid || column->type == ColumnType::kLookup) &&
                  value.is_string() && d365::IsGuid(value.get<std::string>())));
    if (!fits) return InvalidKey(schema);
  }
  return key;
}

std::string PrimaryNameColumn(const TableSchema& schema) {
  if (schema.FindByName("name")) return "name";
  if (schema.FindByName("fullname")) return "fullname";
  return "subject";
}

std::string EtagOf(int64_t version) { return "W/\"" + std::to_string(version) + "\""; }

std::string FormatDeltaTime(int64_t epoch_seconds) {
  // "08/22/2017 08:10:44", the timestamp half of a Dataverse delta token (reference.md §4).
  std::time_t t = static_cast<std::time_t>(epoch_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%m/%d/%Y %H:%M:%S", &tm);
  return buf;
}

std::optional<int64_t> ParseDeltaTime(const std::string& text) {
  static const std::regex kRe(R"((\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2}):(\d{2}))");
  std::smatch m;
  if (!std::regex_match(text, m, kRe)) return std::nullopt;
  return d365::ParseIsoDateTime(m[3].str() + "-" + m[1].str() + "-" + m[2].str() + "T" +
                                m[4].str() + ":" + m[5].str() + ":" + m[6].str() + "Z");
}

// Paging cookies: opaque to clients, shaped like Dataverse's (reference.md §3). The state the
// mock needs to resume (the last row's sort key) travels hex-encoded in `pagingcookie`.
std::string MakeSkipToken(const json& state, int page, bool tracking) {
  return "<cookie pagenumber=\"" + std::to_string(page) + "\" pagingcookie=\"" +
         HexEncode(state.dump()) + "\" istracking=\"" + (tracking ? "True" : "False") + "\" />";
}

std::optional<json> ParseSkipToken(const std::string& token) {
  static const std::regex kRe("pagingcookie=\"([0-9a-f]*)\"");
  std::smatch m;
  if (!std::regex_search(token, m, kRe)) return std::nullopt;
  auto raw = HexDecode(m[1].str());
  if (!raw) return std::nullopt;
  json state = json::parse(*raw, nullptr, false);
  if (state.is_discarded() || !state.is_object()) return std::nullopt;
  return state;
}


// A GUID that stays the same for the same name (a table's or a column's MetadataId).
std::string NameGuid(const std::string& name) {
  uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;  // FNV-1a, two offsets
  for (unsigned char c : name) {
    a = (a ^ c) * 0x100000001b3ULL;
    b = (b ^ c) * 0x100000001b3ULL;
  }
  return d365::FormatGuid(a, b);
}

// The properties of a metadata type (EntityMetadata, AttributeMetadata) the mock serves, as a
// schema, so that $select is checked as on a table.
TableSchema MetadataType(const std::string& name, const std::vector<std::string>& properties) {
  TableSchema t;
  t.logical_name = name;
  t.primary_key = "MetadataId";
  for (const std::string& property : properties) {
    Column c;
    c.name = property;
    t.columns.push_back(c);
  }
  return t;
}

// The name a metadata key segment gives: x of LogicalName='x', else the segment (a MetadataId).
std::string MetadataKeyName(const std::string& key) {
  const std::string k = Trim(key);
  const std::string prefix = "LogicalName='";
  if (StartsWith(k, prefix) && k.size() > prefix.size() && k.back() == '\'') {
    return k.substr(prefix.size(), k.size() - prefix.size() - 1);
  }
  return k;
}

std::string Serialize(const ojson& body) {
  return body.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace

// ------------------------------------------------------------------------------------------------

class Dynamics365Mock::Impl {
 public:
  Impl(Dynamics365Mock* owner, Options options)
      : owner_(owner),
        options_(std::move(options)),
        registered_(CertificateThumbprintsOf(options_.certificate_pem)),
        clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
        rng_(options_.id_seed),
        audit_rng_(options_.id_seed ^ 0xa0d17ULL) {
    for (const TableSchema& schema : d365::DefaultTables()) tables_[schema.set].schema = &schema;
    SeedUsersLocked();
  }

  void Register(httplib::Server& server) {
    server.Post(R"(/([^/]+)/oauth2/v2\.0/token)",
                [this](const httplib::Request& req, httplib::Response& res) {
                  HandleToken(req, res);
                });
    const std::string api = R"(/api/data/v9\.2/(.*))";
    server.Get(api, [this](const httplib::Request& req, httplib::Response& res) {
      HandleApi("GET", req, res);
    });
    server.Post(api, [this](const httplib::Request& req, httplib::Response& res) {
      HandleApi("POST", req, res);
    });
    server.Patch(api, [this](const httplib::Request& req, httplib::Response& res) {
      HandleApi("PATCH", req, res);
    });
    server.Delete(api, [this](const httplib::Request& req, httplib::Response& res) {
      HandleApi("DELETE", req, res);
    });
    server.Put(api, [this](const httplib::Request& req, httplib::Response& res) {
      HandleApi("PUT", req, res);
    });
    // The webhook service endpoint and its Create/Update/Delete steps, as registered with the
    // Plug-in Registration Tool: {"url", "key", "faults": [...], "retry_ms"}; GET: the counts.
    ServeWebhookAdmin(server, &webhooks_.sender());
    // An administrator turning auditing off or on (the Auditing section of the system settings,
    // a table's or a column's "Audit changes"): {"enabled": false} for the organisation, with
    // "table" (a logical name) for one table, with "table" and "column" for one column. GET: the
    // switches. New audit rows follow the switches; the ones written stay readable.
    server.Post("/__admin/auditing", [this](const httplib::Request& req, httplib::Response& res) {
      const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      std::string error = SetAuditing(body);
      res.status = error.empty() ? 204 : 400;
      if (!error.empty()) res.set_content(json{{"error", error}}.dump(), "application/json");
    });
    server.Get("/__admin/auditing", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      json off = json::array();
      for (const std::string& name : audit_off_) off.push_back(name);
      res.set_content(json{{"enabled", audit_enabled_}, {"off", off}}.dump(), "application/json");
    });
  }

  json Dump() const {
    std::lock_guard<std::mutex> lock(mu_);
    json out = json::object();
    for (const auto& [set, table] : tables_) {
      json rows = json::array();
      for (const auto& [id, row] : table.rows) {
        rows.push_back(json::parse(Serialize(RenderRow(table, row, nullptr, nullptr))));
      }
      out[set] = std::move(rows);
    }
    return out;
  }

  // The audit history goes with the rows; the auditing switches (configuration, like a webhook's
  // registration) stay as they are.
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [set, table] : tables_) {
      table.rows.clear();
      table.key_index.clear();
      table.deletions.clear();
    }
    audit_seq_ = 0;
    SeedUsersLocked();
  }

  void Seed(uint64_t seed, int accounts);
  void AddCustomers(const std::vector<SeedCustomer>& customers);

 private:
  struct Row {
    json values = json::object();             // property -> stored value
    std::map<std::string, std::string> navs;  // lookup property -> navigation property bound
    // Audit rows only: the audited columns the write changed, {"old": {...}, "new": {...}}.
    json detail;
  };
  struct Deletion {
    int64_t version = 0;
    std::string id;
  };
  struct Table {
    const TableSchema* schema = nullptr;
    std::map<std::string, Row> rows;               // id -> row
    std::map<std::string, std::string> key_index;  // alternate-key value -> id
    std::vector<Deletion> deletions;               // the change log of deletes, by version
  };

  // The org's users, in every org whether seeded or not: the application user, three people, and
  // one who left (disabled). karl.berg@ has no user here.
  void SeedUsersLocked() {
    Table& users = tables_.at("systemusers");
    users.rows.clear();
    const struct {
      const char *id, *name, *email;
      bool disabled;
    } kUsers[] = {
        {kApplicationUserId, "# crmbridge", "crmbridge@bolaget.example", false},
        {"5d0b4a6e-0c1f-4e7a-9b1d-000000000101", "Anna Lund", "anna.lund@bolaget.example", false},
        {"5d0b4a6e-0c1f-4e7a-9b1d-000000000102", "Erik Sand", "erik.sand@bolaget.example", false},
        {"5d0b4a6e-0c1f-4e7a-9b1d-000000000103", "Maja Ek", "maja.ek@bolaget.example", true},
    };
    for (const auto& u : kUsers) {
      Row row;
      row.values = {{"systemuserid", u.id}, {"fullname", u.name}, {"internalemailaddress", u.email},
                    {"isdisabled", u.disabled}, {"createdon", "2024-01-15T09:00:00Z"},
                    {"modifiedon", "2024-01-15T09:00:00Z"}, {"versionnumber", 1}};
      users.rows[u.id] = std::move(row);
    }
  }

  // --- infrastructure ---------------------------------------------------------------------------

  int64_t NowSeconds() const { return clock_->NowMillis() / 1000; }

  std::string NewGuidLocked() {
    uint64_t a = rng_(), b = rng_();
    return d365::FormatGuid(a, b);
  }

  std::string NewGuid() {
    std::lock_guard<std::mutex> lock(mu_);
    return NewGuidLocked();
  }

  std::string HostBase(const httplib::Request& req) const {
    // Links are built from the Host the client used, so they stay under the base URL it was
    // configured with (dynamics-web-api strips that prefix from nextLinks, reference.md §13).
    std::string host = req.get_header_value("Host");
    return host.empty() ? owner_->base_url() : "http://" + host;
  }

  static void SendJson(httplib::Response& res, int status, const ojson& body) {
    res.status = status;
    res.set_content(Serialize(body), kJsonType);
  }

  static void SendError(httplib::Response& res, const ApiError& e) {
    ojson body;
    body["error"]["code"] = e.code;
    body["error"]["message"] = e.message;
    SendJson(res, e.status, body);
  }

  // --- token endpoint (reference.md §1) ---------------------------------------------------------

  // Microsoft Entra ID's certificate credentials: the assertion names a certificate registered
  // on the client, verifies with its key, is addressed to this token endpoint, is issued by the
  // client about itself, and is valid now. False after answering the error.
  bool CheckClientAssertion(const httplib::Request& req, std::map<std::string, std::string>& form,
                            httplib::Response& res) {
    if (form["client_assertion_type"] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
      SendAadError(res, 400, "invalid_request", 50027,
                   "Invalid JWT token. client_assertion_type must be "
                   "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.");
      return false;
    }
    const std::string jwt = form["client_assertion"];
    // The header first, to name the certificate it claims.
    const size_t dot = jwt.find('.');
    auto header_text = Base64UrlDecode(jwt.substr(0, dot == std::string::npos ? 0 : dot));
    const json header = header_text ? json::parse(*header_text, nullptr, false) : json();
    if (!header.is_object()) {
      SendAadError(res, 400, "invalid_request", 50027,
                   "Invalid JWT token. The token is not in a valid format.");
      return false;
    }
    const std::string x5t_s256 = header.value("x5t#S256", "");
    const std::string x5t = header.value("x5t", "");
    if (!registered_ || (x5t_s256 != registered_->sha256 && x5t != registered_->sha1)) {
      SendAadError(res, 401, "invalid_client", 700027,
                   "The certificate with identifier used to sign the client assertion is not "
                   "registered on application. [Reason - The key was not found., Thumbprint of "
                   "key used by client: '" + (x5t_s256.empty() ? x5t : x5t_s256) + "']");
      return false;
    }
    auto verified = VerifyJwtSignature(jwt, options_.certificate_pem);
    if (!verified.ok()) {
      SendAadError(res, 401, "invalid_client", 700027,
                   "Client assertion failed signature validation. " + verified.status().message());
      return false;
    }
    const json& claims = (*verified)["claims"];
    const std::string audience = "http://" + req.get_header_value("Host") + req.path;
    if (claims.value("aud", "") != audience) {
      SendAadError(res, 401, "invalid_client", 700021,
                   "Client assertion audience claim does not match Realm issuer '" + audience + "'.");
      return false;
    }
    if (claims.value("iss", "") != form["client_id"] || claims.value("sub", "") != form["client_id"]) {
      SendAadError(res, 401, "invalid_client", 700021,
                   "Client assertion application identifier doesn't match 'client_id' parameter.");
      return false;
    }
    const int64_t now = clock_->NowMillis() / 1000;
    const int64_t skew = 300;  // Entra allows about five minutes of clock skew
    if (!claims.contains("exp") || !claims["exp"].is_number_integer() ||
        claims["exp"].get<int64_t>() + skew <= now ||
        (claims.contains("nbf") && claims["nbf"].is_number_integer() &&
         claims["nbf"].get<int64_t>() - skew > now)) {
      SendAadError(res, 401, "invalid_client", 700024,
                   "Client assertion is not within its valid time range.");
      return false;
    }
    if (claims.value("jti", "").empty()) {
      SendAadError(res, 400, "invalid_request", 50027,
                   "Invalid JWT token. The token has no 'jti' claim.");
      return false;
    }
    return true;
  }

  void SendAadError(httplib::Response& res, int status, const std::string& error, int code,
                    const std::string& description) {
    const std::string trace = NewGuid(), correlation = NewGuid();
    std::string iso = d365::FormatIsoDateTime(NowSeconds());
    std::string timestamp = iso.substr(0, 10) + " " + iso.substr(11);
    ojson body;
    body["error"] = error;
    body["error_description"] = "AADSTS" + std::to_string(code) + ": " + description +
                                " Trace ID: " + trace + " Correlation ID: " + correlation +
                                " Timestamp: " + timestamp;
    body["error_codes"] = {code};
    body["timestamp"] = timestamp;
    body["trace_id"] = trace;
    body["correlation_id"] = correlation;
    body["error_uri"] = "https://login.microsoftonline.com/error?code=" + std::to_string(code);
    res.status = status;
    res.set_header("Cache-Control", "no-store, no-cache");
    res.set_content(Serialize(body), "application/json; charset=utf-8");
  }

  void HandleToken(const httplib::Request& req, httplib::Response& res) {
    owner_->CountRequest("POST /{tenant}/oauth2/v2.0/token");
    const std::string tenant = req.matches[1];
    if (tenant != options_.tenant) {
      SendAadError(res, 400, "invalid_request", 90002,
                   "Tenant '" + tenant +
                       "' not found. Check to make sure you have the correct tenant ID and are "
                       "signing into the correct cloud.");
      return;
    }
    std::map<std::string, std::string> form = ParseForm(req.body);
    // RFC 6749 §2.3.1: the secret may come as HTTP Basic instead of in the body.
    std::string auth = req.get_header_value("Authorization");
    if (StartsWith(auth, "Basic ")) {
      if (auto decoded = Base64Decode(Trim(auth.substr(6)))) {
        size_t colon = decoded->find(':');
        if (colon != std::string::npos) {
          form.emplace("client_id", PercentDecode(decoded->substr(0, colon), true));
          form.emplace("client_secret", PercentDecode(decoded->substr(colon + 1), true));
        }
      }
    }
    auto missing = [&](const std::string& name) {
      SendAadError(res, 400, "invalid_request", 900144,
                   "The request body must contain the following parameter: '" + name + "'.");
    };
    if (form.count("grant_type") == 0) return missing("grant_type");
    if (form["grant_type"] != "client_credentials") {
      SendAadError(res, 400, "unsupported_grant_type", 70003,
                   "The app requested an unsupported grant type '" + form["grant_type"] + "'.");
      return;
    }
    if (form.count("client_id") == 0) return missing("client_id");
    if (form["client_id"] != options_.client_id) {
      SendAadError(res, 400, "unauthorized_client", 700016,
                   "Application with identifier '" + form["client_id"] +
                       "' was not found in the directory '" + tenant +
                       "'. This can happen if the application has not been installed by the "
                       "administrator of the tenant or consented to by any user in the tenant. "
                       "You may have sent your authentication request to the wrong tenant.");
      return;
    }
    // invalid_client answers 401 (RFC 6749 §5.2 allows it, and Entra does so for a bad secret);
    // the refs leave the status [UNCONFIRMED].
    if (form.count("client_assertion") != 0 || form.count("client_assertion_type") != 0) {
      if (!CheckClientAssertion(req, form, res)) return;
    } else if (form.count("client_secret") == 0) {
      SendAadError(res, 401, "invalid_client", 7000218,
                   "The request body must contain the following parameter: 'client_assertion' "
                   "or 'client_secret'.");
      return;
    } else if (form["client_secret"] != options_.client_secret) {
      SendAadError(res, 401, "invalid_client", 7000215,
                   "Invalid client secret provided. Ensure the secret being sent in the request "
                   "is the client secret value, not the client secret ID, for a secret added to "
                   "app '" + options_.client_id + "'.");
      return;
    }
    if (form.count("scope") == 0) return missing("scope");
    const std::string scope = form["scope"];
    const std::string suffix = "/.default";
    if (scope.size() <= suffix.size() || scope.find(' ') != std::string::npos ||
        scope.compare(scope.size() - suffix.size(), suffix.size(), suffix) != 0) {
      SendAadError(res, 400, "invalid_scope", 70011,
                   "The provided value for the input parameter 'scope' is not valid. The scope " +
                       scope + " is not valid.");
      return;
    }

    const int64_t now_ms = clock_->NowMillis();
    const int64_t lifetime = options_.token_lifetime_seconds;
    json header = {{"typ", "JWT"}, {"alg", "RS256"}};
    json claims = {{"aud", scope.substr(0, scope.size() - suffix.size())},
                   {"iss", "https://sts.windows.net/" + tenant + "/"},
                   {"iat", now_ms / 1000},
                   {"nbf", now_ms / 1000},
                   {"exp", now_ms / 1000 + lifetime},
                   {"appid", options_.client_id},
                   {"tid", tenant},
                   {"jti", NewGuid()}};
    std::string token = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump()) +
                        "." + Base64UrlEncode(NewGuid() + NewGuid());
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = tokens_.begin(); it != tokens_.end();) {
        it = it->second <= now_ms ? tokens_.erase(it) : std::next(it);
      }
      tokens_[token] = now_ms + lifetime * 1000;
    }
    ojson body;
    body["token_type"] = "Bearer";
    body["expires_in"] = lifetime;
    body["ext_expires_in"] = lifetime;
    body["access_token"] = token;
    res.status = 200;
    res.set_header("Cache-Control", "no-store, no-cache");
    res.set_header("Pragma", "no-cache");
    res.set_content(Serialize(body), "application/json; charset=utf-8");
  }

  // --- Web API entry ----------------------------------------------------------------------------

  static std::string RoutePattern(const std::string& method, const std::optional<PathSpec>& path) {
    std::string route = method + " /api/data/v9.2/";
    if (!path) return route + "?";
    route += path->set;
    if (path->has_key) route += "({key})";
    // A key further down the path (Attributes(LogicalName='x')) counts as {key} too.
    const std::string& tail = path->tail;
    for (size_t i = 0; i < tail.size(); ++i) {
      route.push_back(tail[i]);
      const size_t close = tail[i] == '(' ? tail.find(')', i) : std::string::npos;
      if (close == std::string::npos || close == i + 1) continue;
      route += "{key})";
      i = close;
    }
    return route;
  }

  bool Authenticate(const httplib::Request& req, httplib::Response& res) {
    std::string auth = req.get_header_value("Authorization");
    bool ok = false;
    if (auth.size() > 7 && d365::ToLowerAscii(auth.substr(0, 7)) == "bearer ") {
      std::string token = Trim(auth.substr(7));
      std::lock_guard<std::mutex> lock(mu_);
      auto it = tokens_.find(token);
      ok = it != tokens_.end() && clock_->NowMillis() < it->second;
    }
    if (!ok) {
      // 2nd §1: 401 with a Bearer challenge naming the authority and the resource, empty body.
      // The authority points at this mock's own token endpoint so discovery stays local.
      const std::string base = HostBase(req);
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer authorization_uri=" + base + "/" +
                                             options_.tenant +
                                             "/oauth2/authorize, resource_id=" + base + "/");
    }
    return ok;
  }

  // Service protection (reference.md §11): the concurrency limit errors at once; the request
  // count is a sliding window over the Clock. Rejected requests do not count.
  bool Admit(httplib::Response& res, int in_flight) {
    if (!options_.service_protection) return true;
    if (in_flight > options_.concurrent_requests) {
      res.set_header("Retry-After", "1");
      SendError(res, Err(429, kCodeConcurrencyLimit,
                         "Number of concurrent requests exceeded the limit of " +
                             std::to_string(options_.concurrent_requests) + "."));
      return false;
    }
    std::lock_guard<std::mutex> lock(throttle_mu_);
    const int64_t now = clock_->NowMillis();
    const int64_t window_ms = static_cast<int64_t>(options_.window_seconds) * 1000;
    while (!window_.empty() && window_.front() <= now - window_ms) window_.pop_front();
    if (static_cast<int>(window_.size()) >= options_.requests_per_window) {
      int64_t wait_ms = window_.front() + window_ms - now;
      int64_t seconds = std::max<int64_t>(1, (wait_ms + 999) / 1000);
      res.set_header("Retry-After", std::to_string(seconds));
      res.set_header("x-ms-ratelimit-burst-remaining-xrm-requests", "0");
      SendError(res, Err(429, kCodeRequestLimit,
                         "Number of requests exceeded the limit of " +
                             std::to_string(options_.requests_per_window) +
                             " over time window of " + std::to_string(options_.window_seconds) +
                             " seconds."));
      return false;
    }
    window_.push_back(now);
    res.set_header("x-ms-ratelimit-burst-remaining-xrm-requests",
                   std::to_string(options_.requests_per_window - static_cast<int>(window_.size())));
    // Execution time is not modelled; the header reports the full 20-minute budget.
    res.set_header("x-ms-ratelimit-time-remaining-xrm-requests", "1,200,000.00");
    return true;
  }

  void HandleApi(const std::string& method, const httplib::Request& req, httplib::Response& res) {
    struct InFlight {
      explicit InFlight(std::atomic<int>* n) : n_(n), value_(++*n) {}
      ~InFlight() { --*n_; }
      std::atomic<int>* n_;
      int value_;
    } in_flight(&in_flight_);

    res.set_header("OData-Version", "4.0");
    res.set_header("REQ_ID", NewGuid());
    std::optional<PathSpec> path = ParsePath(req.matches[1]);
    owner_->CountRequest(RoutePattern(method, path));
    if (!Authenticate(req, res)) return;
    if (!Admit(res, in_flight.value_)) return;

    const std::string api = HostBase(req) + kApiPath;
    if (!path) {
      SendError(res, Err(400, kCodeQuery, "Bad Request - Error in query syntax."));
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    steps_.clear();
    MaybeError error = Dispatch(method, *path, req, res, api);
    if (error) SendError(res, *error);
    // The writes that stood run their asynchronous steps, after the operation.
    const int64_t now = clock_->NowMillis();
    for (const Step& step : steps_)
      webhooks_.Enqueue(step.message, step.logical_name, step.id, step.attributes, now);
    steps_.clear();
  }

  MaybeError Dispatch(const std::string& method, const PathSpec& path, const httplib::Request& req,
                      httplib::Response& res, const std::string& api) {
    if (path.set.empty() && !path.has_key && path.tail.empty()) {
      if (method != "GET") return MethodNotAllowed(method);
      ojson doc;
      doc["@odata.context"] = api + "$metadata";
      doc["value"] = ojson::array();
      for (const TableSchema& s : d365::DefaultTables()) {
        doc["value"].push_back({{"name", s.set}, {"kind", "EntitySet"}, {"url", s.set}});
      }
      const std::string organizations = d365::OrganizationTable().set;
      doc["value"].push_back(
          {{"name", organizations}, {"kind", "EntitySet"}, {"url", organizations}});
      SendJson(res, 200, doc);
      return std::nullopt;
    }
    if (path.set == "WhoAmI" && !path.has_key && path.tail.empty()) {
      if (method != "GET") return MethodNotAllowed(method);
      ojson who;
      who["@odata.context"] = api + "$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse";
      who["BusinessUnitId"] = "5d5c2f1a-0000-4000-8000-00000000b001";
      who["UserId"] = "5d5c2f1a-0000-4000-8000-00000000a001";
      who["OrganizationId"] = kOrganizationId;
      SendJson(res, 200, who);
      return std::nullopt;
    }
    if (path.set == "$metadata" && !path.has_key && path.tail.empty()) {
      if (method != "GET") return MethodNotAllowed(method);
      res.status = 200;
      res.set_content(Metadata(), "application/xml");
      return std::nullopt;
    }
    if (path.set == "$batch") {
      if (method != "POST") return MethodNotAllowed(method);
      return Batch(req, res, api);
    }
    if (path.set == "Merge" && !path.has_key && path.tail.empty()) {
      if (method != "POST") return MethodNotAllowed(method);
      return MergeAction(req, res);
    }
    // The audit history is read-only, and the auditing switches are metadata.
    if (path.set == "audits") return Audits(method, path, req, res, api);
    if (path.set == d365::OrganizationTable().set)
      return Organizations(method, path, req, res, api);
    if (path.set == "EntityDefinitions") return EntityDefinitions(method, path, req, res, api);
    auto it = tables_.find(path.set);
    if (it == tables_.end()) {
      return Err(404, kCodeSegment, "Resource not found for the segment '" + path.set + "'.");
    }
    Table& table = it->second;
    if (!path.has_key) {
      if (path.tail.empty()) {
        if (method == "GET") return GetCollection(table, req, res, api);
        if (method == "POST") return Create(table, req, res, api);
        return MethodNotAllowed(method);
      }
      if (path.tail == "/$count" && method == "GET") return Count(table, res);
      if (method == "POST" && (path.tail == "/Microsoft.Dynamics.CRM.CreateMultiple" ||
                               path.tail == "/Microsoft.Dynamics.CRM.UpdateMultiple" ||
                               path.tail == "/Microsoft.Dynamics.CRM.UpsertMultiple")) {
        return BulkAction(table, path.tail.substr(24), req, res, api);
      }
      if (StartsWith(path.tail, "/Microsoft.Dynamics.CRM.")) {
        return Err(501, kCodeNotImplemented,
                   path.tail.substr(1) + " is not implemented by the crmbridge mock yet.");
      }
      return Err(404, kCodeSegment,
                 "Resource not found for the segment '" + path.tail.substr(1) + "'.");
    }
    auto parsed = ParseKey(path.key_text, *table.schema);
    if (std::holds_alternative<ApiError>(parsed)) return std::get<ApiError>(parsed);
    const KeySpec& key = std::get<KeySpec>(parsed);
    if (path.tail.empty()) {
      if (method == "GET") return GetOne(table, key, req, res, api);
      if (method == "PATCH") return Upsert(table, key, req, res, api);
      if (method == "DELETE") return Delete(table, key, req, res);
      return MethodNotAllowed(method);
    }
    if (method == "DELETE") return ClearProperty(table, key, path.tail, res);
    return Err(501, kCodeNotImplemented,
               "Property-level requests other than DELETE are not implemented by the crmbridge "
               "mock.");
  }

  // CSDL generated from the table schemas, in Dataverse's shape (reference.md §14): namespace
  // Microsoft.Dynamics.CRM (alias mscrm), every table derived from crmbaseentity, lookups as
  // _x_value plus one navigation property per target tied by a ReferentialConstraint; the
  // organization set; the bound function RetrieveAuditDetails and the types of its answer.
  static std::string Metadata() {
    std::vector<const TableSchema*> types;
    for (const TableSchema& t : d365::DefaultTables()) types.push_back(&t);
    types.push_back(&d365::OrganizationTable());
    std::string xml =
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
        "<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">"
        "<edmx:DataServices><Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\" "
        "xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">"
        "<EntityType Name=\"crmbaseentity\" Abstract=\"true\"/>";
    for (const TableSchema* t : types) {
      xml += "<EntityType Name=\"" + t->logical_name +
             "\" BaseType=\"mscrm.crmbaseentity\"><Key><PropertyRef Name=\"" + t->primary_key +
             "\"/></Key>";
      for (const Column& c : t->columns) {
        const char* type = c.name == "versionnumber" ? "Edm.Int64" : d365::EdmTypeName(c.type);
        xml += "<Property Name=\"" + c.property() + "\" Type=\"" + type + "\"";
        if (c.max_length > 0) xml += " MaxLength=\"" + std::to_string(c.max_length) + "\"";
        xml += "/>";
      }
      for (const Column& c : t->columns) {
        for (const LookupTarget& target : c.targets) {
          const TableSchema* other = nullptr;
          for (const TableSchema& o : d365::DefaultTables()) {
            if (o.set == target.set) other = &o;
          }
          xml += "<NavigationProperty Name=\"" + target.nav + "\" Type=\"mscrm." +
                 target.logical_name + "\"><ReferentialConstraint Property=\"" + c.property() +
                 "\" ReferencedProperty=\"" + (other ? other->primary_key : "") +
                 "\"/></NavigationProperty>";
        }
      }
      xml += "</EntityType>";
    }
    xml +=
        "<ComplexType Name=\"AuditDetail\"/>"
        "<ComplexType Name=\"AttributeAuditDetail\" BaseType=\"mscrm.AuditDetail\">"
        "<Property Name=\"InvalidNewValueAttributes\" Type=\"Collection(Edm.String)\"/>"
        "<Property Name=\"LocLabelLanguageCode\" Type=\"Edm.Int32\" Nullable=\"false\"/>"
        "<Property Name=\"DeletedAttributes\" Type=\"Collection(Edm.String)\"/>"
        "<NavigationProperty Name=\"OldValue\" Type=\"mscrm.crmbaseentity\"/>"
        "<NavigationProperty Name=\"NewValue\" Type=\"mscrm.crmbaseentity\"/></ComplexType>"
        "<ComplexType Name=\"RetrieveAuditDetailsResponse\">"
        "<Property Name=\"AuditDetail\" Type=\"mscrm.AuditDetail\"/></ComplexType>"
        "<Function Name=\"RetrieveAuditDetails\" IsBound=\"true\">"
        "<Parameter Name=\"entity\" Type=\"mscrm.audit\" Nullable=\"false\"/>"
        "<ReturnType Type=\"mscrm.RetrieveAuditDetailsResponse\" Nullable=\"false\"/></Function>";
    xml += "<EntityContainer Name=\"System\">";
    for (const TableSchema* t : types) {
      xml += "<EntitySet Name=\"" + t->set + "\" EntityType=\"Microsoft.Dynamics.CRM." +
             t->logical_name + "\"/>";
    }
    return xml + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>";
  }

  static ApiError MethodNotAllowed(const std::string& method) {
    return Err(405, "", "The requested resource does not support http method '" + method + "'.");
  }

  // --- rows ---------------------------------------------------------------------------------------

  static int64_t VersionOf(const Row& row) { return row.values["versionnumber"].get<int64_t>(); }

  static const json& ValueOr(const Row& row, const std::string& property) {
    static const json kNull;
    auto it = row.values.find(property);
    return it == row.values.end() ? kNull : *it;
  }

  // A row as GET returns it: the etag (of a row that has versions; audit rows have none), then
  // every column (or the $select list plus the primary key, reference.md §0), with lookup and
  // yes/no annotations when Prefer asked for them (§7).
  ojson RenderRow(const Table& table, const Row& row, const std::vector<std::string>* select,
                  const Preferences* prefs) const {
    const TableSchema& schema = *table.schema;
    ojson out;
    if (row.values.contains("versionnumber")) out["@odata.etag"] = EtagOf(VersionOf(row));
    for (const Column& column : schema.columns) {
      const std::string property = column.property();
      if (select != nullptr && property != schema.primary_key &&
          std::find(select->begin(), select->end(), property) == select->end()) {
        continue;
      }
      const json& value = ValueOr(row, property);
      if (prefs != nullptr && !value.is_null()) {
        if (column.type == ColumnType::kLookup) {
          auto nav = row.navs.find(property);
          const Column* c = nullptr;
          const LookupTarget* target = nullptr;
          if (nav != row.navs.end() && schema.FindNavigation(nav->second, &c, &target)) {
            if (AnnotationWanted(*prefs, "OData.Community.Display.V1.FormattedValue")) {
              out[property + "@OData.Community.Display.V1.FormattedValue"] =
                  PrimaryNameOf(target->set, value.get<std::string>());
            }
            if (AnnotationWanted(*prefs, "Microsoft.Dynamics.CRM.associatednavigationproperty")) {
              out[property + "@Microsoft.Dynamics.CRM.associatednavigationproperty"] = target->nav;
            }
            if (AnnotationWanted(*prefs, "Microsoft.Dynamics.CRM.lookuplogicalname")) {
              out[property + "@Microsoft.Dynamics.CRM.lookuplogicalname"] = target->logical_name;
            }
          }
        } else if (column.type == ColumnType::kBool &&
                   AnnotationWanted(*prefs, "OData.Community.Display.V1.FormattedValue")) {
          out[property + "@OData.Community.Display.V1.FormattedValue"] =
              value.get<bool>() ? "Yes" : "No";
        }
      }
      out[property] = value;
    }
    return out;
  }

  json PrimaryNameOf(const std::string& set, const std::string& id) const {
    auto t = tables_.find(set);
    if (t == tables_.end()) return nullptr;
    auto r = t->second.rows.find(id);
    if (r == t->second.rows.end()) return nullptr;
    return ValueOr(r->second, PrimaryNameColumn(*t->second.schema));
  }

  static std::optional<std::string> KeyIndexEntry(const TableSchema& schema,
                                                  const std::vector<std::string>& key,
                                                  const Row& row) {
    std::string entry;
    for (const std::string& name : key) entry += name + "+";
    for (const std::string& name : key) {
      const Column* column = schema.FindByName(name);
      const json& v = ValueOr(row, column->property());
      if (v.is_null()) return std::nullopt;  // null key values are not unique-indexed
      entry += "\x1e" + d365::ToLowerAscii(v.is_string() ? v.get<std::string>() : v.dump());
    }
    return entry;
  }

  static void Index(Table& table, const std::string& id, const Row& row, bool add) {
    for (const auto& key : table.schema->alternate_keys) {
      auto entry = KeyIndexEntry(*table.schema, key, row);
      if (!entry) continue;
      if (add) {
        table.key_index[*entry] = id;
      } else {
        auto it = table.key_index.find(*entry);
        if (it != table.key_index.end() && it->second == id) table.key_index.erase(it);
      }
    }
  }

  // 412 when another row already holds one of `row`'s alternate-key values (Dataverse enforces
  // keys with a unique index; case-insensitive like its collation).
  static MaybeError CheckKeys(const Table& table, const std::string& id, const Row& row) {
    for (const auto& key : table.schema->alternate_keys) {
      auto entry = KeyIndexEntry(*table.schema, key, row);
      if (!entry) continue;
      auto it = table.key_index.find(*entry);
      if (it != table.key_index.end() && it->second != id) {
        std::string values, name;
        for (const std::string& column : key) {
          const json& v = ValueOr(row, column);
          values += (values.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
          name += (name.empty() ? "" : "_") + column;
        }
        return Err(412, kCodeDuplicateKey,
                   "A record that has the attribute values " + values +
                       " already exists. The entity key " + name +
                       "_key requires that this set of attributes contains unique values. Select "
                       "unique values and try again.");
      }
    }
    return std::nullopt;
  }

  Row* FindRow(Table& table, const KeySpec& key) {
    if (key.by_pk) {
      auto it = table.rows.find(key.id);
      return it == table.rows.end() ? nullptr : &it->second;
    }
    Row probe;
    std::vector<std::string> names;
    for (const auto& [name, value] : key.values) {
      probe.values[name] = value;
      names.push_back(name);
    }
    for (const auto& declared : table.schema->alternate_keys) {
      std::vector<std::string> a = declared, b = names;
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      if (a != b) continue;
      auto entry = KeyIndexEntry(*table.schema, declared, probe);
      if (!entry) return nullptr;
      auto it = table.key_index.find(*entry);
      if (it == table.key_index.end()) return nullptr;
      return &table.rows.at(it->second);
    }
    return nullptr;
  }

  static ApiError NotFound(const Table& table, const KeySpec& key) {
    if (key.by_pk) {
      return Err(404, kCodeNotFound,
                 table.schema->logical_name + " With Id = " + key.id + " Does Not Exist");
    }
    return Err(404, kCodeNotFound, "A record with the specified key values does not exist in " +
                                       table.schema->logical_name + " entity");
  }

  // --- reads --------------------------------------------------------------------------------------

  static std::string Context(const std::string& api, const TableSchema& schema,
                             const std::vector<std::string>* select) {
    std::string context = api + "$metadata#" + schema.set;
    if (select != nullptr) {
      context += "(";
      for (size_t i = 0; i < select->size(); ++i) context += (i ? "," : "") + (*select)[i];
      context += ")";
    }
    return context;
  }

  static MaybeError ReadSelect(const httplib::Request& req, const TableSchema& schema,
                               std::optional<std::vector<std::string>>* select) {
    if (!req.has_param("$select")) return std::nullopt;
    auto parsed = d365::ParseSelect(req.get_param_value("$select"), schema);
    if (!parsed.ok()) return Err(400, kCodeQuery, parsed.status().message());
    *select = std::move(parsed).value();
    return std::nullopt;
  }

  MaybeError GetOne(Table& table, const KeySpec& key, const httplib::Request& req,
                    httplib::Response& res, const std::string& api) {
    std::optional<std::vector<std::string>> select;
    if (auto e = ReadSelect(req, *table.schema, &select)) return e;
    Row* row = FindRow(table, key);
    if (row == nullptr) return NotFound(table, key);
    Preferences prefs = ParsePrefer(req);
    const std::string etag = row->values.contains("versionnumber") ? EtagOf(VersionOf(*row)) : "";
    // Conditional GET (reference.md §3): 304 when unchanged, never with annotations requested.
    if (!etag.empty() && req.get_header_value("If-None-Match") == etag &&
        prefs.annotations.empty()) {
      res.status = 304;
      return std::nullopt;
    }
    ojson body;
    body["@odata.context"] = Context(api, *table.schema, select ? &*select : nullptr) + "/$entity";
    ojson rendered = RenderRow(table, *row, select ? &*select : nullptr, &prefs);
    for (auto& item : rendered.items()) body[item.key()] = item.value();
    if (!prefs.annotations_raw.empty()) {
      res.set_header("Preference-Applied", "odata.include-annotations=" + prefs.annotations_raw);
    }
    if (!etag.empty()) res.set_header("ETag", etag);
    SendJson(res, 200, body);
    return std::nullopt;
  }

  MaybeError Count(const Table& table, httplib::Response& res) {
    res.status = 200;
    size_t n = std::min<size_t>(table.rows.size(), 5000);
    res.set_content(std::to_string(n), "text/plain");
    return std::nullopt;
  }

  MaybeError GetCollection(Table& table, const httplib::Request& req, httplib::Response& res,
                           const std::string& api) {
    const TableSchema& schema = *table.schema;
    static const std::set<std::string> kKnown = {"$select", "$filter",    "$orderby",
                                                 "$top",    "$count",     "$skiptoken",
                                                 "$expand", "$deltatoken"};
    for (const auto& [name, value] : req.params) {
      // $skip is not supported by Dataverse (reference.md §3); neither are unknown options.
      if (!name.empty() && name[0] == '$' && kKnown.count(name) == 0) {
        return Err(400, kCodeQuery, "The query parameter '" + name + "' is not supported.");
      }
    }
    Preferences prefs = ParsePrefer(req);
    const bool delta = req.has_param("$deltatoken");
    const bool tracking = prefs.track_changes || delta;
    if (tracking) {
      for (const char* option : {"$filter", "$orderby", "$expand", "$top"}) {
        if (req.has_param(option)) {
          return Err(400, kCodeQuery,
                     std::string("The \"") + option +
                         "\" query parameter isn't supported when Change Tracking is enabled.");
        }
      }
    }
    if (req.has_param("$expand")) {
      return Err(501, kCodeNotImplemented, "$expand is not implemented by the crmbridge mock.");
    }
    std::optional<std::vector<std::string>> select;
    if (auto e = ReadSelect(req, schema, &select)) return e;

    // Page size: odata.maxpagesize, capped at the maximum (reference.md §3).
    int page_size = options_.max_page_size;
    std::vector<std::string> applied;
    if (prefs.max_page_size > 0) {
      page_size = std::min(prefs.max_page_size, options_.max_page_size);
      applied.push_back("odata.maxpagesize=" + std::to_string(page_size));
    }
    if (tracking) applied.push_back("odata.track-changes");
    if (!prefs.annotations_raw.empty()) {
      applied.push_back("odata.include-annotations=" + prefs.annotations_raw);
    }
    if (!applied.empty()) {
      std::string header;
      for (const std::string& a : applied) header += (header.empty() ? "" : ",") + a;
      res.set_header("Preference-Applied", header);
    }

    std::optional<json> cursor;
    if (req.has_param("$skiptoken")) {
      cursor = ParseSkipToken(req.get_param_value("$skiptoken"));
      if (!cursor) return Err(400, kCodeQuery, "The $skiptoken value is not valid.");
    }
    const std::vector<std::string>* sel = select ? &*select : nullptr;
    if (delta) return GetDelta(table, req, res, api, sel, prefs, page_size, cursor);
    if (tracking) return GetTrackedLoad(table, req, res, api, sel, prefs, page_size, cursor);
    return GetQuery(table, req, res, api, sel, prefs, page_size, cursor);
  }

  // Link to the next page: the request's own options plus a fresh $skiptoken (reference.md §3:
  // absolute, to be used unchanged).
  static std::string NextLink(const std::string& api, const TableSchema& schema,
                              const httplib::Request& req, const std::string& skiptoken) {
    std::string link = api + schema.set + "?";
    for (const char* option : {"$select", "$filter", "$orderby", "$top", "$count", "$deltatoken"}) {
      if (req.has_param(option)) {
        link += std::string(option) + "=" + PercentEncode(req.get_param_value(option)) + "&";
      }
    }
    return link + "$skiptoken=" + PercentEncode(skiptoken);
  }

  MaybeError GetQuery(Table& table, const httplib::Request& req, httplib::Response& res,
                      const std::string& api, const std::vector<std::string>* select,
                      const Preferences& prefs, int page_size, const std::optional<json>& cursor) {
    const TableSchema& schema = *table.schema;
    d365::Filter filter;
    if (req.has_param("$filter")) {
      auto parsed = d365::Filter::Parse(req.get_param_value("$filter"), schema);
      if (!parsed.ok()) return Err(400, kCodeQuery, parsed.status().message());
      filter = std::move(parsed).value();
    }
    std::vector<d365::OrderKey> order;
    if (req.has_param("$orderby")) {
      auto parsed = d365::ParseOrderBy(req.get_param_value("$orderby"), schema);
      if (!parsed.ok()) return Err(400, kCodeQuery, parsed.status().message());
      order = std::move(parsed).value();
    }
    // $top caps the whole result, but is ignored when odata.maxpagesize is sent (reference.md §3).
    std::optional<int64_t> top;
    if (req.has_param("$top") && prefs.max_page_size <= 0) {
      try {
        size_t used = 0;
        const std::string text = req.get_param_value("$top");
        top = std::stoll(text, &used);
        if (used != text.size() || *top < 0) throw std::invalid_argument("$top");
      } catch (const std::exception&) {
        return Err(400, kCodeQuery,
                   "Invalid value '" + req.get_param_value("$top") + "' for $top query option "
                   "found. The $top query option requires a non-negative integer value.");
      }
    }

    std::vector<const Row*> matches;
    for (const auto& [id, row] : table.rows) {
      if (filter.Matches(row.values)) matches.push_back(&row);
    }
    auto less = [&](const Row* a, const Row* b) {
      return d365::CompareRows(a->values, b->values, order, schema.primary_key) < 0;
    };
    std::sort(matches.begin(), matches.end(), less);

    size_t start = 0;
    int64_t returned = 0;
    int page_number = 1;
    if (cursor) {
      // Keyset paging: resume after the last row of the previous page, by sort key, so rows
      // written between pages neither repeat nor shift the window.
      Row last;
      const json& keys = (*cursor)["k"];
      for (size_t i = 0; i < order.size() && keys.is_array() && i < keys.size(); ++i) {
        last.values[order[i].property] = keys[i];
      }
      last.values[schema.primary_key] = cursor->value("id", "");
      returned = cursor->value("n", int64_t{0});
      page_number = cursor->value("p", 1);
      auto it = std::upper_bound(matches.begin(), matches.end(), &last, less);
      start = static_cast<size_t>(it - matches.begin());
    }
    int64_t limit = page_size;
    if (top) limit = std::min<int64_t>(limit, std::max<int64_t>(0, *top - returned));
    size_t end = std::min(matches.size(), start + static_cast<size_t>(limit));

    ojson body;
    body["@odata.context"] = Context(api, schema, select);
    if (req.get_param_value("$count") == "true") {
      body["@odata.count"] = std::min<size_t>(matches.size(), 5000);
    }
    body["value"] = ojson::array();
    for (size_t i = start; i < end; ++i) {
      body["value"].push_back(RenderRow(table, *matches[i], select, &prefs));
    }
    const int64_t returned_after = returned + static_cast<int64_t>(end - start);
    const bool more = end < matches.size() && (!top || returned_after < *top);
    if (more && end > start) {
      json state;
      state["k"] = json::array();
      for (const d365::OrderKey& k : order) state["k"].push_back(ValueOr(*matches[end - 1], k.property));
      state["id"] = ValueOr(*matches[end - 1], schema.primary_key);
      state["n"] = returned_after;
      state["p"] = page_number + 1;
      body["@odata.nextLink"] =
          NextLink(api, schema, req, MakeSkipToken(state, page_number + 1, false));
    }
    SendJson(res, 200, body);
    return std::nullopt;
  }

  std::string DeltaLink(const std::string& api, const TableSchema& schema,
                        const httplib::Request& req, int64_t version) const {
    std::string link = api + schema.set + "?";
    if (req.has_param("$select")) {
      link += "$select=" + PercentEncode(req.get_param_value("$select")) + "&";
    }
    const std::string token = std::to_string(version) + "!" + FormatDeltaTime(NowSeconds());
    return link + "$deltatoken=" + PercentEncode(token);
  }

  // The initial change-tracking load (reference.md §4): every row, by primary key, and the
  // deltaLink on the last page only. The delta token records the version at the first page, so
  // rows written during a long paged load come again in the next delta rather than being lost.
  MaybeError GetTrackedLoad(Table& table, const httplib::Request& req, httplib::Response& res,
                            const std::string& api, const std::vector<std::string>* select,
                            const Preferences& prefs, int page_size,
                            const std::optional<json>& cursor) {
    const TableSchema& schema = *table.schema;
    int64_t as_of = cursor ? cursor->value("w", version_) : version_;
    int page_number = cursor ? cursor->value("p", 1) : 1;
    auto it = cursor ? table.rows.upper_bound(cursor->value("id", "")) : table.rows.begin();
    ojson body;
    body["@odata.context"] = Context(api, schema, select);
    body["value"] = ojson::array();
    std::string last_id;
    for (int n = 0; it != table.rows.end() && n < page_size; ++it, ++n) {
      body["value"].push_back(RenderRow(table, it->second, select, &prefs));
      last_id = it->first;
    }
    if (it != table.rows.end()) {
      json state = {{"id", last_id}, {"w", as_of}, {"p", page_number + 1}};
      body["@odata.nextLink"] =
          NextLink(api, schema, req, MakeSkipToken(state, page_number + 1, true));
    } else {
      body["@odata.deltaLink"] = DeltaLink(api, schema, req, as_of);
    }
    SendJson(res, 200, body);
    return std::nullopt;
  }

  // A delta page: rows changed after the token's version (current values, by version), then
  // deletions as $deletedEntity entries, then a new deltaLink on the last page (reference.md §4).
  MaybeError GetDelta(Table& table, const httplib::Request& req, httplib::Response& res,
                      const std::string& api, const std::vector<std::string>* select,
                      const Preferences& prefs, int page_size, const std::optional<json>& cursor) {
    const TableSchema& schema = *table.schema;
    static const std::regex kToken(R"((\d+)!(.+))");
    std::smatch m;
    const std::string token = req.get_param_value("$deltatoken");
    std::optional<int64_t> issued;
    if (std::regex_match(token, m, kToken)) issued = ParseDeltaTime(m[2].str());
    if (!issued) return Err(400, kCodeQuery, "The $deltatoken value is not valid.");
    const int64_t since = std::stoll(m[1].str());
    if (since > version_) return Err(400, kCodeQuery, "The $deltatoken value is not valid.");
    if (NowSeconds() - *issued > options_.change_tracking_retention_seconds) {
      return Err(options_.expired_delta_token_status, options_.expired_delta_token_code,
                 kExpiredDeltaMessage);
    }
    const int64_t upto = cursor ? cursor->value("w", version_) : version_;
    const int phase = cursor ? cursor->value("ph", 0) : 0;
    const int64_t after = cursor ? cursor->value("v", since) : since;
    int page_number = cursor ? cursor->value("p", 1) : 1;

    // Changed rows, in version order.
    std::vector<std::pair<int64_t, const Row*>> changed;
    for (const auto& [id, row] : table.rows) {
      int64_t v = VersionOf(row);
      if (v > since && v <= upto) changed.emplace_back(v, &row);
    }
    std::sort(changed.begin(), changed.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    // Deletions, the latest per id, skipping ids that exist again (re-created by an upsert).
    std::map<std::string, int64_t> deleted_at;
    for (const Deletion& d : table.deletions) {
      if (d.version > since && d.version <= upto && table.rows.count(d.id) == 0) {
        deleted_at[d.id] = std::max(deleted_at[d.id], d.version);
      }
    }
    std::vector<std::pair<int64_t, std::string>> deleted;
    for (const auto& [id, v] : deleted_at) deleted.emplace_back(v, id);
    std::sort(deleted.begin(), deleted.end());

    ojson body;
    body["@odata.context"] = Context(api, schema, select) + "/$delta";
    body["value"] = ojson::array();
    int emitted = 0;
    int last_phase = phase;
    int64_t last_version = after;
    bool more = false;
    if (phase == 0) {
      for (const auto& [v, row] : changed) {
        if (v <= after) continue;
        if (emitted == page_size) {
          more = true;
          break;
        }
        body["value"].push_back(RenderRow(table, *row, select, &prefs));
        ++emitted;
        last_version = v;
      }
    }
    if (!more) {
      const int64_t deleted_after = phase == 1 ? after : 0;
      for (const auto& [v, id] : deleted) {
        if (v <= deleted_after) continue;
        if (emitted == page_size) {
          more = true;
          break;
        }
        ojson entry;
        entry["@odata.context"] = api + "$metadata#" + schema.set + "/$deletedEntity";
        entry["id"] = id;
        entry["reason"] = "deleted";
        body["value"].push_back(entry);
        ++emitted;
        last_phase = 1;
        last_version = v;
      }
    }
    if (more) {
      json state = {{"ph", last_phase}, {"v", last_version}, {"w", upto}, {"p", page_number + 1}};
      body["@odata.nextLink"] =
          NextLink(api, schema, req, MakeSkipToken(state, page_number + 1, true));
    } else {
      body["@odata.deltaLink"] = DeltaLink(api, schema, req, upto);
    }
    SendJson(res, 200, body);
    return std::nullopt;
  }

  // --- writes -------------------------------------------------------------------------------------

  static MaybeError Normalize(const TableSchema& schema, const Column& column, const json& value,
                              json* out) {
    if (value.is_null()) {
      *out = nullptr;
      return std::nullopt;
    }
    auto bad = [&]() {
      return Err(400, kCodePayload,
                 "Cannot convert the literal '" +
                     (value.is_string() ? value.get<std::string>() : value.dump()) +
                     "' to the expected type '" + d365::EdmTypeName(column.type) + "'.");
    };
    switch (column.type) {
      case ColumnType::kString:
        if (!value.is_string()) return bad();
        if (column.max_length > 0 &&
            Utf8Length(value.get<std::string>()) > static_cast<size_t>(column.max_length)) {
          return Err(400, kCodeValidation,
                     "A validation error occurred.  The length of the '" + column.name +
                         "' attribute of the '" + schema.logical_name +
                         "' entity exceeded the maximum allowed length of '" +
                         std::to_string(column.max_length) + "'.");
        }
        *out = value;
        return std::nullopt;
      case ColumnType::kInt:
        if (!value.is_number_integer()) return bad();
        if (value.get<int64_t>() < INT32_MIN || value.get<int64_t>() > INT32_MAX) return bad();
        *out = value.get<int64_t>();
        return std::nullopt;
      case ColumnType::kDecimal:
        if (!value.is_number()) return bad();
        *out = value;
        return std::nullopt;
      case ColumnType::kBool:
        if (!value.is_boolean()) return bad();
        *out = value;
        return std::nullopt;
      case ColumnType::kDateTime: {
        auto seconds = value.is_string() ? d365::ParseIsoDateTime(value.get<std::string>())
                                         : std::nullopt;
        if (!seconds) return bad();
        *out = d365::FormatIsoDateTime(*seconds);
        return std::nullopt;
      }
      case ColumnType::kGuid:
        if (!value.is_string() || !d365::IsGuid(value.get<std::string>())) return bad();
        *out = d365::ToLowerAscii(value.get<std::string>());
        return std::nullopt;
      case ColumnType::kLookup:
        return bad();
    }
    return bad();
  }

  // Resolves an @odata.bind value ("/accounts(<guid>)", "accounts(crmb_externalid='X')", or the
  // absolute URL) for navigation property `nav` to the target row's id (reference.md §6).
  MaybeError ResolveBind(const LookupTarget& target, const std::string& nav,
                         const std::string& value, std::string* id) {
    std::string ref = value;
    size_t api = ref.find(kApiPath);
    if (api != std::string::npos) ref = ref.substr(api + std::string(kApiPath).size());
    while (!ref.empty() && ref[0] == '/') ref = ref.substr(1);
    auto path = ParsePath(ref);
    if (!path || !path->has_key || !path->tail.empty()) {
      return Err(400, kCodePayload,
                 "The value '" + value + "' of the '" + nav +
                     "@odata.bind' annotation is not a valid entity reference.");
    }
    if (path->set != target.set) {
      return Err(400, kCodePayload,
                 "The entity reference '" + value + "' for navigation property '" + nav +
                     "' does not refer to the '" + target.logical_name + "' table.");
    }
    Table& table = tables_.at(target.set);
    auto parsed = ParseKey(path->key_text, *table.schema);
    if (std::holds_alternative<ApiError>(parsed)) return std::get<ApiError>(parsed);
    const KeySpec& key = std::get<KeySpec>(parsed);
    Row* row = FindRow(table, key);
    // Binding to a missing row: 404 with the not-found message ([UNCONFIRMED] in the refs).
    if (row == nullptr) return NotFound(table, key);
    *id = ValueOr(*row, table.schema->primary_key).get<std::string>();
    return std::nullopt;
  }

  // Applies a request body to `row`. Columns in `ignore` (the key on an update) are dropped, as
  // Dataverse strips key columns from an update body (reference.md §5); read-only columns are
  // dropped too. The primary key is taken only when `creating`.
  MaybeError ApplyBody(Table& table, const json& body, Row* row, bool creating,
                       const std::set<std::string>& ignore) {
    const TableSchema& schema = *table.schema;
    const std::string bind_suffix = "@odata.bind";
    for (const auto& [name, value] : body.items()) {
      if (name.size() > bind_suffix.size() &&
          name.compare(name.size() - bind_suffix.size(), bind_suffix.size(), bind_suffix) == 0) {
        const std::string nav = name.substr(0, name.size() - bind_suffix.size());
        const Column* column = nullptr;
        const LookupTarget* target = nullptr;
        if (!schema.FindNavigation(nav, &column, &target)) {
          return Err(400, kCodePayload,
                     "An undeclared property '" + nav +
                         "' which only has property annotations in the payload but no property "
                         "value was found in the payload. In OData, only declared navigation "
                         "properties and declared named streams can be represented as properties "
                         "without values.");
        }
        const std::string property = column->property();
        if (value.is_null()) {
          row->values[property] = nullptr;
          row->navs.erase(property);
          continue;
        }
        if (!value.is_string()) {
          return Err(400, kCodePayload,
                     "The value of the '" + name + "' annotation must be a string.");
        }
        std::string id;
        if (auto e = ResolveBind(*target, nav, value.get<std::string>(), &id)) return e;
        if (target->set == "systemusers" &&
            ValueOr(tables_.at("systemusers").rows.at(id), "isdisabled") == json(true)) {
          return Err(400, kCodeUserDisabled,
                     "The specified user(Id = " + id + ", type = 8) is disabled. Consider "
                     "enabling this user.");
        }
        // One lookup value per column: binding one target replaces (nulls) the others.
        row->values[property] = id;
        row->navs[property] = nav;
        if (schema.logical_name == "annotation" && column->name == "objectid") {
          row->values["objecttypecode"] = target->logical_name;
        }
        continue;
      }
      if (name.find('@') != std::string::npos) continue;  // instance annotations, @odata.type
      const Column* column = schema.FindByName(name);
      if (column == nullptr || column->type == ColumnType::kLookup) {
        const Column* lookup = schema.FindByProperty(name);
        if ((lookup != nullptr && lookup->type == ColumnType::kLookup) ||
            (column != nullptr && column->type == ColumnType::kLookup)) {
          return Err(400, kCodePayload,
                     "CRM do not support direct update of Entity Reference properties, Use "
                     "Navigation properties instead.");
        }
        return Err(400, kCodePayload,
                   "The property '" + name + "' does not exist on type '" +
                       schema.qualified_type() +
                       "'. Make sure to only use property names that are defined by the type or "
                       "mark the type as open type.");
      }
      if (name == schema.primary_key) {
        if (!creating) continue;
        json id;
        if (auto e = Normalize(schema, *column, value, &id)) return e;
        if (!id.is_null()) row->values[name] = id;
        continue;
      }
      if (column->read_only || ignore.count(name) != 0) continue;
      json normalized;
      if (auto e = Normalize(schema, *column, value, &normalized)) return e;
      row->values[name] = normalized;
    }
    // A state set without a status takes that state's default status, as Dataverse sets it
    // (accounts and contacts: Active 0 -> Active 1, Inactive 1 -> Inactive 2).
    if (body.contains("statecode") && !body.contains("statuscode") &&
        (schema.logical_name == "account" || schema.logical_name == "contact")) {
      const json state = ValueOr(*row, "statecode");
      if (state == 0) row->values["statuscode"] = 1;
      if (state == 1) row->values["statuscode"] = 2;
    }
    if (schema.logical_name == "contact") {
      // fullname is computed: "First Last" (the default full-name format).
      std::string first = ValueOr(*row, "firstname").is_string()
                              ? ValueOr(*row, "firstname").get<std::string>() : "";
      std::string last = ValueOr(*row, "lastname").is_string()
                             ? ValueOr(*row, "lastname").get<std::string>() : "";
      std::string full = Trim(first + " " + last);
      row->values["fullname"] = full.empty() ? json(nullptr) : json(full);
    }
    return std::nullopt;
  }

  // Creates a row from `body` (and the URL key of an upsert). On success `*id` is the new id.
  MaybeError CreateRow(Table& table, const json& body, const KeySpec* url_key, std::string* id) {
    const TableSchema& schema = *table.schema;
    Row row;
    if (url_key != nullptr && !url_key->by_pk) {
      for (const auto& [name, value] : url_key->values) row.values[name] = value;
    }
    if (auto e = ApplyBody(table, body, &row, /*creating=*/true, {})) return e;
    // The body's values win over the URL's (reference.md §5).
    if (ValueOr(row, schema.primary_key).is_string()) {
      *id = ValueOr(row, schema.primary_key).get<std::string>();
    } else if (url_key != nullptr && url_key->by_pk) {
      *id = url_key->id;
    } else {
      *id = NewGuidLocked();
    }
    if (table.rows.count(*id) != 0) {
      return Err(412, kCodeDuplicate, "A record with matching key values already exists.");
    }
    for (const Column& column : schema.columns) {
      if (!column.default_value.is_null() && ValueOr(row, column.property()).is_null()) {
        row.values[column.property()] = column.default_value;
      }
      // A row created without an owner is owned by the calling (application) user.
      if (column.name == "ownerid" && ValueOr(row, column.property()).is_null()) {
        row.values[column.property()] = kApplicationUserId;
        row.navs[column.property()] = "ownerid";
      }
    }
    if (auto e = CheckKeys(table, *id, row)) return e;
    const std::string now = d365::FormatIsoDateTime(NowSeconds());
    row.values[schema.primary_key] = *id;
    row.values["createdon"] = now;
    row.values["modifiedon"] = now;
    row.values["versionnumber"] = ++version_;
    Index(table, *id, row, true);
    steps_.push_back({"Create", schema.logical_name, *id, TargetAttributes(table, row, nullptr)});
    AuditLocked(schema, *id, kAuditCreate, nullptr, &row, NowSeconds());
    table.rows[*id] = std::move(row);
    return std::nullopt;
  }

  // Every write counts as a change, even one that sets the same values (reference.md §5).
  MaybeError UpdateRow(Table& table, Row* existing, const json& body,
                       const std::set<std::string>& ignore) {
    const TableSchema& schema = *table.schema;
    const std::string id = ValueOr(*existing, schema.primary_key).get<std::string>();
    Row updated = *existing;
    if (auto e = ApplyBody(table, body, &updated, /*creating=*/false, ignore)) return e;
    if (auto e = CheckKeys(table, id, updated)) return e;
    Touch(&updated);
    RecordUpdate(table, id, *existing, updated);
    Index(table, id, *existing, false);
    *existing = std::move(updated);
    Index(table, id, *existing, true);
    return std::nullopt;
  }

  // The Update step of a row written from `before` to `after`: its Target holds the columns the
  // write changed (and modifiedon), as a step's Target holds those of the request. Its audit row
  // holds the audited columns that changed, if any did.
  void RecordUpdate(const Table& table, const std::string& id, const Row& before, const Row& after) {
    std::set<std::string> changed;
    for (const auto& [property, value] : after.values.items())
      if (ValueOr(before, property) != value) changed.insert(property);
    steps_.push_back(
        {"Update", table.schema->logical_name, id, TargetAttributes(table, after, &changed)});
    AuditLocked(*table.schema, id, kAuditUpdate, &before, &after, NowSeconds());
  }

  // Columns of `row` as a RemoteExecutionContext's Entity carries them ([{key, value}]): a lookup
  // as an EntityReference, a date and time as "/Date(ms)/"; only those in `only` when given.
  json TargetAttributes(const Table& table, const Row& row, const std::set<std::string>* only) const {
    json out = json::array();
    for (const Column& column : table.schema->columns) {
      const std::string property = column.property();
      if (!row.values.contains(property) || (only != nullptr && only->count(property) == 0)) continue;
      json value = row.values.at(property);
      if (column.type == ColumnType::kLookup && value.is_string()) {
        std::string logical;
        const Column* c = nullptr;
        const LookupTarget* target = nullptr;
        if (auto nav = row.navs.find(property);
            nav != row.navs.end() && table.schema->FindNavigation(nav->second, &c, &target))
          logical = target->logical_name;
        value = {{"__type", "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts"},
                 {"Id", value},
                 {"KeyAttributes", json::array()},
                 {"LogicalName", logical},
                 {"Name", nullptr},
                 {"RowVersion", nullptr}};
      } else if (column.type == ColumnType::kDateTime && value.is_string()) {
        if (auto seconds = d365::ParseIsoDateTime(value.get<std::string>()))
          value = "/Date(" + std::to_string(*seconds * 1000) + ")/";
      }
      out.push_back({{"key", column.name}, {"value", std::move(value)}});
    }
    return out;
  }

  void Touch(Row* row) {
    row->values["modifiedon"] = d365::FormatIsoDateTime(NowSeconds());
    row->values["versionnumber"] = ++version_;
  }

  // Deletes a row and logs it for change tracking. Notes and tasks regarding it are deleted with
  // it (parental cascade); other lookups pointing at it are cleared (remove-link). Which
  // relationships cascade is org configuration; this default is [UNCONFIRMED].
  void DeleteRow(Table& table, const std::string& id) {
    auto it = table.rows.find(id);
    if (it == table.rows.end()) return;
    Index(table, id, it->second, false);
    table.rows.erase(it);
    table.deletions.push_back(Deletion{++version_, id});
    // Rows deleted by the cascade run their own Delete steps and write their own audit rows.
    steps_.push_back({"Delete", table.schema->logical_name, id, json::array()});
    AuditLocked(*table.schema, id, kAuditDelete, nullptr, nullptr, NowSeconds());
    std::vector<std::pair<Table*, std::string>> cascade;
    ForEachLookupTo(table, id, [&](Table& other, const std::string& other_id, Row& row,
                                   const Column& column, const std::string& property) {
      if (column.name == "objectid" || column.name == "regardingobjectid") {
        cascade.emplace_back(&other, other_id);
      } else {
        const Row before = row;
        row.values[property] = nullptr;
        row.navs.erase(property);
        Touch(&row);
        AuditLocked(*other.schema, other_id, kAuditUpdate, &before, &row, NowSeconds());
      }
    });
    for (auto& [other, other_id] : cascade) DeleteRow(*other, other_id);
  }

  // Calls `visit(other table, its row id, the row, the lookup column, its property)` for every
  // lookup of any row that points at row `id` of `table` (bound through a navigation property to
  // that table). Audit rows are history: a delete or merge never rewrites them.
  template <typename Visit>
  void ForEachLookupTo(const Table& table, const std::string& id, Visit visit) {
    for (auto& [set, other] : tables_) {
      if (set == "audits") continue;
      for (auto& [other_id, row] : other.rows)
        for (const Column& column : other.schema->columns) {
          if (column.type != ColumnType::kLookup) continue;
          const std::string property = column.property();
          const json& v = ValueOr(row, property);
          if (!v.is_string() || v.get<std::string>() != id) continue;
          auto nav = row.navs.find(property);
          const Column* c = nullptr;
          const LookupTarget* target = nullptr;
          if (nav == row.navs.end() || !other.schema->FindNavigation(nav->second, &c, &target) ||
              target->set != table.schema->set)
            continue;
          visit(other, other_id, row, column, property);
        }
    }
  }

  static std::optional<json> ParseBody(const httplib::Request& req) {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return std::nullopt;
    return body;
  }

  static ApiError BadPayload() {
    return Err(400, kCodePayload,
               "The request body is not a valid JSON object. Send the record as a JSON object.");
  }

  void SendWritten(Table& table, const std::string& id, bool created, const std::string& entity_id,
                   const httplib::Request& req, httplib::Response& res, const std::string& api) {
    Preferences prefs = ParsePrefer(req);
    const Row& row = table.rows.at(id);
    if (!prefs.return_representation) {
      res.status = 204;
      res.set_header("OData-EntityId", entity_id);
      return;
    }
    std::optional<std::vector<std::string>> select;
    ReadSelect(req, *table.schema, &select);  // validated before the write
    const std::vector<std::string>* sel = select ? &*select : nullptr;
    ojson body;
    body["@odata.context"] = Context(api, *table.schema, sel) + "/$entity";
    ojson rendered = RenderRow(table, row, sel, &prefs);
    for (auto& item : rendered.items()) body[item.key()] = item.value();
    res.set_header("ETag", EtagOf(VersionOf(row)));
    res.set_header("Preference-Applied", "return=representation");
    SendJson(res, created ? 201 : 200, body);
  }

  MaybeError Create(Table& table, const httplib::Request& req, httplib::Response& res,
                    const std::string& api) {
    std::optional<std::vector<std::string>> select;
    if (auto e = ReadSelect(req, *table.schema, &select)) return e;
    auto body = ParseBody(req);
    if (!body) return BadPayload();
    std::string id;
    if (auto e = CreateRow(table, *body, nullptr, &id)) return e;
    SendWritten(table, id, true, api + table.schema->set + "(" + id + ")", req, res, api);
    return std::nullopt;
  }

  // PATCH on a key: an upsert unless If-Match says update-only; If-None-Match: * says create-only
  // (reference.md §5 conditional table). "If-None-Match: null" is a no-op (§15.2).
  MaybeError Upsert(Table& table, const KeySpec& key, const httplib::Request& req,
                    httplib::Response& res, const std::string& api) {
    std::optional<std::vector<std::string>> select;
    if (auto e = ReadSelect(req, *table.schema, &select)) return e;
    auto body = ParseBody(req);
    if (!body) return BadPayload();
    Row* existing = FindRow(table, key);
    const std::string if_match = Trim(req.get_header_value("If-Match"));
    const std::string if_none_match = Trim(req.get_header_value("If-None-Match"));
    if (!if_match.empty()) {
      if (existing == nullptr) return NotFound(table, key);
      if (if_match != "*" && if_match != EtagOf(VersionOf(*existing))) {
        return Err(412, kCodeVersionMismatch,
                   "The version of the existing record doesn't match the RowVersion property "
                   "provided.");
      }
    }
    if (if_none_match == "*" && existing != nullptr) {
      return Err(412, kCodeDuplicate, "A record with matching key values already exists.");
    }
    std::string id;
    bool created = existing == nullptr;
    if (existing != nullptr) {
      std::set<std::string> ignore;
      for (const auto& [name, value] : key.values) ignore.insert(name);
      if (auto e = UpdateRow(table, existing, *body, ignore)) return e;
      id = ValueOr(*existing, table.schema->primary_key).get<std::string>();
    } else {
      if (auto e = CreateRow(table, *body, &key, &id)) return e;
    }
    const std::string entity_id =
        api + table.schema->set + "(" +
        (!key.by_pk && options_.upsert_key_form_entity_id ? key.text : id) + ")";
    SendWritten(table, id, created, entity_id, req, res, api);
    return std::nullopt;
  }

  // --- $batch (reference.md §9) -------------------------------------------------------------------

  struct BatchPart {
    std::map<std::string, std::string> headers;  // MIME headers of the part, lower-case names
    std::string body;
  };

  // Splits a multipart body on `--boundary` lines.
  static std::vector<BatchPart> SplitMultipart(const std::string& body, const std::string& boundary) {
    std::vector<BatchPart> parts;
    const std::string delim = "--" + boundary;
    size_t pos = body.find(delim);
    while (pos != std::string::npos) {
      pos += delim.size();
      if (body.compare(pos, 2, "--") == 0) break;  // closing delimiter
      size_t next = body.find(delim, pos);
      std::string chunk = body.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
      // Drop the line break after the delimiter and the one before the next.
      if (StartsWith(chunk, "\r\n")) chunk = chunk.substr(2);
      else if (StartsWith(chunk, "\n")) chunk = chunk.substr(1);
      size_t split = chunk.find("\r\n\r\n");
      size_t skip = 4;
      if (split == std::string::npos) {
        split = chunk.find("\n\n");
        skip = 2;
      }
      BatchPart part;
      std::istringstream head(chunk.substr(0, split));
      std::string line;
      while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        part.headers[name] = Trim(line.substr(colon + 1));
      }
      part.body = split == std::string::npos ? "" : chunk.substr(split + skip);
      while (!part.body.empty() && (part.body.back() == '\n' || part.body.back() == '\r'))
        part.body.pop_back();
      parts.push_back(std::move(part));
      pos = next;
    }
    return parts;
  }

  static const char* StatusText(int status) {
    switch (status) {
      case 200: return "OK";
      case 201: return "Created";
      case 204: return "No Content";
      case 304: return "Not Modified";
      case 400: return "Bad Request";
      case 401: return "Unauthorized";
      case 403: return "Forbidden";
      case 404: return "Not Found";
      case 405: return "Method Not Allowed";
      case 412: return "Precondition Failed";
      case 429: return "Too Many Requests";
      case 501: return "Not Implemented";
      default: return status >= 500 ? "Internal Server Error" : "Unknown";
    }
  }

  static std::string BoundaryOf(const std::string& content_type) {
    auto at = content_type.find("boundary=");
    if (at == std::string::npos) return "";
    std::string b = content_type.substr(at + 9);
    if (auto semi = b.find(';'); semi != std::string::npos) b = b.substr(0, semi);
    b = Trim(b);
    if (b.size() >= 2 && b.front() == '"' && b.back() == '"') b = b.substr(1, b.size() - 2);
    return b;
  }

  // Runs one request of a batch through the same dispatcher as a direct request. `ids` maps
  // Content-IDs of earlier change-set requests to their entity URLs, for "$n" references.
  std::string RunBatchRequest(const BatchPart& part, const std::string& api,
                              const std::map<std::string, std::string>& ids, int* status,
                              std::string* entity_id) {
    std::istringstream in(part.body);
    std::string request_line;
    std::getline(in, request_line);
    if (!request_line.empty() && request_line.back() == '\r') request_line.pop_back();
    std::istringstream words(request_line);
    std::string method, url;
    words >> method >> url;
    httplib::Request req;
    req.method = method;
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) break;
      auto colon = line.find(':');
      if (colon != std::string::npos) req.headers.emplace(line.substr(0, colon), Trim(line.substr(colon + 1)));
    }
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& [cid, target] : ids) {
      const std::string ref = "$" + cid;
      for (size_t at = body.find("\"" + ref + "\""); at != std::string::npos; at = body.find("\"" + ref + "\"", at))
        body.replace(at + 1, ref.size(), target);
      if (StartsWith(url, ref)) url = target + url.substr(ref.size());
    }
    req.body = body;
    // The URL may be absolute, server-relative or relative to the API root.
    if (auto at = url.find(kApiPath); at != std::string::npos) url = url.substr(at + std::string(kApiPath).size());
    if (!url.empty() && url[0] == '/') url = url.substr(1);
    std::string query;
    if (auto q = url.find('?'); q != std::string::npos) {
      query = url.substr(q + 1);
      url = url.substr(0, q);
    }
    std::istringstream params(query);
    std::string kv;
    while (std::getline(params, kv, '&')) {
      auto eq = kv.find('=');
      req.params.emplace(PercentDecode(kv.substr(0, eq), false),
                         eq == std::string::npos ? "" : PercentDecode(kv.substr(eq + 1), false));
    }
    httplib::Response res;
    std::optional<PathSpec> path = ParsePath(PercentDecode(url, false));
    MaybeError error = path ? Dispatch(method, *path, req, res, api)
                            : MaybeError(Err(400, kCodeQuery, "Bad Request - Error in query syntax."));
    if (path && path->set == "$batch") error = Err(400, kCodeQuery, "Nested $batch requests are not allowed.");
    if (error) SendError(res, *error);
    *status = res.status;
    *entity_id = res.get_header_value("OData-EntityId");
    return HttpAnswer(res);
  }

  // One response of a batch, as the application/http part carries it.
  static std::string HttpAnswer(const httplib::Response& res) {
    std::string out = "HTTP/1.1 " + std::to_string(res.status) + " " + StatusText(res.status) + "\r\n";
    for (const auto& [name, value] : res.headers) out += name + ": " + value + "\r\n";
    if (!res.body.empty()) out += "Content-Type: application/json; odata.metadata=minimal\r\n";
    out += "\r\n" + res.body;
    return out;
  }

  // A transient failure of one batch request, injected by a partial fault; nothing of it lands.
  std::string InjectedFailure(int* status) {
    httplib::Response failed;
    SendError(failed, Err(500, kCodeUnexpected, "An unexpected error occurred (injected)."));
    *status = failed.status;
    return HttpAnswer(failed);
  }

  // POST $batch: multipart/mixed of requests and change sets. Requests run in order; a change set
  // is atomic (any failure rolls it back); without Prefer: odata.continue-on-error the batch stops
  // at the first failure and takes its status.
  MaybeError Batch(const httplib::Request& req, httplib::Response& res, const std::string& api) {
    const std::string boundary = BoundaryOf(req.get_header_value("Content-Type"));
    if (boundary.empty())
      return Err(400, kCodePayload, "The batch request must be multipart/mixed with a boundary.");
    const bool continue_on_error =
        req.get_header_value("Prefer").find("odata.continue-on-error") != std::string::npos;
    std::vector<BatchPart> parts = SplitMultipart(req.body, boundary);
    if (parts.size() > 1000) return Err(400, kCodePayload, "A batch holds at most 1000 requests.");
    const std::string response_boundary = "batchresponse_" + NewGuidLocked();
    std::string out;
    int batch_status = 200;
    auto http_part = [](const std::string& content, const std::string& content_id) {
      std::string p = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n";
      if (!content_id.empty()) p += "Content-ID: " + content_id + "\r\n";
      return p + "\r\n" + content + "\r\n";
    };
    for (const BatchPart& part : parts) {
      const std::string type = part.headers.count("content-type") ? part.headers.at("content-type") : "";
      if (StartsWith(type, "multipart/mixed")) {
        const auto saved_tables = tables_;
        const auto saved_version = version_;
        const size_t saved_steps = steps_.size();
        const std::string cs_boundary = "changesetresponse_" + NewGuidLocked();
        std::string cs;
        std::map<std::string, std::string> ids;
        int failed = 0;
        std::string failure;
        const bool inject = owner_->FailBatchItem(res);
        for (const BatchPart& inner : SplitMultipart(part.body, BoundaryOf(type))) {
          int status = 0;
          std::string entity_id;
          std::string answer =
              inject ? InjectedFailure(&status) : RunBatchRequest(inner, api, ids, &status, &entity_id);
          const std::string cid = inner.headers.count("content-id") ? inner.headers.at("content-id") : "";
          if (status >= 400) {
            failed = status;
            failure = answer;
            break;
          }
          if (!cid.empty() && !entity_id.empty()) ids[cid] = entity_id;
          cs += "--" + cs_boundary + "\r\n" + http_part(answer, cid);
        }
        if (failed) {
          tables_ = saved_tables;  // atomic: nothing of the change set remains
          version_ = saved_version;
          steps_.resize(saved_steps);
          out += "--" + response_boundary + "\r\n" + http_part(failure, "");
          if (!continue_on_error) {
            batch_status = failed;
            break;
          }
          continue;
        }
        out += "--" + response_boundary + "\r\nContent-Type: multipart/mixed; boundary=" + cs_boundary +
               "\r\n\r\n" + cs + "--" + cs_boundary + "--\r\n";
        continue;
      }
      int status = 0;
      std::string entity_id;
      std::string answer = owner_->FailBatchItem(res) ? InjectedFailure(&status)
                                                      : RunBatchRequest(part, api, {}, &status, &entity_id);
      out += "--" + response_boundary + "\r\n" + http_part(answer, "");
      if (status >= 400 && !continue_on_error) {
        batch_status = status;
        break;
      }
    }
    out += "--" + response_boundary + "--\r\n";
    res.status = batch_status;
    res.set_content(out, ("multipart/mixed; boundary=" + response_boundary).c_str());
    return std::nullopt;
  }

  // CreateMultiple, UpdateMultiple and UpsertMultiple on a standard table (2nd pass §"Bulk
  // messages"): every target carries @odata.type of the set's table; all or nothing, so the
  // store is restored when any target fails. UpsertMultiple names each row with @odata.id (a
  // relative key URL) and answers 204; CreateMultiple answers the new Ids.
  MaybeError BulkAction(Table& table, const std::string& action, const httplib::Request& req,
                        httplib::Response& res, const std::string& api) {
    auto body = ParseBody(req);
    if (!body || !body->contains("Targets") || !(*body)["Targets"].is_array())
      return Err(400, kCodePayload, "The request body must hold a Targets collection.");
    const std::string type = table.schema->qualified_type();
    const auto saved_tables = tables_;
    const auto saved_version = version_;
    const size_t saved_steps = steps_.size();
    auto fail = [&](ApiError e) -> MaybeError {
      tables_ = saved_tables;
      version_ = saved_version;
      steps_.resize(saved_steps);
      return e;
    };
    Table& t = tables_.at(table.schema->set);
    json ids = json::array();
    for (const json& target : (*body)["Targets"]) {
      if (!target.is_object() || target.value("@odata.type", "") != type)
        return fail(Err(400, kCodePayload,
                        "Every item in Targets must carry \"@odata.type\": \"" + type + "\"."));
      json fields = target;
      fields.erase("@odata.type");
      const std::string odata_id = target.value("@odata.id", "");
      fields.erase("@odata.id");
      const std::string pk = table.schema->primary_key;
      std::string id;
      if (action == "CreateMultiple") {
        if (auto e = CreateRow(t, fields, nullptr, &id)) return fail(*e);
        ids.push_back(id);
        continue;
      }
      std::optional<KeySpec> key;
      if (!odata_id.empty()) {
        std::string rest = odata_id;
        if (auto at = rest.find(table.schema->set + "("); at != std::string::npos) rest = rest.substr(at);
        auto path = ParsePath(rest);
        if (!path || path->set != table.schema->set || !path->has_key)
          return fail(Err(400, kCodePayload, "@odata.id '" + odata_id + "' does not name a " +
                                                 table.schema->logical_name + " row."));
        auto parsed = ParseKey(path->key_text, *table.schema);
        if (std::holds_alternative<ApiError>(parsed)) return fail(std::get<ApiError>(parsed));
        key = std::get<KeySpec>(parsed);
      } else if (fields.contains(pk) && fields[pk].is_string()) {
        auto parsed = ParseKey(fields[pk].get<std::string>(), *table.schema);
        if (std::holds_alternative<ApiError>(parsed)) return fail(std::get<ApiError>(parsed));
        key = std::get<KeySpec>(parsed);
      } else {
        return fail(Err(400, kCodePayload, action + " needs each target's key (@odata.id or " + pk + ")."));
      }
      Row* existing = FindRow(t, *key);
      if (existing != nullptr) {
        std::set<std::string> ignore;
        for (const auto& [name, value] : key->values) ignore.insert(name);
        if (auto e = UpdateRow(t, existing, fields, ignore)) return fail(*e);
      } else if (action == "UpdateMultiple") {
        return fail(NotFound(t, *key));
      } else if (auto e = CreateRow(t, fields, &*key, &id)) {
        return fail(*e);
      }
    }
    if (action == "CreateMultiple") {
      ojson out;
      out["@odata.context"] = api + "$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse";
      out["Ids"] = ojson::array();
      for (const json& id : ids) out["Ids"].push_back(id.get<std::string>());
      SendJson(res, 200, out);
    } else {
      res.status = 204;
    }
    return std::nullopt;
  }

  MaybeError Delete(Table& table, const KeySpec& key, const httplib::Request& req,
                    httplib::Response& res) {
    Row* row = FindRow(table, key);
    if (row == nullptr) return NotFound(table, key);
    const std::string if_match = Trim(req.get_header_value("If-Match"));
    if (!if_match.empty() && if_match != "*" && if_match != EtagOf(VersionOf(*row))) {
      return Err(412, kCodeVersionMismatch,
                 "The version of the existing record doesn't match the RowVersion property "
                 "provided.");
    }
    DeleteRow(table, ValueOr(*row, table.schema->primary_key).get<std::string>());
    res.status = 204;
    return std::nullopt;
  }

  // The unbound Merge action (accounts and contacts): the Subordinate row is deactivated
  // (statecode 1, statuscode 2), marked merged, and its masterid points at the Target; the rows
  // whose lookups point at the subordinate are re-parented to the target; the target takes
  // UpdateContent's columns. No content: 204.
  MaybeError MergeAction(const httplib::Request& req, httplib::Response& res) {
    auto body = ParseBody(req);
    if (!body) return BadPayload();
    auto entity = [&](const char* name) -> const json* {
      auto it = body->find(name);
      return it != body->end() && it->is_object() ? &*it : nullptr;
    };
    const json* target = entity("Target");
    const json* subordinate = entity("Subordinate");
    if (target == nullptr || subordinate == nullptr || !body->contains("PerformParentingChecks"))
      return Err(400, kCodePayload,
                 "Merge needs Target, Subordinate and PerformParentingChecks.");
    const std::string type = target->value("@odata.type", std::string());
    Table* table = nullptr;
    for (auto& [set, t] : tables_)
      if ("Microsoft.Dynamics.CRM." + t.schema->logical_name == type) table = &t;
    if (table == nullptr ||
        (table->schema->logical_name != "account" && table->schema->logical_name != "contact"))
      return Err(400, kCodePayload, "Merge is not supported for '" + type + "'.");
    if (subordinate->value("@odata.type", std::string()) != type)
      return Err(400, kCodePayload, "Target and Subordinate must be of one type.");
    const std::string pk = table->schema->primary_key;
    const std::string target_id = target->value(pk, std::string());
    const std::string sub_id = subordinate->value(pk, std::string());
    auto missing = [&](const std::string& id) {
      return Err(404, kCodeNotFound,
                 table->schema->logical_name + " With Id = " + id + " Does Not Exist");
    };
    auto master = table->rows.find(target_id);
    if (master == table->rows.end()) return missing(target_id);
    auto sub = table->rows.find(sub_id);
    if (sub == table->rows.end()) return missing(sub_id);
    if (target_id == sub_id)
      return Err(400, kCodeValidation, "A record cannot be merged with itself.");
    if (ValueOr(sub->second, "statecode") != 0 || ValueOr(master->second, "statecode") != 0)
      return Err(400, kCodeValidation, "Only active records can be merged.");
    json content = json::object();
    if (const json* update = entity("UpdateContent"))
      for (const auto& [name, value] : update->items())
        if (name.find('@') == std::string::npos && name != pk) content[name] = value;
    if (auto e = UpdateRow(*table, &master->second, content, {})) return e;
    // The subordinate: inactive, merged, pointing at its master (read-only columns, set here).
    Row updated = sub->second;
    updated.values["statecode"] = 1;
    updated.values["statuscode"] = 2;
    updated.values["merged"] = true;
    updated.values["_masterid_value"] = target_id;
    updated.navs["_masterid_value"] = "masterid";
    Touch(&updated);
    RecordUpdate(*table, sub_id, sub->second, updated);
    Index(*table, sub_id, sub->second, false);
    sub->second = std::move(updated);
    Index(*table, sub_id, sub->second, true);
    // Its children follow the master.
    ForEachLookupTo(*table, sub_id, [&](Table& other, const std::string& other_id, Row& row,
                                        const Column& column, const std::string& property) {
      if (&other == table && (other_id == sub_id || other_id == target_id)) return;
      if (column.name == "masterid") return;
      Row moved = row;
      moved.values[property] = target_id;
      Touch(&moved);
      RecordUpdate(other, other_id, row, moved);
      row = std::move(moved);
    });
    res.status = 204;
    return std::nullopt;
  }

  // DELETE {set}({key})/{nav}/$ref clears a lookup; DELETE {set}({key})/{column} clears a column
  // (reference.md §5, §6).
  MaybeError ClearProperty(Table& table, const KeySpec& key, const std::string& tail,
                           httplib::Response& res) {
    const TableSchema& schema = *table.schema;
    Row* row = FindRow(table, key);
    if (row == nullptr) return NotFound(table, key);
    std::string name = tail.substr(1);
    const std::string ref_suffix = "/$ref";
    Row updated = *row;
    if (name.size() > ref_suffix.size() &&
        name.compare(name.size() - ref_suffix.size(), ref_suffix.size(), ref_suffix) == 0) {
      const std::string nav = name.substr(0, name.size() - ref_suffix.size());
      const Column* column = nullptr;
      const LookupTarget* target = nullptr;
      if (!schema.FindNavigation(nav, &column, &target)) {
        return Err(404, kCodeSegment, "Resource not found for the segment '" + nav + "'.");
      }
      updated.values[column->property()] = nullptr;
      updated.navs.erase(column->property());
    } else {
      const Column* column = schema.FindByName(name);
      if (column == nullptr || column->type == ColumnType::kLookup ||
          name == schema.primary_key) {
        return Err(404, kCodeSegment, "Resource not found for the segment '" + name + "'.");
      }
      if (!column->read_only) updated.values[name] = nullptr;
    }
    const std::string id = ValueOr(*row, schema.primary_key).get<std::string>();
    Touch(&updated);
    RecordUpdate(table, id, *row, updated);
    Index(table, id, *row, false);
    *row = std::move(updated);
    Index(table, id, *row, true);
    res.status = 204;
    return std::nullopt;
  }

  // --- audit history ("Retrieve the history of audited data changes") ---------------------------

  // A table's own auditing switch (its IsAuditEnabled), whatever the organisation's. The audit
  // table is never audited.
  bool TableAuditSettingLocked(const TableSchema& schema) const {
    return schema.set != "audits" && audit_off_.count(schema.logical_name) == 0;
  }

  // The key and the columns the platform sets on every write are not audited.
  static bool ColumnAuditable(const TableSchema& schema, const Column& column) {
    return schema.set != "audits" && column.name != schema.primary_key &&
           column.name != "createdon" && column.name != "modifiedon" &&
           column.name != "versionnumber";
  }

  // A column's own auditing switch (its IsAuditEnabled).
  bool ColumnAuditSettingLocked(const TableSchema& schema, const Column& column) const {
    return ColumnAuditable(schema, column) &&
           audit_off_.count(schema.logical_name + "." + column.name) == 0;
  }

  // Audit ids lead with a count of the audit rows written, so that they sort in the order the
  // writes happened: the mock orders by the sort keys and then by the primary key, and audit rows
  // written in one second share their createdon.
  std::string NewAuditIdLocked() {
    uint64_t a = audit_rng_(), b = audit_rng_();
    return d365::FormatGuid((static_cast<uint64_t>(++audit_seq_) << 32) | (a & 0xFFFFFFFFULL), b);
  }

  // Writes the audit row of a write to row `id` of `schema`'s table, dated `at` (seconds): a
  // create (`after` is the row made: its non-null audited columns are the new values), an update
  // (`before` and `after`: the audited columns that changed; none changed, no row), or a delete
  // (no details). Only while auditing is on for the organisation and the table, as in Dataverse.
  // Its user is the caller: the application user every request of the mock runs as.
  void AuditLocked(const TableSchema& schema, const std::string& id, int action, const Row* before,
                   const Row* after, int64_t at) {
    if (seeding_ || !audit_enabled_ || !TableAuditSettingLocked(schema)) return;
    json old_values = json::object(), new_values = json::object();
    if (action != kAuditDelete) {
      for (const Column& column : schema.columns) {
        if (!ColumnAuditSettingLocked(schema, column)) continue;
        const std::string property = column.property();
        const json& value = ValueOr(*after, property);
        if (before == nullptr) {
          if (!value.is_null()) new_values[property] = value;
        } else if (ValueOr(*before, property) != value) {
          old_values[property] = ValueOr(*before, property);
          new_values[property] = value;
        }
      }
      if (action == kAuditUpdate && new_values.empty()) return;
    }
    Row audit;
    const std::string audit_id = NewAuditIdLocked();
    audit.values = {{"auditid", audit_id},
                    {"createdon", d365::FormatIsoDateTime(at)},
                    {"action", action},
                    {"operation", action},
                    {"objecttypecode", schema.logical_name},
                    {"_objectid_value", id},
                    {"_userid_value", kApplicationUserId}};
    audit.navs["_userid_value"] = "userid";
    audit.detail = {{"old", std::move(old_values)}, {"new", std::move(new_values)}};
    tables_.at("audits").rows[audit_id] = std::move(audit);
  }

  // GET audits (a query as on any table, without change tracking), audits({id}), and
  // audits({id})/Microsoft.Dynamics.CRM.RetrieveAuditDetails(): the history is read-only.
  MaybeError Audits(const std::string& method, const PathSpec& path, const httplib::Request& req,
                    httplib::Response& res, const std::string& api) {
    Table& audits = tables_.at("audits");
    if (method != "GET") return MethodNotAllowed(method);
    if (!path.has_key) {
      if (path.tail == "/$count") return Count(audits, res);
      if (!path.tail.empty()) {
        return Err(404, kCodeSegment,
                   "Resource not found for the segment '" + path.tail.substr(1) + "'.");
      }
      if (ParsePrefer(req).track_changes || req.has_param("$deltatoken")) {
        return Err(400, kCodeQuery, "Change tracking is not enabled for the entity 'audit'.");
      }
      return GetCollection(audits, req, res, api);
    }
    auto parsed = ParseKey(path.key_text, *audits.schema);
    if (std::holds_alternative<ApiError>(parsed)) return std::get<ApiError>(parsed);
    const KeySpec& key = std::get<KeySpec>(parsed);
    if (path.tail.empty()) return GetOne(audits, key, req, res, api);
    const std::string function = "/Microsoft.Dynamics.CRM.RetrieveAuditDetails";
    if (path.tail != function && path.tail != function + "()") {
      return Err(404, kCodeSegment,
                 "Resource not found for the segment '" + path.tail.substr(1) + "'.");
    }
    const Row* audit = FindRow(audits, key);
    if (audit == nullptr) return NotFound(audits, key);
    ojson detail;
    if (ValueOr(*audit, "action") == kAuditDelete) {
      detail["@odata.type"] = "#Microsoft.Dynamics.CRM.AuditDetail";  // a delete has no values
    } else {
      const std::string logical = ValueOr(*audit, "objecttypecode").get<std::string>();
      const TableSchema* schema = nullptr;
      for (const TableSchema& t : d365::DefaultTables()) {
        if (t.logical_name == logical) schema = &t;
      }
      // The row's values as an entity of its table, in the table's column order.
      auto entity = [&](const json& values) {
        ojson out;
        out["@odata.type"] = "#Microsoft.Dynamics.CRM." + logical;
        for (const Column& column : schema->columns) {
          auto it = values.find(column.property());
          if (it != values.end()) out[column.property()] = *it;
        }
        return out;
      };
      detail["@odata.type"] = "#Microsoft.Dynamics.CRM.AttributeAuditDetail";
      detail["OldValue"] = entity(audit->detail.at("old"));
      detail["NewValue"] = entity(audit->detail.at("new"));
      detail["InvalidNewValueAttributes"] = ojson::array();
      detail["LocLabelLanguageCode"] = 0;
      detail["DeletedAttributes"] = ojson::array();
    }
    ojson body;
    body["@odata.context"] = api + "$metadata#Microsoft.Dynamics.CRM.RetrieveAuditDetailsResponse";
    body["AuditDetail"] = std::move(detail);
    SendJson(res, 200, body);
    return std::nullopt;
  }

  // GET organizations: the organisation's one row, its id and whether auditing is on for it
  // (isauditenabled), with $select; organizations({id}) reads that row alone.
  MaybeError Organizations(const std::string& method, const PathSpec& path,
                           const httplib::Request& req, httplib::Response& res,
                           const std::string& api) {
    const TableSchema& schema = d365::OrganizationTable();
    if (method != "GET") return MethodNotAllowed(method);
    if (!path.tail.empty()) {
      return Err(404, kCodeSegment,
                 "Resource not found for the segment '" + path.tail.substr(1) + "'.");
    }
    std::optional<std::vector<std::string>> select;
    if (auto e = ReadSelect(req, schema, &select)) return e;
    const std::vector<std::string>* sel = select ? &*select : nullptr;
    ojson organization;
    organization["organizationid"] = kOrganizationId;
    if (sel == nullptr || std::find(sel->begin(), sel->end(), "isauditenabled") != sel->end()) {
      organization["isauditenabled"] = audit_enabled_;
    }
    ojson body;
    if (path.has_key) {
      const std::string key = d365::ToLowerAscii(Trim(path.key_text));
      if (key != kOrganizationId) {
        return Err(404, kCodeNotFound, "organization With Id = " + key + " Does Not Exist");
      }
      body["@odata.context"] = Context(api, schema, sel) + "/$entity";
      for (auto& item : organization.items()) body[item.key()] = item.value();
    } else {
      body["@odata.context"] = Context(api, schema, sel);
      body["value"] = ojson::array();
      body["value"].push_back(std::move(organization));
    }
    SendJson(res, 200, body);
    return std::nullopt;
  }

  // Table and column metadata, as far as auditing asks for it: GET EntityDefinitions, one table by
  // (LogicalName='x') or its MetadataId, and its Attributes likewise, with $select (MetadataId and
  // LogicalName always come). IsAuditEnabled is the table's or column's own switch, a managed
  // property; the key and the platform's columns are never audited and cannot be.
  MaybeError EntityDefinitions(const std::string& method, const PathSpec& path,
                               const httplib::Request& req, httplib::Response& res,
                               const std::string& api) {
    static const TableSchema kEntityMetadata = MetadataType(
        "EntityMetadata",
        {"MetadataId", "LogicalName", "EntitySetName", "PrimaryIdAttribute", "IsAuditEnabled"});
    static const TableSchema kAttributeMetadata = MetadataType(
        "AttributeMetadata", {"MetadataId", "LogicalName", "EntityLogicalName", "IsAuditEnabled"});
    if (method != "GET") return MethodNotAllowed(method);
    auto segment = [](const std::string& tail) {
      return Err(404, kCodeSegment, "Resource not found for the segment '" + tail.substr(1) + "'.");
    };
    std::optional<PathSpec> attributes;
    if (path.has_key && !path.tail.empty()) {
      attributes = ParsePath(path.tail.substr(1));
      if (!attributes || attributes->set != "Attributes" || !attributes->tail.empty())
        return segment(path.tail);
    } else if (!path.tail.empty()) {
      return segment(path.tail);
    }
    std::optional<std::vector<std::string>> select;
    if (auto e = ReadSelect(req, attributes ? kAttributeMetadata : kEntityMetadata, &select))
      return e;
    auto wanted = [&](const char* property) {
      return !select || std::find(select->begin(), select->end(), property) != select->end();
    };
    std::string selected;
    if (select) {
      for (const std::string& p : *select) selected += (selected.empty() ? "" : ",") + p;
      selected = "(" + selected + ")";
    }
    auto setting = [](bool on, bool can_change) {
      ojson out;
      out["Value"] = on;
      out["CanBeChanged"] = can_change;
      out["ManagedPropertyLogicalName"] = "canmodifyauditsettings";
      return out;
    };
    auto entity = [&](const TableSchema& t) {
      ojson out;
      out["MetadataId"] = NameGuid("EntityMetadata/" + t.logical_name);
      out["LogicalName"] = t.logical_name;
      if (wanted("EntitySetName")) out["EntitySetName"] = t.set;
      if (wanted("PrimaryIdAttribute")) out["PrimaryIdAttribute"] = t.primary_key;
      if (wanted("IsAuditEnabled"))
        out["IsAuditEnabled"] = setting(TableAuditSettingLocked(t), t.set != "audits");
      return out;
    };
    auto attribute = [&](const TableSchema& t, const Column& c) {
      ojson out;
      out["MetadataId"] = NameGuid("AttributeMetadata/" + t.logical_name + "/" + c.name);
      out["LogicalName"] = c.name;
      if (wanted("EntityLogicalName")) out["EntityLogicalName"] = t.logical_name;
      if (wanted("IsAuditEnabled"))
        out["IsAuditEnabled"] = setting(ColumnAuditSettingLocked(t, c), ColumnAuditable(t, c));
      return out;
    };
    auto send = [&](const std::string& context, ojson one) {
      ojson body;
      body["@odata.context"] = context;
      for (auto& item : one.items()) body[item.key()] = item.value();
      SendJson(res, 200, body);
      return std::nullopt;
    };
    if (!path.has_key) {
      ojson body;
      body["@odata.context"] = api + "$metadata#EntityDefinitions" + selected;
      body["value"] = ojson::array();
      for (const TableSchema& t : d365::DefaultTables()) body["value"].push_back(entity(t));
      SendJson(res, 200, body);
      return std::nullopt;
    }
    const std::string table_name = MetadataKeyName(path.key_text);
    const TableSchema* table = nullptr;
    for (const TableSchema& t : d365::DefaultTables()) {
      if (table_name == t.logical_name ||
          d365::ToLowerAscii(table_name) == NameGuid("EntityMetadata/" + t.logical_name))
        table = &t;
    }
    if (table == nullptr) {
      return Err(404, kCodeNotFound, "Could not find an entity with name " + table_name + ".");
    }
    if (!attributes)
      return send(api + "$metadata#EntityDefinitions" + selected + "/$entity", entity(*table));
    const std::string context = api + "$metadata#EntityDefinitions('" +
                                NameGuid("EntityMetadata/" + table->logical_name) +
                                "')/Attributes" + selected;
    if (!attributes->has_key) {
      ojson body;
      body["@odata.context"] = context;
      body["value"] = ojson::array();
      for (const Column& c : table->columns) body["value"].push_back(attribute(*table, c));
      SendJson(res, 200, body);
      return std::nullopt;
    }
    const std::string column_name = MetadataKeyName(attributes->key_text);
    for (const Column& c : table->columns) {
      if (column_name == c.name ||
          d365::ToLowerAscii(column_name) ==
              NameGuid("AttributeMetadata/" + table->logical_name + "/" + c.name))
        return send(context + "/$entity", attribute(*table, c));
    }
    return Err(404, kCodeNotFound, "Could not find an attribute with name " + column_name +
                                       " on entity " + table->logical_name + ".");
  }

  // Applies a POST /__admin/auditing body: the error, or "" once applied.
  std::string SetAuditing(const json& body) {
    if (!body.is_object() || !body.contains("enabled") || !body["enabled"].is_boolean()) {
      return "expected {\"enabled\": true|false}, with \"table\" (a logical name) and \"column\" "
             "to name one table or one column";
    }
    for (const char* name : {"table", "column"}) {
      if (body.contains(name) && !body[name].is_string())
        return std::string("\"") + name + "\" must be a string";
    }
    const bool on = body["enabled"].get<bool>();
    const std::string table = body.value("table", ""), column = body.value("column", "");
    std::lock_guard<std::mutex> lock(mu_);
    if (table.empty()) {
      if (!column.empty()) return "\"column\" needs its \"table\"";
      audit_enabled_ = on;
      return "";
    }
    const TableSchema* schema = nullptr;
    for (const TableSchema& t : d365::DefaultTables()) {
      if (t.logical_name == table && t.set != "audits") schema = &t;
    }
    if (schema == nullptr) return "no table '" + table + "' whose auditing can be changed";
    std::string key = table;
    if (!column.empty()) {
      const Column* c = schema->FindByName(column);
      if (c == nullptr || !ColumnAuditable(*schema, *c))
        return "no column '" + column + "' of '" + table + "' whose auditing can be changed";
      key += "." + column;
    }
    if (on) {
      audit_off_.erase(key);
    } else {
      audit_off_.insert(key);
    }
    return "";
  }

  // Gives seeded opportunity `id` its past (see Seed).
  void BackdateStagesLocked(const std::string& id, int64_t now, std::mt19937_64* rng);

  friend class Dynamics365Mock;

  Dynamics365Mock* owner_;
  const Options options_;
  // The thumbprints of options_.certificate_pem; nullopt when no certificate is registered.
  const std::optional<CertificateThumbprints> registered_;
  Clock* const clock_;

  mutable std::mutex mu_;  // guards everything below except the throttle state
  std::map<std::string, Table> tables_;
  int64_t version_ = 0;  // last row version handed out, across all tables (like rowversion)
  std::mt19937_64 rng_;
  std::mt19937_64 audit_rng_;  // the random part of audit ids (row ids keep their own sequence)
  uint32_t audit_seq_ = 0;     // audit rows written since the last reset
  // Auditing: Dataverse's three switches (organisation, table, column), all on until an admin
  // turns one off; audit_off_ holds the tables ("opportunity") and columns ("opportunity.name")
  // whose switch is off.
  bool audit_enabled_ = true;
  std::set<std::string> audit_off_;
  // Set while the seed makes its rows: they were never written through the API, so they write no
  // audit rows (the seed dates the opportunities' history itself).
  bool seeding_ = false;
  std::map<std::string, int64_t> tokens_;  // access token -> expiry (ms since epoch)
  // The steps the request being served ran (Create, Update, Delete of a row), delivered once it
  // is done; a rolled-back change set or bulk action takes its steps back.
  struct Step {
    std::string message, logical_name, id;
    json attributes;
  };
  std::vector<Step> steps_;
  Dynamics365WebhookSender webhooks_;  // last: its thread stops before the rest goes

  std::mutex throttle_mu_;
  std::deque<int64_t> window_;  // admission times (ms) inside the sliding window
  std::atomic<int> in_flight_{0};
};

void Dynamics365Mock::Impl::Seed(uint64_t seed, int accounts) {
  static const char* kCompanies[] = {"Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip",
                                     "Litware",   "Proseware", "Adatum",  "Woodgrove", "Lamna"};
  static const char* kKinds[] = {"Properties", "Realty", "Homes", "Living", "Estates"};
  static const char* kFirst[] = {"Anna", "Erik", "Maria", "Johan", "Sara",
                                 "Lars", "Emma", "Nils",  "Ida",   "Oskar"};
  static const char* kLast[] = {"Lindqvist", "Berg", "Holm",    "Nyberg", "Sandberg",
                                "Ek",        "Dahl", "Forsberg", "Lund",  "Strand"};
  Reset();
  std::lock_guard<std::mutex> lock(mu_);
  std::mt19937_64 saved = rng_;
  rng_.seed(seed);
  seeding_ = true;
  auto pick = [&](auto& list) { return list[rng_() % (sizeof(list) / sizeof(list[0]))]; };
  char buf[64];
  const int64_t now = NowSeconds();
  std::vector<std::string> opportunities;
  for (int i = 0; i < accounts; ++i) {
    std::string account_id;
    std::string name = std::string(pick(kCompanies)) + " " + pick(kKinds) + " " +
                       std::to_string(i + 1);
    std::snprintf(buf, sizeof(buf), "ACC-%05d", i + 1);
    std::string domain = d365::ToLowerAscii(name.substr(0, name.find(' '))) +
                         std::to_string(i + 1) + ".example.com";
    json account = {{"name", name},
                    {"accountnumber", buf},
                    {"crmb_activateportalaccess", rng_() % 2 == 0},
                    {"websiteurl", "https://www." + domain},
                    {"telephone1", "+46 8 555 " + std::to_string(1000 + i % 9000)},
                    {"customertypecode", 3}};
    CreateRow(tables_.at("accounts"), account, nullptr, &account_id);

    const int contacts = 1 + static_cast<int>(rng_() % 3);
    for (int c = 0; c < contacts; ++c) {
      std::string first = pick(kFirst), last = pick(kLast);
      std::string email = d365::ToLowerAscii(first + "." + last) + "@" + domain;
      bool portal = rng_() % 2 == 0;
      json contact = {{"firstname", first},
                      {"lastname", last},
                      {"emailaddress1", email},
                      {"crmb_portalaccess", portal},
                      {"crmb_portalemail", portal ? json(email) : json(nullptr)},
                      {"crmb_mainproperty", portal ? json("Property " + std::to_string(i + 1))
                                                   : json(nullptr)},
                      {"parentcustomerid_account@odata.bind", "/accounts(" + account_id + ")"}};
      std::string contact_id;
      CreateRow(tables_.at("contacts"), contact, nullptr, &contact_id);
    }

    json opportunity = {
        {"name", "Onboarding - " + name},
        {"description", "Customer onboarding"},
        {"crmb_onboardingstage", 100000000 + i % 5},
        {"crmb_priority", 1 + static_cast<int>(rng_() % 3)},
        {"estimatedclosedate", d365::FormatIsoDateTime(now + (1 + i % 10) * 7 * 86400)},
        {"parentaccountid@odata.bind", "/accounts(" + account_id + ")"}};
    std::string opportunity_id;
    CreateRow(tables_.at("opportunities"), opportunity, nullptr, &opportunity_id);
    opportunities.push_back(opportunity_id);
  }
  steps_.clear();  // seeded rows were never written through the API: no step runs for them
  seeding_ = false;
  rng_ = saved;
  // The opportunities' pasts, from generators of their own so that the rows seeded stay what
  // they were.
  std::mt19937_64 history_rng(seed ^ 0x5eedad17ULL);
  const std::mt19937_64 saved_audit_rng = audit_rng_;
  audit_rng_.seed(seed ^ 0xa0d17ULL);
  for (const std::string& id : opportunities) BackdateStagesLocked(id, now, &history_rng);
  audit_rng_ = saved_audit_rng;
}

// A seeded opportunity has been onboarding for weeks: it was created at the first stage 20 to 60
// days ago and walked the stages up to its own, 2 to 14 days apart, reaching its stage at least a
// day ago. Its audit history says so (a create row, then an update row per stage), and its
// createdon and modifiedon agree with that history.
void Dynamics365Mock::Impl::BackdateStagesLocked(const std::string& id, int64_t now,
                                                 std::mt19937_64* rng) {
  constexpr int64_t kFirstStage = 100000000;
  constexpr int64_t kDay = 86400;
  Table& table = tables_.at("opportunities");
  Row& row = table.rows.at(id);
  const int64_t reached = ValueOr(row, "crmb_onboardingstage").get<int64_t>() - kFirstStage;
  int64_t at = now - (20 + static_cast<int64_t>((*rng)() % 41)) * kDay;
  Row before = row;
  before.values["crmb_onboardingstage"] = kFirstStage;
  row.values["createdon"] = d365::FormatIsoDateTime(at);
  AuditLocked(*table.schema, id, kAuditCreate, nullptr, &before, at);
  for (int64_t stage = 1; stage <= reached; ++stage) {
    at += (2 + static_cast<int64_t>((*rng)() % 13)) * kDay;
    at = std::min(at, now - kDay - (reached - stage) * 3600);
    Row after = before;
    after.values["crmb_onboardingstage"] = kFirstStage + stage;
    AuditLocked(*table.schema, id, kAuditUpdate, &before, &after, at);
    before = std::move(after);
  }
  row.values["modifiedon"] = d365::FormatIsoDateTime(at);
}

void Dynamics365Mock::Impl::AddCustomers(const std::vector<SeedCustomer>& customers) {
  std::lock_guard<std::mutex> lock(mu_);
  seeding_ = true;
  // As a person types it into another system: the same address, its first letter capitalised.
  auto typed = [](std::string email) {
    if (!email.empty()) email[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(email[0])));
    return email;
  };
  for (const SeedCustomer& customer : customers) {
    json account = {{"name", customer.name},
                    {"websiteurl", "https://www." + customer.domain + "/"},
                    {"address1_city", customer.city},
                    {"crmb_activateportalaccess", false},
                    {"customertypecode", 3}};
    std::string account_id;
    CreateRow(tables_.at("accounts"), account, nullptr, &account_id);
    std::vector<SeedCustomer::Person> people = customer.people;
    people.push_back({"Kim", "Dynamics", "kim.dynamics@" + customer.domain});  // here alone
    for (const SeedCustomer::Person& person : people) {
      json contact = {{"firstname", person.first_name},
                      {"lastname", person.last_name},
                      {"emailaddress1", typed(person.email)},
                      {"crmb_portalaccess", false},
                      {"parentcustomerid_account@odata.bind", "/accounts(" + account_id + ")"}};
      std::string contact_id;
      CreateRow(tables_.at("contacts"), contact, nullptr, &contact_id);
    }
  }
  steps_.clear();  // seeded rows were never written through the API: no step runs for them
  seeding_ = false;
}

// ------------------------------------------------------------------------------------------------

Dynamics365Mock::Dynamics365Mock(Options options)
    : MockServer("dynamics365"), impl_(std::make_unique<Impl>(this, std::move(options))) {}

Dynamics365Mock::~Dynamics365Mock() {
  // Handlers reference impl_; stop serving before it goes.
  Stop();
}

std::string Dynamics365Mock::api_url() const { return base_url() + kApiPath; }

std::string Dynamics365Mock::token_url() const {
  return base_url() + "/" + impl_->options_.tenant + "/oauth2/v2.0/token";
}

void Dynamics365Mock::Seed(uint64_t seed, int accounts) { impl_->Seed(seed, accounts); }

void Dynamics365Mock::AddCustomers(const std::vector<SeedCustomer>& customers) {
  impl_->AddCustomers(customers);
}

nlohmann::json Dynamics365Mock::Dump() const { return impl_->Dump(); }

void Dynamics365Mock::Reset() { impl_->Reset(); }

void Dynamics365Mock::RegisterRoutes(httplib::Server& server) { impl_->Register(server); }

// The nextLink becomes the URL of the page just served.
bool Dynamics365Mock::LoopPaging(const httplib::Request& req, nlohmann::json* body) const {
  if (!body->contains("@odata.nextLink")) return false;
  const std::string host = req.get_header_value("Host");
  (*body)["@odata.nextLink"] = (host.empty() ? base_url() : "http://" + host) + req.target;
  return true;
}

nlohmann::json Dynamics365Mock::FaultBody(int status, const std::string& message) const {
  if (status == 429)
    return {{"error",
             {{"code", "0x80072322"},
              {"message",
               "Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}}};
  return {{"error", {{"code", ""}, {"message", message}}}};
}

}  // namespace crmbridge::mocks
