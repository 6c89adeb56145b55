// ProjectStore on SQLite: one writer connection behind a mutex for mutations (each one
// transaction: rows + one journal entry + the maintained content checksum), and a small pool of
// read-only connections that read committed WAL snapshots concurrently with the writer.
// The mutation bodies (Write*) are shared by the primary path and by journal replay, so that the
// two cannot drift apart: replay differs only in taking ids and times from the payload. Those
// bodies and the row reads they share with ProjectReader are in project_rows.cc; this file
// holds the transactions, the locking and the connection pool.
#include "store/project_store.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/crypto_util.h"
#include "common/file_util.h"
#include "common/text_util.h"
#include "common/thread_annotations.h"
#include "store/content_checksum.h"
#include "store/journal_codec.h"
#include "store/keyword_query.h"
#include "store/migrations.h"
#include "store/project_rows.h"
#include "store/sqlite.h"

namespace kb {
namespace {

using store::AppendJournal;
using store::ChunkIdsOf;
using store::kDocColumns;
using store::LoadDocument;
using store::LoadMeta;
using store::MetaRow;
using store::QueryDocuments;
using store::ReadDocument;
using store::ScrubJournal;
using store::SecureDeleteScope;
using store::WriteDeletedState;
using store::WritePurge;
using store::WritePut;

// Reader connections per store: enough for a search and a listing to overlap with a backup scan
// on a 2-core node, few enough that hundreds of open projects stay cheap in file handles.
constexpr int kReaderPoolSize = 3;

Status CheckText(std::string_view field, std::string_view value) {
  if (!IsValidUtf8(value))
    return Status::InvalidArgument(std::string(field) + " is not valid UTF-8");
  return Status::OK();
}

// Canonical JSON text of a metadata object, so that equal metadata compares equal byte-wise.
Result<std::string> CanonicalMetadata(const std::string& text) {
  auto j = nlohmann::json::parse(text.empty() ? std::string("{}") : text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("metadata must be a JSON object");
  }
  return j.dump();
}

// A pool of read-only connections; Lease returns the connection on destruction.
class ReaderPool {
 public:
  Status Init(const std::string& path, int n) EXCLUDES(mu_) {
    for (int i = 0; i < n; ++i) {
      sql::OpenOptions options;
      options.read_only = true;
      KB_ASSIGN_OR_RETURN(auto db, sql::Database::Open(path, options));
      {
        MutexLock lock(mu_);  // before the pool is shared; the analysis wants it all the same
        free_.push_back(db.get());
      }
      all_.push_back(std::move(db));
    }
    return Status::OK();
  }

  class Lease {
   public:
    Lease(ReaderPool* pool, sql::Database* db) : pool_(pool), db_(db) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_->Release(db_); }
    sql::Database* operator->() const { return db_; }
    sql::Database* get() const { return db_; }

   private:
    ReaderPool* pool_;
    sql::Database* db_;
  };

  Lease Acquire() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    while (free_.empty()) cv_.Wait(mu_);
    sql::Database* db = free_.back();
    free_.pop_back();
    return Lease(this, db);
  }

 private:
  void Release(sql::Database* db) EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      free_.push_back(db);
    }
    cv_.Signal();
  }

  Mutex mu_;
  CondVar cv_;
  std::vector<sql::Database*> free_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<sql::Database>> all_;
};

class SqliteProjectStore final : public ProjectStore {
 public:
  SqliteProjectStore(std::string path, std::string project_id, int dimension, const Clock* clock,
                     std::unique_ptr<sql::Database> writer)
      : path_(std::move(path)),
        project_id_(std::move(project_id)),
        dimension_(dimension),
        clock_(clock),
        writer_(std::move(writer)) {}

  Status InitReaders() { return readers_.Init(path_, kReaderPoolSize); }

  Result<PutDocumentResult> PutDocument(DocumentRecord doc, std::vector<ChunkRecord> chunks,
                                        const std::string& actor) override;
  Result<std::vector<int64_t>> DeleteDocument(const std::string& id,
                                              const std::string& actor) override;
  Result<std::vector<int64_t>> UndeleteDocument(const std::string& id,
                                                const std::string& actor) override;
  Result<std::vector<int64_t>> PurgeDocument(const std::string& id,
                                             const std::string& actor) override;
  Result<DocumentRecord> GetDocument(const std::string& id, bool include_deleted) override;
  Result<std::vector<DocumentRecord>> ListDocuments(int64_t limit, int64_t offset) override;
  Result<std::vector<DocumentRecord>> DocumentsChangedSince(int64_t since_ms,
                                                            int64_t limit) override;
  Status CompactAfterPurge() override;
  Result<std::vector<DocumentRecord>> ListDeletedDocuments(int64_t limit, int64_t offset) override;
  Result<std::vector<DocumentRecord>> DeletedBefore(int64_t cutoff_ms, int64_t limit) override;
  Result<std::vector<ChunkRecord>> GetDocumentChunks(const std::string& document_id) override;
  Result<std::vector<KeywordHit>> KeywordSearch(const std::string& query, size_t limit) override;
  Result<std::vector<ChunkView>> GetChunkViews(const std::vector<int64_t>& chunk_ids) override;
  Status ForEachLiveEmbedding(
      const std::function<void(int64_t, std::span<const float>)>& fn) override;
  Result<int64_t> LastLsn() override;
  Result<std::vector<JournalEntry>> ReadJournal(int64_t after_lsn, int64_t limit) override;
  Status ApplyJournalEntry(const JournalEntry& entry) override;
  Result<std::string> ContentChecksum() override;
  Result<std::string> VerifyContentChecksum() override;
  Status IntegrityCheck() override;
  Result<StoreCounts> Counts() override;
  const std::string& path() const override { return path_; }

 private:
  Status ValidateChunks(const std::vector<ChunkRecord>& chunks, bool replay) const;
  // Document rows on a pooled reader: `where` is the SQL after "FROM documents" (WHERE, ORDER
  // BY, LIMIT with ?1, ?2), bound to `a` and `b`.
  Result<std::vector<DocumentRecord>> SelectDocuments(std::string_view where, int64_t a, int64_t b);
  Status ApplyLocked(const JournalEntry& entry, store::ContentChecksum* sum) REQUIRES(write_mu_);

  // The one tail of every primary mutation (put, delete, undelete, purge), run with write_mu_
  // held inside the write transaction `tx`: `write` changes the rows, keeping `sum` (the
  // maintained content checksum) in step, and returns the journal entry's payload; it is told
  // the LSN the entry will get (a purge scrubs earlier entries with it). Then the entry — that
  // LSN (meta.last_lsn + 1), `ts_ms`, `actor`, `op`, the checksum after — is appended, the meta
  // row updated, and the transaction committed. Returns the entry's LSN. Replay appends the
  // entry it was given instead (ApplyJournalEntry).
  using RowWriter = std::function<Result<std::string>(store::ContentChecksum* sum, int64_t lsn)>;
  Result<int64_t> CommitJournaled(sql::Database* db, sql::Transaction* tx, std::string_view op,
                                  const std::string& actor, int64_t ts_ms, const RowWriter& write)
      REQUIRES(write_mu_);

  const std::string path_;
  const std::string project_id_;
  const int dimension_;
  const Clock* const clock_;
  Mutex write_mu_;
  std::unique_ptr<sql::Database> writer_ GUARDED_BY(write_mu_);
  ReaderPool readers_;                        // declared after writer_: closed before it
  store::DocFrequencyCache doc_frequencies_;  // steers keyword query pruning
};

Status SqliteProjectStore::ValidateChunks(const std::vector<ChunkRecord>& chunks,
                                          bool replay) const {
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ChunkRecord& c = chunks[i];
    std::string where = "chunk " + std::to_string(i);
    if (c.embedding.size() != static_cast<size_t>(dimension_)) {
      std::string m = where + ": embedding has " + std::to_string(c.embedding.size()) +
                      " dimensions, the project uses " + std::to_string(dimension_);
      return replay ? Status::Corruption(m) : Status::InvalidArgument(m);
    }
    for (float f : c.embedding) {
      if (!std::isfinite(f)) {
        std::string m = where + ": embedding holds a non-finite value";
        return replay ? Status::Corruption(m) : Status::InvalidArgument(m);
      }
    }
    KB_RETURN_IF_ERROR(CheckText(where + " text", c.text));
    KB_RETURN_IF_ERROR(CheckText(where + " heading_path", c.heading_path));
    if (c.start_offset < 0 || c.end_offset < c.start_offset) {
      return Status::InvalidArgument(where + ": offsets must satisfy 0 <= start <= end");
    }
  }
  return Status::OK();
}

Result<int64_t> SqliteProjectStore::CommitJournaled(sql::Database* db, sql::Transaction* tx,
                                                    std::string_view op, const std::string& actor,
                                                    int64_t ts_ms, const RowWriter& write) {
  // Checked here too (the mutations check first, before any work): damage found while this
  // write waited for the lock still stops it.
  KB_RETURN_IF_ERROR(RefuseIfDamaged(project_id_));
  auto meta = LoadMeta(db);
  if (!meta.ok()) return NoteCorruption(meta.status());
  const int64_t lsn = meta->last_lsn + 1;
  auto payload = write(&meta->checksum, lsn);
  if (!payload.ok()) return NoteCorruption(payload.status());
  JournalEntry entry{
      lsn, ts_ms, actor, std::string(op), std::move(payload).value(), meta->checksum.ToHex()};
  KB_RETURN_IF_ERROR(NoteCorruption(AppendJournal(db, entry)));
  KB_RETURN_IF_ERROR(NoteCorruption(tx->Commit()));
  return lsn;
}

Result<PutDocumentResult> SqliteProjectStore::PutDocument(DocumentRecord doc,
                                                          std::vector<ChunkRecord> chunks,
                                                          const std::string& actor) {
  KB_RETURN_IF_ERROR(RefuseIfDamaged(project_id_));
  // Everything the caller controls is checked before the transaction starts.
  KB_RETURN_IF_ERROR(ValidateChunks(chunks, /*replay=*/false));
  KB_RETURN_IF_ERROR(CheckText("title", doc.title));
  KB_RETURN_IF_ERROR(CheckText("source", doc.source));
  KB_RETURN_IF_ERROR(CheckText("content_type", doc.content_type));
  KB_RETURN_IF_ERROR(CheckText("content_hash", doc.content_hash));
  KB_RETURN_IF_ERROR(CheckText("actor", actor));
  KB_RETURN_IF_ERROR(CheckText("id", doc.id));
  if (doc.bytes < 0) return Status::InvalidArgument("bytes must not be negative");
  KB_ASSIGN_OR_RETURN(doc.metadata_json, CanonicalMetadata(doc.metadata_json));

  MutexLock lock(write_mu_);
  sql::Database* db = writer_.get();
  KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db));

  std::optional<DocumentRecord> target;
  if (!doc.id.empty()) {
    KB_ASSIGN_OR_RETURN(target, LoadDocument(db, doc.id));
  }
  if (!target && !doc.source.empty()) {
    KB_ASSIGN_OR_RETURN(
        auto by_source,
        QueryDocuments(db,
                       "SELECT " + std::string(kDocColumns) +
                           // `source <> ''` (true here) matches the partial index
                           // documents_live_source: without it SQLite scans every document.
                           " FROM documents WHERE source = ?1 AND source <> '' AND "
                           "deleted_at IS NULL",
                       [&](sql::Statement& st) { st.Bind(1, doc.source); }));
    if (!by_source.empty()) {
      if (!doc.id.empty()) {
        return Status::AlreadyExists("source '" + doc.source + "' belongs to document " +
                                     by_source.front().id);
      }
      target = std::move(by_source.front());
    }
  }

  PutDocumentResult result;
  if (target && !target->deleted_at_ms && target->content_hash == doc.content_hash &&
      target->metadata_json == doc.metadata_json && target->title == doc.title &&
      target->content_type == doc.content_type && target->source == doc.source) {
    result.outcome = PutOutcome::kUnchanged;
    KB_ASSIGN_OR_RETURN(result.chunk_ids, ChunkIdsOf(db, target->id));
    result.document = std::move(*target);
    return result;  // the transaction rolls back: nothing was written
  }

  int64_t now = clock_->NowMillis();
  DocumentRecord stored = doc;
  stored.id = target ? target->id : (doc.id.empty() ? NewUuid() : doc.id);
  stored.created_at_ms = target ? target->created_at_ms : now;
  stored.updated_at_ms = now;
  stored.chunk_count = static_cast<int>(chunks.size());
  stored.deleted_at_ms.reset();
  stored.deleted_by.clear();
  for (size_t i = 0; i < chunks.size(); ++i) {
    chunks[i].id = 0;
    chunks[i].document_id = stored.id;
    chunks[i].ordinal = static_cast<int>(i);
  }

  store::PutPayload payload;
  KB_ASSIGN_OR_RETURN(
      result.lsn,
      CommitJournaled(db, &tx, store::kOpPutDocument, actor, now,
                      [&](store::ContentChecksum* sum, int64_t) -> Result<std::string> {
                        KB_RETURN_IF_ERROR(WritePut(db, stored, &chunks, target.has_value(),
                                                    &result.removed_chunk_ids, sum));
                        payload = {stored, target.has_value(), result.removed_chunk_ids, {}};
                        payload.chunks = std::move(chunks);
                        return store::EncodePayload(payload);
                      }));

  result.outcome = target ? PutOutcome::kReplaced : PutOutcome::kCreated;
  result.document = std::move(stored);
  for (const ChunkRecord& c : payload.chunks) result.chunk_ids.push_back(c.id);
  return result;
}

Result<std::vector<int64_t>> SqliteProjectStore::DeleteDocument(const std::string& id,
                                                                const std::string& actor) {
  KB_RETURN_IF_ERROR(RefuseIfDamaged(project_id_));
  KB_RETURN_IF_ERROR(CheckText("actor", actor));
  MutexLock lock(write_mu_);
  sql::Database* db = writer_.get();
  KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db));
  KB_ASSIGN_OR_RETURN(auto doc, LoadDocument(db, id));
  if (!doc || doc->deleted_at_ms) return Status::NotFound("document " + id + " does not exist");
  int64_t now = clock_->NowMillis();
  store::DeletePayload payload{id, now, actor, now, {}};
  KB_RETURN_IF_ERROR(
      CommitJournaled(db, &tx, store::kOpDeleteDocument, actor, now,
                      [&](store::ContentChecksum* sum, int64_t) -> Result<std::string> {
                        KB_RETURN_IF_ERROR(WriteDeletedState(db, id, now, actor, now, sum));
                        KB_ASSIGN_OR_RETURN(payload.chunk_ids, ChunkIdsOf(db, id));
                        return store::EncodePayload(payload);
                      })
          .status());
  return std::move(payload.chunk_ids);
}

Result<std::vector<int64_t>> SqliteProjectStore::UndeleteDocument(const std::string& id,
                                                                  const std::string& actor) {
  KB_RETURN_IF_ERROR(RefuseIfDamaged(project_id_));
  KB_RETURN_IF_ERROR(CheckText("actor", actor));
  MutexLock lock(write_mu_);
  sql::Database* db = writer_.get();
  KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db));
  KB_ASSIGN_OR_RETURN(auto doc, LoadDocument(db, id));
  if (!doc || !doc->deleted_at_ms) {
    return Status::NotFound("document " + id + " does not exist or is not deleted");
  }
  int64_t now = clock_->NowMillis();
  std::vector<int64_t> ids;
  KB_RETURN_IF_ERROR(
      CommitJournaled(
          db, &tx, store::kOpUndeleteDocument, actor, now,
          [&](store::ContentChecksum* sum, int64_t) -> Result<std::string> {
            Status s = WriteDeletedState(db, id, std::nullopt, "", now, sum);
            if (s.code() == Code::kAlreadyExists) {
              return Status::AlreadyExists("a live document took source '" + doc->source +
                                           "' meanwhile");
            }
            KB_RETURN_IF_ERROR(s);
            store::UndeletePayload payload{id, now, {}};
            KB_ASSIGN_OR_RETURN(auto st, db->PrepareCached("SELECT id, embedding FROM chunks "
                                                           "WHERE document_id = ?1 "
                                                           "ORDER BY ordinal"));
            st.Bind(1, id);
            while (true) {
              KB_ASSIGN_OR_RETURN(bool row, st.Step());
              if (!row) break;
              auto emb = store::EmbeddingFromBytes(st.ColumnBlobView(1));
              if (!emb)
                return Status::Corruption("chunk " + std::to_string(st.ColumnInt64(0)) +
                                          ": embedding BLOB size is not a multiple of 4");
              ids.push_back(st.ColumnInt64(0));
              payload.chunks.emplace_back(st.ColumnInt64(0), std::move(*emb));
            }
            return store::EncodePayload(payload);
          })
          .status());
  return ids;
}

Result<std::vector<int64_t>> SqliteProjectStore::PurgeDocument(const std::string& id,
                                                               const std::string& actor) {
  KB_RETURN_IF_ERROR(RefuseIfDamaged(project_id_));
  KB_RETURN_IF_ERROR(CheckText("actor", actor));
  MutexLock lock(write_mu_);
  sql::Database* db = writer_.get();
  KB_ASSIGN_OR_RETURN(SecureDeleteScope secure, SecureDeleteScope::Enable(db));
  KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db));
  KB_ASSIGN_OR_RETURN(auto doc, LoadDocument(db, id));
  if (!doc) return Status::NotFound("document " + id + " does not exist");
  store::PurgePayload payload{id, {}};
  KB_RETURN_IF_ERROR(
      CommitJournaled(db, &tx, store::kOpPurgeDocument, actor, clock_->NowMillis(),
                      [&](store::ContentChecksum* sum, int64_t lsn) -> Result<std::string> {
                        KB_ASSIGN_OR_RETURN(payload.chunk_ids, ChunkIdsOf(db, id));
                        KB_RETURN_IF_ERROR(WritePurge(db, *doc, sum));
                        KB_RETURN_IF_ERROR(ScrubJournal(db, id, lsn));
                        return store::EncodePayload(payload);
                      })
          .status());
  return std::move(payload.chunk_ids);
}

Status SqliteProjectStore::CompactAfterPurge() {
  MutexLock lock(write_mu_);
  sql::Database* db = writer_.get();
  KB_ASSIGN_OR_RETURN(SecureDeleteScope secure, SecureDeleteScope::Enable(db));
  {
    // FTS5 deletes only add tombstones; 'optimize' merges every segment into one, dropping the
    // purged chunks' terms and rowids.
    KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db));
    KB_RETURN_IF_ERROR(db->Exec("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')"));
    KB_RETURN_IF_ERROR(tx.Commit());
  }
  // The WAL still holds the page images written before the purge: copy the current pages into
  // the database and truncate the WAL to zero bytes. Readers pinning an old snapshot make the
  // checkpoint report busy (first column 1).
  KB_ASSIGN_OR_RETURN(auto st, db->Prepare("PRAGMA wal_checkpoint(TRUNCATE)"));
  KB_ASSIGN_OR_RETURN(bool row, st.Step());
  if (row && st.ColumnInt64(0) != 0) {
    return Status::Unavailable(path_ + ": the WAL could not be truncated (a reader is busy)");
  }
  return Status::OK();
}

Result<DocumentRecord> SqliteProjectStore::GetDocument(const std::string& id,
                                                       bool include_deleted) {
  auto reader = readers_.Acquire();
  KB_ASSIGN_OR_RETURN(auto doc, LoadDocument(reader.get(), id));
  if (!doc || (doc->deleted_at_ms && !include_deleted)) {
    return Status::NotFound("document " + id + " does not exist");
  }
  return std::move(*doc);
}

Result<std::vector<DocumentRecord>> SqliteProjectStore::SelectDocuments(std::string_view where,
                                                                        int64_t a, int64_t b) {
  auto reader = readers_.Acquire();
  return QueryDocuments(
      reader.get(), "SELECT " + std::string(kDocColumns) + " FROM documents " + std::string(where),
      [&](sql::Statement& st) { st.Bind(1, a).Bind(2, b); });
}

Result<std::vector<DocumentRecord>> SqliteProjectStore::ListDocuments(int64_t limit,
                                                                      int64_t offset) {
  return SelectDocuments("WHERE deleted_at IS NULL ORDER BY created_at, id LIMIT ?1 OFFSET ?2",
                         limit, std::max<int64_t>(0, offset));
}

Result<std::vector<DocumentRecord>> SqliteProjectStore::DocumentsChangedSince(int64_t since_ms,
                                                                              int64_t limit) {
  return SelectDocuments("WHERE updated_at >= ?1 ORDER BY updated_at, id LIMIT ?2", since_ms,
                         limit);
}

Result<std::vector<DocumentRecord>> SqliteProjectStore::ListDeletedDocuments(int64_t limit,
                                                                             int64_t offset) {
  return SelectDocuments(
      "WHERE deleted_at IS NOT NULL ORDER BY deleted_at DESC, id LIMIT ?1 OFFSET ?2", limit,
      std::max<int64_t>(0, offset));
}

Result<std::vector<DocumentRecord>> SqliteProjectStore::DeletedBefore(int64_t cutoff_ms,
                                                                      int64_t limit) {
  return SelectDocuments(
      "WHERE deleted_at IS NOT NULL AND deleted_at <= ?1 ORDER BY deleted_at, id LIMIT ?2",
      cutoff_ms, limit);
}

Result<std::vector<ChunkRecord>> SqliteProjectStore::GetDocumentChunks(
    const std::string& document_id) {
  auto reader = readers_.Acquire();
  KB_ASSIGN_OR_RETURN(auto tx,
                      sql::Transaction::Begin(reader.get(), sql::Transaction::Mode::kDeferred));
  KB_ASSIGN_OR_RETURN(auto doc, LoadDocument(reader.get(), document_id));
  if (!doc || doc->deleted_at_ms) {
    return Status::NotFound("document " + document_id + " does not exist");
  }
  KB_ASSIGN_OR_RETURN(
      auto st, reader->PrepareCached("SELECT id, ordinal, text, heading_path, start_offset, "
                                     "end_offset, embedding FROM chunks WHERE document_id = ?1 "
                                     "ORDER BY ordinal"));
  st.Bind(1, document_id);
  std::vector<ChunkRecord> out;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ChunkRecord c;
    c.id = st.ColumnInt64(0);
    c.document_id = document_id;
    c.ordinal = static_cast<int>(st.ColumnInt64(1));
    c.text = st.ColumnText(2);
    c.heading_path = st.ColumnText(3);
    c.start_offset = st.ColumnInt64(4);
    c.end_offset = st.ColumnInt64(5);
    auto emb = store::EmbeddingFromBytes(st.ColumnBlobView(6));
    if (!emb) return Status::Corruption("chunk " + std::to_string(c.id) + ": bad embedding BLOB");
    c.embedding = std::move(*emb);
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<KeywordHit>> SqliteProjectStore::KeywordSearch(const std::string& query,
                                                                  size_t limit) {
  if (limit == 0) return std::vector<KeywordHit>();
  auto reader = readers_.Acquire();
  KB_ASSIGN_OR_RETURN(store::KeywordPlan plan,
                      store::PlanKeywordQuery(reader.get(), query, store::kKeywordRowBudget,
                                              &doc_frequencies_, clock_->NowMillis()));
  if (plan.match.empty()) return std::vector<KeywordHit>();
  std::vector<KeywordHit> hits;
  if (!plan.sampled) {
    // The index holds live chunks only (migration 2): no join needed, and ORDER BY rank lets
    // FTS5 keep just the best `limit` rows.
    KB_ASSIGN_OR_RETURN(auto st, reader->PrepareCached("SELECT rowid, rank FROM chunks_fts "
                                                       "WHERE chunks_fts MATCH ?1 "
                                                       "ORDER BY rank LIMIT ?2"));
    st.Bind(1, plan.match).Bind(2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
    while (true) {
      KB_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      hits.push_back(KeywordHit{st.ColumnInt64(0), -st.ColumnDouble(1)});
    }
    return hits;
  }
  // Even the rarest term matches more rows than ranking them all would allow: rank the first
  // kKeywordRowBudget matches (chunk order) and keep the best `limit` (keyword_query.h).
  KB_ASSIGN_OR_RETURN(auto st, reader->PrepareCached("SELECT rowid, rank FROM chunks_fts "
                                                     "WHERE chunks_fts MATCH ?1 LIMIT ?2"));
  st.Bind(1, plan.match).Bind(2, store::kKeywordRowBudget);
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    hits.push_back(KeywordHit{st.ColumnInt64(0), -st.ColumnDouble(1)});
  }
  std::sort(hits.begin(), hits.end(), [](const KeywordHit& a, const KeywordHit& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.chunk_id < b.chunk_id;
  });
  if (hits.size() > limit) hits.resize(limit);
  return hits;
}

Result<std::vector<ChunkView>> SqliteProjectStore::GetChunkViews(
    const std::vector<int64_t>& chunk_ids) {
  auto reader = readers_.Acquire();
  KB_ASSIGN_OR_RETURN(auto tx,
                      sql::Transaction::Begin(reader.get(), sql::Transaction::Mode::kDeferred));
  KB_ASSIGN_OR_RETURN(
      auto st,
      reader->PrepareCached("SELECT c.id, c.ordinal, c.text, c.heading_path, "
                            "c.start_offset, c.end_offset, d.id, d.title, d.source, "
                            "d.content_type, d.content_hash, d.metadata, d.chunk_count, "
                            "d.bytes, d.created_at, d.updated_at, d.deleted_at, "
                            "d.deleted_by FROM chunks c JOIN documents d ON "
                            "d.id = c.document_id WHERE c.id = ?1 AND d.deleted_at IS NULL"));
  std::vector<ChunkView> out;
  for (int64_t id : chunk_ids) {
    st.Reset();
    st.Bind(1, id);
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) continue;
    ChunkView v;
    v.chunk.id = st.ColumnInt64(0);
    v.chunk.ordinal = static_cast<int>(st.ColumnInt64(1));
    v.chunk.text = st.ColumnText(2);
    v.chunk.heading_path = st.ColumnText(3);
    v.chunk.start_offset = st.ColumnInt64(4);
    v.chunk.end_offset = st.ColumnInt64(5);
    v.document = ReadDocument(st, 6);
    v.chunk.document_id = v.document.id;
    out.push_back(std::move(v));
  }
  return out;
}

Status SqliteProjectStore::ForEachLiveEmbedding(
    const std::function<void(int64_t, std::span<const float>)>& fn) {
  auto reader = readers_.Acquire();
  KB_ASSIGN_OR_RETURN(auto tx,
                      sql::Transaction::Begin(reader.get(), sql::Transaction::Mode::kDeferred));
  KB_ASSIGN_OR_RETURN(
      auto st,
      reader->PrepareCached("SELECT c.id, c.embedding FROM chunks c JOIN documents d ON "
                            "d.id = c.document_id WHERE d.deleted_at IS NULL ORDER BY c.id"));
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    auto emb = store::EmbeddingFromBytes(st.ColumnBlobView(1));
    if (!emb || emb->size() != static_cast<size_t>(dimension_)) {
      return Status::Corruption("chunk " + std::to_string(st.ColumnInt64(0)) +
                                ": embedding BLOB does not hold " + std::to_string(dimension_) +
                                " floats");
    }
    fn(st.ColumnInt64(0), *emb);
  }
  return Status::OK();
}

Result<int64_t> SqliteProjectStore::LastLsn() {
  auto reader = readers_.Acquire();
  KB_ASSIGN_OR_RETURN(MetaRow meta, LoadMeta(reader.get()));
  return meta.last_lsn;
}

Result<std::vector<JournalEntry>> SqliteProjectStore::ReadJournal(int64_t after_lsn,
                                                                  int64_t limit) {
  auto reader = readers_.Acquire();
  KB_ASSIGN_OR_RETURN(
      auto st, reader->PrepareCached("SELECT lsn, ts_ms, actor, op, payload, checksum FROM journal "
                                     "WHERE lsn > ?1 ORDER BY lsn LIMIT ?2"));
  st.Bind(1, after_lsn).Bind(2, limit);
  std::vector<JournalEntry> out;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(JournalEntry{st.ColumnInt64(0), st.ColumnInt64(1), st.ColumnText(2),
                               st.ColumnText(3), st.ColumnText(4), st.ColumnText(5)});
  }
  return out;
}

// Replays one entry's effect on the rows; the caller compares checksums and appends the entry.
Status SqliteProjectStore::ApplyLocked(const JournalEntry& entry, store::ContentChecksum* sum) {
  sql::Database* db = writer_.get();
  if (entry.op == store::kOpPutDocument) {
    KB_ASSIGN_OR_RETURN(auto p, store::DecodePutPayload(entry.payload));
    KB_RETURN_IF_ERROR(ValidateChunks(p.chunks, /*replay=*/true));
    if (p.document.chunk_count != static_cast<int>(p.chunks.size())) {
      return Status::Corruption("put_document: chunk_count differs from the chunks carried");
    }
    for (const ChunkRecord& c : p.chunks) {
      if (c.id <= 0) return Status::Corruption("put_document: chunk without an id");
    }
    KB_ASSIGN_OR_RETURN(auto existing, LoadDocument(db, p.document.id));
    if (existing.has_value() != p.replaced) {
      return Status::Corruption("put_document: document " + p.document.id +
                                (p.replaced ? " should exist" : " already exists"));
    }
    std::vector<int64_t> removed;
    KB_RETURN_IF_ERROR(WritePut(db, p.document, &p.chunks, p.replaced, &removed, sum));
    if (removed != p.removed_chunk_ids) {
      return Status::Corruption("put_document: replaced chunks differ from the entry's");
    }
    return Status::OK();
  }
  if (entry.op == store::kOpDeleteDocument) {
    KB_ASSIGN_OR_RETURN(auto p, store::DecodeDeletePayload(entry.payload));
    KB_ASSIGN_OR_RETURN(auto doc, LoadDocument(db, p.document_id));
    if (!doc || doc->deleted_at_ms) {
      return Status::Corruption("delete_document: no live document " + p.document_id);
    }
    return WriteDeletedState(db, p.document_id, p.deleted_at_ms, p.deleted_by, p.updated_at_ms,
                             sum);
  }
  if (entry.op == store::kOpUndeleteDocument) {
    KB_ASSIGN_OR_RETURN(auto p, store::DecodeUndeletePayload(entry.payload));
    KB_ASSIGN_OR_RETURN(auto doc, LoadDocument(db, p.document_id));
    if (!doc || !doc->deleted_at_ms) {
      return Status::Corruption("undelete_document: no deleted document " + p.document_id);
    }
    return WriteDeletedState(db, p.document_id, std::nullopt, "", p.updated_at_ms, sum);
  }
  if (entry.op == store::kOpScrubbed) {
    // The content needed to redo it is gone on purpose (a purge): a copy cannot be built by
    // replay across this entry, only from a snapshot taken at or after the purge.
    KB_ASSIGN_OR_RETURN(auto p, store::DecodeScrubbedPayload(entry.payload));
    return Status::FailedPrecondition("journal entry " + std::to_string(entry.lsn) +
                                      " was scrubbed when document " + p.document_id +
                                      " was purged (LSN " + std::to_string(p.purged_at_lsn) +
                                      "); replay must start from a snapshot at or after that LSN");
  }
  if (entry.op == store::kOpPurgeDocument) {
    KB_ASSIGN_OR_RETURN(auto p, store::DecodePurgePayload(entry.payload));
    KB_ASSIGN_OR_RETURN(auto doc, LoadDocument(db, p.document_id));
    if (!doc) return Status::Corruption("purge_document: no document " + p.document_id);
    KB_RETURN_IF_ERROR(WritePurge(db, *doc, sum));
    // A copy forgets the content too: its journal is a journal source in turn.
    return ScrubJournal(db, p.document_id, entry.lsn);
  }
  return Status::Corruption("journal entry " + std::to_string(entry.lsn) + ": unknown op '" +
                            entry.op + "'");
}

Status SqliteProjectStore::ApplyJournalEntry(const JournalEntry& entry) {
  KB_RETURN_IF_ERROR(RefuseIfDamaged(project_id_));
  MutexLock lock(write_mu_);
  sql::Database* db = writer_.get();
  std::optional<SecureDeleteScope> secure;
  if (entry.op == store::kOpPurgeDocument) {
    KB_ASSIGN_OR_RETURN(auto scope, SecureDeleteScope::Enable(db));
    secure.emplace(std::move(scope));
  }
  KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db));
  KB_ASSIGN_OR_RETURN(MetaRow meta, LoadMeta(db));
  if (entry.lsn != meta.last_lsn + 1) {
    return Status::FailedPrecondition("journal entry " + std::to_string(entry.lsn) +
                                      " does not follow LSN " + std::to_string(meta.last_lsn));
  }
  Status s = ApplyLocked(entry, &meta.checksum);
  if (s.code() == Code::kAlreadyExists || s.code() == Code::kInvalidArgument ||
      s.code() == Code::kNotFound) {
    // The entry does not fit the rows it claims to follow: a damaged or foreign journal.
    s = Status::Corruption(s.message());
  }
  KB_RETURN_IF_ERROR(s.WithContext("replaying journal entry " + std::to_string(entry.lsn)));
  if (meta.checksum.ToHex() != entry.checksum) {
    return Status::Corruption("journal entry " + std::to_string(entry.lsn) +
                              ": content checksum after replay is " + meta.checksum.ToHex() +
                              ", the entry records " + entry.checksum);
  }
  KB_RETURN_IF_ERROR(AppendJournal(db, entry));
  return tx.Commit();
}

Result<std::string> SqliteProjectStore::ContentChecksum() {
  auto reader = readers_.Acquire();
  KB_ASSIGN_OR_RETURN(MetaRow meta, LoadMeta(reader.get()));
  return meta.checksum.ToHex();
}

Result<std::string> SqliteProjectStore::VerifyContentChecksum() {
  auto reader = readers_.Acquire();
  KB_ASSIGN_OR_RETURN(auto scan, reader.get()->BeginFullScan());  // every row: not mapped
  // One snapshot: the maintained value and the rows it summarises must be from the same commit.
  KB_ASSIGN_OR_RETURN(auto tx,
                      sql::Transaction::Begin(reader.get(), sql::Transaction::Mode::kDeferred));
  KB_ASSIGN_OR_RETURN(MetaRow meta, LoadMeta(reader.get()));
  KB_ASSIGN_OR_RETURN(store::ContentChecksum sum, store::RecomputeContentChecksum(reader.get()));
  if (!(sum == meta.checksum)) {
    return Status::Corruption(path_ + ": content checksum recomputed from the rows is " +
                              sum.ToHex() + ", the maintained one is " + meta.checksum.ToHex());
  }
  return sum.ToHex();
}

Status SqliteProjectStore::IntegrityCheck() {
  MutexLock lock(write_mu_);
  sql::Database* db = writer_.get();
  KB_ASSIGN_OR_RETURN(auto scan, db->BeginFullScan());  // every page: not through the map
  KB_RETURN_IF_ERROR(store::CheckSqliteIntegrity(db, path_));
  // The FTS index is derived from chunks; check that it still matches them.
  // rank = 1 also compares the index with its content, the view of live chunks.
  Status fts = db->Exec("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)");
  if (!fts.ok()) return Status::Corruption(path_ + ": FTS index: " + fts.message());
  return store::CheckChunkCounts(db, path_);
}

Result<StoreCounts> SqliteProjectStore::Counts() {
  auto reader = readers_.Acquire();
  return store::ReadMaintainedCounts(reader.get());  // the store is always at the latest schema
}

}  // namespace

void ProjectStore::MarkDamaged(std::string problem) {
  MutexLock lock(damage_mu_);
  damage_ = problem.empty() ? "damage found" : std::move(problem);
}

void ProjectStore::ClearDamage() {
  MutexLock lock(damage_mu_);
  damage_.clear();
}

std::optional<std::string> ProjectStore::Damage() const {
  MutexLock lock(damage_mu_);
  if (damage_.empty()) return std::nullopt;
  return damage_;
}

Status ProjectStore::RefuseIfDamaged(const std::string& project_id) const {
  MutexLock lock(damage_mu_);
  if (damage_.empty()) return Status::OK();
  return Status::Unavailable(
      "project " + project_id + " is read-only: its database is damaged (" + damage_ +
      "). Reads still work. Run `knowledgebeast check` for the details, then restore the "
      "project from a backup: POST /api/v1/admin/projects/" +
      project_id + "/restore, or `knowledgebeast restore --project " + project_id +
      "` with the server stopped");
}

Status ProjectStore::NoteCorruption(Status s) {
  if (s.code() == Code::kCorruption)
    MarkDamaged("SQLite reported damage during a write: " + s.message());
  return s;
}

Result<std::unique_ptr<ProjectStore>> ProjectStore::Open(const std::string& path,
                                                         const std::string& project_id,
                                                         int dimension, const Clock* clock) {
  if (dimension <= 0) return Status::InvalidArgument("embedding dimension must be positive");
  if (project_id.empty()) return Status::InvalidArgument("project id must not be empty");
  std::string parent = std::filesystem::path(path).parent_path().string();
  if (!parent.empty() && !PathExists(parent)) KB_RETURN_IF_ERROR(MakeDirs(parent));

  KB_ASSIGN_OR_RETURN(auto writer, sql::Database::Open(path));
  KB_RETURN_IF_ERROR(store::ApplyMigrations(writer.get(), store::ProjectSchema()));
  {
    KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(writer.get()));
    KB_ASSIGN_OR_RETURN(auto st, writer->PrepareCached("SELECT project_id, dimension FROM meta"));
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      std::string stored_id = st.ColumnText(0);
      int64_t stored_dim = st.ColumnInt64(1);
      if (stored_id != project_id) {
        return Status::FailedPrecondition(path + " belongs to project " + stored_id + ", not " +
                                          project_id);
      }
      if (stored_dim != dimension) {
        return Status::FailedPrecondition(path + " holds embeddings of dimension " +
                                          std::to_string(stored_dim) + ", not " +
                                          std::to_string(dimension));
      }
    } else {
      KB_ASSIGN_OR_RETURN(
          auto ins, writer->PrepareCached("INSERT INTO meta(singleton, project_id, dimension, "
                                          "content_checksum, last_lsn) VALUES (1, ?1, ?2, ?3, 0)"));
      ins.Bind(1, project_id).Bind(2, dimension).Bind(3, store::ContentChecksum().ToHex());
      KB_RETURN_IF_ERROR(ins.Run());
    }
    KB_RETURN_IF_ERROR(tx.Commit());
  }
  auto store =
      std::make_unique<SqliteProjectStore>(path, project_id, dimension, clock, std::move(writer));
  KB_RETURN_IF_ERROR(store->InitReaders());
  return std::unique_ptr<ProjectStore>(std::move(store));
}

Result<IndexDelta> DecodeIndexDelta(const JournalEntry& entry) {
  IndexDelta delta;
  if (entry.op == store::kOpPutDocument) {
    KB_ASSIGN_OR_RETURN(auto p, store::DecodePutPayload(entry.payload));
    delta.removals = std::move(p.removed_chunk_ids);
    for (ChunkRecord& c : p.chunks) delta.upserts.emplace_back(c.id, std::move(c.embedding));
  } else if (entry.op == store::kOpDeleteDocument) {
    KB_ASSIGN_OR_RETURN(auto p, store::DecodeDeletePayload(entry.payload));
    delta.removals = std::move(p.chunk_ids);
  } else if (entry.op == store::kOpUndeleteDocument) {
    KB_ASSIGN_OR_RETURN(auto p, store::DecodeUndeletePayload(entry.payload));
    delta.upserts = std::move(p.chunks);
  } else if (entry.op == store::kOpPurgeDocument) {
    KB_ASSIGN_OR_RETURN(auto p, store::DecodePurgePayload(entry.payload));
    delta.removals = std::move(p.chunk_ids);
  } else if (entry.op == store::kOpScrubbed) {
    // Its document is purged later in the journal: whatever the entry once added to the index
    // is removed again by then, so removing it now reaches the same state at the purge.
    KB_ASSIGN_OR_RETURN(auto p, store::DecodeScrubbedPayload(entry.payload));
    delta.removals = std::move(p.removed_chunk_ids);
    delta.removals.insert(delta.removals.end(), p.chunk_ids.begin(), p.chunk_ids.end());
  } else {
    return Status::Corruption("journal entry " + std::to_string(entry.lsn) + ": unknown op '" +
                              entry.op + "'");
  }
  return delta;
}

}  // namespace kb
