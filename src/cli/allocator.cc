#include "src/cli/allocator.h"

#ifdef CRMBRIDGE_MALLOC_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace crmbridge::cli {

std::string AllocatorName() {
#ifdef CRMBRIDGE_MALLOC_JEMALLOC
  // Asked of the library loaded, not of the headers built against.
  const char* version = nullptr;
  size_t size = sizeof(version);
  if (mallctl("version", &version, &size, nullptr, 0) == 0 && version != nullptr)
    return std::string("jemalloc ") + version;
  return "jemalloc";
#else
  return "glibc malloc";
#endif
}

}  // namespace crmbridge::cli
