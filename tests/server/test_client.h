// Minimal synchronous HTTP/1.1 client for the server tests (plain and TLS), on Beast.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <string>

namespace enclave::server::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

inline Reply to_reply(http::response<http::string_body>& res) {
  Reply r;
  r.status = static_cast<int>(res.result_int());
  for (const auto& f : res) {
    std::string n(f.name_string());
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[n] = std::string(f.value());
  }
  r.body = res.body();
  return r;
}

inline http::request<http::string_body> make_request(const std::string& method,
                                                     const std::string& target,
                                                     const std::string& body,
                                                     const std::string& key) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!key.empty()) req.set(http::field::authorization, "Bearer " + key);
  if (!body.empty() || method == "POST") {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
  req.keep_alive(true);
  return req;
}

// A keep-alive connection: several requests over one socket.
class Connection {
 public:
  explicit Connection(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  Reply request(const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& key = "") {
    auto req = make_request(method, target, body, key);
    http::write(socket_, req);
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    return to_reply(res);
  }
  tcp::socket& socket() { return socket_; }
  uint16_t local_port() const { return socket_.local_endpoint().port(); }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

inline Reply request(uint16_t port, const std::string& method, const std::string& target,
                     const std::string& body = "", const std::string& key = "") {
  Connection c(port);
  return c.request(method, target, body, key);
}

}  // namespace enclave::server::testing
