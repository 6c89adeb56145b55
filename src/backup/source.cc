// Staging consistent copies of a live data directory for a backup. Rules and guarantees: source.h.
#include "backup/source.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <thread>

#include "backup/restore.h"
#include "backup/sqlite_stream.h"
#include "common/crypto_util.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "store/catalog.h"
#include "store/project_reader.h"
#include "store/sqlite.h"

namespace kb::backup {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kStagedFileMode = 0600;

// sqlite3_backup_step can meet SQLITE_BUSY/LOCKED when the busy handler gives up (e.g. during
// WAL recovery by another process): retried this many times, this far apart.
constexpr int kBackupBusyRetries = 50;
constexpr auto kBackupBusyPause = std::chrono::milliseconds(20);

constexpr size_t kCopyBufferBytes = 1 << 20;

// Projects staged at once (the machine this is tuned for has 2 cores).
constexpr size_t kStagingThreads = 2;

// Vector index manifest layout: docs/format/VECTOR_INDEX.md ("Manifest"). src/index keeps its
// decoder private, so the few fields a backup needs are read here, with the same checks.
constexpr char kIndexManifestName[] = "VECTOR_INDEX";
constexpr char kIndexManifestMagic[8] = {'K', 'B', 'V', 'E', 'C', 'I', 'D', 'X'};
constexpr uint32_t kIndexManifestVersion = 1;
constexpr size_t kIndexManifestFixedBytes = 92;
constexpr size_t kIndexManifestMinBytes = kIndexManifestFixedBytes + 32;

// ---------------------------------------------------------------------------------------------
// Small file helpers

Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  return Status::IOError(what + " " + path + ": " + std::strerror(err));
}

// A path component that is safe to join (project ids come from the catalog; a hostile row must
// not send us outside the data directory). Same rule as manifest paths.
bool SafeName(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

uint64_t GetLE(std::string_view in, size_t offset, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(in[offset + i]);
  return v;
}

class Sha256Stream {
 public:
  Sha256Stream() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256Stream() { EVP_MD_CTX_free(ctx_); }
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(const char* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string Finish() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

struct FileDigest {
  uint64_t size = 0;
  std::string sha256;  // 32 raw bytes
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Reads `from` to the end, hashing it and, if `to` >= 0, writing it there.
Result<FileDigest> HashAndMaybeCopy(int from, const std::string& from_path, int to,
                                    const std::string& to_path) {
  std::unique_ptr<char[]> buf(new char[kCopyBufferBytes]);
  Sha256Stream sha;
  FileDigest d;
  while (true) {
    ssize_t n = ::read(from, buf.get(), kCopyBufferBytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read", from_path, errno);
    }
    if (n == 0) break;
    sha.Update(buf.get(), static_cast<size_t>(n));
    d.size += static_cast<uint64_t>(n);
    if (to >= 0) {
      KB_RETURN_IF_ERROR(
          WriteFully(to, std::string_view(buf.get(), static_cast<size_t>(n)), to_path));
    }
  }
  d.sha256 = sha.Finish();
  return d;
}

Result<FileDigest> HashFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Status::NotFound("no such file: " + path);
    return ErrnoStatus("open", path, errno);
  }
  return HashAndMaybeCopy(fd.get(), path, -1, "");
}

// Places a copy of `from` at `to` (which must not exist): a hard link when allowed and possible,
// else a byte copy. Returns the digest of what is now at `to`. NotFound if `from` is gone.
Result<FileDigest> LinkOrCopy(const std::string& from, const std::string& to, bool allow_link) {
  if (allow_link) {
    if (::link(from.c_str(), to.c_str()) == 0) return HashFile(to);
    int err = errno;
    if (err == ENOENT) return Status::NotFound("no such file: " + from);
    // EXDEV (other file system), EPERM/EOPNOTSUPP (no hard links there), EMLINK: copy instead.
    if (err != EXDEV && err != EPERM && err != EOPNOTSUPP && err != EMLINK && err != EACCES) {
      return ErrnoStatus("link " + from + " ->", to, err);
    }
  }
  Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) {
    if (errno == ENOENT) return Status::NotFound("no such file: " + from);
    return ErrnoStatus("open", from, errno);
  }
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kStagedFileMode));
  if (out.get() < 0) return ErrnoStatus("create", to, errno);
  auto digest = HashAndMaybeCopy(in.get(), from, out.get(), to);
  if (::close(out.Release()) != 0 && digest.ok()) return ErrnoStatus("close", to, errno);
  return digest;
}

// ---------------------------------------------------------------------------------------------
// SQLite copies

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqliteHandle = std::unique_ptr<sqlite3, SqliteCloser>;

Result<SqliteHandle> OpenRaw(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_EXRESCODE, nullptr);
  SqliteHandle db(raw);
  if (rc != SQLITE_OK) return sql::StatusFromSqlite(rc, raw, "open " + path);
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, sql::kDefaultBusyTimeoutMs);
  return db;
}

// What a backup records about one project database, read from its copy.
struct ProjectDbMeta {
  int64_t lsn = 0;
  std::string content_checksum;
  int64_t documents = 0;
  int64_t chunks = 0;
  int64_t deleted_documents = 0;
  bool counts_known = false;  // false: the rows could not be counted (counts_error says why)
  std::string counts_error;
};

// Reads what a backup records about a project from `reader`, inside the caller's snapshot (so it
// describes exactly the state that snapshot copies), and checks that the database is the
// project's. (ProjectReader::Open checked the file's identity and schema version.)
Result<ProjectDbMeta> ReadProjectDbMetaIn(store::ProjectReader& reader,
                                          const ProjectRecord& record) {
  const std::string what = "project '" + record.name + "' (" + record.id + ") database";
  ProjectDbMeta m;
  KB_ASSIGN_OR_RETURN(store::ProjectMeta meta, reader.Meta());
  if (meta.project_id != record.id) {
    return Status::Corruption(what + " belongs to project " + meta.project_id);
  }
  if (meta.dimension != record.embedding_dimension) {
    return Status::Corruption(what + " holds embeddings of dimension " +
                              std::to_string(meta.dimension) + ", the catalog says " +
                              std::to_string(record.embedding_dimension));
  }
  m.content_checksum = meta.content_checksum;
  m.lsn = meta.last_lsn;
  KB_ASSIGN_OR_RETURN(std::optional<store::CommitPoint> newest, reader.NewestCommit());
  if (newest && newest->lsn != m.lsn) {
    return Status::Corruption(what + ": newest journal entry " + std::to_string(newest->lsn) +
                              " differs from meta.last_lsn " + std::to_string(m.lsn));
  }
  // The same counts as ProjectStore::Counts (live documents, their chunks, deleted documents).
  // Rows SQLite cannot read through are the source check's finding (the state is still backed
  // up, without counts: a restore then compares none), not a failed backup.
  auto counts = reader.Counts();
  if (counts.ok()) {
    m.counts_known = true;
    m.documents = counts->documents;
    m.chunks = counts->chunks;
    m.deleted_documents = counts->deleted_documents;
  } else if (counts.status().code() == Code::kCorruption) {
    m.counts_error = counts.status().message();
  } else {
    return counts.status();
  }
  return m;
}

// The source check (SourceCheckLevel; `source_check` in docs/format/BACKUP_REPOSITORY.md). It
// runs in the producer's read transaction, after the pages are streamed, so it judges exactly
// the state the snapshot stores (and reads pages the copy just brought into the OS cache). Once
// a check has met a page SQLite calls corrupt, SQLite may have ended that transaction, so later
// checks of the same backup may see a newer state: the result is "failed" either way. A check
// that cannot read
// what it needs (SQLite reports the file corrupt) records that as its finding; only an error
// that says nothing about the data (I/O, busy, interrupted) fails the backup.
Result<repo::SourceCheck> CheckSourceState(store::ProjectReader& reader, const ProjectDbMeta& m,
                                           SourceCheckLevel level) {
  repo::SourceCheck c;
  if (level == SourceCheckLevel::kOff) return c;
  const int64_t started = MonotonicMicros();
  auto problem = [&](std::string text) {
    if (c.problems.size() < kMaxSourceCheckProblems) c.problems.push_back(std::move(text));
  };
  // A finding, or the error that stopped the check when it is not one.
  auto soft = [&](const Status& s, const std::string& check) -> Status {
    if (s.code() != Code::kCorruption) return s;
    problem(check + ": unreadable: " + s.message());
    return Status::OK();
  };

  c.checks.push_back("journal");
  if (m.lsn > 0) {
    auto at = reader.JournalChecksumAt(m.lsn);
    if (!at.ok()) {
      KB_RETURN_IF_ERROR(soft(at.status(), "journal"));
    } else if (!at->has_value()) {
      problem("journal: no entry at LSN " + std::to_string(m.lsn));
    } else if (**at != m.content_checksum) {
      problem("journal: the entry at LSN " + std::to_string(m.lsn) + " recorded checksum " + **at +
              ", the database holds " + m.content_checksum);
    }
  }

  c.checks.push_back("counts");
  if (!m.counts_known) {
    problem("counts: unreadable: " + m.counts_error);
  } else if (auto counts = reader.MaintainedCountsProblem(); !counts.ok()) {
    KB_RETURN_IF_ERROR(soft(counts.status(), "counts"));
  } else if (!counts->empty()) {
    problem("counts: " + *counts);
  }

  c.checks.push_back("content_checksum");
  if (auto recomputed = reader.RecomputeContentChecksum(); !recomputed.ok()) {
    KB_RETURN_IF_ERROR(soft(recomputed.status(), "content_checksum"));
  } else if (*recomputed != m.content_checksum) {
    problem("content_checksum: recomputed from the rows " + *recomputed + ", the database holds " +
            m.content_checksum);
  }

  if (level == SourceCheckLevel::kFull) {
    c.checks.push_back("quick_check");
    if (auto rows = reader.SqliteQuickCheckReport(); !rows.ok()) {
      KB_RETURN_IF_ERROR(soft(rows.status(), "quick_check"));
    } else if (!(rows->size() == 1 && rows->front() == "ok")) {
      std::string first = rows->empty() ? "no result" : rows->front();
      problem("quick_check: " + std::to_string(rows->size()) + " finding(s), first: " + first);
    }
  }
  c.result = c.problems.empty() ? "passed" : "failed";
  c.duration_ms = (MonotonicMicros() - started) / 1000;
  return c;
}

// The producer of a project's kb.db: opens the live file read-only, begins one read
// transaction, reads the metadata and streams the pages of that same state (sqlite_stream.h).
// Nothing is opened before the backup reaches the project, so a backup of many projects holds
// one read transaction (and one set of file descriptors) at a time. The index the snapshot
// names (meta->index_lsn, staged or reused at preparation) must be consistent with this state:
// not ahead of it, and, for a reused index, reflecting the state this journal went through.
repo::FileProducer ProjectDbProducer(const std::string& live_db, const ProjectRecord& record,
                                     SourceCheckLevel check_level) {
  return [live_db, record, check_level](repo::FileSink& sink,
                                        repo::ProjectSnapshot* meta) -> Result<int64_t> {
    const std::string who = "project '" + record.name + "' (" + record.id + ")";
    // Never writes the live file; in WAL mode it reads through the WAL.
    auto opened = store::ProjectReader::Open(live_db);
    if (!opened.ok()) return opened.status().WithContext(who);
    std::unique_ptr<store::ProjectReader> reader = std::move(opened).value();
    sql::Database* db = reader->database();
    // Pages are read once, so no large page cache; and, as for any full scan, no memory map:
    // mapped pages count in the process's RSS (and its OOM score), which would then grow with the
    // largest database. Reading through read() costs ~15% of a backup in which nothing changed
    // (0.97 s -> 1.12 s for 1.2 GB in docs/PERFORMANCE.md's data), for a peak RSS of 54 MiB
    // instead of 289 MiB.
    KB_ASSIGN_OR_RETURN(auto scan, db->BeginFullScan());
    KB_RETURN_IF_ERROR(db->Exec("PRAGMA cache_size=-2048"));
    KB_RETURN_IF_ERROR(reader->BeginSnapshot());
    KB_ASSIGN_OR_RETURN(ProjectDbMeta m, ReadProjectDbMetaIn(*reader, record));
    std::string index_checksum;
    if (meta != nullptr && meta->index_lsn > 0) {
      auto changed = [&](const std::string& why) {
        // A project restore replaced the project after its index was chosen: back up again.
        return Status::Unavailable(who + " changed while it was backed up (" + why +
                                   "); run the backup again");
      };
      if (meta->index_lsn > m.lsn) {
        return changed("its vector index, LSN " + std::to_string(meta->index_lsn) +
                       ", is ahead of its database, LSN " + std::to_string(m.lsn));
      }
      KB_ASSIGN_OR_RETURN(std::optional<std::string> at,
                          reader->JournalChecksumAt(meta->index_lsn));
      index_checksum = at.value_or("");
      if (!meta->index_checksum.empty()) {  // an earlier snapshot's index, chosen at preparation
        if (index_checksum != meta->index_checksum) {
          return changed(
              "its journal no longer passes through the state of the vector index "
              "chosen for it, LSN " +
              std::to_string(meta->index_lsn));
        }
        // A purge after the index: it holds the purged document's vectors, which no snapshot
        // taken after the purge may carry (a purge removes content from all but older backups).
        KB_ASSIGN_OR_RETURN(bool purged, reader->PurgedAfter(meta->index_lsn));
        if (purged) return changed("a document was purged after the vector index chosen for it");
      }
    }
    KB_ASSIGN_OR_RETURN(int64_t size,
                        StreamSqliteDatabase(db->handle(), who + " database " + live_db, sink));
    // After the copy, still in its transaction (the pages are now in the OS cache): a check that
    // meets a page SQLite calls corrupt may end the transaction, and the copy must not then read
    // a later state.
    KB_ASSIGN_OR_RETURN(repo::SourceCheck check, CheckSourceState(*reader, m, check_level));
    if (Status ended = reader->EndSnapshot(); !ended.ok() && !check.failed()) return ended;
    if (check.failed()) {
      LogError(
          "backup source check failed: the damaged state is stored and marked",
          json{{"project", record.name}, {"id", record.id}, {"problems", check.problems}}.dump());
    }
    if (meta != nullptr) {
      meta->lsn = m.lsn;
      meta->content_checksum = m.content_checksum;
      meta->counts = json::object();
      if (m.counts_known) {
        meta->counts = json{{"documents", m.documents},
                            {"chunks", m.chunks},
                            {"deleted_documents", m.deleted_documents}};
      }
      meta->source_check = std::move(check);
      if (meta->index_lsn > 0) meta->index_checksum = index_checksum;
    }
    return size;
  };
}

// Where the live journal stands relative to a previous snapshot's index (one short read
// transaction): its newest LSN, live documents, and its checksum at the index's LSN.
struct JournalPosition {
  int64_t last_lsn = 0;
  int64_t documents = 0;
  std::string checksum_at_index;
  bool purged_since_index = false;
};

Result<JournalPosition> ReadJournalPosition(const std::string& live_db, int64_t index_lsn) {
  KB_ASSIGN_OR_RETURN(auto reader, store::ProjectReader::Open(live_db));
  KB_RETURN_IF_ERROR(reader->BeginSnapshot());
  JournalPosition pos;
  KB_ASSIGN_OR_RETURN(store::ProjectMeta meta, reader->Meta());
  pos.last_lsn = meta.last_lsn;
  KB_ASSIGN_OR_RETURN(pos.documents, reader->LiveDocuments());
  KB_ASSIGN_OR_RETURN(std::optional<std::string> at, reader->JournalChecksumAt(index_lsn));
  pos.checksum_at_index = at.value_or("");
  KB_ASSIGN_OR_RETURN(pos.purged_since_index, reader->PurgedAfter(index_lsn));
  KB_RETURN_IF_ERROR(reader->EndSnapshot());
  return pos;
}

// The graph file the live index manifest names, if it can be read (no checks beyond the
// manifest's own: this only tells whether the live index is a previous snapshot's).
std::optional<std::string> LiveGraphName(const std::string& index_dir);

// ---------------------------------------------------------------------------------------------
// Vector index

struct IndexManifest {
  uint32_t dimension = 0;
  int64_t lsn = 0;
  uint64_t graph_size = 0;
  std::string graph_sha256;  // 32 raw bytes
  std::string graph_name;
};

Result<IndexManifest> DecodeIndexManifest(std::string_view data, const std::string& path) {
  auto corrupt = [&](const std::string& why) {
    return Status::Corruption("vector index manifest " + path + ": " + why);
  };
  if (data.size() < kIndexManifestMinBytes) return corrupt("truncated");
  if (std::memcmp(data.data(), kIndexManifestMagic, sizeof(kIndexManifestMagic)) != 0) {
    return corrupt("bad magic");
  }
  size_t name_len = GetLE(data, 88, 2);
  if (data.size() != kIndexManifestMinBytes + name_len) return corrupt("truncated or wrong size");
  size_t body = kIndexManifestFixedBytes + name_len;
  Sha256Digest self = Sha256(data.substr(0, body));
  if (std::memcmp(self.data(), data.data() + body, self.size()) != 0) {
    return corrupt("checksum mismatch");
  }
  uint32_t version = static_cast<uint32_t>(GetLE(data, 8, 4));
  if (version != kIndexManifestVersion) {
    return corrupt("unsupported format version " + std::to_string(version));
  }
  IndexManifest m;
  m.dimension = static_cast<uint32_t>(GetLE(data, 12, 4));
  m.lsn = static_cast<int64_t>(GetLE(data, 24, 8));
  m.graph_size = GetLE(data, 48, 8);
  m.graph_sha256 = std::string(data.substr(56, 32));
  m.graph_name = std::string(data.substr(kIndexManifestFixedBytes, name_len));
  if (!SafeName(m.graph_name) || m.graph_name == kIndexManifestName) {
    return corrupt("invalid graph file name");
  }
  return m;
}

std::optional<std::string> LiveGraphName(const std::string& index_dir) {
  const std::string path = index_dir + "/" + kIndexManifestName;
  auto bytes = ReadFile(path);
  if (!bytes.ok()) return std::nullopt;
  auto manifest = DecodeIndexManifest(*bytes, path);
  if (!manifest.ok()) return std::nullopt;
  return manifest->graph_name;
}

struct StagedIndex {
  int64_t lsn = 0;
  std::vector<std::string> files;  // names inside the index directory
};

// Stages a matching manifest + graph pair from `live_dir` into `staged_dir`. nullopt (with a note)
// when there is nothing usable to back up; errors only for failures of the staging disk.
Result<std::optional<StagedIndex>> StageVectorIndex(const std::string& live_dir,
                                                    const std::string& staged_dir,
                                                    const ProjectRecord& record,
                                                    const SourceOptions& options,
                                                    std::vector<std::string>* notes) {
  const std::string manifest_path = live_dir + "/" + kIndexManifestName;
  const std::string who = "project '" + record.name + "' (" + record.id + "): ";
  auto leave_out = [&](const std::string& why) -> Result<std::optional<StagedIndex>> {
    notes->push_back(who + "vector index not included (" + why +
                     "); the server rebuilds it after a restore");
    std::error_code ec;
    fs::remove_all(staged_dir, ec);
    return std::optional<StagedIndex>();
  };
  for (int attempt = 0; attempt < kIndexCopyAttempts; ++attempt) {
    auto bytes = ReadFile(manifest_path);
    if (!bytes.ok()) {
      if (bytes.status().code() == Code::kNotFound) return std::optional<StagedIndex>();
      return leave_out(bytes.status().ToString());
    }
    auto manifest = DecodeIndexManifest(*bytes, manifest_path);
    if (!manifest.ok()) return leave_out(manifest.status().ToString());
    if (manifest->dimension != static_cast<uint32_t>(record.embedding_dimension)) {
      return leave_out("it has dimension " + std::to_string(manifest->dimension) +
                       ", the project " + std::to_string(record.embedding_dimension));
    }
    if (options.after_index_manifest_read) options.after_index_manifest_read(record.id);

    std::error_code ec;
    fs::remove_all(staged_dir, ec);  // a previous attempt's files
    KB_RETURN_IF_ERROR(MakeDirs(staged_dir));
    const std::string graph_from = live_dir + "/" + manifest->graph_name;
    const std::string graph_to = staged_dir + "/" + manifest->graph_name;
    auto digest = LinkOrCopy(graph_from, graph_to, options.link_index_files);
    if (!digest.ok()) {
      // A save replaced the graph after we read the manifest (it deletes the old one once the
      // new manifest is in place): read the new manifest.
      if (digest.status().code() == Code::kNotFound) continue;
      return digest.status();
    }
    if (digest->size != manifest->graph_size || digest->sha256 != manifest->graph_sha256) {
      // Graph files are written under fresh names and never modified in place, so a mismatch is
      // damage, not a race.
      return leave_out("graph file " + graph_from + " does not match its manifest");
    }
    KB_RETURN_IF_ERROR(AtomicWriteFile(staged_dir + "/" + kIndexManifestName, *bytes));
    return std::optional<StagedIndex>(
        StagedIndex{manifest->lsn, {kIndexManifestName, manifest->graph_name}});
  }
  return leave_out("it kept changing during " + std::to_string(kIndexCopyAttempts) + " attempts");
}

// ---------------------------------------------------------------------------------------------

// Reads the project rows from the staged catalog copy with the catalog's own code. Catalog::Open
// writes (journal mode, migrations), so it runs on a scratch copy of the copy; catalogs are small.
Result<std::unique_ptr<Catalog>> OpenCatalogCopy(const std::string& staged_catalog,
                                                 const std::string& scratch_dir) {
  KB_RETURN_IF_ERROR(MakeDirs(scratch_dir));
  const std::string scratch = layout::CatalogDb(scratch_dir);
  std::error_code ec;
  fs::copy_file(staged_catalog, scratch, ec);
  if (ec) return Status::IOError("copy " + staged_catalog + " -> " + scratch + ": " + ec.message());
  return Catalog::Open(scratch, SystemClock::Default());
}

Result<std::vector<ProjectRecord>> SelectProjects(Catalog& catalog, const SourceOptions& options) {
  const bool full = options.projects.empty();
  const bool include_deleted = options.include_deleted.value_or(full);
  if (full) return catalog.ListProjects(include_deleted);
  std::vector<ProjectRecord> out;
  std::set<std::string> seen;
  for (const std::string& wanted : options.projects) {
    auto record = catalog.GetProject(wanted, include_deleted);
    if (!record.ok() && record.status().code() == Code::kNotFound && !include_deleted) {
      if (catalog.GetProject(wanted, /*include_deleted=*/true).ok()) {
        return Status::NotFound("project '" + wanted +
                                "' is deleted (include deleted projects to back it up)");
      }
    }
    if (!record.ok()) {
      if (record.status().code() == Code::kNotFound) {
        return Status::NotFound("no project '" + wanted + "' in the data directory");
      }
      return record.status();
    }
    if (seen.insert(record->id).second) out.push_back(*record);
  }
  return out;
}

// Both paths normalised (weakly_canonical): is `inner` `outer` or below it?
bool IsWithin(const fs::path& inner, const fs::path& outer) {
  return std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first == outer.end();
}

// Stages the audit log of `data_dir` (audit.db and, when there is one, audit.head) under
// `staging_dir` and returns the names staged, in manifest order; none when the data directory
// has no audit log yet. The head file is read FIRST and the database copied after it: the writer
// renames the head only after the batch it names has committed, so a head read before the copy
// never names an entry the copy lacks (it may lag the copy, which verification accepts; it may
// never lead it, which verification reports as newest entries missing). The database is copied
// with the online backup API like the catalog: one committed state while the server appends.
Result<std::vector<std::string>> StageAuditLog(const std::string& data_dir,
                                               const std::string& staging_dir,
                                               const SourceOptions& options) {
  std::error_code ec;
  const std::string live_db = layout::AuditDb(data_dir);
  if (!fs::exists(live_db, ec)) return std::vector<std::string>{};
  std::vector<std::string> staged = {layout::kAuditDbName};
  std::optional<std::string> head;
  if (auto bytes = ReadFile(layout::AuditHead(data_dir)); bytes.ok()) {
    head = std::move(bytes).value();
  } else if (bytes.status().code() != Code::kNotFound) {
    return bytes.status().WithContext("reading the audit log's head file");
  }
  if (options.after_audit_head_read) options.after_audit_head_read();
  if (head) {
    const std::string path = layout::AuditHead(staging_dir);
    Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kStagedFileMode));
    if (out.get() < 0) return ErrnoStatus("create", path, errno);
    KB_RETURN_IF_ERROR(WriteFully(out.get(), *head, path));
    if (::close(out.Release()) != 0) return ErrnoStatus("close", path, errno);
    staged.push_back(layout::kAuditHeadName);
  }
  KB_RETURN_IF_ERROR(CopySqliteDatabase(live_db, layout::AuditDb(staging_dir))
                         .WithContext("copying the audit log"));
  return staged;
}

// Stages one project (its vector index, then its database) under `staging_dir`. nullopt for a
// deleted project whose files are gone (with a note). Runs on a staging thread: touches nothing
// shared but the file system below its own directory.
Result<std::optional<repo::ProjectSource>> StageProject(const std::string& data_dir,
                                                        const std::string& staging_dir,
                                                        const ProjectRecord& record, bool full,
                                                        const SourceOptions& options,
                                                        std::vector<std::string>* notes) {
  std::error_code ec;
  if (!SafeName(record.id)) {
    return Status::Corruption("catalog: project id '" + record.id + "' is not a valid name");
  }
  const std::string live_dir = layout::ProjectDir(data_dir, record.id);
  const std::string staged_dir = layout::ProjectDir(staging_dir, record.id);
  const std::string live_db = layout::ProjectDbIn(live_dir);
  const std::string who = "project '" + record.name + "' (" + record.id + ")";
  if (!fs::exists(live_db, ec)) {
    if (record.deleted_at_ms && full) {
      notes->push_back(who + ": deleted and its files are gone; only its catalog row is backed up");
      return std::optional<repo::ProjectSource>();
    }
    return Status::FailedPrecondition(who + " has no database file " + live_db +
                                      " (was it purged while the backup ran? retry)");
  }
  repo::ProjectSource project;
  repo::ProjectSnapshot& meta = project.meta;
  meta.id = record.id;
  meta.name = record.name;
  meta.deleted = record.deleted_at_ms.has_value();
  meta.catalog_row = ProjectRecordToJson(record);
  meta.embedder =
      json{{"fingerprint", record.embedder_fingerprint}, {"dimension", record.embedding_dimension}};
  // The database is read later, while the backup runs (lsn, checksum and counts come from it).
  project.files.push_back(
      repo::SourceFile{layout::kProjectDbName, live_db, kStagedFileMode,
                       ProjectDbProducer(live_db, record, options.source_check)});

  // A previous snapshot's index, if it is still valid for this database and close enough.
  auto previous = options.previous_indexes.find(record.id);
  if (previous != options.previous_indexes.end() && previous->second.index_lsn > 0 &&
      !previous->second.index_checksum.empty() && !previous->second.files.empty() &&
      previous->second.embedder == meta.embedder) {
    const PreviousIndex& prev = previous->second;
    std::optional<std::string> live_graph = LiveGraphName(layout::ProjectIndexDirIn(live_dir));
    bool same = false;
    for (const repo::SnapshotFile& f : prev.files) {
      if (live_graph && f.path == std::string(layout::kProjectIndexDirName) + "/" + *live_graph)
        same = true;
    }
    auto pos = ReadJournalPosition(live_db, prev.index_lsn);
    if (!pos.ok()) return pos.status().WithContext(who);
    const int64_t lag = pos->last_lsn - prev.index_lsn;
    const auto allowed =
        static_cast<int64_t>(options.index_max_lag * static_cast<double>(pos->documents));
    if (pos->checksum_at_index == prev.index_checksum && !pos->purged_since_index && lag >= 0 &&
        (same || lag <= allowed)) {
      meta.index_lsn = prev.index_lsn;
      meta.index_checksum = prev.index_checksum;
      for (const repo::SnapshotFile& f : prev.files) {
        repo::SourceFile reused(f.path, "", f.mode);
        reused.stored = f;
        project.files.push_back(std::move(reused));
      }
      return std::optional<repo::ProjectSource>(std::move(project));
    }
  }

  KB_RETURN_IF_ERROR(MakeDirs(staged_dir));
  KB_ASSIGN_OR_RETURN(
      auto index, StageVectorIndex(layout::ProjectIndexDirIn(live_dir),
                                   layout::ProjectIndexDirIn(staged_dir), record, options, notes));

  if (index) {
    meta.index_lsn = index->lsn;
    for (const std::string& name : index->files) {
      project.files.push_back(repo::SourceFile{
          std::string(layout::kProjectIndexDirName) + "/" + name,
          layout::Join(layout::ProjectIndexDirIn(staged_dir), name), kStagedFileMode});
    }
  }
  return std::optional<repo::ProjectSource>(std::move(project));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Status CopySqliteDatabase(const std::string& source_path, const std::string& dest_path) {
  struct stat st;
  if (::stat(source_path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound("no such database: " + source_path);
    return ErrnoStatus("stat", source_path, errno);
  }
  if (::lstat(dest_path.c_str(), &st) == 0) {
    return Status::FailedPrecondition("copy destination " + dest_path + " already exists");
  }
  // Read-only: the backup never writes the live file. A read-only connection in WAL mode still
  // reads through the WAL, so it sees the newest commit, and holds one read snapshot for the
  // whole step(-1) below. (When no server has the file open, SQLite creates the -wal/-shm files
  // for this connection and leaves them, empty, as for any reader; they are never removed here:
  // a server may have opened the file meanwhile.)
  KB_ASSIGN_OR_RETURN(SqliteHandle src, OpenRaw(source_path, SQLITE_OPEN_READONLY));
  KB_ASSIGN_OR_RETURN(SqliteHandle dst,
                      OpenRaw(dest_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  auto fail = [&](int rc, sqlite3* db, const std::string& what) {
    Status s = sql::StatusFromSqlite(rc, db, what);
    dst.reset();
    std::error_code ec;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(dest_path + suffix, ec);
    return s;
  };
  // A staging copy is disposable: no fsync. (The header's journal mode comes from the source.)
  if (int rc = sqlite3_exec(dst.get(), "PRAGMA synchronous=OFF", nullptr, nullptr, nullptr);
      rc != SQLITE_OK) {
    return fail(rc, dst.get(), "configure " + dest_path);
  }
  sqlite3_backup* backup = sqlite3_backup_init(dst.get(), "main", src.get(), "main");
  if (backup == nullptr) {
    return fail(sqlite3_errcode(dst.get()), dst.get(), "backup " + source_path);
  }
  int rc = SQLITE_OK;
  for (int attempt = 0;; ++attempt) {
    // -1: every page in one step, under one read transaction of the source.
    rc = sqlite3_backup_step(backup, -1);
    if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && attempt < kBackupBusyRetries) {
      std::this_thread::sleep_for(kBackupBusyPause);
      continue;
    }
    break;
  }
  int finish_rc = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    // An error of the source is reported on the destination handle by sqlite3_backup_*.
    return fail(rc, dst.get(), "copy " + source_path + " -> " + dest_path);
  }
  if (finish_rc != SQLITE_OK) {
    return fail(finish_rc, dst.get(), "copy " + source_path + " -> " + dest_path);
  }
  sqlite3* raw = dst.release();
  if (int close_rc = sqlite3_close(raw); close_rc != SQLITE_OK) {
    sqlite3_close_v2(raw);
    return sql::StatusFromSqlite(close_rc, nullptr, "close " + dest_path);
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// PreparedSource

PreparedSource::PreparedSource(PreparedSource&& other) noexcept
    : staging_dir_(std::move(other.staging_dir_)),
      source_(std::move(other.source_)),
      notes_(std::move(other.notes_)) {
  other.staging_dir_.clear();
}

PreparedSource& PreparedSource::operator=(PreparedSource&& other) noexcept {
  if (this != &other) {
    Release();
    staging_dir_ = std::move(other.staging_dir_);
    source_ = std::move(other.source_);
    notes_ = std::move(other.notes_);
    other.staging_dir_.clear();
  }
  return *this;
}

PreparedSource::~PreparedSource() { Release(); }

void PreparedSource::Release() {
  if (staging_dir_.empty()) return;
  std::error_code ec;
  fs::remove_all(staging_dir_, ec);
  staging_dir_.clear();
}

int64_t PreparedSource::total_bytes() const {
  int64_t total = 0;
  auto add = [&](const repo::SourceFile& f) {
    std::error_code ec;
    auto size = fs::file_size(f.local_path, ec);
    if (!ec) total += static_cast<int64_t>(size);
  };
  for (const repo::SourceFile& f : source_.catalog_files) add(f);
  for (const repo::ProjectSource& p : source_.projects) {
    for (const repo::SourceFile& f : p.files) add(f);
  }
  return total;
}

Result<PreparedSource> PrepareSnapshotSource(const std::string& data_dir,
                                             const std::string& staging_dir,
                                             const SourceOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(data_dir, ec)) {
    if (!fs::exists(data_dir, ec)) {
      return Status::NotFound("data directory " + data_dir + " does not exist");
    }
    return Status::FailedPrecondition(data_dir + " is not a directory");
  }
  const std::string live_catalog = layout::CatalogDb(data_dir);
  if (!fs::is_regular_file(live_catalog, ec)) {
    return Status::FailedPrecondition(data_dir + " is not a KnowledgeBeast data directory (no " +
                                      layout::kCatalogDbName + ")");
  }
  if (staging_dir.empty()) return Status::InvalidArgument("no staging directory given");
  {
    fs::path projects = fs::weakly_canonical(fs::path(layout::ProjectsDir(data_dir)), ec);
    fs::path staging = fs::weakly_canonical(staging_dir, ec);
    if (!ec && IsWithin(staging, projects)) {
      return Status::FailedPrecondition("staging directory " + staging_dir + " is inside " +
                                        layout::ProjectsDir(data_dir));
    }
  }
  if (fs::exists(staging_dir, ec)) {
    if (!fs::is_directory(staging_dir, ec) || !fs::is_empty(staging_dir, ec)) {
      return Status::FailedPrecondition("staging directory " + staging_dir +
                                        " exists and is not empty");
    }
  }
  KB_RETURN_IF_ERROR(MakeDirs(staging_dir));
  // From here on, every return removes the staging directory (PreparedSource's destructor).
  PreparedSource prepared(staging_dir);
  repo::SnapshotSource& source = prepared.source_;
  const bool full = options.projects.empty();
  source.scope = full ? "full" : "projects";

  // 1. The catalog, first: every project row it holds has files at least as new.
  const std::string staged_catalog = layout::CatalogDb(staging_dir);
  KB_RETURN_IF_ERROR(CopySqliteDatabase(live_catalog, staged_catalog));
  std::vector<ProjectRecord> records;
  {
    const std::string scratch_dir = staging_dir + "/.catalog-read";
    auto catalog = OpenCatalogCopy(staged_catalog, scratch_dir);
    if (!catalog.ok()) {
      return catalog.status().WithContext("reading the catalog of " + data_dir);
    }
    auto selected = SelectProjects(**catalog, options);
    catalog->reset();
    fs::remove_all(scratch_dir, ec);
    if (!selected.ok()) return selected.status();
    records = std::move(selected).value();
  }
  if (full) {
    source.catalog_files.push_back(
        repo::SourceFile{layout::kCatalogDbName, staged_catalog, kStagedFileMode});
    // The audit log travels with full snapshots only: a whole restore is what needs it (the
    // host may be gone); a project restore never touches the node's audit log.
    KB_ASSIGN_OR_RETURN(std::vector<std::string> audit_files,
                        StageAuditLog(data_dir, staging_dir, options));
    for (const std::string& name : audit_files) {
      source.catalog_files.push_back(
          repo::SourceFile{name, layout::Join(staging_dir, name), kStagedFileMode});
    }
  } else {
    fs::remove(staged_catalog, ec);
  }

  // 2. Each project: its vector index first, then its database, so that the index is never
  // ahead of the database copy (index_lsn <= lsn). Projects are independent databases, so up to
  // kStagingThreads are staged at once (the copy is mostly page-cache work in the kernel, which
  // runs on both cores); the result keeps the catalog's order.
  struct Staged {
    Result<std::optional<repo::ProjectSource>> result = Status::Internal("not staged");
    std::vector<std::string> notes;
  };
  std::vector<Staged> staged(records.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto work = [&] {
    for (size_t i; !failed.load() && (i = next.fetch_add(1)) < records.size();) {
      staged[i].result =
          StageProject(data_dir, staging_dir, records[i], full, options, &staged[i].notes);
      if (!staged[i].result.ok()) failed.store(true);
    }
  };
  {
    std::vector<std::thread> threads;
    const size_t helpers = records.size() > 1 ? kStagingThreads - 1 : 0;
    for (size_t t = 0; t < helpers; ++t) threads.emplace_back(work);
    work();
    for (std::thread& t : threads) t.join();
  }
  for (Staged& st : staged) {
    KB_RETURN_IF_ERROR(st.result.status());  // the first failure in catalog order
    prepared.notes_.insert(prepared.notes_.end(), st.notes.begin(), st.notes.end());
    if (std::optional<repo::ProjectSource>& project = *st.result) {
      source.projects.push_back(std::move(*project));
    }
  }
  return prepared;
}

Result<int64_t> ProduceToFile(const repo::SourceFile& file, const std::string& path,
                              repo::ProjectSnapshot* meta) {
  if (!file.produce) return Status::InvalidArgument(file.path + " is not a produced file");
  Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kStagedFileMode));
  if (out.get() < 0) return ErrnoStatus("create", path, errno);
  class ToFile : public repo::FileSink {
   public:
    ToFile(int fd, const std::string& path) : fd_(fd), path_(path) {}
    Status Write(int64_t offset, std::string_view data) override {
      return WriteFully(fd_, data, path_, offset);
    }

   private:
    int fd_;
    const std::string& path_;
  } sink(out.get(), path);
  auto size = file.produce(sink, meta);
  if (size.ok() && ::ftruncate(out.get(), static_cast<off_t>(*size)) != 0) {
    size = ErrnoStatus("truncate", path, errno);
  }
  if (::close(out.Release()) != 0 && size.ok()) size = ErrnoStatus("close", path, errno);
  if (!size.ok()) {
    std::error_code ec;
    fs::remove(path, ec);
  }
  return size;
}

Result<std::map<std::string, PreviousIndex>> FindPreviousIndexes(repo::Repository& repo,
                                                                 size_t max_manifests) {
  KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, repo.ListSnapshotIds());
  std::map<std::string, PreviousIndex> out;
  size_t read = 0;
  for (auto it = ids.rbegin(); it != ids.rend() && read < max_manifests; ++it, ++read) {
    auto m = repo.ReadSnapshot(*it);
    if (!m.ok()) continue;  // forgotten meanwhile, or damaged: `backup verify` reports it
    for (const repo::ProjectSnapshot& p : m->projects) {
      if (out.count(p.id) || p.index_lsn <= 0 || p.index_checksum.empty()) continue;
      PreviousIndex prev;
      prev.snapshot_id = m->id;
      prev.index_lsn = p.index_lsn;
      prev.index_checksum = p.index_checksum;
      prev.embedder = p.embedder;
      for (const repo::SnapshotFile& f : p.files) {
        if (f.path.rfind(std::string(layout::kProjectIndexDirName) + "/", 0) == 0)
          prev.files.push_back(f);
      }
      if (!prev.files.empty()) out.emplace(p.id, std::move(prev));
    }
  }
  return out;
}

Result<repo::SnapshotManifest> BackupDataDirectory(repo::Repository& repo,
                                                   const std::string& data_dir,
                                                   const SourceOptions& source,
                                                   const repo::BackupOptions& options) {
  const std::string staging = data_dir + "/.backup-staging-" + HexEncode(RandomBytes(6));
  SourceOptions with_previous = source;
  if (with_previous.previous_indexes.empty()) {
    KB_ASSIGN_OR_RETURN(with_previous.previous_indexes, FindPreviousIndexes(repo));
  }
  KB_ASSIGN_OR_RETURN(PreparedSource prepared,
                      PrepareSnapshotSource(data_dir, staging, with_previous));
  return repo.CreateSnapshot(prepared.source(), options);
}

Result<SourceCheckLevel> ParseSourceCheckLevel(const std::string& text) {
  if (text == "off") return SourceCheckLevel::kOff;
  if (text == "checksum") return SourceCheckLevel::kChecksum;
  if (text == "full") return SourceCheckLevel::kFull;
  return Status::InvalidArgument("backup_source_check: expected full, checksum or off, got '" +
                                 text + "'");
}

std::vector<std::string> SourceCheckFailures(const repo::SnapshotManifest& m) {
  std::vector<std::string> out;
  for (const repo::ProjectSnapshot& p : m.projects) {
    if (!p.source_check.failed()) continue;
    std::string line = "project " + p.name + " (" + p.id + "): ";
    for (size_t i = 0; i < p.source_check.problems.size(); ++i) {
      line += (i ? "; " : "") + p.source_check.problems[i];
    }
    if (p.source_check.problems.empty()) line += "result '" + p.source_check.result + "'";
    out.push_back(std::move(line));
  }
  return out;
}

}  // namespace kb::backup
