// Dynamics365WebhookSender: Dataverse's calls of a registered webhook service endpoint, as the
// steps registered on it make them (reference.md §12; Learn "Use webhooks to create external
// handlers for server events").
//
// Each step execution is one POST (asynchronous steps: one system job each, so one delivery per
// change) whose body is the RemoteExecutionContext of the operation: MessageName, PrimaryEntityName,
// PrimaryEntityId, CorrelationId, OperationId (the system job), OperationCreatedOn as
// "/Date(ms)/", InputParameters with the Target (an Entity with the written columns, or for a
// Delete an EntityReference), Mode 1 (asynchronous) and Stage 40 (PostOperation). Headers:
// x-request-id, x-ms-dynamics-organization, x-ms-dynamics-entity-name,
// x-ms-dynamics-request-name, x-ms-correlation-request-id. Authentication is WebhookKey: the key
// as the `code` query value of the URL. Dataverse waits 60 s for an answer and retries only a
// 502, 503 or 504, once; any other failure is final (the system job fails).
//
// Subscribed with {"url", "key", "faults", "retry_ms"}. Faults (mocks/common/webhook_sender.h):
// `duplicate`, `reorder`, `drop=P`, `late` (OperationCreatedOn 6 minutes before the change, as
// from a backed-up async queue) and `badkey` (the first attempt carries another key).
//
// Thread-safety: Enqueue may be called from any thread; one thread of its own delivers.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "mocks/common/webhook_sender.h"

namespace crmbridge::mocks {

class Dynamics365WebhookSender {
 public:
  Dynamics365WebhookSender();

  WebhookSender& sender() { return sender_; }
  // Queues the execution of the step on `message` (Create, Update, Delete) for row `id` of table
  // `logical_name`. `attributes` are the Target's columns as the context serializes them
  // ([{"key": column, "value": ...}]; ignored for a Delete).
  void Enqueue(const std::string& message, const std::string& logical_name, const std::string& id,
               const nlohmann::json& attributes, int64_t occurred_ms);

 private:
  std::string NewGuid();

  std::mutex mu_;  // guards rng_
  std::mt19937_64 rng_{0xd365};
  WebhookSender sender_;
};

}  // namespace crmbridge::mocks
