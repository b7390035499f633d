// Logging: spdlog's default logger, with secret redaction on every line.
//
// crmbridge logs through spdlog's default logger (spdlog::info(...), spdlog::debug(...)).
// InitLogging() installs it with a RedactingSink in front of the real sink: the sink redacts the
// message, formats the line (text or JSON), and redacts the finished line again with
// Redactor::Global() before the inner sink sees it. No code path can therefore write a registered
// secret or a credential pattern, whatever it passes to the logger. Until InitLogging() is called
// the default logger is already a redacting text logger on stderr at info level, so lines logged
// before the command line is parsed are covered too.
//
// Loggers created elsewhere with their own sinks bypass all this: do not create any.
//
// RedactingLogTransport logs every HTTP exchange at debug (and bodies at trace), with sensitive
// headers and query values hidden before the line reaches the (redacting) logger.
//
// Thread-safety: InitLogging() is meant for start-up (spdlog swaps the default logger atomically,
// but lines in flight may go to the old one). Everything else is thread-safe.
#pragma once

#include <spdlog/common.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/sink.h>

#include <memory>
#include <mutex>
#include <string>

#include "src/core/clock.h"
#include "src/core/transport.h"

namespace crmbridge {

enum class LogFormat {
  kText,  // 2026-01-01T00:00:00.000Z [info] message
  kJson,  // {"ts":"2026-01-01T00:00:00.000Z","level":"info","msg":"message"}, one per line
};

// Makes a formatter for `format`; time stamps are UTC with milliseconds.
std::unique_ptr<spdlog::formatter> NewLogFormatter(LogFormat format);

// A sink decorator: redacts the message, formats it with its own formatter, redacts the finished
// line and hands it to `inner` (whose formatter it replaces with a pass-through, and whose level
// it opens fully: this sink's level decides).
class RedactingSink : public spdlog::sinks::sink {
 public:
  RedactingSink(std::shared_ptr<spdlog::sinks::sink> inner,
                std::unique_ptr<spdlog::formatter> formatter);

  void log(const spdlog::details::log_msg& msg) override;
  void flush() override;
  void set_pattern(const std::string& pattern) override;
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override;

 private:
  const std::shared_ptr<spdlog::sinks::sink> inner_;
  std::mutex mu_;
  std::unique_ptr<spdlog::formatter> formatter_;  // GUARDED_BY(mu_)
};

// Installs the default logger ("crmbridge"): `format`, minimum `level`, writing through a
// RedactingSink to `sink` (stderr when null). Flushes on every warning or worse.
void InitLogging(LogFormat format, spdlog::level::level_enum level,
                 std::shared_ptr<spdlog::sinks::sink> sink = nullptr);

// A line kept below the log on a terminal, such as a progress bar. While one is set, every log line
// the default logger writes first clears it, then is printed, and the line is drawn again below
// it, so the two never run into each other. "" takes it away (the cursor is left at the start of
// an empty line). Call it only when stderr is a terminal and the log goes there.
void SetStatusLine(const std::string& text);

// Logs each exchange through the default logger at debug: system, method, URL (user info dropped,
// query values hidden), HTTP status or error, duration in ms, request and response headers with
// credential headers hidden. At trace also the bodies (first 4 KiB), redacted. Forwards the request
// and the outcome unchanged.
class RedactingLogTransport : public TransportWrapper {
 public:
  explicit RedactingLogTransport(std::unique_ptr<Transport> target, Clock* clock = Clock::Real());

  Result<Response> Send(const Request& request) override;

 private:
  Clock* const clock_;
};

// `url` with user info and fragment removed, and the values of query parameters named as
// credentials (token, secret, key, password, signature, code, ...) replaced by "***"; the others
// ($select, $filter, cursors) are kept, for the person debugging.
std::string RedactUrlForLog(const std::string& url);

// `headers` as "Name: value; Name: value", credential headers' values hidden (an Authorization
// value keeps its scheme: "Bearer ***").
std::string RedactHeadersForLog(const Headers& headers);

}  // namespace crmbridge
