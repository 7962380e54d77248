// Line format shared by the writer, the verifier and the SIEM exporter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"
#include "crypto/secret.h"

namespace enclave::audit {

inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// `body` is a serialized JSON object without the hmac member; returns the complete line
// (without '\n'): body with ,"hmac":"<hex>" appended before the closing brace.
Result<std::string> seal_line(std::string_view body, const crypto::SecretBytes& key);

// Lowercase hex SHA-256 of a line (without '\n'): the next entry's "prev".
std::string line_hash(std::string_view line);

struct ParsedLine {
  bool json_ok = false;  // a JSON object with seq/prev/hmac of the right shape
  bool hmac_ok = false;  // HMAC verified (false when no key was given)
  uint64_t seq = 0;
  std::string prev;
  std::string type;
  int64_t ts_ms = 0;
};
// Parses and (when key != nullptr) authenticates one line.
ParsedLine parse_line(std::string_view line, const crypto::SecretBytes* key);

// RFC 3339 UTC with milliseconds, e.g. 2025-01-31T12:00:00.123Z.
std::string format_rfc3339_ms(int64_t unix_ms);
// Appends format_rfc3339_ms(unix_ms) to `out` (no allocation of its own).
void append_rfc3339_ms(std::string& out, int64_t unix_ms);

}  // namespace enclave::audit
