// Turns a user's free text into the FTS5 MATCH expression that keyword search runs.
//
// Two jobs. Safety: user text is never FTS5 syntax — every term is a quoted string. Speed:
// FTS5 computes bm25() for every row that matches, at the cost of a SQL lookup per row, so an
// OR of common words on a large project ranks most of the project. Terms are therefore taken
// rarest first (document frequency from the fts5vocab table, after the same tokenizer the index
// uses) until their summed document frequencies exceed kKeywordRowBudget; the rarest term is
// always kept, and terms absent from the index are dropped. Common terms carry little BM25
// weight (low IDF), so the ranking of what is returned barely changes while the work is
// bounded. Hybrid search recovers what the pruned terms would have added through the vectors.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "store/sqlite.h"

namespace kb::store {

inline constexpr int64_t kKeywordRowBudget = 4000;
inline constexpr size_t kMaxQueryTerms = 64;

struct KeywordPlan {
  std::string match;                // "" when nothing in the query can match
  std::vector<std::string> terms;   // the original words kept, rarest first
  int64_t estimated_rows = 0;       // sum of their document frequencies
};

// `db` is a connection to a project database (schema version >= 2).
Result<KeywordPlan> PlanKeywordQuery(sql::Database* db, const std::string& text,
                                     int64_t row_budget = kKeywordRowBudget);

}  // namespace kb::store
