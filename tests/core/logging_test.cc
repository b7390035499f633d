// Logging: text and JSON line formats, the redacting sink, RedactingLogTransport, and the canary
// test: a secret pushed through every path that can log must never reach the output.
#include "src/core/logging.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "src/core/fake_transport.h"
#include "src/core/fault_injecting_transport.h"
#include "src/core/redaction.h"
#include "src/core/retrying_transport.h"
#include "tests/core/test_clock.h"

namespace crmbridge {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Sends logging to `out` for one test, and back to a quiet stderr logger afterwards.
class LoggingTest : public ::testing::Test {
 protected:
  void Capture(LogFormat format, spdlog::level::level_enum level) {
    out_.str("");
    InitLogging(format, level, std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
  }
  void TearDown() override { InitLogging(LogFormat::kText, spdlog::level::warn); }

  std::ostringstream out_;
};

TEST_F(LoggingTest, TextLineShape) {
  Capture(LogFormat::kText, spdlog::level::info);
  spdlog::info("hello {}", 42);
  spdlog::debug("not shown");
  std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  // 2026-01-01T00:00:00.000Z [info] hello 42
  EXPECT_EQ(lines[0].size(), 24 + std::string(" [info] hello 42").size()) << lines[0];
  EXPECT_EQ(lines[0][10], 'T');
  EXPECT_EQ(lines[0][23], 'Z');
  EXPECT_EQ(lines[0].substr(24), " [info] hello 42");
}

// A logged value holding a line break cannot forge a line of its own, and bytes that are not
// UTF-8 are shown as escapes, not written to the terminal.
TEST_F(LoggingTest, TextEntryIsOneLineWhateverItQuotes) {
  Capture(LogFormat::kText, spdlog::level::info);
  spdlog::warn("hubspot said: bad\n2026-01-01T00:00:00.000Z [info] forged\r\x01 end \xC3 \xC3\xA5 ok");
  std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  EXPECT_EQ(lines[0].substr(24),
            " [warning] hubspot said: bad\\n2026-01-01T00:00:00.000Z [info] forged\\r\\x01 end "
            "\\xC3 \xC3\xA5 ok");
}

// At trace, a body that is not text (a GIF pixel) is named by its size and type; a long text body
// is cut short without splitting a character.
TEST_F(LoggingTest, LogTransportShowsTextBodiesOnly) {
  Capture(LogFormat::kText, spdlog::level::trace);
  testing::RecordingClock clock;
  auto fake = std::make_unique<FakeTransport>();
  fake->Respond(200, std::string("GIF89a\x01\0\x01\0\x80\0\0", 13), {{"Content-Type", "image/gif"}});
  std::string long_text(4095, 'a');
  long_text += "\xC3\xA5 and more";
  fake->Respond(200, long_text, {{"Content-Type", "application/json"}});
  RedactingLogTransport t(std::move(fake), &clock);
  Request req;
  req.method = "GET";
  req.url = "https://api.test/pixel.gif";
  ASSERT_TRUE(t.Send(req).ok());
  ASSERT_TRUE(t.Send(req).ok());
  std::string text = out_.str();
  EXPECT_NE(text.find("response body: (13 bytes of image/gif, not shown)"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("GIF89a"), std::string::npos) << text;
  EXPECT_NE(text.find("response body: " + std::string(4095, 'a') + "... (4106 bytes)"),
            std::string::npos)
      << text;
}

TEST_F(LoggingTest, JsonLinesAreEscapedObjects) {
  Capture(LogFormat::kJson, spdlog::level::debug);
  spdlog::warn("quote \" backslash \\ newline \n tab \t done");
  spdlog::debug("second");
  spdlog::info("bad utf8 \xC3");
  std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  nlohmann::json first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first.size(), 3u);
  EXPECT_EQ(first["level"], "warning");
  EXPECT_EQ(first["msg"], "quote \" backslash \\ newline \n tab \t done");
  EXPECT_EQ(first["ts"].get<std::string>().size(), 24u);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["level"], "debug");
  EXPECT_NO_THROW(nlohmann::json::parse(lines[2]));
}

TEST_F(LoggingTest, SinkRedactsWhateverIsLogged) {
  Capture(LogFormat::kText, spdlog::level::trace);
  Redactor::Global().AddSecret("registered-value-7781");
  spdlog::error("token registered-value-7781 and Authorization: Bearer minted.xyz");
  std::string text = out_.str();
  EXPECT_EQ(text.find("registered-value-7781"), std::string::npos) << text;
  EXPECT_EQ(text.find("minted.xyz"), std::string::npos) << text;
  EXPECT_NE(text.find("token *** and Authorization: Bearer ***"), std::string::npos) << text;
}

TEST(RedactUrlForLogTest, DropsUserInfoAndCredentialValuesAndKeepsData) {
  EXPECT_EQ(RedactUrlForLog("https://user:pw@h.test:8443/a/b?x=1&flag&y=two#frag"),
            "https://h.test:8443/a/b?x=1&flag&y=two");
  EXPECT_EQ(RedactUrlForLog("https://h.test/api/data/v9.2/accounts?$select=name,accountid"
                            "&$filter=modifiedon%20gt%202026-01-01"),
            "https://h.test/api/data/v9.2/accounts?$select=name,accountid"
            "&$filter=modifiedon%20gt%202026-01-01");
  EXPECT_EQ(RedactUrlForLog("https://h.test/cb?code=abc&state=s1&access_token=t&hapikey=k"
                            "&X-Amz-Signature=x&sdr_s=svc&sdr_o=acct-1&client_secret=cs"),
            "https://h.test/cb?code=***&state=s1&access_token=***&hapikey=***"
            "&X-Amz-Signature=***&sdr_s=***&sdr_o=acct-1&client_secret=***");
  EXPECT_EQ(RedactUrlForLog("https://h.test/a"), "https://h.test/a");
  EXPECT_EQ(RedactUrlForLog("https://h.test/a@b"), "https://h.test/a@b");
}

TEST(RedactHeadersForLogTest, HidesCredentialHeaders) {
  Headers h = {{"Authorization", "Bearer abc"},
               {"Content-Type", "application/json"},
               {"app-token", "t1"},
               {"Cookie", "sid=1"},
               {"X-Request-Id", "r-1"}};
  EXPECT_EQ(RedactHeadersForLog(h),
            "Authorization: Bearer ***; Content-Type: application/json; app-token: ***; "
            "Cookie: ***; X-Request-Id: r-1");
}

TEST_F(LoggingTest, LogTransportLogsExchangeAndForwardsUnchanged) {
  Capture(LogFormat::kText, spdlog::level::debug);
  testing::RecordingClock clock;
  auto fake = std::make_unique<FakeTransport>();
  fake->Respond(201, "created", {{"Location", "/x/1"}});
  RedactingLogTransport t(std::move(fake), &clock);
  Request req;
  req.method = "POST";
  req.url = "https://api.test/x?limit=5&access_token=abc";
  req.system = "portal";
  req.headers = {{"Authorization", "Bearer abc"}};
  Result<Response> r = t.Send(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "created");
  std::string text = out_.str();
  EXPECT_NE(text.find("portal: POST https://api.test/x?limit=5&access_token=*** -> 201 in 0 ms"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Location: /x/1"), std::string::npos) << text;
  EXPECT_EQ(text.find("created"), std::string::npos) << "bodies only at trace";
}

// The canary: one secret, everywhere a secret can travel, through the whole stack, both formats.
TEST_F(LoggingTest, CanaryNeverReachesTheLog) {
  const std::string canary = "CANARY-7f3e9c1d-NEVER-LOG";
  Redactor::Global().AddSecret(canary);
  // Also values never registered, which only the patterns can catch.
  const std::string minted = "minted-at-runtime-0a1b2c";
  const std::string form_secret = "formsecret-991";

  for (LogFormat format : {LogFormat::kText, LogFormat::kJson}) {
    SCOPED_TRACE(format == LogFormat::kText ? "text" : "json");
    Capture(format, spdlog::level::trace);
    testing::RecordingClock clock;

    auto fake = std::make_unique<FakeTransport>();
    FakeTransport* script = fake.get();
    script->Respond(503, "upstream saw token " + canary, {{"Set-Cookie", "sid=" + canary}})
        .Fail(Status(StatusCode::kUnavailable, "connection reset while sending " + canary))
        // An echo with an escape where the secret has a '-': the same text once parsed.
        .Respond(200,
                 R"({"access_token":")" + minted + R"(","echo":")" + canary +
                     R"(","escaped":"CANARY\u002d7f3e9c1d-NEVER-LOG"})",
                 {{"X-Echo", canary}});
    auto faults = std::make_unique<FaultInjectingTransport>(std::move(fake), &clock);
    faults->Add(Fault::HttpStatus(429, {{"Retry-After", "1"}}, "rate limited " + canary));
    auto logged = std::make_unique<RedactingLogTransport>(std::move(faults), &clock);
    RetryingTransport transport(std::move(logged), RetryPolicy(), &clock, /*seed=*/1);

    Request req;
    req.method = "POST";
    req.url = "https://api.test/oauth/" + canary + "?access_token=" + canary + "&code=" + minted;
    req.headers = {{"Authorization", "Bearer " + canary},
                   {"X-Custom-Token", minted},
                   {"Content-Type", "application/x-www-form-urlencoded"}};
    req.body = "grant_type=client_credentials&client_secret=" + form_secret + "&token=" + canary;
    req.idempotent = true;
    req.system = "canary-system";
    Result<Response> result = transport.Send(req);
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(script->request_count(), 3u);

    // Error messages and statuses logged by application code take the same path.
    Response failed;
    failed.status = 401;
    failed.body = "invalid token " + canary;
    spdlog::error("{}", StatusFromResponse(failed, "canary-system", "POST /oauth").ToString());
    spdlog::warn("raw header dump: Authorization: Bearer {} client_secret={}", minted, form_secret);

    std::string text = out_.str();
    EXPECT_EQ(text.find(canary), std::string::npos) << text;
    EXPECT_EQ(text.find("CANARY"), std::string::npos) << text;
    EXPECT_EQ(text.find(minted), std::string::npos) << text;
    EXPECT_EQ(text.find(form_secret), std::string::npos) << text;
    EXPECT_NE(text.find("***"), std::string::npos);
    // The log did record the exchange: retries, statuses and bodies (at trace) are there.
    EXPECT_NE(text.find("-> 429"), std::string::npos) << text;
    EXPECT_NE(text.find("-> 503"), std::string::npos) << text;
    EXPECT_NE(text.find("retrying in"), std::string::npos) << text;
    EXPECT_NE(text.find("response body"), std::string::npos) << text;
    if (format == LogFormat::kJson) {
      for (const std::string& line : Lines(text)) EXPECT_NO_THROW(nlohmann::json::parse(line));
    }
  }
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

// Runs `body` with stderr going to a file, and returns what was written there.
template <typename Body>
std::string CapturedStderr(Body body) {
  std::fflush(stderr);
  char path[] = "/tmp/crmb-stderr-XXXXXX";
  const int fd = ::mkstemp(path);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  body();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fd);
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(path);
  return text;
}

TEST(StatusLineTest, ALogLineClearsTheStatusLinePrintsAndDrawsItAgainBelow) {
  const std::string written = CapturedStderr([] {
    InitLogging(LogFormat::kText, spdlog::level::info);
    SetStatusLine("[##   ] 200 / 4455 records");
    spdlog::warn("hubspot: contacts 1922 is not synced");
    SetStatusLine("[###  ] 300 / 4455 records");
    SetStatusLine("");
    spdlog::warn("after the bar");
  });
  InitLogging(LogFormat::kText, spdlog::level::warn);
  const std::string clear = "\r\033[K";
  const size_t warning = written.find("[warning] hubspot: contacts 1922 is not synced\n");
  ASSERT_NE(warning, std::string::npos) << written;
  // The bar, then cleared before the log line: the line starts on an empty row...
  EXPECT_EQ(written.substr(0, warning).rfind(clear + "[##   ] 200 / 4455 records" + clear, 0), 0u)
      << written;
  // ... and is drawn again right after it.
  const size_t after = written.find('\n', warning) + 1;
  EXPECT_EQ(written.compare(after, 26, "[##   ] 200 / 4455 records"), 0) << written;
  // Once taken away, log lines are written as they are, with no bar after them.
  const size_t last = written.find("[warning] after the bar\n");
  ASSERT_NE(last, std::string::npos);
  EXPECT_EQ(written.size(), last + std::string("[warning] after the bar\n").size()) << written;
  EXPECT_EQ(written.find("records", last), std::string::npos);
}

}  // namespace
}  // namespace crmbridge
