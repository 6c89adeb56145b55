// The data directory's layout, spelled in exactly one place. Every path the server, the CLI, the
// backups and the checks use inside a data directory comes from a function here; no other code
// concatenates data-directory paths. Each function names its line of docs/ARCHITECTURE.md
// ("Data directory"); change both together.
//
// A snapshot in the backup repository records files by the same relative names
// (docs/format/BACKUP_REPOSITORY.md), so the relative forms live here too.
//
// Pure string functions: no file system access, safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace kb::layout {

// File and directory names inside a data directory.
inline constexpr char kCatalogDbName[] = "catalog.db";
inline constexpr char kProjectsDirName[] = "projects";
inline constexpr char kProjectDbName[] = "kb.db";
inline constexpr char kProjectIndexDirName[] = "index";
inline constexpr char kAuditDbName[] = "audit.db";
inline constexpr char kAuditHeadName[] = "audit.head";
inline constexpr char kLockName[] = "LOCK";
inline constexpr char kRestoreMarkerName[] = "RESTORE_IN_PROGRESS";
inline constexpr char kBackupsDirName[] = "backups";
inline constexpr char kRestoredAsideDirName[] = "restored-aside";
// A project directory being removed for good by the purge job is first renamed to this prefix
// plus its id, so that a crash mid-removal never leaves a half-removed directory under its id.
inline constexpr char kPurgingPrefix[] = ".purging-";

inline std::string Join(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (!out.empty() && out.back() != '/') out += '/';
  out += name;
  return out;
}

// <data>/catalog.db — projects, API keys, settings (SQLite, WAL).
inline std::string CatalogDb(std::string_view data_dir) { return Join(data_dir, kCatalogDbName); }

// <data>/projects/ — one directory per project.
inline std::string ProjectsDir(std::string_view data_dir) {
  return Join(data_dir, kProjectsDirName);
}

// <data>/projects/<project-id>/ — a project's files.
inline std::string ProjectDir(std::string_view data_dir, std::string_view project_id) {
  return Join(ProjectsDir(data_dir), project_id);
}

// <data>/projects/.purging-<project-id>/ — a project directory on its way out (purge job).
inline std::string PurgingProjectDir(std::string_view data_dir, std::string_view project_id) {
  return Join(ProjectsDir(data_dir), std::string(kPurgingPrefix) + std::string(project_id));
}

// <project-dir>/kb.db — documents, chunks, FTS5, journal (SQLite, WAL).
inline std::string ProjectDbIn(std::string_view project_dir) {
  return Join(project_dir, kProjectDbName);
}

// <data>/projects/<project-id>/kb.db
inline std::string ProjectDb(std::string_view data_dir, std::string_view project_id) {
  return ProjectDbIn(ProjectDir(data_dir, project_id));
}

// <project-dir>/index/ — the saved vector index (derived, rebuildable).
inline std::string ProjectIndexDirIn(std::string_view project_dir) {
  return Join(project_dir, kProjectIndexDirName);
}

// "projects/<project-id>/" — a project's files relative to the data directory, as a snapshot
// names them (ends with '/').
inline std::string RelativeProjectDir(std::string_view project_id) {
  return std::string(kProjectsDirName) + "/" + std::string(project_id) + "/";
}

// "projects/<project-id>/kb.db" relative to the data directory (messages, snapshot files).
inline std::string RelativeProjectDb(std::string_view project_id) {
  return RelativeProjectDir(project_id) + kProjectDbName;
}

// <data>/audit.db — the audit log's hash chain (SQLite, WAL).
inline std::string AuditDb(std::string_view data_dir) { return Join(data_dir, kAuditDbName); }

// <data>/audit.head — the audit log's newest seq + hash, a second copy.
inline std::string AuditHead(std::string_view data_dir) { return Join(data_dir, kAuditHeadName); }

// <data>/LOCK — flock held by `serve` (and by restores): one owner at a time.
inline std::string LockFile(std::string_view data_dir) { return Join(data_dir, kLockName); }

// <data>/RESTORE_IN_PROGRESS — present while a whole restore builds a directory; a data
// directory that still has it is a restore that did not finish and is refused at open.
inline std::string RestoreMarker(std::string_view data_dir) {
  return Join(data_dir, kRestoreMarkerName);
}

// <data>/backups/ — the server's local default backup repository and its key.
inline std::string BackupsDir(std::string_view data_dir) { return Join(data_dir, kBackupsDirName); }

// <data>/backups/repository/ — the local repository when none is configured.
inline std::string LocalRepositoryDir(std::string_view data_dir) {
  return Join(BackupsDir(data_dir), "repository");
}

// <data>/backups/repository.key — its generated key (local default only).
inline std::string LocalRepositoryKey(std::string_view data_dir) {
  return Join(BackupsDir(data_dir), "repository.key");
}

// <data>/restored-aside/ — a project's files replaced by a single-project restore.
inline std::string RestoredAsideDir(std::string_view data_dir) {
  return Join(data_dir, kRestoredAsideDirName);
}

// <data>/restored-aside/<project-id>-<time>/
inline std::string RestoredAsideFor(std::string_view data_dir, std::string_view project_id,
                                    std::string_view stamp) {
  return Join(RestoredAsideDir(data_dir), std::string(project_id) + "-" + std::string(stamp));
}

// <data>.before-restore-<time>/ — beside the data directory: what a whole restore replaced.
inline std::string BeforeRestoreDir(std::string_view data_dir, std::string_view stamp) {
  std::string dir(data_dir);
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir + ".before-restore-" + std::string(stamp);
}

}  // namespace kb::layout
