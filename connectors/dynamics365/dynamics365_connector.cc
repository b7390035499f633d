#include "connectors/dynamics365/dynamics365_connector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "connectors/dynamics365/dynamics365_codec.h"
#include "connectors/dynamics365/dynamics365_errors.h"
#include "connectors/dynamics365/dynamics365_limits.h"
#include "src/core/json_text.h"
#include "src/core/ids.h"
#include "src/core/redaction.h"
#include "src/core/time_util.h"
#include "src/core/url.h"
#include "src/core/utf8.h"

namespace crmbridge {

using dynamics365::PercentEncode;
using nlohmann::json;

namespace {

// An empty param is one not given, as the mapping loader takes it.
std::string Param(const ObjectRef& object, const std::string& name, const std::string& fallback) {
  auto it = object.params.find(name);
  return it == object.params.end() || it->second.empty() ? fallback : it->second;
}

// The alternate-key column crmbridge upserts by: params.key, else the one it declares by default.
constexpr const char* kDefaultKeyColumn = "crmb_externalid";
std::string KeyColumn(const ObjectRef& object) { return Param(object, "key", kDefaultKeyColumn); }

// Whether the mapping reads or writes the row's owner.
bool MapsOwner(const ObjectRef& object) {
  return std::find(object.fields.begin(), object.fields.end(), dynamics365::kOwnerColumn) !=
         object.fields.end();
}

// A table whose rows crmbridge only ever creates (params create_only: "true").
bool CreateOnly(const ObjectRef& object) { return Param(object, "create_only", "false") == "true"; }

// The columns a mapping names by params (key, primary_key) go into URLs as they are.
Status CheckColumnParams(const ObjectRef& object) {
  return CheckNameParams(Dynamics365Connector::KindCapabilities(), object, "dynamics365",
                         "column name");
}

// The row of `object` with crmbridge key `key`, by the alternate key, selecting its primary key
// and the key: the row an answer carries is then known to be this one (WriteResult).
std::string KeyPath(const ObjectRef& object, const std::string& key) {
  const std::string key_column = KeyColumn(object);
  return dynamics365::AlternateKeySegment(object.object, key_column, key) + "?$select=" +
         Param(object, "primary_key", dynamics365::PrimaryKeyOf(object.object)) + "," +
         key_column;
}

// Headers every Web API request carries (refs/dynamics365/reference.md §2). `If-None-Match: null`
// (a no-op condition, not `*`) defeats cached results; it is sent on reads only, so that no write
// ever carries an If-None-Match a server could take for create-only.
void AddODataHeaders(Request* r) {
  r->headers.emplace_back("Accept", "application/json");
  r->headers.emplace_back("OData-MaxVersion", "4.0");
  r->headers.emplace_back("OData-Version", "4.0");
  if (r->method == "GET") r->headers.emplace_back("If-None-Match", "null");
  if (!r->body.empty() && !FindHeader(r->headers, "Content-Type"))
    r->headers.emplace_back("Content-Type", "application/json");
}

// The columns to $select: a lookup is selected as its value property, _name_value
// (RecordFromRow gives it back under its name).
std::vector<std::string> SelectColumns(const ObjectRef& object) {
  std::vector<std::string> cols;
  for (const std::string& f : object.fields)
    cols.push_back(object.ref_fields.count(f) || f == dynamics365::kOwnerColumn
                       ? "_" + f + "_value"
                       : f);
  return cols;
}

// The $select of a read: the mapping's columns, the primary key, modifiedon and the key column.
std::string SelectList(const ObjectRef& object, const std::string& pk, const std::string& key_column) {
  std::vector<std::string> cols = SelectColumns(object);
  cols.push_back(pk);
  cols.push_back("modifiedon");
  if (!key_column.empty()) cols.push_back(key_column);
  if (dynamics365::Merges(object.object)) {
    // Tells a row the Merge action absorbed (NativeRecord::merged_into).
    cols.push_back("merged");
    cols.push_back("_masterid_value");
  }
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  std::string select;
  for (const auto& c : cols) select += (select.empty() ? "" : ",") + c;
  return select;
}

// A row id as Dataverse gives them (a GUID): anything else never goes into a URL.
bool IsGuid(const std::string& id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? id[i] != '-' : !std::isxdigit(static_cast<unsigned char>(id[i]))) return false;
  }
  return true;
}

// A cursor that is a delta link (as opposed to a nextLink of a read in progress).
bool IsDeltaLink(const std::string& cursor) {
  return cursor.find("deltatoken=") != std::string::npos;
}

// Whether `link` (an answer's nextLink or deltaLink, or a cursor made of one) leads to the
// organisation at `base_url`: that URL, compared without case, then a path or a query. Every
// request carries the organisation's token, so a link anywhere else is never followed.
bool OnOrganisation(const std::string& link, std::string base_url) {
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  if (base_url.empty() || link.size() <= base_url.size()) return false;
  for (size_t i = 0; i < base_url.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(link[i])) !=
        std::tolower(static_cast<unsigned char>(base_url[i])))
      return false;
  return link[base_url.size()] == '/' || link[base_url.size()] == '?';
}

// `link` as a URL that can be sent: spaces, control characters and bytes beyond ASCII
// percent-encoded (what they stand for in a URL), everything else as Dataverse wrote it.
std::string SendableLink(const std::string& link) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(link.size());
  for (unsigned char c : link) {
    if (c > 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0x0f];
    }
  }
  return out;
}

}  // namespace

Status Dynamics365Connector::Fail(const Response& response, const std::string& what) const {
  // Called on any answer but the one expected: never OK.
  Status s = Unexpected(dynamics365::StatusFromDataverse(response, what), response, what);
  s.set_system(name_);
  return s;
}

Dynamics365Connector::Dynamics365Connector(const SystemConfig& config,
                                           std::shared_ptr<Transport> transport, Clock* clock)
    : name_(config.name.empty() ? "dynamics365" : config.name),
      config_(config),
      transport_(std::move(transport)),
      clock_(clock) {
  // One upsert per request: Dataverse favours parallel single requests over large batches
  // (refs/dynamics365 §9); the engine hands over up to this many per call.
  if (auto v = config_.options.find("batch_size"); v != config_.options.end())
    batch_size_ = std::atoi(v->second.c_str());
  if (batch_size_ < 1 || batch_size_ > dynamics365::kMaxBatchRequests)
    batch_size_ = dynamics365::kMaxBatchRequests;
  caps_ = KindCapabilities();
  caps_.max_batch = batch_size_;
}

const Capabilities& Dynamics365Connector::KindCapabilities() {
  static const Capabilities kCapabilities = [] {
    Capabilities c;
    c.max_batch = dynamics365::kMaxBatchRequests;  // options.batch_size may lower it
    c.max_page = dynamics365::kMaxPageSize;
    c.idempotent_upsert = true;
    c.modified_precision_ms = 1000;  // modifiedon is to the second
    c.carries_references = true;     // as lookup columns
    c.binds_lookups = true;          // a polymorphic lookup through its navigation property
    c.reads_by_id = true;            // a row by its id: what a webhook announces is read alone
    c.reads_field_history = true;    // from the audit history, where auditing is on
    c.delete_events = {"Delete"};  // the Delete message of a webhook step
    c.merges = {"accounts", "contacts"};  // the unbound Merge action
    // Entity sets by their plural names; any other set (a custom table's) by its own.
    c.objects = {"accounts", "contacts", "opportunities", "annotations", "tasks"};
    // Not one of those tables by its logical (singular) name, as the maker portal shows it: the
    // Web API answers 404 for an `opportunity` set, at the first run instead of at validation.
    std::string singular;
    for (const std::string& set : c.objects)
      singular += (singular.empty() ? "" : "|") + dynamics365::LogicalNameOf(set);
    c.other_objects = "(?!(?:" + singular + ")$)[a-z][a-z0-9_]*";
    c.other_objects_doc = "any entity set, by its plural name (crmb_onboardings)";
    c.plain_field_names = true;  // columns by logical name, in $select and in URLs
    c.params = {
        OwnField({"key", "name", kDefaultKeyColumn, {},
                  "the alternate-key column crmbridge upserts by"}),
        {"primary_key", "name", "", {}, "the primary key, when it is not the set's usual one"},
        {"change_tracking", "boolean", "true", {},
         "false: a table without Track changes, read by modifiedon (deletes are not seen)"},
        {"create_only", "boolean", "false", {}, "rows crmbridge only ever creates (notes)"},
    };
    c.auth_keys = {"token_url",        "client_id",        "client_secret", "certificate_file",
                   "private_key_file", "scope",            "webhook_key"};
    // Service protection counts per user (the application user) of one organization.
    c.account_keys = {"token_url", "client_id"};
    c.options = {
        {"batch_size", "number", "1000", {}, "requests per $batch (1..1000)"},
        {"api_version", "string", "v9.2", {}, "the Web API version, as v9.2"},
        {"default_owner", "string", "", {},
         "the email of the user who owns a row whose own owner has no enabled user"},
    };
    return c;
  }();
  return kCapabilities;
}

Status Dynamics365Connector::ValidateConfig(const SystemConfig& config) {
  auto is_http = [](const std::string& url) {
    return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
  };
  if (!is_http(config.base_url))
    return Status(
        StatusCode::kFailedPrecondition,
        "base_url must be the environment URL such as https://org.crm.dynamics.com, not \"" +
            config.base_url + "\"");
  auto has = [&config](const char* key) {
    auto it = config.auth.find(key);
    return it != config.auth.end() && !it->second.empty();
  };
  for (const char* key : {"token_url", "client_id"}) {
    if (!has(key))
      return Status(StatusCode::kFailedPrecondition,
                    std::string("Dynamics 365 needs auth.") + key + " (OAuth2 client credentials)");
  }
  const bool certificate = has("certificate_file") || has("private_key_file");
  if (certificate && !(has("certificate_file") && has("private_key_file")))
    return Status(StatusCode::kFailedPrecondition,
                  "Dynamics 365 certificate credentials need both auth.certificate_file and "
                  "auth.private_key_file");
  if (certificate && has("client_secret"))
    return Status(StatusCode::kFailedPrecondition,
                  "Dynamics 365 takes auth.client_secret or a certificate "
                  "(auth.certificate_file, auth.private_key_file), not both");
  if (!certificate && !has("client_secret"))
    return Status(StatusCode::kFailedPrecondition,
                  "Dynamics 365 needs auth.client_secret, or a certificate (auth.certificate_file "
                  "and auth.private_key_file)");
  if (!is_http(config.auth.at("token_url")))
    return Status(StatusCode::kFailedPrecondition, "auth.token_url must be an http(s) URL");
  if (auto v = config.options.find("batch_size"); v != config.options.end()) {
    const int n = std::atoi(v->second.c_str());
    if (n < 1 || n > dynamics365::kMaxBatchRequests)
      return Status(StatusCode::kFailedPrecondition,
                    "options.batch_size must be 1.." + std::to_string(dynamics365::kMaxBatchRequests) +
                        " (requests per $batch), not \"" + v->second + "\"");
  }
  if (auto v = config.options.find("api_version"); v != config.options.end()) {
    const std::string& text = v->second;
    const bool ok = text.size() >= 4 && text[0] == 'v' && text.find('.') != std::string::npos &&
                    text.find_first_not_of("0123456789.", 1) == std::string::npos;
    if (!ok)
      return Status(StatusCode::kFailedPrecondition,
                    "options.api_version must look like \"v9.2\", not \"" + text + "\"");
  }
  return Status::Ok();
}

std::string Dynamics365Connector::ApiRoot() const {
  auto v = config_.options.find("api_version");
  return config_.base_url + "/api/data/" + (v == config_.options.end() ? "v9.2" : v->second) + "/";
}

std::string Dynamics365Connector::Auth(const std::string& key) const {
  auto it = config_.auth.find(key);
  if (it != config_.auth.end()) return it->second;
  // The Dataverse resource's default scope (refs/dynamics365 §1: "<environment-url>/.default").
  if (key == "scope") return config_.base_url + "/.default";
  return "";
}

Result<std::string> Dynamics365Connector::ClientCredentials() {
  if (Auth("certificate_file").empty())
    return "&client_secret=" + PercentEncode(Auth("client_secret"));
  if (!certificate_) {
    std::string pem[2];
    const char* keys[2] = {"certificate_file", "private_key_file"};
    for (int i = 0; i < 2; ++i) {
      std::ifstream in(Auth(keys[i]), std::ios::binary);
      if (!in.is_open())
        return Status(StatusCode::kFailedPrecondition,
                      "dynamics365: system '" + name_ + "': cannot read auth." + keys[i] + " " +
                          Auth(keys[i]) + ": " + std::strerror(errno))
            .set_system(name_);
      // An empty file reads as "" and is refused below as no PEM at all.
      std::ostringstream text;
      text << in.rdbuf();
      pem[i] = text.str();
    }
    // The key is a secret like any other: no log line may show it.
    Redactor::Global().AddSecret(pem[1]);
    auto loaded = ClientCertificate::FromPem(pem[0], pem[1]);
    if (!loaded.ok())
      return Status(StatusCode::kFailedPrecondition,
                    "dynamics365: system '" + name_ + "': auth.certificate_file " +
                        Auth("certificate_file") + " and auth.private_key_file " +
                        Auth("private_key_file") + ": " + loaded.status().message())
          .set_system(name_);
    certificate_ = *loaded;
  }
  // Microsoft Entra ID's certificate credentials: the token endpoint is the audience, the
  // application both issuer and subject, a fresh id, valid for ten minutes.
  const int64_t now = clock_->NowMillis() / 1000;
  const nlohmann::json claims = {{"aud", Auth("token_url")}, {"iss", Auth("client_id")},
                                 {"sub", Auth("client_id")}, {"jti", NewUuid()},
                                 {"iat", now},               {"nbf", now},
                                 {"exp", now + 600}};
  auto assertion = certificate_->SignJwt(claims);
  if (!assertion.ok()) {
    Status s = assertion.status();
    s.set_system(name_);
    return s;
  }
  return "&client_assertion_type=" +
         PercentEncode(std::string("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")) +
         "&client_assertion=" + PercentEncode(*assertion);
}

Status Dynamics365Connector::RefreshToken() {
  token_.clear();
  for (const char* key : {"token_url", "client_id"}) {
    if (Auth(key).empty())
      return Status(StatusCode::kFailedPrecondition,
                    "dynamics365: system '" + name_ + "' has no auth." + key)
          .set_system(name_);
  }
  auto credentials = ClientCredentials();
  if (!credentials.ok()) return credentials.status();
  Request r;
  r.method = "POST";
  r.url = Auth("token_url");
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
               {"Accept", "application/json"}};
  r.body = "grant_type=client_credentials&client_id=" + PercentEncode(Auth("client_id")) +
           *credentials + "&scope=" + PercentEncode(Auth("scope"));
  r.timeout = config_.timeout;
  r.idempotent = true;  // asking for a token twice is harmless
  r.system = name_;
  auto resp = transport_->Send(r);
  if (!resp.ok()) {
    Status s = resp.status();
    s.set_system(name_);
    return s;
  }
  if (resp->status != 200) {
    Status s = dynamics365::StatusFromTokenEndpoint(*resp);
    s.set_system(name_);
    return s;
  }
  auto j = ParseJsonOrDiscarded(resp->body);
  if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string() ||
      j["access_token"].get<std::string>().empty())
    return Status(StatusCode::kUnauthenticated,
                  "dynamics365: the token endpoint answered without a token")
        .set_system(name_);
  int64_t lifetime = dynamics365::kDefaultTokenLifetimeSeconds;
  if (auto e = j.find("expires_in"); e != j.end()) {
    // Seconds, as a number or (some proxies) a numeric string.
    if (e->is_number_integer()) {
      lifetime = e->get<int64_t>();
    } else if (e->is_string()) {
      const std::string text = e->get<std::string>();
      if (!text.empty() && text.size() < 10 &&
          text.find_first_not_of("0123456789") == std::string::npos)
        lifetime = std::stoll(text);
    }
  }
  // An access token is a credential too: an error body that echoes it is logged without it.
  Redactor::Global().ForgetSecret(token_);
  token_ = j["access_token"].get<std::string>();
  Redactor::Global().AddSecret(token_);
  // Renew 300 s early; a token that lives shorter than twice that is renewed at half its life.
  token_expires_ms_ =
      TokenRenewalMs(clock_->NowMillis(), lifetime, dynamics365::kTokenRefreshMarginSeconds);
  return Status::Ok();
}

Result<Response> Dynamics365Connector::Call(Request request) {
  request.timeout = config_.timeout;
  request.system = name_;
  AddODataHeaders(&request);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (token_.empty() || clock_->NowMillis() >= token_expires_ms_)
      CRMB_RETURN_IF_ERROR(RefreshToken());
    Request sent = request;
    sent.headers.emplace_back("Authorization", "Bearer " + token_);
    auto r = transport_->Send(sent);
    if (!r.ok()) {
      Status s = r.status();
      s.set_system(name_);
      return s;
    }
    if (r->status != 401 || attempt == 1) return r;
    token_.clear();  // rejected before its time: fetch a new one once
  }
  return Status(StatusCode::kInternal, "unreachable");
}

// A table without change tracking (params change_tracking: "false") is read by modifiedon
// against a watermark: {"w": ms} between runs, {"w": ms, "next": nextLink, "max": ms} within one.
// Deletes are invisible this way (refs/dynamics365 §4: "deletions are then invisible").
Result<Page> Dynamics365Connector::ReadByModifiedOn(const ObjectRef& object, const Cursor& cursor,
                                                    const ReadContext& context) {
  const std::string pk = Param(object, "primary_key", dynamics365::PrimaryKeyOf(object.object));
  const std::string key_column = Param(object, "key", "");
  const int page_size = context.page_size > 0
                            ? std::min(context.page_size, dynamics365::kMaxPageSize)
                            : dynamics365::kDefaultPageSize;
  json state = cursor.empty() ? json{{"w", context.since_ms}} : ParseJsonOrDiscarded(cursor);
  // Each number of it is checked here: a stored cursor is read back from outside the process (a
  // state file of another version, edited by hand) and a value of another type would throw later.
  const auto integer_or_absent = [&](const char* name) {
    return !state.contains(name) || state[name].is_number_integer();
  };
  if (!state.is_object() || !state.contains("w") || !integer_or_absent("w") ||
      !integer_or_absent("max"))
    return Status(StatusCode::kInvalidArgument,
                  "dynamics365: unreadable cursor for " + object.object + " (a table read by modifiedon)")
        .set_system(name_);
  const int64_t watermark = state["w"].get<int64_t>();
  Request req;
  req.method = "GET";
  req.idempotent = true;
  const std::string stored_next =
      state.contains("next") && state["next"].is_string() ? state["next"].get<std::string>() : "";
  if (!stored_next.empty() && !OnOrganisation(stored_next, config_.base_url))
    spdlog::warn("{}: the stored read of {} leads away from {}; reading on from its watermark",
                 name_, object.object, config_.base_url);
  if (!stored_next.empty() && OnOrganisation(stored_next, config_.base_url)) {
    req.url = SendableLink(stored_next);
  } else {
    const std::string select = SelectList(object, pk, key_column);
    // ge, not gt: rows sharing the watermark's second are read again (the engine recognises them).
    req.url = ApiRoot() + object.object + "?$select=" + select + "&$filter=" +
              dynamics365::PercentEncode("modifiedon ge " + FormatIsoUtc(watermark, false)) +
              "&$orderby=" + dynamics365::PercentEncode("modifiedon asc," + pk + " asc");
  }
  req.headers.emplace_back("Prefer", "odata.maxpagesize=" + std::to_string(page_size));
  auto r = Call(req);
  if (!r.ok()) return r.status();
  if (r->status != 200) return Fail(*r, "reading " + object.object + " by modifiedon");
  auto parsed = ParseJsonAnswer(*r, name_, "reading " + object.object);
  if (!parsed.ok()) return parsed.status();
  const json j = std::move(*parsed);
  if (!j.is_object() || !j.contains("value") || !j["value"].is_array())
    return Status(StatusCode::kUnavailable,
                  "dynamics365: reading " + object.object + ": not an OData collection")
        .set_system(name_);
  Page page;
  int64_t max_seen = state.value("max", watermark);
  for (const json& row : j["value"]) {
    auto rec = dynamics365::RecordFromRow(row, pk, key_column);
    if (!rec.ok()) {
      // Rejected by the engine, by its id where it has one; the rest of the page goes on.
      NativeRecord bad;
      if (auto id = row.find(pk); row.is_object() && id != row.end() && id->is_string())
        bad.id = id->get<std::string>();
      bad.invalid = rec.status().message();
      page.records.push_back(std::move(bad));
      continue;
    }
    max_seen = std::max(max_seen, rec->modified_ms);
    page.records.push_back(std::move(*rec));
  }
  if (MapsOwner(object)) {
    CRMB_RETURN_IF_ERROR(LoadUsers());
    users_.IdsToEmails(dynamics365::kOwnerColumn, &page.records);
  }
  json next = {{"w", watermark}, {"max", max_seen}};
  if (auto link = j.find("@odata.nextLink"); link != j.end() && link->is_string()) {
    if (!OnOrganisation(link->get<std::string>(), config_.base_url))
      return Status(StatusCode::kUnavailable,
                    "dynamics365: reading " + object.object +
                        ": the answer's @odata.nextLink leads away from " + config_.base_url)
          .set_system(name_);
    next["next"] = link->get<std::string>();
    page.next = next.dump();
    page.has_more = true;
  } else {
    // The watermark never passes the run's start: rows written while this run read are seen again.
    page.next = json{{"w", std::min(max_seen, std::max(watermark, context.run_start_ms))}}.dump();
    page.has_more = false;
  }
  return page;
}

Result<std::vector<NativeRecord>> Dynamics365Connector::ReadByIds(const ObjectRef& object,
                                                                   const std::vector<std::string>& ids) {
  CRMB_RETURN_IF_ERROR(CheckColumnParams(object));
  const std::string pk = Param(object, "primary_key", dynamics365::PrimaryKeyOf(object.object));
  const std::string key_column = Param(object, "key", "");
  const std::string select = SelectList(object, pk, key_column);
  std::vector<NativeRecord> out;
  for (const std::string& id : ids) {
    if (!IsGuid(id)) {
      spdlog::warn("{}: {} \"{}\" is no row id; left to the next scheduled read", name_, object.object,
                   Utf8Prefix(id, 64));
      continue;
    }
    Request req;
    req.method = "GET";
    req.idempotent = true;
    req.url = ApiRoot() + object.object + "(" + id + ")?$select=" + select;
    auto r = Call(req);
    if (!r.ok()) return r.status();
    if (r->status == 404) continue;  // deleted since: the scheduled read's delta says so
    if (r->status != 200) return Fail(*r, "reading " + object.object + " " + id);
    auto row = ParseJsonAnswer(*r, name_, "reading " + object.object + " " + id);
    if (!row.ok()) return row.status();
    auto rec = dynamics365::RecordFromRow(*row, pk, key_column);
    if (!rec.ok()) {
      NativeRecord bad;
      bad.id = id;
      bad.invalid = rec.status().message();
      out.push_back(std::move(bad));
      continue;
    }
    out.push_back(std::move(*rec));
  }
  if (MapsOwner(object)) {
    CRMB_RETURN_IF_ERROR(LoadUsers());
    users_.IdsToEmails(dynamics365::kOwnerColumn, &out);
  }
  return out;
}

Result<bool> Dynamics365Connector::Audited(const ObjectRef& object, const std::string& column) {
  const std::string table = dynamics365::LogicalNameOf(object.object);
  const std::string key = table + "|" + column;
  if (auto known = audited_.find(key); known != audited_.end()) return known->second;
  // Organisation, table and column: audit rows are written only when all three are on.
  const std::string definition = "EntityDefinitions(LogicalName='" + table + "')";
  const std::vector<std::pair<std::string, std::string>> asks = {
      {"organizations?$select=isauditenabled", "the organisation"},
      {definition + "?$select=IsAuditEnabled", "table " + table},
      {definition + "/Attributes(LogicalName='" + column + "')?$select=IsAuditEnabled",
       "column " + table + "." + column}};
  for (const auto& [path, what] : asks) {
    Request req;
    req.method = "GET";
    req.idempotent = true;
    req.url = ApiRoot() + path;
    auto r = Call(req);
    if (!r.ok()) return r.status();
    if (r->status != 200) return Fail(*r, "asking whether auditing is on for " + what);
    auto j = ParseJsonAnswer(*r, name_, "asking whether auditing is on for " + what);
    if (!j.ok()) return j.status();
    const json* on = nullptr;
    if (const json* rows = FindPath(*j, {"value"}); rows && rows->is_array() && !rows->empty())
      on = FindPath((*rows)[0], {"isauditenabled"});
    else
      on = FindPath(*j, {"IsAuditEnabled", "Value"});
    if (on == nullptr || !on->is_boolean())
      return Status(StatusCode::kUnavailable, "dynamics365: the answer to whether auditing is on "
                                              "for " + what + " does not say")
          .set_system(name_);
    if (!on->get<bool>()) {
      spdlog::info("{}: auditing is off for {}: the history of {} starts now", name_, what,
                   object.object + "." + column);
      audited_[key] = false;
      return false;
    }
  }
  audited_[key] = true;
  return true;
}

Result<std::map<std::string, std::vector<FieldChange>>> Dynamics365Connector::ReadFieldHistory(
    const ObjectRef& object, const std::string& field, const std::vector<std::string>& ids) {
  CRMB_RETURN_IF_ERROR(CheckColumnParams(object));
  std::map<std::string, std::vector<FieldChange>> out;
  auto audited = Audited(object, field);
  if (!audited.ok()) return audited.status();
  if (!*audited) return out;
  const std::string table = dynamics365::LogicalNameOf(object.object);
  auto get = [&](const std::string& url, const std::string& what) -> Result<json> {
    Request req;
    req.method = "GET";
    req.idempotent = true;
    req.url = url;
    req.headers.emplace_back("Prefer", "odata.maxpagesize=" + std::to_string(dynamics365::kMaxPageSize));
    auto r = Call(req);
    if (!r.ok()) return r.status();
    if (r->status != 200) return Fail(*r, what);
    return ParseJsonAnswer(*r, name_, what);
  };
  for (const std::string& id : ids) {
    if (!IsGuid(id)) continue;
    const std::string what = "reading the audit history of " + object.object + " " + id;
    std::string url = ApiRoot() + "audits?$select=auditid,createdon,action&$filter=" +
                      dynamics365::PercentEncode("_objectid_value eq " + id + " and objecttypecode eq '" +
                                                 table + "'") +
                      "&$orderby=" + dynamics365::PercentEncode("createdon asc");
    std::vector<FieldChange> changes;
    while (!url.empty()) {
      auto page = get(url, what);
      if (!page.ok()) return page.status();
      const json* rows = FindPath(*page, {"value"});
      if (rows == nullptr || !rows->is_array())
        return Status(StatusCode::kUnavailable, "dynamics365: " + what + ": no list of audit rows")
            .set_system(name_);
      for (const json& row : *rows) {
        const json* action = FindPath(row, {"action"});
        const json* audit_id = FindPath(row, {"auditid"});
        const json* created = FindPath(row, {"createdon"});
        // Creates (1) and updates (2) set values; other entries (deletes, shares) do not.
        if (!action || !action->is_number_integer() || (action->get<int>() != 1 && action->get<int>() != 2))
          continue;
        if (!audit_id || !audit_id->is_string() || !IsGuid(audit_id->get<std::string>()) || !created ||
            !created->is_string())
          continue;  // an entry it cannot name or date is skipped
        const int64_t at = dynamics365::ParseDataverseTime(created->get<std::string>());
        if (at <= 0) continue;
        auto detail = get(ApiRoot() + "audits(" + audit_id->get<std::string>() +
                              ")/Microsoft.Dynamics.CRM.RetrieveAuditDetails()",
                          what);
        if (!detail.ok()) return detail.status();
        const json* value = FindPath(*detail, {"AuditDetail", "NewValue", field.c_str()});
        if (value == nullptr) continue;  // this entry changed other columns
        changes.push_back(FieldChange{*value, at});
      }
      url.clear();
      if (const json* next = FindPath(*page, {"@odata.nextLink"}); next && next->is_string()) {
        if (!OnOrganisation(next->get<std::string>(), config_.base_url))
          return Status(StatusCode::kUnavailable, "dynamics365: " + what +
                                                      ": the answer's @odata.nextLink leads away from " +
                                                      config_.base_url)
              .set_system(name_);
        url = SendableLink(next->get<std::string>());
      }
    }
    std::stable_sort(changes.begin(), changes.end(),
                     [](const FieldChange& a, const FieldChange& b) { return a.at_ms < b.at_ms; });
    if (!changes.empty()) out[id] = std::move(changes);
  }
  return out;
}

Result<Page> Dynamics365Connector::ReadChanges(const ObjectRef& object, const Cursor& cursor,
                                               const ReadContext& context) {
  CRMB_RETURN_IF_ERROR(CheckColumnParams(object));
  if (Param(object, "change_tracking", "true") == "false")
    return ReadByModifiedOn(object, cursor, context);
  const std::string pk = Param(object, "primary_key", dynamics365::PrimaryKeyOf(object.object));
  const std::string key_column = Param(object, "key", "");
  const int page_size = context.page_size > 0
                            ? std::min(context.page_size, dynamics365::kMaxPageSize)
                            : dynamics365::kDefaultPageSize;
  if (!cursor.empty() && !OnOrganisation(cursor, config_.base_url)) {
    // Kept from a run against another organisation URL (the configuration changed since).
    spdlog::warn("{}: the stored read of {} leads away from {}; reading the table in full", name_,
                 object.object, config_.base_url);
    return ReadChanges(object, "", context);
  }
  Request req;
  req.method = "GET";
  req.idempotent = true;
  if (cursor.empty()) {
    const std::string select = SelectList(object, pk, key_column);
    req.url = ApiRoot() + object.object + "?$select=" + select;
    // A backfill from a date reads by modifiedon, without change tracking (which takes no
    // $filter); its last page ends the read instead of giving a delta link.
    if (context.since_ms > 0)
      req.url += "&$filter=" + dynamics365::PercentEncode("modifiedon ge " + FormatIsoUtc(context.since_ms, false));
  } else {
    req.url = SendableLink(cursor);  // a nextLink or deltaLink, as given (refs/dynamics365 §3)
  }
  const bool by_time = req.url.find("filter=modifiedon") != std::string::npos ||
                       req.url.find("filter=modifiedon%20ge") != std::string::npos;
  req.headers.emplace_back("Prefer", std::string(by_time ? "" : "odata.track-changes,") +
                                         "odata.maxpagesize=" + std::to_string(page_size));
  auto r = Call(req);
  if (!r.ok()) return r.status();
  if (IsDeltaLink(cursor) && r->status >= 400 && r->status < 500 && r->status != 401 &&
      r->status != 403 && r->status != 408 && r->status != 429) {
    // Change-tracking tokens expire (7 days by default; "Version stamp associated with the client
    // has expired. Please perform a full sync.", refs/dynamics365/reference-second-pass.md §5,
    // status unconfirmed): read the whole table again.
    spdlog::warn("{}: the change-tracking link for {} was refused ({}); reading the table in full",
                 name_, object.object, Fail(*r, "delta").ToString());
    return ReadChanges(object, "", context);
  }
  if (r->status != 200) return Fail(*r, "reading " + object.object);
  auto parsed = ParseJsonAnswer(*r, name_, "reading " + object.object);
  if (!parsed.ok()) return parsed.status();
  const json j = std::move(*parsed);
  if (!j.is_object() || !j.contains("value") || !j["value"].is_array())
    return Status(StatusCode::kUnavailable,
                  "dynamics365: reading " + object.object + ": not an OData collection")
        .set_system(name_);
  Page page;
  for (const json& row : j["value"]) {
    auto rec = dynamics365::RecordFromRow(row, pk, key_column);
    if (!rec.ok()) {
      // Rejected by the engine, by its id where it has one; the rest of the page goes on.
      NativeRecord bad;
      if (auto id = row.find(pk); row.is_object() && id != row.end() && id->is_string())
        bad.id = id->get<std::string>();
      bad.invalid = rec.status().message();
      page.records.push_back(std::move(bad));
      continue;
    }
    page.records.push_back(std::move(*rec));
  }
  if (MapsOwner(object)) {
    CRMB_RETURN_IF_ERROR(LoadUsers());
    users_.IdsToEmails(dynamics365::kOwnerColumn, &page.records);
  }
  auto link = [&j](const char* name) -> std::string {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  for (const char* name : {"@odata.nextLink", "@odata.deltaLink"}) {
    if (const std::string l = link(name); !l.empty() && !OnOrganisation(l, config_.base_url))
      return Status(StatusCode::kUnavailable, "dynamics365: reading " + object.object +
                                                  ": the answer's " + name + " leads away from " +
                                                  config_.base_url)
          .set_system(name_);
  }
  if (std::string next = link("@odata.nextLink"); !next.empty()) {
    page.next = std::move(next);
    page.has_more = true;
  } else if (std::string delta = link("@odata.deltaLink"); !delta.empty()) {
    page.next = std::move(delta);
    page.has_more = false;
  } else {
    // The last page came without a delta link (seen with annotations, refs/dynamics365 §4). A
    // delta link we read from stays valid; a nextLink does not: the next run starts over.
    if (!by_time)
      spdlog::warn("{}: the last page of {} carried no @odata.deltaLink", name_, object.object);
    page.next = IsDeltaLink(cursor) ? cursor : std::string();
    page.has_more = false;
  }
  return page;
}

Request Dynamics365Connector::WriteRequest(const ObjectRef& object, const WriteOp& op) const {
  const std::string pk = Param(object, "primary_key", dynamics365::PrimaryKeyOf(object.object));
  const std::string key_column = KeyColumn(object);
  Request req;
  req.idempotent = true;
  json body = op.fields;
  // The owner, given by email, is bound to its user; one with no user leaves the owner as it is.
  if (auto owner = body.find(dynamics365::kOwnerColumn); owner != body.end()) {
    auto fallback = config_.options.find("default_owner");
    const std::string default_owner = fallback == config_.options.end() ? "" : fallback->second;
    const std::optional<std::string> id =
        owner->is_string() && !owner->get<std::string>().empty()
            ? users_.IdFor(owner->get<std::string>(), default_owner)
            : std::nullopt;
    body.erase(owner);
    if (id) body[std::string(dynamics365::kOwnerColumn) + "@odata.bind"] = "/systemusers(" + *id + ")";
  }
  // Lookups are bound through their navigation property (refs/dynamics365 §6): null unbinds.
  for (const auto& [field, ref] : op.refs)
    body[(ref.bind.empty() ? field : ref.bind) + "@odata.bind"] =
        ref.id.empty() ? json() : json("/" + ref.object + "(" + ref.id + ")");
  if (op.kind == WriteOp::Kind::kMerge) {
    // The unbound Merge action (refs: Merge Action): the subordinate row is deactivated and
    // points at its master; its children move to the master.
    const std::string type =
        "Microsoft.Dynamics.CRM." + pk.substr(0, pk.size() >= 2 ? pk.size() - 2 : 0);
    req.method = "POST";
    req.url = ApiRoot() + "Merge";
    req.idempotent = false;  // a retry checks the first attempt's outcome (MergeDone)
    req.body = json{{"Target", {{"@odata.type", type}, {pk, op.merge_into}}},
                    {"Subordinate", {{"@odata.type", type}, {pk, op.native_id}}},
                    {"PerformParentingChecks", false}}
                   .dump();
    return req;
  }
  if (op.kind == WriteOp::Kind::kDelete) {
    req.method = "DELETE";
    req.url = ApiRoot() + object.object + "(" + op.native_id + ")";
  } else if (op.kind == WriteOp::Kind::kUpdate) {
    // Update-only: a row deleted in Dynamics 365 answers 404 instead of being re-created.
    req.method = "PATCH";
    req.url = ApiRoot() + object.object + "(" + op.native_id + ")";
    req.headers.emplace_back("If-Match", "*");
  } else {
    // Upsert by the alternate key; the key column stays out of the body (refs/dynamics365 §5).
    body.erase(key_column);
    req.method = "PATCH";
    req.url = ApiRoot() + KeyPath(object, op.key);
    req.headers.emplace_back("Prefer", "return=representation");
    // A table whose rows crmbridge only ever creates (params create_only: "true"): the PATCH
    // must not overwrite a row that has the key already (refs/dynamics365 §5: 412 then).
    if (CreateOnly(object)) req.headers.emplace_back("If-None-Match", "*");
  }
  if (req.method == "PATCH") req.body = body.dump();
  return req;
}

WriteOutcome Dynamics365Connector::WriteResult(const ObjectRef& object, const WriteOp& op,
                                               const std::string& method, const Response& r) const {
  const std::string pk = Param(object, "primary_key", dynamics365::PrimaryKeyOf(object.object));
  WriteOutcome out;
  if (op.kind == WriteOp::Kind::kUpsert && r.status == 412 && CreateOnly(object)) {
    // The row exists: made by an earlier attempt of this create whose answer was lost (the key is
    // crmbridge's own). Write() adopts it.
    out.status = Status(StatusCode::kAlreadyExists, "dynamics365: " + object.object + " " + op.key +
                                                        " exists already (create-only)")
                     .set_system(name_);
    return out;
  }
  if (r.status >= 300) {
    if (op.kind == WriteOp::Kind::kDelete && r.status == 404) {
      // Already gone (a delete repeated after an unknown outcome, or deleted in Dynamics 365).
      out.native_id = op.native_id;
      return out;
    }
    out.status = Fail(r, method + " " + object.object + " " +
                             (op.native_id.empty() ? op.key : op.native_id));
    return out;
  }
  out.native_id = op.kind == WriteOp::Kind::kMerge ? op.merge_into : op.native_id;
  if (op.kind == WriteOp::Kind::kUpsert) {
    // With return=representation: 201 = created, 200 = updated (refs/dynamics365 §5).
    out.created = r.status == 201;
    auto j = ParseJsonOrDiscarded(r.body);
    if (j.is_object() && j.contains(pk) && j[pk].is_string())
      out.native_id = j[pk].get<std::string>();
    // The row as written carries the key it was upserted by: a row of another key is another
    // request's answer (a $batch answer out of order), and linking it would tie this record to
    // another customer's row. Unknown then; the upsert by key is safe to repeat.
    const std::string key_column = KeyColumn(object);
    if (j.is_object() && j.contains(key_column) && j[key_column].is_string() &&
        j[key_column].get<std::string>() != op.key) {
      out.status = Status(StatusCode::kUnavailable,
                          "dynamics365: the answer to the upsert of " + object.object + " " +
                              op.key + " is the row of " + key_column + " " +
                              PrintableText(j[key_column].get<std::string>()) +
                              "; it may have been applied")
                       .set_http_status(r.status)
                       .set_system(name_);
      out.native_id.clear();
      return out;
    }
    if (out.native_id.empty()) {
      out.status = Status(StatusCode::kUnavailable, "dynamics365: the upsert of " + object.object +
                                                        " " + op.key + " answered without the row id")
                       .set_http_status(r.status)
                       .set_system(name_);
    }
  }
  return out;
}

WriteOutcome Dynamics365Connector::WriteOne(const ObjectRef& object, const WriteOp& op) {
  Request req = WriteRequest(object, op);
  auto r = Call(req);
  if (!r.ok()) {
    WriteOutcome out;
    out.status = r.status();
    return out;
  }
  return WriteResult(object, op, req.method, *r);
}

std::vector<WriteOutcome> Dynamics365Connector::WriteBatch(const ObjectRef& object,
                                                           const std::vector<WriteOp>& ops) {
  // One $batch of independent requests (no change set: each succeeds or fails alone), with
  // continue-on-error so one bad row does not stop the rest (refs/dynamics365 §9).
  std::vector<Request> requests;
  for (const WriteOp& op : ops) requests.push_back(WriteRequest(object, op));
  const std::string boundary = "batch_" + NewUuid();
  Request batch;
  batch.method = "POST";
  batch.url = ApiRoot() + "$batch";
  batch.body = dynamics365::BatchBody(boundary, requests);
  batch.idempotent = true;  // every request inside is an upsert, an update or a delete by key/id
  batch.headers.emplace_back("Prefer", "odata.continue-on-error");
  batch.headers.emplace_back("Content-Type", "multipart/mixed; boundary=" + boundary);
  // An answer that breaks off still holds the answers of the requests before the break.
  batch.accept_truncated = true;
  auto r = Call(batch);
  std::vector<WriteOutcome> outcomes(ops.size());
  Status whole;
  if (!r.ok()) {
    whole = r.status();
  } else if (r->status != 200) {
    whole = Fail(*r, "$batch of " + std::to_string(ops.size()) + " " + object.object);
  }
  if (!whole.ok()) {
    for (WriteOutcome& o : outcomes) o.status = whole;
    return outcomes;
  }
  auto parts = dynamics365::ParseBatchResponse(r->Header("Content-Type").value_or(""), r->body);
  // Parts answer the requests in their order (no change set: no Content-IDs come back). More
  // parts than requests is no such answer: which part is whose cannot be told.
  if (parts.ok() && parts->size() > ops.size())
    parts = Status(StatusCode::kInvalidArgument,
                   std::to_string(parts->size()) + " parts for " + std::to_string(ops.size()) +
                       " requests");
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!parts.ok() || i >= parts->size()) {
      // Unanswered: the outcome is unknown (it may have been applied), and the write is safe to
      // repeat. Dynamics 365 answered the $batch, so this is the row's trouble, not an
      // unreachable system's: its status goes with it.
      outcomes[i].status =
          Status(StatusCode::kUnavailable,
                 "dynamics365: the $batch answer " +
                     std::string(r->truncated ? "broke off before its part for "
                                              : "has no part for ") +
                     object.object + " " +
                     (ops[i].native_id.empty() ? ops[i].key : ops[i].native_id) +
                     "; it may have been applied" +
                     (parts.ok() ? "" : ": " + parts.status().message()))
              .set_http_status(r->status)
              .set_system(name_);
      continue;
    }
    outcomes[i] = WriteResult(object, ops[i], requests[i].method, (*parts)[i]);
  }
  return outcomes;
}

// A create-only upsert refused because the row exists is done: the row is the one an earlier
// attempt made. Its id is read by the alternate key.
void Dynamics365Connector::AdoptExisting(const ObjectRef& object, const std::vector<WriteOp>& ops,
                                         std::vector<WriteOutcome>* outcomes) {
  const std::string pk = Param(object, "primary_key", dynamics365::PrimaryKeyOf(object.object));
  for (size_t i = 0; i < ops.size() && i < outcomes->size(); ++i) {
    WriteOutcome& o = (*outcomes)[i];
    if (o.status.code() != StatusCode::kAlreadyExists || ops[i].kind != WriteOp::Kind::kUpsert) continue;
    Request get;
    get.method = "GET";
    get.idempotent = true;
    get.url = ApiRoot() + KeyPath(object, ops[i].key);
    auto r = Call(get);
    if (!r.ok()) {
      o.status = r.status();
      continue;
    }
    auto j = ParseJsonOrDiscarded(r->body);
    if (r->status == 200 && j.is_object() && j.contains(pk) && j[pk].is_string()) {
      o = WriteOutcome{};
      o.native_id = j[pk].get<std::string>();
    } else {
      o.status = Fail(*r, "reading " + object.object + " " + ops[i].key + " after a create-only 412");
    }
  }
}

Status Dynamics365Connector::LoadUsers() {
  const int64_t now = clock_->NowMillis();
  if (users_.Fresh(now, dynamics365::kUsersFreshMs)) return Status::Ok();
  std::vector<json> listed;
  Status failed;
  std::set<std::string> pages;  // the links followed: a repeated one ends the listing
  std::string url = ApiRoot() + "systemusers?$select=systemuserid,internalemailaddress,isdisabled";
  while (!url.empty() && pages.insert(url).second) {
    Request req;
    req.method = "GET";
    req.idempotent = true;
    req.url = url;
    req.headers.emplace_back("Prefer", "odata.maxpagesize=" + std::to_string(dynamics365::kMaxPageSize));
    url.clear();
    auto r = Call(req);
    if (!r.ok()) {
      failed = r.status();
      break;
    }
    if (r->status != 200) {
      failed = Fail(*r, "reading the users");
      break;
    }
    auto j = ParseJsonAnswer(*r, name_, "reading the users");
    if (!j.ok() || !j->is_object() || !j->contains("value") || !(*j)["value"].is_array()) {
      failed = Status(StatusCode::kUnavailable, "dynamics365: reading the users: not an OData collection")
                   .set_system(name_);
      break;
    }
    for (const json& u : (*j)["value"])
      if (u.is_object()) listed.push_back(u);
    if (auto next = j->find("@odata.nextLink"); next != j->end() && next->is_string()) {
      if (!OnOrganisation(next->get<std::string>(), config_.base_url)) {
        failed = Status(StatusCode::kUnavailable,
                        "dynamics365: reading the users: the answer's @odata.nextLink leads away "
                        "from " + config_.base_url)
                     .set_system(name_);
        break;
      }
      url = SendableLink(next->get<std::string>());
    }
  }
  // Users that cannot be read (the application user may not read systemusers, say) fail no row:
  // ids pass as they are and owners are left as they are, until the next attempt. Credentials
  // refused stop the system as any call would.
  if (!failed.ok()) {
    if (failed.IsSystemFatal()) return failed;
    spdlog::warn("{}: the users could not be read, so owners are neither read as emails nor "
                 "written until the next attempt: {}", name_, failed.ToString());
    listed.clear();
  }
  users_.Clear(now);
  for (const json& u : listed) {
    const json id = u.value("systemuserid", json()), email = u.value("internalemailaddress", json());
    if (id.is_string() && email.is_string())
      users_.Add(id.get<std::string>(), email.get<std::string>(),
                 u.value("isdisabled", json(false)) != json(true));
  }
  return Status::Ok();
}

namespace {

// The row id of `op` that is not a GUID, if any: an update's or a delete's goes into the request's
// URL, and a merge's two name rows of the Merge action (and the first goes into the URL that
// checks whether a lost attempt merged it). An upsert is addressed by its key, which is encoded.
std::optional<std::string> UnsendableRowId(const WriteOp& op) {
  if (op.kind == WriteOp::Kind::kUpsert) return std::nullopt;
  if (!IsGuid(op.native_id)) return op.native_id;
  if (op.kind == WriteOp::Kind::kMerge && !IsGuid(op.merge_into)) return op.merge_into;
  return std::nullopt;
}

}  // namespace

Result<std::vector<WriteOutcome>> Dynamics365Connector::Write(const ObjectRef& object,
                                                              const std::vector<WriteOp>& ops) {
  // Each op is refused, written alone (a merge: the Merge action is not idempotent, and a $batch
  // may be sent again), or written with the rest. Dataverse's row ids are GUIDs: any other text
  // never goes into a request, where in a URL it could address another resource and in a $batch
  // body it could end the request line it is part of.
  std::vector<WriteOutcome> outcomes(ops.size());
  std::vector<size_t> merges, rest_index;
  const Status columns = CheckColumnParams(object);
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!columns.ok()) {
      outcomes[i].status = Status(columns).set_system(name_);
    } else if (const auto bad = UnsendableRowId(ops[i])) {
      outcomes[i].status = Status(StatusCode::kInvalidArgument,
                                  "dynamics365: " + object.object + " row id '" +
                                      PrintableText(*bad) + "' is not a GUID; not sent")
                               .set_system(name_);
    } else if (ops[i].kind == WriteOp::Kind::kMerge) {
      merges.push_back(i);
    } else {
      rest_index.push_back(i);
    }
  }
  if (merges.empty() && rest_index.empty()) return outcomes;
  if (MapsOwner(object)) CRMB_RETURN_IF_ERROR(LoadUsers());
  for (size_t i : merges) {
    outcomes[i] = WriteOne(object, ops[i]);
    if (outcomes[i].status.IsSystemFatal()) return outcomes[i].status;
    // Refused, or no answer: an earlier attempt (or this one) may have merged it already.
    if (!outcomes[i].status.ok() && MergeDone(object, ops[i]))
      outcomes[i] = WriteOutcome{Status::Ok(), ops[i].merge_into, false, false};
  }
  if (rest_index.empty()) return outcomes;
  if (rest_index.size() == ops.size()) {  // the usual call: every op sent, none copied
    auto written = WriteAll(object, ops);
    if (written.ok() && CreateOnly(object)) AdoptExisting(object, ops, &*written);
    return written;
  }
  std::vector<WriteOp> rest;
  rest.reserve(rest_index.size());
  for (size_t i : rest_index) rest.push_back(ops[i]);
  auto written = WriteAll(object, rest);
  if (!written.ok()) return written.status();
  if (CreateOnly(object)) AdoptExisting(object, rest, &*written);
  for (size_t k = 0; k < rest.size(); ++k) outcomes[rest_index[k]] = std::move((*written)[k]);
  return outcomes;
}

bool Dynamics365Connector::MergeDone(const ObjectRef& object, const WriteOp& op) {
  // Refused because an earlier attempt, whose answer was lost, merged it already?
  Request req;
  req.method = "GET";
  req.idempotent = true;
  req.url = ApiRoot() + object.object + "(" + op.native_id + ")?$select=merged,_masterid_value";
  auto r = Call(req);
  if (!r.ok() || r->status != 200) return false;
  const json row = ParseJsonOrDiscarded(r->body);
  return row.is_object() && row.value("merged", json()) == true &&
         row.value("_masterid_value", json()) == json(op.merge_into);
}

Result<std::vector<WriteOutcome>> Dynamics365Connector::WriteAll(const ObjectRef& object,
                                                                 const std::vector<WriteOp>& ops) {
  std::vector<WriteOutcome> outcomes;
  outcomes.reserve(ops.size());
  if (ops.size() == 1) {
    WriteOutcome o = WriteOne(object, ops[0]);
    if (o.status.IsSystemFatal()) return o.status;  // credentials refused
    outcomes.push_back(std::move(o));
    return outcomes;
  }
  for (size_t i = 0; i < ops.size(); i += static_cast<size_t>(batch_size_)) {
    std::vector<WriteOp> chunk(ops.begin() + i,
                               ops.begin() + std::min(ops.size(), i + static_cast<size_t>(batch_size_)));
    for (WriteOutcome& o : WriteBatch(object, chunk)) {
      if (o.status.IsSystemFatal()) return o.status;
      outcomes.push_back(std::move(o));
    }
  }
  return outcomes;
}

}  // namespace crmbridge
