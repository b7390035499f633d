#include "connectors/totango/totango_connector.h"

#include <algorithm>
#include <cctype>
#include <limits>

#include <spdlog/spdlog.h>

#include "connectors/totango/totango_errors.h"
#include "connectors/totango/totango_limits.h"
#include "src/core/json_text.h"
#include "src/core/time_util.h"
#include "src/core/url.h"

namespace crmbridge {

namespace {

using nlohmann::json;

// Native fields that are not attributes: the account's name and, for users, their account.
constexpr char kDisplayName[] = "display_name";
constexpr char kAccountId[] = "account_id";
constexpr char kCreateDate[] = "Create Date";
constexpr char kKeyPrefix[] = "crmb_";
// User attributes the display name is made of when a mapping writes none.
constexpr char kFirstName[] = "First Name";
constexpr char kLastName[] = "Last Name";

// An attribute value as Totango takes it: text, numbers without separators, yes/no flags.
std::string AttributeText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_null()) return "";
  return v.dump();
}

std::string Str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const json& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
}

// A member of an object, or null.
const json& At(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// A whole number, or `fallback` (nlohmann's value() and get() throw on any other type, and
// Totango's answers are not documented).
int64_t IntOf(const json& v, int64_t fallback) {
  if (!v.is_number_integer()) return fallback;
  if (v.is_number_unsigned() &&
      v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return fallback;
  return v.get<int64_t>();
}

int64_t IntAt(const json& j, const char* key, int64_t fallback) {
  return IntOf(At(j, key), fallback);
}

// Account creation dates are windowed up to 2100-01-01, far enough out for any server clock.
constexpr int64_t kLastCreateDate = 4102444800000LL;
// Counts of accounts: a trillion is beyond any Totango tenant, and sums stay far from overflow.
constexpr int64_t kMaxCount = 1'000'000'000'000;

// A scan cursor as ReadAccountsOrUsers writes it: {"windows": [[from, to], ...], "offset": n,
// "expected": n, "read": n}, whole numbers all, each window [-1, -1] (every account) or
// 0 <= from < to <= kLastCreateDate. The cursor comes back from the state store: anything else
// would be read with get<int64_t>(), which throws, or is undefined for a float out of range.
bool ValidScanState(const json& state) {
  if (!state.is_object() || !At(state, "windows").is_array()) return false;
  for (const char* key : {"offset", "expected", "read"}) {
    if (!state.contains(key)) continue;
    const int64_t n = IntAt(state, key, -1);
    if (n < 0 || n > kMaxCount) return false;
  }
  if (IntAt(state, "offset", 0) > totango::kSearchReachable) return false;
  for (const json& w : state["windows"]) {
    if (!w.is_array() || w.size() != 2) return false;
    const int64_t from = IntOf(w[0], -2), to = IntOf(w[1], -2);
    if (!(from == -1 && to == -1) && !(from >= 0 && from < to && to <= kLastCreateDate))
      return false;
  }
  return true;
}

// The account a user, touchpoint or task belongs to: its reference, else a plain account_id.
std::string AccountOf(const WriteOp& op) {
  if (auto ref = op.refs.find(kAccountId); ref != op.refs.end()) return ref->second.id;
  return Str(op.fields, kAccountId);
}

std::string Param(const ObjectRef& object, const char* name, const std::string& fallback = "") {
  auto it = object.params.find(name);
  return it == object.params.end() || it->second.empty() ? fallback : it->second;
}

// Totango's answer for a touchpoint, task or event listing on an account it does not hold.
bool AccountNotFound(const Response& response) {
  return response.status == 400 && response.body.find("Account not found") != std::string::npos;
}

bool IsAttribute(const std::string& field) {
  return field != kDisplayName && field != kAccountId && field != "name" && field != "email";
}

}  // namespace

TotangoConnector::TotangoConnector(const SystemConfig& config, std::shared_ptr<Transport> transport,
                                   Clock* /*clock*/)
    : name_(config.name.empty() ? "totango" : config.name),
      config_(config),
      transport_(std::move(transport)) {
  auto opt = [&](const char* key) {
    auto it = config_.options.find(key);
    return it == config_.options.end() ? std::string() : it->second;
  };
  sdr_url_ = opt("sdr_url");
  if (sdr_url_.empty() && opt("region") == "eu") sdr_url_ = "https://sdr-eu1.totango.com";
  if (sdr_url_.empty() && opt("region") == "us") sdr_url_ = "https://sdr.totango.com";
  if (sdr_url_.empty()) sdr_url_ = config_.base_url;
  while (!sdr_url_.empty() && sdr_url_.back() == '/') sdr_url_.pop_back();
  for (const auto& [key, value] : config_.options) {
    if (key.rfind("allowed.", 0) != 0) continue;
    std::vector<std::string>& list = allowed_[key.substr(8)];
    size_t start = 0;
    while (start <= value.size()) {
      size_t bar = value.find('|', start);
      if (bar == std::string::npos) bar = value.size();
      list.push_back(value.substr(start, bar - start));
      start = bar + 1;
    }
  }
}

const Capabilities& TotangoConnector::KindCapabilities() {
  static const Capabilities kCapabilities = [] {
    Capabilities c;
    // The SDR gateway takes one record per call; the REST writes one per call as well.
    c.max_batch = 1;
    c.max_page = totango::kMaxSearchCount;
    c.idempotent_upsert = true;
    // A touchpoint or task POST makes a new one each time (FindEarlierCreate reconciles).
    c.unkeyed_creates = {"touchpoints", "tasks"};
    // The SDR gateway answers 200 whatever it keeps.
    c.acknowledges_unapplied_writes = true;
    c.rate_limit_exempt_paths = {totango::kSdrPath};
    // A user, touchpoint or task belongs to an account: its account_id is a reference.
    c.carries_references = true;
    c.reference_fields = {{"users", {kAccountId}}, {"touchpoints", {kAccountId}}, {"tasks", {kAccountId}}};
    c.objects = {"accounts", "users", "touchpoints", "tasks"};
    c.written_only = {"touchpoints", "tasks"};  // ReadChanges reads accounts and users
    c.required_params = {{"tasks", {"activity_type_id"}}};  // Totango refuses a task without a Flow
    c.params = {
        {"activity_type_id", "string", "", {"touchpoints", "tasks"},
         "the Flow the record belongs to (an id of GET /api/v3/activity-types): required for tasks"},
        {"subject", "string", "", {"touchpoints"},
         "the subject of a touchpoint whose mapping writes none"},
        {"priority", "number", "2", {"tasks"}, "a task's priority: 1 high, 2 normal, 3 low",
         {"1", "2", "3"}},
        {"contact", "boolean", "false", {"users"},
         "send Contact=yes with each user, so it shows in its account's Contacts widget"},
    };
    c.auth_keys = {"app_token", "token"};
    c.account_keys = {"app_token", "token"};
    c.options = {
        {"service_id", "string", "", {}, "the SDR service id (SP-0000-11): required"},
        {"region", "string", "", {}, "the SDR gateway's data centre", {"us", "eu"}},
        {"sdr_url", "string", "", {}, "the SDR gateway's URL, when neither region fits"},
        {"allowed.*", "string", "", {},
         "allowed.<attribute>: the values the attribute takes, as A|B|C"},
    };
    c.options.back().suffix_is_written_field = true;
    return c;
  }();
  return kCapabilities;
}

Status TotangoConnector::ValidateConfig(const SystemConfig& config) {
  if (config.base_url.rfind("http://", 0) != 0 && config.base_url.rfind("https://", 0) != 0)
    return Status(StatusCode::kFailedPrecondition,
                  "base_url must be an http(s) URL such as https://api.totango.com (EU: "
                  "https://api-eu1.totango.com), not \"" + config.base_url + "\"");
  const bool token = (config.auth.count("app_token") && !config.auth.at("app_token").empty()) ||
                     (config.auth.count("token") && !config.auth.at("token").empty());
  if (!token)
    return Status(StatusCode::kFailedPrecondition,
                  "Totango needs auth.app_token (a personal access token from Profile > "
                  "Integration)");
  auto service = config.options.find("service_id");
  if (service == config.options.end() || service->second.rfind("SP-", 0) != 0)
    return Status(StatusCode::kFailedPrecondition,
                  "Totango needs options.service_id, the SDR service id such as SP-0000-11; a "
                  "wrong one makes the gateway drop every write without an error");
  auto region = config.options.find("region");
  if (region != config.options.end() && region->second != "us" && region->second != "eu")
    return Status(StatusCode::kFailedPrecondition,
                  "options.region must be us or eu, not \"" + region->second +
                      "\"; data sent to the wrong data centre is silently dropped");
  if (region != config.options.end() && config.options.count("sdr_url"))
    return Status(StatusCode::kFailedPrecondition,
                  "options.region and options.sdr_url both name the SDR gateway, and sdr_url "
                  "would win unseen: give one");
  for (const auto& [key, value] : config.options)
    if (key.rfind("allowed.", 0) == 0 && (key.size() == 8 || value.empty()))
      return Status(StatusCode::kFailedPrecondition,
                    "options." + key + " must name an attribute and list its values as A|B|C");
  return Status::Ok();
}

std::string TotangoConnector::AccountIdForKey(const std::string& key) {
  std::string id = kKeyPrefix;
  for (char c : key)
    id += std::isalnum(static_cast<unsigned char>(c)) ? c : totango::kAccountIdExtraChar;
  return id;
}

std::string TotangoConnector::KeyOfAccountId(const std::string& account_id) {
  if (account_id.rfind(kKeyPrefix, 0) != 0) return "";
  std::string key = account_id.substr(sizeof(kKeyPrefix) - 1);
  // crmbridge keys are UUIDs: their hyphens were written as underscores.
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

Result<Response> TotangoConnector::Call(const std::string& method, const std::string& url,
                                        const std::string& body, const std::string& content_type,
                                        bool idempotent) {
  Request req;
  req.method = method;
  req.url = url;
  const bool sdr = url.rfind(sdr_url_ + totango::kSdrPath, 0) == 0;
  if (!sdr) {
    auto token = config_.auth.count("app_token") ? config_.auth.at("app_token")
                                                 : config_.auth.count("token") ? config_.auth.at("token") : "";
    req.headers = {{"app-token", token}, {"Accept", "application/json"}};
  }
  if (!body.empty()) req.headers.emplace_back("Content-Type", content_type);
  req.body = body;
  req.timeout = config_.timeout;
  req.idempotent = idempotent;
  req.system = name_;
  auto r = transport_->Send(req);
  if (!r.ok()) {
    Status s = r.status();
    if (s.system().empty()) s.set_system(name_);
    return s;
  }
  return r;
}

Status TotangoConnector::Fail(const Response& response, const std::string& what) const {
  // Called on any answer but the one expected: never OK.
  Status s = Unexpected(totango::StatusFromTotango(response, "totango: " + what), response,
                        "totango: " + what);
  s.set_system(name_);
  return s;
}

Result<json> TotangoConnector::Search(bool users, const ObjectRef& object, int offset,
                                      const std::optional<std::pair<int64_t, int64_t>>& window,
                                      int count) {
  json fields = json::array();
  for (const std::string& f : object.fields)
    if (IsAttribute(f)) fields.push_back({{"type", "string_attribute"}, {"attribute", f}, {"field_display_name", f}});
  json terms = json::array();
  if (window) {
    terms.push_back({{"type", "simple_date_attribute"}, {"attribute", kCreateDate},
                     {"gte", FormatIsoUtc(window->first, true)}, {"lt", FormatIsoUtc(window->second, true)}});
  }
  json query = {{"terms", terms}, {"fields", fields}, {"count", count}, {"offset", offset}, {"scope", "all"}};
  if (users)
    query["parent_account_fields"] = json::array(
        {{{"type", "string"}, {"term", "identifier"}, {"field_display_name", kAccountId}, {"index", 0}}});
  const std::string what = std::string("searching ") + (users ? "users" : "accounts");
  // A search changes nothing: safe to repeat.
  auto r = Call("POST", config_.base_url + "/api/v1/search/" + (users ? "users" : "accounts"),
                "query=" + PercentEncode(query.dump()), "application/x-www-form-urlencoded", true);
  if (!r.ok()) return r.status();
  if (r->status != 200) return Fail(*r, what);
  json body = ParseJsonOrDiscarded(r->body);
  const char* bucket = users ? "users" : "accounts";
  if (!body.is_object() || !body.contains("response") || !body["response"].contains(bucket) ||
      !body["response"][bucket].contains("hits") || !body["response"][bucket]["hits"].is_array())
    return Status(StatusCode::kUnavailable, "totango: " + what + ": the answer has no response." +
                                                bucket + ".hits")
        .set_system(name_);
  json out = body["response"][bucket];
  out["fields"] = fields;
  return out;
}

Result<Page> TotangoConnector::ReadAccountsOrUsers(bool users, const ObjectRef& object,
                                                   const Cursor& cursor, const ReadContext& context) {
  // The cursor holds the windows still to read (the first one in progress) and the offset in it;
  // [-1, -1] is the whole set. It resets to "" when the scan is done: the next run scans again.
  json state = cursor.empty() ? json{{"windows", {{-1, -1}}}, {"offset", 0}}
                              : ParseJsonOrDiscarded(cursor);
  if (!ValidScanState(state))
    return Status(StatusCode::kInvalidArgument, "totango: unreadable cursor \"" + cursor + "\"");
  const int count = context.page_size > 0 ? std::min(context.page_size, totango::kMaxSearchCount)
                                           : totango::kMaxSearchCount;
  Page page;
  while (!state["windows"].empty()) {
    const json w = state["windows"][0];
    const int offset = state.value("offset", 0);
    std::optional<std::pair<int64_t, int64_t>> window;
    if (w[0].get<int64_t>() >= 0) window = std::make_pair(w[0].get<int64_t>(), w[1].get<int64_t>());
    auto found = Search(users, object, offset, window, count);
    if (!found.ok()) return found.status();
    const int64_t total = std::clamp<int64_t>(IntAt(*found, "total_hits", 0), 0, kMaxCount);
    if (offset == 0 && total > totango::kSearchReachable) {
      if (users)
        return Status(StatusCode::kFailedPrecondition,
                      "totango: " + std::to_string(total) + " users match, more than the 10,000 "
                      "the Search API reaches; map users of fewer accounts")
            .set_system(name_);
      // Split the window in halves by creation date until each half is reachable.
      const int64_t from = window ? window->first : 0;
      const int64_t to = window ? window->second : kLastCreateDate;
      if (to - from <= 1)
        return Status(StatusCode::kFailedPrecondition,
                      "totango: more than 10,000 accounts share one Create Date (" +
                          FormatIsoUtc(from, true) + "); they cannot be read through the Search "
                          "API")
            .set_system(name_);
      const int64_t mid = from + (to - from) / 2;
      state["windows"].erase(0);
      state["windows"].insert(state["windows"].begin(), json::array({mid, to}));
      state["windows"].insert(state["windows"].begin(), json::array({from, mid}));
      if (!window) state["expected"] = total;
      continue;
    }
    if (!state.contains("expected") && !window && offset == 0) page.total = total;
    const json& hits = (*found)["hits"];
    const json& fields = (*found)["fields"];
    for (const json& hit : hits) {
      NativeRecord rec;
      // Text of another type would be taken as its JSON: an id, or a name written on as
      // {"a":1}. Such a hit is rejected by the engine, by its id and reason.
      const json& name_value = At(hit, "name");
      if (!name_value.is_null() && !name_value.is_string() && !name_value.is_number_integer()) {
        rec.invalid = "its name (the " + std::string(users ? "user" : "account") +
                      "'s id) is neither text nor a whole number";
        page.records.push_back(std::move(rec));
        continue;
      }
      const std::string id = Str(hit, "name");
      if (id.empty()) {
        spdlog::warn("{}: skipping a search hit without a name: {}", name_,
                     hit.dump(-1, ' ', false, json::error_handler_t::replace));
        continue;
      }
      // A name that is the record's id is no name: Totango shows the id where none was given
      // (an SDR write of a user creates its account, unnamed, when the account's own write was
      // lost). Read as absent, so the unconfirmed write of the name is seen lost and made again.
      if (const json& shown = At(hit, "display_name"); !shown.is_null() && !shown.is_string())
        rec.invalid = "its display_name is not text";
      else if (const std::string name = Str(hit, "display_name"); name != id)
        rec.fields[users ? "name" : kDisplayName] = name;
      static const json kNone = json::array();
      const json& selected =
          At(hit, "selected_fields").is_array() ? At(hit, "selected_fields") : kNone;
      for (size_t i = 0; i < fields.size() && i < selected.size(); ++i)
        rec.fields[fields[i]["attribute"].get<std::string>()] = selected[i];
      if (users) {
        const std::string account = fields.size() < selected.size() ? AttributeText(selected[fields.size()]) : "";
        rec.fields[kAccountId] = account;
        rec.fields["email"] = id;
        rec.id = account + "/" + id;
      } else {
        rec.id = id;
        rec.key = KeyOfAccountId(id);
      }
      page.records.push_back(std::move(rec));
    }
    state["read"] = state.value("read", int64_t{0}) + static_cast<int64_t>(hits.size());
    const int next = offset + static_cast<int>(hits.size());
    if (static_cast<int>(hits.size()) < count || next >= total || next >= totango::kSearchReachable) {
      state["windows"].erase(0);
      state["offset"] = 0;
    } else {
      state["offset"] = next;
    }
    break;
  }
  page.has_more = !state["windows"].empty();
  if (!page.has_more) {
    // Accounts without a Create Date fall outside every date window: say so, never silently.
    if (state.contains("expected") && state.value("read", int64_t{0}) < state["expected"].get<int64_t>())
      spdlog::warn("{}: {} of {} accounts were not reached: they have no Create Date to split the "
                   "10,000-record search cap by",
                   name_, state["expected"].get<int64_t>() - state.value("read", int64_t{0}),
                   state["expected"].get<int64_t>());
    page.next = "";
  } else {
    page.next = state.dump();
  }
  return page;
}

Result<Page> TotangoConnector::ReadChanges(const ObjectRef& object, const Cursor& cursor,
                                           const ReadContext& context) {
  if (object.object == "accounts") return ReadAccountsOrUsers(false, object, cursor, context);
  if (object.object == "users") return ReadAccountsOrUsers(true, object, cursor, context);
  return Status(StatusCode::kFailedPrecondition,
                "totango: " + object.object + " are written, not read (map them with direction: "
                "out); readable objects are accounts and users")
      .set_system(name_);
}

std::string TotangoConnector::Refusal(bool account, const std::string& name, const json& value) const {
  const std::string text = AttributeText(value);
  if (auto list = allowed_.find(name); list != allowed_.end() && !text.empty() &&
                                       std::find(list->second.begin(), list->second.end(), text) == list->second.end()) {
    std::string known;
    for (const std::string& v : list->second) known += (known.empty() ? "" : ", ") + v;
    return "'" + text + "' is not an allowed value of " + name + " (configured: " + known +
           "); Totango would ignore it";
  }
  if (!account && (name == "Contact" || name == "Key Contact") && text != "yes" && text != "no")
    return name + " takes yes or no, not '" + text + "'";
  const size_t max = account ? totango::kAccountTextMax : totango::kUserTextMax;
  if (text.size() > max)
    return name + " is " + std::to_string(text.size()) + " characters; Totango keeps at most " +
           std::to_string(max);
  return "";
}

WriteOutcome TotangoConnector::WriteAttributes(const ObjectRef& object, const WriteOp& op) {
  const bool users = object.object == "users";
  WriteOutcome out;
  if (op.kind == WriteOp::Kind::kDelete) {
    // A record-level refusal: dead-letter this write, keep writing the others.
    out.status = Status(StatusCode::kInvalidArgument,
                        "totango: the API cannot delete " + std::string(users ? "users" : "accounts") +
                            "; map deletes to an attribute (e.g. Status) instead")
                     .set_system(name_);
    return out;
  }
  auto service = config_.options.find("service_id");
  std::string query = "sdr_s=" + PercentEncode(service == config_.options.end() ? "" : service->second);
  std::string account, user;
  if (users) {
    account = AccountOf(op);
    user = Str(op.fields, "email");
    if ((account.empty() || user.empty()) && !op.native_id.empty()) {
      const size_t slash = op.native_id.find('/');
      if (account.empty()) account = op.native_id.substr(0, slash);
      if (user.empty() && slash != std::string::npos) user = op.native_id.substr(slash + 1);
    }
    if (account.empty() || user.empty()) {
      out.status = Status(StatusCode::kInvalidArgument,
                          std::string("totango: a user needs ") +
                              (account.empty() ? "an account (account_id refers to no record)"
                                               : "an email") +
                              ": Totango keeps users per account, by email")
                       .set_system(name_);
      return out;
    }
  } else {
    account = !op.native_id.empty() ? op.native_id : AccountIdForKey(op.key);
  }
  query += "&sdr_o=" + PercentEncode(account);
  if (users) {
    query += "&sdr_u=" + PercentEncode(user);
    // A user's display name, when the mapping writes none, is its first and last name.
    if (!op.fields.contains("name")) {
      std::string name = Str(op.fields, kFirstName);
      const std::string last = Str(op.fields, kLastName);
      if (!last.empty()) name += (name.empty() ? "" : " ") + last;
      if (!name.empty()) query += "&sdr_u.name=" + PercentEncode(name);
    }
    if (Param(object, "contact") == "true" && !op.fields.contains("Contact"))
      query += "&sdr_u.Contact=yes";
  }
  for (const auto& [field, value] : op.fields.items()) {
    if (users && (field == kAccountId || field == "email")) continue;
    if (field == kDisplayName && !users) {
      query += "&sdr_o.account_name=" + PercentEncode(AttributeText(value));
      continue;
    }
    if (field == "name" && users) {
      query += "&sdr_u.name=" + PercentEncode(AttributeText(value));
      continue;
    }
    if (std::string why = Refusal(!users, field, value); !why.empty()) {
      out.status = Status(StatusCode::kInvalidArgument, "totango: " + account + ": " + why).set_system(name_);
      return out;
    }
    query += std::string(users ? "&sdr_u." : "&sdr_o.") + PercentEncode(field) + "=" +
             PercentEncode(AttributeText(value));
  }
  // Setting attributes is idempotent: a repeated call sets the same values.
  auto r = Call("GET", sdr_url_ + totango::kSdrPath + "/?" + query, "", "", true);
  if (!r.ok()) {
    out.status = r.status();
    return out;
  }
  if (r->status != 200) {
    out.status = Fail(*r, "SDR write of " + account);
    return out;
  }
  out.native_id = users ? account + "/" + user : account;
  out.created = op.native_id.empty();
  out.unverified = true;  // a 200 from the gateway proves only that the request arrived
  return out;
}

Result<std::optional<std::string>> TotangoConnector::FindEarlierCreate(const std::string& object,
                                                                       const json& fields) {
  const std::string account = Str(fields, kAccountId);
  const bool touchpoint = object == "touchpoints";
  const std::string url = config_.base_url + (touchpoint ? "/api/v2/events/?account_id="
                                                         : "/api/v3/tasks?account_id=") +
                          PercentEncode(account);
  auto r = Call("GET", url, "", "", true);
  if (!r.ok()) return r.status();
  // No account, so no earlier create on it either.
  if (AccountNotFound(*r)) return std::optional<std::string>();
  if (r->status != 200) return Fail(*r, "looking for an earlier " + object + " create");
  const json list = ParseJsonOrDiscarded(r->body);
  if (!list.is_array()) return std::optional<std::string>();
  for (const json& item : list) {
    if (touchpoint) {
      const json& note = At(item, "note_content");
      if (Str(item, "type") == "note" && Str(note, "subject") == Str(fields, "subject") &&
          Str(note, "text") == Str(fields, "content"))
        return std::optional<std::string>(Str(note, "note_id"));
    } else if (Str(item, "title") == Str(fields, "title") &&
               Str(item, "description") == Str(fields, "description")) {
      return std::optional<std::string>(Str(item, "id"));
    }
  }
  return std::optional<std::string>();
}

json TotangoConnector::RecordBody(const ObjectRef& ref, const WriteOp& op) {
  const bool touchpoint = ref.object == "touchpoints";
  json body = op.fields;
  if (const std::string account = AccountOf(op); !account.empty()) body[kAccountId] = account;
  const std::string flow = Param(ref, "activity_type_id");
  if (!flow.empty() && !body.contains("activity_type_id")) body["activity_type_id"] = flow;
  if (touchpoint) {
    const std::string subject = Param(ref, "subject");
    if (!subject.empty() && Str(body, "subject").empty()) body["subject"] = subject;
    body["disable_sync"] = true;  // keep Totango from echoing our notes onwards
  } else if (!body.contains("priority")) {
    body["priority"] = std::atoi(Param(ref, "priority", "2").c_str());
  }
  return body;
}

WriteOutcome TotangoConnector::CreateOrUpdate(const ObjectRef& ref, const WriteOp& op) {
  WriteOutcome out;
  const std::string& object = ref.object;
  const bool touchpoint = object == "touchpoints";
  const std::string base = config_.base_url + (touchpoint ? "/api/v3/touchpoints/" : "/api/v3/tasks");
  const std::string item_url = config_.base_url + (touchpoint ? "/api/v3/touchpoints/" : "/api/v3/tasks/");
  const json body = op.kind == WriteOp::Kind::kDelete ? json::object() : RecordBody(ref, op);
  std::string id = op.native_id;
  if (op.kind != WriteOp::Kind::kDelete && Str(body, kAccountId).empty()) {
    // Totango answers "Account not found"; say which reference is missing instead.
    out.status = Status(StatusCode::kInvalidArgument,
                        "totango: a " + object.substr(0, object.size() - 1) +
                            " needs an account: its account_id refers to no record")
                     .set_system(name_);
    return out;
  }
  if (!touchpoint && op.kind != WriteOp::Kind::kDelete && Str(body, "activity_type_id").empty()) {
    out.status = Status(StatusCode::kInvalidArgument,
                        "totango: a task needs a Flow: give params.activity_type_id (an id of "
                        "GET /api/v3/activity-types)")
                     .set_system(name_);
    return out;
  }

  if (op.kind == WriteOp::Kind::kDelete) {
    auto r = Call("DELETE", item_url + PercentEncode(id), "", "", true);
    if (!r.ok()) out.status = r.status();
    else if (r->status != 200 && r->status != 204 && r->status != 404)
      out.status = Fail(*r, "deleting " + object + " " + id);
    out.native_id = id;
    return out;
  }
  if (id.empty() && op.kind == WriteOp::Kind::kUpsert) {
    if (op.attempt > 0) {
      // An earlier attempt may have landed without our learning its id: adopt it, never repeat.
      auto earlier = FindEarlierCreate(object, body);
      if (!earlier.ok()) {
        out.status = earlier.status();
        return out;
      }
      if (earlier->has_value()) id = **earlier;
    }
    if (id.empty()) {
      // Not idempotent: a timeout leaves the outcome unknown, and the retry reconciles first.
      auto r = Call("POST", base, body.dump(), "application/json", false);
      if (!r.ok()) {
        out.status = r.status();
        return out;
      }
      if (r->status != 200 && r->status != 201) {
        out.status = Fail(*r, "creating a " + object.substr(0, object.size() - 1) + " on " +
                                  Str(body, kAccountId));
        // The account may be one whose SDR write has not landed yet (the gateway confirms
        // nothing; a later read finds it missing and writes it again): try again later, and
        // the retries still end in a dead letter if it never appears.
        if (AccountNotFound(*r))
          out.status = Status(StatusCode::kUnavailable, out.status.message() +
                                                            " (not yet there: retried later)")
                           .set_system(name_);
        return out;
      }
      const json answer = ParseJsonOrDiscarded(r->body);
      out.native_id = touchpoint ? Str(At(answer, "note"), "id") : Str(answer, "id");
      out.created = true;
      if (out.native_id.empty())
        out.status = Status(StatusCode::kUnavailable, "totango: the create answer carried no id")
                         .set_system(name_);
      return out;
    }
  }
  auto r = Call("PUT", item_url + PercentEncode(id), body.dump(), "application/json", true);
  if (!r.ok()) {
    out.status = r.status();
    return out;
  }
  if (r->status != 200) {
    out.status = Fail(*r, "updating " + object + " " + id);
    return out;
  }
  out.native_id = id;
  return out;
}

Result<std::vector<WriteOutcome>> TotangoConnector::Write(const ObjectRef& object,
                                                          const std::vector<WriteOp>& ops) {
  std::vector<WriteOutcome> outcomes;
  outcomes.reserve(ops.size());
  // What the mapping loader checks against the same declaration, for a caller that did not.
  const auto& allowed = KindCapabilities().reference_fields;
  const auto fields = allowed.find(object.object);
  for (const WriteOp& op : ops) {
    WriteOutcome o;
    const bool other_ref = std::any_of(op.refs.begin(), op.refs.end(), [&](const auto& ref) {
      return fields == allowed.end() ||
             std::find(fields->second.begin(), fields->second.end(), ref.first) == fields->second.end();
    });
    if (op.kind == WriteOp::Kind::kMerge) {
      o.status = Status(StatusCode::kInvalidArgument, "totango: the API cannot merge records")
                     .set_system(name_);
    } else if (other_ref) {
      o.status = Status(StatusCode::kInvalidArgument,
                        "totango: " + object.object + " take no reference but account_id (the "
                        "account a user, touchpoint or task belongs to)")
                     .set_system(name_);
    } else if (object.object == "accounts" || object.object == "users") {
      o = WriteAttributes(object, op);
    } else if (object.object == "touchpoints" || object.object == "tasks") {
      o = CreateOrUpdate(object, op);
    } else {
      o.status = Status(StatusCode::kFailedPrecondition,
                        "totango: no such object \"" + object.object +
                            "\" (accounts, users, touchpoints, tasks)")
                     .set_system(name_);
    }
    // Bad credentials fail every op alike: report them once for the whole write.
    if (o.status.code() == StatusCode::kUnauthenticated || o.status.code() == StatusCode::kPermissionDenied)
      return o.status;
    outcomes.push_back(std::move(o));
  }
  return outcomes;
}

}  // namespace crmbridge
