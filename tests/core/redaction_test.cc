// Redactor: registered secrets and credential patterns, and what it must leave alone.
#include "src/core/redaction.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "src/core/transport.h"

namespace crmbridge {
namespace {

TEST(RedactorTest, RegisteredSecretsEverywhereIncludingEncodedForms) {
  Redactor r;
  r.AddSecret("s3cr3t/with+chars\"q");
  EXPECT_EQ(r.Redact("x s3cr3t/with+chars\"q y"), "x *** y");
  EXPECT_EQ(r.Redact("q=s3cr3t%2Fwith%2Bchars%22q&z=1"), "q=***&z=1");
  EXPECT_EQ(r.Redact(R"({"v":"s3cr3t/with+chars\"q"})"), R"({"v":"***"})");
  EXPECT_EQ(r.Redact("a s3cr3t/with+chars\"q b s3cr3t/with+chars\"q"), "a *** b ***");
}

TEST(RedactorTest, ShortValuesIgnoredDuplicatesHarmless) {
  Redactor r;
  r.AddSecret("abc");
  r.AddSecret("");
  EXPECT_EQ(r.secret_count(), 0u);
  EXPECT_EQ(r.Redact("abc abc"), "abc abc");
  r.AddSecret("abcd");
  size_t n = r.secret_count();
  r.AddSecret("abcd");
  EXPECT_EQ(r.secret_count(), n);
  EXPECT_EQ(r.Redact("xabcdx"), "x***x");
}

TEST(RedactorTest, LongerSecretContainingShorterIsMaskedWhole) {
  Redactor r;
  r.AddSecret("token");
  r.AddSecret("token-extended");
  EXPECT_EQ(r.Redact("[token-extended]"), "[***]");
  EXPECT_EQ(r.Redact("[token]"), "[***]");
}

struct PatternCase {
  const char* in;
  const char* out;
};

TEST(RedactorTest, CredentialPatterns) {
  Redactor r;  // nothing registered: patterns alone
  const PatternCase cases[] = {
      {"Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"},
      {"authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"},
      {"Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: Basic ***"},
      {"Authorization: rawtoken", "Authorization: ***"},
      {R"({"Authorization":"Bearer abc"})", R"({"Authorization":"Bearer ***"})"},
      {R"(\"Authorization\":\"Bearer abc\")", R"(\"Authorization\":\"Bearer ***\")"},
      {"failed with bearer xyz123== in header", "failed with bearer *** in header"},
      {R"({"access_token":"eyJhbGciOi","expires_in":3600})",
       R"({"access_token":"***","expires_in":3600})"},
      {R"({"refresh_token" : "rt-1"})", R"({"refresh_token" : "***"})"},
      {R"({"client_secret":"cs\"x"})", R"({"client_secret":"***"})"},
      {"grant_type=client_credentials&client_secret=abc%2F1&scope=x",
       "grant_type=client_credentials&client_secret=***&scope=x"},
      {"/cb?code=AUTHCODE&state=1", "/cb?code=***&state=1"},
      {"grant_type=authorization_code&code=AUTHCODE", "grant_type=authorization_code&code=***"},
      {"https://h/x?access_token=tok&limit=10", "https://h/x?access_token=***&limit=10"},
      {"refresh_token=r1", "refresh_token=***"},
      {"app-token: totango-key-1", "app-token: ***"},
      {"X-Api-Key: k-123", "X-Api-Key: ***"},
      {"/contacts?hapikey=abc-123", "/contacts?hapikey=***"},
      {R"({"password":"hunter22"})", R"({"password":"***"})"},
  };
  for (const PatternCase& c : cases) {
    EXPECT_EQ(r.Redact(c.in), c.out) << "input: " << c.in;
  }
}

TEST(RedactorTest, LeavesLookAlikesAlone) {
  Redactor r;
  const char* untouched[] = {
      R"({"error":{"code":"0x80040217","message":"Does Not Exist"}})",  // Dynamics error code
      "zipcode=12345&postal_code=111",
      "authorization failed for user",
      "password_reset_sent=true",
      "the bearer of bad news",
  };
  EXPECT_EQ(r.Redact(untouched[0]), untouched[0]);
  EXPECT_EQ(r.Redact(untouched[1]), "zipcode=12345&postal_code=111");
  EXPECT_EQ(r.Redact(untouched[2]), untouched[2]);
  EXPECT_EQ(r.Redact(untouched[3]), untouched[3]);
  // Erring on the side of hiding: a word after "bearer" looks like a token and is masked.
  EXPECT_EQ(r.Redact(untouched[4]), "the bearer *** bad news");
}

TEST(RedactorTest, AlreadyMaskedStaysStable) {
  Redactor r;
  std::string once = r.Redact("Authorization: Bearer abc; access_token=x");
  EXPECT_EQ(r.Redact(once), once);
}

TEST(RedactorTest, GlobalIsOneInstance) { EXPECT_EQ(&Redactor::Global(), &Redactor::Global()); }

TEST(RedactorTest, ConcurrentAddAndRedact) {
  Redactor r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r, t] {
      for (int i = 0; i < 200; ++i) {
        std::string secret = "secret-" + std::to_string(t) + "-" + std::to_string(i);
        r.AddSecret(secret);
        EXPECT_EQ(r.Redact("<" + secret + ">"), "<***>");
      }
    });
  }
  for (auto& th : threads) th.join();
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

TEST(RedactorTest, AnErrorExcerptCutInsideASecretShowsNoPartOfIt) {
  // The excerpt is 300 bytes: cut after the fact, the first 4 of the secret's 24 would show.
  const std::string secret = "pat-na1-canary-excerpt-9";
  Redactor::Global().AddSecret(secret);
  Response r;
  r.status = 400;
  r.body = std::string(296, 'x') + secret + " and more";
  const std::string message = StatusFromResponse(r, "hubspot", "searching").message();
  EXPECT_EQ(message.find("pat-"), std::string::npos) << message;
  EXPECT_NE(message.find("***"), std::string::npos) << message;
}

TEST(RedactorTest, AForgottenSecretIsShownAgainAndItsSuccessorHidden) {
  const std::string old_token = "access-token-canary-old-1";
  const std::string new_token = "access-token-canary-new-2";
  Redactor::Global().AddSecret(old_token);
  const size_t before = Redactor::Global().secret_count();
  Redactor::Global().ForgetSecret(old_token);
  Redactor::Global().AddSecret(new_token);
  EXPECT_EQ(Redactor::Global().secret_count(), before) << "a renewed token does not add up";
  EXPECT_EQ(Redactor::Global().Redact("t=" + new_token), "t=***");
}

}  // namespace
}  // namespace crmbridge
