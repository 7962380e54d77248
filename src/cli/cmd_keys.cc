// `enclave keys init|rotate|api-create|api-list|api-revoke`: the key store in <data-dir>/keys and
// API keys. Passphrases come from ENCLAVE_PASSPHRASE (ENCLAVE_NEW_PASSPHRASE for rotation) or a
// terminal prompt, never from argv. Every subcommand, init included, resolves the master key as
// serve does (data_protection_access.h), so serve's generated or an operator-provisioned
// <data-dir>/keys/master.key is found.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "audit/audit_log.h"
#include "cli/commands.h"
#include "cli/data_protection_access.h"
#include "crypto/kdf.h"
#include "crypto/keystore.h"
#include "crypto/passphrase.h"
#include "store/store.h"

namespace enclave::cli {
namespace {
namespace fs = std::filesystem;

struct KeysArgs {
  std::string data_dir = "data";
  std::string kdf = "argon2id";
  std::string name;
  std::string tenant;
};

// The master key of a new key store, in the order serve and the other subcommands resolve it
// (resolve_master_key): the environment, then an existing <data-dir>/keys/master.key (provisioned
// ahead, or left by serve), so that serve later opens the store that init creates; only without
// both a new passphrase, typed twice.
Result<MasterKey> init_master_key(const std::string& data_dir) {
  Result<crypto::MasterKeySource> env = crypto::MasterKeySource::from_environment();
  std::error_code ec;
  const bool configured = env.has_value() || env.error().code != ErrorCode::kNotFound ||
                          fs::exists(default_master_key_file(data_dir), ec);
  if (configured) return resolve_master_key(data_dir, MissingMasterKey::kPromptPassphrase);
  MasterKey key;
  ENCLAVE_ASSIGN_OR_RETURN(key.source, crypto::master_key_source_interactive(/*confirm=*/true));
  return key;
}

int run_init(const KeysArgs& a) {
  fs::path dir = fs::path(a.data_dir) / "keys";
  auto master = init_master_key(a.data_dir);
  if (!master) return fail(master.error());
  const crypto::MasterKeySource* source = &master->source;
  auto kind = crypto::parse_kdf_name(a.kdf);
  if (!kind) return fail(kind.error());
  auto kdf = crypto::KdfParams::defaults(*kind);
  if (!kdf) return fail(kdf.error());
  auto ks = crypto::KeyStore::create(dir, *source, &*kdf);
  if (!ks) return fail(ks.error());
  auto log = audit::open_audit_log({.dir = fs::path(a.data_dir) / "audit"}, **ks);
  if (!log) return fail(log.error());
  bool raw = source->kind == crypto::MasterKeySource::Kind::kRawKey;
  auto seq = (*log)->append_admin({"keystore_initialised",
                                   cli_actor(),
                                   "",
                                   {{"kdf", raw ? "raw-key" : crypto::kdf_name(kdf->kind)},
                                    {"master_fingerprint", (*ks)->master_fingerprint()}}});
  if (!seq) return fail(seq.error());
  std::printf("key store created in %s (master key %s, %s)\n", dir.c_str(),
              (*ks)->master_fingerprint().c_str(), raw ? "raw key" : crypto::kdf_name(kdf->kind));
  if (!master->key_file.empty()) {
    std::printf("master key read from %s\n", master->key_file.c_str());
  }
  return 0;
}

int run_rotate(const KeysArgs& a) {
  fs::path dir = fs::path(a.data_dir) / "keys";
  auto master = resolve_master_key(a.data_dir, MissingMasterKey::kPromptPassphrase);
  if (!master) return fail(master.error());
  auto ks = crypto::KeyStore::open(dir, master->source);
  if (!ks) return fail(ks.error());
  std::string old_fp = (*ks)->master_fingerprint();
  crypto::MasterKeySource next;
  if (const char* hex = std::getenv("ENCLAVE_NEW_MASTER_KEY"); hex && *hex) {
    auto raw = crypto::MasterKeySource::raw_key_hex(hex);
    if (!raw) return fail(raw.error());
    next = std::move(raw).value();
  } else {
    auto pass = crypto::read_secret("ENCLAVE_NEW_PASSPHRASE", "New passphrase: ", true);
    if (!pass) return fail(pass.error());
    next = crypto::MasterKeySource::passphrase(std::move(pass).value());
  }
  auto kind = crypto::parse_kdf_name(a.kdf);
  if (!kind) return fail(kind.error());
  auto kdf = crypto::KdfParams::defaults(*kind);
  if (!kdf) return fail(kdf.error());
  if (auto st = (*ks)->rotate_master(next, &*kdf); !st) return fail(st.error());
  auto log = audit::open_audit_log({.dir = fs::path(a.data_dir) / "audit"}, **ks);
  if (!log) return fail(log.error());
  auto seq = (*log)->append_admin(
      {"master_key_rotated",
       cli_actor(),
       "",
       {{"old_fingerprint", old_fp}, {"new_fingerprint", (*ks)->master_fingerprint()}}});
  if (!seq) return fail(seq.error());
  std::printf("master key rotated: %s -> %s (data keys re-wrapped, data untouched)\n",
              old_fp.c_str(), (*ks)->master_fingerprint().c_str());
  if (!master->key_file.empty()) {
    // With no variable set, serve and these commands would keep reading the stale file.
    std::printf(
        "note: %s holds the old master key, which no longer opens the key store; shred it and "
        "start serve with ENCLAVE_PASSPHRASE, ENCLAVE_MASTER_KEY or ENCLAVE_MASTER_KEY_FILE\n",
        master->key_file.c_str());
  }
  return 0;
}

int run_api_create(const KeysArgs& a) {
  auto o = open_data_protection(a.data_dir);
  if (!o) return fail(o.error());
  auto created = o->db->create_api_key(a.name, a.tenant);
  if (!created) return fail(created.error());
  std::printf("API key '%s' for tenant '%s' (id %s). Shown once; store it now:\n%.*s\n",
              created->info.name.c_str(), created->info.tenant.c_str(),
              created->info.key_id.c_str(), static_cast<int>(created->key.size()),
              reinterpret_cast<const char*>(created->key.data()));
  return 0;
}

int run_api_list(const KeysArgs& a) {
  auto o = open_data_protection(a.data_dir);
  if (!o) return fail(o.error());
  auto keys = o->db->list_api_keys();
  if (!keys) return fail(keys.error());
  for (const auto& k : *keys) {
    std::printf("%-24s tenant=%-16s id=%s%s\n", k.name.c_str(), k.tenant.c_str(), k.key_id.c_str(),
                k.revoked ? " (revoked)" : "");
  }
  return 0;
}

int run_api_revoke(const KeysArgs& a) {
  auto o = open_data_protection(a.data_dir);
  if (!o) return fail(o.error());
  if (auto st = o->db->revoke_api_key(a.name); !st) return fail(st.error());
  std::printf("API key '%s' revoked\n", a.name.c_str());
  return 0;
}

}  // namespace

void register_keys(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<KeysArgs>();
  auto* keys = app.add_subcommand("keys", "Master key, tenant data keys and API keys");
  keys->require_subcommand(1);

  auto* init = keys->add_subcommand(
      "init",
      "Create the key store. Master key: ENCLAVE_MASTER_KEY (hex), ENCLAVE_MASTER_KEY_FILE or "
      "ENCLAVE_PASSPHRASE; without them <data-dir>/keys/master.key when it exists; else a new "
      "passphrase, typed twice on the terminal");
  init->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  init->add_option("--kdf", args->kdf, "argon2id (default) or pbkdf2 (FIPS-friendly)")
      ->check(CLI::IsMember({"argon2id", "pbkdf2"}))
      ->capture_default_str();
  init->callback([args, &exit_code] { exit_code = run_init(*args); });

  auto* rotate =
      keys->add_subcommand("rotate",
                           "Re-wrap all keys under a new master key (ENCLAVE_NEW_PASSPHRASE or "
                           "ENCLAVE_NEW_MASTER_KEY, or a prompt); data is not re-encrypted");
  rotate->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  rotate->add_option("--kdf", args->kdf, "KDF for the new passphrase")
      ->check(CLI::IsMember({"argon2id", "pbkdf2"}))
      ->capture_default_str();
  rotate->callback([args, &exit_code] { exit_code = run_rotate(*args); });
  rotate->footer(kMasterKeyHelp);

  auto* create =
      keys->add_subcommand("api-create", "Create an API key for a tenant (printed once)");
  create->add_option("NAME", args->name, "Key name")->required();
  create->add_option("--tenant", args->tenant, "Tenant the key belongs to")->required();
  create->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  create->callback([args, &exit_code] { exit_code = run_api_create(*args); });
  create->footer(kMasterKeyHelp);

  auto* list = keys->add_subcommand("api-list", "List API keys (names and ids, never the keys)");
  list->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  list->callback([args, &exit_code] { exit_code = run_api_list(*args); });
  list->footer(kMasterKeyHelp);

  auto* revoke = keys->add_subcommand("api-revoke", "Revoke an API key");
  revoke->add_option("NAME", args->name, "Key name")->required();
  revoke->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  revoke->callback([args, &exit_code] { exit_code = run_api_revoke(*args); });
  revoke->footer(kMasterKeyHelp);
}

}  // namespace enclave::cli
