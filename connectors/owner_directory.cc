#include "connectors/owner_directory.h"

#include <spdlog/spdlog.h>

#include "src/core/utf8.h"

namespace crmbridge {

void OwnerDirectory::Clear(int64_t now_ms) {
  email_by_id_.clear();
  id_by_email_.clear();
  loaded_ms_ = now_ms;
}

void OwnerDirectory::Add(const std::string& id, const std::string& email, bool may_own) {
  if (id.empty() || email.empty()) return;
  email_by_id_[id] = email;
  if (may_own) id_by_email_[LowerAscii(email)] = id;
}

void OwnerDirectory::IdsToEmails(const std::string& field, std::vector<NativeRecord>* records) const {
  for (NativeRecord& rec : *records) {
    auto v = rec.fields.find(field);
    if (v == rec.fields.end() || !v->is_string()) continue;
    auto email = email_by_id_.find(v->get<std::string>());
    if (email != email_by_id_.end()) *v = LowerAscii(email->second);
  }
}

std::optional<std::string> OwnerDirectory::IdFor(const std::string& email,
                                                 const std::string& default_email) const {
  auto id = id_by_email_.find(LowerAscii(email));
  if (id != id_by_email_.end()) return id->second;
  auto fallback = default_email.empty() ? id_by_email_.end() : id_by_email_.find(LowerAscii(default_email));
  const bool first = reported_.insert(email).second;
  if (fallback != id_by_email_.end()) {
    if (first)
      spdlog::warn("{}: {} is no {}; its records get the default owner {}", system_, email, noun_,
                   default_email);
    return fallback->second;
  }
  if (first)
    spdlog::warn("{}: {} is no {}{}; {}", system_, email, noun_,
                 default_email.empty() ? " and options.default_owner is not set"
                                       : " and neither is the default owner " + default_email,
                 kept_);
  return std::nullopt;
}

}  // namespace crmbridge
