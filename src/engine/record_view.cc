#include "src/engine/record_view.h"

namespace crmbridge {

namespace {

// A pending map is empty on every page that changes nothing: found empty, a key is not hashed.
template <typename Map, typename Key>
auto FindIn(Map& map, const Key& key) {
  return map.empty() ? map.end() : map.find(key);
}

}  // namespace

size_t RecordKeyHash::operator()(const NativeKey& k) const {
  const std::hash<std::string> h;
  return h(k.native_id) ^ (h(k.entity) * 31) ^ (h(k.system) * 131);
}

size_t RecordKeyHash::operator()(const RecordKey& k) const {
  const std::hash<std::string> h;
  return h(k.canonical_id) ^ (h(k.entity) * 31);
}

Status RecordView::Load(const std::string& system, const std::string& entity,
                        const std::vector<std::string>& native_ids,
                        const std::vector<std::string>& canonical_ids) {
  Unload();
  std::vector<std::string> natives;
  natives.reserve(native_ids.size());
  for (const std::string& id : native_ids)
    if (loaded_natives_.insert(id).second) natives.push_back(id);
  auto loaded = store_->LoadRecords(entity, system, natives, canonical_ids);
  if (!loaded.ok()) {
    Unload();
    return loaded.status();
  }
  loaded_ = std::move(*loaded);
  loaded_system_ = system;
  loaded_entity_ = entity;
  for (const auto& [native_id, link] : loaded_.by_native) found_.emplace(link.canonical_id, &link);
  return Status::Ok();
}

void RecordView::Unload() {
  loaded_system_.clear();
  loaded_entity_.clear();
  loaded_natives_.clear();
  found_.clear();
  other_links_.clear();
  loaded_ = RecordStates{};
}

const Link* RecordView::Found(const RecordKey& key) const {
  if (loaded_entity_.empty() || key.entity != loaded_entity_) return nullptr;
  auto it = found_.find(key.canonical_id);
  return it == found_.end() ? nullptr : it->second;
}

void RecordView::NoteNew(const std::string& entity, const std::string& canonical_id) {
  if (!loaded_entity_.empty() && entity == loaded_entity_) loaded_.links[canonical_id];
}

bool RecordView::Loaded(const RecordKey& key) const {
  return !loaded_entity_.empty() && key.entity == loaded_entity_ &&
         loaded_.links.count(key.canonical_id) > 0;
}

Result<std::optional<std::string>> RecordView::CanonicalIdOf(const NativeKey& key) {
  if (auto p = FindIn(pending_by_native_, key); p != pending_by_native_.end())
    return p->second.empty() ? std::optional<std::string>() : std::optional<std::string>(p->second);
  if (!loaded_entity_.empty() && key.system == loaded_system_ && key.entity == loaded_entity_ &&
      loaded_natives_.count(key.native_id)) {
    auto it = loaded_.by_native.find(key.native_id);
    if (it == loaded_.by_native.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second.canonical_id);
  }
  auto link = store_->FindLinkByNative(key.system, key.entity, key.native_id);
  if (!link.ok()) return link.status();
  if (!link->has_value()) return std::optional<std::string>();
  return std::optional<std::string>((*link)->canonical_id);
}

Result<std::optional<Link>> RecordView::LinkOf(const RecordKey& key, const std::string& system) {
  if (auto p = FindIn(pending_links_, key); p != pending_links_.end())
    for (const Link& link : p->second)
      if (link.system == system) return std::optional<Link>(link);
  if (Loaded(key)) {
    for (const Link& link : loaded_.links.at(key.canonical_id))
      if (link.system == system) return std::optional<Link>(link);
    return std::optional<Link>();
  }
  if (const Link* found = Found(key)) {
    // Found by native id: its link in the loaded system came with it; the others are read once.
    if (system == loaded_system_) return std::optional<Link>(*found);
    auto cached = other_links_.find({key.canonical_id, system});
    if (cached != other_links_.end()) return cached->second;
    auto read = store_->FindLink(key.entity, key.canonical_id, system);
    if (!read.ok()) return read.status();
    other_links_.emplace(std::make_pair(key.canonical_id, system), *read);
    return read;
  }
  return store_->FindLink(key.entity, key.canonical_id, system);
}

Result<std::optional<Snapshot>> RecordView::SnapshotOf(const RecordKey& key) {
  if (auto p = FindIn(pending_snapshots_, key); p != pending_snapshots_.end())
    return std::optional<Snapshot>(p->second);
  const bool found = Found(key) != nullptr;
  if (found || Loaded(key)) {
    auto it = loaded_.snapshots.find(key.canonical_id);
    if (it != loaded_.snapshots.end()) return std::optional<Snapshot>(it->second);
    // Found by native id: its snapshot, if it has one, is read now.
    if (!found) return std::optional<Snapshot>();
    auto read = store_->GetSnapshot(key.entity, key.canonical_id);
    if (!read.ok()) return read.status();
    if (read->has_value()) loaded_.snapshots.emplace(key.canonical_id, **read);
    return read;
  }
  return store_->GetSnapshot(key.entity, key.canonical_id);
}

bool RecordView::SettledOn(const RecordKey& key, const std::string& system,
                           std::string_view digest) const {
  if (FindIn(pending_snapshots_, key) != pending_snapshots_.end() || Found(key) == nullptr)
    return false;
  auto it = loaded_.digests.find(key.canonical_id);
  if (it == loaded_.digests.end()) return false;
  const std::string* settled = it->second.Of(system);
  return settled != nullptr && *settled == digest;
}

const Link* RecordView::LoadedLinkOf(const RecordKey& key, const std::string& system) const {
  if (system != loaded_system_ || FindIn(pending_links_, key) != pending_links_.end())
    return nullptr;
  return Found(key);
}

bool RecordView::LacksDigests(const RecordKey& key) const {
  if (Found(key) == nullptr) return false;
  auto it = loaded_.digests.find(key.canonical_id);
  return it != loaded_.digests.end() && !it->second.known;
}

Result<std::optional<std::string>> RecordView::ByMatchKey(const std::string& entity,
                                                          const std::string& match_key) {
  if (auto p = pending_match_keys_.find(RecordKey{entity, match_key}); p != pending_match_keys_.end())
    return std::optional<std::string>(p->second);
  return store_->FindByMatchKey(entity, match_key);
}

void RecordView::PutLink(const Link& link) {
  pending_by_native_[NativeKey{link.system, link.entity, link.native_id}] = link.canonical_id;
  std::vector<Link>& links = pending_links_[RecordKey{link.entity, link.canonical_id}];
  for (Link& l : links)
    if (l.system == link.system) {
      l = link;
      return;
    }
  links.push_back(link);
}

Link ClearedLink(const Link& link, int64_t updated_ms) {
  Link cleared = link;
  cleared.native_id.clear();
  cleared.last_read_hash.clear();
  cleared.last_written_hash.clear();
  cleared.updated_ms = updated_ms;
  return cleared;
}

void RecordView::Unlink(const Link& link) {
  PutLink(ClearedLink(link, link.updated_ms));
  pending_by_native_[NativeKey{link.system, link.entity, link.native_id}] = "";
}

void RecordView::PutSnapshot(const Snapshot& snapshot) {
  pending_snapshots_[RecordKey{snapshot.entity, snapshot.canonical_id}] = snapshot;
}

bool RecordView::PutMatchKey(const std::string& entity, const std::string& match_key,
                             const std::string& canonical_id) {
  return pending_match_keys_.emplace(RecordKey{entity, match_key}, canonical_id).second;
}

void RecordView::ClearPending() {
  pending_by_native_.clear();
  pending_links_.clear();
  pending_snapshots_.clear();
  pending_match_keys_.clear();
}

}  // namespace crmbridge
