// `enclave template`: render a chat conversation with a GGUF model's chat template.
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "gguf/gguf_file.h"
#include "tokenizer/chat_template.h"

namespace enclave::cli {

namespace {

// FILE.json: an array of {role, content} objects, or {"messages": [...]}.
Result<std::vector<tokenizer::ChatMessage>> read_messages(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, "cannot open messages file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(ss.str(), ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "messages file '" + path + "' is not valid JSON: " + ec.message());
  }
  const boost::json::array* arr = v.if_array();
  if (arr == nullptr && v.is_object()) {
    if (auto* m = v.as_object().if_contains("messages")) arr = m->if_array();
  }
  if (arr == nullptr) {
    return make_error(ErrorCode::kInvalidArgument,
                      "messages file '" + path +
                          "' must hold an array of {role, content} or {\"messages\": [...]}");
  }
  std::vector<tokenizer::ChatMessage> out;
  for (size_t i = 0; i < arr->size(); ++i) {
    const auto* o = (*arr)[i].if_object();
    const auto* role = o ? o->if_contains("role") : nullptr;
    if (role == nullptr || !role->is_string()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "message " + std::to_string(i) + " in '" + path + "' has no string role");
    }
    tokenizer::ChatMessage m;
    m.role = std::string(role->as_string());
    if (const auto* c = o->if_contains("content"); c && c->is_string()) {
      m.content = std::string(c->as_string());
    }
    if (const auto* tcs = o->if_contains("tool_calls"); tcs && tcs->is_array()) {
      for (const auto& tcv : tcs->as_array()) {
        const auto* tco = tcv.if_object();
        if (tco == nullptr) continue;
        tokenizer::ToolCall tc;
        if (const auto* fn = tco->if_contains("function"); fn && fn->is_object()) {
          const auto& f = fn->as_object();
          if (const auto* n = f.if_contains("name"); n && n->is_string()) {
            tc.name = std::string(n->as_string());
          }
          if (const auto* a = f.if_contains("arguments")) {
            tc.arguments =
                a->is_string() ? std::string(a->as_string()) : boost::json::serialize(*a);
          }
        }
        m.tool_calls.push_back(std::move(tc));
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

void register_template(CLI::App& app, int& exit_code) {
  auto* cmd =
      app.add_subcommand("template", "Render a conversation with the model's chat template");
  struct Opts {
    std::string model;
    std::string messages;
    std::string name;
    bool no_gen = false;
    bool no_think = false;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("--model,-m", opts->model, "GGUF file (template + vocabulary)")->required();
  cmd->add_option("--messages", opts->messages, "JSON file with the messages")->required();
  cmd->add_option(
      "--name", opts->name,
      "Template name instead of the GGUF's (" + tokenizer::ChatTemplate::known_names() + ")");
  cmd->add_flag("--no-generation-prompt", opts->no_gen, "Do not append the assistant prompt");
  cmd->add_flag("--no-thinking", opts->no_think, "enable_thinking = false (R1-Qwen, V3.1)");
  cmd->callback([opts, &exit_code] {
    auto msgs = read_messages(opts->messages);
    if (!msgs) {
      std::fprintf(stderr, "error: %s\n", msgs.error().message.c_str());
      exit_code = msgs.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
      return;
    }
    auto file = gguf::GgufFile::open(opts->model);
    if (!file) {
      std::fprintf(stderr, "error: %s\n", file.error().message.c_str());
      exit_code = 1;
      return;
    }
    auto tmpl = opts->name.empty() ? tokenizer::ChatTemplate::from_gguf(*file)
                                   : tokenizer::ChatTemplate::by_name(opts->name, &*file);
    if (!tmpl) {
      std::fprintf(stderr, "error: %s\n", tmpl.error().message.c_str());
      exit_code = tmpl.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
      return;
    }
    tokenizer::RenderOptions ro;
    ro.add_generation_prompt = !opts->no_gen;
    ro.enable_thinking = !opts->no_think;
    auto out = tmpl->render(*msgs, ro);
    if (!out) {
      std::fprintf(stderr, "error: %s\n", out.error().message.c_str());
      exit_code = out.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
      return;
    }
    std::fwrite(out->data(), 1, out->size(), stdout);  // exactly the prompt, no newline added
    exit_code = 0;
  });
}

}  // namespace enclave::cli
