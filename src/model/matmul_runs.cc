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

void matmul_runs_many(std::span<const kernels::WeightMatrix* const> ws, const float* x,
                      std::span<float* const> ys, std::span<const TokenRun> runs,
                      kernels::ThreadPool& pool, void* scratch) {
  constexpr size_t kMax = 4;
  if (ws.empty() || ws.size() > kMax || ys.size() != ws.size()) {
    for (size_t i = 0; i < ws.size() && i < ys.size(); ++i)
      matmul_runs(*ws[i], x, ys[i], runs, pool, scratch);
    return;
  }
  const int64_t cols = ws[0]->cols;
  float* run_ys[kMax];
  for (const TokenRun& r : runs) {
    for (size_t i = 0; i < ws.size(); ++i) run_ys[i] = ys[i] + r.begin * ws[i]->rows;
    kernels::matmul_many(ws, x + r.begin * cols, r.count,
                         std::span<float* const>(run_ys, ws.size()), pool, scratch, r.mode);
  }
}

}  // namespace enclave::model::detail
