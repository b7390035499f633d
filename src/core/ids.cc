#include "src/core/ids.h"

#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>

namespace crmbridge {
namespace {

void RandomBytes(unsigned char* b, size_t n) {
  if (RAND_bytes(b, static_cast<int>(n)) != 1) {
    // OpenSSL's generator failing is rare (no entropy source); fall back rather than abort a sync.
    std::random_device rd;
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(rd());
  }
}

}  // namespace

// Where each byte's two hex digits go in the 36 characters; the dashes sit between.
constexpr unsigned char kDigitAt[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};

// Written digit by digit into a buffer: each new record mints an id and every id the state
// store reads back is formatted, and snprintf's sixteen conversions cost about as much as
// drawing an id's random bits.
std::string FormatUuid(const unsigned char b[16]) {
  static const char kHex[] = "0123456789abcdef";
  char out[36];
  out[8] = out[13] = out[18] = out[23] = '-';
  for (int k = 0; k < 16; ++k) {
    out[kDigitAt[k]] = kHex[b[k] >> 4];
    out[kDigitAt[k] + 1] = kHex[b[k] & 0xf];
  }
  return std::string(out, sizeof out);
}

bool ParseUuid(std::string_view text, unsigned char bytes[16]) {
  // Each id the state store binds or looks up passes here: a table, not a branch per digit.
  static const auto kNibble = [] {
    std::array<signed char, 256> t{};
    t.fill(-1);
    for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<signed char>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<signed char>(c - 'a' + 10);
    return t;
  }();
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
    return false;
  int bad = 0;
  for (int k = 0; k < 16; ++k) {
    const int hi = kNibble[static_cast<unsigned char>(text[kDigitAt[k]])];
    const int lo = kNibble[static_cast<unsigned char>(text[kDigitAt[k] + 1])];
    bad |= hi | lo;  // -1 (every bit set) for a byte that is no lowercase hex digit
    bytes[k] = static_cast<unsigned char>(((hi & 0xf) << 4) | (lo & 0xf));
  }
  return bad >= 0;
}

std::string NewUuid() {
  unsigned char b[16];
  RandomBytes(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return FormatUuid(b);
}

std::string NewTimeOrderedUuid() {
  // RFC 9562 §6.2 method 1: the 12 bits after the version count ids within one millisecond;
  // when they run out (or the clock steps back), the timestamp moves on by one.
  static std::mutex mu;
  static uint64_t last_ms = 0;
  static uint32_t counter = 0;
  uint64_t ms;
  uint32_t seq;
  {
    std::lock_guard<std::mutex> lock(mu);
    const uint64_t now = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    if (now > last_ms) {
      last_ms = now;
      counter = 0;
    } else if (++counter > 0xfff) {
      ++last_ms;
      counter = 0;
    }
    ms = last_ms;
    seq = counter;
  }
  unsigned char b[16];
  RandomBytes(b + 8, 8);
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  b[6] = static_cast<unsigned char>(0x70 | ((seq >> 8) & 0x0f));  // version 7, counter high
  b[7] = static_cast<unsigned char>(seq & 0xff);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return FormatUuid(b);
}

}  // namespace crmbridge
