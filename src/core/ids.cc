#include "src/core/ids.h"

#include <openssl/rand.h>

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

// 8-4-4-4-12 lowercase hex digits, written digit by digit: each new record mints an id, and
// snprintf's sixteen conversions cost about as much as drawing its random bits.
std::string Format(const unsigned char* b) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  size_t at = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) ++at;  // the dashes, left in place
    out[at++] = kHex[b[i] >> 4];
    out[at++] = kHex[b[i] & 0xf];
  }
  return out;
}

}  // namespace

std::string NewUuid() {
  unsigned char b[16];
  RandomBytes(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return Format(b);
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
  return Format(b);
}

}  // namespace crmbridge
