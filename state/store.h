// Store: crmbridge's sync state, behind an abstract interface like leveldb's DB.
//
// What it holds (see docs/ARCHITECTURE.md):
//   links         (entity, canonical id) <-> (system, native id), with the hashes of what was last
//                 read from and last written to that system
//   snapshots     the canonical fields of each entity as crmbridge last merged them
//   cursors       per (system, object): where the next incremental read starts
//   outbox        pending writes, one per (system, entity, canonical id), with attempts and backoff
//   dead letters  writes that failed permanently, with the reason, replayable
//   runs          run history (mode, counts, duration, outcome)
//   stage history when each onboarding entered and left each stage, per system
//   match keys    per entity, normalized match-field values -> the record that first held them
//   audit         the portal access flow's users written, grants, revokes and password resets
//                 sent; records a system merged
//   webhook events changes systems announced by webhook: the records to read again
//   lease         so two runs never overlap
//
// Mutations that must be atomic are collected in a StateBatch and applied with Apply() in one
// transaction (a cursor is only ever advanced together with the outbox rows and snapshots its page
// produced). Only the backends contain the store's SQL (state/sqlite_store.cc,
// state/postgres_store.cc), each implementing this interface; every backend must pass the
// conformance suite (tests/state/store_conformance.h).
//
// Thread-safety: a Store may be used from several threads; each call is atomic.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/core/status.h"

namespace crmbridge {

struct Link {
  std::string entity;        // "onboarding", "company", ...
  std::string canonical_id;  // minted by crmbridge: a UUID string (NewTimeOrderedUuid)
  std::string system;        // "hubspot"
  std::string native_id;     // the system's id
  std::string last_read_hash;     // hash of the canonical fields last read from this system
  std::string last_written_hash;  // hash of the native payload crmbridge last wrote there
  int64_t updated_ms = 0;
};

struct Snapshot {
  std::string entity;
  std::string canonical_id;
  nlohmann::json fields = nlohmann::json::object();  // canonical field -> value
  // Per system, the canonical values that system was last known to hold (read from it, or written
  // to it by crmbridge): {"hubspot": {"stage": "new"}}. A value read back equal to this is not a
  // change made in that system, even when the snapshot has moved on since (a stale copy, or
  // crmbridge's own write coming back).
  nlohmann::json seen = nlohmann::json::object();
  // Per system, writes the system acknowledged without confirming them (Totango's SDR answers 200
  // whatever it keeps), awaiting a read-back: {"totango": {"stage": {"sent": "live", "before":
  // "kickoff", "attempts": 1}}}. A read-back still showing `before` means the write was lost.
  nlohmann::json unverified = nlohmann::json::object();
  // Per system and field, the values crmbridge sent there whose outcome it does not know (a
  // timeout, a 5xx after the request left, a crash before the answer was committed), each with
  // when it was sent: {"dynamics365": {"name": [{"value": "A1", "sent_ms": 1700000000000}]}}.
  // Recorded before the request leaves. One of them read back is crmbridge's own echo, whatever
  // the outbox has queued since; a read that began after a value was sent, or a delivered write
  // of the field, settles it (engine/merge.h).
  nlohmann::json in_doubt = nlohmann::json::object();
  // Per canonical field, when its current value was changed in the system it came from (that
  // record's modification time, ms): the "most recent change wins" conflict policy compares it.
  nlohmann::json changed_ms = nlohmann::json::object();
  // When a delete was carried out for this record (on_delete: propagate), else 0: tombstones of
  // its copies coming back are then recognised as done.
  int64_t deleted_ms = 0;
  int64_t updated_ms = 0;
};

// What an outbox item does to its record in the target system; stored and shown by its name
// ("upsert", "update", "delete", "merge"). A merge's payload is {"into": <the surviving record's
// native id>}; its native_id is the record absorbed.
enum class OutboxOp { kUpsert, kUpdate, kDelete, kMerge };
const char* OutboxOpName(OutboxOp op);
// nullopt for a name that is none of the four.
std::optional<OutboxOp> ParseOutboxOp(const std::string& name);

struct OutboxItem {
  int64_t id = 0;            // assigned by the store
  std::string system;        // target system
  std::string object;        // native object ("opportunities")
  std::string entity;
  std::string canonical_id;
  OutboxOp op = OutboxOp::kUpsert;
  std::string native_id;     // when known
  std::string idempotency_key;
  nlohmann::json payload = nlohmann::json::object();  // native fields to write
  std::string payload_hash;  // becomes Link::last_written_hash on success
  int attempts = 0;
  int64_t next_attempt_ms = 0;
  std::string last_error;
  int64_t created_ms = 0;
};

struct DeadLetter {
  int64_t id = 0;
  OutboxItem item;           // the write that failed, as it was last attempted
  std::string reason;        // the API's reason (Status::ToString())
  int http_status = 0;
  int64_t failed_ms = 0;
};

struct StageTransition {
  std::string entity;
  std::string canonical_id;
  std::string system;        // the system that moved it
  std::string from_stage;    // empty when the onboarding first appears
  std::string to_stage;
  int64_t at_ms = 0;
  // Taken from the system's own history of the field when crmbridge first saw the record (the
  // moves before it was connected), not seen by crmbridge as it happened.
  bool imported = false;
};

// One entry of the audit trail: a portal access granted, changed or revoked, a reset sent.
struct AuditEntry {
  int64_t id = 0;
  int64_t at_ms = 0;
  std::string action;   // "user", "grant", "revoke", "reset"; "merge" (a system merged records)
  std::string system;   // the system it happened in: the portal's, or the one that merged
  std::string subject;  // the canonical record it concerns (the contact; a merge's survivor)
  nlohmann::json detail = nlohmann::json::object();  // user, property, email, reason
};

struct RunRecord {
  int64_t id = 0;
  std::string mode;          // "sync", "backfill", "dry-run", "webhook", "writes"
  int64_t started_ms = 0;
  int64_t finished_ms = 0;   // 0 while running
  std::string outcome;       // "ok", "dead-lettered", "unreachable", "failed", "lease lost",
                             // "running"
  nlohmann::json counts = nlohmann::json::object();  // {"read":..,"written":..,...}
  std::string error;
};

// A change a system announced by webhook: which record to read again. Stored before the webhook
// is answered, so an announced change outlives a crash; deduplicated by (system, dedupe_key), as
// vendors deliver the same event more than once.
struct WebhookEvent {
  int64_t id = 0;            // given by the store, growing
  std::string system;        // the system that announced it, by name
  std::string object;        // its native object (tickets, accounts)
  std::string record_id;     // its native id
  std::string kind;          // the vendor's event type (propertyChange, Update, ...)
  std::string dedupe_key;    // the same for two deliveries of one event
  int64_t occurred_ms = 0;   // when the change happened, by the system's clock
  int64_t received_ms = 0;
  int64_t processed_ms = 0;  // 0 while pending
};

struct LeaseInfo {
  std::string holder;
  int64_t acquired_ms = 0;
  int64_t expires_ms = 0;
};

struct CursorRow {
  std::string system;
  std::string object;
  std::string cursor;
  int64_t updated_ms = 0;
};

// A set of mutations applied atomically by Store::Apply(), in the order they were added. The
// errors below are Apply's, and fail the whole batch.
class StateBatch {
 public:
  struct Op {
    enum class Kind {
      kPutLink, kPutSnapshot, kSetCursor, kEnqueue, kCompleteOutbox, kRetryOutbox,
      kDeadLetterOutbox, kAddStageTransition, kDeleteDeadLetter, kAddDeadLetter, kPutMatchKey,
      kAddAudit
    };
    // What an attempt of outbox item `id` came to (kCompleteOutbox, kRetryOutbox,
    // kDeadLetterOutbox).
    struct Outcome {
      std::string payload_hash;  // only if the item still holds this payload ("": whichever)
      std::string error;         // the last error, or the dead letter's reason
      int64_t next_attempt_ms = 0;
      int attempts_increment = 0;
      int http_status = 0;
    };
    struct MatchKey {
      std::string entity, key, canonical_id;
    };

    Kind kind;
    int64_t id = 0;  // the outbox item or dead letter an op concerns
    // The one thing the op carries, by kind: an op costs what it holds, not every kind's fields.
    std::variant<std::monostate, Link, Snapshot, CursorRow, OutboxItem, DeadLetter, StageTransition,
                 AuditEntry, Outcome, MatchKey>
        data;

    const Link& link() const { return std::get<Link>(data); }
    const Snapshot& snapshot() const { return std::get<Snapshot>(data); }
    const CursorRow& cursor() const { return std::get<CursorRow>(data); }
    const OutboxItem& outbox() const { return std::get<OutboxItem>(data); }
    const DeadLetter& dead_letter() const { return std::get<DeadLetter>(data); }
    const StageTransition& stage() const { return std::get<StageTransition>(data); }
    const AuditEntry& audit() const { return std::get<AuditEntry>(data); }
    const Outcome& outcome() const { return std::get<Outcome>(data); }
    const MatchKey& match_key() const { return std::get<MatchKey>(data); }
  };

  // Inserts or replaces the link for (entity, canonical_id, system); a link replaced keeps its
  // settled digest, a new one knows none until the record's snapshot is next stored. An empty
  // native id means none yet and never clashes. kInvalidArgument without an entity, canonical id
  // or system; kAlreadyExists when the native id is linked to another record of the entity in
  // that system (that link is kept).
  void PutLink(Link link);
  // Inserts or replaces the whole snapshot of (entity, canonical_id), and gives each link the
  // record has at that point its system's settled digest (SettledDigests).
  void PutSnapshot(Snapshot snapshot);
  // Inserts or replaces the cursor of (system, object), stamped with the store's clock.
  // kInvalidArgument without a system or an object.
  void SetCursor(const std::string& system, const std::string& object, const std::string& cursor);
  // Queues a write, due from item.next_attempt_ms (0: at once); the store assigns its id. A
  // pending item for the same (system, entity, canonical_id) is replaced (coalesced: it keeps its
  // id and created_ms, its place in the queue, and takes everything else from the newer write,
  // attempts and error reset), so a target never gets stale writes. kInvalidArgument without a
  // system, object, entity, canonical id or op, or with a payload that cannot be stored (a string
  // that is not UTF-8).
  void Enqueue(OutboxItem item);
  // Removes a delivered outbox item. With `delivered_hash`, only if the item still holds that
  // payload: a newer payload queued for the same record while this one was in flight stays queued.
  // kNotFound if there is no item `outbox_id`.
  void CompleteOutbox(int64_t outbox_id, const std::string& delivered_hash = "");
  // Records a failed attempt: attempts + 1, the error, and when to try next. Without
  // `count_attempt` the item only waits (for a record it refers to, still on its way).
  // With `attempted_hash`, only if the item still holds that payload, as for CompleteOutbox: a
  // newer payload queued while the failed one was in flight keeps its fresh retry budget.
  // kNotFound if there is no item `outbox_id`.
  void RetryOutbox(int64_t outbox_id, const std::string& error, int64_t next_attempt_ms,
                   bool count_attempt = true, const std::string& attempted_hash = "");
  // Moves an outbox item to the dead letters, as it was last attempted (this failure counted in
  // its attempts, `reason` as its last error), stamped with the store's clock; with
  // `attempted_hash`, only if the item still holds that payload (a newer one stays queued and is
  // tried on its own). kNotFound if there is no item `outbox_id`.
  void DeadLetterOutbox(int64_t outbox_id, const std::string& reason, int http_status,
                        const std::string& attempted_hash = "");
  // Appends to the stage history.
  void AddStageTransition(const StageTransition& transition);
  // Appends to the audit trail; the store assigns the entry's id.
  void AddAudit(const AuditEntry& entry);
  // kNotFound if there is no dead letter `dead_letter_id`.
  void DeleteDeadLetter(int64_t dead_letter_id);
  // Dead-letters a write that never went through the outbox of this run (a write the system
  // acknowledged but kept failing to apply, found on read-back): `reason` as its last error, no
  // HTTP status, stamped with the store's clock. Replayable like any other.
  void AddDeadLetter(const OutboxItem& item, const std::string& reason);
  // Records that canonical record `canonical_id` of `entity` holds match key `key` (normalized
  // values of the match fields). The first record to hold a key keeps it.
  void PutMatchKey(const std::string& entity, const std::string& key, const std::string& canonical_id);

  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  void Clear() { ops_.clear(); }

 private:
  std::vector<Op> ops_;
};

// What a snapshot says, in short, of the systems settled on the values it holds for them: per
// system with values in Snapshot::seen, none of them sent there in doubt, no unverified write
// there, the record not deleted, the ShortHash of HashJson(seen[system]). Storing a snapshot
// gives each of the record's links its system's digest (DigestsOf), so a page of reads can tell
// an unchanged record (its read hashes to the digest on its link) without reading the snapshot.
struct SettledDigests {
  // False when the link was stored after its snapshot was last stored (or before the store kept
  // digests): nothing can be told without the snapshot.
  bool known = false;
  std::vector<std::pair<std::string, std::string>> by_system;  // (system, digest)

  // The digest of `system`, or nullptr when that system is not settled (or not known).
  const std::string* Of(const std::string& system) const {
    for (const auto& [name, digest] : by_system)
      if (name == system) return &digest;
    return nullptr;
  }
};
SettledDigests DigestsOf(const Snapshot& snapshot);

// What Store::LoadRecords found for a set of records: the state a page of reads (or a chunk of
// writes) needs, looked up in one call. A native id absent from by_native has no link. A
// canonical id found by native id has an entry in `digests` holding at most the digest of the
// asked system, as its link there carries it (its snapshot and its links in other systems are
// read with GetSnapshot and FindLink when needed: an unchanged record never needs them). A
// canonical id asked for by id has an entry in `links` (empty when it has none) and its snapshot
// in `snapshots` when it has one.
struct RecordStates {
  std::unordered_map<std::string, Link> by_native;      // native id (in the asked system) -> link
  std::unordered_map<std::string, Snapshot> snapshots;  // canonical id -> snapshot
  std::unordered_map<std::string, SettledDigests> digests;   // canonical id -> its digests
  std::unordered_map<std::string, std::vector<Link>> links;  // canonical id -> its links, any system
};

// Which outbox items Store::DueOutbox returns: those queued for `system` and due at `now_ms`
// (next_attempt_ms <= now_ms), of one entity or of all, every op or deletes only, at most `limit`
// (0: all).
struct OutboxFilter {
  OutboxFilter(std::string system, int64_t now_ms, int limit)
      : system(std::move(system)), now_ms(now_ms), limit(limit) {}

  // The same, for one entity's items only (flushes go entity by entity, referenced ones first).
  OutboxFilter ForEntity(std::string entity_name) const {
    OutboxFilter f = *this;
    f.entity = std::move(entity_name);
    return f;
  }
  // The same, for deletes only: they are flushed before anything else (a revoked portal access is
  // never held behind a backlog of grants).
  OutboxFilter DeletesOnly() const {
    OutboxFilter f = *this;
    f.deletes_only = true;
    return f;
  }

  std::string system;
  std::optional<std::string> entity;  // unset: every entity
  bool deletes_only = false;          // only items whose op is OutboxOp::kDelete
  int64_t now_ms = 0;
  int limit = 0;                      // at most this many; 0 (or less): all
};

// The sync state. Every method is one atomic step: one statement or one transaction, never a
// partial write, whether other threads or other connections to the same store run beside it.
// Reads see only committed state. Errors common to every method: kUnavailable when another
// connection held the store past the backend's wait (retry later), kFailedPrecondition when the
// store cannot be read or written at all (disk, permissions), kInternal when stored data does not
// parse (the message names the record). Methods with a `limit` return at most that many; 0 (or
// less) means all. Orders said to be by canonical id compare the ids' bytes.
//
// Every backend passes the conformance suite, tests/state/store_conformance_test.cc.
class Store {
 public:
  virtual ~Store() = default;

  // --- writes ---

  // Applies the ops of `batch` in their order, in one transaction: all or nothing, and a later op
  // sees what an earlier one did. An empty batch is a no-op. On failure nothing is applied and the
  // error is the failing op's (see StateBatch: kInvalidArgument, kNotFound, kAlreadyExists),
  // its message naming the op ("op 3 of 5 (CompleteOutbox)") and the id or record at fault.
  virtual Status Apply(const StateBatch& batch) = 0;

  // --- links ---

  // The link of `native_id` in `system` for `entity`, if any. "" is never found (a link still
  // waiting for its create has no native id yet).
  virtual Result<std::optional<Link>> FindLinkByNative(const std::string& system,
                                                       const std::string& entity,
                                                       const std::string& native_id) = 0;
  // The link of (entity, canonical_id) in `system`, if any.
  virtual Result<std::optional<Link>> FindLink(const std::string& entity,
                                               const std::string& canonical_id,
                                               const std::string& system) = 0;

  // --- snapshots ---

  // The snapshot of (entity, canonical_id), whole (every field of Snapshot), if any.
  virtual Result<std::optional<Snapshot>> GetSnapshot(const std::string& entity,
                                                      const std::string& canonical_id) = 0;
  // Many lookups in one call, read in one transaction (one consistent view, the file lock taken
  // once): the links of `native_ids` in `system` (by_native) and, for every canonical id so
  // found, the settled digest its link in `system` carries; for every one of `canonical_ids`, its
  // snapshot and its links in every system. Ids may repeat; nothing asked reads nothing. See RecordStates for what an
  // absent record looks like.
  virtual Result<RecordStates> LoadRecords(const std::string& entity, const std::string& system,
                                           const std::vector<std::string>& native_ids,
                                           const std::vector<std::string>& canonical_ids) = 0;
  // Every snapshot of `entity` (deleted ones included: see Snapshot::deleted_ms), whole, ordered
  // by canonical id, in one statement.
  virtual Result<std::vector<Snapshot>> ListSnapshots(const std::string& entity) = 0;
  // The same a page at a time: those whose canonical id sorts after `after` ("" for the first
  // page), at most `limit`, so a pass over every record holds one page in memory.
  virtual Result<std::vector<Snapshot>> ListSnapshotsAfter(const std::string& entity,
                                                           const std::string& after, int limit) = 0;
  // The snapshots of `entity` holding unverified writes to `system` (an entry for `system` in
  // Snapshot::unverified), whole, so storing one back keeps its other fields; ordered by canonical
  // id.
  virtual Result<std::vector<Snapshot>> ListUnverified(const std::string& system,
                                                       const std::string& entity) = 0;

  // --- cursors ---

  // Where the next incremental read of (system, object) starts, if a cursor was ever set.
  virtual Result<std::optional<std::string>> GetCursor(const std::string& system,
                                                       const std::string& object) = 0;
  // Every cursor, ordered by system then object, each with when it was last set (the store's
  // clock).
  virtual Result<std::vector<CursorRow>> ListCursors() = 0;

  // --- outbox ---

  // The items `filter` selects (see OutboxFilter), due at filter.now_ms, oldest first: in the
  // order their records were first queued, which a coalescing Enqueue keeps and a retry does not
  // change (an item queued anew after completion or dead-lettering goes last). Callers' created_ms
  // plays no part: it may tie or go backwards.
  virtual Result<std::vector<OutboxItem>> DueOutbox(const OutboxFilter& filter) = 0;
  // The write queued for one record in one system, if any, due or not.
  virtual Result<std::optional<OutboxItem>> PendingOutbox(const std::string& system,
                                                          const std::string& entity,
                                                          const std::string& canonical_id) = 0;
  // The number of queued items per system, due or not ({"hubspot": 3}); a system with none is
  // absent, so an empty outbox is {}.
  virtual Result<nlohmann::json> OutboxCounts() = 0;

  // --- dead letters ---

  // The dead letters, oldest first (in the order they failed), at most `limit`.
  virtual Result<std::vector<DeadLetter>> ListDeadLetters(int limit) = 0;
  // The number of dead letters per system ({"portal": 1}); a system with none is absent.
  virtual Result<nlohmann::json> DeadLetterCounts() = 0;
  // Moves a dead letter back to the outbox, due at `now_ms` with a fresh retry budget (attempts 0,
  // no error), in one transaction. The newest payload still wins: when a write for the same record
  // was queued after this one, the dead letter's payload is dropped instead, and a newer write
  // still queued is made due at `now_ms` with a fresh budget. Either way the dead letter is gone.
  // kNotFound if there is no such dead letter.
  virtual Status ReplayDeadLetter(int64_t dead_letter_id, int64_t now_ms) = 0;

  // --- match keys ---

  // The canonical record of `entity` holding match key `key` (the first one to record it), if any.
  virtual Result<std::optional<std::string>> FindByMatchKey(const std::string& entity,
                                                            const std::string& key) = 0;

  // --- stage history ---

  // The stage transitions of one record, in time order (at_ms), ties in the order recorded.
  virtual Result<std::vector<StageTransition>> StageHistory(const std::string& entity,
                                                            const std::string& canonical_id) = 0;
  // Every stage transition of every record of `entity`, in one statement: ordered by canonical
  // id, then time (then the order they were recorded in), for reports over all onboardings.
  virtual Result<std::vector<StageTransition>> AllStageHistory(const std::string& entity) = 0;

  // --- audit ---

  // The audit trail from `since_ms` on (at_ms >= since_ms), oldest first (ties in the order
  // recorded), at most `limit`; each entry with the id the store gave it.
  virtual Result<std::vector<AuditEntry>> ListAudit(int64_t since_ms, int limit) = 0;

  // --- runs ---

  // Records the start of a run: outcome "running", finished_ms 0, no counts. Returns its id,
  // greater than every earlier run's.
  virtual Result<int64_t> BeginRun(const std::string& mode, int64_t now_ms) = 0;
  // Records the end of run `run.id`: its finished_ms, outcome, counts and error (mode and
  // started_ms stay as begun). kNotFound if there is no such run.
  virtual Status FinishRun(const RunRecord& run) = 0;
  // The runs, newest first (the last begun first), at most `limit`.
  virtual Result<std::vector<RunRecord>> RecentRuns(int limit) = 0;

  // --- webhook events ---

  // Stores the events not stored before (by system and dedupe_key) in one transaction and
  // returns how many were new. kInvalidArgument when an event lacks its system, object, record id
  // or dedupe key.
  virtual Result<int> AddWebhookEvents(const std::vector<WebhookEvent>& events) = 0;
  // The events not yet processed, oldest (lowest id) first, at most `limit`.
  virtual Result<std::vector<WebhookEvent>> PendingWebhookEvents(int limit) = 0;
  // Marks the pending events with id <= up_to_id processed at now_ms, and forgets processed events
  // older than `keep_ms` (their dedupe keys with them: a delivery older than that is stale).
  virtual Status FinishWebhookEvents(int64_t up_to_id, int64_t now_ms, int64_t keep_ms) = 0;

  // --- lease ---

  // Takes the lease for `holder` until now_ms + ttl_ms if it is free, expired (expires_ms <=
  // now_ms), or already held by `holder` (a renewal; a live one keeps acquired_ms). One atomic step
  // across threads, connections and processes: of two holders asking at once, one gets it.
  // Returns false, without error, when another live holder has it. kInvalidArgument for an empty
  // holder or a ttl_ms <= 0.
  virtual Result<bool> AcquireLease(const std::string& holder, int64_t now_ms, int64_t ttl_ms) = 0;
  // Frees the lease if `holder` holds it; otherwise (another holder, or none) changes nothing and
  // is not an error.
  virtual Status ReleaseLease(const std::string& holder) = 0;
  // The lease as last taken, until its holder releases it or another takes it over: expired or
  // not, which the caller tells by comparing expires_ms with its own now.
  virtual Result<std::optional<LeaseInfo>> GetLease() = 0;

  // --- schema ---

  // Schema version in force (the number of the last migration applied), at least 1 once the store
  // is open; the same for every connection to it.
  virtual Result<int> SchemaVersion() = 0;
};

// Opens (creating if needed) a SQLite store at `path`: WAL mode, file mode 0600, migrations applied
// in order. ":memory:" gives a private in-memory store for tests. Errors: kFailedPrecondition when
// the file cannot be opened or was written by a newer crmbridge (unknown schema version).
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

// Opens the store `location` names: a PostgreSQL database for a "postgresql://" or "postgres://"
// URL (see state/postgres_store.h: migrations applied, the password shown in no error), else a
// SQLite file at that path, as OpenSqliteStore. Its errors are those of the store it opens.
Result<std::unique_ptr<Store>> OpenStore(const std::string& location);

}  // namespace crmbridge
