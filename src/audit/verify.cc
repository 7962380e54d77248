#include "audit/verify.h"

#include <unordered_set>

#include "audit/entry.h"
#include "crypto/file_util.h"

namespace enclave::audit {
namespace fs = std::filesystem;
namespace {

struct Line {
  size_t file_index;
  uint64_t line_no;
  std::string text;
  bool complete;  // ended with '\n'
  ParsedLine parsed;
  bool valid = false;  // json ok and (no key, or hmac ok)
};

}  // namespace

const char* issue_kind_name(IssueKind kind) {
  switch (kind) {
    case IssueKind::kModified:
      return "modified";
    case IssueKind::kRemoved:
      return "removed";
    case IssueKind::kInserted:
      return "inserted";
    case IssueKind::kReordered:
      return "reordered";
    case IssueKind::kTruncated:
      return "truncated";
  }
  return "?";
}

std::string format_issue(const VerifyIssue& issue) {
  std::string what = issue.kind == IssueKind::kTruncated
                         ? "truncated"
                         : std::string("TAMPERED (") + issue_kind_name(issue.kind) + ")";
  return issue.file.string() + ":" + std::to_string(issue.line) + ": " + what + ": " + issue.detail;
}

Result<VerifyReport> verify_audit_files(const std::vector<fs::path>& files,
                                        const crypto::SecretBytes* key) {
  std::vector<Line> lines;
  for (size_t f = 0; f < files.size(); ++f) {
    auto text = crypto::read_file(files[f]);
    if (!text) {
      return make_error(ErrorCode::kNotFound, "cannot read audit file " + files[f].string());
    }
    size_t pos = 0;
    uint64_t no = 0;
    while (pos < text->size()) {
      size_t nl = text->find('\n', pos);
      bool complete = nl != std::string::npos;
      size_t end = complete ? nl : text->size();
      Line l{f, ++no, text->substr(pos, end - pos), complete, {}, false};
      l.parsed = parse_line(l.text, key);
      l.valid = l.parsed.json_ok && (key == nullptr || l.parsed.hmac_ok);
      lines.push_back(std::move(l));
      pos = end + 1;
    }
  }

  VerifyReport report;
  auto issue = [&](IssueKind kind, const Line& l, std::string detail) {
    return VerifyIssue{kind, files[l.file_index], l.line_no, std::move(detail)};
  };
  bool have_prev = false;
  std::string last_hash;
  uint64_t expected_seq = 0;
  std::unordered_set<std::string> seen_hashes;

  for (size_t i = 0; i < lines.size(); ++i) {
    const Line& l = lines[i];
    bool is_last = i + 1 == lines.size();
    bool links =
        l.valid && (!have_prev || (l.parsed.seq == expected_seq && l.parsed.prev == last_hash));
    if (is_last && !l.complete && !links) {
      // A crash while writing the final line: not tampering.
      report.truncated = issue(IssueKind::kTruncated, l,
                               "final line is incomplete (" + std::to_string(l.text.size()) +
                                   " bytes; crash during write); not counted as tampering");
      break;
    }
    if (!l.valid) {
      // Inserted if the chain continues unbroken right after this line.
      bool next_links = i + 1 < lines.size() && lines[i + 1].valid && have_prev &&
                        lines[i + 1].parsed.seq == expected_seq &&
                        lines[i + 1].parsed.prev == last_hash;
      if (next_links) {
        report.tamper = issue(IssueKind::kInserted, l,
                              "line is not part of the chain (the next line links to the entry "
                              "before it)");
      } else {
        report.tamper = issue(IssueKind::kModified, l,
                              l.parsed.json_ok ? "entry does not verify (HMAC mismatch)"
                                               : "line is not a well-formed audit entry");
      }
      break;
    }
    std::string hash = line_hash(l.text);
    if (!have_prev) {
      if (l.parsed.seq <= 1) {
        if (l.parsed.prev != kGenesisHash) {
          report.tamper = issue(IssueKind::kModified, l, "first entry does not link to genesis");
          break;
        }
      } else {
        report.notes.push_back("chain starts at seq " + std::to_string(l.parsed.seq) +
                               " (earlier audit files not given); its link is not checked");
      }
      report.first_seq = l.parsed.seq;
    } else if (l.parsed.seq > expected_seq) {
      bool later = false;
      for (size_t j = i + 1; j < lines.size() && !later; ++j) {
        later = lines[j].valid && lines[j].parsed.seq == expected_seq;
      }
      report.tamper =
          later ? issue(IssueKind::kReordered, l,
                        "entry seq " + std::to_string(l.parsed.seq) + " appears before seq " +
                            std::to_string(expected_seq))
                : issue(IssueKind::kRemoved, l,
                        "entries seq " + std::to_string(expected_seq) + ".." +
                            std::to_string(l.parsed.seq - 1) + " are missing before this line");
      break;
    } else if (l.parsed.seq < expected_seq) {
      report.tamper = seen_hashes.count(hash)
                          ? issue(IssueKind::kInserted, l,
                                  "duplicate of earlier entry seq " + std::to_string(l.parsed.seq))
                          : issue(IssueKind::kReordered, l,
                                  "entry seq " + std::to_string(l.parsed.seq) +
                                      " appears after seq " + std::to_string(expected_seq - 1));
      break;
    } else if (l.parsed.prev != last_hash) {
      // Without a key this is how a modified previous line shows up.
      const Line& blame = key == nullptr && i > 0 ? lines[i - 1] : l;
      report.tamper = issue(IssueKind::kModified, blame,
                            key == nullptr ? "entry content does not match the next entry's "
                                             "chain link"
                                           : "chain link does not match the previous entry");
      break;
    }
    seen_hashes.insert(hash);
    last_hash = std::move(hash);
    have_prev = true;
    expected_seq = l.parsed.seq + 1;
    report.last_seq = l.parsed.seq;
    report.entries_ok++;
    if (is_last && !l.complete) report.notes.push_back("final line lacks its newline");
  }
  report.last_hash = last_hash;
  return report;
}

}  // namespace enclave::audit
