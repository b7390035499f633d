// Generic layers never name a vendor. What differs between systems is declared by each connector
// kind (Capabilities, its HttpClassifier) and asked of the registry, so a new system touches
// connectors/ alone. Fails when the code of src/core, src/engine, src/report, src/metrics,
// src/serve, mappings or state (comments aside) names a vendor, or a connector kind as a string
// literal.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "connectors/registry.h"
#include "tests/architecture/source_scan.h"

namespace crmbridge {
namespace {

const char* const kGenericFolders[] = {"src/core",  "src/engine", "src/report",
                                       "src/metrics", "src/serve", "mappings",   "state"};
// Vendor names in any spelling the code could use, compared case-insensitively.
const char* const kVendorWords[] = {"hubspot", "dynamics365", "dynamics 365", "dataverse",
                                    "totango"};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "<line>: <what>" for each vendor word, and each connector kind as a literal ("portal"), in the
// code of `source`.
std::vector<std::string> VendorMentions(const std::string& source) {
  std::vector<std::string> found;
  std::istringstream lines(testing::WithoutComments(source));
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const std::string lower = Lower(line);
    for (const char* word : kVendorWords)
      if (lower.find(word) != std::string::npos)
        found.push_back(std::to_string(number) + ": " + word);
    for (const std::string& kind : ConnectorKinds())
      if (line.find('"' + kind + '"') != std::string::npos)
        found.push_back(std::to_string(number) + ": \"" + kind + "\"");
  }
  return found;
}

TEST(GenericCodeTest, TheScannerSeesCodeAndLiteralsButNotComments) {
  EXPECT_TRUE(VendorMentions("// HubSpot's 423\n/* Totango\n  SDR */ int x = 1;\n").empty());
  EXPECT_EQ(VendorMentions("int a;\nif (kind == \"portal\") {}  // the portal kind\n"),
            std::vector<std::string>{"2: \"portal\""});
  EXPECT_EQ(VendorMentions("auto url = \"https://x\"; auto h = \"X-HubSpot-Limit\";\n"),
            std::vector<std::string>{"1: hubspot"})
      << "a // inside a string starts no comment";
  EXPECT_EQ(VendorMentions("char q = '\"'; int totango = 1'000;\n"),
            std::vector<std::string>{"1: totango"});
  EXPECT_EQ(VendorMentions("auto sql = R\"(-- \"dynamics365\" // )\"; // hubspot\n"),
            (std::vector<std::string>{"1: dynamics365", "1: \"dynamics365\""}));
  EXPECT_TRUE(VendorMentions("portal_access; PortalAccessFlow f; \"a portal system\";\n").empty())
      << "the mapping language's portal access is no kind";
}

TEST(GenericCodeTest, NoGenericFolderNamesAVendor) {
  size_t files = 0;
  for (const char* folder : kGenericFolders) {
    const std::filesystem::path root = std::filesystem::path(CRMBRIDGE_SOURCE_DIR) / folder;
    ASSERT_TRUE(std::filesystem::is_directory(root)) << root;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
      const std::string ext = entry.path().extension().string();
      if (!entry.is_regular_file() || (ext != ".cc" && ext != ".h")) continue;
      ++files;
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      for (const std::string& mention : VendorMentions(text.str()))
        ADD_FAILURE() << std::filesystem::relative(entry.path(), CRMBRIDGE_SOURCE_DIR).string()
                      << ":" << mention
                      << ": ask the connector registry (Capabilities, HttpClassifierOfKind) instead";
    }
  }
  EXPECT_GT(files, 20u);
}

}  // namespace
}  // namespace crmbridge
