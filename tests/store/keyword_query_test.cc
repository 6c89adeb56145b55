// Tests of the keyword query planner: safe quoting, the index's own tokenizer (stemming,
// folding), rarest-first term selection under the row budget.
#include "store/keyword_query.h"

#include <gtest/gtest.h>

#include "store/project_store.h"
#include "store_test_util.h"
#include "test_util.h"

namespace kb {
namespace {

using kb::testing::kTestDimension;
using kb::testing::TempDir;
using kb::testing::TestChunks;
using kb::testing::TestDoc;

class KeywordQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ProjectStore::Open(dir_.Sub("kb.db"), "p", kTestDimension, &clock_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    // "common" is in every chunk, "rare" in one, "medium" in three.
    std::vector<std::string> texts;
    for (int i = 0; i < 10; ++i) {
      std::string t = "common words number " + std::to_string(i);
      if (i < 3) t += " medium";
      if (i == 7) t += " rare running";
      texts.push_back(t);
    }
    ASSERT_TRUE(store_->PutDocument(TestDoc("a.md"), TestChunks(texts, 1), "k").ok());
    db_ = std::move(sql::Database::Open(dir_.Sub("kb.db")).value());
  }

  TempDir dir_;
  ManualClock clock_{1'764'000'000'000};
  std::unique_ptr<ProjectStore> store_;
  std::unique_ptr<sql::Database> db_;
};

TEST_F(KeywordQueryTest, TermsComeRarestFirstWithDocumentFrequencies) {
  auto plan = store::PlanKeywordQuery(db_.get(), "common medium rare", 1000).value();
  ASSERT_EQ(plan.terms.size(), 3u);
  EXPECT_EQ(plan.terms[0], "rare");
  EXPECT_EQ(plan.terms[1], "medium");
  EXPECT_EQ(plan.terms[2], "common");
  EXPECT_EQ(plan.estimated_rows, 1 + 3 + 10);
  EXPECT_EQ(plan.match, "\"rare\" OR \"medium\" OR \"common\"");
}

TEST_F(KeywordQueryTest, RowBudgetDropsCommonTermsButKeepsTheRarest) {
  auto plan = store::PlanKeywordQuery(db_.get(), "common medium rare", 5).value();
  ASSERT_EQ(plan.terms.size(), 2u);
  EXPECT_EQ(plan.estimated_rows, 4);
  auto only_common = store::PlanKeywordQuery(db_.get(), "common", 5).value();
  ASSERT_EQ(only_common.terms.size(), 1u);  // over budget, but the rarest is always kept
  EXPECT_EQ(only_common.estimated_rows, 10);
  EXPECT_TRUE(only_common.sampled);
  EXPECT_FALSE(plan.sampled);
}

TEST_F(KeywordQueryTest, CachedDocumentFrequenciesAreUsedUntilTheyExpire) {
  store::DocFrequencyCache cache;
  cache.Put("rare", 500, 1000);  // pretend "rare" is common: the plan must believe the cache
  auto plan = store::PlanKeywordQuery(db_.get(), "rare medium", 1000, &cache, 2000).value();
  ASSERT_EQ(plan.terms.size(), 2u);
  EXPECT_EQ(plan.terms[0], "medium");
  EXPECT_EQ(plan.estimated_rows, 503);
  // After the TTL the real frequency is read again.
  auto later = store::PlanKeywordQuery(db_.get(), "rare medium", 1000, &cache,
                                       2000 + store::kDocFrequencyTtlMs + 1)
                   .value();
  EXPECT_EQ(later.terms[0], "rare");
  EXPECT_EQ(later.estimated_rows, 4);
}

TEST_F(KeywordQueryTest, ATermQueriedBeforeItIsIndexedIsFoundAsSoonAsItIs) {
  store::DocFrequencyCache cache;
  auto before = store::PlanKeywordQuery(db_.get(), "otters", 1000, &cache, 1000).value();
  EXPECT_TRUE(before.match.empty());
  ASSERT_TRUE(store_->PutDocument(TestDoc("b.md"), TestChunks({"otters hold hands"}, 1), "k").ok());
  auto after = store::PlanKeywordQuery(db_.get(), "otters", 1000, &cache, 1001).value();
  EXPECT_EQ(after.match, "\"otters\"");
  EXPECT_EQ(after.estimated_rows, 1);
}

TEST_F(KeywordQueryTest, UsesTheIndexTokenizerForStemsAndCase) {
  // "RUNS" folds and stems to "run", as "running" did when indexed.
  auto plan = store::PlanKeywordQuery(db_.get(), "RUNS", 1000).value();
  ASSERT_EQ(plan.terms.size(), 1u);
  EXPECT_EQ(plan.terms[0], "RUNS");
  auto hits = store_->KeywordSearch("RUNS", 10).value();
  ASSERT_EQ(hits.size(), 1u);
}

TEST_F(KeywordQueryTest, UnknownTermsAndSyntaxMatchNothingAndNeverInject) {
  EXPECT_TRUE(store::PlanKeywordQuery(db_.get(), "zzzunknown", 1000).value().match.empty());
  EXPECT_TRUE(store::PlanKeywordQuery(db_.get(), "\" * ( ) NEAR OR AND -", 1000).value().match.empty());
  auto plan = store::PlanKeywordQuery(db_.get(), "rare\" OR \"common", 1000).value();
  for (const auto& t : plan.terms) EXPECT_EQ(t.find('"'), std::string::npos);
  EXPECT_TRUE(store_->KeywordSearch("rare\" OR \"common", 10).ok());
  EXPECT_TRUE(store_->KeywordSearch("'; DROP TABLE chunks; --", 10).ok());
  EXPECT_TRUE(store_->KeywordSearch(std::string("\xff\xfe bad utf8 rare"), 10).ok());
}

}  // namespace
}  // namespace kb
