// Request parsing/validation (every field, param names) and response writers.
#include "api/codec.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <limits>

namespace enclave::api {
namespace {

namespace json = boost::json;
const ParseLimits kLimits;

std::string chat_with(const std::string& extra) {
  return R"({"model":"m","messages":[{"role":"user","content":"hi"}])" + extra + "}";
}

// Expects a parse failure naming `param`, with the given code.
void expect_chat_error(const std::string& body, const std::string& param,
                       ErrorCode code = ErrorCode::kInvalidArgument) {
  std::string got;
  Result<ChatRequest> r = parse_chat_request(body, kLimits, &got);
  ASSERT_FALSE(r) << body;
  EXPECT_EQ(got, param) << body << " -> " << r.error().message;
  EXPECT_EQ(r.error().code, code) << body;
  EXPECT_FALSE(r.error().message.empty());
}

TEST(ParseChat, AllFields) {
  std::string body = R"({"model":"deepseek-chat","messages":[
    {"role":"system","content":"be brief"},
    {"role":"developer","content":"dev"},
    {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
    {"role":"assistant","content":null,"reasoning_content":"thought"}],
    "temperature":0.5,"top_p":0.9,"top_k":20,"min_p":0.1,"repeat_penalty":1.1,
    "max_tokens":10,"stop":["x","y"],"seed":42,"presence_penalty":1.5,"frequency_penalty":-1,
    "logit_bias":{"15":-100,"7":2.5},"stream":true,"stream_options":{"include_usage":true},
    "n":1,"response_format":{"type":"text"},"user":"ignored","unknown_field":1})";
  Result<ChatRequest> r = parse_chat_request(body, kLimits);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->model, "deepseek-chat");
  ASSERT_EQ(r->messages.size(), 4u);
  EXPECT_EQ(r->messages[1].role, "system");
  EXPECT_EQ(r->messages[2].content, "ab");
  EXPECT_EQ(r->messages[3].content, "");
  EXPECT_EQ(r->messages[3].reasoning_content, "thought");
  EXPECT_FLOAT_EQ(*r->sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(*r->sampling.top_p, 0.9f);
  EXPECT_EQ(*r->sampling.top_k, 20);
  EXPECT_FLOAT_EQ(*r->sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(*r->sampling.repeat_penalty, 1.1f);
  EXPECT_EQ(*r->max_tokens, 10);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(*r->sampling.seed, 42u);
  EXPECT_FLOAT_EQ(r->sampling.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(r->sampling.frequency_penalty, -1.0f);
  ASSERT_EQ(r->sampling.logit_bias.size(), 2u);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
}

TEST(ParseChat, DefaultsAndStopString) {
  Result<ChatRequest> r =
      parse_chat_request(chat_with(R"(,"stop":"END","max_completion_tokens":5)"), kLimits);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->stop, std::vector<std::string>{"END"});
  EXPECT_EQ(*r->max_tokens, 5);
  EXPECT_FALSE(r->sampling.temperature);
  EXPECT_FALSE(r->sampling.seed);
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->include_usage);
}

// Members are looked up in one pass over each object: a duplicated key means its last value
// (what the JSON tree keeps), in the request and in each message, and max_completion_tokens
// still wins over max_tokens wherever each appears.
TEST(ParseChat, DuplicateKeysTakeTheLastValue) {
  const std::string body = R"({"max_completion_tokens":7,"model":"a","temperature":0.5,
    "messages":[{"content":"x","role":"system","content":"y","name":"n1","name":"n2"}],
    "model":"b","temperature":1.5,"max_tokens":3,"stream":true,"stream":false})";
  Result<ChatRequest> r = parse_chat_request(body, kLimits);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->model, "b");
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[0].content, "y");
  EXPECT_EQ(r->messages[0].name, "n2");
  EXPECT_FLOAT_EQ(*r->sampling.temperature, 1.5f);
  EXPECT_EQ(*r->max_tokens, 7);
  EXPECT_FALSE(r->stream);
  // A later bad duplicate is what is checked.
  expect_chat_error(chat_with(R"(,"temperature":1,"temperature":"hot")"), "temperature");
  expect_chat_error(R"({"model":"m","messages":[{"role":"user","content":"hi","role":"boss"}]})",
                    "messages[0].role");
}

TEST(ParseChat, FieldErrorsNameTheParam) {
  expect_chat_error("", "");
  expect_chat_error("{bad", "");
  expect_chat_error("[1,2]", "");
  expect_chat_error(R"({"messages":[{"role":"user","content":"x"}]})", "model");
  expect_chat_error(R"({"model":5,"messages":[]})", "model");
  expect_chat_error(R"({"model":"m"})", "messages");
  expect_chat_error(R"({"model":"m","messages":[]})", "messages");
  expect_chat_error(R"({"model":"m","messages":"x"})", "messages");
  expect_chat_error(R"({"model":"m","messages":[3]})", "messages[0]");
  expect_chat_error(R"({"model":"m","messages":[{"content":"x"}]})", "messages[0].role");
  expect_chat_error(R"({"model":"m","messages":[{"role":"robot","content":"x"}]})",
                    "messages[0].role");
  expect_chat_error(R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"user"}]})",
                    "messages[1].content");
  expect_chat_error(R"({"model":"m","messages":[{"role":"user","content":5}]})",
                    "messages[0].content");
  expect_chat_error(
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})",
      "messages[0].content[0].type", ErrorCode::kUnsupported);
  expect_chat_error(chat_with(R"(,"temperature":3)"), "temperature");
  expect_chat_error(chat_with(R"(,"temperature":"hot")"), "temperature");
  expect_chat_error(chat_with(R"(,"top_p":0)"), "top_p");
  expect_chat_error(chat_with(R"(,"top_p":1.5)"), "top_p");
  expect_chat_error(chat_with(R"(,"max_tokens":0)"), "max_tokens");
  expect_chat_error(chat_with(R"(,"max_tokens":1.5)"), "max_tokens");
  expect_chat_error(chat_with(R"(,"max_completion_tokens":-1)"), "max_completion_tokens");
  expect_chat_error(chat_with(R"(,"stop":5)"), "stop");
  expect_chat_error(chat_with(R"(,"stop":["a",1])"), "stop[1]");
  expect_chat_error(chat_with(R"(,"seed":"x")"), "seed");
  expect_chat_error(chat_with(R"(,"presence_penalty":2.5)"), "presence_penalty");
  expect_chat_error(chat_with(R"(,"frequency_penalty":-3)"), "frequency_penalty");
  expect_chat_error(chat_with(R"(,"logit_bias":{"abc":1})"), "logit_bias");
  expect_chat_error(chat_with(R"(,"logit_bias":{"5":101})"), "logit_bias");
  expect_chat_error(chat_with(R"(,"logit_bias":[1])"), "logit_bias");
  expect_chat_error(chat_with(R"(,"stream":"yes")"), "stream");
  expect_chat_error(chat_with(R"(,"stream_options":{"include_usage":1})"),
                    "stream_options.include_usage");
  expect_chat_error(chat_with(R"(,"n":2)"), "n", ErrorCode::kUnsupported);
  expect_chat_error(chat_with(R"(,"response_format":{"type":"json_object"})"), "response_format",
                    ErrorCode::kUnsupported);
  expect_chat_error(chat_with(R"(,"response_format":{"type":"json_schema"})"), "response_format",
                    ErrorCode::kUnsupported);
  expect_chat_error(chat_with(R"(,"tools":[{"type":"function"}])"), "tools",
                    ErrorCode::kUnsupported);
  expect_chat_error(chat_with(R"(,"logprobs":"yes")"), "logprobs");
  expect_chat_error(chat_with(R"(,"top_logprobs":2)"), "top_logprobs");
  expect_chat_error(chat_with(R"(,"logprobs":false,"top_logprobs":0)"), "top_logprobs");
  expect_chat_error(chat_with(R"(,"logprobs":true,"top_logprobs":21)"), "top_logprobs");
  expect_chat_error(chat_with(R"(,"logprobs":true,"top_logprobs":-1)"), "top_logprobs");
  expect_chat_error(chat_with(R"(,"logprobs":true,"top_logprobs":1.5)"), "top_logprobs");
}

TEST(ParseChat, Logprobs) {
  Result<ChatRequest> off = parse_chat_request(chat_with(""), kLimits);
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_FALSE(off->logprobs);
  EXPECT_EQ(off->top_logprobs, 0);
  Result<ChatRequest> bare = parse_chat_request(chat_with(R"(,"logprobs":true)"), kLimits);
  ASSERT_TRUE(bare) << bare.error().message;
  EXPECT_TRUE(bare->logprobs);
  EXPECT_EQ(bare->top_logprobs, 0);
  Result<ChatRequest> top =
      parse_chat_request(chat_with(R"(,"logprobs":true,"top_logprobs":20)"), kLimits);
  ASSERT_TRUE(top) << top.error().message;
  EXPECT_EQ(top->top_logprobs, kMaxChatTopLogprobs);
  Result<ChatRequest> nulls =
      parse_chat_request(chat_with(R"(,"logprobs":null,"top_logprobs":null)"), kLimits);
  ASSERT_TRUE(nulls) << nulls.error().message;
  EXPECT_FALSE(nulls->logprobs);
}

TEST(ParseCompletion, Logprobs) {
  auto parse = [](const std::string& extra, std::string* param = nullptr) {
    return parse_completion_request(R"({"model":"m","prompt":"p")" + extra + "}", kLimits, param);
  };
  Result<CompletionRequest> off = parse("");
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->logprobs.has_value());
  EXPECT_FALSE(parse(R"(,"logprobs":null)")->logprobs.has_value());
  EXPECT_FALSE(parse(R"(,"logprobs":false)")->logprobs.has_value());
  Result<CompletionRequest> zero = parse(R"(,"logprobs":0)");
  ASSERT_TRUE(zero);
  EXPECT_EQ(zero->logprobs, 0);
  EXPECT_EQ(parse(R"(,"logprobs":5)")->logprobs, kMaxCompletionLogprobs);
  for (const char* bad : {R"(,"logprobs":6)", R"(,"logprobs":-1)", R"(,"logprobs":true)",
                          R"(,"logprobs":"2")", R"(,"logprobs":1.5)"}) {
    std::string param;
    Result<CompletionRequest> r = parse(bad, &param);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_EQ(param, "logprobs") << bad;
  }
}

TEST(Utf8, LossyAndCharacterStarts) {
  EXPECT_EQ(lossy_utf8("abc"), "abc");
  EXPECT_EQ(lossy_utf8("\xE2\x82\xAC"), "\xE2\x82\xAC");
  // A truncated sequence is one replacement character, each stray byte one.
  EXPECT_EQ(lossy_utf8("\xE2\x82"), "\xEF\xBF\xBD");
  EXPECT_EQ(lossy_utf8("\xAC"), "\xEF\xBF\xBD");
  EXPECT_EQ(lossy_utf8("\xAC\xAC"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(lossy_utf8("a\xE2\x82z"), "a\xEF\xBF\xBDz");
  // Overlong and surrogate forms are invalid from their second byte.
  EXPECT_EQ(lossy_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(lossy_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(lossy_utf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_TRUE(is_valid_utf8(lossy_utf8("\xFF\xF4\x90\x80\x80\xE0\x80")));
  EXPECT_EQ(count_utf8_starts("a\xE2\x82\xAC"), 2);
  EXPECT_EQ(count_utf8_starts("\xE2\x82"), 1);
  EXPECT_EQ(count_utf8_starts("\xAC"), 0);
}

TEST(ParseChat, MessageCountLimit) {
  ParseLimits lim;
  lim.max_messages = 2;
  std::string body =
      R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"}]})";
  std::string param;
  Result<ChatRequest> r = parse_chat_request(body, lim, &param);
  ASSERT_FALSE(r);
  EXPECT_EQ(param, "messages");
  EXPECT_NE(r.error().message.find("at most 2"), std::string::npos);
}

TEST(ParseChat, InvalidUtf8IsRejected) {
  std::string raw = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}";
  Result<ChatRequest> r = parse_chat_request(raw, kLimits);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("UTF-8"), std::string::npos);
  // A lone surrogate escape decodes to invalid UTF-8 (or fails to parse): rejected either way.
  EXPECT_FALSE(parse_chat_request(
      R"({"model":"m","messages":[{"role":"user","content":"\ud800"}]})", kLimits));
  EXPECT_TRUE(is_valid_utf8("héllo 中文 🙂"));
  EXPECT_FALSE(is_valid_utf8("\xc0\x80"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe4\xb8"));          // truncated
}

TEST(ParseCompletion, PromptForms) {
  Result<CompletionRequest> s =
      parse_completion_request(R"({"model":"m","prompt":"once"})", kLimits);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->prompt_is_tokens);
  EXPECT_EQ(s->prompt, "once");
  Result<CompletionRequest> one =
      parse_completion_request(R"({"model":"m","prompt":["x"]})", kLimits);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->prompt, "x");
  Result<CompletionRequest> t = parse_completion_request(
      R"({"model":"m","prompt":[1,2,3],"max_tokens":4,"stop":"."})", kLimits);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->prompt_is_tokens);
  EXPECT_EQ(t->prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(*t->max_tokens, 4);
  std::string param;
  EXPECT_FALSE(parse_completion_request(R"({"model":"m"})", kLimits, &param));
  EXPECT_EQ(param, "prompt");
  EXPECT_FALSE(parse_completion_request(R"({"model":"m","prompt":[1,-2]})", kLimits, &param));
  EXPECT_EQ(param, "prompt[1]");
  Result<CompletionRequest> two =
      parse_completion_request(R"({"model":"m","prompt":["a","b"]})", kLimits, &param);
  ASSERT_FALSE(two);
  EXPECT_EQ(two.error().code, ErrorCode::kUnsupported);
  EXPECT_FALSE(
      parse_completion_request(R"({"model":"m","prompt":"x","echo":true})", kLimits, &param));
  EXPECT_EQ(param, "echo");
  EXPECT_FALSE(
      parse_completion_request(R"({"model":"m","prompt":"x","best_of":3})", kLimits, &param));
  EXPECT_EQ(param, "best_of");
}

TEST(ParseEmbeddings, Inputs) {
  Result<EmbeddingRequest> one = parse_embedding_request(R"({"model":"m","input":"a"})", kLimits);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->inputs, std::vector<std::string>{"a"});
  EXPECT_EQ(one->encoding, EmbeddingEncoding::kFloat);
  Result<EmbeddingRequest> many = parse_embedding_request(
      R"({"model":"m","input":["a","b"],"encoding_format":"base64"})", kLimits);
  ASSERT_TRUE(many);
  EXPECT_EQ(many->inputs.size(), 2u);
  EXPECT_EQ(many->encoding, EmbeddingEncoding::kBase64);
  std::string param;
  EXPECT_FALSE(parse_embedding_request(R"({"model":"m"})", kLimits, &param));
  EXPECT_EQ(param, "input");
  EXPECT_FALSE(parse_embedding_request(R"({"model":"m","input":["a",""]})", kLimits, &param));
  EXPECT_EQ(param, "input[1]");
  EXPECT_FALSE(parse_embedding_request(R"({"model":"m","input":["a",3]})", kLimits, &param));
  EXPECT_EQ(param, "input[1]");
  EXPECT_FALSE(parse_embedding_request(R"({"model":"m","input":"a","encoding_format":"hex"})",
                                       kLimits, &param));
  EXPECT_EQ(param, "encoding_format");
}

TEST(Writers, ChatCompletionAndChunks) {
  ResponseMeta meta{"chatcmpl-1", 1700000000, "m"};
  ChatResult r;
  r.content = "hello";
  r.reasoning = true;
  r.reasoning_content = "think";
  r.finish_reason = "stop";
  r.usage = {5, 2, 1};
  json::value v = json::parse(write_chat_completion(meta, r));
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_EQ(v.at("id").as_string(), "chatcmpl-1");
  EXPECT_EQ(v.at("created").as_int64(), 1700000000);
  const auto& msg = v.at("choices").as_array()[0].at("message");
  EXPECT_EQ(msg.at("role").as_string(), "assistant");
  EXPECT_EQ(msg.at("content").as_string(), "hello");
  EXPECT_EQ(msg.at("reasoning_content").as_string(), "think");
  EXPECT_EQ(v.at("usage").at("total_tokens").as_int64(), 7);
  EXPECT_EQ(v.at("usage").at("prompt_tokens_details").at("cached_tokens").as_int64(), 1);

  ChatDelta first;
  first.role = "assistant";
  first.content = "";
  json::value c = json::parse(write_chat_chunk(meta, first));
  EXPECT_EQ(c.at("object").as_string(), "chat.completion.chunk");
  EXPECT_EQ(c.at("choices").as_array()[0].at("delta").at("role").as_string(), "assistant");
  EXPECT_TRUE(c.at("choices").as_array()[0].at("finish_reason").is_null());
  ChatDelta last;
  last.finish_reason = "length";
  json::value l = json::parse(write_chat_chunk(meta, last));
  EXPECT_TRUE(l.at("choices").as_array()[0].at("delta").as_object().empty());
  EXPECT_EQ(l.at("choices").as_array()[0].at("finish_reason").as_string(), "length");
  json::value u = json::parse(write_chat_usage_chunk(meta, {3, 4, 0}));
  EXPECT_TRUE(u.at("choices").as_array().empty());
  EXPECT_EQ(u.at("usage").at("completion_tokens").as_int64(), 4);
  // Payloads must be single-line for SSE framing.
  EXPECT_EQ(write_chat_chunk(meta, ChatDelta{"", std::string("a\nb"), {}, ""}).find('\n'),
            std::string::npos);
}

std::vector<TokenLogprob> sample_logprobs() {
  TokenLogprob a;
  a.bytes = "Hi";
  a.logprob = -0.25f;
  a.top = {{"Hi", -0.25f}, {"\xE2\x82", -2.0f}};
  TokenLogprob b;
  b.bytes = "\xE2\x82";  // part of a character
  b.logprob = -1.5f;
  TokenLogprob c;
  c.bytes = "\xAC!";
  c.logprob = -std::numeric_limits<float>::infinity();
  return {a, b, c};
}

TEST(Writers, ChatLogprobs) {
  ResponseMeta meta{"chatcmpl-1", 1, "m"};
  ChatResult r;
  r.content = "Hi\xE2\x82\xAC!";
  r.finish_reason = "stop";
  EXPECT_TRUE(json::parse(write_chat_completion(meta, r))
                  .at("choices")
                  .as_array()[0]
                  .at("logprobs")
                  .is_null());
  r.logprobs = sample_logprobs();
  json::value v = json::parse(write_chat_completion(meta, r));
  const json::array& content =
      v.at("choices").as_array()[0].at("logprobs").at("content").as_array();
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[0].at("token").as_string(), "Hi");
  EXPECT_DOUBLE_EQ(content[0].at("logprob").as_double(), -0.25);
  EXPECT_EQ(content[0].at("bytes"), (json::array{72, 105}));
  const json::array& top = content[0].at("top_logprobs").as_array();
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[1].at("token").as_string(), "\xEF\xBF\xBD");
  EXPECT_EQ(top[1].at("bytes"), (json::array{0xE2, 0x82}));
  EXPECT_DOUBLE_EQ(top[1].at("logprob").as_double(), -2.0);
  EXPECT_TRUE(content[1].at("top_logprobs").as_array().empty());
  EXPECT_EQ(content[2].at("token").as_string(), "\xEF\xBF\xBD!");
  EXPECT_DOUBLE_EQ(content[2].at("logprob").as_double(), -9999.0);  // no -Infinity in JSON

  ChatDelta d;
  d.content = "Hi";
  json::value none = json::parse(write_chat_chunk(meta, d));
  EXPECT_TRUE(none.at("choices").as_array()[0].at("logprobs").is_null());
  d.logprobs = std::vector<TokenLogprob>{sample_logprobs()[0]};
  std::string chunk = write_chat_chunk(meta, d);
  EXPECT_EQ(chunk.find('\n'), std::string::npos);
  json::value c = json::parse(chunk);
  EXPECT_EQ(c.at("choices").as_array()[0].at("logprobs").at("content").as_array().size(), 1u);
  d.logprobs = std::vector<TokenLogprob>{};
  json::value empty = json::parse(write_chat_chunk(meta, d));
  EXPECT_TRUE(empty.at("choices").as_array()[0].at("logprobs").at("content").as_array().empty());
}

TEST(Writers, TextLogprobs) {
  ResponseMeta meta{"cmpl-1", 1, "m"};
  TextResult r;
  r.text = "Hi\xE2\x82\xAC!";
  r.finish_reason = "length";
  EXPECT_TRUE(json::parse(write_text_completion(meta, r))
                  .at("choices")
                  .as_array()[0]
                  .at("logprobs")
                  .is_null());
  r.logprobs = TextLogprobs{sample_logprobs(), 0};
  json::value lp =
      json::parse(write_text_completion(meta, r)).at("choices").as_array()[0].at("logprobs");
  EXPECT_EQ(lp.at("tokens"), (json::array{"Hi", "\xEF\xBF\xBD", "\xEF\xBF\xBD!"}));
  EXPECT_DOUBLE_EQ(lp.at("token_logprobs").as_array()[1].as_double(), -1.5);
  EXPECT_EQ(lp.at("text_offset"), (json::array{0, 2, 3}));
  const json::object& top0 = lp.at("top_logprobs").as_array()[0].as_object();
  EXPECT_EQ(top0.size(), 2u);
  EXPECT_DOUBLE_EQ(top0.at("Hi").as_double(), -0.25);
  EXPECT_DOUBLE_EQ(top0.at("\xEF\xBF\xBD").as_double(), -2.0);
  EXPECT_TRUE(lp.at("top_logprobs").as_array()[1].as_object().empty());

  // A stream chunk starts at the characters earlier chunks carried.
  TextLogprobs later{{sample_logprobs()[0]}, 7};
  json::value c = json::parse(write_text_chunk(meta, "Hi", {}, &later));
  EXPECT_EQ(c.at("choices").as_array()[0].at("logprobs").at("text_offset"), (json::array{7}));
  json::value plain = json::parse(write_text_chunk(meta, "Hi", {}));
  EXPECT_TRUE(plain.at("choices").as_array()[0].at("logprobs").is_null());
}

TEST(Writers, ModelsEmbeddingsBase64) {
  std::vector<ModelCard> cards(1);
  cards[0].id = "demo";
  cards[0].is_demo = true;
  json::value m = json::parse(write_models(cards));
  EXPECT_EQ(m.at("object").as_string(), "list");
  EXPECT_EQ(m.at("data").as_array()[0].at("id").as_string(), "demo");
  EXPECT_TRUE(m.at("data").as_array()[0].at("demo").as_bool());
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  json::value e = json::parse(write_embeddings("m", {{1.0f, 0.0f}}, EmbeddingEncoding::kBase64, 3));
  EXPECT_EQ(e.at("data").as_array()[0].at("embedding").as_string(), "AACAPwAAAAA=");
  EXPECT_EQ(e.at("usage").at("prompt_tokens").as_int64(), 3);
  json::value f = json::parse(write_embeddings("m", {{0.5f}}, EmbeddingEncoding::kFloat, 1));
  EXPECT_DOUBLE_EQ(f.at("data").as_array()[0].at("embedding").as_array()[0].as_double(), 0.5);
}

}  // namespace
}  // namespace enclave::api
