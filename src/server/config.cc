// YAML configuration for `enclave serve`.
#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace enclave::server {
namespace {

template <class T>
Status read(const YAML::Node& node, const char* name, T& out, const std::string& origin) {
  const YAML::Node v = node[name];
  if (!v) return Status::ok();
  try {
    out = v.as<T>();
  } catch (const YAML::Exception&) {
    return Error(ErrorCode::kInvalidArgument, origin + ": '" + name +
                                                  "' has the wrong type (line " +
                                                  std::to_string(v.Mark().line + 1) + ")");
  }
  return Status::ok();
}

}  // namespace

Status load_config_text(const std::string& yaml_text, ServerConfig& c, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::kInvalidArgument,
                 origin + ": not valid YAML (line " + std::to_string(e.mark.line + 1) + ")");
  }
  if (root.IsNull()) return Status::ok();
  if (!root.IsMap())
    return Error(ErrorCode::kInvalidArgument, origin + ": top level must be a map");
  static const std::set<std::string> kKnown = {"host",
                                               "port",
                                               "model",
                                               "data_dir",
                                               "threads",
                                               "parallel",
                                               "ctx",
                                               "max_queue",
                                               "io_threads",
                                               "io_spin_us",
                                               "tls_cert",
                                               "tls_key",
                                               "tls_client_ca",
                                               "metrics_public",
                                               "max_body_bytes",
                                               "max_header_bytes",
                                               "max_messages",
                                               "request_timeout_s",
                                               "read_timeout_s",
                                               "idle_timeout_s",
                                               "shutdown_timeout_s",
                                               "audit_fsync",
                                               "mmap",
                                               "key_file",
                                               "keys"};
  for (const auto& kv : root) {
    std::string k = kv.first.as<std::string>("");
    if (!kKnown.count(k)) {
      return Error(ErrorCode::kInvalidArgument,
                   origin + ": unknown setting '" + k + "' (see src/server/README.md)");
    }
  }
  int port = c.port;
  ENCLAVE_TRY_STATUS(read(root, "host", c.host, origin));
  ENCLAVE_TRY_STATUS(read(root, "port", port, origin));
  if (port < 0 || port > 65535) {
    return Error(ErrorCode::kInvalidArgument, origin + ": 'port' must be 0..65535");
  }
  c.port = static_cast<uint16_t>(port);
  ENCLAVE_TRY_STATUS(read(root, "model", c.model, origin));
  ENCLAVE_TRY_STATUS(read(root, "data_dir", c.data_dir, origin));
  ENCLAVE_TRY_STATUS(read(root, "threads", c.threads, origin));
  ENCLAVE_TRY_STATUS(read(root, "parallel", c.parallel, origin));
  ENCLAVE_TRY_STATUS(read(root, "ctx", c.ctx, origin));
  ENCLAVE_TRY_STATUS(read(root, "max_queue", c.max_queue, origin));
  ENCLAVE_TRY_STATUS(read(root, "io_threads", c.io_threads, origin));
  ENCLAVE_TRY_STATUS(read(root, "io_spin_us", c.io_spin_us, origin));
  if (c.io_spin_us < 0 || c.io_spin_us > kMaxIoSpinUs) {
    return Error(ErrorCode::kInvalidArgument, origin + ": 'io_spin_us' must be 0.." +
                                                  std::to_string(kMaxIoSpinUs) +
                                                  " (microseconds; 0 never spins)");
  }
  ENCLAVE_TRY_STATUS(read(root, "mmap", c.mmap, origin));
  ENCLAVE_TRY_STATUS(read(root, "tls_cert", c.tls_cert, origin));
  ENCLAVE_TRY_STATUS(read(root, "tls_key", c.tls_key, origin));
  ENCLAVE_TRY_STATUS(read(root, "tls_client_ca", c.tls_client_ca, origin));
  ENCLAVE_TRY_STATUS(read(root, "metrics_public", c.metrics_public, origin));
  ENCLAVE_TRY_STATUS(read(root, "max_body_bytes", c.max_body_bytes, origin));
  ENCLAVE_TRY_STATUS(read(root, "max_header_bytes", c.max_header_bytes, origin));
  ENCLAVE_TRY_STATUS(read(root, "max_messages", c.max_messages, origin));
  ENCLAVE_TRY_STATUS(read(root, "request_timeout_s", c.request_timeout_s, origin));
  ENCLAVE_TRY_STATUS(read(root, "read_timeout_s", c.read_timeout_s, origin));
  ENCLAVE_TRY_STATUS(read(root, "idle_timeout_s", c.idle_timeout_s, origin));
  ENCLAVE_TRY_STATUS(read(root, "shutdown_timeout_s", c.shutdown_timeout_s, origin));
  ENCLAVE_TRY_STATUS(read(root, "audit_fsync", c.audit_fsync, origin));
  if (c.audit_fsync != "always" && c.audit_fsync != "batch" && c.audit_fsync != "never") {
    return Error(ErrorCode::kInvalidArgument,
                 origin + ": 'audit_fsync' must be always, batch or never");
  }
  ENCLAVE_TRY_STATUS(read(root, "key_file", c.key_file, origin));
  if (const YAML::Node keys = root["keys"]) {
    if (!keys.IsSequence()) {
      return Error(ErrorCode::kInvalidArgument, origin + ": 'keys' must be a list");
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      const YAML::Node k = keys[i];
      std::string where = origin + ": keys[" + std::to_string(i) + "]";
      if (!k.IsMap() || !k["key"]) {
        return Error(ErrorCode::kInvalidArgument, where + " needs 'key' (and 'name', 'scopes')");
      }
      ConfiguredKey ck;
      try {
        ck.key = k["key"].as<std::string>();
        ck.name = k["name"] ? k["name"].as<std::string>() : "key" + std::to_string(i);
        if (k["scopes"]) {
          ck.scopes = k["scopes"].as<std::vector<std::string>>();
        } else {
          ck.scopes = {"chat", "embeddings"};
        }
      } catch (const YAML::Exception&) {
        return Error(ErrorCode::kInvalidArgument, where + " has a field of the wrong type");
      }
      c.keys.push_back(std::move(ck));
    }
  }
  if (c.parallel < 1 || c.ctx < 16 || c.threads < 1 || c.io_threads < 1 || c.max_queue < 0) {
    return Error(ErrorCode::kInvalidArgument,
                 origin + ": parallel, threads and io_threads must be >= 1, ctx >= 16");
  }
  return Status::ok();
}

Status load_config_file(const std::string& path, ServerConfig& config) {
  std::ifstream in(path);
  if (!in) {
    return Error(ErrorCode::kNotFound,
                 "config file " + path + " not found; pass --config with an existing file");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return load_config_text(ss.str(), config, path);
}

}  // namespace enclave::server
