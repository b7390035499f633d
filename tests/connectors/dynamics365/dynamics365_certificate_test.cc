// Dynamics 365 with certificate credentials against the in-process Dataverse mock, through the
// real transport stack: client assertions the token endpoint takes, tokens renewed with a fresh
// assertion before they expire, and clear refusals (a certificate not registered, a clock off,
// a key file missing) that never show the key.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "connectors/dynamics365/dynamics365_connector.h"
#include "mocks/dynamics365/dynamics365_mock.h"
#include "src/core/redaction.h"
#include "src/engine/bootstrap.h"
#include "tests/core/test_certificate.h"

namespace crmbridge {
namespace {

namespace fs = std::filesystem;

class Dynamics365CertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pem_ = testing_certificate::SelfSigned("crmbridge-dynamics");
    dir_ = fs::temp_directory_path() / ("crmbridge-cert-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    Write("app.crt", pem_.certificate);
    Write("app.key", pem_.private_key);

    mocks::Dynamics365Mock::Options o;
    o.client_id = "app-id";
    o.client_secret = "unused-secret";
    o.certificate_pem = pem_.certificate;
    o.token_lifetime_seconds = 60;
    o.service_protection = false;
    o.clock = &clock_;
    mock_ = std::make_unique<mocks::Dynamics365Mock>(o);
    ASSERT_TRUE(mock_->Start().ok());
    config_.name = config_.kind = "dynamics365";
    config_.base_url = mock_->base_url();
    config_.auth = {{"token_url", mock_->base_url() + "/tenant/oauth2/v2.0/token"},
                    {"client_id", "app-id"},
                    {"certificate_file", (dir_ / "app.crt").string()},
                    {"private_key_file", (dir_ / "app.key").string()}};
  }
  void TearDown() override {
    mock_->Stop();
    fs::remove_all(dir_);
  }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  std::unique_ptr<Dynamics365Connector> Connect(Clock* clock) {
    return std::make_unique<Dynamics365Connector>(config_, BuildSystemTransport(config_, clock),
                                                  clock);
  }
  static ObjectRef Opportunities() {
    ObjectRef r;
    r.object = "opportunities";
    r.params = {{"key", "crmb_externalid"}};
    return r;
  }
  static std::vector<WriteOp> Op(const std::string& key) {
    WriteOp op;
    op.key = key;
    op.fields = {{"name", "Deal " + key}};
    return {op};
  }
  int64_t Tokens() const {
    return mock_->Stats().value("POST /{tenant}/oauth2/v2.0/token", int64_t{0});
  }

  testing_certificate::Pem pem_;
  fs::path dir_;
  FakeClock clock_;
  std::unique_ptr<mocks::Dynamics365Mock> mock_;
  SystemConfig config_;
};

TEST_F(Dynamics365CertificateTest, AssertionsGetTokensAndAFreshOneRenewsEachBeforeItExpires) {
  ASSERT_TRUE(Dynamics365Connector::ValidateConfig(config_).ok());
  auto connector = Connect(&clock_);
  for (int i = 0; i < 3; ++i) {
    auto out = connector->Write(Opportunities(), Op("k" + std::to_string(i)));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_TRUE((*out)[0].status.ok()) << (*out)[0].status.ToString();
  }
  EXPECT_EQ(Tokens(), 1) << "one token while it lasts";
  // Past half its lifetime the token is renewed with a new assertion, before the mock would
  // refuse it: no request is answered 401.
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(std::chrono::seconds(31));
    auto out = connector->Write(Opportunities(), Op("later" + std::to_string(i)));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_TRUE((*out)[0].status.ok()) << (*out)[0].status.ToString();
  }
  EXPECT_EQ(Tokens(), 5);
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 7u);
}

TEST_F(Dynamics365CertificateTest, ACertificateNotRegisteredIsRefusedByTheTokenEndpoint) {
  const auto other = testing_certificate::SelfSigned("not-registered");
  Write("app.crt", other.certificate);
  Write("app.key", other.private_key);
  auto out = Connect(&clock_)->Write(Opportunities(), Op("k"));
  const Status s = out.ok() ? (*out)[0].status : out.status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("AADSTS700027"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("not registered"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find("PRIVATE KEY"), std::string::npos);
  EXPECT_TRUE(mock_->Dump()["opportunities"].empty());
}

TEST_F(Dynamics365CertificateTest, AnAssertionFromAClockAnHourOffIsOutsideItsValidTime) {
  FakeClock behind(clock_.NowMillis() - 3'600'000);
  auto out = Connect(&behind)->Write(Opportunities(), Op("k"));
  const Status s = out.ok() ? (*out)[0].status : out.status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("AADSTS700024"), std::string::npos) << s.ToString();
}

TEST_F(Dynamics365CertificateTest, AKeyFileMissingOrNotTheCertificatesIsNamedWithItsPath) {
  config_.auth["private_key_file"] = (dir_ / "missing.key").string();
  auto out = Connect(&clock_)->Write(Opportunities(), Op("k"));
  Status s = out.ok() ? (*out)[0].status : out.status();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("cannot read auth.private_key_file " + (dir_ / "missing.key").string()),
            std::string::npos)
      << s.ToString();

  // An empty file is read, and refused as no key at all.
  Write("empty.key", "");
  config_.auth["private_key_file"] = (dir_ / "empty.key").string();
  out = Connect(&clock_)->Write(Opportunities(), Op("k"));
  s = out.ok() ? (*out)[0].status : out.status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("empty.key: the private key is not an unencrypted PEM private key"),
            std::string::npos)
      << s.ToString();

  const auto other = testing_certificate::SelfSigned("other");
  Write("other.key", other.private_key);
  config_.auth["private_key_file"] = (dir_ / "other.key").string();
  out = Connect(&clock_)->Write(Opportunities(), Op("k"));
  s = out.ok() ? (*out)[0].status : out.status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("the private key is not the certificate's"), std::string::npos)
      << s.ToString();
  EXPECT_EQ(Tokens(), 0) << "nothing is sent without a key to sign with";
  // The key read is a secret: a log line quoting it would be masked.
  EXPECT_EQ(Redactor::Global().Redact(other.private_key).find("PRIVATE KEY-----\n"),
            std::string::npos);
}

TEST_F(Dynamics365CertificateTest, ValidationWantsASecretOrBothCertificateFilesNeverBoth) {
  SystemConfig c = config_;
  c.auth.erase("private_key_file");
  auto s = Dynamics365Connector::ValidateConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("need both auth.certificate_file and auth.private_key_file"),
            std::string::npos);
  c = config_;
  c.auth["client_secret"] = "s";
  s = Dynamics365Connector::ValidateConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not both"), std::string::npos);
  c.auth.erase("certificate_file");
  c.auth.erase("private_key_file");
  EXPECT_TRUE(Dynamics365Connector::ValidateConfig(c).ok());
  c.auth.erase("client_secret");
  s = Dynamics365Connector::ValidateConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("needs auth.client_secret, or a certificate"), std::string::npos);
}

}  // namespace
}  // namespace crmbridge
