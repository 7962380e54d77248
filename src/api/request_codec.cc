// Request parsing and validation: JSON -> typed requests. Unknown fields are ignored (as the
// OpenAI API does); known fields are type- and range-checked and errors name the field.
#include <array>
#include <boost/json.hpp>
#include <cmath>
#include <limits>

#include "api/codec.h"

namespace enclave::api {
namespace json = boost::json;
namespace {

// Carries the param out-pointer so every failure records the field it is about.
class Checker {
 public:
  explicit Checker(std::string* param) : param_(param) {}

  Error fail(std::string_view param, std::string message,
             ErrorCode code = ErrorCode::kInvalidArgument) const {
    if (param_) *param_ = std::string(param);
    return Error(code, std::move(message));
  }

 private:
  std::string* param_;
};

// The parsed tree lives in `storage` (a caller's monotonic buffer: the request's strings are
// copied out into the typed request, so the tree is freed in one go).
Result<json::value> parse_object(std::string_view body, const Checker& ck,
                                 json::storage_ptr storage) {
  if (body.empty()) {
    return ck.fail({},
                   "Request body is empty; send a JSON object (Content-Type: application/json).");
  }
  json::parse_options opts;
  opts.max_depth = 64;
  std::error_code ec;
  json::value v =
      json::parse(json::string_view(body.data(), body.size()), ec, std::move(storage), opts);
  if (ec) {
    if (!is_valid_utf8(body)) {
      return ck.fail({}, "Request body is not valid UTF-8; encode all text as UTF-8.");
    }
    return ck.fail({}, "Could not parse the JSON body of the request (" + ec.message() +
                           "); send a valid JSON object.");
  }
  if (!v.is_object()) return ck.fail({}, "The JSON body must be an object.");
  return v;
}

// Stack space for a typical request's tree; larger bodies continue on the heap.
constexpr size_t kParseScratchBytes = 4096;

// The members of an object that a reader looks at, found in one pass over the object instead of
// one search per known name. Keys of a json::object are unique (the parser keeps the last of
// duplicates), so if_contains(name) returns exactly what json::object::if_contains does. Names
// are checked at compile time against kNames.
template <const auto& kNames>
class Members {
 public:
  struct Name {
    consteval Name(const char* name) : index(index_of(name)) {}  // NOLINT: literal names
    size_t index;
  };

  explicit Members(const json::object& o) {
    for (const json::key_value_pair& kv : o) {
      const std::string_view key(kv.key().data(), kv.key().size());
      for (size_t i = 0; i < kNames.size(); ++i) {
        if (kNames[i] == key) {
          at_[i] = &kv.value();
          break;
        }
      }
    }
  }
  const json::value* if_contains(Name name) const { return at_[name.index]; }

 private:
  static consteval size_t index_of(std::string_view name) {
    for (size_t i = 0; i < kNames.size(); ++i) {
      if (kNames[i] == name) return i;
    }
    throw "member name missing from the reader's list";  // a compile error when reached
  }
  std::array<const json::value*, std::tuple_size_v<std::remove_cvref_t<decltype(kNames)>>> at_{};
};

// Every top-level member a request reader looks at (chat, completion, embedding).
constexpr std::array<std::string_view, 28> kRequestMembers = {
    // The usual members of a chat request first: each key is compared in this order.
    "model",
    "messages",
    "stream",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream_options",
    "seed",
    "top_k",
    "min_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "max_completion_tokens",
    "n",
    "response_format",
    "tools",
    "logprobs",
    "top_logprobs",
    "prompt",
    "best_of",
    "echo",
    "suffix",
    "input",
    "encoding_format",
    "dimensions"};
using RequestMembers = Members<kRequestMembers>;
constexpr std::array<std::string_view, 4> kMessageMembers = {"role", "content", "reasoning_content",
                                                             "name"};
using MessageMembers = Members<kMessageMembers>;

const char* kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "unknown";
}

Error type_error(const Checker& ck, std::string_view field, const json::value& v,
                 std::string_view expected) {
  return ck.fail(field, "'" + std::string(field) + "' must be " + std::string(expected) + ", got " +
                            kind_name(v) + ".");
}

Result<std::string> get_string(const Checker& ck, std::string_view field, const json::value& v) {
  if (!v.is_string()) return type_error(ck, field, v, "a string");
  std::string s(v.as_string().data(), v.as_string().size());
  if (!is_valid_utf8(s)) {
    return ck.fail(field, "'" + std::string(field) + "' is not valid UTF-8 text.");
  }
  return s;
}

Result<double> get_number(const Checker& ck, std::string_view field, const json::value& v,
                          double lo, double hi) {
  double d = 0;
  if (v.is_int64()) {
    d = static_cast<double>(v.as_int64());
  } else if (v.is_uint64()) {
    d = static_cast<double>(v.as_uint64());
  } else if (v.is_double()) {
    d = v.as_double();
  } else {
    return type_error(ck, field, v, "a number");
  }
  if (!std::isfinite(d) || d < lo || d > hi) {
    return ck.fail(field, "'" + std::string(field) + "' must be between " + std::to_string(lo) +
                              " and " + std::to_string(hi) + ".");
  }
  return d;
}

Result<int64_t> get_int(const Checker& ck, std::string_view field, const json::value& v, int64_t lo,
                        int64_t hi) {
  int64_t i = 0;
  if (v.is_int64()) {
    i = v.as_int64();
  } else if (v.is_uint64()) {
    if (v.as_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return ck.fail(field, "'" + std::string(field) + "' is too large.");
    }
    i = static_cast<int64_t>(v.as_uint64());
  } else if (v.is_double() && std::floor(v.as_double()) == v.as_double() &&
             std::fabs(v.as_double()) < 9e15) {
    i = static_cast<int64_t>(v.as_double());
  } else {
    return type_error(ck, field, v, "an integer");
  }
  if (i < lo || i > hi) {
    return ck.fail(field, "'" + std::string(field) + "' must be between " + std::to_string(lo) +
                              " and " + std::to_string(hi) + ".");
  }
  return i;
}

Result<bool> get_bool(const Checker& ck, std::string_view field, const json::value& v) {
  if (!v.is_bool()) return type_error(ck, field, v, "a boolean");
  return v.as_bool();
}

// The "model" field: required string (the server resolves it).
Status read_model(const Checker& ck, const RequestMembers& o, std::string& out) {
  const json::value* v = o.if_contains("model");
  if (!v || v->is_null()) {
    return ck.fail("model", "Missing required field 'model'; GET /v1/models lists the served ids.");
  }
  ENCLAVE_ASSIGN_OR_RETURN(out, get_string(ck, "model", *v));
  return Status::ok();
}

Status read_stop(const Checker& ck, const RequestMembers& o, const ParseLimits& limits,
                 std::vector<std::string>& out) {
  const json::value* v = o.if_contains("stop");
  if (!v || v->is_null()) return Status::ok();
  if (v->is_string()) {
    ENCLAVE_ASSIGN_OR_RETURN(std::string s, get_string(ck, "stop", *v));
    if (!s.empty()) out.push_back(std::move(s));
    return Status::ok();
  }
  if (!v->is_array()) return type_error(ck, "stop", *v, "a string or an array of strings");
  const json::array& arr = v->as_array();
  if (arr.size() > limits.max_stop) {
    return ck.fail("stop", "'stop' has " + std::to_string(arr.size()) + " entries; at most " +
                               std::to_string(limits.max_stop) + " are allowed.");
  }
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string field = "stop[" + std::to_string(i) + "]";
    ENCLAVE_ASSIGN_OR_RETURN(std::string s, get_string(ck, field, arr[i]));
    if (!s.empty()) out.push_back(std::move(s));
  }
  return Status::ok();
}

Status read_sampling(const Checker& ck, const RequestMembers& o, const ParseLimits& limits,
                     SamplingOptions& s) {
  if (const json::value* v = o.if_contains("temperature"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(double d, get_number(ck, "temperature", *v, 0.0, 2.0));
    s.temperature = static_cast<float>(d);
  }
  if (const json::value* v = o.if_contains("top_p"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(double d, get_number(ck, "top_p", *v, 0.0, 1.0));
    if (d <= 0.0) return ck.fail("top_p", "'top_p' must be greater than 0 and at most 1.");
    s.top_p = static_cast<float>(d);
  }
  if (const json::value* v = o.if_contains("top_k"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(int64_t k, get_int(ck, "top_k", *v, -1, 1 << 20));
    s.top_k = static_cast<int32_t>(k);
  }
  if (const json::value* v = o.if_contains("min_p"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(double d, get_number(ck, "min_p", *v, 0.0, 1.0));
    s.min_p = static_cast<float>(d);
  }
  if (const json::value* v = o.if_contains("repeat_penalty"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(double d, get_number(ck, "repeat_penalty", *v, 0.01, 10.0));
    s.repeat_penalty = static_cast<float>(d);
  }
  if (const json::value* v = o.if_contains("presence_penalty"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(double d, get_number(ck, "presence_penalty", *v, -2.0, 2.0));
    s.presence_penalty = static_cast<float>(d);
  }
  if (const json::value* v = o.if_contains("frequency_penalty"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(double d, get_number(ck, "frequency_penalty", *v, -2.0, 2.0));
    s.frequency_penalty = static_cast<float>(d);
  }
  if (const json::value* v = o.if_contains("seed"); v && !v->is_null()) {
    if (v->is_uint64()) {
      s.seed = v->as_uint64();
    } else {
      ENCLAVE_ASSIGN_OR_RETURN(int64_t seed,
                               get_int(ck, "seed", *v, std::numeric_limits<int64_t>::min(),
                                       std::numeric_limits<int64_t>::max()));
      s.seed = static_cast<uint64_t>(seed);
    }
  }
  if (const json::value* v = o.if_contains("logit_bias"); v && !v->is_null()) {
    if (!v->is_object()) return type_error(ck, "logit_bias", *v, "an object of token id -> bias");
    const json::object& lb = v->as_object();
    if (lb.size() > limits.max_logit_bias) {
      return ck.fail("logit_bias", "'logit_bias' has too many entries (at most " +
                                       std::to_string(limits.max_logit_bias) + ").");
    }
    for (const auto& kv : lb) {
      std::string key(kv.key().data(), kv.key().size());
      std::string field = "logit_bias." + key;
      int64_t id = -1;
      bool digits = !key.empty() && key.size() <= 9;
      for (char c : key) digits = digits && c >= '0' && c <= '9';
      if (!digits) {
        return ck.fail("logit_bias",
                       "'logit_bias' keys must be token ids (non-negative integers).");
      }
      id = std::stoll(key);
      ENCLAVE_ASSIGN_OR_RETURN(double bias,
                               get_number(ck, "logit_bias", kv.value(), -100.0, 100.0));
      s.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(bias));
    }
  }
  return Status::ok();
}

// max_tokens and its newer name max_completion_tokens (either; the latter wins if both).
Status read_max_tokens(const Checker& ck, const RequestMembers& o, std::optional<int32_t>& out) {
  if (const json::value* v = o.if_contains("max_tokens"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(int64_t n, get_int(ck, "max_tokens", *v, 1, 1 << 24));
    out = static_cast<int32_t>(n);
  }
  if (const json::value* v = o.if_contains("max_completion_tokens"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(int64_t n, get_int(ck, "max_completion_tokens", *v, 1, 1 << 24));
    out = static_cast<int32_t>(n);
  }
  return Status::ok();
}

Status read_stream(const Checker& ck, const RequestMembers& o, bool& stream, bool& include_usage) {
  if (const json::value* v = o.if_contains("stream"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(stream, get_bool(ck, "stream", *v));
  }
  if (const json::value* v = o.if_contains("stream_options"); v && !v->is_null()) {
    if (!v->is_object()) return type_error(ck, "stream_options", *v, "an object");
    if (const json::value* u = v->as_object().if_contains("include_usage"); u && !u->is_null()) {
      ENCLAVE_ASSIGN_OR_RETURN(include_usage, get_bool(ck, "stream_options.include_usage", *u));
    }
  }
  return Status::ok();
}

Status read_n(const Checker& ck, const RequestMembers& o) {
  if (const json::value* v = o.if_contains("n"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(int64_t n, get_int(ck, "n", *v, 1, 128));
    if (n != 1) {
      return ck.fail("n", "'n' > 1 is not supported; send one request per completion.",
                     ErrorCode::kUnsupported);
    }
  }
  return Status::ok();
}

// Field name of member `member` of messages[i], spelled out only for an error message.
std::string message_field(size_t i, std::string_view member) {
  std::string f = "messages[" + std::to_string(i) + "]";
  if (!member.empty()) f.append(".").append(member);
  return f;
}

// get_string for member `member` of messages[i] without building its name unless it fails.
Status read_message_string(const Checker& ck, size_t i, std::string_view member,
                           const json::value& v, std::string& out) {
  if (v.is_string() &&
      is_valid_utf8(std::string_view(v.as_string().data(), v.as_string().size()))) {
    out.assign(v.as_string().data(), v.as_string().size());
    return Status::ok();
  }
  ENCLAVE_ASSIGN_OR_RETURN(out, get_string(ck, message_field(i, member), v));
  return Status::ok();
}

// content: a string, null (assistant turns), or an array of {"type":"text","text":...} parts.
Status read_content(const Checker& ck, size_t index, const json::value& v, std::string& out) {
  if (v.is_null()) return Status::ok();
  if (v.is_string()) return read_message_string(ck, index, "content", v, out);
  std::string field = message_field(index, "content");
  if (!v.is_array()) return type_error(ck, field, v, "a string or an array of text parts");
  const json::array& parts = v.as_array();
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string pf = field + "[" + std::to_string(i) + "]";
    if (!parts[i].is_object()) return type_error(ck, pf, parts[i], "an object");
    const json::object& part = parts[i].as_object();
    const json::value* type = part.if_contains("type");
    if (!type || !type->is_string() || type->as_string() != "text") {
      return ck.fail(pf + ".type", "Only content parts of type 'text' are supported.",
                     ErrorCode::kUnsupported);
    }
    const json::value* text = part.if_contains("text");
    if (!text) return ck.fail(pf + ".text", "Missing required field '" + pf + ".text'.");
    ENCLAVE_ASSIGN_OR_RETURN(std::string t, get_string(ck, pf + ".text", *text));
    out += t;
  }
  return Status::ok();
}

Status read_messages(const Checker& ck, const RequestMembers& o, const ParseLimits& limits,
                     std::vector<ChatMessage>& out) {
  const json::value* v = o.if_contains("messages");
  if (!v || v->is_null()) return ck.fail("messages", "Missing required field 'messages'.");
  if (!v->is_array()) return type_error(ck, "messages", *v, "an array of message objects");
  const json::array& arr = v->as_array();
  if (arr.empty()) return ck.fail("messages", "'messages' must contain at least one message.");
  if (arr.size() > limits.max_messages) {
    return ck.fail("messages", "'messages' has " + std::to_string(arr.size()) +
                                   " entries; the server allows at most " +
                                   std::to_string(limits.max_messages) + ".");
  }
  out.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_object()) return type_error(ck, message_field(i, {}), arr[i], "an object");
    const MessageMembers m(arr[i].as_object());
    ChatMessage msg;
    const json::value* role = m.if_contains("role");
    if (!role) {
      std::string f = message_field(i, "role");
      return ck.fail(f, "Missing required field '" + f + "'.");
    }
    ENCLAVE_TRY_STATUS(read_message_string(ck, i, "role", *role, msg.role));
    if (msg.role == "developer") msg.role = "system";
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" &&
        msg.role != "tool") {
      std::string f = message_field(i, "role");
      return ck.fail(f, "'" + f + "' must be one of system, developer, user, assistant, tool.");
    }
    const json::value* content = m.if_contains("content");
    if (!content || (content->is_null() && msg.role != "assistant")) {
      std::string f = message_field(i, "content");
      return ck.fail(f, "Missing required field '" + f + "'.");
    }
    ENCLAVE_TRY_STATUS(read_content(ck, i, *content, msg.content));
    if (const json::value* r = m.if_contains("reasoning_content"); r && !r->is_null()) {
      ENCLAVE_TRY_STATUS(
          read_message_string(ck, i, "reasoning_content", *r, msg.reasoning_content));
    }
    if (const json::value* n = m.if_contains("name"); n && !n->is_null()) {
      ENCLAVE_TRY_STATUS(read_message_string(ck, i, "name", *n, msg.name));
    }
    out.push_back(std::move(msg));
  }
  return Status::ok();
}

Status reject_unsupported(const Checker& ck, const RequestMembers& o) {
  if (const json::value* v = o.if_contains("response_format"); v && !v->is_null()) {
    if (!v->is_object()) return type_error(ck, "response_format", *v, "an object");
    const json::value* type = v->as_object().if_contains("type");
    if (!type || !type->is_string()) {
      return ck.fail("response_format.type", "Missing 'response_format.type' (use \"text\").");
    }
    if (type->as_string() != "text") {
      return ck.fail("response_format",
                     "response_format type '" + std::string(type->as_string()) +
                         "' is not supported yet (constrained JSON sampling is future work); "
                         "omit response_format or use {\"type\":\"text\"}.",
                     ErrorCode::kUnsupported);
    }
  }
  if (const json::value* v = o.if_contains("tools"); v && v->is_array() && !v->as_array().empty()) {
    return ck.fail("tools", "Tool calling is not supported yet; omit 'tools'.",
                   ErrorCode::kUnsupported);
  }
  return Status::ok();
}

// Chat: `logprobs` (bool) and `top_logprobs` (0..20, only together with logprobs: true, as the
// OpenAI API requires).
Status read_chat_logprobs(const Checker& ck, const RequestMembers& o, bool& logprobs,
                          int32_t& top_logprobs) {
  if (const json::value* v = o.if_contains("logprobs"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(logprobs, get_bool(ck, "logprobs", *v));
  }
  if (const json::value* v = o.if_contains("top_logprobs"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(int64_t n, get_int(ck, "top_logprobs", *v, 0, kMaxChatTopLogprobs));
    if (!logprobs) {
      return ck.fail("top_logprobs",
                     "'top_logprobs' requires 'logprobs': true; set logprobs to true or omit "
                     "top_logprobs.");
    }
    top_logprobs = static_cast<int32_t>(n);
  }
  return Status::ok();
}

// Completions: `logprobs: N` (integer 0..5; null or false = off).
Status read_completion_logprobs(const Checker& ck, const RequestMembers& o,
                                std::optional<int32_t>& logprobs) {
  const json::value* v = o.if_contains("logprobs");
  if (!v || v->is_null() || (v->is_bool() && !v->as_bool())) return Status::ok();
  if (v->is_bool()) {
    return ck.fail("logprobs",
                   "'logprobs' of /v1/completions is the number of alternatives per "
                   "token: an integer between 0 and " +
                       std::to_string(kMaxCompletionLogprobs) + ", not true.");
  }
  ENCLAVE_ASSIGN_OR_RETURN(int64_t n, get_int(ck, "logprobs", *v, 0, kMaxCompletionLogprobs));
  logprobs = static_cast<int32_t>(n);
  return Status::ok();
}

}  // namespace

Result<ChatRequest> parse_chat_request(std::string_view body, const ParseLimits& limits,
                                       std::string* param) {
  Checker ck(param);
  unsigned char scratch[kParseScratchBytes];
  json::monotonic_resource tree_memory(scratch, sizeof(scratch));
  ENCLAVE_ASSIGN_OR_RETURN(json::value tree, parse_object(body, ck, &tree_memory));
  const RequestMembers o(tree.as_object());
  ChatRequest r;
  ENCLAVE_TRY_STATUS(read_model(ck, o, r.model));
  ENCLAVE_TRY_STATUS(read_messages(ck, o, limits, r.messages));
  ENCLAVE_TRY_STATUS(read_sampling(ck, o, limits, r.sampling));
  ENCLAVE_TRY_STATUS(read_max_tokens(ck, o, r.max_tokens));
  ENCLAVE_TRY_STATUS(read_stop(ck, o, limits, r.stop));
  ENCLAVE_TRY_STATUS(read_stream(ck, o, r.stream, r.include_usage));
  ENCLAVE_TRY_STATUS(read_n(ck, o));
  ENCLAVE_TRY_STATUS(reject_unsupported(ck, o));
  ENCLAVE_TRY_STATUS(read_chat_logprobs(ck, o, r.logprobs, r.top_logprobs));
  return r;
}

Result<CompletionRequest> parse_completion_request(std::string_view body, const ParseLimits& limits,
                                                   std::string* param) {
  Checker ck(param);
  unsigned char scratch[kParseScratchBytes];
  json::monotonic_resource tree_memory(scratch, sizeof(scratch));
  ENCLAVE_ASSIGN_OR_RETURN(json::value tree, parse_object(body, ck, &tree_memory));
  const RequestMembers o(tree.as_object());
  CompletionRequest r;
  ENCLAVE_TRY_STATUS(read_model(ck, o, r.model));
  const json::value* p = o.if_contains("prompt");
  if (!p || p->is_null()) return ck.fail("prompt", "Missing required field 'prompt'.");
  if (p->is_string()) {
    ENCLAVE_ASSIGN_OR_RETURN(r.prompt, get_string(ck, "prompt", *p));
  } else if (p->is_array()) {
    const json::array& arr = p->as_array();
    if (arr.empty()) return ck.fail("prompt", "'prompt' must not be an empty array.");
    if (arr[0].is_string()) {
      if (arr.size() != 1) {
        return ck.fail(
            "prompt",
            "Only one prompt per request is supported (got " + std::to_string(arr.size()) + ").",
            ErrorCode::kUnsupported);
      }
      ENCLAVE_ASSIGN_OR_RETURN(r.prompt, get_string(ck, "prompt[0]", arr[0]));
    } else {
      r.prompt_is_tokens = true;
      for (size_t i = 0; i < arr.size(); ++i) {
        if (arr[i].is_array()) {
          return ck.fail("prompt", "Only one prompt per request is supported.",
                         ErrorCode::kUnsupported);
        }
        ENCLAVE_ASSIGN_OR_RETURN(int64_t id,
                                 get_int(ck, "prompt[" + std::to_string(i) + "]", arr[i], 0,
                                         std::numeric_limits<int32_t>::max()));
        r.prompt_tokens.push_back(static_cast<int32_t>(id));
      }
    }
  } else {
    return type_error(ck, "prompt", *p, "a string or an array of token ids");
  }
  ENCLAVE_TRY_STATUS(read_sampling(ck, o, limits, r.sampling));
  ENCLAVE_TRY_STATUS(read_max_tokens(ck, o, r.max_tokens));
  ENCLAVE_TRY_STATUS(read_stop(ck, o, limits, r.stop));
  ENCLAVE_TRY_STATUS(read_stream(ck, o, r.stream, r.include_usage));
  ENCLAVE_TRY_STATUS(read_n(ck, o));
  if (const json::value* v = o.if_contains("best_of"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(int64_t b, get_int(ck, "best_of", *v, 1, 128));
    if (b != 1)
      return ck.fail("best_of", "'best_of' > 1 is not supported.", ErrorCode::kUnsupported);
  }
  if (const json::value* v = o.if_contains("echo"); v && v->is_bool() && v->as_bool()) {
    return ck.fail("echo", "'echo' is not supported yet.", ErrorCode::kUnsupported);
  }
  if (const json::value* v = o.if_contains("suffix");
      v && v->is_string() && !v->as_string().empty()) {
    return ck.fail("suffix", "'suffix' (fill-in-the-middle) is not supported yet.",
                   ErrorCode::kUnsupported);
  }
  ENCLAVE_TRY_STATUS(read_completion_logprobs(ck, o, r.logprobs));
  return r;
}

Result<EmbeddingRequest> parse_embedding_request(std::string_view body, const ParseLimits& limits,
                                                 std::string* param) {
  Checker ck(param);
  unsigned char scratch[kParseScratchBytes];
  json::monotonic_resource tree_memory(scratch, sizeof(scratch));
  ENCLAVE_ASSIGN_OR_RETURN(json::value tree, parse_object(body, ck, &tree_memory));
  const RequestMembers o(tree.as_object());
  EmbeddingRequest r;
  ENCLAVE_TRY_STATUS(read_model(ck, o, r.model));
  const json::value* in = o.if_contains("input");
  if (!in || in->is_null()) return ck.fail("input", "Missing required field 'input'.");
  if (in->is_string()) {
    ENCLAVE_ASSIGN_OR_RETURN(std::string s, get_string(ck, "input", *in));
    r.inputs.push_back(std::move(s));
  } else if (in->is_array()) {
    const json::array& arr = in->as_array();
    if (arr.empty()) return ck.fail("input", "'input' must not be an empty array.");
    if (arr.size() > limits.max_embedding_inputs) {
      return ck.fail("input", "'input' has " + std::to_string(arr.size()) + " entries; at most " +
                                  std::to_string(limits.max_embedding_inputs) + " are allowed.");
    }
    for (size_t i = 0; i < arr.size(); ++i) {
      ENCLAVE_ASSIGN_OR_RETURN(std::string s,
                               get_string(ck, "input[" + std::to_string(i) + "]", arr[i]));
      r.inputs.push_back(std::move(s));
    }
  } else {
    return type_error(ck, "input", *in, "a string or an array of strings");
  }
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    if (r.inputs[i].empty()) {
      return ck.fail(r.inputs.size() == 1 ? "input" : "input[" + std::to_string(i) + "]",
                     "Embedding input must not be empty.");
    }
  }
  if (const json::value* v = o.if_contains("encoding_format"); v && !v->is_null()) {
    ENCLAVE_ASSIGN_OR_RETURN(std::string f, get_string(ck, "encoding_format", *v));
    if (f == "float") {
      r.encoding = EmbeddingEncoding::kFloat;
    } else if (f == "base64") {
      r.encoding = EmbeddingEncoding::kBase64;
    } else {
      return ck.fail("encoding_format", "'encoding_format' must be \"float\" or \"base64\".");
    }
  }
  if (const json::value* v = o.if_contains("dimensions"); v && !v->is_null()) {
    return ck.fail("dimensions", "'dimensions' is not supported; the model's width is used.",
                   ErrorCode::kUnsupported);
  }
  return r;
}

bool is_valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;  // overlong
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace enclave::api
