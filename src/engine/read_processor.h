// ReadProcessor: what one record read from a system does to the sync state. The run's reader
// calls it for each record of a page, between RecordView::Load of the page and the page's commit:
//
//   map (MappingPlan::ToCanonical) -> references, read side (References::ResolveRead)
//     -> identity (Identity::Resolve: linked, matched, new, or a duplicate left alone)
//     -> unchanged by its digest? counted, nothing stored
//     -> its snapshot (RecordView) -> references to closed records dropped
//        (References::DropReferencesToClosed) -> unconfirmed writes checked (write_verification.h)
//     -> merge (merge.h, pure: echoes, conflicts, the stage move)
//     -> its link in the system read -> rewrites (a losing change, a lost write, a matched
//        record's queued create) -> stage transition -> outbox (WritePlanner::PlanTargets)
//     -> snapshot and match keys
//
// A deleted record meets its entity's on_delete policy instead (ignore, mark, propagate), once;
// read live again, it is restored: linked as before, its delete undone. A merge the system made
// (NativeRecord::merged_ids, merged_into) comes first: what was linked to the absorbed record
// moves to the survivor, and its copies elsewhere meet the entity's on_merge (read_merges.cc).
// Everything decided goes into the page's StateBatch and the RecordView's pending changes, and
// into the run's tallies; nothing is committed here. Not thread-safe: the run's reader owns it,
// and a flush thread calls AsReadBack only while it holds the reader's state lock.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/connector.h"
#include "src/config/app_config.h"
#include "src/core/status.h"
#include "src/engine/identity.h"
#include "src/engine/record_view.h"
#include "src/engine/references.h"
#include "src/engine/run_summary.h"
#include "src/engine/write_planner.h"
#include "mappings/mapping.h"
#include "state/store.h"

namespace crmbridge {

// When the page being processed was asked for and when it arrived, and how precisely its system
// dates modifications: what the merge dates changes and settles sent values by.
struct PageTime {
  int64_t started_ms = 0;
  int64_t received_ms = 0;
  int64_t precision_ms = 1;
  // Read by id, or by a backfill an admin starts: the records as the system holds them now. An
  // incremental search may lag behind (HubSpot's index), so a deleted record it still shows
  // unchanged since its delete was read is not taken for restored.
  bool current = false;
};

// A link's last_read_hash once its record's delete was read there (a digest is never this).
inline constexpr char kDeletedReadHash[] = "deleted";

class ReadProcessor {
 public:
  // The run's parts and settings it works with; all outlive it.
  struct Deps {
    const MappingPlan* plan = nullptr;
    Store* store = nullptr;  // read only: queued writes, unverified snapshots
    const SyncConfig* sync = nullptr;
    RecordView* view = nullptr;
    Identity* identity = nullptr;
    References* references = nullptr;
    WritePlanner* planner = nullptr;
    RunTally* tally = nullptr;
    bool dry_run = false;
    int64_t run_start_ms = 0;
    // What a system's connector can do (merges), by system name; null for a system not run.
    std::function<const Capabilities*(const std::string& system)> capabilities_of;
  };
  explicit ReadProcessor(const Deps& deps);

  // The page whose records come next.
  void SetPageTime(const PageTime& t) { page_time_ = t; }

  // One record of `source`'s page: its state changes added to `batch` (see the top of the file).
  // A record that cannot be mapped is counted as rejected and logged, not an error; errors are
  // the store's.
  Status Process(const SystemEntityMapping& source, const NativeRecord& record,
                 StateBatch* batch);

  // After a full scan of `m` (start to end): writes to m.system still unconfirmed whose records
  // the scan did not return were lost there; they are queued again or dead-lettered, into `batch`.
  Status VerifyMissing(const SystemEntityMapping& m, StateBatch* batch);

  // An outbox payload for m.system as crmbridge will read it back there (through the mapping's In
  // direction, references as canonical ids): the values that, read back, are its own write. Null
  // when the payload does not map back.
  Result<nlohmann::json> AsReadBack(const SystemEntityMapping& m, const nlohmann::json& payload);

  // A record's first stage (a move from no stage), held back from the page's batch: the run asks
  // the system for the field's own history and records that in its place, or this transition when
  // the system keeps none (stage_history_import.h).
  struct FirstStage {
    StageTransition transition;
    std::string native_id;
  };
  // The first stages of the pages processed since the last call.
  std::vector<FirstStage> TakeFirstStages() {
    std::vector<FirstStage> taken;
    taken.swap(first_stages_);
    return taken;
  }

 private:
  // A record read live after its delete was read: counted, logged, and its delete undone by the
  // entity's on_delete (see the definition). `read`: its canonical fields.
  Status Restore(const SystemEntityMapping& source, const NativeRecord& record,
                 const nlohmann::json& read, Snapshot* snap, StateBatch* batch);
  // `link`'s record is known deleted there (a tombstone read again is no second delete), in the
  // view and in `batch`.
  void MarkDeleteRead(const Link& link, StateBatch* batch);
  // The tombstone of a copy crmbridge sent a delete to (`link`): see the definition.
  Status OwnDeleteReadBack(const SystemEntityMapping& source, const Link& link,
                           StateBatch* batch);
  Status ProcessDelete(const SystemEntityMapping& source, const NativeRecord& record,
                       StateBatch* batch);
  // `link`'s native record is linked to nothing any more, in the view and in `batch`.
  void Unlink(const Link& link, StateBatch* batch);
  // Native record `absorbed_id` of `source` was merged into `survivor_id` there (read_merges.cc).
  Status ProcessMerge(const SystemEntityMapping& source, const std::string& survivor_id,
                      const std::string& absorbed_id, StateBatch* batch);
  // The other systems' copies of canonical record `absorbed` (merged into `survivor`), by the
  // entity's on_merge: moved to the survivor, merged there too, or met by on_delete. Adds to
  // `repointed` the systems where the two are one record now.
  Status FollowMerge(const SystemEntityMapping& source, const std::string& absorbed,
                     const std::string& survivor, std::set<std::string>* repointed,
                     StateBatch* batch);
  // Records of any entity referring to canonical record `from` of `entity` refer to `to`; in
  // the systems not `repointed`, they are written to refer to the survivor's copy.
  Status RepointReferences(const std::string& entity, const std::string& from,
                           const std::string& to, const std::set<std::string>& repointed,
                           StateBatch* batch);
  // Checks unconfirmed writes to `source` against what it now shows (see the definition).
  // `missing`: a full scan did not return the record at all.
  Status VerifyWrites(const SystemEntityMapping& source, const NativeRecord& record,
                      const std::string& canonical_id, Snapshot* snap, MappedRecord* mapped,
                      bool* rewrite, StateBatch* batch, bool missing = false);
  // The canonical id linked to (system, entity, native id) as the view sees it; nullopt when
  // crmbridge has not linked it.
  Result<std::optional<std::string>> LinkedCanonicalId(const std::string& system,
                                                       const std::string& entity,
                                                       const std::string& native_id);
  // The link of (entity, canonical id, system) as the view sees it, else an empty Link.
  Result<Link> CurrentLink(const std::string& entity, const std::string& canonical_id,
                           const std::string& system);
  EntityCounts& Count(const std::string& system, const std::string& entity);

  Deps d_;
  PageTime page_time_;
  std::vector<FirstStage> first_stages_;
  // Records whose unconfirmed writes were checked this run: (system, entity, canonical id).
  std::set<std::tuple<std::string, std::string, std::string>> verified_;
};

}  // namespace crmbridge
