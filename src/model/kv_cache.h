// KvCache: post-RoPE keys and values of every layer for n_slots sequences, allocated up front.
// Layout per K and V: [layer][slot][kv_head][n_ctx] rows of head_dim elements in the cache type,
// so one head's history is contiguous for the attention loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/dtype.h"
#include "core/result.h"
#include "model/model.h"

namespace enclave::model::detail {

class KvCache {
 public:
  Status init(int32_t n_layer, int32_t n_slots, int32_t n_ctx, int32_t n_head_kv, int32_t head_dim,
              KvType type);

  DType dtype() const { return dtype_; }
  size_t row_bytes() const { return row_bytes_; }
  uint64_t bytes() const { return 2 * bytes_per_buffer_; }

  uint8_t* k_row(int32_t layer, int32_t slot, int32_t head, int32_t pos) {
    return k_.get() + offset(layer, slot, head, pos);
  }
  uint8_t* v_row(int32_t layer, int32_t slot, int32_t head, int32_t pos) {
    return v_.get() + offset(layer, slot, head, pos);
  }

  // Stores one token's keys/values ([n_head_kv][head_dim] floats each) at `pos` of `slot`.
  void store(int32_t layer, int32_t slot, int32_t pos, const float* k, const float* v);
  // Widens `n` consecutive rows starting at `row` into dst ([n][head_dim] floats).
  void load_rows(const uint8_t* row, int32_t n, float* dst) const;
  // Copies positions [0, n) of every layer and head from slot `src` to slot `dst`.
  void copy_positions(int32_t src, int32_t dst, int32_t n);

 private:
  size_t offset(int32_t layer, int32_t slot, int32_t head, int32_t pos) const {
    const size_t head_index =
        (static_cast<size_t>(layer) * n_slots_ + static_cast<size_t>(slot)) * n_head_kv_ +
        static_cast<size_t>(head);
    return (head_index * static_cast<size_t>(n_ctx_) + static_cast<size_t>(pos)) * row_bytes_;
  }
  void store_row(const float* src, uint8_t* dst) const;

  struct FreeDeleter {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t[], FreeDeleter> k_, v_;
  DType dtype_ = DType::kF16;
  size_t row_bytes_ = 0;
  uint64_t bytes_per_buffer_ = 0;
  int32_t n_layer_ = 0, n_slots_ = 0, n_ctx_ = 0, n_head_kv_ = 0, head_dim_ = 0;
};

}  // namespace enclave::model::detail
