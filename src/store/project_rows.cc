// The SQL on a project database's rows; see project_rows.h for why it lives apart from the
// store (shared by the writer, replay and the read-only ProjectReader).
#include "store/project_rows.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "store/journal_codec.h"

namespace kb::store {

DocumentRecord ReadDocument(const sql::Statement& st, int first) {
  DocumentRecord d;
  d.id = st.ColumnText(first + 0);
  d.title = st.ColumnText(first + 1);
  d.source = st.ColumnText(first + 2);
  d.content_type = st.ColumnText(first + 3);
  d.content_hash = st.ColumnText(first + 4);
  d.metadata_json = st.ColumnText(first + 5);
  d.chunk_count = static_cast<int>(st.ColumnInt64(first + 6));
  d.bytes = st.ColumnInt64(first + 7);
  d.created_at_ms = st.ColumnInt64(first + 8);
  d.updated_at_ms = st.ColumnInt64(first + 9);
  d.deleted_at_ms = st.ColumnOptionalInt64(first + 10);
  d.deleted_by = st.ColumnText(first + 11);
  return d;
}

Result<std::vector<DocumentRecord>> QueryDocuments(
    sql::Database* db, const std::string& sql, const std::function<void(sql::Statement&)>& bind) {
  KB_ASSIGN_OR_RETURN(auto st, db->PrepareCached(sql));
  bind(st);
  std::vector<DocumentRecord> out;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(ReadDocument(st, 0));
  }
  return out;
}

Result<std::optional<DocumentRecord>> LoadDocument(sql::Database* db, const std::string& id) {
  KB_ASSIGN_OR_RETURN(
      auto docs,
      QueryDocuments(db, "SELECT " + std::string(kDocColumns) + " FROM documents WHERE id = ?1",
                     [&](sql::Statement& st) { st.Bind(1, id); }));
  if (docs.empty()) return std::optional<DocumentRecord>();
  return std::optional<DocumentRecord>(std::move(docs.front()));
}

Result<std::vector<int64_t>> ChunkIdsOf(sql::Database* db, const std::string& document_id) {
  KB_ASSIGN_OR_RETURN(
      auto st, db->PrepareCached("SELECT id FROM chunks WHERE document_id = ?1 ORDER BY ordinal"));
  st.Bind(1, document_id);
  std::vector<int64_t> ids;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ids.push_back(st.ColumnInt64(0));
  }
  return ids;
}

// The document's digest as its rows stand now (docs/format/DATABASE.md section 5).
Result<Sha256Digest> DigestOf(sql::Database* db, const DocumentRecord& doc) {
  KB_ASSIGN_OR_RETURN(int64_t n, [&]() -> Result<int64_t> {
    KB_ASSIGN_OR_RETURN(auto st,
                        db->PrepareCached("SELECT count(*) FROM chunks WHERE document_id = ?1"));
    st.Bind(1, doc.id);
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::Internal("count returned no row");
    return st.ColumnInt64(0);
  }());
  DocumentDigestBuilder builder(doc, static_cast<uint64_t>(n));
  KB_ASSIGN_OR_RETURN(auto st,
                      db->PrepareCached("SELECT id, ordinal, text, heading_path, start_offset, "
                                        "end_offset, embedding FROM chunks WHERE document_id = ?1 "
                                        "ORDER BY ordinal"));
  st.Bind(1, doc.id);
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    builder.AddChunk(st.ColumnInt64(0), st.ColumnInt64(1), st.ColumnText(2), st.ColumnText(3),
                     st.ColumnInt64(4), st.ColumnInt64(5), st.ColumnBlobView(6));
  }
  return builder.Finish();
}

Result<MetaRow> LoadMeta(sql::Database* db) {
  KB_ASSIGN_OR_RETURN(auto st, db->PrepareCached("SELECT content_checksum, last_lsn FROM meta"));
  KB_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Status::Corruption(db->path() + ": meta row is missing");
  auto sum = ContentChecksum::FromHex(st.ColumnText(0));
  if (!sum) return Status::Corruption(db->path() + ": meta.content_checksum is malformed");
  return MetaRow{*sum, st.ColumnInt64(1)};
}

// Appends the entry and records the checksum it carries as the maintained one.
Status AppendJournal(sql::Database* db, const JournalEntry& e) {
  KB_ASSIGN_OR_RETURN(
      auto ins, db->PrepareCached("INSERT INTO journal(lsn, ts_ms, actor, op, payload, checksum) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  ins.Bind(1, e.lsn)
      .Bind(2, e.ts_ms)
      .Bind(3, e.actor)
      .Bind(4, e.op)
      .Bind(5, e.payload)
      .Bind(6, e.checksum);
  KB_RETURN_IF_ERROR(ins.Run());
  KB_ASSIGN_OR_RETURN(auto upd,
                      db->PrepareCached("UPDATE meta SET content_checksum = ?1, last_lsn = ?2"));
  upd.Bind(1, e.checksum).Bind(2, e.lsn);
  return upd.Run();
}

// --- mutation bodies, shared by the primary path and replay; caller holds a write transaction ---

namespace {

// Binds ?1..?10 of the documents row of `doc` (the insert and the update of WritePut number
// their columns alike).
void BindDocumentRow(sql::Statement& st, const DocumentRecord& doc) {
  st.Bind(1, doc.id).Bind(2, doc.title).Bind(3, doc.source).Bind(4, doc.content_type);
  st.Bind(5, doc.content_hash).Bind(6, doc.metadata_json).Bind(7, doc.chunk_count);
  st.Bind(8, doc.bytes).Bind(9, doc.created_at_ms).Bind(10, doc.updated_at_ms);
}

}  // namespace

// Writes `doc` (live) with `chunks`; a chunk id of 0 is assigned by SQLite and filled in.
Status WritePut(sql::Database* db, const DocumentRecord& doc, std::vector<ChunkRecord>* chunks,
                bool existed, std::vector<int64_t>* removed, ContentChecksum* sum) {
  removed->clear();
  if (existed) {
    KB_ASSIGN_OR_RETURN(auto old, LoadDocument(db, doc.id));
    if (!old) return Status::Internal("document vanished inside a transaction");
    KB_ASSIGN_OR_RETURN(Sha256Digest old_digest, DigestOf(db, *old));
    sum->Subtract(old_digest);
    KB_ASSIGN_OR_RETURN(*removed, ChunkIdsOf(db, doc.id));
    KB_ASSIGN_OR_RETURN(auto del, db->PrepareCached("DELETE FROM chunks WHERE document_id = ?1"));
    del.Bind(1, doc.id);
    KB_RETURN_IF_ERROR(del.Run());
    KB_ASSIGN_OR_RETURN(auto upd,
                        db->PrepareCached("UPDATE documents SET title = ?2, source = ?3, "
                                          "content_type = ?4, content_hash = ?5, metadata = ?6, "
                                          "chunk_count = ?7, bytes = ?8, created_at = ?9, "
                                          "updated_at = ?10, deleted_at = NULL, deleted_by = '' "
                                          "WHERE id = ?1"));
    BindDocumentRow(upd, doc);
    KB_RETURN_IF_ERROR(upd.Run());
  } else {
    KB_ASSIGN_OR_RETURN(auto ins,
                        db->PrepareCached("INSERT INTO documents(id, title, source, content_type, "
                                          "content_hash, metadata, chunk_count, bytes, created_at, "
                                          "updated_at, deleted_at, deleted_by) VALUES (?1, ?2, ?3, "
                                          "?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, '')"));
    BindDocumentRow(ins, doc);
    KB_RETURN_IF_ERROR(ins.Run());
  }
  KB_ASSIGN_OR_RETURN(auto ins,
                      db->PrepareCached("INSERT INTO chunks(id, document_id, ordinal, text, "
                                        "heading_path, start_offset, end_offset, embedding) "
                                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  for (ChunkRecord& c : *chunks) {
    ins.Reset();
    if (c.id == 0) {
      ins.BindNull(1);
    } else {
      ins.Bind(1, c.id);
    }
    ins.Bind(2, doc.id).Bind(3, c.ordinal).Bind(4, c.text).Bind(5, c.heading_path);
    ins.Bind(6, c.start_offset).Bind(7, c.end_offset);
    ins.BindBlob(8, store::EmbeddingToBytes(c.embedding));
    KB_RETURN_IF_ERROR(ins.Run());
    if (c.id == 0) c.id = db->LastInsertRowid();
  }
  KB_ASSIGN_OR_RETURN(Sha256Digest digest, DigestOf(db, doc));
  sum->Add(digest);
  return Status::OK();
}

// Sets or clears the soft-delete state of an existing document.
Status WriteDeletedState(sql::Database* db, const std::string& id,
                         std::optional<int64_t> deleted_at, const std::string& deleted_by,
                         int64_t updated_at, ContentChecksum* sum) {
  KB_ASSIGN_OR_RETURN(auto old, LoadDocument(db, id));
  if (!old) return Status::NotFound("document " + id + " does not exist");
  KB_ASSIGN_OR_RETURN(Sha256Digest old_digest, DigestOf(db, *old));
  sum->Subtract(old_digest);
  KB_ASSIGN_OR_RETURN(auto upd,
                      db->PrepareCached("UPDATE documents SET deleted_at = ?2, deleted_by = ?3, "
                                        "updated_at = ?4 WHERE id = ?1"));
  upd.Bind(1, id).Bind(2, deleted_at).Bind(3, deleted_by).Bind(4, updated_at);
  KB_RETURN_IF_ERROR(upd.Run());
  DocumentRecord now = *old;
  now.deleted_at_ms = deleted_at;
  now.deleted_by = deleted_by;
  now.updated_at_ms = updated_at;
  KB_ASSIGN_OR_RETURN(Sha256Digest digest, DigestOf(db, now));
  sum->Add(digest);
  return Status::OK();
}

Status WritePurge(sql::Database* db, const DocumentRecord& doc, ContentChecksum* sum) {
  KB_ASSIGN_OR_RETURN(Sha256Digest old_digest, DigestOf(db, doc));
  sum->Subtract(old_digest);
  // Chunks first and explicitly: their delete trigger keeps the FTS index in step.
  KB_ASSIGN_OR_RETURN(auto dc, db->PrepareCached("DELETE FROM chunks WHERE document_id = ?1"));
  dc.Bind(1, doc.id);
  KB_RETURN_IF_ERROR(dc.Run());
  KB_ASSIGN_OR_RETURN(auto dd, db->PrepareCached("DELETE FROM documents WHERE id = ?1"));
  dd.Bind(1, doc.id);
  return dd.Run();
}

// Rewrites every put_document / undelete_document entry of `document_id` as a scrubbed entry
// (JOURNAL.md section 2): same lsn, ts_ms, actor and checksum; the payload keeps only ids.
// A full scan of the journal, narrowed by a substring test: purges are rare background work.
Status ScrubJournal(sql::Database* db, const std::string& document_id, int64_t purge_lsn) {
  KB_ASSIGN_OR_RETURN(auto sel, db->Prepare("SELECT lsn, op, payload FROM journal WHERE op IN "
                                            "('put_document', 'undelete_document') AND "
                                            "instr(payload, ?1) > 0 ORDER BY lsn"));
  sel.Bind(1, nlohmann::json(document_id).dump());
  std::vector<std::pair<int64_t, std::string>> rewrites;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, sel.Step());
    if (!row) break;
    const int64_t lsn = sel.ColumnInt64(0);
    const std::string op = sel.ColumnText(1);
    store::ScrubbedPayload scrubbed{document_id, op, purge_lsn, {}, {}};
    if (op == store::kOpPutDocument) {
      KB_ASSIGN_OR_RETURN(auto p, store::DecodePutPayload(sel.ColumnText(2)));
      if (p.document.id != document_id) continue;  // the id appeared elsewhere in the text
      for (const ChunkRecord& c : p.chunks) scrubbed.chunk_ids.push_back(c.id);
      scrubbed.removed_chunk_ids = std::move(p.removed_chunk_ids);
    } else {
      KB_ASSIGN_OR_RETURN(auto p, store::DecodeUndeletePayload(sel.ColumnText(2)));
      if (p.document_id != document_id) continue;
      for (const auto& [chunk_id, embedding] : p.chunks) scrubbed.chunk_ids.push_back(chunk_id);
    }
    rewrites.emplace_back(lsn, store::EncodePayload(scrubbed));
  }
  KB_ASSIGN_OR_RETURN(auto upd,
                      db->Prepare("UPDATE journal SET op = ?2, payload = ?3 WHERE lsn = ?1"));
  for (const auto& [lsn, payload] : rewrites) {
    upd.Reset();
    upd.Bind(1, lsn).Bind(2, store::kOpScrubbed).Bind(3, payload);
    KB_RETURN_IF_ERROR(upd.Run());
  }
  return Status::OK();
}

Result<ContentChecksum> RecomputeContentChecksum(sql::Database* db, int64_t* documents) {
  KB_ASSIGN_OR_RETURN(
      auto docs,
      QueryDocuments(db, "SELECT " + std::string(kDocColumns) + " FROM documents ORDER BY id",
                     [](sql::Statement&) {}));
  ContentChecksum sum;
  for (const DocumentRecord& d : docs) {
    KB_ASSIGN_OR_RETURN(Sha256Digest digest, DigestOf(db, d));
    sum.Add(digest);
  }
  if (documents) *documents = static_cast<int64_t>(docs.size());
  return sum;
}

namespace {

Result<StoreCounts> CountsRow(sql::Database* db, std::string_view sql) {
  KB_ASSIGN_OR_RETURN(auto st, db->PrepareCached(sql));
  KB_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Status::Internal("counts returned no row");
  return StoreCounts{st.ColumnInt64(0), st.ColumnInt64(1), st.ColumnInt64(2), st.ColumnInt64(3)};
}

}  // namespace

Result<StoreCounts> ReadCounts(sql::Database* db) {
  return CountsRow(db,
                   "SELECT "
                   "(SELECT count(*) FROM documents WHERE deleted_at IS NULL), "
                   "(SELECT count(*) FROM chunks c JOIN documents d ON d.id = "
                   "c.document_id WHERE d.deleted_at IS NULL), "
                   "(SELECT coalesce(sum(bytes), 0) FROM documents WHERE "
                   "deleted_at IS NULL), "
                   "(SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL)");
}

Result<StoreCounts> ReadMaintainedCounts(sql::Database* db) {
  return CountsRow(db,
                   "SELECT live_documents, live_chunks, live_bytes, deleted_documents FROM "
                   "doc_counts WHERE singleton = 1");
}

Status CheckSqliteIntegrity(sql::Database* db, const std::string& path) {
  KB_ASSIGN_OR_RETURN(auto st, db->PrepareCached("PRAGMA integrity_check"));
  std::string report;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    if (!report.empty()) report += "; ";
    report += st.ColumnText(0);
  }
  if (report != "ok") return Status::Corruption(path + ": integrity_check: " + report);
  return Status::OK();
}

Status CheckChunkCounts(sql::Database* db, const std::string& path) {
  KB_ASSIGN_OR_RETURN(int64_t bad,
                      db->QueryInt("SELECT count(*) FROM documents d WHERE d.chunk_count != "
                                   "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"));
  if (bad != 0) {
    return Status::Corruption(path + ": " + std::to_string(bad) +
                              " documents whose chunk_count differs from their chunk rows");
  }
  KB_ASSIGN_OR_RETURN(std::string problem, MaintainedCountsProblem(db));
  if (!problem.empty()) return Status::Corruption(path + ": " + problem);
  return Status::OK();
}

Result<std::string> MaintainedCountsProblem(sql::Database* db) {
  KB_ASSIGN_OR_RETURN(int64_t maintained,
                      db->QueryInt("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                   "name = 'doc_counts'"));
  if (maintained == 0) return std::string();  // schema 2 or older
  KB_ASSIGN_OR_RETURN(StoreCounts kept, ReadMaintainedCounts(db));
  KB_ASSIGN_OR_RETURN(StoreCounts rows, ReadCounts(db));
  auto text = [](const StoreCounts& c) {
    return std::to_string(c.documents) + " live documents, " + std::to_string(c.chunks) +
           " chunks, " + std::to_string(c.content_bytes) + " bytes, " +
           std::to_string(c.deleted_documents) + " deleted";
  };
  if (kept.documents != rows.documents || kept.chunks != rows.chunks ||
      kept.content_bytes != rows.content_bytes ||
      kept.deleted_documents != rows.deleted_documents) {
    return "the maintained counts (" + text(kept) + ") differ from the rows (" + text(rows) + ")";
  }
  return std::string();
}

}  // namespace kb::store
