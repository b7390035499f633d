// RecordView: what one reader (or one flush chunk) sees of the sync state, in one place.
//
// A lookup answers from, in order:
//   1. the pending changes: links, snapshots and match keys this page produced and has not
//      committed yet (a dry run keeps them for its whole pass), so later records of the same page
//      see them;
//   2. the loaded records: what Store::LoadRecords returned for the page (or chunk) in one call;
//      a canonical id loaded there is authoritative, so a record without a snapshot or link in
//      the cache has none in the store either. A record the page found by native id comes with
//      its link in that system, which carries that system's settled digest; its snapshot and its
//      links in other systems are read from the store when first asked for (an unchanged record
//      never asks);
//   3. the store, one call per lookup, for anything else (a referenced record of another page).
// Keys are typed (NativeKey, RecordKey), never strings joined with separators.
//
// Not thread-safe: each reader and each flush chunk has its own.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "src/core/status.h"
#include "state/store.h"

namespace crmbridge {

// A record as one system knows it.
struct NativeKey {
  std::string system, entity, native_id;
  bool operator==(const NativeKey& o) const {
    return system == o.system && entity == o.entity && native_id == o.native_id;
  }
};

// A canonical record; with `system`, its link in that system.
struct RecordKey {
  std::string entity, canonical_id;
  bool operator==(const RecordKey& o) const {
    return entity == o.entity && canonical_id == o.canonical_id;
  }
};

// `link` with no native record (its record there is gone, or moved to another canonical record):
// no native id, no hashes, stamped `updated_ms`. Stored, it links nothing.
Link ClearedLink(const Link& link, int64_t updated_ms);

struct RecordKeyHash {
  size_t operator()(const NativeKey& k) const;
  size_t operator()(const RecordKey& k) const;
};

class RecordView {
 public:
  explicit RecordView(Store* store) : store_(store) {}

  // Loads what the store holds for a page of `system`'s `entity` records (by native id) and for
  // `canonical_ids` of that entity, in one store call; replaces whatever was loaded before.
  Status Load(const std::string& system, const std::string& entity,
              const std::vector<std::string>& native_ids,
              const std::vector<std::string>& canonical_ids = {});
  // Drops the loaded records (the pending changes stay).
  void Unload();
  // A canonical id minted for a record seen for the first time: the store holds nothing about it,
  // so its lookups need no store call.
  void NoteNew(const std::string& entity, const std::string& canonical_id);

  // The canonical id linked to a native record; nullopt when crmbridge has not linked it.
  Result<std::optional<std::string>> CanonicalIdOf(const NativeKey& key);
  // The link of a canonical record in `system`; nullopt when it has none there.
  Result<std::optional<Link>> LinkOf(const RecordKey& key, const std::string& system);
  // A loaded record found by native id is decoded here, on its first lookup.
  Result<std::optional<Snapshot>> SnapshotOf(const RecordKey& key);
  // Whether the loaded link of `key` says `system` is settled on values whose digest is
  // `digest` (store.h, SettledDigests): a read of them changes nothing. False when the page
  // changed the record, or nothing was loaded for it.
  bool SettledOn(const RecordKey& key, const std::string& system, std::string_view digest) const;
  // The link in `system` of a record the page found by native id, when `system` is the loaded
  // one and no pending change replaced it: no copy, no store call. nullptr otherwise (LinkOf then
  // answers).
  const Link* LoadedLinkOf(const RecordKey& key, const std::string& system) const;
  // Whether the loaded link of `key` does not know its system's digest (stored before the store
  // kept them, or linked after its snapshot was last stored): storing the snapshot adds it.
  bool LacksDigests(const RecordKey& key) const;
  // The canonical record holding match key `match_key`, if any.
  Result<std::optional<std::string>> ByMatchKey(const std::string& entity,
                                                const std::string& match_key);

  // Pending changes, seen by every later lookup until ClearPending().
  void PutLink(const Link& link);
  // `link`'s native record is no longer linked to anything (it was merged away): its canonical
  // record keeps an empty link in that system, and the native id looks up as unlinked.
  void Unlink(const Link& link);
  void PutSnapshot(const Snapshot& snapshot);
  // False when the key is already held (pending): the first record to hold a key keeps it.
  bool PutMatchKey(const std::string& entity, const std::string& match_key,
                   const std::string& canonical_id);
  void ClearPending();

 private:
  bool Loaded(const RecordKey& key) const;
  // The link in the loaded system of a record the page found by native id, else nullptr.
  const Link* Found(const RecordKey& key) const;

  Store* store_;
  // Pending.
  std::unordered_map<NativeKey, std::string, RecordKeyHash> pending_by_native_;
  std::unordered_map<RecordKey, std::vector<Link>, RecordKeyHash> pending_links_;
  std::unordered_map<RecordKey, Snapshot, RecordKeyHash> pending_snapshots_;
  std::unordered_map<RecordKey, std::string, RecordKeyHash> pending_match_keys_;  // {entity, key}
  // Loaded.
  std::string loaded_system_, loaded_entity_;
  std::unordered_set<std::string> loaded_natives_;  // asked for, whether linked or not
  RecordStates loaded_;
  // Canonical id (held by the link in loaded_.by_native, whose nodes do not move) -> that link.
  std::unordered_map<std::string_view, const Link*> found_;
  // Links in other systems of records found by native id, read when first asked for.
  std::map<std::pair<std::string, std::string>, std::optional<Link>> other_links_;
};

}  // namespace crmbridge
