// Scanner throughput (bytes/s per core, single thread) on mixed Chinese/English text of 1 KB,
// 16 KB and 1 MB: with a realistic density of findings (about one per 300 bytes) and with none.
// Run: build-*/bench/privacy/privacy_bench --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "privacy/scanner.h"
#include "synthetic.h"

namespace {

using enclave::privacy::SensitivityScanner;
namespace td = enclave::privacy::testdata;

const SensitivityScanner& scanner() {
  static const auto s = [] {
    enclave::privacy::ScanRules rules;
    rules.terms.push_back(
        {"codename", enclave::privacy::Level::kSecret, {"Phoenix", "凤凰计划"}, {R"(PRJ-\d{4})"}});
    auto r = SensitivityScanner::create(rules);
    if (!r) std::abort();
    return std::move(*r);
  }();
  return *s;
}

std::string make_text(size_t size, bool with_findings) {
  static const char* kFiller[] = {
      "今天下午三点在二号会议室讨论第三季度的销售计划，请大家提前准备材料。",
      "The quarterly report is attached; please review the numbers before Friday's meeting. ",
      "客户反馈新版本的界面更加清晰，但是加载速度还需要优化。",
      "We shipped 1,250 units in March and expect growth of 12% next quarter, per the plan. ",
      "请在系统中更新订单状态，订单编号为20240315001，备注已处理。",
  };
  const std::string id = td::cn_id("110101", "19900307", "123");
  const std::string items[] = {
      "联系电话13812345678，",
      "email alice@example.com ",
      "身份证" + id + "，",
      "card 4111 1111 1111 1111 ",
      "server 192.168.10.20 ",
      "项目凤凰计划进展顺利，",
      "key sk-" + td::token_chars(40, td::kAlnum, 1) + " ",
      "IBAN DE89370400440532013000 ",
  };
  std::string text;
  size_t i = 0;
  while (text.size() < size) {
    text += kFiller[i % 5];
    if (with_findings && i % 2 == 1) text += items[(i / 2) % 8];
    ++i;
  }
  // Cut on a code-point boundary.
  size_t cut = size;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  return text;
}

void BM_Scan(benchmark::State& state) {
  const std::string text = make_text(static_cast<size_t>(state.range(0)), state.range(1) != 0);
  const auto& s = scanner();
  size_t n_findings = 0;
  for (auto _ : state) {
    auto r = s.scan(text);
    if (!r) std::abort();
    n_findings = r->size();
    benchmark::DoNotOptimize(r->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["findings"] = static_cast<double>(n_findings);
}

BENCHMARK(BM_Scan)
    ->ArgNames({"bytes", "findings"})
    ->Args({1 << 10, 1})
    ->Args({16 << 10, 1})
    ->Args({1 << 20, 1})
    ->Args({1 << 10, 0})
    ->Args({16 << 10, 0})
    ->Args({1 << 20, 0});

}  // namespace

BENCHMARK_MAIN();
