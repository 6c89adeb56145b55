// The SQL on a project database's rows (`kb.db`, docs/format/DATABASE.md section 4), in one
// place: the reads shared by the store's writer, its reader pool and the read-only
// ProjectReader (a document row, a document's digest, the meta row, counts, the checksum
// recomputed from every row, the integrity checks), and the mutation bodies shared by the
// primary write path and journal replay, so the two cannot drift apart.
//
// Internal to src/store: other modules read a project through ProjectStore or ProjectReader.
//
// Thread-safety: free functions on a sql::Database the caller uses from one thread at a time.
// Reads run in the caller's transaction (if any); the Write* functions and ScrubJournal need the
// caller's write transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto_util.h"
#include "common/status.h"
#include "store/content_checksum.h"
#include "store/project_store.h"
#include "store/sqlite.h"

namespace kb::store {

// The columns ReadDocument expects, in its order.
inline constexpr std::string_view kDocColumns =
    "id, title, source, content_type, content_hash, metadata, chunk_count, bytes, created_at, "
    "updated_at, deleted_at, deleted_by";

// The document in columns [first, first + 12) of the current row (kDocColumns order).
DocumentRecord ReadDocument(const sql::Statement& st, int first);
// Runs `sql` (selecting kDocColumns) with the bindings `bind` makes.
Result<std::vector<DocumentRecord>> QueryDocuments(
    sql::Database* db, const std::string& sql, const std::function<void(sql::Statement&)>& bind);
// The document row with this id (live or deleted); nullopt if there is none.
Result<std::optional<DocumentRecord>> LoadDocument(sql::Database* db, const std::string& id);
// The document's chunk ids in ordinal order.
Result<std::vector<int64_t>> ChunkIdsOf(sql::Database* db, const std::string& document_id);
// The document's digest as its rows stand now (docs/format/DATABASE.md section 5).
Result<Sha256Digest> DigestOf(sql::Database* db, const DocumentRecord& doc);

// The meta row's maintained checksum and newest LSN. Corruption if the row is missing or the
// checksum is not 64 hex digits.
struct MetaRow {
  ContentChecksum checksum;
  int64_t last_lsn = 0;
};
Result<MetaRow> LoadMeta(sql::Database* db);

// The content checksum recomputed from every document and chunk row (live and deleted), and in
// `documents` (if given) how many document rows it covered. The caller holds one read
// transaction, so the rows come from one commit.
Result<ContentChecksum> RecomputeContentChecksum(sql::Database* db, int64_t* documents = nullptr);
// Live documents, their chunks, their bytes, and deleted documents (what ProjectStore::Counts
// reports and a snapshot manifest records), counted from the rows: reads every document.
Result<StoreCounts> ReadCounts(sql::Database* db);
// The same counts as kept by the triggers of schema 3 (the `doc_counts` row): one row read.
// Only for a database of schema 3 or later.
Result<StoreCounts> ReadMaintainedCounts(sql::Database* db);
// PRAGMA integrity_check; Corruption naming `path` and SQLite's report if it is not "ok".
Status CheckSqliteIntegrity(sql::Database* db, const std::string& path);
// Corruption naming `path` if a document's chunk_count differs from its chunk rows. (The FTS
// index check needs a writable connection for FTS5's 'integrity-check' command:
// ProjectStore::IntegrityCheck runs it; ProjectReader compares the index's rows with its
// content instead.)
// Also Corruption if the maintained counts (schema 3 and later) differ from ReadCounts.
Status CheckChunkCounts(sql::Database* db, const std::string& path);
// "" when the maintained counts equal the rows' (or the schema has none), else what differs.
Result<std::string> MaintainedCountsProblem(sql::Database* db);

// Appends the entry and records the checksum it carries as the maintained one.
Status AppendJournal(sql::Database* db, const JournalEntry& e);

// --- mutation bodies, shared by the primary path and replay; caller holds a write transaction ---

// Writes `doc` (live) with `chunks`; a chunk id of 0 is assigned by SQLite and filled in.
Status WritePut(sql::Database* db, const DocumentRecord& doc, std::vector<ChunkRecord>* chunks,
                bool existed, std::vector<int64_t>* removed, ContentChecksum* sum);
// Sets or clears the soft-delete state of an existing document.
Status WriteDeletedState(sql::Database* db, const std::string& id,
                         std::optional<int64_t> deleted_at, const std::string& deleted_by,
                         int64_t updated_at, ContentChecksum* sum);
Status WritePurge(sql::Database* db, const DocumentRecord& doc, ContentChecksum* sum);
// Rewrites every put_document / undelete_document entry of `document_id` as a scrubbed entry
// (JOURNAL.md section 2): same lsn, ts_ms, actor and checksum; the payload keeps only ids.
Status ScrubJournal(sql::Database* db, const std::string& document_id, int64_t purge_lsn);

// PRAGMA secure_delete for the lifetime of the scope (a connection setting; it cannot change
// inside a transaction, so the scope is opened before BEGIN and closed after COMMIT/ROLLBACK).
class SecureDeleteScope {
 public:
  static Result<SecureDeleteScope> Enable(sql::Database* db) {
    KB_RETURN_IF_ERROR(db->Exec("PRAGMA secure_delete=ON"));
    return SecureDeleteScope(db);
  }
  SecureDeleteScope(SecureDeleteScope&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
  SecureDeleteScope& operator=(SecureDeleteScope&&) = delete;
  ~SecureDeleteScope() {
    if (db_) (void)db_->Exec("PRAGMA secure_delete=OFF");
  }

 private:
  explicit SecureDeleteScope(sql::Database* db) : db_(db) {}
  sql::Database* db_;
};

}  // namespace kb::store
