// ParseYaml: what yaml-cpp would let through silently is refused where it stands (a key given
// twice, anchors and aliases), and a quoted value never closed is reported where it opens.
#include "src/core/yaml_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace crmbridge {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(const std::string& text) {
  auto doc = ParseYaml(text, "m.yaml");
  EXPECT_FALSE(doc.ok()) << text;
  if (doc.ok()) return "";
  EXPECT_EQ(doc.status().code(), StatusCode::kInvalidArgument);
  return doc.status().message();
}

TEST(YamlSourceTest, AKeyGivenTwiceInOneMapIsRefusedAtItsSecondOccurrence) {
  const std::string error = ErrorOf(
      "systems:\n"
      "  hubspot:\n"
      "    fields:\n"
      "      title: {native: subject}\n"
      "      stage: {native: hs_pipeline_stage}\n"
      "      title: {native: content}\n");
  EXPECT_EQ(error,
            "m.yaml:6:7: error: key 'title' is given twice in this map (hint: it was first given "
            "at line 4; keep one)");
}

TEST(YamlSourceTest, TheSameKeyInDifferentMapsAndFlowMapsIsFine) {
  auto doc = ParseYaml(
      "a: {name: 1, city: 2}\n"
      "b: {name: 1, city: 2}\n"
      "list:\n"
      "  - name: x\n"
      "  - name: y\n",
      "m.yaml");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ((*doc)["list"][1]["name"].as<std::string>(), "y");
}

TEST(YamlSourceTest, AKeyGivenTwiceInAFlowMapIsRefusedToo) {
  EXPECT_THAT(ErrorOf("params: {pipeline: a, pipeline: b}\n"),
              HasSubstr("m.yaml:1:23: error: key 'pipeline' is given twice"));
}

TEST(YamlSourceTest, AnchorsAndAliasesAreRefusedNotExpanded) {
  // Nine levels of nine aliases each would stand for 387 million strings.
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int k = 0; k < 8; ++k) bomb += ", " + prev;
    bomb += "]\n";
  }
  const std::string error = ErrorOf(bomb);
  EXPECT_THAT(error, HasSubstr("m.yaml:1:5: error: an anchor (&name) is not accepted here"));
  EXPECT_THAT(error, HasSubstr("m.yaml:2:10: error: an alias (*name) is not accepted here"));
}

TEST(YamlSourceTest, AValueLeftEmptyIsAtItsKeyNotAtTheNextLine) {
  // yaml-cpp places an empty value at the token after it: the next line's key.
  auto doc = ParseYaml("a:\n  native:\n  direction: in\nlast:\n", "m.yaml");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(PosOf((*doc)["a"]["native"], "m.yaml").ToString(), "m.yaml:2:3");
  EXPECT_EQ(PosOf((*doc)["last"], "m.yaml").ToString(), "m.yaml:4:1");
  // A value given is where it is written.
  EXPECT_EQ(PosOf((*doc)["a"]["direction"], "m.yaml").ToString(), "m.yaml:3:14");
}

TEST(YamlSourceTest, TagsAreRefusedNotPassedOver) {
  // The loaders read a value as written: `!!str 1` would still be the number 1 to them.
  const std::string error = ErrorOf("native: !!str 1\nsecret: !vault token\nlist: !!seq [a]\n");
  EXPECT_THAT(error, HasSubstr("m.yaml:1:9: error: a tag (tag:yaml.org,2002:str) is not accepted "
                               "here (hint: write the value alone; quote it ('5') to make a "
                               "number text)"));
  EXPECT_THAT(error, HasSubstr("m.yaml:2:9: error: a tag (!vault) is not accepted here"));
  EXPECT_THAT(error, HasSubstr("m.yaml:3:7: error: a tag (tag:yaml.org,2002:seq)"));
  // Plain and quoted values carry no tag of their own.
  EXPECT_TRUE(ParseYaml("a: 1\nb: '1'\nc: \"x\"\nd: [1]\ne: {f: 1}\n", "m.yaml").ok());
}

TEST(YamlSourceTest, AnUnterminatedQuoteIsReportedWhereItOpens) {
  const std::string error = ErrorOf(
      "systems:\n"
      "  hubspot:\n"
      "    onboarding:\n"
      "      params: {pipeline: 'Order/faktura}\n"
      "      fields:\n"
      "        title: {native: subject}\n");
  EXPECT_THAT(error, HasSubstr("m.yaml:4:26: error: not valid YAML: this quoted value is never "
                               "closed"));
}

TEST(YamlSourceTest, AQuoteLeftOpenAtTheEndOfTheFileIsNotTakenAsTheRestOfIt) {
  // yaml-cpp alone reads this as state = "x.db systems: {}".
  EXPECT_THAT(ErrorOf("state: 'x.db\nsystems: {}\n"),
              HasSubstr("m.yaml:1:8: error: not valid YAML: this quoted value is never closed"));
}

TEST(YamlSourceTest, AQuoteLeftOpenMidFileIsReportedWhereItOpensThoughAnotherFollows) {
  // The stray quote pairs with the one in the comment two lines down, and yaml-cpp gives up
  // there: the quote still open at the end of its own line is the mistake.
  const std::string error = ErrorOf(
      "systems:\n"
      "  hubspot:\n"
      "    onboarding:\n"
      "      params: {pipeline: \"Order/faktura}\n"
      "      fields:\n"
      "        title: {native: subject}   # the ticket's \"subject\"\n");
  EXPECT_THAT(error, HasSubstr("m.yaml:4:26: error: not valid YAML: this quoted value is not "
                               "closed on its line"));
  EXPECT_THAT(error, HasSubstr("the parser stopped at m.yaml:6:"));
}

TEST(YamlSourceTest, AQuoteInsidePlainTextIsNoQuote) {
  // After a comma outside brackets, or a hyphen inside a word, a quote is text.
  auto doc = ParseYaml(
      "native: Ny,'x\n"
      "options: {default_owner: o-'neil@bolaget.example}\n"
      "list:\n"
      "  - 'quoted'\n",
      "m.yaml");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ((*doc)["native"].as<std::string>(), "Ny,'x");
  EXPECT_EQ((*doc)["options"]["default_owner"].as<std::string>(), "o-'neil@bolaget.example");
  EXPECT_EQ((*doc)["list"][0].as<std::string>(), "quoted");
}

TEST(YamlSourceTest, ASecondDocumentIsRefusedNotDropped) {
  EXPECT_THAT(ErrorOf("version: 1\n---\nsystems: {}\n"),
              HasSubstr("m.yaml:2:1: error: a second YAML document: crmbridge reads one document "
                        "per file"));
  EXPECT_THAT(ErrorOf("version: 1\n...\ngarbage: [\n"),
              HasSubstr("not valid YAML after the end of the first document"));
}

TEST(YamlSourceTest, QuotesInsideBlockScalarsAreText) {
  auto doc = ParseYaml(
      "description: |\n"
      "  'not a quote\n"
      "  \"nor this\n"
      "folded: >-\n"
      "  'still text\n"
      "next: 'quoted'\n",
      "m.yaml");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ((*doc)["description"].as<std::string>(), "'not a quote\n\"nor this\n");
  EXPECT_EQ((*doc)["next"].as<std::string>(), "quoted");
}

TEST(YamlSourceTest, ApostrophesInPlainTextAndQuotesInCommentsAreNotQuotes) {
  auto doc = ParseYaml(
      "title: don't stop  # it's fine\n"
      "note: 'it''s quoted'\n"
      "url: \"http://x/\\\"y\"\n",
      "m.yaml");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ((*doc)["title"].as<std::string>(), "don't stop");
  EXPECT_EQ((*doc)["note"].as<std::string>(), "it's quoted");
}

TEST(YamlSourceTest, AFileWithNoContentIsAtItsStart) {
  for (const char* text : {"", "# only a comment\n", "\n\n"}) {
    auto doc = ParseYaml(text, "m.yaml");
    ASSERT_TRUE(doc.ok()) << doc.status().ToString();
    EXPECT_EQ(PosOf(*doc, "m.yaml").ToString(), "m.yaml:1:1") << text;
  }
}

TEST(YamlSourceTest, NestingTooDeepIsSaidSo) {
  // yaml-cpp gives up past a depth it can recurse to; its own words for that are "bad file".
  EXPECT_EQ(ErrorOf("a: " + std::string(5000, '[') + "\n"),
            "m.yaml:2:1: error: not valid YAML: nested too deeply to read (hint: crmbridge "
            "files nest a few levels: look for a bracket or brace left open)");
}

TEST(YamlSourceTest, AValueThatIsNotUtf8IsRefusedWhereItIs) {
  EXPECT_EQ(ErrorOf("ok: caf\xc3\xa9\nname: caf\xe9\n"),
            "m.yaml:2:7: error: this value is not UTF-8 text (byte 0xE9) (hint: save the file as "
            "UTF-8)");
  EXPECT_THAT(ErrorOf("over\xc0\xaflong: x\n"), HasSubstr("m.yaml:1:1: error: this value is not UTF-8"));
  EXPECT_TRUE(ParseYaml("# a comment in Latin-1: caf\xe9\nname: \"\\u00e9 \xf0\x9f\x99\x82\"\n", "m.yaml").ok());
}

TEST(YamlSourceTest, AnErrorStaysOnOneLineWhateverTheFileQuotes) {
  // A key written with an escaped line break, given twice: the message quotes it.
  EXPECT_EQ(ErrorOf("\"a\\nb\": 1\n\"a\\nb\": 2\n"),
            "m.yaml:2:1: error: key 'a\\nb' is given twice in this map (hint: it was first given "
            "at line 1; keep one)");
  // yaml-cpp quotes the character it stopped at, here a control character.
  const std::string error = ErrorOf(std::string(" :aa: 3\x02\0\n", 10));
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_THAT(error, HasSubstr("m.yaml:2:1: error: not valid YAML: "));
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

TEST(LoadYamlFileTest, AFolderOrADeviceIsRefusedNotReadWithoutEnd) {
  auto folder = LoadYamlFile("/tmp");
  ASSERT_FALSE(folder.ok());
  EXPECT_THAT(folder.status().message(),
              ::testing::HasSubstr("/tmp: is a folder, not a YAML file"));
  auto device = LoadYamlFile("/dev/zero");  // read, it never ends
  ASSERT_FALSE(device.ok());
  EXPECT_THAT(device.status().message(), ::testing::HasSubstr("/dev/zero: is not a regular file"));
}

}  // namespace
}  // namespace crmbridge
