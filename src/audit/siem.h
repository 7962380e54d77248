// SIEM export of the audit log: JSON lines, syslog RFC 5424 and CEF payloads over UDP, TCP
// (RFC 6587 octet counting for syslog payloads, LF-delimited for JSON lines), TCP+TLS, or a
// local file.
//
// Delivery is at-least-once: the audit files themselves are the spool. The exporter reads
// complete lines from the audit directory and persists the position it has *committed* (file +
// byte offset) in a state file, so it resumes after a restart and re-sends anything not yet
// committed. On TCP/TLS a batch is committed only after the connection has stayed healthy for
// confirm_delay_ms after sending it; when the connection breaks, the exporter rewinds to the
// committed position and re-sends (the receiver may see duplicates; "seq" identifies them).
// UDP has no delivery signal: it is best effort and committed on send.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace enclave::audit {

enum class SiemFormat { kJsonLines, kSyslog5424, kCef };
enum class SiemTransport { kUdp, kTcp, kTls, kFile };
Result<SiemFormat> parse_siem_format(std::string_view text);        // json | syslog | cef
Result<SiemTransport> parse_siem_transport(std::string_view text);  // udp | tcp | tls | file

struct SyslogContext {
  std::string hostname;  // empty = gethostname()
  std::string app_name = "enclave";
  int facility = 13;              // RFC 5424 facility 13: log audit
  std::string version = "0.1.0";  // product version for CEF
};

// Payload formatting (pure functions of one audit line).
std::string format_rfc5424(std::string_view audit_line, const SyslogContext& ctx);
std::string format_cef(std::string_view audit_line, const SyslogContext& ctx);
// RFC 6587 octet-counting frame: "<len> <msg>".
std::string frame_octet_counted(std::string_view msg);

struct SiemOptions {
  SiemFormat format = SiemFormat::kJsonLines;
  SiemTransport transport = SiemTransport::kTcp;
  std::string host = "127.0.0.1";
  uint16_t port = 6514;
  std::filesystem::path output_file;    // kFile only
  std::filesystem::path tls_ca_file;    // kTls: CA bundle used to verify the receiver
  std::string tls_server_name;          // kTls: expected certificate name (default: host)
  std::filesystem::path tls_cert_file;  // optional client certificate (mutual TLS)
  std::filesystem::path tls_key_file;
  std::filesystem::path audit_dir;   // the spool: where AuditLog writes
  std::filesystem::path state_file;  // default: <audit_dir>/siem-<transport>-<port>.state
  uint32_t confirm_delay_ms = 500;
  uint32_t connect_timeout_ms = 2000;
  uint32_t send_timeout_ms = 5000;
  uint32_t poll_interval_ms = 100;  // background thread cadence
  uint32_t max_batch = 512;
  SyslogContext syslog;
  std::function<int64_t()> now_ms;  // defaults to a monotonic clock
};

struct SiemPosition {
  std::string file;  // audit file name (no directory)
  uint64_t offset = 0;
  bool operator==(const SiemPosition&) const = default;
};

struct SiemStats {
  uint64_t lines_sent = 0;  // including re-sends
  uint64_t lines_committed = 0;
  uint64_t connects = 0;
  uint64_t failures = 0;  // connection/send failures (receiver down)
  std::string last_error;
};

class SiemExporter {
 public:
  static Result<std::unique_ptr<SiemExporter>> create(SiemOptions options);
  ~SiemExporter();
  SiemExporter(const SiemExporter&) = delete;
  SiemExporter& operator=(const SiemExporter&) = delete;

  // One round on the caller's thread: check the connection, commit confirmed batches, send the
  // next batch. Returns the number of lines sent. A down receiver is not an error (the entries
  // stay spooled); only local failures (state file, audit files) are.
  Result<size_t> pump();
  // Pumps until everything currently in the audit directory is committed or `timeout_ms` passes.
  // kUnavailable on timeout.
  Status drain(uint32_t timeout_ms);
  // Background thread calling pump() every poll_interval_ms. Idempotent.
  void start();
  void stop();

  SiemPosition committed() const;
  SiemStats stats() const;

 private:
  struct Impl;
  explicit SiemExporter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace enclave::audit
