#include "mocks/portal/portal_mock.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <random>

#include "src/core/time_util.h"

namespace crmbridge::mocks {

using nlohmann::json;

namespace {

constexpr int kDefaultLimit = 25;
constexpr int kMaxLimit = 100;
constexpr size_t kMaxIdempotencyKey = 255;
constexpr int64_t kWindowMs = 60000;
constexpr char kCursorPrefix[] = "c_";

json ErrorBody(const std::string& code, const std::string& message) {
  return {{"error", {{"code", code}, {"message", message}}}};
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// A positive decimal that fits comfortably in int64; nullopt for anything else ("", "+1", "1x").
std::optional<int64_t> ParseCount(const std::string& s) {
  if (s.empty() || s.size() > 15) return std::nullopt;
  for (unsigned char c : s)
    if (!std::isdigit(c)) return std::nullopt;
  return std::stoll(s);
}

// The counter of an id "<prefix>N"; 0 when the id is not one of ours.
int64_t IdNumber(const std::string& id, const std::string& prefix) {
  if (id.rfind(prefix, 0) != 0) return 0;
  return ParseCount(id.substr(prefix.size())).value_or(0);
}

std::string PropertyId(int64_t n) { return "prop_" + std::to_string(n); }
std::string UserId(int64_t n) { return "usr_" + std::to_string(n); }
std::string ResetId(int64_t n) { return "pwr_" + std::to_string(n); }
std::string Iso(int64_t ms) { return FormatIsoUtc(ms, /*millis=*/true); }

// One '@' with something on both sides and no whitespace: enough to catch a name or a phone
// number sent as an email, without rejecting addresses a real portal accepts.
bool LooksLikeEmail(const std::string& s) {
  const size_t at = s.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == s.size()) return false;
  if (s.find('@', at + 1) != std::string::npos) return false;
  return std::none_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

// Checks the fields of a UserInput or UserUpdate body; the error reply when one is invalid.
// `main_property` receives the resolved main_property_id (0 for null) when present.
std::optional<std::pair<int, json>> CheckUserFields(
    const json& body, const std::function<bool(const std::string&)>& property_exists,
    int64_t* main_property) {
  auto bad = [](const std::string& message) {
    return std::make_optional(std::make_pair(400, ErrorBody("bad_request", message)));
  };
  if (body.contains("email")) {
    if (!body["email"].is_string()) return bad("email must be a string");
    if (!LooksLikeEmail(body["email"].get<std::string>()))
      return bad("email is not a valid address: " + body["email"].get<std::string>());
  }
  for (const char* field : {"first_name", "last_name"})
    if (body.contains(field) && !body[field].is_string())
      return bad(std::string(field) + " must be a string");
  if (body.contains("portal_access") && !body["portal_access"].is_boolean())
    return bad("portal_access must be a boolean");
  if (body.contains("main_property_id")) {
    const json& m = body["main_property_id"];
    if (m.is_null()) {
      *main_property = 0;
    } else if (!m.is_string()) {
      return bad("main_property_id must be a string or null");
    } else if (!property_exists(m.get<std::string>())) {
      return bad("main_property_id " + m.get<std::string>() + " is not a property");
    } else {
      *main_property = IdNumber(m.get<std::string>(), "prop_");
    }
  }
  return std::nullopt;
}

}  // namespace

PortalMock::PortalMock(Options options) : MockServer("portal"), options_(std::move(options)) {
  if (options_.clock == nullptr) options_.clock = Clock::Real();
}

int64_t PortalMock::Now() const { return options_.clock->NowMillis(); }

json PortalMock::FaultBody(int status, const std::string& message) const {
  const char* code = status == 400   ? "bad_request"
                     : status == 401 ? "unauthorized"
                     : status == 404 ? "not_found"
                     : status == 409 ? "conflict"
                     : status == 422 ? "idempotency_mismatch"
                     : status == 429 ? "rate_limited"
                                     : "internal";
  return ErrorBody(code, message);
}

void PortalMock::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  next_property_ = next_user_ = next_reset_ = 1;
  properties_.clear();
  users_.clear();
  grants_.clear();
  resets_.clear();
  idempotency_.clear();
  window_.clear();
}

bool PortalMock::Admit(const httplib::Request& req, httplib::Response& res, std::string* token) {
  const std::string auth = req.get_header_value("Authorization");
  // The auth scheme is case-insensitive (RFC 7235); the token is not.
  *token = Lower(auth.substr(0, 7)) == "bearer " ? auth.substr(7) : "";
  if (token->empty() || !options_.tokens.count(*token)) {
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer");
    res.set_content(ErrorBody("unauthorized", "Missing or invalid bearer token").dump(),
                    "application/json");
    return false;
  }
  if (!options_.enforce_limits) return true;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = Now();
  auto& w = window_[*token];
  while (!w.empty() && w.front() <= now - kWindowMs) w.pop_front();
  if (static_cast<int>(w.size()) < options_.per_minute_max) {
    w.push_back(now);
    return true;
  }
  // The window frees when its oldest request leaves it; round up so a client that waits
  // Retry-After seconds is admitted.
  const int64_t wait_ms = w.empty() ? kWindowMs : w.front() + kWindowMs - now;
  const int64_t retry_after = std::max<int64_t>(1, (wait_ms + 999) / 1000);
  res.status = 429;
  res.set_header("Retry-After", std::to_string(retry_after));
  res.set_content(
      ErrorBody("rate_limited", "Per-minute request limit of " +
                                    std::to_string(options_.per_minute_max) +
                                    " exceeded; retry in " + std::to_string(retry_after) + " s")
          .dump(),
      "application/json");
  return false;
}

json PortalMock::Render(const Property& p) {
  json out = {{"id", PropertyId(p.id)}, {"name", p.name}, {"created_at", Iso(p.created_ms)}};
  if (p.external_id) out["external_id"] = *p.external_id;
  return out;
}

json PortalMock::Render(const User& u) {
  json out = {{"id", UserId(u.id)}, {"email", u.email}};
  if (u.first_name) out["first_name"] = *u.first_name;
  if (u.last_name) out["last_name"] = *u.last_name;
  out["portal_access"] = u.portal_access;
  out["main_property_id"] = u.main_property_id == 0 ? json() : json(PropertyId(u.main_property_id));
  out["created_at"] = Iso(u.created_ms);
  out["updated_at"] = Iso(u.updated_ms);
  return out;
}

json PortalMock::RenderGrant(int64_t user_id, int64_t property_id, int64_t granted_ms) {
  return {{"user_id", UserId(user_id)},
          {"property_id", PropertyId(property_id)},
          {"granted_at", Iso(granted_ms)}};
}

json PortalMock::RenderReset(const PasswordReset& r) {
  return {
      {"id", ResetId(r.id)}, {"user_id", UserId(r.user_id)}, {"requested_at", Iso(r.requested_ms)}};
}

const PortalMock::Property* PortalMock::FindPropertyLocked(const std::string& id) const {
  auto it = properties_.find(IdNumber(id, "prop_"));
  return it == properties_.end() ? nullptr : &it->second;
}

PortalMock::Property* PortalMock::FindPropertyLocked(const std::string& id) {
  auto it = properties_.find(IdNumber(id, "prop_"));
  return it == properties_.end() ? nullptr : &it->second;
}

PortalMock::User* PortalMock::FindUserLocked(const std::string& id) {
  auto it = users_.find(IdNumber(id, "usr_"));
  return it == users_.end() ? nullptr : &it->second;
}

const PortalMock::User* PortalMock::UserByEmailLocked(const std::string& email) const {
  const std::string want = Lower(email);
  for (const auto& [id, u] : users_)
    if (Lower(u.email) == want) return &u;
  return nullptr;
}

PortalMock::Reply PortalMock::CreatePropertyLocked(const json& body) {
  if (!body.is_object()) return {400, ErrorBody("bad_request", "Body must be a JSON object")};
  if (!body.contains("name")) return {400, ErrorBody("bad_request", "name is required")};
  const json& name = body["name"];
  if (!name.is_string()) return {400, ErrorBody("bad_request", "name must be a string")};
  if (name.get<std::string>().empty())
    return {400, ErrorBody("bad_request", "name must not be empty")};
  std::optional<std::string> external_id;
  if (body.contains("external_id")) {
    if (!body["external_id"].is_string())
      return {400, ErrorBody("bad_request", "external_id must be a string")};
    external_id = body["external_id"].get<std::string>();
    for (const auto& [id, p] : properties_)
      if (p.external_id == external_id)
        return {409, ErrorBody("conflict", "external_id " + *external_id + " is already used by " +
                                               PropertyId(id))};
  }
  Property p;
  p.id = next_property_++;
  p.name = name.get<std::string>();
  p.external_id = external_id;
  p.created_ms = Now();
  properties_[p.id] = p;
  return {201, Render(p)};
}

PortalMock::Reply PortalMock::CreateUserLocked(const json& body) {
  if (!body.is_object()) return {400, ErrorBody("bad_request", "Body must be a JSON object")};
  if (!body.contains("email")) return {400, ErrorBody("bad_request", "email is required")};
  int64_t main_property = 0;
  auto exists = [this](const std::string& id) { return FindPropertyLocked(id) != nullptr; };
  if (auto err = CheckUserFields(body, exists, &main_property)) return *err;
  const std::string email = body["email"].get<std::string>();
  if (const User* other = UserByEmailLocked(email))
    return {409,
            ErrorBody("conflict", "email " + email + " is already used by " + UserId(other->id))};
  User u;
  u.id = next_user_++;
  u.email = email;
  if (body.contains("first_name")) u.first_name = body["first_name"].get<std::string>();
  if (body.contains("last_name")) u.last_name = body["last_name"].get<std::string>();
  u.portal_access = body.value("portal_access", false);
  u.main_property_id = main_property;
  u.created_ms = u.updated_ms = Now();
  users_[u.id] = u;
  return {201, Render(u)};
}

PortalMock::Reply PortalMock::UpdatePropertyLocked(Property* p, const json& body) {
  if (!body.is_object()) return {400, ErrorBody("bad_request", "Body must be a JSON object")};
  if (!body.contains("name") && !body.contains("external_id"))
    return {400, ErrorBody("bad_request", "Body must set at least one of name, external_id")};
  if (body.contains("name")) {
    if (!body["name"].is_string()) return {400, ErrorBody("bad_request", "name must be a string")};
    if (body["name"].get<std::string>().empty())
      return {400, ErrorBody("bad_request", "name must not be empty")};
  }
  if (body.contains("external_id")) {
    if (!body["external_id"].is_string())
      return {400, ErrorBody("bad_request", "external_id must be a string")};
    const std::string external_id = body["external_id"].get<std::string>();
    for (const auto& [id, other] : properties_)
      if (id != p->id && other.external_id == external_id)
        return {409, ErrorBody("conflict", "external_id " + external_id + " is already used by " +
                                               PropertyId(id))};
    p->external_id = external_id;
  }
  if (body.contains("name")) p->name = body["name"].get<std::string>();
  return {200, Render(*p)};
}

PortalMock::Reply PortalMock::UpdateUserLocked(User* u, const json& body) {
  if (!body.is_object()) return {400, ErrorBody("bad_request", "Body must be a JSON object")};
  static const char* kFields[] = {"email", "first_name", "last_name", "portal_access",
                                  "main_property_id"};
  // Unknown fields are ignored, so a body of only unknown fields would change nothing: refused
  // like {} (minProperties: 1), since it is almost surely a client bug.
  if (std::none_of(std::begin(kFields), std::end(kFields),
                   [&](const char* f) { return body.contains(f); }))
    return {400, ErrorBody("bad_request",
                           "Body must set at least one of email, first_name, "
                           "last_name, portal_access, main_property_id")};
  int64_t main_property = u->main_property_id;
  auto exists = [this](const std::string& id) { return FindPropertyLocked(id) != nullptr; };
  if (auto err = CheckUserFields(body, exists, &main_property)) return *err;
  if (body.contains("email")) {
    const User* other = UserByEmailLocked(body["email"].get<std::string>());
    if (other != nullptr && other->id != u->id)
      return {409, ErrorBody("conflict", "email " + body["email"].get<std::string>() +
                                             " is already used by " + UserId(other->id))};
  }
  User next = *u;
  if (body.contains("email")) next.email = body["email"].get<std::string>();
  if (body.contains("first_name")) next.first_name = body["first_name"].get<std::string>();
  if (body.contains("last_name")) next.last_name = body["last_name"].get<std::string>();
  if (body.contains("portal_access")) next.portal_access = body["portal_access"].get<bool>();
  next.main_property_id = main_property;
  // updated_at moves only on a real change, so a sync that rewrites the same values is visible
  // as a no-op.
  if (Render(next) != Render(*u)) next.updated_ms = Now();
  *u = next;
  return {200, Render(*u)};
}

PortalMock::Reply PortalMock::IdempotentLocked(const httplib::Request& req,
                                               const std::string& token, const json& body,
                                               int replay_status,
                                               const std::function<Reply()>& create) {
  const std::string key = req.get_header_value("Idempotency-Key");
  if (key.size() > kMaxIdempotencyKey)
    return {400, ErrorBody("bad_request", "Idempotency-Key is longer than 255 characters")};
  if (key.empty()) return create();
  const std::string scope = token + "\n" + req.method + " " + req.path + "\n" + key;
  auto it = idempotency_.find(scope);
  if (it != idempotency_.end()) {
    if (it->second.request != body)
      return {422, ErrorBody("idempotency_mismatch",
                             "Idempotency-Key " + key + " was used with a different body")};
    return {replay_status, it->second.response};
  }
  Reply r = create();
  if (r.first >= 200 && r.first < 300) idempotency_[scope] = IdempotentResult{body, r.second};
  return r;
}

PortalMock::Reply PortalMock::Page(const httplib::Request& req, const std::vector<int64_t>& ids,
                                   const std::function<json(int64_t)>& render) {
  int64_t limit = kDefaultLimit;
  if (req.has_param("limit")) {
    auto n = ParseCount(req.get_param_value("limit"));
    if (!n || *n < 1 || *n > kMaxLimit)
      return {400, ErrorBody("bad_request", "limit must be an integer from 1 to 100")};
    limit = *n;
  }
  int64_t after = 0;
  if (req.has_param("cursor")) {
    const std::string cursor = req.get_param_value("cursor");
    auto n = cursor.rfind(kCursorPrefix, 0) == 0 ? ParseCount(cursor.substr(2)) : std::nullopt;
    if (!n || *n < 1) return {400, ErrorBody("bad_request", "Invalid cursor: " + cursor)};
    after = *n;
  }
  auto it = std::upper_bound(ids.begin(), ids.end(), after);
  json data = json::array();
  int64_t last = 0;
  for (; it != ids.end() && static_cast<int64_t>(data.size()) < limit; ++it) {
    data.push_back(render(*it));
    last = *it;
  }
  json out = {{"data", data}, {"next_cursor", nullptr}};
  if (it != ids.end()) out["next_cursor"] = kCursorPrefix + std::to_string(last);
  return {200, out};
}

void PortalMock::RegisterRoutes(httplib::Server& s) {
  enum class Body { kNone, kRequired, kOptional };
  using Handler =
      std::function<Reply(const httplib::Request&, const std::string& token, const json& body)>;
  // Every route shares its preamble: count, authenticate and rate-limit, parse the body, then
  // answer from the handler under the store lock.
  auto route = [this](std::string name, Body body_kind, Handler handle) {
    return [this, name, body_kind, handle](const httplib::Request& req, httplib::Response& res) {
      CountRequest(name);
      std::string token;
      if (!Admit(req, res, &token)) return;
      json body;
      if (body_kind != Body::kNone) {
        if (body_kind == Body::kOptional && req.body.empty()) {
          body = json::object();
        } else {
          body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
          if (body.is_discarded()) {
            res.status = 400;
            res.set_content(ErrorBody("bad_request", "Malformed JSON body").dump(),
                            "application/json");
            return;
          }
        }
      }
      Reply r;
      {
        std::lock_guard<std::mutex> lock(mu_);
        r = handle(req, token, body);
      }
      res.status = r.first;
      if (r.first != 204) res.set_content(r.second.dump(), "application/json");
    };
  };
  auto no_user = [](const std::string& id) -> Reply {
    return {404, ErrorBody("not_found", "No user " + id)};
  };
  auto no_property = [](const std::string& id) -> Reply {
    return {404, ErrorBody("not_found", "No property " + id)};
  };

  s.Get("/v1/properties",
        route("GET /v1/properties", Body::kNone,
              [this](const httplib::Request& req, const std::string&, const json&) {
                const bool by_external_id = req.has_param("external_id");
                const std::string external_id = req.get_param_value("external_id");
                std::vector<int64_t> ids;
                for (const auto& [id, p] : properties_)
                  if (!by_external_id || p.external_id == external_id) ids.push_back(id);
                return Page(req, ids, [this](int64_t id) { return Render(properties_.at(id)); });
              }));
  s.Post("/v1/properties",
         route("POST /v1/properties", Body::kRequired,
               [this](const httplib::Request& req, const std::string& token, const json& body) {
                 return IdempotentLocked(req, token, body, 200,
                                         [&] { return CreatePropertyLocked(body); });
               }));
  s.Get(R"(/v1/properties/([^/]+))",
        route("GET /v1/properties/{id}", Body::kNone,
              [=](const httplib::Request& req, const std::string&, const json&) -> Reply {
                const Property* p = FindPropertyLocked(req.matches[1]);
                if (p == nullptr) return no_property(req.matches[1]);
                return {200, Render(*p)};
              }));
  s.Patch(R"(/v1/properties/([^/]+))",
          route("PATCH /v1/properties/{id}", Body::kRequired,
                [=](const httplib::Request& req, const std::string&, const json& body) -> Reply {
                  Property* p = FindPropertyLocked(req.matches[1]);
                  if (p == nullptr) return no_property(req.matches[1]);
                  return UpdatePropertyLocked(p, body);
                }));

  s.Get("/v1/users", route("GET /v1/users", Body::kNone,
                           [this](const httplib::Request& req, const std::string&, const json&) {
                             const bool by_email = req.has_param("email");
                             const std::string email = Lower(req.get_param_value("email"));
                             std::vector<int64_t> ids;
                             for (const auto& [id, u] : users_)
                               if (!by_email || Lower(u.email) == email) ids.push_back(id);
                             return Page(req, ids,
                                         [this](int64_t id) { return Render(users_.at(id)); });
                           }));
  s.Post("/v1/users",
         route("POST /v1/users", Body::kRequired,
               [this](const httplib::Request& req, const std::string& token, const json& body) {
                 return IdempotentLocked(req, token, body, 200,
                                         [&] { return CreateUserLocked(body); });
               }));
  s.Get(R"(/v1/users/([^/]+))",
        route("GET /v1/users/{id}", Body::kNone,
              [=](const httplib::Request& req, const std::string&, const json&) -> Reply {
                const User* u = FindUserLocked(req.matches[1]);
                if (u == nullptr) return no_user(req.matches[1]);
                return {200, Render(*u)};
              }));
  s.Patch(R"(/v1/users/([^/]+))",
          route("PATCH /v1/users/{id}", Body::kRequired,
                [=](const httplib::Request& req, const std::string&, const json& body) -> Reply {
                  User* u = FindUserLocked(req.matches[1]);
                  if (u == nullptr) return no_user(req.matches[1]);
                  return UpdateUserLocked(u, body);
                }));

  s.Get(R"(/v1/users/([^/]+)/grants)",
        route("GET /v1/users/{id}/grants", Body::kNone,
              [=](const httplib::Request& req, const std::string&, const json&) -> Reply {
                const User* u = FindUserLocked(req.matches[1]);
                if (u == nullptr) return no_user(req.matches[1]);
                const int64_t user = u->id;
                std::vector<int64_t> ids;
                for (auto it = grants_.lower_bound({user, 0});
                     it != grants_.end() && it->first.first == user; ++it)
                  ids.push_back(it->first.second);
                return Page(req, ids, [this, user](int64_t property) {
                  return RenderGrant(user, property, grants_.at({user, property}));
                });
              }));
  s.Put(R"(/v1/users/([^/]+)/grants/([^/]+))",
        route("PUT /v1/users/{id}/grants/{propertyId}", Body::kNone,
              [=](const httplib::Request& req, const std::string&, const json&) -> Reply {
                const User* u = FindUserLocked(req.matches[1]);
                if (u == nullptr) return no_user(req.matches[1]);
                const Property* p = FindPropertyLocked(req.matches[2]);
                if (p == nullptr) return no_property(req.matches[2]);
                auto [it, added] = grants_.emplace(std::make_pair(u->id, p->id), Now());
                return {added ? 201 : 200, RenderGrant(u->id, p->id, it->second)};
              }));
  s.Delete(R"(/v1/users/([^/]+)/grants/([^/]+))",
           route("DELETE /v1/users/{id}/grants/{propertyId}", Body::kNone,
                 [=](const httplib::Request& req, const std::string&, const json&) -> Reply {
                   const User* u = FindUserLocked(req.matches[1]);
                   if (u == nullptr) return no_user(req.matches[1]);
                   const Property* p = FindPropertyLocked(req.matches[2]);
                   if (p == nullptr) return no_property(req.matches[2]);
                   grants_.erase({u->id, p->id});
                   return {204, json()};
                 }));
  s.Post(R"(/v1/users/([^/]+)/password-reset)",
         route("POST /v1/users/{id}/password-reset", Body::kOptional,
               [=](const httplib::Request& req, const std::string& token, const json& body) {
                 return IdempotentLocked(req, token, body, 202, [&]() -> Reply {
                   const User* u = FindUserLocked(req.matches[1]);
                   if (u == nullptr) return no_user(req.matches[1]);
                   PasswordReset r{next_reset_++, u->id, Now()};
                   resets_[r.id] = r;
                   return {202, RenderReset(r)};
                 });
               }));

  // Anything else under /v1 is the portal's 404, not cpp-httplib's empty one.
  auto unknown = [](const httplib::Request& req, httplib::Response& res) {
    res.status = 404;
    res.set_content(ErrorBody("not_found", "No route " + req.method + " " + req.path).dump(),
                    "application/json");
  };
  s.Get(R"(/v1/.*)", unknown);
  s.Post(R"(/v1/.*)", unknown);
  s.Put(R"(/v1/.*)", unknown);
  s.Patch(R"(/v1/.*)", unknown);
  s.Delete(R"(/v1/.*)", unknown);
}

void PortalMock::Seed(uint64_t seed, int properties) {
  std::lock_guard<std::mutex> lock(mu_);
  std::mt19937_64 rng(seed);
  static const char* kForm[] = {"Brf", "HSB Brf", "Riksbyggen Brf", "Bostadsrättsföreningen"};
  static const char* kName[] = {"Solgläntan", "Ekbacken",    "Tallåsen",   "Björkhagen",
                                "Lindängen",  "Sjöutsikten", "Granlunden", "Hasselbacken",
                                "Rosendal",   "Kvarnberget", "Fyrtornet",  "Äppellunden"};
  static const char* kCity[] = {"Stockholm", "Göteborg", "Malmö", "Uppsala",
                                "Västerås",  "Örebro",   "Umeå",  "Lund"};
  static const char* kFirst[] = {"Anna",  "Erik", "Maja", "Lars", "Sofia",
                                 "Johan", "Emma", "Karl", "Sara", "Oskar"};
  static const char* kLast[] = {"Larsson", "Andersson", "Johansson", "Nilsson",
                                "Berg",    "Lindqvist", "Holm",      "Ek"};
  const int64_t now = Now();
  std::vector<int64_t> seeded;
  for (int i = 0; i < properties; ++i) {
    Property p;
    p.id = next_property_++;
    p.name = std::string(kForm[rng() % 4]) + " " + kName[rng() % 12] + " i " + kCity[rng() % 8];
    // Numbered on from what is there, so a second Seed() adds instead of colliding.
    int64_t n = static_cast<int64_t>(properties_.size()) + 1;
    auto taken = [&](const std::string& ext) {
      return std::any_of(properties_.begin(), properties_.end(),
                         [&](const auto& kv) { return kv.second.external_id == ext; });
    };
    while (taken("seed-prop-" + std::to_string(n))) ++n;
    p.external_id = "seed-prop-" + std::to_string(n);
    p.created_ms = now;
    properties_[p.id] = p;
    seeded.push_back(p.id);

    const int users = 1 + static_cast<int>(rng() % 2);
    for (int c = 0; c < users; ++c) {
      User u;
      u.id = next_user_++;
      const std::string first = kFirst[rng() % 10], last = kLast[rng() % 8];
      u.first_name = first;
      u.last_name = last;
      u.email = Lower(first) + "." + Lower(last) + "." + std::to_string(u.id) + "@seed.example.se";
      for (int k = 2; UserByEmailLocked(u.email) != nullptr; ++k)
        u.email = Lower(first) + "." + Lower(last) + "." + std::to_string(u.id) + "-" +
                  std::to_string(k) + "@seed.example.se";
      u.portal_access = true;
      u.main_property_id = p.id;
      u.created_ms = u.updated_ms = now;
      users_[u.id] = u;
      grants_[{u.id, p.id}] = now;
      // Some board members look after a second community too.
      if (seeded.size() > 1 && rng() % 4 == 0)
        grants_[{u.id, seeded[rng() % (seeded.size() - 1)]}] = now;
    }
  }
}

json PortalMock::Dump() const {
  std::lock_guard<std::mutex> lock(mu_);
  json out = {{"properties", json::array()},
              {"users", json::array()},
              {"grants", json::array()},
              {"password_resets", json::array()}};
  for (const auto& [id, p] : properties_) out["properties"].push_back(Render(p));
  for (const auto& [id, u] : users_) out["users"].push_back(Render(u));
  for (const auto& [key, ms] : grants_)
    out["grants"].push_back(RenderGrant(key.first, key.second, ms));
  for (const auto& [id, r] : resets_) out["password_resets"].push_back(RenderReset(r));
  return out;
}

}  // namespace crmbridge::mocks
