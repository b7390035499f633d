// Dynamics365Connector: Dataverse Web API tables (accounts, contacts, opportunities, annotations,
// tasks) as NativeRecords.
//
// Auth is OAuth2 client credentials against the configured token URL; the token is cached until
// 300 s before it expires, and a 401 fetches a new one once and repeats the request.
// Reads use change tracking: the first read pages the whole table (Prefer: odata.track-changes,
// odata.maxpagesize), later reads follow the stored @odata.deltaLink, and deleted rows arrive as
// tombstones; a delta token the service no longer accepts starts a full read again. A table
// without change tracking (params change_tracking: "false") is read by modifiedon against a
// watermark instead; deletes are then invisible.
// Writes upsert by crmbridge's alternate-key column (PATCH set(key='…')), so a write repeated
// after an unknown outcome updates the first; updates by id carry If-Match: * so a row deleted in
// Dynamics 365 is never silently re-created. A table crmbridge only creates rows in (params
// create_only: "true") upserts with If-None-Match: *, so an existing row is never overwritten; a
// 412 there means an earlier attempt made the row, which is adopted. Several ops travel in one $batch (up to 1000, the
// API's maximum; options.batch_size lowers it) with continue-on-error and no change set, so each
// row gets its own answer and one bad row never fails the others; a single op goes alone.
//
// Not thread-safe (one per worker), per the Connector contract.
#pragma once

#include <memory>
#include <set>
#include <optional>
#include <map>
#include <string>

#include "connectors/connector.h"
#include "connectors/owner_directory.h"
#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/core/jwt.h"
#include "src/core/transport.h"

namespace crmbridge {

class Dynamics365Connector : public Connector {
 public:
  // `transport` sends to config.base_url and to config.auth["token_url"]. `clock` (token expiry)
  // must outlive the connector.
  Dynamics365Connector(const SystemConfig& config, std::shared_ptr<Transport> transport,
                       Clock* clock);

  // What the connector needs from its configuration, checked without I/O: an http(s) base_url,
  // auth.token_url, auth.client_id, and auth.client_secret or the certificate credentials
  // auth.certificate_file and auth.private_key_file (PEM files, read at the first token)
  // (auth.scope defaults to "<base_url>/.default"), and options.api_version, when set, of the
  // form "v9.2". kFailedPrecondition naming what is wrong.
  static Status ValidateConfig(const SystemConfig& config);
  // What every system of this kind can do, declared without a configuration (the registry lists
  // it for the layers that must not name a kind).
  static const Capabilities& KindCapabilities();

  std::string_view Name() const override { return name_; }
  const Capabilities& capabilities() const override { return caps_; }
  // One GET per row id ($select as a read of changes); a row gone since (404) is left out.
  Result<std::vector<NativeRecord>> ReadByIds(const ObjectRef& object,
                                              const std::vector<std::string>& ids) override;
  Result<Page> ReadChanges(const ObjectRef& object, const Cursor& cursor,
                           const ReadContext& context) override;
  // A column's past values from the audit history: each row's audit entries (GET audits, oldest
  // first) and the values each changed (RetrieveAuditDetails): the Web API's change-history
  // functions carry no dates. Nothing where auditing is off for the organisation, the table or
  // the column (said once in the log).
  Result<std::map<std::string, std::vector<FieldChange>>> ReadFieldHistory(
      const ObjectRef& object, const std::string& field,
      const std::vector<std::string>& ids) override;
  Result<std::vector<WriteOutcome>> Write(const ObjectRef& object,
                                          const std::vector<WriteOp>& ops) override;

 private:
  // Sends a Web API request with a valid token; on a 401, refreshes the token once and resends.
  Result<Response> Call(Request request);
  Status RefreshToken();
  // The token request's client authentication: the secret, or a client assertion signed with
  // the certificate (loaded from its files on first use).
  Result<std::string> ClientCredentials();
  // config.auth[key]; "scope" defaults to "<base_url>/.default", other keys to "".
  std::string Auth(const std::string& key) const;
  // Classifies an error response (StatusFromDataverse) as coming from this system.
  Status Fail(const Response& response, const std::string& what) const;
  std::string ApiRoot() const;  // ".../api/data/v9.2/"
  // The request that carries `op`, alone or inside a $batch, and what its answer means.
  Request WriteRequest(const ObjectRef& object, const WriteOp& op) const;
  WriteOutcome WriteResult(const ObjectRef& object, const WriteOp& op, const std::string& method,
                           const Response& response) const;
  // A kMerge refused: true when the subordinate is already merged into the op's master.
  bool MergeDone(const ObjectRef& object, const WriteOp& op);
  Result<std::vector<WriteOutcome>> WriteAll(const ObjectRef& object,
                                             const std::vector<WriteOp>& ops);
  void AdoptExisting(const ObjectRef& object, const std::vector<WriteOp>& ops,
                     std::vector<WriteOutcome>* outcomes);
  WriteOutcome WriteOne(const ObjectRef& object, const WriteOp& op);
  // Reads a table without change tracking by modifiedon (params change_tracking: "false").
  Result<Page> ReadByModifiedOn(const ObjectRef& object, const Cursor& cursor,
                                const ReadContext& context);
  // Whether changes of `column` of the object's table are audited (organisation, table and
  // column all on), asked once per table and column.
  Result<bool> Audited(const ObjectRef& object, const std::string& column);
  // Reads the users (systemusers) unless read in the last kUsersFreshMs.
  Status LoadUsers();
  // Up to batch_size_ ops in one $batch, one outcome per op from its own part of the answer.
  std::vector<WriteOutcome> WriteBatch(const ObjectRef& object, const std::vector<WriteOp>& ops);

  std::string name_;
  SystemConfig config_;
  std::shared_ptr<Transport> transport_;
  Clock* clock_;
  int batch_size_ = 0;  // requests per $batch (options.batch_size, default the API's 1000)
  Capabilities caps_;
  std::string token_;
  int64_t token_expires_ms_ = 0;
  std::shared_ptr<const ClientCertificate> certificate_;
  std::map<std::string, bool> audited_;  // "table|column" -> Audited()
  // The org's users: a row's owner (ownerid) is read and written as its user's email
  // (LoadUsers fills it).
  OwnerDirectory users_{name_, "enabled Dynamics 365 user",
                        "its rows keep the owner they have (a new row: the application user)"};
};

}  // namespace crmbridge
