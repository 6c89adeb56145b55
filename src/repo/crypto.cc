// AES-256-GCM, scrypt, HKDF and HMAC over OpenSSL 3's EVP interfaces.
#include "repo/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <cstring>

#include "common/crypto_util.h"
#include "repo/repository_format.h"

namespace kb::repo {

// Outside the anonymous namespace: ChunkIdHasher::State holds one.
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

namespace {

const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

// One fetch of each algorithm for the process (implicit fetches per call are slow in OpenSSL 3).
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}
const EVP_MD* Sha256Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

[[noreturn]] void Fatal(const char* what) {
  fprintf(stderr, "fatal: OpenSSL %s failed\n", what);
  abort();
}

}  // namespace

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    bytes_ = std::move(other.bytes_);
    other.Wipe();
  }
  return *this;
}

void SecretBytes::Wipe() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
  bytes_.clear();
}

MasterKey MasterKey::Generate() {
  SecretBytes all(RandomBytes(kMasterKeyBytes));
  return std::move(FromBytes(all.view())).value();
}

Result<MasterKey> MasterKey::FromBytes(std::string_view bytes) {
  if (bytes.size() != kMasterKeyBytes) {
    return Status::InvalidArgument("master key must be 64 bytes");
  }
  MasterKey k;
  k.data_key = SecretBytes(std::string(bytes.substr(0, kKeyBytes)));
  k.id_key = SecretBytes(std::string(bytes.substr(kKeyBytes, kKeyBytes)));
  return k;
}

SecretBytes MasterKey::Serialize() const {
  std::string all;
  all.reserve(kMasterKeyBytes);
  all.append(data_key.view());
  all.append(id_key.view());
  return SecretBytes(std::move(all));
}

std::string SealRaw(std::string_view key, std::string_view aad, std::string_view plaintext) {
  if (key.size() != kKeyBytes) Fatal("seal: key size");
  std::string box(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  std::string nonce = RandomBytes(kNonceBytes);
  memcpy(box.data(), nonce.data(), kNonceBytes);
  auto* out = reinterpret_cast<unsigned char*>(box.data());
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex2(ctx.get(), Aes256Gcm(), U(key), U(nonce), nullptr) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) != 1) ||
      (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), out + kNonceBytes, &len, U(plaintext),
                                               static_cast<int>(plaintext.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx.get(), out + kNonceBytes + plaintext.size(), &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                          out + kNonceBytes + plaintext.size()) != 1) {
    Fatal("AES-GCM encrypt");
  }
  return box;
}

Result<std::string> OpenRaw(std::string_view key, std::string_view aad, std::string_view box) {
  if (key.size() != kKeyBytes) return Status::Internal("open: key size");
  if (box.size() < kBoxOverhead) {
    return Status::Corruption("sealed box is " + std::to_string(box.size()) +
                              " bytes, shorter than 28");
  }
  size_t text_len = box.size() - kBoxOverhead;
  std::string plain(text_len, '\0');
  std::string tag(box.substr(kNonceBytes + text_len, kTagBytes));
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  if (!ctx ||
      EVP_DecryptInit_ex2(ctx.get(), Aes256Gcm(), U(key), U(box.substr(0, kNonceBytes)), nullptr) !=
          1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) != 1) ||
      (text_len > 0 && EVP_DecryptUpdate(ctx.get(), out, &len, U(box.substr(kNonceBytes)),
                                         static_cast<int>(text_len)) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                          tag.data()) != 1) {
    return Status::Internal("AES-GCM decrypt setup failed");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), out + text_len, &len) != 1) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return Status::Corruption("fails authentication");
  }
  return plain;
}

Result<SecretBytes> DeriveScrypt(std::string_view passphrase, std::string_view salt, int log2_n,
                                 int r, int p) {
  if (log2_n < kMinScryptLog2N || log2_n > kMaxScryptLog2N || r < 1 || r > kMaxScryptR || p < 1 ||
      p > kMaxScryptP) {
    return Status::InvalidArgument("scrypt parameters outside the allowed ranges");
  }
  uint64_t n = uint64_t{1} << log2_n;
  // scrypt needs 128 * N * r bytes for V plus 128 * r * p for B; leave room for the rest.
  uint64_t maxmem = 128 * n * static_cast<uint64_t>(r) +
                    128 * static_cast<uint64_t>(r) * static_cast<uint64_t>(p) + (1 << 20);
  std::string out(kKeyBytes, '\0');
  if (EVP_PBE_scrypt(passphrase.data(), passphrase.size(), U(salt), salt.size(), n,
                     static_cast<uint64_t>(r), static_cast<uint64_t>(p), maxmem,
                     reinterpret_cast<unsigned char*>(out.data()), out.size()) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return Status::Internal("scrypt key derivation failed (out of memory?)");
  }
  return SecretBytes(std::move(out));
}

Result<SecretBytes> DeriveHkdf(std::string_view ikm, std::string_view salt, std::string_view info) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return Status::Internal("HKDF unavailable");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (ctx == nullptr) return Status::Internal("HKDF context");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_KEY, const_cast<char*>(ikm.data()), ikm.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()), salt.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
                         OSSL_PARAM_construct_end()};
  std::string out(kKeyBytes, '\0');
  int rc = EVP_KDF_derive(ctx, reinterpret_cast<unsigned char*>(out.data()), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return Status::Internal("HKDF key derivation failed");
  }
  return SecretBytes(std::move(out));
}

std::string ChunkIdHex(const ChunkId& id) { return HexEncode(ChunkIdBytes(id)); }

std::optional<ChunkId> ChunkIdFromHex(std::string_view hex) {
  if (!IsLowerHex(hex, 2 * sizeof(ChunkId))) return std::nullopt;
  std::optional<std::string> bytes = HexDecode(hex);
  if (!bytes) return std::nullopt;
  return ChunkIdFromBytes(*bytes);
}

ChunkId ChunkIdFromBytes(std::string_view bytes16) {
  ChunkId id{};
  memcpy(id.data(), bytes16.data(), std::min(bytes16.size(), id.size()));
  return id;
}

// HMAC(K, m) = H((K ^ opad) | H((K ^ ipad) | m)) for a key no longer than the 64-byte block.
struct ChunkIdHasher::State {
  MdCtx inner;
  MdCtx outer;
};

ChunkIdHasher::ChunkIdHasher(std::string_view id_key) : state_(std::make_unique<State>()) {
  unsigned char ipad[64], opad[64];
  memset(ipad, 0x36, sizeof ipad);
  memset(opad, 0x5c, sizeof opad);
  for (size_t i = 0; i < id_key.size() && i < 64; ++i) {
    ipad[i] ^= static_cast<unsigned char>(id_key[i]);
    opad[i] ^= static_cast<unsigned char>(id_key[i]);
  }
  state_->inner.reset(EVP_MD_CTX_new());
  state_->outer.reset(EVP_MD_CTX_new());
  if (!state_->inner || !state_->outer ||
      EVP_DigestInit_ex2(state_->inner.get(), Sha256Md(), nullptr) != 1 ||
      EVP_DigestUpdate(state_->inner.get(), ipad, sizeof ipad) != 1 ||
      EVP_DigestInit_ex2(state_->outer.get(), Sha256Md(), nullptr) != 1 ||
      EVP_DigestUpdate(state_->outer.get(), opad, sizeof opad) != 1) {
    Fatal("HMAC setup");
  }
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
}

ChunkIdHasher::~ChunkIdHasher() = default;

ChunkId ChunkIdHasher::Hash(std::string_view data) const {
  thread_local MdCtx work(EVP_MD_CTX_new());
  unsigned char inner_digest[32];
  unsigned char mac[32];
  ChunkId id{};
  unsigned int len = 0;
  if (!work || EVP_MD_CTX_copy_ex(work.get(), state_->inner.get()) != 1 ||
      EVP_DigestUpdate(work.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(work.get(), inner_digest, &len) != 1 ||
      EVP_MD_CTX_copy_ex(work.get(), state_->outer.get()) != 1 ||
      EVP_DigestUpdate(work.get(), inner_digest, sizeof inner_digest) != 1 ||
      EVP_DigestFinal_ex(work.get(), mac, &len) != 1) {
    Fatal("HMAC");
  }
  memcpy(id.data(), mac, id.size());  // truncated: the first 16 bytes
  return id;
}

}  // namespace kb::repo
