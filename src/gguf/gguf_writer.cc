// GGUF v3 writer: little-endian header, metadata in insertion order, tensor infos, then each
// tensor's data at an aligned offset (padding with zeros, also after the last tensor).
#include "gguf/gguf_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace enclave::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;
constexpr uint32_t kVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
constexpr const char* kAlignmentKey = "general.alignment";

uint64_t align_up(uint64_t x, uint64_t a) {
  return x + (a - x % a) % a;
}

class ByteSink {
 public:
  explicit ByteSink(std::vector<uint8_t>& out) : out_(out) {}
  template <class T>
  void put(T v) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }

 private:
  std::vector<uint8_t>& out_;
};

// The payload may have been built by hand with a different alternative than `type` implies;
// convert numerically instead of trusting it.
uint64_t as_u64(const MetaValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v.v)) return static_cast<uint64_t>(*i);
  if (const auto* d = std::get_if<double>(&v.v)) return static_cast<uint64_t>(*d);
  if (const auto* b = std::get_if<bool>(&v.v)) return *b ? 1 : 0;
  return 0;
}
int64_t as_i64(const MetaValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v.v)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return static_cast<int64_t>(*u);
  if (const auto* d = std::get_if<double>(&v.v)) return static_cast<int64_t>(*d);
  if (const auto* b = std::get_if<bool>(&v.v)) return *b ? 1 : 0;
  return 0;
}
double as_f64(const MetaValue& v) {
  if (const auto* d = std::get_if<double>(&v.v)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&v.v)) return static_cast<double>(*i);
  if (const auto* b = std::get_if<bool>(&v.v)) return *b ? 1.0 : 0.0;
  return 0.0;
}

void put_value(ByteSink& s, ValueType type, const MetaValue& v) {
  switch (type) {
    case ValueType::kUint8:
      s.put<uint8_t>(static_cast<uint8_t>(as_u64(v)));
      return;
    case ValueType::kInt8:
      s.put<int8_t>(static_cast<int8_t>(as_i64(v)));
      return;
    case ValueType::kUint16:
      s.put<uint16_t>(static_cast<uint16_t>(as_u64(v)));
      return;
    case ValueType::kInt16:
      s.put<int16_t>(static_cast<int16_t>(as_i64(v)));
      return;
    case ValueType::kUint32:
      s.put<uint32_t>(static_cast<uint32_t>(as_u64(v)));
      return;
    case ValueType::kInt32:
      s.put<int32_t>(static_cast<int32_t>(as_i64(v)));
      return;
    case ValueType::kFloat32:
      s.put<float>(static_cast<float>(as_f64(v)));
      return;
    case ValueType::kBool:
      s.put<uint8_t>(as_u64(v) != 0 ? 1 : 0);
      return;
    case ValueType::kString: {
      const auto* str = std::get_if<std::string>(&v.v);
      s.put_string(str != nullptr ? std::string_view(*str) : std::string_view());
      return;
    }
    case ValueType::kArray: {
      const auto* arr = std::get_if<std::shared_ptr<MetaArray>>(&v.v);
      if (arr == nullptr || *arr == nullptr) {
        s.put<uint32_t>(static_cast<uint32_t>(ValueType::kUint8));
        s.put<uint64_t>(0);
        return;
      }
      s.put<uint32_t>(static_cast<uint32_t>((*arr)->elem_type));
      s.put<uint64_t>((*arr)->items.size());
      for (const auto& item : (*arr)->items) put_value(s, (*arr)->elem_type, item);
      return;
    }
    case ValueType::kUint64:
      s.put<uint64_t>(as_u64(v));
      return;
    case ValueType::kInt64:
      s.put<int64_t>(as_i64(v));
      return;
    case ValueType::kFloat64:
      s.put<double>(as_f64(v));
      return;
  }
}

MetaValue scalar(ValueType t, uint64_t u) {
  return MetaValue{t, u};
}

template <class T>
MetaValue make_array(ValueType elem, const std::vector<T>& values) {
  auto arr = std::make_shared<MetaArray>();
  arr->elem_type = elem;
  arr->items.reserve(values.size());
  for (const auto& x : values) {
    MetaValue item;
    item.type = elem;
    if constexpr (std::is_same_v<T, std::string>) {
      item.v = x;
    } else if constexpr (std::is_floating_point_v<T>) {
      item.v = static_cast<double>(x);
    } else {
      item.v = static_cast<int64_t>(x);
    }
    arr->items.push_back(std::move(item));
  }
  return MetaValue{ValueType::kArray, std::move(arr)};
}

Status write_all(int fd, const uint8_t* p, size_t n, const std::string& tmp) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIo, tmp + ": write failed: " + std::strerror(errno) +
                                            " (check free disk space and permissions)");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

// Temp file next to the target so rename() stays on one filesystem.
std::string temp_path(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment)
    : alignment_((alignment != 0 && (alignment & (alignment - 1)) == 0) ? alignment
                                                                        : kDefaultAlignment) {}

void GgufWriter::set(std::string key, MetaValue value) {
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::set_string(std::string key, std::string value) {
  set(std::move(key), MetaValue{ValueType::kString, std::move(value)});
}
void GgufWriter::set_uint32(std::string key, uint32_t value) {
  set(std::move(key), scalar(ValueType::kUint32, value));
}
void GgufWriter::set_uint64(std::string key, uint64_t value) {
  set(std::move(key), scalar(ValueType::kUint64, value));
}
void GgufWriter::set_int32(std::string key, int32_t value) {
  set(std::move(key), MetaValue{ValueType::kInt32, int64_t{value}});
}
void GgufWriter::set_float32(std::string key, float value) {
  set(std::move(key), MetaValue{ValueType::kFloat32, double{value}});
}
void GgufWriter::set_bool(std::string key, bool value) {
  MetaValue v{ValueType::kBool, {}};
  v.v.emplace<bool>(value);
  set(std::move(key), std::move(v));
}
void GgufWriter::set_string_array(std::string key, const std::vector<std::string>& values) {
  set(std::move(key), make_array(ValueType::kString, values));
}
void GgufWriter::set_int32_array(std::string key, const std::vector<int32_t>& values) {
  set(std::move(key), make_array(ValueType::kInt32, values));
}
void GgufWriter::set_float32_array(std::string key, const std::vector<float>& values) {
  set(std::move(key), make_array(ValueType::kFloat32, values));
}

void GgufWriter::copy_metadata(const GgufFile& src) {
  for (const auto& [key, value] : src.metadata()) set(key, value);
}

void GgufWriter::remove(std::string_view key) {
  kv_.erase(std::remove_if(kv_.begin(), kv_.end(), [&](const auto& kv) { return kv.first == key; }),
            kv_.end());
}

Status GgufWriter::validate_tensor(const std::string& name, DType type,
                                   const std::vector<uint64_t>& ne, uint64_t* size_bytes) const {
  if (name.empty() || name.size() >= 64) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gguf writer: tensor name '" + name + "' must be 1 to 63 bytes long");
  }
  for (const auto& t : tensors_) {
    if (t.name == name) {
      return make_error(ErrorCode::kInvalidArgument,
                        "gguf writer: tensor '" + name + "' was already added");
    }
  }
  if (ne.empty() || ne.size() > 4) {
    return make_error(ErrorCode::kInvalidArgument, "gguf writer: tensor '" + name + "' has " +
                                                       std::to_string(ne.size()) +
                                                       " dimensions; 1 to 4 are allowed");
  }
  const auto traits = dtype_traits(static_cast<uint32_t>(type));
  if (!traits) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gguf writer: tensor '" + name + "' has an unknown type");
  }
  if (ne[0] % traits->block_elems != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gguf writer: tensor '" + name + "' ne0 " + std::to_string(ne[0]) +
                          " is not a multiple of the " + std::string(traits->name) +
                          " block size " + std::to_string(traits->block_elems));
  }
  uint64_t size = ne[0] / traits->block_elems;
  bool ok = !__builtin_mul_overflow(size, uint64_t{traits->block_bytes}, &size);
  for (size_t d = 1; d < ne.size() && ok; ++d) ok = !__builtin_mul_overflow(size, ne[d], &size);
  if (!ok) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gguf writer: tensor '" + name + "' byte size overflows 64 bits");
  }
  *size_bytes = size;
  return Status::ok();
}

Status GgufWriter::add_tensor(std::string name, DType type, std::vector<uint64_t> ne,
                              std::span<const uint8_t> bytes) {
  uint64_t size = 0;
  ENCLAVE_TRY_STATUS(validate_tensor(name, type, ne, &size));
  if (bytes.size() != size) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gguf writer: tensor '" + name + "' needs " + std::to_string(size) +
                          " bytes for its type and shape, got " + std::to_string(bytes.size()));
  }
  PendingTensor t{std::move(name),
                  type,
                  std::move(ne),
                  std::vector<uint8_t>(bytes.begin(), bytes.end()),
                  size,
                  true};
  tensors_.push_back(std::move(t));
  return Status::ok();
}

Status GgufWriter::add_tensor_info(std::string name, DType type, std::vector<uint64_t> ne) {
  uint64_t size = 0;
  ENCLAVE_TRY_STATUS(validate_tensor(name, type, ne, &size));
  tensors_.push_back(PendingTensor{std::move(name), type, std::move(ne), {}, size, false});
  return Status::ok();
}

std::vector<uint8_t> GgufWriter::header_bytes() const {
  // general.alignment must describe the layout actually written; keep its position if present.
  std::vector<std::pair<std::string, MetaValue>> kv = kv_;
  bool has_alignment = false;
  for (auto& [key, value] : kv) {
    if (key == kAlignmentKey) {
      value = scalar(ValueType::kUint32, alignment_);
      has_alignment = true;
    }
  }
  if (!has_alignment && alignment_ != kDefaultAlignment) {
    kv.emplace_back(kAlignmentKey, scalar(ValueType::kUint32, alignment_));
  }

  std::vector<uint8_t> out;
  ByteSink s(out);
  s.put<uint32_t>(kMagic);
  s.put<uint32_t>(kVersion);
  s.put<uint64_t>(tensors_.size());
  s.put<uint64_t>(kv.size());
  for (const auto& [key, value] : kv) {
    s.put_string(key);
    s.put<uint32_t>(static_cast<uint32_t>(value.type));
    put_value(s, value.type, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    s.put_string(t.name);
    s.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) s.put<uint64_t>(d);
    s.put<uint32_t>(static_cast<uint32_t>(t.type));
    s.put<uint64_t>(offset);
    offset = align_up(offset + t.size_bytes, alignment_);
  }
  out.resize(align_up(out.size(), alignment_), 0);
  return out;
}

uint64_t GgufWriter::file_size() const {
  uint64_t size = header_bytes().size();
  for (const auto& t : tensors_) size = align_up(size + t.size_bytes, alignment_);
  return size;
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> out = header_bytes();
  for (const auto& t : tensors_) {
    const size_t at = out.size();
    out.resize(static_cast<size_t>(align_up(at + t.size_bytes, alignment_)), 0);
    if (t.has_bytes) std::copy(t.bytes.begin(), t.bytes.end(), out.begin() + at);
  }
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  for (const auto& t : tensors_) {
    if (!t.has_bytes) {
      return make_error(ErrorCode::kInvalidArgument,
                        "gguf writer: tensor '" + t.name +
                            "' was declared with add_tensor_info; write it with write_streaming");
    }
  }
  return write_streaming(path, TensorFill());
}

Status GgufWriter::write_streaming(const std::string& path, const TensorFill& fill) const {
  uint64_t max_streamed = 0;
  for (const auto& t : tensors_) {
    if (!t.has_bytes) {
      if (!fill) {
        return make_error(ErrorCode::kInvalidArgument,
                          "gguf writer: tensor '" + t.name + "' has no data and no fill callback");
      }
      max_streamed = std::max(max_streamed, t.size_bytes);
    }
  }
  const std::string tmp = temp_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return make_error(ErrorCode::kIo, tmp + ": cannot create: " + std::strerror(errno) +
                                          " (check that the directory exists and is writable)");
  }
  auto fail = [&](Error e) -> Status {
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  };

  std::vector<uint8_t> header = header_bytes();
  Status st = write_all(fd, header.data(), header.size(), tmp);
  if (!st) return fail(st.error());
  uint64_t pos = header.size();
  std::vector<uint8_t> buffer;
  const std::vector<uint8_t> zeros(alignment_, 0);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    if (t.has_bytes) {
      st = write_all(fd, t.bytes.data(), t.bytes.size(), tmp);
    } else {
      if (buffer.size() < max_streamed) buffer.resize(static_cast<size_t>(max_streamed));
      std::span<uint8_t> out(buffer.data(), static_cast<size_t>(t.size_bytes));
      std::fill(out.begin(), out.end(), uint8_t{0});
      st = fill(i, out);
      if (st) st = write_all(fd, out.data(), out.size(), tmp);
    }
    if (!st) return fail(st.error());
    pos += t.size_bytes;
    const uint64_t pad = align_up(pos, alignment_) - pos;
    st = write_all(fd, zeros.data(), static_cast<size_t>(pad), tmp);
    if (!st) return fail(st.error());
    pos += pad;
  }
  if (::fsync(fd) != 0) {
    return fail(make_error(ErrorCode::kIo, tmp + ": fsync failed: " + std::strerror(errno)));
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return make_error(ErrorCode::kIo, tmp + ": close failed: " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return make_error(ErrorCode::kIo,
                      path + ": cannot rename temp file into place: " + std::strerror(e));
  }
  return Status::ok();
}

}  // namespace enclave::gguf
