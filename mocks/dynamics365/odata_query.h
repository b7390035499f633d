// OData v4 query options as the Dynamics 365 mock understands them: $filter and $orderby, parsed
// once against a table schema and then applied to rows (JSON objects keyed by the names columns
// read as: "name", "_parentaccountid_value", ...).
//
// $filter grammar (shared/refs/dynamics365/reference.md §3, OData v4 URL conventions):
//   expr    := and ('or' and)*
//   and     := unary ('and' unary)*
//   unary   := 'not' unary | '(' expr ')' | func | operand cmp operand
//   func    := ('contains' | 'startswith' | 'endswith') '(' property ',' string ')'
//   cmp     := eq | ne | gt | ge | lt | le
//   operand := property | 'string' (with '' as the quote escape) | number | true | false | null
//            | unquoted ISO date or date-time (2024-01-01T00:00:00Z) | bare GUID
// String comparisons and the string functions are case-insensitive, as in Dataverse. A lookup is
// filtered through its lookup property (_parentcustomerid_value eq <guid>); a GUID may also be
// quoted. `x ne v` is true when x is null (OData's null rule); gt/ge/lt/le are false on null.
//
// Errors carry Dataverse's OData messages ("Could not find a property named 'x' on type
// 'Microsoft.Dynamics.CRM.account'.", "There is an unterminated literal at position N in '...'.",
// "A binary operator with incompatible types was detected. ...") as kInvalidArgument.
//
// Parsed queries are immutable and safe to use from several threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mocks/dynamics365/dynamics365_schema.h"
#include "src/core/status.h"

namespace crmbridge::mocks::d365 {

struct FilterNode;

class Filter {
 public:
  Filter();
  ~Filter();
  Filter(Filter&&) noexcept;
  Filter& operator=(Filter&&) noexcept;

  // Parses `text` against `schema`. kInvalidArgument on a syntax error, an unknown column, a
  // function the mock does not implement, or operand types that cannot be compared.
  static Result<Filter> Parse(const std::string& text, const TableSchema& schema);

  // True when `row` satisfies the filter. An empty (default-constructed) filter matches all.
  bool Matches(const nlohmann::json& row) const;

 private:
  std::unique_ptr<FilterNode> root_;
};

struct OrderKey {
  std::string property;
  ColumnType type = ColumnType::kString;
  bool descending = false;
};

// Parses "$orderby=modifiedon desc,name" into keys. kInvalidArgument on an unknown column or a
// direction other than asc/desc.
Result<std::vector<OrderKey>> ParseOrderBy(const std::string& text, const TableSchema& schema);

// Parses "$select=name,_parentaccountid_value". kInvalidArgument on an unknown column.
Result<std::vector<std::string>> ParseSelect(const std::string& text, const TableSchema& schema);

// Three-way comparison of two rows by `keys` and then by the primary key ascending, the order
// the mock pages in (a total order, so keyset paging never repeats or skips a row).
int CompareRows(const nlohmann::json& a, const nlohmann::json& b, const std::vector<OrderKey>& keys,
                const std::string& primary_key);

}  // namespace crmbridge::mocks::d365
