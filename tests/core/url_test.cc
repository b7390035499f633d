// Where a URL sends a request is decided in one place (SplitUrl): base_url's checks, a redirect's
// message and serve's --public-url all read the same authority.
#include "src/core/url.h"

#include <gtest/gtest.h>

namespace crmbridge {
namespace {

TEST(UrlTest, SplitUrlGivesSchemeAuthorityAndTheRest) {
  auto parts = SplitUrl("https://svc:pw@org.crm4.dynamics.com:8443/api/data/v9.2?$top=5#x");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->scheme, "https");
  EXPECT_EQ(parts->authority, "svc:pw@org.crm4.dynamics.com:8443");
  EXPECT_EQ(parts->rest, "/api/data/v9.2?$top=5#x");
  EXPECT_EQ(parts->origin, "https://svc:pw@org.crm4.dynamics.com:8443");

  // The authority ends at the first '/', '?' or '#', whichever comes first.
  EXPECT_EQ(SplitUrl("http://h?next=http://other/")->authority, "h");
  EXPECT_EQ(SplitUrl("http://h#frag/x")->rest, "#frag/x");
  EXPECT_EQ(SplitUrl("http://")->authority, "");
  EXPECT_EQ(SplitUrl("postgresql://u@db/state")->scheme, "postgresql");
}

TEST(UrlTest, TextWithoutASchemeIsNoUrl) {
  EXPECT_FALSE(SplitUrl("").has_value());
  EXPECT_FALSE(SplitUrl("api.hubapi.com").has_value());
  EXPECT_FALSE(SplitUrl("/crm/v3/objects?x=http://h").has_value()) << "'://' only in the query";
  EXPECT_FALSE(SplitUrl("://h").has_value());
  EXPECT_FALSE(SplitUrl("1http://h").has_value());
  EXPECT_FALSE(SplitUrl("ht tp://h").has_value());
}

TEST(UrlTest, IsHttpUrlNeedsHttpOrHttpsAndAHost) {
  EXPECT_TRUE(IsHttpUrl("http://127.0.0.1:8080"));
  EXPECT_TRUE(IsHttpUrl("https://sync.example.com/hooks"));
  EXPECT_FALSE(IsHttpUrl("https://"));
  EXPECT_FALSE(IsHttpUrl("http:///path"));
  EXPECT_FALSE(IsHttpUrl("ftp://h"));
  EXPECT_FALSE(IsHttpUrl("HTTP://h")) << "the configuration has always asked for lower case";
  EXPECT_FALSE(IsHttpUrl("notaurl"));
}

}  // namespace
}  // namespace crmbridge
