#include "core/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace enclave {
namespace {

uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

// Linux keeps AMX tile data off until a process asks for it (the state is 8 KiB per thread in
// every signal frame and context switch); without the grant the first tile instruction faults.
bool request_amx_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  const bool avx = (c >> 28) & 1;
  f.fma = (c >> 12) & 1;
  f.f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return CpuFeatures{};
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_ok = (xcr0 & 0x6) == 0x6;
  const bool zmm_ok = (xcr0 & 0xE6) == 0xE6;
  if (!ymm_ok) return CpuFeatures{};
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  if (zmm_ok) {
    f.avx512f = (b >> 16) & 1;
    f.avx512bw = (b >> 30) & 1;
    f.avx512vl = (b >> 31) & 1;
    f.avx512vnni = (c >> 11) & 1;
    f.avx512vbmi = (c >> 1) & 1;
    f.gfni = (c >> 8) & 1;
  }
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  f.avxvnni = (a1 >> 4) & 1;
  if (zmm_ok) f.avx512bf16 = (a1 >> 5) & 1;
  // Tile config and tile data (XCR0 bits 17 and 18) must both be OS-enabled.
  const bool tiles_ok = (xcr0 & 0x60000) == 0x60000;
  const bool cpu_amx_tile = (d >> 24) & 1;
  const bool cpu_amx_int8 = (d >> 25) & 1;
  bool check_amx = tiles_ok && cpu_amx_tile && cpu_amx_int8;

  // Optional cap for tests and benchmarks.
  if (const char* cap = std::getenv("ENCLAVE_CPU")) {
    if (std::strcmp(cap, "scalar") == 0) {
      f = CpuFeatures{};
      check_amx = false;
    } else if (std::strcmp(cap, "avx2") == 0) {
      f.avx512f = f.avx512bw = f.avx512vl = f.avx512vnni = f.avx512vbmi = f.avx512bf16 = false;
      f.gfni = false;
      check_amx = false;
    } else if (std::strcmp(cap, "avx512") == 0) {
      check_amx = false;
    }
  }
  // Asked only when it would be used, so a capped run never changes the process state.
  if (check_amx && request_amx_permission()) f.amx_tile = f.amx_int8 = true;
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string cpu_features_summary() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  if (f.avx512f && f.avx512bw && f.avx512vl) {
    s = "avx512";
    if (f.avx512vnni) s += "+vnni";
    if (f.avx512vbmi) s += "+vbmi";
    if (f.gfni) s += "+gfni";
    if (f.avx512bf16) s += "+bf16";
    if (f.amx_tile && f.amx_int8) s += "+amx";
  } else if (f.avx2 && f.fma) {
    s = "avx2";
    if (f.avxvnni) s += "+avxvnni";
  } else {
    s = "scalar";
  }
  return s;
}

}  // namespace enclave
