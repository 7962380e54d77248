#include "server/io_loop.h"

#include <chrono>
#include <thread>

namespace enclave::server {

void run_io_loop(boost::asio::io_context& ioc, int32_t spin_us, IoLoopStats* stats) {
  if (spin_us <= 0) {
    if (stats) stats->blocking_waits.fetch_add(1, std::memory_order_relaxed);
    ioc.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  const auto budget = std::chrono::microseconds(spin_us);
  for (;;) {
    if (stats) stats->blocking_waits.fetch_add(1, std::memory_order_relaxed);
    if (ioc.run_one() == 0) return;  // stopped, or out of work
    // Spin: each poll() runs every ready handler and does one non-blocking epoll_wait.
    Clock::time_point idle_since = Clock::now();
    for (;;) {
      if (stats) stats->polls.fetch_add(1, std::memory_order_relaxed);
      size_t ran = ioc.poll();
      if (ioc.stopped()) return;
      Clock::time_point now = Clock::now();
      if (ran > 0) {
        idle_since = now;
        continue;
      }
      if (now - idle_since >= budget) break;
      // Let whatever else is runnable on this core go first (on a machine shared with the
      // upstream and the clients, the answer we wait for may need this very core).
      std::this_thread::yield();
    }
  }
}

}  // namespace enclave::server
