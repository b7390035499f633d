// WritePlanner: what a canonical record's copies in other systems need, queued in the outbox.
//
// Given a snapshot (the canonical record as merged), it maps it out to each target, compares it
// with what the target is known to hold (the hash crmbridge last wrote there, or the values last
// read from it) and queues a write only for a difference: an update of a record the target has
// (by its id), else an upsert by crmbridge's key (so a retried create finds the first one). It is
// the one place an outbox item is built. A dry run records the plan instead (RunTally::Planned).
//
// Not thread-safe: the reader, or the one flush that plans write-backs, uses it at a time.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "mappings/mapping.h"
#include "src/core/status.h"
#include "src/engine/record_view.h"
#include "src/engine/run_summary.h"
#include "state/store.h"

namespace crmbridge {

class WritePlanner {
 public:
  // None owned; `view` answers which records each target has (their links).
  WritePlanner(const MappingPlan* plan, RecordView* view, RunTally* tally, bool dry_run,
               int64_t run_start_ms)
      : plan_(plan), view_(view), tally_(tally), dry_run_(dry_run), now_ms_(run_start_ms) {}

  // A write of `snap` to every other system that maps `source`'s entity out, where it differs.
  Status PlanTargets(const SystemEntityMapping& source, const std::string& canonical_id,
                     const Snapshot& snap, StateBatch* batch);
  // A write of `snap` to one target, where it differs (`from_entity` names the record in logs).
  Status PlanTarget(const std::string& from_entity, const SystemEntityMapping& target,
                    const std::string& canonical_id, const Snapshot& snap, StateBatch* batch);
  // The snapshot's values written again to the system a record was read from (`native_id`; empty
  // for a record that never appeared there, which is upserted by key with its create fields):
  // after a read-back showed crmbridge's write lost (`lost`), or a change there lost a conflict.
  Status Rewrite(const SystemEntityMapping& source, const std::string& native_id,
                 const std::string& canonical_id, const Snapshot& snap, StateBatch* batch,
                 bool lost);
  // A delete of the record in every other system that has it (on_delete: propagate).
  Status PlanDeletes(const SystemEntityMapping& source, const std::string& canonical_id,
                     StateBatch* batch);

  // A delete's payload_hash, and a link's last_written_hash once a delete left for its copy (sent,
  // its answer maybe lost): a payload digest is never this.
  static constexpr char kDeleteHash[] = "delete";

  // The one place an outbox item is built: a write of `payload` to `target`'s copy of
  // `canonical_id`, keyed by the canonical id. `payload_hash`, when the caller has it.
  static OutboxItem NewOutboxItem(const SystemEntityMapping& target,
                                  const std::string& canonical_id, OutboxOp op,
                                  const std::string& native_id, nlohmann::json payload,
                                  int64_t created_ms, std::string payload_hash = "");

 private:
  const MappingPlan* plan_;
  RecordView* view_;
  RunTally* tally_;
  bool dry_run_;
  int64_t now_ms_;
};

// True when every field crmbridge would write to `target` is one it reads there, and what it last
// read (or wrote) there equals the canonical value: nothing it maps has changed since.
bool HoldsAlready(const SystemEntityMapping& target, const Snapshot& snap);

}  // namespace crmbridge
