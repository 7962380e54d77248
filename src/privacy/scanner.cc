// SensitivityScanner: every builtin and operator pattern is compiled into one Hyperscan block
// database (leftmost start of match). Each raw match goes through its detector's validator
// (boundaries, checksums, context) and becomes a candidate; overlapping candidates are resolved
// (longest wins, ties go to the more specific type, the winner inherits the highest level it
// covered), then code-point offsets are added in one pass.
#include "privacy/scanner.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <hs/hs.h>
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "privacy/validators.h"

namespace enclave::privacy {

namespace {

enum class Kind : uint8_t {
  kPem,
  kJwt,
  kWordToken,  // fixed-shape token bounded by [A-Za-z0-9_] (ghp_..., AKIA...)
  kRunToken,   // fixed prefix extended over [A-Za-z0-9_-] (sk-..., github_pat_...)
  kCnId,
  kCard,
  kIban,
  kSsn,
  kPassportCn,
  kPassportContext,  // trigger: a context word; the number follows it
  kPhoneCn,
  kPhoneIntl,
  kEmail,
  kIpv6,
  kIpv4,
  kKeyword,
  kOperatorRegex,
};

struct BuiltinDef {
  std::string_view name;
  Level level;
};

// Specificity order: earlier wins a tie between equally long overlapping candidates.
constexpr std::array<BuiltinDef, 15> kBuiltins = {{
    {"private_key", Level::kSecret},
    {"jwt", Level::kSecret},
    {"github_token", Level::kSecret},
    {"aws_access_key", Level::kSecret},
    {"api_key", Level::kSecret},
    {"cn_id", Level::kConfidential},
    {"bank_card", Level::kConfidential},
    {"iban", Level::kConfidential},
    {"us_ssn", Level::kConfidential},
    {"passport", Level::kConfidential},
    {"phone_cn", Level::kConfidential},
    {"phone_intl", Level::kConfidential},
    {"email", Level::kConfidential},
    {"ipv6", Level::kInternal},
    {"ipv4", Level::kInternal},
}};

constexpr std::array<std::string_view, kBuiltins.size()> kBuiltinNames = [] {
  std::array<std::string_view, kBuiltins.size()> a{};
  for (size_t i = 0; i < kBuiltins.size(); ++i) a[i] = kBuiltins[i].name;
  return a;
}();

struct BuiltinPattern {
  std::string_view type;
  Kind kind;
  uint8_t aux;  // bank_card: minimum digits; 2nd aux below: maximum digits
  uint8_t aux2;
  const char* regex;
};

// Patterns are ASCII, compiled in byte mode; boundaries are checked by the validators (not \b,
// so digits right next to CJK characters still match). Variable-length formats whose full regex
// would slow the combined database down (e-mail, IBAN, E.164, long tokens, JWT, passport context)
// match a short trigger here and are parsed forward/backward by their validator.
constexpr BuiltinPattern kPatterns[] = {
    {"private_key", Kind::kPem, 0, 0, R"(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----)"},
    {"jwt", Kind::kJwt, 0, 0, R"(eyJ[A-Za-z0-9_-]{4})"},
    {"github_token", Kind::kWordToken, 0, 0, R"(gh[pousr]_[A-Za-z0-9]{36})"},
    {"github_token", Kind::kRunToken, 0, 0, R"(github_pat_[A-Za-z0-9_]{22})"},
    {"aws_access_key", Kind::kWordToken, 0, 0, R"((?:AKIA|ASIA)[A-Z0-9]{16})"},
    {"api_key", Kind::kRunToken, 0, 0, R"(sk-[A-Za-z0-9_-]{20})"},
    {"cn_id", Kind::kCnId, 0, 0,
     R"([1-8]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx])"},
    // Visa 16/19, Mastercard 51-55 / 2221-2720, Amex 34/37 (4-6-5), UnionPay 62 16-19 digits.
    {"bank_card", Kind::kCard, 16, 19, R"(4\d{3}(?:[ -]?\d{4}){3}(?:[ -]?\d{3})?)"},
    {"bank_card", Kind::kCard, 16, 16,
     R"((?:5[1-5]\d{2}|222[1-9]|22[3-9]\d|2[3-6]\d{2}|27[01]\d|2720)(?:[ -]?\d{4}){3})"},
    {"bank_card", Kind::kCard, 15, 15, R"(3[47]\d{2}[ -]?\d{6}[ -]?\d{5})"},
    {"bank_card", Kind::kCard, 16, 19, R"(62\d{2}(?:[ -]?\d{4}){3}(?:[ -]?\d{1,3})?)"},
    {"iban", Kind::kIban, 0, 0, R"([A-Z]{2}\d{2} ?[A-Z0-9]{4})"},
    {"us_ssn", Kind::kSsn, 0, 0, R"(\d{3}-\d{2}-\d{4})"},
    {"passport", Kind::kPassportCn, 0, 0, R"([EG]\d{8})"},
    {"passport", Kind::kPassportCn, 0, 0, R"(E[A-HJ-NP-Z]\d{7})"},
    // Context word; the number itself is looked for in the 48 bytes after it.
    {"passport", Kind::kPassportContext, 0, 0,
     R"((?i:passport|pasaporte|passeport|reisepass)|\xe6\x8a\xa4\xe7\x85\xa7)"},
    {"phone_cn", Kind::kPhoneCn, 0, 0, R"((?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2})"},
    {"phone_intl", Kind::kPhoneIntl, 0, 0, R"(\+[1-9])"},
    {"email", Kind::kEmail, 0, 0, R"([A-Za-z0-9._%+-]@[A-Za-z0-9])"},
    {"ipv6", Kind::kIpv6, 0, 0, R"([0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})"},
    {"ipv4", Kind::kIpv4, 0, 0, R"(\d{1,3}(?:\.\d{1,3}){3})"},
};

// Keyword boundary flags (PatternSpec::aux).
constexpr uint8_t kCheckBefore = 1, kCheckAfter = 2;

struct PatternSpec {
  Kind kind;
  uint16_t type;
  uint8_t aux = 0;
  uint8_t aux2 = 0;
};

struct Candidate {
  size_t start, end;
  uint16_t type;  // index into Impl::type_names; lower = more specific
  Level level;
};

// One input text inside the scanned buffer (texts[index] of scan_each, or scan's whole input).
struct Segment {
  size_t start = 0, size = 0;
  size_t index = 0;
};

// Joins the texts of scan_each into one buffer. No builtin pattern (ASCII classes and literals,
// byte mode) and no keyword (valid UTF-8) can match this byte, so no match spans two texts;
// operator regexes (UTF-8 mode, arbitrary classes) could, so a database with any of them scans
// each text on its own.
constexpr char kSeparator = '\xff';

bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(unsigned char c) {
  return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
bool is_alnum(unsigned char c) {
  return is_digit(c) || is_alpha(c);
}
bool is_word(unsigned char c) {
  return is_alnum(c) || c == '_';
}
bool is_token(unsigned char c) {
  return is_word(c) || c == '-';
}
bool is_b64(unsigned char c) {
  return is_alnum(c) || c == '+' || c == '/' || c == '=';
}

std::string hex_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string r;
  r.reserve(s.size() * 4);
  for (unsigned char c : s) {
    if (is_alnum(c)) {
      r.push_back(static_cast<char>(c));
    } else {
      r += "\\x";
      r.push_back(kHex[c >> 4]);
      r.push_back(kHex[c & 15]);
    }
  }
  return r;
}

bool valid_category(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (unsigned char c : s) {
    if (!is_word(c) && c != '-' && c != '.') return false;
  }
  return true;
}

}  // namespace

const char* level_name(Level level) {
  switch (level) {
    case Level::kPublic:
      return "public";
    case Level::kInternal:
      return "internal";
    case Level::kConfidential:
      return "confidential";
    case Level::kSecret:
      return "secret";
  }
  return "unknown";
}

std::optional<Level> parse_level(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  for (Level l : {Level::kPublic, Level::kInternal, Level::kConfidential, Level::kSecret}) {
    if (lower == level_name(l)) return l;
  }
  return std::nullopt;
}

std::span<const std::string_view> builtin_types() {
  return kBuiltinNames;
}

std::optional<Level> default_level(std::string_view type) {
  for (const auto& b : kBuiltins) {
    if (b.name == type) return b.level;
  }
  return std::nullopt;
}

Level max_level(const std::vector<Finding>& findings) {
  Level m = Level::kPublic;
  for (const auto& f : findings) m = std::max(m, f.level);
  return m;
}

struct PcreRegex {
  pcre2_code* code = nullptr;
  uint16_t type = 0;
};

// Per-call working memory, pooled so a scan allocates nothing but its findings.
struct ScratchSlot {
  hs_scratch_t* scratch = nullptr;
  std::vector<Candidate> candidates, resolved, cluster;
  std::string joined;  // scan_each: the texts with kSeparator between them
  std::vector<Segment> segments;
};

struct SensitivityScanner::Impl {
  hs_database_t* db = nullptr;
  hs_scratch_t* proto = nullptr;
  std::vector<PatternSpec> specs;  // by Hyperscan pattern id
  std::vector<std::string> type_names;
  std::vector<Level> type_levels;
  std::vector<PcreRegex> pcre;
  bool joinable = true;  // no operator regex in `db`: scan_each may join texts (see kSeparator)
  mutable std::mutex mu;
  mutable std::vector<std::unique_ptr<ScratchSlot>> pool;

  ~Impl() {
    for (auto& s : pool) hs_free_scratch(s->scratch);
    if (proto) hs_free_scratch(proto);
    if (db) hs_free_database(db);
    for (auto& r : pcre) pcre2_code_free(r.code);
  }

  std::unique_ptr<ScratchSlot> acquire() const {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!pool.empty()) {
        auto s = std::move(pool.back());
        pool.pop_back();
        return s;
      }
    }
    auto s = std::make_unique<ScratchSlot>();
    if (proto && hs_clone_scratch(proto, &s->scratch) != HS_SUCCESS) return nullptr;
    return s;
  }

  void release(std::unique_ptr<ScratchSlot> s) const {
    for (auto* v : {&s->candidates, &s->resolved, &s->cluster}) {
      v->clear();
      if (v->capacity() > (1u << 16)) std::vector<Candidate>().swap(*v);
    }
    s->joined.clear();
    if (s->joined.capacity() > (1u << 20)) std::string().swap(s->joined);
    s->segments.clear();
    std::lock_guard<std::mutex> lock(mu);
    pool.push_back(std::move(s));
  }
};

namespace {

struct ScanContext {
  const SensitivityScanner::Impl* impl;
  std::string_view text;  // the scanned buffer
  std::vector<Candidate>* out;
  std::span<const Segment> segments;  // the texts in `text`, by start
  int today = 0;
};

// The segment holding buffer offset `pos` (segments sorted by start, the first at 0).
const Segment& segment_at(std::span<const Segment> segments, size_t pos) {
  if (segments.size() == 1) return segments[0];
  auto it = std::upper_bound(segments.begin(), segments.end(), pos,
                             [](size_t p, const Segment& g) { return p < g.start; });
  return *(it - 1);
}

// Byte before `pos` (0 at the start) and at `pos` (0 at the end).
unsigned char byte_before(std::string_view t, size_t pos) {
  return pos == 0 ? 0 : static_cast<unsigned char>(t[pos - 1]);
}
unsigned char byte_at(std::string_view t, size_t pos) {
  return pos >= t.size() ? 0 : static_cast<unsigned char>(t[pos]);
}

bool alnum_bounded(std::string_view t, size_t s, size_t e) {
  return !is_alnum(byte_before(t, s)) && !is_alnum(byte_at(t, e));
}

bool card_valid(std::string_view span, int min_digits, int max_digits) {
  char digits[24];
  int n = 0;
  char sep = 0;
  for (char c : span) {
    if (is_digit(c)) {
      if (n == 23) return false;
      digits[n++] = c;
    } else {
      if (sep != 0 && sep != c) return false;  // mixed separators: not a printed card number
      sep = c;
    }
  }
  return n >= min_digits && n <= max_digits && luhn_valid(std::string_view(digits, n));
}

bool phone_intl_valid(std::string_view span) {
  int digits = 0, open = 0, close = 0;
  bool prev_sep = false;
  for (size_t i = 1; i < span.size(); ++i) {
    const char c = span[i];
    if (is_digit(c)) {
      ++digits;
      prev_sep = false;
    } else if (c == '(' || c == ')') {
      if (c == '(' ? open++ : close++) return false;  // at most one pair
      if (c == ')' && open != 1) return false;
    } else {
      if (prev_sep) return false;
      prev_sep = true;
    }
  }
  return open == close && digits >= 8 && digits <= 15;
}

bool is_phone_char(unsigned char c) {
  return is_digit(c) || c == ' ' || c == '(' || c == ')' || c == '.' || c == '-';
}

// E.164 from the "+" at `s`: the longest valid number ending in a digit that is not glued to a
// letter or digit. Returns the end, or 0.
size_t phone_intl_end(std::string_view t, size_t s) {
  size_t q = s + 1;
  while (q < t.size() && q - s < 26 && is_phone_char(static_cast<unsigned char>(t[q]))) ++q;
  for (size_t p = q; p > s + 8; --p) {
    if (!is_digit(static_cast<unsigned char>(t[p - 1])) || is_alnum(byte_at(t, p))) continue;
    if (phone_intl_valid(t.substr(s, p - s))) return p;
  }
  return 0;
}

bool is_local_char(unsigned char c) {
  return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

// E-mail around the '@' at `at`: local part to the left, domain to the right; sets s and e.
bool email_span(std::string_view t, size_t at, size_t& s, size_t& e) {
  s = at;
  while (s > 0 && at - s < 64 && is_local_char(static_cast<unsigned char>(t[s - 1]))) --s;
  if (is_local_char(byte_before(t, s))) return false;  // local part longer than 64
  while (s < at && t[s] == '.') ++s;                   // sentence punctuation before it
  const std::string_view local = t.substr(s, at - s);
  if (local.empty() || local.back() == '.' || local.find("..") != std::string_view::npos) {
    return false;
  }
  e = at + 1;
  while (e < t.size() && e - at <= 255) {
    const unsigned char c = static_cast<unsigned char>(t[e]);
    if (!is_alnum(c) && c != '-' && c != '.') break;
    ++e;
  }
  while (e > at + 1 && t[e - 1] == '.') --e;  // "write to a@b.com."
  if (is_token(byte_at(t, e))) return false;
  // Labels: non-empty, no leading/trailing hyphen; at least two; TLD of 2-24 letters.
  const std::string_view domain = t.substr(at + 1, e - at - 1);
  size_t label_start = 0, labels = 0;
  for (size_t i = 0; i <= domain.size(); ++i) {
    if (i == domain.size() || domain[i] == '.') {
      if (i == label_start || domain[label_start] == '-' || domain[i - 1] == '-') return false;
      ++labels;
      if (i == domain.size()) {
        const std::string_view tld = domain.substr(label_start);
        if (tld.size() < 2 || tld.size() > 24) return false;
        for (unsigned char c : tld) {
          if (!is_alpha(c)) return false;
        }
      }
      label_start = i + 1;
    }
  }
  return labels >= 2;
}

// IBAN starting at `s`: exactly the country's length in characters, optionally printed in groups
// of four separated by single spaces. Returns the end, or 0.
size_t iban_end(std::string_view t, size_t s) {
  const int length = iban_length(t.substr(s, 2));
  if (length == 0) return 0;
  char compact[40];
  int n = 0;
  size_t p = s;
  while (n < length && p < t.size()) {
    const unsigned char c = static_cast<unsigned char>(t[p]);
    if (c == ' ' && n % 4 == 0 && n > 0 && is_alnum(byte_at(t, p + 1))) {
      ++p;
      continue;
    }
    if (!is_digit(c) && !(c >= 'A' && c <= 'Z')) return 0;
    compact[n++] = static_cast<char>(c);
    ++p;
  }
  if (n != length || is_alnum(byte_at(t, p))) return 0;
  return iban_valid(std::string_view(compact, static_cast<size_t>(n))) ? p : 0;
}

// After a passport context word ending at `from`: the first token within 48 bytes on the same
// line that is 1-2 uppercase letters + 6-8 digits, or 9 digits. Sets s and e.
bool passport_after_context(std::string_view t, size_t from, size_t& s, size_t& e) {
  constexpr size_t kWindow = 48;
  const size_t limit = std::min(t.size(), from + kWindow);
  for (size_t p = from; p < limit; ++p) {
    const unsigned char c = static_cast<unsigned char>(t[p]);
    if (c == '\n') return false;
    if (!is_alnum(c) || is_alnum(byte_before(t, p))) continue;
    size_t q = p, letters = 0, digits = 0;
    while (q < t.size() && t[q] >= 'A' && t[q] <= 'Z' && letters < 3) ++q, ++letters;
    while (q < t.size() && is_digit(static_cast<unsigned char>(t[q])) && digits < 10) {
      ++q;
      ++digits;
    }
    if (is_alnum(byte_at(t, q))) continue;
    if ((letters >= 1 && letters <= 2 && digits >= 6 && digits <= 8) ||
        (letters == 0 && digits == 9)) {
      s = p;
      e = q;
      return true;
    }
  }
  return false;
}

// JWT from the "eyJ" at `s`: three base64url segments, the last non-empty. Returns the end (0 if
// not a JWT) and the header's end.
size_t jwt_end(std::string_view t, size_t s, size_t& header_end) {
  auto run = [&](size_t p) {
    while (p < t.size() && is_token(static_cast<unsigned char>(t[p]))) ++p;
    return p;
  };
  header_end = run(s);
  if (byte_at(t, header_end) != '.') return 0;
  const size_t payload_end = run(header_end + 1);
  if (payload_end < header_end + 3 || byte_at(t, payload_end) != '.') return 0;
  const size_t sig_end = run(payload_end + 1);
  return sig_end > payload_end + 1 ? sig_end : 0;
}

// Base64url-decodes the JWT header and checks it looks like a JSON object with a JOSE field.
bool jwt_header_valid(std::string_view b64) {
  if (b64.size() > 1024) return false;
  char out[768];
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-')
      v = 62;
    else if (c == '_')
      v = 63;
    else
      return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  const std::string_view json(out, n);
  const size_t last = json.find_last_not_of(" \t\r\n");
  if (n < 2 || json[0] != '{' || last == std::string_view::npos || json[last] != '}') return false;
  return json.find("\"alg\"") != std::string_view::npos ||
         json.find("\"typ\"") != std::string_view::npos;
}

// Extends a PEM BEGIN marker over its body through the matching END line (or, when the key is
// truncated, over the base64 body that follows).
size_t pem_end(std::string_view t, size_t s, size_t e) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  const std::string_view label = t.substr(s + kBegin.size(), e - 5 - s - kBegin.size());
  const size_t dash = t.find("-----", e);
  if (dash != std::string_view::npos) {
    std::string end_marker = "-----END ";
    end_marker.append(label);
    end_marker += "-----";
    if (t.substr(dash, end_marker.size()) == end_marker) return dash + end_marker.size();
  }
  size_t p = e;
  const size_t limit = dash == std::string_view::npos ? t.size() : dash;
  while (p < limit) {
    const unsigned char c = byte_at(t, p);
    if (!is_b64(c) && c != '\n' && c != '\r' && c != ' ' && c != '\t') break;
    ++p;
  }
  while (p > e && (t[p - 1] == '\n' || t[p - 1] == '\r' || t[p - 1] == ' ' || t[p - 1] == '\t')) {
    --p;
  }
  return p;
}

int on_match(unsigned int id, unsigned long long from, unsigned long long to, unsigned int,
             void* user) {
  auto& ctx = *static_cast<ScanContext*>(user);
  const PatternSpec& spec = ctx.impl->specs[id];
  // Validators see only the text the match is in, exactly as if it had been scanned alone.
  const Segment& seg = segment_at(ctx.segments, static_cast<size_t>(from));
  if (to > seg.start + seg.size) return 0;  // spans a separator: impossible, see kSeparator
  const size_t base = seg.start;
  const std::string_view t = ctx.text.substr(base, seg.size);
  size_t s = static_cast<size_t>(from) - base, e = static_cast<size_t>(to) - base;
  const std::string_view span = t.substr(s, e - s);
  const unsigned char before = byte_before(t, s), after = byte_at(t, e);
  bool ok = false;
  switch (spec.kind) {
    case Kind::kPem:
      e = pem_end(t, s, e);
      ok = true;
      break;
    case Kind::kJwt:
      if (!is_token(before) && before != '.') {
        size_t header_end = 0;
        e = jwt_end(t, s, header_end);
        ok = e != 0 && jwt_header_valid(t.substr(s, header_end - s));
      }
      break;
    case Kind::kWordToken:
      ok = !is_word(before) && !is_word(after);
      break;
    case Kind::kRunToken:
      ok = !is_token(before);
      while (e < t.size() && is_token(static_cast<unsigned char>(t[e]))) ++e;
      break;
    case Kind::kCnId:
      if (alnum_bounded(t, s, e)) {
        if (ctx.today == 0) ctx.today = today_yyyymmdd();
        ok = cn_id_valid(span, ctx.today);
      }
      break;
    case Kind::kCard:
      ok = alnum_bounded(t, s, e) && card_valid(span, spec.aux, spec.aux2);
      break;
    case Kind::kIban:
      if (!is_alnum(before)) {
        e = iban_end(t, s);
        ok = e != 0;
      }
      break;
    case Kind::kSsn:
      ok = !is_alnum(before) && before != '-' && !is_alnum(after) &&
           !(after == '-' && is_digit(byte_at(t, e + 1))) && us_ssn_valid(span);
      break;
    case Kind::kPassportCn:
      ok = alnum_bounded(t, s, e);
      break;
    case Kind::kPassportContext:
      ok = passport_after_context(t, e, s, e);
      break;
    case Kind::kPhoneCn:
      ok = !is_alnum(before) && before != '+' && !is_alnum(after);
      break;
    case Kind::kPhoneIntl:
      if (!is_alnum(before) && before != '+') {
        e = phone_intl_end(t, s);
        ok = e != 0;
      }
      break;
    case Kind::kEmail:
      ok = email_span(t, e - 2, s, e);
      break;
    case Kind::kIpv6:
      ok = !is_alnum(before) && before != ':' && !is_alnum(after) && after != ':' &&
           ipv6_valid(span);
      break;
    case Kind::kIpv4:
      ok = !is_alnum(before) && before != '.' && !is_alnum(after) &&
           !(after == '.' && is_digit(byte_at(t, e + 1))) && ipv4_valid(span);
      break;
    case Kind::kKeyword:
      ok = (!(spec.aux & kCheckBefore) || !is_alnum(before)) &&
           (!(spec.aux & kCheckAfter) || !is_alnum(after));
      break;
    case Kind::kOperatorRegex:
      ok = e > s;
      break;
  }
  if (ok) ctx.out->push_back({base + s, base + e, spec.type, ctx.impl->type_levels[spec.type]});
  return 0;
}

// Resolves one cluster of transitively overlapping candidates, appending winners to `out`.
void resolve_cluster(std::vector<Candidate>& cluster, std::vector<Candidate>& out) {
  std::sort(cluster.begin(), cluster.end(), [](const Candidate& a, const Candidate& b) {
    const size_t la = a.end - a.start, lb = b.end - b.start;
    if (la != lb) return la > lb;
    if (a.type != b.type) return a.type < b.type;
    return a.start < b.start;
  });
  const size_t first = out.size();
  for (const Candidate& c : cluster) {
    bool overlaps = false;
    for (size_t i = first; i < out.size(); ++i) {
      if (out[i].start < c.end && c.start < out[i].end) {
        overlaps = true;
        out[i].level = std::max(out[i].level, c.level);  // never lose sensitivity
      }
    }
    if (!overlaps) out.push_back(c);
  }
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
            [](const Candidate& a, const Candidate& b) { return a.start < b.start; });
}

}  // namespace

SensitivityScanner::SensitivityScanner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SensitivityScanner::~SensitivityScanner() = default;

Result<std::unique_ptr<SensitivityScanner>> SensitivityScanner::create(const ScanRules& rules) {
  auto impl = std::make_unique<Impl>();
  for (const auto& [name, rule] : rules.builtins) {
    if (!default_level(name)) {
      std::string valid;
      for (auto n : kBuiltinNames) (valid += valid.empty() ? "" : ", ") += n;
      return make_error(ErrorCode::kInvalidArgument, "scan rules: unknown builtin detector '" +
                                                         name + "' (valid: " + valid + ")");
    }
  }
  // Type table: operator categories first (most specific), then builtins in specificity order.
  for (size_t i = 0; i < rules.terms.size(); ++i) {
    const TermRule& term = rules.terms[i];
    const std::string where = "scan rules: terms[" + std::to_string(i) + "]";
    if (!valid_category(term.category)) {
      return make_error(ErrorCode::kInvalidArgument,
                        where + ": category must be 1-64 characters of [A-Za-z0-9_.-]");
    }
    if (default_level(term.category)) {
      return make_error(ErrorCode::kInvalidArgument,
                        where + ": category '" + term.category +
                            "' is a builtin detector name; choose another name");
    }
    if (std::find(impl->type_names.begin(), impl->type_names.end(), term.category) !=
        impl->type_names.end()) {
      return make_error(ErrorCode::kInvalidArgument,
                        where + ": duplicate category '" + term.category +
                            "'; merge its keywords and regexes into one entry");
    }
    if (term.keywords.empty() && term.regexes.empty()) {
      return make_error(ErrorCode::kInvalidArgument, where + ": needs keywords or regexes");
    }
    impl->type_names.push_back(term.category);
    impl->type_levels.push_back(term.level);
  }
  const size_t builtin_base = impl->type_names.size();
  for (const auto& b : kBuiltins) {
    impl->type_names.emplace_back(b.name);
    Level level = b.level;
    if (auto it = rules.builtins.find(std::string(b.name)); it != rules.builtins.end()) {
      if (it->second.level) level = *it->second.level;
    }
    impl->type_levels.push_back(level);
  }

  std::vector<std::string> exprs;
  std::vector<unsigned> flags;
  for (const auto& p : kPatterns) {
    if (auto it = rules.builtins.find(std::string(p.type));
        it != rules.builtins.end() && !it->second.enabled) {
      continue;
    }
    const auto idx = std::find(kBuiltinNames.begin(), kBuiltinNames.end(), p.type);
    const auto type = static_cast<uint16_t>(builtin_base + (idx - kBuiltinNames.begin()));
    impl->specs.push_back({p.kind, type, p.aux, p.aux2});
    exprs.emplace_back(p.regex);
    flags.push_back(HS_FLAG_SOM_LEFTMOST);
  }
  for (size_t i = 0; i < rules.terms.size(); ++i) {
    const TermRule& term = rules.terms[i];
    const auto type = static_cast<uint16_t>(i);
    for (size_t k = 0; k < term.keywords.size(); ++k) {
      const std::string& kw = term.keywords[k];
      const std::string where =
          "scan rules: terms[" + std::to_string(i) + "].keywords[" + std::to_string(k) + "]";
      if (kw.empty()) return make_error(ErrorCode::kInvalidArgument, where + " is empty");
      if (find_invalid_utf8(kw) != std::string_view::npos) {
        return make_error(ErrorCode::kInvalidArgument, where + " is not valid UTF-8");
      }
      uint8_t bounds = 0;
      if (is_alnum(static_cast<unsigned char>(kw.front()))) bounds |= kCheckBefore;
      if (is_alnum(static_cast<unsigned char>(kw.back()))) bounds |= kCheckAfter;
      impl->specs.push_back({Kind::kKeyword, type, bounds, 0});
      exprs.push_back(hex_escape(kw));
      flags.push_back(HS_FLAG_SOM_LEFTMOST | HS_FLAG_CASELESS);
    }
    for (size_t k = 0; k < term.regexes.size(); ++k) {
      const std::string& re = term.regexes[k];
      const std::string where =
          "scan rules: terms[" + std::to_string(i) + "].regexes[" + std::to_string(k) + "]";
      const unsigned f = HS_FLAG_SOM_LEFTMOST | HS_FLAG_UTF8;
      hs_database_t* probe = nullptr;
      hs_compile_error_t* err = nullptr;
      if (hs_compile(re.c_str(), f, HS_MODE_BLOCK, nullptr, &probe, &err) == HS_SUCCESS) {
        hs_free_database(probe);
        impl->specs.push_back({Kind::kOperatorRegex, type, 0, 0});
        impl->joinable = false;
        exprs.push_back(re);
        flags.push_back(f);
        continue;
      }
      const std::string hs_message = err ? err->message : "unknown error";
      hs_free_compile_error(err);
      // Hyperscan rejects lookarounds, back-references and empty matches: fall back to PCRE2.
      int code = 0;
      PCRE2_SIZE offset = 0;
      pcre2_code* pc = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(), PCRE2_UTF,
                                     &code, &offset, nullptr);
      if (!pc) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return make_error(ErrorCode::kInvalidArgument,
                          where + " does not compile: " + reinterpret_cast<const char*>(msg) +
                              " at offset " + std::to_string(offset) +
                              " (Hyperscan: " + hs_message + ")");
      }
      pcre2_jit_compile(pc, PCRE2_JIT_COMPLETE);  // optional speed-up; interpreter otherwise
      impl->pcre.push_back({pc, type});
    }
  }

  if (!exprs.empty()) {
    std::vector<const char*> ptrs;
    std::vector<unsigned> ids;
    for (size_t i = 0; i < exprs.size(); ++i) {
      ptrs.push_back(exprs[i].c_str());
      ids.push_back(static_cast<unsigned>(i));
    }
    hs_compile_error_t* err = nullptr;
    if (hs_compile_multi(ptrs.data(), flags.data(), ids.data(), static_cast<unsigned>(ptrs.size()),
                         HS_MODE_BLOCK, nullptr, &impl->db, &err) != HS_SUCCESS) {
      std::string msg = err ? err->message : "unknown error";
      const int expr = err ? err->expression : -1;
      hs_free_compile_error(err);
      return make_error(ErrorCode::kInvalidArgument,
                        "scan rules: pattern database does not compile (pattern " +
                            std::to_string(expr) + "): " + msg);
    }
    if (hs_alloc_scratch(impl->db, &impl->proto) != HS_SUCCESS) {
      return make_error(ErrorCode::kInternal, "scanner: cannot allocate Hyperscan scratch space");
    }
  }
  return std::unique_ptr<SensitivityScanner>(new SensitivityScanner(std::move(impl)));
}

namespace {

// Same checks and messages as scan() documents: size limit, then UTF-8.
Status check_text(std::string_view text) {
  if (text.size() >= UINT_MAX) {
    return make_error(ErrorCode::kOutOfRange, "scan: input of " + std::to_string(text.size()) +
                                                  " bytes exceeds the 4 GiB limit; split it");
  }
  if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "scan: input is not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
  }
  return Status::ok();
}

// One Hyperscan pass over `buffer` (checked texts at `segments`), then the PCRE2 regexes per
// text, overlap resolution and code-point offsets; appends the findings of segments[k] to
// out[segments[k].index].
Status scan_segments(const SensitivityScanner::Impl& impl, ScratchSlot& slot,
                     std::string_view buffer, std::span<const Segment> segments,
                     std::span<std::vector<Finding>> out) {
  std::vector<Candidate>& cands = slot.candidates;
  ScanContext ctx{&impl, buffer, &cands, segments};
  if (impl.db) {
    const hs_error_t rc = hs_scan(impl.db, buffer.data(), static_cast<unsigned>(buffer.size()), 0,
                                  slot.scratch, on_match, &ctx);
    if (rc != HS_SUCCESS) {
      return make_error(ErrorCode::kInternal, "scan: Hyperscan error " + std::to_string(rc));
    }
  }
  for (const PcreRegex& r : impl.pcre) {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(r.code, nullptr);
    for (const Segment& seg : segments) {
      const std::string_view text = buffer.substr(seg.start, seg.size);
      PCRE2_SIZE offset = 0;
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
      while (offset <= text.size()) {
        const int rc =
            pcre2_match(r.code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0) break;
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
          cands.push_back({seg.start + ov[0], seg.start + ov[1], r.type, impl.type_levels[r.type]});
          offset = ov[1];
        } else {
          // Empty match: step over one code point.
          offset = ov[1] + 1;
          while (offset < text.size() &&
                 (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) {
            ++offset;
          }
        }
      }
    }
    pcre2_match_data_free(md);
  }
  if (cands.empty()) return Status::ok();

  // Candidates of different texts never overlap, so clusters never span two texts.
  std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
    return a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  std::vector<Candidate>& resolved = slot.resolved;
  std::vector<Candidate>& cluster = slot.cluster;
  size_t i = 0;
  while (i < cands.size()) {
    size_t j = i + 1, cluster_end = cands[i].end;
    while (j < cands.size() && cands[j].start < cluster_end) {
      cluster_end = std::max(cluster_end, cands[j].end);
      ++j;
    }
    if (j == i + 1) {
      resolved.push_back(cands[i]);
    } else {
      cluster.assign(cands.begin() + static_cast<std::ptrdiff_t>(i),
                     cands.begin() + static_cast<std::ptrdiff_t>(j));
      resolve_cluster(cluster, resolved);
    }
    i = j;
  }
  // Code-point offsets in one forward pass per text (findings are sorted and disjoint).
  const Segment* seg = nullptr;
  size_t pos = 0, cp = 0;
  auto advance = [&](size_t to) {
    for (; pos < to; ++pos) cp += (static_cast<unsigned char>(buffer[pos]) & 0xC0) != 0x80;
    return cp;
  };
  for (const Candidate& c : resolved) {
    const Segment& at = segment_at(segments, c.start);
    if (&at != seg) {
      seg = &at;
      pos = at.start;
      cp = 0;
    }
    std::vector<Finding>& findings = out[at.index];
    Finding f;
    f.type = impl.type_names[c.type];
    f.level = c.level;
    f.start = c.start - at.start;
    f.end = c.end - at.start;
    f.cp_start = advance(c.start);
    f.cp_end = advance(c.end);
    findings.push_back(std::move(f));
  }
  return Status::ok();
}

}  // namespace

Result<std::vector<Finding>> SensitivityScanner::scan(std::string_view text) const {
  std::vector<Finding> findings;
  if (text.empty()) return findings;
  if (Status st = check_text(text); !st) return st.error();
  auto slot = impl_->acquire();
  if (!slot) return make_error(ErrorCode::kInternal, "scan: cannot allocate scratch space");
  const Segment whole{0, text.size(), 0};
  Status st = scan_segments(*impl_, *slot, text, {&whole, 1}, {&findings, 1});
  impl_->release(std::move(slot));
  if (!st) return st.error();
  return findings;
}

Result<std::vector<std::vector<Finding>>> SensitivityScanner::scan_each(
    std::span<const std::string_view> texts, size_t* failed_index) const {
  std::vector<std::vector<Finding>> out(texts.size());
  size_t n_texts = 0, total = 0, first = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].empty()) continue;
    if (Status st = check_text(texts[i]); !st) {
      if (failed_index) *failed_index = i;
      return st.error();
    }
    if (n_texts++ == 0) first = i;
    total += texts[i].size() + 1;
  }
  if (n_texts == 0) return out;
  auto slot = impl_->acquire();
  if (!slot) {
    if (failed_index) *failed_index = first;
    return make_error(ErrorCode::kInternal, "scan: cannot allocate scratch space");
  }
  Status st;
  if (n_texts == 1 || !impl_->joinable || total >= UINT_MAX) {
    // One pass per text: a single text needs no copy; see kSeparator for the rest.
    for (size_t i = 0; i < texts.size() && st; ++i) {
      if (texts[i].empty()) continue;
      const Segment whole{0, texts[i].size(), i};
      st = scan_segments(*impl_, *slot, texts[i], {&whole, 1}, out);
      if (!st) first = i;
      for (auto* v : {&slot->candidates, &slot->resolved, &slot->cluster}) v->clear();
    }
  } else {
    std::string& joined = slot->joined;
    joined.reserve(total);
    for (size_t i = 0; i < texts.size(); ++i) {
      if (texts[i].empty()) continue;
      if (!joined.empty()) joined.push_back(kSeparator);
      slot->segments.push_back({joined.size(), texts[i].size(), i});
      joined.append(texts[i]);
    }
    st = scan_segments(*impl_, *slot, joined, slot->segments, out);
  }
  impl_->release(std::move(slot));
  if (!st) {
    if (failed_index) *failed_index = first;
    return st.error();
  }
  return out;
}

}  // namespace enclave::privacy
