// JSON Web Tokens signed with a client certificate's key: OAuth's private_key_jwt client
// authentication, as Microsoft Entra ID takes it for an application's certificate credentials
// (instead of a client secret).
//
// An assertion is header.claims.signature, each part base64url without padding (RFC 7515). The
// header names the certificate by its SHA-256 thumbprint ("x5t#S256": base64url of the SHA-256
// of its DER encoding) and the algorithm PS256 (RSASSA-PSS with SHA-256, salt as long as the
// digest: RFC 7518 §3.5), which Entra asks for today; VerifyJwtSignature also takes RS256, the
// PKCS #1 v1.5 form older clients send.
//
// Thread-safety: a ClientCertificate is immutable once made; signing from several threads is safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "src/core/status.h"

namespace crmbridge {

std::string Base64UrlEncode(std::string_view data);
// nullopt when `text` is not base64url (padding is accepted and ignored).
std::optional<std::string> Base64UrlDecode(std::string_view text);

// base64url of the SHA-256 and the SHA-1 of a certificate's DER encoding: how a JWT header names
// it (x5t#S256, x5t).
struct CertificateThumbprints {
  std::string sha256, sha1;
};
// The thumbprints of the first certificate of `cert_pem`; nullopt when there is none.
std::optional<CertificateThumbprints> CertificateThumbprintsOf(const std::string& cert_pem);

class ClientCertificate {
 public:
  // From PEM text: the first certificate of `cert_pem`, and the RSA private key of `key_pem`
  // (PKCS #8 or PKCS #1; the same text may hold both). kInvalidArgument, saying which, when
  // either does not parse, the key is not RSA, or the key is not the certificate's.
  static Result<std::shared_ptr<const ClientCertificate>> FromPem(const std::string& cert_pem,
                                                                  const std::string& key_pem);
  ~ClientCertificate();
  ClientCertificate(const ClientCertificate&) = delete;
  ClientCertificate& operator=(const ClientCertificate&) = delete;

  const CertificateThumbprints& thumbprints() const { return thumbprints_; }
  // The certificate's subject, as OpenSSL prints it one line ("CN=crmbridge,O=Example").
  const std::string& subject() const { return subject_; }

  // A PS256 assertion of `claims`, its header naming this certificate. kInternal when OpenSSL
  // fails to sign.
  Result<std::string> SignJwt(const nlohmann::json& claims) const;

 private:
  struct Keys;
  explicit ClientCertificate(std::unique_ptr<Keys> keys);
  std::unique_ptr<Keys> keys_;
  CertificateThumbprints thumbprints_;
  std::string subject_;
};

// What an assertion's receiver checks first: `jwt` is three base64url parts, its header's alg is
// PS256 or RS256, and its signature verifies with the public key of the certificate `cert_pem`.
// Returns the header and the claims ({"header": ..., "claims": ...}); kInvalidArgument with the
// reason otherwise. The claims' meaning (audience, issuer, times) is the receiver's to check.
Result<nlohmann::json> VerifyJwtSignature(const std::string& jwt, const std::string& cert_pem);

}  // namespace crmbridge
