#include "audit/line_sealer.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

namespace enclave::audit {
namespace {

constexpr std::string_view kHmacPrefix = ",\"hmac\":\"";
constexpr size_t kDigestBytes = 32;

Error openssl_error(const char* what) {
  return make_error(ErrorCode::kInternal,
                    std::string("audit log: ") + what + " failed in OpenSSL (libcrypto)");
}

}  // namespace

struct LineSealer::State {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* mac_ctx = nullptr;  // keyed once; EVP_MAC_init with no key restarts it
  EVP_MD* sha256 = nullptr;
  EVP_MD_CTX* md_ctx = nullptr;

  ~State() {
    EVP_MD_CTX_free(md_ctx);
    EVP_MD_free(sha256);
    EVP_MAC_CTX_free(mac_ctx);
    EVP_MAC_free(mac);
  }
};

void append_hex(std::string& out, const unsigned char* bytes, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  size_t at = out.size();
  out.resize(at + 2 * size);
  for (size_t i = 0; i < size; ++i) {
    out[at + 2 * i] = kDigits[bytes[i] >> 4];
    out[at + 2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
}

LineSealer::LineSealer(std::unique_ptr<State> state) : state_(std::move(state)) {}
LineSealer::~LineSealer() = default;
LineSealer::LineSealer(LineSealer&&) noexcept = default;
LineSealer& LineSealer::operator=(LineSealer&&) noexcept = default;

Result<LineSealer> LineSealer::create(const crypto::SecretBytes& key) {
  auto s = std::make_unique<State>();
  s->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (s->mac == nullptr) return openssl_error("fetching HMAC");
  s->mac_ctx = EVP_MAC_CTX_new(s->mac);
  if (s->mac_ctx == nullptr) return openssl_error("creating the HMAC context");
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(s->mac_ctx, key.data(), key.size(), params) != 1) {
    return openssl_error("keying HMAC-SHA-256");
  }
  s->sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (s->sha256 == nullptr) return openssl_error("fetching SHA-256");
  s->md_ctx = EVP_MD_CTX_new();
  if (s->md_ctx == nullptr) return openssl_error("creating the SHA-256 context");
  return LineSealer(std::move(s));
}

Status LineSealer::seal(std::string& line) {
  if (line.size() < 2 || line.back() != '}') {
    return make_error(ErrorCode::kInternal, "audit entry body is not a JSON object");
  }
  unsigned char mac[kDigestBytes];
  size_t mac_size = 0;
  // No key: HMAC restarts from the key schedule set in create() (no re-keying, no fetch).
  if (EVP_MAC_init(state_->mac_ctx, nullptr, 0, nullptr) != 1 ||
      EVP_MAC_update(state_->mac_ctx, reinterpret_cast<const unsigned char*>(line.data()),
                     line.size()) != 1 ||
      EVP_MAC_final(state_->mac_ctx, mac, &mac_size, sizeof(mac)) != 1 ||
      mac_size != kDigestBytes) {
    return openssl_error("HMAC-SHA-256 of an entry");
  }
  line.pop_back();
  line += kHmacPrefix;
  append_hex(line, mac, mac_size);
  line += "\"}";
  return Status::ok();
}

Status LineSealer::hash_hex(std::string_view line, std::string& hex) {
  unsigned char digest[kDigestBytes];
  unsigned int digest_size = 0;
  if (EVP_DigestInit_ex2(state_->md_ctx, state_->sha256, nullptr) != 1 ||
      EVP_DigestUpdate(state_->md_ctx, line.data(), line.size()) != 1 ||
      EVP_DigestFinal_ex(state_->md_ctx, digest, &digest_size) != 1 ||
      digest_size != kDigestBytes) {
    return openssl_error("SHA-256 of an entry");
  }
  hex.clear();
  append_hex(hex, digest, digest_size);
  return Status::ok();
}

}  // namespace enclave::audit
