// Tokenizer: byte-level BPE (tokenizer.ggml.model = "gpt2") and SentencePiece-style
// (tokenizer.ggml.model = "llama") tokenizers loaded from GGUF metadata, plus a UTF-8-safe
// streaming detokenizer. Reproduces llama.cpp's ids (reference doc section 4).
//
// Invalid UTF-8 input: every byte that does not start a valid UTF-8 sequence is replaced by
// U+FFFD before tokenization (as llama.cpp does), so encode() never fails and decode(encode(t))
// equals utf8_sanitize(t) rather than t for such input.
//
// Thread safety: a const Tokenizer may be used from many threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "gguf/gguf_file.h"
#include "tokenizer/pretokenizer.h"

namespace enclave::tokenizer {

enum class TokenAttr : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* keys. Errors: kNotFound (no vocabulary), kUnsupported (unknown
  // tokenizer.ggml.model or tokenizer.ggml.pre, named in the message), kCorruptData (array
  // lengths disagree, bad merges).
  static Result<Tokenizer> from_gguf(const gguf::GgufFile& file);

  // Tokenizes `text`. add_bos: prepend BOS / append EOS as the vocabulary's add_bos_token /
  // add_eos_token say. parse_special: CONTROL and UNKNOWN token texts in `text` become their ids
  // (USER_DEFINED token texts always do, as in llama.cpp).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // Tokenizes `text` as plain text: no special token text is matched, not even USER_DEFINED ones
  // (which encode() always matches). For text that must never yield a special id, such as the
  // contents of chat messages. No BOS / EOS.
  std::vector<int32_t> encode_plain(std::string_view text) const;

  // `text` split at every special token text that encode(parse_special = true) matches
  // (CONTROL, USER_DEFINED, UNKNOWN; longest first): token >= 0 is that token, -1 plain text.
  // The views point into `text`. For callers that tokenize the plain parts themselves.
  struct SpecialPiece {
    int32_t token;
    std::string_view text;
  };
  std::vector<SpecialPiece> split_special(std::string_view text) const;

  // Raw bytes of the token (byte-level decoded; SPM U+2581 -> space, <0xNN> -> byte). Special
  // tokens are rendered as their text. Out-of-range ids give "".
  std::string token_to_piece(int32_t id) const;
  // Concatenated pieces; for SPM vocabularies with add_space_prefix, the space that encode()
  // prepended is removed from the first text piece.
  std::string decode(std::span<const int32_t> ids) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_id_; }  // -1 if none
  int32_t eos_id() const { return eos_id_; }  // -1 if none
  int32_t eot_id() const { return eot_id_; }  // -1 if none
  bool is_eog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }
  bool add_bos_default() const { return add_bos_; }
  bool add_eos_default() const { return add_eos_; }
  std::optional<int32_t> token_id(std::string_view text) const;
  const std::string& token_text(int32_t id) const;  // as stored in the GGUF
  TokenAttr token_attr(int32_t id) const;
  const std::string& model_kind() const { return model_kind_; }  // "gpt2" / "llama"
  const std::string& pre() const { return pre_; }

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  Tokenizer();
  struct Merge {
    int32_t rank;
    int32_t result;  // symbol id (>= n_vocab for merge results that are not vocab tokens)
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Fragment {
    int32_t token;  // -1: raw text
    size_t offset;
    size_t size;
  };

  enum class SpecialMatch { kNone, kUserDefined, kAll };  // which special texts become ids
  std::vector<int32_t> encode_impl(std::string_view text, bool add_bos, SpecialMatch match) const;
  void partition_special(std::string_view text, SpecialMatch match,
                         std::vector<Fragment>& frags) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  struct BpeScratch;
  void bpe_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& out) const;
  void emit_symbol(int32_t sym, std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
  const std::string& symbol_text(int32_t sym) const;

  bool is_bpe_ = true;
  std::string model_kind_;
  std::string pre_;
  std::vector<std::string> tokens_;
  std::vector<TokenAttr> attrs_;
  std::vector<float> scores_;
  std::vector<std::string> pieces_;  // precomputed token_to_piece
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> text_to_id_;
  std::vector<int32_t> special_ids_;  // CONTROL/USER_DEFINED/UNKNOWN, longest text first
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int32_t eot_id_ = -1;
  std::vector<int32_t> eog_ids_;  // sorted
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = true;

  // BPE state.
  std::unique_ptr<PreTokenizer> pretok_;
  std::vector<std::string> extra_symbols_;  // texts of symbol ids >= n_vocab
  std::array<int32_t, 256> byte_symbol_{};  // symbol id of each single byte
  std::unordered_map<uint64_t, Merge> merges_;

  // SPM state.
  std::array<int32_t, 256> byte_token_{};  // <0xNN> token ids, -1 if absent
  int32_t unk_id_ = -1;
};

// Incremental detokenizer for streaming: push() returns only complete UTF-8 characters, holding
// back the bytes of a character that later tokens will complete; flush() returns the rest with
// invalid or truncated sequences replaced by U+FFFD.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tok_(&tokenizer) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer* tok_;
  std::string pending_;
};

}  // namespace enclave::tokenizer
