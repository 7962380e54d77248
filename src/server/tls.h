// TLS context from the operator's PEM certificate chain and key; optional client-certificate
// verification (mTLS) against a CA bundle.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "core/result.h"

namespace enclave::server {

Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(
    const std::string& cert_pem_path, const std::string& key_pem_path,
    const std::string& client_ca_path);

}  // namespace enclave::server
