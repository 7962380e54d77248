// AVX-512 (BW + VNNI) row-block x token-block kernels, word permutes: see matmul_avx512.inc.
#include "kernels/matmul_avx512.inc"
