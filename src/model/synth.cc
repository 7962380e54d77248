// Synthetic model writer: tensor list from a preset, per-tensor type plan, streaming GGUF write
// with rows generated and quantized in parallel.
#include "model/synth.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <optional>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "model/chat_templates.h"
#include "model/quantize_plan.h"

namespace enclave::model {

namespace {

const SynthPreset kPresets[] = {
    {"r1-distill-qwen-1.5b", "DeepSeek-R1-Distill-Qwen-1.5B", "qwen2", 1536, 28, 12, 2, 128, 8960,
     131072, 10000.0f, 1e-6f, true, false, kR1DistillQwenTemplate},
    {"r1-distill-qwen-7b", "DeepSeek-R1-Distill-Qwen-7B", "qwen2", 3584, 28, 28, 4, 128, 18944,
     131072, 10000.0f, 1e-6f, true, false, kR1DistillQwenTemplate},
    {"r1-distill-llama-8b", "DeepSeek-R1-Distill-Llama-8B", "llama", 4096, 32, 32, 8, 128, 14336,
     131072, 500000.0f, 1e-5f, false, true, kR1DistillLlamaTemplate},
    // Small qwen2 model for server demos and tests: generated in well under a second.
    {"demo-tiny", "Enclave demo-tiny (qwen2)", "qwen2", 256, 2, 4, 2, 64, 768, 4096, 10000.0f,
     1e-6f, true, false, kR1DistillQwenTemplate},
};

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Approximately N(0, 1): a Binomial(48, 1/2) count plus a uniform fraction, standardized.
// One PRNG call per value keeps multi-GB models quick to generate.
inline float fast_normal(uint64_t& state) {
  const uint64_t r = splitmix64(state);
  const int pc = std::popcount(r >> 16);
  const float u = static_cast<float>(r & 0xFFFF) * (1.0f / 65536.0f);
  constexpr float kInvSd = 0.28767798f;  // 1 / sqrt(12 + 1/12)
  return (static_cast<float>(pc - 24) + u - 0.5f) * kInvSd;
}

enum class Fill { kNormal, kOnes, kRopeFreqs };

struct SynthTensor {
  std::string name;
  std::vector<uint64_t> ne;
  DType type;
  Fill fill;
};

// llama3 RoPE frequency divisors (factor 8, low 1, high 4, original context 8192).
std::vector<float> llama3_rope_freqs(int32_t n_rot, float base) {
  const double factor = 8.0, low = 1.0, high = 4.0, orig = 8192.0;
  const double low_wavelen = orig / low, high_wavelen = orig / high;
  std::vector<float> ff(static_cast<size_t>(n_rot / 2));
  for (int32_t i = 0; i < n_rot / 2; ++i) {
    const double freq = std::pow(static_cast<double>(base), -2.0 * i / n_rot);
    const double wavelen = 2.0 * M_PI / freq;
    double f;
    if (wavelen < high_wavelen) {
      f = 1.0;
    } else if (wavelen > low_wavelen) {
      f = factor;
    } else {
      const double smooth = (orig / wavelen - low) / (high - low);
      f = 1.0 / ((1.0 - smooth) / factor + smooth);
    }
    ff[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  return ff;
}

}  // namespace

const SynthPreset* find_synth_preset(std::string_view name) {
  for (const SynthPreset& p : kPresets) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::vector<std::string_view> synth_preset_names() {
  std::vector<std::string_view> names;
  for (const SynthPreset& p : kPresets) names.push_back(p.name);
  return names;
}

// A minimal byte-level BPE vocabulary: the 256 GPT-2 byte symbols (id = byte value), no merges,
// and the special tokens the R1 and ChatML templates use. Enough for a demo model to tokenize and
// detokenize any UTF-8 text exactly.
std::vector<std::pair<std::string, gguf::MetaValue>> builtin_byte_vocab() {
  auto str = [](std::string v) {
    gguf::MetaValue m;
    m.type = gguf::ValueType::kString;
    m.v = std::move(v);
    return m;
  };
  auto u32 = [](uint64_t v) {
    gguf::MetaValue m;
    m.type = gguf::ValueType::kUint32;
    m.v = v;
    return m;
  };
  auto boolean = [](bool v) {
    gguf::MetaValue m;
    m.type = gguf::ValueType::kBool;
    m.v = v;
    return m;
  };
  auto array = [](gguf::ValueType elem, std::vector<gguf::MetaValue> items) {
    auto arr = std::make_shared<gguf::MetaArray>();
    arr->elem_type = elem;
    arr->items = std::move(items);
    gguf::MetaValue m;
    m.type = gguf::ValueType::kArray;
    m.v = std::move(arr);
    return m;
  };
  auto utf8 = [](uint32_t cp) {
    std::string out;
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else {  // all GPT-2 byte symbols are below U+0800
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return out;
  };
  std::vector<gguf::MetaValue> tokens, types;
  uint32_t next_shifted = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    tokens.push_back(str(utf8(printable ? b : next_shifted++)));
    gguf::MetaValue t;
    t.type = gguf::ValueType::kInt32;
    t.v = int64_t{1};
    types.push_back(t);
  }
  const std::pair<const char*, int64_t> specials[] = {
      {"<｜begin▁of▁sentence｜>", 3},
      {"<｜end▁of▁sentence｜>", 3},
      {"<｜User｜>", 3},
      {"<｜Assistant｜>", 3},
      {"<|im_start|>", 3},
      {"<|im_end|>", 3},
      {"<|endoftext|>", 3},
      {"<think>", 4},
      {"</think>", 4},
  };
  for (const auto& [text, type] : specials) {
    tokens.push_back(str(text));
    gguf::MetaValue t;
    t.type = gguf::ValueType::kInt32;
    t.v = type;
    types.push_back(t);
  }
  std::vector<std::pair<std::string, gguf::MetaValue>> kv;
  kv.emplace_back("tokenizer.ggml.model", str("gpt2"));
  kv.emplace_back("tokenizer.ggml.pre", str("qwen2"));
  kv.emplace_back("tokenizer.ggml.tokens", array(gguf::ValueType::kString, std::move(tokens)));
  kv.emplace_back("tokenizer.ggml.token_type", array(gguf::ValueType::kInt32, std::move(types)));
  kv.emplace_back("tokenizer.ggml.merges", array(gguf::ValueType::kString, {}));
  kv.emplace_back("tokenizer.ggml.bos_token_id", u32(256));
  kv.emplace_back("tokenizer.ggml.eos_token_id", u32(257));
  kv.emplace_back("tokenizer.ggml.padding_token_id", u32(262));
  kv.emplace_back("tokenizer.ggml.add_bos_token", boolean(true));
  kv.emplace_back("tokenizer.ggml.add_eos_token", boolean(false));
  return kv;
}

Result<SynthReport> synthesize(const SynthOptions& o) {
  const SynthPreset* p = find_synth_preset(o.preset);
  if (!p) {
    std::string names;
    for (std::string_view n : synth_preset_names())
      names += (names.empty() ? "" : ", ") + std::string(n);
    return Error(ErrorCode::kInvalidArgument,
                 "unknown preset '" + o.preset + "'; available: " + names);
  }
  if (o.layers < 0 || o.layers > 1024) {
    return Error(ErrorCode::kInvalidArgument, "--layers must be 1..1024");
  }
  if (o.n_threads < 1) return Error(ErrorCode::kInvalidArgument, "n_threads must be >= 1");
  if (!(o.weight_std > 0.0f)) return Error(ErrorCode::kInvalidArgument, "weight std must be > 0");
  const int32_t n_layer = o.layers > 0 ? o.layers : p->n_layer;
  const std::optional<QuantTarget> target = parse_quant_target(o.type_name);
  if (!target) {
    return Error(ErrorCode::kInvalidArgument, "unknown or unsupported type '" + o.type_name +
                                                  "'; valid types: " + quant_target_list());
  }

  // No vocabulary file: a built-in byte-level vocabulary (demo models need no download).
  std::optional<gguf::GgufFile> vocab_file;
  std::vector<std::pair<std::string, gguf::MetaValue>> vocab_kv;
  if (o.vocab_path.empty()) {
    vocab_kv = builtin_byte_vocab();
  } else {
    ENCLAVE_ASSIGN_OR_RETURN(gguf::GgufFile vf, gguf::GgufFile::open(o.vocab_path));
    vocab_file.emplace(std::move(vf));
    vocab_kv = vocab_file->metadata();
  }
  std::optional<std::vector<std::string>> tokens;
  for (const auto& [key, value] : vocab_kv) {
    if (key != "tokenizer.ggml.tokens" || value.type != gguf::ValueType::kArray) continue;
    const auto& arr = std::get<std::shared_ptr<gguf::MetaArray>>(value.v);
    if (!arr || arr->elem_type != gguf::ValueType::kString) break;
    tokens.emplace();
    for (const auto& item : arr->items) tokens->push_back(std::get<std::string>(item.v));
  }
  if (!tokens || tokens->empty()) {
    return Error(ErrorCode::kInvalidArgument, "vocabulary file " + o.vocab_path +
                                                  " has no tokenizer.ggml.tokens; pass a vocab "
                                                  "GGUF such as ggml-vocab-deepseek-llm.gguf");
  }
  const int32_t n_vocab = static_cast<int32_t>(tokens->size());

  const std::string arch(p->arch);
  gguf::GgufWriter w;
  w.set_string("general.architecture", arch);
  w.set_string("general.name", std::string(p->general_name) + " (random weights, demo)");
  w.set_string("general.description", "enclave synth: random weights N(0, " +
                                          std::to_string(o.weight_std) + "), seed " +
                                          std::to_string(o.seed) + "; not a trained model");
  w.set_uint32("general.file_type", target->file_type);
  w.set_bool("enclave.synth", true);
  const std::string a = arch + ".";
  w.set_uint32(a + "context_length", static_cast<uint32_t>(p->n_ctx_train));
  w.set_uint32(a + "embedding_length", static_cast<uint32_t>(p->n_embd));
  w.set_uint32(a + "block_count", static_cast<uint32_t>(n_layer));
  w.set_uint32(a + "feed_forward_length", static_cast<uint32_t>(p->n_ff));
  w.set_uint32(a + "attention.head_count", static_cast<uint32_t>(p->n_head));
  w.set_uint32(a + "attention.head_count_kv", static_cast<uint32_t>(p->n_head_kv));
  w.set_float32(a + "rope.freq_base", p->rope_base);
  w.set_float32(a + "attention.layer_norm_rms_epsilon", p->rms_eps);
  if (arch == "llama") {
    w.set_uint32(a + "rope.dimension_count", static_cast<uint32_t>(p->head_dim));
    w.set_uint32(a + "vocab_size", static_cast<uint32_t>(n_vocab));
  }
  for (const auto& [key, value] : vocab_kv) {
    if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
  }
  w.set_string("tokenizer.chat_template", p->chat_template);

  // Tensor list in the order converted HF checkpoints use.
  const uint64_t E = static_cast<uint64_t>(p->n_embd);
  const uint64_t qd = static_cast<uint64_t>(p->n_head) * p->head_dim;
  const uint64_t kvd = static_cast<uint64_t>(p->n_head_kv) * p->head_dim;
  const uint64_t F = static_cast<uint64_t>(p->n_ff);
  const uint64_t V = static_cast<uint64_t>(n_vocab);
  std::vector<SynthTensor> plan;
  auto add = [&](std::string name, std::vector<uint64_t> ne, Fill fill) {
    plan.push_back(SynthTensor{std::move(name), std::move(ne), DType::kF32, fill});
  };
  add("token_embd.weight", {E, V}, Fill::kNormal);
  add("output_norm.weight", {E}, Fill::kOnes);
  add("output.weight", {E, V}, Fill::kNormal);
  if (p->llama3_rope)
    add("rope_freqs.weight", {static_cast<uint64_t>(p->head_dim / 2)}, Fill::kRopeFreqs);
  for (int32_t il = 0; il < n_layer; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    add(b + "attn_norm.weight", {E}, Fill::kOnes);
    add(b + "attn_q.weight", {E, qd}, Fill::kNormal);
    if (p->qkv_bias) add(b + "attn_q.bias", {qd}, Fill::kNormal);
    add(b + "attn_k.weight", {E, kvd}, Fill::kNormal);
    if (p->qkv_bias) add(b + "attn_k.bias", {kvd}, Fill::kNormal);
    add(b + "attn_v.weight", {E, kvd}, Fill::kNormal);
    if (p->qkv_bias) add(b + "attn_v.bias", {kvd}, Fill::kNormal);
    add(b + "attn_output.weight", {qd, E}, Fill::kNormal);
    add(b + "ffn_norm.weight", {E}, Fill::kOnes);
    add(b + "ffn_gate.weight", {E, F}, Fill::kNormal);
    add(b + "ffn_up.weight", {E, F}, Fill::kNormal);
    add(b + "ffn_down.weight", {F, E}, Fill::kNormal);
  }
  // The types `enclave quantize` would give an F32 model of these shapes (one rule set).
  ModelFacts facts;
  facts.architecture = arch;
  facts.n_layer = static_cast<uint32_t>(n_layer);
  std::vector<TensorDesc> descs;
  descs.reserve(plan.size());
  for (const SynthTensor& t : plan) {
    TensorDesc d;
    d.name = t.name;
    d.type = DType::kF32;
    d.n_dims = static_cast<uint32_t>(t.ne.size());
    std::copy(t.ne.begin(), t.ne.end(), d.ne.begin());
    descs.push_back(std::move(d));
  }
  const std::vector<TensorPlan> types = plan_quantization(*target, facts, descs);
  for (size_t i = 0; i < plan.size(); ++i) plan[i].type = types[i].type;
  bool any_quant = false;
  SynthReport report;
  for (const SynthTensor& t : plan) {
    if (!kernels::can_quantize(t.type)) {
      return Error(ErrorCode::kInvalidArgument, "the type plan chose " +
                                                    std::string(dtype_name(t.type)) + " for " +
                                                    t.name + ", which cannot be written");
    }
    ENCLAVE_TRY_STATUS(w.add_tensor_info(t.name, t.type, t.ne));
    any_quant = any_quant || dtype_traits(t.type).quantized;
    uint64_t n = 1;
    for (uint64_t d : t.ne) n *= d;
    report.n_params += n;
  }
  if (any_quant) w.set_uint32("general.quantization_version", 2);

  kernels::ThreadPool pool(o.n_threads);
  const std::vector<float> rope_freqs =
      p->llama3_rope ? llama3_rope_freqs(p->head_dim, p->rope_base) : std::vector<float>();
  auto fill = [&](size_t index, std::span<uint8_t> out) -> Status {
    const SynthTensor& t = plan[index];
    const int64_t ne0 = static_cast<int64_t>(t.ne[0]);
    const int64_t rows = t.ne.size() > 1 ? static_cast<int64_t>(t.ne[1]) : 1;
    const size_t row_bytes = dtype_row_bytes(t.type, static_cast<uint64_t>(ne0));
    if (row_bytes * static_cast<size_t>(rows) != out.size()) {
      return Error(ErrorCode::kInternal, "synth: size mismatch for " + t.name);
    }
    uint64_t tensor_seed = o.seed * 0x2545F4914F6CDD1Dull + index;
    const uint64_t base_seed = splitmix64(tensor_seed);
    pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
      std::vector<float> row(static_cast<size_t>(ne0));
      for (int64_t r = r0; r < r1; ++r) {
        switch (t.fill) {
          case Fill::kOnes:
            std::fill(row.begin(), row.end(), 1.0f);
            break;
          case Fill::kRopeFreqs:
            std::copy(rope_freqs.begin(), rope_freqs.end(), row.begin());
            break;
          case Fill::kNormal: {
            uint64_t state = base_seed ^ (static_cast<uint64_t>(r) * 0x9E3779B97F4A7C15ull);
            for (float& x : row) x = fast_normal(state) * o.weight_std;
            break;
          }
        }
        kernels::quantize_row(t.type, row.data(), out.data() + static_cast<size_t>(r) * row_bytes,
                              ne0);
      }
    });
    return Status::ok();
  };
  ENCLAVE_TRY_STATUS(w.write_streaming(o.out_path, fill));
  report.file_bytes = w.file_size();
  report.n_tensors = plan.size();
  report.n_vocab = n_vocab;
  report.n_layer = n_layer;
  return report;
}

}  // namespace enclave::model
