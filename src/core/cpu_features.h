// CpuFeatures: the one piece of global state allowed, filled once from CPUID.
#pragma once

#include <string>

namespace enclave {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool avxvnni = false;
};

// Detected once (thread-safe static init). ENCLAVE_CPU=scalar|avx2|avx512 caps the level used,
// so tests and benchmarks can force a path.
const CpuFeatures& cpu_features();

// "avx512+vnni+bf16", "avx2", "scalar": what kernels will run on.
std::string cpu_features_summary();

}  // namespace enclave
