// `enclave audit verify [FILE...]` and `enclave audit export`: check the tamper-evident audit
// log, and ship it to a SIEM. verify exit codes: 0 clean (a torn final line is reported but is
// not tampering), 1 tampered, 2 usage (bad arguments, unreadable files, no audit key).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit_log.h"
#include "audit/siem.h"
#include "audit/verify.h"
#include "cli/commands.h"
#include "cli/data_protection_access.h"
#include "crypto/keystore.h"

namespace enclave::cli {
namespace {
namespace fs = std::filesystem;

struct AuditArgs {
  std::string data_dir = "data";
  std::vector<std::string> files;
  bool no_hmac = false;
  std::string format = "json";
  std::string transport = "tcp";
  std::string host = "127.0.0.1";
  uint16_t port = 6514;
  std::string output;
  std::string ca_file;
  std::string server_name;
  bool follow = false;
  uint32_t timeout_s = 30;
};

int run_verify(const AuditArgs& a) {
  std::vector<fs::path> files(a.files.begin(), a.files.end());
  if (files.empty()) files = audit::list_audit_files(fs::path(a.data_dir) / "audit");
  if (files.empty()) {
    std::fprintf(stderr, "error: no audit files given and none in %s/audit\n", a.data_dir.c_str());
    return 2;
  }
  crypto::SecretBytes key;
  if (!a.no_hmac) {
    auto master = resolve_master_key(a.data_dir, MissingMasterKey::kPromptPassphrase);
    if (!master) {
      std::fprintf(stderr, "error: %s (or pass --no-hmac to check the hash chain only)\n",
                   master.error().message.c_str());
      return 2;
    }
    auto ks = crypto::KeyStore::open(fs::path(a.data_dir) / "keys", master->source);
    if (!ks) {
      std::fprintf(stderr, "error: %s\n", ks.error().message.c_str());
      return 2;
    }
    auto k = (*ks)->system_key(crypto::SystemKey::kAudit);
    if (!k) {
      std::fprintf(stderr, "error: %s\n", k.error().message.c_str());
      return 2;
    }
    key = std::move(k).value();
  }
  auto report = audit::verify_audit_files(files, a.no_hmac ? nullptr : &key);
  if (!report) {
    std::fprintf(stderr, "error: %s\n", report.error().message.c_str());
    return 2;
  }
  for (const auto& note : report->notes) std::printf("note: %s\n", note.c_str());
  if (report->truncated) std::printf("%s\n", audit::format_issue(*report->truncated).c_str());
  if (report->tamper) {
    std::printf("%s\n", audit::format_issue(*report->tamper).c_str());
    std::printf("audit verify: TAMPERED after %llu good entries\n",
                static_cast<unsigned long long>(report->entries_ok));
    return 1;
  }
  std::printf("audit verify: OK: %llu entries (seq %llu..%llu) in %zu file(s)%s%s\n",
              static_cast<unsigned long long>(report->entries_ok),
              static_cast<unsigned long long>(report->first_seq),
              static_cast<unsigned long long>(report->last_seq), files.size(),
              a.no_hmac ? ", hash chain only (no HMAC key)" : ", HMAC verified",
              report->truncated ? "; torn final line (crash), not tampering" : "");
  return 0;
}

int run_export(const AuditArgs& a) {
  audit::SiemOptions opt;
  auto format = audit::parse_siem_format(a.format);
  auto transport = audit::parse_siem_transport(a.transport);
  if (!format || !transport) {
    std::fprintf(stderr, "error: %s\n",
                 (!format ? format.error() : transport.error()).message.c_str());
    return 2;
  }
  opt.format = *format;
  opt.transport = *transport;
  opt.host = a.host;
  opt.port = a.port;
  opt.output_file = a.output;
  opt.tls_ca_file = a.ca_file;
  opt.tls_server_name = a.server_name;
  opt.audit_dir = fs::path(a.data_dir) / "audit";
  opt.syslog.version = ENCLAVE_VERSION;
  auto exp = audit::SiemExporter::create(opt);
  if (!exp) {
    std::fprintf(stderr, "error: %s\n", exp.error().message.c_str());
    return exp.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  if (a.follow) {
    (*exp)->start();
    std::printf("exporting %s audit entries to %s:%u (Ctrl-C to stop)\n", a.format.c_str(),
                a.host.c_str(), a.port);
    while (true) std::this_thread::sleep_for(std::chrono::seconds(3600));
  }
  auto st = (*exp)->drain(a.timeout_s * 1000);
  auto stats = (*exp)->stats();
  if (!st) {
    std::fprintf(stderr, "error: %s\n", st.error().message.c_str());
    return 1;
  }
  std::printf("exported %llu entries (%llu sent incl. re-sends); position %s:%llu\n",
              static_cast<unsigned long long>(stats.lines_committed),
              static_cast<unsigned long long>(stats.lines_sent), (*exp)->committed().file.c_str(),
              static_cast<unsigned long long>((*exp)->committed().offset));
  return 0;
}

}  // namespace

void register_audit(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<AuditArgs>();
  auto* audit_cmd = app.add_subcommand("audit", "Tamper-evident audit log");
  audit_cmd->require_subcommand(1);

  auto* verify = audit_cmd->add_subcommand(
      "verify",
      "Verify audit files in order (default: <data-dir>/audit/*). Exit 0 clean, "
      "1 tampered, 2 usage");
  verify->add_option("FILE", args->files, "Audit files, oldest first");
  verify->add_option("--data-dir", args->data_dir, "Data directory (key store, audit files)")
      ->capture_default_str();
  verify->add_flag("--no-hmac", args->no_hmac,
                   "Check only the hash chain and sequence (no master key needed)");
  verify->callback([args, &exit_code] { exit_code = run_verify(*args); });
  verify->footer(std::string(kMasterKeyHelp) + " Not needed with --no-hmac.");

  auto* exp = audit_cmd->add_subcommand(
      "export", "Send the audit log to a SIEM, at least once, resuming from the saved position");
  exp->add_option("--format", args->format, "json | syslog (RFC 5424) | cef")
      ->capture_default_str();
  exp->add_option("--transport", args->transport, "udp | tcp | tls | file")->capture_default_str();
  exp->add_option("--host", args->host, "Receiver host")->capture_default_str();
  exp->add_option("--port", args->port, "Receiver port")->capture_default_str();
  exp->add_option("--output", args->output, "Output file (file transport)");
  exp->add_option("--ca-file", args->ca_file, "CA bundle to verify the TLS receiver");
  exp->add_option("--server-name", args->server_name, "Expected TLS certificate name");
  exp->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  exp->add_flag("--follow", args->follow, "Keep running and ship new entries as they arrive");
  exp->add_option("--timeout", args->timeout_s, "Seconds to wait for the receiver (one-shot)")
      ->capture_default_str();
  exp->callback([args, &exit_code] { exit_code = run_export(*args); });
}

}  // namespace enclave::cli
