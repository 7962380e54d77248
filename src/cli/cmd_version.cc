// `enclave version` and `enclave cpu`: build and machine facts.
#include <cstdio>

#include "cli/commands.h"
#include "core/cpu_features.h"

namespace enclave::cli {

void register_version(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("version", "Print the Enclave version");
  cmd->callback([&exit_code] {
    std::printf("enclave %s\n", ENCLAVE_VERSION);
    exit_code = 0;
  });
}

void register_cpu(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("cpu", "Print the CPU features the kernels will use");
  cmd->callback([&exit_code] {
    std::printf("%s\n", cpu_features_summary().c_str());
    exit_code = 0;
  });
}

}  // namespace enclave::cli
