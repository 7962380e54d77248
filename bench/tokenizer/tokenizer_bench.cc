// Encoding throughput (MB/s of input text) on mixed Chinese/English text, one core.
//   build-*/bench/tokenizer/tokenizer_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace {

using enclave::tokenizer::Tokenizer;

Tokenizer load(const std::string& name) {
  auto f = enclave::gguf::GgufFile::open(std::string(ENCLAVE_FIXTURES_DIR) + "/tokenizer/" + name);
  if (!f) std::abort();
  auto t = Tokenizer::from_gguf(*f);
  if (!t) std::abort();
  return std::move(*t);
}

// ~64 KiB of mixed text: English prose, Chinese, code and numbers.
std::string corpus() {
  const std::string parts[] = {
      "Local deployment keeps customer data inside the company network. ",
      "本地部署大模型的好处是数据不会离开公司的服务器。",
      "def encode(text):\n    return [ord(c) for c in text]  # 42 items\n",
      "The quarterly revenue grew 12.5% to $3,456,789 in 2024. ",
      "《红楼梦》是中国古典小说的巅峰之作，我们今天讨论它的结构。",
      "It's what they've said: we'll see, I'm sure you'd agree. ",
  };
  std::string s;
  for (size_t i = 0; s.size() < 64 * 1024; ++i) s += parts[i % 6];
  return s;
}

void run(benchmark::State& state, const char* vocab) {
  const Tokenizer tok = load(vocab);
  const std::string text = corpus();
  size_t n_tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text, false, false);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
}

void BM_EncodeDeepseekLlm(benchmark::State& state) {
  run(state, "ggml-vocab-deepseek-llm.gguf");
}
void BM_EncodeQwen2Tiny(benchmark::State& state) {
  run(state, "tiny-bpe-qwen2.vocab.gguf");
}
void BM_EncodeLlamaSpm(benchmark::State& state) {
  run(state, "ggml-vocab-llama-spm.gguf");
}

BENCHMARK(BM_EncodeDeepseekLlm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeQwen2Tiny)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeLlamaSpm)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
