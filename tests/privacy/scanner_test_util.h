// Test helper shared by the scanner tests: a scanner for `rules`, or null with the creation
// error reported as a test failure.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "privacy/scanner.h"

namespace enclave::privacy::testing {

inline std::unique_ptr<SensitivityScanner> make_scanner(const ScanRules& rules = {}) {
  auto s = SensitivityScanner::create(rules);
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return s ? std::move(*s) : nullptr;
}

}  // namespace enclave::privacy::testing
