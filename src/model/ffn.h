// Gated feed-forward block (SwiGLU): down(silu(gate(h)) * up(h)), shared by every dense arch.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "model/matmul_runs.h"

namespace enclave::model::detail {

struct FfnWeights {
  const kernels::WeightMatrix* gate;
  const kernels::WeightMatrix* up;
  const kernels::WeightMatrix* down;
};

// h: [n][n_embd] input, n = the tokens of `runs`; out: [n][n_embd]; gate_buf, up_buf: [n][n_ff]
// scratch; matmul_scratch holds kernels::matmul_scratch_bytes for the largest of the three
// matrices.
void swiglu_ffn(const FfnWeights& w, const float* h, std::span<const TokenRun> runs,
                float* gate_buf, float* up_buf, float* out, void* matmul_scratch,
                kernels::ThreadPool& pool);

}  // namespace enclave::model::detail
