#include "common/geoip.h"

#include <GeoIP.h>
#include <arpa/inet.h>
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <cstring>

namespace sluice {

struct CountryLookup::Databases {
  GeoIP* v4 = nullptr;
  GeoIP* v6 = nullptr;
  ~Databases() {
    if (v4 != nullptr) GeoIP_delete(v4);
    if (v6 != nullptr) GeoIP_delete(v6);
  }
};

namespace {

Result<GeoIP*> OpenOne(std::string_view path) {
  const std::string file(path);
  if (::access(file.c_str(), R_OK) != 0) {
    return NotFound(
        fmt::format("GeoIP country database {} is not readable (Debian's geoip-database package "
                    "installs it): {}",
                    file, std::strerror(errno)));
  }
  // GEOIP_MMAP_CACHE: the file mapped, not copied (10 MB that would count against the server's memory bound;
  // a lookup touches a few pages); GEOIP_SILENCE: no messages on stderr.
  GeoIP* db = GeoIP_open(file.c_str(), GEOIP_MMAP_CACHE | GEOIP_SILENCE);
  if (db == nullptr) return InvalidArgument(fmt::format("{} is not a GeoIP database", file));
  return db;
}

}  // namespace

CountryLookup::CountryLookup(std::unique_ptr<Databases> db) : db_(std::move(db)) {}
CountryLookup::~CountryLookup() = default;

Result<std::unique_ptr<CountryLookup>> CountryLookup::Open(std::string_view v4_path,
                                                           std::string_view v6_path) {
  auto db = std::make_unique<Databases>();
  SLUICE_ASSIGN_OR_RETURN(db->v4, OpenOne(v4_path));
  if (!v6_path.empty()) {
    SLUICE_ASSIGN_OR_RETURN(db->v6, OpenOne(v6_path));
  }
  return std::unique_ptr<CountryLookup>(new CountryLookup(std::move(db)));
}

std::string CountryLookup::CountryOf(std::string_view address) const {
  if (address.empty() || address.size() > INET6_ADDRSTRLEN) return "";
  const std::string text(address);
  // Only literals: libGeoIP's _by_addr functions parse the text, and anything else is refused here first, so
  // no lookup ever reaches DNS. The _gl variants keep their state in `gl`, so concurrent lookups are safe.
  std::array<unsigned char, sizeof(in6_addr)> parsed{};
  GeoIPLookup gl{};
  const char* code = nullptr;
  if (::inet_pton(AF_INET, text.c_str(), parsed.data()) == 1) {
    code = GeoIP_country_code_by_addr_gl(db_->v4, text.c_str(), &gl);
  } else if (::inet_pton(AF_INET6, text.c_str(), parsed.data()) == 1 && db_->v6 != nullptr) {
    code = GeoIP_country_code_by_addr_v6_gl(db_->v6, text.c_str(), &gl);
  }
  if (code == nullptr || std::strlen(code) != 2 || std::string_view(code) == "--") return "";
  // The database's pseudo-countries (A1 anonymous proxy, A2 satellite, AP/EU regions, O1 other) are not
  // places.
  const std::string_view c(code);
  if (c == "A1" || c == "A2" || c == "AP" || c == "EU" || c == "O1") return "";
  return std::string(c);
}

}  // namespace sluice
