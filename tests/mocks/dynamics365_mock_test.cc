// Dynamics365Mock over real HTTP (httplib::Client, port 0): the Entra token flow, the Web API's
// reads, paging, change tracking, conditional writes, lookups, errors and service protection, each
// checked against the shapes in shared/refs/dynamics365/.
#include "mocks/dynamics365/dynamics365_mock.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "src/core/clock.h"

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

constexpr char kApi[] = "/api/data/v9.2/";

// Percent-encodes a query value the way a client must (spaces, quotes, '+', '$' ...).
std::string Q(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

class Dynamics365MockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.clock = &clock_;
    options_.token_lifetime_seconds = 600;
  }

  void TearDown() override {
    if (mock_) mock_->Stop();
  }

  // Starts the mock with options_ and fetches a token. Call once per test, after adjusting
  // options_.
  void StartMock() {
    mock_ = std::make_unique<Dynamics365Mock>(options_);
    ASSERT_TRUE(mock_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", mock_->port());
    client_->set_url_encode(false);  // the tests encode their own query strings
    token_ = FetchToken();
    ASSERT_FALSE(token_.empty());
  }

  // Moves the fake clock and takes a fresh token, as a client would once its token expired.
  void AdvanceAndReauthenticate(std::chrono::seconds d) {
    clock_.Advance(d);
    token_ = FetchToken();
  }

  httplib::Result PostToken(const std::string& form, httplib::Headers headers = {}) {
    return client_->Post("/tenant/oauth2/v2.0/token", headers, form,
                         "application/x-www-form-urlencoded");
  }

  std::string FetchToken() {
    auto res = PostToken(
        "grant_type=client_credentials&client_id=mock-client-id&client_secret=mock-client-secret"
        "&scope=" + Q("https://org.crm.dynamics.com/.default"));
    if (!res || res->status != 200) return "";
    return json::parse(res->body).value("access_token", "");
  }

  httplib::Headers Headers(httplib::Headers extra = {}) const {
    httplib::Headers h = {{"Authorization", "Bearer " + token_},
                          {"Accept", "application/json"},
                          {"OData-MaxVersion", "4.0"},
                          {"OData-Version", "4.0"}};
    h.insert(extra.begin(), extra.end());
    return h;
  }

  httplib::Result Get(const std::string& path, httplib::Headers extra = {}) {
    return client_->Get(path.c_str(), Headers(extra));
  }
  httplib::Result Post(const std::string& path, const json& body, httplib::Headers extra = {}) {
    return client_->Post(path.c_str(), Headers(extra), body.dump(), "application/json");
  }
  httplib::Result Patch(const std::string& path, const json& body, httplib::Headers extra = {}) {
    return client_->Patch(path.c_str(), Headers(extra), body.dump(), "application/json");
  }
  httplib::Result Delete(const std::string& path, httplib::Headers extra = {}) {
    return client_->Delete(path.c_str(), Headers(extra));
  }

  // Creates a row and returns its id, parsed from OData-EntityId as dynamics-web-api does.
  std::string Create(const std::string& set, const json& body) {
    auto res = Post(kApi + set, body);
    EXPECT_TRUE(res);
    if (!res) return "";
    EXPECT_EQ(res->status, 204) << res->body;
    std::smatch m;
    std::string entity_id = res->get_header_value("OData-EntityId");
    static const std::regex kGuid(R"(\(([0-9a-f-]{36})\)$)");
    EXPECT_TRUE(std::regex_search(entity_id, m, kGuid)) << entity_id;
    return m.size() > 1 ? m[1].str() : "";
  }

  // The path of an absolute link under the mock (nextLink/deltaLink), checked to be absolute.
  std::string PathOf(const std::string& link) {
    EXPECT_EQ(link.rfind(mock_->base_url(), 0), 0u) << link;
    return link.substr(mock_->base_url().size());
  }

  // Names of the accounts a $filter selects, sorted.
  std::vector<std::string> Names(const std::string& set, const std::string& filter,
                                 const std::string& column = "name") {
    auto res = Get(kApi + set + "?$select=" + column + "&$filter=" + Q(filter));
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, 200) << filter << ": " << res->body;
    if (res->status != 200) return {};
    std::vector<std::string> names;
    const json body = json::parse(res->body);
    for (const json& row : body["value"]) names.push_back(row[column]);
    std::sort(names.begin(), names.end());
    return names;
  }

  static json Body(const httplib::Result& res) { return json::parse(res->body); }

  FakeClock clock_;
  Dynamics365MockOptions options_;
  std::unique_ptr<Dynamics365Mock> mock_;
  std::unique_ptr<httplib::Client> client_;
  std::string token_;
};

// --- auth --------------------------------------------------------------------------------------

// The Merge action: the subordinate is deactivated, marked merged and points at its master; the
// rows that looked up the subordinate look up the master; 204 without content. Refusals: an
// inactive row (merged already), an unknown id, a table it does not merge.
TEST_F(Dynamics365MockTest, MergeDeactivatesTheSubordinateAndReparentsItsChildren) {
  StartMock();
  const std::string master = Create("accounts", {{"name", "Acme"}});
  const std::string sub = Create("accounts", {{"name", "Acme AB"}});
  const std::string contact =
      Create("contacts", {{"lastname", "Berg"}, {"parentcustomerid_account@odata.bind", "/accounts(" + sub + ")"}});
  const std::string opportunity =
      Create("opportunities", {{"name", "Onboarding"}, {"parentaccountid@odata.bind", "/accounts(" + sub + ")"}});
  auto merge = [&](const std::string& type, const std::string& pk, const std::string& target,
                   const std::string& subordinate) {
    return Post(std::string(kApi) + "Merge",
                {{"Target", {{"@odata.type", "Microsoft.Dynamics.CRM." + type}, {pk, target}}},
                 {"Subordinate", {{"@odata.type", "Microsoft.Dynamics.CRM." + type}, {pk, subordinate}}},
                 {"PerformParentingChecks", false}});
  };
  auto res = merge("account", "accountid", master, sub);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
  auto row = Get(std::string(kApi) + "accounts(" + sub + ")?$select=statecode,statuscode,merged,_masterid_value");
  ASSERT_TRUE(row && row->status == 200);
  const json s = json::parse(row->body);
  EXPECT_EQ(s["statecode"], 1);
  EXPECT_EQ(s["statuscode"], 2);
  EXPECT_EQ(s["merged"], true);
  EXPECT_EQ(s["_masterid_value"], master);
  auto c = Get(std::string(kApi) + "contacts(" + contact + ")?$select=_parentcustomerid_value");
  ASSERT_TRUE(c && c->status == 200);
  EXPECT_EQ(json::parse(c->body)["_parentcustomerid_value"], master);
  auto o = Get(std::string(kApi) + "opportunities(" + opportunity + ")?$select=_parentaccountid_value");
  ASSERT_TRUE(o && o->status == 200);
  EXPECT_EQ(json::parse(o->body)["_parentaccountid_value"], master);

  auto again = merge("account", "accountid", master, sub);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 400) << "an inactive row cannot be merged again";
  auto unknown = merge("account", "accountid", master, "00000000-0000-4000-8000-000000000000");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  auto other = merge("opportunity", "opportunityid", opportunity, opportunity);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 400);
}

TEST_F(Dynamics365MockTest, TokenFlowIssuesBearerTokenThatExpires) {
  StartMock();
  auto res = PostToken("grant_type=client_credentials&client_id=mock-client-id&client_secret="
                       "mock-client-secret&scope=" + Q("https://org.api.crm.dynamics.com/.default"));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json body = Body(res);
  EXPECT_EQ(body["token_type"], "Bearer");
  EXPECT_EQ(body["expires_in"], 600);
  EXPECT_FALSE(body["access_token"].get<std::string>().empty());
  EXPECT_FALSE(body.contains("refresh_token"));  // client credentials: none (reference.md §1)

  auto ok = Get(std::string(kApi) + "accounts");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->get_header_value("OData-Version"), "4.0");

  clock_.Advance(std::chrono::seconds(599));
  EXPECT_EQ(Get(std::string(kApi) + "accounts")->status, 200);
  clock_.Advance(std::chrono::seconds(2));
  auto expired = Get(std::string(kApi) + "accounts");
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->status, 401);
  EXPECT_NE(expired->get_header_value("WWW-Authenticate").find("Bearer authorization_uri="),
            std::string::npos);

  token_ = FetchToken();  // no refresh token: a new client-credentials request
  EXPECT_EQ(Get(std::string(kApi) + "accounts")->status, 200);
}

TEST_F(Dynamics365MockTest, TokenEndpointRejectsBadRequestsInEntraShape) {
  StartMock();
  const std::string scope = "&scope=" + Q("https://org.crm.dynamics.com/.default");

  auto bad_secret = PostToken(
      "grant_type=client_credentials&client_id=mock-client-id&client_secret=nope" + scope);
  ASSERT_TRUE(bad_secret);
  EXPECT_EQ(bad_secret->status, 401);
  json e = Body(bad_secret);
  EXPECT_EQ(e["error"], "invalid_client");
  EXPECT_EQ(e["error_codes"][0], 7000215);
  EXPECT_EQ(e["error_description"].get<std::string>().rfind("AADSTS7000215: ", 0), 0u);
  EXPECT_TRUE(e.contains("trace_id") && e.contains("correlation_id") && e.contains("timestamp"));

  auto bad_grant = PostToken(
      "grant_type=password&client_id=mock-client-id&client_secret=mock-client-secret" + scope);
  EXPECT_EQ(bad_grant->status, 400);
  EXPECT_EQ(Body(bad_grant)["error"], "unsupported_grant_type");

  auto bad_scope = PostToken(
      "grant_type=client_credentials&client_id=mock-client-id&client_secret=mock-client-secret"
      "&scope=" + Q("https://org.crm.dynamics.com/user_impersonation"));
  EXPECT_EQ(bad_scope->status, 400);
  EXPECT_EQ(Body(bad_scope)["error"], "invalid_scope");

  auto unknown_client = PostToken(
      "grant_type=client_credentials&client_id=other&client_secret=mock-client-secret" + scope);
  EXPECT_EQ(unknown_client->status, 400);
  EXPECT_EQ(Body(unknown_client)["error_codes"][0], 700016);

  auto no_grant = PostToken("client_id=mock-client-id" + scope);
  EXPECT_EQ(no_grant->status, 400);
  EXPECT_EQ(Body(no_grant)["error"], "invalid_request");

  auto wrong_tenant = client_->Post(
      "/other-tenant/oauth2/v2.0/token",
      "grant_type=client_credentials&client_id=mock-client-id&client_secret=mock-client-secret" +
          scope,
      "application/x-www-form-urlencoded");
  EXPECT_EQ(wrong_tenant->status, 400);

  // RFC 6749 §2.3.1: the credentials may come as HTTP Basic instead.
  auto basic = PostToken("grant_type=client_credentials" + scope,
                         {{"Authorization", "Basic bW9jay1jbGllbnQtaWQ6bW9jay1jbGllbnQtc2VjcmV0"}});
  EXPECT_EQ(basic->status, 200) << basic->body;
}

TEST_F(Dynamics365MockTest, WebApiWithoutValidTokenIs401) {
  StartMock();
  auto none = client_->Get("/api/data/v9.2/accounts");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_FALSE(none->get_header_value("WWW-Authenticate").empty());
  token_ = "not-a-token";
  EXPECT_EQ(Get(std::string(kApi) + "accounts")->status, 401);
}

// --- create and read ---------------------------------------------------------------------------

TEST_F(Dynamics365MockTest, CreateThenReadWithSelect) {
  StartMock();
  auto res = Post(std::string(kApi) + "accounts",
                  {{"name", "Contoso"}, {"accountnumber", "A-1"}, {"crmb_activateportalaccess", true}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 204);
  EXPECT_TRUE(res->body.empty());
  const std::string entity_id = res->get_header_value("OData-EntityId");
  EXPECT_EQ(entity_id.rfind(mock_->api_url() + "accounts(", 0), 0u) << entity_id;
  const std::string id = entity_id.substr(entity_id.find('(') + 1, 36);

  auto one = Get(kApi + std::string("accounts(") + id + ")?$select=name");
  ASSERT_EQ(one->status, 200) << one->body;
  json row = Body(one);
  EXPECT_EQ(row["@odata.context"], mock_->api_url() + "$metadata#accounts(name)/$entity");
  EXPECT_EQ(row["name"], "Contoso");
  EXPECT_EQ(row["accountid"], id);  // the primary key always comes back
  EXPECT_FALSE(row.contains("accountnumber"));
  EXPECT_TRUE(std::regex_match(row["@odata.etag"].get<std::string>(), std::regex(R"(W/"\d+")")));

  auto all = Get(kApi + std::string("accounts(") + id + ")");
  json full = Body(all);
  EXPECT_EQ(full["accountnumber"], "A-1");
  EXPECT_EQ(full["crmb_activateportalaccess"], true);
  EXPECT_TRUE(full["websiteurl"].is_null());  // unset columns read as null
  EXPECT_EQ(full["statecode"], 0);
  EXPECT_EQ(full["createdon"], "2026-01-01T00:00:00Z");  // ISO UTC, no milliseconds

  // return=representation: 201 with the row, no OData-EntityId.
  auto rep = Post(std::string(kApi) + "contacts?$select=fullname",
                  {{"firstname", "Ada"}, {"lastname", "Lovelace"}},
                  {{"Prefer", "return=representation"}});
  ASSERT_EQ(rep->status, 201) << rep->body;
  EXPECT_EQ(Body(rep)["fullname"], "Ada Lovelace");
  EXPECT_TRUE(Body(rep).contains("contactid"));
  EXPECT_EQ(rep->get_header_value("Preference-Applied"), "return=representation");
  EXPECT_FALSE(rep->get_header_value("ETag").empty());

  auto missing = Get(std::string(kApi) + "accounts(00000000-0000-0000-0000-000000000001)");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(Body(missing)["error"]["message"],
            "account With Id = 00000000-0000-0000-0000-000000000001 Does Not Exist");
  auto missing_key = Get(kApi + std::string("accounts(accountnumber='nope')"));
  EXPECT_EQ(missing_key->status, 404);

  auto by_key = Get(kApi + std::string("accounts(accountnumber='A-1')?$select=name"));
  ASSERT_EQ(by_key->status, 200);
  EXPECT_EQ(Body(by_key)["accountid"], id);

  auto undeclared_key = Get(kApi + std::string("accounts(name='Contoso')"));
  EXPECT_EQ(undeclared_key->status, 400);
  EXPECT_NE(Body(undeclared_key)["error"]["message"].get<std::string>().find(
                "The key in the request URI is not valid for resource "
                "'Microsoft.Dynamics.CRM.account'"),
            std::string::npos);

  auto unknown_set = Get(std::string(kApi) + "widgets");
  EXPECT_EQ(unknown_set->status, 404);

  auto metadata = Get(std::string(kApi) + "$metadata");
  ASSERT_EQ(metadata->status, 200);
  EXPECT_NE(metadata->body.find("<EntitySet Name=\"accounts\" "
                                "EntityType=\"Microsoft.Dynamics.CRM.account\"/>"),
            std::string::npos);
  EXPECT_NE(metadata->body.find("<NavigationProperty Name=\"parentcustomerid_account\""),
            std::string::npos);
}

TEST_F(Dynamics365MockTest, UnknownColumnIs400WithDataverseMessage) {
  StartMock();
  auto res = Post(std::string(kApi) + "accounts", {{"name", "A"}, {"nme", "typo"}});
  ASSERT_EQ(res->status, 400);
  json e = Body(res)["error"];
  EXPECT_TRUE(e["code"].get<std::string>().rfind("0x", 0) == 0);
  EXPECT_EQ(e["message"].get<std::string>().rfind(
                "The property 'nme' does not exist on type 'Microsoft.Dynamics.CRM.account'.", 0),
            0u)
      << e;
  EXPECT_EQ(mock_->Dump()["accounts"].size(), 0u);  // nothing half-written

  auto lookup_value = Post(std::string(kApi) + "opportunities",
                           {{"name", "O"}, {"_parentaccountid_value", "00000000-0000-0000-0000-000000000001"}});
  EXPECT_EQ(lookup_value->status, 400);

  auto wrong_type = Post(std::string(kApi) + "accounts", {{"customertypecode", "three"}});
  EXPECT_EQ(wrong_type->status, 400);

  auto too_long = Post(std::string(kApi) + "tasks", {{"subject", std::string(201, 'x')}});
  ASSERT_EQ(too_long->status, 400);
  EXPECT_EQ(Body(too_long)["error"]["code"], "0x80044331");

  auto bad_select = Get(std::string(kApi) + "accounts?$select=nme");
  EXPECT_EQ(bad_select->status, 400);
  EXPECT_EQ(Body(bad_select)["error"]["message"],
            "Could not find a property named 'nme' on type 'Microsoft.Dynamics.CRM.account'.");
}

// --- $filter -----------------------------------------------------------------------------------

TEST_F(Dynamics365MockTest, FilterExpressionsOfEachKind) {
  StartMock();
  std::string contoso = Create("accounts", {{"name", "Contoso Ltd"}, {"customertypecode", 1},
                                            {"crmb_activateportalaccess", true},
                                            {"telephone1", "555-0100"}});
  AdvanceAndReauthenticate(std::chrono::hours(24));
  std::string fabrikam = Create("accounts", {{"name", "Fabrikam"}, {"customertypecode", 2},
                                             {"crmb_activateportalaccess", false}});
  AdvanceAndReauthenticate(std::chrono::hours(24));
  Create("accounts", {{"name", "O'Brien Homes"}, {"customertypecode", 3}});
  Create("contacts", {{"lastname", "Berg"},
                      {"parentcustomerid_account@odata.bind", "/accounts(" + contoso + ")"}});
  Create("contacts", {{"lastname", "Holm"},
                      {"parentcustomerid_account@odata.bind", "/accounts(" + fabrikam + ")"}});

  using V = std::vector<std::string>;
  // Comparison operators; string equality is case-insensitive.
  EXPECT_EQ(Names("accounts", "name eq 'contoso ltd'"), V{"Contoso Ltd"});
  EXPECT_EQ(Names("accounts", "name ne 'Fabrikam'"), (V{"Contoso Ltd", "O'Brien Homes"}));
  EXPECT_EQ(Names("accounts", "customertypecode gt 1"), (V{"Fabrikam", "O'Brien Homes"}));
  EXPECT_EQ(Names("accounts", "customertypecode ge 2"), (V{"Fabrikam", "O'Brien Homes"}));
  EXPECT_EQ(Names("accounts", "customertypecode lt 2"), V{"Contoso Ltd"});
  EXPECT_EQ(Names("accounts", "customertypecode le 2"), (V{"Contoso Ltd", "Fabrikam"}));
  // '' escapes a quote.
  EXPECT_EQ(Names("accounts", "name eq 'O''Brien Homes'"), V{"O'Brien Homes"});
  // Booleans and null.
  EXPECT_EQ(Names("accounts", "crmb_activateportalaccess eq true"), V{"Contoso Ltd"});
  EXPECT_EQ(Names("accounts", "crmb_activateportalaccess eq null"), V{"O'Brien Homes"});
  EXPECT_EQ(Names("accounts", "telephone1 ne null"), V{"Contoso Ltd"});
  // and / or / not with parentheses.
  EXPECT_EQ(Names("accounts", "(customertypecode eq 1 or customertypecode eq 3) and "
                              "not (name eq 'Contoso Ltd')"),
            V{"O'Brien Homes"});
  EXPECT_EQ(Names("accounts", "customertypecode eq 1 or customertypecode eq 2 and name eq 'x'"),
            V{"Contoso Ltd"});  // and binds tighter than or
  // Unquoted ISO datetimes.
  EXPECT_EQ(Names("accounts", "createdon gt 2026-01-01T12:00:00Z"),
            (V{"Fabrikam", "O'Brien Homes"}));
  EXPECT_EQ(Names("accounts", "createdon le 2026-01-02T00:00:00Z"), (V{"Contoso Ltd", "Fabrikam"}));
  // Bare GUIDs, on the primary key and on a lookup's _x_value; the quoted form too.
  EXPECT_EQ(Names("accounts", "accountid eq " + fabrikam), V{"Fabrikam"});
  EXPECT_EQ(Names("contacts", "_parentcustomerid_value eq " + contoso, "lastname"), V{"Berg"});
  EXPECT_EQ(Names("contacts", "_parentcustomerid_value eq '" + fabrikam + "'", "lastname"),
            V{"Holm"});
  // String functions, case-insensitive, and negated.
  EXPECT_EQ(Names("accounts", "contains(name,'BRIEN')"), V{"O'Brien Homes"});
  EXPECT_EQ(Names("accounts", "startswith(name,'fab')"), V{"Fabrikam"});
  EXPECT_EQ(Names("accounts", "endswith(name,'LTD')"), V{"Contoso Ltd"});
  EXPECT_EQ(Names("accounts", "not contains(name,'o')"), V{"Fabrikam"});

  // Errors carry the OData messages.
  auto unknown = Get(std::string(kApi) + "accounts?$filter=" + Q("nme eq 'x'"));
  EXPECT_EQ(unknown->status, 400);
  EXPECT_EQ(Body(unknown)["error"]["message"],
            "Could not find a property named 'nme' on type 'Microsoft.Dynamics.CRM.account'.");
  auto unterminated = Get(std::string(kApi) + "contacts?$filter=" + Q("lastname eq 'O'Bryan'"));
  EXPECT_EQ(unterminated->status, 400);
  EXPECT_EQ(Body(unterminated)["error"]["message"],
            "There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''.");
  auto mistyped = Get(std::string(kApi) + "accounts?$filter=" + Q("createdon gt '2026-01-01'"));
  EXPECT_EQ(mistyped->status, 400);
  EXPECT_NE(Body(mistyped)["error"]["message"].get<std::string>().find(
                "incompatible types"), std::string::npos);
  auto syntax = Get(std::string(kApi) + "accounts?$filter=" + Q("name eq"));
  EXPECT_EQ(syntax->status, 400);
}

// --- $orderby and paging -----------------------------------------------------------------------

TEST_F(Dynamics365MockTest, OrderByAndPagingFollowNextLinkToTheEndWithoutDuplicates) {
  StartMock();
  for (int i = 0; i < 23; ++i) {
    const std::string name = std::string(i < 10 ? "acct-0" : "acct-") + std::to_string(i);
    Create("accounts", {{"name", name}, {"customertypecode", i % 4}});
  }
  std::string path = std::string(kApi) + "accounts?$select=name,customertypecode&$orderby=" +
                     Q("customertypecode desc,name asc");
  std::vector<json> rows;
  int pages = 0;
  while (true) {
    auto res = Get(path, {{"Prefer", "odata.maxpagesize=5, odata.include-annotations=\"*\""}});
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Preference-Applied"),
              "odata.maxpagesize=5,odata.include-annotations=\"*\"");
    json body = Body(res);
    EXPECT_LE(body["value"].size(), 5u);
    for (const json& row : body["value"]) rows.push_back(row);
    ++pages;
    ASSERT_LT(pages, 10);
    if (!body.contains("@odata.nextLink")) break;
    const std::string next = body["@odata.nextLink"];
    EXPECT_NE(next.find("$skiptoken="), std::string::npos);
    path = PathOf(next);
  }
  EXPECT_EQ(pages, 5);
  ASSERT_EQ(rows.size(), 23u);
  std::set<std::string> ids;
  for (const json& row : rows) ids.insert(row["accountid"].get<std::string>());
  EXPECT_EQ(ids.size(), 23u);
  for (size_t i = 1; i < rows.size(); ++i) {
    int a = rows[i - 1]["customertypecode"], b = rows[i]["customertypecode"];
    ASSERT_GE(a, b);
    if (a == b) {
      EXPECT_LT(rows[i - 1]["name"].get<std::string>(), rows[i]["name"].get<std::string>());
    }
  }

  // $top alone caps the result; with maxpagesize it is ignored (reference.md §3).
  auto top = Get(std::string(kApi) + "accounts?$top=3");
  EXPECT_EQ(Body(top)["value"].size(), 3u);
  EXPECT_FALSE(Body(top).contains("@odata.nextLink"));
  auto top_ignored = Get(std::string(kApi) + "accounts?$top=3", {{"Prefer", "odata.maxpagesize=10"}});
  EXPECT_EQ(Body(top_ignored)["value"].size(), 10u);
  EXPECT_TRUE(Body(top_ignored).contains("@odata.nextLink"));

  // $skip is not supported.
  EXPECT_EQ(Get(std::string(kApi) + "accounts?$skip=5")->status, 400);
}

// --- change tracking ---------------------------------------------------------------------------

TEST_F(Dynamics365MockTest, TrackChangesInitialLoadThenDeltaWithUpdateAndDelete) {
  StartMock();
  std::string a = Create("accounts", {{"name", "A"}});
  std::string b = Create("accounts", {{"name", "B"}});
  std::string c = Create("accounts", {{"name", "C"}});

  auto filtered = Get(std::string(kApi) + "accounts?$filter=" + Q("name eq 'A'"),
                      {{"Prefer", "odata.track-changes"}});
  EXPECT_EQ(filtered->status, 400);
  EXPECT_EQ(Body(filtered)["error"]["message"],
            "The \"$filter\" query parameter isn't supported when Change Tracking is enabled.");
  auto ordered = Get(std::string(kApi) + "accounts?$orderby=name",
                     {{"Prefer", "odata.track-changes"}});
  EXPECT_EQ(ordered->status, 400);

  // Initial load in pages of 2: the deltaLink only on the last page.
  const httplib::Headers prefer = {{"Prefer", "odata.maxpagesize=2,odata.track-changes"}};
  auto first = Get(std::string(kApi) + "accounts?$select=name", prefer);
  ASSERT_EQ(first->status, 200) << first->body;
  EXPECT_EQ(first->get_header_value("Preference-Applied"),
            "odata.maxpagesize=2,odata.track-changes");
  json page1 = Body(first);
  EXPECT_EQ(page1["value"].size(), 2u);
  ASSERT_TRUE(page1.contains("@odata.nextLink"));
  EXPECT_FALSE(page1.contains("@odata.deltaLink"));
  json page2 = Body(Get(PathOf(page1["@odata.nextLink"]), prefer));
  EXPECT_EQ(page2["value"].size(), 1u);
  EXPECT_FALSE(page2.contains("@odata.nextLink"));
  ASSERT_TRUE(page2.contains("@odata.deltaLink"));
  const std::string delta_link = page2["@odata.deltaLink"];
  EXPECT_NE(delta_link.find("$deltatoken="), std::string::npos);

  // Update A, delete B, create D.
  clock_.Advance(std::chrono::minutes(5));
  EXPECT_EQ(Patch(kApi + std::string("accounts(") + a + ")", {{"name", "A2"}},
                  {{"If-Match", "*"}})->status, 204);
  EXPECT_EQ(Delete(kApi + std::string("accounts(") + b + ")")->status, 204);
  std::string d = Create("accounts", {{"name", "D"}});

  auto delta = Get(PathOf(delta_link));
  ASSERT_EQ(delta->status, 200) << delta->body;
  json changes = Body(delta);
  EXPECT_EQ(changes["@odata.context"], mock_->api_url() + "$metadata#accounts(name)/$delta");
  ASSERT_EQ(changes["value"].size(), 3u) << changes;
  EXPECT_EQ(changes["value"][0]["accountid"], a);
  EXPECT_EQ(changes["value"][0]["name"], "A2");  // current values
  EXPECT_EQ(changes["value"][1]["accountid"], d);
  const json& removed = changes["value"][2];
  EXPECT_EQ(removed["@odata.context"], mock_->api_url() + "$metadata#accounts/$deletedEntity");
  EXPECT_EQ(removed["id"], b);
  EXPECT_EQ(removed["reason"], "deleted");
  ASSERT_TRUE(changes.contains("@odata.deltaLink"));
  EXPECT_FALSE(changes["value"].dump().find(c) != std::string::npos);  // C unchanged

  // Nothing changed since: empty value, new deltaLink.
  json none = Body(Get(PathOf(changes["@odata.deltaLink"])));
  EXPECT_EQ(none["value"].size(), 0u);
  EXPECT_TRUE(none.contains("@odata.deltaLink"));

  // A token past the retention window fails with the documented message.
  AdvanceAndReauthenticate(std::chrono::hours(24 * 8));
  auto expired = Get(PathOf(changes["@odata.deltaLink"]));
  EXPECT_EQ(expired->status, 400);
  EXPECT_EQ(Body(expired)["error"]["message"],
            "Version stamp associated with the client has expired. Please perform a full sync.");
}

TEST_F(Dynamics365MockTest, DeltaPagesWhenChangesExceedPageSize) {
  StartMock();
  auto first = Get(std::string(kApi) + "contacts", {{"Prefer", "odata.track-changes"}});
  const std::string delta_link = Body(first)["@odata.deltaLink"];
  std::vector<std::string> created;
  for (int i = 0; i < 5; ++i) created.push_back(Create("contacts", {{"lastname", "L" + std::to_string(i)}}));
  EXPECT_EQ(Delete(kApi + std::string("contacts(") + created[0] + ")")->status, 204);

  std::vector<json> entries;
  std::string path = PathOf(delta_link);
  for (int pages = 0; pages < 10; ++pages) {
    json page = Body(Get(path, {{"Prefer", "odata.maxpagesize=2"}}));
    for (const json& e : page["value"]) entries.push_back(e);
    if (page.contains("@odata.deltaLink")) {
      EXPECT_FALSE(page.contains("@odata.nextLink"));
      break;
    }
    ASSERT_TRUE(page.contains("@odata.nextLink"));
    path = PathOf(page["@odata.nextLink"]);
  }
  ASSERT_EQ(entries.size(), 5u);  // 4 live rows, then the deletion of the fifth
  for (int i = 0; i < 4; ++i) EXPECT_EQ(entries[i]["contactid"], created[i + 1]);
  EXPECT_EQ(entries[4]["id"], created[0]);
  EXPECT_EQ(entries[4]["reason"], "deleted");
}

// --- upsert and conditional writes -------------------------------------------------------------

TEST_F(Dynamics365MockTest, UpsertByAlternateKeyCreatesThenUpdatesSameRow) {
  StartMock();
  const std::string path = kApi + std::string("accounts(crmb_externalid='ext-1')");
  auto created = Patch(path, {{"name", "First"}});
  ASSERT_EQ(created->status, 204) << created->body;
  EXPECT_EQ(created->get_header_value("OData-EntityId"),
            mock_->api_url() + "accounts(crmb_externalid='ext-1')");
  json dump = mock_->Dump();
  ASSERT_EQ(dump["accounts"].size(), 1u);
  const std::string id = dump["accounts"][0]["accountid"];
  EXPECT_EQ(dump["accounts"][0]["crmb_externalid"], "ext-1");
  const std::string etag1 = dump["accounts"][0]["@odata.etag"];

  // Key columns in an update body are ignored; the key cannot change through itself.
  auto updated = Patch(path, {{"name", "Second"}, {"crmb_externalid", "ext-2"}});
  ASSERT_EQ(updated->status, 204);
  dump = mock_->Dump();
  ASSERT_EQ(dump["accounts"].size(), 1u);
  EXPECT_EQ(dump["accounts"][0]["accountid"], id);
  EXPECT_EQ(dump["accounts"][0]["name"], "Second");
  EXPECT_EQ(dump["accounts"][0]["crmb_externalid"], "ext-1");
  EXPECT_NE(dump["accounts"][0]["@odata.etag"], etag1);  // etags change on every write

  // With return=representation the status tells create (201) from update (200).
  auto rep_update = Patch(path, {{"name", "Third"}}, {{"Prefer", "return=representation"}});
  EXPECT_EQ(rep_update->status, 200);
  EXPECT_EQ(Body(rep_update)["accountid"], id);
  auto rep_create = Patch(kApi + std::string("accounts(crmb_externalid='ext-9')"),
                          {{"name", "Nine"}}, {{"Prefer", "return=representation"}});
  EXPECT_EQ(rep_create->status, 201);

  // Upsert by primary key creates the row with that id.
  const std::string fixed = "11111111-2222-4333-8444-555555555555";
  EXPECT_EQ(Patch(kApi + std::string("accounts(") + fixed + ")", {{"name", "Fixed"}})->status, 204);
  EXPECT_EQ(Body(Get(kApi + std::string("accounts(") + fixed + ")"))["name"], "Fixed");

  // A second row may not take an existing alternate-key value.
  auto dup = Post(std::string(kApi) + "accounts", {{"name", "Dup"}, {"crmb_externalid", "EXT-1"}});
  EXPECT_EQ(dup->status, 412);
}

TEST_F(Dynamics365MockTest, IfNoneMatchStarIs412OnExistingAndIfMatchStarIs404OnMissing) {
  StartMock();
  const std::string path = kApi + std::string("accounts(crmb_externalid='once')");
  EXPECT_EQ(Patch(path, {{"name", "A"}}, {{"If-None-Match", "*"}})->status, 204);
  auto again = Patch(path, {{"name", "B"}}, {{"If-None-Match", "*"}});
  EXPECT_EQ(again->status, 412);
  EXPECT_EQ(Body(again)["error"]["message"], "A record with matching key values already exists.");
  EXPECT_EQ(mock_->Dump()["accounts"][0]["name"], "A");

  // If-None-Match: null is the recommended cache-buster, not the create-only condition.
  EXPECT_EQ(Patch(path, {{"name", "C"}}, {{"If-None-Match", "null"}})->status, 204);
  EXPECT_EQ(mock_->Dump()["accounts"][0]["name"], "C");

  const std::string missing = "00000000-0000-0000-0000-00000000abcd";
  auto update_only = Patch(kApi + std::string("accounts(") + missing + ")", {{"name", "X"}},
                           {{"If-Match", "*"}});
  EXPECT_EQ(update_only->status, 404);
  EXPECT_EQ(Body(update_only)["error"]["message"],
            "account With Id = " + missing + " Does Not Exist");
  EXPECT_EQ(mock_->Dump()["accounts"].size(), 1u);  // not created
  EXPECT_EQ(Patch(kApi + std::string("accounts(crmb_externalid='none')"), {{"name", "X"}},
                  {{"If-Match", "*"}})->status, 404);
}

TEST_F(Dynamics365MockTest, EtagMismatchIs412) {
  StartMock();
  std::string id = Create("contacts", {{"lastname", "Berg"}});
  const std::string path = kApi + std::string("contacts(") + id + ")";
  const std::string etag = Body(Get(path))["@odata.etag"];
  EXPECT_EQ(Get(path, {{"If-None-Match", etag}})->status, 304);

  EXPECT_EQ(Patch(path, {{"firstname", "Eva"}}, {{"If-Match", etag}})->status, 204);
  auto stale = Patch(path, {{"firstname", "Ulla"}}, {{"If-Match", etag}});
  EXPECT_EQ(stale->status, 412);
  EXPECT_EQ(Body(stale)["error"]["message"],
            "The version of the existing record doesn't match the RowVersion property provided.");
  EXPECT_EQ(Delete(path, {{"If-Match", etag}})->status, 412);

  json current = Body(Get(path));
  EXPECT_EQ(current["fullname"], "Eva Berg");
  EXPECT_EQ(Patch(path, {{"firstname", "Ulla"}}, {{"If-Match", current["@odata.etag"]}})->status,
            204);
  EXPECT_EQ(Delete(path)->status, 204);
  EXPECT_EQ(Delete(path)->status, 404);
  EXPECT_EQ(Get(path)->status, 404);
}

// --- lookups -----------------------------------------------------------------------------------

TEST_F(Dynamics365MockTest, BindLookupAndReadLookupValue) {
  StartMock();
  std::string account = Create("accounts", {{"name", "Parent"}, {"crmb_externalid", "acc-1"}});
  std::string contact = Create("contacts", {{"lastname", "Kid"},
      {"parentcustomerid_account@odata.bind", "/accounts(" + account + ")"}});
  json row = Body(Get(kApi + std::string("contacts(") + contact + ")?$select=_parentcustomerid_value",
                      {{"Prefer", "odata.include-annotations=\"*\""}}));
  EXPECT_EQ(row["_parentcustomerid_value"], account);
  EXPECT_EQ(row["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"], "account");
  EXPECT_EQ(row["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"],
            "parentcustomerid_account");
  EXPECT_EQ(row["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"], "Parent");
  // Without the preference there are no annotations.
  json plain = Body(Get(kApi + std::string("contacts(") + contact + ")"));
  EXPECT_FALSE(plain.contains("_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"));

  // Bind by alternate key, without the leading slash.
  std::string opportunity = Create("opportunities", {{"name", "Onboard"},
      {"parentaccountid@odata.bind", "accounts(crmb_externalid='acc-1')"}});
  EXPECT_EQ(Body(Get(kApi + std::string("opportunities(") + opportunity + ")"))["_parentaccountid_value"],
            account);

  // Polymorphic: binding the contact target replaces the account one.
  std::string other = Create("contacts", {{"lastname", "Other"}});
  EXPECT_EQ(Patch(kApi + std::string("contacts(") + contact + ")",
                  {{"parentcustomerid_contact@odata.bind", "/contacts(" + other + ")"}},
                  {{"If-Match", "*"}})->status, 204);
  json moved = Body(Get(kApi + std::string("contacts(") + contact + ")",
                        {{"Prefer", "odata.include-annotations=\"Microsoft.Dynamics.CRM.lookuplogicalname\""}}));
  EXPECT_EQ(moved["_parentcustomerid_value"], other);
  EXPECT_EQ(moved["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"], "contact");

  // Notes: objectid binds per target and sets objecttypecode.
  std::string note = Create("annotations", {{"subject", "Call"}, {"notetext", "Kick-off"},
      {"objectid_opportunity@odata.bind", "/opportunities(" + opportunity + ")"}});
  json note_row = Body(Get(kApi + std::string("annotations(") + note + ")"));
  EXPECT_EQ(note_row["_objectid_value"], opportunity);
  EXPECT_EQ(note_row["objecttypecode"], "opportunity");

  // Binding to a missing row fails; an unknown navigation property is a 400.
  auto missing = Post(std::string(kApi) + "contacts", {{"lastname", "X"},
      {"parentcustomerid_account@odata.bind", "/accounts(00000000-0000-0000-0000-000000000009)"}});
  EXPECT_EQ(missing->status, 404);
  auto wrong_nav = Post(std::string(kApi) + "contacts", {{"lastname", "X"},
      {"parentcustomerid@odata.bind", "/accounts(" + account + ")"}});
  EXPECT_EQ(wrong_nav->status, 400);

  // Clearing a lookup through $ref.
  EXPECT_EQ(Delete(kApi + std::string("opportunities(") + opportunity + ")/parentaccountid/$ref")->status,
            204);
  EXPECT_TRUE(Body(Get(kApi + std::string("opportunities(") + opportunity + ")"))["_parentaccountid_value"]
                  .is_null());
}

// --- service protection ------------------------------------------------------------------------

TEST_F(Dynamics365MockTest, RequestLimitGives429WithRetryAfter) {
  options_.requests_per_window = 5;
  StartMock();
  for (int i = 0; i < 5; ++i) {
    auto ok = Get(std::string(kApi) + "accounts");
    ASSERT_EQ(ok->status, 200);
    EXPECT_EQ(ok->get_header_value("x-ms-ratelimit-burst-remaining-xrm-requests"),
              std::to_string(4 - i));
  }
  clock_.Advance(std::chrono::seconds(100));
  auto limited = Get(std::string(kApi) + "accounts");
  ASSERT_EQ(limited->status, 429);
  EXPECT_EQ(limited->get_header_value("Retry-After"), "200");  // until the window frees a slot
  json e = Body(limited)["error"];
  EXPECT_EQ(e["code"], "0x80072322");
  EXPECT_EQ(e["message"], "Number of requests exceeded the limit of 5 over time window of 300 seconds.");

  clock_.Advance(std::chrono::seconds(200));
  EXPECT_EQ(Get(std::string(kApi) + "accounts")->status, 200);
}

// --- seed and dump -----------------------------------------------------------------------------

TEST_F(Dynamics365MockTest, SeedIsDeterministicAndSpreadsStages) {
  StartMock();
  mock_->Seed(42, 10);
  json first = mock_->Dump();
  EXPECT_EQ(first["accounts"].size(), 10u);
  EXPECT_EQ(first["opportunities"].size(), 10u);
  EXPECT_GE(first["contacts"].size(), 10u);
  EXPECT_LE(first["contacts"].size(), 30u);
  std::set<int> stages;
  for (const json& o : first["opportunities"]) {
    stages.insert(o["crmb_onboardingstage"].get<int>());
    EXPECT_FALSE(o["_parentaccountid_value"].is_null());
  }
  EXPECT_EQ(stages, (std::set<int>{100000000, 100000001, 100000002, 100000003, 100000004}));
  for (const json& c : first["contacts"]) EXPECT_FALSE(c["_parentcustomerid_value"].is_null());

  mock_->Seed(42, 10);
  json second = mock_->Dump();
  EXPECT_EQ(first["accounts"][0]["accountid"], second["accounts"][0]["accountid"]);
  EXPECT_EQ(first["contacts"].size(), second["contacts"].size());

  // The seeded rows are served by the API too.
  auto res = Get(std::string(kApi) + "opportunities?$filter=" +
                 Q("crmb_onboardingstage eq 100000002") + "&$select=name");
  EXPECT_EQ(Body(res)["value"].size(), 2u);

  mock_->Reset();
  EXPECT_EQ(mock_->Dump()["accounts"].size(), 0u);
}

}  // namespace
}  // namespace crmbridge::mocks

namespace crmbridge::mocks {
namespace {

TEST_F(Dynamics365MockTest, BulkActionsAreAllOrNothing) {
  StartMock();
  const std::string type = "Microsoft.Dynamics.CRM.opportunity";
  json upsert = {{"Targets",
                  {{{"@odata.type", type}, {"@odata.id", "opportunities(crmb_externalid='A')"}, {"name", "A"}},
                   {{"@odata.type", type}, {"@odata.id", "opportunities(crmb_externalid='B')"}, {"name", "B"}}}}};
  auto r = Post(std::string(kApi) + "opportunities/Microsoft.Dynamics.CRM.UpsertMultiple", upsert);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204) << r->body;
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 2u);

  // Second round: A changes, and a bad target (an unknown column) rolls the whole request back.
  upsert["Targets"][0]["name"] = "A2";
  upsert["Targets"][1]["no_such_column"] = 1;
  r = Post(std::string(kApi) + "opportunities/Microsoft.Dynamics.CRM.UpsertMultiple", upsert);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  const json opportunities = mock_->Dump()["opportunities"];
  for (const json& o : opportunities) EXPECT_NE(o["name"], "A2");

  json create = {{"Targets", {{{"@odata.type", type}, {"name", "C"}}}}};
  r = Post(std::string(kApi) + "opportunities/Microsoft.Dynamics.CRM.CreateMultiple", create);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["Ids"].size(), 1u);

  json untyped = {{"Targets", {{{"name", "D"}}}}};
  r = Post(std::string(kApi) + "opportunities/Microsoft.Dynamics.CRM.CreateMultiple", untyped);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 3u);
}

}  // namespace
}  // namespace crmbridge::mocks

namespace crmbridge::mocks {
namespace {

// Builds a $batch body: each element is either one request or a change set of requests.
std::string BatchBody(const std::vector<std::vector<std::string>>& groups, bool changeset_first_only) {
  std::string b;
  int cid = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const bool changeset = groups[g].size() > 1 || (changeset_first_only && g == 0);
    if (!changeset) {
      b += "--batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
           groups[g][0] + "\r\n";
      continue;
    }
    b += "--batch_x\r\nContent-Type: multipart/mixed; boundary=changeset_" + std::to_string(g) + "\r\n\r\n";
    for (const std::string& r : groups[g])
      b += "--changeset_" + std::to_string(g) +
           "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: " +
           std::to_string(++cid) + "\r\n\r\n" + r + "\r\n";
    b += "--changeset_" + std::to_string(g) + "--\r\n";
  }
  return b + "--batch_x--\r\n";
}

TEST_F(Dynamics365MockTest, BatchRunsRequestsAndAtomicChangeSets) {
  StartMock();
  const std::string create_account =
      "POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n"
      "{\"name\":\"Batch AB\",\"crmb_externalid\":\"acc-1\"}";
  const std::string create_contact =
      "POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n"
      "{\"lastname\":\"Berg\",\"parentcustomerid_account@odata.bind\":\"$1\"}";
  const std::string list = "GET /api/data/v9.2/accounts?$select=name HTTP/1.1\r\nAccept: application/json\r\n\r\n";
  auto r = client_->Post("/api/data/v9.2/$batch", Headers(),
                         BatchBody({{create_account, create_contact}, {list}}, false),
                         "multipart/mixed; boundary=batch_x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->get_header_value("Content-Type").find("boundary=batchresponse_"), std::string::npos);
  EXPECT_NE(r->body.find("--changesetresponse_"), std::string::npos);
  EXPECT_NE(r->body.find("Batch AB"), std::string::npos) << "the GET after the change set sees it";
  json d = mock_->Dump();
  ASSERT_EQ(d["contacts"].size(), 1u);
  ASSERT_EQ(d["accounts"].size(), 1u);
  EXPECT_EQ(d["contacts"][0]["_parentcustomerid_value"], d["accounts"][0]["accountid"]) << "$1 resolved";

  // A change set whose second request fails leaves nothing behind, and stops the batch.
  const std::string bad = "POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
                          "{\"no_such_column\":1}";
  const std::string another =
      "POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"Rolled back\"}";
  r = client_->Post("/api/data/v9.2/$batch", Headers(), BatchBody({{another, bad}, {list}}, false),
                    "multipart/mixed; boundary=batch_x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(mock_->Dump()["accounts"].size(), 1u);
  EXPECT_EQ(r->body.find("Batch AB"), std::string::npos) << "the batch stopped at the failure";
}

TEST_F(Dynamics365MockTest, PartialFaultsFailSomeBatchRequestsAndTheOthersLand) {
  StartMock();
  mock_->SetFaults({*FaultRule::Parse("POST /$batch partial=0.3")}, 3);
  std::vector<std::vector<std::string>> groups;
  for (int i = 0; i < 30; ++i)
    groups.push_back({"POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
                      "{\"name\":\"A" + std::to_string(i) + "\"}"});
  httplib::Headers h = Headers();
  h.emplace("Prefer", "odata.continue-on-error");
  auto r = client_->Post("/api/data/v9.2/$batch", h, BatchBody(groups, false), "multipart/mixed; boundary=batch_x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  size_t failures = 0;
  for (size_t at = r->body.find("HTTP/1.1 500"); at != std::string::npos; at = r->body.find("HTTP/1.1 500", at + 1))
    ++failures;
  EXPECT_GT(failures, 2u);
  EXPECT_LT(failures, 20u);
  EXPECT_NE(r->body.find("0x80040216"), std::string::npos) << "Dataverse's error body per failed request";
  EXPECT_EQ(mock_->Dump()["accounts"].size(), 30u - failures) << "a failed request leaves nothing";
}

// --- webhooks (reference.md §12) ---------------------------------------------------------------

// A webhook endpoint on loopback that keeps every call and answers with the statuses given, in
// turn (200 once they run out).
class WebhookEndpoint {
 public:
  struct Call {
    std::string target;
    httplib::Headers headers;
    json body;
  };
  explicit WebhookEndpoint(std::vector<int> statuses = {}) : statuses_(std::move(statuses)) {
    server_.set_tcp_nodelay(true);
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back({req.target, req.headers, json::parse(req.body, nullptr, false)});
      res.status = next_ < statuses_.size() ? statuses_[next_++] : 200;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~WebhookEndpoint() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  // The calls made so far, once `n` have come (up to 5 s).
  std::vector<Call> WaitFor(size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (calls_.size() >= n) return calls_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<Call> calls_;
  std::vector<int> statuses_;
  size_t next_ = 0;
};

// The value of `key` in a serialized parameter or attribute collection.
json Member(const json& collection, const std::string& key) {
  for (const json& p : collection)
    if (p.value("key", "") == key) return p["value"];
  return nullptr;
}

TEST_F(Dynamics365MockTest, WritesCallTheRegisteredWebhookWithTheirExecutionContexts) {
  StartMock();
  WebhookEndpoint endpoint;
  auto reg = client_->Post("/__admin/webhooks",
                           json{{"url", endpoint.url()}, {"key", "k+y/="}}.dump(), "application/json");
  ASSERT_TRUE(reg);
  ASSERT_EQ(reg->status, 204) << reg->body;
  const std::string id = Create("accounts", {{"name", "Contoso"}, {"accountnumber", "A-1"}});
  ASSERT_EQ(Patch(std::string(kApi) + "accounts(" + id + ")", {{"name", "Contoso AB"}})->status, 204);
  ASSERT_EQ(Delete(std::string(kApi) + "accounts(" + id + ")")->status, 204);

  const auto calls = endpoint.WaitFor(3);
  ASSERT_EQ(calls.size(), 3u);
  const char* messages[] = {"Create", "Update", "Delete"};
  for (size_t i = 0; i < calls.size(); ++i) {
    const json& c = calls[i].body;
    SCOPED_TRACE(messages[i]);
    EXPECT_EQ(calls[i].target, "/hook?code=k%2By%2F%3D");  // WebhookKey: the key as ?code=
    EXPECT_EQ(c["MessageName"], messages[i]);
    EXPECT_EQ(c["PrimaryEntityName"], "account");
    EXPECT_EQ(c["PrimaryEntityId"], id);
    EXPECT_EQ(c["Mode"], 1);    // asynchronous
    EXPECT_EQ(c["Stage"], 40);  // PostOperation
    EXPECT_EQ(c["OperationCreatedOn"], "/Date(" + std::to_string(clock_.NowMillis()) + "+0000)/");
    EXPECT_EQ(calls[i].headers.find("x-ms-dynamics-entity-name")->second, "account");
    EXPECT_EQ(calls[i].headers.find("x-ms-dynamics-request-name")->second, messages[i]);
    EXPECT_EQ(calls[i].headers.find("x-ms-correlation-request-id")->second, c["CorrelationId"]);
    EXPECT_EQ(Member(c["InputParameters"], "Target")["Id"], id);
  }
  // One system job per execution.
  EXPECT_NE(calls[0].body["OperationId"], calls[1].body["OperationId"]);
  // The Update's Target holds what the write changed; the Delete's is a reference.
  const json update = Member(calls[1].body["InputParameters"], "Target");
  EXPECT_EQ(Member(update["Attributes"], "name"), "Contoso AB");
  EXPECT_TRUE(Member(update["Attributes"], "accountnumber").is_null());
  const json removed = Member(calls[2].body["InputParameters"], "Target");
  EXPECT_EQ(removed["__type"], "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts");
  EXPECT_EQ(Member(calls[0].body["OutputParameters"], "id"), id);
}

TEST_F(Dynamics365MockTest, ARolledBackWriteCallsNoWebhookAndOnlyA5xxIsRetriedOnce) {
  StartMock();
  WebhookEndpoint endpoint({503, 401});
  ASSERT_EQ(client_->Post("/__admin/webhooks",
                          json{{"url", endpoint.url()}, {"key", "k"}, {"retry_ms", 10}}.dump(),
                          "application/json")->status, 204);
  // CreateMultiple is all or nothing: its first target's Create is taken back with the rest.
  auto bulk = Post(std::string(kApi) + "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
                   {{"Targets", {{{"@odata.type", "Microsoft.Dynamics.CRM.account"}, {"name", "A"}},
                                 {{"name", "no type"}}}}});
  ASSERT_EQ(bulk->status, 400);
  Create("accounts", {{"name", "B"}});  // answered 503, then retried: answered 401, and final
  ASSERT_EQ(endpoint.WaitFor(2).size(), 2u);
  Create("accounts", {{"name", "C"}});  // answered 200
  const auto calls = endpoint.WaitFor(3);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(Member(Member(calls[0].body["InputParameters"], "Target")["Attributes"], "name"), "B");
  EXPECT_EQ(calls[0].body["OperationId"], calls[1].body["OperationId"]);  // the same execution
  EXPECT_EQ(Member(Member(calls[2].body["InputParameters"], "Target")["Attributes"], "name"), "C");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(endpoint.WaitFor(4).size(), 3u) << "a 401 is not retried";
  const json stats = json::parse(client_->Get("/__admin/webhooks")->body);
  EXPECT_EQ(stats["retried"], 1);
  EXPECT_EQ(stats["given_up"], 1);
  EXPECT_EQ(stats["delivered"], 1);
}

TEST_F(Dynamics365MockTest, WebhookRegistrationRefusesWhatItCannotCall) {
  StartMock();
  for (const json& bad : {json{{"url", "ftp://x"}}, json{{"url", "http://x"}, {"faults", {"badsig"}}},
                          json{{"url", "http://x"}, {"retry_ms", 0}}}) {
    auto res = client_->Post("/__admin/webhooks", bad.dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << bad.dump();
  }
}

}  // namespace
}  // namespace crmbridge::mocks

// --- audit history ("Retrieve the history of audited data changes") ----------------------------

namespace crmbridge::mocks {
namespace {

constexpr char kApplicationUser[] = "5d0b4a6e-0c1f-4e7a-9b1d-000000000001";

class Dynamics365MockAuditTest : public Dynamics365MockTest {
 protected:
  // The audit rows of row `id`, oldest first (every page).
  std::vector<json> AuditsOf(const std::string& id, const std::string& order = "createdon asc") {
    std::vector<json> rows;
    std::string path =
        std::string(kApi) + "audits?$select=auditid,createdon,action,operation," +
        "objecttypecode,_objectid_value,_userid_value&$filter=" + Q("_objectid_value eq " + id) +
        "&$orderby=" + Q(order);
    for (int pages = 0; pages < 20 && !path.empty(); ++pages) {
      auto res = Get(path);
      EXPECT_TRUE(res);
      if (!res) break;
      EXPECT_EQ(res->status, 200) << res->body;
      if (res->status != 200) break;
      const json body = Body(res);
      for (const json& row : body["value"]) rows.push_back(row);
      path = body.contains("@odata.nextLink") ? PathOf(body["@odata.nextLink"]) : "";
    }
    return rows;
  }

  // RetrieveAuditDetails of audit row `audit_id`: its AuditDetail.
  json Details(const std::string& audit_id, const std::string& call = "()") {
    auto res = Get(std::string(kApi) + "audits(" + audit_id +
                   ")/Microsoft.Dynamics.CRM.RetrieveAuditDetails" + call);
    EXPECT_TRUE(res);
    if (!res) return nullptr;
    EXPECT_EQ(res->status, 200) << res->body;
    const json body = Body(res);
    EXPECT_EQ(body["@odata.context"],
              mock_->api_url() + "$metadata#Microsoft.Dynamics.CRM.RetrieveAuditDetailsResponse");
    return body["AuditDetail"];
  }

  httplib::Result SetAuditing(const json& body) {
    return client_->Post("/__admin/auditing", body.dump(), "application/json");
  }
};

// A create then an update: two audit rows in date order, the create's values and the update's
// old and new values of what it changed (the unchanged name is not among them).
TEST_F(Dynamics365MockAuditTest, ACreatedThenUpdatedRowHasTwoAuditRowsInDateOrderWithTheirValues) {
  StartMock();
  const std::string id =
      Create("opportunities", {{"name", "Deal"}, {"crmb_onboardingstage", 100000000}});
  clock_.Advance(std::chrono::minutes(5));
  ASSERT_EQ(Patch(std::string(kApi) + "opportunities(" + id + ")",
                  {{"name", "Deal"}, {"crmb_onboardingstage", 100000001}})
                ->status,
            204);

  const std::vector<json> rows = AuditsOf(id);
  ASSERT_EQ(rows.size(), 2u);
  for (const json& row : rows) {
    EXPECT_EQ(row["objecttypecode"], "opportunity");
    EXPECT_EQ(row["_objectid_value"], id);
    EXPECT_EQ(row["_userid_value"], kApplicationUser);
    EXPECT_EQ(row["operation"], row["action"]);
    EXPECT_FALSE(row.contains("@odata.etag")) << "audit rows have no versions";
  }
  EXPECT_EQ(rows[0]["action"], 1);
  EXPECT_EQ(rows[0]["createdon"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(rows[1]["action"], 2);
  EXPECT_EQ(rows[1]["createdon"], "2026-01-01T00:05:00Z");
  const std::vector<json> newest_first = AuditsOf(id, "createdon desc");
  ASSERT_EQ(newest_first.size(), 2u);
  EXPECT_EQ(newest_first[0]["auditid"], rows[1]["auditid"]);

  const json created = Details(rows[0]["auditid"]);
  EXPECT_EQ(created["@odata.type"], "#Microsoft.Dynamics.CRM.AttributeAuditDetail");
  EXPECT_EQ(created["OldValue"], json({{"@odata.type", "#Microsoft.Dynamics.CRM.opportunity"}}));
  const json& made = created["NewValue"];
  EXPECT_EQ(made["@odata.type"], "#Microsoft.Dynamics.CRM.opportunity");
  EXPECT_EQ(made["name"], "Deal");
  EXPECT_EQ(made["crmb_onboardingstage"], 100000000);
  EXPECT_EQ(made["statecode"], 0);
  EXPECT_EQ(made["_ownerid_value"], kApplicationUser);
  EXPECT_FALSE(made.contains("description")) << "null columns are not among a create's values";
  EXPECT_FALSE(made.contains("opportunityid"));
  EXPECT_FALSE(made.contains("modifiedon"));

  // Without the trailing parentheses too; the whole answer in Dataverse's shape.
  const json updated = Details(rows[1]["auditid"], "");
  EXPECT_EQ(updated, json::parse(R"({
      "@odata.type": "#Microsoft.Dynamics.CRM.AttributeAuditDetail",
      "OldValue": {"@odata.type": "#Microsoft.Dynamics.CRM.opportunity",
                   "crmb_onboardingstage": 100000000},
      "NewValue": {"@odata.type": "#Microsoft.Dynamics.CRM.opportunity",
                   "crmb_onboardingstage": 100000001},
      "InvalidNewValueAttributes": [], "LocLabelLanguageCode": 0, "DeletedAttributes": []})"));

  // One audit row alone; the history is read-only.
  auto one = Get(std::string(kApi) + "audits(" + rows[1]["auditid"].get<std::string>() + ")");
  ASSERT_EQ(one->status, 200) << one->body;
  EXPECT_EQ(Body(one)["@odata.context"], mock_->api_url() + "$metadata#audits/$entity");
  EXPECT_EQ(Body(one)["action"], 2);
  EXPECT_EQ(Post(std::string(kApi) + "audits", {{"action", 1}})->status, 405);
  EXPECT_EQ(
      Delete(std::string(kApi) + "audits(" + rows[0]["auditid"].get<std::string>() + ")")->status,
      405);
  EXPECT_EQ(Get(std::string(kApi) + "audits", {{"Prefer", "odata.track-changes"}})->status, 400);

  // The entity set and the function are in the service's metadata.
  auto metadata = Get(std::string(kApi) + "$metadata");
  ASSERT_EQ(metadata->status, 200);
  EXPECT_NE(metadata->body.find(
                "<EntitySet Name=\"audits\" EntityType=\"Microsoft.Dynamics.CRM.audit\"/>"),
            std::string::npos);
  EXPECT_NE(metadata->body.find("<Function Name=\"RetrieveAuditDetails\" IsBound=\"true\">"),
            std::string::npos);
}

// Dataverse writes an update's audit row only for columns whose value changed; a delete writes
// one of action 3, without values.
TEST_F(Dynamics365MockAuditTest, AnUpdateThatChangesNothingWritesNoAuditRow) {
  StartMock();
  const std::string id = Create("accounts", {{"name", "Contoso"}, {"telephone1", "+46 8 1"}});
  const std::string path = std::string(kApi) + "accounts(" + id + ")";
  ASSERT_EQ(Patch(path, {{"name", "Contoso"}, {"telephone1", "+46 8 1"}})->status, 204);
  ASSERT_EQ(Patch(path, json::object())->status, 204);
  EXPECT_EQ(AuditsOf(id).size(), 1u) << "the create's row alone";

  ASSERT_EQ(Patch(path, {{"telephone1", nullptr}})->status, 204);
  std::vector<json> rows = AuditsOf(id);
  ASSERT_EQ(rows.size(), 2u);
  const json cleared = Details(rows[1]["auditid"]);
  EXPECT_EQ(cleared["OldValue"]["telephone1"], "+46 8 1");
  ASSERT_TRUE(cleared["NewValue"].contains("telephone1")) << "a value cleared is a change";
  EXPECT_TRUE(cleared["NewValue"]["telephone1"].is_null());

  ASSERT_EQ(Delete(path)->status, 204);
  rows = AuditsOf(id);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2]["action"], 3);
  EXPECT_EQ(Details(rows[2]["auditid"]),
            json({{"@odata.type", "#Microsoft.Dynamics.CRM.AuditDetail"}}));
}

// Auditing off for a table: its writes leave no history, and its metadata says so; the switch
// back on, and the organisation's switch, likewise. Rows written before stay readable.
TEST_F(Dynamics365MockAuditTest, AuditingOffForTheTableWritesNoRowsAndTheMetadataSaysSo) {
  StartMock();
  const std::string before = Create("opportunities", {{"name", "Before"}});
  auto off = SetAuditing({{"table", "opportunity"}, {"enabled", false}});
  ASSERT_TRUE(off);
  ASSERT_EQ(off->status, 204) << off->body;

  const std::string table = std::string(kApi) + "EntityDefinitions(LogicalName='opportunity')";
  auto definition = Get(table + "?$select=IsAuditEnabled");
  ASSERT_EQ(definition->status, 200) << definition->body;
  json d = Body(definition);
  EXPECT_EQ(d["@odata.context"],
            mock_->api_url() + "$metadata#EntityDefinitions(IsAuditEnabled)/$entity");
  EXPECT_TRUE(d["MetadataId"].is_string());
  d.erase("@odata.context");
  d.erase("MetadataId");
  EXPECT_EQ(d, json::parse(R"({"LogicalName": "opportunity", "IsAuditEnabled": {"Value": false,
      "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyauditsettings"}})"));
  auto column =
      Get(table + "/Attributes(LogicalName='crmb_onboardingstage')?$select=IsAuditEnabled");
  ASSERT_EQ(column->status, 200) << column->body;
  EXPECT_EQ(Body(column)["LogicalName"], "crmb_onboardingstage");
  EXPECT_EQ(Body(column)["IsAuditEnabled"]["Value"], true) << "the column's own switch";
  auto organization = Get(std::string(kApi) + "organizations?$select=isauditenabled");
  ASSERT_EQ(organization->status, 200) << organization->body;
  EXPECT_EQ(Body(organization),
            json({{"@odata.context", mock_->api_url() + "$metadata#organizations(isauditenabled)"},
                  {"value",
                   {{{"organizationid", "5d5c2f1a-0000-4000-8000-00000000c001"},
                     {"isauditenabled", true}}}}}));

  const std::string id = Create("opportunities", {{"name", "Quiet"}});
  ASSERT_EQ(Patch(std::string(kApi) + "opportunities(" + id + ")", {{"name", "Quieter"}})->status,
            204);
  EXPECT_TRUE(AuditsOf(id).empty());
  EXPECT_EQ(AuditsOf(before).size(), 1u) << "the history written before stays";
  const std::string account = Create("accounts", {{"name", "Audited"}});
  EXPECT_EQ(AuditsOf(account).size(), 1u) << "other tables are audited still";

  ASSERT_EQ(SetAuditing({{"table", "opportunity"}, {"enabled", true}})->status, 204);
  ASSERT_EQ(Patch(std::string(kApi) + "opportunities(" + id + ")", {{"name", "Heard"}})->status,
            204);
  EXPECT_EQ(AuditsOf(id).size(), 1u);
  EXPECT_EQ(Body(Get(table + "?$select=IsAuditEnabled"))["IsAuditEnabled"]["Value"], true);

  // A column's switch, then the organisation's.
  ASSERT_EQ(SetAuditing({{"table", "opportunity"}, {"column", "name"}, {"enabled", false}})->status,
            204);
  auto name = Get(table + "/Attributes(LogicalName='name')?$select=IsAuditEnabled");
  EXPECT_EQ(Body(name)["IsAuditEnabled"]["Value"], false);
  ASSERT_EQ(Patch(std::string(kApi) + "opportunities(" + id + ")", {{"name", "Unheard"}})->status,
            204);
  EXPECT_EQ(AuditsOf(id).size(), 1u) << "a change of an unaudited column alone writes no row";
  ASSERT_EQ(SetAuditing({{"enabled", false}})->status, 204);
  organization = Get(std::string(kApi) + "organizations?$select=isauditenabled");
  EXPECT_EQ(Body(organization)["value"][0]["isauditenabled"], false);
  ASSERT_EQ(Patch(std::string(kApi) + "accounts(" + account + ")", {{"name", "Unheard"}})->status,
            204);
  EXPECT_EQ(AuditsOf(account).size(), 1u);

  // What cannot be switched, or found.
  EXPECT_EQ(SetAuditing({{"table", "widget"}, {"enabled", false}})->status, 400);
  EXPECT_EQ(
      SetAuditing({{"table", "opportunity"}, {"column", "modifiedon"}, {"enabled", false}})->status,
      400);
  EXPECT_EQ(SetAuditing({{"enabled", "no"}})->status, 400);
  auto unknown =
      Get(std::string(kApi) + "EntityDefinitions(LogicalName='widget')?$select=IsAuditEnabled");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(Body(unknown)["error"]["code"], "0x80040217");
  auto unknown_column = Get(table + "/Attributes(LogicalName='nope')?$select=IsAuditEnabled");
  EXPECT_EQ(unknown_column->status, 404);
  EXPECT_EQ(Body(unknown_column)["error"]["code"], "0x80040217");
  EXPECT_EQ(Get(table + "?$select=IsAudited")->status, 400);
  auto modified = Get(table + "/Attributes(LogicalName='modifiedon')?$select=IsAuditEnabled");
  EXPECT_EQ(Body(modified)["IsAuditEnabled"]["CanBeChanged"], false);
  // The same bearer token as the rest of the API.
  auto anonymous =
      client_->Get((std::string(kApi) + "organizations?$select=isauditenabled").c_str());
  EXPECT_EQ(anonymous->status, 401);
}

// Each seeded opportunity was created at the first stage weeks ago and moved stage by stage to
// its own: its history ends at its current stage, lies in the past, and dates the row.
TEST_F(Dynamics365MockAuditTest, SeededOpportunitiesHaveAPastEndingAtTheirCurrentStage) {
  StartMock();
  mock_->Seed(42, 10);
  const json dump = mock_->Dump();
  ASSERT_EQ(dump["opportunities"].size(), 10u);
  EXPECT_EQ(dump["audits"].size(), 10u + 2 * (0 + 1 + 2 + 3 + 4))
      << "a create row, a row per stage";
  const int64_t now = clock_.NowMillis() / 1000;
  auto seconds = [](const json& iso) {
    std::tm tm{};
    strptime(iso.get<std::string>().c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return static_cast<int64_t>(timegm(&tm));
  };
  for (const json& o : dump["opportunities"]) {
    const std::string id = o["opportunityid"];
    SCOPED_TRACE(id);
    const std::vector<json> rows = AuditsOf(id);
    const int stage = o["crmb_onboardingstage"].get<int>() - 100000000;
    ASSERT_EQ(rows.size(), static_cast<size_t>(stage + 1));
    EXPECT_EQ(rows[0]["action"], 1);
    EXPECT_EQ(rows[0]["createdon"], o["createdon"]);
    EXPECT_EQ(rows.back()["createdon"], o["modifiedon"]);
    EXPECT_GE(seconds(rows[0]["createdon"]), now - 60 * 86400);
    EXPECT_LE(seconds(rows[0]["createdon"]), now - 20 * 86400);
    EXPECT_EQ(Details(rows[0]["auditid"])["NewValue"]["crmb_onboardingstage"], 100000000);
    for (size_t i = 1; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i]["action"], 2);
      EXPECT_LT(seconds(rows[i - 1]["createdon"]), seconds(rows[i]["createdon"]));
      const json detail = Details(rows[i]["auditid"]);
      EXPECT_EQ(detail["OldValue"]["crmb_onboardingstage"], 100000000 + static_cast<int>(i) - 1);
      EXPECT_EQ(detail["NewValue"]["crmb_onboardingstage"], 100000000 + static_cast<int>(i));
    }
    EXPECT_LE(seconds(rows.back()["createdon"]), now - 86400) << "reached at least a day ago";
  }
  EXPECT_TRUE(AuditsOf(dump["accounts"][0]["accountid"]).empty()) << "not written through the API";
  EXPECT_TRUE(AuditsOf(dump["contacts"][0]["contactid"]).empty());
  mock_->Seed(42, 10);
  EXPECT_EQ(mock_->Dump()["audits"], dump["audits"]) << "the same seed, the same history";
}

// A filter by _objectid_value (and action, and objecttypecode) gives that row's audit rows alone.
TEST_F(Dynamics365MockAuditTest, AFilterByObjectIdReturnsOnlyThatRowsAudits) {
  StartMock();
  const std::string a = Create("accounts", {{"name", "A"}});
  const std::string b = Create("accounts", {{"name", "B"}});
  const std::string c = Create("contacts", {{"lastname", "C"}});
  ASSERT_EQ(Patch(std::string(kApi) + "accounts(" + a + ")", {{"name", "A2"}})->status, 204);
  ASSERT_EQ(Patch(std::string(kApi) + "accounts(" + b + ")", {{"name", "B2"}})->status, 204);
  const std::vector<json> rows = AuditsOf(a);
  ASSERT_EQ(rows.size(), 2u);
  for (const json& row : rows) EXPECT_EQ(row["_objectid_value"], a);

  auto query = [&](const std::string& filter) {
    auto res =
        Get(std::string(kApi) + "audits?$select=_objectid_value,action&$filter=" + Q(filter));
    EXPECT_EQ(res->status, 200) << res->body;
    return Body(res)["value"];
  };
  const json updates =
      query("_objectid_value eq " + a + " and objecttypecode eq 'account' and action eq 2");
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0]["_objectid_value"], a);
  EXPECT_EQ(updates[0]["action"], 2);
  EXPECT_TRUE(query("_objectid_value eq " + a + " and objecttypecode eq 'contact'").empty());
  EXPECT_EQ(query("objecttypecode eq 'contact'").size(), 1u);
  EXPECT_EQ(query("objecttypecode eq 'contact'")[0]["_objectid_value"], c);
  EXPECT_EQ(query("action eq 1").size(), 3u);
  EXPECT_EQ(Get(std::string(kApi) + "audits?$filter=" + Q("nosuch eq 1"))->status, 400);
}

// Audit rows page as every entity set does: odata.maxpagesize, an absolute nextLink, no row twice;
// rows written in one second keep the order they were written in.
TEST_F(Dynamics365MockAuditTest, AuditsPageWithMaxPageSizeAndNextLink) {
  StartMock();
  const std::string id = Create("accounts", {{"name", "N0"}});
  for (int i = 1; i <= 6; ++i)
    ASSERT_EQ(Patch(std::string(kApi) + "accounts(" + id + ")", {{"name", "N" + std::to_string(i)}})
                  ->status,
              204);
  std::string path = std::string(kApi) +
                     "audits?$select=auditid,action&$filter=" + Q("_objectid_value eq " + id) +
                     "&$orderby=" + Q("createdon asc");
  std::vector<json> rows;
  std::vector<size_t> sizes;
  while (!path.empty() && sizes.size() < 10) {
    auto res = Get(path, {{"Prefer", "odata.maxpagesize=3"}});
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Preference-Applied"), "odata.maxpagesize=3");
    const json body = Body(res);
    sizes.push_back(body["value"].size());
    for (const json& row : body["value"]) rows.push_back(row);
    path = body.contains("@odata.nextLink") ? PathOf(body["@odata.nextLink"]) : "";
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 3, 1}));
  ASSERT_EQ(rows.size(), 7u);
  std::set<std::string> ids;
  for (const json& row : rows) ids.insert(row["auditid"].get<std::string>());
  EXPECT_EQ(ids.size(), 7u);
  EXPECT_EQ(rows[0]["action"], 1);
  for (size_t i = 1; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i]["action"], 2);
    EXPECT_EQ(Details(rows[i]["auditid"])["NewValue"]["name"], "N" + std::to_string(i));
  }
}

TEST_F(Dynamics365MockAuditTest, RetrieveAuditDetailsIs404ForAnUnknownAuditId) {
  StartMock();
  const std::string unknown = "00000000-0000-4000-8000-000000000000";
  auto res = Get(std::string(kApi) + "audits(" + unknown +
                 ")/Microsoft.Dynamics.CRM.RetrieveAuditDetails()");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(Body(res)["error"]["code"], "0x80040217");
  EXPECT_EQ(Body(res)["error"]["message"], "audit With Id = " + unknown + " Does Not Exist");
  EXPECT_EQ(Get(std::string(kApi) + "audits(" + unknown + ")")->status, 404);
  EXPECT_EQ(
      Get(std::string(kApi) + "audits(nope)/Microsoft.Dynamics.CRM.RetrieveAuditDetails()")->status,
      400);
  EXPECT_EQ(Get(std::string(kApi) + "audits(" + unknown +
                ")/Microsoft.Dynamics.CRM.RetrieveAuditDetail()")
                ->status,
            404);
}

// Writes through $batch and Merge are audited too (the subordinate's deactivation among them);
// a change set rolled back leaves no audit row behind.
TEST_F(Dynamics365MockAuditTest, BatchAndMergeWritesAreAuditedAndARolledBackChangeSetLeavesNone) {
  StartMock();
  const std::string master = Create("accounts", {{"name", "Acme"}});
  const std::string sub = Create("accounts", {{"name", "Acme AB"}});
  auto merge = Post(
      std::string(kApi) + "Merge",
      {{"Target", {{"@odata.type", "Microsoft.Dynamics.CRM.account"}, {"accountid", master}}},
       {"Subordinate", {{"@odata.type", "Microsoft.Dynamics.CRM.account"}, {"accountid", sub}}},
       {"UpdateContent",
        {{"@odata.type", "Microsoft.Dynamics.CRM.account"}, {"telephone1", "+46 8 2"}}},
       {"PerformParentingChecks", false}});
  ASSERT_EQ(merge->status, 204) << merge->body;
  std::vector<json> rows = AuditsOf(sub);
  ASSERT_EQ(rows.size(), 2u);
  const json deactivated = Details(rows[1]["auditid"]);
  EXPECT_EQ(deactivated["OldValue"]["statecode"], 0);
  EXPECT_EQ(deactivated["NewValue"]["statecode"], 1);
  EXPECT_EQ(deactivated["NewValue"]["merged"], true);
  EXPECT_EQ(deactivated["NewValue"]["_masterid_value"], master);
  rows = AuditsOf(master);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(Details(rows[1]["auditid"])["NewValue"]["telephone1"], "+46 8 2");

  const std::string good =
      "POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: "
      "application/json\r\n\r\n{\"name\":\"Kept\"}";
  const std::string rolled_back =
      "POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: "
      "application/json\r\n\r\n{\"name\":\"Gone\"}";
  const std::string bad =
      "POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: "
      "application/json\r\n\r\n{\"no_such_column\":1}";
  const size_t before = mock_->Dump()["audits"].size();
  std::string body =
      "--batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
      good + "\r\n--batch_x\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n";
  for (const std::string& r : {rolled_back, bad})
    body += "--cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
            r + "\r\n";
  body += "--cs--\r\n--batch_x--\r\n";
  auto batch =
      client_->Post("/api/data/v9.2/$batch", Headers(), body, "multipart/mixed; boundary=batch_x");
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->status, 400) << "the change set failed";
  const json audits = mock_->Dump()["audits"];
  ASSERT_EQ(audits.size(), before + 1) << "the request before the change set alone";
  EXPECT_EQ(audits[audits.size() - 1]["action"], 1);
}

}  // namespace
}  // namespace crmbridge::mocks
