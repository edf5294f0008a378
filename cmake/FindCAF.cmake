# Debian's libcaf-dev (0.17.6) ships no CMake package: locate headers and libraries by hand.
find_package(Threads REQUIRED)
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)

file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_version_line REGEX "^#define CAF_VERSION [0-9]+")
string(REGEX MATCH "[0-9]+" CAF_VERSION_NUMBER "${_caf_version_line}")
if(NOT CAF_VERSION_NUMBER EQUAL 1706)
  message(FATAL_ERROR "InfinityStore needs CAF 0.17.6 (found CAF_VERSION ${CAF_VERSION_NUMBER})")
endif()

add_library(CAF::core SHARED IMPORTED)
set_target_properties(CAF::core PROPERTIES
  IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES Threads::Threads)
add_library(CAF::io SHARED IMPORTED)
set_target_properties(CAF::io PROPERTIES
  IMPORTED_LOCATION "${CAF_IO_LIBRARY}"
  INTERFACE_LINK_LIBRARIES CAF::core)
message(STATUS "CAF 0.17.6: ${CAF_CORE_LIBRARY}")
