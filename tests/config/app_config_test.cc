// crmbridge.yaml: what a valid file becomes, and the exact file:line:column of each mistake.
#include "src/config/app_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "src/core/redaction.h"

namespace crmbridge {
namespace {

class AppConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crmbridge-config-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string Write(const std::string& text) {
    const std::string path = dir_ + "/crmbridge.yaml";
    std::ofstream(path) << text;
    return path;
  }
  Result<AppConfig> Load(const std::string& text) { return LoadAppConfig(Write(text), Env()); }
  EnvLookup Env() {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }

  std::string dir_;
  std::map<std::string, std::string> env_ = {{"HUBSPOT_TOKEN", "pat-canary-1234"},
                                             {"D365_ID", "client-id"},
                                             {"D365_SECRET", "secret-canary-5678"},
                                             {"D365_HOOK", "hook-canary-9012"}};
};

constexpr char kValid[] = R"(state: ./state.db
mappings: [maps/onboarding.yaml]
sync: {lease_ttl: 2m, max_outbox_attempts: 4}
systems:
  hubspot:
    kind: hubspot
    base_url: http://127.0.0.1:1/
    auth: {token: "${env:HUBSPOT_TOKEN}"}
    rate_limit: {requests: 100, per: 10s}
    search_rate_limit: {requests: 5, per: 1s}
    timeout: 1500ms
  dynamics365:
    kind: dynamics365
    base_url: https://org.api.crm.dynamics.com
    auth:
      token_url: https://login.example/tenant/oauth2/v2.0/token
      client_id: "${env:D365_ID}"
      client_secret: "${env:D365_SECRET}"
      scope: https://org.crm.dynamics.com/.default
      webhook_key: "${env:D365_HOOK}"
    options: {api_version: v9.2}
)";

TEST_F(AppConfigTest, ValidFileLoadsEveryValue) {
  auto c = Load(kValid);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->state_path, dir_ + "/./state.db");
  ASSERT_EQ(c->mapping_paths.size(), 1u);
  EXPECT_EQ(c->mapping_paths[0], dir_ + "/maps/onboarding.yaml");
  EXPECT_EQ(c->sync.lease_ttl.count(), 120000);
  EXPECT_EQ(c->sync.max_outbox_attempts, 4);
  const SystemConfig& hs = c->systems.at("hubspot");
  EXPECT_EQ(hs.kind, "hubspot");
  EXPECT_EQ(hs.base_url, "http://127.0.0.1:1") << "trailing slash dropped";
  EXPECT_EQ(hs.auth.at("token"), "pat-canary-1234");
  EXPECT_EQ(hs.rate_limit.requests, 100);
  EXPECT_EQ(hs.rate_limit.per.count(), 10000);
  EXPECT_EQ(hs.search_rate_limit.requests, 5);
  EXPECT_EQ(hs.timeout.count(), 1500);
  const SystemConfig& d = c->systems.at("dynamics365");
  EXPECT_EQ(d.auth.at("client_secret"), "secret-canary-5678");
  EXPECT_EQ(d.auth.at("webhook_key"), "hook-canary-9012");
  EXPECT_EQ(d.options.at("api_version"), "v9.2");
  EXPECT_EQ(d.pos.line, 12);
}

TEST_F(AppConfigTest, ResolvedSecretsAreRegisteredForRedaction) {
  ASSERT_TRUE(Load(kValid).ok());
  EXPECT_EQ(Redactor::Global().Redact("token pat-canary-1234 and secret-canary-5678"),
            "token *** and ***");
  EXPECT_EQ(Redactor::Global().Redact("?code=hook-canary-9012"), "?code=***");
}

TEST_F(AppConfigTest, CertificateCredentialsStandForTheSecretAndTheirFilesAreFoundBesideTheFile) {
  auto c = Load(R"(state: ./state.db
mappings: [maps/onboarding.yaml]
systems:
  dynamics365:
    kind: dynamics365
    base_url: https://org.api.crm.dynamics.com
    auth:
      token_url: https://login.example/tenant/oauth2/v2.0/token
      client_id: "${env:D365_ID}"
      certificate_file: certs/app.crt
      private_key_file: /etc/crmbridge/app.key
      scope: https://org.crm.dynamics.com/.default
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const SystemConfig& d = c->systems.at("dynamics365");
  EXPECT_EQ(d.auth.at("certificate_file"), dir_ + "/certs/app.crt");
  EXPECT_EQ(d.auth.at("private_key_file"), "/etc/crmbridge/app.key");
  EXPECT_EQ(d.auth.count("client_secret"), 0u);
  // Paths are not secrets: an error naming one shows it.
  EXPECT_EQ(Redactor::Global().Redact(dir_ + "/certs/app.crt"), dir_ + "/certs/app.crt");

  // One file of the two, or a secret beside them, is refused where it is written.
  auto half = Load(R"(state: ./state.db
mappings: [maps/onboarding.yaml]
systems:
  dynamics365:
    kind: dynamics365
    base_url: https://org.api.crm.dynamics.com
    auth:
      token_url: https://login.example/tenant/oauth2/v2.0/token
      client_id: "${env:D365_ID}"
      client_secret: "${env:D365_SECRET}"
      certificate_file: certs/app.crt
      scope: https://org.crm.dynamics.com/.default
)");
  ASSERT_FALSE(half.ok());
  const std::string why = half.status().message();
  EXPECT_NE(why.find("crmbridge.yaml:8:7: error: a dynamics365 system needs auth.private_key_file"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("crmbridge.yaml:10:7: error: a dynamics365 system takes auth.client_secret or "
                     "a certificate"),
            std::string::npos)
      << why;
}

struct BrokenCase {
  const char* name;
  const char* text;
  const char* expected;  // substring: "file:line:col: error: ..."
};

TEST_F(AppConfigTest, EachMistakeIsReportedWithItsPosition) {
  const BrokenCase cases[] = {
      {"unknown top key", "state: x.db\nsystem: {}\n", ":2:1: error: unknown key 'system'"},
      {"did you mean", "state: x.db\nsystems: {}\nmapings: []\n", "did you mean 'mappings'?"},
      {"missing state", "systems: {}\n", ":1:1: error: missing 'state'"},
      // An empty document has no position of its own: it is at the start of the file.
      {"empty file", "", ":1:1: error: the configuration must be a map"},
      {"only comments", "# systems come later\n", ":1:1: error: the configuration must be a map"},
      {"unknown kind",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspott\n    base_url: http://h\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n",
       ":4:11: error: unknown kind 'hubspott' (hint: did you mean 'hubspot'?)"},
      {"bad url",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: ftp://h\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n",
       ":5:15: error: base_url must start with http:// or https://"},
      // Each request's path is appended to base_url: with no host, or a query before it, no
      // request would reach the API.
      {"url without a host",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: \"https://\"\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n",
       ":5:15: error: base_url names no host"},
      {"url with a query",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: http://h/api?v=2\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n",
       ":5:15: error: base_url holds a query or fragment (?, #)"},
      {"unset env",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: http://h\n"
       "    auth: {token: \"${env:NOT_SET_ANYWHERE}\"}\n",
       ":6:19: error: environment variable NOT_SET_ANYWHERE is not set"},
      {"literal secret",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: http://h\n"
       "    auth: {token: pat-123}\n",
       ":6:19: error: auth.token is written in the file"},
      {"literal webhook key",
       "state: x.db\nsystems:\n  d:\n    kind: dynamics365\n    base_url: http://h\n"
       "    auth: {webhook_key: k-123}\n",
       ":6:25: error: auth.webhook_key is written in the file"},
      {"missing auth",
       "state: x.db\nsystems:\n  d:\n    kind: dynamics365\n    base_url: http://h\n"
       "    auth: {client_id: x}\n",
       "a dynamics365 system needs auth.token_url"},
      {"auth not a map",
       "state: x.db\nsystems:\n  d:\n    kind: dynamics365\n    base_url: http://h\n"
       "    auth: \"${env:D365_SECRET}\"\n",
       ":6:11: error: auth must be a map of credential names to ${env:NAME}"},
      {"a list as a key", "state: x.db\nsystems:\n  ? [a, b]\n  : {kind: hubspot}\n",
       ":3:5: error: a key must be a name, not a list, a map or null"},
      {"null as a key", "state: x.db\n~: x\nsystems: {}\n",
       ":2:1: error: a key must be a name, not a list, a map or null"},
      {"a setting nothing reads", "state: x.db\nsync: {overlap: 5m}\nsystems: {}\n",
       ":2:17: error: sync.overlap is not a setting: nothing reads it (hint: remove it; to re-read "
       "HubSpot records before the cursor, give params: {overlap_ms: 300000} in the mapping)"},
      {"bad duration",
       "state: x.db\nsync: {lease_ttl: soon}\nsystems: {}\n",
       ":2:19: error: sync.lease_ttl must be a duration"},
      {"a duration too long to count",
       "state: x.db\nsync: {lease_ttl: 999999999999d}\nsystems: {}\n",
       ":2:19: error: sync.lease_ttl must be a duration (hint: e.g. 500ms, 30s, 5m, 1h, 7d; at "
       "most 36500d)"},
      {"a lease too short to hold",
       "state: x.db\nsync: {lease_ttl: 0s}\nsystems: {}\n",
       ":2:19: error: sync.lease_ttl must be at least 1s: a shorter lease runs out between its "
       "renewals, and another run takes it over"},
      {"a rate window of nothing",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: http://h\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n    rate_limit: {requests: 5, per: 0s}\n",
       ":7:36: error: rate_limit.per must be at least 1ms"},
      {"a timeout of nothing",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: http://h\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n    timeout: 0ms\n",
       ":7:14: error: timeout must be at least 1ms"},
      {"bad rate limit",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: http://h\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n    rate_limit: {requests: 0, per: 10s}\n",
       ":7:28: error: rate_limit.requests must be a whole number >= 1"},
      {"not yaml", "state: x.db\nsystems: {hs: 1\n", ":3:1: error: not valid YAML"},
      {"key given twice",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: http://h\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n    base_url: http://other\n",
       ":7:5: error: key 'base_url' is given twice in this map (hint: it was first given at line "
       "5; keep one)"},
      {"unclosed quote", "state: 'x.db\nsystems: {}\n",
       ":1:8: error: not valid YAML: this quoted value is never closed"},
      {"unknown system key",
       "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n    base_url: http://h\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n    timout: 3s\n",
       ":7:5: error: unknown key 'timout' in system 'hs' (hint: did you mean 'timeout'?)"},
  };
  for (const BrokenCase& c : cases) {
    auto r = Load(c.text);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(r.status().message().find(c.expected), std::string::npos)
        << c.name << ": got\n" << r.status().message();
    EXPECT_NE(r.status().message().find(dir_ + "/crmbridge.yaml:"), std::string::npos) << c.name;
  }
}

// A secret never reaches the file, a message or a request by another way in.
TEST_F(AppConfigTest, SecretsComeWholeFromTheEnvironmentAndAreNeverShown) {
  const std::string head = "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n";
  env_["SPLIT_TOKEN"] = "pat-canary-1234\r\nX-Injected: 1";
  env_["EMPTY"] = "";
  const BrokenCase cases[] = {
      // A literal beside a reference is a secret written in the file all the same.
      {"literal beside a reference",
       "    base_url: http://h\n    auth: {token: \"pat-canary-0000${env:EMPTY}\"}\n",
       ":6:19: error: auth.token is written in the file, in whole or in part"},
      // A line break in a header value would start a header of its own.
      {"a control character in a variable",
       "    base_url: http://h\n    auth: {token: \"${env:SPLIT_TOKEN}\"}\n",
       ":6:19: error: environment variable SPLIT_TOKEN holds a control character"},
      {"credentials in base_url",
       "    base_url: \"http://admin:canary-url-pass@h\"\n"
       "    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n",
       ":5:15: error: base_url holds credentials (user:password@)"},
      // Only the broken reference is quoted back, not what surrounds it.
      {"a malformed reference",
       "    base_url: http://h\n    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n"
       "    options: {x: \"canary-opt-7777 ${env:}\"}\n",
       ":7:18: error: malformed reference '${env:}'"},
      {"a private app's token and an OAuth app's",
       "    base_url: http://h\n    auth: {token: \"${env:HUBSPOT_TOKEN}\", client_id: a, "
       "client_secret: \"${env:D365_SECRET}\", refresh_token: \"${env:D365_HOOK}\"}\n",
       ":6:12: error: a hubspot system takes auth.token (a private app) or auth.client_id"},
      {"a second document",
       "    base_url: http://h\n    auth: {token: \"${env:HUBSPOT_TOKEN}\"}\n---\n"
       "sync: {lease_ttl: bogus}\n",
       ":7:1: error: a second YAML document: crmbridge reads one document per file"},
  };
  for (const BrokenCase& c : cases) {
    auto r = Load(head + c.text);
    ASSERT_FALSE(r.ok()) << c.name;
    const std::string& m = r.status().message();
    EXPECT_NE(m.find(c.expected), std::string::npos) << c.name << ": got\n" << m;
    for (const char* canary : {"canary-url-pass", "canary-opt-7777", "pat-canary"})
      EXPECT_EQ(m.find(canary), std::string::npos) << c.name << " shows " << canary << ":\n" << m;
  }
}

TEST_F(AppConfigTest, TotangoTakesItsTokenUnderEitherName) {
  env_["TOTANGO_TOKEN"] = "totango-canary-3141";
  auto c = Load("state: x.db\nsystems:\n  cs:\n    kind: totango\n    base_url: http://h\n"
                "    auth: {token: \"${env:TOTANGO_TOKEN}\"}\n"
                "    options: {service_id: SP-0000-11}\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->systems.at("cs").auth.at("token"), "totango-canary-3141");
}

TEST_F(AppConfigTest, EveryErrorIsReportedAtOnce) {
  auto r = Load(
      "state: x.db\nsystems:\n  hs:\n    kind: hubspott\n    base_url: ftp://h\n"
      "    auth: {token: literal}\n");
  ASSERT_FALSE(r.ok());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find(":4:11:"), std::string::npos) << m;
  EXPECT_NE(m.find(":5:15:"), std::string::npos) << m;
  EXPECT_NE(m.find(":6:19:"), std::string::npos) << m;
}

TEST_F(AppConfigTest, EnvReferencesAreFoundWhateverTheirLength) {
  env_["A"] = "1";
  env_["B_2"] = "2";
  auto c = Load("state: \"x${env:A}y${env:B_2}z${env:2C}${env:}${env:D\"\nsystems: {}\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->state_path, dir_ + "/x1y2z${env:2C}${env:}${env:D");
  // A name std::regex would have recursed through character by character, off the stack.
  const std::string name(200000, 'N');
  auto r = Load("state: \"${env:" + name + "}\"\nsystems: {}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(":1:8: error: environment variable " + name + " is not set"),
            std::string::npos);
}

TEST_F(AppConfigTest, MissingFileIsNotFound) {
  auto r = LoadAppConfig(dir_ + "/nope.yaml", Env());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST_F(AppConfigTest, ShippedExamplesLoad) {
  for (const char* rel : {"/examples/crmbridge.yaml", "/examples/demo/crmbridge.yaml"}) {
    std::map<std::string, std::string> env = {
        {"HUBSPOT_TOKEN", "t-example"},           {"D365_CLIENT_ID", "id"},
        {"D365_CLIENT_SECRET", "s-example"},      {"CRMBRIDGE_STATE", "/tmp/x.db"},
        {"DEMO_HUBSPOT_URL", "http://127.0.0.1:1"}, {"DEMO_DYNAMICS365_URL", "http://127.0.0.1:2"},
        {"DEMO_TOTANGO_URL", "http://127.0.0.1:3"}, {"TOTANGO_TOKEN", "tt-example"},
        {"DEMO_PORTAL_URL", "http://127.0.0.1:4"}, {"PORTAL_TOKEN", "pt-example"}};
    auto c = LoadAppConfig(std::string(CRMBRIDGE_SOURCE_DIR) + rel,
                           [&](const std::string& n) -> std::optional<std::string> {
                             auto it = env.find(n);
                             if (it == env.end()) return std::nullopt;
                             return it->second;
                           });
    EXPECT_TRUE(c.ok()) << rel << ": " << c.status().ToString();
  }
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

// Checking a configuration without its secrets: each unset variable is a warning at its
// position, the rest is still checked, and LoadAppConfig refuses the same file.
TEST(AppConfigWithoutSecretsTest, AnUnsetVariableIsAWarningAndTheRestIsStillChecked) {
  char tmpl[] = "/tmp/crmbridge-config-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string path = dir + "/crmbridge.yaml";
  std::ofstream(path) << "state: x.db\nsystems:\n  hs:\n    kind: hubspot\n"
                         "    base_url: \"${env:HS_URL}\"\n    auth: {token: \"${env:HS_TOKEN}\"}\n";
  EnvLookup nothing_set = [](const std::string&) { return std::optional<std::string>(); };
  std::vector<std::string> warnings;
  auto config = LoadAppConfigWithoutSecrets(path, &warnings, nothing_set);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->systems.at("hs").kind, "hubspot");
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0], path + ":5:15: warning: environment variable HS_URL is not set (hint: "
                                "sync, backfill, daemon and serve refuse it; export HS_URL=...)");
  EXPECT_EQ(warnings[1].rfind(path + ":6:19: warning: environment variable HS_TOKEN", 0), 0u);
  EXPECT_FALSE(LoadAppConfig(path, nothing_set).ok());

  std::ofstream(path) << "state: x.db\nsystems:\n  hs:\n    kind: hubspott\n"
                         "    base_url: \"${env:HS_URL}\"\n    auth: {token: \"${env:HS_TOKEN}\"}\n";
  auto wrong = LoadAppConfigWithoutSecrets(path, &warnings, nothing_set);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find(":4:11: error: unknown kind 'hubspott'"),
            std::string::npos);
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

class StateUrlTest : public ::testing::Test {
 protected:
  Result<AppConfig> Load(const std::string& state_line) {
    // One file per test: ctest runs the two at once, each in its own process.
    const std::string path = ::testing::TempDir() + "/state_url_" +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                             ".yaml";
    std::ofstream(path) << state_line
                        << "\nsystems:\n  portal:\n    kind: portal\n    base_url: http://127.0.0.1:1\n"
                           "    auth: {token: \"${env:PORTAL_TOKEN}\"}\n";
    return LoadAppConfig(path, [](const std::string& name) -> std::optional<std::string> {
      if (name == "CRMBRIDGE_STATE_URL") return "postgresql://sync:pg-canary-9911@db.internal:5432/crm";
      if (name == "PORTAL_TOKEN") return "portal-token";
      return std::nullopt;
    });
  }
};

// A state URL is kept as written (not resolved as a path); a password in it comes from the
// environment, and is registered for redaction.
TEST_F(StateUrlTest, APostgresUrlIsTakenAsItIsWithItsPasswordFromTheEnvironment) {
  auto c = Load("state: \"${env:CRMBRIDGE_STATE_URL}\"");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->state_path, "postgresql://sync:pg-canary-9911@db.internal:5432/crm");
  EXPECT_EQ(Redactor::Global().Redact("password pg-canary-9911"), "password ***");

  auto no_password = Load("state: postgres://sync@db.internal/crm?sslmode=require");
  ASSERT_TRUE(no_password.ok()) << no_password.status().ToString();
  EXPECT_EQ(no_password->state_path, "postgres://sync@db.internal/crm?sslmode=require");
}

TEST_F(StateUrlTest, AStateThatIsNeitherAPathNorAPostgresUrlIsRefused) {
  // Taken as file paths, these would be SQLite files named after a connection string.
  for (const char* state : {"state: \"POSTGRESQL://sync@db.internal/crm\"",
                            "state: \"host=db.internal dbname=crm\"",
                            "state: \"mysql://db.internal/crm\""}) {
    auto c = Load(state);
    ASSERT_FALSE(c.ok()) << state;
    EXPECT_NE(c.status().message().find(":1:8: error: state is a file path or a postgresql:// URL"),
              std::string::npos)
        << c.status().message();
  }
  auto query = Load("state: \"postgresql://sync@db.internal/crm?password=written-here\"");
  ASSERT_FALSE(query.ok());
  EXPECT_NE(query.status().message().find(":1:8: error: the state URL holds a password written in "
                                          "the file"),
            std::string::npos)
      << query.status().message();
  EXPECT_EQ(query.status().message().find("written-here"), std::string::npos);
}

TEST_F(StateUrlTest, APasswordWrittenInTheFileIsRefused) {
  auto c = Load("state: postgresql://sync:written-here@db.internal/crm");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(
                ":1:8: error: the state URL holds a password written in the file; secrets never "
                "live in it"),
            std::string::npos)
      << c.status().message();
}

}  // namespace
}  // namespace crmbridge
