// Safe chat prompt encoding: special tokens are split out of template markup only; the text
// between them (markup text and message contents) is tokenized as plain text.
#include "engine/chat_prompt.h"

#include <string>
#include <string_view>

namespace enclave::engine {

std::vector<int32_t> encode_segments(const tokenizer::Tokenizer& tok,
                                     std::span<const tokenizer::PromptSegment> segments,
                                     bool add_bos) {
  std::vector<int32_t> out;
  if (add_bos && tok.add_bos_default() && tok.bos_id() >= 0) out.push_back(tok.bos_id());
  std::string run;  // plain text since the last special token
  auto flush_run = [&] {
    if (run.empty()) return;
    const std::vector<int32_t> ids = tok.encode_plain(run);
    out.insert(out.end(), ids.begin(), ids.end());
    run.clear();
  };
  for (const tokenizer::PromptSegment& seg : segments) {
    if (seg.is_content) {
      run += seg.text;
      continue;
    }
    for (const tokenizer::Tokenizer::SpecialPiece& p : tok.split_special(seg.text)) {
      if (p.token < 0) {
        run += p.text;
      } else {
        flush_run();
        out.push_back(p.token);
      }
    }
  }
  flush_run();
  return out;
}

Result<ChatPrompt> encode_chat(const tokenizer::Tokenizer& tok, const tokenizer::ChatTemplate& tmpl,
                               std::span<const tokenizer::ChatMessage> messages,
                               tokenizer::RenderOptions options) {
  // With add_bos_token the BOS is added as a token, not rendered as text (as llama.cpp does).
  options.strip_leading_bos = tok.add_bos_default();
  ENCLAVE_ASSIGN_OR_RETURN(std::vector<tokenizer::PromptSegment> segments,
                           tmpl.render_segments(messages, options));
  ChatPrompt p;
  p.tokens = encode_segments(tok, segments, /*add_bos=*/true);
  p.reasoning = tmpl.is_reasoning();
  p.starts_in_reasoning = p.reasoning && tmpl.generation_starts_in_reasoning(options);
  return p;
}

}  // namespace enclave::engine
