// The DDL of catalog.db and kb.db as numbered migrations, and the code that applies them.
// The SQL here is quoted in docs/format/DATABASE.md; change both together, and never edit a
// released migration — append a new one.
#include "store/migrations.h"

#include <string>

namespace kb::store {
namespace {

constexpr Migration kCatalogMigrations[] = {
    {1, R"sql(
CREATE TABLE projects (
  id                   TEXT PRIMARY KEY,
  name                 TEXT NOT NULL,
  description          TEXT NOT NULL DEFAULT '',
  metadata             TEXT NOT NULL DEFAULT '{}',
  embedder_spec        TEXT NOT NULL DEFAULT '',
  embedder_name        TEXT NOT NULL DEFAULT '',
  embedding_dimension  INTEGER NOT NULL DEFAULT 0,
  embedder_fingerprint TEXT NOT NULL DEFAULT '',
  chunk_size           INTEGER NOT NULL,
  chunk_overlap        INTEGER NOT NULL,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  deleted_at           INTEGER,
  deleted_by           TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX projects_live_name ON projects(name) WHERE deleted_at IS NULL;
CREATE INDEX projects_created ON projects(created_at, id);
CREATE TABLE api_keys (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  secret_hash  TEXT NOT NULL UNIQUE,
  scope        TEXT NOT NULL CHECK (scope IN ('read','write','admin')),
  projects     TEXT NOT NULL DEFAULT '[]',
  created_by   TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER,
  revoked_at   INTEGER,
  last_used_at INTEGER
) STRICT;
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
)sql"},
    // 2: key lifecycle (issue 4). Why a key was revoked (a project delete revokes the keys
    // limited to it; only those may be reinstated), and the previous secret of a rotated key,
    // valid until previous_expires_at so that clients can switch over without an outage.
    {2, R"sql(
ALTER TABLE api_keys ADD COLUMN revoked_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE api_keys ADD COLUMN previous_expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN rotated_at INTEGER;
CREATE UNIQUE INDEX api_keys_previous_secret ON api_keys(previous_secret_hash)
  WHERE previous_secret_hash IS NOT NULL;
)sql"},
};

constexpr Migration kProjectMigrations[] = {
    {1, R"sql(
CREATE TABLE meta (
  singleton        INTEGER PRIMARY KEY CHECK (singleton = 1),
  project_id       TEXT NOT NULL,
  dimension        INTEGER NOT NULL CHECK (dimension > 0),
  content_checksum TEXT NOT NULL,
  last_lsn         INTEGER NOT NULL
) STRICT;
CREATE TABLE documents (
  id           TEXT PRIMARY KEY,
  title        TEXT NOT NULL,
  source       TEXT NOT NULL,
  content_type TEXT NOT NULL,
  content_hash TEXT NOT NULL,
  metadata     TEXT NOT NULL,
  chunk_count  INTEGER NOT NULL,
  bytes        INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  deleted_at   INTEGER,
  deleted_by   TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX documents_live_source ON documents(source)
  WHERE deleted_at IS NULL AND source <> '';
CREATE INDEX documents_created ON documents(created_at, id);
CREATE INDEX documents_updated ON documents(updated_at, id);
CREATE INDEX documents_deleted ON documents(deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE chunks (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  document_id  TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  ordinal      INTEGER NOT NULL,
  text         TEXT NOT NULL,
  heading_path TEXT NOT NULL,
  start_offset INTEGER NOT NULL,
  end_offset   INTEGER NOT NULL,
  embedding    BLOB NOT NULL,
  UNIQUE (document_id, ordinal)
) STRICT;
CREATE VIRTUAL TABLE chunks_fts USING fts5(
  text, content='chunks', content_rowid='id',
  tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER chunks_au AFTER UPDATE OF text ON chunks BEGIN
  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TABLE journal (
  lsn      INTEGER PRIMARY KEY,
  ts_ms    INTEGER NOT NULL,
  actor    TEXT NOT NULL,
  op       TEXT NOT NULL,
  payload  TEXT NOT NULL,
  checksum TEXT NOT NULL
) STRICT;
)sql"},
    // 2: the keyword index holds live chunks only, so keyword search needs no join against
    // documents to skip soft-deleted ones (the join cost more than the ranking on large
    // projects). Its external content is the view of live chunks; triggers keep it in step on
    // chunk insert/delete and on a document's soft delete / undelete.
    {2, R"sql(
DROP TRIGGER chunks_ai;
DROP TRIGGER chunks_ad;
DROP TRIGGER chunks_au;
DROP TABLE chunks_fts;
CREATE VIEW live_chunks AS
  SELECT c.id AS id, c.text AS text FROM chunks c JOIN documents d ON d.id = c.document_id
  WHERE d.deleted_at IS NULL;
CREATE VIRTUAL TABLE chunks_fts USING fts5(
  text, content='live_chunks', content_rowid='id',
  tokenize='porter unicode61 remove_diacritics 2');
INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild');
CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks
  WHEN (SELECT deleted_at FROM documents WHERE id = new.document_id) IS NULL BEGIN
  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks
  WHEN (SELECT deleted_at FROM documents WHERE id = old.document_id) IS NULL BEGIN
  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER chunks_au AFTER UPDATE OF text ON chunks
  WHEN (SELECT deleted_at FROM documents WHERE id = new.document_id) IS NULL BEGIN
  INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
  INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER documents_soft_delete AFTER UPDATE OF deleted_at ON documents
  WHEN old.deleted_at IS NULL AND new.deleted_at IS NOT NULL BEGIN
  INSERT INTO chunks_fts(chunks_fts, rowid, text)
    SELECT 'delete', id, text FROM chunks WHERE document_id = new.id;
END;
CREATE TRIGGER documents_undelete AFTER UPDATE OF deleted_at ON documents
  WHEN old.deleted_at IS NOT NULL AND new.deleted_at IS NULL BEGIN
  INSERT INTO chunks_fts(rowid, text) SELECT id, text FROM chunks WHERE document_id = new.id;
END;
)sql"},
    // 3: the project's counts kept by triggers (issue 16), so that a page of the document
    // listing and a metrics scrape read one row instead of counting every document and chunk.
    // Derived data: outside the content checksum, compared with the rows by the integrity check.
    {3, R"sql(
CREATE TABLE doc_counts (
  singleton         INTEGER PRIMARY KEY CHECK (singleton = 1),
  live_documents    INTEGER NOT NULL,
  live_chunks       INTEGER NOT NULL,
  live_bytes        INTEGER NOT NULL,
  deleted_documents INTEGER NOT NULL
) STRICT;
INSERT INTO doc_counts
  SELECT 1,
    (SELECT count(*) FROM documents WHERE deleted_at IS NULL),
    (SELECT coalesce(sum(chunk_count), 0) FROM documents WHERE deleted_at IS NULL),
    (SELECT coalesce(sum(bytes), 0) FROM documents WHERE deleted_at IS NULL),
    (SELECT count(*) FROM documents WHERE deleted_at IS NOT NULL);
CREATE TRIGGER doc_counts_ai AFTER INSERT ON documents BEGIN
  UPDATE doc_counts SET
    live_documents = live_documents + (new.deleted_at IS NULL),
    live_chunks = live_chunks + iif(new.deleted_at IS NULL, new.chunk_count, 0),
    live_bytes = live_bytes + iif(new.deleted_at IS NULL, new.bytes, 0),
    deleted_documents = deleted_documents + (new.deleted_at IS NOT NULL);
END;
CREATE TRIGGER doc_counts_ad AFTER DELETE ON documents BEGIN
  UPDATE doc_counts SET
    live_documents = live_documents - (old.deleted_at IS NULL),
    live_chunks = live_chunks - iif(old.deleted_at IS NULL, old.chunk_count, 0),
    live_bytes = live_bytes - iif(old.deleted_at IS NULL, old.bytes, 0),
    deleted_documents = deleted_documents - (old.deleted_at IS NOT NULL);
END;
CREATE TRIGGER doc_counts_au AFTER UPDATE OF deleted_at, chunk_count, bytes ON documents BEGIN
  UPDATE doc_counts SET
    live_documents = live_documents - (old.deleted_at IS NULL) + (new.deleted_at IS NULL),
    live_chunks = live_chunks - iif(old.deleted_at IS NULL, old.chunk_count, 0)
                              + iif(new.deleted_at IS NULL, new.chunk_count, 0),
    live_bytes = live_bytes - iif(old.deleted_at IS NULL, old.bytes, 0)
                            + iif(new.deleted_at IS NULL, new.bytes, 0),
    deleted_documents = deleted_documents - (old.deleted_at IS NOT NULL)
                                          + (new.deleted_at IS NOT NULL);
END;
)sql"}};

// Identity and version as read from the file header, refusing what we must not touch.
Status CheckIdentity(sql::Database* db, const SchemaSpec& spec, int64_t* version) {
  KB_ASSIGN_OR_RETURN(int64_t app_id, db->QueryInt("PRAGMA application_id"));
  KB_ASSIGN_OR_RETURN(*version, db->QueryInt("PRAGMA user_version"));
  KB_ASSIGN_OR_RETURN(int64_t tables, db->QueryInt("SELECT count(*) FROM sqlite_schema"));
  bool fresh = app_id == 0 && *version == 0 && tables == 0;
  if (!fresh && app_id != spec.application_id) {
    return Status::FailedPrecondition(db->path() + " is not a KnowledgeBeast " +
                                      std::string(spec.kind) + " database (application_id " +
                                      std::to_string(app_id) + ", expected " +
                                      std::to_string(spec.application_id) + ")");
  }
  if (*version > spec.latest_version()) {
    return Status::FailedPrecondition(db->path() + ": schema version " + std::to_string(*version) +
                                      " is newer than this binary supports (" +
                                      std::to_string(spec.latest_version()) +
                                      "); upgrade KnowledgeBeast");
  }
  return Status::OK();
}

}  // namespace

const SchemaSpec& CatalogSchema() {
  static const SchemaSpec kSpec{"catalog", kCatalogApplicationId, kCatalogMigrations};
  return kSpec;
}

const SchemaSpec& ProjectSchema() {
  static const SchemaSpec kSpec{"project", kProjectApplicationId, kProjectMigrations};
  return kSpec;
}

Status ApplyMigrations(sql::Database* db, const SchemaSpec& spec) {
  int64_t version = 0;
  KB_RETURN_IF_ERROR(CheckIdentity(db, spec, &version));
  if (version == spec.latest_version()) return Status::OK();
  KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db));
  // Another process may have migrated between the check and taking the write lock.
  KB_RETURN_IF_ERROR(CheckIdentity(db, spec, &version));
  for (const Migration& m : spec.migrations) {
    if (m.version <= version) continue;
    Status s = db->Exec(m.sql);
    if (!s.ok()) {
      return s.WithContext(std::string(spec.kind) + " migration " + std::to_string(m.version));
    }
  }
  // PRAGMAs take no bound parameters; both values are integers we produced.
  KB_RETURN_IF_ERROR(db->Exec("PRAGMA application_id=" + std::to_string(spec.application_id)));
  KB_RETURN_IF_ERROR(db->Exec("PRAGMA user_version=" + std::to_string(spec.latest_version())));
  return tx.Commit();
}

}  // namespace kb::store
