#include "src/core/jwt.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <vector>

namespace crmbridge {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// OpenSSL's error queue is per thread: what one call left must not be read as another's.
void ClearErrors() { ERR_clear_error(); }

X509Ptr ReadCertificate(const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ClearErrors();
  return cert;
}

std::string Digest(const X509* cert, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, md, out, &len) != 1) return "";
  return Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(out), len));
}

CertificateThumbprints ThumbprintsOf(const X509* cert) {
  return {Digest(cert, EVP_sha256()), Digest(cert, EVP_sha1())};
}

// PS256 is RSASSA-PSS over SHA-256 with a salt as long as the digest (RFC 7518 §3.5).
bool UsePss(EVP_PKEY_CTX* pctx) {
  return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
}

}  // namespace

std::string Base64UrlEncode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string b64(text);
  for (char& c : b64) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
    else if (c == '+' || c == '/' || c == '=') return std::nullopt;  // not the url alphabet
  }
  if (b64.size() % 4 == 1) return std::nullopt;
  const size_t pad = (4 - b64.size() % 4) % 4;
  b64.append(pad, '=');
  std::string out(3 * (b64.size() / 4) + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as zero bytes.
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

struct ClientCertificate::Keys {
  X509Ptr cert;
  PkeyPtr key;
};

std::optional<CertificateThumbprints> CertificateThumbprintsOf(const std::string& cert_pem) {
  X509Ptr cert = ReadCertificate(cert_pem);
  if (!cert) return std::nullopt;
  return ThumbprintsOf(cert.get());
}

ClientCertificate::ClientCertificate(std::unique_ptr<Keys> keys) : keys_(std::move(keys)) {
  thumbprints_ = ThumbprintsOf(keys_->cert.get());
  char* subject = X509_NAME_oneline(X509_get_subject_name(keys_->cert.get()), nullptr, 0);
  if (subject != nullptr) {
    subject_ = subject;
    OPENSSL_free(subject);
  }
}

ClientCertificate::~ClientCertificate() = default;

Result<std::shared_ptr<const ClientCertificate>> ClientCertificate::FromPem(
    const std::string& cert_pem, const std::string& key_pem) {
  auto keys = std::make_unique<Keys>();
  keys->cert = ReadCertificate(cert_pem);
  if (!keys->cert)
    return Status(StatusCode::kInvalidArgument,
                  "the certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)");
  {
    BioPtr bio = MemoryBio(key_pem);
    // No passphrase callback: an encrypted key fails here rather than prompting.
    keys->key.reset(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                                  [](char*, int, int, void*) { return 0; },
                                                  nullptr)
                        : nullptr);
    ClearErrors();
  }
  if (!keys->key)
    return Status(StatusCode::kInvalidArgument,
                  "the private key is not an unencrypted PEM private key (-----BEGIN PRIVATE "
                  "KEY----- or -----BEGIN RSA PRIVATE KEY-----)");
  if (EVP_PKEY_get_base_id(keys->key.get()) != EVP_PKEY_RSA)
    return Status(StatusCode::kInvalidArgument,
                  "the private key is not an RSA key (certificate credentials sign with RSA)");
  const int matches = X509_check_private_key(keys->cert.get(), keys->key.get());
  ClearErrors();
  if (matches != 1)
    return Status(StatusCode::kInvalidArgument, "the private key is not the certificate's");
  return std::shared_ptr<const ClientCertificate>(new ClientCertificate(std::move(keys)));
}

Result<std::string> ClientCertificate::SignJwt(const nlohmann::json& claims) const {
  const nlohmann::json header = {{"alg", "PS256"}, {"typ", "JWT"}, {"x5t#S256", thumbprints_.sha256}};
  const std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump());
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  size_t len = 0;
  std::vector<unsigned char> sig;
  bool ok = ctx && EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, keys_->key.get()) == 1 &&
            UsePss(pctx) &&
            EVP_DigestSign(ctx.get(), nullptr, &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx.get(), sig.data(), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  }
  ClearErrors();
  if (!ok) return Status(StatusCode::kInternal, "OpenSSL could not sign the client assertion");
  return input + "." +
         Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(sig.data()), len));
}

Result<nlohmann::json> VerifyJwtSignature(const std::string& jwt, const std::string& cert_pem) {
  const size_t a = jwt.find('.');
  const size_t b = a == std::string::npos ? a : jwt.find('.', a + 1);
  if (b == std::string::npos || jwt.find('.', b + 1) != std::string::npos)
    return Status(StatusCode::kInvalidArgument, "the assertion is not three dot-separated parts");
  auto header_text = Base64UrlDecode(std::string_view(jwt).substr(0, a));
  auto claims_text = Base64UrlDecode(std::string_view(jwt).substr(a + 1, b - a - 1));
  auto signature = Base64UrlDecode(std::string_view(jwt).substr(b + 1));
  if (!header_text || !claims_text || !signature)
    return Status(StatusCode::kInvalidArgument, "a part of the assertion is not base64url");
  nlohmann::json header = nlohmann::json::parse(*header_text, nullptr, false);
  nlohmann::json claims = nlohmann::json::parse(*claims_text, nullptr, false);
  if (!header.is_object() || !claims.is_object())
    return Status(StatusCode::kInvalidArgument, "the assertion's header or claims are not JSON objects");
  const std::string alg = header.value("alg", nlohmann::json()).is_string()
                              ? header["alg"].get<std::string>()
                              : std::string();
  if (alg != "PS256" && alg != "RS256")
    return Status(StatusCode::kInvalidArgument,
                  "the assertion's alg is \"" + alg + "\", not PS256 or RS256");
  X509Ptr cert = ReadCertificate(cert_pem);
  if (!cert) return Status(StatusCode::kInvalidArgument, "the certificate does not parse");
  PkeyPtr key(X509_get_pubkey(cert.get()));
  const std::string input = jwt.substr(0, b);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  const bool verified =
      key && ctx && EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.get()) == 1 &&
      (alg == "RS256" || UsePss(pctx)) &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                       signature->size(), reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) == 1;
  ClearErrors();
  if (!verified)
    return Status(StatusCode::kInvalidArgument,
                  "the assertion's signature does not verify with the certificate's key");
  return nlohmann::json{{"header", header}, {"claims", claims}};
}

}  // namespace crmbridge
