// Shared by the data-protection subcommands (keys, tenant): open the key store, audit log and
// database together, and report errors with the CLI's exit codes.
#pragma once

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

struct DataProtection {
  std::unique_ptr<crypto::KeyStore> keys;
  std::unique_ptr<audit::AuditLog> log;
  std::unique_ptr<store::Store> db;
};

// Key store + audit log + database under data_dir, with the store's admin events appended to the
// audit log. The master key comes from the environment or an interactive prompt.
Result<DataProtection> open_data_protection(const std::string& data_dir);

}  // namespace enclave::cli
