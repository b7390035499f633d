// What every backend of Store (state/store.h) does the same way, whatever its SQL: checking and
// naming the ops of a batch, and the JSON form of the values it stores. Internal to state/.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/core/status.h"
#include "state/store.h"

namespace crmbridge {

// "PutLink", "CompleteOutbox", ...: an op's name in errors.
const char* OpKindName(StateBatch::Op::Kind kind);

// kInvalidArgument for an op that lacks what StateBatch says it needs (a link without an entity,
// canonical id or system; a cursor without a system or object; an outbox item without a system,
// object, entity or canonical id), checked before the backend touches anything.
Status ValidateOp(const StateBatch::Op& op);

// Checks and applies the ops of `batch` in order with `apply`, inside the caller's transaction,
// stopping at the first failure: that op's error, its message prefixed "op 3 of 5
// (CompleteOutbox): ". A backend that defers its statements' answers (PostgreSQL's pipeline)
// reads the rest in `finish`, after the last op, and says with `failed_op` which op a failure
// belongs to (its index, or -1 for the op in hand).
Status ApplyOps(const StateBatch& batch,
                const std::function<Status(const StateBatch::Op&)>& apply,
                const std::function<Status()>& finish = nullptr,
                const std::function<int()>& failed_op = nullptr);

// kInvalidArgument for an event that lacks its system, object, record id or dedupe key.
Status CheckWebhookEvents(const std::vector<WebhookEvent>& events);

// `j` as JSON text; kInvalidArgument naming `what` when it cannot be (a string that is not UTF-8).
Result<std::string> DumpJson(const nlohmann::json& j, const std::string& what);
// JSON text read back; kInternal naming `what` when it does not parse.
Result<nlohmann::json> ParseJson(const std::string& text, const std::string& what);

// The outbox item a dead letter keeps, as JSON (every field of OutboxItem, the op by its name),
// and back. Reading it back fails with kInternal naming `what` for JSON that does not parse, or
// an item with an unknown op.
nlohmann::json OutboxItemToJson(const OutboxItem& item);
Result<OutboxItem> OutboxItemFromJson(const std::string& text, const std::string& what);

}  // namespace crmbridge
