// Shared by `enclave serve` and the data-protection subcommands (keys, tenant, audit): where the
// master key comes from, opening the key store, audit log and database together, and reporting
// errors with the CLI's exit codes.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "audit/audit_log.h"
#include "core/result.h"
#include "crypto/keystore.h"
#include "store/store.h"

namespace enclave::cli {

// Prints "error: <message>" to stderr; returns 2 for bad arguments, 1 otherwise.
int fail(const Error& e);

// "cli:<user>", the actor recorded in admin audit entries.
std::string cli_actor();

// Where the master key comes from, in this order (serve and the subcommands agree, so that the
// subcommands open what serve created):
//  1. ENCLAVE_MASTER_KEY (hex), ENCLAVE_MASTER_KEY_FILE, ENCLAVE_PASSPHRASE;
//  2. <data-dir>/keys/master.key, the key file serve generates when none of 1. is set;
//  3. neither: serve generates 2. (kCreateKeyFile); a subcommand asks for the passphrase on the
//     terminal (kPromptPassphrase).
enum class MissingMasterKey { kPromptPassphrase, kCreateKeyFile };

// The same order for --help texts.
inline constexpr const char* kMasterKeyHelp =
    "Master key: ENCLAVE_MASTER_KEY (hex), ENCLAVE_MASTER_KEY_FILE or ENCLAVE_PASSPHRASE; "
    "without them <data-dir>/keys/master.key (the key file `enclave serve` generates on its "
    "first start); without that a passphrase prompt on the terminal.";

struct MasterKey {
  crypto::MasterKeySource source;
  std::filesystem::path key_file;  // set when the key came from <data-dir>/keys/master.key
  bool key_file_created = false;
};

std::filesystem::path default_master_key_file(const std::string& data_dir);
Result<MasterKey> resolve_master_key(const std::string& data_dir, MissingMasterKey missing);

struct DataProtectionOptions {
  MissingMasterKey missing_master_key = MissingMasterKey::kPromptPassphrase;
  // Creates the key store when <data-dir>/keys has none (serve's first start). Off: a missing key
  // store is an error (the subcommands leave creation to `enclave keys init`).
  bool create_key_store = false;
  std::string actor;  // actor of the store's admin audit entries; empty: cli_actor()
  // Durability of the audit log; the database follows it (kBatch -> store kBatch, ...).
  audit::FsyncPolicy fsync = audit::FsyncPolicy::kAlways;
};

struct DataProtection {
  std::unique_ptr<crypto::KeyStore> keys;
  std::unique_ptr<audit::AuditLog> log;
  std::unique_ptr<store::Store> db;       // destroyed before `log`, which its event sink uses
  std::filesystem::path master_key_file;  // see MasterKey
  bool master_key_file_created = false;
  bool key_store_created = false;
};

// Key store + audit log + database under data_dir, with the store's admin events appended to the
// audit log.
Result<DataProtection> open_data_protection(const std::string& data_dir,
                                            const DataProtectionOptions& options = {});

}  // namespace enclave::cli
