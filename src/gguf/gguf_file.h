// GgufFile: read-only view of a GGUF v2/v3 file (metadata + tensor directory), memory-mapped or
// copied into private memory.
// Every structural check happens in open(); afterwards tensor data pointers are valid and in
// bounds.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/result.h"

namespace enclave::gguf {

// On-disk metadata value type ids.
enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view value_type_name(ValueType t);

struct MetaArray;
// A metadata value. Integers keep their declared type in `type`; the payload is widened.
struct MetaValue {
  ValueType type = ValueType::kUint8;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<MetaArray>> v;
};
struct MetaArray {
  ValueType elem_type = ValueType::kUint8;
  std::vector<MetaValue> items;  // nested arrays allowed (the spec permits them)
};

struct TensorInfo {
  std::string name;
  DType type = DType::kF32;
  uint32_t n_dims = 0;
  std::array<uint64_t, 4> ne = {1, 1, 1, 1};  // ne[0] is the contiguous dimension
  uint64_t offset = 0;                        // relative to the data section
  uint64_t size_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping; valid while the GgufFile lives

  uint64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  uint64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
  size_t row_bytes() const { return dtype_row_bytes(type, ne[0]); }
};

// Where the file's bytes live once opened.
enum class FileMemory {
  // A read-only mapping of the file: instant, shares the page cache with other processes, but
  // 4 KiB pages (a TLB miss, and a stop for the hardware prefetcher, every 4 KiB of weights).
  kMap,
  // Read into private anonymous memory, 2 MiB aligned and made read-only (a file larger than
  // the memory available minus a margin of 1 GiB or 10 % is mapped instead: see memory()), which
  // collapse_huge_pages_in_background() then turns into transparent huge pages where the kernel
  // allows. Costs one read of the file at open; decode streams weights measurably faster
  // (src/gguf/README.md).
  kCopy,
};

class GgufFile {
 public:
  // Maps (or copies, see FileMemory) and validates `path`. Errors name the file, the byte offset
  // and the problem.
  static Result<GgufFile> open(const std::string& path, FileMemory memory = FileMemory::kMap);
  // Parses an in-memory image (used by the fuzzer and tests); `bytes` must outlive the result.
  static Result<GgufFile> from_memory(std::span<const uint8_t> bytes,
                                      std::string name = "<memory>");

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }
  // Where the bytes live: kCopy only when a copy was asked for and fit in memory.
  FileMemory memory() const { return memory_; }
  // Whether a kCopy of `bytes` fits: at most MemAvailable minus 1 GiB or 10 % (Linux).
  static bool copy_fits_in_memory(uint64_t bytes);

  // Metadata, in file order.
  const std::vector<std::pair<std::string, MetaValue>>& metadata() const { return kv_; }
  const MetaValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters. nullopt when absent; an error when present with an incompatible type.
  // Integer getters accept any integer width (and bool) as long as the value fits.
  Result<std::optional<uint64_t>> get_uint(std::string_view key) const;
  Result<std::optional<int64_t>> get_int(std::string_view key) const;
  Result<std::optional<double>> get_float(std::string_view key) const;  // any float or int type
  Result<std::optional<bool>> get_bool(std::string_view key) const;
  Result<std::optional<std::string>> get_string(std::string_view key) const;
  Result<std::optional<std::vector<std::string>>> get_string_array(std::string_view key) const;
  Result<std::optional<std::vector<int64_t>>> get_int_array(std::string_view key) const;
  Result<std::optional<std::vector<float>>> get_float_array(std::string_view key) const;

  // Convenience: architecture string (general.architecture), or "" if absent.
  std::string architecture() const;

  // For a kCopy file: starts (once) a thread that collapses the image into huge pages
  // (MADV_COLLAPSE, 32 MiB at a time). Call it when start-up is done: the collapse takes the
  // address-space lock and competes for memory bandwidth, which slowed start-up by 0.2-0.5 s.
  // No-op for a mapped file.
  void collapse_huge_pages_in_background() const;
  // Blocks until that collapse has finished (at once when none runs). Benchmarks call it so that
  // they measure the settled state.
  void wait_memory_settled() const;

  // For a kCopy file: makes the image writable, calls edit(tensor, its bytes) for each listed
  // tensor (split over two threads; `edit` must be thread-safe), then makes the image read-only
  // again. The model rearranges weights for its kernels this way, in place and at the same
  // size; afterwards those tensors' bytes are no longer the file's. Returns false, calling
  // nothing, for a mapped file (its pages are the page cache's).
  bool rewrite_tensors(std::span<const TensorInfo* const> tensors,
                       const std::function<void(const TensorInfo&, uint8_t*)>& edit);

  // Tensor directory, in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  struct Mapping;
  static Status map_file(int fd, const std::string& path, uint64_t size, Mapping& out);
  static Status copy_file(int fd, const std::string& path, uint64_t size, Mapping& out);
  FileMemory memory_ = FileMemory::kMap;
  std::unique_ptr<Mapping> mapping_;
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t size_ = 0;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, MetaValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  friend class GgufParser;
};

}  // namespace enclave::gguf
