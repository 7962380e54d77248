// Request parsing/validation (every field, param names) and response writers.
#include "api/codec.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

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
  expect_chat_error(chat_with(R"(,"logprobs":true)"), "logprobs", ErrorCode::kUnsupported);
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
