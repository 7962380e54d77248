// TLS server context (OpenSSL through Asio).
#include "server/tls.h"

#include <boost/asio/ssl.hpp>
#include <filesystem>

namespace enclave::server {

Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(
    const std::string& cert_pem_path, const std::string& key_pem_path,
    const std::string& client_ca_path) {
  namespace ssl = boost::asio::ssl;
  for (const std::string* p : {&cert_pem_path, &key_pem_path}) {
    if (!std::filesystem::exists(*p)) {
      return Error(ErrorCode::kNotFound,
                   "TLS file " + *p + " not found; check --tls-cert/--tls-key");
    }
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use,
                   ec);
  ctx->use_certificate_chain_file(cert_pem_path, ec);
  if (ec) {
    return Error(ErrorCode::kInvalidArgument, "cannot load TLS certificate chain " + cert_pem_path +
                                                  ": " + ec.message() + "; it must be PEM");
  }
  ctx->use_private_key_file(key_pem_path, ssl::context::pem, ec);
  if (ec) {
    return Error(ErrorCode::kInvalidArgument, "cannot load TLS private key " + key_pem_path + ": " +
                                                  ec.message() + "; it must be an unencrypted PEM");
  }
  if (!client_ca_path.empty()) {
    ctx->load_verify_file(client_ca_path, ec);
    if (ec) {
      return Error(ErrorCode::kInvalidArgument,
                   "cannot load client CA " + client_ca_path + ": " + ec.message());
    }
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

}  // namespace enclave::server
