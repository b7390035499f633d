// The transforms of the mapping language (mappings/transforms.h), as a mapping declares them and
// as a sync applies them to the values vendors send: the loader parses the transform list, then
// MappingPlan::ToCanonical and ToNative run it on a native value.
//
// The input: the canonical field's type on its first line (string, number, boolean, datetime),
// the field's transform list on its second, as a mapping writes it ("[trim, {date: epoch_s}]";
// the table `stage` is declared), and the native value after that, as JSON (any other text is a
// string).
//
// A value read is of the field's type, and can be written back. Writing and reading again settles
// at once: the canonical value read back from what was written reads back the same from what is
// written for it in turn. A field that changed with every round trip would be written on every
// sync, each system overwriting the other.
#include <memory>
#include <optional>

#include "fuzz/fuzz_util.h"
#include "mappings/mapping.h"
#include "tests/mappings/test_systems.h"

namespace crmbridge::fuzz {
namespace {

using nlohmann::json;

std::string MappingText(const std::string& type, const std::string& transforms) {
  return "version: 1\n"
         "entities:\n"
         "  e:\n"
         "    fields:\n"
         "      f: {type: " + type + "}\n"
         "tables:\n"
         "  stage:\n"
         "    - {native: \"Ny\", canonical: new, prefer: true}\n"
         "    - {native: 1, canonical: new}\n"
         "    - {native: \"Pågår\", canonical: onboarding}\n"
         "    - {native: \"100000001\", canonical: closed}\n"
         "systems:\n"
         "  hubspot:\n"
         "    e:\n"
         "      object: tickets\n"
         "      fields:\n"
         "        f: {native: x, transforms: " + transforms + "}\n";
}

// The plan of the last mapping loaded: inputs that change only the value reuse it.
struct Loaded {
  std::string text;
  std::shared_ptr<const MappingPlan> plan;  // null when the mapping was refused
};

const SystemEntityMapping* MappingFor(const std::string& text) {
  static InputFile file("-transforms.yaml");
  static Loaded last;
  if (last.text != text || last.text.empty()) {
    static const MappingSystems systems = testing::Systems({{"hubspot", "hubspot"}});
    auto plan = LoadMappingPlan({file.Write(text)}, systems);
    last = Loaded{text, plan.ok() ? *plan : nullptr};
  }
  return last.plan ? last.plan->Find("hubspot", "e") : nullptr;
}

void CheckType(const json& v, FieldType type) {
  if (v.is_null()) return;
  switch (type) {
    case FieldType::kNumber:
      FUZZ_CHECK(v.is_number(), "a number field read as " + v.dump());
      break;
    case FieldType::kBoolean:
      FUZZ_CHECK(v.is_boolean(), "a boolean field read as " + v.dump());
      break;
    default:
      FUZZ_CHECK(v.is_string(), "a text field read as " + v.dump());
  }
}

// The canonical value of `native`, or nullopt when it cannot be read (a record-level error).
std::optional<json> Read(const SystemEntityMapping& m, const json& native) {
  auto canonical = MappingPlan::ToCanonical(m, native);
  if (!canonical.ok()) {
    FUZZ_CHECK(canonical.status().code() == StatusCode::kInvalidArgument,
               canonical.status().ToString());
    FUZZ_CHECK(!canonical.status().message().empty(), "a refusal without a message");
    return std::nullopt;
  }
  return canonical->fields;
}

}  // namespace
}  // namespace crmbridge::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  crmbridge::fuzz::Quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crmbridge;
  using namespace crmbridge::fuzz;
  const std::string text = Text(data, size);
  const size_t first = text.find('\n');
  const size_t second = first == std::string::npos ? first : text.find('\n', first + 1);
  if (second == std::string::npos) return 0;
  const std::string type = text.substr(0, first);
  const std::string transforms = text.substr(first + 1, second - first - 1);
  // One line each: anything else would be more of the mapping than its two slots.
  if (type != "string" && type != "number" && type != "boolean" && type != "datetime") return 0;
  const SystemEntityMapping* m = MappingFor(MappingText(type, transforms));
  if (m == nullptr) return 0;

  const std::string value = text.substr(second + 1);
  json native_value = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (native_value.is_discarded()) {
    native_value = value;
    try {
      (void)native_value.dump();
    } catch (const json::exception&) {
      return 0;  // not UTF-8: a vendor's answer is parsed JSON, which is
    }
  }

  auto read = Read(*m, json{{"x", native_value}});
  if (!read) return 0;
  if (read->contains("f")) CheckType((*read)["f"], m->fields[0].type);
  (void)read->dump();  // what the engine stores

  auto written = MappingPlan::ToNative(*m, *read, /*creating=*/true);
  FUZZ_CHECK(written.ok(), "a value read cannot be written back: " + read->dump() + ": " +
                               written.status().ToString());
  auto again = Read(*m, *written);
  FUZZ_CHECK(again.has_value(), "what was written cannot be read: " + written->dump());
  auto rewritten = MappingPlan::ToNative(*m, *again, /*creating=*/true);
  FUZZ_CHECK(rewritten.ok(), "a value read back cannot be written: " + again->dump());
  auto settled = Read(*m, *rewritten);
  FUZZ_CHECK(settled.has_value() && *settled == *again,
             "no settling: " + read->dump() + " -> " + written->dump() + " -> " + again->dump() +
                 " -> " + rewritten->dump() + " -> " + (settled ? settled->dump() : "(refused)"));
  return 0;
}
