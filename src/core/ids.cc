#include "src/core/ids.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <random>

#include "src/core/hash.h"

namespace crmbridge {
namespace {

void DrawRandomBytes(unsigned char* b, size_t n) {
  if (RAND_bytes(b, static_cast<int>(n)) != 1) {
    // OpenSSL's generator failing is rare (no entropy source); fall back rather than abort a sync.
    std::random_device rd;
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(rd());
  }
}

// Counts forks, so that a child process never hands out bytes its parent drew.
std::atomic<uint64_t> g_forks{0};

// Drawn from OpenSSL's generator a block at a time, per thread: a draw costs about the same for
// 8 bytes as for 256, and a first sync mints an id per record.
void RandomBytes(unsigned char* b, size_t n) {
  static std::once_flag watch_forks;
  std::call_once(watch_forks, [] {
    pthread_atfork(nullptr, nullptr, [] { g_forks.fetch_add(1, std::memory_order_relaxed); });
  });
  struct Block {
    unsigned char bytes[256];
    size_t used = sizeof bytes;
    uint64_t forks = 0;
  };
  thread_local Block block;
  if (n > sizeof block.bytes) return DrawRandomBytes(b, n);
  const uint64_t forks = g_forks.load(std::memory_order_relaxed);
  if (block.used + n > sizeof block.bytes || block.forks != forks) {
    DrawRandomBytes(block.bytes, sizeof block.bytes);
    block.used = 0;
    block.forks = forks;
  }
  std::memcpy(b, block.bytes + block.used, n);
  block.used += n;
}

// Where each byte's two hex digits go in the 36 characters; the dashes sit between.
constexpr unsigned char kDigitAt[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};

}  // namespace

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
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
    return false;
  // The five groups of digits between the dashes: where each starts, and its bytes.
  static constexpr struct {
    size_t at, bytes;
  } kGroups[] = {{0, 4}, {9, 2}, {14, 2}, {19, 2}, {24, 6}};
  unsigned char* out = bytes;
  for (const auto& g : kGroups) {
    if (!ParseLowerHex(text.substr(g.at, 2 * g.bytes), out)) return false;
    out += g.bytes;
  }
  return true;
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
