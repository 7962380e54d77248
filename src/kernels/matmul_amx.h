// Internal to the kernels library: the AMX-INT8 matrix-matrix path (matmul_amx.cc) for prompt
// batches. Not a public header.
#pragma once

#include <cstdint>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "kernels/vec_dot.h"

namespace enclave::kernels::detail {

// Smallest batch that takes the AMX path. Below it the AVX-512 row-block kernels are as fast
// (the weight unpacking is shared by fewer token tiles), and the decode-sized batches keep giving
// the same bits as the matrix-vector path. Chosen by measurement (README, AMX section).
constexpr int64_t kAmxMinTokens = 16;

// Weight types with an AMX kernel.
inline bool amx_has_kernel(DType weight_type) {
  return weight_type == DType::kQ4_0 || weight_type == DType::kQ8_0 ||
         weight_type == DType::kQ4_K || weight_type == DType::kQ6_K;
}

// True when amx_matmul may run this type: the CPU (and ENCLAVE_CPU) allows AMX and AVX-512 and
// the type has a kernel (MatmulMode::kPrompt uses it for any batch size). Plain code: safe on any
// CPU.
inline bool amx_available(DType weight_type) {
  const CpuFeatures& f = cpu_features();
  return f.amx_tile && f.amx_int8 && amx_has_kernel(weight_type) &&
         best_simd_level() == SimdLevel::kAvx512;
}
// True when matmul(kAuto) hands this product to amx_matmul: available and the batch is big enough.
inline bool amx_applies(DType weight_type, int64_t n_tokens) {
  return n_tokens >= kAmxMinTokens && amx_available(weight_type);
}

// Bytes of prepared (tile-layout) activations amx_matmul needs for n_tokens rows.
size_t amx_scratch_bytes(const WeightMatrix& w, int64_t n_tokens);

// Test hooks: the A tiles and per-row scale data amx_matmul unpacks for rows [row0, row0 + 16)
// of w (either layout; row0 a multiple of 16). `out`: 64-byte aligned, amx_unpacked_tile_bytes(w)
// bytes (the tail of the last 64 is not written). Only where amx_available(w.type).
size_t amx_unpacked_tile_bytes(const WeightMatrix& w);
void amx_unpack_tile(const WeightMatrix& w, int64_t row0, uint8_t* out);

// y = W x on AMX tiles (only when amx_available). `scratch` is used when it holds
// matmul_scratch_bytes(w, n_tokens) >= amx_scratch_bytes(w, n_tokens) bytes, else allocated.
// Every (row, token) result follows one operation sequence (per-block integer tile products,
// then float scaling in block order), whatever the thread count, row split or batch size; the
// bits differ from the AVX-512 path's (another float summation order).
void amx_matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
                void* scratch);

}  // namespace enclave::kernels::detail
