// PortalConnector: the customer portal (mocks/portal/openapi.yaml) as three objects:
// "properties", "users" and "access", a user's grant to a property (id "<user_id>/<property_id>").
// Access is an object of its own so that a CRM can grant and revoke it like any other record.
//
// Reads are full scans: the portal has no modified-since filter, so every run pages through all
// records (the engine diffs them against its snapshots). The cursor is the portal's own cursor of
// the scan, and "" once it ends, so the next run starts over; access is read user by user.
//
// Writes go one request per op (the API has no batches), and all are safe to retry, because the
// transport stack retries them after a 5xx or a lost answer:
//   - Creates carry an Idempotency-Key made of WriteOp::key and a hash of the body: a retry
//     replays the first answer; a changed payload for the same key is a new request, not a 422.
//   - A create refused as a duplicate (409: the external_id or email is taken, e.g. by a create
//     whose answer was lost longer ago than the portal remembers keys) adopts the existing record
//     and updates it.
//   - A grant is a PUT, then a password reset so the user can log in. The reset's key names the
//     grant's granted_at, so retries and re-runs never mail a second reset for one grant, a grant
//     whose reset was lost (crash between the two) gets it on the next attempt, and a grant made
//     again after a revoke gets its own.
// The API cannot delete users or properties: such deletes fail per op, pointing at revoking access.
//
// Not thread-safe (one per worker), per the Connector contract.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "connectors/connector.h"
#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/core/transport.h"

namespace crmbridge {

class PortalConnector : public Connector {
 public:
  // `transport` sends to config.base_url (the server root; the connector adds /v1) with the
  // bearer token config.auth["token"]. The clock, which every kind's factory passes, is not kept:
  // nothing here waits or dates by it.
  PortalConnector(const SystemConfig& config, std::shared_ptr<Transport> transport, Clock* clock);

  // What the connector needs from its configuration, checked without I/O: an http(s) base_url and
  // auth.token. kFailedPrecondition naming what is wrong.
  static Status ValidateConfig(const SystemConfig& config);
  // What every system of this kind can do, declared without a configuration (the registry lists
  // it for the layers that must not name a kind).
  static const Capabilities& KindCapabilities();

  std::string_view Name() const override { return name_; }
  const Capabilities& capabilities() const override { return KindCapabilities(); }
  Result<Page> ReadChanges(const ObjectRef& object, const Cursor& cursor,
                           const ReadContext& context) override;
  Result<std::vector<WriteOutcome>> Write(const ObjectRef& object,
                                          const std::vector<WriteOp>& ops) override;

 private:
  // One page of a portal list.
  struct ListPage {
    nlohmann::json data = nlohmann::json::array();
    std::string next;  // "" on the last page
  };

  Result<Response> Call(const std::string& method, const std::string& path,
                        const std::optional<nlohmann::json>& body,
                        const std::string& idempotency_key = "");
  // Classifies an error response (StatusFromPortal) as coming from this system.
  Status Fail(const Response& response, const std::string& what) const;
  Status NoIdInMatch(const std::string& what) const;
  Result<nlohmann::json> ParseBody(const Response& response, const std::string& what) const;
  // GET `path` (which may carry a query) with limit and cursor.
  Result<ListPage> List(const std::string& path, const std::string& cursor, int limit,
                        const std::string& what);

  Result<Page> ReadObjects(const std::string& object, const Cursor& cursor, int limit);
  Result<Page> ReadAccess(const Cursor& cursor, int limit);

  // Per-op writes. A non-OK Result fails the whole Write (credentials refused, TLS): no later op
  // could fare better. Everything else is the op's own outcome.
  Result<WriteOutcome> WriteProperty(const WriteOp& op);
  Result<WriteOutcome> WriteUser(const WriteOp& op);
  Result<WriteOutcome> WriteAccess(const WriteOp& op);
  std::map<std::string, std::string> property_ids_;  // external_id -> portal property id
  // PATCH /v1/<collection>/<id>; an empty body changes nothing and sends nothing.
  Result<WriteOutcome> Patch(const std::string& collection, const std::string& id,
                             const nlohmann::json& body, const std::string& what);
  // POST a create with its Idempotency-Key; `adopt` finds the record holding the unique value a
  // 409 names and updates it.
  Result<WriteOutcome> Create(
      const std::string& collection, const WriteOp& op, const nlohmann::json& body,
      const std::string& what,
      const std::function<Result<WriteOutcome>(const Status& conflict)>& adopt);
  // Files a failed call as the op's outcome, or as the whole Write's when it is system-fatal.
  static Result<WriteOutcome> OpFailed(Status status);

  std::string name_;
  SystemConfig config_;
  std::string api_root_;  // base_url + "/v1"
  std::shared_ptr<Transport> transport_;
};

}  // namespace crmbridge
