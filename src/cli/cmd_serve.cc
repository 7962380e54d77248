// `enclave serve`: the OpenAI/DeepSeek-compatible HTTP API over the local engine.
// Order: config (defaults < YAML < flags) -> data dir + API keys -> listen (/health answers while
// the model loads, /ready is 503) -> model (or the generated demo model) -> serve until
// SIGINT/SIGTERM -> graceful shutdown within --shutdown-timeout -> exit 0.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>

#include "audit/audit_log.h"
#include "cli/commands.h"
#include "cli/data_protection_access.h"
#include "crypto/file_util.h"
#include "engine/engine.h"
#include "model/synth.h"
#include "router/gateway.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/engine_backend.h"
#include "server/server.h"
#include "store/retention.h"
#include "store/store.h"
#include "store/usage_writer.h"

namespace enclave::cli {
namespace {

struct ServeFlags {
  std::string config_path;
  server::ServerConfig cfg;  // flag values land here; applied over the file when given
  int32_t shutdown_timeout_s = 10;
  std::string demo_vocab;
  std::string gateway_path;  // routing gateway config (src/router)
};

void log(const char* fmt, const std::string& a = "", const std::string& b = "") {
  std::time_t now = std::time(nullptr);
  char ts[32];
  std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", std::localtime(&now));
  std::fprintf(stderr, "%s enclave serve: ", ts);
  std::fprintf(stderr, fmt, a.c_str(), b.c_str());
  std::fprintf(stderr, "\n");
}

// Keys: config keys + ENCLAVE_API_KEY (memory only) + the key file (digests). With none at all a
// fresh admin key is generated, printed once on stdout and stored hashed in the key file.
Result<std::shared_ptr<server::KeyStore>> load_keys(const server::ServerConfig& cfg) {
  ENCLAVE_ASSIGN_OR_RETURN(server::KeyStore ks, server::KeyStore::open(cfg.data_dir));
  for (const server::ConfiguredKey& k : cfg.keys) {
    ENCLAVE_ASSIGN_OR_RETURN(unsigned scopes, server::parse_scopes(k.scopes));
    ENCLAVE_TRY_STATUS(ks.add_key(k.name, k.key, scopes));
  }
  if (const char* env = std::getenv("ENCLAVE_API_KEY"); env && *env) {
    ENCLAVE_TRY_STATUS(ks.add_key("ENCLAVE_API_KEY", env, 7u));
  }
  std::string key_file = cfg.effective_key_file();
  ENCLAVE_TRY_STATUS(ks.load_file(key_file));
  if (ks.size() == 0) {
    ENCLAVE_ASSIGN_OR_RETURN(std::string key, server::generate_api_key());
    ENCLAVE_TRY_STATUS(ks.add_persistent_key("admin", key, 7u));
    ENCLAVE_TRY_STATUS(ks.save_file(key_file));
    std::printf(
        "Generated an admin API key (shown once; only its HMAC digest is stored in %s):\n\n  %s\n\n"
        "Use it as: Authorization: Bearer <key>\n",
        key_file.c_str(), key.c_str());
    std::fflush(stdout);
  }
  return std::make_shared<server::KeyStore>(std::move(ks));
}

// Key store, audit log and database (cli/data_protection_access.h) plus retention: each request
// is audited, usage is recorded.
struct ServeDataProtection : DataProtection {
  std::unique_ptr<store::RetentionScheduler> retention;  // destroyed before `db`, which it uses
  std::unique_ptr<store::UsageWriter> usage;  // flushes its queue into `db` when destroyed
};

// The master key is resolved as for the other data-protection commands; with none configured, a
// random key file data_dir/keys/master.key is generated on first start so that the embedded
// defaults work without an operator passphrase.
Result<ServeDataProtection> open_serve_data_protection(const std::string& data_dir,
                                                       const std::string& fsync_name) {
  ENCLAVE_ASSIGN_OR_RETURN(audit::FsyncPolicy fsync, audit::parse_fsync_policy(fsync_name));
  Result<DataProtection> opened =
      open_data_protection(data_dir, {.missing_master_key = MissingMasterKey::kCreateKeyFile,
                                      .create_key_store = true,
                                      .actor = "serve",
                                      .fsync = fsync});
  if (!opened) return opened.error();
  ServeDataProtection dp;
  static_cast<DataProtection&>(dp) = std::move(opened).value();
  if (!dp.master_key_file.empty()) {
    log(dp.master_key_file_created ? "generated a master key file %s (mode 0600): no %s configured"
                                   : "using the master key file %s: no %s configured",
        dp.master_key_file.string(),
        "ENCLAVE_PASSPHRASE / ENCLAVE_MASTER_KEY / ENCLAVE_MASTER_KEY_FILE");
    log("the key file sits next to the data it protects; for production use a passphrase "
        "(ENCLAVE_PASSPHRASE) or an external key (ENCLAVE_MASTER_KEY_FILE on separate storage)");
  }
  if (dp.key_store_created) log("created key store %s", dp.keys->dir().string());
  dp.retention = std::make_unique<store::RetentionScheduler>(*dp.db, std::chrono::hours(1));
  dp.retention->start();
  store::UsageWriterOptions uo;
  uo.on_error = [](const Error& e, size_t queued, size_t dropped) {
    log("usage rows not written (%s; the database said: %s)",
        dropped > 0 ? std::to_string(dropped) + " dropped"
                    : std::to_string(queued) + " kept queued",
        e.message);
  };
  dp.usage = std::make_unique<store::UsageWriter>(*dp.db, std::move(uo));
  return dp;
}

// Request audit + usage hooks and the tenant-erase admin route on the server.
void wire_data_protection(ServeDataProtection& dp, server::Services& services, bool fsync_always) {
  audit::AuditLog* alog = dp.log.get();
  store::Store* db = dp.db.get();
  store::UsageWriter* usage = dp.usage.get();
  server::AuditHooks hooks;
  hooks.append = [alog](const server::RequestRecord& r) -> Status {
    audit::RequestAudit a;
    a.request_id = r.request_id;
    a.key_name = r.key_name;
    a.tenant = r.tenant;
    a.route = r.route;
    a.policy = r.policy;
    a.model = r.model;
    for (const auto& [category, count] : r.sensitivity) a.sensitivity.push_back({category, count});
    a.prompt_tokens = r.prompt_tokens;
    a.completion_tokens = r.completion_tokens;
    a.latency_ms = r.latency_ms;
    a.outcome = r.outcome;
    a.http_status = r.http_status;
    Result<uint64_t> seq = alog->append_request(std::move(a));
    if (!seq) {
      log("audit log append failed (request %s answered 503): %s", r.request_id,
          seq.error().message);
      return seq.error();
    }
    return Status::ok();
  };
  // A queue push: the writer thread stores the rows in batches, one transaction each.
  hooks.after = [usage](const server::RequestRecord& r) {
    if (r.http_status != 200 || r.outcome != "ok") return;
    store::UsageRecord u;
    u.tenant = r.tenant;
    u.api_key_name = r.key_name;
    u.request_id = r.request_id;
    u.backend = r.route == "local" ? "local" : r.route;
    u.model = r.model;
    u.prompt_tokens = r.prompt_tokens;
    u.completion_tokens = r.completion_tokens;
    u.latency_ms = r.latency_ms;
    usage->push(std::move(u));
  };
  // With `always` the answer waits for an fsync, which must not stall an io thread: the append
  // runs on the blocking pool. Otherwise the append only queues the entry (the audit log's writer
  // thread writes it), so it runs inline with no thread hand-off.
  if (fsync_always) hooks.run = services.run_blocking;
  services.auditor = std::make_shared<server::RequestAuditor>(std::move(hooks));
  services.erase_tenant = [db, usage](const std::string& tenant,
                                      const std::string& actor) -> Result<std::string> {
    // Rows still queued for this tenant are stored first, so the erase deletes them too.
    (void)usage->flush();
    ENCLAVE_ASSIGN_OR_RETURN(store::EraseReport r, db->erase_tenant(tenant, actor));
    // The name passed validate_tenant_name ([a-z0-9_-]), so it needs no JSON escaping.
    return "{\"object\":\"tenant.erased\",\"tenant\":\"" + tenant +
           "\",\"key_destroyed\":" + (r.key_destroyed ? "true" : "false") +
           ",\"messages_deleted\":" + std::to_string(r.messages_deleted) +
           ",\"usage_deleted\":" + std::to_string(r.usage_deleted) +
           ",\"api_keys_deleted\":" + std::to_string(r.api_keys_deleted) + "}";
  };
}

// The routing gateway's per-request facts -> the request's audit record.
router::RouteFactsSink route_facts_sink(server::Services& services) {
  std::shared_ptr<server::RequestAuditor> auditor = services.auditor;
  return [auditor](const router::RouteFacts& f) {
    if (!auditor) return;
    server::RouteNote n;
    n.tenant = f.tenant;
    n.model = f.model;
    n.backend = f.backend;
    if (f.backend_kind == "local") {
      n.route = "local";
    } else if (f.backend.empty() || f.backend == "blocked" || f.backend == "none") {
      n.route = f.backend.empty() ? "none" : f.backend;
    } else {
      n.route = "remote:" + f.backend;
    }
    n.policy = f.policy;
    n.sensitivity.insert(f.categories.begin(), f.categories.end());
    n.outcome = f.outcome;
    auditor->route_facts(f.request_id, std::move(n));
  };
}

// With no model configured: data_dir/models/demo.gguf, generated once by the synth "demo-tiny"
// preset (random weights). Its vocabulary is the built-in byte-level one unless --demo-vocab
// names a vocabulary GGUF.
Result<std::string> ensure_demo_model(const server::ServerConfig& cfg, const std::string& vocab) {
  std::string path = cfg.data_dir + "/models/demo.gguf";
  if (std::filesystem::exists(path)) return path;
  std::error_code ec;
  std::filesystem::create_directories(cfg.data_dir + "/models", ec);
  model::SynthOptions o;
  o.preset = "demo-tiny";
  o.type_name = "Q8_0";
  o.vocab_path = vocab;
  o.out_path = path;
  o.n_threads = cfg.threads;
  ENCLAVE_ASSIGN_OR_RETURN(model::SynthReport r, model::synthesize(o));
  log("generated demo model %s (random weights, %s)", path,
      std::to_string(r.file_bytes / 1024) + " KiB");
  return path;
}

int serve(ServeFlags& f, CLI::App& cmd) {
  server::ServerConfig cfg;
  if (!f.config_path.empty()) {
    Status st = server::load_config_file(f.config_path, cfg);
    if (!st) {
      std::fprintf(stderr, "enclave serve: %s\n", st.error().message.c_str());
      return st.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
    }
  }
  // Flags given on the command line override the file.
  auto given = [&cmd](const char* name) { return cmd.count(name) > 0; };
  if (given("--model")) cfg.model = f.cfg.model;
  if (given("--host")) cfg.host = f.cfg.host;
  if (given("--port")) cfg.port = f.cfg.port;
  if (given("--data-dir")) cfg.data_dir = f.cfg.data_dir;
  if (given("--threads")) cfg.threads = f.cfg.threads;
  if (given("--parallel")) cfg.parallel = f.cfg.parallel;
  if (given("--ctx")) cfg.ctx = f.cfg.ctx;
  if (given("--max-queue")) cfg.max_queue = f.cfg.max_queue;
  if (given("--io-threads")) cfg.io_threads = f.cfg.io_threads;
  if (given("--io-spin-us")) cfg.io_spin_us = f.cfg.io_spin_us;
  if (given("--mmap")) cfg.mmap = true;
  if (given("--tls-cert")) cfg.tls_cert = f.cfg.tls_cert;
  if (given("--tls-key")) cfg.tls_key = f.cfg.tls_key;
  if (given("--tls-client-ca")) cfg.tls_client_ca = f.cfg.tls_client_ca;
  if (given("--metrics-public")) cfg.metrics_public = true;
  if (given("--shutdown-timeout")) cfg.shutdown_timeout_s = f.shutdown_timeout_s;
  if (given("--audit-fsync")) cfg.audit_fsync = f.cfg.audit_fsync;
  if (cfg.parallel < 1 || cfg.threads < 1 || cfg.ctx < 16 || cfg.io_threads < 1) {
    std::fprintf(stderr,
                 "enclave serve: --parallel/--threads/--io-threads must be >= 1, --ctx >= 16\n");
    return 2;
  }

  // The data directory holds keys, the audit log and the database: private from the start
  // (0700 when created here; an existing directory keeps its mode).
  if (Status st = crypto::create_private_dirs(cfg.data_dir); !st) {
    std::fprintf(stderr, "enclave serve: %s\n", st.error().message.c_str());
    return 1;
  }
  Result<std::shared_ptr<server::KeyStore>> keys = load_keys(cfg);
  if (!keys) {
    std::fprintf(stderr, "enclave serve: %s\n", keys.error().message.c_str());
    return 1;
  }
  Result<ServeDataProtection> dp = open_serve_data_protection(cfg.data_dir, cfg.audit_fsync);
  if (!dp) {
    std::fprintf(stderr, "enclave serve: %s\n", dp.error().message.c_str());
    return dp.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  server::ServerOptions so;
  so.host = cfg.host;
  so.port = cfg.port;
  so.io_threads = cfg.io_threads;
  so.io_spin_us = cfg.io_spin_us;
  so.max_body_bytes = cfg.max_body_bytes;
  so.max_header_bytes = cfg.max_header_bytes;
  so.request_timeout_s = cfg.request_timeout_s;
  so.read_timeout_s = cfg.read_timeout_s;
  so.idle_timeout_s = cfg.idle_timeout_s;
  so.tls_cert = cfg.tls_cert;
  so.tls_key = cfg.tls_key;
  so.tls_client_ca = cfg.tls_client_ca;
  so.metrics_public = cfg.metrics_public;
  so.limits.max_messages = cfg.max_messages;
  Result<std::unique_ptr<server::Server>> srv = server::Server::create(so, *keys);
  if (!srv) {
    std::fprintf(stderr, "enclave serve: %s\n", srv.error().message.c_str());
    return srv.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  server::Server& server = **srv;
  wire_data_protection(*dp, server.services(), cfg.audit_fsync == "always");
  // Routing gateway: --gateway FILE, or DEEPSEEK_API_KEY (+ DEEPSEEK_BASE_URL) alone.
  std::unique_ptr<router::Gateway> gateway;
  if (const char* ds = std::getenv("DEEPSEEK_API_KEY"); !f.gateway_path.empty() || (ds && *ds)) {
    Result<router::GatewayConfig> gcfg = f.gateway_path.empty()
                                             ? router::gateway_config_from_env()
                                             : router::load_gateway_config(f.gateway_path);
    if (!gcfg) {
      std::fprintf(stderr, "enclave serve: %s\n", gcfg.error().message.c_str());
      return gcfg.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
    }
    // RouteFacts carry categories and counts, never values; they complete the request's audit
    // record (appended before the final response bytes, see server/request_audit.h).
    router::GatewayOptions gopts;
    gopts.on_facts = route_facts_sink(server.services());
    Result<std::unique_ptr<router::Gateway>> g =
        router::Gateway::create(std::move(*gcfg), server.services(), std::move(gopts));
    if (!g) {
      std::fprintf(stderr, "enclave serve: %s\n", g.error().message.c_str());
      return g.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
    }
    gateway = std::move(*g);
    gateway->install();
    log("routing gateway: %s backends, %s policies",
        std::to_string(gateway->config().backends.size()),
        std::to_string(gateway->config().policies.size()));
  }
  if (Status st = server.start(); !st) {
    std::fprintf(stderr, "enclave serve: %s\n", st.error().message.c_str());
    return 1;
  }
  std::string scheme = server.tls() ? "https" : "http";
  log("listening on %s", scheme + "://" + cfg.host + ":" + std::to_string(server.port()));

  bool demo = cfg.model.empty();
  std::string model_path = cfg.model;
  if (demo) {
    Result<std::string> p = ensure_demo_model(cfg, f.demo_vocab);
    if (!p) {
      std::fprintf(stderr, "enclave serve: %s\n", p.error().message.c_str());
      server.shutdown(std::chrono::milliseconds(0));
      return p.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
    }
    model_path = *p;
  }
  engine::EngineOptions eo;
  eo.model_path = model_path;
  eo.n_threads = cfg.threads;
  eo.n_ctx = cfg.ctx;
  eo.n_parallel = cfg.parallel;
  eo.max_queue = cfg.max_queue;
  eo.mmap = cfg.mmap;
  auto t0 = std::chrono::steady_clock::now();
  Result<std::unique_ptr<engine::Engine>> eng = engine::Engine::create(eo);
  if (!eng) {
    std::fprintf(stderr, "enclave serve: cannot load model %s: %s\n", model_path.c_str(),
                 eng.error().message.c_str());
    server.shutdown(std::chrono::milliseconds(0));
    return 1;
  }
  std::string id = demo ? "enclave-demo" : std::filesystem::path(model_path).stem().string();
  std::vector<std::string> aliases = {(*eng)->info().name, "default", "deepseek-chat",
                                      "deepseek-reasoner"};
  const bool backend_weights_mapped = (*eng)->info().weights_mapped;
  auto backend = std::make_shared<server::EngineBackend>(std::move(*eng), id, aliases, demo);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char load_ms[32];
  std::snprintf(load_ms, sizeof(load_ms), "%.0f ms", load_s * 1000);
  log(demo ? "ready: model '%s' (DEMO: random weights, gibberish output) loaded in %s"
           : "ready: model '%s' loaded in %s",
      id, load_ms);
  if (backend_weights_mapped && !cfg.mmap) {
    log("weights are read from the file mapping: a copy would not fit in the available memory "
        "(decode is slower; free memory to get the copied, huge-page weights)");
  }
  server.set_backend(backend);

  server.wait_for_stop_signal();
  log("stopping: finishing in-flight requests (up to %s s)",
      std::to_string(cfg.shutdown_timeout_s));
  server.shutdown(std::chrono::seconds(cfg.shutdown_timeout_s));
  gateway.reset();
  server.set_backend(nullptr);
  backend.reset();
  dp->retention->stop();
  log("stopped");
  return 0;
}

}  // namespace

void register_serve(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<ServeFlags>();
  auto* cmd = app.add_subcommand("serve", "Serve the OpenAI/DeepSeek-compatible HTTP API");
  cmd->add_option("--config", f->config_path, "YAML config (flags override it)");
  cmd->add_option("--model,-m", f->cfg.model, "GGUF model (default: generated demo model)");
  cmd->add_option("--host", f->cfg.host, "Bind address (default 127.0.0.1)");
  cmd->add_option("--port", f->cfg.port, "Port (default 8080; 0 picks a free one)");
  cmd->add_option("--data-dir", f->cfg.data_dir, "Data directory (default ./data)");
  cmd->add_option("--threads,-t", f->cfg.threads, "Engine compute threads (default 2)");
  cmd->add_option("--parallel", f->cfg.parallel, "Parallel sequences / KV slots (default 4)");
  cmd->add_option("--ctx", f->cfg.ctx, "Context tokens per sequence (default 4096)");
  cmd->add_option("--max-queue", f->cfg.max_queue, "Queued requests beyond the slots (default 64)");
  cmd->add_option("--io-threads", f->cfg.io_threads, "HTTP io threads (default 2)");
  cmd->add_option("--io-spin-us", f->cfg.io_spin_us,
                  "µs an io thread keeps polling after its last event before it sleeps (default 0 "
                  "= off, 0..10000; helps only with cores to spare)");
  cmd->add_flag("--mmap", f->cfg.mmap, kMmapFlagHelp);
  cmd->add_option("--tls-cert", f->cfg.tls_cert, "PEM certificate chain: serve HTTPS");
  cmd->add_option("--tls-key", f->cfg.tls_key, "PEM private key for --tls-cert");
  cmd->add_option("--tls-client-ca", f->cfg.tls_client_ca, "PEM CA: require client certificates");
  cmd->add_flag("--metrics-public", f->cfg.metrics_public, "Serve /metrics without an admin key");
  cmd->add_option("--shutdown-timeout", f->shutdown_timeout_s,
                  "Seconds to finish in-flight requests on SIGTERM (default 10)");
  cmd->add_option("--audit-fsync", f->cfg.audit_fsync,
                  "Audit log and usage database durability: always (default), batch, never")
      ->check(CLI::IsMember({"always", "batch", "never"}));
  cmd->add_option("--demo-vocab", f->demo_vocab,
                  "Vocabulary GGUF used to generate the demo model when no --model is given");
  cmd->add_option(
      "--gateway", f->gateway_path,
      "Routing gateway YAML (backends, policies); DEEPSEEK_API_KEY alone also enables it");
  cmd->callback([f, cmd, &exit_code] { exit_code = serve(*f, *cmd); });
}

}  // namespace enclave::cli
