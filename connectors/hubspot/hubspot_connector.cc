#include "connectors/hubspot/hubspot_connector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>

#include "connectors/hubspot/hubspot_codec.h"
#include "connectors/hubspot/hubspot_errors.h"
#include "src/core/json_text.h"
#include "src/core/redaction.h"
#include "src/core/time_util.h"
#include "src/core/url.h"
#include "src/core/utf8.h"
#include "connectors/hubspot/hubspot_limits.h"

namespace crmbridge {

using hubspot::DecodeCursor;
using hubspot::EncodeCursor;
using hubspot::SearchCursor;
using nlohmann::json;

namespace {

// Whether the mapping reads or writes the record's owner (hubspot_owner_id).
bool MapsOwner(const ObjectRef& object) {
  return std::find(object.fields.begin(), object.fields.end(), hubspot::kOwnerProperty) !=
         object.fields.end();
}


// An answer that is not JSON came all the same: its status goes with the error (a request that
// got no answer at all has none).
Result<json> ParseBody(const Response& r, const std::string& what) {
  return ParseJsonAnswer(r, "hubspot", what);
}

std::optional<int64_t> ParseInt64(const std::string& text) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoll(text);  // cannot throw: at most 18 digits
}

// A string member of an object, or "" (nlohmann's value() throws on a type mismatch).
std::string StringAt(const json& j, const char* key) {
  const json* v = FindPath(j, {key});
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// An object that does not decode, as the engine rejects it: by its id where it has one, with why;
// the rest of the page goes on.
NativeRecord Undecodable(const json& object, const Status& why) {
  NativeRecord bad;
  if (const json* id = FindPath(object, {"id"}); id && id->is_string()) bad.id = id->get<std::string>();
  bad.invalid = why.message();
  return bad;
}

// An empty param is one not given, as the mapping loader takes it.
std::string KeyPropertyOf(const ObjectRef& object) {
  auto it = object.params.find("id_property");
  return it == object.params.end() || it->second.empty() ? "crmbridge_id" : it->second;
}

std::string GroupFor(const std::string& type) {
  if (type == "tickets") return "ticketinformation";
  if (type == "companies") return "companyinformation";
  if (type == "contacts") return "contactinformation";
  return type + "information";
}

}  // namespace

HubSpotConnector::HubSpotConnector(const SystemConfig& config, std::shared_ptr<Transport> transport,
                                   Clock* clock)
    : name_(config.name.empty() ? "hubspot" : config.name),
      config_(config),
      transport_(std::move(transport)),
      clock_(clock) {}

const Capabilities& HubSpotConnector::KindCapabilities() {
  static const Capabilities kCapabilities = [] {
    Capabilities c;
    c.max_batch = hubspot::kMaxBatchInputs;
    c.max_page = hubspot::kMaxSearchPage;
    c.idempotent_upsert = true;
    c.carries_references = true;  // as associations
    c.adds_references = true;       // an association written leaves the others in place
    c.references_name_objects = true;  // a reference field is the associated object type
    c.reads_by_id = true;         // batch read: what a webhook announces is read alone
    c.delete_events = {"deletion", "privacyDeletion"};  // archived, or deleted for good
    c.reads_field_history = true; // batch read with propertiesWithHistory
    c.merges = {"contacts", "companies", "tickets", "deals"};  // POST /crm/v3/objects/{type}/merge
    // CRM objects by their API names; custom objects by objectTypeId (2-1234567) or fully
    // qualified name (p1234567_onboarding).
    c.objects = {"tickets", "companies", "contacts", "deals", "notes", "tasks", "calls",
                 "emails", "meetings", "line_items", "products", "quotes"};
    c.other_objects = "2-[0-9]+|p[0-9]*_[a-z0-9_]+";
    c.plain_field_names = true;  // property names, in properties= lists and search filters
    // POST /crm/v3/objects/{type}/search has a limit of its own (kSearchRequestsPerSecond).
    c.search_paths = {"/search"};
    c.other_objects_doc = "a custom object by objectTypeId (2-1234567) or name (p1234567_thing)";
    c.params = {
        OwnField({"pipeline", "string", "", {"tickets", "deals"},
                  "label or id: only records in this pipeline are read, and the stage is read "
                  "and written as its label"},
                 "hs_pipeline"),
        OwnField({"id_property", "name", "crmbridge_id", {},
                  "the unique property crmbridge creates and upserts by"}),
        {"overlap_ms", "number", "0", {}, "re-read this far (ms) before the cursor"},
        {"archived_sweep_ms", "number", std::to_string(hubspot::kArchivedSweepEveryMs), {},
         "list archived records (deletes search never shows) at most this often (ms); 0: every "
         "run"},
    };
    c.auth_keys = {"token", "refresh_token", "client_id", "client_secret"};
    c.options = {
        {"default_owner", "string", "", {},
         "the email of the owner a record gets when its own has no active HubSpot owner"},
    };
    // The 10-second limit is per private app (its token) or per installation of an OAuth app.
    c.account_keys = {"token", "client_id", "refresh_token"};
    return c;
  }();
  return kCapabilities;
}

Status HubSpotConnector::ValidateConfig(const SystemConfig& config) {
  if (config.base_url.rfind("http://", 0) != 0 && config.base_url.rfind("https://", 0) != 0)
    return Status(StatusCode::kFailedPrecondition,
                  "base_url must be an http(s) URL such as https://api.hubapi.com, not \"" +
                      config.base_url + "\"");
  auto token = config.auth.find("token");
  if (token != config.auth.end() && !token->second.empty()) return Status::Ok();
  if (config.auth.count("refresh_token")) {
    for (const char* key : {"refresh_token", "client_id", "client_secret"})
      if (!config.auth.count(key) || config.auth.at(key).empty())
        return Status(StatusCode::kFailedPrecondition,
                      std::string("HubSpot OAuth needs auth.refresh_token, auth.client_id and "
                                  "auth.client_secret; auth.") + key + " is missing");
    return Status::Ok();
  }
  return Status(StatusCode::kFailedPrecondition,
                "HubSpot needs auth.token (a private-app token), or auth.refresh_token with "
                "auth.client_id and auth.client_secret (an OAuth app)");
}

Result<Response> HubSpotConnector::Call(const std::string& method, const std::string& path,
                                        const std::string& body, bool idempotent) {
  Request req;
  req.method = method;
  req.url = config_.base_url + path;
  req.headers = {{"Accept", "application/json"}};
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  req.body = body;
  req.timeout = config_.timeout;
  req.idempotent = idempotent;
  req.system = name_;
  const bool oauth = !config_.auth.count("token") && config_.auth.count("refresh_token");
  if (daily_used_up_)
    // The last answer said the account's daily budget is spent: stop before HubSpot has to
    // refuse (a DAILY 429 lasts until the budget resets, refs/hubspot §11).
    return Status(StatusCode::kFailedPrecondition,
                  "hubspot: the account's daily API limit is used up "
                  "(X-HubSpot-RateLimit-Daily-Remaining reached 0); requests resume after its reset")
        .set_system(name_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string token;
    if (oauth) {
      if (oauth_token_.empty() || clock_->NowMillis() >= oauth_expires_ms_)
        CRMB_RETURN_IF_ERROR(RefreshOAuthToken());
      token = oauth_token_;
    } else if (auto t = config_.auth.find("token"); t != config_.auth.end()) {
      token = t->second;
    }
    Request sent = req;
    sent.headers.emplace_back("Authorization", "Bearer " + token);
    auto r = transport_->Send(sent);
    if (!r.ok()) {
      Status s = r.status();
      s.set_system(name_);
      return s;
    }
    if (auto left = r->Header("X-HubSpot-RateLimit-Daily-Remaining")) {
      auto n = ParseInt64(*left);
      if (n && *n <= 0) daily_used_up_ = true;
    }
    // A 401 does not by itself mean the access token expired (refs/hubspot §1), but one fresh
    // token is worth one more try; a private-app token has nothing to refresh.
    if (r->status != 401 || !oauth || attempt == 1) return r;
    oauth_token_.clear();
  }
  return Status(StatusCode::kInternal, "unreachable");
}

Status HubSpotConnector::RefreshOAuthToken() {
  oauth_token_.clear();
  auto auth = [&](const char* key) {
    auto it = config_.auth.find(key);
    return it == config_.auth.end() ? std::string() : it->second;
  };
  // refs/hubspot §1: POST /oauth/v3/token (v1 is the legacy one), form-encoded in the body,
  // grant_type=refresh_token.
  const std::string url =
      auth("token_url").empty() ? config_.base_url + "/oauth/v3/token" : auth("token_url");
  const std::string refresh_token = refresh_token_.empty() ? auth("refresh_token") : refresh_token_;
  Request r;
  r.method = "POST";
  r.url = url;
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
  r.body = "grant_type=refresh_token&client_id=" + PercentEncode(auth("client_id")) +
           "&client_secret=" + PercentEncode(auth("client_secret")) +
           "&refresh_token=" + PercentEncode(refresh_token);
  r.timeout = config_.timeout;
  r.idempotent = true;  // refreshing twice is harmless
  r.system = name_;
  auto resp = transport_->Send(r);
  if (!resp.ok()) {
    Status s = resp.status();
    s.set_system(name_);
    return s;
  }
  if (resp->status != 200) {
    // A refused refresh token (400 BAD_REFRESH_TOKEN) will not get better by retrying.
    const std::string what = "hubspot: refreshing the OAuth access token";
    Status s = Unexpected(hubspot::StatusFromHubSpot(*resp, what), *resp, what);
    if (resp->status == 400 || resp->status == 401 || resp->status == 403)
      s = Status(StatusCode::kUnauthenticated, s.message());
    s.set_system(name_);
    return s;
  }
  auto j = ParseJsonOrDiscarded(resp->body);
  if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string())
    return Status(StatusCode::kUnauthenticated,
                  "hubspot: the OAuth token endpoint answered without an access_token")
        .set_system(name_);
  Redactor::Global().ForgetSecret(oauth_token_);  // the one it replaces
  oauth_token_ = j["access_token"].get<std::string>();
  Redactor::Global().AddSecret(oauth_token_);  // never in a log line
  // The refresh token the answer carries is the one to use next (HubSpot may issue a new one).
  if (auto next = j.find("refresh_token");
      next != j.end() && next->is_string() && !next->get<std::string>().empty()) {
    refresh_token_ = next->get<std::string>();
    Redactor::Global().AddSecret(refresh_token_);
  }
  int64_t lifetime = hubspot::kDefaultOAuthLifetimeSeconds;
  if (j.contains("expires_in") && j["expires_in"].is_number_integer())
    lifetime = j["expires_in"].get<int64_t>();
  // Refresh ahead of expiry, on the expires_in schedule HubSpot asks clients to follow: five
  // minutes early, or half way through a shorter lifetime.
  oauth_expires_ms_ =
      TokenRenewalMs(clock_->NowMillis(), lifetime, hubspot::kOAuthRefreshMarginSeconds);
  return Status::Ok();
}

Status HubSpotConnector::Fail(const Response& response, const std::string& what) const {
  // Called on any answer but the one expected: never OK.
  Status s = Unexpected(hubspot::StatusFromHubSpot(response, what), response, what);
  s.set_system(name_);
  return s;
}

Status HubSpotConnector::EnsureKeyProperty(const std::string& type, const std::string& name) {
  auto got = Call("GET", "/crm/v3/properties/" + type + "/" + name, "", true);
  if (!got.ok()) return got.status();
  if (got->status == 200) {
    auto j = ParseBody(*got, "reading property " + name);
    const json* unique = j.ok() ? FindPath(*j, {"hasUniqueValue"}) : nullptr;
    if (unique && unique->is_boolean() && !unique->get<bool>())
      return Status(StatusCode::kFailedPrecondition,
                    "hubspot: property " + type + "." + name +
                        " exists but is not unique; crmbridge needs a unique key property "
                        "(set params.id_property to another name)")
          .set_system(name_);
    return Status::Ok();
  }
  if (got->status != 404) return Fail(*got, "reading property " + name);
  json def = {{"name", name},
              {"label", "crmbridge id"},
              {"description", "Key crmbridge writes on records it creates; do not edit."},
              {"type", "string"},
              {"fieldType", "text"},
              {"groupName", GroupFor(type)},
              {"hasUniqueValue", true}};
  auto created = Call("POST", "/crm/v3/properties/" + type, def.dump(), true);
  if (!created.ok()) return created.status();
  if (created->status == 201 || created->status == 200) {
    spdlog::info("{}: created the unique key property {}.{}", name_, type, name);
    return Status::Ok();
  }
  if (created->status == 409) return Status::Ok();  // another worker or run created it first
  return Fail(*created, "creating property " + name);
}

Status HubSpotConnector::LoadPipeline(const std::string& type, const std::string& pipeline,
                                      ObjectSetup* setup) {
  auto r = Call("GET", "/crm/v3/pipelines/" + type, "", true);
  if (!r.ok()) return r.status();
  if (r->status != 200) return Fail(*r, "reading " + type + " pipelines");
  auto j = ParseBody(*r, "reading " + type + " pipelines");
  if (!j.ok()) return j.status();
  std::string known;
  const json* pipelines = FindPath(*j, {"results"});
  if (!pipelines || !pipelines->is_array())
    return Status(StatusCode::kUnavailable, "hubspot: a pipelines answer without results")
        .set_system(name_);
  for (const json& p : *pipelines) {
    const std::string id = StringAt(p, "id"), label = StringAt(p, "label");
    known += (known.empty() ? "" : ", ") + std::string("\"") + label + "\" (" + id + ")";
    if (id != pipeline && label != pipeline) continue;
    setup->pipeline_id = id;
    const json* stages = FindPath(p, {"stages"});
    if (stages && stages->is_array()) {
      for (const json& st : *stages) {
        setup->stage_label_by_id[StringAt(st, "id")] = StringAt(st, "label");
        setup->stage_id_by_label[StringAt(st, "label")] = StringAt(st, "id");
      }
    }
    return Status::Ok();
  }
  return Status(StatusCode::kFailedPrecondition,
                "hubspot: no " + type + " pipeline named \"" + pipeline +
                    "\"; pipelines: " + (known.empty() ? "none" : known))
      .set_system(name_);
}

Result<HubSpotConnector::ObjectSetup*> HubSpotConnector::Setup(const ObjectRef& object,
                                                                bool for_write) {
  // The key property (id_property) goes into URLs as it is.
  CRMB_RETURN_IF_ERROR(CheckNameParams(KindCapabilities(), object, name_, "property name"));
  auto pipeline = object.params.find("pipeline");
  const std::string cache_key = object.object + "|" + KeyPropertyOf(object) + "|" +
                                (pipeline == object.params.end() ? "" : pipeline->second);
  auto it = setups_.find(cache_key);
  if (it == setups_.end()) {
    ObjectSetup setup;
    setup.id_property = KeyPropertyOf(object);
    if (pipeline != object.params.end())
      CRMB_RETURN_IF_ERROR(LoadPipeline(object.object, pipeline->second, &setup));
    it = setups_.emplace(cache_key, std::move(setup)).first;
  }
  // The key property is only needed to write by it: a run that writes nothing never asks for it
  // (searches may name a property that does not exist yet; HubSpot leaves it out).
  if (for_write && !it->second.key_checked) {
    CRMB_RETURN_IF_ERROR(EnsureKeyProperty(object.object, it->second.id_property));
    it->second.key_checked = true;
  }
  return &it->second;
}

void HubSpotConnector::ToLabels(const ObjectSetup& setup, NativeRecord* record) const {
  if (setup.pipeline_id.empty() || !record->fields.contains("hs_pipeline_stage")) return;
  const json& v = record->fields["hs_pipeline_stage"];
  if (!v.is_string()) return;
  auto label = setup.stage_label_by_id.find(v.get<std::string>());
  if (label != setup.stage_label_by_id.end()) record->fields["hs_pipeline_stage"] = label->second;
}

Result<json> HubSpotConnector::ToProperties(const ObjectSetup& setup, const json& fields) const {
  json props = json::object();
  for (const auto& [name, value] : fields.items()) props[name] = hubspot::PropertyString(value);
  if (props.contains(hubspot::kOwnerProperty) && props[hubspot::kOwnerProperty].is_string() &&
      !props[hubspot::kOwnerProperty].get<std::string>().empty()) {
    const std::string email = props[hubspot::kOwnerProperty];
    auto fallback = config_.options.find("default_owner");
    if (auto id = owners_.IdFor(email, fallback == config_.options.end() ? "" : fallback->second))
      props[hubspot::kOwnerProperty] = *id;
    else props.erase(hubspot::kOwnerProperty);
  }
  if (!setup.pipeline_id.empty()) {
    props["hs_pipeline"] = setup.pipeline_id;
    if (props.contains("hs_pipeline_stage")) {
      const std::string label = props["hs_pipeline_stage"];
      auto id = setup.stage_id_by_label.find(label);
      if (id != setup.stage_id_by_label.end()) {
        props["hs_pipeline_stage"] = id->second;
      } else if (!setup.stage_label_by_id.count(label)) {  // a stage id passes as it is
        std::string stages;
        for (const auto& [known, unused] : setup.stage_id_by_label)
          stages += (stages.empty() ? "\"" : ", \"") + known + "\"";
        return Status(StatusCode::kInvalidArgument,
                      "hubspot: \"" + label +
                          "\" is not a stage of the pipeline (stages: " + stages + ")")
            .set_system(name_);
      }
    }
  }
  return props;
}

json HubSpotConnector::PropertiesToRead(const ObjectRef& object, const ObjectSetup& setup) const {
  std::vector<std::string> wanted;
  for (const std::string& f : object.fields)
    if (!object.ref_fields.count(f)) wanted.push_back(f);  // associations, not properties
  wanted.push_back(setup.id_property);
  wanted.push_back(hubspot::ModifiedProperty(object.object));
  if (!setup.pipeline_id.empty()) wanted.push_back("hs_pipeline");
  if (hubspot::Merges(object.object)) wanted.push_back(hubspot::kMergedIdsProperty);
  json props = json::array();
  std::set<std::string> listed;
  for (const std::string& f : wanted)
    if (listed.insert(f).second) props.push_back(f);
  return props;
}

Result<json> HubSpotConnector::BatchRead(const std::string& type, const json& body,
                                         const std::string& what) {
  auto r = Call("POST", "/crm/v3/objects/" + type + "/batch/read", body.dump(), true);
  if (!r.ok()) return r.status();
  // 207: some ids were not found (archived, merged away); the others are in `results`.
  if (r->status != 200 && r->status != 207) return Fail(*r, what);
  auto j = ParseBody(*r, what);
  if (!j.ok()) return j.status();
  const json* results = FindPath(*j, {"results"});
  if (!results || !results->is_array())
    return Status(StatusCode::kUnavailable, "hubspot: a batch read answer without a results list")
        .set_system(name_);
  return *results;
}

Result<std::vector<NativeRecord>> HubSpotConnector::ReadByIds(const ObjectRef& object,
                                                              const std::vector<std::string>& ids) {
  auto setup_or = Setup(object, /*for_write=*/false);
  if (!setup_or.ok()) return setup_or.status();
  const ObjectSetup& setup = **setup_or;
  // The owners first: a page is taken whole or not at all.
  if (MapsOwner(object)) CRMB_RETURN_IF_ERROR(LoadOwners());
  const std::string modified = hubspot::ModifiedProperty(object.object);
  const json props = PropertiesToRead(object, setup);
  std::vector<NativeRecord> out;
  for (size_t start = 0; start < ids.size(); start += hubspot::kMaxBatchInputs) {
    json inputs = json::array();
    for (size_t i = start; i < std::min(ids.size(), start + hubspot::kMaxBatchInputs); ++i)
      inputs.push_back({{"id", ids[i]}});
    auto results = BatchRead(object.object, json{{"properties", props}, {"inputs", inputs}},
                             "reading " + object.object + " by id");
    if (!results.ok()) return results.status();
    std::vector<NativeRecord> chunk;
    for (const json& obj : *results) {
      auto rec = hubspot::RecordFromObject(obj, modified, setup.id_property);
      if (!rec.ok()) {
        chunk.push_back(Undecodable(obj, rec.status()));
        continue;
      }
      // A record of another pipeline is outside what the mapping syncs, as the search's filter
      // would have left it out.
      if (!setup.pipeline_id.empty() && StringAt(rec->fields, "hs_pipeline") != setup.pipeline_id)
        continue;
      ToLabels(setup, &*rec);
      chunk.push_back(std::move(*rec));
    }
    CRMB_RETURN_IF_ERROR(ReadAssociations(object, &chunk));
    if (MapsOwner(object)) owners_.IdsToEmails(hubspot::kOwnerProperty, &chunk);
    for (NativeRecord& rec : chunk) out.push_back(std::move(rec));
  }
  return out;
}

Result<std::map<std::string, std::vector<FieldChange>>> HubSpotConnector::ReadFieldHistory(
    const ObjectRef& object, const std::string& field, const std::vector<std::string>& ids) {
  constexpr size_t kHistoryBatch = 50;
  auto setup_or = Setup(object, /*for_write=*/false);
  if (!setup_or.ok()) return setup_or.status();
  const ObjectSetup& setup = **setup_or;
  const bool stage = !setup.pipeline_id.empty() && field == "hs_pipeline_stage";
  std::map<std::string, std::vector<FieldChange>> out;
  for (size_t start = 0; start < ids.size(); start += kHistoryBatch) {
    json inputs = json::array();
    for (size_t i = start; i < std::min(ids.size(), start + kHistoryBatch); ++i)
      inputs.push_back({{"id", ids[i]}});
    auto results = BatchRead(object.object,
                             json{{"properties", json::array()},
                                  {"propertiesWithHistory", json::array({field})},
                                  {"inputs", inputs}},
                             "reading the history of " + object.object + " " + field);
    if (!results.ok()) return results.status();
    for (const json& obj : *results) {
      const std::string id = StringAt(obj, "id");
      const json* history = FindPath(obj, {"propertiesWithHistory", field.c_str()});
      if (id.empty() || !history || !history->is_array()) continue;
      std::vector<FieldChange> changes;
      for (const json& entry : *history) {
        if (!entry.is_object()) continue;
        const json value = entry.value("value", json());
        auto at = entry.contains("timestamp") && entry["timestamp"].is_string()
                      ? ParseIsoUtcMillis(entry["timestamp"].get<std::string>())
                      : std::nullopt;
        if (!at || !value.is_string()) continue;  // an entry it cannot date or read is skipped
        json shown = value;
        if (stage) {
          auto label = setup.stage_label_by_id.find(value.get<std::string>());
          if (label != setup.stage_label_by_id.end()) shown = label->second;
        }
        changes.push_back(FieldChange{std::move(shown), *at});
      }
      // HubSpot lists the newest first.
      std::stable_sort(changes.begin(), changes.end(),
                       [](const FieldChange& a, const FieldChange& b) { return a.at_ms < b.at_ms; });
      if (!changes.empty()) out[id] = std::move(changes);
    }
  }
  return out;
}

Result<Page> HubSpotConnector::ReadChanges(const ObjectRef& object, const Cursor& cursor_text,
                                           const ReadContext& context) {
  auto setup_or = Setup(object, /*for_write=*/false);
  if (!setup_or.ok()) return setup_or.status();
  const ObjectSetup& setup = **setup_or;
  // The owners first: a page is taken whole or not at all.
  if (MapsOwner(object)) CRMB_RETURN_IF_ERROR(LoadOwners());
  auto decoded = DecodeCursor(cursor_text);
  if (!decoded.ok()) return decoded.status();
  SearchCursor c = *decoded;
  if (c.archived) return ReadArchived(object, setup, c);
  const std::string modified = hubspot::ModifiedProperty(object.object);
  // A backfill from a date starts its first pass there.
  if (cursor_text.empty() && context.since_ms > 0) c.since_ms = context.since_ms;
  if (c.window_ms < 0) {
    // A new pass. The overlap re-reads the last moments before the stored position, for records
    // HubSpot's search index showed late (it is eventually consistent, refs/hubspot §4); the
    // engine de-duplicates what it reads twice.
    auto overlap_ms = MillisParam(object, "overlap_ms", 0);
    if (!overlap_ms.ok()) return overlap_ms.status();
    c.window_ms = std::max<int64_t>(0, c.since_ms - *overlap_ms);
    c.max_seen_ms = 0;
  }

  json filters = json::array();
  if (!setup.pipeline_id.empty())
    filters.push_back(
        {{"propertyName", "hs_pipeline"}, {"operator", "EQ"}, {"value", setup.pipeline_id}});
  json sort;
  if (c.tie_ms >= 0) {
    // More than a window's worth of records share one timestamp: page them by id.
    filters.push_back(
        {{"propertyName", modified}, {"operator", "EQ"}, {"value", std::to_string(c.tie_ms)}});
    if (!c.last_id.empty())
      filters.push_back(
          {{"propertyName", "hs_object_id"}, {"operator", "GT"}, {"value", c.last_id}});
    sort = {{"propertyName", "hs_object_id"}, {"direction", "ASCENDING"}};
  } else {
    filters.push_back(
        {{"propertyName", modified}, {"operator", "GTE"}, {"value", std::to_string(c.window_ms)}});
    sort = {{"propertyName", modified}, {"direction", "ASCENDING"}};
  }
  const json props = PropertiesToRead(object, setup);
  const int limit = context.page_size > 0 ? std::min(context.page_size, hubspot::kMaxSearchPage)
                                          : hubspot::kMaxSearchPage;
  json body = {{"filterGroups", json::array({{{"filters", filters}}})},
               {"sorts", json::array({sort})},
               {"properties", props},
               {"limit", limit},
               {"after", std::to_string(c.after)}};

  auto r = Call("POST", "/crm/v3/objects/" + object.object + "/search", body.dump(), true);
  if (!r.ok()) return r.status();
  if (r->status != 200) return Fail(*r, "searching " + object.object);
  auto j = ParseBody(*r, "searching " + object.object);
  if (!j.ok()) return j.status();

  Page page;
  if (const json* total = FindPath(*j, {"total"}); total && total->is_number_integer() && c.after == 0)
    page.total = total->get<int64_t>();  // the window's matches: an estimate of what remains
  std::string last_id;
  int64_t last_modified = 0;
  const json* results = FindPath(*j, {"results"});
  if (!results || !results->is_array())
    return Status(StatusCode::kUnavailable, "hubspot: a search answer without a results list")
        .set_system(name_);
  // A restarted window or a tie paged by id reads again records of the boundary timestamp that
  // this pass already returned; they are dropped here, so one pass returns each record once.
  Boundary& boundary = boundaries_[object.object];
  if (c.window_ms >= 0 && c.after == 0 && c.tie_ms < 0 && c.window_ms < boundary.ms)
    boundary = Boundary{};  // a new pass (its overlap may legitimately repeat the last run)
  for (const json& obj : *results) {
    auto rec = hubspot::RecordFromObject(obj, modified, setup.id_property);
    if (!rec.ok()) {
      page.records.push_back(Undecodable(obj, rec.status()));
      continue;
    }
    ToLabels(setup, &*rec);
    last_id = rec->id;
    last_modified = rec->modified_ms;
    c.max_seen_ms = std::max(c.max_seen_ms, rec->modified_ms);
    if (rec->modified_ms > boundary.ms) {
      boundary.ms = rec->modified_ms;
      boundary.ids.clear();
    }
    if (rec->modified_ms == boundary.ms && !boundary.ids.insert(rec->id).second) continue;
    page.records.push_back(std::move(*rec));
  }
  CRMB_RETURN_IF_ERROR(ReadAssociations(object, &page.records));
  if (MapsOwner(object)) owners_.IdsToEmails(hubspot::kOwnerProperty, &page.records);
  // paging.next.after is an integer offset formatted as a string, absent on the last page.
  std::optional<int64_t> next_after;
  if (const json* next = FindPath(*j, {"paging", "next", "after"})) {
    next_after = next->is_string()           ? ParseInt64(next->get<std::string>())
                 : next->is_number_integer() ? std::optional<int64_t>(next->get<int64_t>())
                                             : std::nullopt;
    if (!next_after)
      return Status(StatusCode::kUnavailable,
                    "hubspot: unreadable paging.next.after in a search answer")
          .set_system(name_);
  }

  SearchCursor next = c;
  if (next_after && *next_after < hubspot::kSearchRestartAt) {
    next.after = static_cast<int>(*next_after);
    page.has_more = true;
  } else if (next_after) {
    // The next page would come near the 10,000-result cap: start a new window at the last
    // timestamp (GTE, so records sharing it are read again and de-duplicated, never skipped),
    // or page by id a timestamp that alone fills the window.
    page.has_more = true;
    next.after = 0;
    if (c.tie_ms >= 0) {
      next.last_id = last_id;  // sorted by id: everything up to it has been read
    } else if (last_modified > c.window_ms) {
      next.window_ms = last_modified;
    } else {
      // The window was sorted by time only, so records of this timestamp came in no particular
      // id order: page the whole timestamp by id from the start.
      next.tie_ms = last_modified;
      next.last_id.clear();
    }
  } else if (c.tie_ms >= 0) {
    // The tie is exhausted; continue after it.
    page.has_more = true;
    next.after = 0;
    next.window_ms = c.tie_ms + 1;
    next.tie_ms = -1;
    next.last_id.clear();
  } else {
    // End of the change stream. The next run starts at the newest change seen, but never past
    // this run's start: records modified while it read are read again next time.
    page.has_more = false;
    SearchCursor done;
    const int64_t newest = std::max(c.since_ms, c.max_seen_ms);
    done.since_ms = context.run_start_ms > 0 ? std::min(newest, context.run_start_ms) : newest;
    done.since_ms = std::max(done.since_ms, c.since_ms);  // never move backwards
    done.archived_after = c.archived_after;
    done.archived_started_ms = c.archived_started_ms;
    done.archived_mark_ms = c.archived_mark_ms;
    // Archiving moves no modification time, so search never shows it: archived records are swept
    // next, a sweep in progress going on, a new one starting when the last began a while ago.
    auto every_ms = MillisParam(object, "archived_sweep_ms", hubspot::kArchivedSweepEveryMs);
    if (!every_ms.ok()) return every_ms.status();
    const bool sweeping = !c.archived_after.empty();
    const bool due = c.archived_started_ms == 0 ||
                     context.run_start_ms - c.archived_started_ms >= *every_ms;
    if (sweeping || due) {
      done.archived = true;
      if (!sweeping) done.archived_started_ms = std::max<int64_t>(context.run_start_ms, 1);
      page.has_more = true;
    }
    next = done;
  }
  page.next = EncodeCursor(next);
  return page;
}

Status HubSpotConnector::LoadOwners() {
  const int64_t now = clock_->NowMillis();
  if (owners_.Fresh(now, hubspot::kOwnersFreshMs)) return Status::Ok();
  struct Listed {
    std::string id, email;
    bool active;
  };
  std::vector<Listed> listed;
  Status failed;
  for (const bool archived : {false, true}) {
    std::string after;
    std::set<std::string> pages;  // the `after` values followed: a repeated one ends the listing
    do {
      std::string path = "/crm/v3/owners?limit=" + std::to_string(hubspot::kMaxOwnersPage);
      if (archived) path += "&archived=true";
      if (!after.empty()) path += "&after=" + PercentEncode(after);
      auto r = Call("GET", path, "", true);
      if (!r.ok()) {
        failed = r.status();
        break;
      }
      if (r->status != 200) {
        failed = Fail(*r, "reading the owners");
        break;
      }
      auto j = ParseBody(*r, "reading the owners");
      const json* results = j.ok() ? FindPath(*j, {"results"}) : nullptr;
      if (!results || !results->is_array()) {
        failed = Status(StatusCode::kUnavailable, "hubspot: an owners answer without a results list")
                     .set_system(name_);
        break;
      }
      for (const json& o : *results)
        listed.push_back({StringAt(o, "id"), StringAt(o, "email"), !archived});
      const json* next = FindPath(*j, {"paging", "next", "after"});
      after = next && next->is_string() ? next->get<std::string>() : std::string();
    } while (!after.empty() && pages.insert(after).second);
    if (!failed.ok()) break;
  }
  // Owners that cannot be read (the app lacks crm.objects.owners.read, say) fail no record: ids
  // pass as they are and no owner is written, until the next attempt. Credentials refused or
  // the daily limit spent stop the system as any call would.
  if (!failed.ok()) {
    if (failed.IsSystemFatal()) return failed;
    spdlog::warn("{}: the owners could not be read, so owners are neither read as emails nor "
                 "written until the next attempt: {}", name_, failed.ToString());
    listed.clear();
  }
  owners_.Clear(now);
  for (const Listed& o : listed) owners_.Add(o.id, o.email, o.active);
  return Status::Ok();
}

Result<int64_t> HubSpotConnector::MillisParam(const ObjectRef& object, const std::string& name,
                                              int64_t fallback) const {
  auto it = object.params.find(name);
  if (it == object.params.end()) return fallback;
  auto parsed = ParseInt64(it->second);
  if (!parsed || *parsed < 0)
    return Status(StatusCode::kFailedPrecondition, "hubspot: params." + name +
                                                       " must be a number of milliseconds, not \"" +
                                                       it->second + "\"")
        .set_system(name_);
  return *parsed;
}

Result<Page> HubSpotConnector::ReadArchived(const ObjectRef& object, const ObjectSetup& setup,
                                            SearchCursor c) {
  std::string path = "/crm/v3/objects/" + object.object + "?archived=true&limit=" +
                     std::to_string(hubspot::kMaxListPage);
  if (!setup.pipeline_id.empty()) path += "&properties=hs_pipeline";  // to keep its pipeline's
  if (!c.archived_after.empty()) path += "&after=" + PercentEncode(c.archived_after);
  const std::string what = "listing archived " + object.object;
  auto r = Call("GET", path, "", true);
  if (!r.ok()) return r.status();
  if (r->status != 200) return Fail(*r, what);
  auto j = ParseBody(*r, what);
  if (!j.ok()) return j.status();
  const json* results = FindPath(*j, {"results"});
  if (!results || !results->is_array())
    return Status(StatusCode::kUnavailable, "hubspot: an archived listing without a results list")
        .set_system(name_);
  Page page;
  for (const json& obj : *results) {
    const std::string id = StringAt(obj, "id");
    if (id.empty()) continue;
    // Another pipeline's ticket is outside what the mapping syncs.
    if (!setup.pipeline_id.empty() &&
        StringAt(obj.value("properties", json::object()), "hs_pipeline") != setup.pipeline_id)
      continue;
    const std::optional<int64_t> at = obj.contains("archivedAt") && obj["archivedAt"].is_string()
                                          ? ParseIsoUtcMillis(obj["archivedAt"].get<std::string>())
                                          : std::nullopt;
    // The last complete sweep returned it (the mark is this machine's clock, archivedAt
    // HubSpot's: a margin keeps a skew from hiding a record).
    if (at && *at < c.archived_mark_ms - hubspot::kArchivedMarkMarginMs) continue;
    NativeRecord tombstone;
    tombstone.id = id;
    tombstone.deleted = true;
    tombstone.modified_ms = at.value_or(0);
    page.records.push_back(std::move(tombstone));
  }
  SearchCursor next = c;
  ++next.archived_pages;
  const json* after = FindPath(*j, {"paging", "next", "after"});
  if (after && after->is_string() && !after->get<std::string>().empty()) {
    next.archived_after = after->get<std::string>();
  } else {
    next.archived_after.clear();  // the sweep is complete
    next.archived_mark_ms = c.archived_started_ms;
  }
  page.has_more = !next.archived_after.empty() && next.archived_pages < hubspot::kArchivedPagesPerRun;
  if (!page.has_more) {
    next.archived = false;
    next.archived_pages = 0;
  }
  page.next = EncodeCursor(next);
  return page;
}

Status HubSpotConnector::ReadAssociations(const ObjectRef& object,
                                          std::vector<NativeRecord>* records) {
  if (object.ref_fields.empty() || records->empty()) return Status::Ok();
  for (const std::string& to_type : object.ref_fields) {
    json inputs = json::array();
    for (const NativeRecord& r : *records)
      if (!r.deleted) inputs.push_back({{"id", r.id}});
    std::map<std::string, std::vector<std::string>> found;
    // A page (at most 200) fits one batch read (1000 inputs, refs/hubspot §8).
    auto r = Call("POST", "/crm/v4/associations/" + object.object + "/" + to_type + "/batch/read",
                  json{{"inputs", inputs}}.dump(), true);
    if (!r.ok()) return r.status();
    // 207: some inputs have no association of this type (or no longer exist); they have none.
    if (r->status != 200 && r->status != 207)
      return Fail(*r, "reading " + object.object + " associations to " + to_type);
    const std::string what = "reading " + object.object + " associations to " + to_type;
    auto j = ParseBody(*r, what);
    if (!j.ok()) return j.status();
    // Each input is answered by a result or by an error naming it in its context (one with no
    // association of this type may come as either). One answered by neither is unknown, not
    // "none": read as none, its references would be cleared everywhere else.
    std::set<std::string> answered;
    if (const json* errors = FindPath(*j, {"errors"}); errors && errors->is_array())
      for (const json& e : *errors)
        if (const json* context = FindPath(e, {"context"}); context && context->is_object())
          for (const auto& [key, ids] : context->items())
            if (ids.is_array())
              for (const json& id : ids)
                if (id.is_string()) answered.insert(id.get<std::string>());
    if (const json* results = FindPath(*j, {"results"}); results && results->is_array()) {
      for (const json& res : *results) {
        const json* from = FindPath(res, {"from", "id"});
        const json* to = FindPath(res, {"to"});
        if (from == nullptr || to == nullptr || !to->is_array()) continue;
        const std::string from_id = from->is_string() ? from->get<std::string>() : from->dump();
        answered.insert(from_id);
        found[from_id];  // answered with none, it has none
        for (const json& t : *to) {
          const json* id = FindPath(t, {"toObjectId"});
          if (id == nullptr) continue;
          found[from_id].push_back(id->is_string() ? id->get<std::string>() : id->dump());
        }
      }
    }
    std::vector<std::string> unanswered;
    for (const NativeRecord& rec : *records)
      if (!rec.deleted && !answered.count(rec.id)) unanswered.push_back(rec.id);
    if (!unanswered.empty()) {
      return Status(StatusCode::kUnavailable,
                    "hubspot: " + what + ": the answer (HTTP " + std::to_string(r->status) +
                        ") has neither a result nor an error for " + object.object + " " +
                        PrintableText(unanswered.front()) +
                        (unanswered.size() > 1
                             ? " and " + std::to_string(unanswered.size() - 1) + " more"
                             : "") +
                        " of the " + std::to_string(inputs.size()) + " asked for")
          .set_http_status(r->status)
          .set_system(name_);
    }
    for (NativeRecord& rec : *records) {
      if (rec.deleted) continue;
      std::vector<std::string>& ids = found[rec.id];
      // Numeric order, so the reference read is the same on every read.
      std::sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
        return a.size() != b.size() ? a.size() < b.size() : a < b;
      });
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      rec.fields[to_type] = ids.empty() ? json() : json(ids.front());
      rec.associations[to_type] = ids;
    }
  }
  return Status::Ok();
}

void HubSpotConnector::WriteAssociations(const std::string& type, const std::vector<WriteOp>& ops,
                                         std::vector<WriteOutcome>* outcomes) {
  // Per associated type, the (op, from, to) pairs to add and to archive.
  struct Pair {
    size_t op;
    std::string from, to;
  };
  std::map<std::string, std::vector<Pair>> add, drop;
  for (size_t i = 0; i < ops.size(); ++i) {
    const WriteOutcome& o = (*outcomes)[i];
    if (!o.status.ok() || o.native_id.empty() || ops[i].kind == WriteOp::Kind::kDelete) continue;
    for (const auto& [to_type, ref] : ops[i].refs) {
      if (!ref.id.empty()) add[to_type].push_back({i, o.native_id, ref.id});
      if (!ref.previous_id.empty() && ref.previous_id != ref.id)
        drop[to_type].push_back({i, o.native_id, ref.previous_id});
    }
  }
  auto fail = [&](const Pair& p, const Status& s) {
    if ((*outcomes)[p.op].status.ok()) (*outcomes)[p.op].status = s;
  };
  auto send = [&](const std::string& to_type, const std::vector<Pair>& pairs, bool archive) {
    for (size_t i = 0; i < pairs.size(); i += hubspot::kMaxBatchInputs) {
      const size_t end = std::min(pairs.size(), i + hubspot::kMaxBatchInputs);
      json inputs = json::array();
      for (size_t k = i; k < end; ++k) {
        if (archive)
          inputs.push_back({{"from", {{"id", pairs[k].from}}}, {"to", json::array({{{"id", pairs[k].to}}})}});
        else
          inputs.push_back({{"from", {{"id", pairs[k].from}}}, {"to", {{"id", pairs[k].to}}}});
      }
      const std::string what = std::string(archive ? "removing" : "adding") + " " + type +
                               " associations to " + to_type;
      auto r = Call("POST",
                    "/crm/v4/associations/" + type + "/" + to_type +
                        (archive ? "/batch/archive" : "/batch/associate/default"),
                    json{{"inputs", inputs}}.dump(), true);  // both are idempotent
      Status s;
      if (!r.ok()) {
        s = r.status();
      } else if ((r->status == 200 || r->status == 207) && !archive) {
        // Pairs that failed (a record gone since) are in errors[] and absent from results[]
        // (refs/hubspot-openapi associations.json: PublicDefaultAssociation has from.id).
        auto j = ParseBody(*r, what);
        if (!j.ok()) {
          for (size_t k = i; k < end; ++k) fail(pairs[k], j.status());
          continue;
        }
        std::set<std::string> done;
        if (const json* results = FindPath(*j, {"results"}); results && results->is_array())
          for (const json& res : *results) {
            const json* from = FindPath(res, {"from", "id"});
            if (from == nullptr) from = FindPath(res, {"fromObjectId"});
            if (from != nullptr) done.insert(from->is_string() ? from->get<std::string>() : from->dump());
          }
        for (size_t k = i; k < end; ++k)
          if (!done.count(pairs[k].from))
            fail(pairs[k], Status(StatusCode::kNotFound,  // the engine looks again, and retries
                                  "hubspot: " + what + ": " + type + " " + pairs[k].from +
                                      " could not be associated with " + to_type + " " + pairs[k].to)
                               .set_system(name_));
        continue;
      } else if (r->status < 200 || r->status >= 300) {
        s = Fail(*r, what);
      }
      if (!s.ok())
        for (size_t k = i; k < end; ++k) fail(pairs[k], s);
    }
  };
  for (const auto& [to_type, pairs] : drop) send(to_type, pairs, true);
  // A record whose old association could not be removed does not get the new one: it would then
  // be associated with both, and a read could not tell which one it refers to. It keeps the old
  // one (or, if the removal landed unanswered, none) until the write is retried.
  for (auto& [to_type, pairs] : add) {
    std::vector<Pair> kept;
    for (const Pair& p : pairs)
      if ((*outcomes)[p.op].status.ok()) kept.push_back(p);
    send(to_type, kept, false);
  }
}

WriteOutcome HubSpotConnector::MergeOne(const std::string& type, const WriteOp& op) {
  WriteOutcome out;
  if (!hubspot::Merges(type)) {
    out.status = Status(StatusCode::kInvalidArgument, "hubspot: " + type + " cannot be merged")
                     .set_system(name_);
    return out;
  }
  const json body{{"primaryObjectId", op.merge_into}, {"objectIdToMerge", op.native_id}};
  // Not idempotent: a retry finds the first attempt's merge done (below).
  auto r = Call("POST", "/crm/v3/objects/" + type + "/merge", body.dump(), false);
  if (!r.ok()) {
    out.status = r.status();
    return out;
  }
  if (r->status == 200) {
    const json answer = ParseJsonOrDiscarded(r->body);
    out.native_id = answer.is_object() && answer.contains("id") && answer["id"].is_string()
                        ? answer["id"].get<std::string>()
                        : op.merge_into;
    return out;
  }
  if (r->status == 400 || r->status == 404 || r->status == 409) {
    // Already merged (an earlier attempt whose answer was lost)? The survivor then lists it.
    auto check = Call("GET", "/crm/v3/objects/" + type + "/" + PercentEncode(op.merge_into) +
                                 "?properties=" + hubspot::kMergedIdsProperty,
                      "", true);
    if (check.ok() && check->status == 200) {
      const json survivor = ParseJsonOrDiscarded(check->body);
      auto record = hubspot::RecordFromObject(survivor, hubspot::ModifiedProperty(type), "");
      if (record.ok() && std::find(record->merged_ids.begin(), record->merged_ids.end(),
                                   op.native_id) != record->merged_ids.end()) {
        out.native_id = record->id;
        return out;
      }
    }
  }
  out.status = Fail(*r, "merging " + type + " " + op.native_id + " into " + op.merge_into);
  return out;
}

void HubSpotConnector::WriteChunk(const std::string& type, const ObjectSetup& setup,
                                  const std::string& verb, const std::vector<const WriteOp*>& ops,
                                  std::vector<WriteOutcome*>& outcomes) {
  json inputs = json::array();
  for (size_t i = 0; i < ops.size(); ++i) {
    auto props = ToProperties(setup, ops[i]->fields);
    if (!props.ok()) {
      outcomes[i]->status = props.status();
      continue;
    }
    if (verb == "upsert") {
      inputs.push_back(
          {{"idProperty", setup.id_property}, {"id", ops[i]->key}, {"properties", *props}});
    } else if (verb == "update") {
      inputs.push_back({{"id", ops[i]->native_id}, {"properties", *props}});
    } else {
      inputs.push_back({{"id", ops[i]->native_id}});
    }
  }
  // Ops that failed locally were answered above; send the rest.
  std::vector<const WriteOp*> sent;
  std::vector<WriteOutcome*> sent_out;
  for (size_t i = 0; i < ops.size(); ++i)
    if (outcomes[i]->status.ok()) {
      sent.push_back(ops[i]);
      sent_out.push_back(outcomes[i]);
    }
  if (sent.empty()) return;

  auto r =
      Call("POST", "/crm/v3/objects/" + type + "/batch/" + (verb == "delete" ? "archive" : verb),
           json{{"inputs", inputs}}.dump(), true);
  if (!r.ok()) {
    for (WriteOutcome* o : sent_out) o->status = r.status();
    return;
  }
  if (r->status == 400 || r->status == 409 || r->status == 404) {
    if (sent.size() > 1) {
      // One bad input fails the whole batch: split until only the bad one fails.
      const size_t half = sent.size() / 2;
      std::vector<const WriteOp*> a(sent.begin(), sent.begin() + half),
          b(sent.begin() + half, sent.end());
      std::vector<WriteOutcome*> oa(sent_out.begin(), sent_out.begin() + half),
          ob(sent_out.begin() + half, sent_out.end());
      WriteChunk(type, setup, verb, a, oa);
      WriteChunk(type, setup, verb, b, ob);
      return;
    }
    sent_out[0]->status =
        Fail(*r, verb + " " + type + " " + (verb == "upsert" ? sent[0]->key : sent[0]->native_id));
    return;
  }
  if (verb == "delete" && r->status >= 200 && r->status < 300) {  // archive answers 204, no body
    for (size_t i = 0; i < sent.size(); ++i) sent_out[i]->native_id = sent[i]->native_id;
    return;
  }
  if (r->status != 200 && r->status != 201 && r->status != 207) {
    Status s = Fail(*r, verb + " " + type);
    for (WriteOutcome* o : sent_out) o->status = s;
    return;
  }
  auto j = ParseBody(*r, verb + " " + type);
  if (!j.ok()) {
    for (WriteOutcome* o : sent_out) o->status = j.status();
    return;
  }
  // Results are not guaranteed in input order: correlate by key (upsert) or id (update).
  const json* results = FindPath(*j, {"results"});
  std::map<std::string, const json*> by;
  if (results && results->is_array()) {
    for (const json& res : *results) {
      if (verb != "upsert") {
        by[StringAt(res, "id")] = &res;
      } else if (const json* key = FindPath(res, {"properties", setup.id_property.c_str()});
                 key && key->is_string()) {
        by[key->get<std::string>()] = &res;
      }
    }
    // A lone input needs no correlation, even if its result omits the key property.
    if (by.empty() && sent.size() == 1 && results->size() == 1) {
      by[verb == "upsert" ? sent[0]->key : sent[0]->native_id] = &(*results)[0];
    }
  }
  // Inputs that failed inside a COMPLETE batch have no result; the batch's errors[] says why,
  // naming the input in its context (ids, or the objectWriteTraceId of a create) where it can.
  std::string batch_errors;
  std::map<std::string, const json*> error_for;
  if (const json* errors = FindPath(*j, {"errors"}); errors && errors->is_array()) {
    for (const json& e : *errors) {
      if (!e.is_object() || !e.contains("message") || !e["message"].is_string()) continue;
      batch_errors += (batch_errors.empty() ? "" : "; ") + e["message"].get<std::string>();
      const json* context = FindPath(e, {"context"});
      if (context == nullptr || !context->is_object()) continue;
      for (const char* key : {"ids", "id", "objectWriteTraceId"}) {
        const json* named = FindPath(*context, {key});
        if (named == nullptr || !named->is_array()) continue;
        for (const json& n : *named)
          if (n.is_string()) error_for[n.get<std::string>()] = &e;
      }
    }
  }
  for (size_t i = 0; i < sent.size(); ++i) {
    const std::string k = verb == "upsert" ? sent[i]->key : sent[i]->native_id;
    auto hit = by.find(k);
    if (hit == by.end()) {
      auto named = error_for.find(k);
      if (named != error_for.end()) {
        // A per-input error: a data problem is permanent, anything else (an internal error, a
        // limit) is worth another attempt of this input alone. The batch's own status goes with
        // it: HubSpot answered, so the error is the input's, not an unreachable system's.
        const std::string category = StringAt(*named->second, "category");
        const bool permanent = category == "VALIDATION_ERROR" || category == "CONFLICT" ||
                               category == "OBJECT_NOT_FOUND" || category == "MISSING_SCOPES";
        sent_out[i]->status =
            Status(permanent ? StatusCode::kInvalidArgument : StatusCode::kUnavailable,
                   "hubspot: " + verb + " of " + k + ": " + category + ": " +
                       StringAt(*named->second, "message") + " correlationId=" +
                       StringAt(*named->second, "correlationId"))
                .set_http_status(r->status)
                .set_system(name_);
        continue;
      }
      // HubSpot answered, but not for this input: whether it was applied is unknown, and another
      // attempt (an upsert by its key, an update of its id) settles it; dead-lettered at once,
      // a write that may never have been applied would wait for a person.
      sent_out[i]->status =
          Status(StatusCode::kUnavailable,
                 "hubspot: " + verb + " of " + k + " has no result" +
                     (batch_errors.empty() ? "" : "; the batch reported: " + batch_errors))
              .set_http_status(r->status)
              .set_system(name_);
      continue;
    }
    sent_out[i]->native_id = StringAt(*hit->second, "id");
    if (sent_out[i]->native_id.empty()) {
      // Done, perhaps, but as no record crmbridge could link: asked again, HubSpot names it.
      sent_out[i]->status =
          Status(StatusCode::kUnavailable, "hubspot: " + verb + " of " + k +
                                               ": its result carries no record id")
              .set_http_status(r->status)
              .set_system(name_);
      continue;
    }
    const json* created = FindPath(*hit->second, {"new"});
    sent_out[i]->created = created && created->is_boolean() && created->get<bool>();
  }
}

Result<std::vector<WriteOutcome>> HubSpotConnector::Write(const ObjectRef& object,
                                                          const std::vector<WriteOp>& ops) {
  auto setup_or = Setup(object, /*for_write=*/true);
  if (!setup_or.ok()) return setup_or.status();
  const ObjectSetup& setup = **setup_or;
  if (MapsOwner(object)) CRMB_RETURN_IF_ERROR(LoadOwners());
  std::vector<WriteOutcome> outcomes(ops.size());
  for (const char* verb : {"upsert", "update", "delete"}) {
    const WriteOp::Kind kind = std::string(verb) == "upsert"   ? WriteOp::Kind::kUpsert
                               : std::string(verb) == "update" ? WriteOp::Kind::kUpdate
                                                               : WriteOp::Kind::kDelete;
    // HubSpot rejects a batch in which two inputs resolve to one record: a repeated key goes in
    // the next chunk.
    std::vector<size_t> pending;
    for (size_t i = 0; i < ops.size(); ++i)
      if (ops[i].kind == kind) pending.push_back(i);
    while (!pending.empty()) {
      std::vector<const WriteOp*> chunk;
      std::vector<WriteOutcome*> outs;
      std::vector<size_t> later;
      std::set<std::string> keys;
      for (size_t i : pending) {
        const std::string k = kind == WriteOp::Kind::kUpsert ? ops[i].key : ops[i].native_id;
        if (static_cast<int>(chunk.size()) >= hubspot::kMaxBatchInputs || !keys.insert(k).second) {
          later.push_back(i);
          continue;
        }
        chunk.push_back(&ops[i]);
        outs.push_back(&outcomes[i]);
      }
      WriteChunk(object.object, setup, verb, chunk, outs);
      // Credentials refused or the daily limit spent: no later op can fare better, and the
      // engine treats every op by this Status.
      for (const WriteOutcome* o : outs)
        if (o->status.IsSystemFatal()) return o->status;
      pending = std::move(later);
    }
  }
  // The associations before the merges: a merge gives the record a new id, and the one an
  // update of this chunk was written to is gone.
  WriteAssociations(object.object, ops, &outcomes);
  for (const WriteOutcome& o : outcomes)
    if (o.status.IsSystemFatal()) return o.status;
  for (size_t i = 0; i < ops.size(); ++i)
    if (ops[i].kind == WriteOp::Kind::kMerge) {
      outcomes[i] = MergeOne(object.object, ops[i]);
      if (outcomes[i].status.IsSystemFatal()) return outcomes[i].status;
    }
  return outcomes;
}

}  // namespace crmbridge
