// Redactor: removes credentials from any text before it leaves the process (log lines, Status
// messages, dead-letter reasons).
//
// Two layers, because neither alone is enough:
//   1. Registered secrets. Every credential crmbridge resolves (tokens, client secrets, app tokens)
//      is registered with AddSecret() as soon as it is known; every occurrence is then replaced by
//      `***`, wherever it appears, including its percent-encoded and JSON-escaped forms.
//   2. Credential patterns, for values crmbridge never registered (an access token minted by an
//      OAuth exchange, a secret echoed in an error body):
//        Authorization / Proxy-Authorization header values (the scheme is kept: "Bearer ***"),
//        app-token, api-key, cookie headers, `Bearer <token>` anywhere,
//        "access_token" / "refresh_token" / "id_token" / "client_secret" / "client_assertion" /
//        "password" / "hapikey" / "api_key" as JSON members, headers or form/query parameters,
//        and `code=` as a form/query parameter (an OAuth authorization code).
//
// Redaction errs on the side of hiding: a value that merely looks like a credential is hidden too.
//
// Thread-safety: all methods may be called concurrently. Redact() takes a shared lock; AddSecret()
// an exclusive one.
#pragma once

#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace crmbridge {

class Redactor {
 public:
  // The replacement for every hidden value.
  static constexpr std::string_view kMask = "***";
  // Secrets shorter than this are ignored: masking "abc" everywhere would shred the logs and a
  // three-character secret is no secret.
  static constexpr size_t kMinSecretLength = 4;

  Redactor() = default;
  Redactor(const Redactor&) = delete;
  Redactor& operator=(const Redactor&) = delete;

  // The process-wide instance every log line and Status message goes through.
  static Redactor& Global();

  // Registers `value` (and its percent-encoded and JSON-escaped forms) as a secret. Values shorter
  // than kMinSecretLength are ignored. Registering a value twice is harmless.
  void AddSecret(std::string value);
  // Stops hiding `value` (all its forms): a renewed access token replaces the one before, so a
  // process that runs for months does not hide an ever longer list.
  void ForgetSecret(const std::string& value);

  // Returns `text` with every registered secret and every credential pattern replaced by kMask.
  std::string Redact(std::string_view text) const;

  // Number of distinct strings masked (a secret's encoded forms count separately).
  size_t secret_count() const;

 private:
  mutable std::shared_mutex mu_;
  std::vector<std::string> secrets_;  // GUARDED_BY(mu_); longest first, no duplicates
};

}  // namespace crmbridge
