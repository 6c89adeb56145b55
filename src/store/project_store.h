// ProjectStore: one project's database `data/projects/<project-id>/kb.db` — its documents,
// chunks (text, heading path, offsets, embedding as a float32 BLOB), the FTS5 keyword index,
// and the journal. Schema, journal payloads and the content checksum: docs/format/DATABASE.md
// and docs/format/JOURNAL.md.
//
// Every mutation is one SQLite transaction that also appends one journal entry (monotonic LSN,
// time, actor, operation, everything needed to redo it — embeddings included) and updates the
// project's content checksum, an order-independent hash of all document and chunk rows. Replaying
// a store's journal into an empty store reproduces the same rows and the same checksum; that is
// what backups, point-in-time restore and standbys rely on.
//
// Durability: WAL with synchronous=FULL; a mutation that returned OK survives a crash.
//
// Thread-safety: safe for concurrent use. Writes are serialised on one writer connection;
// reads use a small pool of reader connections and see a committed snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace kb {

struct DocumentRecord {
  std::string id;  // UUID v4; assigned by the store for new documents
  std::string title;
  std::string source;  // file name or caller-given; unique among live documents when non-empty
  std::string content_type;  // MIME
  std::string content_hash;  // hex SHA-256 of the original bytes
  std::string metadata_json = "{}";
  int chunk_count = 0;
  int64_t bytes = 0;  // size of the original content
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  std::optional<int64_t> deleted_at_ms;
  std::string deleted_by;
};

struct ChunkRecord {
  int64_t id = 0;  // assigned by the store (never reused); also the vector index label
  std::string document_id;
  int ordinal = 0;  // position in the document, from 0
  std::string text;
  std::string heading_path;
  int64_t start_offset = 0;
  int64_t end_offset = 0;
  std::vector<float> embedding;
};

enum class PutOutcome { kCreated, kReplaced, kUnchanged };

struct PutDocumentResult {
  PutOutcome outcome = PutOutcome::kCreated;
  DocumentRecord document;            // as stored
  std::vector<int64_t> chunk_ids;     // ids of the new chunks, in ordinal order
  std::vector<int64_t> removed_chunk_ids;  // chunks of the replaced version
  int64_t lsn = 0;                    // journal entry of this change (0 if unchanged)
};

struct JournalEntry {
  int64_t lsn = 0;
  int64_t ts_ms = 0;
  std::string actor;  // key id, "system", or "cli"
  std::string op;     // "put_document" | "delete_document" | "undelete_document" | "purge_document"
  std::string payload;  // JSON, see docs/format/JOURNAL.md
  std::string checksum;  // content checksum after this entry (hex)
};

// What an entry does to the vector index.
struct IndexDelta {
  std::vector<std::pair<int64_t, std::vector<float>>> upserts;
  std::vector<int64_t> removals;
};

struct KeywordHit {
  int64_t chunk_id;
  double score;  // BM25, higher is better (the negated FTS5 bm25() value)
};

// A chunk with its document, for search results.
struct ChunkView {
  ChunkRecord chunk;  // embedding left empty
  DocumentRecord document;
};

struct StoreCounts {
  int64_t documents = 0;  // live
  int64_t chunks = 0;     // live
  int64_t content_bytes = 0;  // sum of document bytes, live
  int64_t deleted_documents = 0;
};

class ProjectStore {
 public:
  // Opens (creating and migrating if needed) the database at `path` for project `project_id`
  // with embeddings of `dimension` floats. FailedPrecondition if the schema is newer than this
  // binary, or the stored project id / dimension differ from the ones given.
  static Result<std::unique_ptr<ProjectStore>> Open(const std::string& path,
                                                    const std::string& project_id, int dimension,
                                                    const Clock* clock);
  virtual ~ProjectStore() = default;

  // Damage makes a project read-only where it is found (issue 17): once marked, every mutation
  // (put, delete, undelete, purge, replay) is refused with Unavailable naming the problem and
  // the way out, while reads go on. The service marks it when an integrity check finds the
  // database damaged and clears it when a later check passes; the store marks it itself when
  // SQLite reports corruption during a mutation. A restored project gets a new store.
  void MarkDamaged(std::string problem) EXCLUDES(damage_mu_);
  void ClearDamage() EXCLUDES(damage_mu_);
  std::optional<std::string> Damage() const EXCLUDES(damage_mu_);

  // Stores a document with its chunks (text + embedding; ids are assigned). If `doc.source` is
  // non-empty and a live document has that source, it is replaced in the same transaction
  // (same id and created_at, new chunks) — unless its content_hash and metadata are equal, which
  // is a no-op reported as kUnchanged. If `doc.id` is set and exists, that document is replaced.
  // InvalidArgument if an embedding has the wrong dimension or non-finite values.
  virtual Result<PutDocumentResult> PutDocument(DocumentRecord doc, std::vector<ChunkRecord> chunks,
                                                const std::string& actor) = 0;

  // Soft delete: sets deleted_at/deleted_by; the document disappears from search, listings and
  // counts. Returns the ids of its chunks. NotFound if absent or already deleted.
  virtual Result<std::vector<int64_t>> DeleteDocument(const std::string& id,
                                                      const std::string& actor) = 0;
  // Undo a soft delete. NotFound if absent or not deleted; AlreadyExists if a live document took
  // its source meanwhile.
  virtual Result<std::vector<int64_t>> UndeleteDocument(const std::string& id,
                                                        const std::string& actor) = 0;
  // Removes a (soft-deleted or live) document and its chunks for good, in one transaction run
  // with PRAGMA secure_delete (freed bytes are zeroed), which also scrubs the document's
  // content from the journal: every earlier put_document / undelete_document entry of it is
  // rewritten as a "scrubbed" entry keeping only ids (docs/format/JOURNAL.md). Returns the
  // document's chunk ids.
  virtual Result<std::vector<int64_t>> PurgeDocument(const std::string& id,
                                                     const std::string& actor) = 0;
  // After purges: merges the keyword index so that no segment still holds a purged chunk's
  // terms, and checkpoints the WAL with TRUNCATE so that no old page image survives in it.
  // Both under secure_delete. Unavailable if a reader kept the WAL busy (the rows are gone
  // either way; the next call finishes the job).
  virtual Status CompactAfterPurge() = 0;

  // NotFound if absent or (unless include_deleted) soft-deleted.
  virtual Result<DocumentRecord> GetDocument(const std::string& id, bool include_deleted = false) = 0;
  // Live documents ordered by created_at then id.
  virtual Result<std::vector<DocumentRecord>> ListDocuments(int64_t limit, int64_t offset) = 0;
  // Documents (deleted ones included) with updated_at >= since_ms, oldest change first.
  virtual Result<std::vector<DocumentRecord>> DocumentsChangedSince(int64_t since_ms,
                                                                    int64_t limit) = 0;
  // Soft-deleted documents, newest deletion first (then by id).
  virtual Result<std::vector<DocumentRecord>> ListDeletedDocuments(int64_t limit,
                                                                   int64_t offset = 0) = 0;
  // Soft-deleted documents whose deleted_at is at or before `cutoff_ms` (purge candidates),
  // oldest deletion first.
  virtual Result<std::vector<DocumentRecord>> DeletedBefore(int64_t cutoff_ms, int64_t limit) = 0;
  // Chunks of a live document in ordinal order (embeddings included).
  virtual Result<std::vector<ChunkRecord>> GetDocumentChunks(const std::string& document_id) = 0;

  // BM25 search over live chunks. `query` is free text: it is tokenised and quoted here, so
  // FTS5 syntax in user input is never interpreted. Best first.
  virtual Result<std::vector<KeywordHit>> KeywordSearch(const std::string& query, size_t limit) = 0;

  // Hydrates chunk ids into chunks with their documents; skips ids that are not live.
  // Output order follows input order.
  virtual Result<std::vector<ChunkView>> GetChunkViews(const std::vector<int64_t>& chunk_ids) = 0;

  // Calls fn for every live chunk's embedding (for index rebuilds), in chunk id order.
  virtual Status ForEachLiveEmbedding(
      const std::function<void(int64_t chunk_id, std::span<const float> embedding)>& fn) = 0;

  // --- journal ---
  virtual Result<int64_t> LastLsn() = 0;
  // Entries with lsn > after_lsn, ascending, at most `limit`.
  virtual Result<std::vector<JournalEntry>> ReadJournal(int64_t after_lsn, int64_t limit) = 0;
  // Applies an entry read from another store's journal (replay for restore / standby): the
  // entry's LSN must be exactly LastLsn()+1 (FailedPrecondition otherwise); afterwards the
  // content checksum must equal entry.checksum (Corruption otherwise, and nothing is applied).
  virtual Status ApplyJournalEntry(const JournalEntry& entry) = 0;

  // --- integrity ---
  // The content checksum as maintained incrementally (hex).
  virtual Result<std::string> ContentChecksum() = 0;
  // Recomputes the checksum from every row; Corruption if it differs from the maintained one.
  virtual Result<std::string> VerifyContentChecksum() = 0;
  // PRAGMA integrity_check; Corruption with SQLite's report if not "ok".
  virtual Status IntegrityCheck() = 0;

  virtual Result<StoreCounts> Counts() = 0;
  virtual const std::string& path() const = 0;

 protected:
  // Unavailable when the store is marked damaged (see MarkDamaged), else OK.
  Status RefuseIfDamaged(const std::string& project_id) const EXCLUDES(damage_mu_);
  // `s` unchanged; if it is a Corruption (SQLite found damage mid-mutation), marks the store.
  Status NoteCorruption(Status s) EXCLUDES(damage_mu_);

 private:
  mutable Mutex damage_mu_;
  std::string damage_ GUARDED_BY(damage_mu_);
};

// What a journal entry does to the vector index (decoded from its payload).
Result<IndexDelta> DecodeIndexDelta(const JournalEntry& entry);

}  // namespace kb
