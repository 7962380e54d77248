// Tokenizer behaviour beyond the golden vectors: specials, BOS/EOS, EOG, invalid UTF-8,
// streaming, errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace enclave::tokenizer {
namespace {

const std::string kDir = std::string(ENCLAVE_FIXTURES_DIR) + "/tokenizer/";

Tokenizer load(const std::string& name) {
  auto f = gguf::GgufFile::open(kDir + name);
  if (!f) {
    ADD_FAILURE() << f.error().message;
    std::abort();
  }
  auto t = Tokenizer::from_gguf(*f);
  if (!t) {
    ADD_FAILURE() << t.error().message;
    std::abort();
  }
  return std::move(*t);
}

TEST(Tokenizer, QwenTinyBasics) {
  const Tokenizer t = load("tiny-bpe-qwen2.vocab.gguf");
  EXPECT_EQ(t.model_kind(), "gpt2");
  EXPECT_EQ(t.pre(), "qwen2");
  EXPECT_EQ(t.n_vocab(), 961);
  EXPECT_EQ(t.bos_id(), 956);
  EXPECT_EQ(t.eos_id(), 958);
  EXPECT_FALSE(t.add_bos_default());
  EXPECT_TRUE(t.is_eog(956));  // <|endoftext|>
  EXPECT_TRUE(t.is_eog(958));  // <|im_end|>
  EXPECT_FALSE(t.is_eog(957));
  EXPECT_EQ(t.token_id("<think>"), 959);
  EXPECT_FALSE(t.token_id("no such token").has_value());
  // add_bos=true adds nothing for a vocabulary with add_bos_token = false.
  EXPECT_EQ(t.encode("hi", true, false), t.encode("hi", false, false));
}

TEST(Tokenizer, SpecialTokensNeedParseSpecialUnlessUserDefined) {
  const Tokenizer t = load("tiny-bpe-qwen2.vocab.gguf");
  const auto plain = t.encode("<|im_start|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(t.encode("<|im_start|>", false, true), std::vector<int32_t>{957});
  // USER_DEFINED <think> is split out even without parse_special.
  const auto think = t.encode("a<think>b", false, false);
  ASSERT_EQ(think.size(), 3u);
  EXPECT_EQ(think[1], 959);
  EXPECT_EQ(t.token_to_piece(957), "<|im_start|>");
  EXPECT_EQ(t.decode(t.encode("x<|im_end|>y", false, true)), "x<|im_end|>y");
}

TEST(Tokenizer, BosEosFromFlags) {
  const Tokenizer t = load("ggml-vocab-deepseek-llm.gguf");
  EXPECT_TRUE(t.add_bos_default());
  const auto ids = t.encode("Hello", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 100000);
  EXPECT_TRUE(t.is_eog(100001));
  const auto no_bos = t.encode("Hello", false, false);
  EXPECT_EQ(ids.size(), no_bos.size() + 1);
  const Tokenizer spm = load("ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(spm.encode("Hi", true, false).front(), 1);
  EXPECT_EQ(spm.model_kind(), "llama");
}

TEST(Tokenizer, InvalidUtf8BecomesReplacementCharacter) {
  for (const char* name :
       {"ggml-vocab-deepseek-llm.gguf", "ggml-vocab-llama-spm.gguf", "tiny-bpe-qwen2.vocab.gguf"}) {
    const Tokenizer t = load(name);
    const std::string bad = "ab\xFF\xC3(\xE4\xBD";
    const auto ids = t.encode(bad, false, false);
    EXPECT_EQ(ids, t.encode("ab\xEF\xBF\xBD\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD", false, false));
    EXPECT_EQ(t.decode(ids), "ab\xEF\xBF\xBD\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD") << name;
  }
}

TEST(Tokenizer, EmptyAndOutOfRange) {
  const Tokenizer t = load("ggml-vocab-gpt-2.gguf");
  EXPECT_TRUE(t.encode("", false, true).empty());
  EXPECT_EQ(t.token_to_piece(-1), "");
  EXPECT_EQ(t.token_to_piece(t.n_vocab()), "");
  EXPECT_EQ(t.decode(std::vector<int32_t>{-5, 99999999}), "");
}

TEST(StreamDecoder, NeverEmitsHalfACharacter) {
  const Tokenizer t = load("tiny-bpe-qwen2.vocab.gguf");
  // Byte-level tokens: feed a 4-byte emoji one byte token at a time.
  const std::string text = "x\xF0\x9F\x98\x80y中文";
  std::vector<int32_t> ids;
  // Find, for every byte, the token whose piece is exactly that byte.
  for (unsigned char c : text) {
    int32_t found = -1;
    for (int32_t id = 0; id < t.n_vocab() && found < 0; ++id) {
      if (t.token_to_piece(id) == std::string(1, static_cast<char>(c))) found = id;
    }
    ASSERT_GE(found, 0);
    ids.push_back(found);
  }
  StreamDecoder sd(t);
  std::string out;
  std::vector<std::string> parts;
  for (int32_t id : ids) {
    parts.push_back(sd.push(id));
    out += parts.back();
  }
  out += sd.flush();
  EXPECT_EQ(out, text);
  EXPECT_EQ(parts[1], "");  // first emoji byte held back
  EXPECT_EQ(parts[4], "\xF0\x9F\x98\x80");
  // A truncated sequence at the end becomes U+FFFD on flush.
  StreamDecoder sd2(t);
  EXPECT_EQ(sd2.push(ids[1]), "");
  EXPECT_EQ(sd2.flush(), "\xEF\xBF\xBD");
}

TEST(PreTokenizer, UnknownPreIsNamedInError) {
  auto p = PreTokenizer::create("my-new-pre");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, ErrorCode::kUnsupported);
  EXPECT_NE(p.error().message.find("my-new-pre"), std::string::npos);
  for (const char* pre : {"deepseek-llm", "deepseek-coder", "deepseek-v3", "deepseek-r1-qwen",
                          "qwen2", "llama3", "llama-bpe", "gpt-2", "default"}) {
    EXPECT_TRUE(PreTokenizer::create(pre).has_value()) << pre;
  }
}

std::vector<std::string_view> split(const PreTokenizer& p, std::string_view s) {
  std::vector<std::string_view> out;
  p.split(s, out);
  return out;
}

TEST(PreTokenizer, SequentialRegexesAndQuirks) {
  auto v3 = PreTokenizer::create("deepseek-v3");
  ASSERT_TRUE(v3.has_value());
  // Digits in groups of three first, then CJK runs, then the main split.
  const auto w = split(*v3, "12345你好abc");
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0], "123");
  EXPECT_EQ(w[1], "45");
  EXPECT_EQ(w[2], "你好");
  EXPECT_EQ(w[3], "abc");
  auto llama3 = PreTokenizer::create("llama-bpe");
  EXPECT_TRUE(llama3->ignore_merges());
  EXPECT_TRUE(llama3->add_bos_default());
  const auto l = split(*llama3, "I'm 12345  ok");
  const std::vector<std::string_view> want = {"I", "'m", " ", "123", "45", " ", " ok"};
  EXPECT_EQ(l, want);
  // deepseek-llm: U+3000 counts as whitespace, never as part of the CJK / punctuation runs.
  auto ds = PreTokenizer::create("deepseek-llm");
  const auto d = split(*ds, "中\xE3\x80\x80文");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[1], "\xE3\x80\x80");
}

std::vector<uint8_t> tiny_vocab(const std::string& model, const std::string& pre) {
  gguf::GgufWriter w;
  w.set_string("tokenizer.ggml.model", model);
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
  w.set_string_array("tokenizer.ggml.merges", {"a b"});
  return w.to_bytes();
}

TEST(Tokenizer, UnknownPreFromGgufFails) {
  const auto bytes = tiny_vocab("gpt2", "brand-new-pre");
  auto f = gguf::GgufFile::from_memory(bytes);
  ASSERT_TRUE(f.has_value()) << f.error().message;
  auto t = Tokenizer::from_gguf(*f);
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kUnsupported);
  EXPECT_NE(t.error().message.find("brand-new-pre"), std::string::npos);
}

TEST(Tokenizer, UnknownModelAndMissingVocabFail) {
  const auto bytes = tiny_vocab("bert", "default");
  auto f = gguf::GgufFile::from_memory(bytes);
  ASSERT_TRUE(f.has_value());
  auto t = Tokenizer::from_gguf(*f);
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kUnsupported);
  gguf::GgufWriter empty;
  const auto eb = empty.to_bytes();
  auto ef = gguf::GgufFile::from_memory(eb);
  ASSERT_TRUE(ef.has_value());
  auto et = Tokenizer::from_gguf(*ef);
  ASSERT_FALSE(et.has_value());
  EXPECT_EQ(et.error().code, ErrorCode::kNotFound);
}

TEST(Tokenizer, MergeOfTinyVocab) {
  const auto bytes = tiny_vocab("gpt2", "gpt-2");
  auto f = gguf::GgufFile::from_memory(bytes);
  ASSERT_TRUE(f.has_value());
  auto t = Tokenizer::from_gguf(*f);
  ASSERT_TRUE(t.has_value()) << t.error().message;
  EXPECT_EQ(t->encode("ab", false, false), std::vector<int32_t>{2});
  EXPECT_EQ(t->encode("aab", false, false), (std::vector<int32_t>{0, 2}));
  // 'c' is not in the vocabulary: dropped, as llama.cpp does.
  EXPECT_EQ(t->encode("cab", false, false), std::vector<int32_t>{2});
  EXPECT_EQ(t->bos_id(), -1);
}

// split_special: the special texts encode(parse_special = true) matches, the rest as views.
TEST(Tokenizer, SplitSpecialMatchesEncodeWithSpecials) {
  gguf::GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt-2");
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab", "<c>", "<u>"});
  w.set_int32_array("tokenizer.ggml.token_type", {1, 1, 1, 3, 4});  // 3 CONTROL, 4 USER_DEFINED
  w.set_string_array("tokenizer.ggml.merges", {"a b"});
  const auto bytes = w.to_bytes();
  auto f = gguf::GgufFile::from_memory(bytes);
  ASSERT_TRUE(f.has_value());
  auto t = Tokenizer::from_gguf(*f);
  ASSERT_TRUE(t.has_value()) << t.error().message;
  const std::string text = "ab<c>a<u><c>";
  EXPECT_EQ(t->encode(text, false, true), (std::vector<int32_t>{2, 3, 0, 4, 3}));
  const auto pieces = t->split_special(text);
  ASSERT_EQ(pieces.size(), 5u);
  EXPECT_EQ(pieces[0].token, -1);
  EXPECT_EQ(pieces[0].text, "ab");
  EXPECT_EQ(pieces[1].token, 3);
  EXPECT_EQ(pieces[2].token, -1);
  EXPECT_EQ(pieces[2].text, "a");
  EXPECT_EQ(pieces[3].token, 4);
  EXPECT_EQ(pieces[4].token, 3);
  EXPECT_TRUE(t->split_special("").empty());
}

}  // namespace
}  // namespace enclave::tokenizer
