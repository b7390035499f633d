// Every file in tests/mappings/broken/ holds one mistake an integration engineer makes. Each must
// be refused with its exact position and message, so the error leads straight to the line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "mappings/mapping.h"
#include "tests/mappings/test_systems.h"

namespace crmbridge {
namespace {

const MappingSystems kSystems = testing::Systems(
    {{"hubspot", "hubspot"}, {"dynamics365", "dynamics365"}, {"totango", "totango"}, {"portal", "portal"}});

struct Case {
  const char* file;
  const char* where;  // "line:column"
  const char* message;
};

const Case kCases[] = {
    {"01_not_a_map.yaml", "1:1", "a mapping file must be a map"},
    {"02_missing_version.yaml", "1:1", "missing 'version'"},
    {"03_bad_version.yaml", "1:10", "unsupported version '2'"},
    {"04_unknown_top_key.yaml", "2:1", "unknown key 'entites' in the mapping file"},
    {"05_unknown_type.yaml", "5:21", "unknown type 'text'"},
    {"06_field_not_a_map.yaml", "5:14", "field 'title' must be a map"},
    {"07_entity_without_fields.yaml", "4:5", "entity 'onboarding' needs a map of fields"},
    {"08_required_not_bool.yaml", "5:39", "required must be true or false"},
    {"09_table_not_a_list.yaml", "6:11", "table 'stages' must be a list of rows"},
    {"10_table_row_missing_canonical.yaml", "8:7", "a table row needs 'native' and 'canonical'"},
    {"11_table_many_to_one_without_prefer.yaml", "6:3",
     "table 'd365_stage' maps native value 100000002 to 2 canonical values; mark exactly one of "
     "those rows prefer: true"},
    {"12_table_two_preferred.yaml", "6:3",
     "table 'd365_stage' maps native value 100000002 to 2 canonical values"},
    {"13_unknown_system.yaml", "6:3", "unknown system 'salesforce'"},
    {"14_unknown_entity.yaml", "7:5", "unknown entity 'onboardings'"},
    {"15_missing_object.yaml", "8:7", "hubspot.onboarding needs 'object': the native object"},
    {"16_unknown_canonical_field.yaml", "11:9", "entity 'onboarding' has no field 'owner'"},
    {"17_missing_native.yaml", "10:16", "field 'title' needs 'native': the native field name"},
    {"18_native_mapped_twice.yaml", "11:31", "native field 'subject' is mapped twice in hubspot.onboarding"},
    {"19_bad_direction.yaml", "10:42", "unknown direction 'outbound'"},
    {"20_unknown_transform.yaml", "10:53", "unknown transform 'lowercase'"},
    {"21_unknown_table.yaml", "13:65", "unknown table 'hubspot_stages'"},
    {"22_transform_takes_no_parameter.yaml", "10:47", "transform 'trim' takes no parameter"},
    {"23_default_without_value.yaml", "10:61", "transform 'default' needs a value"},
    {"24_transforms_not_a_list.yaml", "10:46", "transforms must be a list"},
    {"25_boolean_on_a_string_field.yaml", "10:65",
     "transform 'boolean' gives a boolean, but contact.portal_access is a string"},
    {"26_boolean_bad_forms.yaml", "10:57", "transform 'boolean' takes the native values of true and false"},
    {"27_number_bad_decimals.yaml", "12:58", "decimals must be a whole number from 0 to 12"},
    {"28_number_unknown_key.yaml", "10:73", "unknown key 'separator' in transform 'number'"},
    {"29_date_bad_pattern.yaml", "10:68", "date format '%d/%m/%y' is not epoch_ms, epoch_s, iso, date"},
    {"30_date_named_zone.yaml", "12:64", "zone 'Europe/Stockholm' is not UTC or an offset such as +01:00"},
    {"31_date_on_a_number_field.yaml", "10:52",
     "transform 'date' gives a datetime, but onboarding.started is a number"},
    {"32_template_without_slot.yaml", "10:58", "template 'SE - onboarding' must hold exactly one {}"},
    {"33_entity_mapped_twice.yaml", "10:5", "key 'onboarding' is given twice in this map"},
    {"34_unknown_field_key.yaml", "10:34", "unknown key 'trasnforms' in field 'title'"},
    {"35_yaml_syntax_error.yaml", "5:1", "not valid YAML"},
    {"36_stage_table_misses_a_stage.yaml", "15:65",
     "table 'hubspot_stage' has no row for onboarding.stage value onboarding"},
    {"37_table_value_not_declared.yaml", "7:3",
     "table 'hubspot_stage' maps to 'clsoed', which is not a value of onboarding.stage"},
    {"38_match_key_not_mapped.yaml", "9:14", "match key 'email' is not a field dynamics365.contact maps"},
    {"39_end_value_not_declared.yaml", "5:65", "end value 'closd' is not one of onboarding.stage's values"},
    {"40_ref_missing_entity.yaml", "8:23",
     "contact.company is a reference and needs 'entity': the entity it refers to"},
    {"41_ref_unknown_entity.yaml", "8:36", "contact.company refers to unknown entity 'companies'"},
    {"42_ref_cycle.yaml", "10:36", "references form a cycle: company -> contact -> company"},
    {"43_ref_with_transforms.yaml", "18:9", "contact.company is a reference: it takes no transforms"},
    {"44_ref_target_not_mapped.yaml", "16:9",
     "dynamics365 maps contact.company, a reference to company, but does not map company"},
    {"45_ref_on_portal.yaml", "18:9",
     "system portal is of kind portal, which does not carry references, so it cannot map contact.company"},
    {"46_entity_on_a_non_ref.yaml", "8:39", "contact.company names an entity, but is not a reference"},
    {"47_bind_on_a_non_ref.yaml", "14:9", "'bind' is for reference fields, and contact.first_name is a string"},
    {"48_bind_on_hubspot.yaml", "18:9",
     "'bind' names a dynamics365 navigation property, and hubspot is of kind hubspot"},
    {"49_values_on_a_ref.yaml", "8:53",
     "contact.company is a reference: its values are the referenced records' ids, so it takes no 'values'"},
    {"50_portal_access_missing_key.yaml", "22:3", "portal_access needs 'property'"},
    {"51_portal_access_unknown_field.yaml", "27:10", "entity 'contact' has no field 'portal_email'"},
    {"52_portal_access_wrong_field_type.yaml", "26:17",
     "portal_access.contact_flag must be a boolean field, and contact.email is a string"},
    {"53_portal_access_not_a_field_name.yaml", "27:10", "portal_access.email must be a field name"},
    {"54_portal_access_entity_clash.yaml", "24:3",
     "portal_access adds the entity 'portal_user', and the mapping declares an entity of that name"},
    {"55_field_given_twice.yaml", "14:9", "key 'title' is given twice in this map"},
    {"56_unclosed_quote.yaml", "10:26", "not valid YAML: this quoted value is never closed"},
    {"57_alias.yaml", "4:13", "an anchor (&name) is not accepted here"},
    {"58_unknown_param.yaml", "10:16",
     "unknown param 'pipline' for hubspot tickets (hint: did you mean 'pipeline'?)"},
    {"59_unknown_object.yaml", "9:15",
     "unknown object 'tickts' for hubspot, of kind hubspot (hint: did you mean 'tickets'?"},
    {"60_param_of_the_wrong_type.yaml", "10:33", "param 'change_tracking' must be true or false, not 'no'"},
    {"69_key_column_not_a_name.yaml", "10:21",
     "param 'key' must be a name of letters, digits and _ (starting with a letter or _), not "
     "'crmb_externalid?$filter=x'"},
    {"70_native_field_not_a_name.yaml", "11:25",
     "native field 'name,description&$filter=x' is no field name dynamics365 takes: letters, "
     "digits and _, starting with a letter or _ (crmbridge connectors describe dynamics365)"},
    // A list where a name belongs: yaml-cpp reads it as "", an attribute named "" in Totango.
    {"71_native_a_list.yaml", "11:24", "native must be a single name or value, not a list"},
    // Read as "", it would mean "no system of record": the conflict policy silently changes.
    {"72_system_of_record_a_list.yaml", "6:49",
     "system_of_record must be a single name or value, not a list"},
    // YAML::Load reads the first document only: the rest would be dropped unseen.
    {"73_second_document.yaml", "6:1",
     "a second YAML document: crmbridge reads one document per file"},
    // The lookups match 1 and "1" as one value.
    {"74_table_number_and_text_alike.yaml", "6:3",
     "table 'priority' maps native value 1 to 2 canonical values; mark exactly one of those rows "
     "prefer: true"},
    // false would be written as "yes" and read back as true.
    {"75_boolean_one_native_value.yaml", "11:85",
     "transform 'boolean' gives true and false the same native value \"yes\""},
    {"76_param_not_one_of_its_values.yaml", "10:56",
     "param 'priority' must be one of 1, 2, 3, not '7'"},
    {"77_param_empty.yaml", "10:26", "param 'pipeline' is empty"},
    {"78_param_number_too_long.yaml", "10:55",
     "param 'overlap_ms' must be a whole number of at most 15 digits"},
    {"79_read_from_a_written_only_object.yaml", "11:9",
     "totango touchpoints are written, not read, and totango.note.body is read (direction: both, "
     "the default)"},
    {"80_on_delete_sets_a_boolean_to_text.yaml", "4:38",
     "on_delete sets contact.portal_access, a boolean, to no"},
    {"81_object_empty.yaml", "9:15", "object must be a single name or value, not empty"},
    {"82_default_a_list.yaml", "11:53", "transform 'default' must be a single value, not a list"},
    // A field writing what the connector writes itself: the key it upserts by, the pipeline.
    {"83_field_writes_the_upsert_key.yaml", "13:9",
     "hubspot.company.code writes crmbridge_id, which hubspot sets itself on companies "
     "(params.id_property, by default crmbridge_id)"},
    {"84_field_writes_the_pipeline.yaml", "14:9",
     "hubspot.onboarding.lane writes hs_pipeline, which hubspot sets itself on tickets "
     "(params.pipeline: Onboarding)"},
    {"85_key_param_names_a_mapped_column.yaml", "12:9",
     "dynamics365.contact.email writes emailaddress1, which dynamics365 sets itself on contacts "
     "(params.key: emailaddress1)"},
    {"86_two_entities_on_one_object.yaml", "15:5",
     "hubspot.task maps notes, as hubspot.note does ("},
    {"87_reference_names_another_object.yaml", "18:9",
     "hubspot.contact.company names compnies, but company is companies in hubspot"},
    {"88_default_not_one_of_the_values.yaml", "11:78",
     "default 'urgent' is not one of onboarding.priority's values"},
    {"89_default_not_of_the_type.yaml", "11:77",
     "default 'yes' cannot be a value of company.active, a boolean"},
    {"90_required_false_under_a_required_field.yaml", "11:40",
     "required: false has no effect: company.name is required in every system"},
    // Keys that say how a field is written, where it is never written.
    {"91_create_only_on_a_field_read_alone.yaml", "11:58",
     "create_only says how company.name is written, and it is only read (direction: in)"},
    {"92_bind_on_a_reference_read_alone.yaml", "18:66",
     "bind says how contact.company is written, and it is only read (direction: in)"},
    {"94_prefer_on_a_row_that_shares_nothing.yaml", "7:3",
     "table 'priority' marks the row HIGH -> high prefer: true, and no other row shares its "
     "native or canonical value"},
    {"93_create_only_where_nothing_is_created.yaml", "12:43",
     "create_only writes company.name when hubspot creates the record, and hubspot.company has "
     "create: false"},
    {"95_a_table_by_its_logical_name.yaml", "9:15",
     "unknown object 'opportunity' for dynamics365, of kind dynamics365"},
    {"96_a_system_mapping_with_no_fields.yaml", "10:15", "hubspot.onboarding maps no fields"},
    {"61_param_for_another_object.yaml", "10:16", "param 'pipeline' is for deals, tickets, not companies"},
    {"62_match_key_is_a_reference.yaml", "14:14",
     "match key 'company' is a reference: its ids differ in each system"},
    {"63_create_not_a_boolean.yaml", "9:15", "create must be true or false"},
    {"64_on_merge_unknown.yaml", "4:15", "on_merge must be merge or keep"},
    {"65_ref_on_totango_accounts.yaml", "18:9",
     "totango accounts hold no reference in 'parent_id', so it cannot map onboarding.company (hint: "
     "references on totango go in: tasks.account_id, touchpoints.account_id, users.account_id)"},
    {"66_totango_task_without_flow.yaml", "10:7",
     "totango.task writes totango tasks, which need params.activity_type_id (or a field written to "
     "activity_type_id) (hint: params: {activity_type_id: ...}; crmbridge connectors describe "
     "totango)"},
    {"68_totango_task_with_an_empty_flow.yaml", "10:7",
     "totango.task writes totango tasks, which need params.activity_type_id"},
    {"67_number_mark_is_a_digit.yaml", "13:33",
     "a decimal mark or thousands separator cannot be a digit, a sign or an exponent's e: it would "
     "be read as part of the number"},
};

std::string Dir() { return std::string(CRMBRIDGE_SOURCE_DIR) + "/tests/mappings/broken/"; }

TEST(BrokenMappingCorpusTest, EveryFileIsRefusedAtItsExactPosition) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.file);
    const std::string path = Dir() + c.file;
    auto plan = LoadMappingPlan({path}, kSystems);
    ASSERT_FALSE(plan.ok()) << "accepted a broken mapping";
    EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
    const std::string expected = path + ":" + c.where + ": error: " + c.message;
    EXPECT_NE(plan.status().message().find(expected), std::string::npos)
        << "expected: " << expected << "\n     got: " << plan.status().message();
  }
}

TEST(BrokenMappingCorpusTest, EveryFileOfTheCorpusHasItsCase) {
  std::set<std::string> files, cases;
  for (const auto& entry : std::filesystem::directory_iterator(Dir())) files.insert(entry.path().filename());
  for (const Case& c : kCases) cases.insert(c.file);
  EXPECT_EQ(files, cases);
  EXPECT_GE(files.size(), 30u);
}

TEST(BrokenMappingCorpusTest, SeveralMistakesAreReportedAtOnce) {
  // Three mistakes in one file: all three come back in one answer, each at its line.
  const std::string path = ::testing::TempDir() + "three_mistakes.yaml";
  std::ofstream(path) << "version: 1\n"
                         "entities:\n"
                         "  onboarding:\n"
                         "    fields: {title: {type: text}}\n"
                         "systems:\n"
                         "  hubspot:\n"
                         "    onboarding:\n"
                         "      object: tickets\n"
                         "      fields:\n"
                         "        title: {native: subject, direction: outbound, transforms: [lowercase]}\n";
  auto plan = LoadMappingPlan({path}, kSystems);
  ASSERT_FALSE(plan.ok());
  const std::string m = plan.status().message();
  EXPECT_NE(m.find(path + ":4:28: error: unknown type 'text'"), std::string::npos) << m;
  EXPECT_NE(m.find(path + ":10:45: error: unknown direction 'outbound'"), std::string::npos) << m;
  EXPECT_NE(m.find(path + ":10:68: error: unknown transform 'lowercase'"), std::string::npos) << m;
}

TEST(BrokenMappingCorpusTest, AFileGivenTwiceIsSaidSo) {
  // Not "entity 'onboarding' is declared twice" at each of its entities.
  const std::string path = std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/onboarding.yaml";
  auto plan = LoadMappingPlan({path, path}, kSystems);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().message(), path + ": this mapping file is given twice (as file 1 and 2 "
                                            "of the list): give it once");
}

TEST(BrokenMappingCorpusTest, EveryFilesYamlMistakeIsReportedAtOnce) {
  // Two files that are not valid YAML, given together: both are named, not the first alone.
  const std::string broken = Dir() + "35_yaml_syntax_error.yaml";
  const std::string unclosed = Dir() + "56_unclosed_quote.yaml";
  auto plan = LoadMappingPlan({broken, unclosed}, kSystems);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  const std::string m = plan.status().message();
  EXPECT_NE(m.find(broken + ":5:1: error: not valid YAML"), std::string::npos) << m;
  EXPECT_NE(m.find(unclosed + ":10:26: error: not valid YAML"), std::string::npos) << m;
}

}  // namespace
}  // namespace crmbridge
