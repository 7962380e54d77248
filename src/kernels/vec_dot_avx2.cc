// AVX2 + FMA + F16C kernels (compiled with those flags only; selected at run time).
#include <immintrin.h>

#include <cstring>

#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels::detail {
namespace {
#include "kernels/vec_dot_x86.inc"
}  // namespace

VecDotFn avx2_vec_dot(DType weight_type) {
  return x86_vec_dot(weight_type);
}
QuantizeActFn avx2_quantize(DType act_type) {
  return x86_quantize(act_type);
}

}  // namespace enclave::kernels::detail
