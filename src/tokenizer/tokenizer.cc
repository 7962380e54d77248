// Tokenizer implementation: vocabulary loading, special-token partitioning, byte-level BPE and
// SentencePiece-style merging, detokenization.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace enclave::tokenizer {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581

// Texts llama.cpp always treats as end-of-generation (and forces to CONTROL).
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<|return|>",
    "<|call|>",
    "<｜end▁of▁sentence｜>",
};
// Fill-in-the-middle markers llama.cpp recognises by text and forces to CONTROL.
constexpr std::string_view kFimTexts[] = {
    "<|fim_prefix|>",  "<fim-prefix>",    "<｜fim▁begin｜>", "<fim_prefix>",
    "<PRE>",           "▁<PRE>",          "<|code_prefix|>", "<|fim_suffix|>",
    "<fim-suffix>",    "<｜fim▁hole｜>",  "<fim_suffix>",    "<SUF>",
    "▁<SUF>",          "<|code_suffix|>", "<|fim_middle|>",  "<fim-middle>",
    "<｜fim▁end｜>",   "<fim_middle>",    "<MID>",           "▁<MID>",
    "<|code_middle|>", "<|fim_pad|>",     "<fim-pad>",       "<fim_pad>",
    "<|fim_repo|>",    "<|repo_name|>",   "<fim-repo>",      "<REPO>",
    "<reponame>",      "<|file_sep|>",    "<file_sep>",      "<file_separator>",
};

inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

bool is_special_attr(TokenAttr a) {
  return a == TokenAttr::kControl || a == TokenAttr::kUserDefined || a == TokenAttr::kUnknown;
}

// Reads an optional id key; ids outside the vocabulary count as absent.
Result<int32_t> read_id(const gguf::GgufFile& f, std::string_view key, int32_t n_vocab,
                        int32_t fallback) {
  auto v = f.get_uint(key);
  if (!v) return v.error();
  if (!v->has_value()) return fallback;
  const uint64_t id = **v;
  if (id >= static_cast<uint64_t>(n_vocab)) return int32_t{-1};
  return static_cast<int32_t>(id);
}

Result<std::optional<bool>> read_bool(const gguf::GgufFile& f, std::string_view key) {
  return f.get_bool(key);
}

size_t spm_char_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

}  // namespace

struct Tokenizer::BpeScratch {
  struct Sym {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  struct Cand {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t lid;
    int32_t rid;
  };
  std::vector<Sym> syms;
  std::vector<Cand> heap;
  std::vector<std::string_view> words;
  std::string encoded;
};

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Result<Tokenizer> Tokenizer::from_gguf(const gguf::GgufFile& file) {
  const std::string where = "GGUF '" + file.path() + "'";
  Tokenizer t;
  ENCLAVE_ASSIGN_OR_RETURN(auto model, file.get_string("tokenizer.ggml.model"));
  if (!model) {
    return make_error(ErrorCode::kNotFound,
                      where +
                          " has no tokenizer.ggml.model key: it carries no vocabulary; use a "
                          "GGUF converted with its tokenizer");
  }
  t.model_kind_ = *model;
  if (t.model_kind_ == "gpt2") {
    t.is_bpe_ = true;
  } else if (t.model_kind_ == "llama") {
    t.is_bpe_ = false;
  } else {
    return make_error(ErrorCode::kUnsupported,
                      where + ": tokenizer.ggml.model = '" + t.model_kind_ +
                          "' is not supported (supported: gpt2 = byte-level BPE, llama = "
                          "SentencePiece)");
  }
  ENCLAVE_ASSIGN_OR_RETURN(auto tokens, file.get_string_array("tokenizer.ggml.tokens"));
  if (!tokens || tokens->empty()) {
    return make_error(ErrorCode::kNotFound,
                      where + " has no tokenizer.ggml.tokens array (vocabulary missing)");
  }
  if (tokens->size() > static_cast<size_t>(INT32_MAX / 2)) {
    return make_error(ErrorCode::kCorruptData, where + ": vocabulary too large");
  }
  t.tokens_ = std::move(*tokens);
  const auto n_vocab = static_cast<int32_t>(t.tokens_.size());
  for (int32_t i = 0; i < n_vocab; ++i) {
    if (t.tokens_[i].empty()) t.tokens_[i] = "[EMPTY_" + std::to_string(i) + "]";
  }

  ENCLAVE_ASSIGN_OR_RETURN(auto types, file.get_int_array("tokenizer.ggml.token_type"));
  t.attrs_.assign(t.tokens_.size(), TokenAttr::kNormal);
  if (types) {
    if (types->size() != t.tokens_.size()) {
      return make_error(ErrorCode::kCorruptData, where + ": tokenizer.ggml.token_type has " +
                                                     std::to_string(types->size()) +
                                                     " entries but tokenizer.ggml.tokens has " +
                                                     std::to_string(t.tokens_.size()));
    }
    for (size_t i = 0; i < types->size(); ++i) {
      const int64_t v = (*types)[i];
      t.attrs_[i] = (v >= 0 && v <= 6) ? static_cast<TokenAttr>(v) : TokenAttr::kUndefined;
    }
  }
  ENCLAVE_ASSIGN_OR_RETURN(auto scores, file.get_float_array("tokenizer.ggml.scores"));
  if (scores) {
    if (scores->size() != t.tokens_.size()) {
      return make_error(ErrorCode::kCorruptData,
                        where + ": tokenizer.ggml.scores length differs from the vocabulary");
    }
    t.scores_ = std::move(*scores);
  } else {
    t.scores_.assign(t.tokens_.size(), 0.0f);
  }

  t.text_to_id_.reserve(t.tokens_.size() * 2);
  for (int32_t i = 0; i < n_vocab; ++i) t.text_to_id_.emplace(t.tokens_[i], i);  // first wins

  ENCLAVE_ASSIGN_OR_RETURN(auto pre, file.get_string("tokenizer.ggml.pre"));
  t.pre_ = pre ? *pre : std::string("default");

  // Special ids and flags.
  ENCLAVE_ASSIGN_OR_RETURN(t.bos_id_, read_id(file, "tokenizer.ggml.bos_token_id", n_vocab,
                                              t.is_bpe_ ? -1 : (n_vocab > 1 ? 1 : -1)));
  ENCLAVE_ASSIGN_OR_RETURN(t.eos_id_, read_id(file, "tokenizer.ggml.eos_token_id", n_vocab,
                                              t.is_bpe_ ? -1 : (n_vocab > 2 ? 2 : -1)));
  ENCLAVE_ASSIGN_OR_RETURN(t.eot_id_, read_id(file, "tokenizer.ggml.eot_token_id", n_vocab, -1));
  ENCLAVE_ASSIGN_OR_RETURN(int32_t eom_id,
                           read_id(file, "tokenizer.ggml.eom_token_id", n_vocab, -1));
  ENCLAVE_ASSIGN_OR_RETURN(
      t.unk_id_, read_id(file, "tokenizer.ggml.unknown_token_id", n_vocab, t.is_bpe_ ? -1 : 0));

  if (t.is_bpe_) {
    ENCLAVE_ASSIGN_OR_RETURN(auto pt, PreTokenizer::create(pre ? *pre : std::string()));
    t.add_bos_ = pt.add_bos_default();
    t.pretok_ = std::make_unique<PreTokenizer>(std::move(pt));
  } else {
    t.add_bos_ = true;
  }
  ENCLAVE_ASSIGN_OR_RETURN(auto add_bos, read_bool(file, "tokenizer.ggml.add_bos_token"));
  if (add_bos) t.add_bos_ = *add_bos;
  ENCLAVE_ASSIGN_OR_RETURN(auto add_eos, read_bool(file, "tokenizer.ggml.add_eos_token"));
  if (add_eos) t.add_eos_ = *add_eos;
  ENCLAVE_ASSIGN_OR_RETURN(auto add_space, read_bool(file, "tokenizer.ggml.add_space_prefix"));
  t.add_space_prefix_ = add_space ? *add_space : true;

  // End-of-generation set; llama.cpp forces these (and FIM markers) to CONTROL.
  auto force_control = [&](int32_t id) {
    if (id >= 0 && id < n_vocab) t.attrs_[id] = TokenAttr::kControl;
  };
  for (auto text : kEogTexts) {
    if (auto it = t.text_to_id_.find(text); it != t.text_to_id_.end()) {
      t.eog_ids_.push_back(it->second);
      force_control(it->second);
    }
  }
  for (auto text : kFimTexts) {
    if (auto it = t.text_to_id_.find(text); it != t.text_to_id_.end()) force_control(it->second);
  }
  for (int32_t id : {t.eos_id_, t.eot_id_, eom_id}) {
    if (id >= 0) t.eog_ids_.push_back(id);
  }
  if (t.eot_id_ < 0) {
    for (auto text : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                      "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>"}) {
      if (auto it = t.text_to_id_.find(std::string_view(text)); it != t.text_to_id_.end()) {
        t.eot_id_ = it->second;
        break;
      }
    }
  }
  std::sort(t.eog_ids_.begin(), t.eog_ids_.end());
  t.eog_ids_.erase(std::unique(t.eog_ids_.begin(), t.eog_ids_.end()), t.eog_ids_.end());

  for (int32_t i = 0; i < n_vocab; ++i) {
    if (is_special_attr(t.attrs_[i])) t.special_ids_.push_back(i);
  }
  std::stable_sort(t.special_ids_.begin(), t.special_ids_.end(),
                   [&](int32_t a, int32_t b) { return t.tokens_[a].size() > t.tokens_[b].size(); });

  if (t.is_bpe_) {
    ENCLAVE_ASSIGN_OR_RETURN(auto merges, file.get_string_array("tokenizer.ggml.merges"));
    if (!merges) {
      return make_error(ErrorCode::kNotFound,
                        where + ": byte-level BPE vocabulary without tokenizer.ggml.merges");
    }
    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> extra;
    auto symbol_id = [&](std::string_view text) -> int32_t {
      if (auto it = t.text_to_id_.find(text); it != t.text_to_id_.end()) return it->second;
      if (auto it = extra.find(text); it != extra.end()) return it->second;
      const auto id = static_cast<int32_t>(n_vocab + t.extra_symbols_.size());
      t.extra_symbols_.emplace_back(text);
      extra.emplace(std::string(text), id);
      return id;
    };
    const auto& byte_text = byte_to_unicode_table();
    for (int b = 0; b < 256; ++b) t.byte_symbol_[b] = symbol_id(byte_text[b]);
    t.merges_.reserve(merges->size() * 2);
    std::string joined;
    for (size_t rank = 0; rank < merges->size(); ++rank) {
      const std::string& m = (*merges)[rank];
      const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos) {
        return make_error(ErrorCode::kCorruptData, where + ": tokenizer.ggml.merges[" +
                                                       std::to_string(rank) +
                                                       "] has no 'left right' separator");
      }
      const std::string_view left(m.data(), sp);
      const std::string_view right(m.data() + sp + 1, m.size() - sp - 1);
      const int32_t a = symbol_id(left);
      const int32_t b = symbol_id(right);
      joined.assign(left);
      joined.append(right);
      const int32_t r = symbol_id(joined);
      t.merges_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(rank), r});  // first wins
    }
  } else {
    t.byte_token_.fill(-1);
    char buf[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      if (auto it = t.text_to_id_.find(std::string_view(buf)); it != t.text_to_id_.end()) {
        t.byte_token_[b] = it->second;
      }
    }
  }

  // Precompute pieces.
  t.pieces_.resize(t.tokens_.size());
  for (int32_t i = 0; i < n_vocab; ++i) {
    const std::string& text = t.tokens_[i];
    const TokenAttr a = t.attrs_[i];
    std::string piece;
    if (is_special_attr(a)) {
      piece = text;
    } else if (a == TokenAttr::kUnused) {
      piece.clear();
    } else if (t.is_bpe_) {
      piece = byte_decode(text);
    } else if (a == TokenAttr::kByte && text.size() == 6 && text.starts_with("<0x")) {
      piece.push_back(static_cast<char>(std::stoi(text.substr(3, 2), nullptr, 16)));
    } else {
      size_t pos = 0;
      while (pos < text.size()) {
        if (text.compare(pos, kSpmSpace.size(), kSpmSpace) == 0) {
          piece.push_back(' ');
          pos += kSpmSpace.size();
        } else {
          piece.push_back(text[pos++]);
        }
      }
    }
    t.pieces_[i] = std::move(piece);
  }
  return t;
}

bool Tokenizer::is_eog(int32_t id) const {
  return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

std::optional<int32_t> Tokenizer::token_id(std::string_view text) const {
  if (auto it = text_to_id_.find(text); it != text_to_id_.end()) return it->second;
  return std::nullopt;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || id >= n_vocab()) return kEmpty;
  return tokens_[id];
}

TokenAttr Tokenizer::token_attr(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return TokenAttr::kUndefined;
  return attrs_[id];
}

std::string Tokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return {};
  return pieces_[id];
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  bool strip_space = !is_bpe_ && add_space_prefix_;
  for (int32_t id : ids) {
    if (id < 0 || id >= n_vocab()) continue;
    const std::string& piece = pieces_[id];
    if (strip_space && !is_special_attr(attrs_[id])) {
      strip_space = false;
      if (!piece.empty() && piece[0] == ' ') {
        out.append(piece, 1);
        continue;
      }
    }
    out += piece;
  }
  return out;
}

void Tokenizer::partition_special(std::string_view text, SpecialMatch match,
                                  std::vector<Fragment>& frags) const {
  frags.clear();
  if (text.empty()) return;  // like llama.cpp: no fragment, so no SPM space prefix either
  frags.push_back({-1, 0, text.size()});
  if (match == SpecialMatch::kNone) return;
  std::vector<Fragment> next;
  for (int32_t sid : special_ids_) {
    const TokenAttr a = attrs_[sid];
    if (match != SpecialMatch::kAll && a != TokenAttr::kUserDefined) continue;
    const std::string& st = tokens_[sid];
    bool any = false;
    for (const auto& f : frags) {
      if (f.token < 0 && text.substr(f.offset, f.size).find(st) != std::string_view::npos) {
        any = true;
        break;
      }
    }
    if (!any) continue;
    next.clear();
    for (const auto& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      const std::string_view raw = text.substr(f.offset, f.size);
      size_t pos = 0;
      while (true) {
        const size_t hit = raw.find(st, pos);
        if (hit == std::string_view::npos) break;
        if (hit > pos) next.push_back({-1, f.offset + pos, hit - pos});
        next.push_back({sid, f.offset + hit, st.size()});
        pos = hit + st.size();
      }
      if (pos < raw.size()) next.push_back({-1, f.offset + pos, raw.size() - pos});
    }
    frags.swap(next);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  return encode_impl(text, add_bos,
                     parse_special ? SpecialMatch::kAll : SpecialMatch::kUserDefined);
}

std::vector<Tokenizer::SpecialPiece> Tokenizer::split_special(std::string_view text) const {
  std::vector<Fragment> frags;
  partition_special(text, SpecialMatch::kAll, frags);
  std::vector<SpecialPiece> out;
  out.reserve(frags.size());
  for (const Fragment& f : frags) out.push_back({f.token, text.substr(f.offset, f.size)});
  return out;
}

std::vector<int32_t> Tokenizer::encode_plain(std::string_view text) const {
  return encode_impl(text, /*add_bos=*/false, SpecialMatch::kNone);
}

std::vector<int32_t> Tokenizer::encode_impl(std::string_view input, bool add_bos,
                                            SpecialMatch match) const {
  std::string sanitized;
  std::string_view text = input;
  if (!utf8_is_valid(input)) {
    sanitized = utf8_sanitize(input);
    text = sanitized;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_bos && add_bos_ && bos_id_ >= 0) out.push_back(bos_id_);
  std::vector<Fragment> frags;
  partition_special(text, match, frags);
  if (is_bpe_) {
    BpeScratch scratch;
    for (const auto& f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      scratch.words.clear();
      pretok_->split(text.substr(f.offset, f.size), scratch.words);
      for (std::string_view w : scratch.words) bpe_word(w, scratch, out);
    }
  } else {
    bool prev_special = true;  // the text start counts as "after a special token"
    std::string buf;
    for (const auto& f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      buf.clear();
      if (add_space_prefix_ && prev_special) buf += kSpmSpace;
      for (char c : text.substr(f.offset, f.size)) {
        if (c == ' ')
          buf += kSpmSpace;
        else
          buf.push_back(c);
      }
      encode_spm(buf, out);
      prev_special = false;
    }
  }
  if (add_bos && add_eos_ && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

const std::string& Tokenizer::symbol_text(int32_t sym) const {
  return sym < n_vocab() ? tokens_[sym] : extra_symbols_[sym - n_vocab()];
}

void Tokenizer::emit_symbol(int32_t sym, std::vector<int32_t>& out) const {
  if (sym < n_vocab()) {
    out.push_back(sym);
    return;
  }
  // Not a vocab token: llama.cpp looks up each single byte of the symbol's text.
  for (char c : extra_symbols_[sym - n_vocab()]) {
    if (auto it = text_to_id_.find(std::string_view(&c, 1)); it != text_to_id_.end()) {
      out.push_back(it->second);
    }
  }
}

void Tokenizer::bpe_word(std::string_view word, BpeScratch& s, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (pretok_->ignore_merges()) {
    s.encoded.clear();
    byte_encode_append(s.encoded, word);
    if (auto it = text_to_id_.find(s.encoded); it != text_to_id_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const auto n = static_cast<int32_t>(word.size());
  if (n == 1) {
    emit_symbol(byte_symbol_[static_cast<uint8_t>(word[0])], out);
    return;
  }
  s.syms.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    s.syms[i] = {byte_symbol_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  // Min-heap on (rank, left position): lowest rank first, leftmost on ties.
  auto worse = [](const BpeScratch::Cand& a, const BpeScratch::Cand& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  s.heap.clear();
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    auto it = merges_.find(pair_key(s.syms[l].id, s.syms[r].id));
    if (it == merges_.end()) return;
    s.heap.push_back({it->second.rank, l, r, s.syms[l].id, s.syms[r].id});
    std::push_heap(s.heap.begin(), s.heap.end(), worse);
  };
  for (int32_t i = 0; i + 1 < n; ++i) try_add(i, i + 1);
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), worse);
    const BpeScratch::Cand c = s.heap.back();
    s.heap.pop_back();
    auto& L = s.syms[c.left];
    auto& R = s.syms[c.right];
    if (L.id != c.lid || R.id != c.rid || L.next != c.right) continue;  // stale
    L.id = merges_.find(pair_key(c.lid, c.rid))->second.result;
    L.next = R.next;
    if (R.next >= 0) s.syms[R.next].prev = c.left;
    R.id = -1;
    try_add(L.prev, c.left);
    try_add(c.left, L.next);
  }
  for (int32_t i = 0; i >= 0; i = s.syms[i].next) emit_symbol(s.syms[i].id, out);
}

void Tokenizer::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  struct Sym {
    size_t off;
    size_t n;
    int32_t prev;
    int32_t next;
  };
  struct Bigram {
    int32_t left;
    int32_t right;
    float score;
    size_t size;
  };
  struct Less {
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };
  std::vector<Sym> syms;
  size_t offs = 0;
  int32_t index = 0;
  while (offs < text.size()) {
    const size_t len = std::min(spm_char_len(static_cast<uint8_t>(text[offs])), text.size() - offs);
    syms.push_back({offs, len, index - 1, offs + len == text.size() ? -1 : index + 1});
    offs += len;
    ++index;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, Less> queue;
  std::unordered_map<std::string, std::pair<int32_t, int32_t>> rev_merge;
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const std::string_view joined = text.substr(syms[l].off, syms[l].n + syms[r].n);
    auto it = text_to_id_.find(joined);
    if (it == text_to_id_.end()) return;
    queue.push({l, r, scores_[it->second], joined.size()});
    rev_merge[std::string(joined)] = {l, r};
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    auto& L = syms[b.left];
    auto& R = syms[b.right];
    if (L.n == 0 || R.n == 0 || L.n + R.n != b.size) continue;
    L.n += R.n;
    R.n = 0;
    L.next = R.next;
    if (R.next >= 0) syms[R.next].prev = b.left;
    try_add(L.prev, b.left);
    try_add(b.left, L.next);
  }
  // Emits a symbol: the token if it is one, else the two halves it was merged from, else bytes.
  auto resegment = [&](auto&& self, size_t off, size_t n) -> void {
    const std::string_view s = text.substr(off, n);
    if (auto it = text_to_id_.find(s); it != text_to_id_.end()) {
      out.push_back(it->second);
      return;
    }
    if (auto it = rev_merge.find(std::string(s)); it != rev_merge.end()) {
      const Sym& a = syms[it->second.first];
      const Sym& b = syms[it->second.second];
      // The halves' sizes at merge time: left starts at off, right follows.
      const size_t left_n = b.off - a.off;
      self(self, off, left_n);
      self(self, off + left_n, n - left_n);
      return;
    }
    for (char c : s) {
      const int32_t id = byte_token_[static_cast<uint8_t>(c)];
      if (id >= 0)
        out.push_back(id);
      else if (unk_id_ >= 0)
        out.push_back(unk_id_);
    }
  };
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) {
    resegment(resegment, syms[i].off, syms[i].n);
  }
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_->token_to_piece(id);
  const size_t n = utf8_complete_prefix(pending_);
  std::string out = utf8_sanitize(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = utf8_sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace enclave::tokenizer
