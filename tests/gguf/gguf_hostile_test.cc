// Hostile inputs: every malformed structure yields the right error code and a message naming the
// byte offset; nothing crashes, hangs or allocates unboundedly (run under ASan/UBSan too).
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

namespace enclave::gguf {
namespace {

// Emits raw GGUF bytes field by field, so tests can write anything, and remembers where each
// named field starts.
class Raw {
 public:
  template <class T>
  Raw& put(T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  Raw& str(std::string_view s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Raw& mark(const std::string& name) {
    marks[name] = b.size();
    return *this;
  }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    put<uint32_t>(0x46554747).mark("version").put<uint32_t>(version);
    mark("n_tensors").put<uint64_t>(n_tensors).mark("n_kv").put<uint64_t>(n_kv);
    return *this;
  }
  Raw& kv_u32(std::string_view key, uint32_t v) {
    str(key).put<uint32_t>(4).put<uint32_t>(v);
    return *this;
  }
  Raw& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) put<uint64_t>(d);
    put<uint32_t>(type);
    mark(std::string(name) + ".offset").put<uint64_t>(offset);
    return *this;
  }
  Raw& pad(size_t alignment = 32) {
    while (b.size() % alignment != 0) b.push_back(0);
    return *this;
  }
  Raw& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
  size_t at(const std::string& name) const { return marks.at(name); }

  std::vector<uint8_t> b;
  std::map<std::string, size_t> marks;
};

Error expect_error(const std::vector<uint8_t>& bytes, ErrorCode code) {
  // Exact-size heap copy so ASan flags any read past the end.
  std::vector<uint8_t> copy(bytes);
  auto r = GgufFile::from_memory(copy, "bad.gguf");
  if (r) {
    ADD_FAILURE() << "expected an error, file was accepted";
    return Error();
  }
  EXPECT_EQ(r.error().code, code) << error_code_name(r.error().code) << ": " << r.error().message;
  EXPECT_EQ(r.error().message.rfind("bad.gguf: byte ", 0), 0u) << r.error().message;
  return r.error();
}

void expect_at(const Error& e, size_t offset, const std::string& words) {
  EXPECT_NE(e.message.find("byte " + std::to_string(offset) + ":"), std::string::npos)
      << "want byte " << offset << " in: " << e.message;
  EXPECT_NE(e.message.find(words), std::string::npos) << "want '" << words << "' in: " << e.message;
}

// A small valid file: two kvs (one array) and three tensors of different types.
std::vector<uint8_t> valid_file() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.block_count", 2);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "bb", "ccc"});
  w.set_float32_array("tokenizer.ggml.scores", {0.f, -1.f, -2.f});
  std::vector<uint8_t> f32(4 * 8, 1);
  std::vector<uint8_t> q8(34 * 2, 2);
  std::vector<uint8_t> f16(2 * 3, 3);
  EXPECT_TRUE(w.add_tensor("token_embd.weight", DType::kF32, {4, 2}, f32));
  EXPECT_TRUE(w.add_tensor("blk.0.attn_q.weight", DType::kQ8_0, {32, 2}, q8));
  EXPECT_TRUE(w.add_tensor("output_norm.weight", DType::kF16, {3}, f16));
  return w.to_bytes();
}

TEST(GgufHostile, ValidBaseOpens) {
  const auto b = valid_file();
  auto f = GgufFile::from_memory(b);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->tensors().size(), 3u);
}

TEST(GgufHostile, TruncatedAtEveryOffset) {
  const auto full = valid_file();
  auto f = GgufFile::from_memory(full);
  ASSERT_TRUE(f);
  const TensorInfo* last = f->tensor("output_norm.weight");
  const size_t data_end = static_cast<size_t>(f->data_offset() + last->offset + last->size_bytes);
  for (size_t n = 0; n < data_end; ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    SCOPED_TRACE("truncated to " + std::to_string(n) + " bytes");
    const Error e = expect_error(cut, ErrorCode::kCorruptData);
    if (n >= f->data_offset()) {
      // Header intact: the tensor whose data is cut is named.
      EXPECT_NE(e.message.find("extends past end of file (size " + std::to_string(n) + ")"),
                std::string::npos)
          << e.message;
    }
  }
  // Trailing padding after the last tensor is optional.
  std::vector<uint8_t> no_pad(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(data_end));
  EXPECT_TRUE(GgufFile::from_memory(no_pad));
}

TEST(GgufHostile, ByteFlipsNeverCrash) {
  const auto full = valid_file();
  int accepted = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x80}, uint8_t{0x41}}) {
      std::vector<uint8_t> m(full);
      m[i] = v;
      auto r = GgufFile::from_memory(m, "flip.gguf");
      if (r) {
        ++accepted;
        // Whatever was accepted must be internally consistent and readable.
        for (const auto& t : r->tensors()) {
          ASSERT_LE(t.data + t.size_bytes, m.data() + m.size());
          volatile uint8_t sink = 0;
          for (uint64_t k = 0; k < t.size_bytes; ++k) sink = sink + t.data[k];
        }
        for (const auto& [key, value] : r->metadata()) {
          (void)r->get_uint(key);
          (void)r->get_string_array(key);
          (void)r->get_float_array(key);
        }
      } else {
        EXPECT_NE(r.error().message.find("flip.gguf: byte "), std::string::npos)
            << r.error().message;
      }
    }
  }
  EXPECT_GT(accepted, 0);  // flips inside tensor data are harmless
}

TEST(GgufHostile, Magic) {
  auto b = valid_file();
  b[0] = 'X';
  expect_at(expect_error(b, ErrorCode::kCorruptData), 0, "bad magic");
  const std::vector<uint8_t> tiny = {'G', 'G'};
  expect_at(expect_error(tiny, ErrorCode::kCorruptData), 0, "too small");
  expect_at(expect_error({}, ErrorCode::kCorruptData), 0, "too small");
}

TEST(GgufHostile, Versions) {
  for (uint32_t v : {0u, 1u, 4u, 99u, 0xFFFFFFFFu, 0x03000000u, 0x02000000u}) {
    Raw r;
    r.header(0, 0, v);
    SCOPED_TRACE("version " + std::to_string(v));
    const Error e = expect_error(r.b, ErrorCode::kUnsupported);
    expect_at(e, 4, (v & 0xFFFF) == 0 && v != 0 ? "big-endian" : "version");
  }
  for (uint32_t v : {2u, 3u}) {
    Raw r;
    r.header(0, 0, v);
    auto f = GgufFile::from_memory(r.b);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(f->version(), v);
  }
}

TEST(GgufHostile, HugeCounts) {
  {
    Raw r;
    r.header(0xFFFFFFFFFFFFull, 0);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("n_tensors"), "tensor count");
  }
  {
    Raw r;
    r.header(uint64_t{1} << 63, 0);  // negative as int64
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), 8, "tensor count");
  }
  {
    Raw r;
    r.header(0, 1000000);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("n_kv"), "metadata count");
  }
  {  // key length past the end
    Raw r;
    r.header(0, 1).mark("key").put<uint64_t>(0xFFFFFFFFFFull).put<uint32_t>(4).put<uint32_t>(0);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("key"), "extends past end of file");
  }
  {  // string value length past the end
    Raw r;
    r.header(0, 1).str("k").put<uint32_t>(8).mark("len").put<uint64_t>(100).zeros(4);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("len"), "extends past end of file");
  }
  {  // array of n strings needs at least 8n bytes
    Raw r;
    r.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(8).mark("n").put<uint64_t>(1000).zeros(
        7999);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("n"), "array of 1000 string");
  }
  {  // array of 2^61 u64
    Raw r;
    r.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(10).mark("n").put<uint64_t>(uint64_t{1}
                                                                                       << 61);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("n"), "extends past end of file");
  }
  {  // more array values than the reader's total cap (2^23): refused before allocating
    Raw r;
    const uint64_t n = (uint64_t{1} << 23) + 1;
    r.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(0).mark("n").put<uint64_t>(n);
    r.zeros(static_cast<size_t>(n));
    expect_at(expect_error(r.b, ErrorCode::kUnsupported), r.at("n"), "Enclave's limit");
  }
  {  // array of nested arrays: each needs 12 bytes
    Raw r;
    r.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(9).mark("n").put<uint64_t>(100).zeros(
        100);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("n"), "array of 100 array");
  }
}

TEST(GgufHostile, MetadataStructure) {
  {  // unknown value type
    Raw r;
    r.header(0, 1).str("k").mark("type").put<uint32_t>(13).put<uint32_t>(0);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("type"), "unknown value type 13");
  }
  {  // unknown array element type
    Raw r;
    r.header(0, 1).str("k").mark("type").put<uint32_t>(9).put<uint32_t>(77).put<uint64_t>(0);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("type") + 4, "element type 77");
  }
  {  // duplicate key
    Raw r;
    r.header(0, 2).kv_u32("a.b", 1).mark("dup").kv_u32("a.b", 2);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("dup"), "duplicate metadata key");
  }
  {  // empty key
    Raw r;
    r.header(0, 1).mark("k").kv_u32("", 1);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("k"), "empty");
  }
  {  // arrays nested 17 deep
    Raw r;
    r.header(0, 1).str("k").put<uint32_t>(9);
    for (int i = 0; i < 17; ++i) r.put<uint32_t>(9).put<uint64_t>(1);
    r.put<uint32_t>(0).put<uint64_t>(0);
    const Error e = expect_error(r.b, ErrorCode::kCorruptData);
    EXPECT_NE(e.message.find("nested deeper"), std::string::npos) << e.message;
  }
  {  // bool: any non-zero byte is true (ggml behaviour), not an error
    Raw r;
    r.header(0, 1).str("b").put<uint32_t>(7).put<uint8_t>(0x7F);
    auto f = GgufFile::from_memory(r.b);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_TRUE(*f->get_bool("b").value());
  }
}

TEST(GgufHostile, Alignment) {
  for (uint32_t a : {0u, 3u, 48u, 0x80000001u}) {
    Raw r;
    r.header(0, 1).str("general.alignment").mark("type").put<uint32_t>(4).put<uint32_t>(a);
    SCOPED_TRACE("alignment " + std::to_string(a));
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("type"), "not a power of two");
  }
  {
    Raw r;
    r.header(0, 1).str("general.alignment").mark("type").put<uint32_t>(10).put<uint64_t>(32);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("type"), "must be uint32");
  }
  {  // alignment 64 honoured: offset 32 is not aligned
    Raw r;
    r.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {8}, 0, 32).pad(64).zeros(128);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("t.offset"),
              "not a multiple of the alignment 64");
  }
}

TEST(GgufHostile, TensorInfos) {
  struct Case {
    std::string what;
    std::function<void(Raw&)> build;  // writes the tensor infos after a 1-tensor header
    ErrorCode code;
    std::string mark;   // field whose offset the message must name
    std::string words;  // text the message must contain
  };
  const std::string n63(63, 'x');
  const std::string n64(64, 'x');
  const std::vector<Case> cases = {
      {"name 64 bytes", [&](Raw& r) { r.mark("f").tensor(n64, {4}, 0, 0); },
       ErrorCode::kCorruptData, "f", "limit is 63"},
      {"name length past end",
       [](Raw& r) { r.mark("f").put<uint64_t>(uint64_t{1} << 40).zeros(24); },
       ErrorCode::kCorruptData, "f", "extends past end of file"},
      {"n_dims 5",
       [](Raw& r) {
         r.str("t").mark("f").put<uint32_t>(5);
         r.zeros(64);
       },
       ErrorCode::kCorruptData, "f", "5 dimensions"},
      {"n_dims huge",
       [](Raw& r) {
         r.str("t").mark("f").put<uint32_t>(0xFFFFFFFF);
         r.zeros(64);
       },
       ErrorCode::kCorruptData, "f", "dimensions"},
      {"negative dim",
       [](Raw& r) {
         r.str("t").put<uint32_t>(2).put<uint64_t>(4).mark("f").put<uint64_t>(~uint64_t{0});
         r.put<uint32_t>(0).put<uint64_t>(0).zeros(64);
       },
       ErrorCode::kCorruptData, "f", "negative"},
      {"element count overflow",
       [](Raw& r) {
         r.str("t").mark("f");
         r.put<uint32_t>(2).put<uint64_t>(uint64_t{1} << 32).put<uint64_t>(uint64_t{1} << 32);
         r.put<uint32_t>(0).put<uint64_t>(0).zeros(64);
       },
       ErrorCode::kCorruptData, "f", "overflows int64"},
      {"byte size overflow",
       [](Raw& r) {
         r.str("t").mark("f");
         r.put<uint32_t>(1).put<uint64_t>(uint64_t{1} << 62);
         r.put<uint32_t>(0).put<uint64_t>(0).zeros(64);
       },
       ErrorCode::kCorruptData, "f", "overflows 64 bits"},
      {"unknown type 99",
       [](Raw& r) {
         r.str("t").put<uint32_t>(1).put<uint64_t>(4).mark("f").put<uint32_t>(99);
         r.put<uint64_t>(0).zeros(64);
       },
       ErrorCode::kUnsupported, "f", "type id 99"},
      {"IQ type 16 unsupported",
       [](Raw& r) {
         r.str("t").put<uint32_t>(1).put<uint64_t>(256).mark("f").put<uint32_t>(16);
         r.put<uint64_t>(0).zeros(64);
       },
       ErrorCode::kUnsupported, "f", "type id 16"},
      {"ne0 not multiple of block",
       [](Raw& r) {
         r.str("t").mark("f");
         r.put<uint32_t>(2)
             .put<uint64_t>(33)
             .put<uint64_t>(2)
             .put<uint32_t>(8)
             .put<uint64_t>(0)
             .zeros(128);
       },
       ErrorCode::kCorruptData, "f", "not a multiple of the q8_0 block size 32"},
      {"offset unaligned", [](Raw& r) { r.tensor("t", {4}, 0, 8).pad().zeros(64); },
       ErrorCode::kCorruptData, "t.offset", "not a multiple of the alignment 32"},
      {"data past end", [](Raw& r) { r.tensor("t", {64}, 0, 0).pad().zeros(255); },
       ErrorCode::kCorruptData, "t.offset", "extends past end of file"},
      {"offset far past end", [](Raw& r) { r.tensor("t", {4}, 0, uint64_t{1} << 40).pad(); },
       ErrorCode::kCorruptData, "t.offset", "extends past end of file"},
      {"offset overflows", [](Raw& r) { r.tensor("t", {4}, 0, ~uint64_t{31}).pad(); },
       ErrorCode::kCorruptData, "t.offset", "overflows"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Raw r;
    r.header(1, 0);
    c.build(r);
    const Error e = expect_error(r.b, c.code);
    expect_at(e, r.at(c.mark), c.words);
  }
  {  // 63-byte name is fine
    Raw r;
    r.header(1, 0).tensor(n63, {4}, 0, 0).pad().zeros(16);
    auto f = GgufFile::from_memory(r.b);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_NE(f->tensor(n63), nullptr);
  }
}

TEST(GgufHostile, TensorDirectory) {
  {  // duplicate tensor name
    Raw r;
    r.header(2, 0).tensor("t", {4}, 0, 0).mark("dup").tensor("t", {4}, 0, 32).pad().zeros(64);
    expect_at(expect_error(r.b, ErrorCode::kCorruptData), r.at("dup"), "duplicate tensor name 't'");
  }
  {  // overlapping: b starts inside a
    Raw r;
    r.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(128);
    const Error e = expect_error(r.b, ErrorCode::kCorruptData);
    expect_at(e, r.at("b.offset"), "tensor 'b' data");
    EXPECT_NE(e.message.find("overlaps tensor 'a'"), std::string::npos) << e.message;
  }
  {  // overlapping in reverse file order
    Raw r;
    r.header(2, 0).tensor("a", {8}, 0, 64).tensor("b", {32}, 0, 0).pad().zeros(192);
    const Error e = expect_error(r.b, ErrorCode::kCorruptData);
    expect_at(e, r.at("a.offset"), "overlaps tensor 'b'");
  }
  {  // same offset
    Raw r;
    r.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 0).pad().zeros(64);
    EXPECT_NE(expect_error(r.b, ErrorCode::kCorruptData).message.find("overlaps"),
              std::string::npos);
  }
  {  // adjacent tensors, out of file order, and a zero-size tensor sharing an offset: all fine
    Raw r;
    r.header(3, 0).tensor("a", {8}, 0, 32).tensor("b", {8}, 0, 0).tensor("z", {0}, 0, 0);
    r.pad().zeros(64);
    auto f = GgufFile::from_memory(r.b);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(f->tensor("a")->data, f->tensor("b")->data + 32);
  }
  {  // a vocab-only file without data-section padding is valid
    Raw r;
    r.header(0, 1).kv_u32("x", 1);
    ASSERT_NE(r.b.size() % 32, 0u);
    EXPECT_TRUE(GgufFile::from_memory(r.b));
  }
}

TEST(GgufHostile, MessageShape) {
  // The documented example: file, byte offset, tensor, data range, file size.
  Raw r;
  r.header(1, 0).tensor("blk.0.attn_q.weight", {64}, 0, 0).pad();
  const size_t data_start = r.b.size();
  r.zeros(100);
  const Error e = expect_error(r.b, ErrorCode::kCorruptData);
  EXPECT_EQ(e.message, "bad.gguf: byte " + std::to_string(r.at("blk.0.attn_q.weight.offset")) +
                           ": tensor 'blk.0.attn_q.weight' data [" + std::to_string(data_start) +
                           ", " + std::to_string(data_start + 256) +
                           ") extends past end of file (size " + std::to_string(r.b.size()) + ")");
}

}  // namespace
}  // namespace enclave::gguf
