# What `cmake --install` puts where (GNUInstallDirs; docs/library.md lists it), and the Python
# package staged in the build tree (build/python) so that it runs without installing.
#
#   lib:      libshardnet.so.<version>, the soname link and the development link
#   include:  shardnet.h
#   lib/pkgconfig/shardnet.pc, lib/cmake/shardnet/ (imported target shardnet::shardnet)
#   bin:      shardnet
#   share/shardnet: data/ (ImageNet label files), convert_torch_weights.py, mpirun/, slurm/
#   share/doc/shardnet: README.md and docs/
#   SN_PYTHON_DIR/shardnet: the Python package
#
# The shared library links its dependencies (MPI, parallel HDF5, OpenBLAS, libjpeg, libpng, zlib,
# OpenMP) privately, and shardnet.h includes none of their headers: a program needs only the
# header and -lshardnet. The installed library and program keep a run path to dependencies
# outside the system directories (an MPI under /opt, a module's HDF5), so they load as linked.
include(CMakePackageConfigHelpers)

set(SN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/shardnet)
set(SN_DATA_DIR ${CMAKE_INSTALL_DATADIR}/shardnet)

# Where the Python package goes: Debian's python3 reads /usr/lib/python3/dist-packages and, for
# the default prefix, /usr/local/lib/python3.X/dist-packages; other prefixes need PYTHONPATH.
find_program(SN_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT SN_PYTHON)
  find_program(SN_PYTHON NAMES python3)
endif()
set(SN_PY_XY "")
if(SN_PYTHON)
  execute_process(COMMAND ${SN_PYTHON} -c "import sys; print('%d.%d' % sys.version_info[:2])"
    OUTPUT_VARIABLE SN_PY_XY OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR NOT SN_PY_XY)
  set(SN_PYTHON_DIR_DEFAULT lib/python3/dist-packages)
else()
  set(SN_PYTHON_DIR_DEFAULT lib/python${SN_PY_XY}/dist-packages)
endif()
set(SN_PYTHON_DIR ${SN_PYTHON_DIR_DEFAULT} CACHE STRING
  "Python package directory (relative to the install prefix, or absolute)")

# ---------------------------------------------------------------- library, header, program
set_target_properties(shardnet shardnet_cli PROPERTIES INSTALL_RPATH_USE_LINK_PATH TRUE)
install(TARGETS shardnet EXPORT shardnetTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS shardnet_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# ---------------------------------------------------------------- CMake package
install(EXPORT shardnetTargets NAMESPACE shardnet:: DESTINATION ${SN_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/shardnetConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/shardnetConfig.cmake INSTALL_DESTINATION ${SN_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR SN_DATA_DIR CMAKE_INSTALL_BINDIR)
# 0.x: a new minor version may change the API, so only the same minor version is compatible.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/shardnetConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/shardnetConfig.cmake
  ${CMAKE_BINARY_DIR}/cmake/shardnetConfigVersion.cmake DESTINATION ${SN_CMAKE_DIR})

# ---------------------------------------------------------------- pkg-config
# The directories are written relative to ${prefix}, and the prefix at install time, so that it
# is the one installed to (cmake --install --prefix P). Libs.private names what the library
# links, for `pkg-config --static`.
foreach(d LIBDIR INCLUDEDIR DATADIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${d}}")
    set(SN_PC_${d} "${CMAKE_INSTALL_${d}}")
  else()
    set(SN_PC_${d} "\${prefix}/${CMAKE_INSTALL_${d}}")
  endif()
endforeach()
set(SN_PC_LIBS_PRIVATE "-lhdf5_openmpi -lmpi -lopenblas -ljpeg -lpng16 -lz -lgomp -lpthread -lm")
set(SN_PC_PREFIX "@SN_PC_PREFIX@") # kept for the second pass, at install time
configure_file(${CMAKE_CURRENT_LIST_DIR}/shardnet.pc.in ${CMAKE_BINARY_DIR}/cmake/shardnet.pc.in
  @ONLY)
install(CODE "set(SN_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${CMAKE_BINARY_DIR}/cmake/shardnet.pc.in\"
    \"${CMAKE_BINARY_DIR}/cmake/install/shardnet.pc\" @ONLY)")
install(FILES ${CMAKE_BINARY_DIR}/cmake/install/shardnet.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# ---------------------------------------------------------------- data, scripts, docs
install(FILES jobs/data/imagenet_class_index.json jobs/data/imagenet_labels.txt
  jobs/data/imagenet_labels_keras.txt jobs/data/imagenet_wnids.txt DESTINATION ${SN_DATA_DIR}/data)
install(PROGRAMS jobs/convert_torch_weights.py DESTINATION ${SN_DATA_DIR})
file(GLOB SN_JOB_SCRIPTS ${CMAKE_SOURCE_DIR}/jobs/mpirun/*.sh)
install(PROGRAMS ${SN_JOB_SCRIPTS} DESTINATION ${SN_DATA_DIR}/mpirun)
file(GLOB SN_SLURM_SCRIPTS ${CMAKE_SOURCE_DIR}/jobs/slurm/*.sbatch)
install(PROGRAMS ${SN_SLURM_SCRIPTS} DESTINATION ${SN_DATA_DIR}/slurm)
file(GLOB SN_DOCS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES README.md ${SN_DOCS} DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---------------------------------------------------------------- Python package
# python/shardnet is copied to build/python/shardnet (edits are copied again at the next build,
# through the configure dependency) with a generated _paths.py naming the build tree's library,
# program and data; the installed package gets a _paths.py with paths relative to itself.
file(GLOB_RECURSE SN_PY_FILES CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR}/python
  ${CMAKE_SOURCE_DIR}/python/shardnet/*.py)
foreach(f ${SN_PY_FILES})
  configure_file(${CMAKE_SOURCE_DIR}/python/${f} ${CMAKE_BINARY_DIR}/python/${f} COPYONLY)
  get_filename_component(d ${f} DIRECTORY)
  install(FILES ${CMAKE_SOURCE_DIR}/python/${f} DESTINATION ${SN_PYTHON_DIR}/${d})
endforeach()

set(SN_PY_HEADER "# Generated by cmake/ShardnetInstall.cmake: where this copy of the shardnet package finds\n# its library, program and data files.")
file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/python/shardnet/_paths.py CONTENT
"${SN_PY_HEADER}\nVERSION = \"${PROJECT_VERSION}\"\nRELATIVE = False\nLIBRARY = \"$<TARGET_FILE:shardnet>\"\nPROGRAM = \"$<TARGET_FILE:shardnet_cli>\"\nDATA = \"${CMAKE_SOURCE_DIR}/jobs/data\"\n")

# Installed: relative to the package directory, so that `cmake --install --prefix P` and DESTDIR
# staging keep working (prefix-relative directories only; absolute ones are used as they are).
function(sn_rel out dir)
  if(IS_ABSOLUTE "${SN_PYTHON_DIR}" OR IS_ABSOLUTE "${dir}")
    set(from ${SN_PYTHON_DIR})
    if(NOT IS_ABSOLUTE "${from}")
      set(from ${CMAKE_INSTALL_PREFIX}/${from})
    endif()
    set(to ${dir})
    if(NOT IS_ABSOLUTE "${to}")
      set(to ${CMAKE_INSTALL_PREFIX}/${to})
    endif()
  else()
    set(from /p/${SN_PYTHON_DIR})
    set(to /p/${dir})
  endif()
  file(RELATIVE_PATH rel ${from}/shardnet ${to})
  string(REGEX REPLACE "/$" "" rel "${rel}")
  set(${out} ${rel} PARENT_SCOPE)
endfunction()
sn_rel(SN_REL_LIB ${CMAKE_INSTALL_LIBDIR})
sn_rel(SN_REL_BIN ${CMAKE_INSTALL_BINDIR})
sn_rel(SN_REL_DATA ${SN_DATA_DIR}/data)
file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/cmake/install/_paths.py CONTENT
"${SN_PY_HEADER}\nVERSION = \"${PROJECT_VERSION}\"\nRELATIVE = True\nLIBRARY = \"${SN_REL_LIB}/$<TARGET_SONAME_FILE_NAME:shardnet>\"\nPROGRAM = \"${SN_REL_BIN}/$<TARGET_FILE_NAME:shardnet_cli>\"\nDATA = \"${SN_REL_DATA}\"\n")
install(FILES ${CMAKE_BINARY_DIR}/cmake/install/_paths.py DESTINATION ${SN_PYTHON_DIR}/shardnet)
