// libFuzzer target: GgufFile::from_memory on arbitrary bytes, then every getter on every key and
// every byte of every tensor, so ASan sees any out-of-bounds pointer the parser let through.
#include <cstddef>
#include <cstdint>
#include <span>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

namespace {

void touch_value(const enclave::gguf::MetaValue& v, uint64_t& sink) {
  using enclave::gguf::MetaArray;
  sink += static_cast<uint64_t>(v.type);
  if (const auto* s = std::get_if<std::string>(&v.v)) sink += s->size();
  if (const auto* a = std::get_if<std::shared_ptr<MetaArray>>(&v.v)) {
    if (*a) {
      for (const auto& item : (*a)->items) touch_value(item, sink);
    }
  }
  (void)enclave::gguf::value_type_name(v.type);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = enclave::gguf::GgufFile::from_memory(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!r) return 0;
  const enclave::gguf::GgufFile& f = *r;
  uint64_t sink = f.version() + f.alignment() + f.file_size() + f.data_offset();
  sink += f.architecture().size();
  for (const auto& [key, value] : f.metadata()) {
    touch_value(value, sink);
    if (f.find(key) != &value) __builtin_trap();
    (void)f.has(key);
    if (auto x = f.get_uint(key); x && *x) sink += **x;
    if (auto x = f.get_int(key); x && *x) sink += static_cast<uint64_t>(**x);
    if (auto x = f.get_float(key); x && *x) sink += static_cast<uint64_t>(**x != 0);
    if (auto x = f.get_bool(key); x && *x) sink += **x;
    if (auto x = f.get_string(key); x && *x) sink += (*x)->size();
    if (auto x = f.get_string_array(key); x && *x) sink += (*x)->size();
    if (auto x = f.get_int_array(key); x && *x) sink += (*x)->size();
    if (auto x = f.get_float_array(key); x && *x) sink += (*x)->size();
  }
  for (const auto& t : f.tensors()) {
    if (f.tensor(t.name) != &t) __builtin_trap();
    if (t.size_bytes != t.row_bytes() * t.n_rows()) __builtin_trap();
    sink += t.n_elements();
    for (uint64_t i = 0; i < t.size_bytes; ++i) sink += t.data[i];
  }
  // Re-serializing the metadata and re-reading it must succeed.
  enclave::gguf::GgufWriter w(f.alignment());
  w.copy_metadata(f);
  const auto bytes = w.to_bytes();
  auto again = enclave::gguf::GgufFile::from_memory(bytes, "fuzz-rt.gguf");
  if (!again || again->metadata().size() != f.metadata().size()) __builtin_trap();
  volatile uint64_t keep = sink;
  (void)keep;
  return 0;
}
