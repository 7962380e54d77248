// SwiGLU FFN.
#include "model/ffn.h"

#include "model/ops.h"

namespace enclave::model::detail {

void swiglu_ffn(const FfnWeights& w, const float* h, int64_t n, float* gate_buf, float* up_buf,
                float* out, void* matmul_scratch, kernels::ThreadPool& pool) {
  kernels::matmul(*w.gate, h, n, gate_buf, pool, matmul_scratch);
  kernels::matmul(*w.up, h, n, up_buf, pool, matmul_scratch);
  silu_mul(gate_buf, up_buf, n * w.gate->rows);
  kernels::matmul(*w.down, gate_buf, n, out, pool, matmul_scratch);
}

}  // namespace enclave::model::detail
