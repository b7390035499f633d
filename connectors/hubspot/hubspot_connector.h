// HubSpotConnector: HubSpot CRM v3 objects (tickets, companies, contacts, notes, tasks) as
// NativeRecords.
//
// Reads are incremental searches on the last-modified property, sorted ascending, 200 per page;
// the 10,000-result cap of one search is never reached: the window restarts from the last
// timestamp seen, and a run of more than 9,800 records sharing one timestamp is paged by id.
// Records of that boundary timestamp read twice by the restart are dropped, so one pass returns
// each record once (a new pass starts with an overlap and may repeat the end of the last).
// Writes go through batch upsert on crmbridge's unique key property (created on first use), so a
// create retried after an unknown outcome updates the first instead of duplicating it; a batch
// HubSpot rejects as a whole is split until only the bad record fails.
//
// References are associations (v4): a reference field is named after the associated object type
// ("companies"); reads fetch each page's associations in one batch read per type, writes add the
// default association (and archive the one replaced) in batches after the records are written.
//
// Tickets in a pipeline (ObjectRef params {"pipeline": label or id}) show and take stage LABELS in
// hs_pipeline_stage; the connector translates them through the pipelines API.
//
// Not thread-safe (one per worker), per the Connector contract.
#pragma once

#include <map>
#include <set>
#include <memory>
#include <string>

#include "connectors/connector.h"
#include "connectors/hubspot/hubspot_codec.h"
#include "connectors/owner_directory.h"
#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/core/transport.h"

namespace crmbridge {

class HubSpotConnector : public Connector {
 public:
  // `transport` sends to config.base_url with the private-app token config.auth["token"], or, for
  // an OAuth app, with access tokens refreshed from auth.refresh_token, auth.client_id and
  // auth.client_secret at auth.token_url (default <base_url>/oauth/v1/token) before they expire;
  // a 401 refreshes once and repeats the request.
  // `clock` must outlive the connector.
  HubSpotConnector(const SystemConfig& config, std::shared_ptr<Transport> transport, Clock* clock);

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
  // Batch read by id, 100 per call (POST /crm/v3/objects/{type}/batch/read), then the
  // associations as a search page gets them.
  Result<std::vector<NativeRecord>> ReadByIds(const ObjectRef& object,
                                              const std::vector<std::string>& ids) override;
  // Batch read with propertiesWithHistory, 50 records per call (HubSpot reads fewer records per
  // request when history is asked for); a stage comes back by its label, as ReadChanges gives it.
  Result<std::map<std::string, std::vector<FieldChange>>> ReadFieldHistory(
      const ObjectRef& object, const std::string& field, const std::vector<std::string>& ids) override;
  Result<std::vector<WriteOutcome>> Write(const ObjectRef& object,
                                          const std::vector<WriteOp>& ops) override;

 private:
  // POST /crm/v3/objects/{type}/batch/read: the answer's results (200, or 207 when some ids were
  // not found); `what` names the read in errors.
  Result<nlohmann::json> BatchRead(const std::string& type, const nlohmann::json& body,
                                   const std::string& what);
  struct ObjectSetup {
    std::string id_property;
    std::string pipeline_id;  // empty when the object is not in a pipeline
    std::map<std::string, std::string> stage_label_by_id;
    std::map<std::string, std::string> stage_id_by_label;
    bool key_checked = false;  // the key property is known to exist
  };

  // The object's setup, cached: its pipeline's stages are read once; with `for_write`, the key
  // property is checked (and created) once too.
  Result<ObjectSetup*> Setup(const ObjectRef& object, bool for_write);
  Status EnsureKeyProperty(const std::string& type, const std::string& name);
  // OAuth apps: trades auth.refresh_token for an access token, kept until shortly before expiry.
  Status RefreshOAuthToken();
  Status LoadPipeline(const std::string& type, const std::string& pipeline, ObjectSetup* setup);
  Result<Response> Call(const std::string& method, const std::string& path, const std::string& body,
                        bool idempotent);
  // Classifies an error response (StatusFromHubSpot) as coming from this system.
  Status Fail(const Response& response, const std::string& what) const;
  // Reads the owners (active, then archived) unless read in the last kOwnersFreshMs.
  Status LoadOwners();
  // A mapping param of `object` giving milliseconds (a whole number >= 0), else `fallback`.
  Result<int64_t> MillisParam(const ObjectRef& object, const std::string& name,
                              int64_t fallback) const;
  // One page of the sweep of archived records (`c.archived`): tombstones of those archived since
  // the last complete sweep began, in the mapping's pipeline.
  Result<Page> ReadArchived(const ObjectRef& object, const ObjectSetup& setup,
                            hubspot::SearchCursor c);
  void ToLabels(const ObjectSetup& setup, NativeRecord* record) const;
  // The properties a read asks for: the mapping's fields, the key, the modification time and,
  // for a pipeline object, the pipeline.
  nlohmann::json PropertiesToRead(const ObjectRef& object, const ObjectSetup& setup) const;
  Result<nlohmann::json> ToProperties(const ObjectSetup& setup, const nlohmann::json& fields) const;

  // Reads the associations of `records` for every reference field of `object` (search answers
  // carry none): the field holds the lowest associated id, or null; NativeRecord::associations
  // all of them.
  Status ReadAssociations(const ObjectRef& object, std::vector<NativeRecord>* records);
  // Associates each written record with the records its refs name (and drops the association a
  // ref replaced). A failed association fails its op, which is retried as a whole.
  void WriteAssociations(const std::string& type, const std::vector<WriteOp>& ops,
                         std::vector<WriteOutcome>* outcomes);
  // Writes one chunk; on a whole-batch rejection, splits it in halves down to single inputs.
  // A WriteOp::Kind::kMerge: POST /crm/v3/objects/{type}/merge, the op's record absorbed.
  WriteOutcome MergeOne(const std::string& type, const WriteOp& op);
  void WriteChunk(const std::string& type, const ObjectSetup& setup, const std::string& verb,
                  const std::vector<const WriteOp*>& ops, std::vector<WriteOutcome*>& outcomes);

  std::string name_;
  SystemConfig config_;
  std::shared_ptr<Transport> transport_;
  Clock* clock_;
  std::map<std::string, ObjectSetup> setups_;  // by object type + key property + pipeline
  // The portal's owners: a record's hubspot_owner_id is an owner id, read and written as the
  // owner's email (LoadOwners fills it).
  OwnerDirectory owners_{name_, "active HubSpot owner",
                         "its records keep the owner they have (a new one: none)"};
  std::string oauth_token_;      // OAuth access token; empty with a private-app token
  int64_t oauth_expires_ms_ = 0;
  std::string refresh_token_;    // the last one the token endpoint gave; "" until then
  bool daily_used_up_ = false;  // the daily budget's remaining count reached 0
  // Per object type, the latest timestamp this pass returned and the ids returned at it.
  struct Boundary {
    int64_t ms = -1;
    std::set<std::string> ids;
  };
  std::map<std::string, Boundary> boundaries_;
};

}  // namespace crmbridge
