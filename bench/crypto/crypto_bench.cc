// AES-256-GCM sealing cost per request (compare with `openssl speed -evp aes-256-gcm`, whose
// figures exclude nonce generation and context setup), plus per-request key unwrapping.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "crypto/keystore.h"
#include "crypto/primitives.h"

namespace enclave::crypto {
namespace {

void BM_AeadSeal(benchmark::State& state) {
  auto key = random_key();
  std::string msg(static_cast<size_t>(state.range(0)), 'x');
  std::string aad = "enclave.messages.v1|tenant|0123456789abcdef0123456789abcdef|conv|user";
  for (auto _ : state) {
    auto sealed = aead_seal(*key, as_bytes(msg), as_bytes(aad));
    benchmark::DoNotOptimize(sealed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_AeadSeal)->Arg(16)->Arg(256)->Arg(1024)->Arg(2048)->Arg(8192)->Arg(16384);

void BM_AeadOpen(benchmark::State& state) {
  auto key = random_key();
  std::string msg(static_cast<size_t>(state.range(0)), 'x');
  auto sealed = aead_seal(*key, as_bytes(msg), as_bytes("aad"));
  for (auto _ : state) {
    auto plain = aead_open(*key, *sealed, as_bytes("aad"));
    benchmark::DoNotOptimize(plain);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_AeadOpen)->Arg(2048)->Arg(16384);

// What Store::append_message adds on top of sealing: reading and unwrapping the tenant key.
void BM_TenantKeyUnwrap(benchmark::State& state) {
  auto dir =
      std::filesystem::temp_directory_path() / ("enclave_bench_ks_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto src = MasterKeySource::raw_key_hex(std::string(64, 'c'));
  auto ks = KeyStore::create(dir, *src, nullptr);
  (void)(*ks)->create_tenant_key("acme");
  for (auto _ : state) {
    auto k = (*ks)->tenant_key("acme");
    benchmark::DoNotOptimize(k);
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_TenantKeyUnwrap);

void BM_HmacApiKey(benchmark::State& state) {
  auto key = random_key();
  std::string api_key = "ek_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
  for (auto _ : state) {
    auto mac = hmac_sha256(key->span(), as_bytes(api_key));
    benchmark::DoNotOptimize(mac);
  }
}
BENCHMARK(BM_HmacApiKey);

}  // namespace
}  // namespace enclave::crypto
