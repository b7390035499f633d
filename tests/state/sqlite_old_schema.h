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

// Settled digests back to their 16 hex digits, as before schema 20, and the version back to 19.
inline std::string BackToSchema19Sql() {
  return "UPDATE links SET settled = CASE WHEN settled IS 1 THEN "
         "lower(hex(substr(last_read_hash, 1, 8))) ELSE lower(hex(settled)) END "
         "WHERE typeof(settled) IN ('blob', 'integer'); PRAGMA user_version = 19;";
}

// Snapshots as schema 18 wrote them: fields and seen values as objects keyed by names, not
// arrays of [number, value, ...]; change times "=" as the one time they stand for. And the
// version back to 18.
inline std::string BackToSchema18Sql() {
  return BackToSchema19Sql() + R"sql(
UPDATE snapshots SET fields = (
  SELECT json_group_object(n.name, json(snapshots.fields -> ('$[' || (e.key + 1) || ']')))
  FROM json_each(snapshots.fields) AS e JOIN names AS n ON n.id = e.value
  WHERE e.key % 2 = 0)
WHERE json_type(fields) = 'array';
UPDATE snapshots SET seen = (
  SELECT json_group_object(n.name, json(CASE
      WHEN json_type(snapshots.seen, '$[' || (e.key + 1) || ']') = 'array' THEN (
        SELECT json_group_object(fn.name,
                 json(snapshots.seen -> ('$[' || (e.key + 1) || '][' || (f.key + 1) || ']')))
        FROM json_each(snapshots.seen, '$[' || (e.key + 1) || ']') AS f
        JOIN names AS fn ON fn.id = f.value WHERE f.key % 2 = 0)
      ELSE snapshots.seen -> ('$[' || (e.key + 1) || ']') END))
  FROM json_each(snapshots.seen) AS e JOIN names AS n ON n.id = e.value
  WHERE e.key % 2 = 0)
WHERE json_type(seen) = 'array';
UPDATE snapshots SET changed_ms = CAST(updated_ms AS TEXT) WHERE changed_ms = '=';
PRAGMA user_version = 18;
)sql";
}

// Entity and system names back in the rows of links, snapshots and stage history, as text, as
// before schema 18 (the columns keep their declared type, which holds a name as text all the
// same), without the `names` table, and the version back to 17.
inline std::string BackToSchema17Sql() {
  auto name = [](const std::string& table, const std::string& column) {
    return column + " = (SELECT name FROM names WHERE id = " + table + "." + column + ")";
  };
  return BackToSchema18Sql() + "UPDATE links SET " + name("links", "entity") + ", " + name("links", "system") + "; " +
         "UPDATE snapshots SET " + name("snapshots", "entity") + "; " +
         "UPDATE stage_history SET " + name("stage_history", "entity") + ", " +
         name("stage_history", "system") + "; DROP TABLE names; PRAGMA user_version = 17;";
}

// Content hashes back to 256 bits, as before schema 17: each 16-byte link hash and each 32-digit
// payload hash gets a second half of random bytes, so its first half is what HashJson gives now
// (as the first half of a SHA-256 stored then was), and the version back to 16.
inline std::string BackToSchema16Sql() {
  std::string sql = BackToSchema17Sql();
  for (const char* column : {"last_read_hash", "last_written_hash"})
    sql += std::string("UPDATE links SET ") + column + " = CAST(" + column +
           " || randomblob(16) AS BLOB) WHERE typeof(" + column + ") = 'blob' AND length(" + column +
           ") = 16; ";
  sql +=
      "UPDATE outbox SET payload_hash = payload_hash || lower(hex(randomblob(16))) "
      "WHERE length(payload_hash) = 32; "
      "UPDATE dead_letters SET item = json_set(item, '$.payload_hash', "
      "json_extract(item, '$.payload_hash') || lower(hex(randomblob(16)))) "
      "WHERE length(json_extract(item, '$.payload_hash')) = 32; ";
  return sql + "PRAGMA user_version = 16;";
}

// Every id column back to text and the version back to 15: the file as schema 15 left it.
inline std::string BackToSchema15Sql() {
  std::string sql = BackToSchema16Sql() + "UPDATE links SET canonical_id = " + IdAsTextSql("canonical_id") +
                    ", native_id = " + IdAsTextSql("native_id") + "; ";
  for (const char* table :
       {"snapshots", "stage_history", "outbox", "outbox_latest", "dead_letters", "match_keys"})
    sql += std::string("UPDATE ") + table + " SET canonical_id = " + IdAsTextSql("canonical_id") +
           "; ";
  return sql + "PRAGMA user_version = 15;";
}

}  // namespace store_test
}  // namespace crmbridge
