// crmbridge: keeps customer-onboarding data in step between HubSpot, Dynamics 365, a customer
// success platform and a customer portal. See README.md and docs/OPERATIONS.md.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include <CLI/CLI.hpp>

#include "src/cli/allocator.h"
#include "src/cli/commands.h"

namespace {

const char* kDescription =
    "crmbridge keeps customer-onboarding data in step between HubSpot, Dynamics 365, a customer\n"
    "success platform and a customer portal, field by field as the mapping files say. A local\n"
    "state store (SQLite) makes every run idempotent and safe to repeat after a failure.\n";

const char* kFooter =
    "\nExit codes: 0 success; 1 finished but some records were dead-lettered; 2 usage or\n"
    "configuration error; 3 another run holds the lease; 4 a system was unreachable;\n"
    "70 the state store failed, the output could not be written, or an internal error (see the\n"
    "log).\n"
    "\nExamples:\n"
    "  crmbridge --config crmbridge.yaml sync --dry-run     show what a sync would write\n"
    "  crmbridge --config crmbridge.yaml sync               run one sync\n"
    "  crmbridge --config crmbridge.yaml daemon --every 5m  sync on a schedule until SIGTERM\n"
    "  crmbridge --config crmbridge.yaml serve              the same, and take webhooks\n"
    "  crmbridge --config crmbridge.yaml backfill --system hubspot   read a system in full\n"
    "  crmbridge --config crmbridge.yaml status --json      last runs, cursors, outbox, lease\n"
    "  crmbridge --config crmbridge.yaml report onboarding  stages, days in stage, stuck ones\n"
    "\nMany tenants on PostgreSQL (CRMBRIDGE_STATE_URL=postgresql://...):\n"
    "  crmbridge tenants add acme --config acme.yaml        register a tenant's crmbridge.yaml\n"
    "  crmbridge worker --concurrency 4                     run due tenants until SIGTERM\n"
    "  crmbridge tenants list                               last run, next due, holder, backlog\n";

// Every option that takes a value, of `app` and its subcommands, refuses an empty one: read as
// "not given", `--entity ""` would backfill every entity and `--html ""` print the report
// instead of writing it.
void RefuseEmptyValues(CLI::App* app) {
  for (CLI::Option* option : app->get_options()) {
    if (option->get_type_size_max() == 0) continue;  // a flag
    option->check(CLI::Validator(
        [](std::string& value) -> std::string { return value.empty() ? "needs a value" : ""; },
        ""));
  }
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) RefuseEmptyValues(sub);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace crmbridge::cli;
  CLI::App app{kDescription, "crmbridge"};
  app.footer(kFooter);
  app.set_version_flag("--version", "crmbridge 0.1.0 (allocator: " + AllocatorName() + ")");
  app.require_subcommand(1);

  GlobalOptions global;
  // Set but empty is not set (as `CRMBRIDGE_CONFIG= crmbridge ...` is meant).
  const char* env_config = std::getenv("CRMBRIDGE_CONFIG");
  if (env_config != nullptr && *env_config == '\0') env_config = nullptr;
  global.config_path = env_config != nullptr ? env_config : "crmbridge.yaml";
  app.option_defaults()->always_capture_default();
  CLI::Option* config_option =
      app.add_option("-c,--config", global.config_path,
                     "crmbridge.yaml to use (default: $CRMBRIDGE_CONFIG, else ./crmbridge.yaml)");
  app.add_option("--log-format", global.log_format, "Log lines on stderr as text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", global.log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  SyncOptions sync;
  CLI::App* sync_cmd = app.add_subcommand(
      "sync",
      "Run one sync: read what changed in every system since the last run, map it, and write\n"
      "it to the other systems. Safe to repeat; a second run with no changes writes nothing.");
  sync_cmd->add_flag("--dry-run", sync.dry_run,
                     "Read and map everything, print the writes a sync would make, write "
                     "nothing (no API write, no state change)");
  sync_cmd->add_flag("--json", sync.json, "Print the run summary (and dry-run plan) as JSON");
  sync_cmd->add_flag("-v,--verbose", sync.verbose,
                     "Print every write (planned, with --dry-run) with its fields, and log every "
                     "record a warning concerns (otherwise the first 5 of each kind, then a count)");
  sync_cmd->add_option("--metrics-file", sync.metrics_file,
                       "After the run, write its metrics in Prometheus' text format to this file "
                       "(atomically), for node_exporter's textfile collector when cron runs sync");

  StatusOptions status;
  BackfillOptions backfill;
  CLI::App* backfill_cmd = app.add_subcommand(
      "backfill",
      "Read everything of one system (optionally one entity, optionally changed since a date)\n"
      "and sync it into the others, e.g. after connecting a new system or fixing a mapping. It\n"
      "keeps a checkpoint of its own: stopped or crashed, the same command continues where it\n"
      "was; the incremental sync cursors are never moved. Shows progress on a terminal.");
  backfill_cmd->add_option("--system", backfill.system, "The system to read (a name from crmbridge.yaml)")
      ->required();
  backfill_cmd->add_option("--entity", backfill.entity, "Only this canonical entity (default: all it maps)");
  backfill_cmd->add_option("--since", backfill.since,
                           "Only records changed since this date or UTC time (2026-01-31, "
                           "2026-01-31T08:00:00Z), where the system can filter by time");
  backfill_cmd->add_flag("--dry-run", backfill.dry_run, "Print what would be written; write nothing");
  backfill_cmd->add_flag("--json", backfill.json, "Print the run summary as JSON");
  backfill_cmd->add_flag("-v,--verbose", backfill.verbose,
                         "Print every write (planned, with --dry-run) with its fields, and log "
                         "every record a warning concerns (otherwise the first 5 of each kind, "
                         "then a count)");
  CLI::Option* backfill_tenant = backfill_cmd->add_option("--tenant", global.tenant,
                           "Ask a registered tenant for this backfill instead: a worker runs it at "
                           "its next claim (needs --state or CRMBRIDGE_STATE_URL)");
  backfill_cmd->add_option("--state", global.state_url,
                           "With --tenant: the tenants' postgresql:// URL (default "
                           "$CRMBRIDGE_STATE_URL; a password goes there or in PGPASSWORD)")
      ->needs(backfill_tenant);

  DaemonOptions daemon;
  CLI::App* daemon_cmd = app.add_subcommand(
      "daemon",
      "Run sync on a schedule until stopped. Runs never overlap (the state store's lease: a\n"
      "tick while another run holds it is skipped), a failed run is retried on the next tick,\n"
      "and SIGTERM or SIGINT stops it after the batch in flight. For cron, a systemd timer or a\n"
      "Kubernetes CronJob, run `crmbridge sync` instead (docs/OPERATIONS.md).");
  daemon_cmd->add_option("--every", daemon.every,
                         "Time between run starts: 30s, 5m, 1h, ... (default: the configuration's "
                         "schedule.every, else 5m)");
  daemon_cmd->add_option("--max-runs", daemon.max_runs, "Stop after this many runs (0 = never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1'000'000'000));

  ServeOptions serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve",
      "Sync on a schedule, as daemon does, and serve HTTP: a live status page at /, /healthz,\n"
      "/readyz, /metrics (Prometheus), and webhooks at /webhooks/SYSTEM (a HubSpot system\n"
      "verifies them with its auth.client_secret, a Dynamics 365 one with its auth.webhook_key).\n"
      "A change a webhook announces is stored before it is answered and read by id at once;\n"
      "the scheduled runs catch whatever a webhook missed. Listens on loopback: put TLS in the\n"
      "ingress in front of it (docs/OPERATIONS.md).");
  serve_cmd->add_option("--listen", serve.listen, "HOST:PORT to listen on (port 0: any free one)")
      ->capture_default_str();
  serve_cmd->add_option("--every", serve.every,
                        "Time between scheduled runs: 30s, 5m, 1h, ... (default: the "
                        "configuration's schedule.every, else 5m)");
  serve_cmd->add_option("--webhook-interval", serve.webhook_interval,
                        "Least time between two runs for webhook-announced changes; those that "
                        "arrive meanwhile are read together (fewer API calls under a burst)")
      ->capture_default_str();
  serve_cmd->add_option("--public-url", serve.public_url,
                        "The URL senders call, as https://sync.example.com, when a proxy is in "
                        "front: signatures cover it (default: http:// and the Host header)");

  CLI::App* status_cmd = app.add_subcommand(
      "status", "Show the last runs with counts and durations, the cursors, the pending outbox, "
                "dead letters and who holds the lease.");
  status_cmd->add_flag("--json", status.json, "Print as JSON");
  status_cmd->add_option("--runs", status.runs, "How many recent runs to show")
      ->check(CLI::Range(1, 1000));
  CLI::Option* status_tenant = status_cmd->add_option("--tenant", global.tenant,
                         "A registered tenant's status instead of --config's (needs --state or "
                         "CRMBRIDGE_STATE_URL)");
  status_cmd->add_option("--state", global.state_url,
                         "With --tenant: the tenants' postgresql:// URL (default "
                         "$CRMBRIDGE_STATE_URL)")
      ->needs(status_tenant);

  TenantsOptions tenants;
  CLI::App* tenants_cmd = app.add_subcommand(
      "tenants",
      "Many customers' syncs on one PostgreSQL: a tenant is one crmbridge.yaml (its systems,\n"
      "mappings and `schedule: {every: 5m}`) under a name, with its state in a schema of its\n"
      "own. `crmbridge worker` processes, on any machines, run them (docs/OPERATIONS.md).");
  tenants_cmd->require_subcommand(1);
  auto state_option = [&tenants](CLI::App* cmd) {
    cmd->add_option("--state", tenants.state_url,
                    "The tenants' postgresql:// URL (default $CRMBRIDGE_STATE_URL; a password "
                    "goes there or in PGPASSWORD, never on the command line)");
  };
  CLI::App* tenants_add = tenants_cmd->add_subcommand(
      "add", "Register a tenant: its configuration is checked (without its secrets, which only\n"
             "the workers need) and its state schema made; a worker runs it at once.");
  tenants_add->add_option("NAME", tenants.name, "a-z, 0-9, - and _, starting with a letter")
      ->required();
  tenants_add->add_option("--config", tenants.config_path,
                          "The tenant's crmbridge.yaml, at a path every worker reads it at")
      ->required();
  state_option(tenants_add);
  CLI::App* tenants_list = tenants_cmd->add_subcommand(
      "list", "Every tenant: schedule, last run and outcome, next due, the worker holding it,\n"
              "pending outbox and dead letters.");
  tenants_list->add_flag("--json", tenants.json, "Print as JSON");
  state_option(tenants_list);
  CLI::App* tenants_remove = tenants_cmd->add_subcommand(
      "remove", "Unregister a tenant: no worker claims it again, and one running it has its\n"
                "next commit refused. Its state stays unless --drop-state.");
  tenants_remove->add_option("NAME", tenants.name, "The tenant")->required();
  tenants_remove->add_flag("--drop-state", tenants.drop_state,
                           "Delete its state too (links, snapshots, outbox): a later add starts "
                           "from nothing and matches records anew");
  state_option(tenants_remove);
  CLI::App* tenants_migrate = tenants_cmd->add_subcommand(
      "migrate", "Create or upgrade the registry and every tenant's state schema, then exit:\n"
                 "run it once before upgrading the workers.");
  state_option(tenants_migrate);

  WorkerOptions worker;
  CLI::App* worker_cmd = app.add_subcommand(
      "worker",
      "Run registered tenants' syncs until SIGTERM: claim a due tenant (FOR UPDATE SKIP\n"
      "LOCKED), run it under a lease it renews, release it. Any number of workers on any\n"
      "machines share the tenants; a killed worker's tenants are taken over once its lease runs\n"
      "out, and a worker paused past its lease has its commits refused (a fencing epoch).\n"
      "Serves /healthz and /readyz (PostgreSQL answers) for the orchestrator.");
  worker_cmd->add_option("--state", worker.state_url,
                         "The tenants' postgresql:// URL (default $CRMBRIDGE_STATE_URL; a password "
                         "goes there or in PGPASSWORD, never on the command line)");
  worker_cmd->add_option("--concurrency", worker.concurrency, "Tenants run at once")
      ->capture_default_str();
  worker_cmd->add_option("--listen", worker.listen,
                         "HOST:PORT of /healthz and /readyz (0.0.0.0:8081 in a container; port 0: "
                         "any free one)")
      ->capture_default_str();
  worker_cmd->add_option("--lease-ttl", worker.lease_ttl,
                         "How long a claim lasts unless renewed (every third of it): a killed "
                         "worker's tenants wait this long")
      ->capture_default_str();
  worker_cmd->add_option("--poll", worker.poll, "How often an idle worker looks for due tenants")
      ->capture_default_str();

  std::string describe_kind;
  CLI::App* connectors_cmd = app.add_subcommand(
      "connectors", "What each kind of system takes in a mapping (docs/MAPPINGS.md)");
  connectors_cmd->require_subcommand(1);
  CLI::App* connectors_describe = connectors_cmd->add_subcommand(
      "describe",
      "Print, per connector kind, the objects a mapping may name, its params (type, default,\n"
      "the objects each applies to) and what it can carry (references, bind, portal access).");
  connectors_describe->add_option("KIND", describe_kind, "One kind (default: every kind)");

  MappingsOptions maps;
  CLI::App* maps_cmd = app.add_subcommand(
      "mappings", "Check and try mapping files before anything is written (docs/MAPPINGS.md)");
  maps_cmd->require_subcommand(1);
  CLI::App* maps_validate = maps_cmd->add_subcommand(
      "validate",
      "Validate mapping files: every error with file:line:column and a hint (exit 2 on errors).\n"
      "System names and kinds are checked against --config when it loads (an unset ${env:...}\n"
      "there is a warning: no secret is needed to check a mapping). Without one, a system named\n"
      "after a connector kind (hubspot, dynamics365, totango, portal) is checked as that kind.");
  maps_validate->add_option("FILE", maps.files, "Mapping files (default: those of the config)");
  maps_validate->add_option("--kind", maps.kinds,
                            "Without a config: NAME=KIND, the kind of system NAME (repeatable)")
      ->allow_extra_args(false);
  CLI::App* maps_preview = maps_cmd->add_subcommand(
      "preview",
      "Show what one native record becomes in every other system, field by field, with the\n"
      "transforms that produced each value. Nothing is read from or written to any system.");
  maps_preview->add_option("--system", maps.system, "System the record comes from")->required();
  maps_preview->add_option("--entity", maps.entity, "Canonical entity (onboarding, ...)")->required();
  maps_preview->add_option("--record", maps.record_path, "The native record as a JSON file")
      ->required()
      ->check(CLI::ExistingFile);
  maps_preview->add_option("--mapping", maps.files, "Mapping files (default: those of the config)");
  maps_preview->add_option("--kind", maps.kinds,
                           "Without a config: NAME=KIND, the kind of system NAME (repeatable)")
      ->allow_extra_args(false);
  maps_preview->add_flag("--json", maps.json, "Print as JSON");

  DlqOptions dlq;
  CLI::App* dlq_cmd = app.add_subcommand(
      "dlq", "Dead letters: writes that failed permanently, kept with the record, the system and "
             "the API's reason.");
  dlq_cmd->require_subcommand(1);
  CLI::App* dlq_list = dlq_cmd->add_subcommand("list", "List dead letters, newest first");
  dlq_list->add_flag("--json", dlq.json, "Print as JSON, with each record's payload");
  dlq_list->add_option("--limit", dlq.limit, "At most this many")
      ->check(CLI::Range(1, 1'000'000));
  CLI::App* dlq_replay = dlq_cmd->add_subcommand(
      "replay", "Move dead letters back to the outbox; the next sync writes them again");
  // An id is checked as written: a number too large for one, or 0x10, would otherwise be read as
  // another id.
  CLI::Option* replay_ids =
      dlq_replay->add_option("ID", dlq.replay_ids, "Dead-letter ids from `crmbridge dlq list`")
          ->check(CLI::Validator(
              [](std::string& id) -> std::string {
                const bool digits = !id.empty() && id.size() <= 18 &&
                                    id.find_first_not_of("0123456789") == std::string::npos &&
                                    id[0] != '0';
                return digits ? "" : "'" + id + "' is no dead letter's id (a number from "
                                     "`crmbridge dlq list`)";
              },
              "ID"));
  dlq_replay->add_flag("--all", dlq.replay_all, "Replay every dead letter")->excludes(replay_ids);

  ReportOptions report;
  AuditOptions audit;
  CLI::App* audit_cmd = app.add_subcommand("audit", "Show the audit trail the state store keeps");
  audit_cmd->require_subcommand(1);
  CLI::App* audit_portal = audit_cmd->add_subcommand(
      "portal",
      "Every portal user created or changed, access granted or revoked and password reset sent,\n"
      "oldest first, with the contact, the portal user, the property and, for a revoke, which\n"
      "condition turned false. Example: crmbridge audit portal --since 2026-11-01");
  audit_portal->add_option("--since", audit.since, "From this date (2026-11-01) or UTC time on");
  audit_portal->add_flag("--json", audit.json, "Print as JSON");
  CLI::App* audit_merges = audit_cmd->add_subcommand(
      "merges",
      "Every merge a system made that crmbridge followed (two duplicates made one there), oldest\n"
      "first: the system, the entity, the record absorbed and the one it was merged into, and\n"
      "the canonical records. Example: crmbridge audit merges --since 2026-11-01");
  audit_merges->add_option("--since", audit.since, "From this date (2026-11-01) or UTC time on");
  audit_merges->add_flag("--json", audit.json, "Print as JSON");

  CLI::App* report_cmd = app.add_subcommand(
      "report", "Reports from the state store; they read it only, and never call a system");
  report_cmd->require_subcommand(1);
  CLI::App* report_onboarding = report_cmd->add_subcommand(
      "onboarding",
      "Where every open onboarding is: its stage, how many days it has been there, and which\n"
      "ones are stuck, from the stage history crmbridge records on every sync (which system\n"
      "moved it, when). Days in stage stop counting at an end stage (the stage field's\n"
      "end_values in the mapping, `closed` in the preset) and start again from zero if the\n"
      "onboarding leaves it. The HubSpot process's rules: 30 days in a stage without progress\n"
      "means follow up (--stuck-after), 60 days open means inactive (--escalate-after).\n"
      "\n"
      "Prints a table; --json for scripts; --html FILE for a page with the funnel and a timeline\n"
      "per customer, readable in any browser without a network.");
  report_onboarding->footer(
      "\nExamples:\n"
      "  crmbridge report onboarding                          the table, stuck ones flagged\n"
      "  crmbridge report onboarding --stuck-after 14d --json stuck after two weeks, as JSON\n"
      "  crmbridge report onboarding --html onboarding.html   the funnel and timelines\n"
      "  crmbridge report onboarding --as-of 2026-02-01 --all as it stood then, ended ones too\n");
  report_onboarding->add_option(
                       "--stuck-after", report.stuck_after,
                       "Days in the current stage at which an onboarding is stuck: 30d, 14d, 1d")
      ->type_name("DURATION")
      ->capture_default_str();
  report_onboarding->add_option("--escalate-after", report.escalate_after,
                                "Days open (end stages not counted) at which it is overdue")
      ->type_name("DURATION")
      ->capture_default_str();
  report_onboarding->add_option("--entity", report.entity,
                                "The canonical entity whose stage field is reported")
      ->type_name("NAME")
      ->capture_default_str();
  report_onboarding->add_option("--as-of", report.as_of,
                                "Report as of this date or UTC time (2026-01-31, 2026-01-31T08:00:00Z) "
                                "instead of now; later moves are left out")
      ->type_name("DATE");
  report_onboarding->add_flag("--all", report.all, "List onboardings in an end stage too");
  CLI::Option* report_json = report_onboarding->add_flag("--json", report.json, "Print as JSON");
  report_onboarding
      ->add_option("--html", report.html_path,
                   "Write a self-contained HTML report (funnel and timeline per customer) to FILE")
      ->type_name("FILE")
      ->excludes(report_json);

  RefuseEmptyValues(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  global.config_named = env_config != nullptr || config_option->count() > 0;

  const auto run = [&]() -> int {
    if (sync_cmd->parsed()) return RunSync(global, sync);
    if (daemon_cmd->parsed()) return RunDaemon(global, daemon);
    if (serve_cmd->parsed()) return RunServe(global, serve);
    if (backfill_cmd->parsed()) return RunBackfill(global, backfill);
    if (tenants_add->parsed()) return RunTenantsAdd(global, tenants);
    if (tenants_list->parsed()) return RunTenantsList(global, tenants);
    if (tenants_remove->parsed()) return RunTenantsRemove(global, tenants);
    if (tenants_migrate->parsed()) return RunTenantsMigrate(global, tenants);
    if (worker_cmd->parsed()) return RunWorker(global, worker);
    if (status_cmd->parsed()) return RunStatus(global, status);
    if (connectors_describe->parsed()) return RunConnectorsDescribe(describe_kind);
    if (maps_validate->parsed()) return RunMappingsValidate(global, maps);
    if (maps_preview->parsed()) return RunMappingsPreview(global, maps);
    if (dlq_list->parsed()) return RunDlqList(global, dlq);
    if (audit_portal->parsed()) return RunAuditPortal(global, audit);
    if (audit_merges->parsed()) return RunAuditMerges(global, audit);
    if (dlq_replay->parsed()) return RunDlqReplay(global, dlq);
    if (report_onboarding->parsed()) return RunReportOnboarding(global, report);
    return kExitUsage;
  };
  const int rc = run();
  // Output that could not be written (a full disk, a closed file) is a failure, never a success
  // a script would take the empty or cut-off output for.
  std::cout.flush();
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0 || !std::cout) {
    const int error = errno;
    std::fprintf(stderr, "crmbridge: cannot write the output: %s\n",
                 error != 0 ? std::strerror(error) : "write error");
    return rc == kExitOk ? kExitInternal : rc;
  }
  return rc;
}
