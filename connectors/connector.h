// Connector: the contract every system adapter implements (HubSpot, Dynamics 365, Totango, portal).
//
// A Connector turns one system's API into NativeRecords and back, modelled on a Kafka Connect task.
// It owns no state: the engine hands it a cursor and persists the one it returns, in the same
// transaction as the work that cursor produced. Connectors never touch the state store and know
// nothing of mappings; they speak their API through a Transport.
//
// Not thread-safe: one instance per worker thread.
#pragma once

#include <map>
#include <set>
#include <memory>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/core/status.h"
#include "src/core/url.h"
#include "src/core/utf8.h"

namespace crmbridge {

// One object of a system as its API shows it: a flat map of native field names to JSON values.
struct NativeRecord {
  std::string id;                // the system's own id ("512", a GUID, ...)
  nlohmann::json fields = nlohmann::json::object();
  int64_t modified_ms = 0;       // last-modified time as the system reports it, 0 if unknown
  bool deleted = false;          // a tombstone: only `id` is meaningful
  // crmbridge's idempotency key as stored on the record (the external-id property or alternate
  // key the connector writes WriteOp::key to), empty when the record carries none. Lets the engine
  // recognise a record it created even when the link was never saved (crash after the write).
  std::string key;
  // Associated records by native object type ("companies" -> ["9", "12"]).
  std::map<std::string, std::vector<std::string>> associations;
  // Merges the system made (two records of one object became one): the ids of the records this
  // one absorbed (HubSpot's hs_merged_object_ids), or, on a record that was absorbed and is kept
  // only as a pointer (a Dynamics 365 row deactivated by a merge), the id of the record that
  // absorbed it. The engine re-points what crmbridge linked to the absorbed record (merges.h).
  std::vector<std::string> merged_ids;
  std::string merged_into;
  // Why the connector could not decode this record (a field of the wrong type, a missing id),
  // empty when it could. The engine rejects such a record by its id and reason, and the rest of
  // the page goes on.
  std::string invalid;
};

// One value a field held, from when (ms since epoch): Connector::ReadFieldHistory.
struct FieldChange {
  nlohmann::json value;
  int64_t at_ms = 0;
};

// Which native object to read or write, with its connector-specific parameters from the mapping
// (e.g. {"pipeline": "Order/faktura"} for HubSpot tickets, {"key": "crmb_externalid"} for
// Dynamics 365 opportunities).
struct ObjectRef {
  std::string object;  // "tickets", "opportunities", ...
  std::map<std::string, std::string> params;
  // Native fields the mapping reads or writes; a connector requests at least these on reads.
  std::vector<std::string> fields;
  // Those of `fields` that are references to other records (a Dynamics 365 lookup column, a
  // HubSpot association type). On reads a connector gives each as the referenced record's native
  // id (a string, or null when there is none); on writes they arrive in WriteOp::refs.
  std::set<std::string> ref_fields;
};

// Opaque, connector-defined position in a change stream. Empty means "from the beginning".
using Cursor = std::string;

struct ReadContext {
  // Wall-clock start of this run (ms since epoch): a time-based cursor never moves past it, so
  // records modified while the run reads are seen again by the next run.
  int64_t run_start_ms = 0;
  // Maximum records per page the engine wants (0 = connector default).
  int page_size = 0;
  // With an empty cursor: read only records modified at or after this time (a backfill's
  // --since), where the API can filter by time; 0 = everything.
  int64_t since_ms = 0;
};

struct Page {
  std::vector<NativeRecord> records;
  // Cursor to persist once `records` are durably processed; pass it to the next ReadChanges call.
  Cursor next;
  // False when this page was the last one of the change stream for this run.
  bool has_more = false;
  // The connector's estimate of the records this read will return in all, -1 when unknown.
  int64_t total = -1;
};

// A reference written to a record: the referenced record, as the target system knows it.
struct NativeRef {
  std::string object;  // its native object ("accounts", "companies")
  std::string id;      // its native id; empty clears the reference
  // The id the record referred to before, when crmbridge knows it ("" if none or unknown): a
  // system with many-valued references (HubSpot associations) removes it, so the record ends up
  // referring to `id` alone.
  std::string previous_id;
  // Dynamics 365: the single-valued navigation property to bind through, when it differs from
  // the field (polymorphic lookups: parentcustomerid -> parentcustomerid_account).
  std::string bind;
};

struct WriteOp {
  // kMerge: merge record `native_id` into record `merge_into` (both this system's ids), as a user
  // merging two duplicates would: `native_id` is absorbed, `merge_into` survives.
  enum class Kind { kUpsert, kUpdate, kDelete, kMerge };
  Kind kind = Kind::kUpsert;
  // kUpsert: the idempotency key (crmbridge's canonical id), written to the object's external-id
  // property or alternate key so that a retried create finds the record instead of duplicating it.
  std::string key;
  // kUpdate / kDelete: the system's own id. For kUpsert, set when already known (helps connectors
  // that can update by id more cheaply than by key).
  std::string native_id;
  nlohmann::json fields = nlohmann::json::object();
  // Reference fields (ObjectRef::ref_fields) to write, by native field; never also in `fields`.
  std::map<std::string, NativeRef> refs;
  std::string merge_into;  // kMerge only: the surviving record's native id
  // Earlier attempts of this write (0 on the first). A connector whose creates are not
  // idempotent by key reconciles before retrying one whose outcome is unknown.
  int attempt = 0;
};

struct WriteOutcome {
  Status status;          // per-op result; record-level codes dead-letter only this op
  std::string native_id;  // id of the written record when status is OK
  bool created = false;   // true when the write created the record
  // The system acknowledged the write without confirming it was applied (Totango's SDR gateway
  // answers 200 to anything): the engine verifies it by reading the record back later. Only a
  // kind that declares Capabilities::acknowledges_unapplied_writes reports it.
  bool unverified = false;
};

// What a connector kind can do. Each connector class declares its kind's Capabilities statically
// (no configuration, no I/O) and the registry lists them (CapabilitiesOfKind), so the layers above
// ask what a system can do instead of naming its kind. An instance's capabilities() are its kind's,
// with max_batch possibly lowered by its configuration.
// A parameter a mapping may give under a system's `params`, as its connector reads it.
struct ParamSpec {
  ParamSpec() = default;
  // Written as {name, type, default, objects, doc} or with the values it takes last.
  ParamSpec(std::string name, std::string type, std::string default_value,
            std::vector<std::string> objects, std::string doc, std::vector<std::string> values = {})
      : name(std::move(name)), type(std::move(type)), default_value(std::move(default_value)),
        objects(std::move(objects)), doc(std::move(doc)), values(std::move(values)) {}

  std::string name;
  // "string", "boolean" ("true"/"false"), "number", or "name": a column or property name, which
  // the connector puts into URLs as it is (IsPlainName, src/core/url.h).
  std::string type;
  std::string default_value;         // "" when there is none
  std::vector<std::string> objects;  // the objects it applies to; empty: every object
  std::string doc;                   // one line
  std::vector<std::string> values;   // the values it takes, when only some of its type are
  // Native fields the connector writes itself where the param applies, which a mapping may
  // therefore not write: with `value_is_own_field`, the field its value (else its default)
  // names, as the key crmbridge upserts by; `own_field_when_given`, a field written whenever the
  // param is given (a pipeline the records are filed into).
  bool value_is_own_field = false;
  std::string own_field_when_given;
  // A name ending in ".*" whose rest is a native field a mapping writes to the system (Totango's
  // allowed.<attribute>): one naming no such field is refused, since it would guard nothing.
  bool suffix_is_written_field = false;
};

// `spec` with the native field the connector writes itself (ParamSpec::value_is_own_field,
// own_field_when_given; "" for the field its value names).
inline ParamSpec OwnField(ParamSpec spec, std::string when_given = "") {
  if (when_given.empty()) spec.value_is_own_field = true;
  spec.own_field_when_given = std::move(when_given);
  return spec;
}

struct Capabilities {
  int max_batch = 1;            // largest number of WriteOps one API call takes
  int max_page = 100;           // largest page ReadChanges can return
  bool idempotent_upsert = true;  // upsert by key is safe to retry after an unknown outcome
  // Objects whose creates are not keyed (each POST makes a new record): the engine records such a
  // create as sent before it goes out, so that after a run that died before its answer was
  // stored, the next attempt is told (WriteOp::attempt > 0) and looks for what the first made.
  std::vector<std::string> unkeyed_creates;
  // How precisely NativeRecord::modified_ms is reported: 1000 when the system dates
  // modifications to the second (the merge then dates a change by the end of that second).
  int64_t modified_precision_ms = 1;
  // Reads and writes references (ObjectRef::ref_fields, WriteOp::refs): a mapping may map `ref`
  // fields to this system.
  bool carries_references = false;
  // A reference written adds to those the record holds (HubSpot's associations are many-valued):
  // each write names the one it replaces (NativeRef::previous_id), which the flush looks up in
  // the record's state. Without it a reference written replaces the one held (a lookup column).
  bool adds_references = false;
  // A reference's native field names the object of the record it refers to (HubSpot's
  // association types): a mapping's `native` for a reference must be the object the referenced
  // entity is mapped to in the same system, or the reference would name records of another.
  bool references_name_objects = false;
  // Where a reference may go, when only some native fields are references: per object, those
  // fields (an object not listed takes none). Empty: any field of any object.
  std::map<std::string, std::vector<std::string>> reference_fields;
  // Per object, the params (of `params`) a mapping that writes it must give, unless one of its
  // fields writes the native field of the same name: `mappings validate` then says so at the
  // mapping, not a dead letter at the first write.
  std::map<std::string, std::vector<std::string>> required_params;
  // Binds a polymorphic lookup through the navigation property named by NativeRef::bind: a
  // mapping may give `bind:` on this system's references.
  bool binds_lookups = false;
  // Keeps portal users and their access to properties: the system a mapping's portal_access flow
  // provisions.
  bool provisions_portal_access = false;
  // May acknowledge a write without applying it: such writes come back WriteOutcome::unverified,
  // and the engine verifies them on a later read.
  bool acknowledges_unapplied_writes = false;
  // Reads given records by id (Connector::ReadByIds), so a change a webhook announces is read
  // alone instead of in the next incremental read.
  bool reads_by_id = false;
  // The webhook event kinds (AnnouncedChange::kind) that announce a record gone: one ReadByIds no
  // longer finds is then read as deleted at once, not at the next incremental read.
  std::vector<std::string> delete_events;
  // The objects whose records it merges (WriteOp::Kind::kMerge), so that a merge made in another
  // system is carried here instead of leaving a duplicate.
  std::vector<std::string> merges;
  // Reads the past values of a field (Connector::ReadFieldHistory), so the stage history of a
  // record first seen starts where the system's own does, not on the day crmbridge was connected.
  bool reads_field_history = false;
  // Request paths (matched anywhere in the URL) that the system does not count against its REST
  // rate limit: the transport stack gives them no token bucket.
  std::vector<std::string> rate_limit_exempt_paths;
  // Request paths (matched anywhere in the URL) that spend a budget of their own, a system's
  // `search_rate_limit` in crmbridge.yaml. Empty: the kind has no such budget, and a system of it
  // giving search_rate_limit is refused (it would have no effect).
  std::vector<std::string> search_paths;
  // What a mapping may name under a system of this kind (`crmbridge connectors describe`): the
  // objects the connector reads and writes, a pattern (ECMAScript) any other object name must
  // match ("": none may), and every parameter. A mapping naming anything else is refused.
  std::vector<std::string> objects;
  std::string other_objects;
  std::string other_objects_doc;  // what other_objects stands for
  // Objects of `objects` it writes and never reads: a mapping reading a field of one is refused.
  std::vector<std::string> written_only;
  // Its native field names are column or property names (IsPlainName, src/core/url.h), which
  // the connector puts into URLs and query lists: a mapping naming another field is refused.
  bool plain_field_names = false;
  std::vector<ParamSpec> params;
  // What a system of this kind takes in crmbridge.yaml besides base_url: its `auth` keys and
  // its `options` (a name ending in ".*" stands for every name with that prefix). A system
  // giving any other is refused when its connector is built.
  std::vector<std::string> auth_keys;
  std::vector<ParamSpec> options;
  // The `auth` keys that, with the base URL, name whose rate limits a request spends (HubSpot: the
  // app's token; Dynamics 365: the application user): two tenants whose systems agree on them
  // share one budget (AccountOf).
  std::vector<std::string> account_keys;
};

class Connector {
 public:
  virtual ~Connector() = default;

  // Stable system name, persisted in links: never rename ("hubspot", "dynamics365").
  virtual std::string_view Name() const = 0;
  virtual const Capabilities& capabilities() const = 0;

  // Reads one page of records changed after `cursor`. Memory is bounded by one page. Records may
  // repeat across pages and runs (overlap windows); the engine de-duplicates. Errors: transient
  // codes (retry later, the cursor is unchanged), system-fatal codes (stop this system).
  virtual Result<Page> ReadChanges(const ObjectRef& object, const Cursor& cursor,
                                   const ReadContext& context) = 0;

  // Reads the records of `ids` as ReadChanges would return them (fields, modification time,
  // references), in as few calls as the API allows; an id the system no longer shows, or one
  // outside the object's scope (another pipeline), is left out: the incremental reads settle
  // those. Only kinds with Capabilities::reads_by_id implement it; the others answer
  // kFailedPrecondition.
  virtual Result<std::vector<NativeRecord>> ReadByIds(const ObjectRef& object,
                                                      const std::vector<std::string>& ids) {
    (void)object;
    (void)ids;
    return Status(StatusCode::kFailedPrecondition,
                  std::string(Name()) + " does not read records by id");
  }

  // The values `field` of each record of `ids` has held, oldest first, as ReadChanges would give
  // them (a HubSpot stage by its label), in as few calls as the API allows; a record the system
  // keeps no history of, or no longer shows, is left out. Only kinds with
  // Capabilities::reads_field_history implement it; the others answer kFailedPrecondition.
  virtual Result<std::map<std::string, std::vector<FieldChange>>> ReadFieldHistory(
      const ObjectRef& object, const std::string& field, const std::vector<std::string>& ids) {
    (void)object;
    (void)field;
    (void)ids;
    return Status(StatusCode::kFailedPrecondition,
                  std::string(Name()) + " does not read the history of fields");
  }

  // Writes `ops` in as few API calls as the system allows. Returns one WriteOutcome per op, in
  // order. A non-OK Result means no op could be judged (e.g. authentication failed); the engine
  // then treats every op by that Status.
  virtual Result<std::vector<WriteOutcome>> Write(const ObjectRef& object,
                                                  const std::vector<WriteOp>& ops) = 0;
};

// The params of `object` that `can` declares of type "name", checked before they go into a URL:
// one given that is not a plain name (the mapping loader refuses it first) fails the call, named
// as `system`'s `noun` ("column name"), so nothing is sent. An empty param is one not given.
inline Status CheckNameParams(const Capabilities& can, const ObjectRef& object,
                              const std::string& system, const std::string& noun) {
  for (const ParamSpec& spec : can.params) {
    if (spec.type != "name") continue;
    const auto given = object.params.find(spec.name);
    if (given == object.params.end() || given->second.empty() || IsPlainName(given->second))
      continue;
    return Status(StatusCode::kInvalidArgument,
                  system + ": " + object.object + " params." + spec.name + " '" +
                      PrintableText(given->second) + "' is not a " + noun + "; nothing is sent")
        .set_system(system);
  }
  return Status::Ok();
}

}  // namespace crmbridge
