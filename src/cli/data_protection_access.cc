#include "cli/data_protection_access.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "crypto/passphrase.h"

namespace enclave::cli {

int fail(const Error& e) {
  std::fprintf(stderr, "error: %s\n", e.message.c_str());
  return e.code == ErrorCode::kInvalidArgument ? 2 : 1;
}

std::string cli_actor() {
  const char* user = std::getenv("USER");
  return std::string("cli:") + (user && *user ? user : "unknown");
}

Result<DataProtection> open_data_protection(const std::string& data_dir) {
  namespace fs = std::filesystem;
  DataProtection o;
  ENCLAVE_ASSIGN_OR_RETURN(crypto::MasterKeySource src,
                           crypto::master_key_source_interactive(false));
  ENCLAVE_ASSIGN_OR_RETURN(o.keys, crypto::KeyStore::open(fs::path(data_dir) / "keys", src));
  ENCLAVE_ASSIGN_OR_RETURN(o.log,
                           audit::open_audit_log({.dir = fs::path(data_dir) / "audit"}, *o.keys));
  ENCLAVE_ASSIGN_OR_RETURN(
      o.db, store::Store::open({.db_path = fs::path(data_dir) / "enclave.db"}, *o.keys));
  audit::AuditLog* log = o.log.get();
  std::string who = cli_actor();
  o.db->set_event_sink([log, who](const store::AdminEvent& e) -> Status {
    auto seq = log->append_admin({e.action, who, e.tenant, e.fields});
    if (!seq) return seq.error();
    return Status::ok();
  });
  return o;
}

}  // namespace enclave::cli
