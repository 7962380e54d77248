// enclave: one binary, one subcommand per job. Only wiring lives here.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Enclave: private DeepSeek-class inference, routing and audit"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  int exit_code = 0;
  enclave::cli::register_version(app, exit_code);
  enclave::cli::register_cpu(app, exit_code);
  enclave::cli::register_tokenize(app, exit_code);
  enclave::cli::register_template(app, exit_code);
  enclave::cli::register_inspect(app, exit_code);
  enclave::cli::register_quantize(app, exit_code);
  enclave::cli::register_run(app, exit_code);
  enclave::cli::register_bench(app, exit_code);
  enclave::cli::register_synth(app, exit_code);
  enclave::cli::register_keys(app, exit_code);
  enclave::cli::register_tenant(app, exit_code);
  enclave::cli::register_audit(app, exit_code);
  enclave::cli::register_serve(app, exit_code);
  enclave::cli::register_scan(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return exit_code;
}
