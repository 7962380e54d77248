// KvCache storage and conversions.
#include "model/kv_cache.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/quantize.h"
#include "model/ops.h"

namespace enclave::model::detail {

void KvCache::FreeDeleter::operator()(uint8_t* p) const {
  std::free(p);
}

Status KvCache::init(int32_t n_layer, int32_t n_slots, int32_t n_ctx, int32_t n_head_kv,
                     int32_t head_dim, KvType type) {
  switch (type) {
    case KvType::kF16:
      dtype_ = DType::kF16;
      break;
    case KvType::kF32:
      dtype_ = DType::kF32;
      break;
    case KvType::kQ8_0:
      dtype_ = DType::kQ8_0;
      if (head_dim % 32 != 0) {
        return Error(ErrorCode::kUnsupported,
                     "a Q8_0 KV cache needs head_dim divisible by 32 (got " +
                         std::to_string(head_dim) + "); use F16");
      }
      break;
  }
  n_layer_ = n_layer;
  n_slots_ = n_slots;
  n_ctx_ = n_ctx;
  n_head_kv_ = n_head_kv;
  head_dim_ = head_dim;
  row_bytes_ = dtype_row_bytes(dtype_, static_cast<uint64_t>(head_dim));
  bytes_per_buffer_ = static_cast<uint64_t>(n_layer) * n_slots * n_head_kv * n_ctx * row_bytes_;
  // Uninitialized on purpose: pages are only touched (and counted in RSS) as positions fill.
  const size_t alloc = (bytes_per_buffer_ + 63) / 64 * 64;
  k_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, alloc)));
  v_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, alloc)));
  if (!k_ || !v_) {
    return Error(ErrorCode::kResourceExhausted, "cannot allocate the KV cache (" +
                                                    std::to_string(2 * bytes_per_buffer_ >> 20) +
                                                    " MiB); lower n_ctx or the number of slots");
  }
  return Status::ok();
}

void KvCache::store_row(const float* src, uint8_t* dst) const {
  switch (dtype_) {
    case DType::kF32:
      std::memcpy(dst, src, row_bytes_);
      break;
    case DType::kF16:
      f32_to_f16_row(src, reinterpret_cast<uint16_t*>(dst), head_dim_);
      break;
    default:
      kernels::quantize_row(dtype_, src, dst, head_dim_);
      break;
  }
}

void KvCache::store(int32_t layer, int32_t slot, int32_t pos, const float* k, const float* v) {
  for (int32_t h = 0; h < n_head_kv_; ++h) {
    store_row(k + static_cast<size_t>(h) * head_dim_, k_row(layer, slot, h, pos));
    store_row(v + static_cast<size_t>(h) * head_dim_, v_row(layer, slot, h, pos));
  }
}

void KvCache::load_rows(const uint8_t* row, int32_t n, float* dst) const {
  const int64_t count = static_cast<int64_t>(n) * head_dim_;
  switch (dtype_) {
    case DType::kF32:
      std::memcpy(dst, row, static_cast<size_t>(count) * sizeof(float));
      break;
    case DType::kF16:
      f16_to_f32_row(reinterpret_cast<const uint16_t*>(row), dst, count);
      break;
    default:
      kernels::dequantize_row(dtype_, row, dst, count);
      break;
  }
}

void KvCache::copy_positions(int32_t src, int32_t dst, int32_t n) {
  if (src == dst || n <= 0) return;
  const size_t len = static_cast<size_t>(n) * row_bytes_;
  for (int32_t l = 0; l < n_layer_; ++l) {
    for (int32_t h = 0; h < n_head_kv_; ++h) {
      std::memcpy(k_row(l, dst, h, 0), k_row(l, src, h, 0), len);
      std::memcpy(v_row(l, dst, h, 0), v_row(l, src, h, 0), len);
    }
  }
}

}  // namespace enclave::model::detail
