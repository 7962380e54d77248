// Writer -> reader round trips: every metadata value type (incl. nested arrays), tensors,
// alignment, atomic and streaming writes, typed getters.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

namespace enclave::gguf {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  fs::path dir =
      fs::temp_directory_path() / ("enclave_gguf_test_" + std::to_string(::getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

MetaValue int_value(ValueType t, int64_t x) {
  MetaValue v;
  v.type = t;
  if (t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
      t == ValueType::kUint64) {
    v.v = static_cast<uint64_t>(x);
  } else {
    v.v = x;
  }
  return v;
}

MetaValue array_value(ValueType elem, std::vector<MetaValue> items) {
  auto arr = std::make_shared<MetaArray>();
  arr->elem_type = elem;
  arr->items = std::move(items);
  return MetaValue{ValueType::kArray, std::move(arr)};
}

TEST(GgufRoundTrip, EveryScalarType) {
  GgufWriter w;
  w.set("t.u8", int_value(ValueType::kUint8, 250));
  w.set("t.i8", int_value(ValueType::kInt8, -100));
  w.set("t.u16", int_value(ValueType::kUint16, 65000));
  w.set("t.i16", int_value(ValueType::kInt16, -32000));
  w.set_uint32("t.u32", 4000000000u);
  w.set_int32("t.i32", -2000000000);
  w.set_float32("t.f32", 1.5e-6f);
  w.set_bool("t.bool_t", true);
  w.set_bool("t.bool_f", false);
  w.set_string("t.str", "héllo\nworld");
  w.set_string("t.empty", "");
  w.set_uint64("t.u64", 0xFFFFFFFFFFFFFFF0ull);
  w.set("t.i64", int_value(ValueType::kInt64, -(int64_t{1} << 60)));
  w.set("t.f64", MetaValue{ValueType::kFloat64, 3.141592653589793});
  const auto bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes, "rt.gguf");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->metadata().size(), 14u);
  EXPECT_EQ(f->metadata()[0].first, "t.u8");  // file order kept
  EXPECT_EQ(f->find("t.u8")->type, ValueType::kUint8);
  EXPECT_EQ(*f->get_uint("t.u8").value(), 250u);
  EXPECT_EQ(*f->get_int("t.i8").value(), -100);
  EXPECT_EQ(f->find("t.i8")->type, ValueType::kInt8);
  EXPECT_EQ(*f->get_uint("t.u16").value(), 65000u);
  EXPECT_EQ(*f->get_int("t.i16").value(), -32000);
  EXPECT_EQ(*f->get_uint("t.u32").value(), 4000000000u);
  EXPECT_EQ(*f->get_int("t.i32").value(), -2000000000);
  EXPECT_FLOAT_EQ(static_cast<float>(*f->get_float("t.f32").value()), 1.5e-6f);
  EXPECT_EQ(f->find("t.f32")->type, ValueType::kFloat32);
  EXPECT_TRUE(*f->get_bool("t.bool_t").value());
  EXPECT_FALSE(*f->get_bool("t.bool_f").value());
  EXPECT_EQ(*f->get_string("t.str").value(), "héllo\nworld");
  EXPECT_EQ(*f->get_string("t.empty").value(), "");
  EXPECT_EQ(*f->get_uint("t.u64").value(), 0xFFFFFFFFFFFFFFF0ull);
  EXPECT_EQ(*f->get_int("t.i64").value(), -(int64_t{1} << 60));
  EXPECT_DOUBLE_EQ(*f->get_float("t.f64").value(), 3.141592653589793);
  EXPECT_EQ(f->tensors().size(), 0u);
}

TEST(GgufRoundTrip, ArraysAndNestedArrays) {
  GgufWriter w;
  w.set_string_array("a.str", {"a", "", "ccc", "<｜User｜>"});
  w.set_int32_array("a.i32", {1, -2, 2147483647});
  w.set_float32_array("a.f32", {0.5f, -1.25f});
  w.set("a.u8", array_value(ValueType::kUint8,
                            {int_value(ValueType::kUint8, 7), int_value(ValueType::kUint8, 255)}));
  w.set("a.empty", array_value(ValueType::kUint64, {}));
  // Nested: [[1, 2], [], [3]] of uint16, and [["x"], ["y", "z"]] of strings.
  w.set("a.nested_u16",
        array_value(ValueType::kArray,
                    {array_value(ValueType::kUint16, {int_value(ValueType::kUint16, 1),
                                                      int_value(ValueType::kUint16, 2)}),
                     array_value(ValueType::kUint16, {}),
                     array_value(ValueType::kUint16, {int_value(ValueType::kUint16, 3)})}));
  MetaValue x{ValueType::kString, std::string("x")};
  MetaValue y{ValueType::kString, std::string("y")};
  MetaValue z{ValueType::kString, std::string("z")};
  w.set("a.nested_str", array_value(ValueType::kArray, {array_value(ValueType::kString, {x}),
                                                        array_value(ValueType::kString, {y, z})}));
  // Three levels deep.
  w.set("a.deep",
        array_value(
            ValueType::kArray,
            {array_value(ValueType::kArray,
                         {array_value(ValueType::kInt64, {int_value(ValueType::kInt64, -9)})})}));
  const auto bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes, "arr.gguf");
  ASSERT_TRUE(f) << f.error().message;

  EXPECT_EQ(f->get_string_array("a.str").value(),
            (std::vector<std::string>{"a", "", "ccc", "<｜User｜>"}));
  EXPECT_EQ(f->get_int_array("a.i32").value(), (std::vector<int64_t>{1, -2, 2147483647}));
  EXPECT_EQ(f->get_float_array("a.f32").value(), (std::vector<float>{0.5f, -1.25f}));
  EXPECT_EQ(f->get_int_array("a.u8").value(), (std::vector<int64_t>{7, 255}));
  EXPECT_EQ(f->get_float_array("a.u8").value(), (std::vector<float>{7.f, 255.f}));
  EXPECT_EQ(f->get_int_array("a.empty").value(), std::vector<int64_t>{});

  const MetaValue* n = f->find("a.nested_u16");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->type, ValueType::kArray);
  const auto& outer = std::get<std::shared_ptr<MetaArray>>(n->v);
  ASSERT_EQ(outer->elem_type, ValueType::kArray);
  ASSERT_EQ(outer->items.size(), 3u);
  const auto& a0 = std::get<std::shared_ptr<MetaArray>>(outer->items[0].v);
  EXPECT_EQ(a0->elem_type, ValueType::kUint16);
  ASSERT_EQ(a0->items.size(), 2u);
  EXPECT_EQ(std::get<uint64_t>(a0->items[1].v), 2u);
  EXPECT_EQ(std::get<std::shared_ptr<MetaArray>>(outer->items[1].v)->items.size(), 0u);
  EXPECT_EQ(std::get<uint64_t>(std::get<std::shared_ptr<MetaArray>>(outer->items[2].v)->items[0].v),
            3u);
  // A nested array is not an int array: a typed error, not a crash.
  auto bad = f->get_int_array("a.nested_u16");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kCorruptData);
  EXPECT_NE(bad.error().message.find("array of array"), std::string::npos) << bad.error().message;

  const auto& ns = std::get<std::shared_ptr<MetaArray>>(f->find("a.nested_str")->v);
  ASSERT_EQ(ns->items.size(), 2u);
  const auto& s1 = std::get<std::shared_ptr<MetaArray>>(ns->items[1].v);
  EXPECT_EQ(std::get<std::string>(s1->items[1].v), "z");

  const auto& d0 = std::get<std::shared_ptr<MetaArray>>(f->find("a.deep")->v);
  const auto& d1 = std::get<std::shared_ptr<MetaArray>>(d0->items[0].v);
  const auto& d2 = std::get<std::shared_ptr<MetaArray>>(d1->items[0].v);
  EXPECT_EQ(d2->elem_type, ValueType::kInt64);
  EXPECT_EQ(std::get<int64_t>(d2->items[0].v), -9);

  // Re-serializing what was read gives the same bytes (copy_metadata keeps order and types).
  GgufWriter w2;
  w2.copy_metadata(*f);
  EXPECT_EQ(w2.to_bytes(), bytes);
}

TEST(GgufRoundTrip, TypedGetterConversionsAndErrors) {
  GgufWriter w;
  w.set_int32("k.pos", 42);
  w.set_int32("k.neg", -1);
  w.set_uint32("k.u", 7);
  w.set_uint64("k.big", 0xFFFFFFFFFFFFFFFFull);
  w.set_bool("k.b", true);
  w.set_string("k.s", "text");
  w.set_float32("k.f", 2.5f);
  const auto bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes, "getters.gguf");
  ASSERT_TRUE(f) << f.error().message;

  EXPECT_EQ(*f->get_uint("k.pos").value(), 42u);  // any integer width
  EXPECT_EQ(*f->get_uint("k.b").value(), 1u);     // bool counts as integer
  EXPECT_EQ(*f->get_int("k.u").value(), 7);
  EXPECT_DOUBLE_EQ(*f->get_float("k.u").value(), 7.0);
  EXPECT_FALSE(f->get_uint("missing").value().has_value());
  EXPECT_FALSE(f->get_string_array("missing").value().has_value());
  EXPECT_FALSE(f->has("missing"));
  EXPECT_TRUE(f->has("k.s"));

  auto neg = f->get_uint("k.neg");
  ASSERT_FALSE(neg);
  EXPECT_EQ(neg.error().code, ErrorCode::kCorruptData);
  EXPECT_NE(neg.error().message.find("k.neg"), std::string::npos);
  auto big = f->get_int("k.big");
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("int64"), std::string::npos);
  auto s_as_int = f->get_uint("k.s");
  ASSERT_FALSE(s_as_int);
  EXPECT_NE(s_as_int.error().message.find("getters.gguf"), std::string::npos);
  EXPECT_NE(s_as_int.error().message.find("string"), std::string::npos);
  EXPECT_FALSE(f->get_string("k.u"));
  EXPECT_FALSE(f->get_bool("k.u"));
  EXPECT_FALSE(f->get_float("k.s"));
  EXPECT_FALSE(f->get_int("k.f"));
  EXPECT_FALSE(f->get_string_array("k.s"));
  EXPECT_FALSE(f->get_float_array("k.f"));
  EXPECT_EQ(f->architecture(), "");
}

TEST(GgufRoundTrip, SetReplacesInPlaceAndRemove) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_uint32("x.a", 1);
  w.set_uint32("x.b", 2);
  w.set_string("general.architecture", "qwen2");  // replaced, stays first
  w.remove("x.a");
  const auto bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes);
  ASSERT_TRUE(f) << f.error().message;
  ASSERT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata()[0].first, "general.architecture");
  EXPECT_EQ(f->architecture(), "qwen2");
  EXPECT_EQ(f->metadata()[1].first, "x.b");
}

TEST(GgufRoundTrip, TensorsDataAndAlignment) {
  for (uint32_t alignment : {1u, 8u, 32u, 64u, 4096u}) {
    GgufWriter w(alignment);
    w.set_string("general.architecture", "test");
    const std::vector<float> a = {1, 2, 3};  // 12 bytes: forces padding
    std::vector<uint8_t> q8(34 * 2);         // two q8_0 blocks
    for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 7);
    ASSERT_TRUE(w.add_tensor("a", DType::kF32, {3}, f32_bytes(a)));
    ASSERT_TRUE(w.add_tensor("blk.0.q", DType::kQ8_0, {32, 2}, q8));
    ASSERT_TRUE(w.add_tensor("e", DType::kF16, {0, 5}, {}));  // empty tensor
    ASSERT_TRUE(w.add_tensor("c", DType::kF32, {1, 1, 2, 1}, f32_bytes({9, 10})));
    const auto bytes = w.to_bytes();
    EXPECT_EQ(bytes.size(), w.file_size());
    auto f = GgufFile::from_memory(bytes, "t.gguf");
    ASSERT_TRUE(f) << "alignment " << alignment << ": " << f.error().message;
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->has("general.alignment"), alignment != 32);
    EXPECT_EQ(f->data_offset() % alignment, 0u);
    ASSERT_EQ(f->tensors().size(), 4u);
    const TensorInfo* ta = f->tensor("a");
    ASSERT_NE(ta, nullptr);
    EXPECT_EQ(ta->n_dims, 1u);
    EXPECT_EQ(ta->ne, (std::array<uint64_t, 4>{3, 1, 1, 1}));
    EXPECT_EQ(ta->size_bytes, 12u);
    EXPECT_EQ(std::memcmp(ta->data, a.data(), 12), 0);
    const TensorInfo* tq = f->tensor("blk.0.q");
    ASSERT_NE(tq, nullptr);
    EXPECT_EQ(tq->type, DType::kQ8_0);
    EXPECT_EQ(tq->n_rows(), 2u);
    EXPECT_EQ(tq->row_bytes(), 34u);
    EXPECT_EQ(tq->size_bytes, 68u);
    EXPECT_EQ(tq->offset % alignment, 0u);
    EXPECT_EQ(std::vector<uint8_t>(tq->data, tq->data + 68), q8);
    EXPECT_EQ(f->tensor("e")->size_bytes, 0u);
    EXPECT_EQ(f->tensor("e")->n_elements(), 0u);
    EXPECT_EQ(f->tensor("c")->n_dims, 4u);
    EXPECT_EQ(f->tensor("c")->n_elements(), 2u);
    EXPECT_EQ(f->tensors()[3].name, "c");  // file order kept
    EXPECT_EQ(f->tensor("nope"), nullptr);
  }
}

TEST(GgufRoundTrip, CopiedAlignmentKeyFollowsWriter) {
  GgufWriter w64(64);
  w64.set_string("general.architecture", "x");
  ASSERT_TRUE(w64.add_tensor("t", DType::kF32, {1}, f32_bytes({1})));
  const auto b64 = w64.to_bytes();
  auto f64 = GgufFile::from_memory(b64);
  ASSERT_TRUE(f64) << f64.error().message;
  EXPECT_EQ(f64->alignment(), 64u);
  // Copy into a default (32) writer: the key must now say 32, or readers would misplace data.
  GgufWriter w32;
  w32.copy_metadata(*f64);
  ASSERT_TRUE(w32.add_tensor("t", DType::kF32, {1}, f32_bytes({1})));
  const auto b32 = w32.to_bytes();
  auto f32 = GgufFile::from_memory(b32);
  ASSERT_TRUE(f32) << f32.error().message;
  EXPECT_EQ(f32->alignment(), 32u);
  EXPECT_EQ(*f32->get_uint("general.alignment").value(), 32u);
}

TEST(GgufRoundTrip, AddTensorValidation) {
  GgufWriter w;
  const std::vector<uint8_t> four(4);
  EXPECT_EQ(w.add_tensor("x", DType::kF32, {2}, four).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("", DType::kF32, {1}, four).error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(w.add_tensor(std::string(64, 'n'), DType::kF32, {1}, four));
  EXPECT_TRUE(w.add_tensor(std::string(63, 'n'), DType::kF32, {1}, four));
  EXPECT_FALSE(w.add_tensor("q", DType::kQ4_K, {128}, std::vector<uint8_t>(72)));  // ne0 % 256
  EXPECT_FALSE(w.add_tensor("d", DType::kF32, {1, 1, 1, 1, 1}, four));
  EXPECT_FALSE(w.add_tensor("d", DType::kF32, {}, four));
  EXPECT_TRUE(w.add_tensor("ok", DType::kF32, {1}, four));
  EXPECT_FALSE(w.add_tensor("ok", DType::kF32, {1}, four));  // duplicate
  EXPECT_FALSE(w.add_tensor_info("ok", DType::kF32, {1}));
  EXPECT_FALSE(w.add_tensor_info("huge", DType::kF32, {uint64_t{1} << 62, 8}));  // overflow
  EXPECT_EQ(w.tensor_count(), 2u);
}

TEST(GgufRoundTrip, AtomicWriteAndOpen) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "m.gguf").string();
  GgufWriter w(64);
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.block_count", 2);
  ASSERT_TRUE(w.add_tensor("w", DType::kF32, {4, 2}, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8})));
  ASSERT_TRUE(w.write(path));
  EXPECT_EQ(fs::file_size(path), w.file_size());
  // Only the final file exists: no temp files left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  {
    auto f = GgufFile::open(path);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(f->path(), path);
    EXPECT_EQ(f->file_size(), fs::file_size(path));
    EXPECT_EQ(f->architecture(), "llama");
    const float* p = reinterpret_cast<const float*>(f->tensor("w")->data);
    EXPECT_EQ(p[7], 8.f);
    // Overwriting an open (mapped) file replaces it atomically; the old mapping stays valid.
    GgufWriter w2;
    w2.set_string("general.architecture", "qwen2");
    ASSERT_TRUE(w2.write(path));
    EXPECT_EQ(p[7], 8.f);
    GgufFile moved = std::move(f.value());
    EXPECT_EQ(reinterpret_cast<const float*>(moved.tensor("w")->data)[0], 1.f);
  }
  auto f2 = GgufFile::open(path);
  ASSERT_TRUE(f2) << f2.error().message;
  EXPECT_EQ(f2->architecture(), "qwen2");

  // Writing into a missing directory fails cleanly.
  auto st = w.write((dir / "no_such_dir" / "m.gguf").string());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  fs::remove_all(dir);
}

TEST(GgufRoundTrip, OpenErrors) {
  auto missing = GgufFile::open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("/nonexistent/dir/model.gguf"), std::string::npos);
  const fs::path dir = temp_dir();
  auto is_dir = GgufFile::open(dir.string());
  ASSERT_FALSE(is_dir);
  EXPECT_EQ(is_dir.error().code, ErrorCode::kIo);
  const std::string empty = (dir / "empty.gguf").string();
  std::ofstream(empty).close();
  auto e = GgufFile::open(empty);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kCorruptData);
  EXPECT_NE(e.error().message.find("empty.gguf: byte 0"), std::string::npos) << e.error().message;
  fs::remove_all(dir);
}

TEST(GgufRoundTrip, StreamingWrite) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "s.gguf").string();
  GgufWriter w;
  w.set_string("general.architecture", "synth");
  ASSERT_TRUE(w.add_tensor_info("s0", DType::kF32, {5, 3}));
  ASSERT_TRUE(w.add_tensor("fixed", DType::kF32, {2}, f32_bytes({-1, -2})));
  ASSERT_TRUE(w.add_tensor_info("s2", DType::kQ8_0, {64}));
  // write() refuses tensors without data.
  EXPECT_EQ(w.write(path).error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(path));

  std::vector<size_t> calls;
  auto st = w.write_streaming(path, [&](size_t index, std::span<uint8_t> out) -> Status {
    calls.push_back(index);
    for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], 0) << "buffer not zeroed";
    if (index == 0) {
      EXPECT_EQ(out.size(), 60u);
      for (size_t i = 0; i < 15; ++i) {
        const float v = static_cast<float>(i) * 0.5f;
        std::memcpy(out.data() + i * 4, &v, 4);
      }
    } else {
      EXPECT_EQ(out.size(), 68u);
      std::fill(out.begin(), out.end(), uint8_t{0xAB});
    }
    return Status::ok();
  });
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(calls, (std::vector<size_t>{0, 2}));
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(reinterpret_cast<const float*>(f->tensor("s0")->data)[14], 7.f);
  EXPECT_EQ(reinterpret_cast<const float*>(f->tensor("fixed")->data)[1], -2.f);
  EXPECT_EQ(f->tensor("s2")->data[67], 0xAB);
  EXPECT_EQ(f->file_size(), w.file_size());
  // to_bytes gives the same layout with zeros for streamed tensors.
  const auto mem = w.to_bytes();
  auto fm = GgufFile::from_memory(mem);
  ASSERT_TRUE(fm) << fm.error().message;
  EXPECT_EQ(fm->tensor("s2")->offset, f->tensor("s2")->offset);
  EXPECT_EQ(fm->tensor("s2")->data[0], 0);

  // A fill error aborts: returned unchanged, no file and no temp file left.
  const std::string path2 = (dir / "fail.gguf").string();
  auto bad = w.write_streaming(path2, [](size_t index, std::span<uint8_t>) -> Status {
    if (index == 2) return make_error(ErrorCode::kInternal, "generator exploded");
    return Status::ok();
  });
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInternal);
  EXPECT_EQ(bad.error().message, "generator exploded");
  EXPECT_FALSE(fs::exists(path2));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(GgufRoundTrip, ValueTypeNames) {
  EXPECT_EQ(value_type_name(ValueType::kUint8), "uint8");
  EXPECT_EQ(value_type_name(ValueType::kFloat64), "float64");
  EXPECT_EQ(value_type_name(ValueType::kArray), "array");
  EXPECT_EQ(value_type_name(static_cast<ValueType>(99)), "unknown");
}

}  // namespace
}  // namespace enclave::gguf
