// libFuzzer target: encode -> decode round trip on arbitrary bytes with the tiny qwen2 BPE and
// the LLaMA SentencePiece fixture vocabularies (loaded once), plus the reasoning parser and the
// streaming detokenizer. Invariants: no crash; BPE decode(encode(x)) == utf8_sanitize(x);
// streaming output equals decode and is valid UTF-8.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gguf/gguf_file.h"
#include "tokenizer/reasoning_parser.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using enclave::tokenizer::Tokenizer;

namespace {

// Loaded once per process; the file mappings must outlive nothing after load.
struct Vocabs {
  Tokenizer bpe;
  Tokenizer spm;
};

Tokenizer load(const char* name) {
  auto f = enclave::gguf::GgufFile::open(std::string(ENCLAVE_FIXTURES_DIR) + "/tokenizer/" + name);
  if (!f) std::abort();
  auto t = Tokenizer::from_gguf(*f);
  if (!t) std::abort();
  return std::move(*t);
}

const Vocabs& vocabs() {
  static const Vocabs v{load("tiny-bpe-qwen2.vocab.gguf"), load("ggml-vocab-llama-spm.gguf")};
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto& v = vocabs();
  const std::string clean = enclave::tokenizer::utf8_sanitize(text);

  // BPE: exact round trip of the sanitized text (user-defined tokens decode to their text).
  const auto ids = v.bpe.encode(text, false, size % 2 == 0);
  const std::string back = v.bpe.decode(ids);
  if (back != clean) std::abort();
  enclave::tokenizer::StreamDecoder sd(v.bpe);
  std::string streamed;
  for (int32_t id : ids) streamed += sd.push(id);
  streamed += sd.flush();
  if (streamed != back || !enclave::tokenizer::utf8_is_valid(streamed)) std::abort();

  // SPM: must not crash and must produce in-range ids.
  for (int32_t id : v.spm.encode(text, true, true)) {
    if (id < 0 || id >= v.spm.n_vocab()) std::abort();
  }

  // Reasoning parser: chunked stream == one-shot split.
  const bool start = size % 3 == 0;
  const auto want = enclave::tokenizer::ReasoningParser::split(text, start);
  enclave::tokenizer::ReasoningParser p(start);
  std::string r, c;
  for (size_t i = 0; i < size; i += 3) {
    auto d = p.push(text.substr(i, 3));
    r += d.reasoning;
    c += d.content;
  }
  auto f = p.flush();
  r += f.reasoning;
  c += f.content;
  if (r != want.reasoning || c != want.content) std::abort();
  return 0;
}
