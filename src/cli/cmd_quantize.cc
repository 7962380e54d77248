// `enclave quantize IN.gguf OUT.gguf TYPE [--threads N] [--force] [--verbose]`: rewrites a model
// with its weights in another storage type (plain type or K-quant mix, see model/quantize_plan.h).
// Metadata is copied; tensors stream through one buffer at a time, rows quantized in parallel.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "core/result.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "kernels/quantize.h"
#include "model/quantize_plan.h"

namespace enclave::cli {
namespace {

struct QuantizeOptions {
  std::string input;
  std::string output;
  std::string type;
  int threads = 0;  // 0: all hardware threads
  bool force = false;
  bool verbose = false;
};

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (1ull << 30)) {
    std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(n) / (1ull << 30));
  } else if (n >= (1ull << 20)) {
    std::snprintf(buf, sizeof(buf), "%.2f MiB", static_cast<double>(n) / (1ull << 20));
  } else if (n >= 1024) {
    std::snprintf(buf, sizeof(buf), "%.1f KiB", static_cast<double>(n) / 1024);
  } else {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(n));
  }
  return buf;
}

// Refuses to overwrite the input (same path, hard link or symlink: same inode) in any case, and
// any other existing file unless --force.
Status check_output_path(const QuantizeOptions& opt) {
  struct stat in_st {};
  struct stat out_st {};
  if (::stat(opt.output.c_str(), &out_st) != 0) return Status::ok();
  if (opt.input == opt.output || (::stat(opt.input.c_str(), &in_st) == 0 &&
                                  in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "output '" + opt.output +
                          "' is the input file; refusing to overwrite it. Choose another OUT path");
  }
  if (!opt.force) {
    return make_error(ErrorCode::kAlreadyExists,
                      "output '" + opt.output + "' already exists; pass --force to replace it");
  }
  return Status::ok();
}

model::ModelFacts read_facts(const gguf::GgufFile& in) {
  model::ModelFacts facts;
  facts.architecture = in.architecture();
  auto get = [&](const std::string& key) -> uint32_t {
    if (facts.architecture.empty()) return 0;
    auto v = in.get_uint(facts.architecture + "." + key);
    if (!v.has_value() || !v->has_value()) return 0;
    return static_cast<uint32_t>(**v);
  };
  facts.n_layer = get("block_count");
  facts.n_expert = get("expert_count");
  return facts;
}

// Converts every row of `in` to `out_type` into `out`, splitting rows over up to n_threads.
Status convert_tensor(const gguf::TensorInfo& in, DType out_type, std::span<uint8_t> out,
                      int n_threads) {
  const int64_t ne0 = static_cast<int64_t>(in.ne[0]);
  const int64_t n_rows = static_cast<int64_t>(in.n_rows());
  const size_t in_row = in.row_bytes();
  const size_t out_row = dtype_row_bytes(out_type, in.ne[0]);
  if (out.size() != out_row * static_cast<size_t>(n_rows)) {
    return make_error(ErrorCode::kInternal, "tensor '" + in.name + "': output size mismatch");
  }
  if (!kernels::can_dequantize(in.type)) {
    return make_error(ErrorCode::kUnsupported,
                      "tensor '" + in.name + "' has type " + std::string(dtype_name(in.type)) +
                          ", which cannot be converted to " + std::string(dtype_name(out_type)));
  }
  auto work = [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(ne0));
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* src = in.data + static_cast<size_t>(r) * in_row;
      kernels::dequantize_row(in.type, src, row.data(), ne0);
      kernels::quantize_row(out_type, row.data(), out.data() + static_cast<size_t>(r) * out_row,
                            ne0);
    }
  };
  // Small tensors are not worth a thread start (~1 M elements per thread minimum).
  const int64_t total = ne0 * n_rows;
  int64_t threads = std::min<int64_t>({n_threads, n_rows, std::max<int64_t>(1, total >> 20)});
  if (threads <= 1) {
    work(0, n_rows);
    return Status::ok();
  }
  std::vector<std::thread> pool;
  const int64_t chunk = (n_rows + threads - 1) / threads;
  for (int64_t t = 1; t < threads; ++t) {
    const int64_t r0 = std::min(n_rows, t * chunk);
    const int64_t r1 = std::min(n_rows, r0 + chunk);
    if (r0 < r1) pool.emplace_back(work, r0, r1);
  }
  work(0, std::min(n_rows, chunk));
  for (auto& th : pool) th.join();
  return Status::ok();
}

struct Summary {
  size_t n_tensors = 0;
  size_t n_converted = 0;
  size_t n_fallback = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::map<std::string, size_t> out_types;
};

Result<Summary> run_quantize(const QuantizeOptions& opt, const model::QuantTarget& target) {
  ENCLAVE_TRY_STATUS(check_output_path(opt));
  ENCLAVE_ASSIGN_OR_RETURN(gguf::GgufFile in, gguf::GgufFile::open(opt.input));

  std::vector<model::TensorDesc> descs;
  for (const auto& t : in.tensors()) descs.push_back({t.name, t.type, t.n_dims, t.ne});
  const std::vector<model::TensorPlan> plans =
      model::plan_quantization(target, read_facts(in), descs);

  gguf::GgufWriter writer(in.alignment());
  writer.copy_metadata(in);
  writer.set_uint32("general.quantization_version", 2);
  writer.set_uint32("general.file_type", target.file_type);

  Summary summary;
  size_t n_requant = 0;
  const auto& tensors = in.tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const model::TensorPlan& p = plans[i];
    std::vector<uint64_t> ne(t.ne.begin(), t.ne.begin() + std::max<uint32_t>(1, t.n_dims));
    ENCLAVE_TRY_STATUS(writer.add_tensor_info(t.name, p.type, ne));
    if (p.converted && dtype_traits(t.type).quantized) ++n_requant;
    summary.n_converted += p.converted ? 1 : 0;
    summary.n_fallback += p.fallback ? 1 : 0;
    summary.bytes_in += t.size_bytes;
    summary.out_types[std::string(dtype_name(p.type))]++;
    if (opt.verbose) {
      std::printf("  %-40s %-6s -> %-6s%s\n", t.name.c_str(),
                  std::string(dtype_name(t.type)).c_str(), std::string(dtype_name(p.type)).c_str(),
                  p.fallback ? "  (fallback: ne[0] not a multiple of the block size)" : "");
    }
  }
  summary.n_tensors = tensors.size();
  if (n_requant > 0) {
    std::fprintf(
        stderr,
        "warning: %zu tensor(s) of '%s' are already quantized; requantizing them compounds "
        "the error. Quantize from an F32/F16/BF16 model when you can.\n",
        n_requant, opt.input.c_str());
  }

  const int n_threads = opt.threads > 0
                            ? opt.threads
                            : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto fill = [&](size_t index, std::span<uint8_t> out) -> Status {
    const auto& t = tensors[index];
    const model::TensorPlan& p = plans[index];
    if (!p.converted) {
      if (out.size() != t.size_bytes) {
        return make_error(ErrorCode::kInternal, "tensor '" + t.name + "': copy size mismatch");
      }
      std::memcpy(out.data(), t.data, out.size());
      return Status::ok();
    }
    return convert_tensor(t, p.type, out, n_threads);
  };
  ENCLAVE_TRY_STATUS(writer.write_streaming(opt.output, fill));
  struct stat st {};
  summary.bytes_out = ::stat(opt.output.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return summary;
}

}  // namespace

void register_quantize(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<QuantizeOptions>();
  auto* cmd = app.add_subcommand("quantize",
                                 "Convert a GGUF model's weights to another type or K-quant mix (" +
                                     model::quant_target_list() + ")");
  cmd->add_option("input", opt->input, "Source model (.gguf)")->required();
  cmd->add_option("output", opt->output, "Destination file (.gguf); never the input")->required();
  cmd->add_option("type", opt->type, "Target type or mix: " + model::quant_target_list())
      ->required();
  cmd->add_option("-t,--threads", opt->threads, "Worker threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("-f,--force", opt->force, "Replace an existing output file");
  cmd->add_flag("-v,--verbose", opt->verbose, "List every tensor with its old and new type");
  cmd->callback([opt, &exit_code] {
    const auto target = model::parse_quant_target(opt->type);
    if (!target) {
      std::fprintf(stderr, "enclave quantize: error: unknown type '%s'; valid types: %s\n",
                   opt->type.c_str(), model::quant_target_list().c_str());
      exit_code = 2;
      return;
    }
    const auto start = std::chrono::steady_clock::now();
    auto result = run_quantize(*opt, *target);
    if (!result) {
      std::fprintf(stderr, "enclave quantize: error: %s\n", result.error().message.c_str());
      exit_code = result.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
      return;
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const Summary& s = *result;
    std::string types;
    for (const auto& [name, count] : s.out_types) {
      if (!types.empty()) types += ", ";
      types += name + " x" + std::to_string(count);
    }
    std::printf(
        "quantized %s -> %s (%s): %zu tensors (%zu converted, %zu fallback), %s -> %s, %.2f s\n",
        opt->input.c_str(), opt->output.c_str(), target->name.c_str(), s.n_tensors, s.n_converted,
        s.n_fallback, human_bytes(s.bytes_in).c_str(), human_bytes(s.bytes_out).c_str(), secs);
    std::printf("types: %s\n", types.c_str());
    exit_code = 0;
  });
}

}  // namespace enclave::cli
