// ReadProcessor's part for a merge a system made: two of its records became one (a user merged
// duplicates). What crmbridge linked to the absorbed record follows the survivor:
//
//   survivor not linked  -> the absorbed record's canonical record now stands for the survivor
//                           (HubSpot gives a merged record a new id): one link moves;
//   survivor linked to another canonical record -> the absorbed canonical record is merged into
//                           the survivor's: the survivor keeps its values and takes the absorbed
//                           one's where it has none; each other system's copy of the absorbed
//                           record moves to the survivor (no copy of the survivor there), or is
//                           merged into the survivor's copy there (on_merge: merge, a system that
//                           merges), or meets the entity's on_delete (a system that cannot); the
//                           records referring to the absorbed record refer to the survivor; the
//                           absorbed canonical record is closed (Snapshot::deleted_ms).
//
// Every merge of two linked records is logged, counted (EntityCounts::merged) and written to the
// audit trail.
#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "src/engine/read_processor.h"

namespace crmbridge {

using nlohmann::json;

namespace {

void AuditMerge(const std::string& system, const std::string& entity, const std::string& survivor,
                json detail, int64_t now_ms, StateBatch* batch) {
  AuditEntry entry;
  entry.at_ms = now_ms;
  entry.action = "merge";
  entry.system = system;
  entry.subject = survivor;
  detail["entity"] = entity;
  entry.detail = std::move(detail);
  batch->AddAudit(entry);
}

}  // namespace

void ReadProcessor::Unlink(const Link& link, StateBatch* batch) {
  d_.view->Unlink(link);
  batch->PutLink(ClearedLink(link, d_.run_start_ms));
}

Status ReadProcessor::ProcessMerge(const SystemEntityMapping& source, const std::string& survivor_id,
                                   const std::string& absorbed_id, StateBatch* batch) {
  auto absorbed = LinkedCanonicalId(source.system, source.entity, absorbed_id);
  if (!absorbed.ok()) return absorbed.status();
  if (!absorbed->has_value()) return Status::Ok();  // never linked (or followed already)
  const std::string ca = **absorbed;
  auto survivor = LinkedCanonicalId(source.system, source.entity, survivor_id);
  if (!survivor.ok()) return survivor.status();
  if (survivor->has_value() && **survivor == ca) return Status::Ok();
  auto link = CurrentLink(source.entity, ca, source.system);
  if (!link.ok()) return link.status();

  if (!survivor->has_value()) {
    // Not a merge of two records crmbridge knows: the record it knows goes on under the id the
    // merge gave it (neither counted nor audited as a merge).
    spdlog::info("{}: {} {} was merged into {}: {} {} now stands for {}", source.system,
                 source.object, absorbed_id, survivor_id, source.entity, ca, survivor_id);
    Link moved = *link;
    moved.native_id = survivor_id;
    moved.last_read_hash.clear();  // the survivor is read as a change of the record
    moved.updated_ms = d_.run_start_ms;
    d_.view->Unlink(*link);
    d_.view->PutLink(moved);
    batch->PutLink(moved);
    return Status::Ok();
  }

  const std::string cs = **survivor;
  auto absorbed_snap = d_.view->SnapshotOf(RecordKey{source.entity, ca});
  if (!absorbed_snap.ok()) return absorbed_snap.status();
  if (absorbed_snap->has_value() && (**absorbed_snap).deleted_ms > 0) {
    // Closed already (its merge was followed from another system, and this is that merge made
    // here by crmbridge, read back): only its link here goes.
    Unlink(*link, batch);
    return Status::Ok();
  }
  ++Count(source.system, source.entity).merged;
  spdlog::info("{}: {} {} was merged into {}: {} {} is merged into {} {}", source.system,
               source.object, absorbed_id, survivor_id, source.entity, ca, source.entity, cs);
  Unlink(*link, batch);  // its record here is no more

  auto survivor_snap = d_.view->SnapshotOf(RecordKey{source.entity, cs});
  if (!survivor_snap.ok()) return survivor_snap.status();
  std::set<std::string> repointed = {source.system};  // systems where the two are one now
  CRMB_RETURN_IF_ERROR(FollowMerge(source, ca, cs, &repointed, batch));
  CRMB_RETURN_IF_ERROR(RepointReferences(source.entity, ca, cs, repointed, batch));
  if (absorbed_snap->has_value() && survivor_snap->has_value()) {
    Snapshot& from = **absorbed_snap;
    Snapshot& into = **survivor_snap;
    if (!into.changed_ms.is_object()) into.changed_ms = json::object();
    bool filled = false;
    for (const auto& [field, value] : from.fields.items()) {
      if (value.is_null() || (into.fields.contains(field) && !into.fields[field].is_null()))
        continue;
      into.fields[field] = value;
      into.changed_ms[field] = from.changed_ms.is_object() && from.changed_ms.contains(field)
                                   ? from.changed_ms[field]
                                   : json(d_.run_start_ms);
      filled = true;
    }
    into.updated_ms = d_.run_start_ms;
    // The copies elsewhere (moved or kept) take the merged values, where they differ; the
    // survivor here takes those it lacked (Dynamics 365's Merge copies none by itself).
    CRMB_RETURN_IF_ERROR(d_.planner->PlanTargets(source, cs, into, batch));
    if (filled && source.writes() && !d_.dry_run)
      CRMB_RETURN_IF_ERROR(d_.planner->Rewrite(source, survivor_id, cs, into, batch, /*lost=*/false));
    batch->PutSnapshot(into);
    d_.view->PutSnapshot(into);
  }
  if (absorbed_snap->has_value()) {
    // Closed as FollowMerge left it (an on_delete mark it took for a copy kept elsewhere).
    auto latest = d_.view->SnapshotOf(RecordKey{source.entity, ca});
    if (!latest.ok()) return latest.status();
    Snapshot closed = latest->has_value() ? **latest : **absorbed_snap;
    closed.deleted_ms = d_.run_start_ms;
    closed.updated_ms = d_.run_start_ms;
    batch->PutSnapshot(closed);
    d_.view->PutSnapshot(closed);
  }
  AuditMerge(source.system, source.entity, cs,
             json{{"absorbed", absorbed_id}, {"into", survivor_id}, {"absorbed_record", ca}},
             d_.run_start_ms, batch);
  return Status::Ok();
}

Status ReadProcessor::FollowMerge(const SystemEntityMapping& source, const std::string& absorbed,
                                  const std::string& survivor, std::set<std::string>* repointed,
                                  StateBatch* batch) {
  const CanonicalEntity* entity = d_.plan->FindEntity(source.entity);
  const MergePolicy policy = entity ? entity->on_merge : MergePolicy::kMerge;
  for (const SystemEntityMapping& target : d_.plan->mappings()) {
    if (target.entity != source.entity || target.system == source.system) continue;
    auto copy = CurrentLink(target.entity, absorbed, target.system);
    if (!copy.ok()) return copy.status();
    if (copy->native_id.empty()) continue;
    auto kept = CurrentLink(target.entity, survivor, target.system);
    if (!kept.ok()) return kept.status();
    const std::string x = copy->native_id;

    if (kept->native_id.empty()) {
      // The only copy there is the absorbed record's: it becomes the survivor's.
      Link moved = *copy;
      moved.canonical_id = survivor;
      moved.updated_ms = d_.run_start_ms;
      Unlink(*copy, batch);
      batch->PutLink(moved);
      d_.view->PutLink(moved);
      repointed->insert(target.system);
      spdlog::info("{}: {} {} now stands for {} {}", target.system, target.object, x,
                   target.entity, survivor);
      continue;
    }

    const std::string y = kept->native_id;
    const Capabilities* can = d_.capabilities_of ? d_.capabilities_of(target.system) : nullptr;
    const bool merges = can != nullptr && target.writes() &&
                        std::find(can->merges.begin(), can->merges.end(), target.object) !=
                            can->merges.end();
    if (policy == MergePolicy::kKeep || !target.writes()) {
      spdlog::warn("{}: {} {} and {} are one {} now, and stay two records here ({}); merge them "
                   "there by hand",
                   target.system, target.object, x, y, target.entity,
                   policy == MergePolicy::kKeep ? "on_merge is keep" : "crmbridge does not write here");
      continue;  // the copy stays linked to the absorbed record, which is closed
    }
    if (merges) {
      // The copy stays linked to the closed record until its merge there is delivered (the
      // flush then clears the link): read meanwhile, it is written nowhere.
      ++Count(target.system, target.entity).queued;
      spdlog::info("{}: {} {} is merged into {} there too", target.system, target.object, x, y);
      repointed->insert(target.system);
      if (!d_.dry_run)
        batch->Enqueue(WritePlanner::NewOutboxItem(target, absorbed, OutboxOp::kMerge, x,
                                                   json{{"into", y}, {"survivor", survivor}},
                                                   d_.run_start_ms));
      continue;
    }
    // A system that cannot merge: its copy of the absorbed record meets on_delete, as if the
    // absorbed record had been deleted (its copy stays linked to it, closed).
    const DeletePolicy del = entity ? entity->on_delete : DeletePolicy{};
    switch (del.kind) {
      case DeletePolicy::Kind::kIgnore:
        spdlog::warn("{}: {} {} and {} are one {} now; {} cannot merge records and on_delete is "
                     "ignore, so both stay",
                     target.system, target.object, x, y, target.entity, target.system);
        break;
      case DeletePolicy::Kind::kPropagate:
        spdlog::info("{}: {} cannot merge records: {} {}, a copy of the absorbed {}, is deleted",
                     target.system, target.system, target.object, x, target.entity);
        ++Count(target.system, target.entity).queued;
        if (!d_.dry_run)
          batch->Enqueue(WritePlanner::NewOutboxItem(target, absorbed, OutboxOp::kDelete, x,
                                                     json::object(), d_.run_start_ms));
        break;
      case DeletePolicy::Kind::kMark: {
        auto snap = d_.view->SnapshotOf(RecordKey{target.entity, absorbed});
        if (!snap.ok()) return snap.status();
        if (!snap->has_value()) break;
        Snapshot marked = **snap;
        for (const auto& [field, value] : del.set.items()) {
          marked.fields[field] = value;
          if (!marked.changed_ms.is_object()) marked.changed_ms = json::object();
          marked.changed_ms[field] = d_.run_start_ms;
        }
        spdlog::info("{}: {} cannot merge records: {} {}, a copy of the absorbed {}, is marked "
                     "with {}",
                     target.system, target.system, target.object, x, target.entity, del.set.dump());
        CRMB_RETURN_IF_ERROR(d_.planner->PlanTarget(source.entity, target, absorbed, marked, batch));
        d_.view->PutSnapshot(marked);
        break;
      }
    }
  }
  return Status::Ok();
}

Status ReadProcessor::RepointReferences(const std::string& entity, const std::string& from,
                                        const std::string& to,
                                        const std::set<std::string>& repointed,
                                        StateBatch* batch) {
  for (const CanonicalEntity& e : d_.plan->entities()) {
    std::vector<std::string> ref_fields;
    for (const CanonicalField& f : e.fields)
      if (f.type == FieldType::kRef && f.ref_entity == entity) ref_fields.push_back(f.name);
    if (ref_fields.empty()) continue;
    // A merge is rare: one pass over the entity's records finds those referring to `from`.
    auto all = d_.store->ListSnapshots(e.name);
    if (!all.ok()) return all.status();
    for (const Snapshot& stored : *all) {
      // It refers to `from`, or a system that merged holds a copy referring to it (the record
      // itself refers elsewhere now, a write of that still on its way): what that system holds
      // now refers to the survivor, which is no change of the record made there.
      bool refers = false, held = false;
      for (const std::string& f : ref_fields) {
        refers = refers || stored.fields.value(f, json()) == json(from);
        if (stored.seen.is_object())
          for (const auto& [system, values] : stored.seen.items())
            held = held || (repointed.count(system) && values.is_object() &&
                            values.value(f, json()) == json(from));
      }
      if (!refers && !held) continue;
      auto current = d_.view->SnapshotOf(RecordKey{e.name, stored.canonical_id});
      if (!current.ok()) return current.status();
      Snapshot snap = current->has_value() ? **current : stored;
      for (const std::string& f : ref_fields) {
        if (snap.fields.value(f, json()) == json(from)) snap.fields[f] = to;
        // Where the two records are one (merged there: HubSpot moves a merged record's
        // associations, Dynamics 365 re-parents its children; or its copy moved to the
        // survivor), what the system holds refers to the survivor too.
        if (snap.seen.is_object())
          for (auto& [system, values] : snap.seen.items())
            if (repointed.count(system) && values.is_object() && values.value(f, json()) == json(from))
              values[f] = to;
      }
      if (!refers) {
        batch->PutSnapshot(snap);
        d_.view->PutSnapshot(snap);
        continue;
      }
      snap.updated_ms = d_.run_start_ms;
      spdlog::debug("{} {} now refers to {} {} (merged)", e.name, snap.canonical_id, entity, to);
      // Elsewhere the record still refers to the absorbed copy: it is written to refer to the
      // survivor's.
      // Where it is repointed already, a write of it still queued may refer to the absorbed
      // record, which that system no longer has: the record's values now take its place.
      if (snap.deleted_ms == 0)
        for (const SystemEntityMapping& target : d_.plan->mappings()) {
          if (target.entity != e.name || !target.writes()) continue;
          if (!repointed.count(target.system)) {
            CRMB_RETURN_IF_ERROR(d_.planner->PlanTarget(e.name, target, snap.canonical_id, snap, batch));
            continue;
          }
          auto queued = d_.store->PendingOutbox(target.system, e.name, snap.canonical_id);
          if (!queued.ok()) return queued.status();
          if (!queued->has_value() || (*queued)->op == OutboxOp::kDelete ||
              (*queued)->op == OutboxOp::kMerge)
            continue;
          auto link = CurrentLink(e.name, snap.canonical_id, target.system);
          if (!link.ok()) return link.status();
          CRMB_RETURN_IF_ERROR(d_.planner->Rewrite(target, link->native_id, snap.canonical_id, snap,
                                                   batch, /*lost=*/false));
        }
      batch->PutSnapshot(snap);
      d_.view->PutSnapshot(snap);
    }
  }
  return Status::Ok();
}

}  // namespace crmbridge
