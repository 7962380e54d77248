// Result<T>: the error-as-value type used at every module boundary (std::expected-shaped).
#pragma once

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace enclave {

// Error codes drive the HTTP status mapping in api/ and the CLI exit codes.
enum class ErrorCode {
  kInvalidArgument,    // bad user input (CLI flag, request field): 400 / exit 2
  kNotFound,           // missing file, model, tensor, key: 404 / exit 1
  kCorruptData,        // malformed file or message (GGUF, ciphertext, audit line): exit 1
  kUnsupported,        // valid but not implemented (type, architecture): exit 1
  kOutOfRange,         // context overflow, size limits: 400
  kPermissionDenied,   // auth / policy: 403
  kUnauthenticated,    // missing / invalid key: 401
  kResourceExhausted,  // queue full: 429
  kUnavailable,        // backend down / fail-closed: 503
  kAlreadyExists,      // refuse to overwrite
  kIo,                 // OS-level I/O failure
  kInternal,           // bug: 500
};

const char* error_code_name(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // what, where, how to fix; never secrets

  Error() = default;
  Error(ErrorCode c, std::string m) : code(c), message(std::move(m)) {}
};

template <class T>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!has_value());
    return std::get<1>(v_);
  }
  Error& error() {
    assert(!has_value());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void> equivalent.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  static Status ok() { return Status(); }
  bool has_value() const { return ok_; }
  bool is_ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

inline Error make_error(ErrorCode code, std::string message) {
  return Error(code, std::move(message));
}

}  // namespace enclave

// TRY(expr): propagate an error from a Result/Status-returning expression.
#define ENCLAVE_CONCAT_INNER(a, b) a##b
#define ENCLAVE_CONCAT(a, b) ENCLAVE_CONCAT_INNER(a, b)
#define ENCLAVE_TRY_STATUS(expr)                              \
  do {                                                        \
    auto&& _enclave_st = (expr);                              \
    if (!_enclave_st.has_value()) return _enclave_st.error(); \
  } while (0)
// ASSIGN_OR_RETURN(lhs, expr): lhs = value of expr, or return its error.
#define ENCLAVE_ASSIGN_OR_RETURN(lhs, expr) \
  ENCLAVE_ASSIGN_OR_RETURN_IMPL(ENCLAVE_CONCAT(_enclave_r, __LINE__), lhs, expr)
#define ENCLAVE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.has_value()) return tmp.error();           \
  lhs = std::move(tmp).value()
