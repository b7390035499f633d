#include "mocks/dynamics365/dynamics365_schema.h"

#include <algorithm>
#include <cstdio>
#include <cctype>
#include <cmath>
#include <ctime>
#include <regex>

namespace crmbridge::mocks::d365 {

const char* EdmTypeName(ColumnType type) {
  switch (type) {
    case ColumnType::kString: return "Edm.String";
    case ColumnType::kInt: return "Edm.Int32";
    case ColumnType::kDecimal: return "Edm.Decimal";
    case ColumnType::kBool: return "Edm.Boolean";
    case ColumnType::kDateTime: return "Edm.DateTimeOffset";
    case ColumnType::kGuid: return "Edm.Guid";
    case ColumnType::kLookup: return "Edm.Guid";
  }
  return "Edm.Untyped";
}

std::string Column::property() const {
  return type == ColumnType::kLookup ? "_" + name + "_value" : name;
}

const Column* TableSchema::FindByProperty(const std::string& property) const {
  for (const Column& c : columns) {
    if (c.property() == property) return &c;
  }
  return nullptr;
}

const Column* TableSchema::FindByName(const std::string& name) const {
  for (const Column& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

bool TableSchema::FindNavigation(const std::string& nav, const Column** column,
                                 const LookupTarget** target) const {
  for (const Column& c : columns) {
    for (const LookupTarget& t : c.targets) {
      if (t.nav == nav) {
        *column = &c;
        *target = &t;
        return true;
      }
    }
  }
  return false;
}

bool TableSchema::IsAlternateKey(std::vector<std::string> names) const {
  std::sort(names.begin(), names.end());
  for (std::vector<std::string> key : alternate_keys) {
    std::sort(key.begin(), key.end());
    if (key == names) return true;
  }
  return false;
}

namespace {

Column Col(std::string name, ColumnType type, int max_length = 0) {
  Column c;
  c.name = std::move(name);
  c.type = type;
  c.max_length = max_length;
  return c;
}

Column ReadOnly(std::string name, ColumnType type) {
  Column c = Col(std::move(name), type);
  c.read_only = true;
  return c;
}

Column WithDefault(std::string name, int value) {
  Column c = Col(std::move(name), ColumnType::kInt);
  c.default_value = value;
  return c;
}

// `merged` (false until the Merge action sets it) and `masterid`, the row it was merged into.
Column MergeFlag() {
  Column c = ReadOnly("merged", ColumnType::kBool);
  c.default_value = false;
  return c;
}

Column Lookup(std::string name, std::vector<LookupTarget> targets) {
  Column c = Col(std::move(name), ColumnType::kLookup);
  c.targets = std::move(targets);
  return c;
}

Column MasterOf(const std::string& set, const std::string& logical_name) {
  Column c = Lookup("masterid", {{set, logical_name, "masterid"}});
  c.read_only = true;
  return c;
}

// Every Dataverse row carries these (reference.md §0: createdon/modifiedon are ISO UTC without
// milliseconds; versionnumber is the row version the etag is made of).
void AddSystemColumns(TableSchema* t) {
  t->columns.push_back(ReadOnly("createdon", ColumnType::kDateTime));
  t->columns.push_back(ReadOnly("modifiedon", ColumnType::kDateTime));
  t->columns.push_back(ReadOnly("versionnumber", ColumnType::kInt));
}

std::vector<TableSchema> BuildTables() {
  std::vector<TableSchema> tables;

  // String lengths are the out-of-the-box maxima where the refs or the platform fix them
  // (task subject 200 and note subject 500 are in reference.md §6); custom columns get 100.
  TableSchema account;
  account.set = "accounts";
  account.logical_name = "account";
  account.primary_key = "accountid";
  account.columns = {
      ReadOnly("accountid", ColumnType::kGuid),
      Col("name", ColumnType::kString, 160),
      Col("accountnumber", ColumnType::kString, 20),
      Col("crmb_externalid", ColumnType::kString, 100),
      Col("crmb_activateportalaccess", ColumnType::kBool),
      Col("crmb_managedproperties", ColumnType::kString, 2000),
      Col("websiteurl", ColumnType::kString, 200),
      Col("address1_city", ColumnType::kString, 80),
      Col("telephone1", ColumnType::kString, 50),
      Col("customertypecode", ColumnType::kInt),
      // The owning user (a team may own rows too; this org assigns users); unbound on create,
      // the calling user owns the row.
      Lookup("ownerid", {{"systemusers", "systemuser", "ownerid"}}),
      WithDefault("statecode", 0),   // 0 Active
      WithDefault("statuscode", 1),  // 1 Active
      // Set by the Merge action alone: the row was merged into its master.
      MergeFlag(),
      MasterOf("accounts", "account"),
  };
  account.alternate_keys = {{"crmb_externalid"}, {"accountnumber"}};
  AddSystemColumns(&account);
  tables.push_back(std::move(account));

  TableSchema contact;
  contact.set = "contacts";
  contact.logical_name = "contact";
  contact.primary_key = "contactid";
  contact.columns = {
      ReadOnly("contactid", ColumnType::kGuid),
      Col("firstname", ColumnType::kString, 50),
      Col("lastname", ColumnType::kString, 50),
      ReadOnly("fullname", ColumnType::kString),  // computed from first and last name
      Col("emailaddress1", ColumnType::kString, 100),
      Col("crmb_externalid", ColumnType::kString, 100),
      Col("crmb_portalaccess", ColumnType::kBool),
      Col("crmb_portalemail", ColumnType::kString, 100),
      Col("crmb_mainproperty", ColumnType::kString, 100),
      Col("crmb_portaluserid", ColumnType::kString, 100),
      Col("crmb_portalstate", ColumnType::kString, 20),
      Lookup("parentcustomerid", {{"accounts", "account", "parentcustomerid_account"},
                                  {"contacts", "contact", "parentcustomerid_contact"}}),
      // The owning user (a team may own rows too; this org assigns users); unbound on create,
      // the calling user owns the row.
      Lookup("ownerid", {{"systemusers", "systemuser", "ownerid"}}),
      WithDefault("statecode", 0),
      WithDefault("statuscode", 1),
      MergeFlag(),
      MasterOf("contacts", "contact"),
  };
  contact.alternate_keys = {{"crmb_externalid"}};
  AddSystemColumns(&contact);
  tables.push_back(std::move(contact));

  TableSchema opportunity;
  opportunity.set = "opportunities";
  opportunity.logical_name = "opportunity";
  opportunity.primary_key = "opportunityid";
  opportunity.columns = {
      ReadOnly("opportunityid", ColumnType::kGuid),
      Col("name", ColumnType::kString, 300),
      Col("description", ColumnType::kString, 2000),
      Col("crmb_externalid", ColumnType::kString, 100),
      Col("crmb_onboardingstage", ColumnType::kInt),
      Col("crmb_priority", ColumnType::kInt),
      Lookup("parentaccountid", {{"accounts", "account", "parentaccountid"}}),
      // The owning user (a team may own rows too; this org assigns users); unbound on create,
      // the calling user owns the row.
      Lookup("ownerid", {{"systemusers", "systemuser", "ownerid"}}),
      Col("estimatedclosedate", ColumnType::kDateTime),
      WithDefault("statecode", 0),   // 0 Open
      WithDefault("statuscode", 1),  // 1 In Progress
  };
  opportunity.alternate_keys = {{"crmb_externalid"}};
  AddSystemColumns(&opportunity);
  tables.push_back(std::move(opportunity));

  TableSchema annotation;
  annotation.set = "annotations";
  annotation.logical_name = "annotation";
  annotation.primary_key = "annotationid";
  annotation.columns = {
      ReadOnly("annotationid", ColumnType::kGuid),
      Col("subject", ColumnType::kString, 500),
      Col("notetext", ColumnType::kString, 100000),
      Lookup("objectid", {{"accounts", "account", "objectid_account"},
                          {"contacts", "contact", "objectid_contact"},
                          {"opportunities", "opportunity", "objectid_opportunity"}}),
      // The regarding row's logical name; derived from the objectid bind.
      Col("objecttypecode", ColumnType::kString, 100),
      Col("crmb_externalid", ColumnType::kString, 100),
  };
  annotation.alternate_keys = {{"crmb_externalid"}};
  AddSystemColumns(&annotation);
  tables.push_back(std::move(annotation));

  TableSchema task;
  task.set = "tasks";
  task.logical_name = "task";
  task.primary_key = "activityid";
  task.columns = {
      ReadOnly("activityid", ColumnType::kGuid),
      Col("subject", ColumnType::kString, 200),
      Col("description", ColumnType::kString, 2000),
      Col("scheduledend", ColumnType::kDateTime),
      Col("crmb_externalid", ColumnType::kString, 100),
      Lookup("regardingobjectid",
             {{"accounts", "account", "regardingobjectid_account_task"},
              {"contacts", "contact", "regardingobjectid_contact_task"},
              {"opportunities", "opportunity", "regardingobjectid_opportunity_task"}}),
      WithDefault("statecode", 0),   // 0 Open
      WithDefault("statuscode", 2),  // 2 Not Started
  };
  task.alternate_keys = {{"crmb_externalid"}};
  AddSystemColumns(&task);
  tables.push_back(std::move(task));

  // The org's users: who can own rows, matched by internalemailaddress. A disabled user (one who
  // left) keeps the rows it owns and can be assigned no new ones.
  TableSchema user;
  user.set = "systemusers";
  user.logical_name = "systemuser";
  user.primary_key = "systemuserid";
  user.columns = {
      ReadOnly("systemuserid", ColumnType::kGuid),
      Col("fullname", ColumnType::kString, 200),
      Col("internalemailaddress", ColumnType::kString, 100),
      Col("isdisabled", ColumnType::kBool),
  };
  AddSystemColumns(&user);
  tables.push_back(std::move(user));

  // The audit history: one row per audited create, update or delete, written by the platform
  // (read-only through the API). objectid may point at a row of any audited table, so it has no
  // navigation property here; objecttypecode names the table. No versionnumber: audit rows never
  // change, and carry no etag.
  TableSchema audit;
  audit.set = "audits";
  audit.logical_name = "audit";
  audit.primary_key = "auditid";
  Column object = Lookup("objectid", {});
  object.read_only = true;
  Column user_id = Lookup("userid", {{"systemusers", "systemuser", "userid"}});
  user_id.read_only = true;
  audit.columns = {
      ReadOnly("auditid", ColumnType::kGuid),
      ReadOnly("createdon", ColumnType::kDateTime),
      ReadOnly("action", ColumnType::kInt),     // 1 Create, 2 Update, 3 Delete
      ReadOnly("operation", ColumnType::kInt),  // the same numbers
      ReadOnly("objecttypecode", ColumnType::kString),
      std::move(object),
      std::move(user_id),
  };
  tables.push_back(std::move(audit));

  return tables;
}

}  // namespace

const std::vector<TableSchema>& DefaultTables() {
  static const std::vector<TableSchema> tables = BuildTables();
  return tables;
}

const TableSchema& OrganizationTable() {
  static const TableSchema organization = [] {
    TableSchema t;
    t.set = "organizations";
    t.logical_name = "organization";
    t.primary_key = "organizationid";
    t.columns = {ReadOnly("organizationid", ColumnType::kGuid),
                 ReadOnly("isauditenabled", ColumnType::kBool)};
    return t;
  }();
  return organization;
}

std::string FormatGuid(uint64_t a, uint64_t b) {
  a = (a & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xFFFF), static_cast<unsigned>(a & 0xFFFF),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFULL));
  return buf;
}

bool IsGuid(const std::string& text) {
  static const std::regex kGuid(
      "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
  return std::regex_match(text, kGuid);
}

std::string ToLowerAscii(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::optional<int64_t> ParseIsoDateTime(const std::string& text) {
  static const std::regex kIso(
      R"((\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)");
  std::smatch m;
  if (!std::regex_match(text, m, kIso)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  if (m[4].matched) {
    tm.tm_hour = std::stoi(m[4]);
    tm.tm_min = std::stoi(m[5]);
    tm.tm_sec = m[6].matched ? std::stoi(m[6]) : 0;
  }
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  int64_t seconds = static_cast<int64_t>(timegm(&tm));
  if (m[7].matched && m[7].str() != "Z") {
    const std::string zone = m[7].str();
    int offset = std::stoi(zone.substr(1, 2)) * 3600 + std::stoi(zone.substr(4, 2)) * 60;
    seconds -= zone[0] == '+' ? offset : -offset;
  }
  return seconds;
}

std::string FormatIsoDateTime(int64_t epoch_seconds) {
  std::time_t t = static_cast<std::time_t>(epoch_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int CompareValues(const nlohmann::json& a, const nlohmann::json& b, ColumnType type) {
  const bool a_null = a.is_null();
  const bool b_null = b.is_null();
  if (a_null || b_null) return a_null == b_null ? 0 : (a_null ? -1 : 1);
  switch (type) {
    case ColumnType::kInt:
    case ColumnType::kDecimal: {
      double x = a.is_number() ? a.get<double>() : 0;
      double y = b.is_number() ? b.get<double>() : 0;
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    case ColumnType::kBool: {
      int x = a.is_boolean() && a.get<bool>() ? 1 : 0;
      int y = b.is_boolean() && b.get<bool>() ? 1 : 0;
      return x - y;
    }
    case ColumnType::kDateTime: {
      // Stored and literal datetimes are both normalised to FormatIsoDateTime's fixed-width form,
      // but compare as instants so a value with another form still orders correctly.
      auto x = a.is_string() ? ParseIsoDateTime(a.get<std::string>()) : std::nullopt;
      auto y = b.is_string() ? ParseIsoDateTime(b.get<std::string>()) : std::nullopt;
      int64_t xs = x.value_or(0), ys = y.value_or(0);
      return xs < ys ? -1 : (xs > ys ? 1 : 0);
    }
    case ColumnType::kString:
    case ColumnType::kGuid:
    case ColumnType::kLookup: {
      std::string x = ToLowerAscii(a.is_string() ? a.get<std::string>() : a.dump());
      std::string y = ToLowerAscii(b.is_string() ? b.get<std::string>() : b.dump());
      int c = x.compare(y);
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
  }
  return 0;
}

}  // namespace crmbridge::mocks::d365
