// The io threads' run loop: spinning is opt-in, bounded (the loop blocks again once nothing came
// for the budget), runs every handler, and stops like io_context::run().
#include "server/io_loop.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <thread>

#include "../common/eventually.h"
#include "server/config.h"
#include "server/server.h"

namespace enclave::server {
namespace {

namespace net = boost::asio;

// Waits (without asserting on time) until `pred` holds; false after a generous limit.
template <class Pred>
bool eventually(Pred pred) {
  return enclave::testing::eventually(pred, std::chrono::seconds(10), std::chrono::milliseconds(1));
}

TEST(IoLoop, ZeroSpinIsPlainRunAndNeverPolls) {
  net::io_context ioc;
  int ran = 0;
  for (int i = 0; i < 3; ++i) net::post(ioc, [&] { ++ran; });
  IoLoopStats stats;
  run_io_loop(ioc, 0, &stats);  // out of work: returns
  EXPECT_EQ(ran, 3);
  EXPECT_EQ(stats.polls.load(), 0u);
  EXPECT_EQ(stats.blocking_waits.load(), 1u);
}

TEST(IoLoop, SpinRunsEveryHandlerAndReturnsWhenOutOfWork) {
  net::io_context ioc;
  int ran = 0;
  for (int i = 0; i < 5; ++i) net::post(ioc, [&] { ++ran; });
  IoLoopStats stats;
  run_io_loop(ioc, 1000, &stats);
  EXPECT_EQ(ran, 5);
  EXPECT_TRUE(ioc.stopped());
}

TEST(IoLoop, SpinIsBoundedThenBlocksAgain) {
  net::io_context ioc;
  auto guard = net::make_work_guard(ioc);
  IoLoopStats stats;
  std::thread t([&] { run_io_loop(ioc, 200, &stats); });
  ASSERT_TRUE(eventually([&] { return stats.blocking_waits.load() >= 1; }));
  std::atomic<int> ran{0};
  net::post(ioc, [&] { ++ran; });
  // After the handler the loop spins at most 200 µs of idleness, then blocks a second time.
  EXPECT_TRUE(eventually([&] { return ran.load() == 1 && stats.blocking_waits.load() >= 2; }));
  EXPECT_GT(stats.polls.load(), 0u);
  // Blocked: no more polls while nothing happens.
  uint64_t polls = stats.polls.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(stats.polls.load(), polls);
  // Work that arrives while blocked still runs, and stop() ends the loop.
  net::post(ioc, [&] { ++ran; });
  EXPECT_TRUE(eventually([&] { return ran.load() == 2; }));
  ioc.stop();
  t.join();
}

TEST(IoLoop, ConfigAndOptionsValidateTheSpin) {
  ServerConfig c;
  EXPECT_EQ(c.io_spin_us, kDefaultIoSpinUs);
  ASSERT_TRUE(load_config_text("io_spin_us: 50\n", c).is_ok());
  EXPECT_EQ(c.io_spin_us, 50);
  ASSERT_TRUE(load_config_text("io_spin_us: 0\n", c).is_ok());
  EXPECT_EQ(c.io_spin_us, 0);
  EXPECT_FALSE(load_config_text("io_spin_us: -1\n", c).is_ok());
  Status too_long = load_config_text("io_spin_us: 10001\n", c);
  ASSERT_FALSE(too_long.is_ok());
  EXPECT_NE(too_long.error().message.find("io_spin_us"), std::string::npos);

  ServerOptions o;
  EXPECT_EQ(o.io_spin_us, kDefaultIoSpinUs);
  o.io_spin_us = -5;
  EXPECT_FALSE(
      Server::create(o, std::make_shared<KeyStore>(KeyStore::with_secret(std::string(32, 7))))
          .has_value());
}

}  // namespace
}  // namespace enclave::server
