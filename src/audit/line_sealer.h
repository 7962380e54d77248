// LineSealer: the writer's HMAC and chain hash, keyed once. seal_line()/line_hash() (entry.h)
// fetch the algorithms and set up the key on every call (OpenSSL 3 looks the implementation up
// each time), which was most of an entry's cost; a sealer keeps the keyed HMAC context and the
// fetched digest and only re-initialises them. Same bytes out as seal_line()/line_hash(): the
// line format does not change. One sealer per writer; not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"
#include "crypto/secret.h"

namespace enclave::audit {

class LineSealer {
 public:
  static Result<LineSealer> create(const crypto::SecretBytes& key);
  ~LineSealer();
  LineSealer(LineSealer&&) noexcept;
  LineSealer& operator=(LineSealer&&) noexcept;

  // `line` holds a serialized JSON object without the hmac member; on success it becomes the
  // complete line (as seal_line() returns it): ,"hmac":"<hex>" inserted before the closing brace.
  Status seal(std::string& line);
  // Writes the lowercase hex SHA-256 of `line` (64 characters) into `hex`, replacing it.
  Status hash_hex(std::string_view line, std::string& hex);

 private:
  struct State;
  explicit LineSealer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Appends the lowercase hex of `bytes` to `out`.
void append_hex(std::string& out, const unsigned char* bytes, size_t size);

}  // namespace enclave::audit
