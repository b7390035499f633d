#include "connectors/hubspot/hubspot_connector.h"

#include <algorithm>
#include <optional>
#include <set>

#include <spdlog/spdlog.h>

#include "connectors/hubspot/hubspot_codec.h"
#include "connectors/hubspot/hubspot_errors.h"
#include "connectors/hubspot/hubspot_limits.h"

namespace crmbridge {

using nlohmann::json;
using hubspot::DecodeCursor;
using hubspot::EncodeCursor;
using hubspot::SearchCursor;

namespace {

Result<json> ParseBody(const Response& r, const std::string& what) {
  auto j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return Status(StatusCode::kUnavailable, "hubspot: " + what + ": the response is not JSON")
        .set_system("hubspot");
  return j;
}

std::string KeyPropertyOf(const ObjectRef& object) {
  auto it = object.params.find("id_property");
  return it == object.params.end() ? "crmbridge_id" : it->second;
}

std::string GroupFor(const std::string& type) {
  if (type == "tickets") return "ticketinformation";
  if (type == "companies") return "companyinformation";
  if (type == "contacts") return "contactinformation";
  return type + "information";
}

}  // namespace

HubSpotConnector::HubSpotConnector(const SystemConfig& config,
                                   std::shared_ptr<Transport> transport, Clock* clock)
    : name_(config.name), config_(config), transport_(std::move(transport)), clock_(clock) {
  caps_.max_batch = hubspot::kMaxBatchInputs;
  caps_.max_page = hubspot::kMaxSearchPage;
  caps_.idempotent_upsert = true;
}

Result<Response> HubSpotConnector::Call(const std::string& method, const std::string& path,
                                        const std::string& body, bool idempotent) {
  Request req;
  req.method = method;
  req.url = config_.base_url + path;
  req.headers = {{"Authorization", "Bearer " + config_.auth["token"]},
                 {"Accept", "application/json"}};
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  req.body = body;
  req.timeout = config_.timeout;
  req.idempotent = idempotent;
  req.system = name_;
  auto r = transport_->Send(req);
  if (!r.ok()) {
    Status s = r.status();
    s.set_system(name_);
    return s;
  }
  return r;
}

Status HubSpotConnector::EnsureKeyProperty(const std::string& type, const std::string& name) {
  auto got = Call("GET", "/crm/v3/properties/" + type + "/" + name, "", true);
  if (!got.ok()) return got.status();
  if (got->status == 200) {
    auto j = ParseBody(*got, "reading property " + name);
    if (j.ok() && !j->value("hasUniqueValue", false))
      return Status(StatusCode::kFailedPrecondition,
                    "hubspot: property " + type + "." + name +
                        " exists but is not unique; crmbridge needs a unique key property "
                        "(set params.id_property to another name)")
          .set_system(name_);
    return Status::Ok();
  }
  if (got->status != 404) return hubspot::StatusFromHubSpot(*got, "reading property " + name);
  json def = {{"name", name},
              {"label", "crmbridge id"},
              {"description", "Key crmbridge writes on records it creates; do not edit."},
              {"type", "string"},
              {"fieldType", "text"},
              {"groupName", GroupFor(type)},
              {"hasUniqueValue", true}};
  auto created = Call("POST", "/crm/v3/properties/" + type, def.dump(), true);
  if (!created.ok()) return created.status();
  // 409: another run created it first.
  if (created->status == 201 || created->status == 200 || created->status == 409) {
    spdlog::info("hubspot: created the unique key property {}.{}", type, name);
    return Status::Ok();
  }
  return hubspot::StatusFromHubSpot(*created, "creating property " + name);
}

Status HubSpotConnector::LoadPipeline(const std::string& pipeline, ObjectSetup* setup) {
  auto r = Call("GET", "/crm/v3/pipelines/tickets", "", true);
  if (!r.ok()) return r.status();
  if (r->status != 200) return hubspot::StatusFromHubSpot(*r, "reading ticket pipelines");
  auto j = ParseBody(*r, "reading ticket pipelines");
  if (!j.ok()) return j.status();
  std::string known;
  for (const json& p : j->value("results", json::array())) {
    const std::string id = p.value("id", ""), label = p.value("label", "");
    known += (known.empty() ? "" : ", ") + std::string("\"") + label + "\" (" + id + ")";
    if (id != pipeline && label != pipeline) continue;
    setup->pipeline_id = id;
    for (const json& s : p.value("stages", json::array())) {
      setup->stage_label_by_id[s.value("id", "")] = s.value("label", "");
      setup->stage_id_by_label[s.value("label", "")] = s.value("id", "");
    }
    return Status::Ok();
  }
  return Status(StatusCode::kFailedPrecondition,
                "hubspot: no ticket pipeline named \"" + pipeline + "\"; pipelines: " + known)
      .set_system(name_);
}

Result<const HubSpotConnector::ObjectSetup*> HubSpotConnector::Setup(const ObjectRef& object) {
  auto pipeline = object.params.find("pipeline");
  const std::string cache_key =
      object.object + "|" + (pipeline == object.params.end() ? "" : pipeline->second);
  auto it = setups_.find(cache_key);
  if (it != setups_.end()) return &it->second;
  ObjectSetup setup;
  setup.id_property = KeyPropertyOf(object);
  CRMB_RETURN_IF_ERROR(EnsureKeyProperty(object.object, setup.id_property));
  if (pipeline != object.params.end()) CRMB_RETURN_IF_ERROR(LoadPipeline(pipeline->second, &setup));
  return &setups_.emplace(cache_key, std::move(setup)).first->second;
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
  if (!setup.pipeline_id.empty()) {
    props["hs_pipeline"] = setup.pipeline_id;
    if (props.contains("hs_pipeline_stage")) {
      const std::string label = props["hs_pipeline_stage"];
      auto id = setup.stage_id_by_label.find(label);
      if (id == setup.stage_id_by_label.end())
        return Status(StatusCode::kInvalidArgument,
                      "hubspot: \"" + label + "\" is not a stage of the pipeline")
            .set_system(name_);
      props["hs_pipeline_stage"] = id->second;
    }
  }
  return props;
}

Result<Page> HubSpotConnector::ReadChanges(const ObjectRef& object, const Cursor& cursor_text,
                                           const ReadContext& context) {
  auto setup_or = Setup(object);
  if (!setup_or.ok()) return setup_or.status();
  const ObjectSetup& setup = **setup_or;
  auto decoded = DecodeCursor(cursor_text);
  if (!decoded.ok()) return decoded.status();
  SearchCursor c = *decoded;
  const std::string modified = hubspot::ModifiedProperty(object.object);
  int64_t overlap_ms = 0;
  if (auto o = object.params.find("overlap_ms"); o != object.params.end())
    overlap_ms = std::stoll(o->second);

  json filters = json::array();
  if (!setup.pipeline_id.empty())
    filters.push_back({{"propertyName", "hs_pipeline"}, {"operator", "EQ"}, {"value", setup.pipeline_id}});
  json sort;
  if (c.tie_ms >= 0) {
    // More than a window's worth of records share one timestamp: page them by id.
    filters.push_back({{"propertyName", modified}, {"operator", "EQ"}, {"value", std::to_string(c.tie_ms)}});
    if (!c.last_id.empty())
      filters.push_back({{"propertyName", "hs_object_id"}, {"operator", "GT"}, {"value", c.last_id}});
    sort = {{"propertyName", "hs_object_id"}, {"direction", "ASCENDING"}};
  } else {
    const int64_t from = std::max<int64_t>(0, c.since_ms - overlap_ms);
    filters.push_back({{"propertyName", modified}, {"operator", "GTE"}, {"value", std::to_string(from)}});
    sort = {{"propertyName", modified}, {"direction", "ASCENDING"}};
  }
  json props = json::array();
  for (const std::string& f : object.fields) props.push_back(f);
  props.push_back(setup.id_property);
  props.push_back(modified);
  if (!setup.pipeline_id.empty()) props.push_back("hs_pipeline");
  const int limit = context.page_size > 0 ? std::min(context.page_size, hubspot::kMaxSearchPage)
                                          : hubspot::kMaxSearchPage;
  json body = {{"filterGroups", json::array({{{"filters", filters}}})},
               {"sorts", json::array({sort})},
               {"properties", props},
               {"limit", limit},
               {"after", std::to_string(c.after)}};

  auto r = Call("POST", "/crm/v3/objects/" + object.object + "/search", body.dump(), true);
  if (!r.ok()) return r.status();
  if (r->status != 200) return hubspot::StatusFromHubSpot(*r, "searching " + object.object);
  auto j = ParseBody(*r, "searching " + object.object);
  if (!j.ok()) return j.status();

  Page page;
  std::string last_id;
  int64_t last_modified = 0;
  try {
    for (const json& obj : j->value("results", json::array())) {
      auto rec = hubspot::RecordFromObject(obj, modified, setup.id_property);
      if (!rec.ok()) return rec.status();
      ToLabels(setup, &*rec);
      last_id = rec->id;
      last_modified = rec->modified_ms;
      c.max_seen_ms = std::max(c.max_seen_ms, rec->modified_ms);
      page.records.push_back(std::move(*rec));
    }
  } catch (const json::exception& e) {
    return Status(StatusCode::kUnavailable, std::string("hubspot: malformed search result: ") + e.what())
        .set_system(name_);
  }
  std::optional<int> next_after;
  if (j->contains("paging") && (*j)["paging"].contains("next")) {
    const json& a = (*j)["paging"]["next"]["after"];
    next_after = a.is_string() ? std::stoi(a.get<std::string>()) : a.get<int>();
  }

  SearchCursor next = c;
  if (next_after && *next_after < hubspot::kSearchRestartAt) {
    next.after = *next_after;
    page.has_more = true;
  } else if (next_after) {
    // The next page would cross the 10,000-result cap: start a new window at the last timestamp
    // (GTE, so records sharing it are read again and de-duplicated, never skipped), or page a
    // timestamp that alone fills the window by id.
    page.has_more = true;
    next.after = 0;
    if (c.tie_ms >= 0) {
      next.last_id = last_id;
    } else if (last_modified > c.since_ms) {
      next.since_ms = last_modified;
    } else {
      next.tie_ms = last_modified;
      next.last_id = last_id;
    }
  } else if (c.tie_ms >= 0) {
    // The tie is exhausted; continue after it.
    page.has_more = true;
    next = SearchCursor{};
    next.since_ms = c.tie_ms + 1;
    next.max_seen_ms = c.max_seen_ms;
  } else {
    // End of the change stream. The next run starts at the newest change seen, but never past
    // this run's start: records modified while it read are read again next time.
    page.has_more = false;
    SearchCursor done;
    const int64_t newest = c.max_seen_ms > 0 ? c.max_seen_ms : c.since_ms;
    done.since_ms = context.run_start_ms > 0 ? std::min(newest, context.run_start_ms) : newest;
    next = done;
  }
  page.next = EncodeCursor(next);
  return page;
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
      inputs.push_back({{"idProperty", setup.id_property}, {"id", ops[i]->key}, {"properties", *props}});
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

  auto r = Call("POST", "/crm/v3/objects/" + type + "/batch/" + (verb == "delete" ? "archive" : verb),
                json{{"inputs", inputs}}.dump(), true);
  if (!r.ok()) {
    for (WriteOutcome* o : sent_out) o->status = r.status();
    return;
  }
  if (r->status == 400 || r->status == 409 || r->status == 404) {
    if (sent.size() > 1) {
      // One bad input fails the whole batch: split until only the bad one fails.
      const size_t half = sent.size() / 2;
      std::vector<const WriteOp*> a(sent.begin(), sent.begin() + half), b(sent.begin() + half, sent.end());
      std::vector<WriteOutcome*> oa(sent_out.begin(), sent_out.begin() + half),
          ob(sent_out.begin() + half, sent_out.end());
      WriteChunk(type, setup, verb, a, oa);
      WriteChunk(type, setup, verb, b, ob);
      return;
    }
    sent_out[0]->status = hubspot::StatusFromHubSpot(*r, verb + " " + type + " " +
                                                              (verb == "upsert" ? sent[0]->key : sent[0]->native_id));
    return;
  }
  if (r->status == 204 && verb == "delete") {
    for (size_t i = 0; i < sent.size(); ++i) sent_out[i]->native_id = sent[i]->native_id;
    return;
  }
  if (r->status != 200 && r->status != 201 && r->status != 207) {
    Status s = hubspot::StatusFromHubSpot(*r, verb + " " + type);
    for (WriteOutcome* o : sent_out) o->status = s;
    return;
  }
  auto j = ParseBody(*r, verb + " " + type);
  if (!j.ok()) {
    for (WriteOutcome* o : sent_out) o->status = j.status();
    return;
  }
  // Results are not guaranteed in input order: correlate by key (upsert) or id (update).
  const json results = j->value("results", json::array());
  std::map<std::string, const json*> by;
  for (const json& res : results) {
    const std::string id = res.value("id", "");
    if (verb == "upsert") {
      const json& props = res.contains("properties") ? res["properties"] : json::object();
      if (props.contains(setup.id_property) && props[setup.id_property].is_string())
        by[props[setup.id_property].get<std::string>()] = &res;
    } else {
      by[id] = &res;
    }
  }
  for (size_t i = 0; i < sent.size(); ++i) {
    const std::string k = verb == "upsert" ? sent[i]->key : sent[i]->native_id;
    auto hit = by.find(k);
    if (hit == by.end()) {
      sent_out[i]->status =
          Status(StatusCode::kInvalidArgument, "hubspot: " + verb + " of " + k + " has no result")
              .set_system(name_);
      continue;
    }
    sent_out[i]->native_id = hit->second->value("id", "");
    sent_out[i]->created = hit->second->value("new", false);
  }
}

Result<std::vector<WriteOutcome>> HubSpotConnector::Write(const ObjectRef& object,
                                                          const std::vector<WriteOp>& ops) {
  auto setup_or = Setup(object);
  if (!setup_or.ok()) return setup_or.status();
  const ObjectSetup& setup = **setup_or;
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
      pending = std::move(later);
    }
  }
  return outcomes;
}

}  // namespace crmbridge
