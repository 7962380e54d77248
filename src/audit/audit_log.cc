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
#include <iterator>
#include <optional>

#include "audit/entry.h"
#include "audit/line_sealer.h"
#include "audit/request_fields.h"
#include "core/background_thread.h"
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

// An object's members as serialized JSON, without the braces ("" for an empty object).
std::string members_of(const boost::json::object& body) {
  std::string text = boost::json::serialize(body);
  return text.size() > 2 ? text.substr(1, text.size() - 2) : std::string();
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
  // An entry accepted in batch/never mode, sealed and written by the writer thread. Requests
  // keep their typed record (formatting is the writer's job); admin/system entries are rare and
  // arrive as JSON.
  struct Queued {
    uint64_t seq = 0;
    int64_t ts_ms = 0;
    const char* type = "";
    std::optional<RequestAudit> request;
    boost::json::object body;
  };

  AuditOptions opt;
  crypto::SecretBytes key;
  std::optional<LineSealer> sealer;  // `key`, set up once; used under mu
  std::string fields;                // scratch for an entry's members; used under mu

  mutable std::mutex mu;  // guards the file and chain state below except the sync state
  int fd = -1;
  fs::path path;
  uint64_t file_index = 0;
  uint64_t file_size = 0;
  uint64_t seq = 0;  // last entry written to the file
  std::string last_hash;
  bool dirty = false;
  std::vector<std::string> unwritten;  // sealed lines a failed write left behind, in order

  std::mutex sync_mu;  // serialises fsyncs; lock order: sync_mu then mu
  uint64_t synced_seq = 0;

  // Batch/never mode: appends queue here; lock order: write_mu, then mu or queue_mu.
  std::mutex queue_mu;
  std::vector<Queued> queue;
  std::atomic<uint64_t> assigned_seq{0};  // last seq handed to a caller
  std::optional<Error> write_error;       // the writer's last failure, until a write succeeds
  bool writer_asleep = false;             // the writer waits for an append, no timeout
  std::mutex write_mu;                    // one drain at a time (writer thread, sync, close)

  std::thread batch_thread;
  std::optional<BackstopThread> backstop;  // batch/never mode; flushes when the writer lags
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  bool wake = false;

  bool deferred() const { return opt.fsync != FsyncPolicy::kAlways; }

  ~Impl() {
    if (batch_thread.joinable()) {
      {
        std::lock_guard lock(stop_mu);
        stopping = true;
      }
      stop_cv.notify_all();
      batch_thread.join();
    }
    backstop.reset();  // joined before the final flush below
    if (deferred()) {
      std::lock_guard wl(write_mu);
      (void)write_queued();
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

  // The sealed line (with '\n') of entry `entry_seq`, chained to last_hash, which it advances.
  // `members` are the entry's own serialized members (no braces). The bytes are those of the
  // boost::json object {"v","seq","ts","ts_ms","type",<members>,"prev"} serialized. Holds mu.
  Result<std::string> seal_next(std::string_view members, std::string_view type, uint64_t entry_seq,
                                int64_t ts_ms) {
    std::string line;
    line.reserve(members.size() + 256);
    line += "{\"v\":1,\"seq\":";
    line += std::to_string(entry_seq);
    line += ",\"ts\":\"";  // the timestamp needs no escaping
    append_rfc3339_ms(line, ts_ms);
    line += '"';
    line += ",\"ts_ms\":";
    line += std::to_string(ts_ms);
    line += ",\"type\":";
    append_json_string(line, type);
    if (!members.empty()) {
      line += ',';
      line += members;
    }
    line += ",\"prev\":";
    append_json_string(line, last_hash);
    line += '}';
    ENCLAVE_TRY_STATUS(sealer->seal(line));
    ENCLAVE_TRY_STATUS(sealer->hash_hex(line, last_hash));
    line += '\n';
    return line;
  }

  // Closes the current file (durable first) and continues the chain in the next one. Holds mu.
  Status rotate() {
    if (opt.fsync != FsyncPolicy::kNever && ::fdatasync(fd) != 0) {
      return io_error("cannot fsync", path);
    }
    ::close(fd);
    fd = -1;
    return open_file(file_index + 1);
  }

  // Appends one entry under `mu` and writes it (always mode); returns its seq.
  Result<uint64_t> append_locked(std::string_view members, std::string_view type) {
    std::lock_guard lock(mu);
    std::string prev_hash = last_hash;
    Result<std::string> line = seal_next(members, type, seq + 1, opt.now_ms());
    if (!line) return line.error();
    if (file_size > 0 && file_size + line->size() > opt.max_file_bytes) {
      if (Status st = rotate(); !st) {
        last_hash = std::move(prev_hash);
        return st.error();
      }
    }
    if (Status st = write_all(fd, *line, path); !st) {
      last_hash = std::move(prev_hash);
      return st.error();
    }
    file_size += line->size();
    seq += 1;
    assigned_seq.store(seq);
    dirty = true;
    return seq;
  }

  // Writes `unwritten` in order, rotating where a line would overflow the file. On failure the
  // file is cut back to its last complete line and the rest stays for the next attempt. Holds mu.
  Status write_unwritten() {
    size_t i = 0;
    std::string chunk;
    Status st = Status::ok();
    while (i < unwritten.size()) {
      if (file_size > 0 && file_size + unwritten[i].size() > opt.max_file_bytes) {
        if (st = rotate(); !st) break;
      }
      chunk.clear();
      size_t j = i;
      uint64_t size = file_size;
      while (j < unwritten.size() && (j == i || size + unwritten[j].size() <= opt.max_file_bytes)) {
        size += unwritten[j].size();
        chunk += unwritten[j++];
      }
      if (st = write_all(fd, chunk, path); !st) {
        // A short write must not leave half a line for the next entry to follow.
        if (::ftruncate(fd, static_cast<off_t>(file_size)) != 0) {
          st = io_error("cannot cut a partial write from", path);
        }
        break;
      }
      file_size += chunk.size();
      seq += j - i;
      dirty = true;
      i = j;
    }
    unwritten.erase(unwritten.begin(), unwritten.begin() + static_cast<std::ptrdiff_t>(i));
    return st;
  }

  // Batch/never mode: seals everything queued and writes it. Holds write_mu.
  Status write_queued() {
    std::vector<Queued> batch;
    {
      std::lock_guard lock(queue_mu);
      batch.swap(queue);
    }
    std::lock_guard lock(mu);
    size_t sealed = 0;
    Status st = Status::ok();
    for (; sealed < batch.size(); ++sealed) {
      Queued& q = batch[sealed];
      if (q.request) {
        fields.clear();
        append_request_fields(fields, *q.request);
      } else {
        fields = members_of(q.body);
      }
      Result<std::string> line = seal_next(fields, q.type, q.seq, q.ts_ms);
      if (!line) {
        st = line.error();
        break;
      }
      unwritten.push_back(std::move(*line));
    }
    if (sealed < batch.size()) {  // keep the rest, in order, ahead of newer entries
      std::lock_guard ql(queue_mu);
      queue.insert(queue.begin(), std::make_move_iterator(batch.begin() + sealed),
                   std::make_move_iterator(batch.end()));
    }
    if (!st) return st;
    return write_unwritten();
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

  // Writes what is queued, then (with `fsync`) makes it durable. A failure fails every later
  // append until a pass succeeds (fail closed). Holds nothing.
  Status flush_and_sync(bool fsync) {
    std::lock_guard wl(write_mu);
    Status st = write_queued();
    if (st && fsync) {
      uint64_t target;
      {
        std::lock_guard lock(mu);
        target = seq;
      }
      st = sync_through(target);
    }
    std::lock_guard lock(queue_mu);
    if (st) {
      write_error.reset();
    } else {
      write_error = st.error();
    }
    return st;
  }

  // Batch/never mode: the entry is queued with its seq and time; the writer seals and writes it
  // within batch_interval_ms. Fails while the writer's last write failed (fail closed) or when
  // the queue is full (the writer is stuck).
  Result<uint64_t> enqueue(Queued q) {
    bool notify = false;
    bool wake_backstop = false;
    uint64_t s;
    {
      std::lock_guard lock(queue_mu);
      if (write_error) {
        return make_error(ErrorCode::kUnavailable,
                          "audit log: the last write failed (" + write_error->message +
                              "); entries are refused until a write succeeds");
      }
      if (queue.size() >= kMaxQueuedEntries) {
        return make_error(ErrorCode::kUnavailable,
                          "audit log: " + std::to_string(queue.size()) +
                              " entries wait for the writer; refusing more");
      }
      s = assigned_seq.load() + 1;
      assigned_seq.store(s);
      q.seq = s;
      q.ts_ms = opt.now_ms();
      queue.push_back(std::move(q));
      notify = queue.size() == kWakeAtEntries || writer_asleep;
      writer_asleep = false;
      // The writer did not keep up (starved in SCHED_IDLE): once per crossing of the mark.
      wake_backstop = queue.size() == opt.backstop_at_entries;
    }
    if (notify) {
      {
        std::lock_guard lock(stop_mu);
        wake = true;
      }
      stop_cv.notify_one();
    }
    if (wake_backstop && backstop) backstop->wake();
    return s;
  }

  Result<uint64_t> append(boost::json::object body, const char* type) {
    if (deferred()) {
      Queued q;
      q.type = type;
      q.body = std::move(body);
      return enqueue(std::move(q));
    }
    return append_now(members_of(body), type);
  }

  // Always mode: written and fsynced before it returns.
  Result<uint64_t> append_now(std::string_view members, const char* type) {
    ENCLAVE_ASSIGN_OR_RETURN(uint64_t s, append_locked(members, type));
    ENCLAVE_TRY_STATUS(sync_through(s));
    return s;
  }

  // One writer pass (batch_loop's, or the backstop's). Holds nothing.
  Status flush_like_writer() {
    return flush_and_sync(opt.fsync == FsyncPolicy::kBatch);  // failures fail later appends
  }

  // Under queue_mu: true (and the next append notifies) when there is nothing to write.
  bool sleep_until_append() {
    std::lock_guard lock(queue_mu);
    if (!queue.empty() || write_error) return false;
    writer_asleep = true;
    return true;
  }

  bool queue_empty() {
    std::lock_guard lock(queue_mu);
    return queue.empty();
  }

  void batch_loop() {
    mark_background_thread("audit-writer");  // SCHED_IDLE: never delays an io thread
    IdlePasses idle(opt.idle_sleep_after_ms, opt.batch_interval_ms);
    std::unique_lock lock(stop_mu);
    while (!stopping) {
      // Lock order stop_mu -> queue_mu here; enqueue() releases queue_mu before taking stop_mu,
      // and sets `wake` under stop_mu, so an append after sleep_until_append() is never missed.
      if (idle.sleep_due() && sleep_until_append()) {
        stop_cv.wait(lock, [this] { return stopping || wake; });
        idle.record(false);
      } else {
        stop_cv.wait_for(lock, std::chrono::milliseconds(opt.batch_interval_ms),
                         [this] { return stopping || wake; });
      }
      wake = false;
      if (stopping) break;
      lock.unlock();
      const bool had_entries = !queue_empty();
      const bool ok = static_cast<bool>(flush_like_writer());
      idle.record(!had_entries && ok);
      lock.lock();
    }
  }

  static constexpr size_t kWakeAtEntries = 4096;
  static constexpr size_t kMaxQueuedEntries = size_t{1} << 18;
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
  if (options.backstop_at_entries == 0) options.backstop_at_entries = 1;
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  impl->key = std::move(key);
  ENCLAVE_ASSIGN_OR_RETURN(LineSealer sealer, LineSealer::create(impl->key));
  impl->sealer.emplace(std::move(sealer));
  ENCLAVE_ASSIGN_OR_RETURN(uint64_t torn, impl->recover());
  impl->synced_seq = impl->seq;
  impl->assigned_seq.store(impl->seq);
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(impl)));
  if (torn > 0) {
    ENCLAVE_TRY_STATUS(
        log->append_system("torn_tail_recovered", {{"bytes_discarded", std::to_string(torn)}}));
  }
  if (log->impl_->deferred()) {
    Impl* raw = log->impl_.get();
    raw->batch_thread = std::thread([raw] { raw->batch_loop(); });
    raw->backstop.emplace("audit-backstop", [raw] { (void)raw->flush_like_writer(); });
  }
  return log;
}

Result<std::unique_ptr<AuditLog>> open_audit_log(AuditOptions options,
                                                 const crypto::KeyStore& keys) {
  ENCLAVE_ASSIGN_OR_RETURN(crypto::SecretBytes key, keys.system_key(crypto::SystemKey::kAudit));
  return AuditLog::open(std::move(options), std::move(key));
}

Result<uint64_t> AuditLog::append_request(const RequestAudit& r) {
  return append_request(RequestAudit(r));
}

Result<uint64_t> AuditLog::append_request(RequestAudit&& r) {
  if (impl_->deferred()) {
    Impl::Queued q;
    q.type = "request";
    q.request = std::move(r);
    return impl_->enqueue(std::move(q));
  }
  std::string members;
  append_request_fields(members, r);
  return impl_->append_now(members, "request");
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
  if (impl_->deferred()) return impl_->flush_and_sync(true);
  return impl_->sync_through(last_seq());
}

uint64_t AuditLog::last_seq() const {
  return impl_->assigned_seq.load();
}

fs::path AuditLog::current_file() const {
  std::lock_guard lock(impl_->mu);
  return impl_->path;
}

}  // namespace enclave::audit
