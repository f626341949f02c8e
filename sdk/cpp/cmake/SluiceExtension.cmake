# sluice_add_extension(<name> SOURCES <files...> [NATIVE_SHARED] [NOT_IN_BINARY]
#                      [WASM_DIR <dir>])
#
# Builds one Proxy-Wasm extension written against the Sluice C++ SDK, twice:
#   - ${CMAKE_BINARY_DIR}/extensions/<name>.wasm: clang++ --target=wasm32-wasi (target
#     sluice_ext_<name>_wasm, part of ALL);
#   - OBJECT library sluice_ext_<name> for the null runtime, added to the INTERFACE library
#     sluice_native_extensions, registered at start-up as "sluice.<name>".
# NATIVE_SHARED also builds ${CMAKE_BINARY_DIR}/extensions/<name>.so (target
# sluice_ext_<name>_so) for `code.local.filename: <name>.so` with the null runtime.
# NOT_IN_BINARY keeps the objects out of sluice_native_extensions (test-only extensions link
# sluice_ext_<name> themselves); WASM_DIR puts the .wasm elsewhere.
#
# Every extension gets its own copy of the SDK inside namespace sluice::ext_<name> (an inline
# namespace), so several can share one binary.

get_filename_component(_sdk_dir ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
set(SLUICE_SDK_DIR ${_sdk_dir} CACHE INTERNAL "The Sluice C++ SDK (sdk/cpp)")

find_program(SLUICE_WASM_CXX NAMES clang++-14 clang++
  DOC "clang++ with the wasm32-wasi target (Debian: clang-14, wasi-libc, libc++-14-dev-wasm32)")
# -flto: the extension and the SDK are optimized as one program (the SDK's small accessors inline
# into the plugin's callbacks); telemetry.wasm is a fifth smaller and its per-request code about
# 4 % faster on V8 (bench/README.md), at the same build time.
set(SLUICE_WASM_FLAGS --target=wasm32-wasi -mexec-model=reactor -std=c++20 -O2 -flto
  -fno-exceptions -fno-rtti -Wall -Wextra -Wno-unused-parameter
  CACHE STRING "Compiler flags for the .wasm builds of extensions")
set(SLUICE_WASM_LINK_FLAGS -Wl,--strip-debug -Wl,--gc-sections
  CACHE STRING "Linker flags for the .wasm builds of extensions")

set(SLUICE_EXTENSION_WASM_DIR ${CMAKE_BINARY_DIR}/extensions CACHE INTERNAL "")
# Every .wasm target and file, for tests that check all modules (tests/sdk).
set_property(GLOBAL PROPERTY SLUICE_EXTENSION_WASM_FILES "")
set_property(GLOBAL PROPERTY SLUICE_EXTENSION_WASM_TARGETS "")

function(sluice_add_extension name)
  cmake_parse_arguments(ARG "NATIVE_SHARED;NOT_IN_BINARY" "WASM_DIR" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "sluice_add_extension(${name}): SOURCES is required")
  endif()
  if(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "sluice_add_extension(${name}): the name must be a C identifier")
  endif()
  set(sources)
  set(header_globs)
  foreach(src ${ARG_SOURCES})
    get_filename_component(abs ${src} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND sources ${abs})
    get_filename_component(dir ${abs} DIRECTORY)
    list(APPEND header_globs ${dir}/*.h)
  endforeach()
  file(GLOB ext_headers CONFIGURE_DEPENDS ${header_globs})
  set(ns ext_${name})
  set(wasm_dir ${SLUICE_EXTENSION_WASM_DIR})
  if(ARG_WASM_DIR)
    set(wasm_dir ${ARG_WASM_DIR})
  endif()
  # (Computed here: this function runs in other directories' scopes.)
  set(sdk_common ${SLUICE_SDK_DIR}/src/sdk.cc ${SLUICE_SDK_DIR}/src/dispatch.cc)
  set(sdk_wasm ${sdk_common} ${SLUICE_SDK_DIR}/src/wasm_exports.cc
    ${SLUICE_SDK_DIR}/src/wasm_string.cc)
  set(sdk_native ${sdk_common} ${SLUICE_SDK_DIR}/src/native_plugin.cc)
  file(GLOB sdk_headers CONFIGURE_DEPENDS
    ${SLUICE_SDK_DIR}/include/sluice/*.h ${SLUICE_SDK_DIR}/src/*.h)

  # --- .wasm: one clang++ run compiles and links everything (a few seconds).
  if(SLUICE_WASM_CXX)
    set(out ${wasm_dir}/${name}.wasm)
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${wasm_dir}
      COMMAND ${SLUICE_WASM_CXX} ${SLUICE_WASM_FLAGS} -DSLUICE_SDK_NS=${ns}
        -I${SLUICE_SDK_DIR}/include ${sources} ${sdk_wasm}
        ${SLUICE_WASM_LINK_FLAGS} -o ${out}
      DEPENDS ${sources} ${ext_headers} ${sdk_wasm} ${sdk_headers}
      COMMAND_EXPAND_LISTS VERBATIM
      COMMENT "Building Proxy-Wasm module ${name}.wasm")
    add_custom_target(sluice_ext_${name}_wasm ALL DEPENDS ${out})
    if(NOT ARG_NOT_IN_BINARY)
      set_property(GLOBAL APPEND PROPERTY SLUICE_EXTENSION_WASM_FILES ${out})
      set_property(GLOBAL APPEND PROPERTY SLUICE_EXTENSION_WASM_TARGETS sluice_ext_${name}_wasm)
    endif()
  else()
    message(WARNING "No wasm32 clang++ found: extension ${name} builds natively only")
  endif()

  # --- native (null runtime): objects linked straight into whoever links
  # sluice_native_extensions, so the static-init registration cannot be dropped.
  add_library(sluice_ext_${name} OBJECT ${sources} ${sdk_native})
  target_include_directories(sluice_ext_${name} PRIVATE
    ${SLUICE_SDK_DIR}/include ${SLUICE_SDK_DIR}/src ${PROJECT_SOURCE_DIR}/src)
  target_compile_definitions(sluice_ext_${name} PRIVATE SLUICE_NATIVE_PLUGIN
    SLUICE_SDK_NS=${ns} SLUICE_EXTENSION_NAME="${name}")
  target_compile_features(sluice_ext_${name} PRIVATE cxx_std_20)
  if(TARGET sluice_native_extensions AND NOT ARG_NOT_IN_BINARY)
    target_sources(sluice_native_extensions INTERFACE $<TARGET_OBJECTS:sluice_ext_${name}>)
    add_dependencies(sluice_native_extensions sluice_ext_${name})
  endif()

  if(ARG_NATIVE_SHARED)
    add_library(sluice_ext_${name}_so MODULE ${sources} ${sdk_native})
    target_include_directories(sluice_ext_${name}_so PRIVATE
      ${SLUICE_SDK_DIR}/include ${SLUICE_SDK_DIR}/src ${PROJECT_SOURCE_DIR}/src)
    target_compile_definitions(sluice_ext_${name}_so PRIVATE SLUICE_NATIVE_PLUGIN
      SLUICE_NULL_PLUGIN_SHARED SLUICE_SDK_NS=${ns} SLUICE_EXTENSION_NAME="${name}")
    target_compile_features(sluice_ext_${name}_so PRIVATE cxx_std_20)
    # Only sluice_null_plugin is exported; the proxy_* host functions resolve against the
    # sluice binary (ENABLE_EXPORTS) when the host dlopen()s the file.
    set_target_properties(sluice_ext_${name}_so PROPERTIES PREFIX "" OUTPUT_NAME ${name}
      LIBRARY_OUTPUT_DIRECTORY ${SLUICE_EXTENSION_WASM_DIR}
      CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  endif()
endfunction()
