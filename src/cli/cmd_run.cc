// `enclave run`: local generation with the engine. The chat template is applied by default and
// tokens stream to stdout as they are generated. Everything that is not the model's answer (load
// messages, statistics, reasoning of R1-style models) goes to stderr, so with --temp 0 stdout
// holds exactly the greedy continuation.
//
// Reasoning models (R1 templates): the "<think>" part is written to stderr under a "Thinking..."
// header (dimmed when stderr is a terminal) and only the answer goes to stdout; --hide-reasoning
// drops it entirely.
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "engine/chat_prompt.h"
#include "engine/engine.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/reasoning_parser.h"
#include "tokenizer/tokenizer.h"

namespace enclave::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string prompt;
  bool has_prompt = false;
  std::string system;
  bool raw = false;
  bool hide_reasoning = false;
  int32_t max_tokens = -1;
  float temp = 0.8f;
  int32_t top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  int32_t repeat_last_n = 64;
  int64_t seed = -1;
  int32_t threads = 2;
  int32_t ctx = 4096;
  std::string kv_type = "f16";
  bool mmap = false;
};

// Writes the streamed output: answer to stdout, reasoning to stderr.
class Printer {
 public:
  Printer(bool reasoning, bool starts_in_reasoning, bool hide_reasoning)
      : reasoning_(reasoning),
        parser_(starts_in_reasoning),
        hide_(hide_reasoning),
        tty_(isatty(STDERR_FILENO) != 0) {}

  void text(const std::string& t) {
    if (!reasoning_) {
      out(t);
      return;
    }
    apply(parser_.push(t));
  }
  void finish() {
    if (reasoning_) apply(parser_.flush());
    if (in_thinking_) end_thinking();
  }
  const std::string& answer() const { return answer_; }

 private:
  void out(const std::string& t) {
    if (t.empty()) return;
    answer_ += t;
    std::fwrite(t.data(), 1, t.size(), stdout);
    std::fflush(stdout);
  }
  void apply(const tokenizer::ReasoningParser::Delta& d) {
    if (!d.reasoning.empty() && !hide_) {
      if (!in_thinking_) {
        in_thinking_ = true;
        std::fputs(tty_ ? "\x1b[2mThinking...\n" : "Thinking...\n", stderr);
      }
      std::fwrite(d.reasoning.data(), 1, d.reasoning.size(), stderr);
      std::fflush(stderr);
    }
    if (!d.content.empty()) {
      if (in_thinking_) end_thinking();
      out(d.content);
    }
  }
  void end_thinking() {
    in_thinking_ = false;
    std::fputs(tty_ ? "\n...done thinking.\x1b[0m\n\n" : "\n...done thinking.\n\n", stderr);
    std::fflush(stderr);
  }

  bool reasoning_;
  tokenizer::ReasoningParser parser_;
  bool hide_;
  bool tty_;
  bool in_thinking_ = false;
  std::string answer_;
};

struct TurnResult {
  engine::TokenEvent final_event;
  double seconds = 0.0;
  std::string answer;
};

Result<TurnResult> generate(engine::Engine& eng, const RunOptions& o,
                            std::vector<int32_t> prompt_tokens, bool reasoning,
                            bool starts_in_reasoning) {
  engine::GenerationRequest req;
  req.prompt_tokens = std::move(prompt_tokens);
  req.max_tokens = o.max_tokens;
  req.sampling.temperature = o.temp;
  req.sampling.top_k = o.top_k;
  req.sampling.top_p = o.top_p;
  req.sampling.min_p = o.min_p;
  req.sampling.repeat_penalty = o.repeat_penalty;
  req.sampling.repeat_last_n = o.repeat_last_n;
  if (o.seed >= 0) req.sampling.seed = static_cast<uint64_t>(o.seed);

  Printer printer(reasoning, starts_in_reasoning, o.hide_reasoning);
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  TurnResult result;
  const auto t0 = std::chrono::steady_clock::now();
  auto id = eng.submit(std::move(req), [&](const engine::TokenEvent& ev) {
    printer.text(ev.text);
    if (ev.finished) {
      std::lock_guard<std::mutex> lock(mu);
      result.final_event = ev;
      done = true;
      cv.notify_all();
    }
  });
  if (!id) return id.error();
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  printer.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.answer = printer.answer();
  if (result.final_event.finish_reason == engine::FinishReason::kError)
    return make_error(ErrorCode::kInternal, result.final_event.error);
  return result;
}

// Errors caused by the flags or the prompt (exit 2) rather than by the run (exit 1).
bool bad_request(const Error& e) {
  return e.code == ErrorCode::kInvalidArgument || e.code == ErrorCode::kOutOfRange;
}

void print_stats(const TurnResult& r) {
  const auto& ev = r.final_event;
  std::fprintf(stderr,
               "\n[%d prompt tokens (%d cached), %d generated, %.2f s, %.2f tokens/s, finish: "
               "%s]\n",
               ev.prompt_tokens, ev.cached_prompt_tokens, ev.completion_tokens, r.seconds,
               r.seconds > 0 ? ev.completion_tokens / r.seconds : 0.0,
               engine::finish_reason_name(ev.finish_reason));
}

int run_command(const RunOptions& o) {
  engine::EngineOptions eo;
  eo.model_path = o.model;
  eo.mmap = o.mmap;
  eo.n_threads = o.threads;
  eo.n_ctx = o.ctx;
  eo.n_parallel = 1;
  eo.max_queue = 1;
  eo.kv_type = o.kv_type;
  auto created = engine::Engine::create(eo);
  if (!created) {
    std::fprintf(stderr, "error: %s\n", created.error().message.c_str());
    return created.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  auto& eng = **created;
  const auto& info = eng.info();
  const auto& tok = eng.tokenizer();
  const auto& tmpl = eng.chat_template();
  std::fprintf(stderr, "loaded %s (%s, context %d, %s chat template%s)\n", info.name.c_str(),
               info.architecture.c_str(), info.n_ctx, std::string(tmpl.name()).c_str(),
               info.is_demo ? ", random-weight demo" : "");

  if (o.raw) {
    std::string text = o.prompt;
    if (!o.has_prompt) text.assign(std::istreambuf_iterator<char>(std::cin), {});
    auto r = generate(eng, o, tok.encode(text, tok.add_bos_default(), true), false, false);
    if (!r) {
      std::fprintf(stderr, "error: %s\n", r.error().message.c_str());
      return bad_request(r.error()) ? 2 : 1;
    }
    if (isatty(STDOUT_FILENO)) std::fputc('\n', stdout);  // keep piped output exact
    print_stats(*r);
    return 0;
  }

  std::vector<tokenizer::ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system, "", "", ""});
  const bool interactive = !o.has_prompt;
  const bool tty_in = isatty(STDIN_FILENO) != 0;
  if (interactive && tty_in)
    std::fprintf(stderr, "Chat mode: one message per line; Ctrl-D ends.\n");
  for (;;) {
    std::string user;
    if (interactive) {
      if (tty_in) std::fputs("> ", stderr);
      if (!std::getline(std::cin, user)) break;
      if (user.empty()) continue;
    } else {
      user = o.prompt;
    }
    messages.push_back({"user", user, "", "", ""});
    tokenizer::RenderOptions ropts;
    ropts.add_generation_prompt = true;
    // Message text never yields control tokens; only the template's markup does.
    auto chat = engine::encode_chat(tok, tmpl, messages, ropts);
    if (!chat) {
      std::fprintf(stderr, "error: %s\n", chat.error().message.c_str());
      return 1;
    }
    auto r = generate(eng, o, std::move(chat->tokens), chat->reasoning, chat->starts_in_reasoning);
    if (!r) {
      std::fprintf(stderr, "error: %s\n", r.error().message.c_str());
      if (!interactive) return bad_request(r.error()) ? 2 : 1;
      messages.pop_back();
      continue;
    }
    if (interactive || isatty(STDOUT_FILENO)) std::fputc('\n', stdout);
    std::fflush(stdout);
    print_stats(*r);
    if (!interactive) break;
    messages.push_back({"assistant", r->answer, "", "", ""});
  }
  return 0;
}

}  // namespace

void register_run(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "run",
      "Generate text with a local GGUF model (chat template applied; interactive without -p)");
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("-m,--model", o->model, "GGUF model file")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt (omit for an interactive chat on stdin)");
  cmd->add_option("--system", o->system, "System message (chat mode)");
  cmd->add_flag("--raw", o->raw, "Plain completion of the prompt, no chat template");
  cmd->add_flag("--mmap", o->mmap, kMmapFlagHelp);
  cmd->add_flag("--hide-reasoning", o->hide_reasoning,
                "Reasoning models: do not print the thinking part (stderr otherwise)");
  cmd->add_option("-n,--max-tokens,--n-predict", o->max_tokens,
                  "Tokens to generate (-1: until end of generation or context)");
  cmd->add_option("--temp", o->temp, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Top-k (0 disables)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Top-p (1 disables)")->capture_default_str();
  cmd->add_option("--min-p", o->min_p, "Min-p (0 disables)")->capture_default_str();
  cmd->add_option("--repeat-penalty", o->repeat_penalty, "Repetition penalty (1 disables)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", o->repeat_last_n, "Tokens the repetition penalty looks at")
      ->capture_default_str();
  cmd->add_option("-s,--seed", o->seed, "Sampling seed (-1: random)")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads")->capture_default_str();
  cmd->add_option("-c,--ctx,--ctx-size", o->ctx, "Context size (capped at the model's)")
      ->capture_default_str();
  cmd->add_option("--kv-type", o->kv_type, "KV cache type: f16, q8_0 or f32")
      ->capture_default_str();
  cmd->callback([o, cmd, &exit_code] {
    o->has_prompt = cmd->count("--prompt") > 0;
    exit_code = run_command(*o);
  });
}

}  // namespace enclave::cli
