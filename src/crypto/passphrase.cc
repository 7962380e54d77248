#include "crypto/passphrase.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace enclave::crypto {
namespace {

// Reads one line from the terminal with echo disabled; the buffer is wiped by SecretBytes.
Result<SecretBytes> prompt_tty(const char* prompt) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return make_error(ErrorCode::kNotFound, "no terminal to prompt on");
  }
  termios old_tio{};
  bool have_tio = tcgetattr(fd, &old_tio) == 0;
  if (have_tio) {
    termios t = old_tio;
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(fd, TCSAFLUSH, &t);
  }
  (void)!::write(fd, prompt, std::strlen(prompt));
  SecretBytes buf(1024);
  size_t n = 0;
  char c;
  while (n < buf.size() && ::read(fd, &c, 1) == 1 && c != '\n')
    buf.data()[n++] = static_cast<uint8_t>(c);
  c = 0;
  if (have_tio) tcsetattr(fd, TCSAFLUSH, &old_tio);
  (void)!::write(fd, "\n", 1);
  ::close(fd);
  buf.shrink(n);
  return buf;
}

}  // namespace

Result<SecretBytes> read_secret(const char* env_var, const char* prompt, bool confirm) {
  if (const char* v = std::getenv(env_var); v && *v) return SecretBytes::from_string(v);
  if (!isatty(STDIN_FILENO)) {
    return make_error(ErrorCode::kNotFound, std::string("set ") + env_var +
                                                " (no terminal to prompt for the passphrase)");
  }
  ENCLAVE_ASSIGN_OR_RETURN(SecretBytes first, prompt_tty(prompt));
  if (first.empty()) return make_error(ErrorCode::kInvalidArgument, "empty passphrase");
  if (confirm) {
    ENCLAVE_ASSIGN_OR_RETURN(SecretBytes second, prompt_tty("Repeat: "));
    if (first.size() != second.size() ||
        std::memcmp(first.data(), second.data(), first.size()) != 0) {
      return make_error(ErrorCode::kInvalidArgument, "passphrases do not match");
    }
  }
  return first;
}

Result<MasterKeySource> master_key_source_interactive(bool confirm) {
  auto env = MasterKeySource::from_environment();
  if (env) return env;
  if (env.error().code != ErrorCode::kNotFound) return env.error();
  ENCLAVE_ASSIGN_OR_RETURN(SecretBytes pass, read_secret(kEnvPassphrase, "Passphrase: ", confirm));
  return MasterKeySource::passphrase(std::move(pass));
}

}  // namespace enclave::crypto
