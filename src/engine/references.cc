#include "src/engine/references.h"

#include <set>

#include <spdlog/spdlog.h>

namespace crmbridge {

using nlohmann::json;

Status References::ResolveRead(RecordView* view, const SystemEntityMapping& m,
                               MappedRecord* record, int64_t* unresolved) const {
  for (const FieldMap& f : m.fields) {
    if (f.ref_entity.empty() || !record->fields.contains(f.canonical)) continue;
    json& value = record->fields[f.canonical];
    if (value.is_null()) continue;  // refers to nothing
    if (auto cid = RefPlaceholderId(value)) {
      value = *cid;
      continue;
    }
    const std::string native_id = value.get<std::string>();
    auto cid = view->CanonicalIdOf(NativeKey{m.system, f.ref_entity, native_id});
    if (!cid.ok()) return cid.status();
    if (cid->has_value()) {
      value = **cid;
      continue;
    }
    if (unresolved != nullptr) ++*unresolved;
    spdlog::info("{}: {}.{} refers to {} {}, which crmbridge has not linked; the reference is "
                 "left as it is", m.system, m.entity, f.canonical, f.ref_entity, native_id);
    record->fields.erase(f.canonical);
  }
  return Status::Ok();
}

Status References::DropReferencesToClosed(RecordView* view, const SystemEntityMapping& m,
                                          const Snapshot& snap, MappedRecord* record) const {
  for (const FieldMap& f : m.fields) {
    if (f.ref_entity.empty()) continue;
    const auto value = record->fields.find(f.canonical);
    if (value == record->fields.end() || !value->is_string() ||
        snap.fields.value(f.canonical, json()) == *value)
      continue;
    auto target = view->SnapshotOf(RecordKey{f.ref_entity, value->get<std::string>()});
    if (!target.ok()) return target.status();
    if (!target->has_value() || (**target).deleted_ms == 0) continue;
    spdlog::debug("{}: {} {} refers to {} {}, which is closed (merged or deleted); {} keeps {}",
                  m.system, m.entity, snap.canonical_id, f.ref_entity, value->get<std::string>(),
                  f.canonical, snap.fields.value(f.canonical, json()).dump());
    record->fields.erase(value);
  }
  return Status::Ok();
}

Status References::LoadChunk(const SystemEntityMapping& m, const std::vector<OutboxItem>& items,
                             bool with_previous, Chunk* state) const {
  std::vector<const FieldMap*> ref_fields;
  for (const FieldMap& f : m.fields)
    if (!f.ref_entity.empty() && f.writes()) ref_fields.push_back(&f);
  if (ref_fields.empty() || items.empty()) return Status::Ok();
  if (with_previous) {
    std::vector<std::string> ids;
    ids.reserve(items.size());
    for (const OutboxItem& item : items) ids.push_back(item.canonical_id);
    auto own = store_->LoadRecords(m.entity, m.system, {}, ids);
    if (!own.ok()) return own.status();
    state->snapshots = std::move(own->snapshots);
  }
  // Per referenced entity, the records referred to now and before, in one call.
  std::map<std::string, std::set<std::string>> wanted;
  for (const OutboxItem& item : items) {
    const auto snap = state->snapshots.find(item.canonical_id);
    const json* seen = snap != state->snapshots.end() && snap->second.seen.is_object() &&
                               snap->second.seen.contains(m.system)
                           ? &snap->second.seen[m.system]
                           : nullptr;
    for (const FieldMap* f : ref_fields) {
      if (auto it = item.payload.find(f->native); it != item.payload.end())
        if (auto cid = RefPlaceholderId(*it)) wanted[f->ref_entity].insert(*cid);
      if (seen != nullptr)
        if (auto before = seen->find(f->canonical); before != seen->end() && before->is_string())
          wanted[f->ref_entity].insert(before->get<std::string>());
    }
  }
  for (const auto& [entity, cids] : wanted) {
    auto loaded = store_->LoadRecords(entity, m.system, {},
                                          std::vector<std::string>(cids.begin(), cids.end()));
    if (!loaded.ok()) return loaded.status();
    auto& native = state->native_ids[entity];
    for (const auto& [cid, links] : loaded->links)
      for (const Link& link : links)
        if (link.system == m.system && !link.native_id.empty()) native[cid] = link.native_id;
  }
  return Status::Ok();
}

Result<RefWait> References::ResolveWrite(const SystemEntityMapping& m, const OutboxItem& item,
                                         const Chunk& state, WriteOp* op) const {
  auto native_id = [&](const std::string& entity, const std::string& cid) -> std::string {
    auto by_entity = state.native_ids.find(entity);
    if (by_entity == state.native_ids.end()) return "";
    auto it = by_entity->second.find(cid);
    return it == by_entity->second.end() ? "" : it->second;
  };
  const auto snap = state.snapshots.find(item.canonical_id);
  for (const FieldMap& f : m.fields) {
    if (f.ref_entity.empty() || !f.writes() || !op->fields.contains(f.native)) continue;
    const json value = op->fields[f.native];
    op->fields.erase(f.native);
    const SystemEntityMapping* target = plan_->Find(m.system, f.ref_entity);
    if (target == nullptr) continue;  // validation requires it
    NativeRef ref;
    ref.object = target->object;
    ref.bind = f.bind;
    std::string cid;
    if (auto id = RefPlaceholderId(value)) cid = *id;
    if (!cid.empty()) {
      ref.id = native_id(f.ref_entity, cid);
      if (ref.id.empty()) {
        auto queued = store_->PendingOutbox(m.system, f.ref_entity, cid);
        if (!queued.ok()) return queued.status();
        RefWait wait;
        wait.waiting = true;
        wait.on_its_way = queued->has_value();
        wait.reason = "waits for " + f.ref_entity + " " + cid + " (its " + f.canonical +
                      "), which " + m.system + " does not have yet";
        return wait;
      }
    }
    // What this system referred to before, so a many-valued reference can drop it.
    if (snap != state.snapshots.end() && snap->second.seen.is_object() &&
        snap->second.seen.contains(m.system)) {
      const json before = snap->second.seen[m.system].value(f.canonical, json());
      if (before.is_string() && before.get<std::string>() != cid)
        ref.previous_id = native_id(f.ref_entity, before.get<std::string>());
    }
    op->refs[f.native] = std::move(ref);
  }
  return RefWait{};
}

}  // namespace crmbridge
