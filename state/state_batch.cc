// StateBatch only records ops; Store::Apply() gives them meaning, so a PostgreSQL backend can reuse
// this file unchanged.
#include "state/store.h"

namespace crmbridge {

namespace {

StateBatch::Op MakeOp(StateBatch::Op::Kind kind) {
  StateBatch::Op op;
  op.kind = kind;
  return op;
}

}  // namespace

void StateBatch::PutLink(const Link& link) {
  Op op = MakeOp(Op::Kind::kPutLink);
  op.link = link;
  ops_.push_back(std::move(op));
}

void StateBatch::PutSnapshot(const Snapshot& snapshot) {
  Op op = MakeOp(Op::Kind::kPutSnapshot);
  op.snapshot = snapshot;
  ops_.push_back(std::move(op));
}

void StateBatch::SetCursor(const std::string& system, const std::string& object,
                           const std::string& cursor) {
  Op op = MakeOp(Op::Kind::kSetCursor);
  op.cursor.system = system;
  op.cursor.object = object;
  op.cursor.cursor = cursor;
  ops_.push_back(std::move(op));
}

void StateBatch::Enqueue(const OutboxItem& item) {
  Op op = MakeOp(Op::Kind::kEnqueue);
  op.outbox = item;
  ops_.push_back(std::move(op));
}

void StateBatch::CompleteOutbox(int64_t outbox_id, const std::string& delivered_hash) {
  Op op = MakeOp(Op::Kind::kCompleteOutbox);
  op.id = outbox_id;
  op.outbox.payload_hash = delivered_hash;
  ops_.push_back(std::move(op));
}

void StateBatch::RetryOutbox(int64_t outbox_id, const std::string& error,
                             int64_t next_attempt_ms, bool count_attempt,
                             const std::string& attempted_hash) {
  Op op = MakeOp(Op::Kind::kRetryOutbox);
  op.outbox.payload_hash = attempted_hash;
  op.outbox.attempts = count_attempt ? 1 : 0;  // the increment
  op.id = outbox_id;
  op.outbox.id = outbox_id;
  op.outbox.last_error = error;
  op.outbox.next_attempt_ms = next_attempt_ms;
  ops_.push_back(std::move(op));
}

void StateBatch::DeadLetterOutbox(int64_t outbox_id, const std::string& reason, int http_status,
                                  const std::string& attempted_hash) {
  Op op = MakeOp(Op::Kind::kDeadLetterOutbox);
  op.outbox.payload_hash = attempted_hash;
  op.id = outbox_id;
  op.dead_letter.item.id = outbox_id;
  op.dead_letter.reason = reason;
  op.dead_letter.http_status = http_status;
  ops_.push_back(std::move(op));
}

void StateBatch::AddAudit(const AuditEntry& entry) {
  Op op = MakeOp(Op::Kind::kAddAudit);
  op.audit = entry;
  ops_.push_back(std::move(op));
}

void StateBatch::AddStageTransition(const StageTransition& transition) {
  Op op = MakeOp(Op::Kind::kAddStageTransition);
  op.stage = transition;
  ops_.push_back(std::move(op));
}

void StateBatch::DeleteDeadLetter(int64_t dead_letter_id) {
  Op op = MakeOp(Op::Kind::kDeleteDeadLetter);
  op.id = dead_letter_id;
  ops_.push_back(std::move(op));
}

void StateBatch::AddDeadLetter(const OutboxItem& item, const std::string& reason) {
  Op op = MakeOp(Op::Kind::kAddDeadLetter);
  op.dead_letter.item = item;
  op.dead_letter.reason = reason;
  ops_.push_back(std::move(op));
}

void StateBatch::PutMatchKey(const std::string& entity, const std::string& key,
                             const std::string& canonical_id) {
  Op op = MakeOp(Op::Kind::kPutMatchKey);
  op.link.entity = entity;
  op.link.native_id = key;
  op.link.canonical_id = canonical_id;
  ops_.push_back(std::move(op));
}

}  // namespace crmbridge
