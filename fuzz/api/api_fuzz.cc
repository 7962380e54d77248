// libFuzzer target for the API request parsers: arbitrary bytes must give a value or an error,
// never a crash; accepted requests must satisfy the validated invariants and re-serialize.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/codec.h"
#include "api/error_mapper.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace enclave::api;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  ParseLimits limits;
  limits.max_messages = 64;
  std::string param;
  auto chat = parse_chat_request(body, limits, &param);
  if (chat) {
    check(!chat->messages.empty() && chat->messages.size() <= limits.max_messages);
    for (const auto& m : chat->messages) check(is_valid_utf8(m.content));
    check(!chat->max_tokens || *chat->max_tokens >= 1);
    check(!chat->sampling.temperature ||
          (*chat->sampling.temperature >= 0 && *chat->sampling.temperature <= 2));
    ResponseMeta meta{"id", 0, chat->model};
    ChatResult r;
    r.content = chat->messages[0].content;
    check(!write_chat_completion(meta, r).empty());
  } else {
    check(!error_json(map_error(chat.error(), param)).empty());
  }
  param.clear();
  auto completion = parse_completion_request(body, limits, &param);
  if (completion) {
    check(completion->prompt_is_tokens || is_valid_utf8(completion->prompt));
    for (int32_t t : completion->prompt_tokens) check(t >= 0);
  }
  param.clear();
  auto embedding = parse_embedding_request(body, limits, &param);
  if (embedding) {
    check(!embedding->inputs.empty());
    for (const auto& s : embedding->inputs) check(!s.empty() && is_valid_utf8(s));
  }
  return 0;
}
