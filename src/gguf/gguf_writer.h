// GgufWriter: builds a GGUF v3 file (metadata, tensor directory, aligned data) and writes it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "gguf/gguf_file.h"

namespace enclave::gguf {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32);

  // Metadata, written in insertion order. Setting an existing key replaces its value in place.
  void set(std::string key, MetaValue value);
  void set_string(std::string key, std::string value);
  void set_uint32(std::string key, uint32_t value);
  void set_uint64(std::string key, uint64_t value);
  void set_int32(std::string key, int32_t value);
  void set_float32(std::string key, float value);
  void set_bool(std::string key, bool value);
  void set_string_array(std::string key, const std::vector<std::string>& values);
  void set_int32_array(std::string key, const std::vector<int32_t>& values);
  void set_float32_array(std::string key, const std::vector<float>& values);
  // Copies every metadata pair of `src` (used by quantize to keep metadata).
  void copy_metadata(const GgufFile& src);
  void remove(std::string_view key);

  // Adds a tensor; `bytes` is copied (must be exactly the size implied by type and ne).
  Status add_tensor(std::string name, DType type, std::vector<uint64_t> ne, std::span<const uint8_t> bytes);

  // Writes to `path` atomically (temp file + rename).
  Status write(const std::string& path) const;
  // Serializes to memory (tests, fuzz seeds).
  std::vector<uint8_t> to_bytes() const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<uint64_t> ne;
    std::vector<uint8_t> bytes;
  };
  uint32_t alignment_;
  std::vector<std::pair<std::string, MetaValue>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace enclave::gguf
