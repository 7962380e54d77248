// Chat template renderers. Each function mirrors one official Jinja template line by line; the
// fixtures in shared/fixtures/templates/renders.jsonl pin the output byte for byte.
#include "tokenizer/chat_template.h"

#include <boost/json.hpp>
#include <ctime>

namespace enclave::tokenizer {

namespace {

constexpr std::string_view kUser = "<｜User｜>";
constexpr std::string_view kAssistant = "<｜Assistant｜>";
constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kDsBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kQwenDefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

bool contains(std::string_view s, std::string_view needle) {
  return s.find(needle) != std::string_view::npos;
}

// Jinja's `| tojson` on the arguments: objects/arrays stay as given, other text is quoted.
std::string tool_args(const std::string& args) {
  boost::system::error_code ec;
  auto v = boost::json::parse(args, ec);
  if (!ec && (v.is_object() || v.is_array())) return args;
  return boost::json::serialize(boost::json::value(args));
}

std::string trim(std::string_view s) {
  constexpr std::string_view kWs = " \t\n\r\v\f";
  const size_t b = s.find_first_not_of(kWs);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(kWs);
  return std::string(s.substr(b, e - b + 1));
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%d %b %Y", &tm);
  return buf;
}

bool is_tool_call_msg(const ChatMessage& m) {
  return m.role == "assistant" && !m.tool_calls.empty();
}
// The Jinja templates test `content is none`: an assistant turn that only carries tool calls.
bool content_is_none(const ChatMessage& m) {
  return m.role == "assistant" && !m.tool_calls.empty() && m.content.empty();
}

}  // namespace

std::string ChatTemplate::known_names() {
  return "deepseek-r1, deepseek-r1-llama, deepseek-v3, deepseek-v3.1, chatml, qwen2.5, llama3, "
         "llama3.1";
}

Result<ChatTemplate> ChatTemplate::by_name(std::string_view name,
                                           const gguf::GgufFile* vocab_source) {
  ChatTemplate t;
  t.name_ = std::string(name);
  if (name == "deepseek-r1") {
    t.kind_ = TemplateKind::kDeepSeekR1;
  } else if (name == "deepseek-r1-llama") {
    t.kind_ = TemplateKind::kDeepSeekR1;
    t.r1_thinking_switch_ = false;
  } else if (name == "deepseek-v3") {
    t.kind_ = TemplateKind::kDeepSeekV3;
  } else if (name == "deepseek-v3.1") {
    t.kind_ = TemplateKind::kDeepSeekV31;
  } else if (name == "chatml") {
    t.kind_ = TemplateKind::kChatML;
  } else if (name == "qwen2.5") {
    t.kind_ = TemplateKind::kChatML;
    t.default_system_ = std::string(kQwenDefaultSystem);
  } else if (name == "llama3") {
    t.kind_ = TemplateKind::kLlama3;
    t.llama31_ = false;
  } else if (name == "llama3.1") {
    t.kind_ = TemplateKind::kLlama3;
  } else {
    return make_error(
        ErrorCode::kInvalidArgument,
        "unknown chat template name '" + std::string(name) + "' (known: " + known_names() + ")");
  }
  switch (t.kind_) {
    case TemplateKind::kDeepSeekR1:
    case TemplateKind::kDeepSeekV3:
    case TemplateKind::kDeepSeekV31:
      t.bos_text = std::string(kDsBos);
      t.eos_text = std::string(kEos);
      t.add_bos_token = true;
      break;
    case TemplateKind::kChatML:
      t.bos_text = "";
      t.eos_text = "<|im_end|>";
      break;
    case TemplateKind::kLlama3:
      t.bos_text = "<|begin_of_text|>";
      t.eos_text = "<|eot_id|>";
      t.add_bos_token = true;
      break;
  }
  if (vocab_source != nullptr) {
    const auto& f = *vocab_source;
    ENCLAVE_ASSIGN_OR_RETURN(auto tokens, f.get_string_array("tokenizer.ggml.tokens"));
    if (tokens) {
      auto text_of = [&](std::string_view key, std::string& dst) -> Status {
        ENCLAVE_ASSIGN_OR_RETURN(auto id, f.get_uint(key));
        if (id && *id < tokens->size()) dst = (*tokens)[*id];
        return Status::ok();
      };
      ENCLAVE_TRY_STATUS(text_of("tokenizer.ggml.bos_token_id", t.bos_text));
      ENCLAVE_TRY_STATUS(text_of("tokenizer.ggml.eos_token_id", t.eos_text));
    }
    ENCLAVE_ASSIGN_OR_RETURN(auto add_bos, f.get_bool("tokenizer.ggml.add_bos_token"));
    if (add_bos) t.add_bos_token = *add_bos;
  }
  return t;
}

Result<ChatTemplate> ChatTemplate::from_gguf(const gguf::GgufFile& file) {
  ENCLAVE_ASSIGN_OR_RETURN(auto tmpl, file.get_string("tokenizer.chat_template"));
  if (!tmpl) {
    return make_error(ErrorCode::kNotFound,
                      "GGUF '" + file.path() +
                          "' has no tokenizer.chat_template; choose a template by name (" +
                          known_names() + ")");
  }
  const std::string& s = *tmpl;
  std::string name;
  if (contains(s, kUser) && contains(s, kAssistant)) {
    if (contains(s, "is_last_user") || contains(s, "<think></think>")) {
      name = "deepseek-v3.1";
    } else if (contains(s, "</think>")) {
      name = contains(s, "enable_thinking") || !contains(s, "content'] is none")
                 ? "deepseek-r1"
                 : "deepseek-r1-llama";
    } else {
      name = "deepseek-v3";
    }
  } else if (contains(s, "<|im_start|>")) {
    name = contains(s, kQwenDefaultSystem) ? "qwen2.5" : "chatml";
  } else if (contains(s, "<|start_header_id|>")) {
    name = contains(s, "Cutting Knowledge Date") ? "llama3.1" : "llama3";
  } else {
    return make_error(ErrorCode::kUnsupported,
                      "GGUF '" + file.path() +
                          "': tokenizer.chat_template is not a recognised DeepSeek / ChatML / "
                          "Llama-3 template; choose one by name (" +
                          known_names() + ")");
  }
  return by_name(name, &file);
}

bool ChatTemplate::generation_starts_in_reasoning(const RenderOptions& o) const {
  if (!o.add_generation_prompt) return false;
  if (kind_ == TemplateKind::kDeepSeekR1) return !(r1_thinking_switch_ && !o.enable_thinking);
  if (kind_ == TemplateKind::kDeepSeekV31) return o.enable_thinking;
  return false;
}

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages,
                                         bool add_generation_prompt) const {
  RenderOptions o;
  o.add_generation_prompt = add_generation_prompt;
  return render(messages, o);
}

// Appends markup (operator+=) or message content (content()); merges adjacent pieces of the same
// kind so that the segment list alternates.
class ChatTemplate::Writer {
 public:
  Writer& operator+=(std::string_view markup) {
    append(markup, false);
    return *this;
  }
  Writer& content(std::string_view text) {
    append(text, true);
    return *this;
  }
  std::vector<PromptSegment>& segments() { return segments_; }

 private:
  void append(std::string_view text, bool is_content) {
    if (text.empty()) return;
    if (!segments_.empty() && segments_.back().is_content == is_content)
      segments_.back().text += text;
    else
      segments_.push_back({std::string(text), is_content});
  }
  std::vector<PromptSegment> segments_;
};

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages,
                                         const RenderOptions& o) const {
  ENCLAVE_ASSIGN_OR_RETURN(std::vector<PromptSegment> segments, render_segments(messages, o));
  std::string out;
  for (const auto& seg : segments) out += seg.text;
  return out;
}

Result<std::vector<PromptSegment>> ChatTemplate::render_segments(
    std::span<const ChatMessage> messages, const RenderOptions& o) const {
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant" && r != "tool" && r != "ipython") {
      return make_error(ErrorCode::kInvalidArgument,
                        "message " + std::to_string(i) + " has role '" + r +
                            "'; expected system, user, assistant or tool");
    }
  }
  Writer out;
  switch (kind_) {
    case TemplateKind::kDeepSeekR1:
      render_r1(messages, o, out);
      break;
    case TemplateKind::kDeepSeekV3:
      render_v3(messages, o, out);
      break;
    case TemplateKind::kDeepSeekV31:
      render_v31(messages, o, out);
      break;
    case TemplateKind::kChatML:
      render_chatml(messages, o, out);
      break;
    case TemplateKind::kLlama3: {
      ENCLAVE_TRY_STATUS(render_llama3(messages, o, out));
      break;
    }
  }
  std::vector<PromptSegment>& segs = out.segments();
  // The BOS text is always the template's own first markup.
  if (o.strip_leading_bos && !bos_text.empty() && !segs.empty() && !segs[0].is_content &&
      segs[0].text.starts_with(bos_text)) {
    segs[0].text.erase(0, bos_text.size());
    if (segs[0].text.empty()) segs.erase(segs.begin());
  }
  return std::move(segs);
}

void ChatTemplate::render_r1(std::span<const ChatMessage> msgs, const RenderOptions& o,
                             Writer& out) const {
  std::string_view system;  // the template keeps only the last system message
  for (const auto& m : msgs) {
    if (m.role == "system") system = m.content;
  }
  out += bos_text;
  out.content(system);
  bool is_first = false;  // never reset: the official template's quirk
  bool is_tool = false;
  bool is_output_first = true;
  const bool llama_flavour = !r1_thinking_switch_;
  for (const auto& m : msgs) {
    if (m.role == "user") {
      is_tool = false;
      out += kUser;
      out.content(m.content);
    }
    const bool tool_branch = llama_flavour ? content_is_none(m) : is_tool_call_msg(m);
    if (tool_branch) {
      is_tool = false;
      for (const auto& tc : m.tool_calls) {
        const std::string args = llama_flavour ? tc.arguments : tool_args(tc.arguments);
        if (!is_first) {
          out += kAssistant;
          out += "<｜tool▁calls▁begin｜>";
        } else {
          out += "\n";
        }
        out += "<｜tool▁call▁begin｜>";
        out.content(tc.type);
        out += "<｜tool▁sep｜>";
        out.content(tc.name);
        out += "\n```json\n";
        out.content(args);
        out += "\n```<｜tool▁call▁end｜>";
        if (!is_first) {
          is_first = true;
        } else if (llama_flavour) {
          out += "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>";
        }
      }
      if (!llama_flavour) out += "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>";
    }
    if (m.role == "assistant" && !content_is_none(m)) {
      if (is_tool) {
        out += "<｜tool▁outputs▁end｜>";
        out.content(m.content);
        out += kEos;
        is_tool = false;
      } else {
        std::string_view content = m.content;
        const size_t pos = content.rfind("</think>");
        if (pos != std::string_view::npos) content = content.substr(pos + 8);
        out += kAssistant;
        out.content(content);
        out += kEos;
      }
    }
    if (m.role == "tool") {
      is_tool = true;
      write_tool_output(out, m.content, is_output_first);
    }
  }
  if (is_tool) out += "<｜tool▁outputs▁end｜>";
  if (o.add_generation_prompt && !is_tool) {
    out += kAssistant;
    out += "<think>\n";
    if (r1_thinking_switch_ && !o.enable_thinking) out += "</think>";
  }
}

// One tool result in the R1 / V3 templates: the first opens the outputs block.
void ChatTemplate::write_tool_output(Writer& out, std::string_view content, bool& is_output_first) {
  if (is_output_first) {
    out += "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>";
    is_output_first = false;
  } else {
    out += "\n<｜tool▁output▁begin｜>";
  }
  out.content(content);
  out += "<｜tool▁output▁end｜>";
}

void ChatTemplate::render_v3(std::span<const ChatMessage> msgs, const RenderOptions& o,
                             Writer& out) const {
  out += bos_text;
  bool any_system = false;  // the separator follows non-empty accumulated system text only
  for (const auto& m : msgs) {
    if (m.role != "system") continue;
    if (any_system) out += "\n\n";
    out.content(m.content);
    any_system = any_system || !m.content.empty();
  }
  bool is_tool = false;
  bool is_output_first = true;
  for (const auto& m : msgs) {
    if (m.role == "user") {
      is_tool = false;
      out += kUser;
      out.content(m.content);
    } else if (m.role == "assistant") {
      if (!m.tool_calls.empty()) {
        out += kAssistant;
        out += "<｜tool▁calls▁begin｜>";
        for (size_t i = 0; i < m.tool_calls.size(); ++i) {
          const auto& tc = m.tool_calls[i];
          if (i > 0) out += "\n";
          out += "<｜tool▁call▁begin｜>";
          out.content(tc.type);
          out += "<｜tool▁sep｜>";
          out.content(tc.name);
          out += "\n```json\n";
          out.content(tool_args(tc.arguments));
          out += "\n```<｜tool▁call▁end｜>";
        }
        out += "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>";
        is_tool = false;
      } else if (is_tool) {
        out += "<｜tool▁outputs▁end｜>";
        out.content(m.content);
        out += kEos;
        is_tool = false;
      } else {
        out += kAssistant;
        out.content(m.content);
        out += kEos;
      }
    } else if (m.role == "tool") {
      is_tool = true;
      write_tool_output(out, m.content, is_output_first);
    }
  }
  if (is_tool) out += "<｜tool▁outputs▁end｜>";
  if (o.add_generation_prompt && !is_tool) out += kAssistant;
}

void ChatTemplate::render_v31(std::span<const ChatMessage> msgs, const RenderOptions& o,
                              Writer& out) const {
  const bool thinking = o.enable_thinking;
  out += bos_text;
  bool first_sp = true;
  for (const auto& m : msgs) {
    if (m.role != "system") continue;
    if (!first_sp) out += "\n\n";
    out.content(m.content);
    first_sp = false;
  }
  bool is_first = false;
  bool is_tool = false;
  bool is_last_user = false;
  for (const auto& m : msgs) {
    if (m.role == "user") {
      is_tool = false;
      is_first = false;
      is_last_user = true;
      out += kUser;
      out.content(m.content);
    }
    if (m.role == "assistant" && !m.tool_calls.empty()) {
      if (is_last_user) {
        out += kAssistant;
        out += "<think></think>";
      }
      is_last_user = false;
      is_first = false;
      is_tool = false;
      for (const auto& tc : m.tool_calls) {
        if (!is_first) {
          out.content(m.content);
          out += "<｜tool▁calls▁begin｜>";
          is_first = true;
        }
        out += "<｜tool▁call▁begin｜>";
        out.content(tc.name);
        out += "<｜tool▁sep｜>";
        out.content(tool_args(tc.arguments));
        out += "<｜tool▁call▁end｜>";
      }
      out += "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>";
    }
    if (m.role == "assistant" && m.tool_calls.empty()) {
      if (is_last_user) {
        out += kAssistant;
        out += "<think></think>";
      }
      is_last_user = false;
      if (is_tool) {
        out.content(m.content);
        out += kEos;
        is_tool = false;
      } else {
        std::string_view content = m.content;
        const size_t pos = content.find("</think>");
        if (pos != std::string_view::npos) content = content.substr(pos + 8);
        out.content(content);
        out += kEos;
      }
    }
    if (m.role == "tool") {
      is_last_user = false;
      is_tool = true;
      out += "<｜tool▁output▁begin｜>";
      out.content(m.content);
      out += "<｜tool▁output▁end｜>";
    }
  }
  if (o.add_generation_prompt && is_last_user && !is_tool) {
    out += kAssistant;
    out += thinking ? "<think>" : "<think></think>";
  }
}

void ChatTemplate::render_chatml(std::span<const ChatMessage> msgs, const RenderOptions& o,
                                 Writer& out) const {
  if (!msgs.empty() && msgs[0].role == "system") {
    out += "<|im_start|>system\n";
    out.content(msgs[0].content);
    out += "<|im_end|>\n";
  } else if (!default_system_.empty()) {
    out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    if (m.role == "user" || (m.role == "system" && i > 0) ||
        (m.role == "assistant" && m.tool_calls.empty())) {
      out += "<|im_start|>" + m.role + "\n";
      out.content(m.content);
      out += "<|im_end|>\n";
    } else if (m.role == "assistant") {
      out += "<|im_start|>assistant";
      if (!m.content.empty()) {
        out += "\n";
        out.content(m.content);
      }
      for (const auto& tc : m.tool_calls) {
        out += "\n<tool_call>\n{\"name\": \"";
        out.content(tc.name);
        out += "\", \"arguments\": ";
        out.content(tool_args(tc.arguments));
        out += "}\n</tool_call>";
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || msgs[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n";
      out.content(m.content);
      out += "\n</tool_response>";
      if (i + 1 == msgs.size() || msgs[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (o.add_generation_prompt) out += "<|im_start|>assistant\n";
}

Status ChatTemplate::render_llama3(std::span<const ChatMessage> msgs, const RenderOptions& o,
                                   Writer& out) const {
  out += bos_text;
  size_t start = 0;
  if (llama31_) {
    std::string system;
    if (!msgs.empty() && msgs[0].role == "system") {
      system = trim(msgs[0].content);
      start = 1;
    }
    out += "<|start_header_id|>system<|end_header_id|>\n\n";
    out += "Cutting Knowledge Date: December 2023\n";
    out += "Today Date: " + (o.date_string.empty() ? today() : o.date_string) + "\n\n";
    out.content(system);
    out += "<|eot_id|>";
  }
  for (size_t i = start; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    if (m.role == "tool" || m.role == "ipython") {
      out += "<|start_header_id|>ipython<|end_header_id|>\n\n";
      out.content(m.content);
      out += "<|eot_id|>";
    } else if (!m.tool_calls.empty()) {
      if (m.tool_calls.size() != 1) {
        return make_error(ErrorCode::kInvalidArgument,
                          "the Llama 3.1 template supports one tool call per assistant turn; "
                          "message " +
                              std::to_string(i) + " has " + std::to_string(m.tool_calls.size()));
      }
      const auto& tc = m.tool_calls[0];
      out += "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"";
      out.content(tc.name);
      out += "\", \"parameters\": ";
      out.content(tool_args(tc.arguments));
      out += "}<|eot_id|>";
    } else {
      out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n";
      out.content(trim(m.content));
      out += "<|eot_id|>";
    }
  }
  if (o.add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return Status::ok();
}

}  // namespace enclave::tokenizer
