// DType: ggml tensor element types as stored in GGUF files (ids are the on-disk values).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace enclave {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

struct DTypeTraits {
  DType type;
  std::string_view name;  // ggml's name, e.g. "q4_K"
  uint32_t block_elems;   // elements per block (1 for plain types)
  uint32_t block_bytes;   // bytes per block
  bool quantized;
};

// Traits for a known type; nullopt for ids Enclave does not understand.
std::optional<DTypeTraits> dtype_traits(uint32_t raw_type_id);
const DTypeTraits& dtype_traits(DType type);  // type must be known
std::string_view dtype_name(DType type);
// Parses "Q4_K", "q4_k", "F16", "bf16"... (case-insensitive).
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes for one row of `n_elems` elements; n_elems must be a multiple of the block size.
inline size_t dtype_row_bytes(DType type, uint64_t n_elems) {
  const DTypeTraits& t = dtype_traits(type);
  return static_cast<size_t>(n_elems / t.block_elems) * t.block_bytes;
}

}  // namespace enclave
