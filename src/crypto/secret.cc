#include "crypto/secret.h"

#include <openssl/crypto.h>

#include <cstring>

namespace enclave::crypto {

SecretBytes::SecretBytes(size_t size_bytes)
    : buf_(size_bytes ? new uint8_t[size_bytes]() : nullptr),
      size_(size_bytes),
      capacity_(size_bytes) {}

SecretBytes::SecretBytes(const uint8_t* data, size_t size_bytes) : SecretBytes(size_bytes) {
  if (size_bytes) std::memcpy(buf_.get(), data, size_bytes);
}

SecretBytes SecretBytes::from_string(std::string_view text) {
  return SecretBytes(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : buf_(std::move(other.buf_)), size_(other.size_), capacity_(other.capacity_) {
  other.size_ = 0;
  other.capacity_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    wipe();
    buf_ = std::move(other.buf_);
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.size_ = 0;
    other.capacity_ = 0;
  }
  return *this;
}

void SecretBytes::shrink(size_t new_size_bytes) {
  if (new_size_bytes >= size_) return;
  OPENSSL_cleanse(buf_.get() + new_size_bytes, size_ - new_size_bytes);
  size_ = new_size_bytes;
}

void SecretBytes::wipe() {
  if (buf_) OPENSSL_cleanse(buf_.get(), capacity_);
  buf_.reset();
  size_ = 0;
  capacity_ = 0;
}

void secure_wipe(void* data, size_t size_bytes) {
  if (data && size_bytes) OPENSSL_cleanse(data, size_bytes);
}

}  // namespace enclave::crypto
