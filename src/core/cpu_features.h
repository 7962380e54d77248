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
  bool avx512vbmi = false;  // byte permutes (vpermb / vpermt2b)
  bool gfni = false;        // Galois-field affine byte transforms (here: nibble unpacking)
  bool avx512bf16 = false;
  bool avxvnni = false;
  // AMX tiles with int8 dot products: CPUID says so, the OS saves the tile state (XCR0 bits
  // 17/18) and Linux granted this process the tile data permission (arch_prctl).
  bool amx_tile = false;
  bool amx_int8 = false;
};

// Detected once (thread-safe static init). ENCLAVE_CPU=scalar|avx2|avx512 caps the level used,
// so tests and benchmarks can force a path (every cap turns AMX off).
const CpuFeatures& cpu_features();

// "avx512+vnni+bf16+amx", "avx2", "scalar": what kernels will run on.
std::string cpu_features_summary();

}  // namespace enclave
