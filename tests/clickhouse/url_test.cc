#include "clickhouse/url.h"

#include <gtest/gtest.h>

namespace sluice::clickhouse {
namespace {

TEST(ClickHouseUrl, ParsesHostsDatabaseAndCluster) {
  auto url =
      ParseClickHouseUrl("clickhouse://ch1.internal:8123,10.0.0.2:8124,[::1]:8125/sluice_prod?cluster=main");
  ASSERT_TRUE(url.ok()) << url.error().ToString();
  ASSERT_EQ(url->hosts.size(), 3u);
  EXPECT_EQ(url->hosts[0].host, "ch1.internal");
  EXPECT_EQ(url->hosts[0].port, 8123);
  EXPECT_EQ(url->hosts[1].host, "10.0.0.2");
  EXPECT_EQ(url->hosts[2].host, "::1");
  EXPECT_EQ(url->hosts[2].port, 8125);
  EXPECT_EQ(url->database, "sluice_prod");
  EXPECT_EQ(url->cluster, "main");
  EXPECT_EQ(url->ToString(),
            "clickhouse://ch1.internal:8123,10.0.0.2:8124,[::1]:8125/sluice_prod?cluster=main");
}

TEST(ClickHouseUrl, ClusterIsOptional) {
  auto url = ParseClickHouseUrl("clickhouse://127.0.0.1:8123/sluice");
  ASSERT_TRUE(url.ok()) << url.error().ToString();
  EXPECT_EQ(url->cluster, "");
  EXPECT_EQ(url->ToString(), "clickhouse://127.0.0.1:8123/sluice");
}

TEST(ClickHouseUrl, RejectsEverythingOutsideTheContract) {
  const char* bad[] = {
      "",
      "http://127.0.0.1:8123/sluice",
      "ClickHouse://127.0.0.1:8123/sluice",
      "clickhouse://127.0.0.1:8123",          // no database
      "clickhouse://127.0.0.1:8123/",         // empty database
      "clickhouse://127.0.0.1/sluice",        // no port
      "clickhouse://127.0.0.1:0/sluice",      // port 0
      "clickhouse://127.0.0.1:65536/sluice",  // port too large
      "clickhouse://127.0.0.1:+80/sluice",
      "clickhouse://127.0.0.1:80x/sluice",
      "clickhouse://:8123/sluice",     // no host
      "clickhouse://a_b:8123/sluice",  // '_' is not a DNS name character
      "clickhouse://-a:8123/sluice",
      "clickhouse://a:1,,b:2/sluice",  // empty entry
      "clickhouse://a:1,a:1/sluice",   // duplicate
      "clickhouse://a:1, b:2/sluice",  // space
      "clickhouse://[::1/sluice",
      "clickhouse://[zz]:1/sluice",
      "clickhouse://user:pw@a:1/sluice",  // credentials in the URL
      "clickhouse://a:1/sluice/",         // trailing slash
      "clickhouse://a:1/slu-ice",         // not a plain identifier
      "clickhouse://a:1/9db",
      "clickhouse://a:1/sluice?",
      "clickhouse://a:1/sluice?cluster=",
      "clickhouse://a:1/sluice?cluster=a-b",
      "clickhouse://a:1/sluice?cluster=c&cluster=d",
      "clickhouse://a:1/sluice?shard=1",
      "clickhouse://a:1/sluice?cluster=c#frag",
  };
  for (const char* text : bad) {
    auto url = ParseClickHouseUrl(text);
    EXPECT_FALSE(url.ok()) << "accepted: " << text;
    if (!url.ok()) {
      EXPECT_EQ(url.error().code, ErrorCode::kInvalidArgument) << text;
      EXPECT_NE(url.error().message.find("clickhouse://HOST:PORT"), std::string::npos) << url.error().message;
    }
  }
}

TEST(ClickHouseUrl, ErrorNamesThePartToFix) {
  auto url = ParseClickHouseUrl("clickhouse://a:1,b/sluice");
  ASSERT_FALSE(url.ok());
  EXPECT_NE(url.error().message.find("'b'"), std::string::npos) << url.error().message;
  EXPECT_NE(url.error().message.find("no port"), std::string::npos) << url.error().message;
}

TEST(ClickHouseUrl, PlainIdentifiers) {
  EXPECT_TRUE(IsPlainIdentifier("events_local"));
  EXPECT_TRUE(IsPlainIdentifier("_x9"));
  EXPECT_FALSE(IsPlainIdentifier("9x"));
  EXPECT_FALSE(IsPlainIdentifier("a.b"));
  EXPECT_FALSE(IsPlainIdentifier("a`b"));
  EXPECT_FALSE(IsPlainIdentifier(std::string(65, 'a')));
}

}  // namespace
}  // namespace sluice::clickhouse
