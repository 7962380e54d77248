// Helpers shared by the audit tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "crypto/primitives.h"
#include "crypto/secret.h"

namespace enclave::audit::testing {

inline std::filesystem::path temp_dir(const std::string& tag) {
  auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::temp_directory_path() /
             ("enclave_" + tag + "_" + std::to_string(::getpid()) + "_" + info->test_suite_name() +
              "_" + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A complete, valid request record; `i` makes its id and token counts distinct.
inline RequestAudit sample_request(int i) {
  return RequestAudit{.request_id = "req-" + std::to_string(i),
                      .key_name = "ci-key",
                      .tenant = "acme",
                      .route = "local",
                      .policy = "default@3",
                      .model = "deepseek-v2-lite",
                      .model_version = "q4_0@abc123",
                      .sensitivity = {{"email", 2}, {"iban", 1}},
                      .prompt_tokens = 100u + i,
                      .completion_tokens = 20,
                      .latency_ms = 12.5,
                      .outcome = "ok",
                      .http_status = 200};
}

inline crypto::SecretBytes test_key(uint8_t fill = 0x42) {
  crypto::SecretBytes k(32);
  for (size_t i = 0; i < k.size(); ++i) k.data()[i] = static_cast<uint8_t>(fill + i);
  return k;
}

inline std::vector<std::string> read_lines(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

inline void write_lines(const std::filesystem::path& p, const std::vector<std::string>& lines) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  for (const auto& l : lines) out << l << '\n';
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace enclave::audit::testing
