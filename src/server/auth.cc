// API key hashing, storage and the authentication filter.
#include "server/auth.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

namespace enclave::server {
namespace {

constexpr size_t kSecretBytes = 32;

std::string to_hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kHex[p[i] >> 4];
    s[2 * i + 1] = kHex[p[i] & 15];
  }
  return s;
}

bool from_hex(std::string_view s, unsigned char* out, size_t n) {
  if (s.size() != n * 2) return false;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < n; ++i) {
    int hi = val(s[2 * i]);
    int lo = val(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

// Writes `data` to `path` with mode 0600 (replacing it atomically via a temp file).
Status write_private_file(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Error(ErrorCode::kIo, "cannot create " + tmp + ": " + std::strerror(errno) +
                                     "; check that the data directory is writable");
  }
  ::fchmod(fd, 0600);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return Error(ErrorCode::kIo, "cannot write " + tmp + ": " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Error(ErrorCode::kIo,
                 "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace

Result<unsigned> parse_scopes(const std::vector<std::string>& names) {
  unsigned s = 0;
  for (const std::string& n : names) {
    if (n == "chat") {
      s |= static_cast<unsigned>(Scope::kChat);
    } else if (n == "embeddings") {
      s |= static_cast<unsigned>(Scope::kEmbeddings);
    } else if (n == "admin" || n == "*") {
      s |= 7u;
    } else {
      return Error(ErrorCode::kInvalidArgument,
                   "unknown key scope '" + n + "'; use chat, embeddings or admin");
    }
  }
  return s;
}

std::string scope_names(unsigned scopes) {
  std::string out;
  auto add = [&](const char* n) {
    if (!out.empty()) out += ",";
    out += n;
  };
  if (scopes & static_cast<unsigned>(Scope::kChat)) add("chat");
  if (scopes & static_cast<unsigned>(Scope::kEmbeddings)) add("embeddings");
  if (scopes & static_cast<unsigned>(Scope::kAdmin)) add("admin");
  return out;
}

Result<std::string> generate_api_key() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    return Error(ErrorCode::kInternal, "OpenSSL RAND_bytes failed to produce a key");
  }
  static constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string key = "sk-enclave-";
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : raw) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      key += kUrl[(acc >> bits) & 63];
    }
  }
  if (bits > 0) key += kUrl[(acc << (6 - bits)) & 63];
  OPENSSL_cleanse(raw, sizeof(raw));
  return key;
}

Result<KeyStore> KeyStore::open(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return Error(ErrorCode::kIo, "cannot create data directory " + data_dir + ": " + ec.message());
  }
  std::string path = data_dir + "/server.secret";
  KeyStore ks;
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::ostringstream ss;
    ss << in.rdbuf();
    ks.set_secret(ss.str());
    if (ks.secret_.size() != kSecretBytes) {
      return Error(ErrorCode::kCorruptData,
                   path + " has " + std::to_string(ks.secret_.size()) + " bytes, expected " +
                       std::to_string(kSecretBytes) +
                       "; restore it from backup or delete it (all API keys then become invalid)");
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      ::chmod(path.c_str(), 0600);
    }
    return ks;
  }
  unsigned char raw[kSecretBytes];
  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    return Error(ErrorCode::kInternal, "OpenSSL RAND_bytes failed to produce the server secret");
  }
  ks.set_secret(std::string(reinterpret_cast<const char*>(raw), sizeof(raw)));
  OPENSSL_cleanse(raw, sizeof(raw));
  ENCLAVE_TRY_STATUS(write_private_file(path, ks.secret_));
  return ks;
}

KeyStore KeyStore::with_secret(std::string secret) {
  KeyStore ks;
  ks.set_secret(std::move(secret));
  return ks;
}

// One-shot HMAC() fetches the algorithms and keys a fresh context on every call (several
// microseconds, the largest single cost of a proxied request). Contexts keyed once are kept in a
// small pool: a request takes one, restarts it (EVP_MAC_init without a key reuses the key
// schedule: no fetch, no re-keying, no allocation) and puts it back. Duplicating the keyed
// context per request, as before, cost ~10k instructions; the pool only duplicates when every
// pooled context is in use.
class KeyStore::KeyedHmac {
 public:
  static std::shared_ptr<const KeyedHmac> create(std::string_view key) {
    auto h = std::shared_ptr<KeyedHmac>(new KeyedHmac());
    h->mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (!h->mac_) return nullptr;
    h->keyed_ = EVP_MAC_CTX_new(h->mac_);
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                           OSSL_PARAM_construct_end()};
    if (!h->keyed_ || EVP_MAC_init(h->keyed_, reinterpret_cast<const unsigned char*>(key.data()),
                                   key.size(), params) != 1) {
      return nullptr;
    }
    return h;
  }
  ~KeyedHmac() {
    for (EVP_MAC_CTX* ctx : idle_) EVP_MAC_CTX_free(ctx);
    EVP_MAC_CTX_free(keyed_);
    EVP_MAC_free(mac_);
  }
  KeyedHmac(const KeyedHmac&) = delete;
  KeyedHmac& operator=(const KeyedHmac&) = delete;

  // Thread-safe: the keyed context is only read (duplicated); each call has a context of its own.
  bool digest(std::string_view data, std::array<unsigned char, 32>& out) const {
    EVP_MAC_CTX* ctx = acquire();
    size_t len = 0;
    bool ok = ctx && EVP_MAC_init(ctx, nullptr, 0, nullptr) == 1 &&
              EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()) == 1 &&
              EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == out.size();
    release(ctx, ok);
    return ok;
  }

 private:
  static constexpr size_t kMaxIdle = 16;  // about the most io threads hashing at once

  KeyedHmac() = default;
  EVP_MAC_CTX* acquire() const {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        EVP_MAC_CTX* ctx = idle_.back();
        idle_.pop_back();
        return ctx;
      }
    }
    return EVP_MAC_CTX_dup(keyed_);
  }
  // A context that failed is not reused: its state is unknown.
  void release(EVP_MAC_CTX* ctx, bool ok) const {
    if (ctx == nullptr) return;
    if (ok) {
      std::lock_guard lock(mu_);
      if (idle_.size() < kMaxIdle) {
        idle_.push_back(ctx);
        return;
      }
    }
    EVP_MAC_CTX_free(ctx);
  }

  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* keyed_ = nullptr;
  mutable std::mutex mu_;
  mutable std::vector<EVP_MAC_CTX*> idle_;
};

void KeyStore::set_secret(std::string secret) {
  secret_ = std::move(secret);
  hmac_ = KeyedHmac::create(secret_);  // null: digest() falls back to one-shot HMAC()
}

std::array<unsigned char, 32> KeyStore::digest(std::string_view key) const {
  std::array<unsigned char, 32> out{};
  if (hmac_ && hmac_->digest(key, out)) return out;
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(key.data()), key.size(), out.data(), &len);
  return out;
}

Status KeyStore::add_key(std::string_view name, std::string_view key, unsigned scopes) {
  if (key.size() < 16) {
    return Error(
        ErrorCode::kInvalidArgument,
        "API key '" + std::string(name) +
            "' is shorter than 16 characters; use a random key (enclave serve prints one)");
  }
  Entry e;
  e.name = std::string(name);
  e.scopes = scopes;
  e.digest = digest(key);
  entries_.push_back(std::move(e));
  return Status::ok();
}

Status KeyStore::add_persistent_key(std::string_view name, std::string_view key, unsigned scopes) {
  ENCLAVE_TRY_STATUS(add_key(name, key, scopes));
  entries_.back().persist = true;
  return Status::ok();
}

Status KeyStore::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::ok();
  std::ostringstream ss;
  ss << in.rdbuf();
  std::error_code ec;
  boost::json::value v = boost::json::parse(ss.str(), ec);
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kCorruptData, "key file " + path + ": " + why);
  };
  if (ec || !v.is_object()) return bad("not a JSON object");
  const boost::json::value* keys = v.as_object().if_contains("keys");
  if (!keys || !keys->is_array()) return bad("missing \"keys\" array");
  for (const auto& k : keys->as_array()) {
    if (!k.is_object()) return bad("key entry is not an object");
    const auto& o = k.as_object();
    const auto* name = o.if_contains("name");
    const auto* dig = o.if_contains("digest");
    const auto* scopes = o.if_contains("scopes");
    if (!name || !name->is_string() || !dig || !dig->is_string() || !scopes ||
        !scopes->is_array()) {
      return bad("key entry needs name, digest and scopes");
    }
    Entry e;
    e.name = std::string(name->as_string());
    e.persist = true;
    if (!from_hex(std::string_view(dig->as_string()), e.digest.data(), e.digest.size())) {
      return bad("digest of key '" + e.name + "' is not 64 hex digits");
    }
    std::vector<std::string> names;
    for (const auto& s : scopes->as_array()) {
      if (s.is_string()) names.emplace_back(s.as_string());
    }
    ENCLAVE_ASSIGN_OR_RETURN(e.scopes, parse_scopes(names));
    entries_.push_back(std::move(e));
  }
  return Status::ok();
}

Status KeyStore::save_file(const std::string& path) const {
  boost::json::array arr;
  for (const Entry& e : entries_) {
    if (!e.persist) continue;
    boost::json::object o;
    o["name"] = e.name;
    boost::json::array scopes;
    if (e.scopes & static_cast<unsigned>(Scope::kAdmin)) {
      scopes.emplace_back("admin");
    } else {
      if (e.scopes & static_cast<unsigned>(Scope::kChat)) scopes.emplace_back("chat");
      if (e.scopes & static_cast<unsigned>(Scope::kEmbeddings)) scopes.emplace_back("embeddings");
    }
    o["scopes"] = std::move(scopes);
    o["digest"] = to_hex(e.digest.data(), e.digest.size());
    arr.push_back(std::move(o));
  }
  boost::json::object root;
  root["comment"] = "HMAC-SHA-256 digests of API keys under server.secret; keys are not stored";
  root["keys"] = std::move(arr);
  return write_private_file(path, boost::json::serialize(root) + "\n");
}

Result<KeyInfo> KeyStore::authenticate(std::string_view key) const {
  std::array<unsigned char, 32> d = digest(key);
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    // No early exit: every entry is compared, each in constant time.
    if (CRYPTO_memcmp(d.data(), e.digest.data(), d.size()) == 0 && !match) match = &e;
  }
  if (!match) {
    return Error(ErrorCode::kUnauthenticated,
                 "Incorrect API key provided. Use a key printed by `enclave serve` on first start, "
                 "one from the server config, or ENCLAVE_API_KEY.");
  }
  return KeyInfo{match->name, match->scopes};
}

FilterResult AuthFilter::apply(RequestContext& ctx) {
  if (ctx.required == Scope::kNone) return FilterResult::next();
  std::string_view auth = ctx.request.header("authorization");
  if (auth.empty()) {
    return FilterResult::respond(api::map_error(
        Error(ErrorCode::kUnauthenticated,
              "Missing API key. Send it as an HTTP header: Authorization: Bearer <key>.")));
  }
  constexpr std::string_view kBearer = "bearer ";
  bool bearer = auth.size() > kBearer.size();
  for (size_t i = 0; bearer && i < kBearer.size(); ++i) {
    bearer = std::tolower(static_cast<unsigned char>(auth[i])) == kBearer[i];
  }
  if (!bearer) {
    return FilterResult::respond(api::map_error(Error(
        ErrorCode::kUnauthenticated, "Authorization header must be of the form 'Bearer <key>'.")));
  }
  std::string_view key = auth.substr(kBearer.size());
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
  Result<KeyInfo> info = keys_->authenticate(key);
  if (!info) return FilterResult::respond(api::map_error(info.error()));
  ctx.key_name = info->name;
  ctx.key_scopes = info->scopes;
  if (ctx.required == Scope::kAnyKey) return FilterResult::next();
  unsigned need = static_cast<unsigned>(ctx.required);
  bool ok = (info->scopes & need) == need || (info->scopes & static_cast<unsigned>(Scope::kAdmin));
  if (!ok) {
    return FilterResult::respond(
        api::map_error(Error(ErrorCode::kPermissionDenied,
                             "API key '" + info->name + "' lacks the '" + scope_names(need) +
                                 "' scope needed for this endpoint.")));
  }
  return FilterResult::next();
}

}  // namespace enclave::server
