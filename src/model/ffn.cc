// SwiGLU FFN.
#include "model/ffn.h"

#include "model/ops.h"

namespace enclave::model::detail {

void swiglu_ffn(const FfnWeights& w, const float* h, std::span<const TokenRun> runs,
                float* gate_buf, float* up_buf, float* out, void* matmul_scratch,
                kernels::ThreadPool& pool) {
  const int64_t n = runs.empty() ? 0 : runs.back().begin + runs.back().count;
  const kernels::WeightMatrix* gate_up[2] = {w.gate, w.up};
  float* outs[2] = {gate_buf, up_buf};
  matmul_runs_many(gate_up, h, outs, runs, pool, matmul_scratch);
  silu_mul(gate_buf, up_buf, n * w.gate->rows);
  matmul_runs(*w.down, gate_buf, out, runs, pool, matmul_scratch);
}

}  // namespace enclave::model::detail
