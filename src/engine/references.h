// References: a canonical field that refers to a record of another entity ({type: ref}), as each
// system holds it (a HubSpot association, a Dynamics 365 lookup).
//
// Read side: a native id read from a system becomes the referenced record's canonical id through
// the links of the referenced entity in that system; a placeholder (an outbox payload mapped back)
// becomes its canonical id; a native id crmbridge has not linked is dropped from the record (the
// canonical field keeps what it had) and counted.
// Write side: an outbox payload holds placeholders, translated just before the write to the
// target's native ids (WriteOp::refs), with the id referred to before so that a many-valued
// reference can drop it. A write whose referenced record does not exist in the target yet waits,
// which the answer says as a type (RefWait), not as a status code.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "connectors/connector.h"
#include "mappings/mapping.h"
#include "src/core/status.h"
#include "src/engine/record_view.h"
#include "state/store.h"

namespace crmbridge {

// Why a write cannot go yet: a record it refers to does not exist in its system.
struct RefWait {
  bool waiting = false;
  // That record's own write is queued there: waiting costs no attempt, its attempts decide.
  bool on_its_way = false;
  std::string reason;  // "waits for company c1 (its company), which hubspot does not have yet"
};

class References {
 public:
  References(const MappingPlan* plan, Store* store) : plan_(plan), store_(store) {}

  // Read side, through `view` (the reader's, or the flush's under the state lock).
  // `unresolved` (may be null) counts native ids crmbridge has not linked.
  Status ResolveRead(RecordView* view, const SystemEntityMapping& m, MappedRecord* record,
                     int64_t* unresolved) const;
  // After ResolveRead, for a record whose snapshot is `snap`: a reference that differs from what
  // the record holds and names a record crmbridge has closed (merged into another, or deleted
  // everywhere) is the system behind, not a change: HubSpot moves a merged company's associations
  // only once that merge lands there. It is dropped from the read, so the field keeps its value.
  Status DropReferencesToClosed(RecordView* view, const SystemEntityMapping& m,
                                const Snapshot& snap, MappedRecord* record) const;

  // Write side: what a chunk of outbox items of `m` needs, read in few store calls. The chunk's
  // own records (for what each referred to before) are read only `with_previous` (a system whose
  // references written add to those held, Capabilities::adds_references).
  struct Chunk {
    std::unordered_map<std::string, Snapshot> snapshots;  // the chunk's records, by canonical id
    // Per referenced entity, canonical id -> its native id in the chunk's system.
    std::map<std::string, std::unordered_map<std::string, std::string>> native_ids;
  };
  Status LoadChunk(const SystemEntityMapping& m, const std::vector<OutboxItem>& items,
                   bool with_previous, Chunk* chunk) const;
  // Moves `op`'s reference fields into op->refs as `m.system`'s native ids; or says why it waits.
  Result<RefWait> ResolveWrite(const SystemEntityMapping& m, const OutboxItem& item,
                               const Chunk& chunk, WriteOp* op) const;

 private:
  const MappingPlan* plan_;
  Store* store_;
};

}  // namespace crmbridge
