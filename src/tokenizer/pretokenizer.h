// PreTokenizer: splits raw text into words with the regex list of a BPE pre-tokenizer type
// (tokenizer.ggml.pre), applied in sequence like llama.cpp's unicode_regex_split.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace enclave::tokenizer {

class PreTokenizer {
 public:
  // `pre` is the tokenizer.ggml.pre value ("" = missing = default). kUnsupported names an
  // unknown value.
  static Result<PreTokenizer> create(std::string_view pre);

  // Splits valid UTF-8 `text` into words (views into `text`), appended to `out` in order.
  // Precondition: `text` is valid UTF-8 (the tokenizer sanitizes first).
  void split(std::string_view text, std::vector<std::string_view>& out) const;

  // Canonical family name ("qwen2", "llama3", "deepseek-llm", ...).
  const std::string& family() const { return family_; }
  // llama3 family: a word that is a whole vocab token is emitted without merging.
  bool ignore_merges() const { return ignore_merges_; }
  // Default add_bos for this family when the GGUF has no add_bos_token key.
  bool add_bos_default() const { return add_bos_; }

  // Names accepted by create(), for error messages and docs.
  static std::string known_names();

 private:
  struct Regex;
  std::vector<std::shared_ptr<const Regex>> regexes_;
  std::string family_;
  bool ignore_merges_ = false;
  bool add_bos_ = false;
};

}  // namespace enclave::tokenizer
