// SecretBytes: a fixed-size byte buffer for keys and passphrases that is wiped on destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace enclave::crypto {

// Owns key material. Move-only (copies would leave unwiped duplicates); clone() is explicit.
// The buffer never grows, so no reallocation leaves stale copies behind. Never print one.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size_bytes);
  SecretBytes(const uint8_t* data, size_t size_bytes);
  static SecretBytes from_string(std::string_view text);
  ~SecretBytes() { wipe(); }

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  SecretBytes clone() const { return SecretBytes(data(), size_); }

  uint8_t* data() { return buf_.get(); }
  const uint8_t* data() const { return buf_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> span() const { return {buf_.get(), size_}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(buf_.get()), size_}; }

  // Shrinks the logical size (wiping the tail), e.g. after decrypting into an oversized buffer.
  void shrink(size_t new_size_bytes);
  // Overwrites the contents with zeros (OPENSSL_cleanse) and releases the buffer.
  void wipe();

 private:
  std::unique_ptr<uint8_t[]> buf_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// Wipes an arbitrary buffer (std::string, vector) that briefly held secret bytes.
void secure_wipe(void* data, size_t size_bytes);

}  // namespace enclave::crypto
