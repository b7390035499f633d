#include "connectors/dynamics365/dynamics365_connector.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "connectors/dynamics365/dynamics365_codec.h"
#include "connectors/dynamics365/dynamics365_errors.h"
#include "connectors/dynamics365/dynamics365_limits.h"

namespace crmbridge {

using nlohmann::json;
using dynamics365::PercentEncode;

namespace {

std::string Param(const ObjectRef& object, const std::string& name, const std::string& fallback) {
  auto it = object.params.find(name);
  return it == object.params.end() ? fallback : it->second;
}

// Headers every Web API request carries (refs/dynamics365 §2).
void AddODataHeaders(Request* r) {
  r->headers.emplace_back("Accept", "application/json");
  r->headers.emplace_back("OData-MaxVersion", "4.0");
  r->headers.emplace_back("OData-Version", "4.0");
  if (!r->body.empty()) r->headers.emplace_back("Content-Type", "application/json");
}

}  // namespace

Dynamics365Connector::Dynamics365Connector(const SystemConfig& config,
                                           std::shared_ptr<Transport> transport, Clock* clock)
    : name_(config.name), config_(config), transport_(std::move(transport)), clock_(clock) {
  // One upsert per request: Dataverse favours parallel single requests over large batches
  // (refs/dynamics365 §9); the engine hands over up to this many per call.
  caps_.max_batch = 100;
  caps_.max_page = dynamics365::kMaxPageSize;
  caps_.idempotent_upsert = true;
}

std::string Dynamics365Connector::ApiRoot() const {
  auto v = config_.options.find("api_version");
  return config_.base_url + "/api/data/" + (v == config_.options.end() ? "v9.2" : v->second) + "/";
}

Status Dynamics365Connector::RefreshToken() {
  Request r;
  r.method = "POST";
  r.url = config_.auth.at("token_url");
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
  r.body = "grant_type=client_credentials&client_id=" + PercentEncode(config_.auth.at("client_id")) +
           "&client_secret=" + PercentEncode(config_.auth.at("client_secret")) +
           "&scope=" + PercentEncode(config_.auth.at("scope"));
  r.timeout = config_.timeout;
  r.idempotent = true;  // asking for a token twice is harmless
  r.system = name_;
  auto resp = transport_->Send(r);
  if (!resp.ok()) {
    Status s = resp.status();
    s.set_system(name_);
    return s;
  }
  if (resp->status != 200) return dynamics365::StatusFromTokenEndpoint(*resp);
  auto j = json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string())
    return Status(StatusCode::kUnauthenticated, "dynamics365: the token endpoint answered without a token")
        .set_system(name_);
  token_ = j["access_token"].get<std::string>();
  int64_t lifetime = 3599;
  if (j.contains("expires_in")) {
    const json& e = j["expires_in"];
    lifetime = e.is_number() ? e.get<int64_t>() : std::stoll(e.get<std::string>());
  }
  // Renew 300 s early; for short-lived tokens, at half their life.
  const int64_t margin = std::min<int64_t>(dynamics365::kTokenRefreshMarginSeconds, lifetime / 2);
  token_expires_ms_ = clock_->NowMillis() + (lifetime - margin) * 1000;
  return Status::Ok();
}

Result<Response> Dynamics365Connector::Call(Request request) {
  request.timeout = config_.timeout;
  request.system = name_;
  AddODataHeaders(&request);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (token_.empty() || clock_->NowMillis() >= token_expires_ms_) CRMB_RETURN_IF_ERROR(RefreshToken());
    Request sent = request;
    sent.headers.emplace_back("Authorization", "Bearer " + token_);
    auto r = transport_->Send(sent);
    if (!r.ok()) {
      Status s = r.status();
      s.set_system(name_);
      return s;
    }
    if (r->status != 401 || attempt == 1) return r;
    token_.clear();  // rejected before its time: fetch a new one once
  }
  return Status(StatusCode::kInternal, "unreachable");
}

Result<Page> Dynamics365Connector::ReadChanges(const ObjectRef& object, const Cursor& cursor,
                                               const ReadContext& context) {
  const std::string pk = Param(object, "primary_key", dynamics365::PrimaryKeyOf(object.object));
  const std::string key_column = Param(object, "key", "");
  const int page_size = context.page_size > 0 ? std::min(context.page_size, dynamics365::kMaxPageSize)
                                              : dynamics365::kDefaultPageSize;
  Request req;
  req.method = "GET";
  req.idempotent = true;
  if (cursor.empty()) {
    std::vector<std::string> cols = object.fields;
    cols.push_back(pk);
    cols.push_back("modifiedon");
    if (!key_column.empty()) cols.push_back(key_column);
    std::sort(cols.begin(), cols.end());
    cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
    std::string select;
    for (const auto& c : cols) select += (select.empty() ? "" : ",") + c;
    req.url = ApiRoot() + object.object + "?$select=" + select;
  } else {
    req.url = cursor;  // a nextLink or deltaLink, used unchanged (refs/dynamics365 §3)
  }
  req.headers.emplace_back("Prefer", "odata.track-changes,odata.maxpagesize=" + std::to_string(page_size));
  auto r = Call(req);
  if (!r.ok()) return r.status();
  if (r->status == 400 && !cursor.empty() && cursor.find("deltatoken") != std::string::npos) {
    // Change-tracking tokens expire (7 days by default): read the whole table again.
    spdlog::warn("{}: the change-tracking token for {} expired; reading the table in full", name_,
                 object.object);
    return ReadChanges(object, "", context);
  }
  if (r->status != 200) return dynamics365::StatusFromDataverse(*r, "reading " + object.object);
  auto j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("value") || !j["value"].is_array())
    return Status(StatusCode::kUnavailable, "dynamics365: reading " + object.object + ": not an OData collection")
        .set_system(name_);
  Page page;
  for (const json& row : j["value"]) {
    auto rec = dynamics365::RecordFromRow(row, pk, key_column);
    if (!rec.ok()) {
      spdlog::warn("{}: skipping a row of {}: {}", name_, object.object, rec.status().message());
      continue;
    }
    page.records.push_back(std::move(*rec));
  }
  if (j.contains("@odata.nextLink") && j["@odata.nextLink"].is_string()) {
    page.next = j["@odata.nextLink"].get<std::string>();
    page.has_more = true;
  } else if (j.contains("@odata.deltaLink") && j["@odata.deltaLink"].is_string()) {
    page.next = j["@odata.deltaLink"].get<std::string>();
    page.has_more = false;
  } else {
    page.next = cursor;
    page.has_more = false;
  }
  return page;
}

WriteOutcome Dynamics365Connector::WriteOne(const ObjectRef& object, const WriteOp& op) {
  const std::string pk = Param(object, "primary_key", dynamics365::PrimaryKeyOf(object.object));
  const std::string key_column = Param(object, "key", "crmb_externalid");
  WriteOutcome out;
  Request req;
  req.idempotent = true;
  json body = op.fields;
  if (op.kind == WriteOp::Kind::kDelete) {
    req.method = "DELETE";
    req.url = ApiRoot() + object.object + "(" + op.native_id + ")";
  } else if (op.kind == WriteOp::Kind::kUpdate) {
    // Update-only: a row deleted in Dynamics 365 answers 404 instead of being re-created.
    req.method = "PATCH";
    req.url = ApiRoot() + object.object + "(" + op.native_id + ")";
    req.headers.emplace_back("If-Match", "*");
  } else {
    // Upsert by the alternate key; the key column stays out of the body (refs/dynamics365 §5).
    body.erase(key_column);
    req.method = "PATCH";
    req.url = ApiRoot() + dynamics365::AlternateKeySegment(object.object, key_column, op.key) +
              "?$select=" + pk;
    req.headers.emplace_back("Prefer", "return=representation");
  }
  if (req.method == "PATCH") req.body = body.dump();
  auto r = Call(req);
  if (!r.ok()) {
    out.status = r.status();
    return out;
  }
  if (r->status >= 300) {
    out.status = dynamics365::StatusFromDataverse(*r, req.method + " " + object.object + " " +
                                                          (op.native_id.empty() ? op.key : op.native_id));
    return out;
  }
  out.native_id = op.native_id;
  if (op.kind == WriteOp::Kind::kUpsert) {
    // With return=representation: 201 = created, 200 = updated (refs/dynamics365 §5).
    out.created = r->status == 201;
    auto j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains(pk) && j[pk].is_string()) out.native_id = j[pk].get<std::string>();
    if (out.native_id.empty()) {
      out.status = Status(StatusCode::kUnavailable, "dynamics365: upsert answered without the row id")
                       .set_system(name_);
    }
  }
  return out;
}

Result<std::vector<WriteOutcome>> Dynamics365Connector::Write(const ObjectRef& object,
                                                              const std::vector<WriteOp>& ops) {
  std::vector<WriteOutcome> outcomes;
  outcomes.reserve(ops.size());
  for (const WriteOp& op : ops) {
    WriteOutcome o = WriteOne(object, op);
    // Credentials refused: no later op can fare better.
    if (o.status.IsSystemFatal()) return o.status;
    outcomes.push_back(std::move(o));
  }
  return outcomes;
}

}  // namespace crmbridge
