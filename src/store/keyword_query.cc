#include "store/keyword_query.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>

#include "common/text_util.h"

namespace kb::store {

namespace {

// The tokenizer chunks_fts was created with (migrations.cc); the two must agree.
constexpr const char* kTokenizerName = "porter";
const char* kTokenizerArgs[] = {"unicode61", "remove_diacritics", "2"};

fts5_api* Fts5Api(sqlite3* db) {
  fts5_api* api = nullptr;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, nullptr) == SQLITE_OK) {
    sqlite3_bind_pointer(st, 1, static_cast<void*>(&api), "fts5_api_ptr", nullptr);
    sqlite3_step(st);
  }
  sqlite3_finalize(st);
  return api;
}

struct Token {
  std::string term;      // as stored in the index (folded, stemmed)
  std::string original;  // the user's word it came from
};

struct TokenizeContext {
  const std::string* text;
  std::vector<Token>* out;
};

int OnToken(void* ctx, int flags, const char* token, int len, int start, int end) {
  auto* c = static_cast<TokenizeContext*>(ctx);
  if (flags & FTS5_TOKEN_COLOCATED) return SQLITE_OK;  // synonyms: none with this tokenizer
  if (c->out->size() >= kMaxQueryTerms) return SQLITE_OK;
  if (start < 0 || end < start || static_cast<size_t>(end) > c->text->size()) return SQLITE_OK;
  c->out->push_back(
      Token{std::string(token, static_cast<size_t>(len)),
            c->text->substr(static_cast<size_t>(start), static_cast<size_t>(end - start))});
  return SQLITE_OK;
}

Result<std::vector<Token>> Tokenize(sqlite3* db, const std::string& text) {
  fts5_api* api = Fts5Api(db);
  if (api == nullptr) return Status::Internal("SQLite was built without FTS5");
  void* user = nullptr;
  fts5_tokenizer tk;
  if (api->xFindTokenizer(api, kTokenizerName, &user, &tk) != SQLITE_OK) {
    return Status::Internal("FTS5 tokenizer 'porter' is missing");
  }
  Fts5Tokenizer* tokenizer = nullptr;
  if (tk.xCreate(user, kTokenizerArgs, 3, &tokenizer) != SQLITE_OK) {
    return Status::Internal("cannot create the FTS5 tokenizer");
  }
  std::vector<Token> tokens;
  TokenizeContext ctx{&text, &tokens};
  int rc = tk.xTokenize(tokenizer, &ctx, FTS5_TOKENIZE_QUERY, text.data(),
                        static_cast<int>(text.size()), OnToken);
  tk.xDelete(tokenizer);
  if (rc != SQLITE_OK) return Status::Internal("FTS5 tokenizer failed");
  return tokens;
}

}  // namespace

std::optional<int64_t> DocFrequencyCache::Get(const std::string& term, int64_t now_ms) {
  MutexLock lock(mu_);
  auto it = map_.find(term);
  if (it == map_.end() || now_ms - it->second.second > kDocFrequencyTtlMs) return std::nullopt;
  return it->second.first;
}

void DocFrequencyCache::Put(const std::string& term, int64_t df, int64_t now_ms) {
  MutexLock lock(mu_);
  if (map_.size() >= kDocFrequencyCacheEntries) map_.clear();  // crude, bounded, rare
  map_[term] = {df, now_ms};
}

Result<KeywordPlan> PlanKeywordQuery(sql::Database* db, const std::string& raw_text,
                                     int64_t row_budget, DocFrequencyCache* cache, int64_t now_ms) {
  const std::string text = SanitizeUtf8(raw_text);
  KB_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(db->handle(), text));
  // Distinct terms with one original word each (the first seen).
  std::map<std::string, std::string> originals;
  for (Token& t : tokens) {
    if (t.term.empty() || t.original.find('"') != std::string::npos) continue;
    originals.emplace(std::move(t.term), std::move(t.original));
  }
  KB_ASSIGN_OR_RETURN(auto st, db->PrepareCached("SELECT doc FROM chunks_vocab WHERE term = ?1"));
  std::vector<std::pair<int64_t, std::string>> by_df;  // (document frequency, original)
  for (const auto& [term, original] : originals) {
    std::optional<int64_t> df = cache ? cache->Get(term, now_ms) : std::nullopt;
    if (!df) {
      st.Reset();
      st.Bind(1, term);
      KB_ASSIGN_OR_RETURN(bool row, st.Step());
      df = row ? st.ColumnInt64(0) : 0;
      // Only frequencies of indexed terms are cached: a cached 0 would drop a term from every
      // plan until it expired, so a word queried just before the first document holding it
      // arrived would not be found by keyword for a minute. An absent term costs one index seek.
      if (cache && *df > 0) cache->Put(term, *df, now_ms);
    }
    if (*df > 0) by_df.emplace_back(*df, original);
  }
  std::sort(by_df.begin(), by_df.end());
  KeywordPlan plan;
  for (const auto& [df, original] : by_df) {
    if (!plan.terms.empty() && plan.estimated_rows + df > row_budget) break;
    plan.estimated_rows += df;
    plan.terms.push_back(original);
    if (!plan.match.empty()) plan.match += " OR ";
    // A quoted string is always a phrase of literal tokens, never syntax; the original word
    // contains no '"' (filtered above), so it cannot close the quote.
    plan.match += "\"" + original + "\"";
  }
  plan.sampled = plan.estimated_rows > row_budget;
  return plan;
}

}  // namespace kb::store
