// `enclave synth` and `enclave quantize` share one quantization plan (model/quantize_plan.h): a
// model synthesized directly in a target type equals, tensor for tensor and byte for byte, the
// F32 model of the same seed quantized to that target.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gguf/gguf_file.h"

namespace enclave {
namespace {
namespace fs = std::filesystem;

// Runs the built binary with its output in `log`; returns "" on success, else the exit status and
// the output (for the assertion message).
std::string run_enclave(const std::string& args, const fs::path& log) {
  const std::string cmd =
      std::string(ENCLAVE_BINARY_DIR) + "/src/cli/enclave " + args + " > " + log.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  std::ifstream in(log);
  return "`enclave " + args + "` failed (status " + std::to_string(status) +
         "): " + std::string(std::istreambuf_iterator<char>(in), {});
}

uint64_t file_type_of(const gguf::GgufFile& f) {
  auto v = f.get_uint("general.file_type");
  return v.has_value() && v->has_value() ? **v : ~0ull;
}

TEST(SynthQuantizeCli, SynthesizedTypesAndBytesEqualQuantizedF32) {
  const fs::path dir =
      fs::temp_directory_path() / ("enclave_cli_synthq_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // 9 layers: the K-quant mixes then treat first, last and every third layer differently.
  const std::string common = " --preset demo-tiny --layers 9 --seed 5 --threads 2 ";
  const std::string f32 = (dir / "f32.gguf").string();
  const fs::path log = dir / "enclave.log";
  ASSERT_EQ(run_enclave("synth" + common + "--type F32 " + f32, log), "");

  for (const char* target : {"Q4_K_S", "Q3_K_M", "Q5_K_M", "Q3_K", "Q8_0"}) {
    SCOPED_TRACE(target);
    const std::string synthesized = (dir / (std::string("synth-") + target + ".gguf")).string();
    const std::string quantized = (dir / (std::string("quant-") + target + ".gguf")).string();
    ASSERT_EQ(run_enclave("synth" + common + "--type " + target + " " + synthesized, log), "");
    ASSERT_EQ(run_enclave("quantize " + f32 + " " + quantized + " " + target + " --threads 2", log),
              "");

    auto s = gguf::GgufFile::open(synthesized);
    ASSERT_TRUE(s) << s.error().message;
    auto q = gguf::GgufFile::open(quantized);
    ASSERT_TRUE(q) << q.error().message;
    EXPECT_EQ(file_type_of(*s), file_type_of(*q));
    ASSERT_EQ(s->tensors().size(), q->tensors().size());
    size_t n_quantized = 0;
    for (size_t i = 0; i < s->tensors().size(); ++i) {
      const auto& st = s->tensors()[i];
      const auto& qt = q->tensors()[i];
      ASSERT_EQ(st.name, qt.name);
      EXPECT_EQ(st.type, qt.type) << st.name;
      ASSERT_EQ(st.size_bytes, qt.size_bytes) << st.name;
      EXPECT_EQ(std::memcmp(st.data, qt.data, st.size_bytes), 0) << st.name;
      n_quantized += dtype_traits(st.type).quantized ? 1 : 0;
    }
    EXPECT_GT(n_quantized, 9u);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace enclave
