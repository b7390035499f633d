// What is wrong with a value given for a declared parameter: a mapping's `params` and a system's
// `options` in crmbridge.yaml are both declared by their connector with a type and, for some, the
// values they take (ParamSpec, connectors/connector.h), and are checked by this one rule.
#ifndef CRMBRIDGE_SRC_CORE_PARAM_VALUE_H_
#define CRMBRIDGE_SRC_CORE_PARAM_VALUE_H_

#include <string>
#include <string_view>
#include <vector>

namespace crmbridge {

// "" when `value` is one of `type` ("string", "boolean", "number" or "name") and, when `values`
// is not empty, one of them; else what it must be, as "must be true or false, not 'yes'" (the
// value shown printable). An empty value is the caller's to judge: it means "not given" to the
// connectors.
std::string ParamValueProblem(std::string_view type, const std::vector<std::string>& values,
                              std::string_view value);

}  // namespace crmbridge

#endif  // CRMBRIDGE_SRC_CORE_PARAM_VALUE_H_
