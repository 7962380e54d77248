// `enclave synth`: writes a random-weight model with the exact shapes and metadata of a real one
// (benchmarks and demos without downloading weights). Type choice follows `enclave quantize`.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "model/quantize_plan.h"
#include "model/synth.h"

namespace enclave::cli {

namespace {

struct SynthArgs {
  std::string preset;
  std::string type = "Q4_0";
  std::string vocab;
  std::string output;
  uint64_t seed = 42;
  int32_t layers = 0;
  int32_t threads = 0;
};

std::string preset_list() {
  std::string s;
  for (std::string_view n : model::synth_preset_names())
    s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

}  // namespace

void register_synth(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<SynthArgs>();
  auto* cmd = app.add_subcommand(
      "synth",
      "Write a random-weight model with the shapes and metadata of a real one (demo/bench)");
  cmd->add_option("--preset", a->preset, "Model shape: " + preset_list())->required();
  cmd->add_option("--type", a->type, "Weight type or mix: " + model::quant_target_list())
      ->default_val("Q4_0");
  cmd->add_option("--vocab", a->vocab,
                  "GGUF whose tokenizer.* keys are copied (vocab-only is fine); default: a "
                  "built-in byte-level vocabulary");
  cmd->add_option("output", a->output, "Destination .gguf")->required();
  cmd->add_option("--seed", a->seed, "Random seed (same seed => same file)");
  cmd->add_option("--layers", a->layers, "Override the layer count (small test models)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("-t,--threads", a->threads, "Worker threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([a, &exit_code] {
    const auto target = model::parse_quant_target(a->type);
    if (!target) {
      std::fprintf(stderr, "enclave synth: error: unknown type '%s'; valid types: %s\n",
                   a->type.c_str(), model::quant_target_list().c_str());
      exit_code = 2;
      return;
    }
    model::SynthOptions o;
    o.preset = a->preset;
    o.type_name = target->name;
    o.vocab_path = a->vocab;
    o.out_path = a->output;
    o.seed = a->seed;
    o.layers = a->layers;
    o.n_threads = a->threads > 0
                      ? a->threads
                      : static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
    const auto start = std::chrono::steady_clock::now();
    auto r = model::synthesize(o);
    if (!r) {
      std::fprintf(stderr, "enclave synth: error: %s\n", r.error().message.c_str());
      exit_code = r.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
      return;
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "wrote %s: preset %s, %s, %d layers, vocab %d, %zu tensors, %.3f B params, "
        "%.1f MiB, %.2f s (random weights, demo)\n",
        a->output.c_str(), a->preset.c_str(), target->name.c_str(), r->n_layer, r->n_vocab,
        r->n_tensors, static_cast<double>(r->n_params) / 1e9,
        static_cast<double>(r->file_bytes) / (1024.0 * 1024.0), secs);
    exit_code = 0;
  });
}

}  // namespace enclave::cli
