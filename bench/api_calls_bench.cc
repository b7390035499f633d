// API-call efficiency against the in-process mocks, through the real connectors and transport
// stack (BuildConnectors), counted by the mocks themselves (MockServer::Stats(), what
// /__admin/stats serves).
//
//   crmbridge_bench_api_calls [--records N] [--changed-percent 1] [--skip-bidirectional]
//
// A. The onboarding preset, HubSpot -> Dynamics 365: HubSpot seeded with N onboarding tickets,
//    Dynamics 365 empty. Runs: 1 initial sync, 2 idle, 3 after changing 1% of the tickets in
//    HubSpot, 4 idle again.
// B. Both directions, to exercise HubSpot's batch writes: the preset with every Dynamics 365 field
//    made two-way and HubSpot receiving creates; HubSpot holds N tickets and Dynamics 365 N opportunities. Runs: 1 initial (each
//    side's records created in the other), 2 (reads crmbridge's own writes back once), 3 idle.
//
// Write calls are compared with the minimum, per entity ceil(records / batch maximum): HubSpot 100
// inputs per batch call (and per association type written), Dynamics 365 1000 requests per $batch.
// Rate limits are off here (mocks and client): pacing changes when calls happen, not how many there
// are; crmbridge_bench_backfill measures it. Exits 1 when a run did not do its work: records not
// created or updated, dead letters, write calls in a run that has nothing to write (ctest runs it
// with --records 200, label bench).
#include <httplib.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "bench/bench_util.h"
#include "mocks/dynamics365/dynamics365_mock.h"
#include "mocks/hubspot/hubspot_mock.h"
#include "src/engine/bootstrap.h"

namespace crmbridge::bench {
namespace {

using nlohmann::json;

enum class Kind { kAuth, kSetup, kRead, kWrite };

// What a route is, from the mocks' "METHOD /route" names.
Kind Classify(const std::string& route) {
  if (route.find("/token") != std::string::npos) return Kind::kAuth;
  if (route.find("/properties") != std::string::npos || route.find("/pipelines") != std::string::npos ||
      route.find("$metadata") != std::string::npos)
    return Kind::kSetup;
  if (route.rfind("GET ", 0) == 0 || route.find("/search") != std::string::npos ||
      route.find("/batch/read") != std::string::npos)
    return Kind::kRead;
  return Kind::kWrite;
}
const char* KindName(Kind k) {
  switch (k) {
    case Kind::kAuth: return "auth";
    case Kind::kSetup: return "setup";
    case Kind::kRead: return "read";
    case Kind::kWrite: return "write";
  }
  return "?";
}

json Diff(const json& after, const json& before) {
  json d = json::object();
  for (const auto& [route, count] : after.items()) {
    const int64_t b = before.contains(route) ? before[route].get<int64_t>() : 0;
    if (count.get<int64_t>() - b > 0) d[route] = count.get<int64_t>() - b;
  }
  return d;
}

struct Tally {
  int64_t by_kind[4] = {0, 0, 0, 0};
  int64_t total() const { return by_kind[0] + by_kind[1] + by_kind[2] + by_kind[3]; }
};

Tally Print(const char* system, const json& diff) {
  Tally t;
  for (const auto& [route, count] : diff.items()) {
    const Kind k = Classify(route);
    t.by_kind[static_cast<int>(k)] += count.get<int64_t>();
    std::printf("      %-12s %-6s %6" PRId64 "  %s\n", system, KindName(k), count.get<int64_t>(),
                route.c_str());
  }
  if (diff.empty()) std::printf("      %-12s (no call)\n", system);
  return t;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

class Scenario {
 public:
  Scenario(const std::string& name, int64_t hubspot_tickets, int64_t d365_opportunities,
           bool two_way)
      : dir_("crmbridge-bench-api") {
    mocks::HubSpotMock::Options hs;
    hs.tokens = {"pat-bench"};
    hs.enforce_limits = false;
    hubspot_ = std::make_unique<mocks::HubSpotMock>(hs);
    mocks::Dynamics365Mock::Options d;
    d.client_id = "bench-client";
    d.client_secret = "bench-secret";
    d.service_protection = false;
    dynamics_ = std::make_unique<mocks::Dynamics365Mock>(d);
    if (hubspot_tickets > 0) hubspot_->Seed(11, static_cast<int>(hubspot_tickets));
    if (d365_opportunities > 0) dynamics_->Seed(12, static_cast<int>(d365_opportunities));
    if (!hubspot_->Start().ok() || !dynamics_->Start().ok()) {
      std::fprintf(stderr, "%s: the mocks did not start\n", name.c_str());
      std::exit(1);
    }

    std::string mapping = std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/onboarding.yaml";
    if (two_way) {
      // The preset with Dynamics 365's fields read as well as written, and HubSpot receiving
      // what is created in Dynamics 365.
      std::ifstream in(mapping);
      std::stringstream text;
      text << in.rdbuf();
      std::string yaml = text.str();
      for (size_t at; (at = yaml.find(", direction: out")) != std::string::npos;)
        yaml.erase(at, std::string(", direction: out").size());
      for (size_t at; (at = yaml.find("create: false")) != std::string::npos;)
        yaml.replace(at, std::string("create: false").size(), "create: true");
      mapping = dir_.path() + "/onboarding-two-way.yaml";
      std::ofstream(mapping) << yaml;
    }
    config_.path = dir_.path() + "/crmbridge.yaml";
    config_.state_path = dir_.path() + "/state.db";
    config_.mapping_paths = {mapping};
    SystemConfig h;
    h.name = h.kind = "hubspot";
    h.base_url = hubspot_->base_url();
    h.auth = {{"token", "pat-bench"}};
    SystemConfig m;
    m.name = m.kind = "dynamics365";
    m.base_url = dynamics_->base_url();
    m.auth = {{"token_url", dynamics_->token_url()},
              {"client_id", "bench-client"},
              {"client_secret", "bench-secret"}};
    config_.systems = {{"hubspot", h}, {"dynamics365", m}};
    auto plan = LoadPlanFor(config_);
    if (!plan.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), plan.status().ToString().c_str());
      std::exit(1);
    }
    plan_ = *plan;
    auto store = OpenSqliteStore(config_.state_path);
    if (!store.ok()) std::exit(1);
    store_ = std::move(*store);
  }
  ~Scenario() {
    hubspot_->Stop();
    dynamics_->Stop();
  }

  struct Calls {
    Tally hubspot, dynamics;
    RunSummary summary;
  };

  Calls Sync(const char* label) {
    const json hs_before = hubspot_->Stats(), d_before = dynamics_->Stats();
    auto connectors = BuildConnectors(config_, *plan_, Clock::Real());
    if (!connectors.ok()) std::exit(1);
    SyncEngine engine(&config_, plan_, store_.get(), std::move(*connectors), Clock::Real());
    RunOptions opt;
    opt.holder = "bench";
    const Sample a = Sample::Now();
    auto s = engine.RunOnce(opt);
    const Sample b = Sample::Now();
    if (!s.ok() || !s->unreachable.empty()) {
      std::fprintf(stderr, "%s: %s\n", label, s.ok() ? s->ToJson().dump().c_str() : s.status().ToString().c_str());
      std::exit(1);
    }
    Calls c;
    c.summary = *s;
    std::printf("    %s (%.1f s wall)\n", label, b.wall_s - a.wall_s);
    for (const auto& [system, entities] : s->counts)
      for (const auto& [entity, n] : entities)
        std::printf("      %-12s read %" PRId64 " (changed %" PRId64 ", unchanged %" PRId64
                    "), created %" PRId64 ", updated %" PRId64 "\n",
                    system.c_str(), n.read, n.changed, n.unchanged, n.created, n.updated);
    c.hubspot = Print("hubspot", Diff(hubspot_->Stats(), hs_before));
    c.dynamics = Print("dynamics365", Diff(dynamics_->Stats(), d_before));
    return c;
  }

  // The fewest write calls that could deliver what `run` wrote to `system`: per entity,
  // ceil(records / batch maximum), as every entity is its own object type and batch; where
  // references cost calls of their own (HubSpot associations, one batch per associated type),
  // that again per reference field.
  int64_t MinimumWrites(const Calls& run, const std::string& system, int64_t batch,
                        bool references_cost_calls) const {
    int64_t minimum = 0;
    auto counts = run.summary.counts.find(system);
    if (counts == run.summary.counts.end()) return 0;
    for (const auto& [entity, c] : counts->second) {
      const int64_t records = c.created + c.updated;
      int64_t per_record_calls = 1;
      if (const SystemEntityMapping* m = plan_->Find(system, entity); m && references_cost_calls)
        for (const FieldMap& f : m->fields)
          if (!f.ref_entity.empty() && f.writes()) ++per_record_calls;
      minimum += CeilDiv(records, batch) * per_record_calls;
    }
    return minimum;
  }

  // How many records of `collection` a mock holds (its /__admin/dump).
  int64_t Held(const std::string& system, const std::string& collection) const {
    const json dump = system == "hubspot" ? hubspot_->Dump() : dynamics_->Dump();
    return dump.contains(collection) ? static_cast<int64_t>(dump[collection].size()) : 0;
  }

  // Changes the description of every `every`-th ticket in HubSpot, as a user would (batch update,
  // 100 per call), outside the counted runs. Returns how many were changed.
  int64_t ChangeTickets(int64_t every) {
    // The mock's timestamps have millisecond resolution: the change must be later than the cursor.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const json tickets = hubspot_->Dump()["tickets"];
    httplib::Client client(hubspot_->base_url());
    const httplib::Headers auth = {{"Authorization", "Bearer pat-bench"}};
    json inputs = json::array();
    int64_t changed = 0;
    auto send = [&] {
      if (inputs.empty()) return;
      auto r = client.Post("/crm/v3/objects/tickets/batch/update", auth,
                           json{{"inputs", inputs}}.dump(), "application/json");
      if (!r || r->status >= 300) {
        std::fprintf(stderr, "changing tickets failed: %s\n", r ? r->body.c_str() : "no answer");
        std::exit(1);
      }
      inputs = json::array();
    };
    for (size_t i = 0; i < tickets.size(); i += static_cast<size_t>(every)) {
      const json& t = tickets[i];
      const std::string id = t["id"].is_string() ? t["id"].get<std::string>() : t["id"].dump();
      inputs.push_back({{"id", id}, {"properties", {{"content", "Changed by the benchmark " + id}}}});
      ++changed;
      if (inputs.size() == 100) send();
    }
    send();
    return changed;
  }

 private:
  TempDir dir_;
  std::unique_ptr<mocks::HubSpotMock> hubspot_;
  std::unique_ptr<mocks::Dynamics365Mock> dynamics_;
  AppConfig config_;
  std::shared_ptr<const MappingPlan> plan_;
  std::unique_ptr<Store> store_;
};

void Verdict(const char* what, int64_t calls, int64_t minimum) {
  std::printf("    %-58s %6" PRId64 " calls, minimum %6" PRId64 " -> %s\n", what, calls, minimum,
              calls <= minimum ? "at the minimum" : "ABOVE the minimum");
}

int64_t Writes(const Scenario::Calls& c) { return c.hubspot.by_kind[3] + c.dynamics.by_kind[3]; }

int Main(int argc, char** argv) {
  Checks checks;
  // Counts are only worth comparing with the minimum if the runs did their work: every run
  // delivers what it queued, and an idle run makes no write call.
  auto delivered_all = [&](const char* run, const Scenario::Calls& c) {
    checks.Expect(c.summary.TotalDeadLettered() == 0, "%s dead-lettered %" PRId64 " writes", run,
                  c.summary.TotalDeadLettered());
  };
  auto idle_run = [&](const char* run, const Scenario::Calls& c) {
    delivered_all(run, c);
    checks.Expect(Writes(c) == 0, "%s made %" PRId64 " write calls", run, Writes(c));
  };
  Flags flags(argc, argv,
              "API calls per object against the in-process mocks, through the real connectors:\n"
              "A. HubSpot -> Dynamics 365 (initial, idle, a share changed, idle); B. both directions.");
  const int64_t n = flags.Int("records", 10000, "records seeded in each system");
  const int64_t percent =
      flags.Int("changed-percent", 1, "share of the tickets changed before A's third run");
  const bool skip_bidirectional = flags.Bool("skip-bidirectional", "run A only");
  if (const int rc = flags.Done(); rc >= 0) return rc;
  std::printf("crmbridge API-call benchmark (in-process mocks, real connectors and transports)\n");
  std::printf("  reproduce: %s\n", CommandLine(argc, argv).c_str());
  std::printf("  machine:   %s\n", Machine().c_str());
  std::printf("  records:   %" PRId64 " per seeded system\n\n", n);

  {
    std::printf("A. onboarding preset, HubSpot -> Dynamics 365 (%" PRId64 " tickets)\n", n);
    Scenario a("A", n, 0, false);
    Scenario::Calls first = a.Sync("run 1: initial sync");
    Scenario::Calls idle = a.Sync("run 2: idle");
    const int64_t changed = a.ChangeTickets(std::max<int64_t>(1, 100 / std::max<int64_t>(percent, 1)));
    std::printf("    (changed the description of %" PRId64 " tickets in HubSpot)\n", changed);
    Scenario::Calls incr = a.Sync("run 3: incremental after the change");
    Scenario::Calls idle2 = a.Sync("run 4: idle");
    std::printf("  verdicts\n");
    Verdict("run 1 Dynamics 365 writes ($batch of <= 1000 per entity)", first.dynamics.by_kind[3],
            a.MinimumWrites(first, "dynamics365", 1000, false));
    Verdict("run 1 HubSpot writes (nothing to write there)", first.hubspot.by_kind[3], 0);
    Verdict("run 3 Dynamics 365 writes", incr.dynamics.by_kind[3],
            a.MinimumWrites(incr, "dynamics365", 1000, false));
    for (const auto* idle_run : {&idle, &idle2}) {
      const char* name = idle_run == &idle ? "run 2" : "run 4";
      std::printf("    %s idle: writes HubSpot %" PRId64 ", Dynamics 365 %" PRId64
                  "; reads HubSpot %" PRId64 " (+%" PRId64 " setup), Dynamics 365 %" PRId64
                  " (+%" PRId64 " setup, %" PRId64 " auth)\n",
                  name, idle_run->hubspot.by_kind[3], idle_run->dynamics.by_kind[3],
                  idle_run->hubspot.by_kind[2], idle_run->hubspot.by_kind[1],
                  idle_run->dynamics.by_kind[2], idle_run->dynamics.by_kind[1],
                  idle_run->dynamics.by_kind[0]);
    }
    delivered_all("A run 1", first);
    const EntityCounts created = CountsOf(first.summary, "dynamics365", "onboarding");
    checks.Expect(created.created == n && a.Held("dynamics365", "opportunities") == n,
                  "A run 1 created %" PRId64 " opportunities, Dynamics 365 holds %" PRId64
                  ", not %" PRId64,
                  created.created, a.Held("dynamics365", "opportunities"), n);
    checks.Expect(first.hubspot.by_kind[3] == 0, "A run 1 made %" PRId64 " write calls to HubSpot",
                  first.hubspot.by_kind[3]);
    idle_run("A run 2 (idle)", idle);
    delivered_all("A run 3", incr);
    const EntityCounts updated = CountsOf(incr.summary, "dynamics365", "onboarding");
    checks.Expect(updated.updated == changed && incr.summary.TotalWrites() == changed,
                  "A run 3 updated %" PRId64 " opportunities and wrote %" PRId64
                  " records for %" PRId64 " changed tickets",
                  updated.updated, incr.summary.TotalWrites(), changed);
    idle_run("A run 4 (idle)", idle2);
    std::printf("\n");
  }

  if (!skip_bidirectional) {
    std::printf("B. both directions (%" PRId64 " tickets in HubSpot, %" PRId64
                " opportunities in Dynamics 365)\n", n, n);
    Scenario b("B", n, n, true);
    Scenario::Calls first = b.Sync("run 1: initial sync");
    Scenario::Calls echo = b.Sync("run 2: reads crmbridge's own writes back");
    Scenario::Calls idle = b.Sync("run 3: idle");
    std::printf("  verdicts\n");
    Verdict("run 1 HubSpot writes (upserts and associations of <= 100)", first.hubspot.by_kind[3],
            b.MinimumWrites(first, "hubspot", 100, true));
    Verdict("run 1 Dynamics 365 writes ($batch of <= 1000 per entity)", first.dynamics.by_kind[3],
            b.MinimumWrites(first, "dynamics365", 1000, false));
    Verdict("run 2 writes (echoes only)", echo.hubspot.by_kind[3] + echo.dynamics.by_kind[3], 0);
    std::printf("    run 3 idle: writes %" PRId64 "; reads HubSpot %" PRId64 " (+%" PRId64
                " setup), Dynamics 365 %" PRId64 " (+%" PRId64 " auth)\n",
                idle.hubspot.by_kind[3] + idle.dynamics.by_kind[3], idle.hubspot.by_kind[2],
                idle.hubspot.by_kind[1], idle.dynamics.by_kind[2], idle.dynamics.by_kind[0]);
    delivered_all("B run 1", first);
    const int64_t to_hubspot = CountsOf(first.summary, "hubspot", "onboarding").created;
    const int64_t to_dynamics = CountsOf(first.summary, "dynamics365", "onboarding").created;
    checks.Expect(to_hubspot == n && to_dynamics == n,
                  "B run 1 created %" PRId64 " tickets in HubSpot and %" PRId64
                  " opportunities in Dynamics 365, not %" PRId64 " each",
                  to_hubspot, to_dynamics, n);
    checks.Expect(
        b.Held("hubspot", "tickets") == 2 * n && b.Held("dynamics365", "opportunities") == 2 * n,
        "B after run 1: HubSpot holds %" PRId64 " tickets, Dynamics 365 %" PRId64
        " opportunities, not %" PRId64 " each",
        b.Held("hubspot", "tickets"), b.Held("dynamics365", "opportunities"), 2 * n);
    idle_run("B run 2 (echoes)", echo);
    idle_run("B run 3 (idle)", idle);
  }
  return checks.ExitCode();
}

}  // namespace
}  // namespace crmbridge::bench

int main(int argc, char** argv) {
  // Line by line, so that piped figures and the log lines on stderr come out in order.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return crmbridge::bench::Main(argc, argv);
}
