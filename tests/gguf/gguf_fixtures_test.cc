// Every shared fixture GGUF opens, and the facts its README states hold.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gguf/gguf_file.h"

namespace enclave::gguf {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = ENCLAVE_FIXTURES_DIR;

GgufFile open_fixture(const std::string& rel) {
  auto f = GgufFile::open((kFixtures / rel).string());
  EXPECT_TRUE(f) << f.error().message;
  if (!f) throw std::runtime_error("cannot open fixture " + rel);
  return std::move(f.value());
}

TEST(GgufFixtures, EveryFixtureOpensAndIsConsistent) {
  int n_files = 0;
  for (const char* dir : {"models", "quant", "tokenizer", "templates"}) {
    ASSERT_TRUE(fs::is_directory(kFixtures / dir)) << (kFixtures / dir);
    for (const auto& entry : fs::directory_iterator(kFixtures / dir)) {
      if (entry.path().extension() != ".gguf") continue;
      SCOPED_TRACE(entry.path().string());
      ++n_files;
      auto f = GgufFile::open(entry.path().string());
      ASSERT_TRUE(f) << f.error().message;
      EXPECT_EQ(f->version(), 3u);
      EXPECT_EQ(f->file_size(), fs::file_size(entry.path()));
      EXPECT_FALSE(f->architecture().empty());
      for (const auto& t : f->tensors()) {
        EXPECT_EQ(t.size_bytes, t.row_bytes() * t.n_rows()) << t.name;
        EXPECT_EQ(f->tensor(t.name), &t);
        EXPECT_NE(t.data, nullptr) << t.name;
        EXPECT_LE(f->data_offset() + t.offset + t.size_bytes, f->file_size()) << t.name;
      }
      // Every metadata value is reachable through find().
      for (const auto& [key, value] : f->metadata()) EXPECT_EQ(f->find(key), &value);
    }
  }
  EXPECT_GE(n_files, 5 + 14 + 5 + 5 + 20);
}

// A copied file is the same file: metadata, tensor directory and every tensor byte; its image
// starts on a 2 MiB boundary (where transparent huge pages can back it).
TEST(GgufFixtures, CopiedEqualsMapped) {
  int n_files = 0;
  for (const char* dir : {"models", "quant"}) {
    for (const auto& entry : fs::directory_iterator(kFixtures / dir)) {
      if (entry.path().extension() != ".gguf") continue;
      SCOPED_TRACE(entry.path().string());
      ++n_files;
      auto mapped = GgufFile::open(entry.path().string(), FileMemory::kMap);
      auto copied = GgufFile::open(entry.path().string(), FileMemory::kCopy);
      ASSERT_TRUE(mapped) << mapped.error().message;
      ASSERT_TRUE(copied) << copied.error().message;
      EXPECT_EQ(copied->memory(), FileMemory::kCopy);  // small files always fit
      EXPECT_EQ(mapped->memory(), FileMemory::kMap);
      copied->collapse_huge_pages_in_background();
      copied->wait_memory_settled();  // the huge-page collapse must not change a byte
      EXPECT_EQ(copied->file_size(), mapped->file_size());
      EXPECT_EQ(copied->metadata().size(), mapped->metadata().size());
      ASSERT_EQ(copied->tensors().size(), mapped->tensors().size());
      ASSERT_FALSE(copied->tensors().empty());
      const uint8_t* image =
          copied->tensors()[0].data - copied->data_offset() - copied->tensors()[0].offset;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(image) % (uintptr_t{2} << 20), 0u);
      for (size_t i = 0; i < mapped->tensors().size(); ++i) {
        const TensorInfo& a = mapped->tensors()[i];
        const TensorInfo& b = copied->tensors()[i];
        EXPECT_EQ(a.name, b.name);
        EXPECT_NE(a.data, b.data);
        ASSERT_EQ(a.size_bytes, b.size_bytes);
        EXPECT_EQ(std::memcmp(a.data, b.data, a.size_bytes), 0) << a.name;
      }
    }
  }
  EXPECT_GE(n_files, 5 + 14);
  // A copy larger than the memory available falls back to the mapping.
  EXPECT_TRUE(GgufFile::copy_fits_in_memory(uint64_t{1} << 20));
  EXPECT_FALSE(GgufFile::copy_fits_in_memory(uint64_t{1} << 50));  // 1 PiB
  // Errors are the same in both modes: the parser sees the same bytes.
  auto missing = GgufFile::open("/nonexistent/model.gguf", FileMemory::kCopy);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(GgufFixtures, QuantFiles) {
  const std::vector<std::pair<std::string, DType>> types = {
      {"F16", DType::kF16},   {"BF16", DType::kBF16}, {"Q8_0", DType::kQ8_0},
      {"Q4_0", DType::kQ4_0}, {"Q4_1", DType::kQ4_1}, {"Q5_0", DType::kQ5_0},
      {"Q5_1", DType::kQ5_1}, {"Q2_K", DType::kQ2_K}, {"Q3_K", DType::kQ3_K},
      {"Q4_K", DType::kQ4_K}, {"Q5_K", DType::kQ5_K}, {"Q6_K", DType::kQ6_K}};
  for (const auto& [name, type] : types) {
    SCOPED_TRACE(name);
    GgufFile f = open_fixture("quant/" + name + ".gguf");
    EXPECT_EQ(f.architecture(), "none");
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_EQ(*f.get_string("general.name").value(), "quant-fixture-" + name);
    ASSERT_EQ(f.tensors().size(), 4u);
    const std::vector<std::pair<std::string, std::array<uint64_t, 4>>> shapes = {
        {"normal_256", {256, 32, 1, 1}},
        {"weights_512", {512, 16, 1, 1}},
        {"normal_768", {768, 16, 1, 1}},
        {"edge_256", {256, 16, 1, 1}}};
    for (size_t i = 0; i < shapes.size(); ++i) {
      const TensorInfo& t = f.tensors()[i];
      EXPECT_EQ(t.name, shapes[i].first);
      EXPECT_EQ(t.ne, shapes[i].second);
      EXPECT_EQ(t.n_dims, 2u);
      EXPECT_EQ(t.type, type);
    }
    GgufFile deq = open_fixture("quant/" + name + ".deq.gguf");
    ASSERT_EQ(deq.tensors().size(), 4u);
    EXPECT_EQ(deq.tensors()[0].type, DType::kF32);
    EXPECT_EQ(deq.tensors()[0].size_bytes, 256u * 32u * 4u);
  }
  GgufFile q4k = open_fixture("quant/Q4_K.gguf");
  const TensorInfo* t = q4k.tensor("normal_256");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(dtype_name(t->type), "q4_K");
  EXPECT_EQ(t->size_bytes, 32u * 144u);  // one 256-element super-block per row
}

TEST(GgufFixtures, ModelHyperparameters) {
  GgufFile q = open_fixture("models/qwen2-tiny-F32.gguf");
  EXPECT_EQ(q.architecture(), "qwen2");
  EXPECT_EQ(*q.get_uint("qwen2.embedding_length").value(), 256u);
  EXPECT_EQ(*q.get_uint("qwen2.block_count").value(), 2u);
  EXPECT_EQ(*q.get_uint("qwen2.context_length").value(), 512u);
  EXPECT_EQ(*q.get_uint("qwen2.feed_forward_length").value(), 768u);
  EXPECT_EQ(*q.get_uint("qwen2.attention.head_count").value(), 4u);
  EXPECT_EQ(*q.get_uint("qwen2.attention.head_count_kv").value(), 2u);
  EXPECT_DOUBLE_EQ(*q.get_float("qwen2.rope.freq_base").value(), 1000000.0);
  EXPECT_NEAR(*q.get_float("qwen2.attention.layer_norm_rms_epsilon").value(), 1e-6, 1e-12);
  EXPECT_EQ(q.tensor("output.weight"), nullptr);  // tied embeddings
  ASSERT_NE(q.tensor("blk.1.attn_q.bias"), nullptr);
  const TensorInfo* emb = q.tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->ne[0], 256u);
  EXPECT_EQ(emb->ne[1], 961u);
  EXPECT_EQ(q.get_string_array("tokenizer.ggml.tokens").value()->size(), 961u);
  EXPECT_EQ(*q.get_string("tokenizer.ggml.model").value(), "gpt2");

  GgufFile l = open_fixture("models/llama-tiny-Q4_K.gguf");
  EXPECT_EQ(l.architecture(), "llama");
  EXPECT_EQ(*l.get_uint("llama.attention.head_count").value(), 8u);
  EXPECT_EQ(*l.get_uint("llama.attention.head_count_kv").value(), 4u);
  EXPECT_EQ(*l.get_uint("general.file_type").value(), 15u);
  const TensorInfo* down = l.tensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->type, DType::kQ4_K);
  EXPECT_EQ(down->ne[0], 768u);
  EXPECT_EQ(down->ne[1], 256u);
  EXPECT_EQ(l.tensor("output_norm.weight")->type, DType::kF32);

  GgufFile s = open_fixture("models/stories260K.gguf");
  EXPECT_EQ(*s.get_uint("llama.embedding_length").value(), 64u);
  EXPECT_EQ(*s.get_uint("llama.block_count").value(), 5u);
  EXPECT_FALSE(s.get_float("llama.rope.freq_base").value().has_value());  // absent: default

  for (const char* name : {"deepseek2-lite-tiny-F32.gguf", "deepseek2-v3-tiny-Q8_0.gguf"}) {
    GgufFile d = open_fixture(std::string("models/") + name);
    EXPECT_EQ(d.architecture(), "deepseek2") << name;
    EXPECT_TRUE(d.get_uint("deepseek2.expert_count").value().has_value()) << name;
  }
}

TEST(GgufFixtures, TokenizerVocabularies) {
  const std::vector<std::tuple<std::string, size_t, std::string, std::string>> vocabs = {
      {"ggml-vocab-deepseek-llm.gguf", 102400, "gpt2", "deepseek-llm"},
      {"ggml-vocab-deepseek-coder.gguf", 32256, "gpt2", "deepseek-coder"},
      {"ggml-vocab-gpt-2.gguf", 50257, "gpt2", "gpt-2"},
      {"ggml-vocab-llama-spm.gguf", 32000, "llama", "default"},
      {"tiny-bpe-qwen2.vocab.gguf", 961, "gpt2", "qwen2"},
  };
  for (const auto& [file, n_tokens, model, pre] : vocabs) {
    SCOPED_TRACE(file);
    GgufFile f = open_fixture("tokenizer/" + file);
    auto tokens = f.get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens) << tokens.error().message;
    ASSERT_TRUE(tokens->has_value());
    EXPECT_EQ((*tokens)->size(), n_tokens);
    EXPECT_EQ(*f.get_string("tokenizer.ggml.model").value(), model);
    auto pre_value = f.get_string("tokenizer.ggml.pre").value();
    EXPECT_EQ(pre_value.value_or("default"), pre);
    auto types = f.get_int_array("tokenizer.ggml.token_type");
    ASSERT_TRUE(types) << types.error().message;
    if (types->has_value()) {
      EXPECT_EQ((*types)->size(), n_tokens);
    }
  }
  GgufFile ds = open_fixture("tokenizer/ggml-vocab-deepseek-llm.gguf");
  EXPECT_EQ(*ds.get_uint("tokenizer.ggml.bos_token_id").value(), 100000u);
  EXPECT_EQ(*ds.get_uint("tokenizer.ggml.eos_token_id").value(), 100001u);
  EXPECT_EQ(ds.get_string_array("tokenizer.ggml.tokens").value()->at(100000),
            "<｜begin▁of▁sentence｜>");
  EXPECT_GT(ds.get_string_array("tokenizer.ggml.merges").value()->size(), 0u);
  GgufFile spm = open_fixture("tokenizer/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(spm.get_float_array("tokenizer.ggml.scores").value()->size(), 32000u);
  GgufFile qw = open_fixture("tokenizer/tiny-bpe-qwen2.vocab.gguf");
  const auto qtok = *qw.get_string_array("tokenizer.ggml.tokens").value();
  EXPECT_EQ(qtok[0], "!");
  EXPECT_EQ(qtok[958], "<|im_end|>");
  EXPECT_EQ(qw.get_string_array("tokenizer.ggml.merges").value()->size(), 700u);
}

TEST(GgufFixtures, ChatTemplatesMatchJinjaFiles) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"deepseek-r1-distill-qwen.gguf", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"},
      {"deepseek-r1-distill-llama.gguf", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"},
      {"deepseek-v3.1.gguf", "deepseek-ai-DeepSeek-V3.1.jinja"},
      {"qwen2.5.gguf", "Qwen-Qwen2.5-7B-Instruct.jinja"},
      {"llama-3.1.gguf", "meta-llama-Llama-3.1-8B-Instruct.jinja"},
  };
  for (const auto& [gguf, jinja] : pairs) {
    SCOPED_TRACE(gguf);
    GgufFile f = open_fixture("templates/" + gguf);
    std::ifstream in(kFixtures / "templates" / jinja, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto tmpl = f.get_string("tokenizer.chat_template");
    ASSERT_TRUE(tmpl) << tmpl.error().message;
    ASSERT_TRUE(tmpl->has_value());
    EXPECT_EQ(**tmpl, ss.str());
    EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token").value().has_value());
  }
}

}  // namespace
}  // namespace enclave::gguf
