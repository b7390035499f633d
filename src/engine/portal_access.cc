#include "src/engine/portal_access.h"

#include <set>

#include <spdlog/spdlog.h>

#include "src/engine/portal_rules.h"

namespace crmbridge {

using nlohmann::json;

Status PortalAccess::AfterReads() {
  if (!enabled_) return Status::Ok();
  const std::optional<PortalAccessFlow>& flow = plan_->portal_access();
  const SystemEntityMapping* users = plan_->Find(flow->system, kPortalUserEntity);
  const SystemEntityMapping* grants = plan_->Find(flow->system, kPortalAccessEntity);
  const CanonicalEntity* contact_entity = plan_->FindEntity(flow->contact);
  if (users == nullptr || grants == nullptr || contact_entity == nullptr) return Status::Ok();
  const CanonicalField* company_ref = contact_entity->Find(flow->company);
  const std::string company_entity = company_ref ? company_ref->ref_entity : "";
  Store* store = store_;
  // Every contact, a page at a time: memory holds one page, whatever the number of contacts.
  constexpr int kContactsPerPage = 1000;
  auto text = [](const json& fields, const std::string& name) {
    auto it = fields.find(name);
    return it != fields.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  int64_t revokes = 0, grants_planned = 0;
  std::string after;
  while (true) {
    auto contacts = store->ListSnapshotsAfter(flow->contact, after, kContactsPerPage);
    if (!contacts.ok()) return contacts.status();
    if (contacts->empty()) break;
    after = contacts->back().canonical_id;
    // The page's portal users (what was last planned for each contact), in one call.
    std::vector<std::string> page_ids;
    page_ids.reserve(contacts->size());
    for (const Snapshot& c : *contacts) page_ids.push_back(c.canonical_id);
    auto planned = store->LoadRecords(kPortalUserEntity, flow->system, {}, page_ids);
    if (!planned.ok()) return planned.status();
    // And their companies.
    std::set<std::string> company_ids;
    for (const Snapshot& c : *contacts)
      if (std::string id = text(c.fields, flow->company); !id.empty()) company_ids.insert(id);
    auto companies = store->LoadRecords(
        company_entity, flow->system, {},
        std::vector<std::string>(company_ids.begin(), company_ids.end()));
    if (!companies.ok()) return companies.status();
    StateBatch batch;
    for (const Snapshot& c : *contacts) {
      const std::string company = text(c.fields, flow->company);
      json company_fields;  // null: no company, or one crmbridge does not hold (or deleted)
      if (auto it = companies->snapshots.find(company);
          !company.empty() && it != companies->snapshots.end() && it->second.deleted_ms == 0)
        company_fields = it->second.fields;
      const PortalDecision decision =
          DecidePortalAccess(*flow, c.fields, c.deleted_ms > 0, company_fields);
      const bool eligible = decision.eligible;
      const std::string& reason = decision.reason;
      const std::string& email = decision.email;

      // What crmbridge last planned for this contact: its portal user's snapshot lists the
      // properties it was granted.
      const auto stored = planned->snapshots.find(c.canonical_id);
      const bool had_user = stored != planned->snapshots.end();
      if (!eligible && !had_user) continue;  // never had access: nothing to do
      Snapshot user = had_user ? stored->second : Snapshot{};
      user.entity = kPortalUserEntity;
      user.canonical_id = c.canonical_id;
      std::set<std::string> held;
      if (user.fields.contains("properties") && user.fields["properties"].is_array())
        for (const json& p : user.fields["properties"])
          if (p.is_string()) held.insert(p.get<std::string>());
      std::set<std::string> wanted;
      if (eligible) wanted.insert(decision.grants.begin(), decision.grants.end());

      json fields = user.fields;
      if (eligible) {
        fields["email"] = email;
        fields["first_name"] = flow->first_name.empty() ? "" : text(c.fields, flow->first_name);
        fields["last_name"] = flow->last_name.empty() ? "" : text(c.fields, flow->last_name);
      }
      fields["portal_access"] = eligible;
      fields["properties"] = json(std::vector<std::string>(wanted.begin(), wanted.end()));
      if (fields == user.fields) continue;  // already as planned
      user.fields = fields;
      user.updated_ms = run_start_ms_;

      // Revokes first: a grant that no condition holds any more, or of a property moved away from.
      for (const std::string& p : held) {
        if (wanted.count(p)) continue;
        const std::string gid = c.canonical_id + ":" + p;
        auto found = view_->LinkOf(RecordKey{kPortalAccessEntity, gid}, flow->system);
        if (!found.ok()) return found.status();
        const Link link = found->value_or(Link{});
        ++revokes;
        spdlog::info("{}: revoking {}'s access to property {}: {}", flow->system, c.canonical_id, p,
                     reason.empty() ? "the main property changed" : reason);
        if (dry_run_) {
          tally_->Planned(PlannedWrite{flow->system, kPortalAccessEntity, gid, WriteAction::kDelete,
                                               link.native_id, json{{"property", p}}});
          continue;
        }
        // Without a grant id (its grant never landed), the delete names the user and property.
        batch.Enqueue(WritePlanner::NewOutboxItem(
            *grants, gid, OutboxOp::kDelete, link.native_id,
            {{"user_id", RefPlaceholder(kPortalUserEntity, c.canonical_id)},
             {"property_external_id", p},
             {"reason", reason.empty() ? "the main property changed" : reason}},
            run_start_ms_));
        ++tally_->Count(flow->system, kPortalAccessEntity).queued;
      }
      // The user (created or updated; on a revoke, its portal_access turns false), then the grant.
      if (eligible || had_user)
        CRMB_RETURN_IF_ERROR(planner_->PlanTarget(flow->contact, *users, c.canonical_id, user, &batch));
      for (const std::string& p : wanted) {
        const std::string gid = c.canonical_id + ":" + p;
        Snapshot grant;
        grant.entity = kPortalAccessEntity;
        grant.canonical_id = gid;
        grant.fields = {{"user", c.canonical_id}, {"property", p}};
        grant.updated_ms = run_start_ms_;
        ++grants_planned;
        CRMB_RETURN_IF_ERROR(planner_->PlanTarget(flow->contact, *grants, gid, grant, &batch));
        if (!dry_run_) batch.PutSnapshot(grant);
      }
      if (!dry_run_) batch.PutSnapshot(user);
    }
    if (!dry_run_ && !batch.empty()) CRMB_RETURN_IF_ERROR(store->Apply(batch));
    if (static_cast<int>(contacts->size()) < kContactsPerPage) break;
  }
  if (revokes + grants_planned > 0)
    spdlog::info("{}: portal access: {} grant(s) and {} revoke(s) planned", flow->system,
                 grants_planned, revokes);
  return Status::Ok();
}

// The portal's answer, reflected on the contact (PortalAccessFlow::user_id_field, state_field)
// and queued for every system that maps those fields.
void PortalAccess::ReflectPortalState(const std::string& contact_id, const json& values,
                                         StateBatch* batch) {
  const PortalAccessFlow& flow = *plan_->portal_access();
  json wanted = json::object();
  if (!flow.user_id_field.empty() && values.contains("user_id"))
    wanted[flow.user_id_field] = values["user_id"];
  if (!flow.state_field.empty() && values.contains("state")) wanted[flow.state_field] = values["state"];
  if (wanted.empty()) return;
  auto stored = store_->GetSnapshot(flow.contact, contact_id);
  if (!stored.ok() || !stored->has_value()) return;
  Snapshot contact = **stored;
  bool changed = false;
  for (const auto& [field, value] : wanted.items())
    if (contact.fields.value(field, json()) != value) {
      contact.fields[field] = value;
      if (!contact.changed_ms.is_object()) contact.changed_ms = json::object();
      contact.changed_ms[field] = clock_->NowMillis();
      changed = true;
    }
  if (!changed) return;
  contact.updated_ms = clock_->NowMillis();
  for (const SystemEntityMapping& target : plan_->mappings()) {
    if (target.entity != flow.contact || !target.writes()) continue;
    Status s = planner_->PlanTarget(flow.contact, target, contact_id, contact, batch);
    if (!s.ok()) spdlog::warn("{}: the portal state of {} is not written back: {}", target.system,
                              contact_id, s.ToString());
  }
  batch->PutSnapshot(contact);
}

bool PortalAccess::OnDelivered(const OutboxItem& item, const WriteOutcome& outcome,
                               StateBatch* batch) {
  const std::optional<PortalAccessFlow>& flow = plan_->portal_access();
  if (!flow || item.system != flow->system) return false;
  AuditEntry entry;
  entry.at_ms = clock_->NowMillis();
  entry.system = item.system;
  if (item.entity == kPortalUserEntity) {
    entry.subject = item.canonical_id;
    entry.action = "user";
    entry.detail = {{"user", outcome.native_id}, {"created", outcome.created},
                    {"email", item.payload.value("email", json())},
                    {"portal_access", item.payload.value("portal_access", json())}};
    batch->AddAudit(entry);
    ReflectPortalState(item.canonical_id, {{"user_id", outcome.native_id}}, batch);
    return false;
  }
  if (item.entity != kPortalAccessEntity) return false;
  const size_t colon = item.canonical_id.rfind(':');
  entry.subject = item.canonical_id.substr(0, colon);
  const std::string property = colon == std::string::npos ? "" : item.canonical_id.substr(colon + 1);
  entry.detail = {{"grant", outcome.native_id.empty() ? item.native_id : outcome.native_id},
                  {"property", property}};
  if (item.op == OutboxOp::kDelete) {
    entry.action = "revoke";
    entry.detail["reason"] = item.payload.value("reason", json());
    batch->AddAudit(entry);
    // Gone: a later grant of the same property is a new one (and gets its own reset).
    Link cleared;
    cleared.entity = item.entity;
    cleared.canonical_id = item.canonical_id;
    cleared.system = item.system;
    cleared.updated_ms = entry.at_ms;
    batch->PutLink(cleared);
    batch->CompleteOutbox(item.id, item.payload_hash);
    ReflectPortalState(entry.subject, {{"state", "revoked"}}, batch);
    ++tally_->Count(item.system, item.entity).updated;
    return true;
  }
  entry.action = "grant";
  entry.detail["created"] = outcome.created;
  batch->AddAudit(entry);
  ReflectPortalState(entry.subject, {{"state", "granted"}}, batch);
  if (outcome.created) {  // a new grant: the connector sent its one password reset
    entry.action = "reset";
    batch->AddAudit(entry);
  }
  return false;
}

}  // namespace crmbridge
