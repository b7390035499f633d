#include "state/backend_common.h"

#include <utility>

#include "src/core/json_text.h"

namespace crmbridge {

using json = nlohmann::json;

const char* OpKindName(StateBatch::Op::Kind kind) {
  using K = StateBatch::Op::Kind;
  switch (kind) {
    case K::kPutLink: return "PutLink";
    case K::kPutSnapshot: return "PutSnapshot";
    case K::kSetCursor: return "SetCursor";
    case K::kEnqueue: return "Enqueue";
    case K::kCompleteOutbox: return "CompleteOutbox";
    case K::kRetryOutbox: return "RetryOutbox";
    case K::kDeadLetterOutbox: return "DeadLetterOutbox";
    case K::kAddStageTransition: return "AddStageTransition";
    case K::kDeleteDeadLetter: return "DeleteDeadLetter";
    case K::kAddDeadLetter: return "AddDeadLetter";
    case K::kPutMatchKey: return "PutMatchKey";
    case K::kAddAudit: return "AddAudit";
  }
  return "unknown op";
}

Status ValidateOp(const StateBatch::Op& op) {
  using K = StateBatch::Op::Kind;
  switch (op.kind) {
    case K::kPutLink: {
      const Link& link = op.link();
      if (link.entity.empty() || link.canonical_id.empty() || link.system.empty()) {
        return Status(StatusCode::kInvalidArgument,
                      "a link needs an entity, a canonical id and a system");
      }
      break;
    }
    case K::kSetCursor:
      if (op.cursor().system.empty() || op.cursor().object.empty())
        return Status(StatusCode::kInvalidArgument, "a cursor needs a system and an object");
      break;
    case K::kEnqueue: {
      const OutboxItem& item = op.outbox();
      if (item.system.empty() || item.object.empty() || item.entity.empty() ||
          item.canonical_id.empty()) {
        return Status(StatusCode::kInvalidArgument,
                      "an outbox item needs a system, an object, an entity and a canonical id");
      }
      break;
    }
    default:
      break;
  }
  return Status::Ok();
}

Status ApplyOps(const StateBatch& batch,
                const std::function<Status(const StateBatch::Op&)>& apply,
                const std::function<Status()>& finish,
                const std::function<int()>& failed_op) {
  const auto& ops = batch.ops();
  auto named = [&](size_t in_hand, const Status& s) {
    const int said = failed_op ? failed_op() : -1;
    const size_t i = said >= 0 && static_cast<size_t>(said) < ops.size() ? static_cast<size_t>(said)
                                                                          : in_hand;
    return Status(s.code(), "op " + std::to_string(i + 1) + " of " + std::to_string(ops.size()) +
                                " (" + OpKindName(ops[i].kind) + "): " + s.message());
  };
  for (size_t i = 0; i < ops.size(); ++i) {
    Status s = ValidateOp(ops[i]);
    if (s.ok()) s = apply(ops[i]);
    if (!s.ok()) return named(i, s);
  }
  if (finish && !ops.empty()) {
    Status s = finish();
    if (!s.ok()) return named(ops.size() - 1, s);
  }
  return Status::Ok();
}

Result<std::string> DumpJson(const json& j, const std::string& what) {
  try {
    return CompactJson(j);  // dump()'s text, written faster
  } catch (const json::exception& e) {
    // Strings that are not valid UTF-8 cannot be serialised.
    return Status(StatusCode::kInvalidArgument, what + " cannot be stored as JSON: " + e.what());
  }
}

Result<json> ParseJson(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return Status(StatusCode::kInternal, what + " holds JSON that does not parse");
  return j;
}

json OutboxItemToJson(const OutboxItem& item) {
  return json{{"id", item.id},
              {"system", item.system},
              {"object", item.object},
              {"entity", item.entity},
              {"canonical_id", item.canonical_id},
              {"op", OutboxOpName(item.op)},
              {"native_id", item.native_id},
              {"idempotency_key", item.idempotency_key},
              {"payload", item.payload},
              {"payload_hash", item.payload_hash},
              {"attempts", item.attempts},
              {"next_attempt_ms", item.next_attempt_ms},
              {"last_error", item.last_error},
              {"created_ms", item.created_ms}};
}

Result<OutboxItem> OutboxItemFromJson(const std::string& text, const std::string& what) {
  auto parsed = ParseJson(text, what);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  try {
    OutboxItem item;
    item.id = j.value("id", int64_t{0});
    item.system = j.value("system", std::string());
    item.object = j.value("object", std::string());
    item.entity = j.value("entity", std::string());
    item.canonical_id = j.value("canonical_id", std::string());
    const std::string op = j.value("op", std::string());
    auto parsed_op = ParseOutboxOp(op);
    if (!parsed_op) return Status(StatusCode::kInternal, what + " holds an unknown op '" + op + "'");
    item.op = *parsed_op;
    item.native_id = j.value("native_id", std::string());
    item.idempotency_key = j.value("idempotency_key", std::string());
    item.payload = j.value("payload", json::object());
    item.payload_hash = j.value("payload_hash", std::string());
    item.attempts = j.value("attempts", 0);
    item.next_attempt_ms = j.value("next_attempt_ms", int64_t{0});
    item.last_error = j.value("last_error", std::string());
    item.created_ms = j.value("created_ms", int64_t{0});
    return item;
  } catch (const json::exception& e) {
    return Status(StatusCode::kInternal, what + " is not a valid outbox item: " + e.what());
  }
}

Status CheckWebhookEvents(const std::vector<WebhookEvent>& events) {
  for (size_t i = 0; i < events.size(); ++i) {
    const WebhookEvent& e = events[i];
    if (e.system.empty() || e.object.empty() || e.record_id.empty() || e.dedupe_key.empty())
      return Status(StatusCode::kInvalidArgument,
                    "webhook event " + std::to_string(i + 1) + " of " +
                        std::to_string(events.size()) +
                        " lacks its system, object, record id or dedupe key");
  }
  return Status::Ok();
}

}  // namespace crmbridge
