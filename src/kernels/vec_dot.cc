// Run-time dispatch of the dot-product and activation-quantization kernels.
#include "kernels/vec_dot.h"

#include "core/cpu_features.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels {

SimdLevel best_simd_level() {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  // The AVX-512 path uses VNNI (vpdpbusd) throughout, so it needs it.
  if (avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni) return SimdLevel::kAvx512;
  if (avx2) return SimdLevel::kAvx2;
  return SimdLevel::kScalar;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return "avx512";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kScalar:
      return "scalar";
  }
  return "scalar";
}

DType activation_type(DType w) {
  switch (w) {
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0:
      return DType::kQ8_0;
    case DType::kQ4_1:
    case DType::kQ5_1:
      return DType::kQ8_1;
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return DType::kQ8_K;
    case DType::kF16:
      return DType::kF16;
    case DType::kBF16:
      return DType::kBF16;
    default:
      return DType::kF32;
  }
}

namespace {
// A level above what the CPU supports would fault; clamp it.
SimdLevel clamp_level(SimdLevel level) {
  const SimdLevel best = best_simd_level();
  return static_cast<int>(level) > static_cast<int>(best) ? best : level;
}

detail::QuantizeActFn quantize_fn(DType act, SimdLevel level) {
  switch (clamp_level(level)) {
    case SimdLevel::kAvx512:
      if (auto f = detail::avx512_quantize(act)) return f;
      [[fallthrough]];
    case SimdLevel::kAvx2:
      if (auto f = detail::avx2_quantize(act)) return f;
      [[fallthrough]];
    case SimdLevel::kScalar:
      return detail::scalar_quantize(act);
  }
  return detail::scalar_quantize(act);
}
}  // namespace

void quantize_activation(DType act_type, const float* x, void* dst, int64_t n) {
  quantize_activation(act_type, x, dst, n, best_simd_level());
}

void quantize_activation(DType act_type, const float* x, void* dst, int64_t n, SimdLevel level) {
  if (auto f = quantize_fn(act_type, level)) f(x, dst, n);
}

VecDotFn vec_dot_fn(DType weight_type, SimdLevel level) {
  switch (clamp_level(level)) {
    case SimdLevel::kAvx512:
      if (auto f = detail::avx512_vec_dot(weight_type)) return f;
      [[fallthrough]];
    case SimdLevel::kAvx2:
      if (auto f = detail::avx2_vec_dot(weight_type)) return f;
      [[fallthrough]];
    case SimdLevel::kScalar:
      return detail::scalar_vec_dot(weight_type);
  }
  return detail::scalar_vec_dot(weight_type);
}

float vec_dot(DType weight_type, const void* w, const void* a, int64_t n) {
  return vec_dot(weight_type, w, a, n, best_simd_level());
}

float vec_dot(DType weight_type, const void* w, const void* a, int64_t n, SimdLevel level) {
  VecDotFn f = vec_dot_fn(weight_type, level);
  return f != nullptr ? f(w, a, n) : 0.0f;
}

}  // namespace enclave::kernels
