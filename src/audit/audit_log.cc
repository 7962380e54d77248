#include "audit/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "audit/entry.h"
#include "crypto/file_util.h"

namespace enclave::audit {
namespace fs = std::filesystem;
namespace {

int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Error io_error(const std::string& what, const fs::path& path) {
  return make_error(ErrorCode::kIo,
                    "audit log: " + what + " " + path.string() + ": " + std::strerror(errno));
}

fs::path file_for_index(const fs::path& dir, uint64_t index) {
  char name[64];
  std::snprintf(name, sizeof(name), "%s%06llu%s", kAuditFilePrefix,
                static_cast<unsigned long long>(index), kAuditFileSuffix);
  return dir / name;
}

uint64_t index_of(const fs::path& file) {
  std::string stem = file.stem().string();
  return std::strtoull(stem.c_str() + std::strlen(kAuditFilePrefix), nullptr, 10);
}

Status write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot append to", path);
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return Status::ok();
}

}  // namespace

Result<FsyncPolicy> parse_fsync_policy(std::string_view text) {
  if (text == "always") return FsyncPolicy::kAlways;
  if (text == "batch") return FsyncPolicy::kBatch;
  if (text == "never") return FsyncPolicy::kNever;
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown fsync policy '" + std::string(text) + "'; use always, batch or never");
}

const char* fsync_policy_name(FsyncPolicy p) {
  switch (p) {
    case FsyncPolicy::kAlways:
      return "always";
    case FsyncPolicy::kBatch:
      return "batch";
    case FsyncPolicy::kNever:
      return "never";
  }
  return "?";
}

std::vector<fs::path> list_audit_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(kAuditFilePrefix, 0) == 0 && e.path().extension() == kAuditFileSuffix) {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct AuditLog::Impl {
  AuditOptions opt;
  crypto::SecretBytes key;

  mutable std::mutex mu;  // guards everything below except the sync state
  int fd = -1;
  fs::path path;
  uint64_t file_index = 0;
  uint64_t file_size = 0;
  uint64_t seq = 0;
  std::string last_hash;
  bool dirty = false;

  std::mutex sync_mu;  // serialises fsyncs; lock order: sync_mu then mu
  uint64_t synced_seq = 0;

  std::thread batch_thread;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;

  ~Impl() {
    if (batch_thread.joinable()) {
      {
        std::lock_guard lock(stop_mu);
        stopping = true;
      }
      stop_cv.notify_all();
      batch_thread.join();
    }
    if (fd >= 0) {
      if (opt.fsync != FsyncPolicy::kNever) ::fdatasync(fd);
      ::close(fd);
    }
  }

  Status open_file(uint64_t index) {
    path = file_for_index(opt.dir, index);
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return io_error("cannot open", path);
    struct stat st {};
    ::fstat(fd, &st);
    file_size = static_cast<uint64_t>(st.st_size);
    file_index = index;
    return crypto::fsync_dir(opt.dir);
  }

  // Finds the last complete entry on disk, cutting off a torn tail. Returns torn byte count.
  Result<uint64_t> recover() {
    auto files = list_audit_files(opt.dir);
    uint64_t torn = 0;
    last_hash = std::string(kGenesisHash);
    seq = 0;
    for (size_t i = files.size(); i-- > 0;) {
      ENCLAVE_ASSIGN_OR_RETURN(std::string text, crypto::read_file(files[i]));
      size_t end = text.size();
      if (end > 0 && text[end - 1] != '\n') {
        size_t cut = text.rfind('\n');
        cut = cut == std::string::npos ? 0 : cut + 1;
        if (i == files.size() - 1) {
          // Only the newest file can have a torn tail (a crash mid-write).
          torn = end - cut;
          if (::truncate(files[i].c_str(), static_cast<off_t>(cut)) != 0) {
            return io_error("cannot cut torn tail of", files[i]);
          }
          text.resize(cut);
        } else {
          return make_error(ErrorCode::kCorruptData,
                            "audit file " + files[i].string() +
                                " ends mid-line but is not the newest file; run `enclave audit "
                                "verify` and move the damaged files aside");
        }
      }
      if (text.empty()) continue;
      size_t start = text.rfind('\n', text.size() - 2);
      start = start == std::string::npos ? 0 : start + 1;
      std::string_view last(text.data() + start, text.size() - 1 - start);
      ParsedLine p = parse_line(last, &key);
      if (!p.json_ok || !p.hmac_ok) {
        return make_error(ErrorCode::kCorruptData,
                          "the last audit entry in " + files[i].string() +
                              " does not verify under the audit key; run `enclave audit verify` "
                              "and move the damaged file aside before appending");
      }
      seq = p.seq;
      last_hash = line_hash(last);
      break;
    }
    ENCLAVE_TRY_STATUS(open_file(files.empty() ? 1 : index_of(files.back())));
    return torn;
  }

  // Appends one entry under `mu`; returns its seq.
  Result<uint64_t> append_locked(boost::json::object body_fields, std::string_view type) {
    std::lock_guard lock(mu);
    int64_t now = opt.now_ms();
    boost::json::object obj;
    obj["v"] = 1;
    obj["seq"] = seq + 1;
    obj["ts"] = format_rfc3339_ms(now);
    obj["ts_ms"] = now;
    obj["type"] = type;
    for (auto& kv : body_fields) obj[kv.key()] = std::move(kv.value());
    obj["prev"] = last_hash;
    ENCLAVE_ASSIGN_OR_RETURN(std::string line, seal_line(boost::json::serialize(obj), key));
    std::string hash = line_hash(line);
    line += '\n';
    if (file_size > 0 && file_size + line.size() > opt.max_file_bytes) {
      // Rotate: make the old file durable, then continue the chain in the next one.
      if (opt.fsync != FsyncPolicy::kNever && ::fdatasync(fd) != 0) {
        return io_error("cannot fsync", path);
      }
      ::close(fd);
      fd = -1;
      ENCLAVE_TRY_STATUS(open_file(file_index + 1));
    }
    ENCLAVE_TRY_STATUS(write_all(fd, line, path));
    file_size += line.size();
    seq += 1;
    last_hash = std::move(hash);
    dirty = true;
    return seq;
  }

  // Group commit: one fdatasync covers every entry written before it started.
  Status sync_through(uint64_t target_seq) {
    std::lock_guard sl(sync_mu);
    if (synced_seq >= target_seq) return Status::ok();
    int dup_fd;
    uint64_t upto;
    {
      std::lock_guard lock(mu);
      if (!dirty) {
        synced_seq = std::max(synced_seq, seq);
        return Status::ok();
      }
      dup_fd = ::dup(fd);  // rotation may close `fd` while we sync
      upto = seq;
      dirty = false;
    }
    if (dup_fd < 0) return io_error("cannot dup", path);
    int rc = ::fdatasync(dup_fd);
    ::close(dup_fd);
    if (rc != 0) {
      std::lock_guard lock(mu);
      dirty = true;
      return io_error("cannot fsync", path);
    }
    synced_seq = upto;
    return Status::ok();
  }

  Result<uint64_t> append(boost::json::object body, std::string_view type) {
    ENCLAVE_ASSIGN_OR_RETURN(uint64_t s, append_locked(std::move(body), type));
    if (opt.fsync == FsyncPolicy::kAlways) ENCLAVE_TRY_STATUS(sync_through(s));
    return s;
  }

  void batch_loop() {
    std::unique_lock lock(stop_mu);
    while (!stopping) {
      stop_cv.wait_for(lock, std::chrono::milliseconds(opt.batch_interval_ms));
      lock.unlock();
      uint64_t target;
      {
        std::lock_guard l(mu);
        target = seq;
      }
      (void)sync_through(target);
      lock.lock();
    }
  }
};

AuditLog::AuditLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AuditLog::~AuditLog() = default;

Result<std::unique_ptr<AuditLog>> AuditLog::open(AuditOptions options, crypto::SecretBytes key) {
  if (key.size() < 16) {
    return make_error(ErrorCode::kInvalidArgument, "audit key must be at least 128 bits");
  }
  if (Status st = crypto::create_private_dirs(options.dir); !st) {
    return make_error(ErrorCode::kIo, "cannot create audit directory: " + st.error().message);
  }
  if (!options.now_ms) options.now_ms = system_now_ms;
  if (options.batch_interval_ms == 0) options.batch_interval_ms = 1;
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  impl->key = std::move(key);
  ENCLAVE_ASSIGN_OR_RETURN(uint64_t torn, impl->recover());
  impl->synced_seq = impl->seq;
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(impl)));
  if (torn > 0) {
    ENCLAVE_TRY_STATUS(
        log->append_system("torn_tail_recovered", {{"bytes_discarded", std::to_string(torn)}}));
  }
  if (log->impl_->opt.fsync == FsyncPolicy::kBatch) {
    Impl* raw = log->impl_.get();
    raw->batch_thread = std::thread([raw] { raw->batch_loop(); });
  }
  return log;
}

Result<std::unique_ptr<AuditLog>> open_audit_log(AuditOptions options,
                                                 const crypto::KeyStore& keys) {
  ENCLAVE_ASSIGN_OR_RETURN(crypto::SecretBytes key, keys.system_key(crypto::SystemKey::kAudit));
  return AuditLog::open(std::move(options), std::move(key));
}

Result<uint64_t> AuditLog::append_request(const RequestAudit& r) {
  boost::json::object o;
  o["request_id"] = r.request_id;
  o["key_name"] = r.key_name;
  o["tenant"] = r.tenant;
  o["route"] = r.route;
  o["policy"] = r.policy;
  o["model"] = r.model;
  o["model_version"] = r.model_version;
  boost::json::object sens;
  for (const auto& s : r.sensitivity) sens[s.category] = s.count;
  o["sensitivity"] = std::move(sens);
  o["prompt_tokens"] = r.prompt_tokens;
  o["completion_tokens"] = r.completion_tokens;
  o["latency_ms"] = r.latency_ms;
  o["outcome"] = r.outcome;
  o["http_status"] = r.http_status;
  return impl_->append(std::move(o), "request");
}

Result<uint64_t> AuditLog::append_admin(const AdminAudit& r) {
  boost::json::object o;
  o["action"] = r.action;
  o["actor"] = r.actor;
  o["tenant"] = r.tenant;
  boost::json::object details;
  for (const auto& [k, v] : r.fields) details[k] = v;
  o["details"] = std::move(details);
  return impl_->append(std::move(o), "admin");
}

Result<uint64_t> AuditLog::append_system(
    std::string_view event, const std::vector<std::pair<std::string, std::string>>& fields) {
  boost::json::object o;
  o["event"] = event;
  boost::json::object details;
  for (const auto& [k, v] : fields) details[k] = v;
  o["details"] = std::move(details);
  return impl_->append(std::move(o), "system");
}

Status AuditLog::sync() {
  return impl_->sync_through(last_seq());
}

uint64_t AuditLog::last_seq() const {
  std::lock_guard lock(impl_->mu);
  return impl_->seq;
}

fs::path AuditLog::current_file() const {
  std::lock_guard lock(impl_->mu);
  return impl_->path;
}

}  // namespace enclave::audit
