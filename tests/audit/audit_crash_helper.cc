// Child process for audit_crash_test: appends audit entries from several threads under the
// "always" fsync policy and writes each acknowledged seq (8 bytes) to the fd in argv[2] only
// after append() returned. The parent SIGKILLs it mid-flight.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "audit/audit_log.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  enclave::crypto::SecretBytes key(32);
  for (size_t i = 0; i < key.size(); ++i) key.data()[i] = static_cast<uint8_t>(0x42 + i);
  enclave::audit::AuditOptions opt;
  opt.dir = argv[1];
  opt.fsync = enclave::audit::FsyncPolicy::kAlways;
  opt.max_file_bytes = 64 << 10;  // rotate often so the kill can land near a rotation
  auto log = enclave::audit::AuditLog::open(opt, std::move(key));
  if (!log) return 1;
  int fd = std::atoi(argv[2]);
  std::mutex pipe_mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0;; ++i) {
        enclave::audit::RequestAudit r;
        r.request_id = std::to_string(t) + "-" + std::to_string(i);
        r.key_name = "load";
        r.tenant = "acme";
        r.outcome = "ok";
        auto seq = (*log)->append_request(r);
        if (!seq) std::_Exit(3);
        uint64_t v = *seq;
        std::lock_guard lock(pipe_mu);
        if (::write(fd, &v, sizeof(v)) != sizeof(v)) std::_Exit(4);
      }
    });
  }
  for (auto& th : threads) th.join();
  return 0;
}
