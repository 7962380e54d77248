// `enclave bench`: llama-bench-style throughput of the model's forward pass, measured directly on
// a model::Context (not through the engine queue, so no scheduling or sampling cost is counted):
//   ppN   prefill of N prompt tokens in one sequence (chunks of --n-batch tokens), tokens/s
//   tgN   N tokens decoded one at a time from an empty context, tokens/s
//   tgN xB  B sequences decoded together (one batch of B tokens per step), aggregate tokens/s
// Each test runs once to warm up, then --reps times; median, min and max are reported.
// Token ids are pseudo-random (fixed seed). Peak RSS (getrusage) is printed with the budget
// file size + KV cache + 10%.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "model/model.h"

namespace enclave::cli {
namespace {

struct BenchOptions {
  std::string model;
  int32_t n_prompt = 512;
  int32_t n_gen = 128;
  int32_t threads = 2;
  int32_t reps = 5;
  int32_t batch = 1;
  int32_t n_batch = 512;
  std::string kv_type = "f16";
  bool json = false;
  bool mmap = false;
};

struct TestResult {
  std::string name;
  int32_t n_prompt = 0;
  int32_t n_gen = 0;
  int32_t batch = 1;
  std::vector<double> tps;  // one per repetition
  double median() const {
    std::vector<double> v = tps;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
  }
  double min() const { return tps.empty() ? 0.0 : *std::min_element(tps.begin(), tps.end()); }
  double max() const { return tps.empty() ? 0.0 : *std::max_element(tps.begin(), tps.end()); }
};

uint64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

std::vector<int32_t> bench_tokens(int32_t n, int32_t n_vocab, uint64_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& v : t) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v = static_cast<int32_t>(x % static_cast<uint64_t>(n_vocab));
  }
  return t;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Prefill of n tokens into slot 0; returns seconds.
Result<double> run_pp(model::Context& ctx, const std::vector<int32_t>& tokens, int32_t n_batch) {
  ctx.clear_slot(0);
  model::Batch batch;
  std::vector<float> logits;
  const auto t0 = std::chrono::steady_clock::now();
  const auto n = static_cast<int32_t>(tokens.size());
  for (int32_t start = 0; start < n; start += n_batch) {
    const int32_t end = std::min(n, start + n_batch);
    batch.clear();
    for (int32_t i = start; i < end; ++i)
      batch.add(tokens[i], i, 0, i == n - 1, /*is_prompt=*/true);
    ENCLAVE_TRY_STATUS(ctx.decode(batch, logits));
  }
  return seconds_since(t0);
}

// n decode steps of one token for each of `n_seq` slots; returns seconds.
Result<double> run_tg(model::Context& ctx, const std::vector<int32_t>& tokens, int32_t n_gen,
                      int32_t n_seq) {
  for (int32_t s = 0; s < n_seq; ++s) ctx.clear_slot(s);
  model::Batch batch;
  std::vector<float> logits;
  const auto t0 = std::chrono::steady_clock::now();
  for (int32_t i = 0; i < n_gen; ++i) {
    batch.clear();
    for (int32_t s = 0; s < n_seq; ++s)
      batch.add(tokens[static_cast<size_t>((i * n_seq + s) % tokens.size())], i, s, true);
    ENCLAVE_TRY_STATUS(ctx.decode(batch, logits));
  }
  return seconds_since(t0);
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

int bench_command(const BenchOptions& o) {
  if (o.n_prompt < 0 || o.n_gen < 0 || o.reps < 1 || o.batch < 1 || o.threads < 1 ||
      o.n_batch < 1) {
    std::fprintf(stderr,
                 "error: -p and -n must be >= 0; -r, --batch, -t and --n-batch must be >= 1\n");
    return 2;
  }
  model::KvType kv;
  if (o.kv_type == "f16") {
    kv = model::KvType::kF16;
  } else if (o.kv_type == "q8_0") {
    kv = model::KvType::kQ8_0;
  } else if (o.kv_type == "f32") {
    kv = model::KvType::kF32;
  } else {
    std::fprintf(stderr, "error: unknown --kv-type '%s' (use f16, q8_0 or f32)\n",
                 o.kv_type.c_str());
    return 2;
  }
  auto loaded =
      model::Model::load(o.model, o.mmap ? gguf::FileMemory::kMap : gguf::FileMemory::kCopy);
  if (!loaded) {
    std::fprintf(stderr, "error: %s\n", loaded.error().message.c_str());
    return 1;
  }
  const model::Model& m = **loaded;
  m.file().collapse_huge_pages_in_background();
  m.file().wait_memory_settled();  // measure weights in huge pages, not the collapse under way
  const auto& cfg = m.config();
  const int32_t n_ctx = std::max(o.n_prompt, o.n_gen) + 1;
  const int32_t n_slots = o.batch;
  auto created = model::Context::create(m, n_slots, n_ctx, kv, o.threads);
  if (!created) {
    std::fprintf(stderr, "error: %s\n", created.error().message.c_str());
    return 1;
  }
  model::Context& ctx = **created;
  const auto tokens = bench_tokens(std::max({o.n_prompt, o.n_gen * o.batch, 1}), cfg.n_vocab, 1234);

  std::vector<TestResult> results;
  auto run_test = [&](TestResult t, auto&& once) -> bool {
    for (int32_t r = 0; r <= o.reps; ++r) {  // r == 0: warm-up
      Result<double> s = once();
      if (!s) {
        std::fprintf(stderr, "error: %s: %s\n", t.name.c_str(), s.error().message.c_str());
        return false;
      }
      const double n_tok = static_cast<double>(t.n_prompt + t.n_gen * t.batch);
      if (r > 0) t.tps.push_back(*s > 0 ? n_tok / *s : 0.0);
    }
    results.push_back(std::move(t));
    return true;
  };

  if (o.n_prompt > 0) {
    TestResult t;
    t.name = "pp" + std::to_string(o.n_prompt);
    t.n_prompt = o.n_prompt;
    std::vector<int32_t> p(tokens.begin(), tokens.begin() + o.n_prompt);
    if (!run_test(t, [&] { return run_pp(ctx, p, o.n_batch); })) return 1;
  }
  if (o.n_gen > 0) {
    TestResult t;
    t.name = "tg" + std::to_string(o.n_gen);
    t.n_gen = o.n_gen;
    if (!run_test(t, [&] { return run_tg(ctx, tokens, o.n_gen, 1); })) return 1;
    if (o.batch > 1) {
      TestResult b;
      b.name = "tg" + std::to_string(o.n_gen) + " x" + std::to_string(o.batch);
      b.n_gen = o.n_gen;
      b.batch = o.batch;
      if (!run_test(b, [&] { return run_tg(ctx, tokens, o.n_gen, o.batch); })) return 1;
    }
  }

  const uint64_t file_bytes = m.file().file_size();
  const uint64_t kv_bytes = ctx.kv_bytes();
  const uint64_t rss = peak_rss_bytes();
  const uint64_t budget = static_cast<uint64_t>(static_cast<double>(file_bytes + kv_bytes) * 1.1);
  std::string name = std::filesystem::path(o.model).filename().string();
  const double mib = 1024.0 * 1024.0;
  if (o.json) {
    std::printf(
        "{\"model\":\"%s\",\"arch\":\"%s\",\"file_bytes\":%llu,\"kv_type\":\"%s\","
        "\"kv_bytes\":%llu,\"threads\":%d,\"reps\":%d,\"results\":[",
        json_escape(name).c_str(), json_escape(cfg.arch_name).c_str(),
        static_cast<unsigned long long>(file_bytes), o.kv_type.c_str(),
        static_cast<unsigned long long>(kv_bytes), o.threads, o.reps);
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      std::printf(
          "%s{\"test\":\"%s\",\"n_prompt\":%d,\"n_gen\":%d,\"batch\":%d,"
          "\"tps_median\":%.3f,\"tps_min\":%.3f,\"tps_max\":%.3f,\"samples\":[",
          i ? "," : "", r.name.c_str(), r.n_prompt, r.n_gen, r.batch, r.median(), r.min(), r.max());
      for (size_t k = 0; k < r.tps.size(); ++k) std::printf("%s%.3f", k ? "," : "", r.tps[k]);
      std::printf("]}");
    }
    std::printf(
        "],\"weights_mapped\":%s,\"rows16_matrices\":%d,\"peak_rss_bytes\":%llu,"
        "\"rss_budget_bytes\":%llu}\n",
        m.file().memory() == gguf::FileMemory::kMap ? "true" : "false", m.repacked_matrices(),
        static_cast<unsigned long long>(rss), static_cast<unsigned long long>(budget));
    return 0;
  }
  std::printf(
      "model: %s (%s, %d layers, n_embd %d), file %.1f MiB, KV %s %.1f MiB, threads %d, "
      "reps %d\n",
      name.c_str(), cfg.arch_name.c_str(), cfg.n_layer, cfg.n_embd, file_bytes / mib,
      o.kv_type.c_str(), kv_bytes / mib, o.threads, o.reps);
  std::printf("weights: %s, %d matrices in the rows16 decode layout\n",
              m.file().memory() == gguf::FileMemory::kMap ? "mapped" : "copied",
              m.repacked_matrices());
  std::printf("| %-14s | %12s | %12s | %12s |\n", "test", "t/s median", "min", "max");
  std::printf("| %-14s | %12s | %12s | %12s |\n", "--------------", "------------", "------------",
              "------------");
  for (const auto& r : results)
    std::printf("| %-14s | %12.2f | %12.2f | %12.2f |\n", r.name.c_str(), r.median(), r.min(),
                r.max());
  if (o.batch > 1 && results.size() >= 2 && results[results.size() - 2].median() > 0)
    std::printf("batch %d aggregate / single sequence: %.2fx\n", o.batch,
                results.back().median() / results[results.size() - 2].median());
  std::printf("peak RSS: %.1f MiB (file + KV + 10%% = %.1f MiB)%s\n", rss / mib, budget / mib,
              rss <= budget ? "" : "  [over budget]");
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "bench",
      "Measure prompt-processing and generation tokens/s of a GGUF model (llama-bench style)");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("-m,--model", o->model, "GGUF model file")->required();
  cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens for the prefill test (0 skips)")
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->n_gen, "Tokens for the generation test (0 skips)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads")->capture_default_str();
  cmd->add_option("-r,--reps", o->reps, "Repetitions (after one warm-up run)")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch,
                  "Also decode this many sequences together and report aggregate t/s")
      ->capture_default_str();
  cmd->add_option("-b,--n-batch", o->n_batch, "Most tokens per prefill step")
      ->capture_default_str();
  cmd->add_option("--kv-type", o->kv_type, "KV cache type: f16, q8_0 or f32")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the results as one JSON object");
  cmd->add_flag("--mmap", o->mmap, kMmapFlagHelp);
  cmd->callback([o, &exit_code] { exit_code = bench_command(*o); });
}

}  // namespace enclave::cli
