#include "connectors/dynamics365/dynamics365_codec.h"

#include <cctype>

#include "src/core/time_util.h"

namespace crmbridge::dynamics365 {

using nlohmann::json;

std::string PrimaryKeyOf(const std::string& set) {
  if (set == "tasks" || set == "phonecalls" || set == "emails" || set == "activitypointers" ||
      set == "appointments")
    return "activityid";
  if (set == "opportunities") return "opportunityid";
  // Plural entity set -> logical name + "id" (accounts -> accountid, annotations -> annotationid).
  std::string logical = set;
  if (logical.size() > 3 && logical.compare(logical.size() - 3, 3, "ies") == 0)
    logical = logical.substr(0, logical.size() - 3) + "y";
  else if (!logical.empty() && logical.back() == 's')
    logical.pop_back();
  return logical + "id";
}

int64_t ParseDataverseTime(const std::string& text) { return ParseIsoUtcMillis(text).value_or(0); }

Result<NativeRecord> RecordFromRow(const json& row, const std::string& primary_key,
                                   const std::string& key_column) {
  if (!row.is_object())
    return Status(StatusCode::kInvalidArgument, "a Dataverse row that is not an object");
  NativeRecord r;
  const std::string context = row.value("@odata.context", std::string());
  if (context.size() >= 15 && context.compare(context.size() - 15, 15, "/$deletedEntity") == 0) {
    r.deleted = true;
    r.id = row.value("id", std::string());
    if (r.id.empty()) return Status(StatusCode::kInvalidArgument, "a deleted entry without an id");
    return r;
  }
  auto pk = row.find(primary_key);
  if (pk == row.end() || !pk->is_string())
    return Status(StatusCode::kInvalidArgument, "a row without its primary key " + primary_key);
  r.id = pk->get<std::string>();
  for (const auto& [name, value] : row.items()) {
    if (name.find('@') != std::string::npos) continue;  // annotations, e.g. @odata.etag
    r.fields[name] = value;
  }
  if (row.contains("modifiedon") && row["modifiedon"].is_string())
    r.modified_ms = ParseDataverseTime(row["modifiedon"].get<std::string>());
  if (!key_column.empty() && row.contains(key_column) && row[key_column].is_string())
    r.key = row[key_column].get<std::string>();
  return r;
}

std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '\'') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string AlternateKeySegment(const std::string& set, const std::string& column,
                                const std::string& value) {
  std::string quoted;
  for (char c : value) {
    quoted.push_back(c);
    if (c == '\'') quoted.push_back('\'');
  }
  return set + "(" + column + "='" + PercentEncode(quoted) + "')";
}

}  // namespace crmbridge::dynamics365
