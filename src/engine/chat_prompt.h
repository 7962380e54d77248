// Chat prompt -> token ids without prompt injection. Special tokens (<｜Assistant｜>, <|im_end|>,
// <｜end▁of▁sentence｜>, <think>, ...) may only come from the chat template's own markup; the text
// of a message is always tokenized as plain text, whatever it contains. (llama.cpp's server, vLLM
// and HF tokenize the whole rendered prompt with special tokens parsed, so a user who types a
// control token's text injects it; we deliberately do not.)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/result.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace enclave::engine {

struct ChatPrompt {
  std::vector<int32_t> tokens;
  bool reasoning = false;            // the template is a reasoning one (R1: <think>...</think>)
  bool starts_in_reasoning = false;  // the generation prompt already opened <think>
};

// Tokenizes rendered segments. Special token texts (CONTROL, USER_DEFINED, UNKNOWN: what
// parse_special = true matches) are recognized in markup segments only; content segments never
// yield a special id (Tokenizer::encode_plain; not even USER_DEFINED ones, which some GGUF files
// use for <｜User｜> / <｜Assistant｜>). The text between two special tokens is tokenized as one
// run even when it spans markup and content, so the ids equal tok.encode(joined text, add_bos,
// true) whenever no content holds a special token's text (and no EOS is appended: a prompt ends
// with the generation prompt). add_bos: prepend BOS when the vocabulary's add_bos_token says so.
std::vector<int32_t> encode_segments(const tokenizer::Tokenizer& tok,
                                     std::span<const tokenizer::PromptSegment> segments,
                                     bool add_bos);

// Renders `messages` with `options` (strip_leading_bos is set from the vocabulary: the BOS is
// added as a token instead) and encodes the result with encode_segments.
Result<ChatPrompt> encode_chat(const tokenizer::Tokenizer& tok, const tokenizer::ChatTemplate& tmpl,
                               std::span<const tokenizer::ChatMessage> messages,
                               tokenizer::RenderOptions options);

}  // namespace enclave::engine
