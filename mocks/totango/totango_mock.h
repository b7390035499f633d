// TotangoMock: an in-memory fake of Totango's REST APIs and its HTTP ("SDR") collection gateway,
// speaking the shapes in shared/refs/totango.md and what real clients of the API read:
//
//   POST /api/v1/search/accounts   form field query=<JSON>: terms and fields required; count (max
//   POST /api/v1/search/users      1000, default 1000), offset, sort_by, sort_order. At most 10,000
//                                  records are reachable: a page reaching past the 10,000th match
//                                  is cut there (an offset beyond it answers no hits), while
//                                  total_hits still counts every match. Users take
//                                  parent_account_fields, whose values follow the user's own in
//                                  selected_fields.
//   GET|POST /pixel.gif[/]         SDR upsert of account and user attributes (sdr_s, sdr_o,
//                                  sdr_o.account_name or sdr_odn, sdr_o.<attr>, sdr_u, sdr_u.name,
//                                  sdr_u.<attr>); no token, no rate limit, and always 200 with a
//                                  1x1 GIF: a request with a wrong service id, a bad account id, or
//                                  a value the data model refuses (a lifecycle stage or Status not
//                                  configured, a Contact flag other than yes/no, text over 512/255
//                                  characters) is dropped or partly ignored, silently.
//   POST /api/v3/touchpoints[/]    create (JSON or form): {"note":{"id":N,...}}; 400 "Account not
//   GET|PUT|DELETE /api/v3/touchpoints/{id}       found" for an unknown account
//   GET  /api/v2/events/?account_id=A             the account's events; a touchpoint is an event of
//                                                 type "note" whose note_content.note_id is its id
//   GET  /api/v3/activity-types, /api/v3/touchpoint-tags/
//   POST /api/v3/tasks             create (JSON or form); activity_type_id required, priority 1-3,
//   GET  /api/v3/tasks?id=|account_id=            due_date YYYY-MM-DD; 400 "Account not found"
//   PUT  /api/v3/tasks[/{id}], DELETE /api/v3/tasks/{id}
//
// REST calls need the `app-token` header (401 otherwise) and share a limit of 100 requests per
// minute per token: every answer carries RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset,
// and the 101st call of a window is answered 429 "Too many requests" with Retry-After. Error
// bodies are {"status":"error","error":"..."} (the real one is unconfirmed; clients must not
// depend on it). Inferred shapes (the date term, task listing by account, touchpoint read and
// delete paths) are marked where they are built.
//
// Thread-safety: one mutex guards the store; handlers run on the server's pool.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mocks/common/mock_server.h"
#include "src/core/clock.h"

namespace crmbridge::mocks {

struct TotangoMockOptions {
  std::set<std::string> tokens = {"totango-mock-token"};
  std::string service_id = "SP-0000-11";
  bool enforce_limits = true;
  int per_minute_max = 100;
  // Lifecycle attributes and their stages, as configured in Data Modeler; a value not listed
  // is ignored by the SDR gateway.
  std::map<std::string, std::vector<std::string>> lifecycles = {
      {"Onboarding Stage",
       {"Kick Off", "Business Discovery", "Integration", "Configuration", "Training/UAT", "Live"}},
      {"Customer Journey Stage", {"Onboarding", "Adoption", "Nurture", "Advocate"}}};
  // Contract statuses and the status group each belongs to.
  std::map<std::string, std::string> statuses = {
      {"Trial", "free"}, {"Paying", "paying"}, {"Onboarding", "paying"}, {"Canceled", "canceled"}};
  Clock* clock = nullptr;  // nullptr = Clock::Real(); not owned
};

class TotangoMock : public MockServer {
 public:
  using Options = TotangoMockOptions;
  explicit TotangoMock(Options options = Options());

  // Deterministic onboarding data: `accounts` accounts spread over the Onboarding Stage
  // lifecycle, each with one to three users (one a key contact) and a kick-off touchpoint.
  void Seed(uint64_t seed, int accounts);

  nlohmann::json Dump() const override;
  void Reset() override;

 protected:
  void RegisterRoutes(httplib::Server& server) override;
  nlohmann::json FaultBody(int status, const std::string& message) const override;

 private:
  struct Account {
    std::string id, display_name;
    std::map<std::string, std::string> attributes;  // includes "Status" when set
    int64_t created_ms = 0, updated_ms = 0;
  };
  struct User {
    std::string account_id, id, name;
    std::map<std::string, std::string> attributes;
    int64_t created_ms = 0, updated_ms = 0;
  };
  using Reply = std::pair<int, nlohmann::json>;

  int64_t Now() const;
  static nlohmann::json Error(const std::string& message);
  // Auth and the per-minute limit; sets the RateLimit-* headers. False when refused (answered).
  bool Admit(const httplib::Request& req, httplib::Response& res);

  Reply Search(bool users, const nlohmann::json& query) const;
  // Applies one SDR request; the reasons for anything ignored go to sdr_ignored_.
  void ApplySdrLocked(const std::multimap<std::string, std::string>& params);
  // Sets an attribute if the data model accepts the value; returns why not otherwise.
  std::optional<std::string> AcceptAttribute(bool account, const std::string& name,
                                             const std::string& value) const;
  Reply CreateTouchpoint(const nlohmann::json& in);
  Reply CreateTask(const nlohmann::json& in);
  Reply UpdateTask(const std::string& id, const nlohmann::json& in);
  nlohmann::json TouchpointEvent(const nlohmann::json& note) const;

  Options options_;
  mutable std::mutex mu_;
  std::map<std::string, Account> accounts_;
  std::map<std::pair<std::string, std::string>, User> users_;  // (account id, user id)
  std::map<int64_t, nlohmann::json> touchpoints_;
  std::map<std::string, nlohmann::json> tasks_;
  int64_t next_touchpoint_ = 1000;
  int64_t next_task_ = 1;
  int64_t sdr_accepted_ = 0;
  std::vector<std::string> sdr_ignored_;
  struct Window {
    int64_t start_ms = 0;
    int used = 0;
  };
  std::map<std::string, Window> windows_;  // per token
};

}  // namespace crmbridge::mocks
