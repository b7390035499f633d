// Reading the project's own sources in tests: the code of a C++ file without its comments.
#pragma once

#include <string>

namespace crmbridge::testing {

// `source` with its comments blanked out (newlines kept, so lines still count). String and
// character literals are kept (a name in a literal is often what a test looks for), and a "//"
// inside one starts no comment; raw strings and digit separators are understood.
std::string WithoutComments(const std::string& source);

}  // namespace crmbridge::testing
