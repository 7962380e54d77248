// enclave synth: shapes, metadata, the quantization plan it shares with `enclave quantize`,
// determinism, loadability.
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
#include "gguf/gguf_writer.h"
#include "model/chat_templates.h"
#include "model/model.h"
#include "model/quantize_plan.h"
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

// The tensors of a 28-layer qwen2 model (R1-Distill-Qwen-1.5B shapes), in file order.
std::vector<TensorDesc> qwen2_tensors(int n_layer) {
  std::vector<TensorDesc> t;
  auto add = [&](std::string name, std::vector<uint64_t> ne) {
    TensorDesc d;
    d.name = std::move(name);
    d.n_dims = static_cast<uint32_t>(ne.size());
    std::copy(ne.begin(), ne.end(), d.ne.begin());
    t.push_back(std::move(d));
  };
  add("token_embd.weight", {1536, 151936});
  add("output_norm.weight", {1536});
  add("output.weight", {1536, 151936});
  for (int i = 0; i < n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", {1536});
    add(b + "attn_q.weight", {1536, 1536});
    add(b + "attn_q.bias", {1536});
    add(b + "attn_v.weight", {1536, 256});
    add(b + "attn_output.weight", {1536, 1536});
    add(b + "ffn_down.weight", {8960, 1536});
  }
  return t;
}

DType planned(const std::vector<TensorDesc>& tensors, const std::vector<TensorPlan>& plans,
              const std::string& name) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].name == name) return plans[i].type;
  }
  ADD_FAILURE() << "no tensor " << name;
  return DType::kF32;
}

TEST(QuantizePlan, Q4KMRulesFor28Layers) {
  const auto target = parse_quant_target("q4_k_m");
  ASSERT_TRUE(target);
  EXPECT_EQ(target->name, "Q4_K_M");
  EXPECT_EQ(target->file_type, 15u);
  const auto tensors = qwen2_tensors(28);
  const auto plans = plan_quantization(*target, {"qwen2", 28, 0}, tensors);
  ASSERT_EQ(plans.size(), tensors.size());
  auto type = [&](const std::string& name) { return planned(tensors, plans, name); };
  EXPECT_EQ(type("blk.0.attn_norm.weight"), DType::kF32);
  EXPECT_EQ(type("blk.0.attn_q.bias"), DType::kF32);
  EXPECT_EQ(type("output.weight"), DType::kQ6_K);
  EXPECT_EQ(type("token_embd.weight"), DType::kQ4_K);
  // use_more_bits(i, 28): i < 3, i >= 24, (i - 3) % 3 == 2.
  EXPECT_EQ(type("blk.0.attn_v.weight"), DType::kQ6_K);
  EXPECT_EQ(type("blk.3.attn_v.weight"), DType::kQ4_K);
  EXPECT_EQ(type("blk.5.ffn_down.weight"), DType::kQ6_K);
  EXPECT_EQ(type("blk.6.ffn_down.weight"), DType::kQ4_K);
  EXPECT_EQ(type("blk.27.ffn_down.weight"), DType::kQ6_K);
  EXPECT_EQ(type("blk.6.attn_q.weight"), DType::kQ4_K);
  EXPECT_EQ(type("blk.6.attn_output.weight"), DType::kQ4_K);
}

TEST(QuantizePlan, SmallMixesAndPlainTypes) {
  const auto tensors = qwen2_tensors(28);
  // Q4_K_S: attn_v of the first 4 layers and ffn_down of the first eighth get Q5_K.
  const auto q4ks = parse_quant_target("Q4_K_S");
  ASSERT_TRUE(q4ks);
  const auto s = plan_quantization(*q4ks, {"qwen2", 28, 0}, tensors);
  EXPECT_EQ(planned(tensors, s, "blk.3.attn_v.weight"), DType::kQ5_K);
  EXPECT_EQ(planned(tensors, s, "blk.4.attn_v.weight"), DType::kQ4_K);
  EXPECT_EQ(planned(tensors, s, "blk.2.ffn_down.weight"), DType::kQ5_K);
  EXPECT_EQ(planned(tensors, s, "blk.3.ffn_down.weight"), DType::kQ4_K);
  // Q3_K_M: attn_output raised to Q4_K.
  const auto q3km = parse_quant_target("Q3_K_M");
  ASSERT_TRUE(q3km);
  const auto m = plan_quantization(*q3km, {"qwen2", 28, 0}, tensors);
  EXPECT_EQ(planned(tensors, m, "blk.9.attn_output.weight"), DType::kQ4_K);
  EXPECT_EQ(planned(tensors, m, "blk.9.attn_q.weight"), DType::kQ3_K);
  // Plain types: output.weight Q6_K for Q4_0, kept at Q8_0 for Q8_0; float targets convert all.
  const auto q40 = parse_quant_target("Q4_0");
  ASSERT_TRUE(q40);
  EXPECT_EQ(q40->file_type, 2u);
  const auto p = plan_quantization(*q40, {"qwen2", 28, 0}, tensors);
  EXPECT_EQ(planned(tensors, p, "output.weight"), DType::kQ6_K);
  EXPECT_EQ(planned(tensors, p, "blk.0.attn_v.weight"), DType::kQ4_0);
  const auto q80 = parse_quant_target("Q8_0");
  ASSERT_TRUE(q80);
  EXPECT_EQ(planned(tensors, plan_quantization(*q80, {"qwen2", 28, 0}, tensors), "output.weight"),
            DType::kQ8_0);
  const auto f16 = parse_quant_target("F16");
  ASSERT_TRUE(f16);
  const auto h = plan_quantization(*f16, {"qwen2", 28, 0}, tensors);
  EXPECT_EQ(planned(tensors, h, "output.weight"), DType::kF16);
  EXPECT_EQ(planned(tensors, h, "blk.0.attn_norm.weight"), DType::kF32);
  EXPECT_FALSE(parse_quant_target("Q9_X"));
}

TEST(QuantizePlan, RowsThatDoNotFitTheBlockFallBack) {
  TensorDesc odd;
  odd.name = "blk.0.attn_q.weight";
  odd.n_dims = 2;
  odd.ne = {160, 1536, 1, 1};  // 160: a multiple of 32, not of 256
  TensorDesc tiny = odd;
  tiny.name = "blk.0.attn_k.weight";
  tiny.ne = {40, 64, 1, 1};  // not even a multiple of 32
  const std::vector<TensorDesc> tensors = {odd, tiny};
  struct Case {
    const char* target;
    DType type;
    bool fallback;
  };
  const Case cases[] = {{"Q4_K", DType::kQ5_0, true}, {"Q5_K", DType::kQ5_1, true},
                        {"Q6_K", DType::kQ8_0, true}, {"Q2_K", DType::kQ4_0, true},
                        {"Q3_K", DType::kQ4_0, true}, {"Q4_0", DType::kQ4_0, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    const auto plans = plan_quantization(*parse_quant_target(c.target), {}, tensors);
    EXPECT_EQ(plans[0].type, c.type);
    EXPECT_EQ(plans[0].fallback, c.fallback);
    EXPECT_EQ(plans[1].type, DType::kF16);
    EXPECT_TRUE(plans[1].fallback);
  }
}

// synthesize() takes its types and general.file_type from the same plan for every target.
TEST_F(SynthTest, EveryTargetFollowsTheQuantizationPlan) {
  std::vector<std::string> names;
  const std::string list = quant_target_list();
  for (size_t pos = 0; pos < list.size();) {
    const size_t comma = list.find(", ", pos);
    names.push_back(list.substr(pos, comma - pos));
    pos = comma == std::string::npos ? list.size() : comma + 2;
  }
  ASSERT_EQ(names.size(), 18u);
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const auto target = parse_quant_target(name);
    ASSERT_TRUE(target);
    SynthOptions o;
    o.preset = "demo-tiny";
    o.type_name = name;
    o.layers = 2;  // the mixes' per-layer rules on 9 layers: tests/cli/synth_quantize_test.cc
    o.out_path = path("plan.gguf");
    auto r = synthesize(o);
    ASSERT_TRUE(r) << r.error().message;
    auto f = gguf::GgufFile::open(o.out_path);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(**f->get_uint("general.file_type"), target->file_type);
    std::vector<TensorDesc> descs;
    for (const auto& t : f->tensors()) descs.push_back({t.name, DType::kF32, t.n_dims, t.ne});
    const auto plans =
        plan_quantization(*target, {"qwen2", static_cast<uint32_t>(o.layers), 0}, descs);
    for (size_t i = 0; i < descs.size(); ++i) {
      EXPECT_EQ(f->tensors()[i].type, plans[i].type) << descs[i].name;
    }
  }
}

// The presets embed the published templates verbatim; the tokenizer recognises them by marker
// substrings (not by the whole text), so each gets its R1 renderer.
TEST_F(SynthTest, EmbeddedTemplatesArePublishedTextAndRecognised) {
  const struct {
    const char* text;
    const char* fixture;
    const char* renderer;
  } cases[] = {
      {kR1DistillQwenTemplate, "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "deepseek-r1"},
      {kR1DistillLlamaTemplate, "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
       "deepseek-r1-llama"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.fixture);
    std::ifstream in(std::string(ENCLAVE_FIXTURES_DIR) + "/templates/" + c.fixture,
                     std::ios::binary);
    ASSERT_TRUE(in);
    const std::string published(std::istreambuf_iterator<char>(in), {});
    EXPECT_EQ(std::string(c.text), published);
    gguf::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("tokenizer.chat_template", c.text);
    ASSERT_TRUE(w.write(path("template.gguf")).is_ok());
    auto file = gguf::GgufFile::open(path("template.gguf"));
    ASSERT_TRUE(file) << file.error().message;
    auto tmpl = tokenizer::ChatTemplate::from_gguf(*file);
    ASSERT_TRUE(tmpl) << tmpl.error().message;
    EXPECT_EQ(tmpl->name(), c.renderer);
  }
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
