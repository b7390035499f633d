// SqliteStore: the SQLite backend of Store (see state/store.h and state/sqlite_store.h).
//
// Every statement is prepared once per connection and cached; values are always bound, never
// spliced into SQL text. The one exception is `PRAGMA user_version = N`, because PRAGMA takes no
// bound parameters; N there is a constant from kMigrations, never input.
#include "state/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>
#include <system_error>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "src/core/hash.h"
#include "src/core/ids.h"
#include "state/backend_common.h"

namespace crmbridge {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Schema migrations: the single place the schema is defined. Append only: a released migration is
// never edited, since files in the field already carry it. Migration i (1-based) has version i;
// PRAGMA user_version records the last one applied. Each runs in its own transaction.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

const Migration kMigrations[] = {
    {1, "initial schema", R"sql(
-- (entity, canonical id) <-> (system, native id). native_id is NULL (read back as "") until the
-- system has assigned one, so links still waiting for their create do not collide on the UNIQUE key.
CREATE TABLE links (
  entity            TEXT NOT NULL,
  canonical_id      TEXT NOT NULL,
  system            TEXT NOT NULL,
  native_id         TEXT,
  last_read_hash    TEXT NOT NULL DEFAULT '',
  last_written_hash TEXT NOT NULL DEFAULT '',
  updated_ms        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (entity, canonical_id, system),
  UNIQUE (system, entity, native_id)
);

CREATE TABLE snapshots (
  entity       TEXT NOT NULL,
  canonical_id TEXT NOT NULL,
  fields       TEXT NOT NULL,  -- JSON object: canonical field -> value
  seen         TEXT NOT NULL DEFAULT '{}',  -- JSON: system -> canonical field -> value
  updated_ms   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (entity, canonical_id)
);

CREATE TABLE cursors (
  system     TEXT NOT NULL,
  object     TEXT NOT NULL,
  cursor     TEXT NOT NULL,
  updated_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (system, object)
);

-- One pending write per (system, entity, canonical_id): Enqueue upserts, so the newest payload
-- wins. AUTOINCREMENT so ids are never reused and a stale id can never name a newer row. seq is the
-- store-wide order in which payloads were enqueued (see counters), which lets a replayed dead letter
-- tell whether a newer write for the same record exists.
CREATE TABLE outbox (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  system          TEXT NOT NULL,
  object          TEXT NOT NULL,
  entity          TEXT NOT NULL,
  canonical_id    TEXT NOT NULL,
  op              TEXT NOT NULL,
  native_id       TEXT NOT NULL DEFAULT '',
  idempotency_key TEXT NOT NULL DEFAULT '',
  payload         TEXT NOT NULL,  -- JSON object: native fields to write
  payload_hash    TEXT NOT NULL DEFAULT '',
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT NOT NULL DEFAULT '',
  created_ms      INTEGER NOT NULL DEFAULT 0,
  seq             INTEGER NOT NULL,
  UNIQUE (system, entity, canonical_id)
);
CREATE INDEX outbox_by_system ON outbox (system, id);

-- The seq of the newest payload ever enqueued per record, delivered or not.
CREATE TABLE outbox_latest (
  system       TEXT NOT NULL,
  entity       TEXT NOT NULL,
  canonical_id TEXT NOT NULL,
  seq          INTEGER NOT NULL,
  PRIMARY KEY (system, entity, canonical_id)
);

CREATE TABLE dead_letters (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  outbox_id    INTEGER NOT NULL,
  seq          INTEGER NOT NULL,
  system       TEXT NOT NULL,
  entity       TEXT NOT NULL,
  canonical_id TEXT NOT NULL,
  item         TEXT NOT NULL,  -- the OutboxItem as JSON, as last attempted
  reason       TEXT NOT NULL,
  http_status  INTEGER NOT NULL DEFAULT 0,
  attempts     INTEGER NOT NULL,
  failed_ms    INTEGER NOT NULL
);
CREATE INDEX dead_letters_by_record ON dead_letters (system, entity, canonical_id);

CREATE TABLE runs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  mode        TEXT NOT NULL,
  started_ms  INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  outcome     TEXT NOT NULL,
  counts      TEXT NOT NULL DEFAULT '{}',  -- JSON object
  error       TEXT NOT NULL DEFAULT ''
);

CREATE TABLE stage_history (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  entity       TEXT NOT NULL,
  canonical_id TEXT NOT NULL,
  system       TEXT NOT NULL,
  from_stage   TEXT NOT NULL DEFAULT '',
  to_stage     TEXT NOT NULL,
  at_ms        INTEGER NOT NULL
);
CREATE INDEX stage_history_by_record ON stage_history (entity, canonical_id, at_ms, id);

CREATE TABLE lease (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  holder      TEXT NOT NULL,
  acquired_ms INTEGER NOT NULL,
  expires_ms  INTEGER NOT NULL
);

CREATE TABLE counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('outbox_seq', 0);
)sql"},
    {2, "unverified writes awaiting read-back", R"sql(
ALTER TABLE snapshots ADD COLUMN unverified TEXT NOT NULL DEFAULT '{}';
)sql"},
    {3, "per-field change times for conflict resolution", R"sql(
ALTER TABLE snapshots ADD COLUMN changed_ms TEXT NOT NULL DEFAULT '{}';
)sql"},
    {4, "match keys for first-time identity resolution", R"sql(
CREATE TABLE match_keys (
  entity       TEXT NOT NULL,
  match_key    TEXT NOT NULL,  -- normalized values of the match fields
  canonical_id TEXT NOT NULL,
  PRIMARY KEY (entity, match_key)
);
)sql"},
    {5, "deleted records", R"sql(
ALTER TABLE snapshots ADD COLUMN deleted_ms INTEGER NOT NULL DEFAULT 0;
)sql"},
    {6, "the audit trail of portal access", R"sql(
CREATE TABLE audit (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms        INTEGER NOT NULL,
  action       TEXT NOT NULL,  -- grant, change, revoke, reset
  system       TEXT NOT NULL,
  subject      TEXT NOT NULL,  -- the canonical record it concerns (a contact)
  detail       TEXT NOT NULL   -- JSON: user, property, email, reason
);
CREATE INDEX audit_by_time ON audit (at_ms);
)sql"},
    {7, "values sent whose outcome is unknown", R"sql(
ALTER TABLE snapshots ADD COLUMN in_doubt TEXT NOT NULL DEFAULT '{}';
)sql"},
    {8, "settled digests, and the few snapshots with unverified writes indexed", R"sql(
-- SettledDigests as "system=digest;system=digest" ('' none settled); '?' for a snapshot stored
-- before: it is decoded when read, and gets its digests when next stored.
ALTER TABLE snapshots ADD COLUMN settled TEXT NOT NULL DEFAULT '?';
CREATE INDEX snapshots_unverified ON snapshots (entity, canonical_id) WHERE unverified != '{}';
)sql"},
    // Nothing to convert: rows stored before are read as they are. The version tells an older
    // crmbridge that it cannot read what is stored from now on.
    {9, "seen values and change times stored without repeating the fields", R"sql(
SELECT 1;
)sql"},
    // Links and the newest outbox sequence per record are looked up by their primary key: stored
    // in it (WITHOUT ROWID), each row is one b-tree entry instead of a row and an index entry
    // that repeats the key. (Snapshots stay rowid tables: their rows are large, and stored in
    // the key they made a first sync about a fifth slower.)
    {10, "links and outbox_latest stored in their primary key", R"sql(
CREATE TABLE links_by_key (
  entity            TEXT NOT NULL,
  canonical_id      TEXT NOT NULL,
  system            TEXT NOT NULL,
  native_id         TEXT,
  last_read_hash    TEXT NOT NULL DEFAULT '',
  last_written_hash TEXT NOT NULL DEFAULT '',
  updated_ms        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (entity, canonical_id, system),
  UNIQUE (system, entity, native_id)
) WITHOUT ROWID;
INSERT INTO links_by_key SELECT entity, canonical_id, system, native_id, last_read_hash,
  last_written_hash, updated_ms FROM links;
DROP TABLE links;
ALTER TABLE links_by_key RENAME TO links;

CREATE TABLE outbox_latest_by_key (
  system       TEXT NOT NULL,
  entity       TEXT NOT NULL,
  canonical_id TEXT NOT NULL,
  seq          INTEGER NOT NULL,
  PRIMARY KEY (system, entity, canonical_id)
) WITHOUT ROWID;
INSERT INTO outbox_latest_by_key SELECT system, entity, canonical_id, seq FROM outbox_latest;
DROP TABLE outbox_latest;
ALTER TABLE outbox_latest_by_key RENAME TO outbox_latest;
)sql"},
    // Two tables that cost a row or an index entry per record and carried little:
    // - stage history is stored in its key (entity, canonical id, time, order recorded), read in
    //   that order, with no second index repeating it;
    // - outbox_latest is kept only for records with a dead letter: it is read only to tell whether
    //   a replay is stale, so a record that never failed needs no row.
    {11, "stage history stored in its key; newest outbox payloads kept for dead letters only", R"sql(
CREATE TABLE stage_history_by_key (
  entity       TEXT NOT NULL,
  canonical_id TEXT NOT NULL,
  at_ms        INTEGER NOT NULL,
  n            INTEGER NOT NULL,  -- the order recorded, per record (ties at the same at_ms)
  system       TEXT NOT NULL,
  from_stage   TEXT NOT NULL DEFAULT '',
  to_stage     TEXT NOT NULL,
  PRIMARY KEY (entity, canonical_id, at_ms, n)
) WITHOUT ROWID;
INSERT INTO stage_history_by_key SELECT entity, canonical_id, at_ms, id, system, from_stage,
  to_stage FROM stage_history;
DROP TABLE stage_history;
ALTER TABLE stage_history_by_key RENAME TO stage_history;
DELETE FROM sqlite_sequence WHERE name = 'stage_history';

DELETE FROM outbox_latest WHERE NOT EXISTS (SELECT 1 FROM dead_letters d
  WHERE d.system = outbox_latest.system AND d.entity = outbox_latest.entity
    AND d.canonical_id = outbox_latest.canonical_id);
)sql"},
    // An unchanged record is told by its link alone: the digest of the values its system is
    // settled on moves from the snapshot (one string for every system) to each link, so the page
    // lookup by native id reads no snapshot row. NULL: not known (the snapshot is merged once and
    // stored again); '': not settled; else the digest (ShortHash, 16 characters).
    {12, "settled digests kept on each link", R"sql(
ALTER TABLE links ADD COLUMN settled TEXT;
UPDATE links SET settled = (SELECT CASE
    WHEN s.settled = '?' THEN NULL
    WHEN instr(';' || s.settled || ';', ';' || links.system || '=') > 0
      THEN substr(';' || s.settled || ';',
                  instr(';' || s.settled || ';', ';' || links.system || '=') +
                    length(links.system) + 2, 16)
    ELSE '' END
  FROM snapshots AS s WHERE s.entity = links.entity AND s.canonical_id = links.canonical_id);
ALTER TABLE snapshots DROP COLUMN settled;
)sql"},
    // Changes announced by webhook, kept until a run has read their records again; processed ones
    // stay a while so that a repeated delivery is known as one.
    {13, "webhook events", R"sql(
CREATE TABLE webhook_events (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  system       TEXT NOT NULL,
  dedupe_key   TEXT NOT NULL,
  object       TEXT NOT NULL,
  record_id    TEXT NOT NULL,
  kind         TEXT NOT NULL,
  occurred_ms  INTEGER NOT NULL,
  received_ms  INTEGER NOT NULL,
  processed_ms INTEGER NOT NULL DEFAULT 0,  -- 0: pending
  UNIQUE (system, dedupe_key)
);
CREATE INDEX webhook_events_by_state ON webhook_events (processed_ms, id);
)sql"},
    // Moves taken from a system's own history when crmbridge first saw the record.
    {14, "imported stage history", R"sql(
ALTER TABLE stage_history ADD COLUMN imported INTEGER NOT NULL DEFAULT 0;
)sql"},
    // Each key starts with the column that tells its rows apart: the canonical id in the primary
    // key, the native id in the native-id index. SQLite compares a key column by column, so keys
    // led by the system and the entity, the same in every row of a page's lookup, cost every
    // comparison two column compares more than they tell; an idle run's lookups take about 7%
    // fewer instructions. The lookups are the same: by native id, system and entity; by canonical
    // id and entity, with or without the system.
    {15, "links keyed by canonical id and by native id first", R"sql(
CREATE TABLE links_rekeyed (
  entity            TEXT NOT NULL,
  canonical_id      TEXT NOT NULL,
  system            TEXT NOT NULL,
  native_id         TEXT,
  last_read_hash    TEXT NOT NULL DEFAULT '',
  last_written_hash TEXT NOT NULL DEFAULT '',
  updated_ms        INTEGER NOT NULL DEFAULT 0,
  settled           TEXT,
  PRIMARY KEY (canonical_id, entity, system),
  UNIQUE (native_id, system, entity)
) WITHOUT ROWID;
INSERT INTO links_rekeyed (entity, canonical_id, system, native_id, last_read_hash,
  last_written_hash, updated_ms, settled)
  SELECT entity, canonical_id, system, native_id, last_read_hash, last_written_hash, updated_ms,
    settled FROM links;
DROP TABLE links;
ALTER TABLE links_rekeyed RENAME TO links;
)sql"},
    // A canonical id is in seven places per record (two links, the native-id index's two entries,
    // the snapshot, its key, its stage history); as 36 characters of text it was a quarter of the
    // state. Canonical ids, and the native ids of links, that are UUIDs as FormatUuid writes them
    // (crmbridge's own ids, Dynamics 365's GUIDs) are stored as their 16 bytes; any other id stays
    // text. Stmt::Id binds and ColId reads them; crmbridge_id() is that conversion in SQL. Both
    // keep an id's order among UUIDs, so every ORDER BY reads as before.
    {16, "UUIDs stored as 16 bytes", R"sql(
UPDATE links SET canonical_id = crmbridge_id(canonical_id), native_id = crmbridge_id(native_id)
  WHERE canonical_id IS NOT crmbridge_id(canonical_id) OR native_id IS NOT crmbridge_id(native_id);
UPDATE snapshots SET canonical_id = crmbridge_id(canonical_id)
  WHERE canonical_id IS NOT crmbridge_id(canonical_id);
UPDATE stage_history SET canonical_id = crmbridge_id(canonical_id)
  WHERE canonical_id IS NOT crmbridge_id(canonical_id);
UPDATE outbox SET canonical_id = crmbridge_id(canonical_id)
  WHERE canonical_id IS NOT crmbridge_id(canonical_id);
UPDATE outbox_latest SET canonical_id = crmbridge_id(canonical_id)
  WHERE canonical_id IS NOT crmbridge_id(canonical_id);
UPDATE dead_letters SET canonical_id = crmbridge_id(canonical_id)
  WHERE canonical_id IS NOT crmbridge_id(canonical_id);
UPDATE match_keys SET canonical_id = crmbridge_id(canonical_id)
  WHERE canonical_id IS NOT crmbridge_id(canonical_id);
)sql"},
    // HashJson keeps the first 128 bits of a SHA-256, not all 256: two 16-byte hashes per link
    // instead of two of 32. A hash stored before becomes its first half, which is what HashJson
    // now gives for the same value, so an unchanged record still reads as unchanged. Outbox
    // payload hashes (text) and those inside dead letters' items are cut the same way, so that a
    // write delivered after the upgrade leaves the hash the next plan compares with.
    {17, "content hashes of 128 bits", R"sql(
UPDATE links SET last_read_hash = substr(last_read_hash, 1, 16)
  WHERE typeof(last_read_hash) = 'blob' AND length(last_read_hash) = 32;
UPDATE links SET last_written_hash = substr(last_written_hash, 1, 16)
  WHERE typeof(last_written_hash) = 'blob' AND length(last_written_hash) = 32;
UPDATE links SET last_read_hash = substr(last_read_hash, 1, 32)
  WHERE typeof(last_read_hash) = 'text' AND length(last_read_hash) = 64;
UPDATE links SET last_written_hash = substr(last_written_hash, 1, 32)
  WHERE typeof(last_written_hash) = 'text' AND length(last_written_hash) = 64;
UPDATE outbox SET payload_hash = substr(payload_hash, 1, 32) WHERE length(payload_hash) = 64;
UPDATE dead_letters SET item = json_set(item, '$.payload_hash',
    substr(json_extract(item, '$.payload_hash'), 1, 32))
  WHERE json_valid(item) AND length(json_extract(item, '$.payload_hash')) = 64;
)sql"},
    // Every link, snapshot and stage move repeated its entity's and system's names ("onboarding",
    // "dynamics365"), in its row and again in each index entry: about a seventh of the state. The
    // tables of a row per record keep each name's number in `names` instead, one byte where the
    // name took ten; NameId binds and NameOf reads them. The other tables, a row per pending
    // write or run, keep the names as text.
    {18, "entity and system names stored as numbers in the tables of a row per record", R"sql(
CREATE TABLE names (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);
INSERT INTO names (name) SELECT entity FROM links UNION SELECT system FROM links
  UNION SELECT entity FROM snapshots UNION SELECT entity FROM stage_history
  UNION SELECT system FROM stage_history;

CREATE TABLE links_named (
  entity            INTEGER NOT NULL,  -- names.id
  canonical_id      TEXT NOT NULL,
  system            INTEGER NOT NULL,  -- names.id
  native_id         TEXT,
  last_read_hash    TEXT NOT NULL DEFAULT '',
  last_written_hash TEXT NOT NULL DEFAULT '',
  updated_ms        INTEGER NOT NULL DEFAULT 0,
  settled,                             -- NULL, '', 8 bytes, or 1 (schema 20)
  PRIMARY KEY (canonical_id, entity, system),
  UNIQUE (native_id, system, entity)
) WITHOUT ROWID;
INSERT INTO links_named SELECT e.id, l.canonical_id, s.id, l.native_id, l.last_read_hash,
  l.last_written_hash, l.updated_ms, l.settled
  FROM links AS l JOIN names AS e ON e.name = l.entity JOIN names AS s ON s.name = l.system;
DROP TABLE links;
ALTER TABLE links_named RENAME TO links;

CREATE TABLE snapshots_named (
  entity       INTEGER NOT NULL,  -- names.id
  canonical_id TEXT NOT NULL,
  fields       TEXT NOT NULL,
  seen         TEXT NOT NULL DEFAULT '{}',
  updated_ms   INTEGER NOT NULL DEFAULT 0,
  unverified   TEXT NOT NULL DEFAULT '{}',
  changed_ms   TEXT NOT NULL DEFAULT '{}',
  deleted_ms   INTEGER NOT NULL DEFAULT 0,
  in_doubt     TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (entity, canonical_id)
);
INSERT INTO snapshots_named SELECT e.id, s.canonical_id, s.fields, s.seen, s.updated_ms,
  s.unverified, s.changed_ms, s.deleted_ms, s.in_doubt
  FROM snapshots AS s JOIN names AS e ON e.name = s.entity;
DROP TABLE snapshots;
ALTER TABLE snapshots_named RENAME TO snapshots;
CREATE INDEX snapshots_unverified ON snapshots (entity, canonical_id) WHERE unverified != '{}';

CREATE TABLE stage_history_named (
  entity       INTEGER NOT NULL,  -- names.id
  canonical_id TEXT NOT NULL,
  at_ms        INTEGER NOT NULL,
  n            INTEGER NOT NULL,
  system       INTEGER NOT NULL,  -- names.id
  from_stage   TEXT NOT NULL DEFAULT '',
  to_stage     TEXT NOT NULL,
  imported     INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (entity, canonical_id, at_ms, n)
) WITHOUT ROWID;
INSERT INTO stage_history_named SELECT e.id, h.canonical_id, h.at_ms, h.n, s.id, h.from_stage,
  h.to_stage, h.imported
  FROM stage_history AS h JOIN names AS e ON e.name = h.entity JOIN names AS s ON s.name = h.system;
DROP TABLE stage_history;
ALTER TABLE stage_history_named RENAME TO stage_history;
)sql"},
    // Nothing to convert: rows stored before are read as they are, and take the new form when
    // next stored. A snapshot's fields, and its seen values per system, are written as arrays of
    // [name number, value, ...] (KeysAsNumbers), not objects that spell out each field's and
    // system's name; change times all at the snapshot's updated_ms as "=". The version tells an
    // older crmbridge that it cannot read what is stored from now on.
    {19, "snapshot field and system names stored as numbers", R"sql(
SELECT 1;
)sql"},
    // A link's settled digest (16 hex digits) as its 8 bytes, or, where it is the start of the
    // link's last read hash (as it is for a record read and not changed since), as the integer 1:
    // no bytes at all. crmbridge_digest() gives either.
    {20, "settled digests stored as 8 bytes, or as 1 for the start of the last read hash", R"sql(
UPDATE links SET settled = crmbridge_digest(settled, NULL, last_read_hash)
  WHERE typeof(settled) = 'text' AND length(settled) = 16;
)sql"},
};

constexpr int kKnownSchemaVersion = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

// ---------------------------------------------------------------------------------------------

// crmbridge_id(x): x as Stmt::Id binds it (a UUID's text as its 16 bytes, anything else as it is),
// for migration 16 to convert what was stored before.
void SqlCompactId(sqlite3_context* ctx, int, sqlite3_value** argv) {
  unsigned char bytes[16];
  if (sqlite3_value_type(argv[0]) == SQLITE_TEXT) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
    const int n = sqlite3_value_bytes(argv[0]);
    if (ParseUuid(std::string_view(text, static_cast<size_t>(n)), bytes)) {
      sqlite3_result_blob(ctx, bytes, sizeof bytes, SQLITE_TRANSIENT);
      return;
    }
  }
  sqlite3_result_value(ctx, argv[0]);
}

// A settled digest (a ShortHash: 16 hex digits) as the 8 bytes links store from schema 20.
constexpr int kDigestBytes = 8;

// A link's `settled` of 1: its digest is the first kDigestBytes of its last read hash.
constexpr int kSettledIsReadHash = 1;

// The 8-byte digest `bytes` as a link stores it: kSettledIsReadHash when `read_hash` (the link's
// last_read_hash column) starts with it, else the bytes.
void ResultDigest(sqlite3_context* ctx, const unsigned char* bytes, sqlite3_value* read_hash) {
  if (sqlite3_value_type(read_hash) == SQLITE_BLOB &&
      sqlite3_value_bytes(read_hash) >= kDigestBytes &&
      std::memcmp(sqlite3_value_blob(read_hash), bytes, kDigestBytes) == 0) {
    sqlite3_result_int(ctx, kSettledIsReadHash);
    return;
  }
  sqlite3_result_blob(ctx, bytes, kDigestBytes, SQLITE_TRANSIENT);
}

// crmbridge_digest(digests, system, last_read_hash): the digest `digests` (EncodeDigests:
// "n=hex;n=hex", each n a system's number) holds for `system`, as ResultDigest stores it; '' when
// it holds none. With a NULL `system`, the digest `digests` is itself (16 hex digits), for
// migration 20; any other text is returned as it is.
void SqlDigestOf(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  const std::string_view all(text == nullptr ? "" : text,
                             static_cast<size_t>(sqlite3_value_bytes(argv[0])));
  unsigned char bytes[kDigestBytes];
  if (sqlite3_value_type(argv[1]) == SQLITE_NULL) {
    if (sqlite3_value_type(argv[0]) == SQLITE_TEXT && all.size() == 2 * kDigestBytes &&
        ParseLowerHex(all, bytes)) {
      ResultDigest(ctx, bytes, argv[2]);
    } else {
      sqlite3_result_value(ctx, argv[0]);
    }
    return;
  }
  const std::string key = std::to_string(sqlite3_value_int64(argv[1])) + "=";
  for (size_t at = 0; at < all.size();) {
    const size_t end = std::min(all.find(';', at), all.size());
    const std::string_view entry = all.substr(at, end - at);
    if (entry.size() == key.size() + 2 * kDigestBytes && entry.substr(0, key.size()) == key &&
        ParseLowerHex(entry.substr(key.size()), bytes)) {
      ResultDigest(ctx, bytes, argv[2]);
      return;
    }
    at = end + 1;
  }
  sqlite3_result_text(ctx, "", 0, SQLITE_STATIC);
}

// What the caller should do next, per STYLE.md's code table.
StatusCode CodeForSqlite(int rc) {
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return StatusCode::kAlreadyExists;
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:  // another connection kept its lock past the busy timeout: retry later
    case SQLITE_LOCKED:
      return StatusCode::kUnavailable;
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
      return StatusCode::kInvalidArgument;
    case SQLITE_FULL:
      return StatusCode::kResourceExhausted;
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_IOERR:  // the disk or file needs someone's attention; retrying will not fix it
      return StatusCode::kFailedPrecondition;
    default:
      return StatusCode::kInternal;
  }
}

std::string ErrnoMessage(int err) { return std::error_code(err, std::generic_category()).message(); }

// A cached statement borrowed for one use. The destructor resets it: an un-reset SELECT would keep
// its read transaction open and pin the WAL. When preparing failed, binds do nothing and Step()
// returns the prepare error, so call sites need one error check, at Step().
class Stmt {
 public:
  Stmt(sqlite3_stmt* stmt, int prepare_rc) : s_(stmt), rc_(prepare_rc) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    if (s_ != nullptr) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }

  Stmt& Text(int i, const std::string& v) {
    if (s_ != nullptr && rc_ == SQLITE_OK)
      rc_ = sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // Binds NULL for "", for columns where "no value yet" must not collide on a UNIQUE key.
  Stmt& TextOrNull(int i, const std::string& v) {
    if (!v.empty()) return Text(i, v);
    return Null(i);
  }
  Stmt& Null(int i) {
    if (s_ != nullptr && rc_ == SQLITE_OK) rc_ = sqlite3_bind_null(s_, i);
    return *this;
  }
  Stmt& Int(int i, int64_t v) {
    if (s_ != nullptr && rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // A canonical id, or a link's native id, as schema 16 stores it: a UUID as crmbridge and
  // Dynamics 365 write one (ParseUuid) as its 16 bytes, anything else as text. Every statement
  // that stores or looks up one of those columns binds it so, so equal ids always meet.
  Stmt& Id(int i, const std::string& v) {
    unsigned char bytes[16];
    if (!ParseUuid(v, bytes)) return Text(i, v);
    if (s_ != nullptr && rc_ == SQLITE_OK)
      rc_ = sqlite3_bind_blob(s_, i, bytes, sizeof bytes, SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& IdOrNull(int i, const std::string& v) {
    if (!v.empty()) return Id(i, v);
    return Null(i);
  }

  // SQLITE_ROW, SQLITE_DONE, or an error code.
  int Step() { return rc_ != SQLITE_OK ? rc_ : sqlite3_step(s_); }

  std::string ColText(int col) const {
    const unsigned char* t = sqlite3_column_text(s_, col);
    if (t == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(t),
                       static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }
  int64_t ColInt(int col) const { return sqlite3_column_int64(s_, col); }
  // An id bound with Id(), as the text it was.
  std::string ColId(int col) const {
    if (sqlite3_column_type(s_, col) == SQLITE_BLOB) {
      const void* bytes = sqlite3_column_blob(s_, col);
      if (sqlite3_column_bytes(s_, col) == 16)
        return FormatUuid(static_cast<const unsigned char*>(bytes));
    }
    return ColText(col);
  }
  sqlite3_stmt* raw() const { return s_; }

 private:
  sqlite3_stmt* s_;
  int rc_;
};

// Checks an existing state file before SQLite sees it, and tightens it to 0600: the store holds
// customer data. A store is never empty once made (it is made whole under another name, then
// linked into place: CreateStoreFile), so an empty file is one truncated or replaced since.
// Opening it as a new store would create every record again in every system.
Status PrepareFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "cannot open state file " + path + ": " + ErrnoMessage(errno));
  }
  Status s;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    s = Status(StatusCode::kFailedPrecondition,
               "cannot stat state file " + path + ": " + ErrnoMessage(errno));
  } else if (!S_ISREG(st.st_mode)) {
    s = Status(StatusCode::kFailedPrecondition, "state file " + path + " is not a regular file");
  } else if (st.st_size == 0) {
    s = Status(StatusCode::kFailedPrecondition,
               "state file " + path +
                   " is empty (0 bytes): it was truncated or replaced, as crmbridge never leaves "
                   "one empty. Starting over on it would create every record again in every "
                   "system, so it is left as it is. Restore it from a backup (docs/OPERATIONS.md, "
                   "\"The state store\"); if no sync ever ran with it, remove it");
  } else if ((st.st_mode & 07777) != 0600 && ::fchmod(fd, 0600) != 0) {
    s = Status(StatusCode::kFailedPrecondition,
               "state file " + path + " is readable by others and cannot be made 0600: " +
                   ErrnoMessage(errno));
  }
  ::close(fd);
  return s;
}

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, std::string path, Clock* clock)
      : db_(db), path_(std::move(path)), clock_(clock) {}

  ~SqliteStore() override {
    for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
    for (sqlite3_stmt* stmt : retired_stmts_) sqlite3_finalize(stmt);
    sqlite3_close(db_);  // every statement is finalized, so this cannot be refused as busy
  }

  // Connection settings, schema version check, migrations. Called once, before sharing.
  Status Init(bool in_memory, int busy_timeout_ms);

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

  Result<std::optional<std::string>> GetCursor(const std::string& system,
                                               const std::string& object) override;
  Result<std::vector<CursorRow>> ListCursors() override;

  Result<std::vector<OutboxItem>> DueOutbox(const OutboxFilter& filter) override;
  Result<std::vector<AuditEntry>> ListAudit(int64_t since_ms, int limit) override;
  Result<nlohmann::json> OutboxCounts() override;

  Result<std::vector<DeadLetter>> ListDeadLetters(int limit) override;
  Result<nlohmann::json> DeadLetterCounts() override;
  // {system: n} from `sql`, which selects (system, count) rows.
  Result<nlohmann::json> CountBySystem(const char* sql, const char* what);
  Result<std::vector<Snapshot>> ListUnverified(const std::string& system,
                                               const std::string& entity) override;
  Result<std::optional<OutboxItem>> PendingOutbox(const std::string& system, const std::string& entity,
                                                  const std::string& canonical_id) override;
  Result<std::optional<std::string>> FindByMatchKey(const std::string& entity,
                                                    const std::string& key) override;
  Status ReplayDeadLetter(int64_t dead_letter_id, int64_t now_ms) override;

  Result<std::vector<StageTransition>> StageHistory(const std::string& entity,
                                                    const std::string& canonical_id) override;
  Result<std::vector<StageTransition>> AllStageHistory(const std::string& entity) override;
  Result<std::vector<Snapshot>> ListSnapshots(const std::string& entity) override;
  Result<std::vector<Snapshot>> ListSnapshotsAfter(const std::string& entity, const std::string& after,
                                                   int limit) override;

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
  Stmt Prepare(const char* sql);
  Status Error(int rc, const std::string& doing) const;
  // Runs a statement that returns no rows we need.
  Status Exec(const char* sql, const std::string& doing);
  // BEGIN IMMEDIATE (take the write lock up front, so the busy timeout applies now rather than
  // failing at the first write), body, COMMIT; ROLLBACK when anything fails.
  Status InTransaction(const std::string& doing, const std::function<Status()>& body);
  Status RunTransaction(const char* begin, const std::string& kind, const std::string& doing,
                        const std::function<Status()>& body);
  // BEGIN (deferred: a read transaction), body, COMMIT: the statements of `body` share one view
  // of the file and one lock instead of taking it each.
  Status InReadTransaction(const std::string& doing, const std::function<Status()>& body);
  Result<std::optional<Link>> FindLinkByNativeLocked(const std::string& system,
                                                     const std::string& entity,
                                                     const std::string& native_id);
  Result<std::optional<Snapshot>> GetSnapshotLocked(const std::string& entity,
                                                    const std::string& canonical_id);
  Result<int> UserVersion();
  Status Migrate();

  // Entity and system names as the numbers links, snapshots and stage history store (schema 18).
  // NameId gives a name's number, adding the name when it is new; names added in a transaction
  // that then rolls back are forgotten with it. KnownNameId gives 0, which no row holds, for a
  // name never stored. NameOf reads a number back; one this connection has not seen (added by
  // another process) is looked up again.
  Result<int64_t> NameId(const std::string& name);
  Result<int64_t> KnownNameId(const std::string& name);
  Result<std::string> NameOf(int64_t id);
  Status LoadNames();
  void RememberName(int64_t id, const std::string& name);
  Result<Link> ReadLinkRow(const Stmt& st);
  // A snapshot's object keyed by field or system names as the array [number, value, ...] of
  // schema 19, and back; anything but a non-empty object is kept as it is, and read back as it is
  // (an array read back is always one of these: the values they encode are objects).
  Result<json> KeysAsNumbers(const json& object);
  Result<json> KeysAsNames(json stored, const std::string& entity, const std::string& canonical_id);
  Result<Snapshot> ReadSnapshotRow(const Stmt& st, int first, const std::string& entity,
                                   const std::string& canonical_id);

  Status ApplyOp(const StateBatch::Op& op);
  Status PutLink(const Link& link);
  Status PutSnapshot(const Snapshot& snapshot);
  Status SetCursor(const CursorRow& cursor);
  Status Enqueue(const OutboxItem& item);
  Status UpsertOutbox(const OutboxItem& item, const std::string& payload, int64_t seq,
                      int64_t next_attempt_ms);
  Result<int64_t> NextSeq();
  Result<int64_t> CurrentSeq();
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
  sqlite3* const db_;
  const std::string path_;
  Clock* const clock_;
  // Prepared statements by the address of their SQL text: nearly every caller passes a literal or
  // a static string, so a lookup costs no copy and no hash of the text. A text at an address
  // reused by another (a temporary's) is told apart by comparing it with the statement's own.
  std::unordered_map<const char*, sqlite3_stmt*> stmts_;
  std::vector<sqlite3_stmt*> retired_stmts_;
  // Within one Apply: the outbox sequence numbers its Enqueue ops take, reserved from the counter
  // in one statement at the first of them ([seq_next_, seq_end_)), and how many are still to
  // reserve. Outside an Apply all are zero.
  int64_t seq_to_reserve_ = 0;
  int64_t seq_next_ = 0;
  int64_t seq_end_ = 0;
  int busy_timeout_ms_ = 0;  // as opened; FinishRun's checkpoint sets 0 for itself, then this
  // What `names` holds, both ways (names_ by number, empty where none), and what the current
  // transaction added to it.
  std::unordered_map<std::string, int64_t> name_ids_;
  std::vector<std::optional<std::string>> names_;
  std::vector<std::string> names_added_;
};

Stmt SqliteStore::Prepare(const char* sql) {
  auto it = stmts_.find(sql);
  if (it != stmts_.end()) {
    if (std::strcmp(sqlite3_sql(it->second), sql) == 0) return Stmt(it->second, SQLITE_OK);
    retired_stmts_.push_back(it->second);  // a caller may still hold it: finalized at close
    stmts_.erase(it);
  }
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return Stmt(nullptr, rc);
  }
  stmts_.emplace(sql, stmt);
  return Stmt(stmt, SQLITE_OK);
}

Status SqliteStore::Error(int rc, const std::string& doing) const {
  // sqlite3_errmsg describes the most recent failure on this connection, which is `rc`'s as long
  // as nothing else ran since; sqlite3_errstr is the fallback for bind and prepare-less paths.
  const char* msg = sqlite3_extended_errcode(db_) == rc ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return Status(CodeForSqlite(rc),
                "state store " + path_ + ": " + doing + ": " + msg + " (sqlite " +
                    std::to_string(rc) + ")");
}

Status SqliteStore::Exec(const char* sql, const std::string& doing) {
  Stmt st = Prepare(sql);
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
  }
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, doing);
}

// BEGIN, body, COMMIT; ROLLBACK when anything fails. `begin` is the BEGIN statement, `kind` names
// the transaction in errors.
Status SqliteStore::RunTransaction(const char* begin, const std::string& kind,
                                   const std::string& doing, const std::function<Status()>& body) {
  CRMB_RETURN_IF_ERROR(Exec(begin, "starting " + kind + " for " + doing));
  Status s = body();
  if (s.ok()) {
    s = Exec("COMMIT", "committing " + kind + " for " + doing);
    if (s.ok()) {
      names_added_.clear();
      return s;
    }
  }
  for (const std::string& name : names_added_) {  // rolled back with the rest
    auto it = name_ids_.find(name);
    if (it == name_ids_.end()) continue;
    names_[static_cast<size_t>(it->second)].reset();
    name_ids_.erase(it);
  }
  names_added_.clear();
  // Some errors (SQLITE_FULL, SQLITE_IOERR) already rolled the transaction back.
  if (sqlite3_get_autocommit(db_) == 0) {
    Status r = Exec("ROLLBACK", "rolling back " + kind + " for " + doing);
    if (!r.ok()) return Status(s.code(), s.message() + "; and then " + r.message());
  }
  return s;
}

Status SqliteStore::InTransaction(const std::string& doing, const std::function<Status()>& body) {
  return RunTransaction("BEGIN IMMEDIATE", "a transaction", doing, body);
}

Status SqliteStore::InReadTransaction(const std::string& doing,
                                      const std::function<Status()>& body) {
  return RunTransaction("BEGIN", "a read transaction", doing, body);
}

// Numbers are small (one per entity and system configured), so names_ is indexed by them; a number
// past this bound is no number NameId gave.
constexpr int64_t kMaxNameId = 1 << 20;

Status SqliteStore::LoadNames() {
  Stmt st = Prepare("SELECT id, name FROM names");
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    const int64_t id = st.ColInt(0);
    if (id <= 0 || id > kMaxNameId)
      return Status(StatusCode::kFailedPrecondition,
                    "state store " + path_ + ": names holds a number out of range: " +
                        std::to_string(id));
    RememberName(id, st.ColText(1));
  }
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, "reading the entity and system names");
}

void SqliteStore::RememberName(int64_t id, const std::string& name) {
  if (names_.size() <= static_cast<size_t>(id)) names_.resize(static_cast<size_t>(id) + 1);
  names_[static_cast<size_t>(id)] = name;
  name_ids_[name] = id;
}

Result<int64_t> SqliteStore::NameId(const std::string& name) {
  if (auto it = name_ids_.find(name); it != name_ids_.end()) return it->second;
  Stmt add = Prepare("INSERT INTO names (name) VALUES (?1) ON CONFLICT (name) DO NOTHING");
  add.Text(1, name);
  const int rc = add.Step();
  if (rc != SQLITE_DONE) return Error(rc, "storing the name '" + name + "'");
  auto id = KnownNameId(name);
  if (!id.ok()) return id.status();
  if (*id == 0)
    return Status(StatusCode::kFailedPrecondition,
                  "state store " + path_ + ": the name '" + name + "' has no number in range");
  if (sqlite3_get_autocommit(db_) == 0) names_added_.push_back(name);
  return id;
}

Result<int64_t> SqliteStore::KnownNameId(const std::string& name) {
  if (auto it = name_ids_.find(name); it != name_ids_.end()) return it->second;
  Stmt get = Prepare("SELECT id FROM names WHERE name = ?1");
  get.Text(1, name);
  const int rc = get.Step();
  if (rc == SQLITE_DONE) return int64_t{0};
  if (rc != SQLITE_ROW) return Error(rc, "reading the number of the name '" + name + "'");
  const int64_t id = get.ColInt(0);
  if (id <= 0 || id > kMaxNameId) return int64_t{0};
  // Added by this connection just now (NameId), or by another process and committed.
  RememberName(id, name);
  return id;
}

Result<std::string> SqliteStore::NameOf(int64_t id) {
  auto known = [&]() -> const std::optional<std::string>* {
    if (id <= 0 || static_cast<size_t>(id) >= names_.size()) return nullptr;
    const std::optional<std::string>& name = names_[static_cast<size_t>(id)];
    return name.has_value() ? &name : nullptr;
  };
  if (const auto* name = known()) return **name;
  CRMB_RETURN_IF_ERROR(LoadNames());
  if (const auto* name = known()) return **name;
  return Status(StatusCode::kFailedPrecondition,
                "state store " + path_ + ": a row names entity or system number " +
                    std::to_string(id) + ", which names does not hold");
}

Result<int> SqliteStore::UserVersion() {
  Stmt st = Prepare("PRAGMA user_version");
  const int rc = st.Step();
  if (rc != SQLITE_ROW) return Error(rc, "reading the schema version");
  return static_cast<int>(st.ColInt(0));
}

Status SqliteStore::Init(bool in_memory, int busy_timeout_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, busy_timeout_ms);
  busy_timeout_ms_ = busy_timeout_ms;

  // Before changing anything: a file from a newer crmbridge, or not a database at all, is refused
  // untouched.
  auto version = UserVersion();
  if (!version.ok()) {
    // Said as what it is: a file taken for damaged is one an operator may delete or replace,
    // which a read-only directory or a full disk never calls for.
    const int primary = sqlite3_extended_errcode(db_) & 0xff;
    std::string what = " cannot be read as a SQLite database: ";
    if (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN || primary == SQLITE_PERM) {
      what = " cannot be opened for writing: SQLite keeps " + path_ + "-wal and " + path_ +
             "-shm beside it, so its directory must be writable by this user too (the file is "
             "not damaged): ";
    } else if (primary == SQLITE_FULL || primary == SQLITE_IOERR) {
      what = " cannot be read or written: is the filesystem full or failing? (The file is not "
             "known to be damaged: do not delete or replace it.) ";
    }
    return Status(StatusCode::kFailedPrecondition, "state file " + path_ + what +
                                                       version.status().message());
  }
  if (*version > kKnownSchemaVersion) {
    return Status(StatusCode::kFailedPrecondition,
                  "state file " + path_ + " has schema version " + std::to_string(*version) +
                      ", this crmbridge knows up to " + std::to_string(kKnownSchemaVersion));
  }

  {
    Stmt st = Prepare("PRAGMA journal_mode=WAL");
    const int rc = st.Step();
    if (rc != SQLITE_ROW) return Error(rc, "switching to WAL mode");
    const std::string mode = st.ColText(0);
    // An in-memory database reports "memory": it has no journal file to put in WAL mode.
    if (!in_memory && mode != "wal") {
      return Status(StatusCode::kFailedPrecondition,
                    "state file " + path_ + " cannot use WAL mode (journal mode is " + mode + ")");
    }
  }
  // NORMAL is durable in WAL mode except for the last commits before a power loss, which a rerun
  // repeats; FULL would fsync on every commit.
  CRMB_RETURN_IF_ERROR(Exec("PRAGMA synchronous=NORMAL", "setting synchronous=NORMAL"));
  // 16 MB of page cache (the default is 2 MB): a page of reads touches index pages all over a
  // large file, and each one missed is a read() of the file.
  CRMB_RETURN_IF_ERROR(Exec("PRAGMA cache_size=-16384", "setting the page cache size"));
  CRMB_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON", "enabling foreign keys"));
  const int rc = sqlite3_create_function(db_, "crmbridge_id", 1,
                                         SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                         nullptr, SqlCompactId, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "registering crmbridge_id()");
  const int digest_rc = sqlite3_create_function(
      db_, "crmbridge_digest", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr,
      SqlDigestOf, nullptr, nullptr);
  if (digest_rc != SQLITE_OK) return Error(digest_rc, "registering crmbridge_digest()");
  CRMB_RETURN_IF_ERROR(Migrate());
  CRMB_RETURN_IF_ERROR(LoadNames());

  if (!in_memory) {
    // SQLite creates -wal and -shm with the main file's mode; this covers files left behind by an
    // older build or created under another mode. Best effort: SQLite may remove them at any time.
    for (const char* suffix : {"-wal", "-shm"}) {
      const std::string companion = path_ + suffix;
      struct stat st;
      if (::stat(companion.c_str(), &st) == 0 && (st.st_mode & 07777) != 0600)
        (void)::chmod(companion.c_str(), 0600);
    }
  }
  return Status::Ok();
}

Status SqliteStore::Migrate() {
  for (int i = 0; i < kKnownSchemaVersion; ++i) {
    const Migration& m = kMigrations[i];
    if (m.version != i + 1) {
      return Status(StatusCode::kInternal, "schema migrations are out of order at " +
                                               std::to_string(m.version));
    }
    const std::string doing =
        "schema migration " + std::to_string(m.version) + " (" + m.description + ")";
    CRMB_RETURN_IF_ERROR(InTransaction(doing, [&]() -> Status {
      // Read inside the transaction: another process may have migrated since we looked.
      auto version = UserVersion();
      if (!version.ok()) return version.status();
      if (*version >= m.version) return Status::Ok();
      char* err = nullptr;
      // sqlite3_exec because a migration is several statements; they carry no values.
      int rc = sqlite3_exec(db_, m.sql, nullptr, nullptr, &err);
      if (rc != SQLITE_OK) {
        Status s(CodeForSqlite(rc), "state store " + path_ + ": " + doing + ": " +
                                        (err != nullptr ? err : sqlite3_errstr(rc)));
        sqlite3_free(err);
        return s;
      }
      // PRAGMA takes no bound parameters; the number is our own constant.
      const std::string set_version = "PRAGMA user_version = " + std::to_string(m.version);
      rc = sqlite3_exec(db_, set_version.c_str(), nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK) return Error(rc, "recording " + doing);
      return Status::Ok();
    }));
  }
  return Status::Ok();
}

Result<int> SqliteStore::SchemaVersion() {
  std::lock_guard<std::mutex> lock(mu_);
  return UserVersion();
}

// ---- Apply ----

Status SqliteStore::Apply(const StateBatch& batch) {
  if (batch.empty()) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  const std::string doing = "a batch of " + std::to_string(batch.ops().size()) + " ops";
  seq_to_reserve_ = std::count_if(batch.ops().begin(), batch.ops().end(), [](const auto& op) {
    return op.kind == StateBatch::Op::Kind::kEnqueue;
  });
  Status s = InTransaction(doing, [&]() -> Status {
    return ApplyOps(batch, [this](const StateBatch::Op& op) { return ApplyOp(op); });
  });
  seq_to_reserve_ = seq_next_ = seq_end_ = 0;  // a failed batch rolled its reservation back too
  return s;
}

Status SqliteStore::ApplyOp(const StateBatch::Op& op) {
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

// A link's hashes (HashJson: 32 lowercase hex digits; 64 from a crmbridge before schema 17) are
// stored as their bytes; anything else (a hash stored as text before, "delete", "") as it is.
// Read back, they are the same text.
void BindHash(const Stmt& st, int i, const std::string& hash) {
  unsigned char bytes[32];
  if ((hash.size() != 2 * kJsonHashBytes && hash.size() != 2 * sizeof bytes) ||
      !ParseLowerHex(hash, bytes)) {
    sqlite3_bind_text(st.raw(), i, hash.data(), static_cast<int>(hash.size()), SQLITE_TRANSIENT);
    return;
  }
  sqlite3_bind_blob(st.raw(), i, bytes, static_cast<int>(hash.size() / 2), SQLITE_TRANSIENT);
}

std::string ColumnHash(const Stmt& st, int col) {
  if (sqlite3_column_type(st.raw(), col) != SQLITE_BLOB) return st.ColText(col);
  const auto* bytes = static_cast<const unsigned char*>(sqlite3_column_blob(st.raw(), col));
  return LowerHex(bytes, static_cast<size_t>(sqlite3_column_bytes(st.raw(), col)));
}

Status SqliteStore::PutLink(const Link& link) {
  // An upsert on the primary key only: a native id already linked to another canonical id is a
  // UNIQUE violation (kAlreadyExists), never a silent replacement of the other link.
  Stmt st = Prepare(
      "INSERT INTO links (entity, canonical_id, system, native_id, last_read_hash, "
      "last_written_hash, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
      "ON CONFLICT (entity, canonical_id, system) DO UPDATE SET native_id = excluded.native_id, "
      "last_read_hash = excluded.last_read_hash, last_written_hash = excluded.last_written_hash, "
      "updated_ms = excluded.updated_ms, settled = CASE WHEN settled IS 1 AND last_read_hash IS "
      "NOT excluded.last_read_hash THEN substr(last_read_hash, 1, 8) ELSE settled END");
  auto entity = NameId(link.entity);
  if (!entity.ok()) return entity.status();
  auto system = NameId(link.system);
  if (!system.ok()) return system.status();
  st.Int(1, *entity).Id(2, link.canonical_id).Int(3, *system);
  st.IdOrNull(4, link.native_id);
  BindHash(st, 5, link.last_read_hash);
  BindHash(st, 6, link.last_written_hash);
  st.Int(7, link.updated_ms);
  const int rc = st.Step();
  if (rc != SQLITE_DONE) {
    return Error(rc, "storing the link " + link.entity + " " + link.canonical_id + " <-> " +
                         link.system + " " + link.native_id);
  }
  return Status::Ok();
}

// The `seen` and `changed_ms` columns where they repeat `fields`, as most do (schema 9): a
// system's values equal to the snapshot's fields are stored as "=", and one change time shared by
// every field as that number. Read back, they are exactly what was stored.
json CompactSeen(const json& seen, const json& fields) {
  if (!seen.is_object() || !fields.is_object() || fields.empty()) return seen;
  json out = json::object();
  for (const auto& [system, values] : seen.items())
    out[system] = values == fields ? json("=") : values;
  return out;
}

json ExpandSeen(json seen, const json& fields) {
  if (!seen.is_object()) return seen;
  for (auto& [system, values] : seen.items())
    if (values.is_string() && values.get_ref<const std::string&>() == "=") values = fields;
  return seen;
}

json CompactChanged(const json& changed, const json& fields) {
  if (!changed.is_object() || changed.empty() || !fields.is_object() ||
      changed.size() != fields.size())
    return changed;
  const json& first = changed.begin().value();
  if (!first.is_number_integer()) return changed;
  for (const auto& [field, at] : changed.items())
    if (!fields.contains(field) || at != first || !at.is_number_integer()) return changed;
  return first;
}

json ExpandChanged(const json& changed, const json& fields) {
  if (!changed.is_number_integer() || !fields.is_object()) return changed;
  json out = json::object();
  for (const auto& [field, value] : fields.items()) out[field] = changed;
  return out;
}

// SettledDigests as "system=digest;system=digest" with each system as its number in `names`
// (`number_of` gives it; 0 for a system that has no link), the form PutSnapshot hands to SQL's
// crmbridge_digest() to give each link its own (a digest is a ShortHash: 16 characters). A digest
// of another length is left out: its system's reads are merged, as any unsettled system's.
template <typename NumberOf>
std::string EncodeDigests(const SettledDigests& digests, NumberOf number_of) {
  std::string out;
  for (const auto& [system, digest] : digests.by_system) {
    const int64_t number = number_of(system);
    if (number <= 0 || digest.size() != 16) continue;
    if (!out.empty()) out += ';';
    out += std::to_string(number);
    out += '=';
    out += digest;
  }
  return out;
}

Status SqliteStore::PutSnapshot(const Snapshot& snapshot) {
  const std::string what = "snapshot of " + snapshot.entity + " " + snapshot.canonical_id;
  auto numbered_fields = KeysAsNumbers(snapshot.fields);
  if (!numbered_fields.ok()) return numbered_fields.status();
  auto fields = DumpJson(*numbered_fields, what);
  if (!fields.ok()) return fields.status();
  json compact_seen = CompactSeen(snapshot.seen, snapshot.fields);
  if (compact_seen.is_object()) {
    for (auto& [system, values] : compact_seen.items()) {
      auto numbered = KeysAsNumbers(values);
      if (!numbered.ok()) return numbered.status();
      values = std::move(*numbered);
    }
  }
  auto numbered_seen = KeysAsNumbers(compact_seen);
  if (!numbered_seen.ok()) return numbered_seen.status();
  auto seen = DumpJson(*numbered_seen, what);
  if (!seen.ok()) return seen.status();
  auto unverified = DumpJson(snapshot.unverified, what);
  if (!unverified.ok()) return unverified.status();
  // Every field changed when the snapshot was stored, as on a record's first read: "=".
  json compact_changed = CompactChanged(snapshot.changed_ms, snapshot.fields);
  auto changed = compact_changed.is_number_integer() &&
                         compact_changed.get<int64_t>() == snapshot.updated_ms
                     ? Result<std::string>(std::string("="))
                     : DumpJson(compact_changed, what);
  if (!changed.ok()) return changed.status();
  auto in_doubt = DumpJson(snapshot.in_doubt, what);
  if (!in_doubt.ok()) return in_doubt.status();
  Stmt st = Prepare(
      "INSERT INTO snapshots (entity, canonical_id, fields, seen, updated_ms, unverified, "
      "changed_ms, deleted_ms, in_doubt) VALUES (?1, ?2, ?3, ?5, ?4, ?6, ?7, ?8, ?9) "
      "ON CONFLICT (entity, canonical_id) DO UPDATE SET fields = excluded.fields, "
      "seen = excluded.seen, updated_ms = excluded.updated_ms, unverified = excluded.unverified, "
      "changed_ms = excluded.changed_ms, deleted_ms = excluded.deleted_ms, "
      "in_doubt = excluded.in_doubt");
  auto entity = NameId(snapshot.entity);
  if (!entity.ok()) return entity.status();
  st.Int(1, *entity).Id(2, snapshot.canonical_id).Text(3, *fields);
  st.Int(4, snapshot.updated_ms);
  st.Text(5, *seen);
  st.Text(6, *unverified);
  st.Text(7, *changed);
  st.Int(8, snapshot.deleted_ms);
  st.Text(9, *in_doubt);
  int rc = st.Step();
  if (rc != SQLITE_DONE) return Error(rc, "storing the " + what);
  // Each of the record's links gets its system's digest ('' for a system not settled), as
  // migration 12 derived them; a link that already holds it is not written.
  Stmt links = Prepare(
      "UPDATE links SET settled = crmbridge_digest(?3, system, last_read_hash) WHERE entity = ?1 "
      "AND canonical_id = ?2 AND settled IS NOT crmbridge_digest(?3, system, last_read_hash)");
  links.Int(1, *entity).Id(2, snapshot.canonical_id);
  links.Text(3, EncodeDigests(DigestsOf(snapshot), [this](const std::string& system) {
               auto number = KnownNameId(system);
               return number.ok() ? *number : 0;  // an error: not settled, merged next read
             }));
  rc = links.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, "storing the digests of the " + what);
}

Status SqliteStore::SetCursor(const CursorRow& cursor) {
  Stmt st = Prepare(
      "INSERT INTO cursors (system, object, cursor, updated_ms) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (system, object) DO UPDATE SET cursor = excluded.cursor, "
      "updated_ms = excluded.updated_ms");
  st.Text(1, cursor.system).Text(2, cursor.object).Text(3, cursor.cursor);
  st.Int(4, clock_->NowMillis());
  const int rc = st.Step();
  return rc == SQLITE_DONE ? Status::Ok()
                           : Error(rc, "storing the cursor of " + cursor.system + " " +
                                           cursor.object);
}

// The next outbox sequence number. A batch's Enqueue ops take theirs from one block, reserved at
// the first of them: the same numbers, in the same order, as one counter update each, for one
// update a batch (an UPDATE ... RETURNING took about 34,000 instructions, a tenth of a new
// record's cost).
Result<int64_t> SqliteStore::NextSeq() {
  if (seq_next_ == seq_end_) {
    const int64_t block = std::max<int64_t>(seq_to_reserve_, 1);
    Stmt up = Prepare("UPDATE counters SET value = value + ?1 WHERE name = 'outbox_seq'");
    up.Int(1, block);
    const int rc = up.Step();
    if (rc != SQLITE_DONE) return Error(rc, "numbering an outbox payload");
    auto last = CurrentSeq();
    if (!last.ok()) return last.status();
    seq_end_ = *last + 1;
    seq_next_ = seq_end_ - block;
    seq_to_reserve_ = std::max<int64_t>(seq_to_reserve_ - block, 0);
  }
  return seq_next_++;
}

// The newest sequence number taken: the counter, less what a batch reserved and has not used.
Result<int64_t> SqliteStore::CurrentSeq() {
  if (seq_next_ != seq_end_) return seq_next_ - 1;
  Stmt st = Prepare("SELECT value FROM counters WHERE name = 'outbox_seq'");
  const int rc = st.Step();
  if (rc == SQLITE_ROW) return st.ColInt(0);
  if (rc == SQLITE_DONE) return int64_t{0};
  return Error(rc, "reading the outbox sequence");
}

Status SqliteStore::UpsertOutbox(const OutboxItem& item, const std::string& payload, int64_t seq,
                                 int64_t next_attempt_ms) {
  const std::string what =
      "queueing the write of " + item.entity + " " + item.canonical_id + " to " + item.system;
  // Coalescing: a pending row for the record keeps its id and created_ms (its place in the queue)
  // and takes everything else from the newer write, with a fresh retry budget.
  Stmt st = Prepare(
      "INSERT INTO outbox (system, object, entity, canonical_id, op, native_id, idempotency_key, "
      "payload, payload_hash, attempts, next_attempt_ms, last_error, created_ms, seq) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, '', ?11, ?12) "
      "ON CONFLICT (system, entity, canonical_id) DO UPDATE SET object = excluded.object, "
      "op = excluded.op, native_id = excluded.native_id, "
      "idempotency_key = excluded.idempotency_key, payload = excluded.payload, "
      "payload_hash = excluded.payload_hash, attempts = 0, "
      "next_attempt_ms = excluded.next_attempt_ms, last_error = '', seq = excluded.seq");
  st.Text(1, item.system).Text(2, item.object).Text(3, item.entity).Id(4, item.canonical_id);
  st.Text(5, OutboxOpName(item.op)).Text(6, item.native_id).Text(7, item.idempotency_key).Text(8, payload);
  st.Text(9, item.payload_hash).Int(10, next_attempt_ms).Int(11, item.created_ms).Int(12, seq);
  int rc = st.Step();
  if (rc != SQLITE_DONE) return Error(rc, what);

  // The newest payload is tracked only for a record with a dead letter (NoteLatestSeq): a
  // record that never failed has no row, and this changes nothing.
  Stmt latest = Prepare(
      "UPDATE outbox_latest SET seq = max(seq, ?4) "
      "WHERE system = ?1 AND entity = ?2 AND canonical_id = ?3");
  latest.Text(1, item.system).Text(2, item.entity).Id(3, item.canonical_id).Int(4, seq);
  rc = latest.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, what);
}

// From a record's first dead letter on, the seq of the newest payload queued for it, so a replay
// can tell whether a newer write replaced the dead one (ReplayLocked).
Status SqliteStore::NoteLatestSeq(const std::string& system, const std::string& entity,
                                  const std::string& canonical_id, int64_t seq,
                                  const std::string& what) {
  Stmt st = Prepare(
      "INSERT INTO outbox_latest (system, entity, canonical_id, seq) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (system, entity, canonical_id) DO UPDATE SET seq = max(seq, excluded.seq)");
  st.Text(1, system).Text(2, entity).Id(3, canonical_id).Int(4, seq);
  const int rc = st.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, what);
}

Status SqliteStore::Enqueue(const OutboxItem& item) {
  auto payload = DumpJson(item.payload, "the payload for " + item.system + " " + item.entity +
                                            " " + item.canonical_id);
  if (!payload.ok()) return payload.status();
  auto seq = NextSeq();
  if (!seq.ok()) return seq.status();
  return UpsertOutbox(item, *payload, *seq, item.next_attempt_ms);
}

// Whether outbox row `id` exists: after a guarded statement changed no row, the row is either
// gone or holds a newer payload than the one the caller attempted.
Result<bool> SqliteStore::OutboxExists(int64_t id, const std::string& what) {
  Stmt exists = Prepare("SELECT 1 FROM outbox WHERE id = ?1");
  exists.Int(1, id);
  const int found = exists.Step();
  if (found != SQLITE_ROW && found != SQLITE_DONE) return Error(found, what);
  return found == SQLITE_ROW;
}

Status SqliteStore::CompleteOutbox(int64_t id, const std::string& delivered_hash) {
  const std::string what = "completing outbox item " + std::to_string(id);
  Stmt st = Prepare("DELETE FROM outbox WHERE id = ?1 AND (?2 = '' OR payload_hash = ?2)");
  st.Int(1, id).Text(2, delivered_hash);
  const int rc = st.Step();
  if (rc != SQLITE_DONE) return Error(rc, what);
  if (sqlite3_changes(db_) > 0) return Status::Ok();
  // Nothing deleted: either the item is gone, or it now holds a newer payload, which stays queued.
  auto exists = OutboxExists(id, what);
  if (!exists.ok()) return exists.status();
  if (*exists) return Status::Ok();
  return Status(StatusCode::kNotFound, what + ": no such item");
}

Status SqliteStore::RetryOutbox(int64_t id, const std::string& error, int64_t next_attempt_ms,
                                int increment, const std::string& attempted_hash) {
  Stmt st = Prepare(
      "UPDATE outbox SET attempts = attempts + ?4, last_error = ?2, next_attempt_ms = ?3 "
      "WHERE id = ?1 AND (?5 = '' OR payload_hash = ?5)");
  st.Int(1, id).Text(2, error).Int(3, next_attempt_ms).Int(4, increment).Text(5, attempted_hash);
  const int rc = st.Step();
  const std::string what = "recording a failed attempt of outbox item " + std::to_string(id);
  if (rc != SQLITE_DONE) return Error(rc, what);
  if (sqlite3_changes(db_) > 0) return Status::Ok();
  // Nothing updated: either the item is gone, or it now holds a newer payload, not yet tried.
  auto exists = OutboxExists(id, what);
  if (!exists.ok()) return exists.status();
  if (*exists) return Status::Ok();
  return Status(StatusCode::kNotFound, what + ": no such item");
}

constexpr const char* kOutboxColumns =
    "id, system, object, entity, canonical_id, op, native_id, idempotency_key, payload, "
    "payload_hash, attempts, next_attempt_ms, last_error, created_ms, seq";

Result<OutboxItem> ReadOutboxRow(const Stmt& st) {
  OutboxItem item;
  item.id = st.ColInt(0);
  item.system = st.ColText(1);
  item.object = st.ColText(2);
  item.entity = st.ColText(3);
  item.canonical_id = st.ColId(4);
  const std::string op = st.ColText(5);
  auto parsed_op = ParseOutboxOp(op);
  if (!parsed_op)
    return Status(StatusCode::kInternal,
                  "outbox item " + std::to_string(item.id) + " holds an unknown op '" + op + "'");
  item.op = *parsed_op;
  item.native_id = st.ColText(6);
  item.idempotency_key = st.ColText(7);
  auto payload = ParseJson(st.ColText(8), "outbox item " + std::to_string(item.id));
  if (!payload.ok()) return payload.status();
  item.payload = std::move(*payload);
  item.payload_hash = st.ColText(9);
  item.attempts = static_cast<int>(st.ColInt(10));
  item.next_attempt_ms = st.ColInt(11);
  item.last_error = st.ColText(12);
  item.created_ms = st.ColInt(13);
  return item;
}

Status SqliteStore::AddDeadLetter(const OutboxItem& item, const std::string& reason) {
  const std::string what = "dead-lettering the " + item.system + " write of " + item.entity + " " +
                           item.canonical_id;
  OutboxItem failed = item;
  failed.last_error = reason;
  auto text = DumpJson(OutboxItemToJson(failed), what);
  if (!text.ok()) return text.status();
  // As new as every write queued so far (the store-wide seq): a replay sends it again unless a
  // write for the record queued after it has replaced it (ReplayLocked). With seq 0, any earlier
  // write of the record, delivered long before, made the replay drop it.
  auto seq = CurrentSeq();
  if (!seq.ok()) return Status(seq.status().code(), what + ": " + seq.status().message());
  Stmt ins = Prepare(
      "INSERT INTO dead_letters (outbox_id, seq, system, entity, canonical_id, item, reason, "
      "http_status, attempts, failed_ms) VALUES (0, ?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)");
  ins.Int(1, *seq).Text(2, failed.system).Text(3, failed.entity).Id(4, failed.canonical_id);
  ins.Text(5, *text).Text(6, reason).Int(7, failed.attempts);
  ins.Int(8, clock_->NowMillis());
  const int rc = ins.Step();
  if (rc != SQLITE_DONE) return Error(rc, what);
  return NoteLatestSeq(failed.system, failed.entity, failed.canonical_id, *seq, what);
}

Status SqliteStore::DeadLetterOutbox(int64_t id, const std::string& reason, int http_status,
                                     const std::string& attempted_hash) {
  const std::string what = "dead-lettering outbox item " + std::to_string(id);
  OutboxItem item;
  int64_t seq = 0;
  {
    static const std::string sql = std::string("SELECT ") + kOutboxColumns +
                                   " FROM outbox WHERE id = ?1";
    Stmt st = Prepare(sql.c_str());
    st.Int(1, id);
    const int rc = st.Step();
    if (rc == SQLITE_DONE) return Status(StatusCode::kNotFound, what + ": no such item");
    if (rc != SQLITE_ROW) return Error(rc, what);
    auto row = ReadOutboxRow(st);
    if (!row.ok()) return row.status();
    item = std::move(*row);
    seq = st.ColInt(14);
  }
  // A newer payload replaced the one that failed: it has not been tried, so it stays queued.
  if (!attempted_hash.empty() && item.payload_hash != attempted_hash) return Status::Ok();
  // The dead letter shows the item as it was last attempted: this failure counts as an attempt.
  item.attempts += 1;
  item.last_error = reason;
  auto text = DumpJson(OutboxItemToJson(item), "outbox item " + std::to_string(id));
  if (!text.ok()) return text.status();

  Stmt ins = Prepare(
      "INSERT INTO dead_letters (outbox_id, seq, system, entity, canonical_id, item, reason, "
      "http_status, attempts, failed_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  ins.Int(1, id).Int(2, seq).Text(3, item.system).Text(4, item.entity).Id(5, item.canonical_id);
  ins.Text(6, *text).Text(7, reason).Int(8, http_status).Int(9, item.attempts);
  ins.Int(10, clock_->NowMillis());
  int rc = ins.Step();
  if (rc != SQLITE_DONE) return Error(rc, what);
  CRMB_RETURN_IF_ERROR(NoteLatestSeq(item.system, item.entity, item.canonical_id, seq, what));

  Stmt del = Prepare("DELETE FROM outbox WHERE id = ?1");
  del.Int(1, id);
  rc = del.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, what);
}

Status SqliteStore::AddStageTransition(const StageTransition& t) {
  // n numbers the record's transitions in the order recorded: ties at one at_ms keep it.
  Stmt st = Prepare(
      "INSERT INTO stage_history (entity, canonical_id, system, from_stage, to_stage, at_ms, n, "
      "imported) VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT coalesce(max(n), 0) + 1 FROM "
      "stage_history WHERE entity = ?1 AND canonical_id = ?2), ?7)");
  auto entity = NameId(t.entity);
  if (!entity.ok()) return entity.status();
  auto system = NameId(t.system);
  if (!system.ok()) return system.status();
  st.Int(1, *entity).Id(2, t.canonical_id).Int(3, *system).Text(4, t.from_stage);
  st.Text(5, t.to_stage).Int(6, t.at_ms).Int(7, t.imported ? 1 : 0);
  const int rc = st.Step();
  return rc == SQLITE_DONE ? Status::Ok()
                           : Error(rc, "recording a stage transition of " + t.entity + " " +
                                           t.canonical_id);
}

Status SqliteStore::DeleteDeadLetter(int64_t id) {
  const std::string what = "deleting dead letter " + std::to_string(id);
  // The record's last dead letter takes its newest-payload row with it (NoteLatestSeq).
  Stmt latest = Prepare(
      "DELETE FROM outbox_latest WHERE (system, entity, canonical_id) IN "
      "(SELECT system, entity, canonical_id FROM dead_letters d WHERE d.id = ?1 AND NOT EXISTS "
      "(SELECT 1 FROM dead_letters o WHERE o.system = d.system AND o.entity = d.entity AND "
      "o.canonical_id = d.canonical_id AND o.id != d.id))");
  latest.Int(1, id);
  int rc = latest.Step();
  if (rc != SQLITE_DONE) return Error(rc, what);
  Stmt st = Prepare("DELETE FROM dead_letters WHERE id = ?1");
  st.Int(1, id);
  rc = st.Step();
  if (rc != SQLITE_DONE) return Error(rc, what);
  if (sqlite3_changes(db_) == 0) return Status(StatusCode::kNotFound, what + ": no such item");
  return Status::Ok();
}

// ---- links, snapshots, cursors ----

constexpr const char* kLinkColumns =
    "entity, canonical_id, system, native_id, last_read_hash, last_written_hash, updated_ms";

Result<Link> SqliteStore::ReadLinkRow(const Stmt& st) {
  Link link;
  auto entity = NameOf(st.ColInt(0));
  if (!entity.ok()) return entity.status();
  link.entity = std::move(*entity);
  link.canonical_id = st.ColId(1);
  auto system = NameOf(st.ColInt(2));
  if (!system.ok()) return system.status();
  link.system = std::move(*system);
  link.native_id = st.ColId(3);
  link.last_read_hash = ColumnHash(st, 4);
  link.last_written_hash = ColumnHash(st, 5);
  link.updated_ms = st.ColInt(6);
  return link;
}

Result<std::optional<Link>> SqliteStore::FindLinkByNative(const std::string& system,
                                                          const std::string& entity,
                                                          const std::string& native_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return FindLinkByNativeLocked(system, entity, native_id);
}

Result<std::optional<Link>> SqliteStore::FindLinkByNativeLocked(const std::string& system,
                                                                const std::string& entity,
                                                                const std::string& native_id) {
  static const std::string sql = std::string("SELECT ") + kLinkColumns +
                                 " FROM links WHERE system = ?1 AND entity = ?2 AND native_id = ?3";
  Stmt st = Prepare(sql.c_str());
  auto system_number = KnownNameId(system);
  if (!system_number.ok()) return system_number.status();
  auto entity_number = KnownNameId(entity);
  if (!entity_number.ok()) return entity_number.status();
  st.Int(1, *system_number).Int(2, *entity_number).Id(3, native_id);
  const int rc = st.Step();
  if (rc == SQLITE_DONE) return std::optional<Link>();
  if (rc != SQLITE_ROW) return Error(rc, "finding the link of " + system + " " + native_id);
  auto link = ReadLinkRow(st);
  if (!link.ok()) return link.status();
  return std::optional<Link>(std::move(*link));
}

Result<std::optional<Link>> SqliteStore::FindLink(const std::string& entity,
                                                  const std::string& canonical_id,
                                                  const std::string& system) {
  std::lock_guard<std::mutex> lock(mu_);
  static const std::string sql =
      std::string("SELECT ") + kLinkColumns +
      " FROM links WHERE entity = ?1 AND canonical_id = ?2 AND system = ?3";
  Stmt st = Prepare(sql.c_str());
  auto entity_number = KnownNameId(entity);
  if (!entity_number.ok()) return entity_number.status();
  auto system_number = KnownNameId(system);
  if (!system_number.ok()) return system_number.status();
  st.Int(1, *entity_number).Id(2, canonical_id).Int(3, *system_number);
  const int rc = st.Step();
  if (rc == SQLITE_DONE) return std::optional<Link>();
  if (rc != SQLITE_ROW)
    return Error(rc, "finding the " + system + " link of " + entity + " " + canonical_id);
  auto link = ReadLinkRow(st);
  if (!link.ok()) return link.status();
  return std::optional<Link>(std::move(*link));
}

// The columns ReadSnapshotRow reads, in its order.
constexpr char kSnapshotColumns[] =
    "fields, updated_ms, seen, unverified, changed_ms, deleted_ms, in_doubt";

// A JSON column: "{}" (most `unverified` and many `changed_ms` columns) without the parser.
Result<json> ParseJsonColumn(const Stmt& st, int col, const std::string& entity,
                             const std::string& canonical_id) {
  const unsigned char* t = sqlite3_column_text(st.raw(), col);
  const size_t n = static_cast<size_t>(sqlite3_column_bytes(st.raw(), col));
  if (t != nullptr && n == 2 && t[0] == '{' && t[1] == '}') return json::object();
  const char* begin = t == nullptr ? "" : reinterpret_cast<const char*>(t);
  json j = json::parse(begin, begin + (t == nullptr ? 0 : n), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Status(StatusCode::kInternal,
                  "the snapshot of " + entity + " " + canonical_id + " holds JSON that does not parse");
  }
  return j;
}

// A snapshots row from column `first` on, kSnapshotColumns: fields, updated_ms, seen, unverified,
// changed_ms, deleted_ms, in_doubt.
Result<json> SqliteStore::KeysAsNumbers(const json& object) {
  if (!object.is_object() || object.empty()) return object;
  json out = json::array();
  out.get_ref<json::array_t&>().reserve(2 * object.size());
  for (const auto& [key, value] : object.items()) {
    auto number = NameId(key);
    if (!number.ok()) return number.status();
    out.push_back(*number);
    out.push_back(value);
  }
  return out;
}

Result<json> SqliteStore::KeysAsNames(json stored, const std::string& entity,
                                      const std::string& canonical_id) {
  if (!stored.is_array()) return stored;
  const json::array_t& pairs = stored.get_ref<const json::array_t&>();
  json out = json::object();
  for (size_t i = 0; i < pairs.size(); i += 2) {
    if (i + 1 >= pairs.size() || !pairs[i].is_number_integer())
      return Status(StatusCode::kInternal, "the snapshot of " + entity + " " + canonical_id +
                                               " holds an array that is not pairs of a name's "
                                               "number and a value");
    auto name = NameOf(pairs[i].get<int64_t>());
    if (!name.ok()) return name.status();
    out[*name] = std::move(stored[i + 1]);
  }
  return out;
}

Result<Snapshot> SqliteStore::ReadSnapshotRow(const Stmt& st, int first, const std::string& entity,
                                              const std::string& canonical_id) {
  Snapshot snapshot;
  snapshot.entity = entity;
  snapshot.canonical_id = canonical_id;
  auto fields = ParseJsonColumn(st, first, entity, canonical_id);
  if (!fields.ok()) return fields.status();
  auto named = KeysAsNames(std::move(*fields), entity, canonical_id);
  if (!named.ok()) return named.status();
  snapshot.fields = std::move(*named);
  snapshot.updated_ms = st.ColInt(first + 1);
  auto seen = ParseJsonColumn(st, first + 2, entity, canonical_id);
  if (!seen.ok()) return seen.status();
  auto seen_named = KeysAsNames(std::move(*seen), entity, canonical_id);
  if (!seen_named.ok()) return seen_named.status();
  if (seen_named->is_object()) {
    for (auto& [system, values] : seen_named->items()) {
      auto values_named = KeysAsNames(std::move(values), entity, canonical_id);
      if (!values_named.ok()) return values_named.status();
      values = std::move(*values_named);
    }
  }
  snapshot.seen = ExpandSeen(std::move(*seen_named), snapshot.fields);
  auto unverified = ParseJsonColumn(st, first + 3, entity, canonical_id);
  if (!unverified.ok()) return unverified.status();
  snapshot.unverified = std::move(*unverified);
  if (sqlite3_column_bytes(st.raw(), first + 4) == 1 &&
      sqlite3_column_text(st.raw(), first + 4)[0] == '=') {
    snapshot.changed_ms = ExpandChanged(json(snapshot.updated_ms), snapshot.fields);
  } else {
    auto changed = ParseJsonColumn(st, first + 4, entity, canonical_id);
    if (!changed.ok()) return changed.status();
    snapshot.changed_ms = ExpandChanged(std::move(*changed), snapshot.fields);
  }
  snapshot.deleted_ms = st.ColInt(first + 5);
  auto in_doubt = ParseJsonColumn(st, first + 6, entity, canonical_id);
  if (!in_doubt.ok()) return in_doubt.status();
  snapshot.in_doubt = std::move(*in_doubt);
  return snapshot;
}

Result<std::optional<Snapshot>> SqliteStore::GetSnapshot(const std::string& entity,
                                                         const std::string& canonical_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return GetSnapshotLocked(entity, canonical_id);
}

Result<std::optional<Snapshot>> SqliteStore::GetSnapshotLocked(const std::string& entity,
                                                               const std::string& canonical_id) {
  static const std::string sql = std::string("SELECT ") + kSnapshotColumns +
                                 " FROM snapshots WHERE entity = ?1 AND canonical_id = ?2";
  Stmt st = Prepare(sql.c_str());
  auto entity_number = KnownNameId(entity);
  if (!entity_number.ok()) return entity_number.status();
  st.Int(1, *entity_number).Id(2, canonical_id);
  const int rc = st.Step();
  if (rc == SQLITE_DONE) return std::optional<Snapshot>();
  if (rc != SQLITE_ROW) return Error(rc, "reading the snapshot of " + entity + " " + canonical_id);
  auto snapshot = ReadSnapshotRow(st, 0, entity, canonical_id);
  if (!snapshot.ok()) return snapshot.status();
  return std::optional<Snapshot>(std::move(*snapshot));
}

Result<RecordStates> SqliteStore::LoadRecords(const std::string& entity, const std::string& system,
                                              const std::vector<std::string>& native_ids,
                                              const std::vector<std::string>& canonical_ids) {
  RecordStates out;
  if (native_ids.empty() && canonical_ids.empty()) return out;
  std::lock_guard<std::mutex> lock(mu_);
  const std::string doing = "loading the state of " + std::to_string(native_ids.size() +
                                                                     canonical_ids.size()) +
                            " " + entity + " record(s)";
  Status s = InReadTransaction(doing, [&]() -> Status {
    auto system_number = KnownNameId(system);
    if (!system_number.ok()) return system_number.status();
    auto entity_number = KnownNameId(entity);
    if (!entity_number.ok()) return entity_number.status();
    std::vector<const std::string*> cids;
    cids.reserve(native_ids.size() + canonical_ids.size());
    // The page's records by native id, their links in `system` and their snapshots' digests, a
    // chunk of ids per statement (the unused places bound to NULL, which matches nothing): an
    // unchanged record needs nothing more; the rest of a changed one is read when needed.
    constexpr int kIdsPerStatement = 64;
    static const std::string page_sql = [] {
      std::string ids;
      for (int i = 0; i < kIdsPerStatement; ++i) ids += (i ? ", (?" : "(?") + std::to_string(i + 3) + ")";
      // CROSS JOIN fixes the order (the ids, then their links): with many ids, SQLite would
      // otherwise rather scan every link of the entity.
      std::string columns;  // kLinkColumns, of the `links` table of the join
      for (std::string_view rest = kLinkColumns; !rest.empty();) {
        const size_t comma = std::min(rest.find(", "), rest.size());
        columns += (columns.empty() ? "links." : ", links.") + std::string(rest.substr(0, comma));
        rest.remove_prefix(std::min(comma + 2, rest.size()));
      }
      return "WITH ids(v) AS (VALUES " + ids + ") SELECT " + columns +
             ", links.settled FROM ids CROSS JOIN links ON "
             "links.system = ?1 AND links.entity = ?2 AND links.native_id = ids.v";
    }();
    std::vector<const std::string*> natives;  // each id once
    {
      std::unordered_set<std::string_view> asked;
      for (const std::string& id : native_ids)
        if (asked.insert(id).second) natives.push_back(&id);
    }
    for (size_t from = 0; from < natives.size(); from += kIdsPerStatement) {
      Stmt st = Prepare(page_sql.c_str());
      st.Int(1, *system_number).Int(2, *entity_number);
      for (int i = 0; i < kIdsPerStatement; ++i) {
        if (from + i < natives.size()) {
          st.Id(3 + i, *natives[from + i]);
        } else {
          sqlite3_bind_null(st.raw(), 3 + i);
        }
      }
      int rc;
      while ((rc = st.Step()) == SQLITE_ROW) {
        auto read = ReadLinkRow(st);
        if (!read.ok()) return read.status();
        Link& link = *read;
        SettledDigests& digests = out.digests[link.canonical_id];
        if (sqlite3_column_type(st.raw(), 7) != SQLITE_NULL) {
          digests.known = true;
          const int type = sqlite3_column_type(st.raw(), 7);  // before bytes() converts it
          const int n = sqlite3_column_bytes(st.raw(), 7);
          if (type == SQLITE_INTEGER) {
            if (st.ColInt(7) == kSettledIsReadHash && link.last_read_hash.size() >= 2 * kDigestBytes)
              digests.by_system.emplace_back(system,
                                             link.last_read_hash.substr(0, 2 * kDigestBytes));
          } else if (n == kDigestBytes && type == SQLITE_BLOB) {
            digests.by_system.emplace_back(
                system, LowerHex(static_cast<const unsigned char*>(
                                     sqlite3_column_blob(st.raw(), 7)),
                                 kDigestBytes));
          } else if (n > 0) {
            digests.by_system.emplace_back(system, st.ColText(7));
          }
        }
        out.by_native.emplace(link.native_id, std::move(link));
      }
      if (rc != SQLITE_DONE)
        return Error(rc, "loading the links of " + std::to_string(native_ids.size()) + " " +
                             system + " " + entity + " record(s)");
    }
    for (const std::string& cid : canonical_ids) cids.push_back(&cid);
    static const std::string links_sql = std::string("SELECT ") + kLinkColumns +
                                         " FROM links WHERE entity = ?1 AND canonical_id = ?2";
    for (const std::string* cid : cids) {
      if (!out.snapshots.count(*cid)) {
        auto snapshot = GetSnapshotLocked(entity, *cid);
        if (!snapshot.ok()) return snapshot.status();
        if (snapshot->has_value()) out.snapshots.emplace(*cid, std::move(**snapshot));
      }
      if (out.links.count(*cid)) continue;
      std::vector<Link>& links = out.links[*cid];
      Stmt st = Prepare(links_sql.c_str());
      st.Int(1, *entity_number).Id(2, *cid);
      int rc;
      while ((rc = st.Step()) == SQLITE_ROW) {
        auto link = ReadLinkRow(st);
        if (!link.ok()) return link.status();
        links.push_back(std::move(*link));
      }
      if (rc != SQLITE_DONE) return Error(rc, "finding the links of " + entity + " " + *cid);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::optional<std::string>> SqliteStore::GetCursor(const std::string& system,
                                                          const std::string& object) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare("SELECT cursor FROM cursors WHERE system = ?1 AND object = ?2");
  st.Text(1, system).Text(2, object);
  const int rc = st.Step();
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return Error(rc, "reading the cursor of " + system + " " + object);
  return std::optional<std::string>(st.ColText(0));
}

Result<std::vector<CursorRow>> SqliteStore::ListCursors() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare("SELECT system, object, cursor, updated_ms FROM cursors ORDER BY system, object");
  std::vector<CursorRow> rows;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    rows.push_back(CursorRow{st.ColText(0), st.ColText(1), st.ColText(2), st.ColInt(3)});
  }
  if (rc != SQLITE_DONE) return Error(rc, "listing cursors");
  return rows;
}

// ---- outbox and dead letters ----

// SQLite reads a negative LIMIT as "no limit".
int64_t SqlLimit(int limit) { return limit > 0 ? limit : -1; }

// One statement for every filter: each narrows the range scan of outbox_by_system (system, id),
// which yields the due rows oldest first (by id, the store's own insertion order: callers'
// created_ms may tie or go backwards) without a sort. ?4 is NULL for every entity.
Result<std::vector<OutboxItem>> SqliteStore::DueOutbox(const OutboxFilter& filter) {
  std::lock_guard<std::mutex> lock(mu_);
  static const std::string sql =
      std::string("SELECT ") + kOutboxColumns +
      " FROM outbox WHERE system = ?1 AND next_attempt_ms <= ?2 AND (?4 IS NULL OR entity = ?4) "
      "AND (?5 = 0 OR op = 'delete') ORDER BY id LIMIT ?3";
  Stmt st = Prepare(sql.c_str());
  st.Text(1, filter.system).Int(2, filter.now_ms).Int(3, SqlLimit(filter.limit));
  if (filter.entity.has_value()) {
    st.Text(4, *filter.entity);
  } else {
    st.Null(4);
  }
  st.Int(5, filter.deletes_only ? 1 : 0);
  std::vector<OutboxItem> items;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    auto item = ReadOutboxRow(st);
    if (!item.ok()) return item.status();
    items.push_back(std::move(*item));
  }
  if (rc != SQLITE_DONE) {
    return Error(rc, "reading the due outbox of " + filter.system +
                         (filter.entity.has_value() ? " " + *filter.entity : ""));
  }
  return items;
}

Status SqliteStore::AddAudit(const AuditEntry& e) {
  Stmt st = Prepare(
      "INSERT INTO audit (at_ms, action, system, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)");
  auto detail = DumpJson(e.detail, "the audit entry " + e.action + " of " + e.subject);
  if (!detail.ok()) return detail.status();
  st.Int(1, e.at_ms).Text(2, e.action).Text(3, e.system).Text(4, e.subject).Text(5, *detail);
  const int rc = st.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, "recording an audit entry for " + e.subject);
}

Result<std::vector<AuditEntry>> SqliteStore::ListAudit(int64_t since_ms, int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare(
      "SELECT id, at_ms, action, system, subject, detail FROM audit WHERE at_ms >= ?1 "
      "ORDER BY at_ms, id LIMIT ?2");
  st.Int(1, since_ms).Int(2, SqlLimit(limit));
  std::vector<AuditEntry> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    AuditEntry e;
    e.id = st.ColInt(0);
    e.at_ms = st.ColInt(1);
    e.action = st.ColText(2);
    e.system = st.ColText(3);
    e.subject = st.ColText(4);
    auto detail = ParseJson(st.ColText(5), "audit entry " + std::to_string(e.id));
    if (!detail.ok()) return detail.status();
    e.detail = std::move(*detail);
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return Error(rc, "reading the audit trail");
  return out;
}

Status SqliteStore::PutMatchKey(const std::string& entity, const std::string& key,
                                const std::string& cid) {
  Stmt st = Prepare(
      "INSERT INTO match_keys (entity, match_key, canonical_id) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (entity, match_key) DO NOTHING");
  st.Text(1, entity).Text(2, key).Id(3, cid);
  const int rc = st.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, "storing a match key of " + entity + " " + cid);
}

Result<std::optional<std::string>> SqliteStore::FindByMatchKey(const std::string& entity,
                                                               const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare("SELECT canonical_id FROM match_keys WHERE entity = ?1 AND match_key = ?2");
  st.Text(1, entity).Text(2, key);
  const int rc = st.Step();
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return Error(rc, "finding a match key of " + entity);
  return std::optional<std::string>(st.ColId(0));
}

Result<std::optional<OutboxItem>> SqliteStore::PendingOutbox(const std::string& system,
                                                             const std::string& entity,
                                                             const std::string& canonical_id) {
  std::lock_guard<std::mutex> lock(mu_);
  static const std::string sql = std::string("SELECT ") + kOutboxColumns +
                                 " FROM outbox WHERE system = ?1 AND entity = ?2 AND canonical_id = ?3";
  Stmt st = Prepare(sql.c_str());
  st.Text(1, system).Text(2, entity).Id(3, canonical_id);
  const int rc = st.Step();
  if (rc == SQLITE_DONE) return std::optional<OutboxItem>();
  if (rc != SQLITE_ROW) return Error(rc, "reading the queued write of " + entity + " " + canonical_id);
  auto item = ReadOutboxRow(st);
  if (!item.ok()) return item.status();
  return std::optional<OutboxItem>(std::move(*item));
}

Result<nlohmann::json> SqliteStore::DeadLetterCounts() {
  return CountBySystem("SELECT system, COUNT(*) FROM dead_letters GROUP BY system ORDER BY system",
                       "counting dead letters");
}

Result<nlohmann::json> SqliteStore::OutboxCounts() {
  return CountBySystem("SELECT system, COUNT(*) FROM outbox GROUP BY system ORDER BY system",
                       "counting outbox items");
}

Result<nlohmann::json> SqliteStore::CountBySystem(const char* sql, const char* what) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare(sql);
  json counts = json::object();
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) counts[st.ColText(0)] = st.ColInt(1);
  if (rc != SQLITE_DONE) return Error(rc, what);
  return counts;
}

Result<std::vector<Snapshot>> SqliteStore::ListUnverified(const std::string& system,
                                                          const std::string& entity) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string what = "unverified " + system + " writes of " + entity;
  static const std::string sql =
      std::string("SELECT canonical_id, ") + kSnapshotColumns +
      " FROM snapshots WHERE entity = ?1 AND unverified != '{}' "
      "AND json_type(unverified, '$.\"' || replace(?2, '\"', '') || '\"') = 'object' "
      "ORDER BY canonical_id";
  Stmt st = Prepare(sql.c_str());
  auto entity_number = KnownNameId(entity);
  if (!entity_number.ok()) return entity_number.status();
  st.Int(1, *entity_number).Text(2, system);
  std::vector<Snapshot> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    auto snap = ReadSnapshotRow(st, 1, entity, st.ColId(0));
    if (!snap.ok()) return snap.status();
    out.push_back(std::move(*snap));
  }
  if (rc != SQLITE_DONE) return Error(rc, "listing " + what);
  return out;
}

Result<std::vector<DeadLetter>> SqliteStore::ListDeadLetters(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare(
      "SELECT id, item, reason, http_status, failed_ms FROM dead_letters ORDER BY id LIMIT ?1");
  st.Int(1, SqlLimit(limit));
  std::vector<DeadLetter> letters;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    DeadLetter dl;
    dl.id = st.ColInt(0);
    auto item = OutboxItemFromJson(st.ColText(1), "dead letter " + std::to_string(dl.id));
    if (!item.ok()) return item.status();
    dl.item = std::move(*item);
    dl.reason = st.ColText(2);
    dl.http_status = static_cast<int>(st.ColInt(3));
    dl.failed_ms = st.ColInt(4);
    letters.push_back(std::move(dl));
  }
  if (rc != SQLITE_DONE) return Error(rc, "listing dead letters");
  return letters;
}

Status SqliteStore::ReplayDeadLetter(int64_t dead_letter_id, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  return InTransaction("replaying dead letter " + std::to_string(dead_letter_id),
                       [&]() { return ReplayLocked(dead_letter_id, now_ms); });
}

// A replay must never send a target older data than a write queued after the failure: "newest
// payload wins" holds across the dead letters too. When a newer write for the record exists
// (pending, or already delivered), the stale payload is dropped; a pending newer write is made due
// now with a fresh retry budget, which is what the operator asked for.
Status SqliteStore::ReplayLocked(int64_t dead_letter_id, int64_t now_ms) {
  const std::string what = "replaying dead letter " + std::to_string(dead_letter_id);
  OutboxItem item;
  int64_t seq = 0;
  {
    Stmt st = Prepare("SELECT item, seq FROM dead_letters WHERE id = ?1");
    st.Int(1, dead_letter_id);
    const int rc = st.Step();
    if (rc == SQLITE_DONE) return Status(StatusCode::kNotFound, what + ": no such dead letter");
    if (rc != SQLITE_ROW) return Error(rc, what);
    auto parsed = OutboxItemFromJson(st.ColText(0), "dead letter " + std::to_string(dead_letter_id));
    if (!parsed.ok()) return parsed.status();
    item = std::move(*parsed);
    seq = st.ColInt(1);
  }

  int64_t latest_seq = 0;
  {
    Stmt st = Prepare(
        "SELECT seq FROM outbox_latest WHERE system = ?1 AND entity = ?2 AND canonical_id = ?3");
    st.Text(1, item.system).Text(2, item.entity).Id(3, item.canonical_id);
    const int rc = st.Step();
    if (rc == SQLITE_ROW) {
      latest_seq = st.ColInt(0);
    } else if (rc != SQLITE_DONE) {
      return Error(rc, what);
    }
  }

  if (latest_seq > seq) {
    Stmt st = Prepare(
        "UPDATE outbox SET attempts = 0, next_attempt_ms = ?4, last_error = '' "
        "WHERE system = ?1 AND entity = ?2 AND canonical_id = ?3");
    st.Text(1, item.system).Text(2, item.entity).Id(3, item.canonical_id).Int(4, now_ms);
    const int rc = st.Step();
    if (rc != SQLITE_DONE) return Error(rc, what);
  } else {
    auto payload = DumpJson(item.payload, "the payload of dead letter " +
                                              std::to_string(dead_letter_id));
    if (!payload.ok()) return payload.status();
    CRMB_RETURN_IF_ERROR(UpsertOutbox(item, *payload, seq, now_ms));
  }
  return DeleteDeadLetter(dead_letter_id);
}

// ---- stage history and runs ----

Result<std::vector<StageTransition>> SqliteStore::StageHistory(const std::string& entity,
                                                               const std::string& canonical_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare(
      "SELECT system, from_stage, to_stage, at_ms, imported FROM stage_history "
      "WHERE entity = ?1 AND canonical_id = ?2 ORDER BY at_ms, n");
  auto entity_number = KnownNameId(entity);
  if (!entity_number.ok()) return entity_number.status();
  st.Int(1, *entity_number).Id(2, canonical_id);
  std::vector<StageTransition> history;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    auto system = NameOf(st.ColInt(0));
    if (!system.ok()) return system.status();
    history.push_back(StageTransition{entity, canonical_id, std::move(*system), st.ColText(1),
                                      st.ColText(2), st.ColInt(3), st.ColInt(4) != 0});
  }
  if (rc != SQLITE_DONE)
    return Error(rc, "reading the stage history of " + entity + " " + canonical_id);
  return history;
}

Result<std::vector<StageTransition>> SqliteStore::AllStageHistory(const std::string& entity) {
  std::lock_guard<std::mutex> lock(mu_);
  // In the table's key order: one range scan, no sort.
  Stmt st = Prepare(
      "SELECT canonical_id, system, from_stage, to_stage, at_ms, imported FROM stage_history "
      "WHERE entity = ?1 ORDER BY canonical_id, at_ms, n");
  auto entity_number = KnownNameId(entity);
  if (!entity_number.ok()) return entity_number.status();
  st.Int(1, *entity_number);
  std::vector<StageTransition> history;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    auto system = NameOf(st.ColInt(1));
    if (!system.ok()) return system.status();
    history.push_back(StageTransition{entity, st.ColId(0), std::move(*system), st.ColText(2),
                                      st.ColText(3), st.ColInt(4), st.ColInt(5) != 0});
  }
  if (rc != SQLITE_DONE) return Error(rc, "reading the stage history of every " + entity);
  return history;
}

Result<std::vector<Snapshot>> SqliteStore::ListSnapshots(const std::string& entity) {
  return ListSnapshotsAfter(entity, "", 0);
}

Result<std::vector<Snapshot>> SqliteStore::ListSnapshotsAfter(const std::string& entity,
                                                              const std::string& after, int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string what = "snapshots of " + entity;
  static const std::string sql =
      std::string("SELECT canonical_id, ") + kSnapshotColumns +
      " FROM snapshots WHERE entity = ?1 AND canonical_id > ?2 ORDER BY canonical_id LIMIT ?3";
  Stmt st = Prepare(sql.c_str());
  auto entity_number = KnownNameId(entity);
  if (!entity_number.ok()) return entity_number.status();
  st.Int(1, *entity_number).Id(2, after).Int(3, SqlLimit(limit));
  std::vector<Snapshot> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    auto snap = ReadSnapshotRow(st, 1, entity, st.ColId(0));
    if (!snap.ok()) return snap.status();
    out.push_back(std::move(*snap));
  }
  if (rc != SQLITE_DONE) return Error(rc, "reading the " + what);
  return out;
}

Result<int64_t> SqliteStore::BeginRun(const std::string& mode, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare(
      "INSERT INTO runs (mode, started_ms, finished_ms, outcome, counts, error) "
      "VALUES (?1, ?2, 0, 'running', '{}', '')");
  st.Text(1, mode).Int(2, now_ms);
  const int rc = st.Step();
  if (rc != SQLITE_DONE) return Error(rc, "recording the start of a " + mode + " run");
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Status SqliteStore::FinishRun(const RunRecord& run) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string what = "recording the end of run " + std::to_string(run.id);
  auto counts = DumpJson(run.counts, "the counts of run " + std::to_string(run.id));
  if (!counts.ok()) return counts.status();
  Stmt st = Prepare(
      "UPDATE runs SET finished_ms = ?2, outcome = ?3, counts = ?4, error = ?5 WHERE id = ?1");
  st.Int(1, run.id).Int(2, run.finished_ms).Text(3, run.outcome).Text(4, *counts);
  st.Text(5, run.error);
  const int rc = st.Step();
  if (rc != SQLITE_DONE) return Error(rc, what);
  if (sqlite3_changes(db_) == 0) return Status(StatusCode::kNotFound, what + ": no such run");
  // The run's changes are all in: copy the WAL into the file and empty it, so that between runs
  // the state takes its own size on disk, not that plus a WAL of up to a few megabytes. Best
  // effort, without waiting: a reader still on an older view of the file (a `status` command,
  // another process's run) keeps the WAL as it is until a later run.
  sqlite3_busy_timeout(db_, 0);
  (void)sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  sqlite3_busy_timeout(db_, busy_timeout_ms_);
  return Status::Ok();
}

Result<std::vector<RunRecord>> SqliteStore::RecentRuns(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare(
      "SELECT id, mode, started_ms, finished_ms, outcome, counts, error FROM runs "
      "ORDER BY id DESC LIMIT ?1");
  st.Int(1, SqlLimit(limit));
  std::vector<RunRecord> runs;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    RunRecord run;
    run.id = st.ColInt(0);
    run.mode = st.ColText(1);
    run.started_ms = st.ColInt(2);
    run.finished_ms = st.ColInt(3);
    run.outcome = st.ColText(4);
    auto counts = ParseJson(st.ColText(5), "the counts of run " + std::to_string(run.id));
    if (!counts.ok()) return counts.status();
    run.counts = std::move(*counts);
    run.error = st.ColText(6);
    runs.push_back(std::move(run));
  }
  if (rc != SQLITE_DONE) return Error(rc, "listing recent runs");
  return runs;
}

// ---- webhook events ----

Result<int> SqliteStore::AddWebhookEvents(const std::vector<WebhookEvent>& events) {
  CRMB_RETURN_IF_ERROR(CheckWebhookEvents(events));
  std::lock_guard<std::mutex> lock(mu_);
  int added = 0;
  const std::string doing = "storing " + std::to_string(events.size()) + " webhook event(s)";
  CRMB_RETURN_IF_ERROR(InTransaction(doing, [&]() -> Status {
    for (const WebhookEvent& e : events) {
      Stmt st = Prepare(
          "INSERT INTO webhook_events (system, dedupe_key, object, record_id, kind, occurred_ms, "
          "received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
          "ON CONFLICT (system, dedupe_key) DO NOTHING");
      st.Text(1, e.system).Text(2, e.dedupe_key).Text(3, e.object).Text(4, e.record_id);
      st.Text(5, e.kind).Int(6, e.occurred_ms).Int(7, e.received_ms);
      const int rc = st.Step();
      if (rc != SQLITE_DONE) return Error(rc, doing);
      added += sqlite3_changes(db_);
    }
    return Status::Ok();
  }));
  return added;
}

Result<std::vector<WebhookEvent>> SqliteStore::PendingWebhookEvents(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare(
      "SELECT id, system, dedupe_key, object, record_id, kind, occurred_ms, received_ms "
      "FROM webhook_events WHERE processed_ms = 0 ORDER BY id LIMIT ?1");
  st.Int(1, SqlLimit(limit));
  std::vector<WebhookEvent> events;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    WebhookEvent e;
    e.id = st.ColInt(0);
    e.system = st.ColText(1);
    e.dedupe_key = st.ColText(2);
    e.object = st.ColText(3);
    e.record_id = st.ColText(4);
    e.kind = st.ColText(5);
    e.occurred_ms = st.ColInt(6);
    e.received_ms = st.ColInt(7);
    events.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return Error(rc, "listing pending webhook events");
  return events;
}

Status SqliteStore::FinishWebhookEvents(int64_t up_to_id, int64_t now_ms, int64_t keep_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string doing = "marking webhook events up to " + std::to_string(up_to_id) + " done";
  return InTransaction(doing, [&]() -> Status {
    Stmt done = Prepare(
        "UPDATE webhook_events SET processed_ms = ?2 WHERE processed_ms = 0 AND id <= ?1");
    done.Int(1, up_to_id).Int(2, std::max<int64_t>(now_ms, 1));
    int rc = done.Step();
    if (rc != SQLITE_DONE) return Error(rc, doing);
    Stmt old = Prepare("DELETE FROM webhook_events WHERE processed_ms > 0 AND processed_ms < ?1");
    old.Int(1, now_ms - keep_ms);
    rc = old.Step();
    if (rc != SQLITE_DONE) return Error(rc, "forgetting old webhook events");
    return Status::Ok();
  });
}

// ---- lease ----

Result<bool> SqliteStore::AcquireLease(const std::string& holder, int64_t now_ms, int64_t ttl_ms) {
  if (holder.empty() || ttl_ms <= 0)
    return Status(StatusCode::kInvalidArgument, "a lease needs a holder and a positive ttl");
  std::lock_guard<std::mutex> lock(mu_);
  // One statement, so the check and the take are atomic across processes as well as threads. The
  // DO UPDATE's WHERE admits only a renewal or an expired lease; otherwise nothing changes.
  // Every SET expression sees the old row, so acquired_ms is kept on a live renewal.
  Stmt st = Prepare(
      "INSERT INTO lease (id, holder, acquired_ms, expires_ms) VALUES (1, ?1, ?2, ?3) "
      "ON CONFLICT (id) DO UPDATE SET "
      "acquired_ms = CASE WHEN lease.holder = excluded.holder AND lease.expires_ms > "
      "excluded.acquired_ms THEN lease.acquired_ms ELSE excluded.acquired_ms END, "
      "holder = excluded.holder, expires_ms = excluded.expires_ms "
      "WHERE lease.holder = excluded.holder OR lease.expires_ms <= excluded.acquired_ms");
  st.Text(1, holder).Int(2, now_ms).Int(3, now_ms + ttl_ms);
  const int rc = st.Step();
  if (rc != SQLITE_DONE) return Error(rc, "taking the lease for " + holder);
  return sqlite3_changes(db_) == 1;
}

Status SqliteStore::ReleaseLease(const std::string& holder) {
  std::lock_guard<std::mutex> lock(mu_);
  // Releasing a lease one does not hold (any more) changes nothing, so it is not an error.
  Stmt st = Prepare("DELETE FROM lease WHERE id = 1 AND holder = ?1");
  st.Text(1, holder);
  const int rc = st.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Error(rc, "releasing the lease of " + holder);
}

Result<std::optional<LeaseInfo>> SqliteStore::GetLease() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st = Prepare("SELECT holder, acquired_ms, expires_ms FROM lease WHERE id = 1");
  const int rc = st.Step();
  if (rc == SQLITE_DONE) return std::optional<LeaseInfo>();
  if (rc != SQLITE_ROW) return Error(rc, "reading the lease");
  return std::optional<LeaseInfo>(LeaseInfo{st.ColText(0), st.ColInt(1), st.ColInt(2)});
}

}  // namespace

int SqliteSchemaVersionKnown() { return kKnownSchemaVersion; }

namespace {

// SQLite counts the memory it holds under one process-wide mutex on every allocation it makes
// (hundreds per stored record), for sqlite3_memory_used and the soft heap limit, neither of which
// crmbridge uses. Turned off once, before SQLite initializes; a no-op (SQLITE_MISUSE) if something
// else in the process initialized it first.
void ConfigureSqliteOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    (void)sqlite3_initialize();
  });
}

// Opens `path` (a file PrepareFile has checked, or ":memory:") and brings its schema up to date.
Result<std::unique_ptr<SqliteStore>> OpenChecked(const std::string& path,
                                                const SqliteStoreOptions& options) {
  const bool in_memory = path == ":memory:";
  // Keep SQLite from reading a file literally named "file:..." as a URI.
  const std::string sqlite_path = !in_memory && path.rfind("file:", 0) == 0 ? "./" + path : path;
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(sqlite_path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                                     (in_memory ? SQLITE_OPEN_CREATE : 0),
                                 nullptr);
  if (rc != SQLITE_OK) {
    Status s(StatusCode::kFailedPrecondition,
             "cannot open state file " + path + ": " +
                 (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    return s;
  }
  Clock* clock = options.clock != nullptr ? options.clock : Clock::Real();
  auto store = std::make_unique<SqliteStore>(db, path, clock);
  CRMB_RETURN_IF_ERROR(store->Init(in_memory, options.busy_timeout_ms));
  return store;
}

// Makes a new store at `path`, which does not exist: whole (its schema committed, its WAL folded
// in) under a name of this process first, then linked into place, which fails if another process
// made one there meanwhile (that one is then used). A crash leaves no empty file at `path`.
Status CreateStoreFile(const std::string& path, const SqliteStoreOptions& options) {
  const std::string fresh = path + ".new-" + std::to_string(::getpid());
  auto remove_fresh = [&] {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) ::unlink((fresh + suffix).c_str());
  };
  remove_fresh();  // left by a crashed creation of an earlier process with this pid
  const int fd = ::open(fresh.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "cannot create state file " + path + " (as " + fresh + "): " +
                      ErrnoMessage(errno));
  }
  ::close(fd);
  {
    // Closed at the end of this block: SQLite folds the WAL into the file and removes it.
    auto made = OpenChecked(fresh, options);
    if (!made.ok()) {
      remove_fresh();
      return made.status();
    }
  }
  struct stat wal;
  if (::stat((fresh + "-wal").c_str(), &wal) == 0) {
    remove_fresh();
    return Status(StatusCode::kInternal, "making state file " + path +
                                             ": its schema was left in a WAL file on closing");
  }
  const int linked = ::link(fresh.c_str(), path.c_str());
  const int link_errno = errno;
  remove_fresh();
  if (linked != 0 && link_errno != EEXIST) {
    return Status(StatusCode::kFailedPrecondition,
                  "cannot create state file " + path + ": " + ErrnoMessage(link_errno));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const SqliteStoreOptions& options) {
  if (path.empty()) return Status(StatusCode::kInvalidArgument, "the state store path is empty");
  ConfigureSqliteOnce();
  if (path != ":memory:") {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) {
        return Status(StatusCode::kFailedPrecondition,
                      "cannot open state file " + path + ": " + ErrnoMessage(errno));
      }
      CRMB_RETURN_IF_ERROR(CreateStoreFile(path, options));
    }
    CRMB_RETURN_IF_ERROR(PrepareFile(path));
  }
  auto store = OpenChecked(path, options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(std::move(*store));
}

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  return OpenSqliteStore(path, SqliteStoreOptions());
}

}  // namespace crmbridge
