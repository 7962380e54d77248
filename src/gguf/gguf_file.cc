// GGUF v2/v3 reader: maps the file, then validates every structure before exposing it.
// Every count read from the file is bounded by the bytes left before anything is reserved, all
// size arithmetic is checked 64-bit, and every error names the file and the byte offset.
#include "gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <thread>
#include <utility>

namespace enclave::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;
constexpr size_t kMaxTensorName = 64;  // ggml's GGML_MAX_NAME, including the NUL
constexpr int kMaxArrayDepth = 16;     // nested arrays are legal but never deeper than this here
// Total metadata array elements across the file. Real vocabularies hold ~1M values (tokens,
// types, scores, merges); the cap keeps a hostile file from costing gigabytes of MetaValues.
constexpr uint64_t kMaxMetaElements = uint64_t{1} << 23;

bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

// Minimum encoded size of one value of type `t` (strings: the length; arrays: type + count).
uint64_t min_value_bytes(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
    case ValueType::kString:
      return 8;
    case ValueType::kArray:
      return 12;
  }
  return 1;
}

bool known_value_type(uint32_t raw) {
  return raw <= 12;
}

bool is_unsigned_type(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
         t == ValueType::kUint64;
}
bool is_signed_type(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 ||
         t == ValueType::kInt64;
}
bool is_float_type(ValueType t) {
  return t == ValueType::kFloat32 || t == ValueType::kFloat64;
}

}  // namespace

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
      return "uint8";
    case ValueType::kInt8:
      return "int8";
    case ValueType::kUint16:
      return "uint16";
    case ValueType::kInt16:
      return "int16";
    case ValueType::kUint32:
      return "uint32";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kFloat32:
      return "float32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kUint64:
      return "uint64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1; older kernels answer EINVAL, which only costs the speed-up
#endif

// Owns the mmap or the private copy (nothing for from_memory), and for a copy the thread that
// turns its 4 KiB pages into huge pages.
struct GgufFile::Mapping {
  void* addr = nullptr;
  size_t len = 0;
  std::atomic<bool> stop{false};
  std::atomic<bool> settled{true};
  std::thread collapser;

  bool copied = false;  // a kCopy image: eligible for the huge-page collapse

  // Huge pages are asked for after the copy, not at its page faults: a huge-page fault may stall
  // on compaction (measured here: 0.2 s to 2.4 s for 1 GB, at random), which would delay start-up.
  // MADV_COLLAPSE does the same work in the background, 32 MiB at a time, while the model serves.
  void collapse_in_background() {
    if (!copied || collapser.joinable()) return;
    settled = false;
    collapser = std::thread([this] {
      constexpr size_t kStep = size_t{32} << 20;
      auto* p = static_cast<uint8_t*>(addr);
      for (size_t off = 0; off < len && !stop.load(std::memory_order_relaxed); off += kStep) {
        if (madvise(p + off, std::min(kStep, len - off), MADV_COLLAPSE) != 0 && errno == EINVAL) {
          break;  // no THP here (kernel too old, or THP "never"): keep the 4 KiB pages
        }
      }
      settled = true;
      settled.notify_all();
    });
  }
  void wait_settled() const {
    while (!settled.load()) settled.wait(false);
  }
  ~Mapping() {
    stop = true;
    if (collapser.joinable()) collapser.join();
    if (addr != nullptr && len > 0) munmap(addr, len);
  }
};

void GgufFile::collapse_huge_pages_in_background() const {
  if (mapping_) mapping_->collapse_in_background();
}

void GgufFile::wait_memory_settled() const {
  if (mapping_) mapping_->wait_settled();
}

GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

// Parses a byte image into a GgufFile. One instance per parse.
class GgufParser {
 public:
  GgufParser(std::span<const uint8_t> bytes, std::string name)
      : p_(bytes.data()), size_(bytes.size()), name_(std::move(name)) {}

  Status parse(GgufFile& f) {
    f.path_ = name_;
    f.size_ = size_;
    ENCLAVE_TRY_STATUS(parse_header(f));
    ENCLAVE_TRY_STATUS(parse_metadata(f));
    ENCLAVE_TRY_STATUS(parse_alignment(f));
    ENCLAVE_TRY_STATUS(parse_tensor_infos(f));
    return check_tensor_data(f);
  }

 private:
  Error err(ErrorCode code, uint64_t at, const std::string& what) const {
    return make_error(code, name_ + ": byte " + std::to_string(at) + ": " + what);
  }
  Error corrupt(uint64_t at, const std::string& what) const {
    return err(ErrorCode::kCorruptData, at, what);
  }
  uint64_t remaining() const { return size_ - pos_; }

  // Ensures `n` more bytes exist; the message says what was being read.
  Status need(uint64_t n, const char* what) const {
    if (n > remaining()) {
      return corrupt(pos_, std::string("unexpected end of file while reading ") + what + " (need " +
                               std::to_string(n) + " bytes, " + std::to_string(remaining()) +
                               " left; file size " + std::to_string(size_) +
                               "); the file is truncated or corrupt");
    }
    return Status::ok();
  }

  template <class T>
  Result<T> read(const char* what) {
    ENCLAVE_TRY_STATUS(need(sizeof(T), what));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));  // GGUF is little-endian, as is every supported host
    pos_ += sizeof(T);
    return v;
  }

  Result<std::string> read_string(const char* what) {
    const uint64_t at = pos_;
    ENCLAVE_ASSIGN_OR_RETURN(uint64_t len, read<uint64_t>(what));
    if (len > remaining()) {
      return corrupt(at, std::string(what) + " length " + std::to_string(len) +
                             " extends past end of file (" + std::to_string(remaining()) +
                             " bytes left; file size " + std::to_string(size_) + ")");
    }
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }

  Status parse_header(GgufFile& f) {
    if (size_ < 4) {
      return corrupt(0, "file is " + std::to_string(size_) +
                            " bytes, too small to be GGUF (need at least a 24-byte header)");
    }
    ENCLAVE_ASSIGN_OR_RETURN(uint32_t magic, read<uint32_t>("magic"));
    if (magic != kMagic) {
      char shown[5] = {};
      for (int i = 0; i < 4; ++i) {
        const char c = static_cast<char>(p_[i]);
        shown[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
      }
      return corrupt(0, std::string("bad magic \"") + shown +
                            "\" (expected \"GGUF\"); this is not a GGUF file");
    }
    const uint64_t vat = pos_;
    ENCLAVE_ASSIGN_OR_RETURN(uint32_t version, read<uint32_t>("version"));
    if (version != 0 && (version & 0xFFFF) == 0) {
      return err(ErrorCode::kUnsupported, vat,
                 "version field 0x" + hex(version) +
                     " looks byte-swapped: this is a big-endian GGUF; Enclave reads little-endian "
                     "GGUF only (reconvert the model on a little-endian machine)");
    }
    if (version == 1) {
      return err(ErrorCode::kUnsupported, vat,
                 "GGUF version 1 is no longer supported (reconvert the model to v3)");
    }
    if (version < 2 || version > 3) {
      return err(ErrorCode::kUnsupported, vat,
                 "unsupported GGUF version " + std::to_string(version) +
                     " (Enclave reads versions 2 and 3)");
    }
    f.version_ = version;
    const uint64_t tat = pos_;
    ENCLAVE_ASSIGN_OR_RETURN(n_tensors_, read<uint64_t>("tensor count"));
    const uint64_t kat = pos_;
    ENCLAVE_ASSIGN_OR_RETURN(n_kv_, read<uint64_t>("metadata count"));
    // Minimum encodings: tensor info = name len 8 + n_dims 4 + type 4 + offset 8;
    // KV = key len 8 + type 4 + 1 value byte. Counts beyond what the file can hold are corrupt.
    if (n_kv_ > remaining() / 13) {
      return corrupt(kat, "metadata count " + std::to_string(n_kv_) + " cannot fit in the " +
                              std::to_string(remaining()) + " bytes left of the file");
    }
    if (n_tensors_ > remaining() / 24) {
      return corrupt(tat, "tensor count " + std::to_string(n_tensors_) + " cannot fit in the " +
                              std::to_string(remaining()) + " bytes left of the file");
    }
    return Status::ok();
  }

  static std::string hex(uint32_t v) {
    static const char* kDigits = "0123456789abcdef";
    std::string s(8, '0');
    for (int i = 7; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = kDigits[v & 0xF];
    return s;
  }

  Status parse_metadata(GgufFile& f) {
    f.kv_.reserve(static_cast<size_t>(n_kv_));
    for (uint64_t i = 0; i < n_kv_; ++i) {
      const uint64_t at = pos_;
      ENCLAVE_ASSIGN_OR_RETURN(std::string key, read_string("metadata key"));
      if (key.empty()) return corrupt(at, "metadata key #" + std::to_string(i) + " is empty");
      if (f.kv_index_.count(key) != 0) {
        return corrupt(at, "duplicate metadata key '" + printable(key) + "'");
      }
      const uint64_t tat = pos_;
      ENCLAVE_ASSIGN_OR_RETURN(uint32_t raw_type, read<uint32_t>("metadata value type"));
      if (!known_value_type(raw_type)) {
        return corrupt(tat, "metadata key '" + printable(key) + "' has unknown value type " +
                                std::to_string(raw_type));
      }
      if (key == "general.alignment") alignment_at_ = tat;
      MetaValue v;
      ENCLAVE_TRY_STATUS(read_value(static_cast<ValueType>(raw_type), key, 0, v));
      f.kv_index_.emplace(key, f.kv_.size());
      f.kv_.emplace_back(std::move(key), std::move(v));
    }
    return Status::ok();
  }

  // Keys and names come from the file; keep error messages printable and short.
  static std::string printable(std::string_view s) {
    std::string out;
    const size_t n = std::min<size_t>(s.size(), 80);
    for (size_t i = 0; i < n; ++i) {
      const char c = s[i];
      out.push_back((c >= 0x20 && c < 0x7f) ? c : '?');
    }
    if (s.size() > n) out += "...";
    return out;
  }

  Status read_value(ValueType t, const std::string& key, int depth, MetaValue& out) {
    out.type = t;
    switch (t) {
      case ValueType::kUint8: {
        ENCLAVE_ASSIGN_OR_RETURN(uint8_t x, read<uint8_t>("uint8 value"));
        out.v = uint64_t{x};
        return Status::ok();
      }
      case ValueType::kUint16: {
        ENCLAVE_ASSIGN_OR_RETURN(uint16_t x, read<uint16_t>("uint16 value"));
        out.v = uint64_t{x};
        return Status::ok();
      }
      case ValueType::kUint32: {
        ENCLAVE_ASSIGN_OR_RETURN(uint32_t x, read<uint32_t>("uint32 value"));
        out.v = uint64_t{x};
        return Status::ok();
      }
      case ValueType::kUint64: {
        ENCLAVE_ASSIGN_OR_RETURN(uint64_t x, read<uint64_t>("uint64 value"));
        out.v = x;
        return Status::ok();
      }
      case ValueType::kInt8: {
        ENCLAVE_ASSIGN_OR_RETURN(int8_t x, read<int8_t>("int8 value"));
        out.v = int64_t{x};
        return Status::ok();
      }
      case ValueType::kInt16: {
        ENCLAVE_ASSIGN_OR_RETURN(int16_t x, read<int16_t>("int16 value"));
        out.v = int64_t{x};
        return Status::ok();
      }
      case ValueType::kInt32: {
        ENCLAVE_ASSIGN_OR_RETURN(int32_t x, read<int32_t>("int32 value"));
        out.v = int64_t{x};
        return Status::ok();
      }
      case ValueType::kInt64: {
        ENCLAVE_ASSIGN_OR_RETURN(int64_t x, read<int64_t>("int64 value"));
        out.v = x;
        return Status::ok();
      }
      case ValueType::kFloat32: {
        ENCLAVE_ASSIGN_OR_RETURN(float x, read<float>("float32 value"));
        out.v = double{x};
        return Status::ok();
      }
      case ValueType::kFloat64: {
        ENCLAVE_ASSIGN_OR_RETURN(double x, read<double>("float64 value"));
        out.v = x;
        return Status::ok();
      }
      case ValueType::kBool: {
        ENCLAVE_ASSIGN_OR_RETURN(uint8_t x, read<uint8_t>("bool value"));
        out.v.emplace<bool>(x != 0);  // ggml treats any non-zero byte as true
        return Status::ok();
      }
      case ValueType::kString: {
        ENCLAVE_ASSIGN_OR_RETURN(std::string s, read_string("string value"));
        out.v = std::move(s);
        return Status::ok();
      }
      case ValueType::kArray:
        return read_array(key, depth, out);
    }
    return corrupt(pos_, "unknown value type");
  }

  Status read_array(const std::string& key, int depth, MetaValue& out) {
    const uint64_t at = pos_;
    if (depth >= kMaxArrayDepth) {
      return corrupt(at, "metadata key '" + printable(key) + "': arrays nested deeper than " +
                             std::to_string(kMaxArrayDepth) + " levels");
    }
    ENCLAVE_ASSIGN_OR_RETURN(uint32_t raw_elem, read<uint32_t>("array element type"));
    if (!known_value_type(raw_elem)) {
      return corrupt(at, "metadata key '" + printable(key) + "': array has unknown element type " +
                             std::to_string(raw_elem));
    }
    const auto elem = static_cast<ValueType>(raw_elem);
    const uint64_t cat = pos_;
    ENCLAVE_ASSIGN_OR_RETURN(uint64_t n, read<uint64_t>("array length"));
    // Bound the count by the bytes left before reserving anything.
    if (n > remaining() / min_value_bytes(elem)) {
      return corrupt(cat, "metadata key '" + printable(key) + "': array of " + std::to_string(n) +
                              " " + std::string(value_type_name(elem)) +
                              " values extends past end of file (" + std::to_string(remaining()) +
                              " bytes left; file size " + std::to_string(size_) + ")");
    }
    if (n > kMaxMetaElements - meta_elements_) {
      return err(ErrorCode::kUnsupported, cat,
                 "metadata key '" + printable(key) + "': metadata arrays hold more than " +
                     std::to_string(kMaxMetaElements) + " values in total (Enclave's limit)");
    }
    meta_elements_ += n;
    auto arr = std::make_shared<MetaArray>();
    arr->elem_type = elem;
    arr->items.resize(static_cast<size_t>(n));
    for (auto& item : arr->items) {
      ENCLAVE_TRY_STATUS(read_value(elem, key, depth + 1, item));
    }
    out.v = std::move(arr);
    return Status::ok();
  }

  Status parse_alignment(GgufFile& f) {
    f.alignment_ = kDefaultAlignment;
    const MetaValue* v = f.find("general.alignment");
    if (v == nullptr) return Status::ok();
    const uint64_t at = alignment_at_;
    if (v->type != ValueType::kUint32) {
      return corrupt(at, "general.alignment has type " + std::string(value_type_name(v->type)) +
                             ", must be uint32");
    }
    const uint64_t a = std::get<uint64_t>(v->v);
    if (a == 0 || (a & (a - 1)) != 0) {
      return corrupt(at, "general.alignment " + std::to_string(a) + " is not a power of two");
    }
    f.alignment_ = static_cast<uint32_t>(a);
    return Status::ok();
  }

  Status parse_tensor_infos(GgufFile& f) {
    f.tensors_.reserve(static_cast<size_t>(n_tensors_));
    offset_field_pos_.reserve(static_cast<size_t>(n_tensors_));
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      const uint64_t at = pos_;
      TensorInfo t;
      ENCLAVE_ASSIGN_OR_RETURN(t.name, read_string("tensor name"));
      const std::string shown = printable(t.name);
      if (t.name.size() >= kMaxTensorName) {
        return corrupt(at, "tensor #" + std::to_string(i) + " name '" + shown + "' is " +
                               std::to_string(t.name.size()) + " bytes; the limit is " +
                               std::to_string(kMaxTensorName - 1));
      }
      if (f.tensor_index_.count(t.name) != 0) {
        return corrupt(at, "duplicate tensor name '" + shown + "'");
      }
      const uint64_t dat = pos_;
      ENCLAVE_ASSIGN_OR_RETURN(t.n_dims, read<uint32_t>("tensor dimension count"));
      if (t.n_dims > kMaxDims) {
        return corrupt(dat, "tensor '" + shown + "' has " + std::to_string(t.n_dims) +
                                " dimensions; at most " + std::to_string(kMaxDims) +
                                " are allowed");
      }
      for (uint32_t d = 0; d < t.n_dims; ++d) {
        const uint64_t nat = pos_;
        ENCLAVE_ASSIGN_OR_RETURN(t.ne[d], read<uint64_t>("tensor dimension"));
        if (t.ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return corrupt(nat, "tensor '" + shown + "' dimension " + std::to_string(d) +
                                  " is negative as int64");
        }
      }
      // Zero dims are treated as 1 here so that partial products (n_rows(), row_bytes() times
      // rows) also fit, not just the (possibly zero) total.
      uint64_t n_elems = 1;
      for (uint32_t d = 0; d < kMaxDims; ++d) {
        if (!checked_mul(n_elems, std::max<uint64_t>(t.ne[d], 1), &n_elems) ||
            n_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return corrupt(dat, "tensor '" + shown + "' element count overflows int64");
        }
      }
      const uint64_t tyat = pos_;
      ENCLAVE_ASSIGN_OR_RETURN(uint32_t raw_type, read<uint32_t>("tensor type"));
      const auto traits = dtype_traits(raw_type);
      if (!traits) {
        return err(ErrorCode::kUnsupported, tyat,
                   "tensor '" + shown + "' has type id " + std::to_string(raw_type) +
                       ", which Enclave does not support (unknown or IQ/TQ quantization); "
                       "requantize the model to a supported type");
      }
      t.type = traits->type;
      if (t.ne[0] % traits->block_elems != 0) {
        return corrupt(dat, "tensor '" + shown + "' ne0 " + std::to_string(t.ne[0]) +
                                " is not a multiple of the " + std::string(traits->name) +
                                " block size " + std::to_string(traits->block_elems));
      }
      uint64_t row_bytes = t.ne[0] / traits->block_elems;
      bool ok = checked_mul(row_bytes, traits->block_bytes, &row_bytes);
      uint64_t nominal = row_bytes;
      for (uint32_t d = 1; d < kMaxDims && ok; ++d) {
        ok = checked_mul(nominal, std::max<uint64_t>(t.ne[d], 1), &nominal);
      }
      if (!ok) return corrupt(dat, "tensor '" + shown + "' byte size overflows 64 bits");
      t.size_bytes = row_bytes * t.ne[1] * t.ne[2] * t.ne[3];  // <= nominal: cannot overflow
      const uint64_t oat = pos_;
      ENCLAVE_ASSIGN_OR_RETURN(t.offset, read<uint64_t>("tensor data offset"));
      if (t.offset % f.alignment_ != 0) {
        return corrupt(oat, "tensor '" + shown + "' data offset " + std::to_string(t.offset) +
                                " is not a multiple of the alignment " +
                                std::to_string(f.alignment_));
      }
      f.tensor_index_.emplace(t.name, f.tensors_.size());
      f.tensors_.push_back(std::move(t));
      offset_field_pos_.push_back(oat);
    }
    return Status::ok();
  }

  Status check_tensor_data(GgufFile& f) {
    // data_start = align_up(end of tensor infos).
    const uint64_t a = f.alignment_;
    uint64_t data_start = pos_;
    const uint64_t pad = (a - data_start % a) % a;
    if (!checked_add(data_start, pad, &data_start)) {
      return corrupt(pos_, "data section start overflows");
    }
    f.data_offset_ = data_start;
    // Sort by offset to find overlaps in O(n log n).
    std::vector<size_t> order;
    order.reserve(f.tensors_.size());
    for (size_t i = 0; i < f.tensors_.size(); ++i) {
      TensorInfo& t = f.tensors_[i];
      const uint64_t at = offset_field_pos_[i];
      uint64_t begin = 0;
      uint64_t end = 0;
      if (!checked_add(data_start, t.offset, &begin) || !checked_add(begin, t.size_bytes, &end)) {
        return corrupt(at, "tensor '" + printable(t.name) + "' data offset " +
                               std::to_string(t.offset) + " + size " +
                               std::to_string(t.size_bytes) + " overflows 64 bits");
      }
      if (t.size_bytes == 0) {
        // Empty tensors carry no data; their pointer only needs to be inside the mapping.
        t.data = p_ + std::min<uint64_t>(begin, size_);
        continue;
      }
      if (end > size_) {
        return corrupt(at, "tensor '" + printable(t.name) + "' data [" + std::to_string(begin) +
                               ", " + std::to_string(end) + ") extends past end of file (size " +
                               std::to_string(size_) + ")");
      }
      t.data = p_ + begin;
      order.push_back(i);
    }
    std::sort(order.begin(), order.end(),
              [&](size_t x, size_t y) { return f.tensors_[x].offset < f.tensors_[y].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
      const TensorInfo& prev = f.tensors_[order[k - 1]];
      const TensorInfo& cur = f.tensors_[order[k]];
      if (cur.offset < prev.offset + prev.size_bytes) {
        return corrupt(offset_field_pos_[order[k]],
                       "tensor '" + printable(cur.name) + "' data [" +
                           std::to_string(data_start + cur.offset) + ", " +
                           std::to_string(data_start + cur.offset + cur.size_bytes) +
                           ") overlaps tensor '" + printable(prev.name) + "' data [" +
                           std::to_string(data_start + prev.offset) + ", " +
                           std::to_string(data_start + prev.offset + prev.size_bytes) + ")");
      }
    }
    return Status::ok();
  }

  const uint8_t* p_;
  uint64_t size_;
  std::string name_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t meta_elements_ = 0;
  uint64_t alignment_at_ = 0;  // where general.alignment's value type sits
  std::vector<uint64_t> offset_field_pos_;
};

Result<GgufFile> GgufFile::from_memory(std::span<const uint8_t> bytes, std::string name) {
  GgufFile f;
  GgufParser parser(bytes, std::move(name));
  ENCLAVE_TRY_STATUS(parser.parse(f));
  return f;
}

bool GgufFile::copy_fits_in_memory(uint64_t bytes) {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") {
      // Keep a margin for the KV cache, activations and everything else: 1 GiB or 10 %.
      const uint64_t available = kib * 1024;
      const uint64_t margin = std::max<uint64_t>(uint64_t{1} << 30, available / 10);
      return available > margin && bytes <= available - margin;
    }
  }
  return true;  // no /proc/meminfo (not Linux): nothing to go by, copy as asked
}

Status GgufFile::map_file(int fd, const std::string& path, uint64_t size, Mapping& out) {
  void* addr = mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) {
    const int e = errno;
    return make_error(ErrorCode::kIo, path + ": cannot map " + std::to_string(size) +
                                          " bytes: " + std::strerror(e));
  }
  out.addr = addr;
  out.len = static_cast<size_t>(size);
  return Status::ok();
}

Status GgufFile::copy_file(int fd, const std::string& path, uint64_t size, Mapping& out) {
  // 2 MiB aligned, so that every 2 MiB of the copy can become one huge page.
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t len = (static_cast<size_t>(size) + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    const int e = errno;
    return make_error(ErrorCode::kResourceExhausted,
                      path + ": cannot allocate " + std::to_string(len) +
                          " bytes to load the file: " + std::strerror(e) +
                          " (free memory, or map the file instead: --mmap)");
  }
  const auto raw_addr = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t base = (raw_addr + kHugePage - 1) / kHugePage * kHugePage;
  if (base > raw_addr) munmap(raw, base - raw_addr);
  if (const uintptr_t end = raw_addr + len + kHugePage; end > base + len) {
    munmap(reinterpret_cast<void*>(base + len), end - (base + len));
  }
  out.addr = reinterpret_cast<void*>(base);
  out.len = len;

  // Two readers: copying out of the page cache is bound by one core's memcpy rate.
  auto* dst = static_cast<uint8_t*>(out.addr);
  auto read_range = [&](uint64_t from, uint64_t to) -> std::string {
    constexpr size_t kChunk = size_t{64} << 20;
    for (uint64_t done = from; done < to;) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, to - done));
      const ssize_t n = pread(fd, dst + done, want, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        return path + ": read failed at byte offset " + std::to_string(done) + ": " +
               (n == 0 ? std::string("file shrank while loading") : std::strerror(errno));
      }
      done += static_cast<uint64_t>(n);
    }
    return {};
  };
  const uint64_t half = size >= (uint64_t{64} << 20) ? size / 2 / kHugePage * kHugePage : size;
  std::string second_error;
  std::thread second;
  if (half < size) second = std::thread([&] { second_error = read_range(half, size); });
  std::string first_error = read_range(0, half);
  if (second.joinable()) second.join();
  if (!first_error.empty() || !second_error.empty()) {
    return make_error(ErrorCode::kIo, first_error.empty() ? second_error : first_error);
  }
  mprotect(out.addr, len, PROT_READ);  // same contract as the mapping: weights are read-only
  out.copied = true;
  return Status::ok();
}

bool GgufFile::rewrite_tensors(std::span<const TensorInfo* const> tensors,
                               const std::function<void(const TensorInfo&, uint8_t*)>& edit) {
  if (memory_ != FileMemory::kCopy || mapping_ == nullptr || !mapping_->copied) return false;
  if (tensors.empty()) return true;
  mprotect(mapping_->addr, mapping_->len, PROT_READ | PROT_WRITE);
  auto* base = static_cast<uint8_t*>(mapping_->addr);
  auto run = [&](size_t from, size_t step) {
    for (size_t i = from; i < tensors.size(); i += step) {
      const TensorInfo& t = *tensors[i];
      edit(t, base + (t.data - static_cast<const uint8_t*>(mapping_->addr)));
    }
  };
  std::thread second([&] { run(1, 2); });
  run(0, 2);
  second.join();
  mprotect(mapping_->addr, mapping_->len, PROT_READ);
  return true;
}

Result<GgufFile> GgufFile::open(const std::string& path, FileMemory memory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    const ErrorCode code = (e == ENOENT || e == ENOTDIR) ? ErrorCode::kNotFound : ErrorCode::kIo;
    return make_error(code, path + ": cannot open: " + std::strerror(e) +
                                (code == ErrorCode::kNotFound ? " (check the model path)" : ""));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error(ErrorCode::kIo, path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(ErrorCode::kIo, path + ": not a regular file (expected a .gguf model file)");
  }
  auto mapping = std::make_unique<Mapping>();
  const auto size = static_cast<uint64_t>(st.st_size);
  // A copy that does not fit in the memory still available would page or be OOM-killed while
  // loading; map such a file instead (memory() tells the caller).
  if (memory == FileMemory::kCopy && !copy_fits_in_memory(size)) memory = FileMemory::kMap;
  if (size > 0) {
    Status loaded = memory == FileMemory::kCopy ? copy_file(fd, path, size, *mapping)
                                                : map_file(fd, path, size, *mapping);
    if (!loaded.is_ok()) {
      ::close(fd);
      return loaded.error();
    }
  }
  ::close(fd);  // the mapping stays valid after close
  std::span<const uint8_t> bytes(static_cast<const uint8_t*>(mapping->addr),
                                 static_cast<size_t>(size));
  ENCLAVE_ASSIGN_OR_RETURN(GgufFile f, from_memory(bytes, path));
  f.mapping_ = std::move(mapping);
  f.memory_ = memory;
  return f;
}

const MetaValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string GgufFile::architecture() const {
  const MetaValue* v = find("general.architecture");
  if (v == nullptr || v->type != ValueType::kString) return "";
  return std::get<std::string>(v->v);
}

namespace {

Error type_error(const std::string& path, std::string_view key, const MetaValue& v,
                 const char* expected) {
  std::string found(value_type_name(v.type));
  if (v.type == ValueType::kArray) {
    const auto& arr = std::get<std::shared_ptr<MetaArray>>(v.v);
    found += " of ";
    found += value_type_name(arr ? arr->elem_type : ValueType::kUint8);
  }
  return make_error(ErrorCode::kCorruptData, path + ": metadata key '" + std::string(key) +
                                                 "' has type " + found + ", expected " + expected);
}

// Scalar conversions shared by the scalar and array getters. False when the type or range is wrong.
bool to_uint(const MetaValue& v, uint64_t* out) {
  if (is_unsigned_type(v.type)) {
    *out = std::get<uint64_t>(v.v);
    return true;
  }
  if (is_signed_type(v.type)) {
    const int64_t x = std::get<int64_t>(v.v);
    if (x < 0) return false;
    *out = static_cast<uint64_t>(x);
    return true;
  }
  if (v.type == ValueType::kBool) {
    *out = std::get<bool>(v.v) ? 1 : 0;
    return true;
  }
  return false;
}

bool to_int(const MetaValue& v, int64_t* out) {
  if (is_signed_type(v.type)) {
    *out = std::get<int64_t>(v.v);
    return true;
  }
  if (is_unsigned_type(v.type)) {
    const uint64_t x = std::get<uint64_t>(v.v);
    if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(x);
    return true;
  }
  if (v.type == ValueType::kBool) {
    *out = std::get<bool>(v.v) ? 1 : 0;
    return true;
  }
  return false;
}

bool to_double(const MetaValue& v, double* out) {
  if (is_float_type(v.type)) {
    *out = std::get<double>(v.v);
    return true;
  }
  if (is_unsigned_type(v.type)) {
    *out = static_cast<double>(std::get<uint64_t>(v.v));
    return true;
  }
  if (is_signed_type(v.type)) {
    *out = static_cast<double>(std::get<int64_t>(v.v));
    return true;
  }
  return false;
}

const MetaArray* as_array(const MetaValue& v) {
  if (v.type != ValueType::kArray) return nullptr;
  const auto* p = std::get_if<std::shared_ptr<MetaArray>>(&v.v);
  return p == nullptr ? nullptr : p->get();
}

}  // namespace

Result<std::optional<uint64_t>> GgufFile::get_uint(std::string_view key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return std::optional<uint64_t>();
  uint64_t x = 0;
  if (!to_uint(*v, &x)) {
    if (is_signed_type(v->type)) {
      return make_error(ErrorCode::kCorruptData,
                        path_ + ": metadata key '" + std::string(key) + "' is negative (" +
                            std::to_string(std::get<int64_t>(v->v)) + "), expected >= 0");
    }
    return type_error(path_, key, *v, "an unsigned integer");
  }
  return std::optional<uint64_t>(x);
}

Result<std::optional<int64_t>> GgufFile::get_int(std::string_view key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return std::optional<int64_t>();
  int64_t x = 0;
  if (!to_int(*v, &x)) {
    if (is_unsigned_type(v->type)) {
      return make_error(ErrorCode::kCorruptData, path_ + ": metadata key '" + std::string(key) +
                                                     "' value does not fit in int64");
    }
    return type_error(path_, key, *v, "an integer");
  }
  return std::optional<int64_t>(x);
}

Result<std::optional<double>> GgufFile::get_float(std::string_view key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return std::optional<double>();
  double x = 0;
  if (!to_double(*v, &x)) return type_error(path_, key, *v, "a number");
  return std::optional<double>(x);
}

Result<std::optional<bool>> GgufFile::get_bool(std::string_view key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return std::optional<bool>();
  if (v->type != ValueType::kBool) return type_error(path_, key, *v, "bool");
  return std::optional<bool>(std::get<bool>(v->v));
}

Result<std::optional<std::string>> GgufFile::get_string(std::string_view key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->type != ValueType::kString) return type_error(path_, key, *v, "string");
  return std::optional<std::string>(std::get<std::string>(v->v));
}

Result<std::optional<std::vector<std::string>>> GgufFile::get_string_array(
    std::string_view key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return std::optional<std::vector<std::string>>();
  const MetaArray* arr = as_array(*v);
  if (arr == nullptr || arr->elem_type != ValueType::kString) {
    return type_error(path_, key, *v, "array of string");
  }
  std::vector<std::string> out;
  out.reserve(arr->items.size());
  for (const auto& item : arr->items) {
    const auto* s = std::get_if<std::string>(&item.v);
    if (s == nullptr) return type_error(path_, key, *v, "array of string");
    out.push_back(*s);
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

Result<std::optional<std::vector<int64_t>>> GgufFile::get_int_array(std::string_view key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return std::optional<std::vector<int64_t>>();
  const MetaArray* arr = as_array(*v);
  if (arr == nullptr || !(is_signed_type(arr->elem_type) || is_unsigned_type(arr->elem_type) ||
                          arr->elem_type == ValueType::kBool)) {
    return type_error(path_, key, *v, "array of integers");
  }
  std::vector<int64_t> out;
  out.reserve(arr->items.size());
  for (size_t i = 0; i < arr->items.size(); ++i) {
    int64_t x = 0;
    if (!to_int(arr->items[i], &x)) {
      return make_error(ErrorCode::kCorruptData, path_ + ": metadata key '" + std::string(key) +
                                                     "' element " + std::to_string(i) +
                                                     " does not fit in int64");
    }
    out.push_back(x);
  }
  return std::optional<std::vector<int64_t>>(std::move(out));
}

Result<std::optional<std::vector<float>>> GgufFile::get_float_array(std::string_view key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return std::optional<std::vector<float>>();
  const MetaArray* arr = as_array(*v);
  if (arr == nullptr || !(is_float_type(arr->elem_type) || is_signed_type(arr->elem_type) ||
                          is_unsigned_type(arr->elem_type))) {
    return type_error(path_, key, *v, "array of numbers");
  }
  std::vector<float> out;
  out.reserve(arr->items.size());
  for (const auto& item : arr->items) {
    double x = 0;
    if (!to_double(item, &x)) return type_error(path_, key, *v, "array of numbers");
    out.push_back(static_cast<float>(x));
  }
  return std::optional<std::vector<float>>(std::move(out));
}

}  // namespace enclave::gguf
