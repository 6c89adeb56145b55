// The known-item ranking regression set (issue 11): a ranking change that makes search find the
// right document less often fails here. tests/testdata/ranking/ (made by
// bench/quality/make_regression_set.py, see its README.md) holds the project's own Markdown
// documentation (a frozen snapshot in source/) split at its headings into one document per
// section, each without its heading (docs/*.md), and queries.jsonl: the removed headings
// ("heading") and hand-written questions ("faq"), each with its one target document.
//
// The set is ingested into a real KnowledgeBase (built-in embedder) as Markdown: content type
// text/markdown, source = file name, title = first line ("<source path> — section <nn>"), as
// bench/quality/run_eval.py ingests its pages over HTTP but for the type (text/plain there).
// Every query runs in modes keyword and hybrid with top_k = 100; chunk hits are folded to
// distinct documents (by source) in rank order, and a query scores 1/r for its target at rank
// r <= 10 (MRR@10). The mean per (mode, kind) is printed and must reach its floor below.
// KB_RANKING_VERBOSE=1 also prints every query that misses its target's first place.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "service/knowledge_base.h"
#include "test_util.h"

namespace kb {
namespace {

namespace fs = std::filesystem;

// The floors on MRR@10, per mode and query kind: about 0.02-0.03 below what main printed when
// they were set (47f52ea: keyword heading 0.272, faq 0.514; hybrid heading 0.224, faq 0.433),
// so that a ranking change that finds the right section less often fails here. Raise them when
// ranking improves. Page-level BM25 on the same set (make_regression_set.py --baseline):
// heading 0.286, faq 0.529 — issue 11 wants every mode above it.
struct Floor {
  SearchMode mode;
  const char* kind;
  double mrr;
};
constexpr Floor kFloors[] = {
    {SearchMode::kKeyword, "heading", 0.25},
    {SearchMode::kKeyword, "faq", 0.49},
    {SearchMode::kHybrid, "heading", 0.20},
    {SearchMode::kHybrid, "faq", 0.41},
};

constexpr int kRankCutoff = 10;  // MRR@10
constexpr int kTopK = 100;       // kMaxTopK, as run_eval.py asks the server
constexpr int kMaxPages = 5;     // run_eval.py's --max-pages

const std::string kSetDir = std::string(KB_TESTDATA_DIR) + "/ranking";

struct KnownItem {
  std::string query;
  std::string target;  // a file name in docs/
  std::string kind;    // "heading" | "faq"
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// docs/*.md by file name, sorted.
std::map<std::string, std::string> LoadDocs() {
  std::map<std::string, std::string> docs;
  for (const auto& e : fs::directory_iterator(kSetDir + "/docs")) {
    if (e.is_regular_file() && e.path().extension() == ".md") {
      docs[e.path().filename().string()] = ReadFile(e.path());
    }
  }
  return docs;
}

std::vector<KnownItem> LoadQueries() {
  std::vector<KnownItem> items;
  std::ifstream in(kSetDir + "/queries.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      ADD_FAILURE() << "queries.jsonl: not JSON: " << line;
      continue;
    }
    items.push_back({j.value("query", ""), j.value("target", ""), j.value("kind", "")});
  }
  return items;
}

TEST(RankingRegressionTest, SetIsWellFormed) {
  const auto docs = LoadDocs();
  const auto queries = LoadQueries();
  ASSERT_GE(docs.size(), 100u) << "no documents under " << kSetDir << "/docs";
  std::map<std::string, int> per_kind;
  for (const KnownItem& q : queries) {
    EXPECT_FALSE(q.query.empty());
    EXPECT_TRUE(docs.count(q.target)) << q.query << " -> " << q.target << ": no such document";
    ++per_kind[q.kind];
  }
  for (const Floor& f : kFloors) EXPECT_GT(per_kind[f.kind], 0) << "no queries of kind " << f.kind;
  EXPECT_EQ(per_kind.size(), 2u) << "kinds other than heading and faq";
}

// Distinct documents (sources) in rank order, at most kRankCutoff, as run_eval.py folds them.
std::vector<std::string> RankedDocuments(KnowledgeBase& kb, const std::string& project,
                                         const std::string& text, SearchMode mode) {
  std::vector<std::string> seen;
  for (int page = 0; page < kMaxPages; ++page) {
    QueryRequest q;
    q.text = text;
    q.mode = mode;
    q.top_k = kTopK;
    q.offset = page * kTopK;
    q.use_cache = false;
    auto r = kb.Query(project, q);
    EXPECT_TRUE(r.ok()) << text << " (" << SearchModeName(mode) << "): " << r.status().ToString();
    if (!r.ok()) return seen;
    for (const QueryHit& h : r.value().hits) {
      if (std::find(seen.begin(), seen.end(), h.source) == seen.end()) {
        seen.push_back(h.source);
        if (static_cast<int>(seen.size()) == kRankCutoff) return seen;
      }
    }
    if (static_cast<int>(r.value().hits.size()) < kTopK) return seen;  // the mode ran dry
  }
  return seen;
}

TEST(RankingRegressionTest, MrrAtTenMeetsFloors) {
  const auto started = std::chrono::steady_clock::now();
  const auto docs = LoadDocs();
  const auto queries = LoadQueries();
  ASSERT_FALSE(docs.empty());
  ASSERT_FALSE(queries.empty());

  testing::TempDir dir;
  KbOptions options;
  options.data_dir = dir.Sub("data");
  options.index_save_interval_ms = 0;
  options.enable_query_cache = false;
  auto opened = KnowledgeBase::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<KnowledgeBase> kb = std::move(opened).value();
  const Actor actor{"ranking-test", "ranking-test"};

  CreateProjectRequest project;
  project.name = "kb-docs";  // embedder: the default, builtin-hash
  auto created = kb->CreateProject(project, actor);
  ASSERT_TRUE(created.ok()) << created.status().ToString();

  for (const auto& [name, text] : docs) {
    IngestRequest req;
    req.content = text;
    req.declared_mime = "text/markdown";
    req.filename = name;
    req.source = name;
    req.title = text.substr(0, text.find('\n'));
    auto r = kb->Ingest("kb-docs", req, actor);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
  }
  const auto ingested = std::chrono::steady_clock::now();
  auto stats = kb->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();

  const bool verbose = std::getenv("KB_RANKING_VERBOSE") != nullptr;
  // (mode, kind) -> sum of 1/r, queries, hits within the cutoff
  struct Score {
    double sum = 0;
    int n = 0;
    int found = 0;
  };
  std::map<std::pair<std::string, std::string>, Score> scores;
  for (SearchMode mode : {SearchMode::kKeyword, SearchMode::kHybrid}) {
    const std::string mode_name(SearchModeName(mode));
    for (const KnownItem& q : queries) {
      const auto ranked = RankedDocuments(*kb, "kb-docs", q.query, mode);
      const auto it = std::find(ranked.begin(), ranked.end(), q.target);
      const int rank = it == ranked.end() ? 0 : static_cast<int>(it - ranked.begin()) + 1;
      Score& s = scores[{mode_name, q.kind}];
      ++s.n;
      if (rank > 0) {
        s.sum += 1.0 / rank;
        ++s.found;
      }
      if (verbose && rank != 1) {
        std::printf("  %-7s %-7s rank %-3s %-28s %s (first: %s)\n", mode_name.c_str(),
                    q.kind.c_str(), rank ? std::to_string(rank).c_str() : ">10", q.target.c_str(),
                    q.query.c_str(), ranked.empty() ? "-" : ranked.front().c_str());
      }
    }
  }
  const auto finished = std::chrono::steady_clock::now();
  auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };

  std::printf(
      "ranking regression set: %zu documents (%lld chunks), %zu queries; ingest %.1f s, "
      "queries %.1f s\n",
      docs.size(), static_cast<long long>(stats.value().chunks), queries.size(),
      seconds(started, ingested), seconds(ingested, finished));
  std::printf("%-8s %-8s %5s %8s %8s %8s\n", "mode", "kind", "n", "MRR@10", "hit@10", "floor");
  for (const Floor& f : kFloors) {
    const Score& s = scores[{std::string(SearchModeName(f.mode)), f.kind}];
    const double mrr = s.n ? s.sum / s.n : 0.0;
    std::printf("%-8s %-8s %5d %8.3f %8.3f %8.3f\n", std::string(SearchModeName(f.mode)).c_str(),
                f.kind, s.n, mrr, s.n ? static_cast<double>(s.found) / s.n : 0.0, f.mrr);
    EXPECT_GE(mrr, f.mrr) << SearchModeName(f.mode) << " " << f.kind
                          << ": MRR@10 fell below its floor";
  }
  std::fflush(stdout);
}

}  // namespace
}  // namespace kb
