# Finds shardnet's dependencies: OpenMP, OpenBLAS (CBLAS), Open MPI, parallel HDF5,
# libjpeg(-turbo), libpng, zlib and GoogleTest. Each becomes an imported target.
find_package(OpenMP REQUIRED)
find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS C CXX)
find_package(JPEG REQUIRED)
find_package(PNG REQUIRED)
find_package(ZLIB REQUIRED)

# OpenBLAS: prefer Debian's layout (cblas-openblas.h / libopenblas).
find_path(SN_CBLAS_INCLUDE NAMES cblas.h cblas-openblas.h
  PATHS /usr/include/x86_64-linux-gnu /usr/include/openblas /usr/include)
find_library(SN_OPENBLAS_LIB NAMES openblas)
if(NOT SN_CBLAS_INCLUDE OR NOT SN_OPENBLAS_LIB)
  message(FATAL_ERROR "OpenBLAS not found: install libopenblas-dev")
endif()
add_library(sn::blas INTERFACE IMPORTED)
target_include_directories(sn::blas INTERFACE ${SN_CBLAS_INCLUDE})
target_link_libraries(sn::blas INTERFACE ${SN_OPENBLAS_LIB})

# Parallel HDF5: Debian's libhdf5-openmpi-dev.
set(HDF5_PREFER_PARALLEL TRUE)
find_path(SN_HDF5_INCLUDE hdf5.h PATHS /usr/include/hdf5/openmpi NO_DEFAULT_PATH)
find_library(SN_HDF5_LIB NAMES hdf5_openmpi PATHS /usr/lib/x86_64-linux-gnu NO_DEFAULT_PATH)
find_library(SN_HDF5_HL_LIB NAMES hdf5_openmpi_hl PATHS /usr/lib/x86_64-linux-gnu NO_DEFAULT_PATH)
if(NOT SN_HDF5_INCLUDE OR NOT SN_HDF5_LIB)
  find_package(HDF5 REQUIRED COMPONENTS C)
  if(NOT HDF5_IS_PARALLEL)
    message(FATAL_ERROR "shardnet needs a parallel HDF5 build (Debian: libhdf5-openmpi-dev)")
  endif()
  set(SN_HDF5_INCLUDE ${HDF5_INCLUDE_DIRS})
  set(SN_HDF5_LIB ${HDF5_C_LIBRARIES})
endif()
add_library(sn::hdf5 INTERFACE IMPORTED)
target_include_directories(sn::hdf5 INTERFACE ${SN_HDF5_INCLUDE})
target_link_libraries(sn::hdf5 INTERFACE ${SN_HDF5_LIB})
target_compile_definitions(sn::hdf5 INTERFACE H5_USE_110_API)
