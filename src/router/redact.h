// Redaction and restoration. Each finding becomes a stable placeholder such as [EMAIL_1] (the
// same value gets the same placeholder everywhere in one request); the answer is restored by
// replacing placeholders with the original values, also incrementally over a stream whose
// chunks may split a placeholder anywhere.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "privacy/scanner.h"

namespace enclave::router {

class Redactor {
 public:
  // Replaces every finding of `text` (the scanner's findings for exactly this text: sorted by
  // start, non-overlapping) with its placeholder.
  std::string redact(std::string_view text, const std::vector<privacy::Finding>& findings);

  size_t replaced() const { return replaced_; }  // spans replaced (X-Enclave-Redacted)
  // placeholder -> original value. Lives as long as the request; never logged.
  const std::unordered_map<std::string, std::string>& table() const { return by_placeholder_; }
  size_t max_placeholder_bytes() const { return max_len_; }

 private:
  std::unordered_map<std::string, std::string> by_value_;  // value -> placeholder
  std::unordered_map<std::string, std::string> by_placeholder_;
  std::map<std::string, uint32_t> next_index_;  // per placeholder prefix
  size_t replaced_ = 0;
  size_t max_len_ = 0;
};

// "[EMAIL_" for type "email": upper case, anything but [A-Z0-9] becomes '_'.
std::string placeholder_prefix(std::string_view type);

// Incremental restore of one text stream (content or reasoning_content). push() returns what
// can be released now; a tail that may still become a placeholder is held back until the next
// push() or flush().
class Restorer {
 public:
  explicit Restorer(const Redactor* redactor) : redactor_(redactor) {}
  std::string push(std::string_view text);
  std::string flush();

 private:
  std::string drain(bool final);
  const Redactor* redactor_;
  std::string pending_;
};

// Whole-text restore (non-streaming answers).
std::string restore_all(const Redactor& redactor, std::string_view text);

}  // namespace enclave::router
