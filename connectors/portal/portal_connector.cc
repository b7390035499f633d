#include "connectors/portal/portal_connector.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "connectors/portal/portal_codec.h"
#include "src/core/json_text.h"
#include "src/core/url.h"
#include "connectors/portal/portal_errors.h"
#include "connectors/portal/portal_limits.h"

namespace crmbridge {

using nlohmann::json;
using portal::GrantRef;

namespace {

std::string StringAt(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool IsHttp(const std::string& url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

WriteOutcome Done(std::string native_id, bool created) {
  WriteOutcome o;
  o.native_id = std::move(native_id);
  o.created = created;
  return o;
}

WriteOutcome OpError(StatusCode code, const std::string& message, const std::string& system) {
  WriteOutcome o;
  o.status = Status(code, message).set_system(system);
  return o;
}

}  // namespace

PortalConnector::PortalConnector(const SystemConfig& config, std::shared_ptr<Transport> transport,
                                 Clock* /*clock*/)
    : name_(config.name.empty() ? "portal" : config.name),
      config_(config),
      transport_(std::move(transport)) {
  std::string root = config_.base_url;
  while (!root.empty() && root.back() == '/') root.pop_back();
  api_root_ = root + "/v1";
}

const Capabilities& PortalConnector::KindCapabilities() {
  static const Capabilities kCapabilities = [] {
    Capabilities c;
    c.max_batch = portal::kMaxOpsPerRequest;
    c.max_page = portal::kMaxPage;
    c.idempotent_upsert = true;
    c.provisions_portal_access = true;
    c.objects = {"properties", "users", "access"};
    c.auth_keys = {"token"};
    c.account_keys = {"token"};
    return c;
  }();
  return kCapabilities;
}

Status PortalConnector::ValidateConfig(const SystemConfig& config) {
  if (!IsHttp(config.base_url))
    return Status(StatusCode::kFailedPrecondition,
                  "base_url must be the portal's http(s) server root such as "
                  "https://portal.example.com (crmbridge adds /v1), not \"" +
                      config.base_url + "\"");
  auto token = config.auth.find("token");
  if (token == config.auth.end() || token->second.empty())
    return Status(StatusCode::kFailedPrecondition, "the portal needs auth.token (a bearer token)");
  return Status::Ok();
}

Result<Response> PortalConnector::Call(const std::string& method, const std::string& path,
                                       const std::optional<json>& body,
                                       const std::string& idempotency_key) {
  Request req;
  req.method = method;
  req.url = api_root_ + path;
  auto token = config_.auth.find("token");
  req.headers = {{"Authorization", "Bearer " + (token == config_.auth.end() ? "" : token->second)},
                 {"Accept", "application/json"}};
  if (body) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = portal::DumpJson(*body);
  }
  if (!idempotency_key.empty()) req.headers.emplace_back("Idempotency-Key", idempotency_key);
  req.timeout = config_.timeout;
  // Reads, PUT, PATCH and DELETE are idempotent by nature; POSTs by their Idempotency-Key.
  req.idempotent = method != "POST" || !idempotency_key.empty();
  req.system = name_;
  auto r = transport_->Send(req);
  if (!r.ok()) {
    Status s = r.status();
    s.set_system(name_);
    return s;
  }
  return r;
}

Status PortalConnector::Fail(const Response& response, const std::string& what) const {
  // Called on any answer but the one expected: never OK.
  Status s = Unexpected(portal::StatusFromPortal(response, what), response, what);
  s.set_system(name_);
  return s;
}

Result<json> PortalConnector::ParseBody(const Response& response, const std::string& what) const {
  auto j = ParseJsonOrDiscarded(response.body);
  // The portal answered, if not sensibly: the answer's status goes with the error, so that it
  // counts against this call's record rather than as a portal that gave no answer.
  if (j.is_discarded() || !j.is_object())
    return Status(StatusCode::kUnavailable, what + ": the answer is not a JSON object")
        .set_http_status(response.status)
        .set_system(name_);
  return j;
}

Result<PortalConnector::ListPage> PortalConnector::List(const std::string& path,
                                                        const std::string& cursor, int limit,
                                                        const std::string& what) {
  std::string url =
      path + (path.find('?') == std::string::npos ? "?" : "&") + "limit=" + std::to_string(limit);
  if (!cursor.empty()) url += "&cursor=" + PercentEncode(cursor);
  auto r = Call("GET", url, std::nullopt);
  if (!r.ok()) return r.status();
  if (r->status != 200) return Fail(*r, what);
  auto j = ParseBody(*r, what);
  if (!j.ok()) return j.status();
  ListPage page;
  auto data = j->find("data");
  if (data == j->end() || !data->is_array())
    return Status(StatusCode::kUnavailable, what + ": a list answer without data")
        .set_http_status(r->status)
        .set_system(name_);
  page.data = std::move(*data);
  page.next = StringAt(*j, "next_cursor");  // null on the last page
  return page;
}

Result<Page> PortalConnector::ReadChanges(const ObjectRef& object, const Cursor& cursor,
                                          const ReadContext& context) {
  if (object.object != "properties" && object.object != "users" && object.object != "access")
    return Status(StatusCode::kFailedPrecondition,
                  "no object \"" + object.object + "\" (properties, users, access)")
        .set_system(name_);
  const int limit =
      context.page_size > 0 ? std::min(context.page_size, portal::kMaxPage) : portal::kMaxPage;
  auto read = [&](const Cursor& from) {
    return object.object == "access" ? ReadAccess(from, limit)
                                     : ReadObjects(object.object, from, limit);
  };
  auto page = read(cursor);
  if (!page.ok() && page.status().code() == StatusCode::kInvalidArgument && !cursor.empty()) {
    // A cursor the portal no longer takes: a full scan loses nothing by starting over.
    spdlog::warn("{}: the {} scan cursor was refused ({}); scanning from the start", name_,
                 object.object, page.status().ToString());
    page = read("");
  }
  return page;
}

Result<Page> PortalConnector::ReadObjects(const std::string& object, const Cursor& cursor,
                                          int limit) {
  auto list = List("/" + object, cursor, limit, "listing " + object);
  if (!list.ok()) return list.status();
  Page page;
  for (const json& item : list->data) {
    auto rec = object == "users" ? portal::UserRecord(item) : portal::PropertyRecord(item);
    if (!rec.ok()) return Status(rec.status()).set_system(name_);
    page.records.push_back(std::move(*rec));
  }
  page.next = list->next;
  page.has_more = !list->next.empty();
  return page;
}

Result<Page> PortalConnector::ReadAccess(const Cursor& cursor, int limit) {
  auto decoded = portal::DecodeAccessCursor(cursor);
  if (!decoded.ok()) return Status(decoded.status()).set_system(name_);
  const portal::AccessCursor at = *decoded;
  auto users = List("/users", at.users, portal::kMaxPage, "listing users");
  if (!users.ok()) return users.status();

  // Resume at the user the cursor names; by position if the page no longer holds it.
  size_t start = std::min<size_t>(at.index, users->data.size());
  if (!at.user.empty()) {
    for (size_t i = 0; i < users->data.size(); ++i)
      if (StringAt(users->data[i], "id") == at.user) start = i;
  }
  Page page;
  int budget = limit;
  for (size_t i = start; i < users->data.size(); ++i) {
    const std::string user = StringAt(users->data[i], "id");
    if (user.empty())
      return Status(StatusCode::kUnavailable, "a user without an id in a list answer")
          .set_system(name_);
    std::string grants = i == start && user == at.user ? at.grants : "";
    do {
      if (budget <= 0) {
        page.next = portal::EncodeAccessCursor({at.users, static_cast<int>(i), user, grants});
        page.has_more = true;
        return page;
      }
      auto list = List("/users/" + PercentEncode(user) + "/grants", grants, budget,
                       "listing the grants of " + user);
      if (!list.ok() && list.status().code() == StatusCode::kNotFound) break;  // gone meanwhile
      if (!list.ok()) return list.status();
      for (const json& item : list->data) {
        auto rec = portal::GrantRecord(item);
        if (!rec.ok()) return Status(rec.status()).set_system(name_);
        page.records.push_back(std::move(*rec));
      }
      budget -= static_cast<int>(list->data.size());
      grants = list->next;
    } while (!grants.empty());
  }
  page.has_more = !users->next.empty();
  page.next = page.has_more ? portal::EncodeAccessCursor({users->next, 0, "", ""}) : "";
  return page;
}

Result<WriteOutcome> PortalConnector::OpFailed(Status status) {
  // Credentials refused, or no connection possible at all (TLS, a malformed URL). Anything else
  // is this op's outcome; one whose call got no answer at all (http_status 0) tells the engine
  // the portal is unreachable, so every failure after an answer carries that answer's status.
  if (status.code() == StatusCode::kUnauthenticated ||
      (status.IsSystemFatal() && status.http_status() == 0))
    return status;
  WriteOutcome o;
  o.status = std::move(status);
  return o;
}

Result<WriteOutcome> PortalConnector::Patch(const std::string& collection, const std::string& id,
                                            const json& body, const std::string& what) {
  if (body.empty()) return Done(id, false);
  auto r = Call("PATCH", "/" + collection + "/" + PercentEncode(id), body);
  if (!r.ok()) return OpFailed(r.status());
  if (r->status != 200) return OpFailed(Fail(*r, what));
  auto j = ParseBody(*r, what);
  if (!j.ok()) return OpFailed(j.status());
  const std::string got = StringAt(*j, "id");
  return Done(got.empty() ? id : got, false);
}

// The record a 409 points at, found by its unique value, came without an id: it cannot be
// updated, nor named as the record written.
Status PortalConnector::NoIdInMatch(const std::string& what) const {
  return Status(StatusCode::kUnavailable, what + ": the record found has no id").set_system(name_);
}

Result<WriteOutcome> PortalConnector::Create(
    const std::string& collection, const WriteOp& op, const json& body, const std::string& what,
    const std::function<Result<WriteOutcome>(const Status& conflict)>& adopt) {
  auto r = Call("POST", "/" + collection, body, portal::CreateIdempotencyKey(op.key, body));
  if (!r.ok()) return OpFailed(r.status());
  if (r->status == 409) return adopt(Fail(*r, what));
  // 201, or 200 replaying an earlier attempt of this very create.
  if (r->status != 201 && r->status != 200) return OpFailed(Fail(*r, what));
  auto j = ParseBody(*r, what);
  if (!j.ok()) return OpFailed(j.status());
  const std::string id = StringAt(*j, "id");
  if (id.empty())
    return OpFailed(Status(StatusCode::kUnavailable, what + ": the answer has no id")
                        .set_http_status(r->status)
                        .set_system(name_));
  return Done(id, true);
}

Result<WriteOutcome> PortalConnector::WriteProperty(const WriteOp& op) {
  if (op.kind == WriteOp::Kind::kDelete)
    // A record-level refusal: dead-letter this write, keep writing the others.
    return OpError(StatusCode::kInvalidArgument,
                   "the portal API cannot delete properties (" + op.native_id +
                       "); remove it in the portal, or stop mapping deletes of this entity",
                   name_);
  const bool upsert = op.kind == WriteOp::Kind::kUpsert;
  auto body = portal::PropertyBody(op.fields, upsert ? op.key : "");
  if (!body.ok()) return OpFailed(Status(body.status()).set_system(name_));
  if (!op.native_id.empty())
    return Patch("properties", op.native_id, *body, "updating property " + op.native_id);
  if (!upsert)
    return OpError(StatusCode::kInvalidArgument, "a property update without an id", name_);

  const std::string what = "creating property " + op.key;
  return Create("properties", op, *body, what, [&](const Status& conflict) {
    // The external_id is taken: by this key's own create, whose outcome was lost longer ago than
    // the portal keeps idempotency keys. That property is the record.
    const std::string external_id = StringAt(*body, "external_id");
    if (external_id.empty()) return OpFailed(conflict);
    auto found = List("/properties?external_id=" + PercentEncode(external_id), "", 1,
                      "finding property " + external_id);
    if (!found.ok()) return OpFailed(found.status());
    if (found->data.empty()) return OpFailed(conflict);
    const json& existing = found->data[0];
    const std::string id = StringAt(existing, "id");
    if (id.empty()) return OpFailed(NoIdInMatch("finding property " + external_id));
    spdlog::info("{}: property {} already exists as {}; updating it", name_, external_id, id);
    json changes = json::object();
    if (body->contains("name") && (*body)["name"] != existing.value("name", json()))
      changes["name"] = (*body)["name"];
    return Patch("properties", id, changes, "updating property " + id);
  });
}

Result<WriteOutcome> PortalConnector::WriteUser(const WriteOp& op) {
  if (op.kind == WriteOp::Kind::kDelete)
    return OpError(StatusCode::kInvalidArgument,
                   "the portal API cannot delete users (" + op.native_id +
                       "); revoke the user's access instead (delete their access grants or set "
                       "portal_access to false)",
                   name_);
  auto body = portal::UserBody(op.fields);
  if (!body.ok()) return OpFailed(Status(body.status()).set_system(name_));
  if (!op.native_id.empty())
    return Patch("users", op.native_id, *body, "updating user " + op.native_id);
  if (op.kind == WriteOp::Kind::kUpdate)
    return OpError(StatusCode::kInvalidArgument, "a user update without an id", name_);

  const std::string what = "creating user " + op.key;
  return Create("users", op, *body, what, [&](const Status& conflict) {
    // The email is taken (case-insensitively): that user is the record.
    const std::string email = StringAt(*body, "email");
    if (email.empty()) return OpFailed(conflict);
    auto found = List("/users?email=" + PercentEncode(email), "", 1, "finding user " + op.key);
    if (!found.ok()) return OpFailed(found.status());
    if (found->data.empty()) return OpFailed(conflict);
    const std::string id = StringAt(found->data[0], "id");
    if (id.empty()) return OpFailed(NoIdInMatch("finding user " + op.key));
    spdlog::info("{}: user {} already exists as {}; updating it", name_, op.key, id);
    return Patch("users", id, *body, "updating user " + id);
  });
}

Result<WriteOutcome> PortalConnector::WriteAccess(const WriteOp& given) {
  // The engine names the user by reference (user_id) and the property by its external_id, as
  // the CRM knows it; the grant's path takes the portal's own ids.
  WriteOp op = given;
  if (auto user = op.refs.find("user_id"); user != op.refs.end() && !user->second.id.empty())
    op.fields["user_id"] = user->second.id;
  if (op.fields.contains("property_external_id") && !op.fields.contains("property_id")) {
    const std::string external_id = StringAt(op.fields, "property_external_id");
    auto cached = property_ids_.find(external_id);
    if (cached == property_ids_.end()) {
      auto found = List("/properties?external_id=" + PercentEncode(external_id), "", 1,
                        "finding property " + external_id);
      if (!found.ok()) return OpFailed(found.status());
      if (found->data.empty()) {
        if (op.kind == WriteOp::Kind::kDelete) return Done(op.native_id, false);  // nothing granted
        return OpError(StatusCode::kInvalidArgument,
                       "the portal has no property with external_id \"" + external_id +
                           "\" (the contact's main property), needed by access " + op.key +
                           "; create it in the portal first",
                       name_);
      }
      cached = property_ids_.emplace(external_id, StringAt(found->data[0], "id")).first;
    }
    op.fields["property_id"] = cached->second;
  }
  auto grant = portal::GrantOf(op);
  if (!grant.ok()) return OpFailed(Status(grant.status()).set_system(name_));
  const std::string id = portal::GrantId(*grant);
  const std::string path =
      "/users/" + PercentEncode(grant->user_id) + "/grants/" + PercentEncode(grant->property_id);

  if (op.kind == WriteOp::Kind::kDelete) {
    auto r = Call("DELETE", path, std::nullopt);
    if (!r.ok()) return OpFailed(r.status());
    // 204 whether or not it was granted; 404 when the user or property does not exist, so
    // neither can the grant.
    if (r->status / 100 == 2 || r->status == 404) return Done(id, false);
    return OpFailed(Fail(*r, "revoking " + id));
  }

  const std::string what = "granting " + grant->user_id + " access to " + grant->property_id;
  auto put = Call("PUT", path, std::nullopt);
  if (!put.ok()) return OpFailed(put.status());
  if (put->status != 201 && put->status != 200) return OpFailed(Fail(*put, what));
  auto j = ParseBody(*put, what);
  if (!j.ok()) return OpFailed(j.status());
  const std::string granted_at = StringAt(*j, "granted_at");
  if (granted_at.empty())
    return OpFailed(Status(StatusCode::kUnavailable, what + ": the answer has no granted_at")
                        .set_http_status(put->status)
                        .set_system(name_));

  // Also after a 200 (already granted): the reset of an earlier attempt may never have been sent.
  // Its key replays when it was.
  const std::string reset = "sending " + grant->user_id + " the password reset for " + id;
  auto r = Call("POST", "/users/" + PercentEncode(grant->user_id) + "/password-reset", std::nullopt,
                portal::ResetIdempotencyKey(*grant, granted_at));
  if (!r.ok()) return OpFailed(r.status());
  if (r->status / 100 != 2) return OpFailed(Fail(*r, reset));
  return Done(id, put->status == 201);
}

Result<std::vector<WriteOutcome>> PortalConnector::Write(const ObjectRef& object,
                                                         const std::vector<WriteOp>& ops) {
  Result<WriteOutcome> (PortalConnector::*write)(const WriteOp&) = nullptr;
  if (object.object == "properties") write = &PortalConnector::WriteProperty;
  if (object.object == "users") write = &PortalConnector::WriteUser;
  if (object.object == "access") write = &PortalConnector::WriteAccess;
  if (write == nullptr)
    return Status(StatusCode::kFailedPrecondition,
                  "no object \"" + object.object + "\" (properties, users, access)")
        .set_system(name_);
  std::vector<WriteOutcome> outcomes;
  outcomes.reserve(ops.size());
  for (const WriteOp& op : ops) {
    if (op.kind == WriteOp::Kind::kMerge) {
      WriteOutcome refused;
      refused.status = Status(StatusCode::kInvalidArgument, "portal: the API cannot merge records")
                           .set_system(name_);
      outcomes.push_back(std::move(refused));
      continue;
    }
    auto o = (this->*write)(op);
    if (!o.ok()) return o.status();  // no later op could fare better
    outcomes.push_back(std::move(*o));
  }
  return outcomes;
}

}  // namespace crmbridge
