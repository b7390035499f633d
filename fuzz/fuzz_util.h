// What the harnesses share: invariant checks that hold in every build, the input written to a
// file for the loaders that read one, the shape of every diagnostic, and scripted HTTP answers
// for the connectors.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "src/core/fake_transport.h"
#include "src/core/status.h"
#include "src/core/transport.h"

// An invariant of a harness. Checked in every build (assert() is compiled out of RelWithDebInfo);
// a failure prints what was expected and aborts, which libFuzzer reports as a crash.
#define FUZZ_CHECK(condition, detail)                                                        \
  do {                                                                                       \
    if (!(condition)) ::crmbridge::fuzz::Fail(#condition, __FILE__, __LINE__, (detail));     \
  } while (0)

namespace crmbridge::fuzz {

[[noreturn]] inline void Fail(const char* condition, const char* file, int line,
                              const std::string& detail) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n  %s\n", file, line, condition,
               detail.c_str());
  std::abort();
}

inline std::string Text(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Connectors log what they skip; thousands of inputs a second would drown the fuzzer's output.
inline void Quiet() { spdlog::set_level(spdlog::level::off); }

// The loaders read files, so each input is written to one file of this process (the loaders are
// called exactly as crmbridge calls them, path included). The file lives in /dev/shm where there
// is one: on ext4, a file truncated and written again is written back to the disk when it is
// closed, once per input.
class InputFile {
 public:
  explicit InputFile(const std::string& suffix)
      : path_((Directory() / ("crmbridge-fuzz-" + std::to_string(::getpid()) + suffix)).string()) {}
  ~InputFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  const std::string& Write(const std::string& text) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << text;
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  static std::filesystem::path Directory() {
    std::error_code ignored;
    if (std::filesystem::is_directory("/dev/shm", ignored)) return "/dev/shm";
    return std::filesystem::temp_directory_path();
  }

  std::string path_;
};

// A whole number of digits, or -1.
inline long Number(std::string_view digits) {
  if (digits.empty() || digits.size() > 9) return -1;
  long n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

// Every line of a loader's refusal is one diagnostic, "<file>:<line>:<column>: error: <message>"
// (or "warning:"), with a position an editor can jump to.
inline void CheckDiagnostics(const std::string& text, const std::string& file) {
  FUZZ_CHECK(!text.empty(), "a refusal without a message");
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    FUZZ_CHECK(line.substr(0, file.size() + 1) == file + ":",
               "a diagnostic that does not begin with its file: " + std::string(line));
    std::string_view rest = line.substr(file.size() + 1);
    const size_t colon1 = rest.find(':');
    const size_t colon2 = colon1 == std::string_view::npos ? colon1 : rest.find(':', colon1 + 1);
    FUZZ_CHECK(colon2 != std::string_view::npos,
               "a diagnostic without line:column: " + std::string(line));
    const long row = Number(rest.substr(0, colon1));
    const long column = Number(rest.substr(colon1 + 1, colon2 - colon1 - 1));
    FUZZ_CHECK(row >= 1 && column >= 1, "a diagnostic without a position: " + std::string(line));
    rest = rest.substr(colon2 + 1);
    FUZZ_CHECK(rest.rfind(" error: ", 0) == 0 || rest.rfind(" warning: ", 0) == 0,
               "a diagnostic that is neither an error nor a warning: " + std::string(line));
    FUZZ_CHECK(rest.size() > std::string_view(" error: ").size(),
               "a diagnostic without a message: " + std::string(line));
    start = end + 1;
  }
}

// A connector harness's input: its first line says what to call, and each line "--- <status>"
// begins an answer the transport gives, in order: header lines ("Name: value"), a blank line,
// then the body up to the next "--- " line. "--- drop" is a request that gets no answer at all.
// Once the answers run out, every request gets none. Lines between the first one and the first
// answer are the harness's own (connector_util.h reads "fields" and "id" lines there).
struct Script {
  std::string call;
  std::vector<std::string> lines;  // the lines between the first and the first answer
  std::vector<Result<Response>> answers;
};

inline Script ParseScript(const std::string& text) {
  Script script;
  size_t at = text.find('\n');
  script.call = text.substr(0, at);
  while (at != std::string::npos) {
    ++at;  // the newline
    if (text.compare(at, 4, "--- ") != 0) {
      const size_t end = text.find('\n', at);
      if (script.answers.empty())
        script.lines.push_back(text.substr(at, end == std::string::npos ? end : end - at));
      at = end;
      continue;
    }
    size_t line_end = text.find('\n', at);
    const std::string head = text.substr(at + 4, line_end == std::string::npos
                                                     ? std::string::npos
                                                     : line_end - at - 4);
    const long status = Number(head);
    // The header lines, up to a blank line.
    Headers headers;
    size_t pos = line_end == std::string::npos ? text.size() : line_end + 1;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      if (line.empty()) break;
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      size_t value = colon + 1;
      while (value < line.size() && line[value] == ' ') ++value;
      headers.emplace_back(line.substr(0, colon), line.substr(value));
    }
    pos = std::min(pos, text.size());
    size_t next = text.find("\n--- ", pos);
    const std::string body =
        text.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    if (status < 0) {
      script.answers.emplace_back(Status(StatusCode::kUnavailable, "no answer (scripted)"));
    } else {
      Response r;
      r.status = static_cast<int>(status);
      r.headers = std::move(headers);
      r.body = body;
      script.answers.emplace_back(std::move(r));
    }
    at = next;
  }
  return script;
}

// A transport that gives the script's answers in order, then none.
inline std::shared_ptr<FakeTransport> ScriptedTransport(const Script& script) {
  auto transport = std::make_shared<FakeTransport>();
  for (const Result<Response>& answer : script.answers) {
    if (answer.ok())
      transport->Enqueue(*answer);
    else
      transport->Fail(answer.status());
  }
  transport->SetFallback([](const Request&) -> Result<Response> {
    return Status(StatusCode::kUnavailable, "no answer (the script ran out)");
  });
  return transport;
}

// The words of `line`, split at spaces.
inline std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < line.size()) {
    size_t end = line.find(' ', at);
    if (end == std::string::npos) end = line.size();
    if (end > at) out.push_back(line.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

}  // namespace crmbridge::fuzz
