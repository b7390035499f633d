#include "src/core/logging.h"

#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdio>
#include <spdlog/spdlog.h>

#include <cctype>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <utility>

#include "src/core/json_text.h"
#include "src/core/redaction.h"
#include "src/core/utf8.h"

namespace crmbridge {
namespace {

constexpr size_t kMaxLoggedBody = 4096;

std::string_view View(spdlog::string_view_t s) { return std::string_view(s.data(), s.size()); }

std::string IsoUtcMillis(spdlog::log_clock::time_point tp) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

// One JSON object per line. nlohmann escapes quotes, control characters and newlines; invalid
// UTF-8 (a vendor body cut mid-sequence) is replaced rather than thrown on.
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    nlohmann::json line = {
        {"ts", IsoUtcMillis(msg.time)},
        {"level", std::string(View(spdlog::level::to_string_view(msg.level)))},
        {"msg", std::string(View(msg.payload))},
    };
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text.push_back('\n');
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

std::shared_ptr<spdlog::logger> MakeLogger(LogFormat format, spdlog::level::level_enum level,
                                           std::shared_ptr<spdlog::sinks::sink> sink) {
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto redacting = std::make_shared<RedactingSink>(std::move(sink), NewLogFormatter(format));
  auto logger = std::make_shared<spdlog::logger>("crmbridge", std::move(redacting));
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  return logger;
}

// Replaces spdlog's stock (unredacted) default logger before main() runs, so that nothing logged
// ahead of InitLogging() escapes redaction. This object is in the same file as InitLogging(), so
// every program that can configure logging also links it.
struct RedactedByDefault {
  RedactedByDefault() {
    spdlog::set_default_logger(MakeLogger(LogFormat::kText, spdlog::level::info, nullptr));
  }
} const redacted_by_default;

bool IsSensitiveHeader(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* const kNames[] = {
      "authorization", "proxy-authorization", "cookie",
      "set-cookie",    "app-token",           "x-api-key",
      "api-key",       "x-auth-token",        "ocp-apim-subscription-key"};
  for (const char* n : kNames) {
    if (lower == n) return true;
  }
  return lower.find("token") != std::string::npos || lower.find("secret") != std::string::npos ||
         lower.find("signature") != std::string::npos;
}

// Whether a body is text a person can read in a log line: valid UTF-8 without NUL or other
// control characters than tab, CR and LF. A GIF pixel or a compressed body is not.
bool IsText(std::string_view body) {
  for (size_t i = 0; i < body.size();) {
    const unsigned char c = static_cast<unsigned char>(body[i]);
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7F) return false;
    const size_t n = Utf8SequenceAt(body, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// A body as a log line shows it: text up to kMaxLoggedBody bytes (never cut inside a character),
// anything else as its size and type.
std::string BodyForLog(std::string_view body, const std::optional<std::string>& content_type) {
  if (!IsText(body)) {
    return fmt::format("({} bytes of {}, not shown)", body.size(),
                       content_type ? *content_type : std::string("binary data"));
  }
  // JSON is shown as parsed and written again: an escape (a secret's "-" sent back as "\u002d")
  // would otherwise hide a secret's text from the redactor.
  std::string shown(body);
  if (!body.empty() && (body.front() == '{' || body.front() == '[')) {
    const nlohmann::json parsed = ParseJsonOrDiscarded(body);
    if (!parsed.is_discarded())
      shown = parsed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (shown.size() <= kMaxLoggedBody) return shown;
  return fmt::format("{}... ({} bytes)", Utf8Prefix(shown, kMaxLoggedBody), body.size());
}

// The text format: spdlog's pattern around a payload made safe for one line (PrintableText):
// a value holding a line break cannot forge a log line of its own.
class TextFormatter : public spdlog::formatter {
 public:
  TextFormatter()
      : pattern_("%Y-%m-%dT%H:%M:%S.%eZ [%l] %v", spdlog::pattern_time_type::utc) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string payload = PrintableText(View(msg.payload));
    spdlog::details::log_msg escaped = msg;
    escaped.payload = spdlog::string_view_t(payload.data(), payload.size());
    pattern_.format(escaped, dest);
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>();
  }

 private:
  spdlog::pattern_formatter pattern_;
};

}  // namespace

std::unique_ptr<spdlog::formatter> NewLogFormatter(LogFormat format) {
  if (format == LogFormat::kJson) return std::make_unique<JsonFormatter>();
  return std::make_unique<TextFormatter>();
}

RedactingSink::RedactingSink(std::shared_ptr<spdlog::sinks::sink> inner,
                             std::unique_ptr<spdlog::formatter> formatter)
    : inner_(std::move(inner)), formatter_(std::move(formatter)) {
  // The inner sink writes our finished line verbatim (it already ends in a newline).
  inner_->set_formatter(
      std::make_unique<spdlog::pattern_formatter>("%v", spdlog::pattern_time_type::utc, ""));
  inner_->set_level(spdlog::level::trace);
}

namespace {

// The status line (SetStatusLine), and the lock that keeps its redraws and log lines apart.
std::mutex g_status_mu;
std::string g_status_line;  // GUARDED_BY(g_status_mu)

}  // namespace

void SetStatusLine(const std::string& text) {
  std::lock_guard<std::mutex> lock(g_status_mu);
  g_status_line = text;
  // \r\033[K: back to the start of the line and erase it.
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
}

void RedactingSink::log(const spdlog::details::log_msg& msg) {
  const Redactor& redactor = Redactor::Global();
  // Redact before formatting too: JSON escaping could otherwise hide a secret containing a quote
  // or a backslash from the second pass.
  std::string payload = redactor.Redact(View(msg.payload));
  spdlog::details::log_msg redacted = msg;
  redacted.payload = spdlog::string_view_t(payload.data(), payload.size());
  spdlog::memory_buf_t buf;
  {
    std::lock_guard<std::mutex> lock(mu_);
    formatter_->format(redacted, buf);
  }
  std::string line = redactor.Redact(std::string_view(buf.data(), buf.size()));
  spdlog::details::log_msg out = msg;
  out.payload = spdlog::string_view_t(line.data(), line.size());
  out.color_range_start = out.color_range_end = 0;
  std::lock_guard<std::mutex> status_lock(g_status_mu);
  if (g_status_line.empty()) {
    inner_->log(out);
    return;
  }
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  inner_->log(out);
  inner_->flush();
  std::fputs(g_status_line.c_str(), stderr);
  std::fflush(stderr);
}

void RedactingSink::flush() { inner_->flush(); }

void RedactingSink::set_pattern(const std::string& pattern) {
  set_formatter(
      std::make_unique<spdlog::pattern_formatter>(pattern, spdlog::pattern_time_type::utc));
}

void RedactingSink::set_formatter(std::unique_ptr<spdlog::formatter> formatter) {
  std::lock_guard<std::mutex> lock(mu_);
  formatter_ = std::move(formatter);
}

void InitLogging(LogFormat format, spdlog::level::level_enum level,
                 std::shared_ptr<spdlog::sinks::sink> sink) {
  spdlog::set_default_logger(MakeLogger(format, level, std::move(sink)));
}

namespace {

// A query parameter that carries a credential by its name: a token, secret, key, password,
// signature or authorization code of any vendor, or Totango's service id (sdr_s). The log sink
// hides registered secrets and credential patterns in every line besides.
bool CredentialParameter(std::string_view name) {
  std::string lower;
  for (char c : name) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  for (std::string_view word : {"token", "secret", "key", "password", "passwd", "sig", "auth",
                                "credential", "session"})
    if (lower.find(word) != std::string::npos) return true;
  return lower == "code" || lower == "sdr_s";
}

}  // namespace

std::string RedactUrlForLog(const std::string& url) {
  std::string out = url;
  size_t scheme = out.find("://");
  size_t authority = scheme == std::string::npos ? 0 : scheme + 3;
  size_t path = out.find_first_of("/?#", authority);
  size_t at = out.find('@', authority);
  if (at != std::string::npos && (path == std::string::npos || at < path)) {
    out.erase(authority, at + 1 - authority);
  }
  size_t query = out.find('?');
  if (query == std::string::npos) return out;
  size_t fragment = out.find('#', query);
  std::string_view q(out.data() + query + 1,
                     (fragment == std::string::npos ? out.size() : fragment) - query - 1);
  std::string redacted;
  size_t start = 0;
  while (start <= q.size()) {
    size_t amp = q.find('&', start);
    std::string_view param = q.substr(start, amp == std::string_view::npos ? q.npos : amp - start);
    size_t eq = param.find('=');
    if (!redacted.empty()) redacted.push_back('&');
    if (eq == std::string_view::npos || !CredentialParameter(param.substr(0, eq))) {
      redacted.append(param);  // data ($select, $filter, a cursor): what a debugging reader needs
    } else {
      redacted.append(param.substr(0, eq + 1));
      redacted.append(Redactor::kMask);
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out.substr(0, query + 1) + redacted;
}

std::string RedactHeadersForLog(const Headers& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    if (!out.empty()) out += "; ";
    out += name;
    out += ": ";
    if (!IsSensitiveHeader(name)) {
      out += value;
      continue;
    }
    size_t space = value.find(' ');
    bool is_auth = name.size() >= 13 &&
                   std::equal(name.end() - 13, name.end(), "authorization", [](char a, char b) {
                     return std::tolower(static_cast<unsigned char>(a)) == b;
                   });
    if (is_auth && space != std::string::npos) out += value.substr(0, space + 1);
    out += Redactor::kMask;
  }
  return out;
}

RedactingLogTransport::RedactingLogTransport(std::unique_ptr<Transport> target, Clock* clock)
    : TransportWrapper(std::move(target)), clock_(clock) {}

Result<Response> RedactingLogTransport::Send(const Request& request) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(spdlog::level::debug)) return TransportWrapper::Send(request);

  const Redactor& redactor = Redactor::Global();
  const std::string prefix = request.system.empty() ? "" : request.system + ": ";
  const std::string url = RedactUrlForLog(request.url);
  const bool bodies = logger->should_log(spdlog::level::trace);
  if (bodies && !request.body.empty()) {
    logger->trace("{}{} {} request body: {}", prefix, request.method, url,
                  redactor.Redact(BodyForLog(request.body, FindHeader(request.headers,
                                                                       "Content-Type"))));
  }

  int64_t start = clock_->NowMillis();
  Result<Response> result = TransportWrapper::Send(request);
  int64_t elapsed = clock_->NowMillis() - start;

  if (!result.ok()) {
    logger->debug("{}{} {} -> {} in {} ms; request headers: {}", prefix, request.method, url,
                  redactor.Redact(result.status().ToString()), elapsed,
                  redactor.Redact(RedactHeadersForLog(request.headers)));
    return result;
  }
  logger->debug("{}{} {} -> {} in {} ms; request headers: {}; response headers: {}", prefix,
                request.method, url, result->status, elapsed,
                redactor.Redact(RedactHeadersForLog(request.headers)),
                redactor.Redact(RedactHeadersForLog(result->headers)));
  if (bodies && !result->body.empty()) {
    logger->trace("{}{} {} response body: {}", prefix, request.method, url,
                  redactor.Redact(BodyForLog(result->body, result->Header("Content-Type"))));
  }
  return result;
}

}  // namespace crmbridge
