// enclave synth: shapes, metadata, type plans, determinism, loadability.
#include "model/synth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/fp16.h"
#include "gguf/gguf_file.h"
#include "model/chat_templates.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace enclave::model {
namespace {

std::string vocab(const char* name) {
  return std::string(ENCLAVE_FIXTURES_DIR) + "/tokenizer/" + name;
}

class SynthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("enclave_synth_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const char* name) { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

// With no vocabulary file the demo model carries a built-in byte-level vocabulary that the
// tokenizer and the R1 chat template accept, and that round-trips any UTF-8 text.
TEST_F(SynthTest, BuiltinByteVocabularyWorksWithTokenizerAndTemplate) {
  SynthOptions o;
  o.preset = "demo-tiny";
  o.type_name = "Q8_0";
  o.out_path = path("builtin.gguf");
  auto report = synthesize(o);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->n_vocab, 265);
  auto file = gguf::GgufFile::open(o.out_path);
  ASSERT_TRUE(file) << file.error().message;
  auto tok = tokenizer::Tokenizer::from_gguf(*file);
  ASSERT_TRUE(tok) << tok.error().message;
  const std::string text = "Hello, 世界! <think>x</think>";
  const std::vector<int32_t> ids = tok->encode(text, /*add_bos=*/false, /*parse_special=*/true);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_TRUE(tok->is_eog(tok->eos_id()));
  auto tmpl = tokenizer::ChatTemplate::from_gguf(*file);
  ASSERT_TRUE(tmpl) << tmpl.error().message;
  std::vector<tokenizer::ChatMessage> msgs(1);
  msgs[0].role = "user";
  msgs[0].content = "hi";
  auto prompt = tmpl->render(msgs, true);
  ASSERT_TRUE(prompt) << prompt.error().message;
  const std::vector<int32_t> pids = tok->encode(*prompt, false, true);
  EXPECT_EQ(tok->decode(pids), *prompt);
  auto model = Model::load(o.out_path);
  ASSERT_TRUE(model) << model.error().message;
}

TEST_F(SynthTest, DemoTinyLoadsAndDecodes) {
  SynthOptions o;
  o.preset = "demo-tiny";
  o.type_name = "Q4_K_M";
  o.vocab_path = vocab("tiny-bpe-qwen2.vocab.gguf");
  o.out_path = path("demo.gguf");
  auto r = synthesize(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->n_vocab, 961);
  EXPECT_EQ(r->file_bytes, std::filesystem::file_size(o.out_path));

  auto m = Model::load(o.out_path);
  ASSERT_TRUE(m) << m.error().message;
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.arch, Arch::kQwen2);
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_vocab, 961);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.tied_output);
  const auto& f = (*m)->file();
  EXPECT_EQ(**f.get_string("tokenizer.chat_template"), std::string(kR1DistillQwenTemplate));
  EXPECT_NE((**f.get_string("general.name")).find("(random weights, demo)"), std::string::npos);
  EXPECT_EQ(**f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(**f.get_uint("general.file_type"), 15u);
  // Rows of 256 take K-quants; output.weight is Q6_K; use_more_bits(i, 2) holds for layer 1 only.
  EXPECT_EQ(f.tensor("output.weight")->type, DType::kQ6_K);
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight")->type, DType::kQ4_K);
  EXPECT_EQ(f.tensor("blk.0.attn_v.weight")->type, DType::kQ4_K);
  EXPECT_EQ(f.tensor("blk.1.attn_v.weight")->type, DType::kQ6_K);
  EXPECT_EQ(f.tensor("blk.0.attn_norm.weight")->type, DType::kF32);
  // ffn_down has rows of 768 = 3 * 256: K-quant possible.
  EXPECT_EQ(f.tensor("blk.1.ffn_down.weight")->type, DType::kQ6_K);

  auto ctx = Context::create(**m, 1, 64, KvType::kF16, 2);
  ASSERT_TRUE(ctx);
  Batch b;
  for (int i = 0; i < 5; ++i) b.add(10 + i, i, 0, i == 4);
  std::vector<float> logits;
  ASSERT_TRUE((*ctx)->decode(b, logits).is_ok());
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
}

TEST_F(SynthTest, R1Qwen15BShapesWithLayerOverride) {
  SynthOptions o;
  o.preset = "r1-distill-qwen-1.5b";
  o.type_name = "Q8_0";
  o.layers = 1;
  o.vocab_path = vocab("tiny-bpe-qwen2.vocab.gguf");
  o.out_path = path("r1.gguf");
  auto r = synthesize(o);
  ASSERT_TRUE(r) << r.error().message;
  auto m = Model::load(o.out_path);
  ASSERT_TRUE(m) << m.error().message;
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.n_embd, 1536);
  EXPECT_EQ(c.n_layer, 1);
  EXPECT_EQ(c.n_head, 12);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.n_ff, 8960);
  EXPECT_EQ(c.n_ctx_train, 131072);
  EXPECT_FLOAT_EQ(c.rope_base, 10000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  const auto& f = (*m)->file();
  EXPECT_EQ(f.tensor("output.weight")->type, DType::kQ8_0);
  EXPECT_EQ(f.tensor("blk.0.attn_q.bias")->type, DType::kF32);
  // Weights look like N(0, 0.02).
  const auto* t = f.tensor("token_embd.weight");
  std::vector<float> row(1536);
  double ss = 0.0, sum = 0.0;
  const int rows = 64;
  for (int r0 = 0; r0 < rows; ++r0) {
    const auto* blk = t->data + static_cast<size_t>(r0) * t->row_bytes();
    for (int b = 0; b < 1536 / 32; ++b) {
      const uint8_t* p = blk + b * 34;
      uint16_t d;
      std::memcpy(&d, p, 2);
      for (int j = 0; j < 32; ++j) {
        const float x = static_cast<float>(static_cast<int8_t>(p[2 + j])) * fp16_to_f32(d);
        sum += x;
        ss += x * x;
      }
    }
  }
  const double n = rows * 1536.0;
  EXPECT_NEAR(sum / n, 0.0, 0.001);
  EXPECT_NEAR(std::sqrt(ss / n), 0.02, 0.001);
}

TEST_F(SynthTest, DeterministicAcrossThreadCounts) {
  SynthOptions o;
  o.preset = "demo-tiny";
  o.type_name = "Q4_0";
  o.seed = 7;
  o.vocab_path = vocab("tiny-bpe-qwen2.vocab.gguf");
  o.out_path = path("a.gguf");
  o.n_threads = 1;
  ASSERT_TRUE(synthesize(o));
  o.out_path = path("b.gguf");
  o.n_threads = 2;
  ASSERT_TRUE(synthesize(o));
  o.out_path = path("c.gguf");
  o.seed = 8;
  ASSERT_TRUE(synthesize(o));
  auto read = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(read(path("a.gguf")), read(path("b.gguf")));
  EXPECT_NE(read(path("a.gguf")), read(path("c.gguf")));
}

TEST(SynthPlan, Q4KMRulesFor28Layers) {
  uint32_t ftype = 0;
  auto plan = builtin_type_plan("q4_k_m", 28, &ftype);
  ASSERT_TRUE(plan);
  EXPECT_EQ(ftype, 15u);
  const std::vector<uint64_t> m = {1536, 256};
  EXPECT_EQ((*plan)("blk.0.attn_norm.weight", {1536}), DType::kF32);
  EXPECT_EQ((*plan)("output.weight", {1536, 102400}), DType::kQ6_K);
  EXPECT_EQ((*plan)("token_embd.weight", {1536, 102400}), DType::kQ4_K);
  // use_more_bits(i, 28): i < 3, i >= 24, (i - 3) % 3 == 2.
  EXPECT_EQ((*plan)("blk.0.attn_v.weight", m), DType::kQ6_K);
  EXPECT_EQ((*plan)("blk.3.attn_v.weight", m), DType::kQ4_K);
  EXPECT_EQ((*plan)("blk.5.ffn_down.weight", {8960, 1536}), DType::kQ6_K);
  EXPECT_EQ((*plan)("blk.6.ffn_down.weight", {8960, 1536}), DType::kQ4_K);
  EXPECT_EQ((*plan)("blk.27.ffn_down.weight", {8960, 1536}), DType::kQ6_K);
  EXPECT_EQ((*plan)("blk.6.attn_q.weight", {1536, 1536}), DType::kQ4_K);
  // Row not a multiple of 256: Q4_K falls back to Q5_0.
  EXPECT_EQ((*plan)("blk.6.attn_q.weight", {160, 1536}), DType::kQ5_0);

  auto q40 = builtin_type_plan("Q4_0", 28, &ftype);
  ASSERT_TRUE(q40);
  EXPECT_EQ(ftype, 2u);
  EXPECT_EQ((*q40)("output.weight", {1536, 102400}), DType::kQ6_K);
  EXPECT_EQ((*q40)("blk.0.ffn_up.weight", {1536, 8960}), DType::kQ4_0);
  auto f16 = builtin_type_plan("F16", 28, &ftype);
  ASSERT_TRUE(f16);
  EXPECT_EQ((*f16)("output.weight", {1536, 102400}), DType::kF16);
  EXPECT_FALSE(builtin_type_plan("Q9_X", 28, &ftype));
}

TEST_F(SynthTest, BadArguments) {
  SynthOptions o;
  o.preset = "gpt-5";
  o.vocab_path = vocab("tiny-bpe-qwen2.vocab.gguf");
  o.out_path = path("x.gguf");
  auto r = synthesize(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("r1-distill-qwen-1.5b"), std::string::npos);
  o.preset = "demo-tiny";
  o.vocab_path = path("missing.gguf");
  EXPECT_FALSE(synthesize(o));
  EXPECT_FALSE(std::filesystem::exists(o.out_path));
}

}  // namespace
}  // namespace enclave::model
