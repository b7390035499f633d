// TenantRegistry: see state/tenant_registry.h. Every statement names its tables with their
// schema (crmbridge_registry.tenants), so the connection's search_path plays no part.
#include "state/tenant_registry.h"

#include <cctype>

#include "src/core/redaction.h"
#include "state/pg_session.h"

namespace crmbridge {
namespace {

using pg::Params;
using pg::Rows;

// The server's clock in milliseconds, read afresh in each statement (not the transaction's start).
#define CRMB_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

struct RegistryMigration {
  int version;
  const char* description;
  const char* sql;
};

const RegistryMigration kRegistryMigrations[] = {
    {1, "tenants and their claims", R"sql(
CREATE TABLE crmbridge_registry.tenants (
  name             text COLLATE "C" PRIMARY KEY,
  schema_name      text COLLATE "C" NOT NULL UNIQUE,
  config_path      text NOT NULL,
  every_ms         bigint NOT NULL,
  next_due_ms      bigint NOT NULL,
  holder           text NOT NULL DEFAULT '',
  lease_until_ms   bigint NOT NULL DEFAULT 0,
  epoch            bigint NOT NULL DEFAULT 0,
  job              text,                        -- a backfill asked for (JSON); NULL: none
  added_ms         bigint NOT NULL,
  last_started_ms  bigint NOT NULL DEFAULT 0,
  last_finished_ms bigint NOT NULL DEFAULT 0,
  last_outcome     text NOT NULL DEFAULT '',
  last_error       text NOT NULL DEFAULT '',
  refused_commits  bigint NOT NULL DEFAULT 0
);
CREATE INDEX tenants_by_due ON crmbridge_registry.tenants (next_due_ms);
-- Epochs for the whole registry: a tenant removed and added again never gets an epoch a worker of
-- its earlier self may still hold.
CREATE SEQUENCE crmbridge_registry.epochs;
CREATE TABLE crmbridge_registry.tenant_runs (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant         text COLLATE "C" NOT NULL,
  holder         text NOT NULL,
  epoch          bigint NOT NULL,
  job            text NOT NULL,                 -- "sync" or "backfill"
  started_ms     bigint NOT NULL,
  lease_until_ms bigint NOT NULL,
  finished_ms    bigint NOT NULL DEFAULT 0,     -- 0: running, or its worker never came back
  outcome        text NOT NULL DEFAULT 'running'
);
CREATE INDEX tenant_runs_by_tenant ON crmbridge_registry.tenant_runs (tenant, id);
)sql"},
    {2, "vendor accounts and their shared rate budgets", R"sql(
-- Which vendor account each tenant's systems spend (connectors' AccountOf), as its last run saw.
CREATE TABLE crmbridge_registry.tenant_accounts (
  tenant  text COLLATE "C" NOT NULL
          REFERENCES crmbridge_registry.tenants (name) ON DELETE CASCADE,
  system  text COLLATE "C" NOT NULL,
  account text COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant, system)
);
CREATE INDEX tenant_accounts_by_account ON crmbridge_registry.tenant_accounts (account);
-- A budget of an account that several tenants spend ("<account>|rest"); its row is locked while a
-- slot is taken.
CREATE TABLE crmbridge_registry.rate_budgets (
  budget          text COLLATE "C" PRIMARY KEY,
  paused_until_ms bigint NOT NULL DEFAULT 0
);
-- The slots handed out in the budget's last window (and ahead of now, for callers still waiting).
CREATE TABLE crmbridge_registry.rate_slots (
  budget  text COLLATE "C" NOT NULL,
  slot_ms bigint NOT NULL
);
CREATE INDEX rate_slots_by_budget ON crmbridge_registry.rate_slots (budget, slot_ms);
-- Takes the earliest slot with fewer than p_capacity slots in the p_window_ms before it, not
-- before the budget's pause ends, and answers how many ms from now it is (-1: p_try, none free).
CREATE FUNCTION crmbridge_registry.take_rate_slot(p_budget text, p_capacity integer,
                                                  p_window_ms bigint, p_try boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  now_ms bigint;
  slot   bigint;
  nth    bigint;
BEGIN
  INSERT INTO crmbridge_registry.rate_budgets (budget) VALUES (p_budget) ON CONFLICT DO NOTHING;
  SELECT paused_until_ms INTO slot FROM crmbridge_registry.rate_budgets
   WHERE budget = p_budget FOR UPDATE;
  -- Read once the lock is held: a caller that waited for it must not take a slot in the past.
  now_ms := (extract(epoch from clock_timestamp()) * 1000)::bigint;
  slot := greatest(slot, now_ms);
  DELETE FROM crmbridge_registry.rate_slots
   WHERE budget = p_budget AND slot_ms <= now_ms - p_window_ms;
  SELECT slot_ms INTO nth FROM crmbridge_registry.rate_slots WHERE budget = p_budget
   ORDER BY slot_ms DESC OFFSET greatest(p_capacity, 1) - 1 LIMIT 1;
  IF FOUND THEN
    slot := greatest(slot, nth + p_window_ms);
  END IF;
  IF p_try AND slot > now_ms THEN
    RETURN -1;
  END IF;
  INSERT INTO crmbridge_registry.rate_slots (budget, slot_ms) VALUES (p_budget, slot);
  RETURN slot - now_ms;
END
$$;
)sql"},
};

constexpr int kRegistryVersion =
    static_cast<int>(sizeof(kRegistryMigrations) / sizeof(kRegistryMigrations[0]));

// The same advisory lock as the state store's migrations: schema changes of one database, one
// process at a time.
constexpr const char* kMigrationLockSql = "SELECT pg_advisory_xact_lock(1668443490)";

constexpr const char* kTenantColumns =
    "name, schema_name, config_path, every_ms, next_due_ms, holder, lease_until_ms, epoch, "
    "coalesce(job, ''), added_ms, last_started_ms, last_finished_ms, last_outcome, last_error, "
    "refused_commits, " CRMB_NOW_MS;

TenantRow ReadTenant(const Rows& r, int row) {
  TenantRow t;
  t.name = r.Text(row, 0);
  t.schema = r.Text(row, 1);
  t.config_path = r.Text(row, 2);
  t.every_ms = r.Int(row, 3);
  t.next_due_ms = r.Int(row, 4);
  t.holder = r.Text(row, 5);
  t.lease_until_ms = r.Int(row, 6);
  t.epoch = r.Int(row, 7);
  t.job = r.Text(row, 8);
  t.added_ms = r.Int(row, 9);
  t.last_started_ms = r.Int(row, 10);
  t.last_finished_ms = r.Int(row, 11);
  t.last_outcome = r.Text(row, 12);
  t.last_error = r.Text(row, 13);
  t.refused_commits = r.Int(row, 14);
  t.now_ms = r.Int(row, 15);
  return t;
}

}  // namespace

std::string TenantNameProblem(const std::string& name) {
  if (name.empty()) return "a tenant needs a name";
  if (name.size() > 40) return "a tenant name is at most 40 characters";
  if (!std::islower(static_cast<unsigned char>(name[0])))
    return "a tenant name starts with a lowercase letter";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (!std::islower(u) && !std::isdigit(u) && c != '-' && c != '_')
      return "a tenant name holds only a-z, 0-9, '-' and '_'";
  }
  return "";
}

std::string SchemaOfTenant(const std::string& name) {
  std::string schema = "tenant_" + name;
  for (char& c : schema)
    if (c == '-') c = '_';
  return schema;
}

TenantRegistry::TenantRegistry(std::unique_ptr<pg::Session> session)
    : session_(std::move(session)) {}
TenantRegistry::~TenantRegistry() = default;

Result<std::unique_ptr<TenantRegistry>> TenantRegistry::Open(const std::string& url,
                                                             int connect_timeout_s) {
  if (url.empty()) return Status(StatusCode::kInvalidArgument, "the tenant registry url is empty");
  auto session = pg::Session::Open(url, connect_timeout_s, "the PostgreSQL tenant registry",
                                   "tenant registry");
  if (!session.ok()) return session.status();
  std::unique_ptr<TenantRegistry> registry(new TenantRegistry(std::move(*session)));
  Status s = registry->Configure();
  if (s.ok()) s = registry->Migrate();
  if (!s.ok()) {
    if (s.code() != StatusCode::kUnavailable && s.code() != StatusCode::kFailedPrecondition)
      s = Status(StatusCode::kFailedPrecondition, s.message());
    return s;
  }
  return registry;
}

Status TenantRegistry::Connected() {
  auto reconnected = session_->Reconnect();
  if (!reconnected.ok()) return reconnected.status();
  return *reconnected ? ConfigureLocked() : Status::Ok();
}

Status TenantRegistry::Configure() {
  std::lock_guard<std::mutex> lock(mu_);
  return ConfigureLocked();
}

Status TenantRegistry::ConfigureLocked() {
  // A call never waits long for a row a paused worker's transaction holds: it fails, and the
  // caller tries again.
  return session_->ExecPlain("SET lock_timeout = 10000", "setting lock_timeout");
}

Status TenantRegistry::Migrate() {
  std::lock_guard<std::mutex> lock(mu_);
  pg::Session& db = *session_;
  return db.InTransaction("BEGIN", "migrating the tenant registry", [&]() -> Status {
    CRMB_RETURN_IF_ERROR(db.ExecPlain(kMigrationLockSql, "waiting for other migrations"));
    CRMB_RETURN_IF_ERROR(db.ExecPlain(
        "CREATE SCHEMA IF NOT EXISTS crmbridge_registry; "
        "CREATE TABLE IF NOT EXISTS crmbridge_registry.schema_version (version integer PRIMARY "
        "KEY, description text NOT NULL, applied_ms bigint NOT NULL)",
        "creating the registry's schema"));
    auto version = db.Run("SELECT coalesce(max(version), 0) FROM crmbridge_registry.schema_version",
                          Params(), "reading the registry's version");
    if (!version.ok()) return version.status();
    const int at = static_cast<int>(version->Int(0, 0));
    if (at > kRegistryVersion) {
      return Status(StatusCode::kFailedPrecondition,
                    "the tenant registry " + db.shown() + " has schema version " +
                        std::to_string(at) + ", this crmbridge knows up to " +
                        std::to_string(kRegistryVersion));
    }
    for (const RegistryMigration& m : kRegistryMigrations) {
      if (m.version <= at) continue;
      const std::string doing = "registry migration " + std::to_string(m.version) + " (" +
                                m.description + ")";
      CRMB_RETURN_IF_ERROR(db.ExecPlain(m.sql, doing));
      auto recorded = db.Run(
          "INSERT INTO crmbridge_registry.schema_version (version, description, applied_ms) "
          "VALUES ($1, $2, " CRMB_NOW_MS ")",
          Params().Int(m.version).Text(m.description), "recording " + doing);
      if (!recorded.ok()) return recorded.status();
    }
    return Status::Ok();
  });
}

Status TenantRegistry::Add(const std::string& name, const std::string& config_path,
                           int64_t every_ms) {
  if (std::string why = TenantNameProblem(name); !why.empty())
    return Status(StatusCode::kInvalidArgument, "tenant \"" + name + "\": " + why);
  if (every_ms < 10'000)
    return Status(StatusCode::kInvalidArgument, "tenant " + name + ": a schedule of at least 10s");
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  auto taken = session_->Run(
      "SELECT name FROM crmbridge_registry.tenants WHERE name = $1 OR schema_name = $2",
      Params().Text(name).Text(SchemaOfTenant(name)), "looking for tenant " + name);
  if (!taken.ok()) return taken.status();
  if (taken->size() > 0) {
    const std::string other = taken->Text(0, 0);
    return Status(StatusCode::kAlreadyExists,
                  other == name ? "tenant " + name + " is already registered"
                                : "tenant " + name + " would share its state schema " +
                                      SchemaOfTenant(name) + " with tenant " + other +
                                      " ('-' and '_' are one there): choose another name");
  }
  auto r = session_->Run(
      "INSERT INTO crmbridge_registry.tenants (name, schema_name, config_path, every_ms, "
      "next_due_ms, added_ms) VALUES ($1, $2, $3, $4, " CRMB_NOW_MS ", " CRMB_NOW_MS ")",
      Params().Text(name).Text(SchemaOfTenant(name)).Text(config_path).Int(every_ms),
      "registering tenant " + name);
  if (!r.ok() && r.status().code() == StatusCode::kAlreadyExists)
    return Status(StatusCode::kAlreadyExists, "tenant " + name + " is already registered");
  return r.status();
}

Status TenantRegistry::Remove(const std::string& name, bool drop_state) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  return session_->InTransaction("BEGIN", "removing tenant " + name, [&]() -> Status {
    auto r = session_->Run(
        "DELETE FROM crmbridge_registry.tenants WHERE name = $1 RETURNING schema_name",
        Params().Text(name), "removing tenant " + name);
    if (!r.ok()) return r.status();
    if (r->size() == 0) return Status(StatusCode::kNotFound, "there is no tenant " + name);
    if (!drop_state) return Status::Ok();
    const std::string schema = r->Text(0, 0);
    if (!pg::IsSqlName(schema))
      return Status(StatusCode::kInternal, "tenant " + name + " has a schema name not its own");
    const std::string drop = "DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE";
    return session_->ExecPlain(drop.c_str(), "dropping the state of tenant " + name);
  });
}

Result<std::vector<TenantRow>> TenantRegistry::List() {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  auto r = session_->Run(std::string("SELECT ") + kTenantColumns +
                             " FROM crmbridge_registry.tenants ORDER BY name",
                         Params(), "listing the tenants");
  if (!r.ok()) return r.status();
  std::vector<TenantRow> out;
  for (int i = 0; i < r->size(); ++i) out.push_back(ReadTenant(*r, i));
  return out;
}

Result<std::optional<TenantRow>> TenantRegistry::Get(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  auto r = session_->Run(std::string("SELECT ") + kTenantColumns +
                             " FROM crmbridge_registry.tenants WHERE name = $1",
                         Params().Text(name), "reading tenant " + name);
  if (!r.ok()) return r.status();
  if (r->size() == 0) return std::optional<TenantRow>();
  return std::optional<TenantRow>(ReadTenant(*r, 0));
}

Result<std::vector<TenantClaim>> TenantRegistry::ClaimDue(const std::string& holder,
                                                          int64_t ttl_ms, int limit) {
  if (holder.empty() || ttl_ms <= 0 || limit <= 0)
    return Status(StatusCode::kInvalidArgument, "a claim needs a holder, a ttl and a limit");
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  std::vector<TenantClaim> claims;
  Status s = session_->InTransaction("BEGIN", "claiming due tenants", [&]() -> Status {
    claims.clear();
    // Locked rows are another worker's claim in progress: skipped, so claims never queue.
    auto r = session_->Run(
        "WITH due AS (SELECT name FROM crmbridge_registry.tenants "
        "  WHERE (next_due_ms <= " CRMB_NOW_MS " OR job IS NOT NULL) "
        "    AND lease_until_ms <= " CRMB_NOW_MS
        "  ORDER BY job IS NULL, next_due_ms, name LIMIT $3 FOR UPDATE SKIP LOCKED) "
        "UPDATE crmbridge_registry.tenants t SET holder = $1, "
        "  epoch = nextval('crmbridge_registry.epochs'), "
        "  lease_until_ms = " CRMB_NOW_MS " + $2, last_started_ms = " CRMB_NOW_MS " "
        "FROM due WHERE t.name = due.name "
        "RETURNING t.name, t.schema_name, t.config_path, t.epoch, t.every_ms, "
        "  coalesce(t.job, ''), t.last_started_ms, t.lease_until_ms",
        Params().Text(holder).Int(ttl_ms).Int(limit), "claiming due tenants");
    if (!r.ok()) return r.status();
    for (int i = 0; i < r->size(); ++i) {
      TenantClaim c;
      c.name = r->Text(i, 0);
      c.schema = r->Text(i, 1);
      c.config_path = r->Text(i, 2);
      c.epoch = r->Int(i, 3);
      c.every_ms = r->Int(i, 4);
      c.job = r->Text(i, 5);
      c.started_ms = r->Int(i, 6);
      auto run = session_->Run(
          "INSERT INTO crmbridge_registry.tenant_runs (tenant, holder, epoch, job, started_ms, "
          "lease_until_ms) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
          Params().Text(c.name).Text(holder).Int(c.epoch).Text(c.job.empty() ? "sync" : "backfill")
              .Int(c.started_ms).Int(r->Int(i, 7)),
          "logging the claim of tenant " + c.name);
      if (!run.ok()) return run.status();
      c.run_id = run->Int(0, 0);
      claims.push_back(std::move(c));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return claims;
}

Result<bool> TenantRegistry::Renew(const TenantClaim& claim, int64_t ttl_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  bool renewed = false;
  Status s = session_->InTransaction("BEGIN", "renewing the claim of " + claim.name,
                                     [&]() -> Status {
    auto r = session_->Run(
        "UPDATE crmbridge_registry.tenants SET lease_until_ms = " CRMB_NOW_MS " + $3 "
        "WHERE name = $1 AND epoch = $2 AND lease_until_ms > 0 RETURNING lease_until_ms",
        Params().Text(claim.name).Int(claim.epoch).Int(ttl_ms),
        "renewing the claim of " + claim.name);
    if (!r.ok()) return r.status();
    renewed = r->size() == 1;
    if (!renewed) return Status::Ok();
    return session_
        ->Run("UPDATE crmbridge_registry.tenant_runs SET lease_until_ms = $2 "
              "WHERE id = $1 AND finished_ms = 0",
              Params().Int(claim.run_id).Int(r->Int(0, 0)), "logging the renewal of " + claim.name)
        .status();
  });
  if (!s.ok()) return s;
  return renewed;
}

Status TenantRegistry::Release(const TenantClaim& claim, const std::string& outcome,
                               const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  return session_->InTransaction("BEGIN", "releasing tenant " + claim.name, [&]() -> Status {
    // The next run is due `every` after this one started, or at once when that has passed; a
    // job asked for while this one ran stays for the next claim.
    auto r = session_->Run(
        "UPDATE crmbridge_registry.tenants SET holder = '', lease_until_ms = 0, "
        "  next_due_ms = greatest($3 + every_ms, " CRMB_NOW_MS "), "
        "  job = CASE WHEN job = $4 THEN NULL ELSE job END, "
        "  last_finished_ms = " CRMB_NOW_MS ", last_outcome = $5, last_error = $6 "
        "WHERE name = $1 AND epoch = $2",
        Params().Text(claim.name).Int(claim.epoch).Int(claim.started_ms).Text(claim.job)
            .Text(outcome).Text(Redactor::Global().Redact(error)),
        "releasing tenant " + claim.name);
    if (!r.ok()) return r.status();
    const std::string logged = r->Affected() == 1 ? outcome : "lease lost: " + outcome;
    return session_
        ->Run("UPDATE crmbridge_registry.tenant_runs SET finished_ms = " CRMB_NOW_MS
              ", outcome = $2 WHERE id = $1",
              Params().Int(claim.run_id).Text(logged), "logging the end of " + claim.name)
        .status();
  });
}

Status TenantRegistry::RequestBackfill(const std::string& name, const std::string& job) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  return session_->InTransaction("BEGIN", "asking tenant " + name + " for a backfill",
                                 [&]() -> Status {
    auto r = session_->Run(
        "SELECT job IS NOT NULL FROM crmbridge_registry.tenants WHERE name = $1 FOR UPDATE",
        Params().Text(name), "reading tenant " + name);
    if (!r.ok()) return r.status();
    if (r->size() == 0) return Status(StatusCode::kNotFound, "there is no tenant " + name);
    if (r->View(0, 0) == "t")
      return Status(StatusCode::kAlreadyExists,
                    "tenant " + name + " already has a backfill waiting for a worker");
    return session_
        ->Run("UPDATE crmbridge_registry.tenants SET job = $2 WHERE name = $1",
              Params().Text(name).Text(job), "asking tenant " + name + " for a backfill")
        .status();
  });
}

Result<std::optional<TenantRegistry::Backlog>> TenantRegistry::BacklogOf(const TenantRow& t) {
  if (!pg::IsSqlName(t.schema))
    return Status(StatusCode::kInternal, "tenant " + t.name + " has a schema name not its own");
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  const std::string doing = "counting the backlog of tenant " + t.name;
  auto present = session_->Run("SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
                               Params().Text(t.schema + ".outbox").Text(t.schema + ".dead_letters"),
                               doing);
  if (!present.ok()) return present.status();
  if (present->View(0, 0) != "t") return std::optional<Backlog>();
  // The schema is a checked name, quoted: identifiers take no bound parameters.
  const std::string q = "\"" + t.schema + "\"";
  auto r = session_->Run("SELECT (SELECT count(*) FROM " + q + ".outbox), (SELECT count(*) FROM " +
                             q + ".dead_letters)",
                         Params(), doing);
  if (!r.ok()) return r.status();
  return std::optional<Backlog>(Backlog{r->Int(0, 0), r->Int(0, 1)});
}

Result<std::vector<TenantRun>> TenantRegistry::Runs(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  auto r = session_->Run(
      "SELECT id, tenant, holder, epoch, job, started_ms, lease_until_ms, finished_ms, outcome "
      "FROM crmbridge_registry.tenant_runs WHERE tenant = $1 ORDER BY id",
      Params().Text(name), "reading the runs of tenant " + name);
  if (!r.ok()) return r.status();
  std::vector<TenantRun> out;
  for (int i = 0; i < r->size(); ++i) {
    TenantRun t;
    t.id = r->Int(i, 0);
    t.tenant = r->Text(i, 1);
    t.holder = r->Text(i, 2);
    t.epoch = r->Int(i, 3);
    t.job = r->Text(i, 4);
    t.started_ms = r->Int(i, 5);
    t.lease_until_ms = r->Int(i, 6);
    t.finished_ms = r->Int(i, 7);
    t.outcome = r->Text(i, 8);
    out.push_back(std::move(t));
  }
  return out;
}

Status TenantRegistry::Ping() {
  // A call in progress holds the connection: it is in use, and lock_timeout bounds it. Waiting
  // behind it would let readiness probes pile up behind one slow call.
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return Status::Ok();
  CRMB_RETURN_IF_ERROR(Connected());
  return session_->Run("SELECT 1", Params(), "asking the server").status();
}

}  // namespace crmbridge
