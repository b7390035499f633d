#include "src/core/hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <memory>

#include "src/core/json_text.h"

namespace crmbridge {

namespace {

// SHA-256 of `data` into `digest`; returns its length (32).
unsigned int Sha256(std::string_view data, unsigned char* digest) {
  unsigned int len = 0;
  // Fetched once: looking the algorithm up costs more than hashing a record. The context is one
  // per thread, reused: a new one per hash is two allocations.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const EVP_MD* md = sha256 != nullptr ? sha256 : EVP_sha256();
  thread_local std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(),
                                                                      EVP_MD_CTX_free);
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1)
    EVP_Digest(data.data(), data.size(), digest, &len, md, nullptr);
  return len;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  return LowerHex(digest, Sha256(data, digest));
}

std::string LowerHex(const unsigned char* bytes, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return out;
}

bool ParseLowerHex(std::string_view hex, unsigned char* bytes) {
  // The state store parses every id and hash it binds: a table, not a branch per digit.
  static const auto kNibble = [] {
    std::array<signed char, 256> t{};
    t.fill(-1);
    for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<signed char>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<signed char>(c - 'a' + 10);
    return t;
  }();
  if (hex.size() % 2 != 0) return false;
  int bad = 0;
  for (size_t k = 0; k < hex.size() / 2; ++k) {
    const int hi = kNibble[static_cast<unsigned char>(hex[2 * k])];
    const int lo = kNibble[static_cast<unsigned char>(hex[2 * k + 1])];
    bad |= hi | lo;  // -1 (every bit set) for a character that is no lowercase hex digit
    bytes[k] = static_cast<unsigned char>(((hi & 0xf) << 4) | (lo & 0xf));
  }
  return bad >= 0;
}

// The text is written into a buffer kept per thread (the same bytes dump() returns), not a new
// string per hash.
std::string HashJson(const nlohmann::json& value) {
  thread_local std::string text;
  text.clear();
  AppendCompactJson(value, &text);
  unsigned char digest[EVP_MAX_MD_SIZE];
  const unsigned int len = Sha256(text, digest);
  std::string hash = LowerHex(digest, std::min<size_t>(len, kJsonHashBytes));
  if (text.capacity() > (1 << 20)) std::string().swap(text);  // a huge record's text is not kept
  return hash;
}

std::string ShortHash(const std::string& hash_hex) { return std::string(ShortHashOf(hash_hex)); }

std::string HmacSha256Base64(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len) == nullptr)
    return "";
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac,
                                static_cast<int>(len));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace crmbridge
