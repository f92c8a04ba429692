# `cmake --install build --prefix P`: the hlip libraries, the public headers, the `hlip` tool and a CMake
# package, so that another project does
#
#   find_package(hlip REQUIRED)          # with P in CMAKE_PREFIX_PATH
#   target_link_libraries(app PRIVATE hlip::hlip)
#
# The libraries are static: their private dependencies (NIfTI, DCMTK, zstd, libdeflate, zlib, utf8proc,
# toml++, PLplot) are link dependencies of the consumer, which hlipConfig.cmake finds again (find_dependency), as it
# finds LibTorch and the public ones (fmt, spdlog, nlohmann_json).

include(CMakePackageConfigHelpers)

set(HLIP_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/hlip)
set_target_properties(hlip_nifti PROPERTIES EXPORT_NAME nifti)
set_target_properties(hlip_dcmtk PROPERTIES EXPORT_NAME dcmtk)
set_target_properties(hlip_compile_options PROPERTIES EXPORT_NAME compile_options)

install(TARGETS hlip hlip_base hlip_core hlip_io hlip_preprocess hlip_text hlip_data hlip_model hlip_train
                hlip_eval hlip_gen hlip_ablate hlip_nifti hlip_dcmtk hlip_compile_options
        EXPORT hlipTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS hlip_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/hlip DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT hlipTargets NAMESPACE hlip:: DESTINATION ${HLIP_INSTALL_CMAKEDIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/hlipConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/hlipConfig.cmake
                              INSTALL_DESTINATION ${HLIP_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/hlipConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/hlipConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/hlipConfigVersion.cmake
        DESTINATION ${HLIP_INSTALL_CMAKEDIR})
