// `enclave quantize` end to end: runs the built binary on the quantization fixture and on a small
// synthetic llama-shaped model, then checks the output with the GGUF reader and our dequantizer.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "kernels/quantize.h"
#include "quant_test_util.h"

namespace enclave::kernels {
namespace {

namespace fs = std::filesystem;
using testing::quant_fixture;

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout + stderr
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

RunResult run_enclave(const std::string& args) {
  const std::string cmd =
      quote(std::string(ENCLAVE_BINARY_DIR) + "/src/cli/enclave") + " " + args + " 2>&1";
  RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class QuantizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("enclave-quantize-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

uint64_t meta_uint(const gguf::GgufFile& f, const std::string& key) {
  auto v = f.get_uint(key);
  EXPECT_TRUE(v.has_value() && v->has_value()) << key;
  return v.has_value() && v->has_value() ? **v : ~0ull;
}

TEST_F(QuantizeCli, EveryTypeMatchesReferenceRmse) {
  auto src = gguf::GgufFile::open(quant_fixture("src-f32.gguf"));
  ASSERT_TRUE(src.has_value()) << src.error().message;
  const std::vector<std::pair<std::string, uint64_t>> types = {
      {"F16", 1},  {"BF16", 32}, {"Q8_0", 7},  {"Q4_0", 2},  {"Q4_1", 3},  {"Q5_0", 8},
      {"Q5_1", 9}, {"Q2_K", 10}, {"Q3_K", 11}, {"Q4_K", 14}, {"Q5_K", 16}, {"Q6_K", 18}};
  for (const auto& [type_name, file_type] : types) {
    SCOPED_TRACE(type_name);
    const std::string out = path(type_name + ".gguf");
    const RunResult r = run_enclave("quantize " + quote(src->path()) + " " + quote(out) + " " +
                                    type_name + " --threads 2");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("4 tensors"), std::string::npos) << r.output;
    auto q = gguf::GgufFile::open(out);
    ASSERT_TRUE(q.has_value()) << q.error().message;
    EXPECT_EQ(meta_uint(*q, "general.file_type"), file_type);
    EXPECT_EQ(meta_uint(*q, "general.quantization_version"), 2u);
    auto name = q->get_string("general.name");
    ASSERT_TRUE(name.has_value() && name->has_value());
    EXPECT_EQ(**name, *src->get_string("general.name").value());  // metadata copied
    ASSERT_EQ(q->tensors().size(), src->tensors().size());
    for (const auto& t : q->tensors()) {
      SCOPED_TRACE(t.name);
      EXPECT_EQ(t.type, *dtype_from_name(type_name));
      const gguf::TensorInfo* s = src->tensor(t.name);
      ASSERT_NE(s, nullptr);
      ASSERT_EQ(t.ne, s->ne);
      const auto y = testing::tensor_to_f32(t);
      const auto x = testing::tensor_to_f32(*s);
      const double err = testing::rmse(x.data(), y.data(), x.size());
      EXPECT_LE(err, testing::reference_rmse(type_name, t.name) * 1.05);
    }
  }
}

// A llama-shaped model: 8 layers, norms, a router-like tensor, tensors whose ne[0] forbids
// K-quants, an F16 input tensor and an already-quantized one.
std::string write_tiny_model(const std::string& file) {
  gguf::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "tiny-mix");
  w.set_uint32("llama.block_count", 8);
  w.set_uint32("general.file_type", 0);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  auto add = [&](const std::string& name, std::vector<uint64_t> ne, DType type = DType::kF32) {
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    std::vector<float> x(n);
    for (float& v : x) v = dist(rng);
    std::vector<uint8_t> bytes(dtype_row_bytes(type, n));
    quantize_row(type, x.data(), bytes.data(), static_cast<int64_t>(n));
    const Status st = w.add_tensor(name, type, ne, bytes);
    EXPECT_TRUE(st.is_ok()) << st.error().message;
  };
  add("token_embd.weight", {256, 16});
  add("output_norm.weight", {256});
  add("output.weight", {256, 16});
  for (int i = 0; i < 8; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", {256});
    add(p + "attn_v.weight", {256, 8});
    add(p + "ffn_down.weight", {512, 8});
  }
  add("blk.0.ffn_gate_inp.weight", {256, 4});
  add("blk.0.attn_k_b.weight", {128, 8});  // K-quant impossible: Q4_K -> Q5_0
  add("blk.0.odd.weight", {40, 2});        // no 32-block either: -> F16
  add("blk.1.ffn_up.weight", {256, 8}, DType::kF16);
  add("blk.2.ffn_up.weight", {256, 8}, DType::kQ8_0);
  const Status st = w.write(file);
  EXPECT_TRUE(st.is_ok()) << st.error().message;
  return file;
}

TEST_F(QuantizeCli, Q4_K_MMixFollowsLlamaRules) {
  const std::string in = write_tiny_model(path("tiny.gguf"));
  const std::string out = path("tiny-q4km.gguf");
  const RunResult r = run_enclave("quantize " + quote(in) + " " + quote(out) + " q4_k_m -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("already quantized"), std::string::npos) << r.output;  // Q8_0 input
  auto q = gguf::GgufFile::open(out);
  ASSERT_TRUE(q.has_value()) << q.error().message;
  EXPECT_EQ(meta_uint(*q, "general.file_type"), 15u);
  auto type_of = [&](const std::string& name) {
    const gguf::TensorInfo* t = q->tensor(name);
    EXPECT_NE(t, nullptr) << name;
    return t ? t->type : DType::kI8;
  };
  EXPECT_EQ(type_of("token_embd.weight"), DType::kQ4_K);
  EXPECT_EQ(type_of("output.weight"), DType::kQ6_K);
  EXPECT_EQ(type_of("output_norm.weight"), DType::kF32);
  EXPECT_EQ(type_of("blk.0.ffn_gate_inp.weight"), DType::kF32);
  EXPECT_EQ(type_of("blk.0.attn_k_b.weight"), DType::kQ5_0);
  EXPECT_EQ(type_of("blk.0.odd.weight"), DType::kF16);
  EXPECT_EQ(type_of("blk.1.ffn_up.weight"), DType::kQ4_K);
  EXPECT_EQ(type_of("blk.2.ffn_up.weight"), DType::kQ4_K);
  // use_more_bits(i, 8): layers 0, 3, 6, 7 get Q6_K for attn_v and ffn_down.
  for (int i = 0; i < 8; ++i) {
    const bool more = i == 0 || i == 3 || i == 6 || i == 7;
    const std::string p = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(type_of(p + "attn_v.weight"), more ? DType::kQ6_K : DType::kQ4_K) << i;
    EXPECT_EQ(type_of(p + "ffn_down.weight"), more ? DType::kQ6_K : DType::kQ4_K) << i;
    EXPECT_EQ(type_of(p + "attn_norm.weight"), DType::kF32) << i;
  }
  // Copied tensors are byte-identical; converted ones stay close to the source.
  auto src = gguf::GgufFile::open(in);
  ASSERT_TRUE(src.has_value());
  const auto* a = src->tensor("output_norm.weight");
  const auto* b = q->tensor("output_norm.weight");
  ASSERT_EQ(a->size_bytes, b->size_bytes);
  EXPECT_EQ(0, std::memcmp(a->data, b->data, a->size_bytes));
  for (const auto& t : q->tensors()) {
    const auto x = testing::tensor_to_f32(*src->tensor(t.name));
    const auto y = testing::tensor_to_f32(t);
    EXPECT_LT(testing::rmse(x.data(), y.data(), x.size()), 0.1) << t.name;
  }
}

TEST_F(QuantizeCli, Q8_0KeepsOutputAtQ8_0AndF16ConvertsEverything) {
  const std::string in = write_tiny_model(path("tiny.gguf"));
  ASSERT_EQ(run_enclave("quantize " + quote(in) + " " + quote(path("q8.gguf")) + " Q8_0").exit_code,
            0);
  auto q8 = gguf::GgufFile::open(path("q8.gguf"));
  ASSERT_TRUE(q8.has_value());
  EXPECT_EQ(q8->tensor("output.weight")->type, DType::kQ8_0);
  EXPECT_EQ(q8->tensor("blk.3.attn_v.weight")->type, DType::kQ8_0);
  EXPECT_EQ(q8->tensor("blk.0.odd.weight")->type, DType::kF16);  // 40 % 32 != 0

  ASSERT_EQ(run_enclave("quantize " + quote(in) + " " + quote(path("f16.gguf")) + " F16").exit_code,
            0);
  auto f16 = gguf::GgufFile::open(path("f16.gguf"));
  ASSERT_TRUE(f16.has_value());
  EXPECT_EQ(f16->tensor("output.weight")->type, DType::kF16);
  EXPECT_EQ(f16->tensor("blk.2.ffn_up.weight")->type, DType::kF16);
  EXPECT_EQ(f16->tensor("output_norm.weight")->type, DType::kF32);
  EXPECT_EQ(meta_uint(*f16, "general.file_type"), 1u);
}

TEST_F(QuantizeCli, RefusesToOverwriteInput) {
  const std::string in = path("src.gguf");
  fs::copy_file(quant_fixture("src-f32.gguf"), in);
  const auto size_before = fs::file_size(in);
  RunResult r = run_enclave("quantize " + quote(in) + " " + quote(in) + " Q4_0 --force");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("input"), std::string::npos) << r.output;
  // Through a hard link (same inode, different path).
  fs::create_hard_link(in, path("link.gguf"));
  r = run_enclave("quantize " + quote(in) + " " + quote(path("link.gguf")) + " Q4_0 --force");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(fs::file_size(in), size_before);
  EXPECT_TRUE(gguf::GgufFile::open(in).has_value());
}

TEST_F(QuantizeCli, ExistingOutputNeedsForce) {
  const std::string out = path("out.gguf");
  { std::ofstream(out) << "keep me"; }
  const std::string src = quote(quant_fixture("src-f32.gguf"));
  RunResult r = run_enclave("quantize " + src + " " + quote(out) + " Q4_0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--force"), std::string::npos) << r.output;
  EXPECT_EQ(fs::file_size(out), 7u);
  r = run_enclave("quantize " + src + " " + quote(out) + " Q4_0 --force");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(gguf::GgufFile::open(out).has_value());
}

TEST_F(QuantizeCli, UnknownTypeListsValidOnes) {
  const RunResult r = run_enclave("quantize " + quote(quant_fixture("src-f32.gguf")) + " " +
                                  quote(path("x.gguf")) + " Q7_K");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("Q7_K"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Q4_K_M"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("x.gguf")));
}

TEST_F(QuantizeCli, UnreadableInputFails) {
  RunResult r = run_enclave("quantize " + quote(path("missing.gguf")) + " " +
                            quote(path("x.gguf")) + " Q4_0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("missing.gguf"), std::string::npos) << r.output;
  { std::ofstream(path("junk.gguf")) << "definitely not gguf"; }
  r = run_enclave("quantize " + quote(path("junk.gguf")) + " " + quote(path("x.gguf")) + " Q4_0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_FALSE(fs::exists(path("x.gguf")));
}

}  // namespace
}  // namespace enclave::kernels
