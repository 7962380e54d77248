// UTF-8 helpers and the GPT-2 byte <-> unicode map used by byte-level BPE vocabularies.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace enclave::tokenizer {

// Length in bytes of the valid UTF-8 sequence starting at s[pos] (1-4), or 0 if the bytes there are
// not a valid, shortest-form sequence (overlongs, surrogates, > U+10FFFF and truncations are
// invalid).
size_t utf8_valid_len(std::string_view s, size_t pos);

// Decodes the valid sequence of length `len` at s[pos] (as returned by utf8_valid_len).
uint32_t utf8_decode(std::string_view s, size_t pos, size_t len);

// Appends the UTF-8 encoding of `cp` to `out`.
void utf8_append(std::string& out, uint32_t cp);

bool utf8_is_valid(std::string_view s);

// Each byte that does not start a valid sequence becomes U+FFFD (one per byte, as llama.cpp's
// unicode_cpts_from_utf8 does); valid input is returned unchanged.
std::string utf8_sanitize(std::string_view s);

// Length of the longest prefix of `s` that ends on a complete UTF-8 sequence, treating a
// truncated-but-so-far-valid sequence at the end as incomplete. Invalid bytes count as complete.
size_t utf8_complete_prefix(std::string_view s);

// GPT-2 byte-level map: byte -> the UTF-8 text of its stand-in code point.
const std::array<std::string, 256>& byte_to_unicode_table();
// Inverse: code point -> byte, or -1 if the code point is not a stand-in.
int unicode_to_byte(uint32_t cp);

// Byte-encodes raw bytes into GPT-2 unicode form (appends to out).
void byte_encode_append(std::string& out, std::string_view raw);
// Decodes GPT-2 unicode form back to raw bytes; code points outside the map are copied as UTF-8.
std::string byte_decode(std::string_view encoded);

}  // namespace enclave::tokenizer
