// For upgrade tests: SQL that turns a state file of today's schema back into what an older
// crmbridge stored, one schema step at a time, so the upgrade path is tested on real files.
#pragma once

#include <string>

namespace crmbridge {
namespace store_test {

// `column` as it was stored before schema 16: a UUID held as 16 bytes back to its 36 characters
// of lowercase text; any other value as it is.
inline std::string IdAsTextSql(const std::string& column) {
  const std::string hex = "lower(hex(" + column + "))";
  auto part = [&](int from, int length) {
    return "substr(" + hex + ", " + std::to_string(from) + ", " + std::to_string(length) + ")";
  };
  return "CASE WHEN typeof(" + column + ") = 'blob' AND length(" + column + ") = 16 THEN " +
         part(1, 8) + " || '-' || " + part(9, 4) + " || '-' || " + part(13, 4) + " || '-' || " +
         part(17, 4) + " || '-' || " + part(21, 12) + " ELSE " + column + " END";
}

// Every id column back to text and the version back to 15: the file as schema 15 left it.
inline std::string BackToSchema15Sql() {
  std::string sql = "UPDATE links SET canonical_id = " + IdAsTextSql("canonical_id") +
                    ", native_id = " + IdAsTextSql("native_id") + "; ";
  for (const char* table :
       {"snapshots", "stage_history", "outbox", "outbox_latest", "dead_letters", "match_keys"})
    sql += std::string("UPDATE ") + table + " SET canonical_id = " + IdAsTextSql("canonical_id") +
           "; ";
  return sql + "PRAGMA user_version = 15;";
}

}  // namespace store_test
}  // namespace crmbridge
