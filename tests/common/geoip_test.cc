#include "common/geoip.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

// Debian's geoip-database (installed by scripts/install-deps.sh) read by libGeoIP: public addresses get their
// country, anything else (loopback, private, reserved, not a literal: never a DNS lookup) none.
TEST(CountryLookupTest, CountriesOfPublicAddressesOnly) {
  auto geo = CountryLookup::Open();
  ASSERT_TRUE(geo.ok()) << geo.error().ToString();
  EXPECT_EQ((*geo)->CountryOf("8.8.8.8"), "US");
  EXPECT_EQ((*geo)->CountryOf("2001:4860:4860::8888"), "US");
  EXPECT_EQ((*geo)->CountryOf("193.99.144.80"), "DE");
  for (const char* none : {"127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "", "localhost", "example.com",
                           "8.8.8.8 ", "8.8.8", "999.1.1.1", "fe80::1"}) {
    EXPECT_EQ((*geo)->CountryOf(none), "") << none;
  }
}

TEST(CountryLookupTest, AMissingDatabaseNamesTheFileAndThePackage) {
  auto geo = CountryLookup::Open("/nonexistent/GeoIP.dat", "");
  ASSERT_FALSE(geo.ok());
  EXPECT_EQ(geo.error().code, ErrorCode::kNotFound);
  EXPECT_NE(geo.error().message.find("/nonexistent/GeoIP.dat"), std::string::npos);
  EXPECT_NE(geo.error().message.find("geoip-database"), std::string::npos);
}

}  // namespace
}  // namespace sluice
