// PostgresStore: the PostgreSQL backend of Store (see state/store.h and state/postgres_store.h).
//
// Every statement with values is prepared once per connection (PQprepare) and run with its values
// bound (PQexecPrepared), never spliced into SQL text. Statements without values (BEGIN, COMMIT,
// the migrations, `SET lock_timeout = N` with N an int option) run as they are.
#include "state/postgres_store.h"

#include <libpq-fe.h>

#include <charconv>
#include <cstring>
#include <functional>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "src/core/logging.h"
#include "src/core/redaction.h"
#include "state/backend_common.h"
#include "state/pg_session.h"
#include "state/tenant_registry.h"

namespace crmbridge {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Schema migrations, as for SQLite: append only, migration i (1-based) has version i, each runs
// in its own transaction and is recorded in schema_version. Version 1 is the schema SQLite
// reached in twelve steps; PostgreSQL stores never had the earlier ones.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

const Migration kMigrations[] = {
    {1, "initial schema", R"sql(
-- (entity, canonical id) <-> (system, native id). native_id is NULL (read back as "") until the
-- system has assigned one, so links still waiting for their create do not collide on the UNIQUE
-- key. settled: the digest of the values the system is settled on (SettledDigests), '' when it is
-- not settled, NULL when not known (the link was stored after its snapshot).
CREATE TABLE links (
  entity            text COLLATE "C" NOT NULL,
  canonical_id      text COLLATE "C" NOT NULL,
  system            text COLLATE "C" NOT NULL,
  native_id         text COLLATE "C",
  last_read_hash    text NOT NULL DEFAULT '',
  last_written_hash text NOT NULL DEFAULT '',
  updated_ms        bigint NOT NULL DEFAULT 0,
  settled           text,
  PRIMARY KEY (entity, canonical_id, system),
  UNIQUE (system, entity, native_id)
);

CREATE TABLE snapshots (
  entity       text COLLATE "C" NOT NULL,
  canonical_id text COLLATE "C" NOT NULL,
  fields       json NOT NULL,                -- canonical field -> value
  seen         json NOT NULL DEFAULT '{}',   -- system -> canonical field -> value
  unverified   json NOT NULL DEFAULT '{}',   -- system -> field -> {sent, before, attempts}
  in_doubt     json NOT NULL DEFAULT '{}',   -- system -> field -> [{value, sent_ms}]
  changed_ms   json NOT NULL DEFAULT '{}',   -- canonical field -> ms
  deleted_ms   bigint NOT NULL DEFAULT 0,
  updated_ms   bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (entity, canonical_id)
);
-- The few snapshots with unverified writes, for ListUnverified.
CREATE INDEX snapshots_unverified ON snapshots (entity, canonical_id)
  WHERE unverified::text <> '{}';

CREATE TABLE cursors (
  system     text COLLATE "C" NOT NULL,
  object     text COLLATE "C" NOT NULL,
  cursor     text NOT NULL,
  updated_ms bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (system, object)
);

-- One pending write per (system, entity, canonical_id): Enqueue upserts, so the newest payload
-- wins. Ids come from an identity (a sequence): never reused, so a stale id never names a newer
-- row, and in the order items were first queued. seq is the store-wide order in which payloads
-- were queued (counters.outbox_seq), which tells a replayed dead letter whether a newer write for
-- the same record exists.
CREATE TABLE outbox (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  system          text COLLATE "C" NOT NULL,
  object          text NOT NULL,
  entity          text COLLATE "C" NOT NULL,
  canonical_id    text COLLATE "C" NOT NULL,
  op              text NOT NULL,
  native_id       text NOT NULL DEFAULT '',
  idempotency_key text NOT NULL DEFAULT '',
  payload         json NOT NULL,             -- native fields to write
  payload_hash    text NOT NULL DEFAULT '',
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_ms bigint NOT NULL DEFAULT 0,
  last_error      text NOT NULL DEFAULT '',
  created_ms      bigint NOT NULL DEFAULT 0,
  seq             bigint NOT NULL,
  UNIQUE (system, entity, canonical_id)
);
CREATE INDEX outbox_by_system ON outbox (system, id);

-- The seq of the newest payload queued for a record, kept only while the record has a dead
-- letter: it is read only to tell whether a replay is stale.
CREATE TABLE outbox_latest (
  system       text COLLATE "C" NOT NULL,
  entity       text COLLATE "C" NOT NULL,
  canonical_id text COLLATE "C" NOT NULL,
  seq          bigint NOT NULL,
  PRIMARY KEY (system, entity, canonical_id)
);

CREATE TABLE dead_letters (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  outbox_id    bigint NOT NULL,
  seq          bigint NOT NULL,
  system       text COLLATE "C" NOT NULL,
  entity       text COLLATE "C" NOT NULL,
  canonical_id text COLLATE "C" NOT NULL,
  item         json NOT NULL,  -- the OutboxItem, as last attempted
  reason       text NOT NULL,
  http_status  integer NOT NULL DEFAULT 0,
  attempts     integer NOT NULL,
  failed_ms    bigint NOT NULL
);
CREATE INDEX dead_letters_by_record ON dead_letters (system, entity, canonical_id);

CREATE TABLE runs (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  mode        text NOT NULL,
  started_ms  bigint NOT NULL,
  finished_ms bigint NOT NULL DEFAULT 0,
  outcome     text NOT NULL,
  counts      json NOT NULL DEFAULT '{}',
  error       text NOT NULL DEFAULT ''
);

-- Read per record in time order, ties in the order recorded (id).
CREATE TABLE stage_history (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity       text COLLATE "C" NOT NULL,
  canonical_id text COLLATE "C" NOT NULL,
  at_ms        bigint NOT NULL,
  system       text NOT NULL,
  from_stage   text NOT NULL DEFAULT '',
  to_stage     text NOT NULL
);
CREATE INDEX stage_history_by_record ON stage_history (entity, canonical_id, at_ms, id);

CREATE TABLE match_keys (
  entity       text COLLATE "C" NOT NULL,
  match_key    text COLLATE "C" NOT NULL,  -- normalized values of the match fields
  canonical_id text COLLATE "C" NOT NULL,
  PRIMARY KEY (entity, match_key)
);

CREATE TABLE audit (
  id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at_ms   bigint NOT NULL,
  action  text NOT NULL,  -- grant, change, revoke, reset
  system  text NOT NULL,
  subject text NOT NULL,  -- the canonical record it concerns (a contact)
  detail  json NOT NULL   -- user, property, email, reason
);
CREATE INDEX audit_by_time ON audit (at_ms, id);

CREATE TABLE lease (
  id          integer PRIMARY KEY CHECK (id = 1),
  holder      text NOT NULL,
  acquired_ms bigint NOT NULL,
  expires_ms  bigint NOT NULL
);

CREATE TABLE counters (
  name  text PRIMARY KEY,
  value bigint NOT NULL
);
INSERT INTO counters (name, value) VALUES ('outbox_seq', 0);

-- Its one row is locked first by every writing transaction (see LockForWrite).
CREATE TABLE write_lock (
  id integer PRIMARY KEY CHECK (id = 1)
);
INSERT INTO write_lock (id) VALUES (1);
)sql"},
    // Changes announced by webhook, kept until a run has read their records again; processed ones
    // stay a while so that a repeated delivery is known as one.
    {2, "webhook events", R"sql(
CREATE TABLE webhook_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  system       text COLLATE "C" NOT NULL,
  dedupe_key   text COLLATE "C" NOT NULL,
  object       text NOT NULL,
  record_id    text NOT NULL,
  kind         text NOT NULL,
  occurred_ms  bigint NOT NULL,
  received_ms  bigint NOT NULL,
  processed_ms bigint NOT NULL DEFAULT 0,  -- 0: pending
  UNIQUE (system, dedupe_key)
);
CREATE INDEX webhook_events_by_state ON webhook_events (processed_ms, id);
)sql"},
    // Moves taken from a system's own history when crmbridge first saw the record.
    {3, "imported stage history", R"sql(
ALTER TABLE stage_history ADD COLUMN imported boolean NOT NULL DEFAULT false;
)sql"},
    // HashJson keeps the first 128 bits of a SHA-256 (32 hex digits), not 64 digits. A hash
    // stored before becomes its first half, which is what HashJson now gives for the same value:
    // an unchanged record still reads as unchanged, and a write delivered after the upgrade leaves
    // the hash the next plan compares with. A dead letter's item is read and edited as text:
    // PostgreSQL refuses to take a payload holding \u0000 apart as JSON.
    {4, "content hashes of 128 bits", R"sql(
UPDATE links SET last_read_hash = left(last_read_hash, 32) WHERE last_read_hash ~ '^[0-9a-f]{64}$';
UPDATE links SET last_written_hash = left(last_written_hash, 32)
  WHERE last_written_hash ~ '^[0-9a-f]{64}$';
UPDATE outbox SET payload_hash = left(payload_hash, 32) WHERE payload_hash ~ '^[0-9a-f]{64}$';
UPDATE dead_letters SET item = regexp_replace(item::text,
    '("payload_hash"\s*:\s*"[0-9a-f]{32})[0-9a-f]{32}"', '\1"')::json
  WHERE item::text ~ '"payload_hash"\s*:\s*"[0-9a-f]{64}"';
)sql"},
};

constexpr int kKnownSchemaVersion = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

// The advisory lock that serialises migrations of one database across processes ("crmb").
constexpr const char* kMigrationLockSql = "SELECT pg_advisory_xact_lock(1668443490)";

// ---------------------------------------------------------------------------------------------

using pg::Params;
using pg::Rows;
using pg::TrimEnd;

// A PostgreSQL text[] literal of `values` ({"a","b"}), for `unnest($n::text[])`: one statement
// for a whole page of ids.
std::string TextArray(const std::vector<const std::string*>& values) {
  std::string out = "{";
  for (const std::string* v : values) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : *v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

// A JSON column: "{}" (most `unverified` and `in_doubt` columns) without the parser.
Result<json> ParseJsonColumn(const Rows& rows, int row, int col, const std::string& what) {
  const std::string_view text = rows.View(row, col);
  if (text == "{}") return json::object();
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return Status(StatusCode::kInternal, what + " holds JSON that does not parse");
  return j;
}

constexpr const char* kLinkColumns =
    "entity, canonical_id, system, native_id, last_read_hash, last_written_hash, updated_ms";

Link ReadLinkRow(const Rows& rows, int row) {
  Link link;
  link.entity = rows.Text(row, 0);
  link.canonical_id = rows.Text(row, 1);
  link.system = rows.Text(row, 2);
  link.native_id = rows.Text(row, 3);  // "" for NULL
  link.last_read_hash = rows.Text(row, 4);
  link.last_written_hash = rows.Text(row, 5);
  link.updated_ms = rows.Int(row, 6);
  return link;
}

// The columns ReadSnapshotRow reads, in its order.
constexpr const char* kSnapshotColumns =
    "fields, updated_ms, seen, unverified, changed_ms, deleted_ms, in_doubt";

Result<Snapshot> ReadSnapshotRow(const Rows& rows, int row, int first, const std::string& entity,
                                 const std::string& canonical_id) {
  const std::string what = "the snapshot of " + entity + " " + canonical_id;
  Snapshot snapshot;
  snapshot.entity = entity;
  snapshot.canonical_id = canonical_id;
  const std::pair<int, json*> columns[] = {{first, &snapshot.fields},
                                           {first + 2, &snapshot.seen},
                                           {first + 3, &snapshot.unverified},
                                           {first + 4, &snapshot.changed_ms},
                                           {first + 6, &snapshot.in_doubt}};
  for (const auto& [col, target] : columns) {
    auto parsed = ParseJsonColumn(rows, row, col, what);
    if (!parsed.ok()) return parsed.status();
    *target = std::move(*parsed);
  }
  snapshot.updated_ms = rows.Int(row, first + 1);
  snapshot.deleted_ms = rows.Int(row, first + 5);
  return snapshot;
}

constexpr const char* kOutboxColumns =
    "id, system, object, entity, canonical_id, op, native_id, idempotency_key, payload, "
    "payload_hash, attempts, next_attempt_ms, last_error, created_ms, seq";

Result<OutboxItem> ReadOutboxRow(const Rows& rows, int row) {
  OutboxItem item;
  item.id = rows.Int(row, 0);
  item.system = rows.Text(row, 1);
  item.object = rows.Text(row, 2);
  item.entity = rows.Text(row, 3);
  item.canonical_id = rows.Text(row, 4);
  const std::string op = rows.Text(row, 5);
  auto parsed_op = ParseOutboxOp(op);
  if (!parsed_op)
    return Status(StatusCode::kInternal,
                  "outbox item " + std::to_string(item.id) + " holds an unknown op '" + op + "'");
  item.op = *parsed_op;
  item.native_id = rows.Text(row, 6);
  item.idempotency_key = rows.Text(row, 7);
  auto payload = ParseJsonColumn(rows, row, 8, "outbox item " + std::to_string(item.id));
  if (!payload.ok()) return payload.status();
  item.payload = std::move(*payload);
  item.payload_hash = rows.Text(row, 9);
  item.attempts = static_cast<int>(rows.Int(row, 10));
  item.next_attempt_ms = rows.Int(row, 11);
  item.last_error = rows.Text(row, 12);
  item.created_ms = rows.Int(row, 13);
  return item;
}

// NULL is PostgreSQL's "no limit".
Params& Limit(Params& params, int limit) {
  return limit > 0 ? params.Int(limit) : params.Null();
}


class PostgresStore final : public Store {
 public:
  PostgresStore(std::unique_ptr<pg::Session> session, Clock* clock,
                const PostgresStoreOptions& options)
      : session_(std::move(session)),
        shown_(session_->shown()),
        clock_(clock),
        lock_timeout_ms_(options.lock_timeout_ms),
        schema_(options.schema),
        fence_(options.fence),
        idle_in_transaction_timeout_ms_(options.idle_in_transaction_timeout_ms) {}

  // Session settings, schema version check, migrations. Called once, before sharing.
  Status Init();

  Status Apply(const StateBatch& batch) override;

  Result<std::optional<Link>> FindLinkByNative(const std::string& system,
                                               const std::string& entity,
                                               const std::string& native_id) override;
  Result<std::optional<Link>> FindLink(const std::string& entity, const std::string& canonical_id,
                                       const std::string& system) override;
  Result<std::optional<Snapshot>> GetSnapshot(const std::string& entity,
                                              const std::string& canonical_id) override;
  Result<RecordStates> LoadRecords(const std::string& entity, const std::string& system,
                                   const std::vector<std::string>& native_ids,
                                   const std::vector<std::string>& canonical_ids) override;
  Result<std::vector<Snapshot>> ListSnapshots(const std::string& entity) override;
  Result<std::vector<Snapshot>> ListSnapshotsAfter(const std::string& entity,
                                                   const std::string& after, int limit) override;
  Result<std::vector<Snapshot>> ListUnverified(const std::string& system,
                                               const std::string& entity) override;

  Result<std::optional<std::string>> GetCursor(const std::string& system,
                                               const std::string& object) override;
  Result<std::vector<CursorRow>> ListCursors() override;

  Result<std::vector<OutboxItem>> DueOutbox(const OutboxFilter& filter) override;
  Result<std::optional<OutboxItem>> PendingOutbox(const std::string& system,
                                                  const std::string& entity,
                                                  const std::string& canonical_id) override;
  Result<nlohmann::json> OutboxCounts() override;
  Result<nlohmann::json> DeadLetterCounts() override;
  // {system: n} from `sql`, which selects (system, count) rows.
  Result<nlohmann::json> CountBySystem(const char* sql, const char* what);

  Result<std::vector<DeadLetter>> ListDeadLetters(int limit) override;
  Status ReplayDeadLetter(int64_t dead_letter_id, int64_t now_ms) override;

  Result<std::optional<std::string>> FindByMatchKey(const std::string& entity,
                                                    const std::string& key) override;

  Result<std::vector<StageTransition>> StageHistory(const std::string& entity,
                                                    const std::string& canonical_id) override;
  Result<std::vector<StageTransition>> AllStageHistory(const std::string& entity) override;

  Result<std::vector<AuditEntry>> ListAudit(int64_t since_ms, int limit) override;

  Result<int64_t> BeginRun(const std::string& mode, int64_t now_ms) override;
  Status FinishRun(const RunRecord& run) override;
  Result<std::vector<RunRecord>> RecentRuns(int limit) override;

  Result<int> AddWebhookEvents(const std::vector<WebhookEvent>& events) override;
  Result<std::vector<WebhookEvent>> PendingWebhookEvents(int limit) override;
  Status FinishWebhookEvents(int64_t up_to_id, int64_t now_ms, int64_t keep_ms) override;

  Result<bool> AcquireLease(const std::string& holder, int64_t now_ms, int64_t ttl_ms) override;
  Status ReleaseLease(const std::string& holder) override;
  Result<std::optional<LeaseInfo>> GetLease() override;

  Result<int> SchemaVersion() override;

 private:
  // All private helpers expect mu_ held.

  // Reconnects a connection that was lost (the call that lost it failed with kUnavailable).
  Status EnsureConnected();
  // Per-connection settings, run after every (re)connect.
  Status Configure();
  // The session's statements (state/pg_session.h).
  Status ExecPlain(const char* sql, const std::string& doing) {
    return session_->ExecPlain(sql, doing);
  }
  Result<Rows> Run(const std::string& sql, const Params& params, const std::string& doing) {
    return session_->Run(sql, params, doing);
  }
  Status InTransaction(const char* begin, const std::string& doing,
                       const std::function<Status()>& body) {
    return session_->InTransaction(begin, doing, body);
  }
  // A write statement whose answer is only its error: pipelined within Apply (read with the
  // next statement whose answer is needed, or at the batch's end), run at once elsewhere.
  Status Defer(const std::string& sql, const Params& params, const std::string& doing) {
    return session_->Send(sql, params, doing, op_tag_);
  }
  // A writing transaction: InTransaction that first takes the store's write lock, so writers
  // follow one another (as in SQLite) and each statement sees what the writer before committed.
  Status InWriteTransaction(const std::string& doing, const std::function<Status()>& body);
  // Inside a transaction of a fenced store: share-locks the tenant's registry row to the commit
  // and refuses (kFailedPrecondition) unless its epoch is still fence_.epoch. Ok when unfenced.
  Status CheckFence(const std::string& doing);
  // After a refused commit: counted on the tenant's row, for operators and the chaos test.
  void CountRefusal();
  // Creates schema_ when missing (one process at a time).
  Status CreateSchema();
  Result<int> CurrentVersion();
  Status Migrate();
  Result<std::optional<Snapshot>> GetSnapshotLocked(const std::string& entity,
                                                    const std::string& canonical_id);
  Result<std::vector<Snapshot>> ReadSnapshots(const std::string& sql, const Params& params,
                                              const std::string& entity, const std::string& doing);

  Status ApplyOp(const StateBatch::Op& op);
  Status PutLink(const Link& link);
  Status PutSnapshot(const Snapshot& snapshot);
  Status SetCursor(const CursorRow& cursor);
  Status Enqueue(const OutboxItem& item);
  Status UpsertOutbox(const OutboxItem& item, const std::string& payload, int64_t seq,
                      int64_t next_attempt_ms);
  Status NoteLatestSeq(const std::string& system, const std::string& entity,
                       const std::string& canonical_id, int64_t seq, const std::string& what);
  Result<bool> OutboxExists(int64_t id, const std::string& what);
  Status CompleteOutbox(int64_t id, const std::string& delivered_hash);
  Status RetryOutbox(int64_t id, const std::string& error, int64_t next_attempt_ms, int increment,
                     const std::string& attempted_hash);
  Status DeadLetterOutbox(int64_t id, const std::string& reason, int http_status,
                          const std::string& attempted_hash);
  Status AddDeadLetter(const OutboxItem& item, const std::string& reason);
  Status PutMatchKey(const std::string& entity, const std::string& key, const std::string& cid);
  Status AddStageTransition(const StageTransition& t);
  Status AddAudit(const AuditEntry& e);
  Status DeleteDeadLetter(int64_t id);
  Status ReplayLocked(int64_t dead_letter_id, int64_t now_ms);

  std::mutex mu_;
  const std::unique_ptr<pg::Session> session_;
  const std::string shown_;     // the url without its password, for messages
  Clock* const clock_;
  const int lock_timeout_ms_;
  const std::string schema_;                  // "" : the connection's search_path
  const PostgresStoreOptions::Fence fence_;   // tenant "" : not fenced
  const int idle_in_transaction_timeout_ms_;  // 0: the server's default
  bool configured_ = false;                   // Configure() ran on this connection
  bool refused_ = false;                      // CheckFence refused the transaction in hand
  int op_tag_ = -1;                           // the op Apply is applying, for Defer
};



Status PostgresStore::EnsureConnected() {
  auto reconnected = session_->Reconnect();
  if (!reconnected.ok()) return reconnected.status();
  // A connection made again, or one whose settings failed last time: never run statements with
  // the server's default search_path, which is another schema than this store's.
  if (!*reconnected && configured_) return Status::Ok();
  if (*reconnected) spdlog::info("state store {}: connected again", shown_);
  return Configure();
}

Status PostgresStore::Configure() {
  configured_ = false;
  // Numbers from the options, never input: SET takes no bound parameters.
  const std::string set_timeout = "SET lock_timeout = " + std::to_string(lock_timeout_ms_);
  CRMB_RETURN_IF_ERROR(ExecPlain(set_timeout.c_str(), "setting lock_timeout"));
  if (idle_in_transaction_timeout_ms_ > 0) {
    const std::string set_idle = "SET idle_in_transaction_session_timeout = " +
                                 std::to_string(idle_in_transaction_timeout_ms_);
    CRMB_RETURN_IF_ERROR(ExecPlain(set_idle.c_str(), "setting idle_in_transaction_session_timeout"));
  }
  if (!schema_.empty()) {
    // An identifier checked when the store was opened (lowercase letters, digits, _), quoted.
    const std::string set_path = "SET search_path = \"" + schema_ + "\"";
    CRMB_RETURN_IF_ERROR(ExecPlain(set_path.c_str(), "setting search_path"));
  }
  configured_ = true;
  return Status::Ok();
}

Status PostgresStore::CreateSchema() {
  if (schema_.empty()) return Status::Ok();
  const std::string create = "CREATE SCHEMA IF NOT EXISTS \"" + schema_ + "\"";
  return InTransaction("BEGIN", "creating schema " + schema_, [&]() -> Status {
    // Two processes creating one schema at once would clash on its name: one at a time.
    CRMB_RETURN_IF_ERROR(ExecPlain(kMigrationLockSql, "waiting for other migrations"));
    return ExecPlain(create.c_str(), "creating schema " + schema_);
  });
}

Status PostgresStore::CheckFence(const std::string& doing) {
  if (fence_.tenant.empty()) return Status::Ok();
  auto r = Run(std::string("SELECT epoch FROM ") + kRegistrySchema +
                   ".tenants WHERE name = $1 FOR SHARE",
               Params().Text(fence_.tenant), "checking the fencing epoch for " + doing);
  if (!r.ok()) return r.status();
  const int64_t now_epoch = r->size() == 1 ? r->Int(0, 0) : -1;
  if (now_epoch == fence_.epoch) return Status::Ok();
  refused_ = true;
  return Status(StatusCode::kFailedPrecondition,
                "state store " + shown_ + ": " + doing + " refused: tenant " + fence_.tenant +
                    (now_epoch < 0 ? " is no longer registered"
                                   : " was claimed again (epoch " + std::to_string(fence_.epoch) +
                                         ", now " + std::to_string(now_epoch) + ")") +
                    "; this worker's lease had expired, so nothing it still had to write is kept");
}

void PostgresStore::CountRefusal() {
  if (!refused_) return;
  refused_ = false;
  auto r = Run(std::string("UPDATE ") + kRegistrySchema +
                   ".tenants SET refused_commits = refused_commits + 1 WHERE name = $1",
               Params().Text(fence_.tenant), "counting a refused commit");
  if (!r.ok()) spdlog::warn("{}", r.status().ToString());
}




Status PostgresStore::InWriteTransaction(const std::string& doing,
                                         const std::function<Status()>& body) {
  Status s = InTransaction("BEGIN", doing, [&]() -> Status {
    CRMB_RETURN_IF_ERROR(CheckFence(doing));
    auto locked = Run("SELECT id FROM write_lock WHERE id = 1 FOR UPDATE", Params(),
                      "taking the write lock for " + doing);
    if (!locked.ok()) return locked.status();
    if (locked->size() != 1) {
      return Status(StatusCode::kInternal,
                    "state store " + shown_ + ": the write_lock table has lost its row");
    }
    return body();
  });
  CountRefusal();
  return s;
}

// ---- schema ----

// The last migration applied; 0 for a database without our tables.
Result<int> PostgresStore::CurrentVersion() {
  auto exists = Run("SELECT to_regclass('schema_version') IS NOT NULL", Params(),
                    "reading the schema version");
  if (!exists.ok()) return exists.status();
  if (exists->View(0, 0) != "t") return 0;
  auto version = Run("SELECT coalesce(max(version), 0) FROM schema_version", Params(),
                     "reading the schema version");
  if (!version.ok()) return version.status();
  return static_cast<int>(version->Int(0, 0));
}

Status PostgresStore::Init() {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Configure());
  // A fenced store is a claim's: a claim already lost (or a tenant removed, its schema dropped)
  // creates and migrates nothing.
  if (!fence_.tenant.empty()) {
    CRMB_RETURN_IF_ERROR(InTransaction("BEGIN", "opening the state of tenant " + fence_.tenant,
                                       [&] { return CheckFence("opening the state"); }));
  }
  CRMB_RETURN_IF_ERROR(CreateSchema());
  // Before changing anything: a database migrated by a newer crmbridge is refused untouched.
  auto version = CurrentVersion();
  if (!version.ok()) return version.status();
  if (*version > kKnownSchemaVersion) {
    return Status(StatusCode::kFailedPrecondition,
                  "state store " + shown_ + " has schema version " + std::to_string(*version) +
                      ", this crmbridge knows up to " + std::to_string(kKnownSchemaVersion));
  }
  return Migrate();
}

Status PostgresStore::Migrate() {
  for (int i = 0; i < kKnownSchemaVersion; ++i) {
    const Migration& m = kMigrations[i];
    if (m.version != i + 1) {
      return Status(StatusCode::kInternal, "schema migrations are out of order at " +
                                               std::to_string(m.version));
    }
    const std::string doing =
        "schema migration " + std::to_string(m.version) + " (" + m.description + ")";
    CRMB_RETURN_IF_ERROR(InTransaction("BEGIN", doing, [&]() -> Status {
      // Another process may be migrating the same database: one at a time, and the version read
      // after the lock is taken.
      CRMB_RETURN_IF_ERROR(ExecPlain(kMigrationLockSql, "waiting for other migrations"));
      CRMB_RETURN_IF_ERROR(ExecPlain(
          "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
          "description text NOT NULL, applied_ms bigint NOT NULL)",
          "creating the schema_version table"));
      auto version = CurrentVersion();
      if (!version.ok()) return version.status();
      if (*version >= m.version) return Status::Ok();
      CRMB_RETURN_IF_ERROR(ExecPlain(m.sql, doing));
      auto recorded = Run(
          "INSERT INTO schema_version (version, description, applied_ms) VALUES ($1, $2, $3)",
          Params().Int(m.version).Text(m.description).Int(clock_->NowMillis()),
          "recording " + doing);
      return recorded.status();
    }));
  }
  return Status::Ok();
}

Result<int> PostgresStore::SchemaVersion() {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  auto version = Run("SELECT coalesce(max(version), 0) FROM schema_version", Params(),
                     "reading the schema version");
  if (!version.ok()) return version.status();
  return static_cast<int>(version->Int(0, 0));
}

// ---- Apply ----

Status PostgresStore::Apply(const StateBatch& batch) {
  if (batch.empty()) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  const std::string doing = "a batch of " + std::to_string(batch.ops().size()) + " ops";
  return InWriteTransaction(doing, [&]() -> Status {
    // The ops' write statements are pipelined: a page's batch costs a few round trips to the
    // server, not one per statement. A statement whose answer an op needs sends the queue with it.
    CRMB_RETURN_IF_ERROR(session_->BeginPipeline());
    int next = 0;
    Status s = ApplyOps(
        batch,
        [&](const StateBatch::Op& op) {
          op_tag_ = next++;
          return ApplyOp(op);
        },
        [&] { return session_->EndPipeline(); }, [&] { return session_->failed_tag(); });
    if (session_->pipelining()) (void)session_->EndPipeline();  // before the ROLLBACK
    op_tag_ = -1;
    return s;
  });
}

Status PostgresStore::ApplyOp(const StateBatch::Op& op) {
  using K = StateBatch::Op::Kind;
  switch (op.kind) {
    case K::kPutLink: return PutLink(op.link());
    case K::kPutSnapshot: return PutSnapshot(op.snapshot());
    case K::kSetCursor: return SetCursor(op.cursor());
    case K::kEnqueue: return Enqueue(op.outbox());
    case K::kCompleteOutbox: return CompleteOutbox(op.id, op.outcome().payload_hash);
    case K::kRetryOutbox:
      return RetryOutbox(op.id, op.outcome().error, op.outcome().next_attempt_ms,
                         op.outcome().attempts_increment, op.outcome().payload_hash);
    case K::kDeadLetterOutbox:
      return DeadLetterOutbox(op.id, op.outcome().error, op.outcome().http_status,
                              op.outcome().payload_hash);
    case K::kAddStageTransition: return AddStageTransition(op.stage());
    case K::kDeleteDeadLetter: return DeleteDeadLetter(op.id);
    case K::kAddDeadLetter: return AddDeadLetter(op.dead_letter().item, op.dead_letter().reason);
    case K::kPutMatchKey:
      return PutMatchKey(op.match_key().entity, op.match_key().key, op.match_key().canonical_id);
    case K::kAddAudit: return AddAudit(op.audit());
  }
  return Status(StatusCode::kInternal, "unknown batch op");
}

Status PostgresStore::PutLink(const Link& link) {
  // An upsert on the primary key only: a native id already linked to another canonical id is a
  // UNIQUE violation (kAlreadyExists), never a silent replacement of the other link. A replaced
  // link keeps its settled digest; a new one has none (NULL: not known).
  return Defer(
      "INSERT INTO links (entity, canonical_id, system, native_id, last_read_hash, "
      "last_written_hash, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) "
      "ON CONFLICT (entity, canonical_id, system) DO UPDATE SET native_id = excluded.native_id, "
      "last_read_hash = excluded.last_read_hash, last_written_hash = excluded.last_written_hash, "
      "updated_ms = excluded.updated_ms",
      Params()
          .Text(link.entity)
          .Text(link.canonical_id)
          .Text(link.system)
          .TextOrNull(link.native_id)
          .Text(link.last_read_hash)
          .Text(link.last_written_hash)
          .Int(link.updated_ms),
      "storing the link " + link.entity + " " + link.canonical_id + " <-> " + link.system + " " +
          link.native_id);
}

Status PostgresStore::PutSnapshot(const Snapshot& snapshot) {
  const std::string what = "snapshot of " + snapshot.entity + " " + snapshot.canonical_id;
  auto fields = DumpJson(snapshot.fields, what);
  if (!fields.ok()) return fields.status();
  auto seen = DumpJson(snapshot.seen, what);
  if (!seen.ok()) return seen.status();
  auto unverified = DumpJson(snapshot.unverified, what);
  if (!unverified.ok()) return unverified.status();
  auto changed = DumpJson(snapshot.changed_ms, what);
  if (!changed.ok()) return changed.status();
  auto in_doubt = DumpJson(snapshot.in_doubt, what);
  if (!in_doubt.ok()) return in_doubt.status();
  CRMB_RETURN_IF_ERROR(Defer(
      "INSERT INTO snapshots (entity, canonical_id, fields, seen, unverified, in_doubt, "
      "changed_ms, deleted_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
      "ON CONFLICT (entity, canonical_id) DO UPDATE SET fields = excluded.fields, "
      "seen = excluded.seen, unverified = excluded.unverified, in_doubt = excluded.in_doubt, "
      "changed_ms = excluded.changed_ms, deleted_ms = excluded.deleted_ms, "
      "updated_ms = excluded.updated_ms",
      Params()
          .Text(snapshot.entity)
          .Text(snapshot.canonical_id)
          .Text(*fields)
          .Text(*seen)
          .Text(*unverified)
          .Text(*in_doubt)
          .Text(*changed)
          .Int(snapshot.deleted_ms)
          .Int(snapshot.updated_ms),
      "storing the " + what));

  // Each of the record's links gets its system's digest ('' for a system not settled), given as
  // a JSON object system -> digest; a link that already holds it is not written.
  json digests = json::object();
  for (const auto& [system, digest] : DigestsOf(snapshot).by_system) digests[system] = digest;
  auto encoded = DumpJson(digests, "the digests of the " + what);
  if (!encoded.ok()) return encoded.status();
  return Defer(
      "UPDATE links SET settled = coalesce($3::json ->> system, '') "
      "WHERE entity = $1 AND canonical_id = $2 "
      "AND settled IS DISTINCT FROM coalesce($3::json ->> system, '')",
      Params().Text(snapshot.entity).Text(snapshot.canonical_id).Text(*encoded),
      "storing the digests of the " + what);
}

Status PostgresStore::SetCursor(const CursorRow& cursor) {
  return Defer(
      "INSERT INTO cursors (system, object, cursor, updated_ms) VALUES ($1, $2, $3, $4) "
      "ON CONFLICT (system, object) DO UPDATE SET cursor = excluded.cursor, "
      "updated_ms = excluded.updated_ms",
      Params().Text(cursor.system).Text(cursor.object).Text(cursor.cursor).Int(clock_->NowMillis()),
      "storing the cursor of " + cursor.system + " " + cursor.object);
}

Status PostgresStore::UpsertOutbox(const OutboxItem& item, const std::string& payload, int64_t seq,
                                   int64_t next_attempt_ms) {
  const std::string what =
      "queueing the write of " + item.entity + " " + item.canonical_id + " to " + item.system;
  // Coalescing: a pending row for the record keeps its id and created_ms (its place in the queue)
  // and takes everything else from the newer write, with a fresh retry budget.
  CRMB_RETURN_IF_ERROR(Defer(
      "INSERT INTO outbox (system, object, entity, canonical_id, op, native_id, idempotency_key, "
      "payload, payload_hash, attempts, next_attempt_ms, last_error, created_ms, seq) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, '', $11, "
      "CASE WHEN $12::bigint >= 0 THEN $12::bigint "
      "ELSE (SELECT value FROM counters WHERE name = 'outbox_seq') END) "
      "ON CONFLICT (system, entity, canonical_id) DO UPDATE SET object = excluded.object, "
      "op = excluded.op, native_id = excluded.native_id, "
      "idempotency_key = excluded.idempotency_key, payload = excluded.payload, "
      "payload_hash = excluded.payload_hash, attempts = 0, "
      "next_attempt_ms = excluded.next_attempt_ms, last_error = '', seq = excluded.seq",
      Params()
          .Text(item.system)
          .Text(item.object)
          .Text(item.entity)
          .Text(item.canonical_id)
          .Text(OutboxOpName(item.op))
          .Text(item.native_id)
          .Text(item.idempotency_key)
          .Text(payload)
          .Text(item.payload_hash)
          .Int(next_attempt_ms)
          .Int(item.created_ms)
          .Int(seq),
      what));
  // The newest payload is tracked only for a record with a dead letter (NoteLatestSeq): a record
  // that never failed has no row, and this changes nothing.
  return Defer(
      "UPDATE outbox_latest SET seq = greatest(seq, CASE WHEN $4::bigint >= 0 THEN $4::bigint "
      "ELSE (SELECT value FROM counters WHERE name = 'outbox_seq') END) "
      "WHERE system = $1 AND entity = $2 AND canonical_id = $3",
      Params().Text(item.system).Text(item.entity).Text(item.canonical_id).Int(seq), what);
}

// From a record's first dead letter on, the seq of the newest payload queued for it, so a replay
// can tell whether a newer write replaced the dead one (ReplayLocked).
Status PostgresStore::NoteLatestSeq(const std::string& system, const std::string& entity,
                                    const std::string& canonical_id, int64_t seq,
                                    const std::string& what) {
  return Defer(
      "INSERT INTO outbox_latest (system, entity, canonical_id, seq) VALUES ($1, $2, $3, $4) "
      "ON CONFLICT (system, entity, canonical_id) DO UPDATE "
      "SET seq = greatest(outbox_latest.seq, excluded.seq)",
      Params().Text(system).Text(entity).Text(canonical_id).Int(seq), what);
}

Status PostgresStore::Enqueue(const OutboxItem& item) {
  auto payload = DumpJson(item.payload, "the payload for " + item.system + " " + item.entity +
                                            " " + item.canonical_id);
  if (!payload.ok()) return payload.status();
  // The payload's number is taken from the counter inside the statements (no answer to wait for:
  // they may be pipelined); each statement sees what the one before it did.
  CRMB_RETURN_IF_ERROR(Defer("UPDATE counters SET value = value + 1 WHERE name = 'outbox_seq'",
                             Params(), "numbering an outbox payload"));
  return UpsertOutbox(item, *payload, /*seq=*/-1, item.next_attempt_ms);
}

// Whether outbox row `id` exists: after a guarded statement changed no row, the row is either
// gone or holds a newer payload than the one the caller attempted.
Result<bool> PostgresStore::OutboxExists(int64_t id, const std::string& what) {
  auto r = Run("SELECT 1 FROM outbox WHERE id = $1", Params().Int(id), what);
  if (!r.ok()) return r.status();
  return r->size() > 0;
}

Status PostgresStore::CompleteOutbox(int64_t id, const std::string& delivered_hash) {
  const std::string what = "completing outbox item " + std::to_string(id);
  auto r = Run("DELETE FROM outbox WHERE id = $1 AND ($2::text = '' OR payload_hash = $2)",
               Params().Int(id).Text(delivered_hash), what);
  if (!r.ok()) return r.status();
  if (r->Affected() > 0) return Status::Ok();
  // Nothing deleted: either the item is gone, or it now holds a newer payload, which stays queued.
  auto exists = OutboxExists(id, what);
  if (!exists.ok()) return exists.status();
  if (*exists) return Status::Ok();
  return Status(StatusCode::kNotFound, what + ": no such item");
}

Status PostgresStore::RetryOutbox(int64_t id, const std::string& error, int64_t next_attempt_ms,
                                  int increment, const std::string& attempted_hash) {
  const std::string what = "recording a failed attempt of outbox item " + std::to_string(id);
  auto r = Run(
      "UPDATE outbox SET attempts = attempts + $4, last_error = $2, next_attempt_ms = $3 "
      "WHERE id = $1 AND ($5::text = '' OR payload_hash = $5)",
      Params().Int(id).Text(error).Int(next_attempt_ms).Int(increment).Text(attempted_hash), what);
  if (!r.ok()) return r.status();
  if (r->Affected() > 0) return Status::Ok();
  // Nothing updated: either the item is gone, or it now holds a newer payload, not yet tried.
  auto exists = OutboxExists(id, what);
  if (!exists.ok()) return exists.status();
  if (*exists) return Status::Ok();
  return Status(StatusCode::kNotFound, what + ": no such item");
}

Status PostgresStore::AddDeadLetter(const OutboxItem& item, const std::string& reason) {
  const std::string what = "dead-lettering the " + item.system + " write of " + item.entity + " " +
                           item.canonical_id;
  OutboxItem failed = item;
  failed.last_error = reason;
  auto text = DumpJson(OutboxItemToJson(failed), what);
  if (!text.ok()) return text.status();
  // As new as every write queued so far (the store-wide seq): a replay sends it again unless a
  // write for the record queued after it has replaced it (ReplayLocked).
  auto counter = Run("SELECT value FROM counters WHERE name = 'outbox_seq'", Params(), what);
  if (!counter.ok()) return counter.status();
  const int64_t seq = counter->size() > 0 ? counter->Int(0, 0) : 0;
  auto ins = Run(
      "INSERT INTO dead_letters (outbox_id, seq, system, entity, canonical_id, item, reason, "
      "http_status, attempts, failed_ms) VALUES (0, $1, $2, $3, $4, $5, $6, 0, $7, $8)",
      Params()
          .Int(seq)
          .Text(failed.system)
          .Text(failed.entity)
          .Text(failed.canonical_id)
          .Text(*text)
          .Text(reason)
          .Int(failed.attempts)
          .Int(clock_->NowMillis()),
      what);
  if (!ins.ok()) return ins.status();
  return NoteLatestSeq(failed.system, failed.entity, failed.canonical_id, seq, what);
}

Status PostgresStore::DeadLetterOutbox(int64_t id, const std::string& reason, int http_status,
                                       const std::string& attempted_hash) {
  const std::string what = "dead-lettering outbox item " + std::to_string(id);
  static const std::string select =
      std::string("SELECT ") + kOutboxColumns + " FROM outbox WHERE id = $1";
  auto row = Run(select, Params().Int(id), what);
  if (!row.ok()) return row.status();
  if (row->size() == 0) return Status(StatusCode::kNotFound, what + ": no such item");
  auto parsed = ReadOutboxRow(*row, 0);
  if (!parsed.ok()) return parsed.status();
  OutboxItem item = std::move(*parsed);
  const int64_t seq = row->Int(0, 14);
  // A newer payload replaced the one that failed: it has not been tried, so it stays queued.
  if (!attempted_hash.empty() && item.payload_hash != attempted_hash) return Status::Ok();
  // The dead letter shows the item as it was last attempted: this failure counts as an attempt.
  item.attempts += 1;
  item.last_error = reason;
  auto text = DumpJson(OutboxItemToJson(item), "outbox item " + std::to_string(id));
  if (!text.ok()) return text.status();

  auto ins = Run(
      "INSERT INTO dead_letters (outbox_id, seq, system, entity, canonical_id, item, reason, "
      "http_status, attempts, failed_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
      Params()
          .Int(id)
          .Int(seq)
          .Text(item.system)
          .Text(item.entity)
          .Text(item.canonical_id)
          .Text(*text)
          .Text(reason)
          .Int(http_status)
          .Int(item.attempts)
          .Int(clock_->NowMillis()),
      what);
  if (!ins.ok()) return ins.status();
  CRMB_RETURN_IF_ERROR(NoteLatestSeq(item.system, item.entity, item.canonical_id, seq, what));
  auto del = Run("DELETE FROM outbox WHERE id = $1", Params().Int(id), what);
  return del.status();
}

Status PostgresStore::AddStageTransition(const StageTransition& t) {
  return Defer(
      "INSERT INTO stage_history (entity, canonical_id, system, from_stage, to_stage, at_ms, "
      "imported) VALUES ($1, $2, $3, $4, $5, $6, $7)",
      Params()
          .Text(t.entity)
          .Text(t.canonical_id)
          .Text(t.system)
          .Text(t.from_stage)
          .Text(t.to_stage)
          .Int(t.at_ms)
          .Bool(t.imported),
      "recording a stage transition of " + t.entity + " " + t.canonical_id);
}

Status PostgresStore::DeleteDeadLetter(int64_t id) {
  const std::string what = "deleting dead letter " + std::to_string(id);
  // The record's last dead letter takes its newest-payload row with it (NoteLatestSeq).
  auto latest = Run(
      "DELETE FROM outbox_latest WHERE (system, entity, canonical_id) IN "
      "(SELECT system, entity, canonical_id FROM dead_letters d WHERE d.id = $1 AND NOT EXISTS "
      "(SELECT 1 FROM dead_letters o WHERE o.system = d.system AND o.entity = d.entity AND "
      "o.canonical_id = d.canonical_id AND o.id <> d.id))",
      Params().Int(id), what);
  if (!latest.ok()) return latest.status();
  auto r = Run("DELETE FROM dead_letters WHERE id = $1", Params().Int(id), what);
  if (!r.ok()) return r.status();
  if (r->Affected() == 0) return Status(StatusCode::kNotFound, what + ": no such item");
  return Status::Ok();
}

Status PostgresStore::PutMatchKey(const std::string& entity, const std::string& key,
                                  const std::string& cid) {
  // The first record to hold a key keeps it.
  return Defer(
      "INSERT INTO match_keys (entity, match_key, canonical_id) VALUES ($1, $2, $3) "
      "ON CONFLICT (entity, match_key) DO NOTHING",
      Params().Text(entity).Text(key).Text(cid), "storing a match key of " + entity + " " + cid);
}

Status PostgresStore::AddAudit(const AuditEntry& e) {
  auto detail = DumpJson(e.detail, "the audit entry " + e.action + " of " + e.subject);
  if (!detail.ok()) return detail.status();
  return Defer(
      "INSERT INTO audit (at_ms, action, system, subject, detail) VALUES ($1, $2, $3, $4, $5)",
      Params().Int(e.at_ms).Text(e.action).Text(e.system).Text(e.subject).Text(*detail),
      "recording an audit entry for " + e.subject);
}

// ---- links, snapshots, cursors ----

Result<std::optional<Link>> PostgresStore::FindLinkByNative(const std::string& system,
                                                            const std::string& entity,
                                                            const std::string& native_id) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  static const std::string sql = std::string("SELECT ") + kLinkColumns +
                                 " FROM links WHERE system = $1 AND entity = $2 AND native_id = $3";
  auto r = Run(sql, Params().Text(system).Text(entity).Text(native_id),
               "finding the link of " + system + " " + native_id);
  if (!r.ok()) return r.status();
  if (r->size() == 0) return std::optional<Link>();
  return std::optional<Link>(ReadLinkRow(*r, 0));
}

Result<std::optional<Link>> PostgresStore::FindLink(const std::string& entity,
                                                    const std::string& canonical_id,
                                                    const std::string& system) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  static const std::string sql =
      std::string("SELECT ") + kLinkColumns +
      " FROM links WHERE entity = $1 AND canonical_id = $2 AND system = $3";
  auto r = Run(sql, Params().Text(entity).Text(canonical_id).Text(system),
               "finding the " + system + " link of " + entity + " " + canonical_id);
  if (!r.ok()) return r.status();
  if (r->size() == 0) return std::optional<Link>();
  return std::optional<Link>(ReadLinkRow(*r, 0));
}

Result<std::optional<Snapshot>> PostgresStore::GetSnapshot(const std::string& entity,
                                                           const std::string& canonical_id) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  return GetSnapshotLocked(entity, canonical_id);
}

Result<std::optional<Snapshot>> PostgresStore::GetSnapshotLocked(const std::string& entity,
                                                                 const std::string& canonical_id) {
  static const std::string sql = std::string("SELECT ") + kSnapshotColumns +
                                 " FROM snapshots WHERE entity = $1 AND canonical_id = $2";
  auto r = Run(sql, Params().Text(entity).Text(canonical_id),
               "reading the snapshot of " + entity + " " + canonical_id);
  if (!r.ok()) return r.status();
  if (r->size() == 0) return std::optional<Snapshot>();
  auto snapshot = ReadSnapshotRow(*r, 0, 0, entity, canonical_id);
  if (!snapshot.ok()) return snapshot.status();
  return std::optional<Snapshot>(std::move(*snapshot));
}

Result<RecordStates> PostgresStore::LoadRecords(const std::string& entity,
                                                const std::string& system,
                                                const std::vector<std::string>& native_ids,
                                                const std::vector<std::string>& canonical_ids) {
  RecordStates out;
  if (native_ids.empty() && canonical_ids.empty()) return out;
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  const std::string doing = "loading the state of " +
                            std::to_string(native_ids.size() + canonical_ids.size()) + " " +
                            entity + " record(s)";
  // Each id once, all of them in one statement per kind of lookup: a round trip to the server
  // costs more than the rows.
  auto unique = [](const std::vector<std::string>& ids) {
    std::vector<const std::string*> out;
    std::unordered_set<std::string_view> seen;
    for (const std::string& id : ids)
      if (seen.insert(id).second) out.push_back(&id);
    return out;
  };
  const std::vector<const std::string*> natives = unique(native_ids);
  const std::vector<const std::string*> cids = unique(canonical_ids);
  Status s = InTransaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", doing, [&]() -> Status {
    if (!natives.empty()) {
      // The page's records by native id, their links in `system` and the digests those carry:
      // an unchanged record needs nothing more; the rest of a changed one is read when needed.
      // A join with the ids, not `= ANY(array)`: a prepared statement soon runs on a generic plan,
      // and for `= ANY` of an array of unknown size that plan is a scan of every link of the
      // entity (measured: 4-12 ms a page at 5,000 records, where the index takes well under 1).
      // One index lookup per id, whatever the plan: a prepared statement soon runs on a generic
      // plan, and for a plain join (or `= ANY`) with an array of unknown size that plan scanned
      // every link of the entity (11 ms a page at 20,000 records). LIMIT 1 keeps the subquery
      // apart, so it stays a lookup by (system, entity, native_id), which is unique.
      static const std::string sql =
          "SELECT l.entity, l.canonical_id, l.system, l.native_id, l.last_read_hash, "
          "l.last_written_hash, l.updated_ms, l.settled FROM unnest($3::text[]) AS wanted(v) "
          "CROSS JOIN LATERAL (SELECT * FROM links WHERE system = $1 AND entity = $2 "
          "AND native_id = wanted.v COLLATE \"C\" LIMIT 1) AS l";
      auto r = Run(sql, Params().Text(system).Text(entity).Text(TextArray(natives)),
                   "loading the links of " + std::to_string(native_ids.size()) + " " + system +
                       " " + entity + " record(s)");
      if (!r.ok()) return r.status();
      for (int row = 0; row < r->size(); ++row) {
        Link link = ReadLinkRow(*r, row);
        SettledDigests& digests = out.digests[link.canonical_id];
        if (!r->IsNull(row, 7)) {
          digests.known = true;
          if (!r->View(row, 7).empty()) digests.by_system.emplace_back(system, r->Text(row, 7));
        }
        out.by_native.emplace(link.native_id, std::move(link));
      }
    }
    if (cids.empty()) return Status::Ok();
    const std::string ids = TextArray(cids);
    static const std::string snapshots_sql =
        std::string("SELECT canonical_id, ") + kSnapshotColumns +
        " FROM unnest($2::text[]) AS wanted(v) JOIN snapshots "
        "ON snapshots.canonical_id = wanted.v COLLATE \"C\" WHERE entity = $1";
    auto snaps = Run(snapshots_sql, Params().Text(entity).Text(ids),
                     "reading the snapshots of " + std::to_string(cids.size()) + " " + entity +
                         " record(s)");
    if (!snaps.ok()) return snaps.status();
    for (int row = 0; row < snaps->size(); ++row) {
      const std::string cid = snaps->Text(row, 0);
      auto snapshot = ReadSnapshotRow(*snaps, row, 1, entity, cid);
      if (!snapshot.ok()) return snapshot.status();
      out.snapshots.emplace(cid, std::move(*snapshot));
    }
    for (const std::string* cid : cids) out.links[*cid];  // an entry even without links
    static const std::string links_sql =
        std::string("SELECT ") + kLinkColumns +
        " FROM unnest($2::text[]) AS wanted(v) JOIN links "
        "ON links.canonical_id = wanted.v COLLATE \"C\" WHERE entity = $1 "
        "ORDER BY canonical_id, system";
    auto links = Run(links_sql, Params().Text(entity).Text(ids),
                     "finding the links of " + std::to_string(cids.size()) + " " + entity +
                         " record(s)");
    if (!links.ok()) return links.status();
    for (int row = 0; row < links->size(); ++row) {
      Link link = ReadLinkRow(*links, row);
      out.links[link.canonical_id].push_back(std::move(link));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::vector<Snapshot>> PostgresStore::ReadSnapshots(const std::string& sql,
                                                           const Params& params,
                                                           const std::string& entity,
                                                           const std::string& doing) {
  auto r = Run(sql, params, doing);
  if (!r.ok()) return r.status();
  std::vector<Snapshot> out;
  out.reserve(static_cast<size_t>(r->size()));
  for (int row = 0; row < r->size(); ++row) {
    auto snap = ReadSnapshotRow(*r, row, 1, entity, r->Text(row, 0));
    if (!snap.ok()) return snap.status();
    out.push_back(std::move(*snap));
  }
  return out;
}

Result<std::vector<Snapshot>> PostgresStore::ListSnapshots(const std::string& entity) {
  return ListSnapshotsAfter(entity, "", 0);
}

Result<std::vector<Snapshot>> PostgresStore::ListSnapshotsAfter(const std::string& entity,
                                                                const std::string& after,
                                                                int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  static const std::string sql =
      std::string("SELECT canonical_id, ") + kSnapshotColumns +
      " FROM snapshots WHERE entity = $1 AND canonical_id > $2 ORDER BY canonical_id LIMIT $3";
  Params params;
  params.Text(entity).Text(after);
  return ReadSnapshots(sql, Limit(params, limit), entity, "reading the snapshots of " + entity);
}

Result<std::vector<Snapshot>> PostgresStore::ListUnverified(const std::string& system,
                                                            const std::string& entity) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  // The first condition is the partial index's: only the few rows with unverified writes are read.
  static const std::string sql =
      std::string("SELECT canonical_id, ") + kSnapshotColumns +
      " FROM snapshots WHERE entity = $1 AND unverified::text <> '{}' "
      "AND json_typeof(unverified -> $2::text) = 'object' ORDER BY canonical_id";
  return ReadSnapshots(sql, Params().Text(entity).Text(system), entity,
                       "listing unverified " + system + " writes of " + entity);
}

Result<std::optional<std::string>> PostgresStore::GetCursor(const std::string& system,
                                                            const std::string& object) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  auto r = Run("SELECT cursor FROM cursors WHERE system = $1 AND object = $2",
               Params().Text(system).Text(object),
               "reading the cursor of " + system + " " + object);
  if (!r.ok()) return r.status();
  if (r->size() == 0) return std::optional<std::string>();
  return std::optional<std::string>(r->Text(0, 0));
}

Result<std::vector<CursorRow>> PostgresStore::ListCursors() {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  auto r = Run("SELECT system, object, cursor, updated_ms FROM cursors ORDER BY system, object",
               Params(), "listing cursors");
  if (!r.ok()) return r.status();
  std::vector<CursorRow> rows;
  for (int row = 0; row < r->size(); ++row)
    rows.push_back(CursorRow{r->Text(row, 0), r->Text(row, 1), r->Text(row, 2), r->Int(row, 3)});
  return rows;
}

// ---- outbox and dead letters ----

// One statement for every filter, each narrowing the scan of outbox_by_system (system, id),
// which yields the due rows oldest first (by id, the store's own order of first queueing:
// callers' created_ms may tie or go backwards). $4 is NULL for every entity.
Result<std::vector<OutboxItem>> PostgresStore::DueOutbox(const OutboxFilter& filter) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  static const std::string sql =
      std::string("SELECT ") + kOutboxColumns +
      " FROM outbox WHERE system = $1 AND next_attempt_ms <= $2 "
      "AND ($4::text IS NULL OR entity = $4) AND (NOT $5::boolean OR op = 'delete') "
      "ORDER BY id LIMIT $3";
  Params params;
  params.Text(filter.system).Int(filter.now_ms);
  Limit(params, filter.limit);
  if (filter.entity.has_value()) {
    params.Text(*filter.entity);
  } else {
    params.Null();
  }
  params.Bool(filter.deletes_only);
  auto r = Run(sql, params,
               "reading the due outbox of " + filter.system +
                   (filter.entity.has_value() ? " " + *filter.entity : ""));
  if (!r.ok()) return r.status();
  std::vector<OutboxItem> items;
  items.reserve(static_cast<size_t>(r->size()));
  for (int row = 0; row < r->size(); ++row) {
    auto item = ReadOutboxRow(*r, row);
    if (!item.ok()) return item.status();
    items.push_back(std::move(*item));
  }
  return items;
}

Result<std::optional<OutboxItem>> PostgresStore::PendingOutbox(const std::string& system,
                                                               const std::string& entity,
                                                               const std::string& canonical_id) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  static const std::string sql =
      std::string("SELECT ") + kOutboxColumns +
      " FROM outbox WHERE system = $1 AND entity = $2 AND canonical_id = $3";
  auto r = Run(sql, Params().Text(system).Text(entity).Text(canonical_id),
               "reading the queued write of " + entity + " " + canonical_id);
  if (!r.ok()) return r.status();
  if (r->size() == 0) return std::optional<OutboxItem>();
  auto item = ReadOutboxRow(*r, 0);
  if (!item.ok()) return item.status();
  return std::optional<OutboxItem>(std::move(*item));
}

Result<nlohmann::json> PostgresStore::OutboxCounts() {
  return CountBySystem("SELECT system, count(*) FROM outbox GROUP BY system ORDER BY system",
                       "counting outbox items");
}

Result<nlohmann::json> PostgresStore::DeadLetterCounts() {
  return CountBySystem("SELECT system, count(*) FROM dead_letters GROUP BY system ORDER BY system",
                       "counting dead letters");
}

Result<nlohmann::json> PostgresStore::CountBySystem(const char* sql, const char* what) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  auto r = Run(sql, Params(), what);
  if (!r.ok()) return r.status();
  json counts = json::object();
  for (int row = 0; row < r->size(); ++row) counts[r->Text(row, 0)] = r->Int(row, 1);
  return counts;
}

Result<std::vector<DeadLetter>> PostgresStore::ListDeadLetters(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  Params params;
  auto r = Run("SELECT id, item, reason, http_status, failed_ms FROM dead_letters ORDER BY id "
               "LIMIT $1",
               Limit(params, limit), "listing dead letters");
  if (!r.ok()) return r.status();
  std::vector<DeadLetter> letters;
  for (int row = 0; row < r->size(); ++row) {
    DeadLetter dl;
    dl.id = r->Int(row, 0);
    auto item = OutboxItemFromJson(r->Text(row, 1), "dead letter " + std::to_string(dl.id));
    if (!item.ok()) return item.status();
    dl.item = std::move(*item);
    dl.reason = r->Text(row, 2);
    dl.http_status = static_cast<int>(r->Int(row, 3));
    dl.failed_ms = r->Int(row, 4);
    letters.push_back(std::move(dl));
  }
  return letters;
}

Status PostgresStore::ReplayDeadLetter(int64_t dead_letter_id, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  return InWriteTransaction("replaying dead letter " + std::to_string(dead_letter_id),
                            [&]() { return ReplayLocked(dead_letter_id, now_ms); });
}

// A replay must never send a target older data than a write queued after the failure: "newest
// payload wins" holds across the dead letters too. When a newer write for the record exists
// (pending, or already delivered), the stale payload is dropped; a pending newer write is made due
// now with a fresh retry budget, which is what the operator asked for.
Status PostgresStore::ReplayLocked(int64_t dead_letter_id, int64_t now_ms) {
  const std::string what = "replaying dead letter " + std::to_string(dead_letter_id);
  auto letter = Run("SELECT item, seq FROM dead_letters WHERE id = $1",
                    Params().Int(dead_letter_id), what);
  if (!letter.ok()) return letter.status();
  if (letter->size() == 0) return Status(StatusCode::kNotFound, what + ": no such dead letter");
  auto parsed =
      OutboxItemFromJson(letter->Text(0, 0), "dead letter " + std::to_string(dead_letter_id));
  if (!parsed.ok()) return parsed.status();
  const OutboxItem item = std::move(*parsed);
  const int64_t seq = letter->Int(0, 1);

  auto latest = Run(
      "SELECT seq FROM outbox_latest WHERE system = $1 AND entity = $2 AND canonical_id = $3",
      Params().Text(item.system).Text(item.entity).Text(item.canonical_id), what);
  if (!latest.ok()) return latest.status();
  const int64_t latest_seq = latest->size() > 0 ? latest->Int(0, 0) : 0;

  if (latest_seq > seq) {
    auto r = Run(
        "UPDATE outbox SET attempts = 0, next_attempt_ms = $4, last_error = '' "
        "WHERE system = $1 AND entity = $2 AND canonical_id = $3",
        Params().Text(item.system).Text(item.entity).Text(item.canonical_id).Int(now_ms), what);
    if (!r.ok()) return r.status();
  } else {
    auto payload = DumpJson(item.payload, "the payload of dead letter " +
                                              std::to_string(dead_letter_id));
    if (!payload.ok()) return payload.status();
    CRMB_RETURN_IF_ERROR(UpsertOutbox(item, *payload, seq, now_ms));
  }
  return DeleteDeadLetter(dead_letter_id);
}

Result<std::optional<std::string>> PostgresStore::FindByMatchKey(const std::string& entity,
                                                                 const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  auto r = Run("SELECT canonical_id FROM match_keys WHERE entity = $1 AND match_key = $2",
               Params().Text(entity).Text(key), "finding a match key of " + entity);
  if (!r.ok()) return r.status();
  if (r->size() == 0) return std::optional<std::string>();
  return std::optional<std::string>(r->Text(0, 0));
}

// ---- stage history, audit, runs ----

Result<std::vector<StageTransition>> PostgresStore::StageHistory(const std::string& entity,
                                                                 const std::string& canonical_id) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  auto r = Run(
      "SELECT system, from_stage, to_stage, at_ms, imported::int FROM stage_history "
      "WHERE entity = $1 AND canonical_id = $2 ORDER BY at_ms, id",
      Params().Text(entity).Text(canonical_id),
      "reading the stage history of " + entity + " " + canonical_id);
  if (!r.ok()) return r.status();
  std::vector<StageTransition> history;
  for (int row = 0; row < r->size(); ++row) {
    history.push_back(StageTransition{entity, canonical_id, r->Text(row, 0), r->Text(row, 1),
                                      r->Text(row, 2), r->Int(row, 3), r->Int(row, 4) != 0});
  }
  return history;
}

Result<std::vector<StageTransition>> PostgresStore::AllStageHistory(const std::string& entity) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  // In the order of stage_history_by_record: one index range scan, no sort.
  auto r = Run(
      "SELECT canonical_id, system, from_stage, to_stage, at_ms, imported::int FROM stage_history "
      "WHERE entity = $1 ORDER BY canonical_id, at_ms, id",
      Params().Text(entity), "reading the stage history of every " + entity);
  if (!r.ok()) return r.status();
  std::vector<StageTransition> history;
  for (int row = 0; row < r->size(); ++row) {
    history.push_back(StageTransition{entity, r->Text(row, 0), r->Text(row, 1), r->Text(row, 2),
                                      r->Text(row, 3), r->Int(row, 4), r->Int(row, 5) != 0});
  }
  return history;
}

Result<std::vector<AuditEntry>> PostgresStore::ListAudit(int64_t since_ms, int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  Params params;
  params.Int(since_ms);
  auto r = Run(
      "SELECT id, at_ms, action, system, subject, detail FROM audit WHERE at_ms >= $1 "
      "ORDER BY at_ms, id LIMIT $2",
      Limit(params, limit), "reading the audit trail");
  if (!r.ok()) return r.status();
  std::vector<AuditEntry> out;
  for (int row = 0; row < r->size(); ++row) {
    AuditEntry e;
    e.id = r->Int(row, 0);
    e.at_ms = r->Int(row, 1);
    e.action = r->Text(row, 2);
    e.system = r->Text(row, 3);
    e.subject = r->Text(row, 4);
    auto detail = ParseJsonColumn(*r, row, 5, "audit entry " + std::to_string(e.id));
    if (!detail.ok()) return detail.status();
    e.detail = std::move(*detail);
    out.push_back(std::move(e));
  }
  return out;
}

Result<int64_t> PostgresStore::BeginRun(const std::string& mode, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  auto r = Run(
      "INSERT INTO runs (mode, started_ms, finished_ms, outcome, counts, error) "
      "VALUES ($1, $2, 0, 'running', '{}', '') RETURNING id",
      Params().Text(mode).Int(now_ms), "recording the start of a " + mode + " run");
  if (!r.ok()) return r.status();
  return r->Int(0, 0);
}

Status PostgresStore::FinishRun(const RunRecord& run) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  const std::string what = "recording the end of run " + std::to_string(run.id);
  auto counts = DumpJson(run.counts, "the counts of run " + std::to_string(run.id));
  if (!counts.ok()) return counts.status();
  auto r = Run(
      "UPDATE runs SET finished_ms = $2, outcome = $3, counts = $4, error = $5 WHERE id = $1",
      Params().Int(run.id).Int(run.finished_ms).Text(run.outcome).Text(*counts).Text(run.error),
      what);
  if (!r.ok()) return r.status();
  if (r->Affected() == 0) return Status(StatusCode::kNotFound, what + ": no such run");
  return Status::Ok();
}

Result<std::vector<RunRecord>> PostgresStore::RecentRuns(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  Params params;
  auto r = Run(
      "SELECT id, mode, started_ms, finished_ms, outcome, counts, error FROM runs "
      "ORDER BY id DESC LIMIT $1",
      Limit(params, limit), "listing recent runs");
  if (!r.ok()) return r.status();
  std::vector<RunRecord> runs;
  for (int row = 0; row < r->size(); ++row) {
    RunRecord run;
    run.id = r->Int(row, 0);
    run.mode = r->Text(row, 1);
    run.started_ms = r->Int(row, 2);
    run.finished_ms = r->Int(row, 3);
    run.outcome = r->Text(row, 4);
    auto counts = ParseJsonColumn(*r, row, 5, "the counts of run " + std::to_string(run.id));
    if (!counts.ok()) return counts.status();
    run.counts = std::move(*counts);
    run.error = r->Text(row, 6);
    runs.push_back(std::move(run));
  }
  return runs;
}

// ---- lease ----

Result<int> PostgresStore::AddWebhookEvents(const std::vector<WebhookEvent>& events) {
  CRMB_RETURN_IF_ERROR(CheckWebhookEvents(events));
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  int added = 0;
  const std::string doing = "storing " + std::to_string(events.size()) + " webhook event(s)";
  CRMB_RETURN_IF_ERROR(InTransaction("BEGIN", doing, [&]() -> Status {
    for (const WebhookEvent& e : events) {
      auto r = Run(
          "INSERT INTO webhook_events (system, dedupe_key, object, record_id, kind, occurred_ms, "
          "received_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) "
          "ON CONFLICT (system, dedupe_key) DO NOTHING",
          Params()
              .Text(e.system)
              .Text(e.dedupe_key)
              .Text(e.object)
              .Text(e.record_id)
              .Text(e.kind)
              .Int(e.occurred_ms)
              .Int(e.received_ms),
          doing);
      if (!r.ok()) return r.status();
      added += static_cast<int>(r->Affected());
    }
    return Status::Ok();
  }));
  return added;
}

Result<std::vector<WebhookEvent>> PostgresStore::PendingWebhookEvents(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  Params params;
  auto r = Run(
      "SELECT id, system, dedupe_key, object, record_id, kind, occurred_ms, received_ms "
      "FROM webhook_events WHERE processed_ms = 0 ORDER BY id LIMIT $1",
      Limit(params, limit), "listing pending webhook events");
  if (!r.ok()) return r.status();
  std::vector<WebhookEvent> events;
  for (int row = 0; row < r->size(); ++row) {
    WebhookEvent e;
    e.id = r->Int(row, 0);
    e.system = r->Text(row, 1);
    e.dedupe_key = r->Text(row, 2);
    e.object = r->Text(row, 3);
    e.record_id = r->Text(row, 4);
    e.kind = r->Text(row, 5);
    e.occurred_ms = r->Int(row, 6);
    e.received_ms = r->Int(row, 7);
    events.push_back(std::move(e));
  }
  return events;
}

Status PostgresStore::FinishWebhookEvents(int64_t up_to_id, int64_t now_ms, int64_t keep_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  const std::string doing = "marking webhook events up to " + std::to_string(up_to_id) + " done";
  return InTransaction("BEGIN", doing, [&]() -> Status {
    auto done = Run("UPDATE webhook_events SET processed_ms = $2 WHERE processed_ms = 0 AND id <= $1",
                    Params().Int(up_to_id).Int(std::max<int64_t>(now_ms, 1)), doing);
    if (!done.ok()) return done.status();
    auto old = Run("DELETE FROM webhook_events WHERE processed_ms > 0 AND processed_ms < $1",
                   Params().Int(now_ms - keep_ms), "forgetting old webhook events");
    return old.ok() ? Status::Ok() : old.status();
  });
}

Result<bool> PostgresStore::AcquireLease(const std::string& holder, int64_t now_ms,
                                         int64_t ttl_ms) {
  if (holder.empty() || ttl_ms <= 0)
    return Status(StatusCode::kInvalidArgument, "a lease needs a holder and a positive ttl");
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  if (!fence_.tenant.empty()) {
    // The tenant's claim made this worker its one holder: the lease goes with the epoch, whoever
    // held it before (a killed worker's lease need not run out twice).
    Status s = InTransaction("BEGIN", "taking the lease for " + holder, [&]() -> Status {
      CRMB_RETURN_IF_ERROR(CheckFence("taking the lease"));
      return Run("INSERT INTO lease AS l (id, holder, acquired_ms, expires_ms) "
                 "VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET "
                 "acquired_ms = CASE WHEN l.holder = excluded.holder "
                 "AND l.expires_ms > excluded.acquired_ms "
                 "THEN l.acquired_ms ELSE excluded.acquired_ms END, "
                 "holder = excluded.holder, expires_ms = excluded.expires_ms",
                 Params().Text(holder).Int(now_ms).Int(now_ms + ttl_ms),
                 "taking the lease for " + holder)
          .status();
    });
    if (refused_) {
      refused_ = false;  // not a commit refused: nothing was to be written
      return false;
    }
    if (!s.ok()) return s;
    return true;
  }
  // One statement, so the check and the take are one atomic step across connections: of two
  // inserting at once, the second waits for the first's row and then finds it in the DO UPDATE's
  // WHERE, which admits only a renewal or an expired lease. SET expressions read the old row, so
  // acquired_ms is kept on a live renewal. A row comes back only when the lease was taken.
  auto r = Run(
      "INSERT INTO lease AS l (id, holder, acquired_ms, expires_ms) VALUES (1, $1, $2, $3) "
      "ON CONFLICT (id) DO UPDATE SET "
      "acquired_ms = CASE WHEN l.holder = excluded.holder AND l.expires_ms > excluded.acquired_ms "
      "THEN l.acquired_ms ELSE excluded.acquired_ms END, "
      "holder = excluded.holder, expires_ms = excluded.expires_ms "
      "WHERE l.holder = excluded.holder OR l.expires_ms <= excluded.acquired_ms "
      "RETURNING holder",
      Params().Text(holder).Int(now_ms).Int(now_ms + ttl_ms), "taking the lease for " + holder);
  if (!r.ok()) return r.status();
  return r->size() == 1;
}

Status PostgresStore::ReleaseLease(const std::string& holder) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  // Releasing a lease one does not hold (any more) changes nothing, so it is not an error.
  auto r = Run("DELETE FROM lease WHERE id = 1 AND holder = $1", Params().Text(holder),
               "releasing the lease of " + holder);
  return r.status();
}

Result<std::optional<LeaseInfo>> PostgresStore::GetLease() {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(EnsureConnected());
  auto r = Run("SELECT holder, acquired_ms, expires_ms FROM lease WHERE id = 1", Params(),
               "reading the lease");
  if (!r.ok()) return r.status();
  if (r->size() == 0) return std::optional<LeaseInfo>();
  return std::optional<LeaseInfo>(LeaseInfo{r->Text(0, 0), r->Int(0, 1), r->Int(0, 2)});
}

}  // namespace

int PostgresSchemaVersionKnown() { return kKnownSchemaVersion; }

bool IsPostgresUrl(const std::string& location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

std::string RedactPostgresUrl(const std::string& url) { return pg::ShownUrl(url); }

bool PostgresUrlHasPassword(const std::string& url) {
  pg::ConninfoPtr parsed = pg::ParseConninfo(url);
  return parsed && !pg::ConninfoValue(parsed.get(), "password").empty();
}

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                 const PostgresStoreOptions& options) {
  if (url.empty())
    return Status(StatusCode::kInvalidArgument, "the PostgreSQL state store url is empty");
  if (!options.schema.empty() && !pg::IsSqlName(options.schema)) {
    return Status(StatusCode::kInvalidArgument,
                  "the state store schema \"" + options.schema +
                      "\" is not a lowercase name of letters, digits and _ (at most 63)");
  }
  auto session = pg::Session::Open(url, options.connect_timeout_s, "the PostgreSQL state store",
                                   "state store");
  if (!session.ok()) return session.status();
  Clock* clock = options.clock != nullptr ? options.clock : Clock::Real();
  auto store = std::make_unique<PostgresStore>(std::move(*session), clock, options);
  Status s = store->Init();
  if (!s.ok()) {
    // Whatever stops the store from opening needs someone's attention, unless it is passing.
    if (s.code() != StatusCode::kUnavailable && s.code() != StatusCode::kFailedPrecondition)
      s = Status(StatusCode::kFailedPrecondition, s.message());
    return s;
  }
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url) {
  return OpenPostgresStore(url, PostgresStoreOptions());
}

}  // namespace crmbridge
