// The AVX-512 row-block x token-block kernels built with AVX512-VBMI (byte permutes): see
// matmul_avx512.inc. Chosen at run time when the CPU has VBMI (detail::avx512_gemm_best).
#ifndef __AVX512VBMI__
#error "compile with -mavx512vbmi (src/kernels/CMakeLists.txt)"
#endif
#include "kernels/matmul_avx512.inc"
