#include "audit/siem.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "audit/audit_log.h"
#include "crypto/file_util.h"

namespace enclave::audit {
namespace fs = std::filesystem;
namespace {

int64_t monotonic_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string json_str(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  if (!v) return {};
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  if (v->is_uint64()) return std::to_string(v->as_uint64());
  if (v->is_double()) {
    std::ostringstream s;
    s << v->as_double();
    return s.str();
  }
  return boost::json::serialize(*v);
}

// Severity 0..7 (syslog) for an entry.
int syslog_severity(const boost::json::object& o) {
  std::string type = json_str(o, "type"), outcome = json_str(o, "outcome");
  if (type == "request") return outcome == "ok" ? 6 : (outcome == "denied" ? 4 : 3);
  if (type == "admin") return 5;
  return 6;
}

std::string sd_escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\' || c == ']') out += '\\';
    out += c;
  }
  return out;
}

std::string cef_header_escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '|') out += '\\';
    if (c == '\n' || c == '\r') {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out;
}

std::string cef_ext_escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '=') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out;
}

std::string local_hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == 0) return "-";
  return buf;
}

boost::json::object parse_object(std::string_view line) {
  boost::system::error_code ec;
  auto v = boost::json::parse(line, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

// Blocks SIGPIPE on this thread while writing to a socket OpenSSL owns, then discards any
// SIGPIPE raised meanwhile (no process-wide signal disposition is touched).
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    already_pending_ = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeGuard() {
    if (!already_pending_) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&set_, nullptr, &zero) > 0) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_, old_;
  bool already_pending_ = false;
};

}  // namespace

Result<SiemFormat> parse_siem_format(std::string_view t) {
  if (t == "json" || t == "jsonl") return SiemFormat::kJsonLines;
  if (t == "syslog" || t == "rfc5424") return SiemFormat::kSyslog5424;
  if (t == "cef") return SiemFormat::kCef;
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown SIEM format '" + std::string(t) + "'; use json, syslog or cef");
}

Result<SiemTransport> parse_siem_transport(std::string_view t) {
  if (t == "udp") return SiemTransport::kUdp;
  if (t == "tcp") return SiemTransport::kTcp;
  if (t == "tls") return SiemTransport::kTls;
  if (t == "file") return SiemTransport::kFile;
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown SIEM transport '" + std::string(t) + "'; use udp, tcp, tls or file");
}

std::string format_rfc5424(std::string_view line, const SyslogContext& ctx) {
  boost::json::object o = parse_object(line);
  int pri = ctx.facility * 8 + syslog_severity(o);
  std::string ts = json_str(o, "ts");
  std::string type = json_str(o, "type");
  std::string host = ctx.hostname.empty() ? local_hostname() : ctx.hostname;
  std::ostringstream s;
  s << '<' << pri << ">1 " << (ts.empty() ? "-" : ts) << ' ' << host << ' ' << ctx.app_name << ' '
    << getpid() << ' ' << (type.empty() ? "-" : type) << " [enclave@32473 seq=\""
    << sd_escape(json_str(o, "seq")) << "\"] " << line;
  return s.str();
}

std::string format_cef(std::string_view line, const SyslogContext& ctx) {
  boost::json::object o = parse_object(line);
  std::string type = json_str(o, "type");
  std::string signature, name;
  int severity = 3;
  std::vector<std::pair<std::string, std::string>> ext;
  ext.emplace_back("rt", json_str(o, "ts_ms"));
  ext.emplace_back("externalId", json_str(o, "seq"));
  if (type == "request") {
    std::string outcome = json_str(o, "outcome");
    signature = "request:" + outcome;
    name = "Inference request " + outcome;
    severity = outcome == "ok" ? 3 : (outcome == "denied" ? 6 : 5);
    ext.emplace_back("suser", json_str(o, "key_name"));
    ext.emplace_back("cs1Label", "tenant");
    ext.emplace_back("cs1", json_str(o, "tenant"));
    ext.emplace_back("act", json_str(o, "route"));
    ext.emplace_back("cs2Label", "policy");
    ext.emplace_back("cs2", json_str(o, "policy"));
    ext.emplace_back("cs3Label", "model");
    ext.emplace_back("cs3", json_str(o, "model") + "@" + json_str(o, "model_version"));
    ext.emplace_back("cs4Label", "sensitivity");
    ext.emplace_back("cs4", json_str(o, "sensitivity"));
    ext.emplace_back("cn1Label", "promptTokens");
    ext.emplace_back("cn1", json_str(o, "prompt_tokens"));
    ext.emplace_back("cn2Label", "completionTokens");
    ext.emplace_back("cn2", json_str(o, "completion_tokens"));
    ext.emplace_back("cn3Label", "latencyMs");
    ext.emplace_back("cn3", json_str(o, "latency_ms"));
    ext.emplace_back("outcome", outcome);
    ext.emplace_back("requestId", json_str(o, "request_id"));
  } else if (type == "admin") {
    std::string action = json_str(o, "action");
    signature = "admin:" + action;
    name = "Admin action " + action;
    severity = action == "tenant_erased" ? 7 : 5;
    ext.emplace_back("suser", json_str(o, "actor"));
    ext.emplace_back("cs1Label", "tenant");
    ext.emplace_back("cs1", json_str(o, "tenant"));
    ext.emplace_back("act", action);
    ext.emplace_back("msg", json_str(o, "details"));
  } else {
    std::string event = json_str(o, "event");
    signature = "system:" + event;
    name = "System event " + event;
    ext.emplace_back("act", event);
    ext.emplace_back("msg", json_str(o, "details"));
  }
  ext.emplace_back("cs5Label", "prevHash");
  ext.emplace_back("cs5", json_str(o, "prev"));
  ext.emplace_back("cs6Label", "hmac");
  ext.emplace_back("cs6", json_str(o, "hmac"));
  std::ostringstream s;
  s << "CEF:0|Enclave|Enclave|" << cef_header_escape(ctx.version) << '|'
    << cef_header_escape(signature) << '|' << cef_header_escape(name) << '|' << severity << '|';
  bool first = true;
  for (const auto& [k, v] : ext) {
    if (!first) s << ' ';
    first = false;
    s << k << '=' << cef_ext_escape(v);
  }
  return s.str();
}

std::string frame_octet_counted(std::string_view msg) {
  return std::to_string(msg.size()) + " " + std::string(msg);
}

struct SiemExporter::Impl {
  SiemOptions opt;
  mutable std::mutex mu;  // one pump at a time; guards all state
  SiemPosition committed;
  SiemPosition sent;
  struct Pending {
    SiemPosition end;
    int64_t sent_ms;
    size_t lines;
  };
  std::deque<Pending> pending;  // sent, awaiting confirmation
  SiemStats stats;

  int fd = -1;
  SSL_CTX* ssl_ctx = nullptr;
  SSL* ssl = nullptr;
  int64_t next_connect_ms = 0;
  uint32_t backoff_ms = 100;

  std::thread thread;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;

  ~Impl() {
    disconnect();
    if (ssl_ctx) SSL_CTX_free(ssl_ctx);
  }

  bool reliable() const {
    return opt.transport == SiemTransport::kTcp || opt.transport == SiemTransport::kTls;
  }

  Status save_state() {
    std::string text =
        "file=" + committed.file + "\noffset=" + std::to_string(committed.offset) + "\n";
    return crypto::write_file_durable(opt.state_file, text);
  }

  Status load_state() {
    std::error_code ec;
    if (!fs::exists(opt.state_file, ec)) return Status::ok();
    ENCLAVE_ASSIGN_OR_RETURN(std::string text, crypto::read_file(opt.state_file));
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("file=", 0) == 0) committed.file = line.substr(5);
      if (line.rfind("offset=", 0) == 0)
        committed.offset = std::strtoull(line.c_str() + 7, nullptr, 10);
    }
    sent = committed;
    return Status::ok();
  }

  void disconnect() {
    if (ssl) {
      SigpipeGuard guard;
      SSL_shutdown(ssl);
      SSL_free(ssl);
      ssl = nullptr;
    }
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  void fail(const std::string& why, int64_t now) {
    stats.failures++;
    stats.last_error = why;
    disconnect();
    // Everything not yet committed is re-sent after reconnecting (at-least-once).
    sent = committed;
    pending.clear();
    next_connect_ms = now + backoff_ms;
    backoff_ms = std::min<uint32_t>(backoff_ms * 2, 5000);
  }

  std::string ssl_error_text() {
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
  }

  Status connect(int64_t now) {
    if (opt.transport == SiemTransport::kFile) {
      fd = ::open(opt.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd < 0) {
        return make_error(ErrorCode::kIo,
                          "cannot open SIEM output file " + opt.output_file.string());
      }
      return Status::ok();
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = opt.transport == SiemTransport::kUdp ? SOCK_DGRAM : SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string port = std::to_string(opt.port);
    if (getaddrinfo(opt.host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
      return make_error(ErrorCode::kUnavailable, "cannot resolve SIEM host " + opt.host);
    }
    int s = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (s < 0) {
      freeaddrinfo(res);
      return make_error(ErrorCode::kIo, "cannot create socket");
    }
    // Non-blocking connect with a timeout, then back to blocking with a send timeout.
    int flags = fcntl(s, F_GETFL, 0);
    fcntl(s, F_SETFL, flags | O_NONBLOCK);
    int rc = ::connect(s, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      rc = poll(&p, 1, static_cast<int>(opt.connect_timeout_ms)) == 1 ? 0 : -1;
      int err = 0;
      socklen_t len = sizeof(err);
      if (rc == 0 && (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) rc = -1;
    }
    if (rc != 0) {
      ::close(s);
      return make_error(ErrorCode::kUnavailable,
                        "SIEM receiver " + opt.host + ":" + port + " is not accepting connections");
    }
    fcntl(s, F_SETFL, flags);
    timeval tv{static_cast<time_t>(opt.send_timeout_ms / 1000),
               static_cast<suseconds_t>((opt.send_timeout_ms % 1000) * 1000)};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    fd = s;
    if (opt.transport == SiemTransport::kTls) {
      ssl = SSL_new(ssl_ctx);
      std::string name = opt.tls_server_name.empty() ? opt.host : opt.tls_server_name;
      SSL_set_fd(ssl, fd);
      SSL_set_tlsext_host_name(ssl, name.c_str());
      SSL_set1_host(ssl, name.c_str());
      SigpipeGuard guard;
      if (SSL_connect(ssl) != 1) {
        std::string err = ssl_error_text();
        disconnect();
        return make_error(ErrorCode::kUnavailable,
                          "TLS handshake with SIEM receiver failed: " + err);
      }
    }
    stats.connects++;
    (void)now;
    return Status::ok();
  }

  // True when the stream connection is still usable (the receiver never sends us data, so
  // readability means EOF/RST; TLS session tickets are consumed and ignored).
  bool healthy() {
    if (fd < 0) return false;
    if (!reliable()) return true;
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) return true;
    if (p.revents & (POLLERR | POLLHUP | POLLRDHUP)) return false;
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    bool ok = true;
    char buf[512];
    if (ssl) {
      int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) {
        int e = SSL_get_error(ssl, n);
        ok = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
      }
      ERR_clear_error();
    } else {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      ok = n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
    fcntl(fd, F_SETFL, flags);
    return ok;
  }

  Status send_bytes(const std::string& data) {
    if (opt.transport == SiemTransport::kUdp) {
      if (::send(fd, data.data(), data.size(), MSG_NOSIGNAL) < 0) {
        return make_error(ErrorCode::kUnavailable,
                          std::string("UDP send failed: ") + std::strerror(errno));
      }
      return Status::ok();
    }
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n;
      if (ssl) {
        SigpipeGuard guard;
        n = SSL_write(ssl, data.data() + off, static_cast<int>(data.size() - off));
        if (n <= 0) {
          return make_error(ErrorCode::kUnavailable,
                            "TLS write to SIEM failed: " + ssl_error_text());
        }
      } else if (opt.transport == SiemTransport::kFile) {
        n = ::write(fd, data.data() + off, data.size() - off);
      } else {
        n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        return make_error(ErrorCode::kUnavailable,
                          std::string("send to SIEM failed: ") + std::strerror(errno));
      }
      off += static_cast<size_t>(n);
    }
    if (opt.transport == SiemTransport::kFile && ::fdatasync(fd) != 0) {
      return make_error(ErrorCode::kIo, "cannot fsync SIEM output file");
    }
    return Status::ok();
  }

  std::string encode(std::string_view line) {
    std::string msg;
    switch (opt.format) {
      case SiemFormat::kJsonLines:
        msg = std::string(line);
        break;
      case SiemFormat::kSyslog5424:
        msg = format_rfc5424(line, opt.syslog);
        break;
      case SiemFormat::kCef: {
        // CEF travels inside a syslog header on the network, bare in a file.
        std::string cef = format_cef(line, opt.syslog);
        msg = opt.transport == SiemTransport::kFile ? cef : format_rfc5424_with_body(line, cef);
        break;
      }
    }
    bool octet = opt.format != SiemFormat::kJsonLines &&
                 (opt.transport == SiemTransport::kTcp || opt.transport == SiemTransport::kTls);
    if (octet) return frame_octet_counted(msg);
    if (opt.transport == SiemTransport::kUdp) return msg;
    return msg + "\n";
  }

  std::string format_rfc5424_with_body(std::string_view line, const std::string& body) {
    std::string full = format_rfc5424(line, opt.syslog);
    // Replace the JSON body (everything after the structured data) with the CEF text.
    size_t cut = full.size() - line.size();
    return full.substr(0, cut) + body;
  }

  // Reads up to max_batch complete lines starting at `from`; returns them and the end position.
  Result<std::pair<std::vector<std::string>, SiemPosition>> read_batch(SiemPosition from) {
    auto files = list_audit_files(opt.audit_dir);
    std::vector<std::string> out;
    size_t idx = 0;
    if (!from.file.empty()) {
      while (idx < files.size() && files[idx].filename().string() < from.file) ++idx;
      if (idx < files.size() && files[idx].filename().string() != from.file) from.offset = 0;
    }
    SiemPosition pos = from;
    for (; idx < files.size() && out.size() < opt.max_batch; ++idx) {
      std::string name = files[idx].filename().string();
      if (name != pos.file) {
        pos.file = name;
        pos.offset = 0;
      }
      ENCLAVE_ASSIGN_OR_RETURN(std::string text, crypto::read_file(files[idx]));
      size_t at = pos.offset;
      while (at < text.size() && out.size() < opt.max_batch) {
        size_t nl = text.find('\n', at);
        if (nl == std::string::npos) break;  // incomplete line: wait for the writer
        out.emplace_back(text.substr(at, nl - at));
        at = nl + 1;
      }
      pos.offset = at;
      if (at < text.size() || idx + 1 == files.size()) break;  // more in this file, or newest
    }
    return std::make_pair(std::move(out), pos);
  }

  Result<size_t> pump() {
    std::lock_guard lock(mu);
    int64_t now = opt.now_ms();
    if (fd >= 0 && !healthy()) fail("SIEM connection closed by receiver", now);
    // Commit batches that have stayed healthy long enough.
    bool changed = false;
    while (!pending.empty() &&
           (!reliable() || pending.front().sent_ms + opt.confirm_delay_ms <= now)) {
      committed = pending.front().end;
      stats.lines_committed += pending.front().lines;
      pending.pop_front();
      changed = true;
    }
    if (changed) ENCLAVE_TRY_STATUS(save_state());
    ENCLAVE_ASSIGN_OR_RETURN(auto batch, read_batch(sent));
    auto& [lines, end] = batch;
    if (lines.empty()) {
      if (!(end == sent)) {  // moved on to a new, still empty file
        sent = end;
        pending.push_back({end, now, 0});
      }
      return size_t{0};
    }
    if (fd < 0) {
      if (now < next_connect_ms) return size_t{0};
      Status st = connect(now);
      if (!st) {
        if (st.error().code == ErrorCode::kIo && opt.transport == SiemTransport::kFile)
          return st.error();
        fail(st.error().message, now);
        return size_t{0};
      }
      backoff_ms = 100;
    }
    std::string payload;
    for (const auto& l : lines) {
      std::string framed = encode(l);
      if (opt.transport == SiemTransport::kUdp) {
        Status st = send_bytes(framed);
        if (!st) {
          fail(st.error().message, now);
          return size_t{0};
        }
      } else {
        payload += framed;
      }
    }
    if (!payload.empty()) {
      Status st = send_bytes(payload);
      if (!st) {
        if (opt.transport == SiemTransport::kFile) return st.error();
        fail(st.error().message, now);
        return size_t{0};
      }
    }
    stats.lines_sent += lines.size();
    sent = end;
    pending.push_back({end, now, lines.size()});
    if (!reliable()) {
      committed = end;
      stats.lines_committed += lines.size();
      pending.clear();
      ENCLAVE_TRY_STATUS(save_state());
    }
    return lines.size();
  }

  bool all_committed() {
    std::lock_guard lock(mu);
    auto files = list_audit_files(opt.audit_dir);
    if (files.empty()) return true;
    std::error_code ec;
    uint64_t size = fs::file_size(files.back(), ec);
    return committed.file == files.back().filename().string() && committed.offset >= size;
  }
};

SiemExporter::SiemExporter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SiemExporter::~SiemExporter() {
  stop();
}

Result<std::unique_ptr<SiemExporter>> SiemExporter::create(SiemOptions options) {
  if (options.audit_dir.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "SIEM export needs the audit directory");
  }
  if (options.transport == SiemTransport::kFile && options.output_file.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "SIEM file transport needs an output file");
  }
  if (options.state_file.empty()) {
    std::string tag = options.transport == SiemTransport::kFile
                          ? "file"
                          : (options.transport == SiemTransport::kUdp   ? "udp"
                             : options.transport == SiemTransport::kTcp ? "tcp"
                                                                        : "tls") +
                                std::string("-") + std::to_string(options.port);
    options.state_file = options.audit_dir / ("siem-" + tag + ".state");
  }
  if (!options.now_ms) options.now_ms = monotonic_ms;
  if (options.max_batch == 0) options.max_batch = 1;
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  if (impl->opt.transport == SiemTransport::kTls) {
    impl->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!impl->ssl_ctx) return make_error(ErrorCode::kInternal, "cannot create TLS context");
    SSL_CTX_set_min_proto_version(impl->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(impl->ssl_ctx, SSL_VERIFY_PEER, nullptr);
    int ok =
        impl->opt.tls_ca_file.empty()
            ? SSL_CTX_set_default_verify_paths(impl->ssl_ctx)
            : SSL_CTX_load_verify_locations(impl->ssl_ctx, impl->opt.tls_ca_file.c_str(), nullptr);
    if (ok != 1) {
      return make_error(ErrorCode::kInvalidArgument,
                        "cannot load TLS CA file " + impl->opt.tls_ca_file.string());
    }
    if (!impl->opt.tls_cert_file.empty() &&
        (SSL_CTX_use_certificate_chain_file(impl->ssl_ctx, impl->opt.tls_cert_file.c_str()) != 1 ||
         SSL_CTX_use_PrivateKey_file(impl->ssl_ctx, impl->opt.tls_key_file.c_str(),
                                     SSL_FILETYPE_PEM) != 1)) {
      return make_error(ErrorCode::kInvalidArgument, "cannot load TLS client certificate/key");
    }
  }
  ENCLAVE_TRY_STATUS(impl->load_state());
  return std::unique_ptr<SiemExporter>(new SiemExporter(std::move(impl)));
}

Result<size_t> SiemExporter::pump() {
  return impl_->pump();
}

Status SiemExporter::drain(uint32_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    ENCLAVE_ASSIGN_OR_RETURN(size_t n, pump());
    if (n == 0 && impl_->all_committed()) return Status::ok();
    if (std::chrono::steady_clock::now() >= deadline) {
      return make_error(ErrorCode::kUnavailable,
                        "SIEM receiver did not take every audit entry in time (" +
                            impl_->stats.last_error + "); entries stay spooled");
    }
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void SiemExporter::start() {
  std::lock_guard lock(impl_->stop_mu);
  if (impl_->thread.joinable()) return;
  impl_->stopping = false;
  Impl* raw = impl_.get();
  impl_->thread = std::thread([raw] {
    std::unique_lock lock(raw->stop_mu);
    while (!raw->stopping) {
      lock.unlock();
      auto r = raw->pump();
      if (!r) {
        std::lock_guard l(raw->mu);
        raw->stats.last_error = r.error().message;
      }
      lock.lock();
      raw->stop_cv.wait_for(lock, std::chrono::milliseconds(raw->opt.poll_interval_ms));
    }
  });
}

void SiemExporter::stop() {
  {
    std::lock_guard lock(impl_->stop_mu);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

SiemPosition SiemExporter::committed() const {
  std::lock_guard lock(impl_->mu);
  return impl_->committed;
}

SiemStats SiemExporter::stats() const {
  std::lock_guard lock(impl_->mu);
  SiemStats s = impl_->stats;
  return s;
}

}  // namespace enclave::audit
