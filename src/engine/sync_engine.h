// SyncEngine: one sync run, as docs/ARCHITECTURE.md "One sync run" describes.
//
//   1. Take the lease (another live run holds it: stop, RunSummary::lease_denied).
//   2. For each canonical entity in dependency order, for each system that maps it in: read
//      changes page by page from the stored cursor (memory bounded by one page).
//   3. Each record read goes through the ReadProcessor (read_processor.h): map it to canonical
//      fields; resolve its identity through links, else the crmbridge key the record carries,
//      else its match key, else mint a canonical id. A record whose read hashes to what its
//      system is settled on (the digest on its link, store.h SettledDigests) is unchanged:
//      nothing more is read or written for it.
//   4. Merge with the snapshot (src/engine/merge.h, a pure function): per field, a value the
//      system was known to hold, or crmbridge sent there (outcome known or not), is no change;
//      any other is, and meets the field's conflict policy (system of record, else the most
//      recent change by its record's modification time).
//   5. For every other system that maps the entity out, map canonical -> native; when it differs
//      from what crmbridge last wrote there, queue a write in the outbox. Outbox rows, snapshots,
//      links and the page's cursor are committed in one transaction.
//   6. Flush the outbox per system, systems in parallel, in the largest batches each API takes,
//      each chunk in three steps (chunk_writes.h): build the ops, deliver them (the values
//      recorded in doubt first), apply the outcomes (DecideWrite). Successes update links and
//      snapshots; transient failures wait for a later attempt with backoff; permanent ones become
//      dead letters while the rest of the batch goes on; an outage stops that system's writes.
//
// A crash anywhere leaves committed state consistent: a rerun resumes from the committed cursors
// and flushes what the outbox still holds; upserts keyed by the canonical id make repeated writes
// converge without duplicates.
//
// Thread-safety: RunOnce() is not reentrant; the engine uses one thread per system to flush.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/connector.h"
#include "mappings/mapping.h"
#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/engine/run_summary.h"
#include "state/store.h"

namespace crmbridge {

struct RunOptions {
  std::string mode = "sync";  // recorded in run history
  // Plan only: read and map everything, print what would be written, write nothing anywhere
  // (no API write, no state change, cursors untouched).
  bool dry_run = false;
  // Identifies this process as lease holder ("host:pid:uuid").
  std::string holder;
  // Whether a lease holder is certainly no longer running (a process of this machine that has
  // ended: killed or crashed). Its lease is then taken over at once, not waited out to its
  // expiry. Unset: every holder is waited out.
  std::function<bool(const std::string& holder)> holder_has_ended;
  int page_size = 0;  // 0 = each connector's default
  // Set from another thread (SIGTERM) to stop after the current page or batch.
  const std::atomic<bool>* stop = nullptr;

  // A backfill: read everything of this system (and entity, when set), from the start or from
  // `since_ms`, on a checkpoint of its own (resumed after a crash, cleared when done); the
  // incremental cursors are never touched. Writes go out as in a sync.
  std::string backfill_system;
  std::string backfill_entity;
  int64_t since_ms = 0;
  // Called after every page read: records read so far and the connector's estimate of the total
  // (-1 when unknown), for progress displays.
  std::function<void(int64_t read, int64_t total)> progress;
  // Writes start while reading goes on: each system but the portal writes full batches of what
  // the committed pages queued, and an entity's last partial batch once its reads are done. A
  // long run then takes about the longer of its reads and its writes, not their sum. Off: every
  // write waits for the last read (for comparison in bench/).
  bool flush_while_reading = true;
  // Log every warning about a single record; otherwise the first few of each kind, then a count
  // at the end of the run (RunTally::ShowRecordWarning).
  bool show_every_warning = false;
  // A targeted run (crmbridge serve, for changes webhooks announced): only these records are
  // read, by id (system -> native object -> ids, Connector::ReadByIds), merged as any read
  // record is; then every due write goes out as in a sync. No cursor moves: the next incremental
  // read meets these records again and finds them unchanged. Every system named must read by id
  // (Capabilities::reads_by_id).
  std::map<std::string, std::map<std::string, std::vector<std::string>>> read_ids;
  // Writes only (crmbridge serve, when writes queued after a failure fall due between runs):
  // nothing is read, and every due write goes out as in a sync. A target that was down gets what
  // waited for it when its backoff ends, not at the next scheduled run.
  bool writes_only = false;
  // Of read_ids, those announced deleted (Capabilities::delete_events): one the system no longer
  // shows is read as a tombstone, so the entity's on_delete applies in seconds.
  std::map<std::string, std::map<std::string, std::set<std::string>>> gone_ids;
};

class SyncEngine {
 public:
  // `connectors` by system name; every system the plan names must have one. None of the
  // pointers are owned except the connectors.
  SyncEngine(const AppConfig* config, std::shared_ptr<const MappingPlan> plan, Store* store,
             std::map<std::string, std::unique_ptr<Connector>> connectors, Clock* clock);
  ~SyncEngine();

  // Runs one sync. A non-OK Result means the run could not proceed at all (state store failure);
  // per-record and per-system problems are reported in the RunSummary.
  Result<RunSummary> RunOnce(const RunOptions& options);

 private:
  class Run;
  const AppConfig* config_;
  std::shared_ptr<const MappingPlan> plan_;
  Store* store_;
  std::map<std::string, std::unique_ptr<Connector>> connectors_;
  Clock* clock_;
};

}  // namespace crmbridge
