// HashingEmbedder: determinism (fixed vectors, pinned here so a change of algorithm is
// noticed), unit length, and that similarity follows shared vocabulary.
#include "embed/hashing_embedder.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kb {
namespace {

float Dot(const Vector& a, const Vector& b) {
  float s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

HashingEmbedder Default() { return HashingEmbedder(HashingEmbedder::DefaultParams(384)); }

TEST(HashingEmbedderTest, DeterministicAcrossInstancesAndCalls) {
  auto a = Default();
  auto b = Default();
  auto va = a.EmbedOne("The quick brown fox jumps over the lazy dog.");
  EXPECT_EQ(va, b.EmbedOne("The quick brown fox jumps over the lazy dog."));
  EXPECT_EQ(va, a.EmbedOne("The quick brown fox jumps over the lazy dog."));
  // Case and punctuation do not matter.
  EXPECT_EQ(va, a.EmbedOne("the QUICK brown fox -- jumps over the lazy dog"));
}

TEST(HashingEmbedderTest, FingerprintAndVectorsArePinned) {
  // If these change, every stored project's vectors are in another space: bump
  // kAlgorithmVersion on purpose, never by accident (std::hash or a new tokeniser would).
  EXPECT_EQ(Default().Fingerprint(), "2c70756f26ae227a722ccbf4ff92ce89");
  Vector v = Default().EmbedOne("knowledge base");
  EXPECT_NEAR(v[15], -0.147442f, 1e-5);
  EXPECT_NEAR(v[88], 0.147442f, 1e-5);
  EXPECT_NEAR(v[155], -0.589768f, 1e-5);
  EXPECT_EQ(v[0], 0.0f);
}

TEST(HashingEmbedderTest, FingerprintChangesWithDimension) {
  HashingEmbedder a(HashingEmbedder::DefaultParams(384));
  HashingEmbedder b(HashingEmbedder::DefaultParams(256));
  EXPECT_NE(a.Fingerprint(), b.Fingerprint());
  EXPECT_EQ(b.EmbedOne("hello").size(), 256u);
  HashingEmbedderParams p = HashingEmbedder::DefaultParams(384);
  p.char3_weight = 0.9f;
  EXPECT_NE(HashingEmbedder(p).Fingerprint(), a.Fingerprint());
}

TEST(HashingEmbedderTest, VectorsAreUnitLength) {
  auto e = Default();
  for (const char* text : {"a", "hello world", "naïve café — 東京 🎉", "x y z 1 2 3",
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}) {
    Vector v = e.EmbedOne(text);
    double n = 0;
    for (float x : v) n += x * x;
    EXPECT_NEAR(n, 1.0, 1e-5) << text;
  }
}

TEST(HashingEmbedderTest, TextWithoutFeaturesIsUnitBasisVector) {
  auto e = Default();
  for (const char* text : {"", "   ", "!!! ... ---"}) {
    Vector v = e.EmbedOne(text);
    EXPECT_EQ(v[0], 1.0f) << '"' << text << '"';
    EXPECT_EQ(Dot(v, v), 1.0f);
  }
}

TEST(HashingEmbedderTest, SimilarTextsAreCloserThanUnrelatedOnes) {
  auto e = Default();
  Vector a = e.EmbedOne("How do I configure the PostgreSQL connection pool size?");
  Vector b = e.EmbedOne("Configuring the connection pool size for PostgreSQL databases");
  Vector c = e.EmbedOne("Bake the bread at 220 degrees until the crust is golden brown.");
  EXPECT_GT(Dot(a, b), Dot(a, c) + 0.2f);
  EXPECT_LT(std::fabs(Dot(a, c)), 0.25f) << "signed hashing keeps unrelated texts near-orthogonal";
}

TEST(HashingEmbedderTest, MultibyteCharactersAreWordCharacters) {
  auto e = Default();
  Vector tokyo = e.EmbedOne("東京の天気");
  Vector tokyo2 = e.EmbedOne("東京の天気予報");
  Vector paris = e.EmbedOne("パリの美術館");
  EXPECT_GT(Dot(tokyo, tokyo2), Dot(tokyo, paris));
  EXPECT_NE(tokyo[0], 1.0f);  // not the featureless vector
}

TEST(HashingEmbedderTest, EmbedBatchKeepsOrder) {
  auto e = Default();
  auto r = e.Embed({"one", "two", ""});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[1], e.EmbedOne("two"));
}

}  // namespace
}  // namespace kb
