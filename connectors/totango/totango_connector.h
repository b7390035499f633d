// TotangoConnector: Totango accounts, users, touchpoints and tasks as NativeRecords.
//
// Totango has no modified-since filter, so every read is a full scan through the Search API and
// the engine finds changes by diffing against its snapshots. One query reaches at most 10,000
// records, so a scan that matches more is split on the accounts' "Create Date" into date windows,
// halved until each fits; every account is read exactly once, none is dropped.
//
// Account and user attributes are written through the SDR gateway (one GET of /pixel.gif per
// record, no token, no rate limit), which answers 200 whatever it keeps: such writes are reported
// WriteOutcome::unverified, and the engine verifies them on a later read. Values are checked
// before sending: a lifecycle stage or Status outside the configured list (options
// "allowed.<Attribute>" = "A|B|C"), a Contact flag other than yes/no, or text over Totango's
// length limits fails its record instead of vanishing in the gateway.
//
// Touchpoints and tasks are created through the REST API, one POST each, which is not idempotent:
// a create retried after an unknown outcome (WriteOp::attempt > 0) first looks for the record it
// may already have made (same account, subject and content; same title and description for a
// task) and adopts it. Touchpoints are sent with disable_sync, so Totango does not pass crmbridge's
// notes on to its own CRM integrations.
//
// A user, touchpoint or task belongs to an account: its account_id is a reference (mapped to
// the entity whose records are Totango accounts), read as that account's id and written from
// WriteOp::refs. A user's display name, when a mapping writes none, is its "First Name" and
// "Last Name" attributes; params give a touchpoint or task its Flow (activity_type_id), a
// touchpoint its subject and a task its priority where the mapping has no field for them.
//
// Records crmbridge creates get account id "crmb_" + its key (hyphens as underscores: Totango
// allows letters, digits and '_' only), so a lost link is recovered from the id alone.
//
// Not thread-safe (one per worker), per the Connector contract.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/connector.h"
#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/core/transport.h"

namespace crmbridge {

class TotangoConnector : public Connector {
 public:
  // config.base_url is the REST host (https://api.totango.com, or api-eu1 for the EU data centre);
  // auth.app_token (or auth.token) the personal access token; options: service_id (SP-...,
  // needed for writes), sdr_url (defaults by options.region: us or eu; else base_url).
  // The clock, which every kind's factory passes, is not kept: nothing here waits or dates by it
  // (pacing is the transport's limiter).
  TotangoConnector(const SystemConfig& config, std::shared_ptr<Transport> transport, Clock* clock);

  // Checked without I/O: an http(s) base_url, a token, a service id, a known region, and
  // well-formed allowed lists. kFailedPrecondition naming what is wrong.
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

  // The account id crmbridge gives a record it creates under `key`, and back.
  static std::string AccountIdForKey(const std::string& key);
  static std::string KeyOfAccountId(const std::string& account_id);

 private:
  Result<Response> Call(const std::string& method, const std::string& url, const std::string& body,
                        const std::string& content_type, bool idempotent);
  Status Fail(const Response& response, const std::string& what) const;
  // One search call; `window` restricts it to accounts created in [from, to).
  Result<nlohmann::json> Search(bool users, const ObjectRef& object, int offset,
                                const std::optional<std::pair<int64_t, int64_t>>& window, int count);
  Result<Page> ReadAccountsOrUsers(bool users, const ObjectRef& object, const Cursor& cursor,
                                   const ReadContext& context);
  // Why `value` cannot be sent as attribute `name` (empty when it can).
  std::string Refusal(bool account, const std::string& name, const nlohmann::json& value) const;
  WriteOutcome WriteAttributes(const ObjectRef& object, const WriteOp& op);
  // A touchpoint's or task's JSON: the mapped fields, its account (the reference), and the
  // object's params (Flow, subject, priority) where the mapping gives no value.
  static nlohmann::json RecordBody(const ObjectRef& object, const WriteOp& op);
  WriteOutcome CreateOrUpdate(const ObjectRef& object, const WriteOp& op);
  // The id of a touchpoint or task that matches `fields`, made by an earlier attempt.
  Result<std::optional<std::string>> FindEarlierCreate(const std::string& object,
                                                       const nlohmann::json& fields);

  std::string name_;
  SystemConfig config_;
  std::shared_ptr<Transport> transport_;
  std::string sdr_url_;
  std::map<std::string, std::vector<std::string>> allowed_;  // attribute -> allowed values
};

}  // namespace crmbridge
