// `enclave serve` configuration: defaults, YAML file (yaml-cpp), then CLI flags override.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace enclave::server {

// `io_spin_us` / `enclave serve --io-spin-us` default (src/server/README.md has the measurements)
// and the largest value accepted.
inline constexpr int32_t kDefaultIoSpinUs = 0;
inline constexpr int32_t kMaxIoSpinUs = 10000;

struct ConfiguredKey {
  std::string name;
  std::string key;  // plaintext in the config; hashed at load, never persisted
  std::vector<std::string> scopes;
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string model;  // empty: generate the demo model into data_dir/models/demo.gguf
  std::string data_dir = "./data";
  int32_t threads = 2;     // engine compute threads
  int32_t parallel = 4;    // KV slots (continuous batching width)
  int32_t ctx = 4096;      // context per slot
  int32_t max_queue = 64;  // queued requests beyond the slots; more -> 429
  int32_t io_threads = 2;  // HTTP io threads (no thread per connection)
  // µs an io thread keeps polling after its last handler before it blocks (0: never spins).
  int32_t io_spin_us = kDefaultIoSpinUs;
  bool mmap = false;     // map the model file instead of copying it (gguf::FileMemory)
  std::string tls_cert;  // PEM; TLS when set (with tls_key)
  std::string tls_key;
  std::string tls_client_ca;    // PEM CA bundle; require client certificates (mTLS) when set
  bool metrics_public = false;  // false: /metrics needs a key with the admin scope
  uint64_t max_body_bytes = 4ull << 20;
  uint32_t max_header_bytes = 16 * 1024;
  uint32_t max_messages = 1024;
  int32_t request_timeout_s = 600;  // whole request incl. generation
  int32_t read_timeout_s = 30;      // receiving one request
  int32_t idle_timeout_s = 60;      // keep-alive idle connection
  int32_t shutdown_timeout_s = 10;
  // When an audit entry (and a usage row) counts as written: "always" = after fsync, before the
  // response is acknowledged (the default; costs an fsync per request); "batch" = fsynced by a
  // background thread every few ms (a crash can lose the last ones); "never" = left to the OS.
  std::string audit_fsync = "always";
  std::string key_file;  // default data_dir/keys.json
  std::vector<ConfiguredKey> keys;

  std::string effective_key_file() const {
    return key_file.empty() ? data_dir + "/keys.json" : key_file;
  }
};

// Reads a YAML file over the defaults in `config`. Unknown keys are an error (typo safety).
Status load_config_file(const std::string& path, ServerConfig& config);
// Same, from YAML text (tests).
Status load_config_text(const std::string& yaml_text, ServerConfig& config,
                        const std::string& origin = "<config>");

}  // namespace enclave::server
