// Subcommand registration: each command lives in its own cmd_<name>.cc and registers itself
// with the CLI11 app here. main.cc only wires them; no logic of its own.
#pragma once

#include <CLI/CLI.hpp>

namespace enclave::cli {

// Each register function adds one subcommand to `app`. The callback it installs stores its exit
// code in `exit_code` (0 ok, 1 runtime failure, 2 bad arguments).
void register_version(CLI::App& app, int& exit_code);
void register_cpu(CLI::App& app, int& exit_code);

}  // namespace enclave::cli
