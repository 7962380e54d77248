// ChatTemplate: C++ renderers for the chat templates of DeepSeek-R1 (and its Qwen / Llama
// distills), DeepSeek-V3 and V3.1, Qwen2.5 ChatML and Llama 3 / 3.1, chosen by recognising the
// content of tokenizer.chat_template (reference doc section 5). No Jinja engine: each renderer
// hand-codes its template, including the quirks that llama.cpp's Jinja rendering shows.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "gguf/gguf_file.h"

namespace enclave::tokenizer {

struct ToolCall {
  std::string id;
  std::string type = "function";
  std::string name;
  std::string arguments;  // JSON text; an object is inserted verbatim, anything else JSON-quoted
};

struct ChatMessage {
  std::string role;  // system, user, assistant, tool
  std::string content;
  std::string reasoning_content;  // never rendered: templates drop past reasoning
  std::string tool_call_id;
  std::string name;
  std::vector<ToolCall> tool_calls;  // assistant only; with empty content = "content is none"
};

enum class TemplateKind {
  kDeepSeekR1,   // R1 / R1-Distill: past <think> dropped, generation prompt
                 // "<｜Assistant｜><think>\n"
  kDeepSeekV3,   // V3 (Dec-2024): same grammar, no <think> handling
  kDeepSeekV31,  // V3.1 hybrid: "<think></think>" before past answers, prompt "<think>" per flag
  kChatML,       // Qwen2 / Qwen2.5 (optionally with a default system prompt)
  kLlama3,       // Llama 3 / 3.1 header format
};

// One piece of a rendered prompt. Template markup may contain control-token texts; content came
// from a message (text, tool names and arguments) and must be tokenized without parsing them.
struct PromptSegment {
  std::string text;
  bool is_content = false;
};

struct RenderOptions {
  bool add_generation_prompt = true;
  bool enable_thinking = true;  // R1 (Qwen flavour) and V3.1; llama.cpp's default is true
  std::string date_string;      // Llama 3.1 "Today Date:"; empty = today's date ("26 Jul 2024")
  // Remove the BOS text from the start of the output, as llama.cpp does when the vocabulary's
  // add_bos_token is true (BOS is then added as a token during tokenization instead).
  bool strip_leading_bos = false;
};

class ChatTemplate {
 public:
  // Recognises tokenizer.chat_template. kNotFound when the key is absent, kUnsupported when the
  // template is not one of the known families (the message says to pass a name instead). BOS /
  // EOS texts come from the vocabulary.
  static Result<ChatTemplate> from_gguf(const gguf::GgufFile& file);
  // Names: deepseek-r1 (Qwen-distill flavour, honours enable_thinking), deepseek-r1-llama,
  // deepseek-v3, deepseek-v3.1, chatml, qwen2.5 (ChatML + Qwen default system prompt), llama3,
  // llama3.1. With `vocab_source`, BOS / EOS texts are read from its vocabulary.
  static Result<ChatTemplate> by_name(std::string_view name,
                                      const gguf::GgufFile* vocab_source = nullptr);
  static std::string known_names();

  Result<std::string> render(std::span<const ChatMessage> messages,
                             bool add_generation_prompt) const;
  Result<std::string> render(std::span<const ChatMessage> messages,
                             const RenderOptions& options) const;
  // The same text as render(), as alternating markup / content segments (adjacent pieces of the
  // same kind merged, no empty segments). Lets callers tokenize message contents with
  // parse_special = false so that a message cannot inject control tokens.
  Result<std::vector<PromptSegment>> render_segments(std::span<const ChatMessage> messages,
                                                     const RenderOptions& options) const;

  TemplateKind kind() const { return kind_; }
  std::string_view name() const { return name_; }
  bool is_reasoning() const { return kind_ == TemplateKind::kDeepSeekR1; }
  // True when the generation prompt leaves the model inside a <think> block, so its output
  // starts in reasoning (feed this to ReasoningParser).
  bool generation_starts_in_reasoning(const RenderOptions& options) const;

  std::string bos_text;
  std::string eos_text;
  bool add_bos_token = false;  // from the vocabulary; use for RenderOptions::strip_leading_bos

 private:
  class Writer;  // collects markup and content segments
  static void write_tool_output(Writer& out, std::string_view content, bool& is_output_first);
  void render_r1(std::span<const ChatMessage> m, const RenderOptions& o, Writer& out) const;
  void render_v3(std::span<const ChatMessage> m, const RenderOptions& o, Writer& out) const;
  void render_v31(std::span<const ChatMessage> m, const RenderOptions& o, Writer& out) const;
  void render_chatml(std::span<const ChatMessage> m, const RenderOptions& o, Writer& out) const;
  Status render_llama3(std::span<const ChatMessage> m, const RenderOptions& o, Writer& out) const;

  TemplateKind kind_ = TemplateKind::kChatML;
  std::string name_;
  bool r1_thinking_switch_ = true;  // R1-Distill-Qwen-32B template appends </think> when off
  bool llama31_ = true;             // Llama 3.1 system header (knowledge cutoff + date)
  std::string default_system_;      // ChatML default system prompt ("" = none)
};

}  // namespace enclave::tokenizer
