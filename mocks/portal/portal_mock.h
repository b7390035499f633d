// PortalMock: an in-memory fake of the customer portal API crmbridge provisions customers into,
// speaking the contract in mocks/portal/openapi.yaml:
//
//   GET    /v1/properties                          list: limit 1..100 (default 25), opaque cursor;
//                                                  ?external_id= exact
//   POST   /v1/properties                          create: 201 with the property; Idempotency-Key
//   GET    /v1/properties/{id}
//   PATCH  /v1/properties/{id}                     name and/or external_id; 200 with the property
//   GET    /v1/users                               list; ?email= exact, case-insensitive
//   POST   /v1/users                               create: 201 with the user; Idempotency-Key
//   GET    /v1/users/{id}
//   PATCH  /v1/users/{id}                          at least one known field; 200 with the user
//   GET    /v1/users/{id}/grants                   the user's grants, paged like the lists
//   PUT    /v1/users/{id}/grants/{propertyId}      201 when new, 200 (unchanged) when it existed
//   DELETE /v1/users/{id}/grants/{propertyId}      204 whether or not it existed
//   POST   /v1/users/{id}/password-reset           202; records one reset per accepted call
//
// Ids are "prop_N", "usr_N" and "pwr_N" from one counter per kind; lists are ordered by that
// counter and the cursor names the last id of the page, so records created between pages never
// shift a page (next_cursor is null on the last page; a cursor the mock did not issue is 400).
// Timestamps are UTC with milliseconds from the injected clock. Emails are unique
// case-insensitively and external_ids exactly (409 conflict); invalid bodies, fields, limits and
// cursors are 400 bad_request; an unknown user or property is 404 not_found. Unknown body fields
// are ignored, but a PATCH must carry at least one field it can apply; a user's updated_at moves
// only when a value changes (properties have no updated_at).
//
// Idempotency-Key (at most 255 characters, else 400) on the three POSTs: keys are scoped per
// bearer token and request path (so per user for password-reset). The same key with the same body
// (compared as parsed JSON; an empty password-reset body counts as {}) replays the first response
// without writing: 200 instead of 201 for the creates, and 202 again with the same reset for
// password-reset. A different body is 422 idempotency_mismatch. Only accepted requests are
// remembered: a refused one (400, 409, ...) may be retried with the same key.
//
// Auth is a bearer token from the options (401 unauthorized). Each token gets per_minute_max
// requests in any rolling 60-second window; over it the answer is 429 rate_limited with
// Retry-After, the whole seconds until the oldest request leaves the window (at least 1). Refused
// requests do not use up the window. Every error, injected faults and unknown /v1 routes
// included, is the portal's {"error":{"code":...,"message":...}} body.
//
// Thread-safety: one mutex guards the store; handlers run on the server's pool.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mocks/common/mock_server.h"
#include "src/core/clock.h"

namespace crmbridge::mocks {

struct PortalMockOptions {
  std::set<std::string> tokens = {"portal-mock-token"};
  bool enforce_limits = true;
  int per_minute_max = 600;
  Clock* clock = nullptr;  // nullptr = Clock::Real(); not owned
};

class PortalMock : public MockServer {
 public:
  using Options = PortalMockOptions;
  explicit PortalMock(Options options = Options());

  // Deterministic data: `properties` housing communities (external_id "seed-prop-N"), each with
  // one or two users who have portal access, the property as main property and a grant to it
  // (some also to another property). The same seed on an empty mock gives the same data.
  void Seed(uint64_t seed, int properties);

  // {"properties":[...],"users":[...],"grants":[...],"password_resets":[...]}, each ordered by id.
  nlohmann::json Dump() const override;
  // Empties the store, the idempotency keys and the rate windows; ids start again at 1.
  void Reset() override;

 protected:
  void RegisterRoutes(httplib::Server& server) override;
  nlohmann::json FaultBody(int status, const std::string& message) const override;

 private:
  struct Property {
    int64_t id = 0;
    std::string name;
    std::optional<std::string> external_id;
    int64_t created_ms = 0;
  };
  struct User {
    int64_t id = 0;
    std::string email;
    std::optional<std::string> first_name, last_name;
    bool portal_access = false;
    int64_t main_property_id = 0;  // 0 = none
    int64_t created_ms = 0;
    int64_t updated_ms = 0;
  };
  struct PasswordReset {
    int64_t id = 0;
    int64_t user_id = 0;
    int64_t requested_ms = 0;
  };
  struct IdempotentResult {
    nlohmann::json request;
    nlohmann::json response;
  };
  using Reply = std::pair<int, nlohmann::json>;

  int64_t Now() const;
  // Auth and the rate limit; fills `res` and returns false when the request is refused.
  bool Admit(const httplib::Request& req, httplib::Response& res, std::string* token);

  static nlohmann::json Render(const Property& p);
  static nlohmann::json Render(const User& u);
  static nlohmann::json RenderGrant(int64_t user_id, int64_t property_id, int64_t granted_ms);
  static nlohmann::json RenderReset(const PasswordReset& r);

  const Property* FindPropertyLocked(const std::string& id) const;
  Property* FindPropertyLocked(const std::string& id);
  User* FindUserLocked(const std::string& id);
  // The user holding `email` (case-insensitive), or nullptr.
  const User* UserByEmailLocked(const std::string& email) const;

  Reply CreatePropertyLocked(const nlohmann::json& body);
  Reply CreateUserLocked(const nlohmann::json& body);
  Reply UpdatePropertyLocked(Property* p, const nlohmann::json& body);
  Reply UpdateUserLocked(User* u, const nlohmann::json& body);
  // Runs `create` under the Idempotency-Key rules; `replay_status` answers a replay.
  Reply IdempotentLocked(const httplib::Request& req, const std::string& token,
                         const nlohmann::json& body, int replay_status,
                         const std::function<Reply()>& create);
  // One page of `ids` (ascending) after the request's cursor; `render` turns an id into an item.
  static Reply Page(const httplib::Request& req, const std::vector<int64_t>& ids,
                    const std::function<nlohmann::json(int64_t)>& render);

  Options options_;
  mutable std::mutex mu_;
  int64_t next_property_ = 1, next_user_ = 1, next_reset_ = 1;
  std::map<int64_t, Property> properties_;
  std::map<int64_t, User> users_;
  std::map<std::pair<int64_t, int64_t>, int64_t> grants_;  // (user, property) -> granted ms
  std::map<int64_t, PasswordReset> resets_;
  std::map<std::string, IdempotentResult> idempotency_;  // token + path + key -> first result
  std::map<std::string, std::deque<int64_t>> window_;    // token -> request times
};

}  // namespace crmbridge::mocks
