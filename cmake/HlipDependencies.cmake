# Every third-party dependency is found here, once, and exposed as an imported or alias target.

find_package(Torch REQUIRED)
message(STATUS "hlip: LibTorch ${Torch_VERSION} from ${Torch_DIR}")

# CUDA is available when the LibTorch found was built with it (e.g. the one inside a pip torch wheel).
set(HLIP_WITH_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(HLIP_WITH_CUDA ON)
endif()
message(STATUS "hlip: CUDA support: ${HLIP_WITH_CUDA}")

find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(ZLIB REQUIRED)

find_package(PkgConfig REQUIRED)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
# Whole-file gzip inflation for .nii.gz scans: 25 ms where zlib takes 43 (docs/prepare.md, Performance).
pkg_check_modules(LIBDEFLATE REQUIRED IMPORTED_TARGET libdeflate)
# The ablation report's plots (PNG through PLplot's cairo driver, Debian's plplot-driver-cairo at run time).
pkg_check_modules(PLPLOT REQUIRED IMPORTED_TARGET plplot)

# Debian's NIFTIConfig.cmake points at a library file that does not exist; find the pieces directly.
find_path(NIFTI_INCLUDE_DIR nifti2_io.h PATH_SUFFIXES nifti REQUIRED)
find_library(NIFTI2_LIBRARY nifti2 REQUIRED)
find_library(ZNZ_LIBRARY znz REQUIRED)
add_library(hlip_nifti INTERFACE)
target_include_directories(hlip_nifti SYSTEM INTERFACE ${NIFTI_INCLUDE_DIR})
target_link_libraries(hlip_nifti INTERFACE ${NIFTI2_LIBRARY} ${ZNZ_LIBRARY} ZLIB::ZLIB m)
add_library(hlip::nifti ALIAS hlip_nifti)

# DCMTK (Debian's libdcmtk-dev ships DCMTKConfig.cmake): dcmdata parses files and holds the RLE codec;
# dcmjpeg and dcmjpls bring the JPEG and JPEG-LS codecs.
find_package(DCMTK REQUIRED CONFIG)
add_library(hlip_dcmtk INTERFACE)
target_link_libraries(hlip_dcmtk INTERFACE DCMTK::dcmdata DCMTK::dcmjpeg DCMTK::dcmjpls DCMTK::oflog DCMTK::ofstd)
add_library(hlip::dcmtk ALIAS hlip_dcmtk)
message(STATUS "hlip: DCMTK ${DCMTK_VERSION} from ${DCMTK_DIR}")

# LibTorch's c10d Gloo headers include gloo's; the library itself lives inside libtorch_cpu.
include(CheckIncludeFileCXX)
set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS})
set(CMAKE_REQUIRED_FLAGS "${TORCH_CXX_FLAGS} -std=c++17")
set(CMAKE_REQUIRED_DEFINITIONS -DUSE_C10D_GLOO)
set(CMAKE_REQUIRED_LIBRARIES ${TORCH_LIBRARIES})
check_include_file_cxx(torch/csrc/distributed/c10d/ProcessGroupGloo.hpp HLIP_HAVE_GLOO)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_DEFINITIONS)
unset(CMAKE_REQUIRED_LIBRARIES)
message(STATUS "hlip: c10d Gloo: ${HLIP_HAVE_GLOO}")

if(HLIP_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(HLIP_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
