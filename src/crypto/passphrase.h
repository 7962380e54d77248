// Reading passphrases for the CLI: from an environment variable, or from the controlling
// terminal with echo off. Never from argv (visible to every user through ps).
#pragma once

#include "core/result.h"
#include "crypto/keystore.h"
#include "crypto/secret.h"

namespace enclave::crypto {

// `env_var` if set and non-empty; else a prompt on /dev/tty (echo off; asked twice when
// `confirm`). kNotFound when there is neither.
Result<SecretBytes> read_secret(const char* env_var, const char* prompt, bool confirm);

// ENCLAVE_MASTER_KEY / ENCLAVE_MASTER_KEY_FILE (raw key) or ENCLAVE_PASSPHRASE, else a tty prompt
// for the passphrase.
Result<MasterKeySource> master_key_source_interactive(bool confirm);

}  // namespace enclave::crypto
