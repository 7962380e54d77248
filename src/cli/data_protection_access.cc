#include "cli/data_protection_access.h"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <system_error>

#include "crypto/kdf.h"
#include "crypto/passphrase.h"

namespace enclave::cli {

namespace fs = std::filesystem;

int fail(const Error& e) {
  std::fprintf(stderr, "error: %s\n", e.message.c_str());
  return e.code == ErrorCode::kInvalidArgument ? 2 : 1;
}

std::string cli_actor() {
  const char* user = std::getenv("USER");
  return std::string("cli:") + (user && *user ? user : "unknown");
}

fs::path default_master_key_file(const std::string& data_dir) {
  return fs::path(data_dir) / "keys" / "master.key";
}

Result<MasterKey> resolve_master_key(const std::string& data_dir, MissingMasterKey missing) {
  MasterKey key;
  Result<crypto::MasterKeySource> env = crypto::MasterKeySource::from_environment();
  if (env) {
    key.source = std::move(env).value();
    return key;
  }
  if (env.error().code != ErrorCode::kNotFound) return env.error();

  const fs::path key_file = default_master_key_file(data_dir);
  std::error_code ec;
  if (missing == MissingMasterKey::kCreateKeyFile || fs::exists(key_file, ec)) {
    ENCLAVE_ASSIGN_OR_RETURN(key.source, crypto::MasterKeySource::load_or_create_key_file(
                                             key_file, &key.key_file_created));
    key.key_file = key_file;
    return key;
  }
  Result<crypto::SecretBytes> pass =
      crypto::read_secret(crypto::kEnvPassphrase, "Passphrase: ", /*confirm=*/false);
  if (!pass) {
    if (pass.error().code != ErrorCode::kNotFound) return pass.error();
    return make_error(ErrorCode::kNotFound,
                      "no master key: set ENCLAVE_PASSPHRASE, ENCLAVE_MASTER_KEY (hex) or "
                      "ENCLAVE_MASTER_KEY_FILE, or start `enclave serve --data-dir " +
                          data_dir + "` once to generate " + key_file.string() +
                          " (there is no terminal to prompt for a passphrase)");
  }
  key.source = crypto::MasterKeySource::passphrase(std::move(pass).value());
  return key;
}

Result<DataProtection> open_data_protection(const std::string& data_dir,
                                            const DataProtectionOptions& options) {
  const fs::path dir(data_dir);
  DataProtection o;
  ENCLAVE_ASSIGN_OR_RETURN(MasterKey master,
                           resolve_master_key(data_dir, options.missing_master_key));
  o.master_key_file = master.key_file;
  o.master_key_file_created = master.key_file_created;
  const fs::path key_dir = dir / "keys";
  if (options.create_key_store && !crypto::KeyStore::exists(key_dir)) {
    std::optional<crypto::KdfParams> kdf;
    if (master.source.kind == crypto::MasterKeySource::Kind::kPassphrase) {
      ENCLAVE_ASSIGN_OR_RETURN(kdf, crypto::KdfParams::defaults(crypto::KdfKind::kArgon2id));
    }
    ENCLAVE_ASSIGN_OR_RETURN(
        o.keys, crypto::KeyStore::create(key_dir, master.source, kdf ? &*kdf : nullptr));
    o.key_store_created = true;
  } else {
    ENCLAVE_ASSIGN_OR_RETURN(o.keys, crypto::KeyStore::open(key_dir, master.source));
  }
  ENCLAVE_ASSIGN_OR_RETURN(
      o.log, audit::open_audit_log({.dir = dir / "audit", .fsync = options.fsync}, *o.keys));
  store::SyncPolicy sync = options.fsync == audit::FsyncPolicy::kAlways ? store::SyncPolicy::kAlways
                           : options.fsync == audit::FsyncPolicy::kBatch
                               ? store::SyncPolicy::kBatch
                               : store::SyncPolicy::kNever;
  ENCLAVE_ASSIGN_OR_RETURN(
      o.db, store::Store::open({.db_path = dir / "enclave.db", .sync = sync}, *o.keys));
  audit::AuditLog* log = o.log.get();
  std::string who = options.actor.empty() ? cli_actor() : options.actor;
  o.db->set_event_sink([log, who](const store::AdminEvent& e) -> Status {
    auto seq = log->append_admin({e.action, who, e.tenant, e.fields});
    if (!seq) return seq.error();
    return Status::ok();
  });
  return o;
}

}  // namespace enclave::cli
