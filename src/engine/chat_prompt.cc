// Safe chat prompt encoding: special tokens are split out of template markup only; the text
// between them (markup text and message contents) is tokenized as plain text.
#include "engine/chat_prompt.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

namespace enclave::engine {
namespace {

struct SpecialToken {
  std::string_view text;
  int32_t id;
};

// The tokens that encode(parse_special = true) matches (CONTROL, USER_DEFINED, UNKNOWN), longest
// text first: the tokenizer's own partition order.
std::vector<SpecialToken> special_tokens(const tokenizer::Tokenizer& tok) {
  std::vector<SpecialToken> out;
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    const tokenizer::TokenAttr a = tok.token_attr(id);
    if (a != tokenizer::TokenAttr::kControl && a != tokenizer::TokenAttr::kUserDefined &&
        a != tokenizer::TokenAttr::kUnknown)
      continue;
    const std::string& text = tok.token_text(id);
    if (!text.empty()) out.push_back({text, id});
  }
  std::stable_sort(out.begin(), out.end(), [](const SpecialToken& a, const SpecialToken& b) {
    return a.text.size() > b.text.size();
  });
  return out;
}

// A piece of markup: raw text (id < 0) or one special token.
struct Piece {
  int32_t id;
  std::string_view text;
};

// Splits `markup` at every occurrence of a special token text, longest tokens first.
void split_markup(std::string_view markup, const std::vector<SpecialToken>& specials,
                  std::vector<Piece>& pieces) {
  pieces.assign(1, Piece{-1, markup});
  std::vector<Piece> next;
  for (const SpecialToken& ct : specials) {
    bool any = false;
    for (const Piece& p : pieces) {
      if (p.id < 0 && p.text.find(ct.text) != std::string_view::npos) {
        any = true;
        break;
      }
    }
    if (!any) continue;
    next.clear();
    for (const Piece& p : pieces) {
      if (p.id >= 0) {
        next.push_back(p);
        continue;
      }
      size_t pos = 0;
      for (;;) {
        const size_t hit = p.text.find(ct.text, pos);
        if (hit == std::string_view::npos) break;
        if (hit > pos) next.push_back({-1, p.text.substr(pos, hit - pos)});
        next.push_back({ct.id, ct.text});
        pos = hit + ct.text.size();
      }
      if (pos < p.text.size()) next.push_back({-1, p.text.substr(pos)});
    }
    pieces.swap(next);
  }
}

}  // namespace

std::vector<int32_t> encode_segments(const tokenizer::Tokenizer& tok,
                                     std::span<const tokenizer::PromptSegment> segments,
                                     bool add_bos) {
  const std::vector<SpecialToken> specials = special_tokens(tok);
  std::vector<int32_t> out;
  if (add_bos && tok.add_bos_default() && tok.bos_id() >= 0) out.push_back(tok.bos_id());
  std::string run;  // plain text since the last special token
  auto flush_run = [&] {
    if (run.empty()) return;
    const std::vector<int32_t> ids = tok.encode_plain(run);
    out.insert(out.end(), ids.begin(), ids.end());
    run.clear();
  };
  std::vector<Piece> pieces;
  for (const tokenizer::PromptSegment& seg : segments) {
    if (seg.is_content) {
      run += seg.text;
      continue;
    }
    split_markup(seg.text, specials, pieces);
    for (const Piece& p : pieces) {
      if (p.id < 0) {
        run += p.text;
      } else {
        flush_run();
        out.push_back(p.id);
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
