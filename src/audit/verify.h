// Verification of audit files: HMAC of every entry, the hash chain across files, and sequence
// numbers. Reports the first modified, removed, inserted or reordered entry by file and line;
// a torn final line (crash mid-write) is reported separately as truncated, not as tampering.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "crypto/secret.h"

namespace enclave::audit {

enum class IssueKind { kModified, kRemoved, kInserted, kReordered, kTruncated };
const char* issue_kind_name(IssueKind kind);

struct VerifyIssue {
  IssueKind kind = IssueKind::kModified;
  std::filesystem::path file;
  uint64_t line = 0;  // 1-based line number within `file`
  std::string detail;
};

struct VerifyReport {
  uint64_t entries_ok = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  std::string last_hash;                 // hash of the last verified entry (for anchoring)
  std::optional<VerifyIssue> tamper;     // first tampering found; verification stops there
  std::optional<VerifyIssue> truncated;  // torn final line: crash, not tampering
  std::vector<std::string> notes;        // e.g. "chain starts at seq N (earlier files absent)"
  bool clean() const { return !tamper.has_value(); }
};

// Verifies `files` in the given order as one chain. With key == nullptr only the hash chain and
// sequence numbers are checked (a modified entry is then found through the next entry's link).
// Errors only for unreadable files; tampering is reported in the VerifyReport.
Result<VerifyReport> verify_audit_files(const std::vector<std::filesystem::path>& files,
                                        const crypto::SecretBytes* key);

// "FILE:LINE: tampered (removed): detail" style one-liner for CLI output.
std::string format_issue(const VerifyIssue& issue);

}  // namespace enclave::audit
