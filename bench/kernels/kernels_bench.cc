// Kernel benchmarks: memory read bandwidth, matrix-vector (weight GB/s and the fraction of the
// measured read bandwidth) and 128-token matrix-matrix (GFLOP/s) for the Qwen2-1.5B FFN shapes.
//
//   kernels_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Matrix-vector cycles through 1 GiB of distinct weights so that every call streams from DRAM.
// On a shared machine wall time mostly measures the other tenants: every benchmark also reports
// cpu_* counters computed from the CPU time of all pool threads (CLOCK_THREAD_CPUTIME_ID), i.e.
// the rate the threads achieved while they were actually running (spin-waits included).
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <sys/mman.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/cpu_features.h"
#include "core/fp16.h"
#include "kernels/matmul.h"
#include "kernels/repack.h"
#include "kernels/thread_pool.h"
#include "kernels/vec_dot.h"

namespace enclave::kernels {
namespace {

constexpr size_t kBandwidthBytes = size_t{2} << 30;
constexpr size_t kWeightPoolBytes = size_t{1} << 30;

ThreadPool& pool(int n) {
  static ThreadPool p1(1), p2(2);
  return n == 1 ? p1 : p2;
}

// Huge-page backed when possible (fewer TLB misses, as a mmap'd model would get with THP).
struct Buffer {
  uint8_t* data = nullptr;
  size_t size = 0;
  explicit Buffer(size_t n) : size(n) {
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    madvise(p, n, MADV_HUGEPAGE);
    data = static_cast<uint8_t*>(p);
  }
  ~Buffer() {
    if (data != nullptr) munmap(data, size);
  }
};

void fill_random(uint8_t* p, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    std::memcpy(p + i, &s, 8);
  }
}

// Normal, small f16 scales in every block (random bytes could be denormal/NaN and slow FMAs).
void fix_scales(DType t, uint8_t* p, size_t bytes) {
  const auto& tr = dtype_traits(t);
  const uint16_t h = f32_to_fp16(0.01f);
  size_t off = 0;
  switch (t) {
    case DType::kQ4_0:
    case DType::kQ8_0:
    case DType::kQ4_K:
      off = 0;
      break;
    case DType::kQ6_K:
      off = 208;
      break;
    default:
      return;
  }
  for (size_t b = 0; b + tr.block_bytes <= bytes; b += tr.block_bytes) {
    std::memcpy(p + b + off, &h, 2);
    if (t == DType::kQ4_K) std::memcpy(p + b + 2, &h, 2);
  }
}

double g_read_gbps[3] = {0, 0, 0};      // measured read bandwidth by thread count
double g_cpu_read_gbps[3] = {0, 0, 0};  // the same per CPU time

// Sum of the CPU seconds consumed so far by every thread of the pool.
double pool_cpu_seconds(ThreadPool& tp) {
  double s[2] = {0.0, 0.0};
  tp.run_ref([&](int i, int) {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    s[i] = static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  });
  return s[0] + s[1];
}

// Bytes per second of CPU time per thread: the wall rate on a machine that is not shared.
double cpu_rate(double amount, double cpu_seconds, int nt) {
  return cpu_seconds > 0 ? amount / (cpu_seconds / nt) : 0.0;
}

// Eight independent accumulators (add latency x throughput) over 512-bit loads, with software
// prefetch a few KiB ahead: bounded by DRAM, not by the add chain.
float sum_range(const uint8_t* p, size_t n) {
  __m512 acc[8];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  for (size_t i = 0; i < n / 4; i += 128) {
    _mm_prefetch(reinterpret_cast<const char*>(f + i) + 4096, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(f + i) + 4096 + 256, _MM_HINT_T0);
    for (int k = 0; k < 8; ++k) acc[k] = _mm512_add_ps(acc[k], _mm512_load_ps(f + i + 16 * k));
  }
  for (int k = 1; k < 8; ++k) acc[0] = _mm512_add_ps(acc[0], acc[k]);
  return _mm512_reduce_add_ps(acc[0]);
}

void BM_ReadBandwidth(benchmark::State& state) {
  if (!cpu_features().avx512f) {
    state.SkipWithError("needs AVX-512");
    return;
  }
  const int nt = static_cast<int>(state.range(0));
  static Buffer buf(kBandwidthBytes);
  static bool filled = false;
  if (!filled) {
    // Touch (and really write) every page before timing: no page faults, no shared zero page.
    fill_random(buf.data, buf.size, 3);
    for (size_t i = 0; i < buf.size; i += 4) buf.data[i + 3] &= 0x3F;  // finite floats
    filled = true;
  }
  ThreadPool& tp = pool(nt);
  float sink = 0.0f;
  double seconds = 0.0;
  const double cpu0 = pool_cpu_seconds(tp);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    float partial[2][16] = {};  // one cache line each
    tp.run_ref([&](int i, int n) {
      const size_t per = buf.size / static_cast<size_t>(n);
      partial[i][0] = sum_range(buf.data + per * static_cast<size_t>(i), per);
    });
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink += partial[0][0] + partial[1][0];
  }
  const double cpu = pool_cpu_seconds(tp) - cpu0;
  benchmark::DoNotOptimize(sink);
  const double bytes = static_cast<double>(buf.size) * static_cast<double>(state.iterations());
  g_read_gbps[nt] = bytes / seconds / 1e9;
  g_cpu_read_gbps[nt] = cpu_rate(bytes, cpu, nt) / 1e9;
  state.counters["read_GBps"] = g_read_gbps[nt];
  state.counters["cpu_read_GBps"] = g_cpu_read_gbps[nt];
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

DType type_arg(int64_t i) {
  static const DType kTypes[] = {DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kQ8_0};
  return kTypes[i];
}

// args: type index, cols, rows, threads. `hot`: one matrix, so the weights come from the caches
// (the kernel's compute ceiling) instead of cycling through 1 GiB (the DRAM-bound case).
// `layout`: the weights' arrangement (rows16: repacked for decode, see kernels/repack.h);
// `tokens`: 1 (matrix-vector) or a small decode batch (weights still streamed once).
void matvec_bench(benchmark::State& state, bool hot, WeightLayout layout = WeightLayout::kGguf,
                  int64_t tokens = 1) {
  const DType t = type_arg(state.range(0));
  const int64_t cols = state.range(1), rows = state.range(2);
  const int nt = static_cast<int>(state.range(3));
  const size_t row_bytes = dtype_row_bytes(t, static_cast<uint64_t>(cols));
  const size_t mat_bytes = row_bytes * static_cast<size_t>(rows);
  const size_t n_mats = hot ? 1 : std::max<size_t>(2, kWeightPoolBytes / mat_bytes);
  Buffer weights(mat_bytes * n_mats);
  fill_random(weights.data, weights.size, 7);
  fix_scales(t, weights.data, weights.size);
  if (layout == WeightLayout::kRows16) {
    for (size_t m = 0; m < n_mats; ++m)
      repack_rows16_in_place(t, weights.data + m * mat_bytes, rows, cols);
  }
  std::vector<float> x(static_cast<size_t>(cols * tokens)), y(static_cast<size_t>(rows * tokens));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
  WeightMatrix w{t, nullptr, cols, rows, row_bytes, layout};
  std::vector<uint8_t> scratch(matmul_scratch_bytes(w, tokens));
  ThreadPool& tp = pool(nt);
  size_t k = 0;
  double seconds = 0.0;
  const double cpu0 = pool_cpu_seconds(tp);
  for (auto _ : state) {
    w.data = weights.data + mat_bytes * k;
    k = (k + 1) % n_mats;
    const auto t0 = std::chrono::steady_clock::now();
    matmul(w, x.data(), tokens, y.data(), tp, scratch.data(), MatmulMode::kDecode);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(y.data());
  }
  const double cpu = pool_cpu_seconds(tp) - cpu0;
  const double bytes = static_cast<double>(mat_bytes) * static_cast<double>(state.iterations());
  const double gbps = bytes / seconds / 1e9;
  const double cpu_gbps = cpu_rate(bytes, cpu, nt) / 1e9;
  state.counters["weight_GBps"] = gbps;
  state.counters["cpu_weight_GBps"] = cpu_gbps;
  if (g_read_gbps[nt] > 0) state.counters["frac_of_read_bw"] = gbps / g_read_gbps[nt];
  if (g_cpu_read_gbps[nt] > 0)
    state.counters["cpu_frac_of_read_bw"] = cpu_gbps / g_cpu_read_gbps[nt];
  state.SetLabel(std::string(dtype_name(t)) + (layout == WeightLayout::kRows16 ? " rows16" : ""));
}

void BM_Matvec(benchmark::State& state) {
  matvec_bench(state, false);
}
void BM_MatvecHot(benchmark::State& state) {
  matvec_bench(state, true);
}
// The rows16 decode layout, and 4-token decode batches in both layouts.
void BM_MatvecRows16(benchmark::State& state) {
  matvec_bench(state, false, WeightLayout::kRows16);
}
void BM_MatvecRows16Hot(benchmark::State& state) {
  matvec_bench(state, true, WeightLayout::kRows16);
}
void BM_Decode4(benchmark::State& state) {
  matvec_bench(state, false, WeightLayout::kGguf, 4);
}
void BM_Decode4Rows16(benchmark::State& state) {
  matvec_bench(state, false, WeightLayout::kRows16, 4);
}

// args: type index, cols, rows, threads; 128 tokens (the AMX prompt path where the CPU has it).
// `layout`: rows16 is what the engine stores on AVX-512 CPUs, so prompts read it.
void matmul128_bench(benchmark::State& state, WeightLayout layout) {
  const DType t = type_arg(state.range(0));
  const int64_t cols = state.range(1), rows = state.range(2);
  const int nt = static_cast<int>(state.range(3));
  constexpr int64_t kTokens = 128;
  const size_t row_bytes = dtype_row_bytes(t, static_cast<uint64_t>(cols));
  Buffer weights(row_bytes * static_cast<size_t>(rows));
  fill_random(weights.data, weights.size, 9);
  fix_scales(t, weights.data, weights.size);
  if (layout == WeightLayout::kRows16) repack_rows16_in_place(t, weights.data, rows, cols);
  std::vector<float> x(static_cast<size_t>(cols * kTokens)), y(static_cast<size_t>(rows * kTokens));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
  const WeightMatrix w{t, weights.data, cols, rows, row_bytes, layout};
  std::vector<uint8_t> scratch(matmul_scratch_bytes(w, kTokens));
  ThreadPool& tp = pool(nt);
  const double cpu0 = pool_cpu_seconds(tp);
  for (auto _ : state) {
    matmul(w, x.data(), kTokens, y.data(), tp, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double cpu = pool_cpu_seconds(tp) - cpu0;
  const double gflop = 2.0 * static_cast<double>(rows * cols * kTokens) *
                       static_cast<double>(state.iterations()) / 1e9;
  state.counters["GFLOPs"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  state.counters["cpu_GFLOPs"] = cpu_rate(gflop, cpu, nt);
  state.SetLabel(std::string(dtype_name(t)) + (layout == WeightLayout::kRows16 ? " rows16" : ""));
}
void BM_Matmul128(benchmark::State& state) {
  matmul128_bench(state, WeightLayout::kGguf);
}
void BM_Matmul128Rows16(benchmark::State& state) {
  matmul128_bench(state, WeightLayout::kRows16);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t type = 0; type < 4; ++type) {
    for (auto [cols, rows] : {std::pair<int64_t, int64_t>{1536, 8960}, {8960, 1536}}) {
      if (type == 1 || type == 2) {
        if (cols % 256 != 0) continue;
      }
      for (int64_t nt : {1, 2}) b->Args({type, cols, rows, nt});
    }
  }
}
BENCHMARK(BM_Matvec)
    ->Apply(shapes)
    ->ArgNames({"type", "cols", "rows", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MatvecHot)
    ->Apply(shapes)
    ->ArgNames({"type", "cols", "rows", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MatvecRows16)
    ->Apply(shapes)
    ->ArgNames({"type", "cols", "rows", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MatvecRows16Hot)
    ->Apply(shapes)
    ->ArgNames({"type", "cols", "rows", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
// The kernels' compute ceiling: a 1536x512 matrix (0.4-0.8 MiB) stays in one core's L2, so
// memory is not what bounds it (the "hot" 1536x8960 matrices above come from L3).
void BM_MatvecRows16L2(benchmark::State& state) {
  matvec_bench(state, true, WeightLayout::kRows16);
}
BENCHMARK(BM_MatvecRows16L2)
    ->ArgsProduct({{0, 1, 2, 3}, {1536}, {512}, {1}})
    ->ArgNames({"type", "cols", "rows", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Decode4)
    ->Apply(shapes)
    ->ArgNames({"type", "cols", "rows", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Decode4Rows16)
    ->Apply(shapes)
    ->ArgNames({"type", "cols", "rows", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Matmul128)
    ->Apply(shapes)
    ->ArgNames({"type", "cols", "rows", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Matmul128Rows16)
    ->Apply(shapes)
    ->ArgNames({"type", "cols", "rows", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace enclave::kernels

BENCHMARK_MAIN();
