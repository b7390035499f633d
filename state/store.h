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
//   lease         so two runs never overlap
//
// Mutations that must be atomic are collected in a StateBatch and applied with Apply() in one
// transaction (a cursor is only ever advanced together with the outbox rows and snapshots its page
// produced). Only state/sqlite_store.cc contains SQL, so a PostgreSQL backend can implement the same
// interface.
//
// Thread-safety: a Store may be used from several threads; each call is atomic.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
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

struct OutboxItem {
  int64_t id = 0;            // assigned by the store
  std::string system;        // target system
  std::string object;        // native object ("opportunities")
  std::string entity;
  std::string canonical_id;
  std::string op;            // "upsert", "update", "delete"
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
};

// One entry of the audit trail: a portal access granted, changed or revoked, a reset sent.
struct AuditEntry {
  int64_t id = 0;
  int64_t at_ms = 0;
  std::string action;   // "grant", "change", "revoke", "reset"
  std::string system;   // the portal system's name
  std::string subject;  // the canonical record it concerns (the contact)
  nlohmann::json detail = nlohmann::json::object();  // user, property, email, reason
};

struct RunRecord {
  int64_t id = 0;
  std::string mode;          // "sync", "backfill", "dry-run"
  int64_t started_ms = 0;
  int64_t finished_ms = 0;   // 0 while running
  std::string outcome;       // "ok", "dead-lettered", "failed", "running"
  nlohmann::json counts = nlohmann::json::object();  // {"read":..,"written":..,...}
  std::string error;
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

// A set of mutations applied atomically by Store::Apply().
class StateBatch {
 public:
  struct Op {
    enum class Kind {
      kPutLink, kPutSnapshot, kSetCursor, kEnqueue, kCompleteOutbox, kRetryOutbox,
      kDeadLetterOutbox, kAddStageTransition, kDeleteDeadLetter, kAddDeadLetter, kPutMatchKey,
      kAddAudit
    };
    Kind kind;
    Link link;
    Snapshot snapshot;
    CursorRow cursor;
    OutboxItem outbox;
    DeadLetter dead_letter;
    StageTransition stage;
    AuditEntry audit;
    int64_t id = 0;
  };

  // Inserts or replaces the link for (entity, canonical_id, system).
  void PutLink(const Link& link);
  void PutSnapshot(const Snapshot& snapshot);
  void SetCursor(const std::string& system, const std::string& object, const std::string& cursor);
  // Queues a write. A pending item for the same (system, entity, canonical_id) is replaced
  // (coalesced: the newest payload wins; attempts reset), so a target never gets stale writes.
  void Enqueue(const OutboxItem& item);
  // Removes a delivered outbox item. With `delivered_hash`, only if the item still holds that
  // payload: a newer payload queued for the same record while this one was in flight stays queued.
  void CompleteOutbox(int64_t outbox_id, const std::string& delivered_hash = "");
  // Records a failed attempt: attempts + 1, the error, and when to try next. Without
  // `count_attempt` the item only waits (for a record it refers to, still on its way).
  // With `attempted_hash`, only if the item still holds that payload, as for CompleteOutbox: a
  // newer payload queued while the failed one was in flight keeps its fresh retry budget.
  void RetryOutbox(int64_t outbox_id, const std::string& error, int64_t next_attempt_ms,
                   bool count_attempt = true, const std::string& attempted_hash = "");
  // Moves an outbox item to the dead letters; with `attempted_hash`, only if the item still
  // holds that payload (a newer one stays queued and is tried on its own).
  void DeadLetterOutbox(int64_t outbox_id, const std::string& reason, int http_status,
                        const std::string& attempted_hash = "");
  void AddStageTransition(const StageTransition& transition);
  void AddAudit(const AuditEntry& entry);
  void DeleteDeadLetter(int64_t dead_letter_id);
  // Dead-letters a write that never went through the outbox of this run (a write the system
  // acknowledged but kept failing to apply, found on read-back).
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

// What Store::LoadRecords found for a set of records: the state a page of reads (or a chunk of
// writes) needs, looked up in one call. A native id absent from by_native has no link; every
// canonical id looked up has an entry in `links` (empty when it has none) and one in `snapshots`
// when it has a snapshot.
struct RecordStates {
  std::unordered_map<std::string, Link> by_native;      // native id (in the asked system) -> link
  std::unordered_map<std::string, Snapshot> snapshots;  // canonical id -> snapshot
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
  bool deletes_only = false;          // only items whose op is "delete"
  int64_t now_ms = 0;
  int limit = 0;                      // at most this many; 0 (or less): all
};

class Store {
 public:
  virtual ~Store() = default;

  // Applies every op of `batch` in one transaction: all or nothing.
  virtual Status Apply(const StateBatch& batch) = 0;

  // --- links and snapshots ---
  virtual Result<std::optional<Link>> FindLinkByNative(const std::string& system,
                                                       const std::string& entity,
                                                       const std::string& native_id) = 0;
  virtual Result<std::optional<Link>> FindLink(const std::string& entity,
                                               const std::string& canonical_id,
                                               const std::string& system) = 0;
  virtual Result<std::optional<Snapshot>> GetSnapshot(const std::string& entity,
                                                      const std::string& canonical_id) = 0;
  // Many lookups in one call, read in one transaction (one consistent view, the file lock taken
  // once): the links of `native_ids` in `system` (by_native); then, for every canonical id so
  // found and every one of `canonical_ids`, its snapshot and its links in every system.
  virtual Result<RecordStates> LoadRecords(const std::string& entity, const std::string& system,
                                           const std::vector<std::string>& native_ids,
                                           const std::vector<std::string>& canonical_ids) = 0;

  // --- cursors ---
  virtual Result<std::optional<std::string>> GetCursor(const std::string& system,
                                                       const std::string& object) = 0;
  virtual Result<std::vector<CursorRow>> ListCursors() = 0;

  // --- outbox ---
  // The due items `filter` selects, oldest first (in the order their records were queued; a
  // coalesced item keeps its place), at most filter.limit.
  virtual Result<std::vector<OutboxItem>> DueOutbox(const OutboxFilter& filter) = 0;
  // The canonical record holding match key `key`, if any.
  virtual Result<std::optional<std::string>> FindByMatchKey(const std::string& entity,
                                                            const std::string& key) = 0;
  // The write queued for one record in one system, if any (due or not).
  virtual Result<std::optional<OutboxItem>> PendingOutbox(const std::string& system,
                                                          const std::string& entity,
                                                          const std::string& canonical_id) = 0;
  // The audit trail from `since_ms` on, oldest first, at most `limit` (0 = all).
  virtual Result<std::vector<AuditEntry>> ListAudit(int64_t since_ms, int limit) = 0;
  // Number of pending outbox items per system ({"hubspot": 3}).
  virtual Result<nlohmann::json> OutboxCounts() = 0;

  // --- dead letters ---
  virtual Result<std::vector<DeadLetter>> ListDeadLetters(int limit) = 0;
  // Snapshots of `entity` holding unverified writes to `system` (Snapshot::unverified).
  virtual Result<std::vector<Snapshot>> ListUnverified(const std::string& system,
                                                       const std::string& entity) = 0;
  // Moves a dead letter back to the outbox (attempts reset, due now). kNotFound if absent.
  virtual Status ReplayDeadLetter(int64_t dead_letter_id, int64_t now_ms) = 0;

  // --- stage history ---
  virtual Result<std::vector<StageTransition>> StageHistory(const std::string& entity,
                                                            const std::string& canonical_id) = 0;
  // Every stage transition of every record of `entity`, in one query: ordered by canonical id,
  // then time (then the order they were recorded in), for reports over all onboardings.
  virtual Result<std::vector<StageTransition>> AllStageHistory(const std::string& entity) = 0;
  // Every snapshot of `entity` (deleted ones included: see Snapshot::deleted_ms), ordered by
  // canonical id.
  virtual Result<std::vector<Snapshot>> ListSnapshots(const std::string& entity) = 0;
  // The same a page at a time: those whose canonical id sorts after `after`, at most `limit`
  // (0 = all), so a pass over every record holds one page in memory.
  virtual Result<std::vector<Snapshot>> ListSnapshotsAfter(const std::string& entity,
                                                           const std::string& after, int limit) = 0;

  // --- runs ---
  virtual Result<int64_t> BeginRun(const std::string& mode, int64_t now_ms) = 0;
  virtual Status FinishRun(const RunRecord& run) = 0;  // by run.id
  virtual Result<std::vector<RunRecord>> RecentRuns(int limit) = 0;

  // --- lease ---
  // Takes the lease for `holder` until now_ms + ttl_ms if it is free, expired, or already held by
  // `holder` (renewal). Returns false, without error, when another live holder has it.
  virtual Result<bool> AcquireLease(const std::string& holder, int64_t now_ms, int64_t ttl_ms) = 0;
  virtual Status ReleaseLease(const std::string& holder) = 0;
  virtual Result<std::optional<LeaseInfo>> GetLease() = 0;

  // Schema version in force (the number of the last migration applied).
  virtual Result<int> SchemaVersion() = 0;
};

// Opens (creating if needed) a SQLite store at `path`: WAL mode, file mode 0600, migrations applied
// in order. ":memory:" gives a private in-memory store for tests. Errors: kFailedPrecondition when
// the file cannot be opened or was written by a newer crmbridge (unknown schema version).
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace crmbridge
