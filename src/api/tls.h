// HTTPS for the API server: the OpenSSL context of the connection layer (api/http_transport.h),
// configured so that the protocol floor is TLS 1.2 and so that a missing, unreadable or
// mismatched certificate/key fails `serve` at start with a message that names the file and
// OpenSSL's reason.
//
// Thread-safety: MakeTlsContext may be called from any thread; the context it returns is shared
// by every connection (OpenSSL contexts are thread-safe once configured).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace kb::api {

inline constexpr char kMinTlsVersionName[] = "TLS 1.2";

// A server-side TLS context with the PEM certificate (chain) and private key at these paths.
// InvalidArgument naming the file for a missing or unreadable file, a file OpenSSL cannot parse,
// or a key that does not belong to the certificate.
Result<std::unique_ptr<boost::asio::ssl::context>> MakeTlsContext(const std::string& cert_file,
                                                                  const std::string& key_file);

}  // namespace kb::api
