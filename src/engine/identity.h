// Identity: which canonical record a native record read from a system is.
//
// In order: the link crmbridge keeps of (system, entity, native id); else the crmbridge key the
// record carries (the external-id property or alternate key written on create, so a create whose
// link was lost in a crash is recognised instead of duplicated); else, the first time a record is
// seen, its match key (the same email as a contact already synced from another system); else a
// new time-ordered canonical id. A record whose match key belongs to a canonical record already
// linked to another record of the same system is a duplicate there: reported, never merged.
// Lookups go through the caller's RecordView (pending changes, the loaded page, the store).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/connector.h"
#include "mappings/mapping.h"
#include "src/core/status.h"
#include "src/engine/record_view.h"
#include "state/store.h"

namespace crmbridge {

struct Identified {
  enum class Kind {
    kLinked,     // by its link
    kKeyed,      // by the crmbridge key it carries
    kMatched,    // by its match key, to a canonical record from another system
    kNew,        // seen for the first time: a new canonical id, nothing stored about it
    kDuplicate,  // its match key is another record's in the same system: not synced
  };
  Kind kind = Kind::kNew;
  std::string canonical_id;  // empty for kDuplicate
  std::string duplicate_of;  // kDuplicate: why, for the log ("has the same email=... as ...")
};

class Identity {
 public:
  Identity(const MappingPlan* plan, RecordView* view) : plan_(plan), view_(view) {}

  // `mapped`: the record as read and mapped; its match key is read from its match values
  // (MappedRecord::MatchValues), made only when a link or a carried key does not tell already.
  Result<Identified> Resolve(const SystemEntityMapping& source, const NativeRecord& record,
                             const MappedRecord& mapped);
  // Records every match key the entity's mappings declare for a canonical record's values (the
  // first record to hold a key keeps it).
  void PutMatchKeys(const std::string& entity, const std::string& canonical_id,
                    const nlohmann::json& fields, StateBatch* batch);

  // "email=anna@acme.se": the match fields' values, trimmed and case-folded; "" when any is empty.
  static std::string MatchKey(const std::vector<std::string>& fields, const nlohmann::json& values);

 private:
  const MappingPlan* plan_;
  RecordView* view_;
};

}  // namespace crmbridge
