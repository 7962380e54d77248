// Golden tests: every render in templates/renders.jsonl, from the template recognised in the
// fixture GGUF's tokenizer.chat_template.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/reasoning_parser.h"

namespace enclave::tokenizer {
namespace {

const std::string kDir = std::string(ENCLAVE_FIXTURES_DIR) + "/templates/";

const gguf::GgufFile& model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<gguf::GgufFile>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return *it->second;
  auto f = gguf::GgufFile::open(kDir + name);
  if (!f) {
    ADD_FAILURE() << name << ": " << f.error().message;
    std::abort();
  }
  return *cache.emplace(name, std::make_unique<gguf::GgufFile>(std::move(*f))).first->second;
}

TEST(ChatTemplateGolden, RecognisedKinds) {
  const std::pair<const char*, TemplateKind> want[] = {
      {"deepseek-r1-distill-qwen.gguf", TemplateKind::kDeepSeekR1},
      {"deepseek-r1-distill-llama.gguf", TemplateKind::kDeepSeekR1},
      {"deepseek-v3.1.gguf", TemplateKind::kDeepSeekV31},
      {"qwen2.5.gguf", TemplateKind::kChatML},
      {"llama-3.1.gguf", TemplateKind::kLlama3},
  };
  for (const auto& [file, kind] : want) {
    auto t = ChatTemplate::from_gguf(model(file));
    ASSERT_TRUE(t.has_value()) << file << ": " << t.error().message;
    EXPECT_EQ(t->kind(), kind) << file;
  }
  EXPECT_EQ(ChatTemplate::from_gguf(model("deepseek-r1-distill-llama.gguf"))->name(),
            "deepseek-r1-llama");
  EXPECT_TRUE(ChatTemplate::from_gguf(model("deepseek-r1-distill-qwen.gguf"))->is_reasoning());
}

TEST(ChatTemplateGolden, AllRenders) {
  std::ifstream in(kDir + "renders.jsonl");
  ASSERT_TRUE(in.good());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto obj = boost::json::parse(line).as_object();
    const std::string file(obj.at("model").as_string());
    auto t = ChatTemplate::from_gguf(model(file));
    ASSERT_TRUE(t.has_value()) << file << ": " << t.error().message;
    std::vector<ChatMessage> msgs;
    for (const auto& m : obj.at("messages").as_array()) {
      ChatMessage cm;
      cm.role = std::string(m.at("role").as_string());
      cm.content = std::string(m.at("content").as_string());
      msgs.push_back(std::move(cm));
    }
    RenderOptions o;
    o.add_generation_prompt = obj.at("add_generation_prompt").as_bool();
    const auto& kw = obj.at("chat_template_kwargs").as_object();
    o.date_string = std::string(kw.at("date_string").as_string());
    if (kw.contains("enable_thinking")) o.enable_thinking = kw.at("enable_thinking").as_bool();
    const std::string label = file + " " + std::string(obj.at("conversation").as_string()) +
                              " gen=" + std::to_string(o.add_generation_prompt) +
                              " think=" + std::to_string(o.enable_thinking);
    auto full = t->render(msgs, o);
    ASSERT_TRUE(full.has_value()) << label;
    EXPECT_EQ(*full, std::string(obj.at("template_output").as_string())) << label;
    o.strip_leading_bos = t->add_bos_token;
    auto prompt = t->render(msgs, o);
    ASSERT_TRUE(prompt.has_value()) << label;
    EXPECT_EQ(*prompt, std::string(obj.at("prompt").as_string())) << label;
    ++n;
  }
  EXPECT_EQ(n, 50);
}

TEST(ChatTemplateGolden, R1GenerationPromptStartsInReasoning) {
  auto t = ChatTemplate::from_gguf(model("deepseek-r1-distill-qwen.gguf"));
  ASSERT_TRUE(t.has_value());
  RenderOptions o;
  EXPECT_TRUE(t->generation_starts_in_reasoning(o));
  o.enable_thinking = false;
  EXPECT_FALSE(t->generation_starts_in_reasoning(o));
  auto chatml = ChatTemplate::from_gguf(model("qwen2.5.gguf"));
  EXPECT_FALSE(chatml->generation_starts_in_reasoning(RenderOptions{}));
}

TEST(ChatTemplateGolden, ByNameUsesVocabBos) {
  auto t = ChatTemplate::by_name("llama3.1", &model("llama-3.1.gguf"));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->bos_text, "<|begin_of_text|>");
  EXPECT_EQ(t->eos_text, "<|eot_id|>");
  EXPECT_TRUE(t->add_bos_token);
  auto q = ChatTemplate::by_name("chatml", &model("qwen2.5.gguf"));
  ASSERT_TRUE(q.has_value());
  EXPECT_FALSE(q->add_bos_token);
}

}  // namespace
}  // namespace enclave::tokenizer
