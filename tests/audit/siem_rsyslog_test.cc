// Integration: a real rsyslogd (run as a non-daemon child with a generated config) receives every
// audit entry over TCP (RFC 6587 octet counting), UDP and TLS (gtls driver), including entries
// appended while it was down and across a restart of the exporter itself.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "audit/audit_log.h"
#include "audit/siem.h"
#include "audit_test_util.h"

namespace enclave::audit {
namespace {
namespace fs = std::filesystem;

uint16_t free_port(int type) {
  int s = ::socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

bool tcp_connectable(uint16_t port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(s);
  return ok;
}

// rsyslogd as a child process: imtcp (plain or gtls) + imudp on loopback, omfile of %rawmsg%.
class Rsyslog {
 public:
  Rsyslog(fs::path dir, bool tls) : dir_(std::move(dir)), tls_(tls) {
    tcp_port_ = free_port(SOCK_STREAM);
    udp_port_ = free_port(SOCK_DGRAM);
    std::ofstream conf(dir_ / "rsyslog.conf");
    conf << "global(workDirectory=\"" << dir_.string() << "\" maxMessageSize=\"64k\"";
    if (tls_) {
      conf << " DefaultNetstreamDriverCAFile=\"" << (dir_ / "ca.pem").string() << "\""
           << " DefaultNetstreamDriverCertFile=\"" << (dir_ / "srv.pem").string() << "\""
           << " DefaultNetstreamDriverKeyFile=\"" << (dir_ / "srv.key").string() << "\"";
    }
    conf << ")\n";
    if (tls_) {
      conf << "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" "
              "StreamDriver.AuthMode=\"anon\")\n";
    } else {
      conf << "module(load=\"imtcp\")\nmodule(load=\"imudp\")\n";
      conf << "input(type=\"imudp\" port=\"" << udp_port_ << "\" address=\"127.0.0.1\")\n";
    }
    conf << "input(type=\"imtcp\" port=\"" << tcp_port_ << "\" address=\"127.0.0.1\")\n"
         << "template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n"
         << "action(type=\"omfile\" file=\"" << output().string()
         << "\" template=\"raw\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n";
  }
  ~Rsyslog() { stop(); }

  static bool make_certs(const fs::path& dir) {
    std::string d = dir.string();
    std::string cmd =
        "cd '" + d +
        "' && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
        "-days 2 -subj '/CN=Enclave Test CA' >/dev/null 2>&1 && openssl req -newkey rsa:2048 "
        "-nodes -keyout srv.key -out srv.csr -subj '/CN=localhost' >/dev/null 2>&1 && printf "
        "'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && openssl x509 -req -in "
        "srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext.cnf "
        ">/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
  }

  bool start() {
    const char* bin = fs::exists("/usr/sbin/rsyslogd") ? "/usr/sbin/rsyslogd" : "rsyslogd";
    fs::remove(dir_ / "rsyslog.pid");
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string log = (dir_ / "rsyslog.log").string();
      FILE* f = std::freopen(log.c_str(), "a", stderr);
      (void)f;
      ::dup2(2, 1);
      std::string conf = (dir_ / "rsyslog.conf").string(), pid = (dir_ / "rsyslog.pid").string();
      ::execl(bin, bin, "-n", "-f", conf.c_str(), "-i", pid.c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      if (tcp_connectable(tcp_port_)) return true;
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  fs::path output() const { return dir_ / "received.log"; }
  uint16_t tcp_port() const { return tcp_port_; }
  uint16_t udp_port() const { return udp_port_; }

 private:
  fs::path dir_;
  bool tls_;
  uint16_t tcp_port_ = 0, udp_port_ = 0;
  pid_t pid_ = -1;
};

// Sequence numbers in order of first appearance in rsyslog's output.
std::vector<uint64_t> received_seqs(const fs::path& out, SiemFormat format) {
  std::regex re(format == SiemFormat::kCef ? R"(externalId=(\d+))" : R"("seq":(\d+))");
  std::vector<uint64_t> order;
  std::set<uint64_t> seen;
  for (const auto& line : testing::read_lines(out)) {
    std::smatch m;
    if (!std::regex_search(line, m, re)) continue;
    uint64_t s = std::stoull(m[1]);
    if (seen.insert(s).second) order.push_back(s);
  }
  return order;
}

bool wait_for_all(const fs::path& out, SiemFormat format, uint64_t n) {
  for (int i = 0; i < 400; ++i) {
    if (received_seqs(out, format).size() >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

void append(AuditLog& log, int n) {
  for (int i = 0; i < n; ++i) {
    RequestAudit r;
    r.request_id = "r" + std::to_string(i);
    r.key_name = "ci";
    r.tenant = "acme";
    r.route = "local";
    r.sensitivity = {{"email", 1}};
    r.outcome = i % 7 == 0 ? "denied" : "ok";
    ASSERT_TRUE(log.append_request(r));
  }
}

std::unique_ptr<AuditLog> open_log(const fs::path& dir) {
  AuditOptions opt;
  opt.dir = dir;
  opt.max_file_bytes = 8 << 10;  // several files: the spool crosses rotations
  auto log = AuditLog::open(opt, testing::test_key());
  EXPECT_TRUE(log);
  return log ? std::move(log).value() : nullptr;
}

void expect_complete_and_ordered(const fs::path& out, SiemFormat format, uint64_t n) {
  ASSERT_TRUE(wait_for_all(out, format, n))
      << "rsyslog got " << received_seqs(out, format).size() << " of " << n;
  auto seqs = received_seqs(out, format);
  ASSERT_EQ(seqs.size(), n);
  for (uint64_t i = 0; i < n; ++i) EXPECT_EQ(seqs[i], i + 1) << "first arrivals out of order";
}

// Outage: entries appended while rsyslog is down wait in the spool; the exporter process is
// restarted too (new object, state file on disk); everything arrives once rsyslog is back.
void outage_and_restart(SiemTransport transport, SiemFormat format) {
  auto dir = testing::temp_dir("rsyslog");
  bool tls = transport == SiemTransport::kTls;
  if (tls) {
    ASSERT_TRUE(Rsyslog::make_certs(dir)) << "openssl CLI failed to make test certs";
  }
  Rsyslog rsyslog(dir, tls);
  ASSERT_TRUE(rsyslog.start()) << testing::slurp(dir / "rsyslog.log");
  auto log = open_log(dir / "audit");
  ASSERT_TRUE(log);

  SiemOptions opt;
  opt.transport = transport;
  opt.format = format;
  opt.port = rsyslog.tcp_port();
  opt.audit_dir = dir / "audit";
  opt.confirm_delay_ms = 200;
  opt.connect_timeout_ms = 500;
  opt.max_batch = 16;
  if (tls) {
    opt.tls_ca_file = dir / "ca.pem";
    opt.tls_server_name = "localhost";
  }
  append(*log, 40);
  {
    auto exp = SiemExporter::create(opt);
    ASSERT_TRUE(exp) << exp.error().message;
    ASSERT_TRUE((*exp)->drain(15000)) << (*exp)->stats().last_error;
    expect_complete_and_ordered(rsyslog.output(), format, 40);

    rsyslog.stop();  // outage
    append(*log, 40);
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE((*exp)->pump());
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    EXPECT_GE((*exp)->stats().failures, 1u);
  }  // the exporter "process" exits during the outage
  append(*log, 40);
  ASSERT_TRUE(rsyslog.start()) << testing::slurp(dir / "rsyslog.log");
  auto exp = SiemExporter::create(opt);  // resumes from the persisted offset
  ASSERT_TRUE(exp);
  (*exp)->start();
  expect_complete_and_ordered(rsyslog.output(), format, 120);
  (*exp)->stop();
  ASSERT_TRUE((*exp)->drain(15000)) << (*exp)->stats().last_error;
  rsyslog.stop();
  fs::remove_all(dir);
}

TEST(SiemRsyslog, TcpSyslogAcrossOutageAndRestart) {
  outage_and_restart(SiemTransport::kTcp, SiemFormat::kSyslog5424);
}

TEST(SiemRsyslog, TcpCefAcrossOutageAndRestart) {
  outage_and_restart(SiemTransport::kTcp, SiemFormat::kCef);
}

TEST(SiemRsyslog, TlsSyslogAcrossOutageAndRestart) {
  outage_and_restart(SiemTransport::kTls, SiemFormat::kSyslog5424);
}

TEST(SiemRsyslog, TcpJsonLines) {
  auto dir = testing::temp_dir("rsyslog");
  Rsyslog rsyslog(dir, false);
  ASSERT_TRUE(rsyslog.start()) << testing::slurp(dir / "rsyslog.log");
  auto log = open_log(dir / "audit");
  append(*log, 25);
  SiemOptions opt;
  opt.transport = SiemTransport::kTcp;
  opt.format = SiemFormat::kJsonLines;
  opt.port = rsyslog.tcp_port();
  opt.audit_dir = dir / "audit";
  opt.confirm_delay_ms = 100;
  auto exp = SiemExporter::create(opt);
  ASSERT_TRUE(exp);
  ASSERT_TRUE((*exp)->drain(10000));
  expect_complete_and_ordered(rsyslog.output(), SiemFormat::kJsonLines, 25);
  rsyslog.stop();
  fs::remove_all(dir);
}

TEST(SiemRsyslog, UdpSyslogBestEffort) {
  auto dir = testing::temp_dir("rsyslog");
  Rsyslog rsyslog(dir, false);
  ASSERT_TRUE(rsyslog.start()) << testing::slurp(dir / "rsyslog.log");
  auto log = open_log(dir / "audit");
  append(*log, 25);
  SiemOptions opt;
  opt.transport = SiemTransport::kUdp;
  opt.format = SiemFormat::kSyslog5424;
  opt.port = rsyslog.udp_port();
  opt.audit_dir = dir / "audit";
  opt.max_batch = 5;
  auto exp = SiemExporter::create(opt);
  ASSERT_TRUE(exp);
  ASSERT_TRUE((*exp)->drain(10000));
  expect_complete_and_ordered(rsyslog.output(), SiemFormat::kSyslog5424, 25);
  rsyslog.stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace enclave::audit
