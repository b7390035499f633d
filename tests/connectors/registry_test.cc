// The connector registry: kinds it knows, configurations it refuses, without any I/O.
#include "connectors/registry.h"

#include <gtest/gtest.h>

#include <fstream>
#include <optional>

#include <string>
#include <vector>

#include "src/core/fake_transport.h"

namespace crmbridge {
namespace {

SystemConfig HubSpot() {
  SystemConfig c;
  c.name = "crm";
  c.kind = "hubspot";
  c.base_url = "https://api.hubapi.com";
  c.auth = {{"token", "pat-na1-x"}};
  return c;
}

SystemConfig Dynamics() {
  SystemConfig c;
  c.name = "erp";
  c.kind = "dynamics365";
  c.base_url = "https://org.crm.dynamics.com";
  c.auth = {{"token_url", "https://login.microsoftonline.com/t/oauth2/v2.0/token"},
            {"client_id", "id"},
            {"client_secret", "secret"},
            {"scope", "https://org.crm.dynamics.com/.default"}};
  return c;
}

TEST(RegistryTest, BuildsEachKnownKindWithoutSendingAnything) {
  auto transport = std::make_shared<FakeTransport>();
  FakeClock clock;
  auto hs = NewConnector(HubSpot(), transport, &clock);
  ASSERT_TRUE(hs.ok()) << hs.status().ToString();
  EXPECT_EQ((*hs)->Name(), "crm") << "the configured system name, persisted in links";
  EXPECT_EQ((*hs)->capabilities().max_batch, 100);
  auto d365 = NewConnector(Dynamics(), transport, &clock);
  ASSERT_TRUE(d365.ok()) << d365.status().ToString();
  EXPECT_EQ((*d365)->Name(), "erp");
  EXPECT_EQ(transport->request_count(), 0u);
}

SystemConfig Totango() {
  SystemConfig c;
  c.name = "cs";
  c.kind = "totango";
  c.base_url = "https://api.totango.com";
  c.auth = {{"app_token", "t"}};
  c.options = {{"service_id", "SP-0000-11"}};
  return c;
}

SystemConfig Portal() {
  SystemConfig c;
  c.name = "tenants";
  c.kind = "portal";
  c.base_url = "https://portal.example.com";
  c.auth = {{"token", "t"}};
  return c;
}

// The kind-level declarations, which an instance must not contradict.
void ExpectSameKindCapabilities(const Capabilities& instance, const Capabilities& kind) {
  EXPECT_LE(instance.max_batch, kind.max_batch);
  EXPECT_EQ(instance.max_page, kind.max_page);
  EXPECT_EQ(instance.idempotent_upsert, kind.idempotent_upsert);
  EXPECT_EQ(instance.modified_precision_ms, kind.modified_precision_ms);
  EXPECT_EQ(instance.carries_references, kind.carries_references);
  EXPECT_EQ(instance.binds_lookups, kind.binds_lookups);
  EXPECT_EQ(instance.provisions_portal_access, kind.provisions_portal_access);
  EXPECT_EQ(instance.acknowledges_unapplied_writes, kind.acknowledges_unapplied_writes);
  EXPECT_EQ(instance.rate_limit_exempt_paths, kind.rate_limit_exempt_paths);
}

TEST(RegistryTest, EachKindDeclaresWhatItCanDo) {
  EXPECT_EQ(ConnectorKinds(), (std::vector<std::string>{"hubspot", "dynamics365", "portal", "totango"}));
  for (const std::string& kind : ConnectorKinds())
    EXPECT_NE(CapabilitiesOfKind(kind), nullptr) << kind;
  EXPECT_EQ(CapabilitiesOfKind("salesforce"), nullptr);
  EXPECT_EQ(CapabilitiesOfKind(""), nullptr);

  const Capabilities& hubspot = *CapabilitiesOfKind("hubspot");
  EXPECT_TRUE(hubspot.carries_references);
  EXPECT_FALSE(hubspot.binds_lookups);
  EXPECT_EQ(hubspot.modified_precision_ms, 1);

  const Capabilities& dynamics = *CapabilitiesOfKind("dynamics365");
  EXPECT_TRUE(dynamics.carries_references);
  EXPECT_TRUE(dynamics.binds_lookups);
  EXPECT_EQ(dynamics.modified_precision_ms, 1000);

  const Capabilities& portal = *CapabilitiesOfKind("portal");
  EXPECT_TRUE(portal.provisions_portal_access);
  EXPECT_FALSE(portal.carries_references);

  const Capabilities& totango = *CapabilitiesOfKind("totango");
  EXPECT_TRUE(totango.acknowledges_unapplied_writes);
  EXPECT_TRUE(totango.carries_references);  // a user's, touchpoint's or task's account
  EXPECT_EQ(totango.rate_limit_exempt_paths, std::vector<std::string>{"/pixel.gif"});

  for (const char* kind : {"hubspot", "dynamics365", "portal"}) {
    SCOPED_TRACE(kind);
    EXPECT_FALSE(CapabilitiesOfKind(kind)->acknowledges_unapplied_writes);
    EXPECT_TRUE(CapabilitiesOfKind(kind)->rate_limit_exempt_paths.empty());
  }
  for (const char* kind : {"hubspot", "totango", "dynamics365"})
    EXPECT_FALSE(CapabilitiesOfKind(kind)->provisions_portal_access) << kind;
}

TEST(RegistryTest, ABuiltConnectorCanDoWhatItsKindDeclares) {
  auto transport = std::make_shared<FakeTransport>();
  FakeClock clock;
  SystemConfig small_batches = Dynamics();
  small_batches.options["batch_size"] = "100";
  for (const SystemConfig& config : {HubSpot(), Dynamics(), small_batches, Totango(), Portal()}) {
    SCOPED_TRACE(config.kind);
    auto connector = NewConnector(config, transport, &clock);
    ASSERT_TRUE(connector.ok()) << connector.status().ToString();
    ExpectSameKindCapabilities((*connector)->capabilities(), *CapabilitiesOfKind(config.kind));
  }
  auto lowered = NewConnector(small_batches, transport, &clock);
  ASSERT_TRUE(lowered.ok());
  EXPECT_EQ((*lowered)->capabilities().max_batch, 100) << "the configuration lowers the batch";
  EXPECT_EQ(CapabilitiesOfKind("dynamics365")->max_batch, 1000);
  EXPECT_EQ(transport->request_count(), 0u);
}

TEST(RegistryTest, OnlyAKindWhoseApiDepartsFromHttpHasAnHttpClassifier) {
  HttpClassifier hubspot = HttpClassifierOfKind("hubspot");
  ASSERT_TRUE(hubspot);
  Response locked;
  locked.status = 423;
  auto reading = hubspot(locked);
  ASSERT_TRUE(reading.has_value());
  EXPECT_EQ(reading->code, StatusCode::kUnavailable);
  for (const char* kind : {"dynamics365", "portal", "totango", "salesforce"})
    EXPECT_FALSE(HttpClassifierOfKind(kind)) << kind;
}

TEST(RegistryTest, TwoSystemsSpendOneAccountWhenTheirUrlAndIdentityAgree) {
  const std::string hubspot = AccountOf(HubSpot());
  EXPECT_EQ(hubspot.rfind("hubspot:", 0), 0u) << hubspot;
  EXPECT_EQ(hubspot.size(), std::string("hubspot:").size() + 24);
  // Nothing of the token shows in what may be stored and logged.
  EXPECT_EQ(hubspot.find("pat-na1-x"), std::string::npos);

  SystemConfig same = HubSpot();
  same.name = "other-name";
  same.base_url = "HTTPS://API.HubAPI.com/";  // scheme and host fold; a trailing '/' is no path
  EXPECT_EQ(AccountOf(same), hubspot);

  SystemConfig other_app = HubSpot();
  other_app.auth["token"] = "pat-na1-y";
  EXPECT_NE(AccountOf(other_app), hubspot);
  SystemConfig other_host = HubSpot();
  other_host.base_url = "https://api.hubapi.eu";
  EXPECT_NE(AccountOf(other_host), hubspot);

  // Dynamics 365 counts per application user of one organization: the secret is no part of it,
  // so rotating it keeps the account; another organization or user is another account.
  const std::string dynamics = AccountOf(Dynamics());
  SystemConfig rotated = Dynamics();
  rotated.auth["client_secret"] = "rotated";
  EXPECT_EQ(AccountOf(rotated), dynamics);
  SystemConfig other_user = Dynamics();
  other_user.auth["client_id"] = "id2";
  EXPECT_NE(AccountOf(other_user), dynamics);
  SystemConfig other_org = Dynamics();
  other_org.base_url = "https://org2.crm.dynamics.com";
  EXPECT_NE(AccountOf(other_org), dynamics);
  // A path is part of the URL as given (case kept).
  SystemConfig path = Dynamics();
  path.base_url += "/A";
  SystemConfig lower_path = Dynamics();
  lower_path.base_url += "/a";
  EXPECT_NE(AccountOf(path), AccountOf(lower_path));

  // The same values under another kind are another account.
  SystemConfig portal = HubSpot();
  portal.kind = "portal";
  EXPECT_NE(AccountOf(portal), hubspot);
  for (const std::string& kind : ConnectorKinds())
    EXPECT_FALSE(CapabilitiesOfKind(kind)->account_keys.empty()) << kind;
}

TEST(RegistryTest, UnknownKindIsAFailedPrecondition) {
  SystemConfig c = HubSpot();
  c.kind = "salesforce";
  auto r = NewConnector(c, std::make_shared<FakeTransport>(), Clock::Real());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("salesforce"), std::string::npos);
  EXPECT_NE(r.status().message().find("hubspot, dynamics365"), std::string::npos);
}

TEST(RegistryTest, ValidatesEachKindsConfiguration) {
  EXPECT_TRUE(ValidateSystemConfig(HubSpot()).ok());
  EXPECT_TRUE(ValidateSystemConfig(Dynamics()).ok());

  SystemConfig no_token = HubSpot();
  no_token.auth.clear();
  Status s = ValidateSystemConfig(no_token);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("auth.token"), std::string::npos);
  EXPECT_NE(s.message().find("'crm'"), std::string::npos) << "names the system";

  SystemConfig oauth = HubSpot();
  oauth.auth = {{"client_id", "a"}, {"client_secret", "b"}, {"refresh_token", "c"}};
  EXPECT_TRUE(ValidateSystemConfig(oauth).ok()) << "an OAuth app";
  oauth.auth.erase("client_secret");
  EXPECT_NE(ValidateSystemConfig(oauth).message().find("auth.client_secret is missing"),
            std::string::npos);

  SystemConfig bad_url = HubSpot();
  bad_url.base_url = "api.hubapi.com";
  EXPECT_EQ(ValidateSystemConfig(bad_url).code(), StatusCode::kFailedPrecondition);

  SystemConfig no_secret = Dynamics();
  no_secret.auth.erase("client_secret");
  EXPECT_NE(ValidateSystemConfig(no_secret).message().find("auth.client_secret"),
            std::string::npos);

  SystemConfig no_scope = Dynamics();
  no_scope.auth.erase("scope");
  EXPECT_TRUE(ValidateSystemConfig(no_scope).ok()) << "scope defaults to <base_url>/.default";

  SystemConfig bad_version = Dynamics();
  bad_version.options["api_version"] = "9.2";
  EXPECT_NE(ValidateSystemConfig(bad_version).message().find("api_version"), std::string::npos);
  bad_version.options["api_version"] = "v9.1";
  EXPECT_TRUE(ValidateSystemConfig(bad_version).ok());
}

// Each kind declares its auth keys and options; a typo in either is refused with the nearest.
TEST(RegistryTest, AnAuthKeyOrOptionTheKindDoesNotTakeIsRefused) {
  SystemConfig typo = Dynamics();
  typo.options["batchsize"] = "100";
  Status s = ValidateSystemConfig(typo);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "error: unknown option 'batchsize' for dynamics365 system 'erp' (hint: "
                         "did you mean 'batch_size'?)");
  SystemConfig hubspot = HubSpot();
  hubspot.options["batch_size"] = "100";
  EXPECT_NE(ValidateSystemConfig(hubspot).message().find(
                "unknown option 'batch_size' for hubspot system"),
            std::string::npos)
      << ValidateSystemConfig(hubspot).message();
  SystemConfig secret = HubSpot();
  secret.auth["clientsecret"] = "x";
  EXPECT_NE(ValidateSystemConfig(secret).message().find(
                "unknown auth key 'clientsecret' for hubspot system 'crm' (hint: did you mean "
                "'client_secret'?)"),
            std::string::npos);

  SystemConfig totango = Totango();
  totango.options["allowed.Onboarding Stage"] = "A|B";
  EXPECT_TRUE(ValidateSystemConfig(totango).ok()) << "allowed.<attribute> is any attribute";
  totango.options["alowed.Stage"] = "A";
  EXPECT_FALSE(ValidateSystemConfig(totango).ok());
}

// An option's value is checked as its kind declares it, as a mapping's params are.
TEST(RegistryTest, AnOptionsValueIsOfItsDeclaredTypeAndValues) {
  SystemConfig batch = Dynamics();
  batch.options["batch_size"] = "many";
  EXPECT_EQ(ValidateSystemConfig(batch).message(),
            "error: option 'batch_size' of dynamics365 system 'erp' must be a whole number of at "
            "most 15 digits, not 'many'");
  SystemConfig totango = Totango();
  totango.options["region"] = "asia";
  EXPECT_EQ(ValidateSystemConfig(totango).message(),
            "error: option 'region' of totango system 'cs' must be one of eu, us, not 'asia'");
  totango.options["region"] = "eu";
  EXPECT_TRUE(ValidateSystemConfig(totango).ok()) << ValidateSystemConfig(totango).message();
}

// Loaded from crmbridge.yaml, every key the kind does not take is reported at once, each where it
// is written, even one whose ${env:} value is not set.
TEST(RegistryTest, KeysAKindDoesNotTakeAreReportedWhereTheyAreWritten) {
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "/registry_keys.yaml";
  {
    std::ofstream out(path);
    out << "state: s.db\n"
           "systems:\n"
           "  cs:\n"
           "    kind: totango\n"
           "    base_url: https://api.totango.com\n"
           "    auth: {app_token: \"${env:TT}\", apptoken: \"${env:UNSET}\"}\n"
           "    options:\n"
           "      service_id: SP-1\n"
           "      servce_id: SP-2\n"
           "    search_rate_limit: {requests: 5, per: 1s}\n";
  }
  std::vector<std::string> warnings;
  auto config = LoadAppConfigWithoutSecrets(path, &warnings, [](const std::string& name) {
    return name == "TT" ? std::optional<std::string>("t") : std::nullopt;
  });
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  Diagnostics diags;
  CheckSystemKeys(config->systems.at("cs"), &diags);
  ASSERT_EQ(diags.items().size(), 3u) << diags.ToString();
  EXPECT_EQ(diags.items()[0].ToString(),
            path + ":6:36: error: unknown auth key 'apptoken' for totango system 'cs' (hint: did "
                   "you mean 'app_token'?)");
  EXPECT_EQ(diags.items()[1].ToString(),
            path + ":9:7: error: unknown option 'servce_id' for totango system 'cs' (hint: did "
                   "you mean 'service_id'?)");
  // A budget for requests the kind never makes would have no effect.
  EXPECT_EQ(diags.items()[2].ToString(),
            path + ":10:24: error: totango system 'cs' makes no search requests: its "
                   "search_rate_limit would have no effect (hint: remove it; rate_limit is the "
                   "budget of all its requests)");
}

// HubSpot's search requests spend the search budget, and its other requests do not.
TEST(RegistryTest, OnlyAKindThatSearchesTakesASearchBudget) {
  SystemConfig hubspot = HubSpot();
  hubspot.search_rate_limit = {5, std::chrono::seconds(1)};
  EXPECT_TRUE(ValidateSystemConfig(hubspot).ok()) << ValidateSystemConfig(hubspot).message();
  EXPECT_EQ(CapabilitiesOfKind("hubspot")->search_paths, std::vector<std::string>{"/search"});
  SystemConfig dynamics = Dynamics();
  dynamics.search_rate_limit = {5, std::chrono::seconds(1)};
  EXPECT_NE(ValidateSystemConfig(dynamics).message().find("makes no search requests"),
            std::string::npos)
      << ValidateSystemConfig(dynamics).message();
}

}  // namespace
}  // namespace crmbridge
