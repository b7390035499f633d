// StatusFromHttp / StatusFromResponse classification, FindHeader and Retry-After parsing.
#include "src/core/status.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "src/core/clock.h"
#include "src/core/retrying_transport.h"
#include "src/core/transport.h"

namespace crmbridge {
namespace {

using std::chrono::milliseconds;

struct HttpCase {
  int http;
  StatusCode code;
  bool transient;
  bool system_fatal;
  bool record_level;
};

TEST(StatusFromHttpTest, ClassificationTable) {
  const HttpCase cases[] = {
      {200, StatusCode::kOk, false, false, false},
      {204, StatusCode::kOk, false, false, false},
      {304, StatusCode::kOk, false, false, false},
      {400, StatusCode::kInvalidArgument, false, false, true},
      {422, StatusCode::kInvalidArgument, false, false, true},
      {413, StatusCode::kInvalidArgument, false, false, true},
      {401, StatusCode::kUnauthenticated, false, true, false},
      {403, StatusCode::kPermissionDenied, false, false, true},
      {404, StatusCode::kNotFound, false, false, true},
      {408, StatusCode::kDeadlineExceeded, true, false, false},
      {409, StatusCode::kAlreadyExists, false, false, false},
      {412, StatusCode::kAborted, false, false, false},
      {429, StatusCode::kResourceExhausted, true, false, false},
      {500, StatusCode::kUnavailable, true, false, false},
      {502, StatusCode::kUnavailable, true, false, false},
      {503, StatusCode::kUnavailable, true, false, false},
      {504, StatusCode::kUnavailable, true, false, false},
  };
  for (const HttpCase& c : cases) {
    SCOPED_TRACE(c.http);
    Status s = StatusFromHttp(c.http, "m");
    EXPECT_EQ(s.code(), c.code);
    EXPECT_EQ(s.IsTransient(), c.transient);
    EXPECT_EQ(s.IsSystemFatal(), c.system_fatal);
    EXPECT_EQ(s.IsRecordLevel(), c.record_level);
    if (!s.ok()) {
      EXPECT_EQ(s.http_status(), c.http);
    }
  }
}

TEST(StatusFromResponseTest, ASystemsClassifierReadsTheStatusesItsApiGivesAMeaning) {
  // A system whose API answers 460 for "try again later".
  HttpClassifier classify = [](const Response& r) -> std::optional<HttpReading> {
    if (r.status != 460) return std::nullopt;
    HttpReading reading;
    reading.code = StatusCode::kUnavailable;
    return reading;
  };
  Response r;
  r.status = 460;
  r.body = "later";
  r.headers = {{"Retry-After", "3"}};
  EXPECT_EQ(StatusFromResponse(r, "vendor", "GET /x").code(), StatusCode::kInvalidArgument)
      << "without the classifier, another 4xx";
  Status s = StatusFromResponse(r, "vendor", "GET /x", classify);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(s.IsTransient());
  EXPECT_EQ(s.http_status(), 460);
  EXPECT_EQ(s.system(), "vendor");
  EXPECT_EQ(s.message(), "GET /x: later");
  EXPECT_EQ(s.retry_after(), milliseconds(3000));
  r.status = 400;
  EXPECT_EQ(StatusFromResponse(r, "vendor", "", classify).code(), StatusCode::kInvalidArgument)
      << "nullopt leaves the standard reading";
  r.status = 200;
  EXPECT_TRUE(StatusFromResponse(r, "vendor", "", classify).ok());
}

TEST(HeaderDurationTest, WholeUnitsClampedToAWeek) {
  Response r;
  r.headers = {{"X-Wait-Ms", "1500"}, {"X-Wait-S", "3"},   {"X-Negative", "-1"},
               {"X-Text", "soon"},    {"X-Huge", "99999999999"}};
  EXPECT_EQ(HeaderDuration(r, "x-wait-ms", milliseconds(1)), milliseconds(1500));
  EXPECT_EQ(HeaderDuration(r, "X-Wait-S", std::chrono::seconds(1)), milliseconds(3000));
  EXPECT_FALSE(HeaderDuration(r, "X-Negative", milliseconds(1)).has_value());
  EXPECT_FALSE(HeaderDuration(r, "X-Text", milliseconds(1)).has_value());
  EXPECT_FALSE(HeaderDuration(r, "X-Missing", milliseconds(1)).has_value());
  EXPECT_EQ(HeaderDuration(r, "X-Huge", std::chrono::seconds(1)),
            milliseconds(7LL * 24 * 3600 * 1000));
}

TEST(FindHeaderTest, CaseInsensitiveFirstMatch) {
  Headers h = {{"Content-Type", "application/json"}, {"retry-after", "5"}, {"Retry-After", "9"}};
  EXPECT_EQ(FindHeader(h, "content-type"), "application/json");
  EXPECT_EQ(FindHeader(h, "RETRY-AFTER"), "5");
  EXPECT_FALSE(FindHeader(h, "Retry").has_value());
  EXPECT_FALSE(FindHeader(h, "X-Missing").has_value());
}

TEST(ParseRetryAfterTest, DeltaSeconds) {
  FakeClock clock;
  EXPECT_EQ(ParseRetryAfter("7", clock.Now()), milliseconds(7000));
  EXPECT_EQ(ParseRetryAfter(" 0 ", clock.Now()), milliseconds(0));
  // Clamped to a week rather than overflowing.
  EXPECT_EQ(ParseRetryAfter("99999999999999999999", clock.Now()),
            milliseconds(7LL * 24 * 3600 * 1000));
  EXPECT_FALSE(ParseRetryAfter("", clock.Now()).has_value());
  EXPECT_FALSE(ParseRetryAfter("-3", clock.Now()).has_value());
  EXPECT_FALSE(ParseRetryAfter("soon", clock.Now()).has_value());
  EXPECT_FALSE(ParseRetryAfter("1.5", clock.Now()).has_value());
}

TEST(ParseRetryAfterTest, HttpDateAllThreeForms) {
  // 2026-01-01T00:00:00Z is a Thursday.
  FakeClock clock(1767225600000LL);
  EXPECT_EQ(ParseRetryAfter("Thu, 01 Jan 2026 00:00:42 GMT", clock.Now()), milliseconds(42000));
  EXPECT_EQ(ParseRetryAfter("Thursday, 01-Jan-26 00:01:00 GMT", clock.Now()), milliseconds(60000));
  EXPECT_EQ(ParseRetryAfter("Thu Jan  1 00:00:05 2026", clock.Now()), milliseconds(5000));
  // A date in the past means "now".
  EXPECT_EQ(ParseRetryAfter("Wed, 31 Dec 2025 23:59:00 GMT", clock.Now()), milliseconds(0));
  EXPECT_FALSE(ParseRetryAfter("Thu, 01 Foo 2026 00:00:42 GMT", clock.Now()).has_value());
  EXPECT_FALSE(ParseRetryAfter("Thu, 01 Jan 2026 25:00:42 GMT", clock.Now()).has_value());
}

TEST(StatusFromResponseTest, CarriesSystemRetryAfterAndBodyExcerpt) {
  Response r;
  r.status = 429;
  r.headers = {{"retry-after", "3"}};
  r.body = R"({"status":"error","message":"You have reached your ten_secondly_rolling limit."})";
  Status s = StatusFromResponse(r, "hubspot", "POST /crm/v3/objects/contacts/batch/create");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.http_status(), 429);
  EXPECT_EQ(s.system(), "hubspot");
  ASSERT_TRUE(s.retry_after().has_value());
  EXPECT_EQ(*s.retry_after(), milliseconds(3000));
  EXPECT_NE(s.message().find("POST /crm/v3/objects/contacts/batch/create"), std::string::npos);
  EXPECT_NE(s.message().find("ten_secondly_rolling"), std::string::npos);
}

TEST(StatusFromResponseTest, OkForSuccessAndRedirects) {
  Response r;
  r.status = 201;
  EXPECT_TRUE(StatusFromResponse(r, "x", "m").ok());
  r.status = 302;
  EXPECT_TRUE(StatusFromResponse(r, "x", "m").ok());
}

TEST(StatusFromResponseTest, LongBodyIsCutOnOneLine) {
  Response r;
  r.status = 500;
  r.body = "first line\n\n  second line " + std::string(2000, 'x');
  Status s = StatusFromResponse(r, "", "");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  EXPECT_EQ(s.message().rfind("first line second line", 0), 0u);
  EXPECT_LE(s.message().size(), 310u);
  EXPECT_EQ(s.message().substr(s.message().size() - 3), "...");
  EXPECT_TRUE(s.system().empty());
  EXPECT_FALSE(s.retry_after().has_value());
}

TEST(StatusFromResponseTest, ExcerptNeverSplitsUtf8) {
  Response r;
  r.status = 400;
  std::string ae = "\xC3\xA4";  // U+00E4, two bytes
  for (int i = 0; i < 400; ++i) r.body += ae;
  Status s = StatusFromResponse(r, "", "");
  std::string m = s.message();
  ASSERT_EQ(m.substr(m.size() - 3), "...");
  std::string text = m.substr(0, m.size() - 3);
  EXPECT_EQ(text.size() % 2, 0u) << "a two-byte sequence was cut";
  EXPECT_EQ(text.substr(text.size() - 2), ae);
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

// A number past a double's range is no JSON crmbridge can hold: refused like any other answer
// that is not JSON, never thrown at the caller.
TEST(ParseJsonAnswerTest, ANumberPastTheRangeOfADoubleIsRefused) {
  Response answer;
  answer.status = 207;
  answer.body = R"({"status":"COMPLETE","results":[{"id":"1","properties":{"amount":2e308}}]})";
  auto r = ParseJsonAnswer(answer, "hubspot", "upserting tickets");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("number overflow parsing '2e308'"), std::string::npos)
      << r.status().message();
}

// A key given twice in one object (the same record's field, or a gateway's merge gone wrong) is
// no answer to read: taken, the field would be its last value, silently. Keys of different
// objects may repeat.
TEST(ParseJsonAnswerTest, AKeyGivenTwiceInOneObjectIsRefused) {
  Response answer;
  answer.status = 200;
  answer.body = R"({"results":[{"id":"1","properties":{"subject":"a","subject":"b"}}]})";
  auto r = ParseJsonAnswer(answer, "hubspot", "searching tickets");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("the key \"subject\" is given twice in one object"),
            std::string::npos)
      << r.status().message();
  answer.body = R"({"results":[{"id":"1","p":{"id":"2"}},{"id":"3","p":{"id":"4"}}]})";
  EXPECT_TRUE(ParseJsonAnswer(answer, "hubspot", "searching tickets").ok());
  // Nested past what any vendor sends: refused before a parse whose value would overflow the stack.
  answer.body = "{\"v\":" + std::string(600, '[') + std::string(600, ']') + "}";
  r = ParseJsonAnswer(answer, "hubspot", "searching tickets");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("arrays and objects nested more than 512 deep"),
            std::string::npos)
      << r.status().message();
}

// An answer that must be JSON and is not: the error says what came instead, in one printable line.
TEST(ParseJsonAnswerTest, SaysWhatCameInstead) {
  Response html;
  html.status = 200;
  html.headers = {{"Content-Type", "text/html; charset=utf-8"}};
  html.body = "<!DOCTYPE html>\n<html><body><h1>We'll be right back</h1></body></html>";
  auto r = ParseJsonAnswer(html, "hubspot", "searching tickets");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().http_status(), 200);
  EXPECT_EQ(r.status().message(),
            "hubspot: searching tickets: the answer is not JSON (HTTP 200, text/html; "
            "charset=utf-8, 70 bytes; parse error at line 1, column 1: syntax error while parsing "
            "value - invalid literal; last read: '<'): <!DOCTYPE html> <html><body><h1>We'll be "
            "right back</h1></body></html>");

  Response bytes;
  bytes.status = 200;
  bytes.body = std::string("{\"subject\":\"a\0b\xC3\x28\"}", 20);
  r = ParseJsonAnswer(bytes, "hubspot", "searching tickets");
  ASSERT_FALSE(r.ok());
  const std::string message = r.status().message();
  EXPECT_NE(message.find("no content type, 20 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("{\"subject\":\"a\\x00b\\xC3(\"}"), std::string::npos) << message;

  Response json;
  json.status = 200;
  json.body = R"({"results":[]})";
  r = ParseJsonAnswer(json, "hubspot", "searching tickets");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)["results"].is_array());
}

}  // namespace
}  // namespace crmbridge
