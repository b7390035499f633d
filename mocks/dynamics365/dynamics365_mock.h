// Dynamics365Mock: an in-memory fake of Microsoft Dataverse (the Dynamics 365 Web API, OData v4)
// and of the Entra ID token endpoint in front of it, faithful enough that Microsoft's
// dynamics-web-api client and crmbridge's connector behave against it as against the real service.
// Every behaviour below is a vendor fact from shared/refs/dynamics365/ (reference.md §n, second
// pass "2nd §n"); where the refs mark a fact [UNCONFIRMED] the mock's choice is an option.
//
// Routes (relative to base_url()):
//   POST /{tenant}/oauth2/v2.0/token     client credentials (a secret in the form or HTTP Basic,
//                                        or a certificate's client assertion); AADSTS errors
//   GET  /api/data/v9.2/                 service document; GET WhoAmI
//   GET  /api/data/v9.2/{set}            $select $filter $orderby $top $count, Prefer:
//                                        odata.maxpagesize (absolute @odata.nextLink, opaque
//                                        $skiptoken), odata.track-changes (@odata.deltaLink),
//                                        odata.include-annotations (lookup and yes/no annotations)
//   GET  /api/data/v9.2/{set}?$deltatoken=...   changes since the token, then deletions
//   GET/PATCH/DELETE /api/data/v9.2/{set}({key})  key = <guid>, pk=<guid> or an alternate key
//                                        (crmb_externalid='X'); PATCH is an upsert unless If-Match
//   POST /api/data/v9.2/{set}            create (204 + OData-EntityId, or 201 with
//                                        Prefer: return=representation)
//   DELETE /api/data/v9.2/{set}({key})/{lookup-nav}/$ref   clears a lookup
//   GET  /api/data/v9.2/$metadata        CSDL generated from the schemas
//   POST /api/data/v9.2/{set}/Microsoft.Dynamics.CRM.{Create|Update|Upsert}Multiple
//                                        bulk writes, all or nothing (standard tables)
//   POST /api/data/v9.2/$batch          multipart/mixed requests and atomic change sets with
//                                        Content-ID references ($1), batchresponse_/
//                                        changesetresponse_ boundaries, odata.continue-on-error
//   POST /api/data/v9.2/Merge            merges an account or contact into another
//   GET  /api/data/v9.2/audits           the audit history, read-only: $select, $filter
//                                        (_objectid_value eq <guid>, objecttypecode eq
//                                        'opportunity', action eq 2, ... joined by and),
//                                        $orderby=createdon asc|desc, odata.maxpagesize paging;
//                                        audits({auditid}) one row
//   GET  /api/data/v9.2/audits({auditid})/Microsoft.Dynamics.CRM.RetrieveAuditDetails[()]
//                                        the row's AttributeAuditDetail: OldValue and NewValue of
//                                        the audited columns the write changed (a create: NewValue
//                                        only; a delete: no values); 404 for an unknown id
//   GET  /api/data/v9.2/organizations    the organisation's row: organizationid, isauditenabled
//   GET  /api/data/v9.2/EntityDefinitions[(LogicalName='t')[/Attributes[(LogicalName='c')]]]
//                                        table and column metadata: MetadataId, LogicalName,
//                                        IsAuditEnabled {Value, CanBeChanged,
//                                        ManagedPropertyLogicalName}; 404 for an unknown name
//   POST /__admin/webhooks               registers a webhook service endpoint (WebhookKey) with
//                                        asynchronous Create, Update and Delete steps on every
//                                        table: each write through the API is then POSTed to it
//                                        as a RemoteExecutionContext (Dynamics365WebhookSender);
//                                        GET: the counts of its calls
//   POST /__admin/auditing               {"enabled": false} turns auditing off for the
//                                        organisation, {"table": "opportunity", "enabled": false}
//                                        for one table (with "column": "name", one column); true
//                                        turns it back on. 204, or 400 {"error"}. GET: the
//                                        switches, {"enabled": true, "off": ["opportunity"]}
//
// Entity sets: accounts, contacts, opportunities, annotations, tasks, systemusers, audits
// (dynamics365_schema.h), and organizations. Web API requests need "Authorization: Bearer <token
// from the token endpoint>" (401 with a WWW-Authenticate challenge otherwise) and count against
// the service-protection limits (429 with Retry-After and Dataverse's hex codes). Every response
// carries OData-Version: 4.0.
//
// Auditing (Learn, "Retrieve the history of audited data changes"): every create, update and
// delete through the API (a plain request, an upsert, a bulk action, a $batch part, a Merge and
// the writes it makes) writes an audit row, dated by the Clock, whose user is the application
// user, while auditing is on for the organisation and the table: action 1 (create), 2 (update;
// only when an audited column's value changed, holding those columns) or 3 (delete). Every table
// and column is audited except the primary key, createdon, modifiedon and versionnumber, until
// /__admin/auditing turns a switch off; rows written before stay readable. A change set or bulk
// action rolled back takes its audit rows back.
//
// Thread-safety: all public methods and the route handlers may run concurrently; one mutex guards
// the store. Start/Stop come from MockServer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "mocks/common/mock_server.h"
#include "mocks/common/seed_customer.h"
#include "src/core/clock.h"

namespace crmbridge::mocks {

struct Dynamics365MockOptions {
  // Entra ID tenant in the token URL, and the only confidential client it knows.
  std::string tenant = "tenant";
  std::string client_id = "mock-client-id";
  std::string client_secret = "mock-client-secret";
  // A certificate (PEM) registered on the client: a client assertion signed with its key (PS256
  // or RS256, naming it by x5t#S256 or x5t) authenticates the client as its secret does. "" none.
  std::string certificate_pem;
  // expires_in of issued tokens (reference.md §1: 3599 in Microsoft's example).
  int token_lifetime_seconds = 3599;
  // Time source for token expiry, createdon/modifiedon, delta-token age and the rate window.
  // nullptr = Clock::Real(). Not owned; must outlive the mock.
  Clock* clock = nullptr;

  // Service protection (reference.md §11): per user, sliding window.
  bool service_protection = true;
  int requests_per_window = 6000;  // 0x80072322 above this
  int window_seconds = 300;
  int concurrent_requests = 52;    // 0x80072326 above this

  // Largest page (reference.md §3: default and maximum page size 5000).
  int max_page_size = 5000;

  // Change tracking: delta tokens older than this fail (reference.md §4: 7 days by default, the
  // org's expirechangetrackingindays). The failure's HTTP status and code are [UNCONFIRMED]
  // (2nd §5 suggests 400); the message is the documented one.
  int64_t change_tracking_retention_seconds = 7 * 24 * 3600;
  int expired_delta_token_status = 400;
  std::string expired_delta_token_code;  // Learn: the code is "frequently empty"

  // An upsert by alternate key answers with the key-form OData-EntityId
  // ".../accounts(crmb_externalid='X')" (2nd §6, from the upsert doc); false = the GUID form.
  bool upsert_key_form_entity_id = true;

  // Seed of the generator for record ids (so runs are reproducible).
  uint64_t id_seed = 0x5eedd365;
};

class Dynamics365Mock : public MockServer {
 public:
  using Options = Dynamics365MockOptions;

  explicit Dynamics365Mock(Options options = Options());
  ~Dynamics365Mock() override;

  // "http://127.0.0.1:<port>/api/data/v9.2/" (with the trailing slash dynamics-web-api needs).
  std::string api_url() const;
  // "http://127.0.0.1:<port>/<tenant>/oauth2/v2.0/token"
  std::string token_url() const;

  // Replaces the store with `accounts` accounts, each with 1-3 contacts (parentcustomerid -> the
  // account) and one opportunity (parentaccountid -> the account) whose crmb_onboardingstage runs
  // through 100000000..100000004 in turn. The same seed gives the same rows, ids and history.
  // Each opportunity has a past: its audit history has a create row (at stage 100000000) 20 to 60
  // days back, then an update row per later stage up to its own, 2 to 14 days apart and the last
  // at least a day back; its createdon and modifiedon are the first and last of those dates.
  // Accounts and contacts have no audit rows (never written through the API).
  void Seed(uint64_t seed, int accounts);
  // Adds each customer as an account (websiteurl "https://www.<domain>/") with its people as
  // contacts (their emails as another system's users typed them: first letter capitalised), plus
  // one contact of its own no other system has. No opportunity: the onboarding comes from the
  // other system. Keeps what the store holds. Writes no audit rows.
  void AddCustomers(const std::vector<SeedCustomer>& customers);

  // {"accounts":[row...], "contacts":[...], ..., "audits":[...]}: every row with every column, as
  // a GET reads it (audit rows in the order written, without their values: RetrieveAuditDetails
  // has them).
  nlohmann::json Dump() const override;
  // Empties every table, change log and the audit history. Issued tokens stay valid; row versions
  // keep increasing so delta tokens issued before stay meaningful; the auditing switches stay as
  // they are.
  void Reset() override;

 protected:
  void RegisterRoutes(httplib::Server& server) override;
  // Dataverse's error shape; a 429 carries the request-limit code and message (reference.md §11).
  nlohmann::json FaultBody(int status, const std::string& message) const override;
  bool LoopPaging(const httplib::Request& req, nlohmann::json* body) const override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace crmbridge::mocks
