// The crmbridge subcommands. Each returns the process exit code:
//   0 success
//   1 the run finished but some records were dead-lettered (see `crmbridge dlq list`)
//   2 usage or configuration error (the message names file:line:column)
//   3 another run holds the lease
//   4 a system was unreachable or refused the credentials
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/core/status.h"

namespace crmbridge::cli {

enum ExitCode {
  kExitOk = 0,
  kExitDeadLettered = 1,
  kExitUsage = 2,
  kExitLeaseHeld = 3,
  kExitUnreachable = 4,
  kExitInternal = 70,  // the state store failed or a bug: see the log
};

struct GlobalOptions {
  std::string config_path;
  // Whether --config or $CRMBRIDGE_CONFIG named it (else it is ./crmbridge.yaml, if there is one).
  bool config_named = false;
  std::string log_format = "text";  // text | json
  std::string log_level = "info";
  // A registered tenant instead of --config (status --tenant, backfill --tenant): its
  // configuration and its state come from the tenant registry at `state_url` (default
  // $CRMBRIDGE_STATE_URL).
  std::string tenant;
  std::string state_url;
};

struct SyncOptions {
  bool dry_run = false;
  bool json = false;
  bool verbose = false;
  std::string metrics_file;  // written after the run (node_exporter's textfile collector)
};

struct BackfillOptions {
  std::string system;
  std::string entity;
  std::string since;  // ISO-8601 date or time, empty = everything
  bool dry_run = false;
  bool json = false;
  bool verbose = false;
};

struct DaemonOptions {
  std::string every;  // "": the configuration's schedule.every (5m unless it says)
  int max_runs = 0;  // 0 = until stopped
};

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free one
  std::string every;  // "": the configuration's schedule.every (5m unless it says)
  std::string public_url;  // how webhook senders reach this server, for their signatures
  std::string webhook_interval = "1s";  // least time between two runs for announced changes
};

struct StatusOptions {
  bool json = false;
  int runs = 10;
};

struct DlqOptions {
  bool json = false;
  int limit = 100;
  std::vector<int64_t> replay_ids;  // dlq replay ID...
  bool replay_all = false;
};

struct MappingsOptions {
  std::vector<std::string> files;  // mapping files; empty = those of the configuration
  std::vector<std::string> kinds;  // without a configuration: NAME=KIND, a system's kind
  std::string system;              // preview: the system the record comes from
  std::string entity;              // preview: its canonical entity
  std::string record_path;         // preview: the native record as JSON
  bool json = false;
};

struct ReportOptions {
  std::string entity = "onboarding";
  std::string stuck_after = "30d";     // days in the current stage at which it is stuck
  std::string escalate_after = "60d";  // days open at which it is overdue
  std::string as_of;                   // date or UTC time; empty = now
  bool all = false;                    // list ended onboardings too
  bool json = false;
  std::string html_path;               // write the HTML report here
};

struct AuditOptions {
  std::string since;  // ISO-8601 date or UTC time; empty = the whole trail
  bool json = false;
};

struct TenantsOptions {
  std::string state_url;    // --state; default $CRMBRIDGE_STATE_URL
  std::string name;
  std::string config_path;  // add: the tenant's crmbridge.yaml
  bool drop_state = false;  // remove: its state schema too
  bool json = false;        // list
};

struct WorkerOptions {
  std::string state_url;
  int concurrency = 2;
  std::string listen = "127.0.0.1:8081";  // health endpoints
  std::string lease_ttl = "2m";
  std::string poll = "5s";
};

int RunSync(const GlobalOptions& global, const SyncOptions& options);
int RunTenantsAdd(const GlobalOptions& global, const TenantsOptions& options);
int RunTenantsList(const GlobalOptions& global, const TenantsOptions& options);
int RunTenantsRemove(const GlobalOptions& global, const TenantsOptions& options);
int RunTenantsMigrate(const GlobalOptions& global, const TenantsOptions& options);
int RunWorker(const GlobalOptions& global, const WorkerOptions& options);

// The PostgreSQL URL of the tenant registry: `given` (a command's --state), else
// $CRMBRIDGE_STATE_URL. kExitOk with it in *url, else kExitUsage with the reason on stderr
// (none given, not a postgresql:// URL, or a password written on the command line, where every
// user of the machine sees it). `command` starts the message ("crmbridge worker").
int ResolveStateUrl(const std::string& given, const char* command, std::string* url);
// The exit code of a command that failed with `s`: 2 for what the user gave (a bad name or value,
// something absent, a duplicate), 4 for a server that cannot be reached or refuses the login or
// the call (kFailedPrecondition, kUnavailable, kUnauthenticated, kDeadlineExceeded), 70 for the
// rest.
int ExitCodeFor(const Status& s);
// HOST:PORT of a --listen option; false when it is not one.
bool ParseListen(const std::string& listen, std::string* host, int* port);
// `crmbridge audit portal`: every portal user change, grant, reset and revoke, oldest first.
int RunAuditPortal(const GlobalOptions& global, const AuditOptions& options);
int RunAuditMerges(const GlobalOptions& global, const AuditOptions& options);
int RunStatus(const GlobalOptions& global, const StatusOptions& options);
int RunDaemon(const GlobalOptions& global, const DaemonOptions& options);
int RunServe(const GlobalOptions& global, const ServeOptions& options);
int RunBackfill(const GlobalOptions& global, const BackfillOptions& options);
// `connectors describe [KIND]`: what each kind (or `kind`) takes in a mapping; exit 2 for an
// unknown kind.
int RunConnectorsDescribe(const std::string& kind);
int RunMappingsValidate(const GlobalOptions& global, const MappingsOptions& options);
int RunMappingsPreview(const GlobalOptions& global, const MappingsOptions& options);
int RunDlqList(const GlobalOptions& global, const DlqOptions& options);
int RunDlqReplay(const GlobalOptions& global, const DlqOptions& options);
int RunReportOnboarding(const GlobalOptions& global, const ReportOptions& options);

}  // namespace crmbridge::cli
