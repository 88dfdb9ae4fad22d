// Country of an IP address, from the GeoIP country databases Debian ships (geoip-database:
// /usr/share/GeoIP/GeoIP.dat and GeoIPv6.dat, read with libGeoIP). /track's ip=1 uses it the way Mixpanel
// does: the request's address becomes the event's mp_country_code, and the address itself is not kept.
//
//   auto geo = CountryLookup::Open();                 // Debian's databases, mapped
//   if (geo.ok()) (*geo)->CountryOf("8.8.8.8");        // "US"; "" for a private or unknown address
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice {

class CountryLookup {
 public:
  static constexpr std::string_view kDefaultV4 = "/usr/share/GeoIP/GeoIP.dat";
  static constexpr std::string_view kDefaultV6 = "/usr/share/GeoIP/GeoIPv6.dat";

  /// Opens the IPv4 and IPv6 country databases (mapped read-only). kNotFound naming the file and the
  /// package when one is missing; an empty `v6_path` skips IPv6.
  static Result<std::unique_ptr<CountryLookup>> Open(std::string_view v4_path = kDefaultV4,
                                                     std::string_view v6_path = kDefaultV6);
  ~CountryLookup();
  CountryLookup(const CountryLookup&) = delete;
  CountryLookup& operator=(const CountryLookup&) = delete;

  /// The ISO 3166-1 alpha-2 code of `address` (IPv4 dotted or IPv6 text), or "" when the address is not a
  /// literal, private, reserved or unknown to the database. Thread-safe; never resolves a name.
  std::string CountryOf(std::string_view address) const;

 private:
  struct Databases;
  explicit CountryLookup(std::unique_ptr<Databases> db);
  std::unique_ptr<Databases> db_;
};

}  // namespace sluice
