#include "search/fusion.h"

#include <gtest/gtest.h>

namespace kb {
namespace {

TEST(FusionTest, WeightedFusionWithAlphaOneFollowsVectorOrder) {
  std::vector<VectorHit> v = {{1, 0.9f}, {2, 0.5f}, {3, 0.1f}};
  std::vector<KeywordHit> k = {{3, 10.0}, {2, 5.0}};
  auto out = FuseResults(v, k, FusionMethod::kWeighted, 1.0);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].chunk_id, 1);
  EXPECT_EQ(out[1].chunk_id, 2);
  EXPECT_EQ(out[2].chunk_id, 3);
}

TEST(FusionTest, WeightedFusionWithAlphaZeroFollowsKeywordOrder) {
  std::vector<VectorHit> v = {{1, 0.9f}, {2, 0.5f}};
  std::vector<KeywordHit> k = {{2, 10.0}, {3, 5.0}};
  auto out = FuseResults(v, k, FusionMethod::kWeighted, 0.0);
  EXPECT_EQ(out[0].chunk_id, 2);
  EXPECT_EQ(out[1].chunk_id, 3);
}

TEST(FusionTest, ChunkInBothListsBeatsChunksInOne) {
  std::vector<VectorHit> v = {{1, 0.9f}, {2, 0.8f}, {9, 0.1f}};
  std::vector<KeywordHit> k = {{3, 9.0}, {2, 8.0}, {8, 1.0}};
  auto out = FuseResults(v, k, FusionMethod::kWeighted, 0.5);
  EXPECT_EQ(out[0].chunk_id, 2);
  ASSERT_TRUE(out[0].vector_score.has_value());
  ASSERT_TRUE(out[0].keyword_score.has_value());
  EXPECT_FLOAT_EQ(*out[0].vector_score, 0.8f);
  EXPECT_DOUBLE_EQ(*out[0].keyword_score, 8.0);
}

TEST(FusionTest, WeightedScoresAreNormalisedByTheBestOfEachList) {
  std::vector<VectorHit> v = {{1, 0.8f}, {2, 0.4f}};
  std::vector<KeywordHit> k = {{2, 6.0}, {3, 3.0}};
  auto out = FuseResults(v, k, FusionMethod::kWeighted, 0.5);
  ASSERT_EQ(out.size(), 3u);
  // 2: 0.5*0.5 + 0.5*1.0 = 0.75; 1: 0.5*1.0 = 0.5; 3: 0.5*0.5 = 0.25
  EXPECT_EQ(out[0].chunk_id, 2);
  EXPECT_NEAR(out[0].score, 0.75, 1e-6);
  EXPECT_NEAR(out[1].score, 0.5, 1e-6);
  EXPECT_NEAR(out[2].score, 0.25, 1e-6);
}

TEST(FusionTest, RrfScoresAreReciprocalRanks) {
  std::vector<VectorHit> v = {{1, 0.9f}, {2, 0.8f}};
  std::vector<KeywordHit> k = {{2, 3.0}};
  auto out = FuseResults(v, k, FusionMethod::kRrf, 0.7);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].chunk_id, 2);
  EXPECT_DOUBLE_EQ(out[0].score, 1.0 / 62 + 1.0 / 61);
  EXPECT_DOUBLE_EQ(out[1].score, 1.0 / 61);
}

TEST(FusionTest, TiesBreakOnChunkIdForStableResults) {
  std::vector<VectorHit> v = {{7, 0.5f}, {3, 0.5f}};
  auto out = FuseResults(v, {}, FusionMethod::kWeighted, 1.0);
  EXPECT_EQ(out[0].chunk_id, 3);
  EXPECT_EQ(out[1].chunk_id, 7);
}

TEST(FusionTest, ModeNamesRoundTrip) {
  for (auto m : {SearchMode::kHybrid, SearchMode::kVector, SearchMode::kKeyword}) {
    EXPECT_EQ(ParseSearchMode(SearchModeName(m)), m);
  }
  EXPECT_FALSE(ParseSearchMode("fuzzy").has_value());
  EXPECT_EQ(ParseFusionMethod("rrf"), FusionMethod::kRrf);
  EXPECT_FALSE(ParseFusionMethod("max").has_value());
}

}  // namespace
}  // namespace kb
