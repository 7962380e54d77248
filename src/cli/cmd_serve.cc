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

#include "cli/commands.h"
#include "engine/engine.h"
#include "model/synth.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/engine_backend.h"
#include "server/server.h"

namespace enclave::cli {
namespace {

struct ServeFlags {
  std::string config_path;
  server::ServerConfig cfg;  // flag values land here; applied over the file when given
  int32_t shutdown_timeout_s = 10;
  std::string demo_vocab;
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

// With no model configured: data_dir/models/demo.gguf, generated once by the synth "demo-tiny"
// preset (random weights). Needs a vocabulary GGUF (none is embedded in the binary).
Result<std::string> ensure_demo_model(const server::ServerConfig& cfg, const std::string& vocab) {
  std::string path = cfg.data_dir + "/models/demo.gguf";
  if (std::filesystem::exists(path)) return path;
  if (vocab.empty()) {
    // TODO(model): once `synth demo-tiny` can build its own small byte-level vocabulary, drop
    // this requirement.
    return Error(ErrorCode::kInvalidArgument,
                 "no model configured and no demo model in " + path +
                     "; pass --model M.gguf, or --demo-vocab VOCAB.gguf (any GGUF with a "
                     "tokenizer, e.g. a vocab-only file) to generate the random-weight demo model");
  }
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
  if (given("--tls-cert")) cfg.tls_cert = f.cfg.tls_cert;
  if (given("--tls-key")) cfg.tls_key = f.cfg.tls_key;
  if (given("--tls-client-ca")) cfg.tls_client_ca = f.cfg.tls_client_ca;
  if (given("--metrics-public")) cfg.metrics_public = true;
  if (given("--shutdown-timeout")) cfg.shutdown_timeout_s = f.shutdown_timeout_s;
  if (cfg.parallel < 1 || cfg.threads < 1 || cfg.ctx < 16 || cfg.io_threads < 1) {
    std::fprintf(stderr,
                 "enclave serve: --parallel/--threads/--io-threads must be >= 1, --ctx >= 16\n");
    return 2;
  }

  Result<std::shared_ptr<server::KeyStore>> keys = load_keys(cfg);
  if (!keys) {
    std::fprintf(stderr, "enclave serve: %s\n", keys.error().message.c_str());
    return 1;
  }
  server::ServerOptions so;
  so.host = cfg.host;
  so.port = cfg.port;
  so.io_threads = cfg.io_threads;
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
  auto backend = std::make_shared<server::EngineBackend>(std::move(*eng), id, aliases, demo);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char load_ms[32];
  std::snprintf(load_ms, sizeof(load_ms), "%.0f ms", load_s * 1000);
  log(demo ? "ready: model '%s' (DEMO: random weights, gibberish output) loaded in %s"
           : "ready: model '%s' loaded in %s",
      id, load_ms);
  server.set_backend(backend);

  server.wait_for_stop_signal();
  log("stopping: finishing in-flight requests (up to %s s)",
      std::to_string(cfg.shutdown_timeout_s));
  server.shutdown(std::chrono::seconds(cfg.shutdown_timeout_s));
  server.set_backend(nullptr);
  backend.reset();
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
  cmd->add_option("--tls-cert", f->cfg.tls_cert, "PEM certificate chain: serve HTTPS");
  cmd->add_option("--tls-key", f->cfg.tls_key, "PEM private key for --tls-cert");
  cmd->add_option("--tls-client-ca", f->cfg.tls_client_ca, "PEM CA: require client certificates");
  cmd->add_flag("--metrics-public", f->cfg.metrics_public, "Serve /metrics without an admin key");
  cmd->add_option("--shutdown-timeout", f->shutdown_timeout_s,
                  "Seconds to finish in-flight requests on SIGTERM (default 10)");
  cmd->add_option("--demo-vocab", f->demo_vocab,
                  "Vocabulary GGUF used to generate the demo model when no --model is given");
  cmd->callback([f, cmd, &exit_code] { exit_code = serve(*f, *cmd); });
}

}  // namespace enclave::cli
