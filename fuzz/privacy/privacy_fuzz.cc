// libFuzzer target: scan arbitrary bytes with every builtin detector plus operator keywords and
// regexes (one of them on the PCRE2 fallback). Invariants: no crash; invalid UTF-8 is an error
// exactly when find_invalid_utf8 says so; findings are sorted, disjoint, in bounds, and their
// code-point offsets agree with a direct count.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "privacy/scanner.h"
#include "privacy/validators.h"

using enclave::privacy::Level;
using enclave::privacy::SensitivityScanner;

namespace {

const SensitivityScanner& scanner() {
  static const auto s = [] {
    enclave::privacy::ScanRules rules;
    rules.terms.push_back({"codename", Level::kSecret, {"Phoenix", "凤凰计划", "a"}, {}});
    rules.terms.push_back({"record", Level::kConfidential, {}, {R"(PRJ-\d{4})", "病历.号\\d+"}});
    rules.terms.push_back({"lookahead", Level::kInternal, {}, {R"(REC(?=\d{3})\d+)"}});
    auto r = SensitivityScanner::create(rules);
    if (!r) std::abort();
    return std::move(*r);
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = scanner().scan(text);
  const bool valid = enclave::privacy::find_invalid_utf8(text) == std::string_view::npos;
  if (r.has_value() != valid) std::abort();
  if (!r) return 0;
  size_t prev_end = 0;
  for (const auto& f : *r) {
    if (f.start >= f.end || f.end > size || f.start < prev_end) std::abort();
    if (f.cp_start != enclave::privacy::count_code_points(text.substr(0, f.start))) std::abort();
    if (f.cp_end != enclave::privacy::count_code_points(text.substr(0, f.end))) std::abort();
    prev_end = f.end;
  }
  return 0;
}
