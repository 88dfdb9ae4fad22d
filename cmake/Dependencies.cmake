# All dependencies come from Debian 12's archive (see scripts/install-deps.sh).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(CURL REQUIRED)
find_package(ZLIB REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(simdjson REQUIRED)
find_package(RocksDB REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Boost 1.81 EXACT REQUIRED COMPONENTS json url)
pkg_check_modules(LIBDEFLATE REQUIRED IMPORTED_TARGET libdeflate)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
# libGeoIP (libgeoip-dev) reads the country databases of geoip-database: /track's ip=1 geolocation.
pkg_check_modules(GEOIP REQUIRED IMPORTED_TARGET geoip)
find_library(ISAL_LIBRARY NAMES isal REQUIRED)
find_path(ISAL_INCLUDE_DIR NAMES isa-l.h REQUIRED)
add_library(isal::isal UNKNOWN IMPORTED)
set_target_properties(isal::isal PROPERTIES IMPORTED_LOCATION ${ISAL_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${ISAL_INCLUDE_DIR})
if(SLUICE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(SLUICE_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
# ZooKeeper's multi-threaded C client (libzookeeper-mt-dev): coordination for the scale-out deployment.
find_library(ZOOKEEPER_MT_LIBRARY NAMES zookeeper_mt REQUIRED)
find_path(ZOOKEEPER_INCLUDE_DIR NAMES zookeeper/zookeeper.h REQUIRED)
add_library(ZooKeeper::mt UNKNOWN IMPORTED)
set_target_properties(ZooKeeper::mt PROPERTIES IMPORTED_LOCATION ${ZOOKEEPER_MT_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${ZOOKEEPER_INCLUDE_DIR}
                      INTERFACE_COMPILE_DEFINITIONS THREADED)  # the synchronous API of the -mt library
