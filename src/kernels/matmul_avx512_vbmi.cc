// The AVX-512 row-block x token-block kernels built with AVX512-VBMI (byte permutes) and GFNI
// (nibble unpacking): see matmul_avx512.inc. Chosen at run time when the CPU has both
// (detail::avx512_gemm_best).
#if !defined(__AVX512VBMI__) || !defined(__GFNI__)
#error "compile with -mavx512vbmi -mgfni (src/kernels/CMakeLists.txt)"
#endif
#include "kernels/matmul_avx512.inc"
