// The allocator a program of crmbridge was linked with (CRMBRIDGE_MALLOC in CMakeLists.txt), for
// `crmbridge --version` and the benchmarks' figures. allocator.cc is compiled into each program
// that links the crmbridge_malloc target, so it sees that program's choice.
#pragma once

#include <string>

namespace crmbridge::cli {

// "jemalloc 5.3.0-…" as the library itself reports its version, or "glibc malloc".
std::string AllocatorName();

}  // namespace crmbridge::cli
