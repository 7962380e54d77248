// GgufWriter: builds a GGUF v3 file (metadata, tensor directory, aligned data) and writes it.
#pragma once

#include <cstdint>
#include <functional>
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
  Status add_tensor(std::string name, DType type, std::vector<uint64_t> ne,
                    std::span<const uint8_t> bytes);

  // Writes to `path` atomically (temp file + rename).
  // Fails (kInvalidArgument) if a tensor was declared with add_tensor_info: use write_streaming.
  Status write(const std::string& path) const;
  // Serializes to memory (tests, fuzz seeds). Tensors declared with add_tensor_info are zeros.
  std::vector<uint8_t> to_bytes() const;

  // --- Streaming (large models: quantize, synth) ---------------------------------------------
  // Declares a tensor whose bytes are produced later by write_streaming's `fill` callback.
  // Same validation as add_tensor (name < 64 bytes and unique, 1..4 dims, ne0 a multiple of the
  // block size). Tensors from add_tensor and add_tensor_info may be mixed; file order is the
  // order of the calls.
  Status add_tensor_info(std::string name, DType type, std::vector<uint64_t> ne);

  // Fills `out` (exactly the tensor's size in bytes, zero-initialized) with the data of tensor
  // number `tensor_index` (position among all declared tensors, 0-based).
  using TensorFill = std::function<Status(size_t tensor_index, std::span<uint8_t> out)>;

  // Writes to `path` atomically (temp file + rename). Tensors are written in declaration order;
  // `fill` is called once per tensor declared with add_tensor_info, in that order, and never for
  // tensors that carry their bytes. Peak memory is one buffer the size of the largest such tensor.
  // An error from `fill` aborts the write (no file is left behind) and is returned unchanged.
  Status write_streaming(const std::string& path, const TensorFill& fill) const;

  // Introspection (the CLI prints these; tests check them).
  size_t tensor_count() const { return tensors_.size(); }
  // Size of the complete file write()/to_bytes() would produce.
  uint64_t file_size() const;

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<uint64_t> ne;
    std::vector<uint8_t> bytes;
    uint64_t size_bytes = 0;
    bool has_bytes = false;  // false: declared with add_tensor_info, data comes from `fill`
  };
  Status validate_tensor(const std::string& name, DType type, const std::vector<uint64_t>& ne,
                         uint64_t* size_bytes) const;
  std::vector<uint8_t> header_bytes() const;  // header + KV + tensor infos + padding
  uint32_t alignment_;
  std::vector<std::pair<std::string, MetaValue>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace enclave::gguf
