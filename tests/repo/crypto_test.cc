// The repository's cryptography against published test vectors and OpenSSL's own HMAC, and
// the sealed box rules: AAD binds a box to its role and name; short, altered or wrong-key boxes
// are Corruption; decompression refuses frames over their limit.
#include "repo/crypto.h"

#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include "common/crypto_util.h"
#include "repo/repository_format.h"
#include "repo/sealed_box.h"

namespace kb::repo {
namespace {

std::string Key32(char fill = 'k') { return std::string(32, fill); }

TEST(SealedBoxTest, RoundTripsWithTheSameKeyAndAad) {
  std::string box = SealRaw(Key32(), "kb1:index", "hello");
  EXPECT_EQ(box.size(), 5 + kBoxOverhead);
  auto plain = OpenRaw(Key32(), "kb1:index", box);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(*plain, "hello");
}

TEST(SealedBoxTest, EmptyPlaintextIsAValidBox) {
  std::string box = SealRaw(Key32(), "aad", "");
  EXPECT_EQ(box.size(), kBoxOverhead);
  auto plain = OpenRaw(Key32(), "aad", box);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, "");
}

TEST(SealedBoxTest, NoncesAreFreshSoEqualPlaintextsGiveDifferentBoxes) {
  EXPECT_NE(SealRaw(Key32(), "a", "same"), SealRaw(Key32(), "a", "same"));
}

TEST(SealedBoxTest, AnotherAadDoesNotOpen) {
  std::string box = SealRaw(Key32(), SnapshotAad("20261126T130000Z-7c1e9a02"), "manifest");
  auto moved = OpenRaw(Key32(), SnapshotAad("20261126T130001Z-7c1e9a02"), box);
  EXPECT_EQ(moved.status().code(), Code::kCorruption);
  EXPECT_EQ(moved.status().message(), "fails authentication");
}

TEST(SealedBoxTest, AnotherKeyDoesNotOpen) {
  std::string box = SealRaw(Key32('a'), "x", "secret");
  EXPECT_EQ(OpenRaw(Key32('b'), "x", box).status().code(), Code::kCorruption);
}

TEST(SealedBoxTest, EveryFlippedByteIsDetected) {
  std::string box = SealRaw(Key32(), "x", "some plaintext of a few bytes");
  for (size_t i = 0; i < box.size(); ++i) {
    std::string bad = box;
    bad[i] ^= 0x01;
    EXPECT_EQ(OpenRaw(Key32(), "x", bad).status().code(), Code::kCorruption) << "byte " << i;
  }
}

TEST(SealedBoxTest, BoxShorterThan28BytesIsCorruption) {
  auto r = OpenRaw(Key32(), "x", std::string(27, '\0'));
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("shorter than 28"), std::string::npos);
}

TEST(SealedBoxTest, CompressedBoxRoundTripsAndEnforcesItsLimit) {
  std::string text(100'000, 'z');
  std::string box = SealCompressed(Key32(), "kb1:block", text, 3);
  EXPECT_LT(box.size(), 1000u);
  auto plain = OpenCompressed(Key32(), "kb1:block", box, text.size());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, text);
  auto bomb = OpenCompressed(Key32(), "kb1:block", box, text.size() - 1);
  EXPECT_EQ(bomb.status().code(), Code::kCorruption);
}

TEST(ZstdTest, RefusesTwoFramesAndGarbage) {
  std::string frame = ZstdCompress("abc", 1);
  EXPECT_EQ(ZstdDecompress(frame + frame, 100).status().code(), Code::kCorruption);
  EXPECT_EQ(ZstdDecompress("not zstd", 100).status().code(), Code::kCorruption);
  EXPECT_EQ(*ZstdDecompress(frame, 3), "abc");
}

// RFC 7914 section 12, third vector (the first 32 bytes of its 64-byte output).
TEST(KdfTest, ScryptMatchesRfc7914) {
  auto key = DeriveScrypt("pleaseletmein", "SodiumChloride", 14, 8, 1);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(HexEncode(key->view()),
            "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2");
}

TEST(KdfTest, ScryptRefusesParametersOutsideTheFormat) {
  EXPECT_EQ(DeriveScrypt("p", "salt", 13, 8, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(DeriveScrypt("p", "salt", 14, 33, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(DeriveScrypt("p", "salt", 14, 8, 17).status().code(), Code::kInvalidArgument);
}

// RFC 5869 appendix A.1 (the first 32 bytes of its 42-byte output).
TEST(KdfTest, HkdfMatchesRfc5869) {
  std::string ikm(22, '\x0b');
  std::string salt = *HexDecode("000102030405060708090a0b0c");
  std::string info = *HexDecode("f0f1f2f3f4f5f6f7f8f9");
  auto key = DeriveHkdf(ikm, salt, info);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(HexEncode(key->view()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf");
}

// Format version 2: the id is the first 16 bytes of HMAC-SHA-256.
TEST(ChunkIdTest, EqualsTheFirstHalfOfOpenSslHmacSha256) {
  std::string key = Key32('q');
  ChunkIdHasher hasher(key);
  for (size_t n : {0, 1, 55, 64, 4096, 100'000}) {
    std::string data(n, static_cast<char>('a' + n % 26));
    unsigned char expected[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), expected, &len);
    ChunkId got = hasher.Hash(data);
    EXPECT_EQ(HexEncode(ChunkIdBytes(got)),
              HexEncode(std::string_view(reinterpret_cast<char*>(expected), 16)))
        << n;
  }
}

TEST(ChunkIdTest, HexRoundTripAcceptsOnlyLowerCase) {
  ChunkIdHasher hasher(Key32());
  ChunkId id = hasher.Hash("page");
  EXPECT_EQ(*ChunkIdFromHex(ChunkIdHex(id)), id);
  std::string upper = ChunkIdHex(id);
  for (char& c : upper) c = static_cast<char>(toupper(c));
  EXPECT_FALSE(ChunkIdFromHex(upper).has_value() && upper != ChunkIdHex(id));
  EXPECT_FALSE(ChunkIdFromHex("abc").has_value());
}

TEST(MasterKeyTest, SerializesToTheTwoHalves) {
  MasterKey k = MasterKey::Generate();
  SecretBytes all = k.Serialize();
  ASSERT_EQ(all.size(), 64u);
  EXPECT_EQ(all.view().substr(0, 32), k.data_key.view());
  EXPECT_EQ(all.view().substr(32), k.id_key.view());
  EXPECT_EQ(MasterKey::FromBytes("short").status().code(), Code::kInvalidArgument);
}

TEST(SecretBytesTest, MovedFromIsEmpty) {
  SecretBytes a(std::string("secret"));
  SecretBytes b(std::move(a));
  EXPECT_EQ(b.view(), "secret");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the point of the test
}

}  // namespace
}  // namespace kb::repo
