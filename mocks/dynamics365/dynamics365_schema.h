// The table schemas the Dynamics 365 mock serves, and the value rules shared by its query engine
// and its write path.
//
// Each entity set declares its columns once (name -> type), its primary key and its alternate
// keys, the way Dataverse's EntityMetadata does. The mock rejects columns a table does not declare
// with Dataverse's own error, so a connector that sends a misspelt column fails here as it would
// against the real service (shared/refs/dynamics365/reference.md §5, §10).
//
// Lookup columns have two faces (reference.md §6): they read as the lookup property
// "_<name>_value" (a GUID) and are written through a navigation property "<nav>@odata.bind".
// A polymorphic lookup (contact.parentcustomerid -> account | contact) has one navigation property
// per target table, e.g. "parentcustomerid_account" and "parentcustomerid_contact".
//
// Everything here is immutable after construction and safe to share between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace crmbridge::mocks::d365 {

enum class ColumnType { kString, kInt, kDecimal, kBool, kDateTime, kGuid, kLookup };

// The OData type name of a column type ("Edm.String", "Edm.Int32", ...), for error messages.
const char* EdmTypeName(ColumnType type);

// One target table of a lookup column.
struct LookupTarget {
  std::string set;           // "accounts"
  std::string logical_name;  // "account"
  std::string nav;           // navigation property used in "<nav>@odata.bind", case-sensitive
};

struct Column {
  std::string name;  // logical name ("name"; for a lookup the lookup's name, "parentaccountid")
  ColumnType type = ColumnType::kString;
  // Set by the platform (createdon, versionnumber, fullname, objecttypecode): writes are ignored.
  bool read_only = false;
  // Maximum length of a string column, 0 = unlimited.
  int max_length = 0;
  // Value a create gets when the body does not set the column (null when unset).
  nlohmann::json default_value;
  // Lookup columns only: the tables it may point at (more than one = polymorphic).
  std::vector<LookupTarget> targets;

  // The name the column reads as: `name`, or "_<name>_value" for a lookup.
  std::string property() const;
};

struct TableSchema {
  std::string set;           // entity set name, "accounts"
  std::string logical_name;  // table logical name, "account"
  std::string primary_key;   // "accountid"
  std::vector<Column> columns;  // in read order; the primary key comes first
  // Each alternate key is a set of column names (one entry for a single-column key).
  std::vector<std::vector<std::string>> alternate_keys;

  // "Microsoft.Dynamics.CRM.account", as Dataverse names the type in error messages.
  std::string qualified_type() const { return "Microsoft.Dynamics.CRM." + logical_name; }

  // The column that reads as `property` ("name", "_parentaccountid_value"), or nullptr.
  const Column* FindByProperty(const std::string& property) const;
  // The column with logical name `name` ("parentaccountid" for a lookup), or nullptr.
  const Column* FindByName(const std::string& name) const;
  // Resolves a navigation property name ("parentcustomerid_account") to its lookup column and
  // target. Case-sensitive, as navigation property names are. False when there is none.
  bool FindNavigation(const std::string& nav, const Column** column,
                      const LookupTarget** target) const;
  // True when `names` (any order) is exactly one declared alternate key.
  bool IsAlternateKey(std::vector<std::string> names) const;
};

// The entity sets the mock serves: accounts, contacts, opportunities, annotations, tasks,
// systemusers, and audits (the audit history, read-only).
const std::vector<TableSchema>& DefaultTables();
// The organization set: one row, the organisation's id and its auditing switch (isauditenabled).
// Served read-only from the mock's settings, not stored as a table.
const TableSchema& OrganizationTable();

// --- value rules -----------------------------------------------------------------------------

// True for a hyphenated 8-4-4-4-12 hex GUID (any case).
bool IsGuid(const std::string& text);
// A version-4-shaped GUID from 128 bits.
std::string FormatGuid(uint64_t a, uint64_t b);
// Lowercase ASCII copy.
std::string ToLowerAscii(std::string text);

// Parses an ISO-8601 date or date-time ("2024-01-02", "2024-01-02T03:04:05Z",
// "2024-01-02T03:04:05.123+02:00"; no zone = UTC) into seconds since the epoch.
std::optional<int64_t> ParseIsoDateTime(const std::string& text);
// "2024-01-02T03:04:05Z": Dataverse's wire form, UTC without milliseconds (reference.md §0).
std::string FormatIsoDateTime(int64_t epoch_seconds);

// Three-way comparison of two stored values of one column type; null sorts first (as SQL Server
// sorts NULL first ascending), strings compare case-insensitively (Dataverse's default
// collation, reference.md §3), GUIDs case-insensitively.
int CompareValues(const nlohmann::json& a, const nlohmann::json& b, ColumnType type);

}  // namespace crmbridge::mocks::d365
