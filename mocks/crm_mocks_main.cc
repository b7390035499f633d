// crm-mocks: serves the mock vendor APIs for demos, tests and benchmarks.
//
// Prints one JSON line with each mock's base URL once every one accepts connections, e.g.
//   {"dynamics365":"http://127.0.0.1:40321","hubspot":"http://127.0.0.1:40320",
//    "portal":"http://127.0.0.1:40323","totango":"http://127.0.0.1:40322"}
// and serves until SIGTERM or SIGINT, then stops cleanly (exit 0).
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "mocks/dynamics365/dynamics365_mock.h"
#include "mocks/hubspot/hubspot_mock.h"
#include "mocks/portal/portal_mock.h"
#include "mocks/totango/totango_mock.h"
#include "src/core/jwt.h"

namespace {

// The mocks in the order of --port-base: HubSpot on the base port, Dynamics 365 on the next, ...
constexpr const char* kMocks[] = {"hubspot", "dynamics365", "totango", "portal"};

}  // namespace

int main(int argc, char** argv) {
  using namespace crmbridge::mocks;

  CLI::App app{
      "Serves faithful in-memory mocks of the HubSpot CRM v3 API, the Dynamics 365 (Dataverse)\n"
      "Web API, Totango's REST and SDR APIs and the customer portal API on loopback ports, seeded\n"
      "with onboarding data. When every mock is ready it prints one JSON line of base URLs on\n"
      "stdout; it stops on SIGTERM or SIGINT.\n\n"
      "Every mock also serves /__admin/dump (its store as JSON), /__admin/reset, /__admin/stats\n"
      "(requests per route) and /__admin/faults (GET, POST a JSON list of rules, DELETE).\n"
      "The HubSpot mock delivers signed webhooks once POST /__admin/webhooks subscribes a URL,\n"
      "and the Dynamics 365 mock calls a webhook with a key once the same route registers one\n"
      "(docs/OPERATIONS.md, \"The mock servers\"). The Dynamics 365 mock keeps an audit history\n"
      "(GET audits); POST /__admin/auditing {\"enabled\": false} (or {\"table\": \"opportunity\",\n"
      "\"enabled\": false}) turns auditing off.",
      "crm-mocks"};
  std::string host = "127.0.0.1";
  int port_base = 0;
  std::map<std::string, int> ports;
  uint64_t seed = 42;
  int size = 0;
  std::string hubspot_token = "pat-mock-hubspot";
  std::string d365_client_id = "mock-client-id", d365_client_secret = "mock-client-secret";
  std::string totango_token = "totango-mock-token", totango_service_id = "SP-0000-11";
  std::string portal_token = "portal-mock-token";
  bool no_limits = false;
  int hubspot_ten_second_max = HubSpotMock::Options().ten_second_max;
  std::vector<std::string> faults;
  uint64_t fault_seed = 1;
  app.add_option("--host", host, "Address to bind (loopback by default)")->capture_default_str();
  app.add_option("--port-base", port_base,
                 "Bind HubSpot on this port, then Dynamics 365, Totango and the portal on the next\n"
                 "three (default: free ports)");
  for (const char* mock : kMocks)
    app.add_option(std::string("--") + mock + "-port", ports[mock],
                   std::string("Port of the ") + mock + " mock (0 = any free port)");
  app.add_option("--seed", seed, "Seed of the generated data (same seed, same data)")->capture_default_str();
  app.add_option("--size", size,
                 "Companies to generate: each gets an onboarding ticket with contacts and a note in\n"
                 "HubSpot, an account with contacts and an opportunity in Dynamics 365, an account\n"
                 "with users and a touchpoint in Totango, and a property with users in the portal\n"
                 "(0 = start empty)");
  int overlap = 0;
  app.add_option("--overlap", overlap,
                 "Customers HubSpot and Dynamics 365 both hold from the start: Dynamics 365 also\n"
                 "gets this many of HubSpot's seeded companies (same website domain) and their\n"
                 "contacts (same emails), as two systems about to be connected do (needs both\n"
                 "seeded; at most --size)")
      ->check(CLI::NonNegativeNumber);
  std::vector<std::string> seed_only;
  app.add_option("--seed-only", seed_only,
                 "Seed only these mocks (e.g. hubspot dynamics365); the others start empty, as a\n"
                 "system crmbridge is about to fill would")
      ->check(CLI::IsMember({"hubspot", "dynamics365", "totango", "portal"}));
  app.add_option("--hubspot-token", hubspot_token, "Private-app token HubSpot accepts")->capture_default_str();
  HubSpotMock::Options hs;
  app.add_option("--hubspot-oauth-client-id", hs.oauth_client_id,
                 "Client id of the OAuth app HubSpot knows")
      ->capture_default_str();
  app.add_option("--hubspot-oauth-client-secret", hs.oauth_client_secret,
                 "Its client secret");
  std::string hubspot_refresh_token = *hs.oauth_refresh_tokens.begin();
  app.add_option("--hubspot-refresh-token", hubspot_refresh_token,
                 "A refresh token of an installation of that app: POST /oauth/v3/token trades it\n"
                 "for access tokens");
  app.add_option("--hubspot-oauth-lifetime", hs.oauth_lifetime_s,
                 "Seconds a HubSpot OAuth access token lasts (short ones make a run refresh it)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--dynamics365-client-id", d365_client_id, "OAuth client id Dynamics 365 accepts")
      ->capture_default_str();
  app.add_option("--dynamics365-client-secret", d365_client_secret,
                 "OAuth client secret Dynamics 365 accepts");
  std::string d365_certificate;
  app.add_option("--dynamics365-certificate", d365_certificate,
                 "A certificate (PEM file) registered on the Dynamics 365 client: an assertion\n"
                 "signed with its key is accepted as the client secret is")
      ->check(CLI::ExistingFile);
  int d365_token_lifetime = Dynamics365Mock::Options().token_lifetime_seconds;
  app.add_option("--dynamics365-token-lifetime", d365_token_lifetime,
                 "Seconds an issued Dynamics 365 access token lasts (short ones make a run\n"
                 "refresh its token)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--totango-token", totango_token, "app-token Totango accepts")->capture_default_str();
  app.add_option("--totango-service-id", totango_service_id, "Service id (sdr_s) Totango's SDR accepts")
      ->capture_default_str();
  app.add_option("--portal-token", portal_token, "Bearer token the portal accepts");
  app.add_flag("--no-limits", no_limits, "Do not enforce the vendors' rate limits");
  app.add_option("--hubspot-ten-second-max", hubspot_ten_second_max,
                 "Requests per rolling 10 seconds HubSpot allows a token (100: a Free or Starter\n"
                 "private app; 190 Professional)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--fault", faults,
                 "Inject a fault: \"MOCK:[METHOD] [/path-part] [status=N] [rate=0..1] [times=N]\n"
                 "[latency=MS] [retry_after=S] [partial=0..1] [corrupt=KIND] [applied] [drop]\n"
                 "[lost]\", e.g.\n"
                 "\"hubspot:POST /batch/upsert status=503 rate=0.2\";\n"
                 "\"dynamics365:PATCH /opportunities status=504 applied\" (the write lands, the\n"
                 "client sees 504); drop breaks the connection mid-response; partial=0.1 fails a\n"
                 "tenth of a batch's items; \"totango:GET /pixel.gif lost\" answers 200 and keeps\n"
                 "nothing; corrupt= spoils a served answer: truncate, html (an HTML page with\n"
                 "200), huge (50 MB), types (a value of the wrong type), ids (empty, 10 KB),\n"
                 "text (NUL, not UTF-8), loop (the next page is this one), backwards (changes\n"
                 "dated 2001), deep (a value nested 100,000 deep), twice (a key given twice).\n"
                 "MOCK is hubspot, dynamics365, totango or portal. Repeatable; also\n"
                 "settable at run time: POST /__admin/faults");
  app.add_option("--fault-seed", fault_seed, "Seed of the fault decisions (same seed, same faults)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (port_base > 0)
    for (int i = 0; i < 4; ++i) ports[kMocks[i]] = port_base + i;

  // Block the stop signals before any server thread starts, so only sigwait() receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  hs.tokens = {hubspot_token};
  hs.oauth_refresh_tokens = {hubspot_refresh_token};
  hs.enforce_limits = !no_limits;
  hs.ten_second_max = hubspot_ten_second_max;
  auto hubspot = std::make_unique<HubSpotMock>(hs);
  Dynamics365Mock::Options d;
  d.client_id = d365_client_id;
  d.client_secret = d365_client_secret;
  d.service_protection = !no_limits;
  d.token_lifetime_seconds = d365_token_lifetime;
  if (!d365_certificate.empty()) {
    std::ifstream in(d365_certificate, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    d.certificate_pem = text.str();
    if (!crmbridge::CertificateThumbprintsOf(d.certificate_pem)) {
      std::cerr << "crm-mocks: --dynamics365-certificate " << d365_certificate
                << " holds no PEM certificate\n";
      return 2;
    }
  }
  auto dynamics = std::make_unique<Dynamics365Mock>(d);
  TotangoMock::Options t;
  t.tokens = {totango_token};
  t.service_id = totango_service_id;
  t.enforce_limits = !no_limits;
  auto totango = std::make_unique<TotangoMock>(t);
  PortalMock::Options p;
  p.tokens = {portal_token};
  p.enforce_limits = !no_limits;
  auto portal = std::make_unique<PortalMock>(p);
  auto seeded = [&](const char* mock) {
    return size > 0 && (seed_only.empty() ||
                        std::find(seed_only.begin(), seed_only.end(), mock) != seed_only.end());
  };
  if (seeded("hubspot")) hubspot->Seed(seed, size);
  if (seeded("dynamics365")) dynamics->Seed(seed, size);
  if (overlap > 0) {
    if (!seeded("hubspot") || !seeded("dynamics365")) {
      std::fprintf(stderr, "crm-mocks: --overlap needs both hubspot and dynamics365 seeded "
                           "(--size, and both in --seed-only when it is given)\n");
      return 2;
    }
    dynamics->AddCustomers(hubspot->Customers(std::min(overlap, size)));
  }
  if (seeded("totango")) totango->Seed(seed, size);
  if (seeded("portal")) portal->Seed(seed, size);
  std::map<std::string, MockServer*> mocks = {{"hubspot", hubspot.get()},
                                              {"dynamics365", dynamics.get()},
                                              {"totango", totango.get()},
                                              {"portal", portal.get()}};

  std::map<std::string, std::vector<FaultRule>> rules;
  for (const std::string& f : faults) {
    const auto colon = f.find(':');
    const std::string target = colon == std::string::npos ? "" : f.substr(0, colon);
    if (!mocks.count(target)) {
      std::cerr << "crm-mocks: --fault \"" << f
                << "\": start with hubspot:, dynamics365:, totango: or portal:\n";
      return 2;
    }
    auto rule = FaultRule::Parse(f.substr(colon + 1));
    if (!rule.ok()) {
      std::cerr << "crm-mocks: --fault: " << rule.status().message() << "\n";
      return 2;
    }
    rules[target].push_back(*rule);
  }
  nlohmann::json ready = nlohmann::json::object();
  for (const auto& [name, mock] : mocks) {
    mock->SetFaults(rules[name], fault_seed);
    crmbridge::Status s = mock->Start(host, ports[name]);
    if (!s.ok()) {
      std::cerr << "crm-mocks: " << s.ToString() << "\n";
      return 1;
    }
    ready[name] = mock->base_url();
  }
  std::cout << ready.dump() << std::endl;

  int sig = 0;
  sigwait(&stop, &sig);
  for (auto& [name, mock] : mocks) mock->Stop();
  return 0;
}
