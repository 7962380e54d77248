// Server-Sent Events framing exactly as the OpenAI API writes it.
#pragma once

#include <string>
#include <string_view>

namespace enclave::server {

// "data: <payload>\n\n". The payload is single-line JSON (our writers never emit newlines).
inline std::string sse_data(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  out += "data: ";
  out += payload;
  out += "\n\n";
  return out;
}

inline std::string sse_done() {
  return "data: [DONE]\n\n";
}

}  // namespace enclave::server
