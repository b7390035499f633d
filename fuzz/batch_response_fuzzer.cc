// ParseBatchResponse (connectors/dynamics365/dynamics365_codec.h): a Dataverse $batch answer,
// multipart/mixed, as the Content-Type on the input's first line and the body after it.
//
// Each part taken has an HTTP status (100-599) and a body without the boundary, and there are
// fewer parts than delimiters. An answer that broke off anywhere gives a prefix of the whole
// answer's parts: the whole parts before the break, each as the whole answer has it.
#include <algorithm>

#include "connectors/dynamics365/dynamics365_codec.h"
#include "fuzz/fuzz_util.h"

namespace crmbridge::fuzz {
namespace {

size_t Occurrences(const std::string& text, const std::string& word) {
  if (word.empty()) return 0;
  size_t n = 0;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

std::string Describe(const Response& r) {
  return std::to_string(r.status) + " [" + r.body + "]";
}

}  // namespace
}  // namespace crmbridge::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crmbridge;
  using namespace crmbridge::fuzz;
  const std::string text = Text(data, size);
  const size_t newline = text.find('\n');
  if (newline == std::string::npos) return 0;
  const std::string content_type = text.substr(0, newline);
  const std::string body = text.substr(newline + 1);

  auto parts = dynamics365::ParseBatchResponse(content_type, body);
  if (!parts.ok()) {
    FUZZ_CHECK(parts.status().code() == StatusCode::kInvalidArgument, parts.status().ToString());
    FUZZ_CHECK(!parts.status().message().empty(), "a refusal without a message");
    return 0;
  }
  const size_t b = content_type.find("boundary=");
  FUZZ_CHECK(b != std::string::npos, "a batch answer without a boundary: " + content_type);
  for (const Response& part : *parts)
    FUZZ_CHECK(part.status >= 100 && part.status <= 599, "a part with status " + Describe(part));
  if (!parts->empty()) {
    std::string boundary = content_type.substr(b + 9);
    boundary = boundary.substr(0, boundary.find(';'));
    if (boundary.size() >= 2 && boundary.front() == '"') boundary = boundary.substr(1, boundary.size() - 2);
    const std::string delimiter = "--" + boundary;
    FUZZ_CHECK(parts->size() < Occurrences(body, delimiter),
               std::to_string(parts->size()) + " parts between fewer delimiters");
    for (const Response& part : *parts)
      FUZZ_CHECK(part.body.find(delimiter) == std::string::npos,
                 "a part holding the delimiter: " + Describe(part));
  }

  // The same answer broken off at a point the input chooses (its length, folded into the body).
  const size_t cut = body.empty() ? 0 : (size * 7919) % (body.size() + 1);
  auto broken = dynamics365::ParseBatchResponse(content_type, body.substr(0, cut));
  FUZZ_CHECK(broken.ok(), "broken off after " + std::to_string(cut) +
                              " bytes, a whole answer is refused: " + broken.status().message());
  FUZZ_CHECK(broken->size() <= parts->size(), "more parts broken off than whole");
  for (size_t i = 0; i < broken->size(); ++i)
    FUZZ_CHECK((*broken)[i].status == (*parts)[i].status && (*broken)[i].body == (*parts)[i].body &&
                   (*broken)[i].headers == (*parts)[i].headers,
               "part " + std::to_string(i) + " broken off reads " + Describe((*broken)[i]) +
                   ", whole " + Describe((*parts)[i]));
  return 0;
}
