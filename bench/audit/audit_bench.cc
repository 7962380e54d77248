// Audit appends per second under each fsync policy ("always" is the default), single writer
// and concurrent writers (group commit shares one fdatasync between them). Set
// ENCLAVE_BENCH_AUDIT_DIR to measure on a specific filesystem (default: the temp directory).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>

#include "audit/audit_log.h"

namespace enclave::audit {
namespace {
namespace fs = std::filesystem;

fs::path bench_dir(const std::string& tag) {
  const char* base = std::getenv("ENCLAVE_BENCH_AUDIT_DIR");
  fs::path root = base && *base ? fs::path(base) : fs::temp_directory_path();
  return root / ("enclave_audit_bench_" + std::to_string(::getpid()) + "_" + tag);
}

RequestAudit sample() {
  RequestAudit r;
  r.request_id = "req-0123456789";
  r.key_name = "prod-key";
  r.tenant = "acme";
  r.route = "local";
  r.policy = "default@3";
  r.model = "deepseek-v2-lite";
  r.model_version = "q4_0@abc123";
  r.sensitivity = {{"email", 2}, {"iban", 1}};
  r.prompt_tokens = 812;
  r.completion_tokens = 256;
  r.latency_ms = 1234.5;
  r.outcome = "ok";
  r.http_status = 200;
  return r;
}

std::mutex g_mu;
std::unique_ptr<AuditLog> g_log;  // shared between benchmark threads
fs::path g_dir;

void BM_AuditAppend(benchmark::State& state) {
  auto policy = static_cast<FsyncPolicy>(state.range(0));
  if (state.thread_index() == 0) {
    g_dir = bench_dir(fsync_policy_name(policy));
    fs::remove_all(g_dir);
    crypto::SecretBytes key(32);
    AuditOptions opt;
    opt.dir = g_dir;
    opt.fsync = policy;
    g_log = std::move(AuditLog::open(opt, std::move(key)).value());
  }
  RequestAudit r = sample();
  for (auto _ : state) {
    auto seq = g_log->append_request(r);
    if (!seq) state.SkipWithError(seq.error().message.c_str());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(fsync_policy_name(policy));
  if (state.thread_index() == 0) {
    g_log.reset();
    fs::remove_all(g_dir);
  }
}
BENCHMARK(BM_AuditAppend)
    ->Arg(static_cast<int>(FsyncPolicy::kAlways))
    ->Arg(static_cast<int>(FsyncPolicy::kBatch))
    ->Arg(static_cast<int>(FsyncPolicy::kNever))
    ->Threads(1)
    ->Threads(4)
    ->UseRealTime();

}  // namespace
}  // namespace enclave::audit
