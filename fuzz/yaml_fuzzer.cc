// ParseYaml (src/core/yaml_source.h): the strict YAML reader under every mapping file and
// crmbridge.yaml, with its own checks for duplicate keys, anchors and aliases, and unclosed quotes.
//
// A refusal is kInvalidArgument and each of its lines is "fuzz.yaml:<line>:<column>: error: ...".
// A document taken holds no key twice in one map, and every node in it has a position inside the
// text (the loaders report their problems there). crmbridge never writes YAML, so what yaml-cpp's
// emitter makes of a document is not checked.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "fuzz/fuzz_util.h"
#include "src/core/yaml_source.h"

namespace crmbridge::fuzz {
namespace {

constexpr char kName[] = "fuzz.yaml";

void CheckNode(const YAML::Node& node, int lines, int depth) {
  FUZZ_CHECK(depth < 10000, "deeper than any file crmbridge reads");
  const SourcePos pos = PosOf(node, kName);
  FUZZ_CHECK(pos.line >= 1 && pos.line <= lines && pos.column >= 1,
             "a node without a position in the text: " + pos.ToString());
  if (node.IsMap()) {
    std::set<std::string> keys;
    for (const auto& kv : node) {
      if (kv.first.IsScalar())
        FUZZ_CHECK(keys.insert(kv.first.Scalar()).second,
                   "key '" + kv.first.Scalar() + "' taken twice in one map");
      CheckNode(kv.first, lines, depth + 1);
      CheckNode(kv.second, lines, depth + 1);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) CheckNode(item, lines, depth + 1);
  }
}

}  // namespace
}  // namespace crmbridge::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crmbridge;
  using namespace crmbridge::fuzz;
  const std::string text = Text(data, size);
  auto doc = ParseYaml(text, kName);
  if (!doc.ok()) {
    FUZZ_CHECK(doc.status().code() == StatusCode::kInvalidArgument, doc.status().ToString());
    CheckDiagnostics(doc.status().message(), kName);
    return 0;
  }
  if (!doc->IsDefined() || doc->IsNull()) return 0;
  const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  CheckNode(*doc, lines, 0);

  return 0;
}
