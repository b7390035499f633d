#include "src/engine/write_planner.h"

#include <spdlog/spdlog.h>

#include "src/core/hash.h"

namespace crmbridge {

using nlohmann::json;

OutboxItem WritePlanner::NewOutboxItem(const SystemEntityMapping& target,
                                       const std::string& canonical_id, OutboxOp op,
                                       const std::string& native_id, json payload,
                                       int64_t created_ms, std::string payload_hash) {
  OutboxItem item;
  item.system = target.system;
  item.object = target.object;
  item.entity = target.entity;
  item.canonical_id = canonical_id;
  item.op = op;
  item.native_id = native_id;
  item.idempotency_key = canonical_id;
  item.payload = std::move(payload);
  // A delete's payload is not what it sends, so it is never compared with a written hash.
  item.payload_hash = op == OutboxOp::kDelete  ? kDeleteHash
                      : !payload_hash.empty() ? std::move(payload_hash)
                                              : HashJson(item.payload);
  item.created_ms = created_ms;
  return item;
}

// A change to fields crmbridge does not map (another system's own fields) then costs no write.
bool HoldsAlready(const SystemEntityMapping& target, const Snapshot& snap) {
  if (!snap.seen.is_object() || !snap.seen.contains(target.system)) return false;
  const json& seen = snap.seen[target.system];
  for (const FieldMap& f : target.fields) {
    if (!f.writes() || f.create_only) continue;
    if (!f.reads()) return false;  // never read back: only the written hash can tell
    const auto value = snap.fields.find(f.canonical);
    if (value == snap.fields.end()) continue;  // not written
    const auto held = seen.find(f.canonical);
    if (held == seen.end() || *held != *value) return false;
  }
  return true;
}

// Whether a payload gives the record anything: a value that is not empty and not only a reference
// to another record (an association alone makes no record worth creating).
bool CarriesAValue(const json& native) {
  for (const auto& [name, value] : native.items()) {
    if (value.is_null() || value == "" || RefPlaceholderId(value)) continue;
    return true;
  }
  return false;
}

Status WritePlanner::PlanTargets(const SystemEntityMapping& source, const std::string& canonical_id,
                                 const Snapshot& snap, StateBatch* batch) {
  for (const SystemEntityMapping& target : plan_->mappings()) {
    if (target.entity != source.entity || target.system == source.system || !target.writes())
      continue;
    CRMB_RETURN_IF_ERROR(PlanTarget(source.entity, target, canonical_id, snap, batch));
  }
  return Status::Ok();
}

Status WritePlanner::PlanTarget(const std::string& from_entity, const SystemEntityMapping& target,
                                const std::string& canonical_id, const Snapshot& snap,
                                StateBatch* batch) {
  // A record crmbridge closed (deleted everywhere, or merged into another) is written nowhere.
  if (snap.deleted_ms > 0) return Status::Ok();
  auto found = view_->LinkOf(RecordKey{target.entity, canonical_id}, target.system);
  if (!found.ok()) return found.status();
  const Link link = found->value_or(Link{});
  const bool linked = !link.native_id.empty();
  if (!linked && !target.create) {
    // The target receives no records created elsewhere; it keeps those it has (linked by match
    // key) and gets this one if it ever appears there.
    ++tally_->Count(target.system, target.entity).not_created;
    return Status::Ok();
  }
  auto native = MappingPlan::ToNative(target, snap.fields, /*creating=*/!linked);
  if (!native.ok()) {
    ++tally_->Count(target.system, target.entity).rejected;
    if (tally_->ShowRecordWarning(target.system, from_entity + " that cannot be mapped to " +
                                                     target.object))
      spdlog::warn("{} {} cannot be mapped to {} {}: {}", from_entity, canonical_id, target.system,
                   target.object, native.status().message());
    return Status::Ok();
  }
  if (!linked && !CarriesAValue(*native)) {
    // Never sent: a record holding none of the fields the mapping writes would arrive empty.
    ++tally_->Count(target.system, target.entity).rejected;
    if (tally_->ShowRecordWarning(target.system, from_entity + " not created in " + target.object +
                                                     " for want of a value"))
      spdlog::warn("{} {} is not created in {} {}: it holds none of the fields the mapping writes "
                   "there",
                   from_entity, canonical_id, target.system, target.object);
    return Status::Ok();
  }
  const std::string hash = HashJson(*native);
  if (linked && link.last_written_hash == hash) return Status::Ok();  // it has it already
  if (linked && HoldsAlready(target, snap)) return Status::Ok();      // read with these values

  ++tally_->Count(target.system, target.entity).queued;
  if (dry_run_) {
    tally_->Planned(PlannedWrite{target.system, target.entity, canonical_id,
                                 linked ? WriteAction::kUpdate : WriteAction::kCreate, link.native_id,
                                 *native});
    return Status::Ok();
  }
  // A record the target already has (it came from there, or crmbridge created it) is updated by
  // its id: records that originated in the target do not carry crmbridge's key, so an upsert by
  // key would create a second one. New records are upserted by key, so a create retried after an
  // unknown outcome finds the first one instead of duplicating it.
  batch->Enqueue(NewOutboxItem(target, canonical_id, linked ? OutboxOp::kUpdate : OutboxOp::kUpsert,
                               link.native_id,
                               std::move(*native), now_ms_, hash));
  return Status::Ok();
}

Status WritePlanner::Rewrite(const SystemEntityMapping& source, const std::string& native_id,
                             const std::string& canonical_id, const Snapshot& snap,
                             StateBatch* batch, bool lost) {
  const bool create = native_id.empty();
  auto native = MappingPlan::ToNative(source, snap.fields, /*creating=*/create);
  if (!native.ok()) return Status::Ok();  // reported when the write was first planned
  if (lost) {
    ++tally_->Count(source.system, source.entity).rewritten;
    spdlog::warn("{}: {} {} did not keep crmbridge's last write; writing it again", source.system,
                 source.object, create ? canonical_id + " (never appeared)" : native_id);
  }
  if (dry_run_) return Status::Ok();
  batch->Enqueue(NewOutboxItem(source, canonical_id, create ? OutboxOp::kUpsert : OutboxOp::kUpdate,
                               native_id,
                               std::move(*native), now_ms_));
  return Status::Ok();
}

Status WritePlanner::PlanDeletes(const SystemEntityMapping& source, const std::string& canonical_id,
                                 StateBatch* batch) {
  for (const SystemEntityMapping& target : plan_->mappings()) {
    if (target.entity != source.entity || target.system == source.system || !target.writes())
      continue;
    auto found = view_->LinkOf(RecordKey{target.entity, canonical_id}, target.system);
    if (!found.ok()) return found.status();
    if (!found->has_value() || (*found)->native_id.empty()) continue;  // never made there
    const std::string native_id = (*found)->native_id;
    ++tally_->Count(target.system, target.entity).queued;
    if (dry_run_) {
      tally_->Planned(PlannedWrite{target.system, target.entity, canonical_id,
                                   WriteAction::kDelete, native_id, json::object()});
      continue;
    }
    batch->Enqueue(NewOutboxItem(target, canonical_id, OutboxOp::kDelete, native_id, json::object(),
                                 now_ms_));
  }
  return Status::Ok();
}

}  // namespace crmbridge
