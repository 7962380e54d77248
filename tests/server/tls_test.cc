// TLS and mutual TLS with a throwaway CA and certificates made by the openssl CLI at test time.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "fake_backend.h"
#include "server/server.h"
#include "test_client.h"

namespace enclave::server {
namespace {

namespace ssl = boost::asio::ssl;
using testing::http::request;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (std::filesystem::temp_directory_path() / ("enclave_tls_" + std::to_string(::getpid())))
               .string();
    std::filesystem::create_directories(dir_);
    std::string d = dir_;
    std::string cmd =
        "cd " + d +
        " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
        "-subj /CN=enclave-test-ca"
        " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
        "-subj /CN=localhost"
        " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext"
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out server.pem -days 1 -extfile san.ext"
        " && openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
        "-subj /CN=client"
        " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out client.pem -days 1"
        " > /dev/null 2>&1";
    ok_ = std::system(cmd.c_str()) == 0;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Server> start(bool mtls) {
    ServerOptions o;
    o.tls_cert = dir_ + "/server.pem";
    o.tls_key = dir_ + "/server.key";
    if (mtls) o.tls_client_ca = dir_ + "/ca.pem";
    auto keys = std::make_shared<KeyStore>(KeyStore::with_secret(std::string(32, 's')));
    EXPECT_TRUE(keys->add_key("k", "sk-enclave-tls-test-key-000000", 7).is_ok());
    auto s = Server::create(o, keys);
    EXPECT_TRUE(s) << s.error().message;
    EXPECT_TRUE((*s)->start().is_ok());
    return std::move(*s);
  }

  // GET over TLS; throws on handshake failure.
  int tls_get(uint16_t port, const std::string& target, bool client_cert) {
    testing::net::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(dir_ + "/ca.pem");
    ctx.set_verify_mode(ssl::verify_peer);
    if (client_cert) {
      ctx.use_certificate_chain_file(dir_ + "/client.pem");
      ctx.use_private_key_file(dir_ + "/client.key", ssl::context::pem);
    }
    ssl::stream<testing::tcp::socket> stream(ioc, ctx);
    stream.next_layer().connect(
        testing::tcp::endpoint(testing::net::ip::make_address("127.0.0.1"), port));
    stream.handshake(ssl::stream_base::client);
    auto req = testing::make_request("GET", target, "", "sk-enclave-tls-test-key-000000");
    testing::http::write(stream, req);
    testing::beast::flat_buffer buf;
    testing::http::response<testing::http::string_body> res;
    testing::http::read(stream, buf, res);
    return static_cast<int>(res.result_int());
  }

  static inline std::string dir_;
  static inline bool ok_ = false;
};

TEST_F(TlsTest, ServesHttpsWithOperatorCertificate) {
  ASSERT_TRUE(ok_) << "openssl CLI failed to make test certificates";
  auto server = start(false);
  EXPECT_TRUE(server->tls());
  EXPECT_EQ(tls_get(server->port(), "/health", false), 200);
  EXPECT_EQ(tls_get(server->port(), "/v1/models", false), 200);
  // Plain HTTP to a TLS port gets no HTTP answer.
  EXPECT_ANY_THROW(testing::request(server->port(), "GET", "/health"));
  server->shutdown(std::chrono::milliseconds(1000));
}

TEST_F(TlsTest, MutualTlsRequiresClientCertificate) {
  ASSERT_TRUE(ok_);
  auto server = start(true);
  EXPECT_EQ(tls_get(server->port(), "/health", true), 200);
  EXPECT_ANY_THROW(tls_get(server->port(), "/health", false));
  server->shutdown(std::chrono::milliseconds(1000));
}

TEST_F(TlsTest, BadCertificatePathIsClearError) {
  ServerOptions o;
  o.tls_cert = "/nonexistent/cert.pem";
  o.tls_key = "/nonexistent/key.pem";
  auto s = Server::create(o, std::make_shared<KeyStore>(KeyStore::with_secret("x")));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("/nonexistent/cert.pem"), std::string::npos);
  ServerOptions only_ca;
  only_ca.tls_client_ca = "/x.pem";
  EXPECT_FALSE(Server::create(only_ca, std::make_shared<KeyStore>(KeyStore::with_secret("x"))));
}

}  // namespace
}  // namespace enclave::server
