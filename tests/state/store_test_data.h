// Records the state tests store: the conformance suite and the SQLite-only tests share them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "state/store.h"

namespace crmbridge {
namespace store_test {

constexpr int64_t kT0 = 1767225600000LL;  // FakeClock's default start

// A write of company `canonical_id` to `system`, its hash derived from the payload.
inline OutboxItem Item(const std::string& system, const std::string& canonical_id,
                       nlohmann::json payload) {
  OutboxItem item;
  item.system = system;
  item.object = "companies";
  item.entity = "company";
  item.canonical_id = canonical_id;
  item.op = OutboxOp::kUpsert;
  item.idempotency_key = canonical_id;
  item.payload = std::move(payload);
  item.payload_hash = "h-" + item.payload.dump();
  item.created_ms = kT0;
  return item;
}

// A link of company `canonical_id`, its hashes derived from the native id.
inline Link MakeLink(const std::string& canonical_id, const std::string& system,
                     const std::string& native_id) {
  Link link;
  link.entity = "company";
  link.canonical_id = canonical_id;
  link.system = system;
  link.native_id = native_id;
  link.last_read_hash = "r-" + native_id;
  link.last_written_hash = "w-" + native_id;
  link.updated_ms = kT0;
  return link;
}

}  // namespace store_test
}  // namespace crmbridge
