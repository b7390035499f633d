// crm-mocks: serves the mock vendor APIs for demos, tests and benchmarks.
//
// Prints one JSON line with each mock's base URL once every one accepts connections, e.g.
//   {"dynamics365":"http://127.0.0.1:40321","hubspot":"http://127.0.0.1:40320"}
// and serves until SIGTERM or SIGINT, then stops cleanly (exit 0).
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <vector>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "mocks/dynamics365/dynamics365_mock.h"
#include "mocks/hubspot/hubspot_mock.h"

int main(int argc, char** argv) {
  using crmbridge::mocks::Dynamics365Mock;
  using crmbridge::mocks::HubSpotMock;

  CLI::App app{
      "Serves faithful in-memory mocks of the HubSpot CRM v3 API and the Dynamics 365 (Dataverse)\n"
      "Web API on loopback ports, seeded with onboarding data. When every mock is ready it prints\n"
      "one JSON line of base URLs on stdout; it stops on SIGTERM or SIGINT.",
      "crm-mocks"};
  std::string host = "127.0.0.1";
  int port_base = 0, hubspot_port = 0, d365_port = 0;
  uint64_t seed = 42;
  int size = 0;
  std::string hubspot_token = "pat-mock-hubspot";
  std::string d365_client_id = "mock-client-id", d365_client_secret = "mock-client-secret";
  bool no_limits = false;
  std::vector<std::string> faults;
  uint64_t fault_seed = 1;
  app.add_option("--host", host, "Address to bind (loopback by default)")->capture_default_str();
  app.add_option("--port-base", port_base,
                 "Bind HubSpot on this port and Dynamics 365 on the next (default: free ports)");
  app.add_option("--hubspot-port", hubspot_port, "HubSpot port (0 = any free port)");
  app.add_option("--dynamics365-port", d365_port, "Dynamics 365 port (0 = any free port)");
  app.add_option("--seed", seed, "Seed of the generated data (same seed, same data)")->capture_default_str();
  app.add_option("--size", size,
                 "Companies to generate, each with an onboarding ticket in HubSpot and an account\n"
                 "with contacts and an opportunity in Dynamics 365 (0 = start empty)");
  app.add_option("--hubspot-token", hubspot_token, "Private-app token HubSpot accepts")->capture_default_str();
  app.add_option("--dynamics365-client-id", d365_client_id, "OAuth client id Dynamics 365 accepts")
      ->capture_default_str();
  app.add_option("--dynamics365-client-secret", d365_client_secret,
                 "OAuth client secret Dynamics 365 accepts");
  app.add_flag("--no-limits", no_limits, "Do not enforce the vendors' rate limits");
  app.add_option("--fault", faults,
                 "Inject a fault: \"MOCK:[METHOD] [/path-part] [status=N] [rate=0..1] [times=N]\n"
                 "[latency=MS] [retry_after=S] [applied] [drop]\", e.g.\n"
                 "\"hubspot:POST /batch/upsert status=503 rate=0.2\" or\n"
                 "\"dynamics365:PATCH /opportunities status=504 applied\" (the write lands, the\n"
                 "client sees 504); drop breaks the connection mid-response. Repeatable; also\n"
                 "settable at run time: POST /__admin/faults");
  app.add_option("--fault-seed", fault_seed, "Seed of the fault decisions (same seed, same faults)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (port_base > 0) {
    hubspot_port = port_base;
    d365_port = port_base + 1;
  }

  // Block the stop signals before any server thread starts, so only sigwait() receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  HubSpotMock::Options hs;
  hs.tokens = {hubspot_token};
  hs.enforce_limits = !no_limits;
  HubSpotMock hubspot(hs);
  Dynamics365Mock::Options d;
  d.client_id = d365_client_id;
  d.client_secret = d365_client_secret;
  d.service_protection = !no_limits;
  Dynamics365Mock dynamics(d);
  if (size > 0) {
    hubspot.Seed(seed, size);
    dynamics.Seed(seed, size);
  }
  std::map<std::string, std::vector<crmbridge::mocks::FaultRule>> rules;
  for (const std::string& f : faults) {
    const auto colon = f.find(':');
    const std::string target = colon == std::string::npos ? "" : f.substr(0, colon);
    if (target != "hubspot" && target != "dynamics365") {
      std::cerr << "crm-mocks: --fault \"" << f << "\": start with hubspot: or dynamics365:\n";
      return 2;
    }
    auto rule = crmbridge::mocks::FaultRule::Parse(f.substr(colon + 1));
    if (!rule.ok()) {
      std::cerr << "crm-mocks: --fault: " << rule.status().message() << "\n";
      return 2;
    }
    rules[target].push_back(*rule);
  }
  hubspot.SetFaults(rules["hubspot"], fault_seed);
  dynamics.SetFaults(rules["dynamics365"], fault_seed);
  for (auto [mock, port] : {std::pair<crmbridge::mocks::MockServer*, int>{&hubspot, hubspot_port},
                            {&dynamics, d365_port}}) {
    crmbridge::Status s = mock->Start(host, port);
    if (!s.ok()) {
      std::cerr << "crm-mocks: " << s.ToString() << "\n";
      return 1;
    }
  }
  nlohmann::json ready = {{"hubspot", hubspot.base_url()}, {"dynamics365", dynamics.base_url()}};
  std::cout << ready.dump() << std::endl;

  int sig = 0;
  sigwait(&stop, &sig);
  hubspot.Stop();
  dynamics.Stop();
  return 0;
}
