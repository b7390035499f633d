// What one sync run did: per system and entity counts, the writes planned (dry run) or delivered,
// the systems that could not be reached. RunTally adds to it from the run's threads.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/core/status.h"

namespace crmbridge {

// How long changes took to reach their target, in fixed buckets (the metrics' histogram):
// from the change's time in the system it came from (the record's modification time there) to
// the write that carried it being confirmed by the target.
struct LagHistogram {
  static constexpr std::array<double, 13> kBoundsSeconds = {
      0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400};
  std::array<int64_t, kBoundsSeconds.size() + 1> buckets{};  // the last one: above every bound
  double sum_seconds = 0;
  int64_t observed = 0;
  void Observe(double seconds);
};

// Per (system, entity) tallies of one run.
struct EntityCounts {
  int64_t read = 0;          // native records read
  int64_t unchanged = 0;     // read but equal to the snapshot (includes crmbridge's own echoes)
  int64_t changed = 0;       // read and merged into the snapshot
  int64_t rejected = 0;      // could not be mapped (logged with the record id and the reason)
  int64_t deletes_seen = 0;  // tombstones read (each delete once, however often it is read)
  // Records read live again after their delete was read (restored from a recycle bin): linked as
  // before, and what the delete did elsewhere undone (on_delete).
  int64_t restored = 0;
  // Merges: records read here that another record of this system absorbed (their links moved to
  // the survivor), and merges crmbridge made here to follow one made elsewhere.
  int64_t merged = 0;
  int64_t queued = 0;        // writes queued for this system
  int64_t created = 0;       // writes delivered that created a record
  int64_t updated = 0;       // writes delivered that updated a record
  int64_t retrying = 0;      // writes that failed transiently and wait for a later attempt
  int64_t dead_lettered = 0; // writes that failed permanently
  int64_t unverified = 0;    // writes acknowledged without confirmation, to verify on read-back
  int64_t verified = 0;      // unconfirmed writes read back as written
  int64_t rewritten = 0;     // unconfirmed writes read back as lost, and queued again
  int64_t conflicts = 0;     // changes read here that lost to the field's conflict policy
  int64_t duplicates = 0;    // records not synced: their match key is another record's here
  // Records seen here for the first time and linked by their match key to the same customer
  // from another system (not created again there).
  int64_t matched = 0;
  // Records of other systems this system does not receive (its mapping says `create: false`).
  int64_t not_created = 0;
  // References read here to records crmbridge has not linked (outside the mapping's scope, or
  // not read yet): the field is left as the canonical record has it.
  int64_t unresolved_refs = 0;
  // Writes held back because a record they refer to does not exist in that system yet.
  int64_t waiting_on_refs = 0;
  // Writes confirmed here, by how long after the change in its source system.
  LagHistogram change_lag;
  nlohmann::json ToJson() const;
};

// What a write does: planned by a dry run (create, update, delete) or delivered (created,
// updated). Shown by name.
enum class WriteAction { kCreate, kUpdate, kDelete, kCreated, kUpdated };
const char* WriteActionName(WriteAction action);

// One write: planned (dry runs) or delivered (real runs).
struct PlannedWrite {
  std::string system;
  std::string entity;
  std::string canonical_id;
  WriteAction action = WriteAction::kCreate;
  std::string native_id;
  nlohmann::json fields;
};

struct RunSummary {
  int64_t run_id = 0;
  bool dry_run = false;
  bool targeted = false;  // read only announced records (RunOptions::read_ids)
  bool writes_only = false;  // read nothing: sent what was queued (RunOptions::writes_only)
  bool lease_denied = false;
  std::string lease_holder;  // who holds it, when denied
  // The run's lease expired while it worked and another run took it over: it stopped before
  // writing anything more (what it committed stays valid; the other run goes on from there).
  bool lease_lost = false;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  // counts[system][entity]
  std::map<std::string, std::map<std::string, EntityCounts>> counts;
  // Systems that could not be reached or refused our credentials, with the reason.
  std::map<std::string, std::string> unreachable;
  // Of those, the systems that refused crmbridge's credentials (nothing syncs until they change).
  std::map<std::string, std::string> credentials_refused;
  std::vector<PlannedWrite> plan;  // dry runs only
  // Writes delivered by a real run, the first kMaxWrittenListed of them (the counts hold all).
  static constexpr size_t kMaxWrittenListed = 1000;
  std::vector<PlannedWrite> written;

  int64_t TotalWrites() const;        // created + updated over all systems
  int64_t TotalDeadLettered() const;
  int64_t TotalRetrying() const;      // failed for now, queued for a later attempt
  int64_t TotalQueued() const;
  nlohmann::json ToJson() const;
};

// The run's summary as its parts add to it, from any of the run's threads.
class RunTally {
 public:
  // The tallies of (system, entity). The reference stays valid for the run (map nodes do not
  // move); each system's counts are added to by the one thread working on that system at a time.
  EntityCounts& Count(const std::string& system, const std::string& entity);
  void MarkUnreachable(const std::string& system, const Status& why);
  bool IsUnreachable(const std::string& system);
  void Planned(PlannedWrite write);  // a dry run's
  void Written(PlannedWrite write);  // a delivered one; the first kMaxWrittenListed are kept
  // True the first time outbox item `id` waits for a referenced record in this run.
  bool FirstWait(int64_t outbox_id);
  // Whether to log one more warning about a single record, of the kind `what` (the warning's
  // fixed words, such as "is not synced") in `system`: the first kRecordWarningsShown of each are
  // logged, the rest only counted, unless every one is to be (show_every_warning). A run that
  // meets thousands of duplicates then logs a few examples and one count, not thousands of lines.
  static constexpr int kRecordWarningsShown = 5;
  bool ShowRecordWarning(const std::string& system, const std::string& what);
  void set_show_every_warning(bool every) { show_every_warning_ = every; }
  // Logs, once per kind, how many warnings ShowRecordWarning held back.
  void LogHiddenWarnings();
  // For the orchestrator, between the run's threaded phases.
  RunSummary& summary() { return summary_; }

 private:
  std::mutex mu_;
  RunSummary summary_;
  std::set<int64_t> waited_;
  bool show_every_warning_ = false;
  std::map<std::pair<std::string, std::string>, int64_t> warnings_;  // by (system, what)
};

}  // namespace crmbridge
