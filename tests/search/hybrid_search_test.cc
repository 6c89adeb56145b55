// CheckQueryVector: what the search loop accepts as a caller vector, per project kind
// (search/hybrid_search.h). The loop itself runs against real stores in the service tests
// (tests/service/knowledge_base_test.cc: FiltersAndPaginationNarrowResults and others).
#include "search/hybrid_search.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

namespace kb {
namespace {

std::unique_ptr<Embedder> Make(const std::string& kind, int dimension) {
  EmbedderSpec spec;
  spec.kind = kind;
  spec.dimension = dimension;
  auto e = MakeEmbedder(spec);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(e).value();
}

QueryRequest WithVector(std::vector<float> v) {
  QueryRequest q;
  q.vector = std::move(v);
  return q;
}

TEST(CheckQueryVectorTest, OnlyExternalProjectsTakeACallerVector) {
  auto embedder = Make("builtin-hash", 4);
  SearchTarget t{nullptr, nullptr, embedder.get(), /*external=*/false};
  auto r = CheckQueryVector(t, WithVector({1, 0, 0, 0}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("embedder kind 'external'"), std::string::npos);
  QueryRequest text;
  text.text = "danube";
  auto none = CheckQueryVector(t, text);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());  // the loop embeds the text itself
}

TEST(CheckQueryVectorTest, ExternalProjectsNeedTheirDimensionFiniteAndNonZero) {
  auto embedder = Make("external", 3);
  SearchTarget t{nullptr, nullptr, embedder.get(), /*external=*/true};
  EXPECT_EQ(CheckQueryVector(t, WithVector({1, 0})).status().message(),
            "vector has 2 dimensions; the project expects 3");
  EXPECT_EQ(CheckQueryVector(t, WithVector({0, 0, 0})).status().message(),
            "vector must be finite and non-zero");
  EXPECT_FALSE(CheckQueryVector(t, WithVector({NAN, 1, 0})).ok());
  auto ok = CheckQueryVector(t, WithVector({3, 0, 4}));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  ASSERT_EQ(ok->size(), 3u);
  EXPECT_NEAR((*ok)[0], 0.6f, 1e-6);  // normalised
  EXPECT_NEAR((*ok)[2], 0.8f, 1e-6);
}

TEST(CheckQueryVectorTest, VectorModeOnAnExternalProjectNeedsAVector) {
  auto embedder = Make("external", 3);
  SearchTarget t{nullptr, nullptr, embedder.get(), /*external=*/true};
  QueryRequest q;
  q.text = "danube";
  q.mode = SearchMode::kVector;
  EXPECT_EQ(CheckQueryVector(t, q).status().message(),
            "this project takes vectors from the caller: send \"vector\"");
  q.mode = SearchMode::kKeyword;
  EXPECT_TRUE(CheckQueryVector(t, q).ok());
}

}  // namespace
}  // namespace kb
