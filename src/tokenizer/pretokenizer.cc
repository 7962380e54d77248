// Pre-tokenizer regex lists (reference doc section 4.3) compiled with PCRE2 (UTF + UCP + JIT).
//
// llama.cpp runs most of these lists with std::regex, which changes two things compared with a
// plain Unicode regex engine; both are reproduced here so ids match llama.cpp exactly:
//  * Regexes without \p{..} run on code points where every non-ASCII whitespace character was
//    replaced by U+000B first, so such characters never match a literal non-ASCII range (e.g. the
//    ideographic space U+3000 inside the CJK ranges): those ranges are wrapped as (?:(?!\s)[..]).
//  * Regexes with \p{..} run on a collapsed text whose ASCII part of \p{S} is "$+<=>^`|" without
//    '~' (U+007E): in the deepseek-v3 list '~' is therefore excluded from [\p{P}\p{S}].
#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

#include "tokenizer/unicode.h"

namespace enclave::tokenizer {

namespace {

// GPT-2 (and the second entry of DEFAULT).
constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

constexpr std::string_view kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr std::string_view kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr std::string_view kCjk =
    R"((?:(?!\s)[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}])+)";

// deepseek-llm letters: the explicit letter ranges of the HF tokenizer (Deseret U+10400-1044F
// written as an escape).
constexpr std::string_view kDeepseekLlmLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";

constexpr std::string_view kDeepseekLlmPunct =
    R"(\s?(?:(?!\s)[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}])+)";

constexpr std::string_view kDeepseekV3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|(?:~|[^\r\n\p{L}\p{P}\p{S}])?[\p{L}\p{M}]+| ?(?:(?!~)[\p{P}\p{S}])+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Family {
  std::string_view family;
  std::vector<std::string_view> pres;  // accepted tokenizer.ggml.pre values
  std::vector<std::string_view> regexes;
  bool ignore_merges;
  bool add_bos;
};

const std::vector<Family>& families() {
  static const std::vector<Family> kFamilies = {
      {"qwen2", {"qwen2", "deepseek-r1-qwen", "kormo"}, {kQwen2}, false, false},
      {"llama3",
       {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
       {kLlama3},
       true,
       true},
      {"deepseek-llm",
       {"deepseek-llm"},
       {R"([\r\n])", kDeepseekLlmLetters, kDeepseekLlmPunct, R"(\s+$)", kCjk, R"(\p{N}+)"},
       false,
       false},
      {"deepseek-coder",
       {"deepseek-coder"},
       {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, R"(\p{N})"},
       false,
       false},
      {"deepseek-v3",
       {"deepseek-v3"},
       {R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
        kDeepseekV3Main},
       false,
       false},
      {"gpt2",
       {"gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "roberta-bpe"},
       {kGpt2},
       false,
       false},
      {"default",
       {"default", ""},
       {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", R"([0-9][0-9][0-9])"},
       false,
       false},
  };
  return kFamilies;
}

}  // namespace

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

std::string PreTokenizer::known_names() {
  std::string out;
  for (const auto& f : families()) {
    for (auto p : f.pres) {
      if (p.empty()) continue;
      if (!out.empty()) out += ", ";
      out += p;
    }
  }
  return out;
}

Result<PreTokenizer> PreTokenizer::create(std::string_view pre) {
  const Family* found = nullptr;
  for (const auto& f : families()) {
    for (auto p : f.pres) {
      if (p == pre) found = &f;
    }
  }
  if (found == nullptr) {
    return make_error(ErrorCode::kUnsupported,
                      "tokenizer.ggml.pre = '" + std::string(pre) +
                          "' is not a supported BPE pre-tokenizer (supported: " + known_names() +
                          "); convert the model with a supported pre-tokenizer or add its regexes "
                          "to src/tokenizer/pretokenizer.cc");
  }
  PreTokenizer out;
  out.family_ = std::string(found->family);
  out.ignore_merges_ = found->ignore_merges;
  out.add_bos_ = found->add_bos;
  for (auto pattern : found->regexes) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
    if (code == nullptr) {
      std::array<PCRE2_UCHAR, 256> msg{};
      pcre2_get_error_message(err, msg.data(), msg.size());
      return make_error(ErrorCode::kInternal, "pre-tokenizer '" + out.family_ +
                                                  "': regex does not compile at offset " +
                                                  std::to_string(err_off) + ": " +
                                                  reinterpret_cast<const char*>(msg.data()));
    }
    // JIT is an optimisation only; the interpreter gives the same matches if it is unavailable.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    auto rx = std::make_shared<Regex>();
    rx->code = code;
    out.regexes_.push_back(std::move(rx));
  }
  return out;
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  std::vector<std::string_view> cur{text};
  std::vector<std::string_view> next;
  if (text.empty()) return;
  for (const auto& rx : regexes_) {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(rx->code, nullptr);
    next.clear();
    for (std::string_view piece : cur) {
      const auto* subj = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t last = 0;
      size_t start = 0;
      while (start < piece.size()) {
        const int rc =
            pcre2_match(rx->code, subj, piece.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0) break;
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t ms = ov[0];
        const size_t me = ov[1];
        if (me <= ms) {  // empty match: never produced by these lists, but never loop on one
          start = ms + std::max<size_t>(1, utf8_valid_len(piece, ms));
          continue;
        }
        if (ms > last) next.push_back(piece.substr(last, ms - last));
        next.push_back(piece.substr(ms, me - ms));
        last = me;
        start = me;
      }
      if (last < piece.size()) next.push_back(piece.substr(last));
    }
    pcre2_match_data_free(md);
    cur.swap(next);
  }
  out.insert(out.end(), cur.begin(), cur.end());
}

}  // namespace enclave::tokenizer
