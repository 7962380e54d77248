// Subcommand registration: each command lives in its own cmd_<name>.cc and registers itself
// with the CLI11 app here. main.cc only wires them; no logic of its own.
#pragma once

#include <CLI/CLI.hpp>

namespace enclave::cli {

// Each register function adds one subcommand to `app`. The callback it installs stores its exit
// code in `exit_code` (0 ok, 1 runtime failure, 2 bad arguments).
void register_version(CLI::App& app, int& exit_code);
void register_cpu(CLI::App& app, int& exit_code);
void register_tokenize(CLI::App& app, int& exit_code);
void register_template(CLI::App& app, int& exit_code);
void register_inspect(CLI::App& app, int& exit_code);
void register_quantize(CLI::App& app, int& exit_code);
void register_run(CLI::App& app, int& exit_code);
void register_bench(CLI::App& app, int& exit_code);
void register_synth(CLI::App& app, int& exit_code);
void register_keys(CLI::App& app, int& exit_code);
void register_tenant(CLI::App& app, int& exit_code);
void register_audit(CLI::App& app, int& exit_code);
void register_serve(CLI::App& app, int& exit_code);
void register_scan(CLI::App& app, int& exit_code);

// Help text of the --mmap flag that run, bench and serve share.
inline constexpr const char* kMmapFlagHelp =
    "Map the model file instead of reading it into huge-page memory: near-instant load and page "
    "cache shared with other processes, but slower decode (4 KiB pages)";

}  // namespace enclave::cli
