#include "common/crypto_util.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace kb {
namespace {

TEST(CryptoUtilTest, Sha256MatchesKnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CryptoUtilTest, HexRoundTripsAndRejectsJunk) {
  std::string bytes("\x00\xff\x10z", 4);
  EXPECT_EQ(HexEncode(bytes), "00ff107a");
  EXPECT_EQ(HexDecode("00FF107a"), bytes);
  EXPECT_FALSE(HexDecode("0").has_value());
  EXPECT_FALSE(HexDecode("zz").has_value());
}

TEST(CryptoUtilTest, Base64RoundTripsEveryPaddingLength) {
  for (std::string s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\1\2\3\4", 5)}) {
    auto enc = Base64Encode(s);
    EXPECT_EQ(enc.size() % 4, 0u);
    EXPECT_EQ(Base64Decode(enc), s);
  }
  EXPECT_FALSE(Base64Decode("abc").has_value());
  EXPECT_FALSE(Base64Decode("a!c=").has_value());
}

TEST(CryptoUtilTest, UuidsAreVersion4AndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string u = NewUuid();
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[14], '4');
    EXPECT_TRUE(seen.insert(u).second);
  }
}

TEST(CryptoUtilTest, ConstantTimeEqualsComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secrets"));
}

}  // namespace
}  // namespace kb
