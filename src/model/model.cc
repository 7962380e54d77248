// Model::load: architecture lookup, hyper-parameters and tensor binding with shape checks.
#include "model/model.h"

#include <cmath>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/quantize.h"
#include "kernels/repack.h"
#include "model/arch.h"
#include "model/weights.h"

namespace enclave::model {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::kLlama:
      return "llama";
    case Arch::kQwen2:
      return "qwen2";
  }
  return "?";
}

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::kF16:
      return "f16";
    case KvType::kQ8_0:
      return "q8_0";
    case KvType::kF32:
      return "f32";
  }
  return "?";
}

namespace {

using detail::ArchSpec;
using detail::LayerTensor;
using detail::LayerWeights;
using detail::ModelWeights;
using detail::Presence;

std::string shape_str(const gguf::TensorInfo& t) {
  std::string s = "[";
  for (uint32_t i = 0; i < t.n_dims; ++i) {
    if (i) s += ", ";
    s += std::to_string(t.ne[i]);
  }
  return s + "]";
}

std::string shape_str(uint64_t ne0, uint64_t ne1) {
  if (ne1 == 0) return "[" + std::to_string(ne0) + "]";
  return "[" + std::to_string(ne0) + ", " + std::to_string(ne1) + "]";
}

// Reads hyper-parameters with the arch prefix; errors name the key and the file.
class HParamReader {
 public:
  HParamReader(const gguf::GgufFile& f, std::string_view arch) : f_(f), prefix_(arch) {}

  std::string key(std::string_view suffix) const { return prefix_ + "." + std::string(suffix); }

  // Scalar or per-layer array (all layers equal) unsigned integer.
  Result<std::optional<int64_t>> get_int(std::string_view suffix) const {
    const std::string k = key(suffix);
    const gguf::MetaValue* v = f_.find(k);
    if (!v) return std::optional<int64_t>();
    if (v->type == gguf::ValueType::kArray) {
      auto arr = f_.get_int_array(k);
      if (!arr) return arr.error();
      const auto& a = **arr;
      if (a.empty()) return bad(k, "is an empty array");
      for (int64_t x : a) {
        if (x != a[0]) {
          return Error(ErrorCode::kUnsupported, "'" + k + "' varies per layer in " + f_.path() +
                                                    "; only uniform layers are supported");
        }
      }
      return std::optional<int64_t>(a[0]);
    }
    auto r = f_.get_int(k);
    if (!r) return r.error();
    return *r;
  }

  Result<int32_t> require_int(std::string_view suffix, int64_t lo, int64_t hi) const {
    auto r = get_int(suffix);
    if (!r) return r.error();
    if (!r->has_value()) {
      return Error(ErrorCode::kCorruptData, "required key '" + key(suffix) + "' is missing in " +
                                                f_.path() + "; the file is not a complete model");
    }
    return check_range(suffix, **r, lo, hi);
  }

  Result<int32_t> int_or(std::string_view suffix, int64_t def, int64_t lo, int64_t hi) const {
    auto r = get_int(suffix);
    if (!r) return r.error();
    return check_range(suffix, r->value_or(def), lo, hi);
  }

  Result<std::optional<double>> get_float(std::string_view suffix) const {
    return f_.get_float(key(suffix));
  }

  Result<std::optional<std::string>> get_string(std::string_view suffix) const {
    return f_.get_string(key(suffix));
  }

 private:
  Error bad(const std::string& k, const std::string& what) const {
    return Error(ErrorCode::kCorruptData, "key '" + k + "' " + what + " in " + f_.path());
  }
  Result<int32_t> check_range(std::string_view suffix, int64_t v, int64_t lo, int64_t hi) const {
    if (v < lo || v > hi) {
      return bad(key(suffix), "has value " + std::to_string(v) + ", expected " +
                                  std::to_string(lo) + ".." + std::to_string(hi));
    }
    return static_cast<int32_t>(v);
  }
  const gguf::GgufFile& f_;
  std::string prefix_;
};

Result<ModelConfig> read_config(const gguf::GgufFile& f, const ArchSpec& spec) {
  HParamReader hp(f, spec.name);
  const auto& k = spec.keys;
  ModelConfig c;
  c.arch = spec.arch;
  c.arch_name = std::string(spec.name);
  c.rope_type = spec.rope_type;
  constexpr int64_t kMaxDim = 1 << 20;
  ENCLAVE_ASSIGN_OR_RETURN(c.n_ctx_train, hp.require_int(k.context_length, 1, 1 << 24));
  ENCLAVE_ASSIGN_OR_RETURN(c.n_embd, hp.require_int(k.embedding_length, 1, kMaxDim));
  ENCLAVE_ASSIGN_OR_RETURN(c.n_layer, hp.require_int(k.block_count, 1, 4096));
  ENCLAVE_ASSIGN_OR_RETURN(c.n_ff, hp.require_int(k.feed_forward_length, 1, kMaxDim));
  ENCLAVE_ASSIGN_OR_RETURN(c.n_head, hp.require_int(k.head_count, 1, 4096));
  ENCLAVE_ASSIGN_OR_RETURN(c.n_head_kv, hp.int_or(k.head_count_kv, c.n_head, 1, c.n_head));
  if (c.n_head % c.n_head_kv != 0) {
    return Error(ErrorCode::kCorruptData, "head_count " + std::to_string(c.n_head) +
                                              " is not a multiple of head_count_kv " +
                                              std::to_string(c.n_head_kv) + " in " + f.path());
  }
  ENCLAVE_ASSIGN_OR_RETURN(c.head_dim, hp.int_or(k.key_length, c.n_embd / c.n_head, 1, kMaxDim));
  ENCLAVE_ASSIGN_OR_RETURN(const int32_t value_len,
                           hp.int_or(k.value_length, c.head_dim, 1, kMaxDim));
  if (value_len != c.head_dim) {
    return Error(ErrorCode::kUnsupported, "attention.value_length " + std::to_string(value_len) +
                                              " differs from key_length " +
                                              std::to_string(c.head_dim) + " in " + f.path() +
                                              "; not supported for " + c.arch_name);
  }
  ENCLAVE_ASSIGN_OR_RETURN(c.n_rot, hp.int_or(k.rope_dims, c.head_dim, 2, c.head_dim));
  if (c.n_rot % 2 != 0 || (spec.rot_equals_head_dim && c.n_rot != c.head_dim)) {
    return Error(ErrorCode::kUnsupported, "rope.dimension_count " + std::to_string(c.n_rot) +
                                              " with head_dim " + std::to_string(c.head_dim) +
                                              " is not supported for " + c.arch_name);
  }
  ENCLAVE_ASSIGN_OR_RETURN(auto eps, hp.get_float(k.rms_eps));
  if (!eps) {
    return Error(ErrorCode::kCorruptData,
                 "required key '" + hp.key(k.rms_eps) + "' is missing in " + f.path());
  }
  c.rms_eps = static_cast<float>(*eps);
  ENCLAVE_ASSIGN_OR_RETURN(auto base, hp.get_float(k.rope_freq_base));
  c.rope_base = base ? static_cast<float>(*base) : spec.default_rope_base;
  if (!(c.rope_base > 0.0f)) {
    return Error(ErrorCode::kCorruptData, "rope.freq_base must be > 0 in " + f.path());
  }

  // RoPE scaling: type defaults to linear; factor absent or 0 means none.
  ENCLAVE_ASSIGN_OR_RETURN(auto scaling_type, hp.get_string(k.rope_scaling_type));
  ENCLAVE_ASSIGN_OR_RETURN(auto factor, hp.get_float(k.rope_scaling_factor));
  if (!factor) {
    ENCLAVE_ASSIGN_OR_RETURN(factor, hp.get_float(k.rope_scale_linear));
  }
  const std::string type = scaling_type.value_or("linear");
  const double s = factor.value_or(0.0);
  if (type != "none" && type != "linear" && type != "yarn") {
    return Error(ErrorCode::kUnsupported, "rope.scaling.type '" + type + "' in " + f.path() +
                                              " is not supported (none, linear, yarn)");
  }
  if (type != "none" && s != 0.0 && s != 1.0) {
    if (s < 0.0) return Error(ErrorCode::kCorruptData, "rope.scaling.factor < 0 in " + f.path());
    c.rope_freq_scale = static_cast<float>(1.0 / s);
  }
  ENCLAVE_ASSIGN_OR_RETURN(c.yarn_n_ctx_orig,
                           hp.int_or(k.rope_scaling_orig_ctx, c.n_ctx_train, 1, 1 << 24));
  if (type == "yarn") {
    c.yarn_ext_factor = 1.0f;
    ENCLAVE_ASSIGN_OR_RETURN(auto af, hp.get_float(k.rope_scaling_attn_factor));
    ENCLAVE_ASSIGN_OR_RETURN(auto bf, hp.get_float(k.yarn_beta_fast));
    ENCLAVE_ASSIGN_OR_RETURN(auto bs, hp.get_float(k.yarn_beta_slow));
    c.yarn_attn_factor = static_cast<float>(af.value_or(1.0));
    c.yarn_beta_fast = static_cast<float>(bf.value_or(32.0));
    c.yarn_beta_slow = static_cast<float>(bs.value_or(1.0));
  }
  return c;
}

class Binder {
 public:
  Binder(const gguf::GgufFile& f, ModelWeights& w, uint64_t& bytes) : f_(f), w_(w), bytes_(bytes) {}

  Result<const gguf::TensorInfo*> find(const std::string& name, bool required) const {
    const gguf::TensorInfo* t = f_.tensor(name);
    if (!t && required) {
      return Error(ErrorCode::kNotFound, "tensor '" + name + "' is missing in " + f_.path() +
                                             "; the file is incomplete or not a " +
                                             std::string(w_.spec->name) + " model");
    }
    return t;
  }

  Status check_shape(const gguf::TensorInfo& t, uint64_t ne0, uint64_t ne1) const {
    const uint64_t want1 = ne1 == 0 ? 1 : ne1;
    if (t.ne[0] != ne0 || t.ne[1] != want1 || t.ne[2] != 1 || t.ne[3] != 1) {
      return Error(ErrorCode::kCorruptData, "tensor '" + t.name + "' in " + f_.path() +
                                                " has shape " + shape_str(t) + ", expected " +
                                                shape_str(ne0, ne1) + " from the hyper-parameters");
    }
    if (!kernels::can_dequantize(t.type)) {
      return Error(ErrorCode::kUnsupported, "tensor '" + t.name + "' has type " +
                                                std::string(dtype_name(t.type)) +
                                                ", which this build cannot compute with");
    }
    return Status::ok();
  }

  // Matrix with `cols` inputs and `rows` outputs (GGUF ne = {cols, rows}).
  Result<kernels::WeightMatrix> matrix(const std::string& name, int64_t cols, int64_t rows,
                                       bool required, bool* found = nullptr) {
    ENCLAVE_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, find(name, required));
    if (found) *found = t != nullptr;
    if (!t) return kernels::WeightMatrix{};
    ENCLAVE_TRY_STATUS(check_shape(*t, static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)));
    bytes_ += t->size_bytes;
    return as_matrix(*t);
  }

  static kernels::WeightMatrix as_matrix(const gguf::TensorInfo& t) {
    kernels::WeightMatrix m;
    m.type = t.type;
    m.data = t.data;
    m.cols = static_cast<int64_t>(t.ne[0]);
    m.rows = static_cast<int64_t>(t.ne[1]);
    m.row_bytes = t.row_bytes();
    return m;
  }

  // 1-D vector of n floats; widened into owned storage if not stored as F32.
  Result<const float*> vector(const std::string& name, int64_t n, bool required) {
    ENCLAVE_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, find(name, required));
    if (!t) return static_cast<const float*>(nullptr);
    ENCLAVE_TRY_STATUS(check_shape(*t, static_cast<uint64_t>(n), 0));
    bytes_ += t->size_bytes;
    if (t->type == DType::kF32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
      return reinterpret_cast<const float*>(t->data);
    }
    std::vector<float>& v = w_.owned.emplace_back(static_cast<size_t>(n));
    kernels::dequantize_row(t->type, t->data, v.data(), n);
    return static_cast<const float*>(v.data());
  }

 private:
  const gguf::GgufFile& f_;
  ModelWeights& w_;
  uint64_t& bytes_;
};

Status bind_weights(const gguf::GgufFile& f, const ArchSpec& spec, ModelConfig& c, ModelWeights& w,
                    uint64_t& bytes) {
  w.spec = &spec;
  Binder b(f, w, bytes);
  const auto& g = spec.globals;

  // Vocabulary size comes from token_embd; a vocab_size key, if present, must agree.
  ENCLAVE_ASSIGN_OR_RETURN(const gguf::TensorInfo* embd, b.find(std::string(g.token_embd), true));
  if (embd->ne[0] != static_cast<uint64_t>(c.n_embd) || embd->ne[1] < 1 ||
      embd->ne[1] > (1u << 30)) {
    return Error(ErrorCode::kCorruptData, "tensor '" + embd->name + "' in " + f.path() +
                                              " has shape " + shape_str(*embd) + ", expected [" +
                                              std::to_string(c.n_embd) + ", n_vocab]");
  }
  c.n_vocab = static_cast<int32_t>(embd->ne[1]);
  HParamReader hp(f, spec.name);
  ENCLAVE_ASSIGN_OR_RETURN(auto vocab_key, hp.get_int(spec.keys.vocab_size));
  if (vocab_key && *vocab_key != c.n_vocab) {
    return Error(ErrorCode::kCorruptData, "key '" + hp.key(spec.keys.vocab_size) +
                                              "' = " + std::to_string(*vocab_key) + " but '" +
                                              embd->name + "' has " + std::to_string(c.n_vocab) +
                                              " rows in " + f.path());
  }
  ENCLAVE_TRY_STATUS(b.check_shape(*embd, c.n_embd, c.n_vocab));
  w.token_embd = embd;
  bytes += embd->size_bytes;

  ENCLAVE_ASSIGN_OR_RETURN(w.output_norm, b.vector(std::string(g.output_norm), c.n_embd, true));
  bool has_output = false;
  ENCLAVE_ASSIGN_OR_RETURN(w.output, b.matrix(std::string(g.output), c.n_embd, c.n_vocab,
                                              !spec.output_optional, &has_output));
  c.tied_output = !has_output;
  if (c.tied_output) w.output = Binder::as_matrix(*embd);
  if (spec.output_bias_allowed) {
    ENCLAVE_ASSIGN_OR_RETURN(w.output_bias, b.vector(std::string(g.output_bias), c.n_vocab, false));
  }
  if (spec.rope_freqs_allowed) {
    ENCLAVE_ASSIGN_OR_RETURN(const float* ff,
                             b.vector(std::string(g.rope_freqs), c.n_rot / 2, false));
    if (ff) {
      w.rope_freqs.assign(ff, ff + c.n_rot / 2);
      c.has_rope_freqs = true;
    }
  }

  const int64_t q_dim = static_cast<int64_t>(c.n_head) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
  c.qkv_bias =
      spec.layer[static_cast<int>(LayerTensor::kAttnQBias)].presence == Presence::kRequired;
  w.layers.resize(static_cast<size_t>(c.n_layer));
  bool all_qkv_bias = true;
  for (int32_t il = 0; il < c.n_layer; ++il) {
    detail::LayerWeights& L = w.layers[static_cast<size_t>(il)];
    auto name = [&](LayerTensor t) {
      return std::string(g.layer_prefix) + std::to_string(il) + "." +
             std::string(spec.layer[static_cast<int>(t)].name);
    };
    auto presence = [&](LayerTensor t) { return spec.layer[static_cast<int>(t)].presence; };
    auto mat = [&](LayerTensor t, int64_t cols, int64_t rows,
                   kernels::WeightMatrix& out) -> Status {
      if (presence(t) == Presence::kAbsent) return Status::ok();
      ENCLAVE_ASSIGN_OR_RETURN(out,
                               b.matrix(name(t), cols, rows, presence(t) == Presence::kRequired));
      return Status::ok();
    };
    auto vec = [&](LayerTensor t, int64_t n, const float*& out) -> Status {
      if (presence(t) == Presence::kAbsent) return Status::ok();
      ENCLAVE_ASSIGN_OR_RETURN(out, b.vector(name(t), n, presence(t) == Presence::kRequired));
      return Status::ok();
    };
    ENCLAVE_TRY_STATUS(vec(LayerTensor::kAttnNorm, c.n_embd, L.attn_norm));
    ENCLAVE_TRY_STATUS(mat(LayerTensor::kAttnQ, c.n_embd, q_dim, L.wq));
    ENCLAVE_TRY_STATUS(mat(LayerTensor::kAttnK, c.n_embd, kv_dim, L.wk));
    ENCLAVE_TRY_STATUS(mat(LayerTensor::kAttnV, c.n_embd, kv_dim, L.wv));
    ENCLAVE_TRY_STATUS(mat(LayerTensor::kAttnOutput, q_dim, c.n_embd, L.wo));
    ENCLAVE_TRY_STATUS(vec(LayerTensor::kAttnQBias, q_dim, L.bq));
    ENCLAVE_TRY_STATUS(vec(LayerTensor::kAttnKBias, kv_dim, L.bk));
    ENCLAVE_TRY_STATUS(vec(LayerTensor::kAttnVBias, kv_dim, L.bv));
    ENCLAVE_TRY_STATUS(vec(LayerTensor::kAttnOutputBias, c.n_embd, L.bo));
    ENCLAVE_TRY_STATUS(vec(LayerTensor::kFfnNorm, c.n_embd, L.ffn_norm));
    ENCLAVE_TRY_STATUS(mat(LayerTensor::kFfnGate, c.n_embd, c.n_ff, L.w_gate));
    ENCLAVE_TRY_STATUS(mat(LayerTensor::kFfnUp, c.n_embd, c.n_ff, L.w_up));
    ENCLAVE_TRY_STATUS(mat(LayerTensor::kFfnDown, c.n_ff, c.n_embd, L.w_down));
    all_qkv_bias = all_qkv_bias && L.bq && L.bk && L.bv;
  }
  c.qkv_bias = all_qkv_bias;
  return Status::ok();
}

// Rearranges, in the copied image, every matrix the decode kernels read faster as rows16
// (kernels/repack.h) and marks it so. Only matrices that are nothing but matmul weights:
// token_embd (and the output when tied to it) is also read by row. Returns how many.
int repack_for_decode(gguf::GgufFile& f, const ModelConfig& c, ModelWeights& w) {
  std::vector<kernels::WeightMatrix*> mats;
  for (LayerWeights& L : w.layers) {
    for (kernels::WeightMatrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      mats.push_back(m);
  }
  if (!c.tied_output) mats.push_back(&w.output);
  std::unordered_map<const void*, const gguf::TensorInfo*> by_data;
  for (const gguf::TensorInfo& t : f.tensors()) by_data.emplace(t.data, &t);
  std::vector<const gguf::TensorInfo*> tensors;
  std::vector<kernels::WeightMatrix*> chosen;
  for (kernels::WeightMatrix* m : mats) {
    if (m->data == nullptr || !kernels::rows16_preferred(m->type, m->rows, m->cols)) continue;
    const auto it = by_data.find(m->data);
    if (it == by_data.end()) continue;
    tensors.push_back(it->second);
    chosen.push_back(m);
    by_data.erase(it);  // never twice
  }
  const bool done = f.rewrite_tensors(tensors, [](const gguf::TensorInfo& t, uint8_t* data) {
    kernels::repack_rows16_in_place(t.type, data, static_cast<int64_t>(t.ne[1]),
                                    static_cast<int64_t>(t.ne[0]));
  });
  if (!done) return 0;
  for (kernels::WeightMatrix* m : chosen) m->layout = kernels::WeightLayout::kRows16;
  return static_cast<int>(chosen.size());
}

}  // namespace

Model::Model(gguf::GgufFile file)
    : file_(std::move(file)), weights_(std::make_unique<detail::ModelWeights>()) {}
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(const std::string& gguf_path, gguf::FileMemory memory) {
  ENCLAVE_ASSIGN_OR_RETURN(gguf::GgufFile file, gguf::GgufFile::open(gguf_path, memory));
  const std::string arch = file.architecture();
  if (arch.empty()) {
    return Error(ErrorCode::kCorruptData,
                 "general.architecture is missing in " + gguf_path + "; not a model file");
  }
  const ArchSpec* spec = detail::find_arch(arch);
  if (!spec) {
    return Error(ErrorCode::kUnsupported, "model architecture '" + arch + "' of " + gguf_path +
                                              " is not supported yet (supported: llama, qwen2)");
  }
  std::unique_ptr<Model> m(new Model(std::move(file)));
  ENCLAVE_ASSIGN_OR_RETURN(m->config_, read_config(m->file_, *spec));
  ENCLAVE_TRY_STATUS(bind_weights(m->file_, *spec, m->config_, *m->weights_, m->weight_bytes_));
  m->repacked_matrices_ = repack_for_decode(m->file_, m->config_, *m->weights_);
  return m;
}

}  // namespace enclave::model
