// `enclave inspect M.gguf [--json] [--tensors]`: what a GGUF file holds, without loading weights.
#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "gguf/gguf_file.h"

namespace enclave::cli {
namespace {

using gguf::GgufFile;
using gguf::MetaArray;
using gguf::MetaValue;
using gguf::ValueType;

// Hyperparameter key suffixes shown when present (prefixed with "<arch>.").
constexpr const char* kHyperKeys[] = {
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "vocab_size",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "attention.layer_norm_rms_epsilon",
    "attention.q_lora_rank",
    "attention.kv_lora_rank",
    "rope.dimension_count",
    "rope.freq_base",
    "rope.scaling.type",
    "rope.scaling.factor",
    "leading_dense_block_count",
    "expert_count",
    "expert_used_count",
    "expert_shared_count",
    "expert_feed_forward_length",
    "expert_group_count",
    "expert_group_used_count",
    "expert_weights_scale",
    "expert_gating_func",
};

// float32 metadata is widened to double on read; print its shortest float form (1e-06, not
// 9.99999997e-07).
double shortest(const MetaValue& v) {
  const double d = std::get<double>(v.v);
  if (v.type != ValueType::kFloat32) return d;
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), static_cast<float>(d));
  double out = d;
  std::from_chars(buf, res.ptr, out);
  return out;
}

std::string format_double(double d) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d);
  return std::string(buf, res.ptr);
}

boost::json::value to_json(const MetaValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v.v)) return *i;
  if (std::holds_alternative<double>(v.v)) return shortest(v);
  if (const auto* b = std::get_if<bool>(&v.v)) return *b;
  if (const auto* s = std::get_if<std::string>(&v.v)) return boost::json::string(*s);
  boost::json::array out;
  if (const auto* a = std::get_if<std::shared_ptr<MetaArray>>(&v.v); a && *a) {
    for (const auto& item : (*a)->items) out.push_back(to_json(item));
  }
  return out;
}

std::string to_text(const MetaValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return std::to_string(*u);
  if (const auto* i = std::get_if<int64_t>(&v.v)) return std::to_string(*i);
  if (std::holds_alternative<double>(v.v)) return format_double(shortest(v));
  if (const auto* b = std::get_if<bool>(&v.v)) return *b ? "true" : "false";
  if (const auto* s = std::get_if<std::string>(&v.v)) return "\"" + *s + "\"";
  std::string out = "[";
  if (const auto* a = std::get_if<std::shared_ptr<MetaArray>>(&v.v); a && *a) {
    const auto& items = (*a)->items;
    for (size_t i = 0; i < items.size() && i < 8; ++i) out += (i ? ", " : "") + to_text(items[i]);
    if (items.size() > 8) out += ", ... (" + std::to_string(items.size()) + " values)";
  }
  return out + "]";
}

std::string string_or(const GgufFile& f, std::string_view key, std::string fallback) {
  const MetaValue* v = f.find(key);
  if (v == nullptr || v->type != ValueType::kString) return fallback;
  return std::get<std::string>(v->v);
}

// Array length without copying the array (vocabularies hold 100k+ strings).
std::optional<size_t> array_size(const GgufFile& f, std::string_view key) {
  const MetaValue* v = f.find(key);
  if (v == nullptr) return std::nullopt;
  const auto* a = std::get_if<std::shared_ptr<MetaArray>>(&v->v);
  if (a == nullptr || *a == nullptr) return std::nullopt;
  return (*a)->items.size();
}

std::string shape(const gguf::TensorInfo& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < std::max<uint32_t>(t.n_dims, 1); ++d) {
    s += (d ? ", " : "") + std::to_string(t.ne[d]);
  }
  return s + "]";
}

int run_inspect(const std::string& path, bool json, bool list_tensors) {
  auto opened = GgufFile::open(path);
  if (!opened) {
    std::fprintf(stderr, "enclave inspect: %s\n", opened.error().message.c_str());
    return 1;
  }
  const GgufFile& f = *opened;
  const std::string arch = f.architecture();

  std::vector<std::pair<std::string, const MetaValue*>> hyper;
  if (!arch.empty()) {
    for (const char* suffix : kHyperKeys) {
      const std::string key = arch + "." + suffix;
      if (const MetaValue* v = f.find(key)) hyper.emplace_back(suffix, v);
    }
  }
  std::map<std::string, size_t> per_type;
  uint64_t tensor_bytes = 0;
  for (const auto& t : f.tensors()) {
    ++per_type[std::string(dtype_name(t.type))];
    tensor_bytes += t.size_bytes;
  }
  const std::string tok_model = string_or(f, "tokenizer.ggml.model", "");
  const std::string tok_pre = string_or(f, "tokenizer.ggml.pre", "");
  const auto vocab = array_size(f, "tokenizer.ggml.tokens");
  const MetaValue* tmpl = f.find("tokenizer.chat_template");
  const std::string* tmpl_text = tmpl ? std::get_if<std::string>(&tmpl->v) : nullptr;

  if (json) {
    boost::json::object o;
    o["file"] = path;
    o["file_size"] = f.file_size();
    o["gguf_version"] = f.version();
    o["alignment"] = f.alignment();
    o["data_offset"] = f.data_offset();
    o["metadata_count"] = f.metadata().size();
    o["architecture"] = arch;
    o["name"] = string_or(f, "general.name", "");
    boost::json::object hp;
    for (const auto& [k, v] : hyper) hp[k] = to_json(*v);
    o["hyperparameters"] = std::move(hp);
    boost::json::object tok;
    tok["model"] = tok_model;
    tok["pre"] = tok_pre;
    if (vocab) {
      tok["vocab_size"] = *vocab;
    } else {
      tok["vocab_size"] = nullptr;
    }
    o["tokenizer"] = std::move(tok);
    boost::json::object ct;
    ct["present"] = tmpl_text != nullptr;
    ct["length"] = tmpl_text ? tmpl_text->size() : 0;
    o["chat_template"] = std::move(ct);
    o["tensor_count"] = f.tensors().size();
    boost::json::object types;
    for (const auto& [name, n] : per_type) types[name] = n;
    o["tensor_types"] = std::move(types);
    o["tensor_bytes"] = tensor_bytes;
    if (list_tensors) {
      boost::json::array ts;
      for (const auto& t : f.tensors()) {
        boost::json::array ne;
        for (uint32_t d = 0; d < std::max<uint32_t>(t.n_dims, 1); ++d) ne.push_back(t.ne[d]);
        ts.push_back(boost::json::object{{"name", t.name},
                                         {"type", std::string(dtype_name(t.type))},
                                         {"ne", std::move(ne)},
                                         {"bytes", t.size_bytes},
                                         {"offset", f.data_offset() + t.offset}});
      }
      o["tensors"] = std::move(ts);
    }
    std::printf("%s\n", boost::json::serialize(o).c_str());
    return 0;
  }

  std::printf("file:            %s (%llu bytes)\n", path.c_str(),
              static_cast<unsigned long long>(f.file_size()));
  std::printf("gguf version:    %u (alignment %u, %zu metadata keys)\n", f.version(), f.alignment(),
              f.metadata().size());
  std::printf("architecture:    %s\n", arch.empty() ? "(none)" : arch.c_str());
  std::printf("name:            %s\n", string_or(f, "general.name", "(none)").c_str());
  if (!hyper.empty()) {
    std::printf("hyperparameters:\n");
    for (const auto& [k, v] : hyper) std::printf("  %-34s %s\n", k.c_str(), to_text(*v).c_str());
  }
  if (tok_model.empty() && !vocab) {
    std::printf("tokenizer:       (none)\n");
  } else {
    std::printf("tokenizer:       %s / %s, %s tokens\n",
                tok_model.empty() ? "?" : tok_model.c_str(),
                tok_pre.empty() ? "(no pre)" : tok_pre.c_str(),
                vocab ? std::to_string(*vocab).c_str() : "?");
  }
  if (tmpl_text != nullptr) {
    std::printf("chat template:   yes (%zu bytes)\n", tmpl_text->size());
  } else {
    std::printf("chat template:   no\n");
  }
  std::printf("tensors:         %zu (%llu bytes)\n", f.tensors().size(),
              static_cast<unsigned long long>(tensor_bytes));
  for (const auto& [name, n] : per_type) std::printf("  %-6s %zu\n", name.c_str(), n);
  if (list_tensors) {
    std::printf("%-48s %-6s %-26s %s\n", "name", "type", "ne", "bytes");
    for (const auto& t : f.tensors()) {
      std::printf("%-48s %-6s %-26s %llu\n", t.name.c_str(),
                  std::string(dtype_name(t.type)).c_str(), shape(t).c_str(),
                  static_cast<unsigned long long>(t.size_bytes));
    }
  }
  return 0;
}

}  // namespace

void register_inspect(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("inspect", "Show a GGUF file's metadata and tensor directory");
  struct Options {
    std::string path;
    bool json = false;
    bool tensors = false;
  };
  auto opts = std::make_shared<Options>();
  cmd->add_option("model", opts->path, "GGUF file")->required();
  cmd->add_flag("--json", opts->json, "Print one JSON object");
  cmd->add_flag("--tensors", opts->tensors, "List every tensor (name, type, ne, bytes)");
  cmd->callback(
      [opts, &exit_code] { exit_code = run_inspect(opts->path, opts->json, opts->tensors); });
}

}  // namespace enclave::cli
