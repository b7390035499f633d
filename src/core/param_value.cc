#include "src/core/param_value.h"

#include <algorithm>
#include <set>

#include "src/core/url.h"
#include "src/core/utf8.h"

namespace crmbridge {

std::string ParamValueProblem(std::string_view type, const std::vector<std::string>& values,
                              std::string_view value) {
  const std::string shown = "'" + PrintableText(value) + "'";
  if (type == "boolean" && value != "true" && value != "false")
    return "must be true or false, not " + shown;
  // 15 digits: any count of milliseconds or items a connector takes, with room to add.
  if (type == "number" &&
      (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos ||
       value.size() > 15))
    return "must be a whole number of at most 15 digits, not " + shown;
  if (!values.empty() && std::find(values.begin(), values.end(), value) == values.end()) {
    std::string list;
    for (const std::string& v : std::set<std::string>(values.begin(), values.end()))
      list += (list.empty() ? "" : ", ") + v;
    return "must be one of " + list + ", not " + shown;
  }
  if (type == "name" && !IsPlainName(value))
    return "must be a name of letters, digits and _ (starting with a letter or _), not " + shown;
  return "";
}

}  // namespace crmbridge
