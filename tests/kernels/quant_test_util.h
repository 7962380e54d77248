// Shared helpers of the quantization tests: fixture paths, whole-tensor conversion, RMSE and the
// reference table /work/shared/fixtures/quant/rmse.json.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "gguf/gguf_file.h"
#include "kernels/quantize.h"

namespace enclave::kernels::testing {

inline std::string quant_fixture(const std::string& file) {
  return std::string(ENCLAVE_FIXTURES_DIR) + "/quant/" + file;
}

// The fixture types, named as in the file names.
inline const std::vector<std::string>& fixture_types() {
  static const std::vector<std::string> kTypes = {"F16",  "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
                                                  "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
  return kTypes;
}

// Test names for type-parameterized suites ("Q4_K" rather than "7").
inline std::string type_param_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// Whole tensor as F32 (row by row through dequantize_row).
inline std::vector<float> tensor_to_f32(const gguf::TensorInfo& t) {
  const int64_t ne0 = static_cast<int64_t>(t.ne[0]);
  std::vector<float> out(t.n_elements());
  for (uint64_t r = 0; r < t.n_rows(); ++r) {
    dequantize_row(t.type, t.data + r * t.row_bytes(), out.data() + r * ne0, ne0);
  }
  return out;
}

// Whole F32 tensor quantized to `type` row by row.
inline std::vector<uint8_t> quantize_tensor(DType type, const float* x, int64_t ne0,
                                            int64_t n_rows) {
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(ne0));
  std::vector<uint8_t> out(row_bytes * static_cast<size_t>(n_rows));
  for (int64_t r = 0; r < n_rows; ++r) {
    const size_t written = quantize_row(type, x + r * ne0, out.data() + r * row_bytes, ne0);
    EXPECT_EQ(written, row_bytes);
  }
  return out;
}

inline std::vector<float> dequantize_tensor(DType type, const std::vector<uint8_t>& q, int64_t ne0,
                                            int64_t n_rows) {
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(ne0));
  std::vector<float> out(static_cast<size_t>(ne0 * n_rows));
  for (int64_t r = 0; r < n_rows; ++r) {
    dequantize_row(type, q.data() + r * row_bytes, out.data() + r * ne0, ne0);
  }
  return out;
}

// sqrt(mean((a - b)^2)) in float64, as rmse.json defines it.
inline double rmse(const float* a, const float* b, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    sum += d * d;
  }
  return n == 0 ? 0.0 : std::sqrt(sum / static_cast<double>(n));
}

inline const boost::json::value& rmse_table() {
  static const boost::json::value kTable = [] {
    std::ifstream f(quant_fixture("rmse.json"));
    std::stringstream ss;
    ss << f.rdbuf();
    return boost::json::parse(ss.str());
  }();
  return kTable;
}

inline double reference_rmse(const std::string& type, const std::string& tensor) {
  return rmse_table().at("types").at(type).at("tensors").at(tensor).at("rmse").to_number<double>();
}

inline double reference_edge_row_rmse(const std::string& type, size_t row) {
  return rmse_table()
      .at("types")
      .at(type)
      .at("edge_256_rows_rmse")
      .as_array()
      .at(row)
      .to_number<double>();
}

}  // namespace enclave::kernels::testing
