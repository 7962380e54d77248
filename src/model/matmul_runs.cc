#include "model/matmul_runs.h"

namespace enclave::model::detail {

void append_token(std::vector<TokenRun>& runs, int64_t row, kernels::MatmulMode mode) {
  if (!runs.empty() && runs.back().mode == mode && runs.back().begin + runs.back().count == row) {
    ++runs.back().count;
    return;
  }
  runs.push_back(TokenRun{row, 1, mode});
}

std::vector<TokenRun> token_runs(const Batch& b, int64_t begin, int64_t n) {
  std::vector<TokenRun> runs;
  for (int64_t i = 0; i < n; ++i) append_token(runs, i, token_mode(b, begin + i));
  return runs;
}

void matmul_runs(const kernels::WeightMatrix& w, const float* x, float* y,
                 std::span<const TokenRun> runs, kernels::ThreadPool& pool, void* scratch) {
  for (const TokenRun& r : runs) {
    kernels::matmul(w, x + r.begin * w.cols, r.count, y + r.begin * w.rows, pool, scratch, r.mode);
  }
}

}  // namespace enclave::model::detail
