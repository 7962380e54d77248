// ReasoningParser state machine.
#include "tokenizer/reasoning_parser.h"

namespace enclave::tokenizer {

namespace {
constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

bool is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

size_t skip_ws(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t partial_tag_suffix(std::string_view s, std::string_view tag) {
  const size_t max = std::min(s.size(), tag.size() - 1);
  for (size_t n = max; n > 0; --n) {
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}
}  // namespace

ReasoningParser::ReasoningParser(bool starts_in_reasoning)
    : state_(starts_in_reasoning ? State::kReasoningStart : State::kStart) {}

void ReasoningParser::run(Delta& d, bool final) {
  while (true) {
    switch (state_) {
      case State::kStart: {
        const size_t ws = skip_ws(buf_);
        const std::string_view rest = std::string_view(buf_).substr(ws);
        if (rest.starts_with(kOpen)) {
          buf_.erase(0, ws + kOpen.size());
          state_ = State::kReasoningStart;
          continue;
        }
        if (!final && kOpen.starts_with(rest)) return;  // all whitespace or a partial "<think>"
        state_ = State::kContent;  // no reasoning block: keep the text as it is
        continue;
      }
      case State::kReasoningStart: {
        const size_t ws = skip_ws(buf_);
        if (ws == buf_.size() && !final) return;  // still only whitespace
        const std::string_view rest = std::string_view(buf_).substr(ws);
        if (!final && rest.size() < kOpen.size() && kOpen.starts_with(rest)) return;
        buf_.erase(0, ws);
        if (std::string_view(buf_).starts_with(kOpen)) buf_.erase(0, kOpen.size());  // duplicate
        state_ = State::kReasoning;
        continue;
      }
      case State::kReasoning: {
        const size_t close = buf_.find(kClose);
        if (close != std::string::npos) {
          std::string_view r = std::string_view(buf_).substr(0, close);
          while (!r.empty() && is_ws(r.back())) r.remove_suffix(1);
          d.reasoning += r;
          buf_.erase(0, close + kClose.size());
          state_ = State::kContentStart;
          continue;
        }
        if (final) {
          std::string_view r = buf_;
          while (!r.empty() && is_ws(r.back())) r.remove_suffix(1);
          d.reasoning += r;
          buf_.clear();
          return;
        }
        // Hold back a partial closing tag and the whitespace in front of it.
        size_t keep = partial_tag_suffix(buf_, kClose);
        size_t emit = buf_.size() - keep;
        while (emit > 0 && is_ws(buf_[emit - 1])) --emit;
        d.reasoning.append(buf_, 0, emit);
        buf_.erase(0, emit);
        return;
      }
      case State::kContentStart: {
        const size_t ws = skip_ws(buf_);
        buf_.erase(0, ws);
        if (buf_.empty()) return;
        state_ = State::kContent;
        continue;
      }
      case State::kContent:
        d.content += buf_;
        buf_.clear();
        return;
    }
  }
}

ReasoningParser::Delta ReasoningParser::push(std::string_view text) {
  buf_.append(text);
  Delta d;
  run(d, false);
  return d;
}

ReasoningParser::Delta ReasoningParser::flush() {
  Delta d;
  run(d, true);
  return d;
}

ReasoningParser::Delta ReasoningParser::split(std::string_view full_text,
                                              bool starts_in_reasoning) {
  ReasoningParser p(starts_in_reasoning);
  Delta d = p.push(full_text);
  Delta f = p.flush();
  d.reasoning += f.reasoning;
  d.content += f.content;
  return d;
}

}  // namespace enclave::tokenizer
