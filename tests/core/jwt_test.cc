// Client assertions signed with a certificate's key: what Microsoft Entra ID checks of them
// (the header naming the certificate, PS256, a signature only that key makes), and the clear
// refusals of certificates and keys that cannot sign one.
#include "src/core/jwt.h"

#include <gtest/gtest.h>

#include "tests/core/test_certificate.h"

namespace crmbridge {
namespace {

using nlohmann::json;
using testing_certificate::SelfSigned;

TEST(Base64UrlTest, RoundTripsEveryLengthWithoutPaddingOrUnsafeCharacters) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    const std::string encoded = Base64UrlEncode(bytes);
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos) << encoded;
    ASSERT_EQ(Base64UrlDecode(encoded), bytes) << i;
    bytes.push_back(static_cast<char>(0xfb + i));  // bytes that encode to '+' and '/' in base64
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(Base64UrlDecode("-_8="), std::string("\xfb\xff"));
  EXPECT_FALSE(Base64UrlDecode("ab+c"));  // the standard alphabet is not base64url
  EXPECT_FALSE(Base64UrlDecode("a"));
  EXPECT_FALSE(Base64UrlDecode("ab$c"));
}

TEST(ClientCertificateTest, SignsAPs256AssertionNamingTheCertificateThatOnlyItsKeyVerifies) {
  const auto pem = SelfSigned();
  auto cert = ClientCertificate::FromPem(pem.certificate, pem.private_key);
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  const auto thumbprints = CertificateThumbprintsOf(pem.certificate);
  ASSERT_TRUE(thumbprints);
  EXPECT_EQ((*cert)->thumbprints().sha256, thumbprints->sha256);
  EXPECT_EQ(thumbprints->sha256.size(), 43u);  // 32 bytes, base64url without padding
  EXPECT_EQ(thumbprints->sha1.size(), 27u);    // 20 bytes
  EXPECT_EQ((*cert)->subject(), "/CN=crmbridge-test");

  const json claims = {{"aud", "https://login.example/t/oauth2/v2.0/token"},
                       {"iss", "app"}, {"sub", "app"}, {"jti", "1"}, {"exp", 2000000000}};
  auto jwt = (*cert)->SignJwt(claims);
  ASSERT_TRUE(jwt.ok());
  auto verified = VerifyJwtSignature(*jwt, pem.certificate);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ((*verified)["claims"], claims);
  EXPECT_EQ((*verified)["header"],
            json({{"alg", "PS256"}, {"typ", "JWT"}, {"x5t#S256", thumbprints->sha256}}));
  // PSS signatures are randomized: two assertions of the same claims differ, both verify.
  auto again = (*cert)->SignJwt(claims);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*again, *jwt);
  EXPECT_TRUE(VerifyJwtSignature(*again, pem.certificate).ok());

  // Another certificate's key does not verify it; changed claims do not verify.
  const auto other = SelfSigned("other");
  EXPECT_FALSE(VerifyJwtSignature(*jwt, other.certificate).ok());
  const size_t a = jwt->find('.'), b = jwt->rfind('.');
  const std::string forged = jwt->substr(0, a + 1) +
                             Base64UrlEncode(json({{"aud", "x"}, {"iss", "app"}}).dump()) +
                             jwt->substr(b);
  auto refused = VerifyJwtSignature(forged, pem.certificate);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("signature does not verify"), std::string::npos);
  // An unsigned token ("alg": "none") is never taken.
  const std::string unsigned_jwt =
      Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + Base64UrlEncode(claims.dump()) + ".";
  auto none = VerifyJwtSignature(unsigned_jwt, pem.certificate);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("not PS256 or RS256"), std::string::npos);
  EXPECT_FALSE(VerifyJwtSignature("not-a-jwt", pem.certificate).ok());
}

TEST(ClientCertificateTest, CertificatesAndKeysThatCannotSignAreRefusedSayingWhich) {
  const auto pem = SelfSigned();
  const auto other = SelfSigned("other");
  auto status = [](const std::string& cert, const std::string& key) {
    auto made = ClientCertificate::FromPem(cert, key);
    EXPECT_FALSE(made.ok());
    EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
    return made.status().message();
  };
  EXPECT_NE(status("", pem.private_key).find("not a PEM certificate"), std::string::npos);
  EXPECT_NE(status(pem.certificate, "").find("not an unencrypted PEM private key"),
            std::string::npos);
  EXPECT_NE(status(pem.certificate, other.private_key).find("not the certificate's"),
            std::string::npos);
  // One file holding both, as many tools write them, is fine.
  EXPECT_TRUE(ClientCertificate::FromPem(pem.certificate + pem.private_key,
                                         pem.certificate + pem.private_key)
                  .ok());
  // An EC key is not one Entra's certificate credentials sign with.
  EVP_PKEY* ec = EVP_EC_gen("P-256");
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(out, ec, nullptr, nullptr, 0, nullptr, nullptr);
  const std::string ec_pem = testing_certificate::Drain(out);
  EVP_PKEY_free(ec);
  EXPECT_NE(status(pem.certificate, ec_pem).find("not an RSA key"), std::string::npos);
}

}  // namespace
}  // namespace crmbridge
