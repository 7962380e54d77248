// model_bench: prompt-processing and decode throughput of Context::decode on a GGUF model.
// Usage: model_bench MODEL.gguf [--threads N] [--pp N] [--tg N] [--reps N] [--kv f16|q8_0|f32]
// Prints per-repetition figures and medians (tokens/s). Runs are interleaved pp, tg, pp, tg...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "model/model.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace enclave::model;
  if (argc < 2) {
    std::fprintf(
        stderr,
        "usage: %s MODEL.gguf [--threads N] [--pp N] [--tg N] [--reps N] [--kv f16|q8_0|f32]\n",
        argv[0]);
    return 2;
  }
  std::string path = argv[1];
  int threads = 2, pp = 128, tg = 64, reps = 5;
  KvType kv = KvType::kF16;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--threads")
      threads = std::atoi(v);
    else if (k == "--pp")
      pp = std::atoi(v);
    else if (k == "--tg")
      tg = std::atoi(v);
    else if (k == "--reps")
      reps = std::atoi(v);
    else if (k == "--kv")
      kv = !std::strcmp(v, "q8_0")  ? KvType::kQ8_0
           : !std::strcmp(v, "f32") ? KvType::kF32
                                    : KvType::kF16;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  const auto t_load = Clock::now();
  auto model = Model::load(path);
  if (!model) {
    std::fprintf(stderr, "error: %s\n", model.error().message.c_str());
    return 1;
  }
  const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
  const ModelConfig& c = (*model)->config();
  auto ctx = Context::create(**model, 1, pp + tg + 8, kv, threads);
  if (!ctx) {
    std::fprintf(stderr, "error: %s\n", ctx.error().message.c_str());
    return 1;
  }
  std::printf("model %s: %s, %d layers, n_embd %d, vocab %d, weights %.1f MiB, load %.3f s\n",
              path.c_str(), c.arch_name.c_str(), c.n_layer, c.n_embd, c.n_vocab,
              static_cast<double>((*model)->weight_bytes()) / (1 << 20), load_s);
  std::printf("threads %d, kv %s (%.1f MiB), pp %d, tg %d, reps %d\n", threads, kv_type_name(kv),
              static_cast<double>((*ctx)->kv_bytes()) / (1 << 20), pp, tg, reps);

  std::vector<int32_t> prompt(static_cast<size_t>(pp));
  for (int i = 0; i < pp; ++i) prompt[static_cast<size_t>(i)] = (i * 7919 + 13) % c.n_vocab;
  std::vector<float> logits;
  Batch b;
  std::vector<double> pp_tps, tg_tps;
  for (int r = 0; r < reps + 1; ++r) {  // first repetition warms the page cache; not counted
    (*ctx)->clear_slot(0);
    b.clear();
    for (int i = 0; i < pp; ++i) b.add(prompt[static_cast<size_t>(i)], i, 0, i + 1 == pp);
    auto t0 = Clock::now();
    if (auto st = (*ctx)->decode(b, logits); !st) {
      std::fprintf(stderr, "error: %s\n", st.error().message.c_str());
      return 1;
    }
    const double pp_s = std::chrono::duration<double>(Clock::now() - t0).count();
    int32_t tok =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    t0 = Clock::now();
    for (int i = 0; i < tg; ++i) {
      b.clear();
      b.add(tok, pp + i, 0, true);
      if (auto st = (*ctx)->decode(b, logits); !st) {
        std::fprintf(stderr, "error: %s\n", st.error().message.c_str());
        return 1;
      }
      tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double tg_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r == 0) continue;
    pp_tps.push_back(pp / pp_s);
    tg_tps.push_back(tg / tg_s);
    std::printf("rep %d: pp%d %.2f t/s, tg%d %.2f t/s\n", r, pp, pp_tps.back(), tg, tg_tps.back());
  }
  std::printf("median: pp%d %.2f t/s (best %.2f), tg%d %.2f t/s (best %.2f)\n", pp, median(pp_tps),
              *std::max_element(pp_tps.begin(), pp_tps.end()), tg, median(tg_tps),
              *std::max_element(tg_tps.begin(), tg_tps.end()));
  return 0;
}
