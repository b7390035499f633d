// What every record read from any system must be before crmbridge maps it: an id that can be
// stored and shown (not empty, at most kMaxNativeIdBytes, UTF-8 without control characters), and
// text values that are UTF-8 without NUL bytes. A record that is not is rejected by name (counted
// and logged by the reader), never stored and never written anywhere; the rest of its page goes
// on. Whatever a vendor, a proxy or a broken integration sends, the state store and the other
// systems only ever see records that pass.
#pragma once

#include <cstddef>

#include "connectors/connector.h"
#include "src/core/status.h"

namespace crmbridge {

inline constexpr size_t kMaxNativeIdBytes = 512;

// OK, or kInvalidArgument saying what is wrong ("its id is empty", "field 'subject' holds a NUL
// byte").
Status CheckNativeRecord(const NativeRecord& record);

// OK, or kInvalidArgument saying what is wrong with an id a system gave a write in its answer:
// the same as a read's ("its id is 10240 bytes long (at most 512)").
Status CheckWrittenId(const std::string& id);

// The record's id as a message shows it: at most 64 bytes of it, and its length when longer.
std::string ShownId(const std::string& id);

}  // namespace crmbridge
