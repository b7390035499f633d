#include "src/engine/native_record_check.h"

#include <string>
#include <string_view>

#include "src/core/utf8.h"

namespace crmbridge {
namespace {

// Why `text` cannot be kept as text, or nullptr when it can: a NUL byte truncates it in most
// systems and tools, and bytes that are not UTF-8 cannot be written as JSON.
const char* TextProblem(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) return "a NUL byte";
  if (!IsValidUtf8(text)) return "bytes that are not UTF-8";
  return nullptr;
}

// The first problem in a field's value, nested values included.
const char* ValueProblem(const nlohmann::json& value) {
  if (value.is_string()) return TextProblem(value.get_ref<const std::string&>());
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (const char* p = TextProblem(it.key())) return p;
      if (const char* p = ValueProblem(it.value())) return p;
    }
  } else if (value.is_array()) {
    for (const nlohmann::json& inner : value)  // an array's keys are its indices
      if (const char* p = ValueProblem(inner)) return p;
  }
  return nullptr;
}

}  // namespace

std::string ShownId(const std::string& id) {
  if (id.empty()) return "(no id)";
  if (id.size() <= 64) return id;
  return std::string(Utf8Prefix(id, 64)) + "... (" + std::to_string(id.size()) + " bytes)";
}

Status CheckWrittenId(const std::string& id) {
  NativeRecord record;
  record.id = id;
  return CheckNativeRecord(record);
}

Status CheckNativeRecord(const NativeRecord& record) {
  if (!record.invalid.empty()) return Status(StatusCode::kInvalidArgument, record.invalid);
  const std::string& id = record.id;
  if (id.empty()) return Status(StatusCode::kInvalidArgument, "its id is empty");
  if (id.size() > kMaxNativeIdBytes)
    return Status(StatusCode::kInvalidArgument,
                  "its id is " + std::to_string(id.size()) + " bytes long (at most " +
                      std::to_string(kMaxNativeIdBytes) + ")");
  for (char c : id)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F)
      return Status(StatusCode::kInvalidArgument, "its id holds a control character");
  if (!IsValidUtf8(id)) return Status(StatusCode::kInvalidArgument, "its id is not UTF-8");
  if (const char* p = TextProblem(record.key))
    return Status(StatusCode::kInvalidArgument, std::string("its crmbridge key holds ") + p);
  if (record.fields.is_object()) {
    for (auto it = record.fields.begin(); it != record.fields.end(); ++it) {
      if (const char* p = TextProblem(it.key()))
        return Status(StatusCode::kInvalidArgument, std::string("a field name holds ") + p);
      if (const char* p = ValueProblem(it.value()))
        return Status(StatusCode::kInvalidArgument, "field '" + it.key() + "' holds " + p);
    }
  }
  return Status::Ok();
}

}  // namespace crmbridge
