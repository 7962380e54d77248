#include "crypto/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace enclave::crypto {
namespace {

Error io_error(const std::string& what, const std::filesystem::path& path) {
  return make_error(ErrorCode::kIo, what + " " + path.string() + ": " + std::strerror(errno));
}

Status write_all(int fd, const char* data, size_t n, const std::filesystem::path& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write", path);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

}  // namespace

Status fsync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return io_error("cannot fsync directory", dir);
  return Status::ok();
}

Status write_file_durable(const std::filesystem::path& path, std::string_view content) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("cannot create", tmp);
  Status st = write_all(fd, content.data(), content.size(), tmp);
  if (st && ::fsync(fd) != 0) st = io_error("cannot fsync", tmp);
  ::close(fd);
  if (!st) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error("cannot rename into", path);
  return fsync_dir(path.parent_path());
}

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return make_error(ErrorCode::kNotFound, "cannot open " + path.string());
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(ErrorCode::kIo, "cannot read " + path.string());
  return ss.str();
}

Status shred_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return make_error(ErrorCode::kNotFound, "no such file " + path.string());
    return io_error("cannot open", path);
  }
  off_t size = ::lseek(fd, 0, SEEK_END);
  ::lseek(fd, 0, SEEK_SET);
  Status st;
  if (size > 0) {
    std::vector<char> zeros(static_cast<size_t>(size), 0);
    st = write_all(fd, zeros.data(), zeros.size(), path);
    if (st && ::fsync(fd) != 0) st = io_error("cannot fsync", path);
  }
  ::close(fd);
  if (!st) return st;
  if (::unlink(path.c_str()) != 0) return io_error("cannot remove", path);
  return fsync_dir(path.parent_path());
}

Status create_private_dirs(const std::filesystem::path& dir) {
  std::error_code ec;
  if (dir.empty() || std::filesystem::is_directory(dir, ec)) return Status::ok();
  const std::filesystem::path parent = dir.parent_path();
  if (!parent.empty() && parent != dir) ENCLAVE_TRY_STATUS(create_private_dirs(parent));
  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST && std::filesystem::is_directory(dir, ec)) return Status::ok();
    return io_error("cannot create directory", dir);
  }
  // mkdir applies the umask, which may have cleared owner bits too.
  if (::chmod(dir.c_str(), 0700) != 0) return io_error("cannot set mode 0700 on", dir);
  return Status::ok();
}

Status create_private_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Status::ok();
    return io_error("cannot create", path);
  }
  Status st = ::fchmod(fd, 0600) == 0 ? Status::ok() : io_error("cannot set mode 0600 on", path);
  ::close(fd);
  return st;
}

}  // namespace enclave::crypto
