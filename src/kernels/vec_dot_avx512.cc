// AVX-512 (F/BW/VL + VNNI) kernels. The shared 256-bit kernels are compiled here with vpdpbusd;
// F32/F16/BF16 get full 512-bit kernels; Q4_0/Q8_0 use matmul_avx512.cc's kernels.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels::detail {
namespace {
#define ENCLAVE_VNNI256 1
#include "kernels/vec_dot_x86.inc"
#undef ENCLAVE_VNNI256

inline float hsum512(__m512 v) {
  return _mm512_reduce_add_ps(v);
}

template <int kKind>  // 0 f32, 1 f16, 2 bf16
inline __m512 load16(const void* base, int64_t i) {
  if constexpr (kKind == 0) return _mm512_loadu_ps(static_cast<const float*>(base) + i);
  if constexpr (kKind == 1) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)));
  }
  if constexpr (kKind == 2) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
}

template <int kKind>
float dot_float_512(const void* wp, const void* ap, int64_t n) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 4; ++k) {
      acc[k] =
          _mm512_fmadd_ps(load16<kKind>(wp, i + 16 * k), load16<kKind>(ap, i + 16 * k), acc[k]);
    }
  }
  for (; i + 16 <= n; i += 16)
    acc[0] = _mm512_fmadd_ps(load16<kKind>(wp, i), load16<kKind>(ap, i), acc[0]);
  float sum = hsum512(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  if (i < n) {
    // Tail through the 256-bit kernel (handles < 16 elements including scalar leftovers).
    const size_t elem = kKind == 0 ? 4 : 2;
    sum += dot_float_x86<kKind>(static_cast<const char*>(wp) + i * elem,
                                static_cast<const char*>(ap) + i * elem, n - i);
  }
  return sum;
}

}  // namespace

VecDotFn avx512_vec_dot(DType weight_type) {
  switch (weight_type) {
    case DType::kF32:
      return dot_float_512<0>;
    case DType::kF16:
      return dot_float_512<1>;
    case DType::kBF16:
      return dot_float_512<2>;
    case DType::kQ4_0:
    case DType::kQ8_0:
    case DType::kQ4_K:
    case DType::kQ6_K:
      return avx512_gemm_dot_best(weight_type);  // shares its arithmetic with the matmul kernels
    default:
      return x86_vec_dot(weight_type);
  }
}

QuantizeActFn avx512_quantize(DType act_type) {
  return x86_quantize(act_type);
}

}  // namespace enclave::kernels::detail
