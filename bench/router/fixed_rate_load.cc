// Open-loop fixed-rate HTTP/1.1 load generator (wrk2 is not in Debian). Requests are scheduled
// at exact intervals; latency is measured from the *scheduled* send time, so a stalled server
// cannot hide queueing (no coordinated omission). One thread, Asio, keep-alive connections.
//
//   fixed_rate_load --port 8080 --path /v1/chat/completions --rate 1000 --duration 10
//                   [--connections 64] [--warmup 2] [--body-file req.json] [--header 'K: V']...
//                   [--samples-out FILE]  (per request: target, connection, scheduled, sent and
//                   done times in CLOCK_MONOTONIC ns, to line slow ones up with `perf record -k
//                   mono`)
//   fixed_rate_load --target direct=18081 --target gateway=18083 [--slice-ms 100] --rate 1000 ...
// Prints one line per target: rate, requests, errors, p50/p90/p99/p999/max latency in
// microseconds. With several targets the schedule rotates between them every slice (each gets
// the full rate during its slices): slow drifts and stalls of a shared or virtual machine then
// fall on every target alike, which back-to-back runs cannot promise.
#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct TargetSpec {
  std::string name;
  std::string port;
};

struct Options {
  std::string host = "127.0.0.1";
  std::vector<TargetSpec> targets;  // --port P is one target named "target"
  double slice_ms = 100;
  std::string path = "/v1/chat/completions";
  double rate = 1000;
  double duration_s = 10;
  double warmup_s = 2;
  int connections = 64;
  std::string body = R"({"model":"deepseek-chat","messages":[{"role":"user","content":"hi"}]})";
  std::vector<std::string> headers;
  std::string samples_out;  // one line per measured request, for lining up with a kernel trace
};

// One measured request's times (steady_clock = CLOCK_MONOTONIC, as `perf record -k mono`).
struct Sample {
  Clock::time_point scheduled, sent, done;
  int conn;
};

struct Stats {
  std::vector<int64_t> latencies_us;
  std::vector<Sample> samples;
  int64_t errors = 0;
  int64_t non_200 = 0;
};

class Load;
class Conn;

// One server under test: its own connections and figures.
struct Target {
  TargetSpec spec;
  std::string request;
  tcp::resolver::results_type endpoints;
  std::vector<std::shared_ptr<Conn>> conns;
  Stats stats;
};

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(Load& load, Target& target, net::io_context& ioc, int index)
      : load_(load), target_(target), stream_(ioc), index_(index) {}
  void send(Clock::time_point scheduled);
  bool busy() const { return busy_; }

 private:
  void on_done(bool ok, int status);
  Load& load_;
  Target& target_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::response<http::string_body> res_;
  Clock::time_point scheduled_, sent_;
  int index_;
  bool connected_ = false;
  bool busy_ = false;
};

class Load {
 public:
  Load(Options o, net::io_context& ioc) : o_(std::move(o)), ioc_(ioc), timer_(ioc) {
    tcp::resolver r(ioc);
    targets_.reserve(o_.targets.size());  // Conn holds Target&: no reallocation after this
    for (const TargetSpec& spec : o_.targets) {
      Target& t = targets_.emplace_back();
      t.spec = spec;
      std::ostringstream req;
      req << "POST " << o_.path << " HTTP/1.1\r\nHost: " << o_.host << ":" << spec.port
          << "\r\nContent-Type: application/json\r\nContent-Length: " << o_.body.size()
          << "\r\nConnection: keep-alive\r\n";
      for (const auto& h : o_.headers) req << h << "\r\n";
      req << "\r\n" << o_.body;
      t.request = req.str();
      t.endpoints = r.resolve(o_.host, spec.port);
    }
  }

  void run() {
    start_ = Clock::now();
    next_ = start_;
    interval_ = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / o_.rate));
    end_ = start_ + std::chrono::nanoseconds(static_cast<int64_t>(o_.duration_s * 1e9));
    measure_from_ = start_ + std::chrono::nanoseconds(static_cast<int64_t>(o_.warmup_s * 1e9));
    tick();
    ioc_.run();
  }

  void tick() {
    auto now = Clock::now();
    while (next_ <= now && next_ < end_) {
      queue_.push_back({next_, target_at(next_)});
      next_ += interval_;
    }
    dispatch();
    if (next_ < end_) {
      timer_.expires_at(next_);
      timer_.async_wait([this](beast::error_code) { tick(); });
    } else {
      finished_scheduling_ = true;
      maybe_stop();
    }
  }

  // Requests go out in schedule order; one that finds all its target's connections busy waits
  // (and the ones behind it with it), as a single-target run does.
  void dispatch() {
    while (!queue_.empty()) {
      Target& target = targets_[queue_.front().target];
      std::shared_ptr<Conn> c;
      for (auto& x : target.conns) {
        if (!x->busy()) {
          c = x;
          break;
        }
      }
      if (!c) {
        if (static_cast<int>(target.conns.size()) >= o_.connections) return;  // wait for one
        c = std::make_shared<Conn>(*this, target, ioc_, static_cast<int>(target.conns.size()));
        target.conns.push_back(c);
      }
      Clock::time_point t = queue_.front().at;
      queue_.pop_front();
      c->send(t);
    }
  }

  void record(Target& target, Clock::time_point scheduled, Clock::time_point sent, int conn,
              bool ok, int status) {
    auto now = Clock::now();
    if (scheduled >= measure_from_) {
      if (!ok) {
        ++target.stats.errors;
      } else {
        if (status != 200) ++target.stats.non_200;
        target.stats.latencies_us.push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(now - scheduled).count());
        if (!o_.samples_out.empty()) target.stats.samples.push_back({scheduled, sent, now, conn});
      }
    }
    dispatch();
    maybe_stop();
  }

  void maybe_stop() {
    if (!finished_scheduling_ || !queue_.empty()) return;
    for (auto& t : targets_) {
      for (auto& c : t.conns) {
        if (c->busy()) return;
      }
    }
    ioc_.stop();
  }

  std::vector<Target>& targets() { return targets_; }
  const Options& options() const { return o_; }

 private:
  Options o_;
  net::io_context& ioc_;
  net::steady_timer timer_;
  struct Scheduled {
    Clock::time_point at;
    size_t target;
  };
  // Which target a send scheduled at `t` goes to: slices rotate through the targets.
  size_t target_at(Clock::time_point t) const {
    if (targets_.size() == 1) return 0;
    auto slice = std::chrono::nanoseconds(static_cast<int64_t>(o_.slice_ms * 1e6));
    return static_cast<size_t>((t - start_) / slice) % targets_.size();
  }

  std::vector<Target> targets_;
  std::deque<Scheduled> queue_;
  Clock::time_point start_, next_, end_, measure_from_;
  Clock::duration interval_{};
  bool finished_scheduling_ = false;
};

void Conn::send(Clock::time_point scheduled) {
  busy_ = true;
  scheduled_ = scheduled;
  auto self = shared_from_this();
  auto write = [self] {
    self->sent_ = Clock::now();
    net::async_write(self->stream_.socket(), net::buffer(self->target_.request),
                     [self](beast::error_code ec, size_t) {
                       if (ec) return self->on_done(false, 0);
                       self->res_ = {};
                       http::async_read(self->stream_, self->buffer_, self->res_,
                                        [self](beast::error_code ec2, size_t) {
                                          if (ec2) return self->on_done(false, 0);
                                          self->on_done(true, self->res_.result_int());
                                        });
                     });
  };
  if (connected_) return write();
  stream_.async_connect(target_.endpoints, [self, write](beast::error_code ec, auto) {
    if (ec) return self->on_done(false, 0);
    self->connected_ = true;
    beast::error_code ignore;
    self->stream_.socket().set_option(tcp::no_delay(true), ignore);
    write();
  });
}

void Conn::on_done(bool ok, int status) {
  busy_ = false;
  if (!ok || !res_.keep_alive()) {
    beast::error_code ignore;
    stream_.socket().close(ignore);
    connected_ = false;
    buffer_.clear();
  }
  load_.record(target_, scheduled_, sent_, index_, ok, status);
}

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host")
      o.host = v;
    else if (k == "--port")
      o.targets.push_back({"target", v});
    else if (k == "--target") {
      size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
        std::fprintf(stderr, "--target wants NAME=PORT, got '%s'\n", v.c_str());
        return 2;
      }
      o.targets.push_back({v.substr(0, eq), v.substr(eq + 1)});
    } else if (k == "--slice-ms")
      o.slice_ms = std::stod(v);
    else if (k == "--path")
      o.path = v;
    else if (k == "--rate")
      o.rate = std::stod(v);
    else if (k == "--duration")
      o.duration_s = std::stod(v);
    else if (k == "--warmup")
      o.warmup_s = std::stod(v);
    else if (k == "--connections")
      o.connections = std::stoi(v);
    else if (k == "--samples-out")
      o.samples_out = v;
    else if (k == "--header")
      o.headers.push_back(v);
    else if (k == "--body-file") {
      std::ifstream in(v);
      std::stringstream ss;
      ss << in.rdbuf();
      o.body = ss.str();
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.targets.empty()) o.targets.push_back({"target", "8080"});
  if (!(o.slice_ms > 0)) {
    std::fprintf(stderr, "--slice-ms must be > 0\n");
    return 2;
  }
  net::io_context ioc(1);
  Load load(o, ioc);
  load.run();
  if (!o.samples_out.empty()) {
    std::ofstream out(o.samples_out);
    out << "target conn scheduled_ns sent_ns done_ns\n";
    auto ns = [](Clock::time_point t) {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    };
    for (const Target& t : load.targets())
      for (const Sample& s : t.stats.samples)
        out << t.spec.name << ' ' << s.conn << ' ' << ns(s.scheduled) << ' ' << ns(s.sent) << ' '
            << ns(s.done) << '\n';
    if (!out) {
      std::fprintf(stderr, "cannot write --samples-out %s\n", o.samples_out.c_str());
      return 1;
    }
  }
  for (Target& t : load.targets()) {
    auto& lat = t.stats.latencies_us;
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) -> int64_t {
      if (lat.empty()) return -1;
      size_t idx = std::min(lat.size() - 1, static_cast<size_t>(p * (lat.size() - 1) + 0.5));
      return lat[idx];
    };
    if (o.targets.size() > 1) std::printf("%-16s ", t.spec.name.c_str());
    std::printf(
        "rate=%.0f/s measured=%zu errors=%lld non200=%lld p50_us=%lld p90_us=%lld p99_us=%lld "
        "p999_us=%lld max_us=%lld\n",
        o.rate, lat.size(), static_cast<long long>(t.stats.errors),
        static_cast<long long>(t.stats.non_200), static_cast<long long>(pct(0.5)),
        static_cast<long long>(pct(0.9)), static_cast<long long>(pct(0.99)),
        static_cast<long long>(pct(0.999)), static_cast<long long>(lat.empty() ? -1 : lat.back()));
  }
  return 0;
}
