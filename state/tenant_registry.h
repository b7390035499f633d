// TenantRegistry: the tenants many crmbridge workers share in one PostgreSQL database, and the
// claims by which one worker at a time runs each.
//
// A tenant is one crmbridge.yaml (its systems, mappings and `schedule: {every: ...}`) under a
// name. Its sync state lives in a schema of its own (tenant_<name>, see SchemaOfTenant): the store
// of one tenant is opened with that schema as its search_path, so no statement it runs can name
// another tenant's tables. The registry itself lives in the schema `crmbridge_registry`.
//
// Claims. A worker claims due tenants with SELECT ... FOR UPDATE SKIP LOCKED: two workers asking
// at once get different tenants, never the same one, and never wait on each other. A claim is a
// lease (holder, lease_until) and a fencing epoch that grows on every claim. The holder
// renews the lease while it runs and releases it when done; a tenant whose lease ran out (its
// worker was killed, paused or cut off) is claimed again by any worker, with the next epoch.
// Every commit to a tenant's state carries the epoch it was claimed with and is refused in its own
// transaction once the epoch has moved on (PostgresStoreOptions::fence), so a worker that wakes
// up past its lease writes nothing over the next holder's work.
//
// Times are the database server's clock (clock_timestamp()), so workers on machines whose clocks
// disagree still agree on when a lease runs out. Each claim is logged in tenant_runs with the
// holder, epoch and the interval the lease covered, for operators and the chaos test.
//
// Thread-safety: one connection guarded by a mutex; every call is atomic.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/core/status.h"

namespace crmbridge {

namespace pg {
class Session;
}

// The schema of the registry's own tables.
inline constexpr const char* kRegistrySchema = "crmbridge_registry";

// A tenant name: 1 to 40 of a-z, 0-9, '-' and '_', starting with a letter. "" when `name` is one,
// else why it is not.
std::string TenantNameProblem(const std::string& name);
// The schema of tenant `name`'s state: "tenant_" and the name with '-' as '_'.
std::string SchemaOfTenant(const std::string& name);

struct TenantRow {
  std::string name;
  std::string schema;
  std::string config_path;        // absolute
  int64_t every_ms = 0;           // the schedule
  int64_t next_due_ms = 0;
  std::string holder;             // the last claim's worker ("" once released)
  int64_t lease_until_ms = 0;     // the claim is live while this is after now_ms
  int64_t epoch = 0;              // grows on every claim
  std::string job;                // a backfill asked for (JSON), run at the next claim; "" none
  int64_t added_ms = 0;
  int64_t last_started_ms = 0;
  int64_t last_finished_ms = 0;
  std::string last_outcome;       // "ok", "failed", "config", "lease lost", ... ("" never run)
  std::string last_error;
  int64_t refused_commits = 0;    // commits refused for a stale epoch, ever
  int64_t now_ms = 0;             // the server's clock when this was read
};

struct TenantClaim {
  std::string name;
  std::string schema;
  std::string config_path;
  int64_t epoch = 0;
  int64_t run_id = 0;             // its row in tenant_runs
  int64_t every_ms = 0;
  std::string job;                // the backfill to run (JSON), "" for a scheduled sync
  int64_t started_ms = 0;
};

struct TenantRun {
  int64_t id = 0;
  std::string tenant;
  std::string holder;
  int64_t epoch = 0;
  std::string job;                // "sync" or "backfill"
  int64_t started_ms = 0;
  int64_t lease_until_ms = 0;     // as last renewed
  int64_t finished_ms = 0;        // 0 while running, or never released (killed)
  std::string outcome;            // "running" until released
};

class TenantRegistry {
 public:
  // Connects and creates or upgrades the registry's schema (versioned migrations, one process at
  // a time). Errors as OpenPostgresStore's: kInvalidArgument for a url that does not parse,
  // kFailedPrecondition when the server cannot be reached or refuses the login, never quoting
  // the password.
  static Result<std::unique_ptr<TenantRegistry>> Open(const std::string& url,
                                                      int connect_timeout_s = 10);
  ~TenantRegistry();

  // Registers tenant `name`, due at once. kInvalidArgument for a bad name or an every_ms under
  // 10 s; kAlreadyExists when the name (or another name of the same schema) is taken.
  Status Add(const std::string& name, const std::string& config_path, int64_t every_ms);
  // Unregisters it: no worker claims it again, and a worker running it has its next commit
  // refused. Its state schema stays unless `drop_state`. kNotFound when there is no such tenant.
  Status Remove(const std::string& name, bool drop_state);
  // Every tenant, by name.
  Result<std::vector<TenantRow>> List();
  Result<std::optional<TenantRow>> Get(const std::string& name);

  // Claims up to `limit` tenants that are due (or have a job) and whose lease is free or ran
  // out, for `holder`, for ttl_ms; each with a new epoch (from a sequence of the whole registry:
  // never one an earlier claim of any tenant had) and a tenant_runs row. Tenants
  // another transaction is claiming are skipped, not waited for.
  Result<std::vector<TenantClaim>> ClaimDue(const std::string& holder, int64_t ttl_ms, int limit);
  // Extends the claim by ttl_ms from now. False when the epoch has moved on (another worker
  // claimed it), the tenant was removed, or the claim was released: the claim is lost.
  Result<bool> Renew(const TenantClaim& claim, int64_t ttl_ms);
  // Ends the claim: the tenant is next due `every` after the claim started (or at once when that
  // has passed), its job done (when it ran one), and the run's outcome recorded. A claim that
  // was lost changes only its own tenant_runs row (outcome "lease lost: ...").
  Status Release(const TenantClaim& claim, const std::string& outcome, const std::string& error);
  // Asks for a backfill (JSON the worker reads) at the tenant's next claim, which is made due at
  // once. kNotFound when there is no such tenant; kAlreadyExists when one is already waiting.
  Status RequestBackfill(const std::string& name, const std::string& job);

  // What tenant `t`'s state holds waiting: its outbox items and dead letters, counted in its
  // schema over the registry's connection (a listing of many tenants opens no store each, and
  // creates or migrates nothing). nullopt when its state has no tables (never opened, or dropped).
  struct Backlog {
    int64_t outbox_pending = 0;
    int64_t dead_letters = 0;
  };
  Result<std::optional<Backlog>> BacklogOf(const TenantRow& t);

  // Tenant `name`'s claims, oldest first.
  Result<std::vector<TenantRun>> Runs(const std::string& name);
  // One round trip to the server (readiness).
  Status Ping();

 private:
  explicit TenantRegistry(std::unique_ptr<pg::Session> session);
  Status Migrate();
  // The connection, made again (and configured) if it was lost. REQUIRES mu_.
  Status Connected();
  Status Configure();
  Status ConfigureLocked();  // REQUIRES mu_

  std::mutex mu_;
  std::unique_ptr<pg::Session> session_;
};

}  // namespace crmbridge
