// The people who own records in one system, by id and by email. A record's owner is read and
// written as the owner's email, so owners match across systems by email; a connector fills the
// directory from its system's list of owners (HubSpot's owners, Dynamics 365's systemusers).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "connectors/connector.h"

namespace crmbridge {

class OwnerDirectory {
 public:
  // What the system calls the people who may own new records, for messages ("active HubSpot
  // owner"), and what happens to a record written for none of them ("...keep the owner they have").
  OwnerDirectory(std::string system, std::string owner_noun, std::string left_as_is)
      : system_(std::move(system)), noun_(std::move(owner_noun)), kept_(std::move(left_as_is)) {}

  // Whether the list was read less than `max_age_ms` ago.
  bool Fresh(int64_t now_ms, int64_t max_age_ms) const {
    return loaded_ms_ >= 0 && now_ms - loaded_ms_ < max_age_ms;
  }
  // Starts a new list (an email already reported is not reported again).
  void Clear(int64_t now_ms);
  // An owner as listed; `may_own`: it may own new records (not archived, not disabled).
  void Add(const std::string& id, const std::string& email, bool may_own);

  // Each record's `field` (an owner id) as its owner's email, lower-cased (the same person however
  // a system spells it); an id no owner has stays as it is.
  void IdsToEmails(const std::string& field, std::vector<NativeRecord>* records) const;
  // The owner id to write for `email` (any case): the one who may own records with that email,
  // else `default_email`'s; nullopt when neither (the record is written without it). A fallback
  // is reported once per email.
  std::optional<std::string> IdFor(const std::string& email, const std::string& default_email) const;

 private:
  std::string system_, noun_, kept_;
  std::map<std::string, std::string> email_by_id_;     // every owner
  std::map<std::string, std::string> id_by_email_;     // lower-cased email -> id, may own
  int64_t loaded_ms_ = -1;
  mutable std::set<std::string> reported_;
};

}  // namespace crmbridge
