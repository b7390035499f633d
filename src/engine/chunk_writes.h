// The flush of one chunk of outbox items (one system, one entity) runs in three steps:
//   1. build (BuildChunkWrites): the items as the connector takes them, as WriteOps, their
//      references turned into the target's native ids (References::ResolveWrite); an item whose
//      referenced record is not there yet waits (RefWait), and a delete of a record that never
//      came to exist there has nothing to do;
//   2. deliver (the run): the values about to be sent are recorded in doubt, and a create the
//      system does not key (Capabilities::unkeyed_creates) as sent (kSentUnrecorded), then
//      Connector::Write sends the ops;
//   3. apply (the run): each item's outcome meets DecideWrite (write_outcome.h); a delivered one
//      leaves its record's snapshot knowing what the target now holds (NoteDelivered).
// This file holds the steps that need nothing but their inputs: no store, no connector.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/connector.h"
#include "mappings/mapping.h"
#include "src/engine/references.h"
#include "state/store.h"

namespace crmbridge {

// Step 1's answer, for items[0..n).
struct ChunkWrites {
  std::vector<WriteOp> ops;         // the ops to send, in the items' order
  std::vector<size_t> sent_index;   // ops[k] is the write of items[sent_index[k]]
  std::vector<RefWait> waits;       // per item: waiting for a referenced record (not sent)
  std::vector<char> nothing_to_do;  // per item: a delete of a record never created there
};

WriteOp::Kind WriteKindOf(OutboxOp op);

// An outbox item's last error while its create, one the system does not key, is on its way: left
// there by a run that ended before the answer was stored, it makes the next attempt count as a
// second (WriteOp::attempt 1), which looks for what the first made before making another.
extern const char kSentUnrecorded[];

// Step 1. `refs` is what References::LoadChunk read for these items.
Result<ChunkWrites> BuildChunkWrites(const References& references, const SystemEntityMapping& m,
                                     const std::vector<OutboxItem>& items,
                                     const References::Chunk& refs);

// Step 3, for a delivered write of `held` (the canonical values the target now holds, as
// crmbridge will read them back) to `system`: Snapshot::seen takes them, so reading them back is
// recognised as crmbridge's own write; the values sent there in doubt are settled. A write the
// system acknowledged without confirming (`unverified`) keeps, per field it changed, what it sent
// and what the field held before (from the first attempt), with the attempts so far, for the
// read-back to verify (Snapshot::unverified).
void NoteDelivered(Snapshot* snapshot, const std::string& system, const nlohmann::json& held,
                   bool unverified);

}  // namespace crmbridge
