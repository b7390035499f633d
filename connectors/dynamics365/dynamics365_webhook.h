// Dynamics 365 (Dataverse) webhook deliveries (Learn, "Use webhooks to create external handlers
// for server events" and "Register a webhook"; shared refs dynamics365 §12).
//
// A webhook service endpoint calls crmbridge once per execution of a step registered on it (a
// message such as Create, Update or Delete of a table), POSTing the operation's
// RemoteExecutionContext as JSON. Dataverse signs nothing: the endpoint's authentication is a key.
// crmbridge takes it as the `code` query value (authentication type WebhookKey, which appends
// ?code=KEY to the URL) or as the header x-functions-key (authentication type HttpHeader with that
// header name); the key is `auth.webhook_key` of the system. Every key presented must match.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "connectors/webhook.h"

namespace crmbridge::dynamics365 {

// The header an HttpHeader registration sends the key in.
inline constexpr char kWebhookKeyHeader[] = "x-functions-key";

// "/Date(1700000000000)/" or "/Date(1700000000000+0000)/" (DataContractJsonSerializer, as the
// context carries OperationCreatedOn) -> milliseconds since the epoch; nullopt when it is not one.
std::optional<int64_t> ParseJsonDate(const std::string& text);

// Checks and reads one delivery for the system `config` describes.
WebhookReceipt ReceiveWebhook(const SystemConfig& config, const WebhookRequest& request);

}  // namespace crmbridge::dynamics365
