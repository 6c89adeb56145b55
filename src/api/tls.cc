// TLS context set-up for the API server (see tls.h).
#include "api/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <filesystem>

namespace kb::api {

namespace {

// Drains this thread's OpenSSL error queue into one line.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

Status CheckReadable(const char* what, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::InvalidArgument(std::string(what) + " '" + path +
                                   "' does not exist or is not a file");
  }
  return Status::OK();
}

Status Configure(SSL_CTX& ctx, const std::string& cert_file, const std::string& key_file) {
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION) != 1) {
    return Status::Internal("cannot require " + std::string(kMinTlsVersionName) + ": " +
                            OpenSslErrors());
  }
  SSL_CTX_set_options(
      &ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // An idle TLS connection gives its read/write buffers back (~34 KiB each).
  SSL_CTX_set_mode(&ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(&ctx, cert_file.c_str()) != 1) {
    return Status::InvalidArgument("cannot load the TLS certificate '" + cert_file +
                                   "' (PEM expected): " + OpenSslErrors());
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL compares the key with the loaded certificate here already.
    const unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
      return Status::InvalidArgument("the TLS private key '" + key_file +
                                     "' does not match the certificate '" + cert_file +
                                     "': " + OpenSslErrors());
    }
    return Status::InvalidArgument("cannot load the TLS private key '" + key_file +
                                   "' (unencrypted PEM expected): " + OpenSslErrors());
  }
  if (SSL_CTX_check_private_key(&ctx) != 1) {
    return Status::InvalidArgument("the TLS private key '" + key_file +
                                   "' does not match the certificate '" + cert_file +
                                   "': " + OpenSslErrors());
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<boost::asio::ssl::context>> MakeTlsContext(const std::string& cert_file,
                                                                  const std::string& key_file) {
  KB_RETURN_IF_ERROR(CheckReadable("the TLS certificate", cert_file));
  KB_RETURN_IF_ERROR(CheckReadable("the TLS private key", key_file));
  auto context = std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  KB_RETURN_IF_ERROR(Configure(*context->native_handle(), cert_file, key_file));
  return context;
}

}  // namespace kb::api
