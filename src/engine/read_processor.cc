#include "src/engine/read_processor.h"

#include <spdlog/spdlog.h>

#include "src/core/hash.h"
#include "src/engine/merge.h"
#include "src/engine/native_record_check.h"
#include "src/engine/write_verification.h"

namespace crmbridge {

using nlohmann::json;

ReadProcessor::ReadProcessor(const Deps& deps) : d_(deps) {}

Result<json> ReadProcessor::AsReadBack(const SystemEntityMapping& m, const json& payload) {
  auto back = MappingPlan::ToCanonical(m, payload);
  if (!back.ok()) return json();
  CRMB_RETURN_IF_ERROR(d_.references->ResolveRead(d_.view, m, &*back, nullptr));
  return std::move(back->fields);
}

Result<Link> ReadProcessor::CurrentLink(const std::string& entity, const std::string& canonical_id,
                                        const std::string& system) {
  auto link = d_.view->LinkOf(RecordKey{entity, canonical_id}, system);
  if (!link.ok()) return link.status();
  return link->value_or(Link{});
}

EntityCounts& ReadProcessor::Count(const std::string& system, const std::string& entity) {
  return d_.tally->Count(system, entity);
}

Status ReadProcessor::VerifyMissing(const SystemEntityMapping& m, StateBatch* batch) {
  auto pending = d_.store->ListUnverified(m.system, m.entity);
  if (!pending.ok()) return pending.status();
  for (Snapshot& snap : *pending) {
    if (verified_.count({m.system, m.entity, snap.canonical_id})) continue;
    auto link = CurrentLink(m.entity, snap.canonical_id, m.system);
    if (!link.ok()) return link.status();
    NativeRecord absent;
    absent.id = link->native_id;
    MappedRecord nothing;
    bool rewrite = false;
    CRMB_RETURN_IF_ERROR(VerifyWrites(m, absent, snap.canonical_id, &snap, &nothing, &rewrite,
                                      batch, /*missing=*/true));
    if (rewrite)
      CRMB_RETURN_IF_ERROR(
          d_.planner->Rewrite(m, absent.id, snap.canonical_id, snap, batch, /*lost=*/true));
    if (!d_.dry_run) batch->PutSnapshot(snap);
  }
  return Status::Ok();
}

Result<std::optional<std::string>> ReadProcessor::LinkedCanonicalId(const std::string& system,
                                                                 const std::string& entity,
                                                                 const std::string& native_id) {
  return d_.view->CanonicalIdOf(NativeKey{system, entity, native_id});
}

Status ReadProcessor::Process(const SystemEntityMapping& source, const NativeRecord& record,
                              StateBatch* batch) {
  EntityCounts& counts = Count(source.system, source.entity);
  ++counts.read;
  if (Status bad = CheckNativeRecord(record); !bad.ok()) {
    ++counts.rejected;
    if (d_.tally->ShowRecordWarning(source.system, source.object + " rejected as read"))
      spdlog::warn("{}: {} {} is rejected: {}", source.system, source.object, ShownId(record.id),
                   bad.message());
    return Status::Ok();
  }
  if (!record.merged_into.empty())  // kept only as a pointer to the record that absorbed it
    return ProcessMerge(source, record.merged_into, record.id, batch);
  for (const std::string& absorbed : record.merged_ids)
    if (absorbed != record.id) CRMB_RETURN_IF_ERROR(ProcessMerge(source, record.id, absorbed, batch));
  if (record.deleted) return ProcessDelete(source, record, batch);
  auto mapped = MappingPlan::ToCanonical(source, record.fields);
  if (!mapped.ok()) {
    ++counts.rejected;
    if (d_.tally->ShowRecordWarning(source.system,
                                    source.object + " that cannot be mapped to " + source.entity))
      spdlog::warn("{}: {} {} cannot be mapped to {}: {}", source.system, source.object, record.id,
                   source.entity, mapped.status().message());
    return Status::Ok();
  }
  CRMB_RETURN_IF_ERROR(
      d_.references->ResolveRead(d_.view, source, &*mapped, &counts.unresolved_refs));

  auto identified = d_.identity->Resolve(source, record, *mapped);
  if (!identified.ok()) return identified.status();
  if (identified->kind == Identified::Kind::kDuplicate) {
    ++counts.duplicates;
    if (d_.tally->ShowRecordWarning(source.system, source.object + " not synced as duplicates"))
      spdlog::warn("{}: {} {} is not synced: it {}", source.system, source.object, record.id,
                   identified->duplicate_of);
    return Status::Ok();
  }
  const std::string& cid = identified->canonical_id;  // identified outlives every use
  const bool matched = identified->kind == Identified::Kind::kMatched;
  if (matched) {
    ++counts.matched;
    spdlog::debug("{}: {} {} is linked by its match key to {} {}", source.system, source.object,
                  record.id, source.entity, identified->canonical_id);
  }
  const bool minted = identified->kind == Identified::Kind::kNew;

  // Unchanged since it was last merged: the read hashes to the values its system is settled on
  // (store.h, SettledDigests) and to what its link last read. Nothing to decode, merge or store.
  std::string read_hash = HashJson(mapped->fields);
  const RecordKey key{source.entity, cid};
  if (identified->kind == Identified::Kind::kLinked &&
      d_.view->SettledOn(key, source.system, ShortHashOf(read_hash))) {
    const Link* link = d_.view->LoadedLinkOf(key, source.system);
    Link looked_up;
    if (link == nullptr) {
      auto current = CurrentLink(source.entity, cid, source.system);
      if (!current.ok()) return current.status();
      looked_up = std::move(*current);
      link = &looked_up;
    }
    if (link->native_id == record.id && link->last_read_hash == read_hash) {
      ++counts.unchanged;
      return Status::Ok();
    }
  }

  // Current snapshot (a record seen for the first time has none).
  Snapshot snap;
  bool known = false;
  if (!minted) {
    auto found = d_.view->SnapshotOf(key);
    if (!found.ok()) return found.status();
    if (found->has_value()) {
      snap = std::move(**found);
      known = true;
    }
  }
  if (!known) {
    snap.entity = source.entity;
    snap.canonical_id = cid;
  } else {
    CRMB_RETURN_IF_ERROR(d_.references->DropReferencesToClosed(d_.view, source, snap, &*mapped));
  }

  // Read live after its delete was read: restored (from HubSpot's recycle bin, say), when read
  // as the system holds it now or changed since the delete was read; else a lagging search.
  bool restored = false;
  if (identified->kind == Identified::Kind::kLinked) {
    auto link = CurrentLink(source.entity, cid, source.system);
    if (!link.ok()) return link.status();
    // Deleted: its delete read, or crmbridge's own delete sent to it (the answer maybe lost).
    if (link->native_id == record.id && (link->last_read_hash == kDeletedReadHash ||
                                         link->last_written_hash == WritePlanner::kDeleteHash)) {
      if (!page_time_.current && record.modified_ms > 0 && record.modified_ms <= link->updated_ms) {
        spdlog::debug("{}: {} {} is shown again unchanged since its delete; taken as a lagging "
                      "index, not a restore", source.system, source.object, record.id);
        ++counts.unchanged;
        return Status::Ok();
      }
      restored = true;
      CRMB_RETURN_IF_ERROR(Restore(source, record, mapped->fields, &snap, batch));
    }
  }

  // A record closed by crmbridge (deleted everywhere by on_delete: propagate, or merged into
  // another): a copy of it still read somewhere is written nowhere again.
  if (identified->kind == Identified::Kind::kLinked && known && !restored && snap.deleted_ms > 0) {
    spdlog::debug("{}: {} {} is a copy of {} {}, which is closed (deleted or merged away)",
                  source.system, source.object, record.id, source.entity, cid);
    ++counts.unchanged;
    return Status::Ok();
  }

  // Unconfirmed writes to this system are verified against what it now shows.
  bool verification_changed = false, rewrite = false;
  if (snap.unverified.is_object() && snap.unverified.contains(source.system)) {
    CRMB_RETURN_IF_ERROR(VerifyWrites(source, record, cid, &snap, &*mapped, &rewrite, batch));
    verification_changed = true;
    read_hash = HashJson(mapped->fields);  // a lost write's field reads as what was sent
  }

  // The merge (engine/merge.h): echoes, conflicts and the stage move of this read.
  MergeInput in;
  in.snapshot = &snap;
  in.known = known;
  in.system = source.system;
  in.read = &mapped->fields;
  in.changed_at_ms = ChangeDate(
      ChangeTime{record.modified_ms, page_time_.precision_ms, page_time_.received_ms},
      d_.run_start_ms);
  in.read_started_ms = page_time_.started_ms;
  in.entity = d_.plan->FindEntity(source.entity);
  in.queued_values = [&]() -> Result<json> {
    auto queued = d_.store->PendingOutbox(source.system, source.entity, cid);
    if (!queued.ok()) return queued.status();
    if (!queued->has_value()) return json();
    return AsReadBack(source, (*queued)->payload);
  };
  auto merge = MergeRead(in);
  if (!merge.ok()) return merge.status();
  for (const FieldConflict& c : merge->conflicts) {
    ++Count(source.system, source.entity).conflicts;
    spdlog::info("{}: {} {} changed {} to {}, which is not taken: {}", source.system,
                 source.object, record.id, c.field, c.value.dump(), c.lost_to);
  }
  for (const std::string& field : merge->echoes)
    spdlog::info("{}: {} {} shows the {} crmbridge sent earlier without learning the outcome: "
                 "its own write, not a change", source.system, source.object, record.id, field);
  const bool conflict_rewrite = !merge->conflicts.empty();
  const bool changed = merge->changed;
  const bool seen_changed = merge->seen_changed;
  const json merged = merge->snapshot.fields;
  const std::optional<StageMove> stage_move = merge->stage;
  merge->snapshot.fields = snap.fields;  // `snap` takes the merged fields once planned below
  snap = std::move(merge->snapshot);

  // Keep the source link current (it may be new, or its read hash may have moved).
  auto found = CurrentLink(source.entity, cid, source.system);
  if (!found.ok()) return found.status();
  Link link = *found;
  // Read live, a copy crmbridge sent a delete to is not deleted (restored, or the delete never
  // landed): its tombstone, if one comes later, is a new delete.
  const bool undeleted = link.last_written_hash == WritePlanner::kDeleteHash;
  const bool link_changed =
      link.native_id != record.id || link.last_read_hash != read_hash || undeleted;
  if (link_changed) {
    if (undeleted) link.last_written_hash.clear();
    link.entity = source.entity;
    link.canonical_id = cid;
    link.system = source.system;
    link.native_id = record.id;
    link.last_read_hash = read_hash;
    link.updated_ms = d_.run_start_ms;
    batch->PutLink(link);
    d_.view->PutLink(link);
  }

  // The snapshot as this read leaves it (copied only where a write back needs it).
  auto merged_snapshot = [&] {
    Snapshot to_write = snap;
    to_write.fields = merged;
    return to_write;
  };
  // A restored record holds what it held when deleted: a write that was on its way to it then
  // gave way to the delete, so it may lack values the record took since. They are written to it.
  const bool restored_behind =
      restored && source.writes() && !HoldsAlready(source, merged_snapshot());
  if (rewrite || conflict_rewrite || restored_behind) {
    // The snapshot keeps the winning values: write them back to this system (its losing
    // change, or the write it lost). The merged values of this read go with them.
    const Snapshot to_write = merged_snapshot();
    CRMB_RETURN_IF_ERROR(d_.planner->Rewrite(source, record.id, cid, to_write, batch, rewrite));
  }
  if (matched && !d_.dry_run) {
    // Identified by its match key: a create queued for this system before it was found (the
    // canonical record came from another system first) becomes an update of this record.
    auto queued = d_.store->PendingOutbox(source.system, source.entity, cid);
    if (!queued.ok()) return queued.status();
    if (queued->has_value()) {
      Snapshot to_write = snap;
      to_write.fields = merged;
      CRMB_RETURN_IF_ERROR(
          d_.planner->Rewrite(source, record.id, cid, to_write, batch, /*lost=*/false));
    }
  }
  if (!changed && !restored) {
    // Equal to what crmbridge already holds: unchanged, or our own write coming back.
    ++counts.unchanged;
    // A record seen for the first time that brings no value (its fields here are written only)
    // is still found by its match key when the same customer comes from another system.
    if (minted) d_.identity->PutMatchKeys(source.entity, cid, mapped->MatchValues(), batch);
    if (seen_changed || verification_changed || d_.view->LacksDigests(key)) {
      snap.updated_ms = d_.run_start_ms;
      d_.view->PutSnapshot(snap);
      batch->PutSnapshot(std::move(snap));
    }
    return Status::Ok();
  }
  ++counts.changed;

  // Stage transitions feed days-in-stage reports.
  if (stage_move) {
    StageTransition t;
    t.entity = source.entity;
    t.canonical_id = cid;
    t.system = source.system;
    t.from_stage = stage_move->from;
    t.to_stage = stage_move->to;
    t.at_ms = record.modified_ms > 0 ? record.modified_ms : d_.run_start_ms;
    if (t.from_stage.empty())
      first_stages_.push_back(FirstStage{std::move(t), record.id});
    else
      batch->AddStageTransition(t);
  }

  snap.fields = merged;
  snap.updated_ms = d_.run_start_ms;
  CRMB_RETURN_IF_ERROR(d_.planner->PlanTargets(source, cid, snap, batch));
  // A write still queued for this very system was planned before this change was read: replace
  // it with the merged values, so it cannot undo the change it did not know about.
  // (A record seen for the first time has none.)
  if (!d_.dry_run && !rewrite && !conflict_rewrite && !restored_behind && !minted) {
    auto queued = d_.store->PendingOutbox(source.system, source.entity, cid);
    if (!queued.ok()) return queued.status();
    if (queued->has_value())
      CRMB_RETURN_IF_ERROR(d_.planner->Rewrite(source, record.id, cid, snap, batch, /*lost=*/false));
  }
  json match_values = mapped->WithMatchOnly(snap.fields);
  d_.view->PutSnapshot(snap);
  batch->PutSnapshot(std::move(snap));
  d_.identity->PutMatchKeys(source.entity, cid, match_values, batch);
  return Status::Ok();
}

// A record deleted in `source` meets its entity's on_delete policy; never silently.
Status ReadProcessor::ProcessDelete(const SystemEntityMapping& source, const NativeRecord& record,
                                    StateBatch* batch) {
  EntityCounts& counts = Count(source.system, source.entity);
  auto linked = LinkedCanonicalId(source.system, source.entity, record.id);
  if (!linked.ok()) return linked.status();
  if (!linked->has_value()) return Status::Ok();  // never synced: nothing elsewhere to change
  const std::string cid = **linked;
  // Its link remembers the delete was read, so a tombstone read again (a sweep, a webhook, an
  // overlapping page) is not a second delete, and the record read live again is a restore.
  auto link = CurrentLink(source.entity, cid, source.system);
  if (!link.ok()) return link.status();
  if (link->native_id == record.id && link->last_read_hash == kDeletedReadHash)
    return Status::Ok();
  if (link->native_id == record.id && link->last_written_hash == WritePlanner::kDeleteHash)
    return OwnDeleteReadBack(source, *link, batch);
  if (link->native_id == record.id) MarkDeleteRead(*link, batch);
  auto stored = d_.view->SnapshotOf(RecordKey{source.entity, cid});
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return Status::Ok();
  Snapshot snap = std::move(**stored);
  if (snap.deleted_ms > 0) return Status::Ok();  // a delete crmbridge carried out, coming back
  ++counts.deletes_seen;
  const CanonicalEntity* entity = d_.plan->FindEntity(source.entity);
  const DeletePolicy policy = entity ? entity->on_delete : DeletePolicy{};
  switch (policy.kind) {
    case DeletePolicy::Kind::kIgnore:
      spdlog::info("{}: {} {} was deleted; {}'s on_delete is ignore, so the other systems keep "
                   "their records", source.system, source.object, record.id, source.entity);
      return Status::Ok();
    case DeletePolicy::Kind::kMark: {
      spdlog::info("{}: {} {} was deleted; marking {} {} with {} everywhere", source.system,
                   source.object, record.id, source.entity, cid, policy.set.dump());
      for (const auto& [field, value] : policy.set.items()) {
        snap.fields[field] = value;
        if (!snap.changed_ms.is_object()) snap.changed_ms = json::object();
        snap.changed_ms[field] = d_.run_start_ms;
      }
      snap.updated_ms = d_.run_start_ms;
      CRMB_RETURN_IF_ERROR(d_.planner->PlanTargets(source, cid, snap, batch));
      break;
    }
    case DeletePolicy::Kind::kPropagate:
      spdlog::info("{}: {} {} was deleted; deleting {} {} in the other systems", source.system,
                   source.object, record.id, source.entity, cid);
      CRMB_RETURN_IF_ERROR(d_.planner->PlanDeletes(source, cid, batch));
      snap.deleted_ms = d_.run_start_ms;
      break;
  }
  d_.view->PutSnapshot(snap);
  batch->PutSnapshot(std::move(snap));
  return Status::Ok();
}

void ReadProcessor::MarkDeleteRead(const Link& link, StateBatch* batch) {
  Link gone = link;
  gone.last_read_hash = kDeletedReadHash;
  gone.updated_ms = d_.run_start_ms;
  batch->PutLink(gone);
  d_.view->PutLink(gone);
}

// crmbridge's own delete of this copy read back (its answer may have been lost, so the link
// shows it sent, not done). Usually the record is closed, and only the link learns the delete.
// But the record may be live again (restored in another system since the delete left): then
// this copy is gone, and is made again.
Status ReadProcessor::OwnDeleteReadBack(const SystemEntityMapping& source, const Link& link,
                                        StateBatch* batch) {
  auto stored = d_.view->SnapshotOf(RecordKey{source.entity, link.canonical_id});
  if (!stored.ok()) return stored.status();
  if (!stored->has_value() || (**stored).deleted_ms > 0) {
    MarkDeleteRead(link, batch);
    return Status::Ok();
  }
  spdlog::info("{}: {} {} is deleted, as crmbridge deleted it before {} {} was restored; it is "
               "made again", source.system, source.object, link.native_id, source.entity,
               link.canonical_id);
  const Link cleared = ClearedLink(link, d_.run_start_ms);
  batch->PutLink(cleared);
  d_.view->PutLink(cleared);
  return d_.planner->PlanTarget(source.entity, source, link.canonical_id, **stored, batch);
}

// The record was deleted here and is back: the same record, linked as before, and what its
// delete did elsewhere is undone. A mark's fields take the record's values again, unless changed
// since; records deleted elsewhere by `propagate` are made again (their links cleared, so the
// planner creates them; a delete still queued is replaced by that create).
Status ReadProcessor::Restore(const SystemEntityMapping& source, const NativeRecord& record,
                              const json& read, Snapshot* snap, StateBatch* batch) {
  ++Count(source.system, source.entity).restored;
  const CanonicalEntity* entity = d_.plan->FindEntity(source.entity);
  const DeletePolicy policy = entity ? entity->on_delete : DeletePolicy{};
  spdlog::info("{}: {} {} is back after its delete; {} {} stays linked to it", source.system,
               source.object, record.id, source.entity, snap->canonical_id);
  switch (policy.kind) {
    case DeletePolicy::Kind::kIgnore:
      break;
    case DeletePolicy::Kind::kMark:
      for (const auto& [field, value] : policy.set.items()) {
        auto it = read.find(field);
        if (it == read.end() || snap->fields.value(field, json()) != value) continue;
        snap->fields[field] = *it;
        if (!snap->changed_ms.is_object()) snap->changed_ms = json::object();
        snap->changed_ms[field] = d_.run_start_ms;
      }
      break;
    case DeletePolicy::Kind::kPropagate: {
      // crmbridge's own delete of this copy, if still queued (sent, its answer lost), does not
      // undo the restore: like any write queued for the system a change is read from, it is
      // replaced by the record's merged values (ProcessRecord).
      if (snap->deleted_ms == 0) break;
      snap->deleted_ms = 0;
      for (const SystemEntityMapping& target : d_.plan->mappings()) {
        if (target.entity != source.entity || target.system == source.system || !target.writes())
          continue;
        auto link = CurrentLink(target.entity, snap->canonical_id, target.system);
        if (!link.ok()) return link.status();
        if (link->native_id.empty()) continue;
        // A delete still queued there never happened: the record stays linked, and an update
        // takes the delete's place in the outbox (one queued item per record).
        auto queued = d_.store->PendingOutbox(target.system, target.entity, snap->canonical_id);
        if (!queued.ok()) return queued.status();
        if (queued->has_value() && (*queued)->op == OutboxOp::kDelete) {
          CRMB_RETURN_IF_ERROR(d_.planner->Rewrite(target, link->native_id, snap->canonical_id,
                                                   *snap, batch, /*lost=*/false));
          continue;
        }
        const Link cleared = ClearedLink(*link, d_.run_start_ms);
        batch->PutLink(cleared);
        d_.view->PutLink(cleared);
      }
      break;
    }
  }
  return Status::Ok();
}

// An unconfirmed write is verified field by field: read back as sent, it is done; still showing
// the value it replaced, it was lost, so the read is not a change there and the write is queued
// again (dead-lettered after sync.max_verify_attempts); showing a third value, someone changed it there
// since, and that change is merged as usual.
Status ReadProcessor::VerifyWrites(const SystemEntityMapping& source, const NativeRecord& record,
                                   const std::string& canonical_id, Snapshot* snap,
                                   MappedRecord* mapped, bool* rewrite, StateBatch* batch,
                                   bool missing) {
  const int kMaxVerifyAttempts = d_.sync->max_verify_attempts;
  EntityCounts& counts = Count(source.system, source.entity);
  verified_.insert({source.system, source.entity, canonical_id});
  const Verification v = crmbridge::VerifyWrites(snap, source.system,
                                                 missing ? nullptr : &mapped->fields,
                                                 kMaxVerifyAttempts);
  counts.verified += v.verified;
  if (v.rewrite) *rewrite = true;
  const bool give_up = v.gave_up;
  const std::string& reason = v.reason;
  if (give_up) {
    auto native = MappingPlan::ToNative(source, snap->fields, /*creating=*/false);
    OutboxItem item = WritePlanner::NewOutboxItem(source, canonical_id, OutboxOp::kUpdate, record.id,
                                    native.ok() ? *native : json::object(), d_.run_start_ms);
    item.attempts = kMaxVerifyAttempts;
    ++counts.dead_lettered;
    spdlog::error("{}: {} {} dead-lettered: {} accepted the write but did not apply it: {}",
                  source.system, source.entity, canonical_id, source.system, reason);
    if (!d_.dry_run)
      batch->AddDeadLetter(item, source.system + " acknowledged the write but did not apply it: " +
                                     reason);
  }
  return Status::Ok();
}

}  // namespace crmbridge
