// A self-signed RSA certificate and its key, made for a test (OpenSSL), as PEM text: what an
// application registers in Microsoft Entra ID for certificate credentials.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <string>

namespace crmbridge::testing_certificate {

struct Pem {
  std::string certificate;
  std::string private_key;  // PKCS #8
};

inline std::string Drain(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

// A fresh key pair (RSA 2048, or `bits`) and a certificate for it, valid from now for a day.
inline Pem SelfSigned(const std::string& common_name = "crmbridge-test", int bits = 2048) {
  EVP_PKEY* key = EVP_RSA_gen(static_cast<unsigned>(bits));
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert, name);
  X509_sign(cert, key, EVP_sha256());
  Pem pem;
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(out, cert);
  pem.certificate = Drain(out);
  out = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
  pem.private_key = Drain(out);
  X509_free(cert);
  EVP_PKEY_free(key);
  return pem;
}

}  // namespace crmbridge::testing_certificate
