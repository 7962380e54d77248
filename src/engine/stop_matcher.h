// StopMatcher: applies OpenAI-style stop strings to a stream of UTF-8 text. Text that could be
// the start of a stop string is held back until it is known not to be one; a completed stop
// string ends the stream and is never released (nor is anything after it).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace enclave::engine {

class StopMatcher {
 public:
  StopMatcher() = default;
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends `text`; returns the text that is safe to release. Sets *hit when a stop string
  // completed: the returned text then ends right before it and later pushes return "".
  std::string push(std::string_view text, bool* hit);
  // End of stream: releases whatever is held back (nothing after a hit).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace enclave::engine
