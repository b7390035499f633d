// HubSpotMock: an in-memory fake of HubSpot's CRM v3 API for tickets, companies, contacts, notes
// and tasks, speaking HubSpot's shapes (shared/refs/hubspot and HubSpot's OpenAPI documents):
//
//   GET    /crm/v3/objects/{type}                 list: limit (max 100), opaque `after`, properties,
//                                                 associations, archived; no paging on the last page
//   GET    /crm/v3/objects/{type}/{id}            also ?idProperty=<unique property>
//   POST   /crm/v3/objects/{type}                 create: 201 with the bare object
//   PATCH  /crm/v3/objects/{type}/{id}            update ("" clears a value)
//   DELETE /crm/v3/objects/{type}/{id}            archive: 204
//   POST   /crm/v3/objects/{type}/batch/{read|create|update|upsert|archive}
//                                                 max 100 inputs; 207 partial results on create when
//                                                 every input has an objectWriteTraceId
//   POST   /crm/v3/objects/{type}/search          filterGroups (5 groups, 6 filters each, 18 in all),
//                                                 one sort, limit max 200, numeric `after`, 10,000 cap
//   GET    /crm/v3/pipelines/tickets[/{id}[/stages]]
//   GET|POST /crm/v3/properties/{type}[/{name}]   custom properties, hasUniqueValue
//   PUT    /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}     200, the default type
//   PUT    /crm/v4/objects/{from}/{id}/associations/{to}/{toId}   a list of AssociationSpec: 201
//                                                 LabelsBetweenObjectPair; replaces the labelled types
//   DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}   every type between the two: 204
//   GET    /crm/v4/objects/{from}/{id}/associations/{to}          limit (max 500), after
//   POST   /oauth/v1/token, /oauth/v3/token         refresh_token grant: an expiring access token
//   POST   /__admin/webhooks                       subscribes a URL to signed webhook deliveries of
//                                                 the changes made through the API
//                                                 (HubSpotWebhookSender); GET: their counts
//   POST   /crm/v4/associations/{from}/{to}/batch/{create|read|archive|associate/default}
//                                                 default type ids (339, ticket->company; 228,
//                                                 note->ticket; ...) and the primary labels (1, 2,
//                                                 25, 26); create 201 (max 2,000), read 200 (max
//                                                 1,000), 207 with errors for missing records;
//                                                 associate/default 200; archive 204
//
// Object types are accepted by name or type id (0-5 tickets, 0-2 companies, 0-1 contacts, 0-46
// notes, 0-27 tasks). Every property value is a string or null; ids are decimal strings from one
// counter; hs_lastmodifieddate (contacts: lastmodifieddate) is set on every write.
// Auth is a private-app bearer token; limits are a rolling 10-second window per token (with the
// X-HubSpot-RateLimit-* headers on every non-search response) and 5 searches per second, each
// answered over the limit with HubSpot's 429 body (and counted in /__admin/stats as
// "429 <policyName>").
//
// Searches and lookups by a unique property use indexes kept on every write (the objects by their
// last-modified property, each unique property's values), so a search that filters on that
// property with GTE/GT/EQ/BETWEEN/LT/LTE in one filter group visits only the objects in range, and
// the pages of one search are served from the matches of its first page until the type is written.
//
// Thread-safety: one mutex guards the store; handlers run on the server's pool.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mocks/common/mock_server.h"
#include "mocks/common/seed_customer.h"
#include "mocks/hubspot/hubspot_webhook_sender.h"
#include "src/core/clock.h"

namespace crmbridge::mocks {

struct HubSpotMockOptions {
  std::set<std::string> tokens = {"pat-mock-hubspot"};
  bool enforce_limits = true;
  int ten_second_max = 100;  // Free/Starter private apps (refs/hubspot §11)
  int search_per_second = 5;
  int daily_max = 250000;
  Clock* clock = nullptr;  // nullptr = Clock::Real(); not owned
  // OAuth apps: POST /oauth/v1/token (and v3) trades one of these refresh tokens, with this
  // client id and secret, for an access token that expires after oauth_lifetime_s.
  std::string oauth_client_id = "mock-oauth-client";
  std::string oauth_client_secret = "mock-oauth-secret";
  std::set<std::string> oauth_refresh_tokens = {"mock-refresh-token"};
  int oauth_lifetime_s = 1800;
};

class HubSpotMock : public MockServer {
 public:
  using Options = HubSpotMockOptions;
  explicit HubSpotMock(Options options = Options());

  // Deterministic onboarding data: `companies` companies, each with an onboarding ticket in the
  // "Order/faktura" pipeline at a stage drawn from `seed`, one or two contacts, and a note.
  void Seed(uint64_t seed, int companies);
  // The first `count` companies by id, with their domains and their contacts: the customers
  // another mock can also hold (SeedCustomer).
  std::vector<SeedCustomer> Customers(int count) const;

  nlohmann::json Dump() const override;
  void Reset() override;
  // Access tokens issued by the OAuth endpoint so far.
  int oauth_issued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return oauth_issued_;
  }

 protected:
  void RegisterRoutes(httplib::Server& server) override;
  nlohmann::json FaultBody(int status, const std::string& message) const override;
  bool LoopPaging(const httplib::Request& req, nlohmann::json* body) const override;

 private:
  struct Object {
    int64_t id = 0;
    nlohmann::json properties = nlohmann::json::object();
    int64_t created_ms = 0;
    int64_t updated_ms = 0;
    bool archived = false;
    std::map<std::string, std::set<int64_t>> associations;  // by object type
    // Each property's values with when they were set, oldest first (propertiesWithHistory).
    std::map<std::string, std::vector<std::pair<int64_t, nlohmann::json>>> history;
    // The labelled HUBSPOT_DEFINED types of an association beyond its default (unlabelled) one,
    // by object type and id (e.g. 26, a ticket's primary company).
    std::map<std::string, std::map<int64_t, std::set<int>>> labelled;
  };
  struct PropertyDef {
    std::string type;  // string, number, datetime, enumeration, bool
    bool unique = false;
    // As created through the API; empty for the built-in ones, which are rendered with defaults.
    std::string label, description, field_type, group_name;
    nlohmann::json options = nlohmann::json::array();  // [{label, value, ...}] of an enumeration
  };
  // A property as HubSpot's Property schema has it (every required field: description, fieldType,
  // groupName, label, name, options, type).
  nlohmann::json RenderProperty(const std::string& object_type, const std::string& name,
                                const PropertyDef& d) const;
  struct Stage {
    std::string id, label;
    bool closed = false;
  };
  struct Pipeline {
    std::string id, label;
    std::vector<Stage> stages;
  };
  // A user who can own records (GET /crm/v3/owners). A deactivated user's owner is archived: it
  // is listed only with archived=true, stays on the records it owned, and owns no new ones.
  struct Owner {
    std::string id, email, first_name, last_name;
    int64_t user_id = 0;
    bool archived = false;
  };
  using Reply = std::pair<int, nlohmann::json>;
  void BackdateStages(const Pipeline& pipeline, const std::string& stage_id, std::mt19937_64* rng,
                      Object* ticket) const;
  // The live (not archived) objects of one type, filed for search and unique lookups.
  struct TypeIndex {
    // (the modified property as Search sorts it, id), ascending: Search's order for that sort.
    std::set<std::pair<double, int64_t>> by_modified;
    // Per indexed property (see IndexedProperty): value -> the ids holding it.
    std::map<std::string, std::map<std::string, std::set<int64_t>>> by_value;
    // What each filed id is filed under, so a write can take out the old entries.
    struct Filed {
      double modified = 0;
      std::map<std::string, std::string> values;
    };
    std::map<int64_t, Filed> filed;
    uint64_t generation = 0;  // bumped on every write to the type; keys the search cache
  };
  // The matches of a search in its sort order, for its next pages while the type is unchanged.
  struct CachedSearch {
    std::string type, key;
    uint64_t generation = 0;
    std::vector<int64_t> hits;
  };

  void InitLocked();
  int64_t Now() const;
  std::string Iso(int64_t ms) const;
  nlohmann::json Error(const std::string& category, const std::string& message) const;
  nlohmann::json InjectedItemError(const std::string& context_key, const std::string& id) const;
  // Auth and rate limits; fills `res` and returns false when the request is refused.
  bool Admit(const httplib::Request& req, httplib::Response& res, bool search);

  static std::string CanonicalType(const std::string& type);
  // `with_history`: properties whose past values are listed too (propertiesWithHistory).
  nlohmann::json Render(const std::string& type, const Object& o,
                        const std::vector<std::string>& props,
                        const std::vector<std::string>& assoc,
                        const std::vector<std::string>& with_history = {}) const;
  // Validates and applies properties to `o` (new when o.id == 0); an error reply when invalid.
  // POST /crm/v3/objects/{type}/merge: the two records into a new one, as HubSpot merges
  // duplicates; FindMergedLocked: the record an id merged away leads to, or nullptr.
  Reply MergeLocked(const std::string& type, const nlohmann::json& body);
  Object* FindMergedLocked(const std::string& type, const std::string& id);
  std::optional<Reply> ApplyLocked(const std::string& type, Object* o,
                                   const nlohmann::json& props);
  Object* FindLocked(const std::string& type, const std::string& id,
                     const std::string& id_property);
  // Properties with a value index: those with unique values, and contacts' email (upserts by it).
  bool IndexedProperty(const std::string& type, const std::string& name) const;
  // Refiles a stored object after any change to its properties or archived flag; mu_ held.
  void IndexLocked(const std::string& type, const Object& o);
  // Archives `o` (DELETE or batch archive): flagged, its change time moved, refiled; mu_ held.
  void ArchiveLocked(const std::string& type, Object* o);
  void RebuildIndexLocked(const std::string& type);
  // Puts a new object into the store and files it.
  Object& StoreLocked(const std::string& type, Object o);
  Reply CreateLocked(const std::string& type, const nlohmann::json& input);
  bool Matches(const std::string& type, const Object& o, const nlohmann::json& filter) const;

  // Associations (v4); mu_ held. Link adds the default type both ways and, when `labelled` is
  // given, replaces the pair's labelled types with it (the reverse ids on the other record).
  void LinkLocked(const std::string& from, int64_t from_id, const std::string& to, int64_t to_id,
                  const std::set<int>* labelled = nullptr);
  // Removes every association type between the two records, both ways.
  void UnlinkLocked(const std::string& from, int64_t from_id, const std::string& to, int64_t to_id);
  // associationTypes of a's association with to_id: the default type first, then the labelled.
  nlohmann::json AssociationTypesLocked(const std::string& from, const Object& a, const std::string& to,
                                        int64_t to_id) const;
  // LabelsBetweenObjectPair for a's association with to_id.
  nlohmann::json LabelsBetweenLocked(const std::string& from, const Object& a, const std::string& to,
                                     int64_t to_id) const;
  // Validates a list of AssociationSpec from `from` to `to` and collects its labelled type ids
  // (the default one is implied); HubSpot's 400 when a spec is malformed or names no such type.
  std::optional<Reply> ParseAssociationTypes(const std::string& from, const std::string& to,
                                             const nlohmann::json& specs, std::set<int>* labelled) const;

  Reply List(const std::string& type, const httplib::Request& req);
  Reply Search(const std::string& type, const nlohmann::json& body);
  // `injected_failure` draws whether the next input fails by a partial fault (a transient per-input
  // error in a 207 answer, as HubSpot's batch WithErrors responses carry).
  Reply Batch(const std::string& type, const std::string& verb, const nlohmann::json& body,
              const std::function<bool()>& injected_failure);

  Options options_;
  // Webhook deliveries of the changes made through the API (POST /__admin/webhooks subscribes).
  HubSpotWebhookSender webhooks_;
  mutable std::mutex mu_;
  int64_t next_id_ = 0;
  std::map<std::string, std::map<int64_t, Object>> objects_;  // type -> id -> object
  // Ids merged away, by type: each to the record the merge made (a GET by it answers that one).
  std::map<std::string, std::map<int64_t, int64_t>> merged_into_;
  std::map<std::string, TypeIndex> index_;                    // type -> its index
  std::deque<CachedSearch> search_cache_;                     // most recent first
  std::map<std::string, std::map<std::string, PropertyDef>> properties_;
  std::vector<Pipeline> pipelines_;
  std::vector<Owner> owners_;
  std::map<std::string, std::deque<int64_t>> window_;          // token -> request times
  std::map<std::string, std::deque<int64_t>> search_window_;   // token -> search times
  std::map<std::string, int> daily_;
  std::map<std::string, int64_t> oauth_tokens_;  // access token -> expiry (ms)
  int oauth_issued_ = 0;
};

}  // namespace crmbridge::mocks
