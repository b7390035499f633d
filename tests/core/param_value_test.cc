// The one rule a declared parameter's value is checked by, for mapping params and system options.
#include "src/core/param_value.h"

#include <gtest/gtest.h>

namespace crmbridge {
namespace {

TEST(ParamValueTest, AValueOfItsTypeAndOfItsValuesPasses) {
  EXPECT_EQ(ParamValueProblem("boolean", {}, "true"), "");
  EXPECT_EQ(ParamValueProblem("number", {}, "300000"), "");
  EXPECT_EQ(ParamValueProblem("number", {"1", "2", "3"}, "2"), "");
  EXPECT_EQ(ParamValueProblem("name", {}, "hs_pipeline"), "");
  EXPECT_EQ(ParamValueProblem("string", {}, "Order/faktura"), "");
}

TEST(ParamValueTest, EachProblemSaysWhatTheValueMustBe) {
  EXPECT_EQ(ParamValueProblem("boolean", {}, "yes"), "must be true or false, not 'yes'");
  EXPECT_EQ(ParamValueProblem("number", {}, "-5"),
            "must be a whole number of at most 15 digits, not '-5'");
  EXPECT_EQ(ParamValueProblem("number", {}, "1234567890123456"),
            "must be a whole number of at most 15 digits, not '1234567890123456'");
  EXPECT_EQ(ParamValueProblem("string", {"us", "eu"}, "asia"), "must be one of eu, us, not 'asia'");
  EXPECT_EQ(ParamValueProblem("number", {"1", "2", "3"}, "7"), "must be one of 1, 2, 3, not '7'");
  EXPECT_EQ(ParamValueProblem("name", {}, "a b"),
            "must be a name of letters, digits and _ (starting with a letter or _), not 'a b'");
}

}  // namespace
}  // namespace crmbridge
