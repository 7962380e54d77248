// Test helper: wait for something a background thread does, without asserting on time.
#pragma once

#include <chrono>
#include <thread>

namespace enclave::testing {

// Checks `pred` every `step` until it holds or `limit` has passed; its last answer.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit, std::chrono::milliseconds step) {
  for (std::chrono::milliseconds waited{0}; waited < limit; waited += step) {
    if (pred()) return true;
    std::this_thread::sleep_for(step);
  }
  return pred();
}

}  // namespace enclave::testing
