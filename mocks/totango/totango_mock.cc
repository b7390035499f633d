#include "mocks/totango/totango_mock.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <random>

#include "src/core/time_util.h"

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

constexpr int kMaxCount = 1000;        // rows per search call
constexpr int kReachable = 10000;      // rows reachable through the Search API
constexpr size_t kAccountText = 512;   // characters in an account text attribute
constexpr size_t kUserText = 255;      // characters in a user text attribute
constexpr size_t kTouchpointText = 12000;

// The 1x1 transparent GIF the SDR gateway answers with.
const std::string& Pixel() {
  static const std::string gif(
      "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00"
      "\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b",
      43);
  return gif;
}

// Account ids allow letters, digits and '_' only (refs/totango §2).
bool ValidAccountId(const std::string& id) {
  return !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Named date attributes take ISO-8601 (refs/totango §4.1).
bool IsDateAttribute(const std::string& name) {
  return name == "Create Date" || name == "Contract Renewal Date" || name == "Contract Start Date";
}

std::string Str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

// A body that may be JSON or a form (the REST APIs accept both): always as a JSON object.
std::optional<json> BodyObject(const httplib::Request& req) {
  const std::string type = req.get_header_value("Content-Type");
  if (type.find("application/json") != std::string::npos) {
    json j = json::parse(req.body, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    return j;
  }
  json j = json::object();
  for (const auto& [k, v] : DecodeForm(req.body)) {
    // Repeated form fields ("touchpoint_tags=a&touchpoint_tags=b") become arrays.
    std::string key = k;
    if (key.size() > 2 && key.compare(key.size() - 2, 2, "[]") == 0) key.resize(key.size() - 2);
    if (!j.contains(key)) {
      j[key] = v;
    } else {
      if (!j[key].is_array()) j[key] = json::array({j[key]});
      j[key].push_back(v);
    }
  }
  return j;
}

}  // namespace

TotangoMock::TotangoMock(Options options) : MockServer("totango"), options_(std::move(options)) {
  if (options_.clock == nullptr) options_.clock = Clock::Real();
}

int64_t TotangoMock::Now() const { return options_.clock->NowMillis(); }

json TotangoMock::Error(const std::string& message) { return {{"status", "error"}, {"error", message}}; }

json TotangoMock::FaultBody(int status, const std::string& message) const {
  if (status == 429) return "Too many requests";
  return Error(message + " (" + std::to_string(status) + ")");
}

bool TotangoMock::Admit(const httplib::Request& req, httplib::Response& res) {
  const std::string token = req.get_header_value("app-token");
  if (!options_.tokens.count(token)) {
    res.status = 401;
    res.set_content(Error("Unauthorized: a valid app-token header is required").dump(), "application/json");
    return false;
  }
  if (!options_.enforce_limits) return true;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = Now();
  Window& w = windows_[token];
  if (now - w.start_ms >= 60000) w = Window{now, 0};
  const int64_t reset_s = std::max<int64_t>(1, (w.start_ms + 60000 - now + 999) / 1000);
  res.set_header("RateLimit-Limit", std::to_string(options_.per_minute_max));
  res.set_header("RateLimit-Reset", std::to_string(reset_s));
  if (w.used >= options_.per_minute_max) {
    res.status = 429;
    res.set_header("RateLimit-Remaining", "0");
    res.set_header("Retry-After", std::to_string(reset_s));
    res.set_content("Too many requests", "text/plain");
    return false;
  }
  ++w.used;
  res.set_header("RateLimit-Remaining", std::to_string(options_.per_minute_max - w.used));
  return true;
}

std::optional<std::string> TotangoMock::AcceptAttribute(bool account, const std::string& name,
                                                        const std::string& value) const {
  if (value.size() > (account ? kAccountText : kUserText))
    return "value of '" + name + "' longer than " + std::to_string(account ? kAccountText : kUserText);
  if (account) {
    if (auto lc = options_.lifecycles.find(name); lc != options_.lifecycles.end()) {
      if (std::find(lc->second.begin(), lc->second.end(), value) == lc->second.end())
        return "'" + value + "' is not a stage of lifecycle '" + name + "'";
    }
    if (name == "Status" && !options_.statuses.count(value))
      return "'" + value + "' is not a configured contract status";
    if (IsDateAttribute(name) && !value.empty() && !ParseIsoUtcMillis(value) &&
        !ParseIsoUtcMillis(value + "T00:00:00Z"))
      return "'" + value + "' is not an ISO-8601 date for '" + name + "'";
  } else if ((name == "Contact" || name == "Key Contact") && value != "yes" && value != "no") {
    return "'" + name + "' takes yes or no, not '" + value + "'";
  }
  return std::nullopt;
}

void TotangoMock::ApplySdrLocked(const std::multimap<std::string, std::string>& params) {
  auto get = [&](const std::string& key) -> std::optional<std::string> {
    auto it = params.find(key);
    if (it == params.end()) return std::nullopt;
    return it->second;
  };
  // The gateway answers 200 to everything; what it cannot use is dropped without a word.
  if (get("sdr_s").value_or("") != options_.service_id) {
    sdr_ignored_.push_back("unknown service id '" + get("sdr_s").value_or("") + "'");
    return;
  }
  const std::string account_id = get("sdr_o").value_or("");
  if (!ValidAccountId(account_id)) {
    sdr_ignored_.push_back("invalid account id '" + account_id + "'");
    return;
  }
  const int64_t now = Now();
  Account& a = accounts_[account_id];
  if (a.id.empty()) {
    a.id = account_id;
    a.display_name = account_id;
    a.created_ms = now;
    // A system attribute: every account has one from its creation (a request may backdate it).
    a.attributes["Create Date"] = FormatIsoUtc(now, false);
  }
  a.updated_ms = now;
  if (auto name = get("sdr_o.account_name")) a.display_name = *name;
  else if (auto odn = get("sdr_odn")) a.display_name = *odn;

  const std::string user_id = get("sdr_u").value_or("");
  User* user = nullptr;
  if (!user_id.empty()) {
    user = &users_[{account_id, user_id}];
    if (user->id.empty()) {
      user->account_id = account_id;
      user->id = user_id;
      user->name = user_id;
      user->created_ms = now;
    }
    user->updated_ms = now;
    if (auto name = get("sdr_u.name")) user->name = *name;
  }
  for (const auto& [key, value] : params) {
    const bool is_account = key.rfind("sdr_o.", 0) == 0;
    const bool is_user = key.rfind("sdr_u.", 0) == 0;
    if (!is_account && !is_user) continue;
    const std::string name = key.substr(6);
    if (is_account && name == "account_name") continue;
    if (is_user && name == "name") continue;
    if (is_user && user == nullptr) {
      sdr_ignored_.push_back("user attribute '" + name + "' without sdr_u");
      continue;
    }
    if (auto why = AcceptAttribute(is_account, name, value)) {
      sdr_ignored_.push_back(account_id + ": " + *why);
      continue;
    }
    (is_account ? a.attributes : user->attributes)[name] = value;
  }
  ++sdr_accepted_;
}

TotangoMock::Reply TotangoMock::Search(bool users, const json& query) const {
  if (!query.is_object()) return {400, Error("query must be a JSON object")};
  if (!query.contains("terms") || !query["terms"].is_array())
    return {400, Error("terms is mandatory (send [] for no filter)")};
  if (!query.contains("fields") || !query["fields"].is_array()) return {400, Error("fields is mandatory")};
  const int count = query.value("count", kMaxCount);
  const int offset = query.value("offset", 0);
  if (count < 1 || count > kMaxCount) return {400, Error("count must be between 1 and 1000")};
  if (offset < 0) return {400, Error("offset must not be negative")};

  // The value a term or field names, for an account or a user (with its account).
  auto value_of = [&](const json& spec, const Account* a, const User* u, std::string* error) -> std::optional<std::string> {
    const std::string type = spec.value("type", "");
    auto attr = [&](const std::string& name) -> std::optional<std::string> {
      const auto& attrs = u ? u->attributes : a->attributes;
      auto it = attrs.find(name);
      if (it == attrs.end()) return std::nullopt;
      return it->second;
    };
    if (type == "string") {
      const std::string term = spec.value("term", "");
      if (term == "identifier") return u ? u->id : a->id;
      if (term == "display_name") return u ? u->name : a->display_name;
      if (u == nullptr && term == "status_group") {
        auto status = attr("Status");
        if (!status) return std::nullopt;
        auto it = options_.statuses.find(*status);
        return it == options_.statuses.end() ? std::nullopt : std::optional<std::string>(it->second);
      }
      if (u == nullptr && term == "status") return attr("Status");
      if (u == nullptr && term == "health") return std::string("good");
      *error = "unknown term '" + term + "'";
      return std::nullopt;
    }
    if (type == "string_attribute" || type == "simple_date_attribute" || type == "number_attribute")
      return attr(spec.value("attribute", ""));
    if (type == "health_trend") return std::string("stable");
    *error = "unknown type '" + type + "'";
    return std::nullopt;
  };

  std::string error;
  std::function<bool(const json&, const Account*, const User*)> matches =
      [&](const json& term, const Account* a, const User* u) -> bool {
    if (!term.is_object()) {
      error = "each term must be an object";
      return false;
    }
    if (term.value("type", "") == "or") {
      for (const json& t : term.value("or", json::array()))
        if (matches(t, a, u)) return true;
      return false;
    }
    std::optional<std::string> v = value_of(term, a, u, &error);
    if (!error.empty()) return false;
    if (term.contains("in_list")) {
      if (!v) return false;
      for (const json& x : term["in_list"])
        if (Str(x) == *v) return true;
      return false;
    }
    if (term.contains("eq")) return v && *v == Str(term["eq"]);
    // Date ranges (inferred shape): gte/gt/lte/lt over ISO-8601 dates or epoch milliseconds.
    bool ranged = false;
    const std::optional<int64_t> parsed = v ? ParseIsoUtcMillis(*v) : std::nullopt;
    const int64_t at = parsed.value_or(0);
    for (const char* op : {"gte", "gt", "lte", "lt"}) {
      if (!term.contains(op)) continue;
      ranged = true;
      const json& bound = term[op];
      const std::optional<int64_t> b =
          bound.is_number() ? std::optional<int64_t>(bound.get<int64_t>()) : ParseIsoUtcMillis(Str(bound));
      if (!b) {
        error = std::string("bad date in '") + op + "'";
        return false;
      }
      if (!parsed) return false;
      const std::string o = op;
      if ((o == "gte" && at < *b) || (o == "gt" && at <= *b) || (o == "lte" && at > *b) ||
          (o == "lt" && at >= *b))
        return false;
    }
    if (ranged) return true;
    error = "a term needs in_list, eq or a date range";
    return false;
  };

  struct Row {
    const Account* a;
    const User* u;
  };
  std::vector<Row> rows;
  auto keep = [&](const Account* a, const User* u) {
    for (const json& t : query["terms"]) {
      if (!matches(t, a, u)) return;
    }
    rows.push_back({a, u});
  };
  if (users) {
    for (const auto& [key, u] : users_) keep(&accounts_.at(u.account_id), &u);
  } else {
    for (const auto& [id, a] : accounts_) keep(&a, nullptr);
  }
  if (!error.empty()) return {400, Error(error)};

  const std::string sort_by = query.value("sort_by", "");
  const bool descending = query.value("sort_order", "ASC") == "DESC";
  if (!sort_by.empty()) {
    auto key = [&](const Row& r) -> std::string {
      if (sort_by == "display_name") return r.u ? r.u->name : r.a->display_name;
      const auto& attrs = r.u ? r.u->attributes : r.a->attributes;
      auto it = attrs.find(sort_by);
      return it == attrs.end() ? "" : it->second;
    };
    // Stable, so equal keys keep the id order and paging never repeats or skips a row.
    std::stable_sort(rows.begin(), rows.end(), [&](const Row& x, const Row& y) {
      return descending ? key(y) < key(x) : key(x) < key(y);
    });
  }

  json fields = query["fields"];
  if (users)
    for (const json& f : query.value("parent_account_fields", json::array())) fields.push_back(f);
  const size_t parent_from = query["fields"].size();
  json hits = json::array();
  const size_t end = std::min<size_t>({rows.size(), static_cast<size_t>(offset) + count,
                                       static_cast<size_t>(kReachable)});
  for (size_t i = static_cast<size_t>(offset); i < end; ++i) {
    const Row& r = rows[i];
    json selected = json::array();
    for (size_t f = 0; f < fields.size(); ++f) {
      const bool parent = f >= parent_from;
      std::string ignored;
      auto v = value_of(fields[f], r.a, parent ? nullptr : r.u, &ignored);
      if (!ignored.empty()) return {400, Error("field: " + ignored)};
      selected.push_back(v ? json(*v) : json());
    }
    json hit = {{"name", r.u ? r.u->id : r.a->id},
                {"display_name", r.u ? r.u->name : r.a->display_name},
                {"selected_fields", selected}};
    hits.push_back(hit);
  }
  const char* bucket = users ? "users" : "accounts";
  return {200, {{"response", {{bucket, {{"total_hits", rows.size()}, {"hits", hits}, {"stats", json::object()}}}}}}};
}

TotangoMock::Reply TotangoMock::CreateTouchpoint(const json& in) {
  const std::string account_id = Str(in.value("account_id", json()));
  if (account_id.empty()) return {400, Error("account_id is required")};
  if (!accounts_.count(account_id)) return {400, Error("Account not found")};
  const std::string content = Str(in.value("content", json()));
  if (content.size() > kTouchpointText) return {400, Error("content is longer than 12000 characters")};
  json note = {{"id", next_touchpoint_++},
               {"account_id", account_id},
               {"subject", Str(in.value("subject", json()))},
               {"content", content},
               {"activity_type_id", Str(in.value("activity_type_id", json()))},
               {"touchpointType", Str(in.value("touchpointType", json()))},
               {"touchpoint_tags", in.value("touchpoint_tags", json::array())},
               {"participantList", in.value("participantList", json::array())},
               {"created_by", Str(in.value("created_by", json()))},
               {"disable_sync", in.value("disable_sync", json(false)) == json(true) ||
                                    in.value("disable_sync", json()) == json("true")}};
  const json date = in.value("create_date", json());
  note["create_date"] = date.is_number() ? date.get<int64_t>()
                        : date.is_string() && !date.get<std::string>().empty()
                            ? std::stoll(date.get<std::string>())
                            : Now();
  if (!note["touchpoint_tags"].is_array()) note["touchpoint_tags"] = json::array({note["touchpoint_tags"]});
  touchpoints_[note["id"].get<int64_t>()] = note;
  return {200, {{"note", note}}};
}

json TotangoMock::TouchpointEvent(const json& note) const {
  return {{"id", "evt_" + std::to_string(note["id"].get<int64_t>())},
          {"type", "note"},
          {"timestamp", note["create_date"]},
          {"account", {{"id", note["account_id"]}}},
          {"note_content",
           {{"note_id", note["id"]},
            {"subject", note["subject"]},
            {"text", note["content"]},
            {"activity_type_id", note["activity_type_id"]},
            {"created_by", note["created_by"]}}}};
}

TotangoMock::Reply TotangoMock::CreateTask(const json& in) {
  static const std::set<std::string> kActivities = {"onboarding", "support", "renewal", "adoption"};
  const std::string account_id = Str(in.value("account_id", json()));
  if (Str(in.value("title", json())).empty()) return {400, Error("title is required")};
  if (!accounts_.count(account_id)) return {400, Error("Account not found")};
  if (!kActivities.count(Str(in.value("activity_type_id", json()))))
    return {400, Error("activity_type_id is required and must be a known flow")};
  json task = {{"status", "open"}, {"priority", 2}};
  for (const auto& [k, v] : in.items()) task[k] = v;
  task["id"] = "task_" + std::to_string(next_task_);
  task["account_id"] = account_id;
  if (task["priority"].is_string()) task["priority"] = std::atoi(task["priority"].get<std::string>().c_str());
  const int priority = task["priority"].is_number() ? task["priority"].get<int>() : 0;
  if (priority < 1 || priority > 3) return {400, Error("priority must be 1 (high), 2 (normal) or 3 (low)")};
  if (task.contains("due_date") && !ParseIsoUtcMillis(Str(task["due_date"]) + "T00:00:00Z"))
    return {400, Error("due_date must be YYYY-MM-DD")};
  ++next_task_;
  task["created_date"] = Now();
  tasks_[task["id"].get<std::string>()] = task;
  return {200, task};
}

TotangoMock::Reply TotangoMock::UpdateTask(const std::string& id, const json& in) {
  if (id.empty()) return {400, Error("id is required")};
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return {404, Error("Task not found")};
  json next = it->second;
  for (const auto& [k, v] : in.items())
    if (k != "id" && k != "account_id") next[k] = v;
  if (next["priority"].is_string()) next["priority"] = std::atoi(next["priority"].get<std::string>().c_str());
  const int priority = next["priority"].is_number() ? next["priority"].get<int>() : 0;
  if (priority < 1 || priority > 3) return {400, Error("priority must be 1 (high), 2 (normal) or 3 (low)")};
  it->second = next;
  return {200, next};
}

void TotangoMock::RegisterRoutes(httplib::Server& s) {
  auto reply = [](httplib::Response& res, const Reply& r) {
    res.status = r.first;
    if (r.second.is_null()) return;
    res.set_content(r.second.dump(), "application/json");
  };
  // Routes under the REST limit share their preamble: count, authenticate, rate-limit.
  using Handler = std::function<Reply(const httplib::Request&)>;
  auto rest = [=](std::string route, Handler handle) {
    return [=](const httplib::Request& req, httplib::Response& res) {
      CountRequest(route);
      if (!Admit(req, res)) return;
      reply(res, handle(req));
    };
  };

  auto search = [=](bool users) {
    return rest(users ? "POST /api/v1/search/users" : "POST /api/v1/search/accounts",
                [=](const httplib::Request& req) -> Reply {
                  const auto form = DecodeForm(req.body);
                  auto q = form.find("query");
                  if (q == form.end()) return {400, Error("the query form field is required")};
                  json query = json::parse(q->second, nullptr, false);
                  if (query.is_discarded()) return {400, Error("query is not valid JSON")};
                  std::lock_guard<std::mutex> lock(mu_);
                  return Search(users, query);
                });
  };
  s.Post("/api/v1/search/accounts", search(false));
  s.Post("/api/v1/search/users", search(true));

  // SDR: no token and no limit; 200 and the pixel whatever it was sent.
  auto sdr = [this](const httplib::Request& req, httplib::Response& res) {
    CountRequest(req.method + " /pixel.gif");
    std::multimap<std::string, std::string> params(req.params.begin(), req.params.end());
    if (req.method == "POST")
      for (auto& kv : DecodeForm(req.body)) params.insert(kv);
    if (!WriteLost(res)) {
      std::lock_guard<std::mutex> lock(mu_);
      ApplySdrLocked(params);
    }
    res.status = 200;
    res.set_content(Pixel(), "image/gif");
  };
  for (const char* path : {"/pixel.gif", "/pixel.gif/"}) {
    s.Get(path, sdr);
    s.Post(path, sdr);
  }

  auto create_touchpoint = rest("POST /api/v3/touchpoints", [this](const httplib::Request& req) -> Reply {
    auto body = BodyObject(req);
    if (!body) return {400, Error("the body must be a JSON object or a form")};
    std::lock_guard<std::mutex> lock(mu_);
    return CreateTouchpoint(*body);
  });
  s.Post("/api/v3/touchpoints", create_touchpoint);
  s.Post("/api/v3/touchpoints/", create_touchpoint);
  // Read, update and delete of one touchpoint (paths from secondary sources, inferred).
  s.Get(R"(/api/v3/touchpoints/(\d+))", rest("GET /api/v3/touchpoints/{id}", [this](const httplib::Request& req) -> Reply {
          std::lock_guard<std::mutex> lock(mu_);
          auto it = touchpoints_.find(std::stoll(req.matches[1]));
          if (it == touchpoints_.end()) return {404, Error("Touchpoint not found")};
          return {200, {{"note", it->second}}};
        }));
  s.Put(R"(/api/v3/touchpoints/(\d+))", rest("PUT /api/v3/touchpoints/{id}", [this](const httplib::Request& req) -> Reply {
          auto body = BodyObject(req);
          if (!body) return {400, Error("the body must be a JSON object or a form")};
          std::lock_guard<std::mutex> lock(mu_);
          auto it = touchpoints_.find(std::stoll(req.matches[1]));
          if (it == touchpoints_.end()) return {404, Error("Touchpoint not found")};
          for (const char* k : {"subject", "content", "activity_type_id", "touchpointType"})
            if (body->contains(k)) it->second[k] = Str((*body)[k]);
          if (Str(it->second["content"]).size() > kTouchpointText)
            return {400, Error("content is longer than 12000 characters")};
          return {200, {{"note", it->second}}};
        }));
  s.Delete(R"(/api/v3/touchpoints/(\d+))", rest("DELETE /api/v3/touchpoints/{id}", [this](const httplib::Request& req) -> Reply {
             std::lock_guard<std::mutex> lock(mu_);
             if (touchpoints_.erase(std::stoll(req.matches[1])) == 0) return {404, Error("Touchpoint not found")};
             return {200, {{"status", "success"}}};
           }));
  s.Get("/api/v2/events/", rest("GET /api/v2/events/", [this](const httplib::Request& req) -> Reply {
          const std::string account_id = req.get_param_value("account_id");
          std::lock_guard<std::mutex> lock(mu_);
          if (!accounts_.count(account_id)) return {400, Error("Account not found")};
          json events = json::array();
          for (const auto& [id, note] : touchpoints_)
            if (note["account_id"] == account_id) events.push_back(TouchpointEvent(note));
          return {200, events};
        }));
  s.Get("/api/v3/activity-types", rest("GET /api/v3/activity-types", [](const httplib::Request&) -> Reply {
          json types = json::array();
          for (const char* id : {"onboarding", "support", "renewal", "adoption"})
            types.push_back({{"id", id}, {"display_name", std::string(1, static_cast<char>(std::toupper(id[0]))) + (id + 1)}});
          return {200, types};
        }));
  s.Get("/api/v3/touchpoint-tags/", rest("GET /api/v3/touchpoint-tags/", [](const httplib::Request&) -> Reply {
          return {200, json::array({{{"id", "kickoff"}, {"name", "Kick-off meeting"}},
                                    {{"id", "handover"}, {"name", "Sales to CS handover"}},
                                    {{"id", "training"}, {"name", "Training session"}}})};
        }));

  s.Post("/api/v3/tasks", rest("POST /api/v3/tasks", [this](const httplib::Request& req) -> Reply {
           auto body = BodyObject(req);
           if (!body) return {400, Error("the body must be a JSON object or a form")};
           std::lock_guard<std::mutex> lock(mu_);
           return CreateTask(*body);
         }));
  // Listing by account is inferred; by id a real client reads an array of one.
  s.Get("/api/v3/tasks", rest("GET /api/v3/tasks", [this](const httplib::Request& req) -> Reply {
          std::lock_guard<std::mutex> lock(mu_);
          json out = json::array();
          if (req.has_param("id")) {
            auto it = tasks_.find(req.get_param_value("id"));
            if (it != tasks_.end()) out.push_back(it->second);
            return {200, out};
          }
          const std::string account_id = req.get_param_value("account_id");
          if (!accounts_.count(account_id)) return {400, Error("Account not found")};
          for (const auto& [id, t] : tasks_)
            if (t["account_id"] == account_id) out.push_back(t);
          return {200, out};
        }));
  auto update_task = [this](const httplib::Request& req) -> Reply {
    auto body = BodyObject(req);
    if (!body) return {400, Error("the body must be a JSON object or a form")};
    std::lock_guard<std::mutex> lock(mu_);
    const std::string id = req.matches.size() > 1 ? req.matches[1].str() : Str(body->value("id", json()));
    return UpdateTask(id, *body);
  };
  s.Put("/api/v3/tasks", rest("PUT /api/v3/tasks", update_task));
  s.Put(R"(/api/v3/tasks/([^/]+))", rest("PUT /api/v3/tasks/{id}", update_task));
  s.Delete(R"(/api/v3/tasks/([^/]+))", rest("DELETE /api/v3/tasks/{id}", [this](const httplib::Request& req) -> Reply {
             std::lock_guard<std::mutex> lock(mu_);
             if (tasks_.erase(req.matches[1]) == 0) return {404, Error("Task not found")};
             return {200, {{"status", "success"}}};
           }));
}

void TotangoMock::Seed(uint64_t seed, int accounts) {
  std::lock_guard<std::mutex> lock(mu_);
  std::mt19937_64 rng(seed);
  static const char* kTrade[] = {"Bygg", "Fastighet", "Transport", "Vard", "Konsult", "Handel", "Logistik", "Media"};
  static const char* kFirst[] = {"Anna", "Erik", "Maja", "Lars", "Sofia", "Johan", "Emma", "Karl"};
  static const char* kLast[] = {"Larsson", "Andersson", "Johansson", "Nilsson", "Berg", "Holm"};
  const std::vector<std::string>& stages = options_.lifecycles.at("Onboarding Stage");
  const int64_t now = Now();
  for (int i = 0; i < accounts; ++i) {
    const std::string trade = kTrade[rng() % 8];
    Account a;
    a.id = "acc_" + std::to_string(i + 1);
    a.display_name = trade + " " + std::to_string(i + 1) + " AB";
    a.created_ms = a.updated_ms = now - static_cast<int64_t>(rng() % (90LL * 86400000));
    const std::string& stage = stages[rng() % stages.size()];
    a.attributes["Onboarding Stage"] = stage;
    a.attributes["Customer Journey Stage"] = stage == "Live" ? "Adoption" : "Onboarding";
    a.attributes["Status"] = stage == "Live" ? "Paying" : "Onboarding";
    a.attributes["Create Date"] = FormatIsoUtc(a.created_ms, false);
    a.attributes["Success Manager"] = std::string(kFirst[rng() % 8]) + " " + kLast[rng() % 6];
    accounts_[a.id] = a;
    const int users = 1 + static_cast<int>(rng() % 3);
    for (int u = 0; u < users; ++u) {
      User user;
      user.account_id = a.id;
      const std::string first = kFirst[rng() % 8], last = kLast[rng() % 6];
      std::string email = first + "." + last + std::to_string(i + 1) + "@" + trade + std::to_string(i + 1) + ".example.se";
      std::transform(email.begin(), email.end(), email.begin(), [](unsigned char c) { return std::tolower(c); });
      user.id = email;
      user.name = first + " " + last;
      user.attributes["Email"] = email;
      user.attributes["Contact"] = "yes";
      user.attributes["Key Contact"] = u == 0 ? "yes" : "no";
      user.created_ms = user.updated_ms = a.created_ms;
      users_[{a.id, user.id}] = user;
    }
    json note = {{"id", next_touchpoint_++},    {"account_id", a.id},
                 {"subject", "Kick-off meeting"}, {"content", "Handover from sales; onboarding plan agreed."},
                 {"activity_type_id", "onboarding"}, {"touchpointType", "meeting"},
                 {"touchpoint_tags", json::array({"kickoff"})}, {"participantList", json::array()},
                 {"created_by", "cs@example.se"}, {"disable_sync", false},
                 {"create_date", a.created_ms}};
    touchpoints_[note["id"].get<int64_t>()] = note;
  }
}

json TotangoMock::Dump() const {
  std::lock_guard<std::mutex> lock(mu_);
  json accounts = json::array(), users = json::array(), touchpoints = json::array(), tasks = json::array();
  for (const auto& [id, a] : accounts_)
    accounts.push_back({{"id", a.id},
                        {"display_name", a.display_name},
                        {"attributes", a.attributes},
                        {"created", a.created_ms},
                        {"updated", a.updated_ms}});
  for (const auto& [key, u] : users_)
    users.push_back({{"account_id", u.account_id}, {"id", u.id}, {"name", u.name}, {"attributes", u.attributes}});
  for (const auto& [id, t] : touchpoints_) touchpoints.push_back(t);
  for (const auto& [id, t] : tasks_) tasks.push_back(t);
  return {{"accounts", accounts},
          {"users", users},
          {"touchpoints", touchpoints},
          {"tasks", tasks},
          {"sdr", {{"accepted", sdr_accepted_}, {"ignored", sdr_ignored_}}}};
}

void TotangoMock::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  accounts_.clear();
  users_.clear();
  touchpoints_.clear();
  tasks_.clear();
  windows_.clear();
  sdr_ignored_.clear();
  sdr_accepted_ = 0;
  next_touchpoint_ = 1000;
  next_task_ = 1;
}

}  // namespace crmbridge::mocks
