// UTF-8 and byte-level map implementation.
#include "tokenizer/unicode.h"

namespace enclave::tokenizer {

size_t utf8_valid_len(std::string_view s, size_t pos) {
  const size_t n = s.size() - pos;
  const auto b0 = static_cast<uint8_t>(s[pos]);
  if (b0 < 0x80) return 1;
  auto cont = [&](size_t i) { return i < n && (static_cast<uint8_t>(s[pos + i]) & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    const auto b1 = static_cast<uint8_t>(s[pos + 1]);
    if (b0 == 0xE0 && b1 < 0xA0) return 0;   // overlong
    if (b0 == 0xED && b1 >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const auto b1 = static_cast<uint8_t>(s[pos + 1]);
    if (b0 == 0xF0 && b1 < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && b1 >= 0x90) return 0;  // > U+10FFFF
    return 4;
  }
  return 0;
}

uint32_t utf8_decode(std::string_view s, size_t pos, size_t len) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[pos + i])); };
  switch (len) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool utf8_is_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t len = utf8_valid_len(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string utf8_sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    const size_t len = utf8_valid_len(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

size_t utf8_complete_prefix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence is cut off by the end of `s`.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = 0;
    if (b >= 0xC2 && b <= 0xDF)
      need = 2;
    else if (b >= 0xE0 && b <= 0xEF)
      need = 3;
    else if (b >= 0xF0 && b <= 0xF4)
      need = 4;
    if (need > back) {
      // Incomplete only if what is there so far could still become valid.
      std::string probe(s.substr(n - back));
      // Pad with a neutral continuation byte to test the prefix.
      static constexpr char kPad[] = "\x80\x80\x80";
      probe.append(kPad, need - back);
      // 0x80 is not valid as 2nd byte after E0/F0 (overlong) or ok for ED/F4; use the smallest
      // legal second byte for those leads.
      if (back == 1) {
        if (b == 0xE0) probe[1] = static_cast<char>(0xA0);
        if (b == 0xF0) probe[1] = static_cast<char>(0x90);
      }
      if (utf8_valid_len(probe, 0) == need) return n - back;
    }
    return n;
  }
  return n;
}

namespace {
struct ByteTables {
  std::array<std::string, 256> to_text;
  std::array<int16_t, 0x144> from_cp;  // code points < 0x144 cover the whole map
  ByteTables() {
    from_cp.fill(-1);
    int next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = self ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
      utf8_append(to_text[b], cp);
      from_cp[cp] = static_cast<int16_t>(b);
    }
  }
};
const ByteTables& tables() {
  static const ByteTables t;  // immutable after construction
  return t;
}
}  // namespace

const std::array<std::string, 256>& byte_to_unicode_table() {
  return tables().to_text;
}

int unicode_to_byte(uint32_t cp) {
  if (cp >= tables().from_cp.size()) return -1;
  return tables().from_cp[cp];
}

void byte_encode_append(std::string& out, std::string_view raw) {
  const auto& t = tables().to_text;
  for (char c : raw) out += t[static_cast<uint8_t>(c)];
}

std::string byte_decode(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  size_t i = 0;
  while (i < encoded.size()) {
    size_t len = utf8_valid_len(encoded, i);
    if (len == 0) {
      out.push_back(encoded[i]);
      ++i;
      continue;
    }
    const uint32_t cp = utf8_decode(encoded, i, len);
    const int b = unicode_to_byte(cp);
    if (b >= 0)
      out.push_back(static_cast<char>(b));
    else
      out.append(encoded.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace enclave::tokenizer
