// Restores from a backup repository: choosing the snapshot (explicit, latest, latest valid,
// before a time), the whole data directory (built aside, verified, then swapped in), one project
// into a running knowledge base (replaced, after a pre-restore snapshot), and the merge of
// documents the live project no longer has. Operator guide: docs/BACKUP.md.
//
// Thread-safety: functions; each uses the Repository and KnowledgeBase under their own rules.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backup/source.h"
#include "repo/repository.h"
#include "service/knowledge_base.h"
#include "store/catalog.h"

namespace kb::backup {

// ---------------------------------------------------------------------------------------------
// Choosing a snapshot

struct SnapshotSelector {
  std::string snapshot_id;           // exactly this one
  bool latest_valid = false;         // newest one that verifies (reading every byte)
  std::optional<int64_t> before_ms;  // newest one taken strictly before this time
  // Otherwise: the newest. Candidates must contain every one of these projects (ids or names)
  // and, when `need_full`, be full snapshots (a whole restore needs the catalog).
  std::vector<std::string> projects;
  bool need_full = false;
  // Snapshots never chosen (a caller walking back has tried them already).
  std::set<std::string> exclude;
};

struct SkippedSnapshot {
  std::string id;
  std::string reason;
};

struct Selection {
  repo::SnapshotManifest manifest;
  std::vector<SkippedSnapshot> skipped;  // --latest-valid: the newer ones that failed, and why
};

// NotFound when no snapshot matches (the message says what was looked for). With latest_valid,
// a snapshot whose backup marked a source it needs as damaged (SourceCheck failed: every
// project for a whole restore, the selected ones otherwise) is passed by without being read,
// and each other candidate's repository bytes are verified.
Result<Selection> SelectSnapshot(repo::Repository& repo, const SnapshotSelector& selector);

// The project in `manifest` named by id or name (a live one is preferred on a name clash).
Result<const repo::ProjectSnapshot*> FindProject(const repo::SnapshotManifest& manifest,
                                                 const std::string& id_or_name);

// The catalog row recorded in a snapshot, back as a record (every ProjectRecord field).
nlohmann::json ProjectRecordToJson(const ProjectRecord& record);
Result<ProjectRecord> ProjectRecordFromJson(const nlohmann::json& j);

// The one check that a restored project directory holds the state its snapshot recorded, read
// without writing the files (store::ProjectReader): the database is the project's (id, and the
// dimension of the snapshot's catalog row); SQLite integrity, chunk counts and keyword index
// rows; the content checksum recomputed from the rows equals the maintained one and the
// snapshot's (when recorded); the LSN equals the snapshot's; the live document, live chunk and
// deleted document counts equal the snapshot's (those it recorded). Returns the problems, each
// starting "project <name>: " (empty = it matches).
std::vector<std::string> CheckProjectMatchesSnapshot(const std::string& project_dir,
                                                     const repo::ProjectSnapshot& meta);

// ---------------------------------------------------------------------------------------------
// Whole data directory

struct ProjectLoss {
  std::string project_id;
  std::string name;
  int64_t restored_lsn = 0;
  int64_t damaged_lsn = -1;         // -1: unreadable or absent in the old data
  std::string damaged_last_commit;  // ISO-8601 of its newest journal entry, if readable
};

struct DataLossWindow {
  std::string restored_point;         // the snapshot's time
  std::string newest_damaged_commit;  // newest commit readable in the old data ("" = none)
  int64_t lost_entries = 0;           // journal entries in the old data after the restored LSNs
  std::vector<ProjectLoss> projects;
  nlohmann::json ToJson() const;
};

struct WholeRestoreReport {
  std::string snapshot_id;
  std::string data_dir;
  std::string moved_aside;  // where the previous data directory now is ("" if there was none)
  DataLossWindow window;
  int64_t bytes = 0;
  double seconds = 0;
  // Whose API keys, address rules and service mode the restored catalog holds: "live" (the
  // default: the ones of the directory being replaced, so that keys revoked and created since
  // the snapshot stay so), "snapshot" (asked for, or nothing to keep: no live catalog), or
  // "snapshot (the live catalog could not be read: ...)".
  std::string security_state;
  // Which audit log the restored directory has (docs/format/AUDIT_LOG.md, "Backups"): "live"
  // (the replaced directory's, carried over: the trail is never rolled back), "snapshot" (there
  // was none live — a fresh volume, the host gone — so the snapshot's, verified before the swap),
  // or "none" (neither had one: the next entry starts a new log).
  std::string audit_log;
  // Problems after the restored directory is in place that did not fail the restore (the audit
  // log could not be carried over), for the caller to report; not part of ToJson (the report's
  // JSON is what `restore --json` prints, unchanged).
  std::vector<std::string> warnings;
  nlohmann::json ToJson() const;
};

// Restores `manifest` (a full snapshot) as `data_dir`: builds `<data_dir>.restoring-<time>`
// next to it (with the RESTORE_IN_PROGRESS marker), verifies every database against the
// manifest, moves an existing `data_dir` to `<data_dir>.before-restore-<time>` (never deleting
// it; a local repository under its `backups/` moves along into the restored directory), renames
// the new directory into place and removes the marker last. The audit log: when `data_dir` has
// one (and is a data directory: a lone audit log beside no catalog.db only records what was tried
// there, such as a failed restore, and stays in the moved-aside directory), the snapshot's copy
// is dropped and the live audit.db (its WAL, audit.head) is copied from
// the moved-aside directory into the restored one after the swap: it is the node's history, not
// data to roll back (failures: report.warnings, never fatal). When it has none, the snapshot's
// audit log stays in the restored directory, and its chain is verified before the swap like the
// databases (Corruption naming the entry if it is damaged, and snapshot_rejected: --latest-valid
// walks back past it; a chain that only records an earlier loss is taken, with a warning). The
// caller appends the restore event to the log afterwards. A server must not be running on
// `data_dir`. On any failure before the swap nothing at `data_dir` changed and the partial
// directory is removed.
//
// The security state — API keys, the address rules and the service mode (lockdown) — is the live
// one by default: a restore after a breach brings the data back, not the keys the breach made
// us revoke, and keeps the keys created since (the new admin key) and the lockdown. It is copied
// from the live catalog into the restored one before the swap. `security_state_from_snapshot`
// keeps the snapshot's instead (the report says which).
struct WholeRestoreOptions {
  bool security_state_from_snapshot = false;
  // If set: made true when the restore failed because of the snapshot's own data (its bytes in
  // the repository, or the restored databases failing their check), before anything at
  // `data_dir` changed: an older snapshot may still restore (RestoreLatestValidDataDirectory).
  bool* snapshot_rejected = nullptr;
};
Result<WholeRestoreReport> RestoreDataDirectory(repo::Repository& repo,
                                                const repo::SnapshotManifest& manifest,
                                                const std::string& data_dir,
                                                const Clock* clock = nullptr,
                                                const WholeRestoreOptions& options = {});

// Writes only the audit log of `manifest` (audit.db and, when it holds one, audit.head) into
// `target_dir` (empty or absent), every chunk checked as in any restore: what `audit verify |
// export --repo URL --snapshot ID` read. NotFound when the snapshot holds no audit log (a
// one-project or pre-restore snapshot, one of a data directory that had no audit log yet, or one
// written before audit logs were backed up).
Status RestoreAuditLog(repo::Repository& repo, const repo::SnapshotManifest& manifest,
                       const std::string& target_dir);

// ---------------------------------------------------------------------------------------------
// One project

struct ProjectRestoreOptions {
  bool merge = false;                // bring back only documents the live project no longer has
  bool pre_restore_snapshot = true;  // replace mode: snapshot the current state first
  // SourceOptions::index_max_lag of that snapshot (backup_index_max_lag).
  double index_max_lag = kDefaultIndexMaxLag;
  Actor actor{"system", "restore"};
  // As WholeRestoreOptions::snapshot_rejected: the project's restored files failed their check
  // (or could not be read from the repository) before the live project was touched.
  bool* snapshot_rejected = nullptr;
};

struct ProjectRestoreReport {
  std::string mode;  // "replace" | "merge"
  std::string snapshot_id;
  std::string project_id;
  std::string project_name;
  // replace mode
  std::string pre_restore_snapshot;  // id of the snapshot of the replaced state ("" if none)
  std::string moved_aside;           // where the replaced files were moved
  int64_t lsn = 0;
  int64_t documents = 0;
  // merge mode
  std::vector<std::string> restored_documents;
  std::vector<nlohmann::json> skipped_documents;  // {"id", "reason"}
  // Newer snapshots passed by on the way to this one (latest_valid), and why.
  std::vector<SkippedSnapshot> skipped_snapshots;
  double seconds = 0;
  nlohmann::json ToJson() const;
};

// Restores one project of `manifest` into the running (or directly opened) knowledge base `kb`,
// touching no other project. Replace mode: pre-restore snapshot of the live project into `repo`,
// restore + verify the files aside, then KnowledgeBase::ReplaceProject. Merge mode: imports each
// document live in the snapshot that the live project does not have at all (neither live nor
// soft-deleted), with its id, chunks and embeddings; a document whose source a live document
// owns is skipped; nothing live is modified.
Result<ProjectRestoreReport> RestoreProject(repo::Repository& repo,
                                            const repo::SnapshotManifest& manifest,
                                            const std::string& project, KnowledgeBase& kb,
                                            const ProjectRestoreOptions& options);

// ---------------------------------------------------------------------------------------------
// Choosing and restoring in one step (what the CLI, the server and --restore-if-empty call)

// Restores the snapshot `selector` names (SelectSnapshot). With latest_valid, a snapshot whose
// restored data fails its check — logical corruption that authenticated repository bytes cannot
// show, e.g. a damaged page the backup copied faithfully — is passed by too and the next older
// one tried, until one restores or none is left (NotFound naming every snapshot skipped). Any
// other failure (disk, lock, a running server) stops at once. `chosen` (may be null) receives
// the snapshot restored or last tried, and every snapshot skipped with its reason.
Result<WholeRestoreReport> RestoreDataDirectoryFrom(repo::Repository& repo,
                                                    const SnapshotSelector& selector,
                                                    const std::string& data_dir, const Clock* clock,
                                                    const WholeRestoreOptions& options,
                                                    Selection* chosen);
// The same for one project (selector.projects should name it).
Result<ProjectRestoreReport> RestoreProjectFrom(repo::Repository& repo,
                                                const SnapshotSelector& selector,
                                                const std::string& project, KnowledgeBase& kb,
                                                const ProjectRestoreOptions& options,
                                                Selection* chosen);

}  // namespace kb::backup
