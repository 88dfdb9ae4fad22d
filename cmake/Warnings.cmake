add_library(sluice_options INTERFACE)
target_compile_options(sluice_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow=local
                       -Wnon-virtual-dtor -Wno-missing-field-initializers
                       # GCC 12 reports false positives on std::string at -O3 (GCC bugs 105562, 107138)
                       $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized -Wno-restrict -Wno-stringop-overflow>)
target_include_directories(sluice_options INTERFACE ${CMAKE_SOURCE_DIR}/src)
target_compile_definitions(sluice_options INTERFACE BOOST_ASIO_NO_DEPRECATED BOOST_URL_NO_LIB BOOST_JSON_NO_LIB)
if(SLUICE_WERROR)
  target_compile_options(sluice_options INTERFACE -Werror)
endif()
if(SLUICE_SANITIZE)
  target_compile_options(sluice_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                         -fno-sanitize-recover=undefined)
  target_link_options(sluice_options INTERFACE -fsanitize=address,undefined)
endif()

# sluice_module(NAME SOURCES... DEPS ...): one static library per module.
function(sluice_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS" ${ARGN})
  if(NOT M_SOURCES)
    # A module whose sources are not written yet is header-only for now.
    add_library(sluice_${name} INTERFACE)
    target_link_libraries(sluice_${name} INTERFACE sluice_options ${M_DEPS})
    return()
  endif()
  add_library(sluice_${name} STATIC ${M_SOURCES})
  target_link_libraries(sluice_${name} PUBLIC sluice_options ${M_DEPS})
endfunction()
