// Local engine backend.
#include "server/engine_backend.h"

#include "engine/chat_prompt.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/reasoning_parser.h"
#include "tokenizer/tokenizer.h"

namespace enclave::server {
namespace {

class ParserSplitter : public ReasoningSplitter {
 public:
  explicit ParserSplitter(bool starts_in_reasoning) : parser_(starts_in_reasoning) {}
  Delta push(std::string_view text) override {
    tokenizer::ReasoningParser::Delta d = parser_.push(text);
    return {std::move(d.reasoning), std::move(d.content)};
  }
  Delta flush() override {
    tokenizer::ReasoningParser::Delta d = parser_.flush();
    return {std::move(d.reasoning), std::move(d.content)};
  }

 private:
  tokenizer::ReasoningParser parser_;
};

}  // namespace

EngineBackend::EngineBackend(std::unique_ptr<engine::Engine> engine, std::string model_id,
                             std::vector<std::string> aliases, bool is_demo)
    : engine_(std::move(engine)), model_id_(std::move(model_id)), aliases_(std::move(aliases)) {
  info_ = engine_->info();
  info_.is_demo = info_.is_demo || is_demo;
}

EngineBackend::~EngineBackend() {
  engine_->shutdown();
}

Result<PreparedPrompt> EngineBackend::prepare_chat(const std::vector<api::ChatMessage>& messages) {
  const tokenizer::ChatTemplate& tmpl = engine_->chat_template();
  const tokenizer::Tokenizer& tok = engine_->tokenizer();
  std::vector<tokenizer::ChatMessage> msgs;
  msgs.reserve(messages.size());
  for (const api::ChatMessage& m : messages) {
    tokenizer::ChatMessage t;
    t.role = m.role;
    t.content = m.content;
    t.reasoning_content = m.reasoning_content;
    t.name = m.name;
    msgs.push_back(std::move(t));
  }
  tokenizer::RenderOptions opts;
  opts.add_generation_prompt = true;
  // Control tokens come only from the template's markup: message contents are tokenized as plain
  // text, so a message that contains "<｜Assistant｜>" or "<|im_end|>" cannot inject them.
  Result<engine::ChatPrompt> chat = engine::encode_chat(tok, tmpl, msgs, opts);
  if (!chat) {
    return Error(chat.error().code == ErrorCode::kInternal ? ErrorCode::kInternal
                                                           : ErrorCode::kInvalidArgument,
                 "cannot render the chat template for these messages: " + chat.error().message);
  }
  PreparedPrompt p;
  p.tokens = std::move(chat->tokens);
  p.reasoning = chat->reasoning;
  p.starts_in_reasoning = chat->starts_in_reasoning;
  return p;
}

Result<std::vector<int32_t>> EngineBackend::tokenize(std::string_view text) {
  const tokenizer::Tokenizer& tok = engine_->tokenizer();
  return tok.encode(text, tok.add_bos_default(), /*parse_special=*/false);
}

std::unique_ptr<ReasoningSplitter> EngineBackend::make_splitter(bool starts_in_reasoning) {
  return std::make_unique<ParserSplitter>(starts_in_reasoning);
}

std::string EngineBackend::token_bytes(int32_t token) const {
  return engine_->tokenizer().token_to_piece(token);
}

Result<uint64_t> EngineBackend::submit(engine::GenerationRequest request,
                                       engine::TokenCallback on_event) {
  return engine_->submit(std::move(request), std::move(on_event));
}

Result<std::vector<float>> EngineBackend::embed(const std::vector<int32_t>& tokens) {
  return engine_->embed(tokens);
}

}  // namespace enclave::server
