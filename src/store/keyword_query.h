// Turns a user's free text into the FTS5 MATCH expression that keyword search runs.
//
// Two jobs. Safety: user text is never FTS5 syntax — every term is a quoted string. Speed:
// FTS5 computes bm25() for every row that matches, at the cost of a SQL lookup per row, so an
// OR of common words on a large project ranks most of the project. Terms are therefore taken
// rarest first (document frequency from the fts5vocab table, after the same tokenizer the index
// uses) until their summed document frequencies exceed kKeywordRowBudget; the rarest term is
// always kept, and terms absent from the index are dropped. Common terms carry little BM25
// weight (low IDF), so the ranking of what is returned barely changes while the work is
// bounded. When even the rarest term matches more rows than the budget, the plan says so
// (`sampled`): the caller ranks only the first kKeywordRowBudget matches (in chunk order)
// instead of all of them. Hybrid search recovers what pruning loses through the vectors.
// A proper fix for very common terms is an inverted index with block-max WAND; see
// docs/ARCHITECTURE.md.
//
// Document frequencies cost O(df) to read from fts5vocab, so they are cached per store
// (DocFrequencyCache); they only steer pruning, so a slightly stale value is harmless.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "store/sqlite.h"

namespace kb::store {

inline constexpr int64_t kKeywordRowBudget = 1500;
inline constexpr size_t kMaxQueryTerms = 64;
inline constexpr int64_t kDocFrequencyTtlMs = 60'000;
inline constexpr size_t kDocFrequencyCacheEntries = 100'000;

struct KeywordPlan {
  std::string match;               // "" when nothing in the query can match
  std::vector<std::string> terms;  // the original words kept, rarest first
  int64_t estimated_rows = 0;      // sum of their document frequencies
  bool sampled = false;            // estimated_rows > budget: rank only the first matches
};

// Term -> document frequency, shared by a store's reader connections.
// Thread-safety: safe for concurrent use.
class DocFrequencyCache {
 public:
  std::optional<int64_t> Get(const std::string& term, int64_t now_ms) EXCLUDES(mu_);
  void Put(const std::string& term, int64_t df, int64_t now_ms) EXCLUDES(mu_);

 private:
  Mutex mu_;
  // term -> (df, stored at)
  std::unordered_map<std::string, std::pair<int64_t, int64_t>> map_ GUARDED_BY(mu_);
};

// `db` is a connection to a project database (schema version >= 2); `cache` may be null.
Result<KeywordPlan> PlanKeywordQuery(sql::Database* db, const std::string& text,
                                     int64_t row_budget = kKeywordRowBudget,
                                     DocFrequencyCache* cache = nullptr, int64_t now_ms = 0);

}  // namespace kb::store
