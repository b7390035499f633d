// OpenStore: the backend a store location names. No SQL here: each backend opens its own.
#include "state/postgres_store.h"
#include "state/store.h"

namespace crmbridge {

Result<std::unique_ptr<Store>> OpenStore(const std::string& location) {
  // Only the URL forms select PostgreSQL: a libpq "key=value" string could be a file's name.
  if (IsPostgresUrl(location)) return OpenPostgresStore(location);
  return OpenSqliteStore(location);
}

}  // namespace crmbridge
