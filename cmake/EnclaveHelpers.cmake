# Warning and sanitizer flags shared by every target.
add_library(enclave_flags INTERFACE)
target_compile_options(enclave_flags INTERFACE -Wall -Wextra -Wno-unused-parameter
                                             -Wno-missing-field-initializers)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 reports false positives in std::optional / AVX-512 intrinsics headers.
  target_compile_options(enclave_flags INTERFACE -Wno-maybe-uninitialized)
endif()
if(ENCLAVE_WERROR)
  target_compile_options(enclave_flags INTERFACE -Werror)
endif()
if(ENCLAVE_SANITIZE)
  target_compile_options(enclave_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                 -fno-sanitize-recover=undefined)
  target_link_options(enclave_flags INTERFACE -fsanitize=address,undefined)
endif()

# enclave_library(NAME [DEPS ...]): one library per src/<NAME>, sources are every .cc in the folder
# tree (CONFIGURE_DEPENDS keeps new files picked up). Public headers are included as
# "<name>/<header>.h" relative to src/.
function(enclave_library name)
  cmake_parse_arguments(ARG "" "" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  add_library(enclave_${name} STATIC ${srcs})
  add_library(enclave::${name} ALIAS enclave_${name})
  target_include_directories(enclave_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(enclave_${name} PUBLIC enclave_flags ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# enclave_test(NAME LABEL <unit|golden|integration> SOURCES ... DEPS ...)
include(GoogleTest)
function(enclave_test name)
  cmake_parse_arguments(ARG "" "LABEL" "SOURCES;DEPS" ${ARGN})
  if(NOT ARG_LABEL)
    set(ARG_LABEL unit)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main enclave_flags)
  target_compile_definitions(${name} PRIVATE
    ENCLAVE_FIXTURES_DIR="${ENCLAVE_FIXTURES_DIR}"
    ENCLAVE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    ENCLAVE_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${name} PROPERTIES LABELS ${ARG_LABEL} DISCOVERY_TIMEOUT 60)
endfunction()

# Read-only shared fixtures live next to the repository (../shared/fixtures).
if(NOT ENCLAVE_FIXTURES_DIR)
  get_filename_component(ENCLAVE_FIXTURES_DIR ${PROJECT_SOURCE_DIR}/../shared/fixtures ABSOLUTE)
endif()
