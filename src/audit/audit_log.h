// AuditLog: tamper-evident, append-only JSON-lines audit trail.
//
// Each line is one JSON object: {"v":1,"seq":N,"ts":"...","type":"request"|"admin"|"system",
// ...,"prev":"<sha256 hex of the previous line>","hmac":"<HMAC-SHA-256 hex>"}. The HMAC (under
// the audit key from the KeyStore) covers the exact bytes of the line without the hmac member;
// "prev" chains every entry to the one before, across file rotation (audit-000001.jsonl,
// audit-000002.jsonl, ...). Only categories and counts of sensitive data are recorded, never
// values.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/result.h"
#include "crypto/keystore.h"
#include "crypto/secret.h"

namespace enclave::audit {

// When append() returns relative to the disk:
// - kAlways: after the entry was written and fdatasync'ed (concurrent appends share one fsync:
//   group commit). For compliance; costs an fsync (milliseconds) per acknowledged entry.
// - kBatch: at once. The entry is queued with its seq and time; a writer thread wakes every
//   batch_interval_ms, seals (chain + HMAC) and writes everything queued in one write and
//   fdatasyncs it: an acknowledged entry is on disk within about one interval.
// - kNever: as kBatch without the fdatasync (left to the OS).
// With kBatch/kNever a failed write or fsync makes every later append fail (kUnavailable) until a
// writer pass succeeds again, so the server stops acknowledging requests it cannot record; the
// entries acknowledged before the failure stay queued, in order, and are written by that pass.
// sync() and destruction write and fsync everything queued.
enum class FsyncPolicy { kAlways, kBatch, kNever };
Result<FsyncPolicy> parse_fsync_policy(std::string_view text);  // always | batch | never
const char* fsync_policy_name(FsyncPolicy policy);

using Clock = std::function<int64_t()>;  // unix milliseconds

struct AuditOptions {
  std::filesystem::path dir;                 // e.g. <data-dir>/audit
  FsyncPolicy fsync = FsyncPolicy::kAlways;  // the default: an acknowledged entry is on disk
  uint32_t batch_interval_ms = 20;
  // kBatch/kNever: the writer thread runs in SCHED_IDLE (never delays an io thread) and wakes
  // early when 4096 entries are queued; if it is starved (every core busy) and the queue reaches
  // this mark, a nice-19 backstop thread writes it instead. Four times the writer's mark (the
  // backstop stays asleep while the writer keeps up), far below the queue's cap (2^18 entries).
  size_t backstop_at_entries = 16384;
  // kBatch/kNever: after this long with nothing to write the writer stops waking every
  // batch_interval_ms and sleeps until the next append wakes it (an idle server makes no
  // wake-ups; only the first append after such a pause pays a notify).
  uint32_t idle_sleep_after_ms = 1000;
  uint64_t max_file_bytes = 64ull << 20;  // rotate to a new file beyond this size
  Clock now_ms;                           // defaults to the system clock
};

struct SensitivityCount {
  std::string category{};  // e.g. "email", "iban"; never the matched value
  uint32_t count = 0;
};

// One served request. Fill what is known; empty strings are written as empty.
struct RequestAudit {
  std::string request_id{};
  std::string key_name{};  // API key *name*, never the key
  std::string tenant{};
  std::string route{};   // "local" | "remote:<backend>" | "blocked"
  std::string policy{};  // policy name/version that decided the route
  std::string model{};
  std::string model_version{};
  std::vector<SensitivityCount> sensitivity{};
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  double latency_ms = 0;
  std::string outcome{};  // "ok" | "denied" | "error" | ...
  int http_status = 0;
};

struct AdminAudit {
  std::string action{};  // key_created, policy_changed, model_switched, tenant_erased, ...
  std::string actor{};
  std::string tenant{};
  std::vector<std::pair<std::string, std::string>> fields{};  // never secrets or content
};

inline constexpr const char* kAuditFilePrefix = "audit-";
inline constexpr const char* kAuditFileSuffix = ".jsonl";
// Audit files in `dir`, oldest first.
std::vector<std::filesystem::path> list_audit_files(const std::filesystem::path& dir);

class AuditLog {
 public:
  // Opens the log, continuing the chain from the last entry on disk. A torn final line (crash
  // mid-write) is cut off and a "torn_tail_recovered" system entry records how many bytes.
  static Result<std::unique_ptr<AuditLog>> open(AuditOptions options, crypto::SecretBytes key);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Each returns the entry's sequence number once it is durable per the fsync policy.
  Result<uint64_t> append_request(const RequestAudit& record);
  Result<uint64_t> append_request(RequestAudit&& record);  // kBatch/kNever: no copy
  Result<uint64_t> append_admin(const AdminAudit& record);
  Result<uint64_t> append_system(std::string_view event,
                                 const std::vector<std::pair<std::string, std::string>>& fields);

  // Writes (kBatch/kNever) and fsyncs everything appended so far.
  Status sync();
  // The seq of the last acknowledged entry (queued or written).
  uint64_t last_seq() const;
  std::filesystem::path current_file() const;

 private:
  struct Impl;
  explicit AuditLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Opens the audit log in `options.dir` with the audit key held by `keys` (the usual way in for
// the server and the CLI: AuditOptions{.dir = data_dir / "audit"}).
Result<std::unique_ptr<AuditLog>> open_audit_log(AuditOptions options,
                                                 const crypto::KeyStore& keys);

}  // namespace enclave::audit
