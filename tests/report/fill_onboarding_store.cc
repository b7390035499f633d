// Fills a state store, through the Store API as the engine does, with onboardings that went through
// the HubSpot process over the two months before a date: some on time, some stuck in a stage, some
// past the 60-day rule, some closed, one reopened after closing. The HTML report test renders it.
//   usage: fill_onboarding_store STATE_PATH AS_OF (2026-03-01T12:00:00Z)
#include <cstdio>
#include <string>
#include <vector>

#include "src/core/time_util.h"
#include "state/store.h"

namespace {

using crmbridge::Snapshot;
using crmbridge::StageTransition;
using crmbridge::StateBatch;

struct Move {
  double days_ago;
  const char* system;
  const char* stage;
};

struct Customer {
  const char* id;
  const char* title;
  std::vector<Move> moves;  // oldest first
};

const std::vector<Customer> kCustomers = {
    {"6f1c0a9e-0001", "SE Nordvik Bygg AB",
     {{45, "hubspot", "new"}, {44, "hubspot", "onboarding"}, {14, "hubspot", "follow_up"}}},
    // A name that must come out as text, never as markup.
    {"6f1c0a9e-0002", "SE Lindqvist & Söner <Logistik>",
     {{70, "hubspot", "new"}, {69, "hubspot", "onboarding"}, {39, "hubspot", "follow_up"},
      {9, "hubspot", "inactive"}}},
    {"6f1c0a9e-0003", "SE Åkesson Vård", {{36, "hubspot", "new"}, {35, "dynamics365", "onboarding"}}},
    {"6f1c0a9e-0004", "SE Berg Consulting",
     {{20, "hubspot", "new"}, {19, "hubspot", "onboarding"}, {12, "totango", "closed"}}},
    {"6f1c0a9e-0005", "SE Hallberg Fastigheter", {{3, "hubspot", "new"}}},
    {"6f1c0a9e-0006", "SE Ekström IT",
     {{12, "hubspot", "new"}, {11, "hubspot", "onboarding"}, {6, "hubspot", "manual_follow_up"}}},
    // Closed, then reopened in Totango: the clock starts again.
    {"6f1c0a9e-0007", "SE Sjöberg Redovisning",
     {{50, "hubspot", "new"}, {49, "hubspot", "onboarding"}, {40, "hubspot", "closed"},
      {8, "totango", "onboarding"}}},
    {"6f1c0a9e-0008", "SE Dahl Transport", {{33, "hubspot", "new"}}},
    {"6f1c0a9e-0009", "SE Forsberg Media", {{9, "hubspot", "new"}, {8, "dynamics365", "onboarding"}}},
    {"6f1c0a9e-0010", "SE Wikström Kliniker",
     {{62, "hubspot", "new"}, {61, "hubspot", "onboarding"}, {31, "hubspot", "follow_up"},
      {1, "hubspot", "inactive"}}},
    {"6f1c0a9e-0011", "SE Nyström Design",
     {{25, "hubspot", "new"}, {24, "hubspot", "onboarding"}, {2, "hubspot", "closed"}}},
    // A long name of wide letters: the report must cut it at its end, inside its column.
    {"6f1c0a9e-0012", "SE WÅWMÖ Bygg Göteborg 14 AB – onboarding of the whole group",
     {{16, "hubspot", "new"}, {15, "hubspot", "onboarding"}}},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s STATE_PATH AS_OF\n", argv[0]);
    return 2;
  }
  const auto as_of = crmbridge::ParseIsoUtcMillis(argv[2]);
  if (!as_of) {
    std::fprintf(stderr, "AS_OF must be an ISO-8601 UTC time, not %s\n", argv[2]);
    return 2;
  }
  auto store = crmbridge::OpenSqliteStore(argv[1]);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  auto at = [&](double days_ago) { return *as_of - static_cast<int64_t>(days_ago * 86'400'000); };
  StateBatch batch;
  for (const Customer& c : kCustomers) {
    std::string from;
    for (const Move& m : c.moves) {
      batch.AddStageTransition(StageTransition{"onboarding", c.id, m.system, from, m.stage, at(m.days_ago)});
      from = m.stage;
    }
    Snapshot snap;
    snap.entity = "onboarding";
    snap.canonical_id = c.id;
    snap.fields = {{"title", c.title}, {"stage", from}, {"priority", "medium"}};
    snap.changed_ms = {{"stage", at(c.moves.back().days_ago)}};
    snap.updated_ms = at(c.moves.back().days_ago);
    batch.PutSnapshot(snap);
  }
  if (auto s = (*store)->Apply(batch); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%zu onboardings written to %s\n", kCustomers.size(), argv[1]);
  return 0;
}
