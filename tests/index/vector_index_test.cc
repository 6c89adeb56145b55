// Behaviour of VectorIndex: search in both modes (exact and graph), mutation, filters,
// persistence with damaged files, and concurrent use.
#include "index/vector_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "common/file_util.h"
#include "test_util.h"

namespace kb {
namespace {

constexpr int kDim = 32;

std::vector<float> RandomUnit(std::mt19937* rng, int dim = kDim) {
  std::normal_distribution<float> n(0, 1);
  std::vector<float> v(static_cast<size_t>(dim));
  double s = 0;
  for (float& x : v) {
    x = n(*rng);
    s += x * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(s));
  return v;
}

VectorIndexOptions GraphOptions(int dim = kDim) {
  VectorIndexOptions o;
  o.dimension = dim;
  o.exact_search_below = 0;  // always through the HNSW graph
  return o;
}

VectorIndexOptions ExactOptions(int dim = kDim) {
  VectorIndexOptions o;
  o.dimension = dim;
  o.exact_search_below = 1000000;
  return o;
}

std::vector<std::vector<float>> Fill(VectorIndex* index, int n, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::vector<std::vector<float>> vs;
  for (int i = 0; i < n; ++i) {
    vs.push_back(RandomUnit(&rng, index->dimension()));
    EXPECT_TRUE(index->Upsert(i, vs.back()).ok());
  }
  return vs;
}

std::vector<int64_t> LabelsOf(const std::vector<VectorHit>& hits) {
  std::vector<int64_t> out;
  for (const auto& h : hits) out.push_back(h.label);
  return out;
}

std::string OnlyGraphFile(const std::string& dir) {
  std::string found;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("graph-", 0) == 0) {
      EXPECT_TRUE(found.empty()) << "more than one graph file";
      found = e.path().string();
    }
  }
  return found;
}

class VectorIndexModeTest : public ::testing::TestWithParam<bool> {
 protected:
  VectorIndexOptions Options() const { return GetParam() ? GraphOptions() : ExactOptions(); }
};

TEST_P(VectorIndexModeTest, EmptyIndexReturnsNothing) {
  auto index = VectorIndex::Create(Options());
  std::mt19937 rng(3);
  EXPECT_TRUE(index->Search(RandomUnit(&rng), 10).empty());
  EXPECT_EQ(index->Size(), 0u);
}

TEST_P(VectorIndexModeTest, NearestIsItselfWithScoreOne) {
  auto index = VectorIndex::Create(Options());
  auto vs = Fill(index.get(), 300);
  auto hits = index->Search(vs[42], 5);
  ASSERT_EQ(hits.size(), 5u);
  EXPECT_EQ(hits[0].label, 42);
  EXPECT_NEAR(hits[0].score, 1.0f, 1e-5);
  for (size_t i = 1; i < hits.size(); ++i) EXPECT_GE(hits[i - 1].score, hits[i].score);
}

TEST_P(VectorIndexModeTest, UpsertReplacesVector) {
  auto index = VectorIndex::Create(Options());
  auto vs = Fill(index.get(), 200);
  ASSERT_TRUE(index->Upsert(5, vs[100]).ok());  // label 5 now sits where 100 is
  EXPECT_EQ(index->Size(), 200u);
  auto hits = index->Search(vs[100], 2);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(std::set<int64_t>({hits[0].label, hits[1].label}), std::set<int64_t>({5, 100}));
  auto old = index->Search(vs[5], 3);
  for (const auto& h : old) {
    if (h.label == 5) {
      EXPECT_LT(h.score, 0.99f);
    }
  }
}

TEST_P(VectorIndexModeTest, RemoveHidesFromSearch) {
  auto index = VectorIndex::Create(Options());
  auto vs = Fill(index.get(), 200);
  index->Remove(7);
  index->Remove(7);     // idempotent
  index->Remove(9999);  // absent: no-op
  EXPECT_FALSE(index->Contains(7));
  EXPECT_TRUE(index->Contains(8));
  EXPECT_EQ(index->Size(), 199u);
  for (const auto& h : index->Search(vs[7], 20)) EXPECT_NE(h.label, 7);
  auto labels = index->Labels();
  EXPECT_EQ(labels.size(), 199u);
  EXPECT_TRUE(std::is_sorted(labels.begin(), labels.end()));
  EXPECT_EQ(std::count(labels.begin(), labels.end(), 7), 0);
  // Re-adding a removed label brings it back.
  ASSERT_TRUE(index->Upsert(7, vs[7]).ok());
  EXPECT_EQ(index->Search(vs[7], 1).at(0).label, 7);
  EXPECT_EQ(index->Size(), 200u);
}

TEST_P(VectorIndexModeTest, FilteredSearchReturnsOnlyAcceptedLabelsAndStillK) {
  auto index = VectorIndex::Create(Options());
  auto vs = Fill(index.get(), 3000);
  auto every_50th = [](int64_t l) { return l % 50 == 0; };
  auto hits = index->Search(vs[1], 10, every_50th);
  ASSERT_EQ(hits.size(), 10u);
  for (const auto& h : hits) EXPECT_EQ(h.label % 50, 0);
  EXPECT_EQ(LabelsOf(hits), LabelsOf(index->SearchExact(vs[1], 10, every_50th)));

  auto only_two = [](int64_t l) { return l == 17 || l == 2999; };
  auto few = LabelsOf(index->Search(vs[1], 10, only_two));
  EXPECT_EQ(std::set<int64_t>({17, 2999}), std::set<int64_t>(few.begin(), few.end()));
  EXPECT_TRUE(index->Search(vs[1], 10, [](int64_t) { return false; }).empty());
}

TEST_P(VectorIndexModeTest, KLargerThanLiveCountReturnsAllLive) {
  auto index = VectorIndex::Create(Options());
  auto vs = Fill(index.get(), 30);
  for (int i = 0; i < 10; ++i) index->Remove(i);
  auto hits = index->Search(vs[20], 100);
  EXPECT_EQ(hits.size(), 20u);
  for (const auto& h : hits) EXPECT_GE(h.label, 10);
}

TEST_P(VectorIndexModeTest, RejectsBadVectors) {
  auto index = VectorIndex::Create(Options());
  std::vector<float> short_vec(kDim - 1, 0.1f);
  EXPECT_EQ(index->Upsert(1, short_vec).code(), Code::kInvalidArgument);
  std::vector<float> nan(kDim, 0.1f);
  nan[3] = std::nanf("");
  EXPECT_EQ(index->Upsert(1, nan).code(), Code::kInvalidArgument);
  std::vector<float> zero(kDim, 0.0f);
  EXPECT_EQ(index->Upsert(1, zero).code(), Code::kInvalidArgument);
  std::vector<float> ok(kDim, 0.5f);
  EXPECT_EQ(index->Upsert(-1, ok).code(), Code::kInvalidArgument);
  EXPECT_EQ(index->Size(), 0u);
  EXPECT_TRUE(index->Search(short_vec, 3).empty());
}

TEST_P(VectorIndexModeTest, UnnormalisedVectorsAreScoredAsCosine) {
  auto index = VectorIndex::Create(Options());
  std::vector<float> v(kDim, 3.0f);  // norm ~17
  ASSERT_TRUE(index->Upsert(1, v).ok());
  std::vector<float> q(kDim, 1.0f / std::sqrt(static_cast<float>(kDim)));
  auto hits = index->Search(q, 1);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_NEAR(hits[0].score, 1.0f, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Modes, VectorIndexModeTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Graph" : "Exact"; });

TEST(VectorIndexTest, HnswAgreesWithExactOnSmallData) {
  auto index = VectorIndex::Create(GraphOptions());
  Fill(index.get(), 500);
  std::mt19937 rng(99);
  size_t agree = 0, total = 0;
  for (int q = 0; q < 50; ++q) {
    auto query = RandomUnit(&rng);
    auto approx = LabelsOf(index->Search(query, 10));
    auto exact = LabelsOf(index->SearchExact(query, 10));
    ASSERT_EQ(exact.size(), 10u);
    for (int64_t l : approx) agree += std::count(exact.begin(), exact.end(), l);
    total += exact.size();
  }
  EXPECT_EQ(agree, total) << "recall@10 on 500 vectors should be 1.0 at ef=200";
}

TEST(VectorIndexTest, ParallelBatchUpsertMatchesSerialUpserts) {
  auto serial = VectorIndex::Create(GraphOptions());
  auto batched = VectorIndex::Create(GraphOptions());
  auto vs = Fill(serial.get(), 600);
  std::vector<int64_t> labels;
  for (int i = 0; i < 600; ++i) labels.push_back(i);
  // Two batches, the second replacing half of the first's labels and adding new ones.
  std::vector<int64_t> first(labels.begin(), labels.begin() + 400);
  std::vector<std::vector<float>> first_v(vs.begin(), vs.begin() + 400);
  ASSERT_TRUE(batched->UpsertBatch(first, first_v).ok());
  std::vector<int64_t> second(labels.begin() + 200, labels.end());
  std::vector<std::vector<float>> second_v(vs.begin() + 200, vs.end());
  ASSERT_TRUE(batched->UpsertBatch(second, second_v).ok());
  EXPECT_EQ(batched->Size(), 600u);
  EXPECT_EQ(batched->Labels(), serial->Labels());
  std::mt19937 rng(5);
  for (int q = 0; q < 30; ++q) {
    auto query = RandomUnit(&rng);
    EXPECT_EQ(LabelsOf(batched->Search(query, 10)), LabelsOf(serial->SearchExact(query, 10)));
  }
}

TEST(VectorIndexTest, BatchWithABadVectorInsertsNothing) {
  auto index = VectorIndex::Create(GraphOptions());
  std::mt19937 rng(3);
  std::vector<std::vector<float>> vs = {RandomUnit(&rng), RandomUnit(&rng), RandomUnit(&rng)};
  vs[2][0] = std::nanf("");
  EXPECT_EQ(index->UpsertBatch({1, 2, 3}, vs).code(), Code::kInvalidArgument);
  EXPECT_EQ(index->Size(), 0u);
  vs[2] = RandomUnit(&rng);
  EXPECT_EQ(index->UpsertBatch({1, 1, 3}, vs).code(), Code::kInvalidArgument);
  EXPECT_EQ(index->UpsertBatch({1, 2}, vs).code(), Code::kInvalidArgument);
  EXPECT_EQ(index->Size(), 0u);
}

TEST(VectorIndexTest, ExactSearchBelowThresholdUsesExactStore) {
  VectorIndexOptions o = GraphOptions();
  o.exact_search_below = 100;
  auto index = VectorIndex::Create(o);
  auto vs = Fill(index.get(), 99);
  EXPECT_EQ(LabelsOf(index->Search(vs[3], 10)), LabelsOf(index->SearchExact(vs[3], 10)));
}

TEST(VectorIndexTest, MemoryBytesGrowsWithVectors) {
  auto index = VectorIndex::Create(GraphOptions());
  size_t before = index->MemoryBytes();
  Fill(index.get(), 2000);
  EXPECT_GT(index->MemoryBytes(), before + 2000u * kDim * sizeof(float));
}

TEST(VectorIndexPersistenceTest, SaveLoadRoundTripPreservesResultsAndLsn) {
  testing::TempDir tmp;
  auto index = VectorIndex::Create(GraphOptions());
  auto vs = Fill(index.get(), 1500);
  index->Remove(3);
  index->Remove(4);
  ASSERT_TRUE(index->Upsert(5, vs[6]).ok());
  ASSERT_TRUE(index->Save(tmp.Sub("vi"), 1234).ok());
  EXPECT_EQ(index->lsn(), 1234);

  auto loaded = VectorIndex::Load(tmp.Sub("vi"), GraphOptions());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  VectorIndex& l = **loaded;
  EXPECT_EQ(l.lsn(), 1234);
  EXPECT_EQ(l.Size(), index->Size());
  EXPECT_EQ(l.Labels(), index->Labels());
  EXPECT_FALSE(l.Contains(3));
  for (int q : {0, 5, 100, 777, 1499}) {
    auto a = index->Search(vs[q], 10);
    auto b = l.Search(vs[q], 10);
    EXPECT_EQ(LabelsOf(a), LabelsOf(b)) << "query " << q;
    EXPECT_EQ(LabelsOf(index->SearchExact(vs[q], 10)), LabelsOf(l.SearchExact(vs[q], 10)));
  }
  // The loaded index keeps working: more upserts (past its loaded capacity), saves again.
  std::mt19937 rng(5);
  for (int i = 2000; i < 3200; ++i) ASSERT_TRUE(l.Upsert(i, RandomUnit(&rng)).ok());
  ASSERT_TRUE(l.Upsert(3, vs[3]).ok());
  EXPECT_EQ(l.Search(vs[3], 1).at(0).label, 3);
  ASSERT_TRUE(l.Save(tmp.Sub("vi"), 1300).ok());
  auto again = VectorIndex::Load(tmp.Sub("vi"), GraphOptions());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->lsn(), 1300);
  EXPECT_EQ((*again)->Size(), l.Size());
}

TEST(VectorIndexPersistenceTest, EmptyIndexRoundTrips) {
  testing::TempDir tmp;
  auto index = VectorIndex::Create(GraphOptions());
  ASSERT_TRUE(index->Save(tmp.path(), 7).ok());
  auto loaded = VectorIndex::Load(tmp.path(), GraphOptions());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->Size(), 0u);
  EXPECT_EQ((*loaded)->lsn(), 7);
  std::mt19937 rng(1);
  ASSERT_TRUE((*loaded)->Upsert(1, RandomUnit(&rng)).ok());
}

TEST(VectorIndexPersistenceTest, MissingIndexIsNotFound) {
  testing::TempDir tmp;
  EXPECT_EQ(VectorIndex::Load(tmp.Sub("absent"), GraphOptions()).status().code(),
            Code::kNotFound);
  EXPECT_EQ(VectorIndex::Load(tmp.path(), GraphOptions()).status().code(), Code::kNotFound);
}

TEST(VectorIndexPersistenceTest, FlippedByteInGraphFileIsCorruption) {
  testing::TempDir tmp;
  auto index = VectorIndex::Create(GraphOptions());
  Fill(index.get(), 300);
  ASSERT_TRUE(index->Save(tmp.path(), 1).ok());
  std::string graph = OnlyGraphFile(tmp.path());
  auto data = ReadFile(graph);
  ASSERT_TRUE(data.ok());
  // Damage the header (the field hnswlib would trust for allocation) and, separately, a link.
  for (size_t offset : {size_t{16}, data->size() / 2}) {
    std::string bad = *data;
    bad[offset] = static_cast<char>(bad[offset] ^ 0x40);
    testing::WriteTestFile(graph, bad);
    auto loaded = VectorIndex::Load(tmp.path(), GraphOptions());
    EXPECT_EQ(loaded.status().code(), Code::kCorruption) << loaded.status().ToString();
    EXPECT_NE(loaded.status().message().find(graph), std::string::npos)
        << "the message should name the file: " << loaded.status().message();
  }
  testing::WriteTestFile(graph, data->substr(0, data->size() - 10));
  EXPECT_EQ(VectorIndex::Load(tmp.path(), GraphOptions()).status().code(), Code::kCorruption);
  std::filesystem::remove(graph);
  EXPECT_EQ(VectorIndex::Load(tmp.path(), GraphOptions()).status().code(), Code::kCorruption);
}

TEST(VectorIndexPersistenceTest, TruncatedOrDamagedManifestIsCorruption) {
  testing::TempDir tmp;
  auto index = VectorIndex::Create(GraphOptions());
  Fill(index.get(), 50);
  ASSERT_TRUE(index->Save(tmp.path(), 1).ok());
  const std::string manifest = tmp.Sub("VECTOR_INDEX");
  auto data = ReadFile(manifest);
  ASSERT_TRUE(data.ok());
  for (size_t keep : {size_t{0}, size_t{10}, size_t{100}, data->size() - 1}) {
    testing::WriteTestFile(manifest, data->substr(0, keep));
    auto loaded = VectorIndex::Load(tmp.path(), GraphOptions());
    EXPECT_EQ(loaded.status().code(), Code::kCorruption) << "kept " << keep;
    EXPECT_NE(loaded.status().message().find("VECTOR_INDEX"), std::string::npos);
  }
  for (size_t offset = 0; offset < data->size(); offset += 7) {
    std::string bad = *data;
    bad[offset] = static_cast<char>(bad[offset] ^ 0x01);
    testing::WriteTestFile(manifest, bad);
    EXPECT_EQ(VectorIndex::Load(tmp.path(), GraphOptions()).status().code(), Code::kCorruption)
        << "flipped byte " << offset;
  }
  testing::WriteTestFile(manifest, *data);
  EXPECT_TRUE(VectorIndex::Load(tmp.path(), GraphOptions()).ok());
}

TEST(VectorIndexPersistenceTest, WrongDimensionIsCorruption) {
  testing::TempDir tmp;
  auto index = VectorIndex::Create(GraphOptions());
  Fill(index.get(), 50);
  ASSERT_TRUE(index->Save(tmp.path(), 1).ok());
  auto loaded = VectorIndex::Load(tmp.path(), GraphOptions(kDim * 2));
  EXPECT_EQ(loaded.status().code(), Code::kCorruption);
  EXPECT_NE(loaded.status().message().find("dimension"), std::string::npos);
}

TEST(VectorIndexPersistenceTest, SaveReplacesPreviousAndLeavesOneGraphFile) {
  testing::TempDir tmp;
  auto index = VectorIndex::Create(GraphOptions());
  auto vs = Fill(index.get(), 100);
  ASSERT_TRUE(index->Save(tmp.path(), 1).ok());
  // A crashed save's leftover must not confuse the next load or survive the next save.
  testing::WriteTestFile(tmp.Sub("graph-deadbeefdeadbeef.hnsw.tmp"), "partial");
  index->Remove(0);
  ASSERT_TRUE(index->Save(tmp.path(), 2).ok());
  EXPECT_FALSE(OnlyGraphFile(tmp.path()).empty());
  auto loaded = VectorIndex::Load(tmp.path(), GraphOptions());
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ((*loaded)->lsn(), 2);
  EXPECT_FALSE((*loaded)->Contains(0));
}

TEST(VectorIndexPersistenceTest, OldManifestStillLoadsIfNewSaveDidNotCommit) {
  // Simulates a crash between writing the new graph file and renaming the manifest: the old
  // manifest names the old graph, which must still be intact.
  testing::TempDir tmp;
  auto index = VectorIndex::Create(GraphOptions());
  Fill(index.get(), 100);
  ASSERT_TRUE(index->Save(tmp.Sub("a"), 1).ok());
  auto old_manifest = ReadFile(tmp.Sub("a/VECTOR_INDEX"));
  std::string old_graph = OnlyGraphFile(tmp.Sub("a"));
  auto old_graph_bytes = ReadFile(old_graph);
  index->Remove(1);
  ASSERT_TRUE(index->Save(tmp.Sub("a"), 2).ok());
  testing::WriteTestFile(tmp.Sub("a/VECTOR_INDEX"), *old_manifest);  // "crash" before commit
  testing::WriteTestFile(old_graph, *old_graph_bytes);               // as it was on disk
  auto loaded = VectorIndex::Load(tmp.Sub("a"), GraphOptions());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->lsn(), 1);
  EXPECT_TRUE((*loaded)->Contains(1));
}

TEST(VectorIndexConcurrencyTest, ConcurrentSearchesDuringUpsertsAndRemoves) {
  VectorIndexOptions o = GraphOptions();
  o.exact_search_below = 500;  // cross from exact to graph while readers run
  auto index = VectorIndex::Create(o);
  std::atomic<bool> done{false};
  std::atomic<int> searches{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      while (!done.load()) {
        auto q = RandomUnit(&rng);
        auto hits = (searches.load() % 2) ? index->Search(q, 10, [](int64_t l) { return l % 3; })
                                          : index->Search(q, 10);
        for (size_t i = 1; i < hits.size(); ++i) {
          ASSERT_GE(hits[i - 1].score, hits[i].score);
        }
        (void)index->Size();
        (void)index->Contains(5);
        searches.fetch_add(1);
      }
    });
  }
  std::mt19937 rng(1);
  testing::TempDir tmp;
  for (int i = 0; i < 2500; ++i) {
    // EXPECT, not ASSERT: returning early would destroy joinable reader threads.
    EXPECT_TRUE(index->Upsert(i % 2000, RandomUnit(&rng)).ok());
    if (i % 7 == 0) index->Remove(i / 2);
    if (i == 1200) {
      EXPECT_TRUE(index->Save(tmp.path(), i).ok());
    }
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(searches.load(), 0);
  EXPECT_EQ(index->Labels().size(), index->Size());
}

}  // namespace
}  // namespace kb
