// A batch's tokens as runs of prompt / generated tokens, and matrix products over those runs: each
// run goes through the kernels its kind asks for (kernels::MatmulMode), so a generated token's
// bits never depend on what else is in its batch and a prompt's never on how it was chunked.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "model/model.h"

namespace enclave::model::detail {

struct TokenRun {
  int64_t begin = 0;  // first token (row) of the run, relative to the product's input
  int64_t count = 0;
  kernels::MatmulMode mode = kernels::MatmulMode::kDecode;
};

// The kernel mode of batch token i: kPrompt for prompt tokens, kDecode otherwise.
inline kernels::MatmulMode token_mode(const Batch& b, int64_t i) {
  return !b.prompt.empty() && b.prompt[static_cast<size_t>(i)] != 0 ? kernels::MatmulMode::kPrompt
                                                                    : kernels::MatmulMode::kDecode;
}

// Appends row `row` (the next one) of kind `mode`, extending the last run when it has that kind.
void append_token(std::vector<TokenRun>& runs, int64_t row, kernels::MatmulMode mode);

// Runs of batch tokens [begin, begin + n), rows numbered from 0.
std::vector<TokenRun> token_runs(const Batch& b, int64_t begin, int64_t n);

// y[t] = W x[t] for every token of every run (x: [tokens][w.cols], y: [tokens][w.rows]).
void matmul_runs(const kernels::WeightMatrix& w, const float* x, float* y,
                 std::span<const TokenRun> runs, kernels::ThreadPool& pool, void* scratch);

// ys[i][t] = ws[i] x[t] for matrices that share the input (kernels::matmul_many per run).
void matmul_runs_many(std::span<const kernels::WeightMatrix* const> ws, const float* x,
                      std::span<float* const> ys, std::span<const TokenRun> runs,
                      kernels::ThreadPool& pool, void* scratch);

}  // namespace enclave::model::detail
