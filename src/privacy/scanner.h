// Sensitivity scanner: one Hyperscan (vectorscan) pass over UTF-8 text plus cheap validators
// (checksums, dates, boundaries) that cut false positives. Start reading here; README.md in this
// folder documents every detector, its default level and the overlap rule.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace enclave::privacy {

// Ordered: a routing policy compares levels with < and >.
enum class Level { kPublic = 0, kInternal = 1, kConfidential = 2, kSecret = 3 };

// "public", "internal", "confidential", "secret".
const char* level_name(Level level);
// Parses a lowercase/uppercase level name; nullopt if unknown.
std::optional<Level> parse_level(std::string_view name);

// One detected span. Offsets are half-open [start, end) in bytes and in Unicode code points.
struct Finding {
  std::string type;  // builtin detector name (see builtin_types()) or an operator category
  Level level = Level::kPublic;
  size_t start = 0, end = 0;        // bytes
  size_t cp_start = 0, cp_end = 0;  // code points

  bool operator==(const Finding&) const = default;
};

// Builtin detector names, in specificity order (most specific first): private_key, jwt,
// github_token, aws_access_key, api_key, cn_id, bank_card, iban, us_ssn, passport, phone_cn,
// phone_intl, email, ipv6, ipv4.
std::span<const std::string_view> builtin_types();
// Default level of a builtin detector; nullopt for an unknown name.
std::optional<Level> default_level(std::string_view builtin_type);

struct BuiltinRule {
  bool enabled = true;
  std::optional<Level> level;  // nullopt: the detector's default level
};

// Operator terms: keywords (case-insensitive for ASCII letters; Chinese matched exactly) and
// regexes (Hyperscan syntax, UTF-8 mode; PCRE2 is used for a regex Hyperscan rejects, e.g. one
// with lookarounds or back-references).
struct TermRule {
  std::string category;  // [A-Za-z0-9_.-]{1,64}, must not be a builtin name
  Level level = Level::kConfidential;
  std::vector<std::string> keywords;
  std::vector<std::string> regexes;
};

struct ScanRules {
  std::map<std::string, BuiltinRule> builtins;  // by builtin name; missing entries use defaults
  std::vector<TermRule> terms;
};

// Rules file (YAML), see README.md:
//   builtins: { email: {level: internal}, ipv4: false }
//   terms: [ {category: codename, level: secret, keywords: [Phoenix, 凤凰], regexes: ['PRJ-\d{4}']}
//   ]
Result<ScanRules> parse_rules_yaml(std::string_view yaml);
Result<ScanRules> load_rules_yaml(const std::string& path);

class SensitivityScanner {
 public:
  // Validates the rules and compiles every pattern into one immutable database.
  static Result<std::unique_ptr<SensitivityScanner>> create(const ScanRules& rules = {});
  ~SensitivityScanner();
  SensitivityScanner(const SensitivityScanner&) = delete;
  SensitivityScanner& operator=(const SensitivityScanner&) = delete;

  // Findings sorted by start, non-overlapping. Thread-safe (scratch space is pooled per call).
  // Invalid UTF-8 is an error (kInvalidArgument naming the byte offset), never a crash; inputs of
  // 4 GiB or more are kOutOfRange.
  Result<std::vector<Finding>> scan(std::string_view text) const;

  // Scans several independent texts (e.g. the messages of one request) with one database pass:
  // result[i] is exactly what scan(texts[i]) returns (offsets relative to texts[i]); no finding
  // spans two texts. On error (the first text that scan() would reject, same message),
  // `failed_index`, when given, is set to that text's index.
  Result<std::vector<std::vector<Finding>>> scan_each(std::span<const std::string_view> texts,
                                                      size_t* failed_index = nullptr) const;

  struct Impl;

 private:
  explicit SensitivityScanner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Highest level among the findings; kPublic when there are none.
Level max_level(const std::vector<Finding>& findings);

}  // namespace enclave::privacy
