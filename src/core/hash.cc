#include "src/core/hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <memory>

#include "src/core/utf8.h"

namespace crmbridge {

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
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
  static const char kHex[] = "0123456789abcdef";
  std::string out(len * 2, '\0');
  for (unsigned int i = 0; i < len; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

namespace {

using Serializer = nlohmann::detail::serializer<nlohmann::json>;

// A string as dump() writes it, when that is the text itself between quotes: nothing to escape
// (no control character, quote or backslash) and valid UTF-8, which dump() copies as it is.
// Anything else is left to dump(), which escapes it or refuses it. The bytes are classed through a
// table and the classes or-ed together, so the common case costs a load and an or per byte.
bool AppendPlainString(const std::string& s, std::string* out) {
  constexpr unsigned char kEscaped = 1, kHigh = 2;
  static const auto kClass = [] {
    std::array<unsigned char, 256> c{};
    for (int b = 0; b < 0x20; ++b) c[b] = kEscaped;
    c['"'] = c['\\'] = kEscaped;
    for (int b = 0x80; b < 0x100; ++b) c[b] = kHigh;
    return c;
  }();
  unsigned char seen = 0;
  for (const char ch : s) seen |= kClass[static_cast<unsigned char>(ch)];
  if ((seen & kEscaped) != 0 || ((seen & kHigh) != 0 && !IsValidUtf8(s))) return false;
  out->push_back('"');
  out->append(s);
  out->push_back('"');
  return true;
}

// The compact text dump() gives (nlohmann::json keeps object keys in a std::map, so it is already
// canonical), written without dump()'s per-byte UTF-8 decoding for the values records are made
// of: objects, arrays, plain strings, integers, booleans, null. Floating-point numbers and strings
// to escape are written by `fallback`, dump()'s own serializer, into the same text. The bytes are
// the same either way (HashTest compares them), so stored digests do not change.
void AppendCanonical(const nlohmann::json& v, std::string* out, Serializer* fallback) {
  using Type = nlohmann::json::value_t;
  switch (v.type()) {
    case Type::object: {
      out->push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out->push_back(',');
        first = false;
        if (!AppendPlainString(it.key(), out))
          fallback->dump(nlohmann::json(it.key()), false, false, 0);
        out->push_back(':');
        AppendCanonical(it.value(), out, fallback);
      }
      out->push_back('}');
      return;
    }
    case Type::array: {
      out->push_back('[');
      bool first = true;
      for (const nlohmann::json& item : v) {
        if (!first) out->push_back(',');
        first = false;
        AppendCanonical(item, out, fallback);
      }
      out->push_back(']');
      return;
    }
    case Type::string:
      if (AppendPlainString(v.get_ref<const std::string&>(), out)) return;
      break;
    case Type::boolean:
      out->append(v.get<bool>() ? "true" : "false");
      return;
    case Type::null:
      out->append("null");
      return;
    case Type::number_integer:
    case Type::number_unsigned: {
      char digits[24];
      const auto written =
          v.type() == Type::number_integer
              ? std::to_chars(digits, digits + sizeof digits, v.get<int64_t>())
              : std::to_chars(digits, digits + sizeof digits, v.get<uint64_t>());
      out->append(digits, written.ptr);
      return;
    }
    default:
      break;
  }
  fallback->dump(v, /*pretty_print=*/false, /*ensure_ascii=*/false, /*indent_step=*/0);
}

}  // namespace

// The text is written into a buffer kept per thread (the same bytes dump() returns), not a new
// string per hash.
std::string HashJson(const nlohmann::json& value) {
  thread_local std::string text;
  text.clear();
  Serializer fallback(nlohmann::detail::output_adapter<char, std::string>(text), ' ');
  AppendCanonical(value, &text, &fallback);
  std::string hash = Sha256Hex(text);
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
