#include "crypto/keystore.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <sstream>

#include "crypto/file_util.h"
#include "crypto/primitives.h"

namespace enclave::crypto {
namespace fs = std::filesystem;
namespace {

constexpr const char* kMetaFormat = "enclave-keystore-1";
constexpr const char* kWrappedFormat = "enclave-wrapped-key-1";
constexpr const char* kCheckLabel = "enclave-keystore-check-v1";

using Fields = std::map<std::string, std::string>;

Fields parse_fields(const std::string& text) {
  Fields out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

std::string field(const Fields& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? std::string() : it->second;
}

Result<uint32_t> parse_u32(const Fields& f, const std::string& key, const fs::path& where) {
  std::string v = field(f, key);
  char* end = nullptr;
  unsigned long n = std::strtoul(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n > 0xffffffffUL) {
    return make_error(ErrorCode::kCorruptData,
                      "key store " + where.string() + ": field '" + key + "' is missing or bad");
  }
  return static_cast<uint32_t>(n);
}

Result<std::string> key_check(const SecretBytes& master) {
  ENCLAVE_ASSIGN_OR_RETURN(Sha256Digest mac, hmac_sha256(master.span(), as_bytes(kCheckLabel)));
  return hex_encode(mac);
}

Result<SecretBytes> master_from_source(const MasterKeySource& source, const KdfParams* kdf) {
  if (source.kind == MasterKeySource::Kind::kRawKey) {
    if (source.secret.size() != kKeyBytes) {
      return make_error(ErrorCode::kInvalidArgument, "master key must be 32 bytes (64 hex)");
    }
    return source.secret.clone();
  }
  if (!kdf) return make_error(ErrorCode::kInvalidArgument, "passphrase source needs KDF params");
  return derive_key(source.secret, *kdf);
}

std::string meta_text(const MasterKeySource& source, const KdfParams* kdf,
                      const std::string& check) {
  std::ostringstream o;
  o << "format=" << kMetaFormat << "\n";
  if (source.kind == MasterKeySource::Kind::kRawKey) {
    o << "source=raw\n";
  } else {
    o << "source=passphrase\n";
    o << "kdf=" << (kdf->kind == KdfKind::kArgon2id ? "argon2id" : "pbkdf2") << "\n";
    o << "salt=" << hex_encode(kdf->salt) << "\n";
    if (kdf->kind == KdfKind::kArgon2id) {
      o << "argon2_time_cost=" << kdf->argon2_time_cost << "\n";
      o << "argon2_memory_kib=" << kdf->argon2_memory_kib << "\n";
      o << "argon2_parallelism=" << kdf->argon2_parallelism << "\n";
    } else {
      o << "pbkdf2_iterations=" << kdf->pbkdf2_iterations << "\n";
    }
  }
  o << "check=" << check << "\n";
  return o.str();
}

Result<KdfParams> kdf_from_meta(const Fields& f, const fs::path& where) {
  KdfParams p;
  ENCLAVE_ASSIGN_OR_RETURN(p.kind, parse_kdf_name(field(f, "kdf")));
  ENCLAVE_ASSIGN_OR_RETURN(p.salt, hex_decode(field(f, "salt")));
  if (p.kind == KdfKind::kArgon2id) {
    ENCLAVE_ASSIGN_OR_RETURN(p.argon2_time_cost, parse_u32(f, "argon2_time_cost", where));
    ENCLAVE_ASSIGN_OR_RETURN(p.argon2_memory_kib, parse_u32(f, "argon2_memory_kib", where));
    ENCLAVE_ASSIGN_OR_RETURN(p.argon2_parallelism, parse_u32(f, "argon2_parallelism", where));
  } else {
    ENCLAVE_ASSIGN_OR_RETURN(p.pbkdf2_iterations, parse_u32(f, "pbkdf2_iterations", where));
  }
  return p;
}

std::string system_name(SystemKey k) {
  return k == SystemKey::kAudit ? "audit" : "apikey";
}

// Every wrapped key file under the store, with the logical name bound into its AAD.
std::vector<std::pair<fs::path, std::string>> all_key_files(const fs::path& dir) {
  std::vector<std::pair<fs::path, std::string>> out;
  for (const char* sub : {"tenants", "system"}) {
    fs::path d = dir / sub;
    std::error_code ec;
    if (!fs::is_directory(d, ec)) continue;
    for (const auto& e : fs::directory_iterator(d, ec)) {
      if (e.path().extension() != ".key") continue;
      std::string prefix = std::string(sub) == "tenants" ? "tenant:" : "system:";
      out.emplace_back(e.path(), prefix + e.path().stem().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Finishes (or undoes) a rotation interrupted by a crash. master.meta is the commit point.
Status recover_rotation(const fs::path& dir) {
  std::error_code ec;
  bool uncommitted = fs::exists(dir / "master.meta.new", ec);
  for (const char* sub : {"tenants", "system"}) {
    fs::path d = dir / sub;
    if (!fs::is_directory(d, ec)) continue;
    for (const auto& e : fs::directory_iterator(d, ec)) {
      if (e.path().extension() != ".new") continue;
      if (uncommitted) {
        fs::remove(e.path(), ec);
      } else {
        fs::path target = e.path();
        target.replace_extension();
        fs::rename(e.path(), target, ec);
        if (ec) return make_error(ErrorCode::kIo, "cannot finish key rotation in " + d.string());
      }
    }
    ENCLAVE_TRY_STATUS(fsync_dir(d));
  }
  if (uncommitted) fs::remove(dir / "master.meta.new", ec);
  return Status::ok();
}

}  // namespace

MasterKeySource MasterKeySource::passphrase(SecretBytes passphrase) {
  MasterKeySource s;
  s.kind = Kind::kPassphrase;
  s.secret = std::move(passphrase);
  return s;
}

Result<MasterKeySource> MasterKeySource::raw_key_hex(std::string_view hex) {
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) {
    hex.remove_suffix(1);
  }
  if (hex.size() != 2 * kKeyBytes) {
    return make_error(ErrorCode::kInvalidArgument,
                      "master key must be 64 hex characters (256 bits)");
  }
  MasterKeySource s;
  s.kind = Kind::kRawKey;
  ENCLAVE_ASSIGN_OR_RETURN(s.secret, hex_decode_secret(hex));
  return s;
}

Result<MasterKeySource> MasterKeySource::from_key_file(const fs::path& path) {
  ENCLAVE_ASSIGN_OR_RETURN(std::string text, read_file(path));
  auto src = raw_key_hex(text);
  secure_wipe(text.data(), text.size());
  if (!src) {
    return make_error(ErrorCode::kInvalidArgument,
                      "master key file " + path.string() + ": " + src.error().message);
  }
  return std::move(src).value();
}

Result<MasterKeySource> MasterKeySource::from_environment() {
  if (const char* hex = std::getenv(kEnvMasterKey); hex && *hex) return raw_key_hex(hex);
  if (const char* file = std::getenv(kEnvMasterKeyFile); file && *file) {
    return from_key_file(file);
  }
  if (const char* pass = std::getenv(kEnvPassphrase); pass && *pass) {
    return passphrase(SecretBytes::from_string(pass));
  }
  return make_error(ErrorCode::kNotFound,
                    "no master key: set ENCLAVE_PASSPHRASE, ENCLAVE_MASTER_KEY (hex) or "
                    "ENCLAVE_MASTER_KEY_FILE");
}

Result<MasterKeySource> MasterKeySource::load_or_create_key_file(const fs::path& path,
                                                                 bool* created) {
  if (created) *created = false;
  std::error_code ec;
  if (fs::exists(path, ec)) return from_key_file(path);
  if (path.has_parent_path()) {
    if (Status st = create_private_dirs(path.parent_path()); !st) {
      return make_error(ErrorCode::kIo,
                        st.error().message +
                            " (for the master key file); check permissions or set " +
                            kEnvMasterKeyFile);
    }
    fs::permissions(path.parent_path(), fs::perms::owner_all, fs::perm_options::replace, ec);
  }
  ENCLAVE_ASSIGN_OR_RETURN(SecretBytes key, random_key());
  std::string hex = hex_encode(std::span<const uint8_t>(key.data(), key.size()));
  Status st = write_file_durable(path, hex + "\n");
  secure_wipe(hex.data(), hex.size());
  ENCLAVE_TRY_STATUS(st);
  if (created) *created = true;
  MasterKeySource s;
  s.kind = Kind::kRawKey;
  s.secret = std::move(key);
  return s;
}

Status validate_tenant_name(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '-' && name[0] != '_';
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_');
  }
  if (!ok) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tenant name must be 1-64 characters of a-z, 0-9, '-' or '_' and start "
                      "with a letter or digit");
  }
  return Status::ok();
}

KeyStore::KeyStore(fs::path dir, SecretBytes master, std::string fingerprint)
    : dir_(std::move(dir)), master_(std::move(master)), fingerprint_(std::move(fingerprint)) {}

bool KeyStore::exists(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / "master.meta", ec);
}

Result<std::unique_ptr<KeyStore>> KeyStore::create(const fs::path& dir,
                                                   const MasterKeySource& source,
                                                   const KdfParams* kdf, KeyStoreOptions options) {
  if (exists(dir)) {
    return make_error(ErrorCode::kAlreadyExists,
                      "a key store already exists in " + dir.string() +
                          "; refusing to overwrite it (use `enclave keys rotate` instead)");
  }
  if (source.kind == MasterKeySource::Kind::kPassphrase) {
    if (!kdf) return make_error(ErrorCode::kInvalidArgument, "passphrase needs KDF parameters");
    if (!options.allow_weak_kdf) ENCLAVE_TRY_STATUS(check_kdf_strength(*kdf));
  }
  std::error_code ec;
  for (const fs::path& sub : {dir / "tenants", dir / "system"}) {
    if (Status st = create_private_dirs(sub); !st) {
      return make_error(ErrorCode::kIo, "cannot create key store directory: " + st.error().message);
    }
  }
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);

  ENCLAVE_ASSIGN_OR_RETURN(SecretBytes master, master_from_source(source, kdf));
  ENCLAVE_ASSIGN_OR_RETURN(std::string check, key_check(master));
  std::string fp = check.substr(0, 16);
  std::unique_ptr<KeyStore> ks(new KeyStore(dir, std::move(master), fp));
  for (SystemKey k : {SystemKey::kAudit, SystemKey::kApiKey}) {
    ENCLAVE_ASSIGN_OR_RETURN(SecretBytes key, random_key());
    std::string name = "system:" + system_name(k);
    ENCLAVE_TRY_STATUS(
        ks->write_wrapped(dir / "system" / (system_name(k) + ".key"), name, key, ks->master_, fp));
  }
  // master.meta last: a store without it is treated as not initialised.
  ENCLAVE_TRY_STATUS(write_file_durable(dir / "master.meta", meta_text(source, kdf, check)));
  return ks;
}

Result<std::unique_ptr<KeyStore>> KeyStore::open(const fs::path& dir, const MasterKeySource& source,
                                                 KeyStoreOptions options) {
  if (!exists(dir)) {
    return make_error(ErrorCode::kNotFound,
                      "no key store in " + dir.string() + "; create one with `enclave keys init`");
  }
  ENCLAVE_TRY_STATUS(recover_rotation(dir));
  ENCLAVE_ASSIGN_OR_RETURN(std::string text, read_file(dir / "master.meta"));
  Fields meta = parse_fields(text);
  if (field(meta, "format") != kMetaFormat) {
    return make_error(ErrorCode::kCorruptData,
                      "key store " + dir.string() + ": unknown format in master.meta");
  }
  bool wants_passphrase = field(meta, "source") == "passphrase";
  if (wants_passphrase != (source.kind == MasterKeySource::Kind::kPassphrase)) {
    return make_error(ErrorCode::kInvalidArgument,
                      wants_passphrase ? "key store " + dir.string() +
                                             " is protected by a passphrase; set ENCLAVE_PASSPHRASE"
                                       : "key store " + dir.string() +
                                             " uses a raw master key; set ENCLAVE_MASTER_KEY or "
                                             "ENCLAVE_MASTER_KEY_FILE");
  }
  std::optional<KdfParams> kdf;
  if (wants_passphrase) {
    ENCLAVE_ASSIGN_OR_RETURN(kdf, kdf_from_meta(meta, dir / "master.meta"));
    if (!options.allow_weak_kdf) ENCLAVE_TRY_STATUS(check_kdf_strength(*kdf));
  }
  ENCLAVE_ASSIGN_OR_RETURN(SecretBytes master, master_from_source(source, kdf ? &*kdf : nullptr));
  ENCLAVE_ASSIGN_OR_RETURN(std::string check, key_check(master));
  ENCLAVE_ASSIGN_OR_RETURN(std::vector<uint8_t> stored, hex_decode(field(meta, "check")));
  ENCLAVE_ASSIGN_OR_RETURN(std::vector<uint8_t> computed, hex_decode(check));
  if (!constant_time_equal(stored, computed)) {
    return make_error(ErrorCode::kUnauthenticated,
                      "wrong passphrase or master key for key store " + dir.string() +
                          " (key check failed); nothing was decrypted");
  }
  std::string fp = check.substr(0, 16);
  return std::unique_ptr<KeyStore>(new KeyStore(dir, std::move(master), fp));
}

Status KeyStore::write_wrapped(const fs::path& path, const std::string& name,
                               const SecretBytes& key, const SecretBytes& master,
                               const std::string& fingerprint) const {
  std::string aad = std::string(kWrappedFormat) + "|" + name;
  ENCLAVE_ASSIGN_OR_RETURN(std::vector<uint8_t> wrapped,
                           aead_seal(master, key.span(), as_bytes(aad)));
  std::ostringstream o;
  o << "format=" << kWrappedFormat << "\nname=" << name << "\nmaster=" << fingerprint
    << "\nwrapped=" << hex_encode(wrapped) << "\n";
  return write_file_durable(path, o.str());
}

Result<SecretBytes> KeyStore::read_wrapped(const fs::path& path, const std::string& name) const {
  auto text = read_file(path);
  if (!text) return make_error(ErrorCode::kNotFound, "no key '" + name + "' in key store");
  Fields f = parse_fields(*text);
  if (field(f, "format") != kWrappedFormat || field(f, "name") != name) {
    return make_error(ErrorCode::kCorruptData, "key file " + path.string() + " is malformed");
  }
  ENCLAVE_ASSIGN_OR_RETURN(std::vector<uint8_t> wrapped, hex_decode(field(f, "wrapped")));
  std::string aad = std::string(kWrappedFormat) + "|" + name;
  auto key = aead_open(master_, wrapped, as_bytes(aad));
  if (!key) {
    return make_error(ErrorCode::kCorruptData,
                      "key file " + path.string() +
                          " does not unwrap under the current master key (corrupted or copied "
                          "from another key store)");
  }
  return std::move(key).value();
}

fs::path KeyStore::tenant_path(std::string_view tenant) const {
  return dir_ / "tenants" / (std::string(tenant) + ".key");
}

Status KeyStore::create_tenant_key(std::string_view tenant) {
  ENCLAVE_TRY_STATUS(validate_tenant_name(tenant));
  std::lock_guard lock(mu_);
  std::error_code ec;
  if (fs::exists(tenant_path(tenant), ec)) {
    return make_error(ErrorCode::kAlreadyExists,
                      "tenant '" + std::string(tenant) + "' already has a data key");
  }
  ENCLAVE_ASSIGN_OR_RETURN(SecretBytes key, random_key());
  return write_wrapped(tenant_path(tenant), "tenant:" + std::string(tenant), key, master_,
                       fingerprint_);
}

Result<SecretBytes> KeyStore::tenant_key(std::string_view tenant) const {
  ENCLAVE_TRY_STATUS(validate_tenant_name(tenant));
  std::lock_guard lock(mu_);
  return read_wrapped(tenant_path(tenant), "tenant:" + std::string(tenant));
}

bool KeyStore::has_tenant_key(std::string_view tenant) const {
  if (!validate_tenant_name(tenant)) return false;
  std::error_code ec;
  return fs::exists(tenant_path(tenant), ec);
}

Result<std::vector<std::string>> KeyStore::list_tenant_keys() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [path, name] : all_key_files(dir_)) {
    if (name.rfind("tenant:", 0) == 0) out.push_back(name.substr(7));
  }
  return out;
}

Status KeyStore::destroy_tenant_key(std::string_view tenant) {
  ENCLAVE_TRY_STATUS(validate_tenant_name(tenant));
  std::lock_guard lock(mu_);
  return shred_file(tenant_path(tenant));
}

Result<SecretBytes> KeyStore::system_key(SystemKey which) const {
  std::lock_guard lock(mu_);
  return read_wrapped(dir_ / "system" / (system_name(which) + ".key"),
                      "system:" + system_name(which));
}

Status KeyStore::rotate_master(const MasterKeySource& new_source, const KdfParams* new_kdf) {
  std::lock_guard lock(mu_);
  if (new_source.kind == MasterKeySource::Kind::kPassphrase && !new_kdf) {
    return make_error(ErrorCode::kInvalidArgument, "passphrase needs KDF parameters");
  }
  ENCLAVE_ASSIGN_OR_RETURN(SecretBytes new_master, master_from_source(new_source, new_kdf));
  ENCLAVE_ASSIGN_OR_RETURN(std::string check, key_check(new_master));
  std::string fp = check.substr(0, 16);
  // 1. Stage every re-wrapped key next to the old one.
  auto files = all_key_files(dir_);
  for (const auto& [path, name] : files) {
    ENCLAVE_ASSIGN_OR_RETURN(SecretBytes key, read_wrapped(path, name));
    fs::path staged = path;
    staged += ".new";
    ENCLAVE_TRY_STATUS(write_wrapped(staged, name, key, new_master, fp));
  }
  // 2. Commit: the new master.meta (written via master.meta.new so a crash before the rename
  //    rolls back).
  std::string meta = meta_text(new_source, new_kdf, check);
  ENCLAVE_TRY_STATUS(write_file_durable(dir_ / "master.meta.new", meta));
  std::error_code ec;
  fs::rename(dir_ / "master.meta.new", dir_ / "master.meta", ec);
  if (ec)
    return make_error(ErrorCode::kIo, "cannot commit master key rotation in " + dir_.string());
  ENCLAVE_TRY_STATUS(fsync_dir(dir_));
  // 3. Roll forward the staged files (open() finishes this after a crash).
  ENCLAVE_TRY_STATUS(recover_rotation(dir_));
  master_ = std::move(new_master);
  fingerprint_ = fp;
  return Status::ok();
}

std::string KeyStore::master_fingerprint() const {
  std::lock_guard lock(mu_);
  return fingerprint_;
}

}  // namespace enclave::crypto
