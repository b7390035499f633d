// StateBatch only records ops; Store::Apply() gives them meaning, so a PostgreSQL backend can reuse
// this file unchanged.
#include "state/store.h"

namespace crmbridge {

namespace {

template <typename T>
StateBatch::Op MakeOp(StateBatch::Op::Kind kind, T data, int64_t id = 0) {
  StateBatch::Op op;
  op.kind = kind;
  op.id = id;
  op.data = std::move(data);
  return op;
}

}  // namespace

const char* OutboxOpName(OutboxOp op) {
  switch (op) {
    case OutboxOp::kUpsert: return "upsert";
    case OutboxOp::kUpdate: return "update";
    case OutboxOp::kDelete: return "delete";
    case OutboxOp::kMerge: return "merge";
  }
  return "upsert";
}

std::optional<OutboxOp> ParseOutboxOp(const std::string& name) {
  for (OutboxOp op : {OutboxOp::kUpsert, OutboxOp::kUpdate, OutboxOp::kDelete, OutboxOp::kMerge})
    if (name == OutboxOpName(op)) return op;
  return std::nullopt;
}

void StateBatch::PutLink(Link link) {
  ops_.push_back(MakeOp(Op::Kind::kPutLink, std::move(link)));
}

void StateBatch::PutSnapshot(Snapshot snapshot) {
  ops_.push_back(MakeOp(Op::Kind::kPutSnapshot, std::move(snapshot)));
}

void StateBatch::SetCursor(const std::string& system, const std::string& object,
                           const std::string& cursor) {
  CursorRow row;
  row.system = system;
  row.object = object;
  row.cursor = cursor;
  ops_.push_back(MakeOp(Op::Kind::kSetCursor, std::move(row)));
}

void StateBatch::Enqueue(OutboxItem item) {
  ops_.push_back(MakeOp(Op::Kind::kEnqueue, std::move(item)));
}

void StateBatch::CompleteOutbox(int64_t outbox_id, const std::string& delivered_hash) {
  Op::Outcome outcome;
  outcome.payload_hash = delivered_hash;
  ops_.push_back(MakeOp(Op::Kind::kCompleteOutbox, std::move(outcome), outbox_id));
}

void StateBatch::RetryOutbox(int64_t outbox_id, const std::string& error,
                             int64_t next_attempt_ms, bool count_attempt,
                             const std::string& attempted_hash) {
  Op::Outcome outcome;
  outcome.payload_hash = attempted_hash;
  outcome.attempts_increment = count_attempt ? 1 : 0;
  outcome.error = error;
  outcome.next_attempt_ms = next_attempt_ms;
  ops_.push_back(MakeOp(Op::Kind::kRetryOutbox, std::move(outcome), outbox_id));
}

void StateBatch::DeadLetterOutbox(int64_t outbox_id, const std::string& reason, int http_status,
                                  const std::string& attempted_hash) {
  Op::Outcome outcome;
  outcome.payload_hash = attempted_hash;
  outcome.error = reason;
  outcome.http_status = http_status;
  ops_.push_back(MakeOp(Op::Kind::kDeadLetterOutbox, std::move(outcome), outbox_id));
}

void StateBatch::AddAudit(const AuditEntry& entry) {
  ops_.push_back(MakeOp(Op::Kind::kAddAudit, entry));
}

void StateBatch::AddStageTransition(const StageTransition& transition) {
  ops_.push_back(MakeOp(Op::Kind::kAddStageTransition, transition));
}

void StateBatch::DeleteDeadLetter(int64_t dead_letter_id) {
  ops_.push_back(MakeOp(Op::Kind::kDeleteDeadLetter, std::monostate{}, dead_letter_id));
}

void StateBatch::AddDeadLetter(const OutboxItem& item, const std::string& reason) {
  DeadLetter letter;
  letter.item = item;
  letter.reason = reason;
  ops_.push_back(MakeOp(Op::Kind::kAddDeadLetter, std::move(letter)));
}

void StateBatch::PutMatchKey(const std::string& entity, const std::string& key,
                             const std::string& canonical_id) {
  ops_.push_back(MakeOp(Op::Kind::kPutMatchKey, Op::MatchKey{entity, key, canonical_id}));
}

}  // namespace crmbridge
