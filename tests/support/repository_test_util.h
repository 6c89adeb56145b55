// Builders shared by the repository tests (tests/repo) and the backup tests (tests/backup): small
// repository parameters (tests stay fast), a repository on the in-memory store, generated source
// trees with real SQLite databases (so page-level deduplication is exercised on the real thing),
// directory comparison, and an internal RepoContext for tests that drive the parts (pack writer,
// manifests) directly. Users of the source trees link SQLite themselves (kb_test_support does not).
//
// Thread-safety: free functions on their own arguments; a MemoryRepo (its store, clock and
// Repository) is one test's, used as a Repository may be.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/file_util.h"
#include "memory_blob_store.h"
#include "repo/repository.h"
#include "repo/repository_context.h"
#include "repo/repository_format.h"
#include "repo/repository_keys.h"
#include "test_util.h"

namespace kb::testing {

inline constexpr int64_t kTestStart = 1'795'688'400'000;  // 2026-11-26T10:20:00Z
inline constexpr char kPassphrase[] = "correct horse battery staple";

inline repo::RepositoryParams TestParams() {
  repo::RepositoryParams p;
  p.chunk_size = 4096;
  p.block_size = 64 * 1024;
  p.pack_size = 1 << 20;  // the format's minimum
  p.tree_fanout = 64;     // a tree covers 256 KiB: files of a few MB have several
  p.compression_level = 1;
  p.scrypt_log2_n = 14;  // the format's minimum: ~50 ms per derivation
  return p;
}

inline repo::KeySource Passphrase(const std::string& p = kPassphrase) {
  repo::KeySource k;
  k.passphrase = p;
  return k;
}

inline repo::KeySource KeyFile(const std::string& path) {
  repo::KeySource k;
  k.key_file = path;
  return k;
}

// Deterministic pseudo-random bytes; `compressible` repeats short runs so zstd has work to do.
inline std::string TestBytes(size_t n, uint64_t seed, bool compressible = true) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[i] = compressible ? static_cast<char>('a' + (rng() % 8)) : static_cast<char>(rng());
  }
  return out;
}

inline void WriteBytes(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(f.good()) << path;
}

inline std::string ReadBytes(const std::string& path) {
  auto r = ReadFile(path);
  return r.ok() ? *r : std::string("<missing>");
}

inline void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
      << (err ? err : "") << " in " << sql;
}

// A real SQLite database (rollback journal, 4 KiB pages) holding `rows` rows of ~1 KB each.
inline void MakeSqliteDb(const std::string& path, int rows, uint64_t seed) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  Exec(db, "PRAGMA page_size=4096; PRAGMA journal_mode=DELETE;");
  Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
  Exec(db, "BEGIN");
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO t(id, payload) VALUES(?, ?)", -1, &st, nullptr),
            SQLITE_OK);
  for (int i = 0; i < rows; ++i) {
    std::string payload = TestBytes(1000, seed * 1'000'003 + static_cast<uint64_t>(i));
    sqlite3_bind_int(st, 1, i);
    sqlite3_bind_blob(st, 2, payload.data(), static_cast<int>(payload.size()), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  Exec(db, "COMMIT");
  sqlite3_close(db);
}

// Rewrites the payload of the given rows in place (same size: the same pages change).
inline void UpdateSqliteRows(const std::string& path, const std::vector<int>& ids, uint64_t seed) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  Exec(db, "BEGIN");
  for (int id : ids) {
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE t SET payload = ? WHERE id = ?", -1, &st, nullptr),
              SQLITE_OK);
    std::string payload = TestBytes(1000, seed + static_cast<uint64_t>(id) * 7919);
    sqlite3_bind_blob(st, 1, payload.data(), static_cast<int>(payload.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, id);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
  }
  Exec(db, "COMMIT");
  sqlite3_close(db);
}

// A generated "data directory": catalog.db, two projects with a kb.db each, index files, an
// empty file and a tiny one. Returns the SnapshotSource that describes it.
struct SourceTree {
  std::string root;
  repo::SnapshotSource source;

  std::string CatalogPath() const { return root + "/catalog.db"; }
  std::string ProjectPath(const std::string& id, const std::string& rel) const {
    return root + "/projects/" + id + "/" + rel;
  }
};

inline repo::SourceFile Src(const std::string& path, const std::string& local, int mode = 0600) {
  return repo::SourceFile{path, local, mode, nullptr};
}

inline SourceTree MakeSourceTree(const std::string& root, int rows = 600) {
  SourceTree t;
  t.root = root;
  MakeSqliteDb(t.CatalogPath(), 20, 1);
  t.source.catalog_files.push_back(Src("catalog.db", t.CatalogPath()));

  repo::ProjectSource p1;
  p1.meta.id = "p-alpha";
  p1.meta.name = "alpha";
  p1.meta.lsn = 42;
  p1.meta.content_checksum = std::string(64, 'a');
  p1.meta.counts = {{"documents", 3}, {"chunks", 9}, {"deleted_documents", 0}};
  p1.meta.embedder = {{"fingerprint", "hash-384"}, {"dimension", 384}};
  p1.meta.index_lsn = 40;
  p1.meta.catalog_row = {{"name", "alpha"}};
  MakeSqliteDb(t.ProjectPath("p-alpha", "kb.db"), rows, 2);
  WriteBytes(t.ProjectPath("p-alpha", "index/VECTOR_INDEX"), "{\"graph\":\"graph-1.hnsw\"}\n");
  WriteBytes(t.ProjectPath("p-alpha", "index/graph-1.hnsw"), TestBytes(300'000, 3, false));
  p1.files = {Src("kb.db", t.ProjectPath("p-alpha", "kb.db")),
              Src("index/VECTOR_INDEX", t.ProjectPath("p-alpha", "index/VECTOR_INDEX"), 0644),
              Src("index/graph-1.hnsw", t.ProjectPath("p-alpha", "index/graph-1.hnsw"))};
  t.source.projects.push_back(p1);

  repo::ProjectSource p2;
  p2.meta.id = "p-beta";
  p2.meta.name = "beta";
  p2.meta.lsn = 7;
  MakeSqliteDb(t.ProjectPath("p-beta", "kb.db"), 30, 4);
  WriteBytes(t.ProjectPath("p-beta", "empty.txt"), "");
  WriteBytes(t.ProjectPath("p-beta", "notes.txt"), "ten bytes!");
  p2.files = {Src("kb.db", t.ProjectPath("p-beta", "kb.db")),
              Src("empty.txt", t.ProjectPath("p-beta", "empty.txt")),
              Src("notes.txt", t.ProjectPath("p-beta", "notes.txt"), 0640)};
  t.source.projects.push_back(p2);
  return t;
}

// Relative path -> content of every regular file below `dir`.
inline std::map<std::string, std::string> DirContents(const std::string& dir) {
  std::map<std::string, std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      out[std::filesystem::relative(e.path(), dir).string()] = ReadBytes(e.path().string());
    }
  }
  return out;
}

// What a restore of the whole tree must produce: restored-relative path -> content.
inline std::map<std::string, std::string> ExpectedRestore(const SourceTree& t) {
  std::map<std::string, std::string> out;
  for (const auto& f : t.source.catalog_files) out[f.path] = ReadBytes(f.local_path);
  for (const auto& p : t.source.projects) {
    for (const auto& f : p.files) {
      out["projects/" + p.meta.id + "/" + f.path] = ReadBytes(f.local_path);
    }
  }
  return out;
}

inline bool DirIsEmptyOrAbsent(const std::string& dir) {
  return !std::filesystem::exists(dir) || std::filesystem::is_empty(dir);
}

// A repository on a fresh in-memory store; `store` stays usable for damage and inspection.
struct MemoryRepo {
  std::unique_ptr<MemoryBlobStore> store = std::make_unique<MemoryBlobStore>();
  std::unique_ptr<repo::Repository> repo;
  ManualClock clock{kTestStart};

  explicit MemoryRepo(const repo::RepositoryParams& params = TestParams()) {
    auto r = repo::Repository::Init(store->Handle(), Passphrase(), "test key", params, &clock);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (r.ok()) repo = std::move(r).value();
  }

  Result<std::unique_ptr<repo::Repository>> Reopen(const repo::KeySource& key = Passphrase()) {
    return repo::Repository::Open(store->Handle(), key, &clock);
  }
};

// The internals of an open repository, for tests that drive the parts directly: the config and
// master key are recovered with the passphrase exactly as Repository::Open does.
inline std::unique_ptr<repo::RepoContext> OpenTestContext(blob::BlobStore* store,
                                                          const Clock* clock,
                                                          const std::string& pass = kPassphrase) {
  auto config_text = store->Get(repo::kConfigKey);
  EXPECT_TRUE(config_text.ok());
  auto config = repo::ParseConfig(*config_text);
  EXPECT_TRUE(config.ok());
  auto material = repo::LoadKeyMaterial(Passphrase(pass));
  EXPECT_TRUE(material.ok());
  std::unique_ptr<repo::RepoContext> ctx;
  Status listed = store->List(repo::kKeysPrefix, [&](const blob::ObjectInfo& info) {
    if (ctx) return Status::OK();
    auto key = repo::ParseKeyObject(info.key, *store->Get(info.key));
    if (!key.ok()) return Status::OK();
    auto master = repo::UnwrapMasterKey(*key, config->id, *material);
    if (!master.ok()) return Status::OK();
    ctx = std::make_unique<repo::RepoContext>();
    ctx->store = store;
    ctx->clock = clock;
    ctx->repo_id = config->id;
    ctx->params = config->params;
    ctx->limits = repo::FormatLimits::From(config->params);
    ctx->key = std::move(master).value();
    ctx->hasher = std::make_unique<repo::ChunkIdHasher>(ctx->key.id_key.view());
    return Status::OK();
  });
  EXPECT_TRUE(listed.ok());
  EXPECT_TRUE(ctx != nullptr) << "no key opens the repository";
  return ctx;
}

inline std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += s + "\n";
  return out;
}

}  // namespace kb::testing
