// HTTPS for the API server: an httplib::SSLServer whose OpenSSL context we configure ourselves,
// so that the protocol floor is TLS 1.2 (httplib's own constructors allow TLS 1.1) and so that
// a missing, unreadable or mismatched certificate/key fails `serve` at start with a message that
// names the file and OpenSSL's reason, instead of an opaque "invalid server".
//
// Debian's cpp-httplib is built with CPPHTTPLIB_OPENSSL_SUPPORT and its pkg-config Cflags define
// it for every target linking PkgConfig::HTTPLIB, so httplib's types have one layout in every
// translation unit (see src/api/CMakeLists.txt).
//
// Thread-safety: MakeTlsServer may be called from any thread; the server it returns is used as
// any httplib::Server.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace kb::api {

inline constexpr char kMinTlsVersionName[] = "TLS 1.2";

// A server speaking HTTPS with the PEM certificate (chain) and private key at these paths.
// InvalidArgument naming the file for a missing or unreadable file, a file OpenSSL cannot parse,
// or a key that does not belong to the certificate.
Result<std::unique_ptr<httplib::Server>> MakeTlsServer(const std::string& cert_file,
                                                       const std::string& key_file);

}  // namespace kb::api
