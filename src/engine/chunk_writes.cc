#include "src/engine/chunk_writes.h"

#include "src/engine/merge.h"

namespace crmbridge {

using nlohmann::json;

WriteOp::Kind WriteKindOf(OutboxOp op) {
  switch (op) {
    case OutboxOp::kDelete: return WriteOp::Kind::kDelete;
    case OutboxOp::kUpdate: return WriteOp::Kind::kUpdate;
    case OutboxOp::kUpsert: return WriteOp::Kind::kUpsert;
    case OutboxOp::kMerge: return WriteOp::Kind::kMerge;
  }
  return WriteOp::Kind::kUpsert;
}

const char kSentUnrecorded[] =
    "sent; the run ended before its answer was stored: the next attempt looks for what it made "
    "before making another";

Result<ChunkWrites> BuildChunkWrites(const References& references, const SystemEntityMapping& m,
                                     const std::vector<OutboxItem>& items,
                                     const References::Chunk& refs) {
  ChunkWrites out;
  out.waits.resize(items.size());
  out.nothing_to_do.assign(items.size(), 0);
  for (size_t i = 0; i < items.size(); ++i) {
    const OutboxItem& item = items[i];
    WriteOp op;
    op.kind = WriteKindOf(item.op);
    op.key = item.idempotency_key;
    op.native_id = item.native_id;
    op.fields = item.payload;
    op.attempt = item.attempts == 0 && item.last_error == kSentUnrecorded ? 1 : item.attempts;
    if (item.op == OutboxOp::kMerge) {
      // Two records of this system, by their ids: nothing to map or resolve.
      op.fields = json::object();
      op.merge_into = item.payload.value("into", "");
      out.ops.push_back(std::move(op));
      out.sent_index.push_back(i);
      continue;
    }
    auto wait = references.ResolveWrite(m, item, refs, &op);
    if (!wait.ok()) return wait.status();
    if (wait->waiting && item.op == OutboxOp::kDelete && item.native_id.empty()) {
      // A delete that names a record by its reference, which never came to exist there: there
      // is nothing to delete.
      out.nothing_to_do[i] = 1;
      continue;
    }
    out.waits[i] = std::move(*wait);
    if (!out.waits[i].waiting) {
      out.ops.push_back(std::move(op));
      out.sent_index.push_back(i);
    }
  }
  return out;
}

void NoteDelivered(Snapshot* snapshot, const std::string& system, const json& held,
                   bool unverified) {
  json& seen = snapshot->seen[system];
  if (!seen.is_object()) seen = json::object();
  SettleInDoubt(snapshot, system, held);  // it holds them now
  for (const auto& [field, value] : held.items()) {
    if (!snapshot->unverified.is_object()) snapshot->unverified = json::object();
    const bool again = snapshot->unverified.contains(system) &&
                       snapshot->unverified[system].contains(field);
    if (unverified && (again || seen.value(field, json()) != value)) {
      // Keep the value it replaced (from the first attempt) to recognise a lost write.
      json& entry = snapshot->unverified[system][field];
      entry = json{{"sent", value},
                   {"before", again ? entry["before"] : seen.value(field, json())},
                   {"attempts", again ? entry.value("attempts", 1) + 1 : 1}};
    }
    seen[field] = value;
  }
}

}  // namespace crmbridge
