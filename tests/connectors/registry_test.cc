// The connector registry: kinds it knows, configurations it refuses, without any I/O.
#include "connectors/registry.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace crmbridge
