// Model::load: configs of the fixtures and clear errors for broken or unsupported files.
#include "model/model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <span>
#include <string>
#include <utility>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "kernels/repack.h"
#include "ref_data.h"

namespace enclave::model {
namespace {

using testing::fixture_path;

TEST(ModelLoad, LlamaTinyConfig) {
  auto m = Model::load(fixture_path("llama-tiny-Q4_0.gguf"));
  ASSERT_TRUE(m) << m.error().message;
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.arch, Arch::kLlama);
  EXPECT_EQ(c.arch_name, "llama");
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.n_ff, 768);
  EXPECT_EQ(c.n_rot, 32);
  EXPECT_EQ(c.n_ctx_train, 512);
  EXPECT_EQ(c.rope_type, RopeType::kNorm);
  EXPECT_FLOAT_EQ(c.rope_base, 10000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.tied_output);
  EXPECT_GT((*m)->weight_bytes(), 900000u);
  EXPECT_LE((*m)->weight_bytes(), (*m)->file().file_size());
}

// A copied file's quantized matrices of a rows16 type (Q4_0, Q8_0, Q4_K, Q6_K; all 14 layer
// matrices and the output of llama-tiny, never token_embd) are repacked into the kernels' rows16
// decode layout where the CPU prefers it; a mapped file keeps the GGUF layout. Both compute the
// same logits up to float summation order: checked on the prompt and two generated tokens. (Not
// much further: activations are quantized, so a last-bit difference of an input can move one
// activation quant by a step. Over 24 steps both layouts show isolated ~1e-2 spikes, Q4_0 at
// steps 11, 14 and 17, while the kernels agree to 1e-5 on any input, kernels/repack_test.cc.)
TEST(ModelLoad, CopiedMatricesAreRepackedForDecode) {
  const std::pair<const char*, DType> kTypes[] = {{"Q4_0", DType::kQ4_0},
                                                  {"Q8_0", DType::kQ8_0},
                                                  {"Q4_K", DType::kQ4_K},
                                                  {"Q6_K", DType::kQ6_K}};
  for (const auto& [type, dtype] : kTypes) {
    const std::string file = std::string("llama-tiny-") + type + ".gguf";
    auto copied = Model::load(fixture_path(file), gguf::FileMemory::kCopy);
    auto mapped = Model::load(fixture_path(file), gguf::FileMemory::kMap);
    ASSERT_TRUE(copied) << copied.error().message;
    ASSERT_TRUE(mapped) << mapped.error().message;
    const bool preferred = kernels::rows16_preferred(dtype, 256, 256);
    if (dtype == DType::kQ4_0) {
      EXPECT_EQ((*copied)->repacked_matrices(), preferred ? 15 : 0);
    }
    EXPECT_EQ((*copied)->repacked_matrices() > 0, preferred) << file;
    EXPECT_EQ((*mapped)->repacked_matrices(), 0) << file;
    const std::vector<int32_t> prompt = {1, 15, 27, 300, 9, 44};
    std::vector<std::vector<float>> logits(2);
    for (int i = 0; i < 2; ++i) {
      const Model& m = i == 0 ? **copied : **mapped;
      auto ctx = Context::create(m, 1, 64, KvType::kF16, 2);
      ASSERT_TRUE(ctx) << ctx.error().message;
      Batch b;
      for (size_t t = 0; t < prompt.size(); ++t) {
        b.add(prompt[t], static_cast<int32_t>(t), 0, t + 1 == prompt.size());
      }
      ASSERT_TRUE((*ctx)->decode(b, logits[i]).is_ok());  // prompt: AMX or the SIMD kernels
      for (int32_t step = 0; step < 2; ++step) {          // then decode steps (matrix-vector)
        b.clear();
        b.add(5 + step, static_cast<int32_t>(prompt.size()) + step, 0, true);
        ASSERT_TRUE((*ctx)->decode(b, logits[i]).is_ok());
      }
    }
    ASSERT_EQ(logits[0].size(), logits[1].size());
    double num = 0.0, den = 0.0;
    for (size_t k = 0; k < logits[0].size(); ++k) {
      num += (logits[0][k] - logits[1][k]) * static_cast<double>(logits[0][k] - logits[1][k]);
      den += static_cast<double>(logits[1][k]) * logits[1][k];
    }
    EXPECT_LE(std::sqrt(num / den), 1e-4) << file;
  }
}

TEST(ModelLoad, Qwen2TinyConfig) {
  auto m = Model::load(fixture_path("qwen2-tiny-F32.gguf"));
  ASSERT_TRUE(m) << m.error().message;
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.arch, Arch::kQwen2);
  EXPECT_EQ(c.n_vocab, 961);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope_type, RopeType::kNeox);
  EXPECT_FLOAT_EQ(c.rope_base, 1000000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.tied_output);
}

TEST(ModelLoad, Stories260KDefaultsRopeBase) {
  auto m = Model::load(fixture_path("stories260K.gguf"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_FLOAT_EQ((*m)->config().rope_base, 10000.0f);
  EXPECT_EQ((*m)->config().head_dim, 8);
  EXPECT_EQ((*m)->config().n_layer, 5);
}

TEST(ModelLoad, Deepseek2IsUnsupportedByName) {
  for (const char* f : {"deepseek2-lite-tiny-F32.gguf", "deepseek2-v3-tiny-Q4_K.gguf"}) {
    auto m = Model::load(fixture_path(f));
    ASSERT_FALSE(m) << f;
    EXPECT_EQ(m.error().code, ErrorCode::kUnsupported);
    EXPECT_NE(m.error().message.find("deepseek2"), std::string::npos) << m.error().message;
  }
}

TEST(ModelLoad, MissingFileIsAnError) {
  auto m = Model::load("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(m);
}

// Rewrites llama-tiny-F32 with an edit applied, into a temp file.
class BrokenFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("enclave_model_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // `rename`: tensor name -> replacement name ("" drops it); `swap_data`: use another tensor's
  // bytes and shape.
  std::string write(const std::string& arch, const std::string& drop,
                    const std::string& reshape_name = "", const std::string& reshape_from = "") {
    auto src = gguf::GgufFile::open(fixture_path(source_));
    EXPECT_TRUE(src);
    gguf::GgufWriter w;
    w.copy_metadata(*src);
    if (!arch.empty()) w.set_string("general.architecture", arch);
    for (const gguf::TensorInfo& t : src->tensors()) {
      if (t.name == drop) continue;
      const gguf::TensorInfo* data = &t;
      if (t.name == reshape_name) data = src->tensor(reshape_from);
      std::vector<uint64_t> ne(data->ne.begin(), data->ne.begin() + data->n_dims);
      EXPECT_TRUE(w.add_tensor(t.name, data->type, ne,
                               std::span<const uint8_t>(data->data, data->size_bytes))
                      .is_ok());
    }
    const std::string path = (dir_ / ("m" + std::to_string(n_++) + ".gguf")).string();
    EXPECT_TRUE(w.write(path).is_ok());
    return path;
  }

  std::filesystem::path dir_;
  std::string source_ = "llama-tiny-F32.gguf";
  int n_ = 0;
};

TEST_F(BrokenFiles, UnsupportedArchitectureNamed) {
  auto m = Model::load(write("gpt-neox", ""));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kUnsupported);
  EXPECT_NE(m.error().message.find("gpt-neox"), std::string::npos) << m.error().message;
}

TEST_F(BrokenFiles, MissingTensorNamed) {
  auto m = Model::load(write("", "blk.1.ffn_up.weight"));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kNotFound);
  EXPECT_NE(m.error().message.find("blk.1.ffn_up.weight"), std::string::npos) << m.error().message;
}

TEST_F(BrokenFiles, MissingOutputNormNamed) {
  auto m = Model::load(write("", "output_norm.weight"));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kNotFound);
  EXPECT_NE(m.error().message.find("output_norm.weight"), std::string::npos);
}

TEST_F(BrokenFiles, ShapeMismatchNamed) {
  // attn_k expects [256, 128]; give it attn_q's [256, 256].
  auto m = Model::load(write("", "", "blk.0.attn_k.weight", "blk.0.attn_q.weight"));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kCorruptData);
  EXPECT_NE(m.error().message.find("blk.0.attn_k.weight"), std::string::npos) << m.error().message;
  EXPECT_NE(m.error().message.find("[256, 256]"), std::string::npos) << m.error().message;
}

TEST_F(BrokenFiles, KeysOfAnotherArchitectureAreMissing) {
  // llama-tiny relabelled qwen2: no qwen2.* hyper-parameters.
  auto m = Model::load(write("qwen2", ""));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kCorruptData);
  EXPECT_NE(m.error().message.find("qwen2.context_length"), std::string::npos) << m.error().message;
}

TEST_F(BrokenFiles, QwenMissingBiasNamed) {
  source_ = "qwen2-tiny-F32.gguf";
  auto m = Model::load(write("", "blk.1.attn_v.bias"));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kNotFound);
  EXPECT_NE(m.error().message.find("blk.1.attn_v.bias"), std::string::npos) << m.error().message;
}

TEST_F(BrokenFiles, TiedOutputWhenOutputMissing) {
  auto m = Model::load(write("", "output.weight"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_TRUE((*m)->config().tied_output);
}

}  // namespace
}  // namespace enclave::model
