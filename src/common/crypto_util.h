// Small cryptographic helpers over OpenSSL: secure random bytes, SHA-256, hex, base64, ids.
//
// Thread-safety: all functions are safe to call concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kb {

using Sha256Digest = std::array<uint8_t, 32>;

// Cryptographically secure random bytes (OpenSSL RAND_bytes). Aborts if the RNG fails:
// continuing with predictable keys would be worse than stopping.
std::string RandomBytes(size_t n);

Sha256Digest Sha256(std::string_view data);
std::string Sha256Hex(std::string_view data);

std::string HexEncode(std::string_view bytes);
std::optional<std::string> HexDecode(std::string_view hex);

std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);

// A random RFC 4122 version-4 UUID, lower-case: "3f0c...-...".
std::string NewUuid();

// Constant-time comparison of equal-length secrets.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace kb
