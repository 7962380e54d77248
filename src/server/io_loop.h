// The io threads' run loop. On a virtual machine a thread that blocks in epoll_wait pays a costly
// wake-up (tens of µs) for every event; with a spin budget the loop keeps polling without
// blocking for up to `spin_us` after the last handler it ran (a client's next request, the
// upstream's answer to the request it just sent), then blocks again: an idle server does not spin.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>

namespace enclave::server {

// What one loop did (tests, diagnostics).
struct IoLoopStats {
  std::atomic<uint64_t> blocking_waits{0};  // times the loop blocked waiting for work
  std::atomic<uint64_t> polls{0};           // non-blocking polls while spinning
};

// Runs `ioc` until it is stopped or runs out of work, as io_context::run() does. spin_us <= 0:
// exactly io_context::run(). Otherwise after each handler it polls for up to spin_us µs of
// idleness before blocking again, yielding the core between polls that found nothing.
void run_io_loop(boost::asio::io_context& ioc, int32_t spin_us, IoLoopStats* stats = nullptr);

}  // namespace enclave::server
