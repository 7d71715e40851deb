# The CUDA backend: Hopper kernels (sm_90a) using CUTLASS/CuTe headers for the matrix
# instructions, barriers and bulk tensor copies. Included from the top-level CMakeLists.txt
# after enable_language(CUDA).
set(HISA_CUTLASS_INCLUDE "${PROJECT_SOURCE_DIR}/third_party/cutlass/include"
    CACHE PATH "CUTLASS/CuTe include directory (scripts/deps.sh puts it here)")
if(NOT EXISTS "${HISA_CUTLASS_INCLUDE}/cute/tensor.hpp")
  message(FATAL_ERROR "CUTLASS/CuTe headers not found in ${HISA_CUTLASS_INCLUDE}: run "
                      "scripts/deps.sh, or set HISA_CUTLASS_INCLUDE, or configure with HISA_CUDA=OFF")
endif()
option(HISA_PTXAS_VERBOSE "Print ptxas register/shared-memory/spill reports" OFF)

file(GLOB HISA_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/cuda/*.cu
     ${PROJECT_SOURCE_DIR}/src/cuda/*.cc)
list(REMOVE_ITEM HISA_CUDA_SOURCES ${PROJECT_SOURCE_DIR}/src/cuda/unavailable.cc)
target_sources(hisa PRIVATE ${HISA_CUDA_SOURCES})
target_include_directories(hisa SYSTEM PRIVATE ${HISA_CUTLASS_INCLUDE})
target_include_directories(hisa PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
target_compile_definitions(hisa PRIVATE HISA_WITH_CUDA=1)
target_compile_options(hisa PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo -Xcudafe=--diag_suppress=177>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${HISA_PTXAS_VERBOSE}>>:-Xptxas=-v>)
set_target_properties(hisa PROPERTIES CUDA_ARCHITECTURES 90a CUDA_STANDARD 17
                      CUDA_STANDARD_REQUIRED ON)
# The static runtime: a machine without a GPU driver still loads the library (the CUDA backend
# then reports itself unavailable), and the driver API is reached through the runtime's
# entry-point query, so nothing links libcuda.
target_link_libraries(hisa PRIVATE CUDA::cudart_static)
option(HISA_KERNEL_WATCHDOG "Kernels trap with a message instead of hanging on a stalled barrier" ON)
if(HISA_KERNEL_WATCHDOG)
  target_compile_definitions(hisa PRIVATE HISA_KERNEL_WATCHDOG=1)
endif()
