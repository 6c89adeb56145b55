// The cryptography of the backup repository (docs/format/BACKUP_REPOSITORY.md, "Terminology",
// "Common encodings", "keys/"): AES-256-GCM with associated data, scrypt and HKDF-SHA-256 for
// key-encryption keys, and keyed chunk ids (HMAC-SHA-256 under the id key, truncated to 16 bytes).
// All over OpenSSL 3.
//
// Key material lives in SecretBytes, which wipes itself (OPENSSL_cleanse) when destroyed. No
// function here puts key bytes, passphrases or plaintext into an error message.
//
// Thread-safety: free functions are safe to call concurrently; a ChunkIdHasher is immutable after
// construction and may be shared by threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kb::repo {

// Bytes that are wiped when destroyed. Move-only so that copies of keys do not multiply.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::string bytes) : bytes_(std::move(bytes)) {}
  ~SecretBytes() { Wipe(); }
  SecretBytes(SecretBytes&& other) noexcept : bytes_(std::move(other.bytes_)) { other.Wipe(); }
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  std::string_view view() const { return bytes_; }
  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  // An explicit copy, for the rare place that needs one.
  SecretBytes Clone() const { return SecretBytes(bytes_); }

 private:
  void Wipe();
  std::string bytes_;
};

// The 64-byte master key: data key (AES-256-GCM) and id key (HMAC-SHA-256).
struct MasterKey {
  SecretBytes data_key;
  SecretBytes id_key;

  static MasterKey Generate();
  // InvalidArgument unless exactly 64 bytes.
  static Result<MasterKey> FromBytes(std::string_view bytes);
  SecretBytes Serialize() const;
};

// Seals `plaintext` (no compression here): nonce (12, random) | ciphertext | tag (16).
// `key` must be 32 bytes.
std::string SealRaw(std::string_view key, std::string_view aad, std::string_view plaintext);

// Opens a box made by SealRaw with the same key and AAD. Corruption ("shorter than 28 bytes" or
// "fails authentication") otherwise; the caller adds the object's name.
Result<std::string> OpenRaw(std::string_view key, std::string_view aad, std::string_view box);

// KEK = scrypt(passphrase, salt, 2^log2_n, r, p, 32). InvalidArgument for parameters outside the
// format's ranges; Internal if OpenSSL refuses (e.g. memory).
Result<SecretBytes> DeriveScrypt(std::string_view passphrase, std::string_view salt, int log2_n,
                                 int r, int p);

// KEK = HKDF-SHA-256(ikm, salt, info, 32).
Result<SecretBytes> DeriveHkdf(std::string_view ikm, std::string_view salt, std::string_view info);

// The first 16 bytes of the HMAC (format version 2; why 128 bits suffice: the format doc,
// "chunk id").
using ChunkId = std::array<uint8_t, 16>;

std::string ChunkIdHex(const ChunkId& id);
std::optional<ChunkId> ChunkIdFromHex(std::string_view hex);  // 32 lower-case hex only
ChunkId ChunkIdFromBytes(std::string_view bytes16);
inline std::string_view ChunkIdBytes(const ChunkId& id) {
  return {reinterpret_cast<const char*>(id.data()), id.size()};
}

// HMAC-SHA-256 under the id key, truncated to the id's 16 bytes, with the key's inner and outer
// states computed once, so that one 4 KiB chunk costs two hash finalisations and no allocation of
// algorithm objects.
class ChunkIdHasher {
 public:
  explicit ChunkIdHasher(std::string_view id_key);
  ~ChunkIdHasher();
  ChunkIdHasher(const ChunkIdHasher&) = delete;
  ChunkIdHasher& operator=(const ChunkIdHasher&) = delete;

  ChunkId Hash(std::string_view data) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace kb::repo
