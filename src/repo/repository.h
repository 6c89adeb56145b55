// The backup repository engine: encrypted, compressed, deduplicated snapshots of a set of files
// on a BlobStore. Format and ordering rules: docs/format/BACKUP_REPOSITORY.md (read it first;
// every constant here refers back to it).
//
// The engine (src/repo, library kb_repo) needs only blob and common: it knows files and
// objects, never SQLite or the knowledge base. What a backup reads and what a restore does with
// a live data directory is the business of src/backup, on top of it.
//
// Layers (all in src/repo):
//   repository.h/.cc     Repository: Init / Open, keys, listing; glue to the parts below
//   repository_format.h  every number and object name of the format, name validators
//   repository_keys.h    config and keys/ objects, key wrapping (scrypt / key file)
//   repository_context.h what every part works on: store, clock, params, master key
//   repository_codec.h   little-endian integers and bounded reads for the binary objects
//   crypto.h, sealed_box.h  AES-256-GCM with AAD, scrypt, HKDF, HMAC chunk ids; zstd + seal
//   pack.h               pack framing, block entries, pack tables
//   pack_writer.h        new chunks -> sealed blocks (worker threads) -> packs -> index objects
//   pack_reader.h        ChunkReader: ranged block reads, every chunk checked against its id
//   chunk_index.h        index objects and the in-memory chunk map
//   manifest.cc          SnapshotManifest <-> JSON, validated
//   snapshot.h           CreateSnapshot (files -> chunks -> packs -> trees -> manifest)
//   locks.h              locks (with their refresh thread) and prune plans
//   restore_files.h      manifest -> files in a directory (streamed, verified)
//   copy.h               CopySnapshot: a snapshot re-read from one repository, re-written into
//                        another (its keys, its dedup), manifest last, verified
//   verify.h             Verify, Check (the restore test's check of databases is injected:
//                        VerifyOptions::restored_check)
//   prune.h              two-phase prune
//   retention.{h,cc}     which snapshots a keep-policy keeps (pure)
// On top of it, in src/backup (live data, SQLite, the knowledge base):
//   source.{h,cc}        SnapshotSource from a data directory (online-safe SQLite copies)
//   restore.{h,cc}       whole / per-project / merge restore orchestration
//   restore_check.{h,cc} the restore test's check of restored databases
//   service.{h,cc}       the server's schedule, retention and prune runs
//
// Thread-safety: a Repository may be used by several threads at once for reads; one
// CreateSnapshot / Prune at a time per Repository object (the repository's locks coordinate
// between processes).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "blob/blob_store.h"
#include "common/clock.h"
#include "common/status.h"

namespace kb::repo {

// ---------------------------------------------------------------------------------------------
// Keys and parameters

// Where the key-encryption key comes from. Exactly one of the two must be set to open or init.
struct KeySource {
  std::optional<std::string> passphrase;  // KB_BACKUP_PASSWORD
  std::optional<std::string> key_file;    // path; KB_BACKUP_KEY_FILE
  // From KB_BACKUP_PASSWORD / KB_BACKUP_KEY_FILE (explicit fields given here win).
  static KeySource FromEnvironment(KeySource overrides = {});
  bool empty() const { return !passphrase && !key_file; }
};

struct RepositoryParams {
  int64_t chunk_size = 4096;
  // Defaults of new repositories (format version 2, "Compression": 1 MiB blocks at level 6
  // compress the databases ~10% smaller than version 1's 256 KiB at level 3).
  int64_t block_size = 1024 * 1024;
  int64_t pack_size = 16 * 1024 * 1024;
  int64_t tree_fanout = 1024;
  int compression_level = 6;
  // scrypt cost for new passphrase keys (tests lower it; the format allows 2^14..2^22).
  int scrypt_log2_n = 15;
};

struct KeyInfo {
  std::string id;
  std::string label;
  std::string kdf;      // "scrypt" | "keyfile"
  std::string created;  // ISO-8601
  bool in_use = false;  // the key this Repository was opened with
};

// ---------------------------------------------------------------------------------------------
// Snapshots

struct SnapshotFile {
  std::string path;  // relative, validated (see the format doc)
  int64_t size = 0;
  int mode = 0600;
  std::vector<std::string> trees;  // 32-hex tree chunk ids
  bool operator==(const SnapshotFile&) const = default;
};

// A backup's check of the project state it copied, made in the read transaction of the copy
// (docs/format/BACKUP_REPOSITORY.md, `source_check`). The engine only stores it; the live-data
// side (src/backup/source.cc) runs the checks.
struct SourceCheck {
  std::string result;                 // "passed" | "failed"; "" = not recorded (older snapshot)
  std::vector<std::string> checks;    // what ran, e.g. "journal", "content_checksum"
  std::vector<std::string> problems;  // empty when passed
  int64_t duration_ms = 0;
  bool recorded() const { return !result.empty(); }
  // Failed, or a result this binary does not know (treated as failed).
  bool failed() const { return recorded() && result != "passed"; }
};

struct ProjectSnapshot {
  std::string id;
  std::string name;
  bool deleted = false;
  nlohmann::json catalog_row = nlohmann::json::object();  // the project's catalog fields
  int64_t lsn = 0;
  std::string content_checksum;
  nlohmann::json counts = nlohmann::json::object();    // documents, chunks, deleted_documents
  nlohmann::json embedder = nlohmann::json::object();  // fingerprint, dimension
  int64_t index_lsn = 0;
  // The project's content checksum at index_lsn (the journal entry's `checksum`): identifies the
  // state the index reflects, so a later backup can tell whether the live journal continues from
  // it (see SourceOptions::previous_indexes). Empty when unknown (no index, or an older snapshot).
  std::string index_checksum;
  SourceCheck source_check;
  std::vector<SnapshotFile> files;  // relative to projects/<id>/
};

struct SnapshotStats {
  int64_t files = 0;
  int64_t bytes = 0;  // logical bytes of all files
  int64_t chunks = 0;
  int64_t new_chunks = 0;
  int64_t added_bytes = 0;         // logical bytes of new chunks
  int64_t added_stored_bytes = 0;  // bytes of new objects written (packs + index + manifest)
  int64_t duration_ms = 0;
};

// Set on a snapshot written by CopySnapshot (`repo copy`): the repository it was copied from
// (its config id) and when. Empty repository = an ordinary backup.
struct CopiedFrom {
  std::string repository;
  std::string time;  // ISO-8601
};

struct SnapshotManifest {
  std::string id;        // "YYYYMMDDTHHMMSSZ-xxxxxxxx"
  std::string time;      // ISO-8601 start
  std::string finished;  // ISO-8601
  std::string hostname;
  std::string kb_version;
  std::string trigger;  // manual | schedule | api | pre-restore
  std::string scope;    // full | projects
  std::vector<std::string> tags;
  std::vector<SnapshotFile> catalog_files;  // relative to the data directory
  std::vector<ProjectSnapshot> projects;
  SnapshotStats stats;
  CopiedFrom copied_from;

  nlohmann::json ToJson() const;
  // Validates every field (paths, ids, sizes); Corruption naming the field otherwise.
  static Result<SnapshotManifest> FromJson(const nlohmann::json& j);
};

// One row of `backup list`.
struct SnapshotSummary {
  std::string id;
  std::string time;
  std::string trigger;
  std::string scope;
  std::vector<std::string> projects;  // names
  // Names of the projects whose copied state failed the backup's source check (SourceCheck).
  std::vector<std::string> source_check_failed;
  int64_t bytes = 0;
  int64_t added_stored_bytes = 0;
  std::string verified;  // "" (never), or ISO-8601 of the last successful verify (see below)
  // Non-empty when the manifest cannot be read (the Corruption / version error): the snapshot
  // is still listed so that it can be seen and forgotten; the fields above are then empty.
  std::string problem;
};

// ---------------------------------------------------------------------------------------------
// What a backup reads: files on local disk that are already consistent copies (see
// src/backup/source.h).

// Receives the bytes of a file while it is being produced: writes may come at any offsets, in
// any order; a later write of a range replaces what an earlier one put there, and a range never
// written holds zeros. The producer says the file's final size when it is done.
class FileSink {
 public:
  virtual ~FileSink() = default;
  // An error stops the producer, which returns it.
  virtual Status Write(int64_t offset, std::string_view data) = 0;
};

// Makes a file while the backup reads it (a SQLite database copied at one committed state:
// src/backup/source.h): writes its bytes into `sink`, returns its size, and completes `meta` (the
// project the file belongs to; nullptr for catalog files) with what it read in the same
// transaction.
using FileProducer = std::function<Result<int64_t>(FileSink& sink, ProjectSnapshot* meta)>;

struct SourceFile {
  SourceFile() = default;
  SourceFile(std::string path_, std::string local_path_, int mode_ = 0600,
             FileProducer produce_ = nullptr)
      : path(std::move(path_)),
        local_path(std::move(local_path_)),
        mode(mode_),
        produce(std::move(produce_)) {}

  std::string path;  // path recorded in the manifest
  // Where to read it now; for a produced file, the live file (only its size is used, as an
  // estimate for progress reports).
  std::string local_path;
  int mode = 0600;
  FileProducer produce;  // when set, the file's bytes come from here, not from local_path
  // When set, the file is already in the repository as an earlier snapshot stored it (its
  // path, size, mode and trees): this snapshot names the same trees and nothing is read. The
  // backup first checks that every chunk those trees name is still stored and not planned for
  // pruning; if not, the project's stored files are all left out (they are its vector index,
  // which a restore then rebuilds) and the project's index_lsn / index_checksum are cleared.
  std::optional<SnapshotFile> stored;
};

struct ProjectSource {
  ProjectSnapshot meta;  // everything except `files`
  std::vector<SourceFile> files;
};

struct SnapshotSource {
  std::string scope = "full";  // full | projects
  std::vector<SourceFile> catalog_files;
  std::vector<ProjectSource> projects;
};

struct BackupOptions {
  std::string trigger = "manual";
  std::vector<std::string> tags;
  int threads = 2;  // compression/encryption workers
  // Called every few MB with (bytes done, bytes total); may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

// ---------------------------------------------------------------------------------------------
// Verification

struct VerifyOptions {
  enum class Data { kStructure, kAll, kSubset };
  Data data = Data::kStructure;
  double subset_fraction = 0.1;  // for kSubset: fraction of packs read (chosen at random)
  // For kSubset, by slice instead of at random when subset_slices > 0: the packs whose id (its
  // first 16 hex digits as a number) is subset_slice modulo subset_slices. Slices 0 .. n-1 of
  // the same n read every pack exactly once: a cycle of n runs reads the whole repository.
  int subset_slices = 0;
  int subset_slice = 0;
  bool restore_test = false;     // restore into a temp dir and run restored_check on it
  std::string temp_dir;          // for restore_test; empty = system temp dir
  // The restore test's check of a restored directory: given the directory the snapshot's files
  // were restored into and its manifest, returns the problems found (each naming the file; empty
  // = good). Required when restore_test is set (InvalidArgument otherwise): the engine cannot
  // judge the databases itself, the live-data side supplies the check
  // (backup::CheckRestoredDatabases in src/backup/restore_check.h). Called on the verifying
  // thread, once per snapshot.
  std::function<std::vector<std::string>(const std::string& dir, const SnapshotManifest& m)>
      restored_check;
};

struct VerifyReport {
  std::string snapshot_id;
  bool ok = true;
  std::vector<std::string> problems;  // each names the object or file: "data/ab/ab12…: …"
  int64_t bytes_read = 0;
};

struct RepoCheckReport {
  bool ok = true;
  std::vector<std::string> problems;
  int64_t snapshots = 0, packs = 0, indexes = 0, keys = 0, locks = 0, plans = 0;
  int64_t unreferenced_packs = 0;  // not an error: prune's business
};

// ---------------------------------------------------------------------------------------------
// Retention and prune

struct RetentionPolicy {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  int64_t keep_within_ms = 0;  // keep everything newer than this
  bool empty() const;
  // The plan's default: hourly for 7 days, daily for 30 days.
  static RetentionPolicy Default();
};

struct RetentionDecision {
  std::string snapshot_id;
  bool keep = false;
  std::vector<std::string> reasons;  // "last", "hourly", "daily 2026-11-25", "within 7d"
};

struct PruneOptions {
  int64_t grace_ms = 60LL * 60 * 1000;       // a plan is swept after this
  int64_t stale_lock_ms = 30LL * 60 * 1000;  // a lock not refreshed for this long is dead
  int64_t max_clock_skew_ms = 5LL * 60 * 1000;
  bool dry_run = false;
};

struct PruneReport {
  int64_t packs_marked = 0;  // put into a new plan
  int64_t packs_deleted = 0;
  int64_t bytes_deleted = 0;
  int64_t plans_swept = 0;
  int64_t plans_deferred = 0;  // a live backup lock kept them
  int64_t stale_locks_removed = 0;
  std::vector<std::string> notes;
};

// ---------------------------------------------------------------------------------------------
// The repository

class Repository {
 public:
  virtual ~Repository() = default;

  // Creates a new repository in an empty store location (FailedPrecondition if `config` exists)
  // with one key from `key`. Returns it opened.
  static Result<std::unique_ptr<Repository>> Init(std::unique_ptr<blob::BlobStore> store,
                                                  const KeySource& key, const std::string& label,
                                                  const RepositoryParams& params,
                                                  const Clock* clock = nullptr);
  // Opens an existing repository: reads config, unwraps the master key with `key` and checks
  // key_check. FailedPrecondition if there is no repository there; Unauthenticated for a
  // missing or wrong key; nothing is written.
  static Result<std::unique_ptr<Repository>> Open(std::unique_ptr<blob::BlobStore> store,
                                                  const KeySource& key,
                                                  const Clock* clock = nullptr);

  virtual const std::string& id() const = 0;
  virtual const RepositoryParams& params() const = 0;
  virtual blob::BlobStore& store() = 0;
  virtual std::string Describe() const = 0;

  // --- keys (no data object is rewritten) ---
  virtual Result<KeyInfo> AddKey(const KeySource& key, const std::string& label) = 0;
  virtual Result<std::vector<KeyInfo>> ListKeys() = 0;
  // FailedPrecondition when it is the last key.
  virtual Status RemoveKey(const std::string& key_id) = 0;

  // --- snapshots ---
  virtual Result<SnapshotManifest> CreateSnapshot(const SnapshotSource& source,
                                                  const BackupOptions& options) = 0;
  // Newest last (reads every manifest).
  virtual Result<std::vector<SnapshotSummary>> ListSnapshots() = 0;
  // The ids alone, in key order (= time order, to the second); reads no manifest.
  virtual Result<std::vector<std::string>> ListSnapshotIds() = 0;
  virtual Result<SnapshotManifest> ReadSnapshot(const std::string& id) = 0;
  virtual Status ForgetSnapshot(const std::string& id) = 0;

  // Writes the files of `manifest` into `target_dir` (which must be empty or absent):
  // catalog files at their paths, project files under projects/<id>/. `project_ids` empty = all
  // (and the catalog); else only those projects and no catalog. Every chunk is checked against
  // its id; on any error the files written so far are removed.
  virtual Status RestoreFiles(const SnapshotManifest& manifest,
                              const std::vector<std::string>& project_ids,
                              const std::string& target_dir) = 0;

  // --- verification and maintenance ---
  virtual Result<std::vector<VerifyReport>> Verify(const std::vector<std::string>& snapshot_ids,
                                                   const VerifyOptions& options) = 0;
  virtual Result<RepoCheckReport> Check(bool read_data) = 0;
  virtual Result<PruneReport> Prune(const PruneOptions& options) = 0;
};

// Which snapshots `policy` keeps, newest first. The policy applies to each kind of snapshot on
// its own (RetentionGroup): full snapshots, pre-restore snapshots, and the snapshots of each set
// of projects each get keep_last, their hourly, daily, weekly and monthly slots — a one-project
// or pre-restore snapshot never takes the slot of a full one. Pure; `now_ms` is the reference
// for keep_within.
std::string RetentionGroup(
    const SnapshotSummary& snapshot);  // "full", "pre-restore", "projects a,b"
std::vector<RetentionDecision> ApplyRetention(const std::vector<SnapshotSummary>& snapshots,
                                              const RetentionPolicy& policy, int64_t now_ms);

// ---------------------------------------------------------------------------------------------
// Copying snapshots into another repository (docs/format/BACKUP_REPOSITORY.md, "Copy")

struct CopyOptions {
  int threads = 2;  // compression/encryption workers of the destination's writer
  // After the manifest is written, verify the copy in the destination: structure and every
  // byte of the packs it uses. A copy that fails is withdrawn (its manifest deleted).
  bool verify = true;
  // Called every few MB with (bytes done, bytes total); may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

struct CopyResult {
  std::string snapshot_id;
  bool copied = false;  // false: the destination already held the snapshot; nothing written
  SnapshotStats stats;  // of the copy in the destination (new_chunks, added_*: what it added)
  bool verified = false;
};

// Copies snapshot `snapshot_id` of `from` into `to` under the same id: every file is read from
// `from` (every chunk checked, as a restore does) and written into `to` as a backup writes
// (chunk ids keyed and data encrypted with `to`'s master key, deduplicated against `to`'s index,
// under `to`'s backup lock); packs and index objects first, the manifest last, so a copy that
// fails leaves no snapshot in `to`. The manifest keeps the source's metadata (time, trigger,
// tags, per-project records) and records `copied_from`. Idempotent: a snapshot `to` already has
// is not read or written (copied = false). Files are streamed, never staged on disk.
// Errors: NotFound (no such snapshot in `from`), Unavailable (incomplete source snapshot),
// Corruption (damaged source data, or the copy failed verification: then withdrawn), store
// errors; InvalidArgument when `from` and `to` are the same repository.
Result<CopyResult> CopySnapshot(Repository& from, Repository& to, const std::string& snapshot_id,
                                const CopyOptions& options = {});

// Opens the repository at `url` with credentials from `key` (or the environment).
Result<std::unique_ptr<Repository>> OpenRepository(const std::string& url, const KeySource& key,
                                                   const blob::BlobStoreOptions& options = {},
                                                   const Clock* clock = nullptr);

}  // namespace kb::repo
