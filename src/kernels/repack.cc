#include "kernels/repack.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels {
namespace {

constexpr size_t kGroupBlockBytes = kRows16 * sizeof(BlockQ4_0);  // 288: one block of 16 rows
constexpr size_t kQsBytes = 256;                                  // its quants
constexpr size_t kScaleBytes = 32;                                // its 16 f16 scales

// Byte offsets, inside a group of nb blocks, of quant byte j (0..15) of row r in block b and of
// that row's scale.
size_t qs_offset(int64_t b, int r, int j) {
  return static_cast<size_t>(b) * kQsBytes + static_cast<size_t>(j / 4) * 64 +
         static_cast<size_t>(r) * 4 + static_cast<size_t>(j % 4);
}
size_t d_offset(int64_t nb, int64_t b, int r) {
  return static_cast<size_t>(nb) * kQsBytes + static_cast<size_t>(b) * kScaleBytes +
         static_cast<size_t>(r) * 2;
}

// One group: GGUF rows (row_bytes apart) -> rows16, or back.
void pack_group(const uint8_t* rows, size_t row_bytes, int64_t nb, uint8_t* group) {
  for (int r = 0; r < kRows16; ++r) {
    const auto* blk = reinterpret_cast<const BlockQ4_0*>(rows + static_cast<size_t>(r) * row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      for (int j = 0; j < 16; j += 4) std::memcpy(group + qs_offset(b, r, j), blk[b].qs + j, 4);
      std::memcpy(group + d_offset(nb, b, r), &blk[b].d, 2);
    }
  }
}
// Row r of a group back in the GGUF layout.
void unpack_row(const uint8_t* group, int64_t nb, int r, BlockQ4_0* blk) {
  for (int64_t b = 0; b < nb; ++b) {
    for (int j = 0; j < 16; j += 4) std::memcpy(blk[b].qs + j, group + qs_offset(b, r, j), 4);
    std::memcpy(&blk[b].d, group + d_offset(nb, b, r), 2);
  }
}
void unpack_group(const uint8_t* group, int64_t nb, uint8_t* rows, size_t row_bytes) {
  for (int r = 0; r < kRows16; ++r) {
    unpack_row(group, nb, r,
               reinterpret_cast<BlockQ4_0*>(rows + static_cast<size_t>(r) * row_bytes));
  }
}

// The reference rows16 kernel: the fixed per-(row, token) sequence of vec_dot_impl.h.
void rows16_q4_0_scalar(const uint8_t* group, int64_t nb, const detail::Rows16Token* tok, int n_tok,
                        float* out, size_t out_stride) {
  for (int t = 0; t < n_tok; ++t) {
    for (int r = 0; r < kRows16; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const int8_t* a = tok[t].q[b].qs;
        int32_t sum = tok[t].corr[b];
        for (int j = 0; j < 16; ++j) {
          const uint8_t v = group[qs_offset(b, r, j)];
          sum += (v & 0x0F) * a[j] + (v >> 4) * a[16 + j];
        }
        uint16_t h;
        std::memcpy(&h, group + d_offset(nb, b, r), 2);
        const float d = fp16_to_f32(h) * tok[t].da[b];
        acc = std::fma(d, static_cast<float>(sum), acc);
      }
      out[static_cast<size_t>(t) * out_stride + static_cast<size_t>(r)] = acc;
    }
  }
}

}  // namespace

bool rows16_supported(DType type, int64_t rows, int64_t cols) {
  return type == DType::kQ4_0 && rows > 0 && rows % kRows16 == 0 && cols > 0 && cols % 32 == 0;
}

bool rows16_preferred(DType type, int64_t rows, int64_t cols) {
  return rows16_supported(type, rows, cols) && best_simd_level() == SimdLevel::kAvx512 &&
         detail::avx512_rows16(type) != nullptr;
}

void repack_rows16(DType type, const void* src, void* dst, int64_t rows, int64_t cols) {
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(cols));
  const int64_t nb = cols / 32;
  for (int64_t g = 0; g < rows / kRows16; ++g) {
    const size_t off = static_cast<size_t>(g) * kRows16 * row_bytes;
    pack_group(static_cast<const uint8_t*>(src) + off, row_bytes, nb,
               static_cast<uint8_t*>(dst) + off);
  }
}

void unpack_rows16(DType type, const void* src, void* dst, int64_t rows, int64_t cols) {
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(cols));
  const int64_t nb = cols / 32;
  for (int64_t g = 0; g < rows / kRows16; ++g) {
    const size_t off = static_cast<size_t>(g) * kRows16 * row_bytes;
    unpack_group(static_cast<const uint8_t*>(src) + off, nb, static_cast<uint8_t*>(dst) + off,
                 row_bytes);
  }
}

void repack_rows16_in_place(DType type, void* data, int64_t rows, int64_t cols) {
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(cols));
  const size_t group_bytes = kRows16 * row_bytes;
  std::vector<uint8_t> tmp(group_bytes);
  for (int64_t g = 0; g < rows / kRows16; ++g) {
    uint8_t* p = static_cast<uint8_t*>(data) + static_cast<size_t>(g) * group_bytes;
    std::memcpy(tmp.data(), p, group_bytes);
    pack_group(tmp.data(), row_bytes, cols / 32, p);
  }
}

void rows16_read_row(DType type, const void* data, int64_t cols, int64_t row, void* dst) {
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(cols));
  const int64_t nb = cols / 32;
  const auto* group =
      static_cast<const uint8_t*>(data) + static_cast<size_t>(row / kRows16) * kRows16 * row_bytes;
  unpack_row(group, nb, static_cast<int>(row % kRows16), static_cast<BlockQ4_0*>(dst));
}

namespace detail {

Rows16Fn scalar_rows16(DType weight_type) {
  return weight_type == DType::kQ4_0 ? rows16_q4_0_scalar : nullptr;
}

void rows16_prepare(const BlockQ8_0* q, int64_t nb, int32_t* corr, float* da) {
  for (int64_t b = 0; b < nb; ++b) {
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += q[b].qs[j];
    corr[b] = -8 * s;
    da[b] = fp16_to_f32(q[b].d);
  }
}

}  // namespace detail
}  // namespace enclave::kernels
