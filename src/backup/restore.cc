// Restore orchestration. See restore.h and docs/BACKUP.md.
#include "backup/restore.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "backup/restore_check.h"
#include "backup/source.h"
#include "common/crypto_util.h"
#include "common/data_layout.h"
#include "common/dir_lock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "store/project_reader.h"
#include "store/project_store.h"
#include "store/sqlite.h"

namespace kb::backup {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// "20261126T130501Z": for directory names that sort by time.
std::string CompactTime(int64_t ms) {
  std::string iso = FormatIso8601(ms);  // 2026-11-26T13:05:01.123Z
  std::string out;
  for (char c : iso.substr(0, 19)) {
    if (c != '-' && c != ':') out += c;
  }
  return out + "Z";
}

std::string ParentDir(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.has_filename()) return p.parent_path().empty() ? "." : p.parent_path().string();
  return p.parent_path().parent_path().string();
}

std::string WithoutTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

bool ContainsAll(const repo::SnapshotManifest& m, const std::vector<std::string>& projects) {
  for (const std::string& p : projects) {
    if (!FindProject(m, p).ok()) return false;
  }
  return true;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

// Reads the newest journal position of a (possibly damaged) project database without modifying
// it. Any failure means "unreadable".
void ReadNewestCommit(const std::string& db_path, ProjectLoss* loss) {
  auto reader = store::ProjectReader::Open(db_path);
  if (!reader.ok()) return;
  auto newest = (*reader)->NewestCommit();
  if (!newest.ok() || !newest->has_value()) return;
  loss->damaged_lsn = (*newest)->lsn;
  loss->damaged_last_commit = FormatIso8601((*newest)->ts_ms);
}

DataLossWindow MeasureDataLoss(const repo::SnapshotManifest& manifest, const std::string& old_dir) {
  DataLossWindow w;
  w.restored_point = manifest.time;
  for (const repo::ProjectSnapshot& p : manifest.projects) {
    ProjectLoss loss;
    loss.project_id = p.id;
    loss.name = p.name;
    loss.restored_lsn = p.lsn;
    std::string db = layout::ProjectDb(old_dir, p.id);
    if (PathExists(db)) ReadNewestCommit(db, &loss);
    if (loss.damaged_lsn > p.lsn) w.lost_entries += loss.damaged_lsn - p.lsn;
    if (loss.damaged_last_commit > w.newest_damaged_commit) {
      w.newest_damaged_commit = loss.damaged_last_commit;
    }
    w.projects.push_back(loss);
  }
  return w;
}

// A fresh directory for temporary work below `parent` (same filesystem as the data).
Result<std::string> MakeWorkDir(const std::string& parent, const std::string& prefix) {
  KB_RETURN_IF_ERROR(MakeDirs(parent));
  std::string dir = parent + "/" + prefix + HexEncode(RandomBytes(6));
  KB_RETURN_IF_ERROR(MakeDirs(dir));
  return dir;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Result<const repo::ProjectSnapshot*> FindProject(const repo::SnapshotManifest& manifest,
                                                 const std::string& id_or_name) {
  const repo::ProjectSnapshot* by_name = nullptr;
  for (const repo::ProjectSnapshot& p : manifest.projects) {
    if (p.id == id_or_name) return &p;
    if (p.name == id_or_name && (!by_name || (by_name->deleted && !p.deleted))) by_name = &p;
  }
  if (by_name) return by_name;
  return Status::NotFound("snapshot " + manifest.id + " has no project '" + id_or_name + "'");
}

namespace {

// What the backup's source check found wrong with the projects of `m` that a restore of
// `wanted` (ids or names; empty: all) needs; "" when none failed.
std::string DamagedSources(const repo::SnapshotManifest& m,
                           const std::vector<std::string>& wanted) {
  std::vector<std::string> found;
  for (const repo::ProjectSnapshot& p : m.projects) {
    if (!p.source_check.failed()) continue;
    bool needed = wanted.empty();
    for (const std::string& w : wanted) needed = needed || w == p.id || w == p.name;
    if (!needed) continue;
    found.push_back("project " + p.name + ": " +
                    (p.source_check.problems.empty() ? "result " + p.source_check.result
                                                     : Join(p.source_check.problems, "; ")));
  }
  if (found.empty()) return "";
  return "its backup found the live data damaged (source check failed): " + Join(found, " | ");
}

}  // namespace

Result<Selection> SelectSnapshot(repo::Repository& repo, const SnapshotSelector& selector) {
  Selection out;
  if (!selector.snapshot_id.empty()) {
    KB_ASSIGN_OR_RETURN(out.manifest, repo.ReadSnapshot(selector.snapshot_id));
    if (selector.need_full && out.manifest.scope != "full") {
      return Status::FailedPrecondition("snapshot " + selector.snapshot_id +
                                        " holds only some projects; a whole restore needs a "
                                        "full snapshot (or use --project)");
    }
    if (!ContainsAll(out.manifest, selector.projects)) {
      return Status::NotFound("snapshot " + selector.snapshot_id + " does not hold project(s) " +
                              Join(selector.projects, ", "));
    }
    return out;
  }
  KB_ASSIGN_OR_RETURN(std::vector<repo::SnapshotSummary> all, repo.ListSnapshots());
  for (auto it = all.rbegin(); it != all.rend(); ++it) {  // newest first
    const repo::SnapshotSummary& s = *it;
    if (selector.before_ms) {
      auto t = ParseIso8601(s.time);
      if (!t || *t >= *selector.before_ms) continue;
    }
    if (selector.need_full && s.scope != "full") continue;
    if (selector.exclude.count(s.id)) continue;
    auto manifest = repo.ReadSnapshot(s.id);
    if (!manifest.ok()) {
      if (!selector.latest_valid) return manifest.status();
      out.skipped.push_back({s.id, manifest.status().ToString()});
      continue;
    }
    if (!ContainsAll(*manifest, selector.projects)) continue;
    if (selector.latest_valid) {
      // Its backup found a source it copied damaged: known bad, not worth downloading.
      if (std::string why = DamagedSources(*manifest, selector.projects); !why.empty()) {
        out.skipped.push_back({s.id, why});
        LogWarn("snapshot holds a source its backup found damaged; trying an older one",
                json{{"snapshot", s.id}, {"problems", why}}.dump());
        continue;
      }
      repo::VerifyOptions vo;
      vo.data = repo::VerifyOptions::Data::kAll;
      auto reports = repo.Verify({s.id}, vo);
      if (!reports.ok()) {
        out.skipped.push_back({s.id, reports.status().ToString()});
        continue;
      }
      if (reports->empty() || !reports->front().ok) {
        std::string why = reports->empty() ? "not verified" : Join(reports->front().problems, "; ");
        out.skipped.push_back({s.id, why});
        LogWarn("snapshot failed verification; trying an older one",
                json{{"snapshot", s.id}, {"problems", why}}.dump());
        continue;
      }
    }
    out.manifest = std::move(manifest).value();
    return out;
  }
  std::string what = selector.latest_valid ? "no snapshot that verifies" : "no snapshot";
  if (selector.before_ms) what += " taken before " + FormatIso8601(*selector.before_ms);
  if (selector.need_full) what += " (full)";
  if (!selector.projects.empty()) what += " holding " + Join(selector.projects, ", ");
  if (!out.skipped.empty()) {
    what += "; skipped:";
    for (const SkippedSnapshot& s : out.skipped) what += " " + s.id + " (" + s.reason + ")";
  }
  return Status::NotFound(what + " in " + repo.Describe());
}

// ---------------------------------------------------------------------------------------------

json ProjectRecordToJson(const ProjectRecord& r) {
  json j = {{"id", r.id},
            {"name", r.name},
            {"description", r.description},
            {"metadata_json", r.metadata_json},
            {"embedder_spec_json", r.embedder_spec_json},
            {"embedder_name", r.embedder_name},
            {"embedding_dimension", r.embedding_dimension},
            {"embedder_fingerprint", r.embedder_fingerprint},
            {"chunk_size", r.chunk_size},
            {"chunk_overlap", r.chunk_overlap},
            {"created_at_ms", r.created_at_ms},
            {"updated_at_ms", r.updated_at_ms},
            {"deleted_by", r.deleted_by}};
  j["deleted_at_ms"] = r.deleted_at_ms ? json(*r.deleted_at_ms) : json(nullptr);
  return j;
}

Result<ProjectRecord> ProjectRecordFromJson(const json& j) {
  try {
    ProjectRecord r;
    r.id = j.at("id").get<std::string>();
    r.name = j.at("name").get<std::string>();
    r.description = j.value("description", "");
    r.metadata_json = j.value("metadata_json", "{}");
    r.embedder_spec_json = j.at("embedder_spec_json").get<std::string>();
    r.embedder_name = j.value("embedder_name", "");
    r.embedding_dimension = j.at("embedding_dimension").get<int>();
    r.embedder_fingerprint = j.at("embedder_fingerprint").get<std::string>();
    r.chunk_size = j.value("chunk_size", 1000);
    r.chunk_overlap = j.value("chunk_overlap", 200);
    r.created_at_ms = j.value("created_at_ms", int64_t{0});
    r.updated_at_ms = j.value("updated_at_ms", int64_t{0});
    if (j.contains("deleted_at_ms") && !j["deleted_at_ms"].is_null()) {
      r.deleted_at_ms = j["deleted_at_ms"].get<int64_t>();
    }
    r.deleted_by = j.value("deleted_by", "");
    if (r.embedding_dimension <= 0) return Status::Corruption("catalog row: bad dimension");
    return r;
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("snapshot catalog row unreadable: ") + e.what());
  }
}

std::vector<std::string> CheckProjectMatchesSnapshot(const std::string& project_dir,
                                                     const repo::ProjectSnapshot& meta) {
  auto record = ProjectRecordFromJson(meta.catalog_row);
  if (!record.ok()) return {record.status().ToString()};
  const std::string who = "project " + meta.name + ": ";
  auto opened = store::ProjectReader::Open(layout::ProjectDbIn(project_dir));
  if (!opened.ok()) return {who + opened.status().ToString()};
  store::ProjectReader& reader = **opened;
  // Every page and row is read once: through read(), not the memory map (sql::Database).
  auto scan = reader.database()->BeginFullScan();
  if (!scan.ok()) return {who + scan.status().ToString()};
  // One snapshot: the file is not expected to change, but every finding is about one state.
  if (Status s = reader.BeginSnapshot(); !s.ok()) return {who + s.ToString()};
  auto stored = reader.Meta();
  if (!stored.ok()) return {who + stored.status().ToString()};
  if (stored->project_id != meta.id) {
    return {who + "the database belongs to project " + stored->project_id + ", not " + meta.id};
  }
  if (stored->dimension != record->embedding_dimension) {
    return {who + "the database holds embeddings of dimension " +
            std::to_string(stored->dimension) + ", the snapshot's catalog row says " +
            std::to_string(record->embedding_dimension)};
  }

  std::vector<std::string> problems;
  if (Status s = reader.CheckIntegrity(); !s.ok()) problems.push_back(who + s.ToString());
  // The rows must sum to the maintained checksum, and that must be the one the snapshot
  // recorded (when it recorded one).
  auto recomputed = reader.RecomputeContentChecksum();
  if (!recomputed.ok()) {
    problems.push_back(who + recomputed.status().ToString());
  } else if (*recomputed != stored->content_checksum) {
    problems.push_back(
        who +
        Status::Corruption(reader.path() + ": content checksum recomputed from the rows is " +
                           *recomputed + ", the maintained one is " + stored->content_checksum)
            .ToString());
  } else if (!meta.content_checksum.empty() && *recomputed != meta.content_checksum) {
    problems.push_back(who + "content checksum " + *recomputed + " differs from the snapshot's " +
                       meta.content_checksum);
  }
  if (stored->last_lsn != meta.lsn) {
    problems.push_back(who + "journal LSN " + std::to_string(stored->last_lsn) +
                       " differs from the snapshot's " + std::to_string(meta.lsn));
  }
  auto counts = reader.Counts();
  if (!counts.ok()) {
    problems.push_back(who + counts.status().ToString());
  } else {
    auto differs = [&](const char* key, int64_t value, const std::string& what) {
      auto it = meta.counts.find(key);
      if (it == meta.counts.end() || !it->is_number_integer() || it->get<int64_t>() == value) {
        return;
      }
      problems.push_back(who + std::to_string(value) + " " + what + ", the snapshot recorded " +
                         it->dump());
    };
    differs("documents", counts->documents, "live documents");
    differs("chunks", counts->chunks, "live chunks");
    differs("deleted_documents", counts->deleted_documents, "deleted documents");
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

json DataLossWindow::ToJson() const {
  json projects_json = json::array();
  for (const ProjectLoss& p : projects) {
    projects_json.push_back(
        {{"project_id", p.project_id},
         {"name", p.name},
         {"restored_lsn", p.restored_lsn},
         {"damaged_lsn", p.damaged_lsn < 0 ? json(nullptr) : json(p.damaged_lsn)},
         {"damaged_last_commit", p.damaged_last_commit}});
  }
  return {{"restored_point", restored_point},
          {"newest_damaged_commit", newest_damaged_commit},
          {"lost_journal_entries", lost_entries},
          {"projects", projects_json}};
}

json WholeRestoreReport::ToJson() const {
  return {{"snapshot", snapshot_id},
          {"data_dir", data_dir},
          {"moved_aside", moved_aside},
          {"data_loss_window", window.ToJson()},
          {"security_state", security_state},
          {"audit_log", audit_log},
          {"bytes", bytes},
          {"seconds", seconds}};
}

namespace {

// The columns `table` has in schema `db_name` of `db`.
Result<std::vector<std::string>> ColumnsOf(sql::Database* db, const std::string& db_name,
                                           const std::string& table) {
  KB_ASSIGN_OR_RETURN(auto st, db->Prepare("SELECT name FROM pragma_table_info(?1, ?2)"));
  st.Bind(1, table).Bind(2, db_name);
  std::vector<std::string> out;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(st.ColumnText(0));
  }
  return out;
}

// Replaces the API keys and the containment settings of the catalog `restored` with those of
// `live`, in one transaction (the columns both schemas have: a snapshot from an older binary
// has an older catalog schema; the server migrates it at its next open).
Status CopySecurityState(const std::string& live, const std::string& restored) {
  KB_ASSIGN_OR_RETURN(auto db, sql::Database::Open(restored));
  KB_ASSIGN_OR_RETURN(auto st, db->Prepare("ATTACH DATABASE ?1 AS live"));
  st.Bind(1, live);
  KB_RETURN_IF_ERROR(st.Run());
  KB_ASSIGN_OR_RETURN(std::vector<std::string> ours, ColumnsOf(db.get(), "main", "api_keys"));
  KB_ASSIGN_OR_RETURN(std::vector<std::string> theirs, ColumnsOf(db.get(), "live", "api_keys"));
  if (ours.empty() || theirs.empty()) return Status::Corruption("no api_keys table");
  std::string columns;
  for (const std::string& c : ours) {
    if (std::find(theirs.begin(), theirs.end(), c) == theirs.end()) continue;
    if (!columns.empty()) columns += ", ";
    columns += "\"" + c + "\"";  // names from SQLite's own schema
  }
  KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db.get()));
  KB_RETURN_IF_ERROR(db->Exec("DELETE FROM main.api_keys"));
  KB_RETURN_IF_ERROR(db->Exec("INSERT INTO main.api_keys (" + columns + ") SELECT " + columns +
                              " FROM live.api_keys"));
  KB_RETURN_IF_ERROR(db->Exec("DELETE FROM main.settings WHERE key LIKE 'containment.%'"));
  KB_RETURN_IF_ERROR(
      db->Exec("INSERT INTO main.settings (key, value) SELECT key, value FROM "
               "live.settings WHERE key LIKE 'containment.%'"));
  // Committed: the state is copied whatever the detach says (the connection closes next).
  return tx.Commit();
}

// A whole restore moves the old data directory aside, audit log included; the log is history of
// this node, not state to roll back, so it is copied into the restored directory (the copy in
// the moved-aside directory stays for forensics). Failures become warnings, never fatal: the
// restored data is in place and complete by now; the caller reports them (the CLI prints them as
// it did when it carried the log over itself).
// Returns whether the log is in `to_dir` now.
bool CarryAuditLogOver(const std::string& from_dir, const std::string& to_dir,
                       std::vector<std::string>* warnings) {
  namespace fs = std::filesystem;
  if (from_dir.empty() || !fs::exists(layout::AuditDb(from_dir))) return false;
  for (const std::string& name :
       {std::string(layout::kAuditDbName), std::string(layout::kAuditDbName) + "-wal",
        std::string(layout::kAuditHeadName)}) {
    const fs::path from = fs::path(from_dir) / name;
    if (!fs::exists(from)) continue;
    std::error_code ec;
    fs::copy_file(from, fs::path(to_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      std::ostringstream text;  // the path quoted, as `std::cerr << path` printed it before
      text << "could not carry the audit log over: " << from << ": " << ec.message();
      warnings->push_back(text.str());
      return false;
    }
    Status synced = FsyncPath((fs::path(to_dir) / name).string());
    if (!synced.ok()) warnings->push_back(synced.ToString());
  }
  Status synced = FsyncPath(to_dir);
  if (!synced.ok()) warnings->push_back(synced.ToString());
  return true;
}

// The audit log's files in a data directory (SQLite's WAL and shared-memory index included).
std::vector<std::string> AuditLogFiles(const std::string& dir) {
  const std::string db = layout::AuditDb(dir);
  return {db, db + "-wal", db + "-shm", db + "-journal", layout::AuditHead(dir)};
}

// Which audit log a whole restore gives the restored directory `staging` (restore.h): the live
// one (the snapshot's copy is dropped now, so that no file of it — a head naming other entries —
// mixes with the live log carried over after the swap), or the snapshot's, verified, or none.
// A live audit log in a directory without catalog.db is not a node's trail (that directory never
// served, or lost everything): it only records what was tried on it, typically a failed restore
// ("data.restore" failed). Kept in place it would push out the trail the snapshot brings back, so
// the snapshot's is taken and the lone log stays in the moved-aside directory `aside`, said in a
// warning.
Result<std::string> ChooseAuditLog(const std::string& data_dir, const std::string& staging,
                                   const std::string& aside, std::vector<std::string>* warnings) {
  const bool live = PathExists(layout::AuditDb(data_dir));
  const bool snapshot_has = PathExists(layout::AuditDb(staging));
  if (live && snapshot_has && !PathExists(layout::CatalogDb(data_dir))) {
    warnings->push_back("the audit log found in " + data_dir +
                        " (a directory without catalog.db) was not kept: it stays in " + aside +
                        "; the restored directory has the snapshot's");
  } else if (live) {
    for (const std::string& path : AuditLogFiles(staging)) {
      if (std::remove(path.c_str()) != 0 && errno != ENOENT) {
        return Status::IOError("removing the snapshot's " + path + ": " + std::strerror(errno));
      }
    }
    return std::string("live");
  }
  if (!snapshot_has) return std::string("none");
  std::string recorded_loss;
  std::vector<std::string> problems = CheckRestoredAuditLog(staging, &recorded_loss);
  if (!problems.empty()) {
    return Status::Corruption("the snapshot's audit log failed verification (" +
                              Join(problems, "; ") +
                              "); `knowledgebeast audit verify --repo URL --snapshot ID` "
                              "shows it; restore another snapshot");
  }
  if (!recorded_loss.empty()) {
    warnings->push_back("the restored audit log records an earlier loss: " + recorded_loss);
  }
  return std::string("snapshot");
}

}  // namespace

Result<WholeRestoreReport> RestoreDataDirectory(repo::Repository& repo,
                                                const repo::SnapshotManifest& manifest,
                                                const std::string& data_dir_in, const Clock* clock,
                                                const WholeRestoreOptions& options) {
  if (!clock) clock = SystemClock::Default();
  if (manifest.scope != "full") {
    return Status::FailedPrecondition("snapshot " + manifest.id +
                                      " holds only some projects; restore them with --project");
  }
  const int64_t started = MonotonicMicros();
  const std::string data_dir = WithoutTrailingSlash(data_dir_in);
  // Two restores within one second must not meet at the same names: "-2", "-3", ... then.
  std::string stamp = CompactTime(clock->NowMillis());
  for (int n = 2; PathExists(data_dir + ".restoring-" + stamp) ||
                  PathExists(layout::BeforeRestoreDir(data_dir, stamp));
       ++n) {
    if (n > 100) return Status::AlreadyExists(data_dir + ".restoring-" + stamp + " exists");
    stamp = CompactTime(clock->NowMillis()) + "-" + std::to_string(n);
  }
  const std::string staging = data_dir + ".restoring-" + stamp;
  KB_RETURN_IF_ERROR(MakeDirs(ParentDir(data_dir)));

  // Held from before the download until the old directory has moved aside: a server running on
  // it is refused up front (before gigabytes are fetched), and none can start on it meanwhile.
  // The restored directory is protected by its RESTORE_IN_PROGRESS marker until it is complete.
  std::unique_ptr<DataDirLock> lock;
  if (PathExists(data_dir)) {
    KB_ASSIGN_OR_RETURN(lock, DataDirLock::Acquire(data_dir, "restore"));
  }
  WholeRestoreReport report;
  report.snapshot_id = manifest.id;
  report.data_dir = data_dir;
  auto fail = [&](Status s) {
    RemoveTree(staging);
    return s;
  };
  auto rejected = [&](Status s) {
    if (options.snapshot_rejected) *options.snapshot_rejected = true;
    return fail(std::move(s));
  };
  if (Status s = repo.RestoreFiles(manifest, {}, staging); !s.ok()) {
    return s.code() == Code::kCorruption ? rejected(s) : fail(s);
  }
  json marker = {{"snapshot", manifest.id}, {"started", FormatIso8601(clock->NowMillis())}};
  if (Status s = AtomicWriteFile(layout::RestoreMarker(staging), marker.dump()); !s.ok()) {
    return fail(s);
  }
  std::vector<std::string> problems;
  for (const repo::ProjectSnapshot& p : manifest.projects) {
    for (std::string& problem : CheckProjectMatchesSnapshot(layout::ProjectDir(staging, p.id), p)) {
      problems.push_back(std::move(problem));
    }
    for (const repo::SnapshotFile& f : p.files) report.bytes += f.size;
  }
  for (const repo::SnapshotFile& f : manifest.catalog_files) report.bytes += f.size;
  if (!problems.empty()) {
    return rejected(Status::Corruption("restored snapshot " + manifest.id +
                                       " failed verification: " + Join(problems, "; ")));
  }
  // The live audit log if there is one, else the snapshot's, checked before the swap. A damaged
  // chain is the snapshot's own data failing its check (Corruption): --latest-valid passes it by
  // like a failing database; an I/O error is not.
  {
    auto chosen = ChooseAuditLog(data_dir, staging, layout::BeforeRestoreDir(data_dir, stamp),
                                 &report.warnings);
    if (!chosen.ok()) {
      Status s = chosen.status().WithContext("restored snapshot " + manifest.id);
      return s.code() == Code::kCorruption ? rejected(s) : fail(s);
    }
    report.audit_log = std::move(chosen).value();
  }
  // The security state of now, unless asked otherwise (restore.h).
  const std::string live_catalog = layout::CatalogDb(data_dir);
  if (options.security_state_from_snapshot) {
    report.security_state = "snapshot";
    report.warnings.push_back(
        "the restored API keys, address rules and service mode are the snapshot's: keys revoked "
        "since the snapshot work again and keys created since do not; check them now");
  } else if (!PathExists(live_catalog)) {
    report.security_state = "snapshot";  // nothing live to keep
  } else if (Status s = CopySecurityState(live_catalog, layout::CatalogDb(staging)); s.ok()) {
    report.security_state = "live";
  } else {
    // The live catalog is damaged (the reason for the restore, perhaps): the snapshot's keys are
    // all there is. Said loudly; the restore goes on.
    report.security_state = "snapshot (the live catalog could not be read: " + s.ToString() + ")";
    report.warnings.push_back(
        "the live API keys, address rules and service mode could not be kept (" + s.ToString() +
        "): the restored ones are the snapshot's; check them now");
  }
  if (PathExists(data_dir)) {
    report.window = MeasureDataLoss(manifest, data_dir);
    report.moved_aside = layout::BeforeRestoreDir(data_dir, stamp);
    if (Status s = RenamePath(data_dir, report.moved_aside); !s.ok()) return fail(s);
    // The server's default local repository lives under the data directory: keep it with the
    // restored data rather than in the forensic copy.
    std::string old_repo = layout::BackupsDir(report.moved_aside);
    if (PathExists(old_repo)) (void)RenamePath(old_repo, layout::BackupsDir(staging));
  } else {
    report.window.restored_point = manifest.time;
  }
  KB_RETURN_IF_ERROR(RenamePath(staging, data_dir));
  KB_RETURN_IF_ERROR(FsyncPath(ParentDir(data_dir)));
  // The last step: without the marker the directory is a finished restore.
  if (std::remove(layout::RestoreMarker(data_dir).c_str()) != 0) {
    return Status::IOError("removing the restore marker: " + std::string(std::strerror(errno)));
  }
  KB_RETURN_IF_ERROR(FsyncPath(data_dir));
  // The audit log is history, not data: it stays with the data directory across a restore.
  if (report.audit_log == "live" &&
      !CarryAuditLogOver(report.moved_aside, data_dir, &report.warnings)) {
    report.audit_log = "none";  // the warning says why; the restore event starts a new log
  }
  report.seconds = static_cast<double>(MonotonicMicros() - started) / 1e6;
  LogInfo("data directory restored", report.ToJson().dump());
  return report;
}

Status RestoreAuditLog(repo::Repository& repo, const repo::SnapshotManifest& manifest,
                       const std::string& target_dir) {
  // Only the audit files: a manifest that names nothing else (no projects, no catalog.db).
  repo::SnapshotManifest only_audit = manifest;
  only_audit.projects.clear();
  only_audit.catalog_files.clear();
  for (const repo::SnapshotFile& f : manifest.catalog_files) {
    if (f.path == layout::kAuditDbName || f.path == layout::kAuditHeadName) {
      only_audit.catalog_files.push_back(f);
    }
  }
  const bool has_db =
      std::any_of(only_audit.catalog_files.begin(), only_audit.catalog_files.end(),
                  [](const repo::SnapshotFile& f) { return f.path == layout::kAuditDbName; });
  if (!has_db) {
    return Status::NotFound(
        "snapshot " + manifest.id + " holds no audit log" +
        (manifest.scope == "full"
             ? " (its data directory had none, or it was taken before audit logs were backed up)"
             : " (only full snapshots hold one; this one holds some projects)"));
  }
  return repo.RestoreFiles(only_audit, {}, target_dir);
}

// ---------------------------------------------------------------------------------------------

json ProjectRestoreReport::ToJson() const {
  json skipped = json::array();
  for (const SkippedSnapshot& s : skipped_snapshots) {
    skipped.push_back({{"snapshot", s.id}, {"reason", s.reason}});
  }
  json j = {{"mode", mode},
            {"snapshot", snapshot_id},
            {"project_id", project_id},
            {"project", project_name},
            {"skipped_snapshots", std::move(skipped)},
            {"seconds", seconds}};
  if (mode == "replace") {
    j["pre_restore_snapshot"] = pre_restore_snapshot;
    j["moved_aside"] = moved_aside;
    j["lsn"] = lsn;
    j["documents"] = documents;
  } else {
    j["restored_documents"] = restored_documents;
    j["restored"] = restored_documents.size();
    j["skipped_documents"] = skipped_documents;
    j["skipped"] = skipped_documents.size();
  }
  return j;
}

namespace {

// Snapshots the live state of one project into `repo` before it is replaced.
Result<std::string> PreRestoreSnapshot(repo::Repository& repo, KnowledgeBase& kb,
                                       const std::string& project_id, double index_max_lag) {
  SourceOptions so;
  so.projects = {project_id};
  so.index_max_lag = index_max_lag;
  repo::BackupOptions bo;
  bo.trigger = "pre-restore";
  KB_ASSIGN_OR_RETURN(repo::SnapshotManifest m,
                      BackupDataDirectory(repo, kb.options().data_dir, so, bo));
  return m.id;
}

Status MergeDocuments(const std::string& snapshot_db, const repo::ProjectSnapshot& meta,
                      int dimension, KnowledgeBase& kb, const Actor& actor,
                      ProjectRestoreReport* report) {
  KB_ASSIGN_OR_RETURN(auto store, ProjectStore::Open(snapshot_db, meta.id, dimension, nullptr));
  constexpr int64_t kPage = 256;
  for (int64_t offset = 0;; offset += kPage) {
    KB_ASSIGN_OR_RETURN(std::vector<DocumentRecord> docs, store->ListDocuments(kPage, offset));
    for (DocumentRecord& doc : docs) {
      KB_ASSIGN_OR_RETURN(std::vector<ChunkRecord> chunks, store->GetDocumentChunks(doc.id));
      std::string id = doc.id;
      KB_ASSIGN_OR_RETURN(auto outcome, kb.ImportDocumentIfAbsent(meta.id, std::move(doc),
                                                                  std::move(chunks), actor));
      switch (outcome) {
        case KnowledgeBase::ImportOutcome::kImported:
          report->restored_documents.push_back(id);
          break;
        case KnowledgeBase::ImportOutcome::kExists:
          report->skipped_documents.push_back(
              {{"id", id}, {"reason", "exists in the live project"}});
          break;
        case KnowledgeBase::ImportOutcome::kSourceTaken:
          report->skipped_documents.push_back(
              {{"id", id}, {"reason", "a live document has the same source"}});
          break;
      }
    }
    if (static_cast<int64_t>(docs.size()) < kPage) break;
  }
  return Status::OK();
}

}  // namespace

Result<ProjectRestoreReport> RestoreProject(repo::Repository& repo,
                                            const repo::SnapshotManifest& manifest,
                                            const std::string& project, KnowledgeBase& kb,
                                            const ProjectRestoreOptions& options) {
  const int64_t started = MonotonicMicros();
  KB_ASSIGN_OR_RETURN(const repo::ProjectSnapshot* meta, FindProject(manifest, project));
  KB_ASSIGN_OR_RETURN(ProjectRecord record, ProjectRecordFromJson(meta->catalog_row));
  ProjectRestoreReport report;
  report.mode = options.merge ? "merge" : "replace";
  report.snapshot_id = manifest.id;
  report.project_id = meta->id;
  report.project_name = meta->name;

  const std::string data_dir = kb.options().data_dir;
  KB_ASSIGN_OR_RETURN(std::string work, MakeWorkDir(data_dir + "/.restore-work", "job-"));
  struct Cleanup {
    std::string dir;
    ~Cleanup() { RemoveTree(dir); }
  } cleanup{work};

  const std::string restored = work + "/files";
  auto rejected = [&](Status s) {
    if (options.snapshot_rejected) *options.snapshot_rejected = true;
    return s;
  };
  if (Status s = repo.RestoreFiles(manifest, {meta->id}, restored); !s.ok()) {
    return s.code() == Code::kCorruption ? rejected(s) : s;
  }
  const std::string staged = layout::ProjectDir(restored, meta->id);
  std::vector<std::string> problems = CheckProjectMatchesSnapshot(staged, *meta);
  if (!problems.empty()) {
    return rejected(Status::Corruption("restored project " + meta->name + " from snapshot " +
                                       manifest.id +
                                       " failed verification: " + Join(problems, "; ")));
  }

  if (options.merge) {
    auto live = kb.GetProject(meta->id);
    if (!live.ok()) {
      return Status::FailedPrecondition("project '" + meta->name +
                                        "' does not exist live; restore it without --merge");
    }
    KB_RETURN_IF_ERROR(MergeDocuments(layout::ProjectDbIn(staged), *meta,
                                      record.embedding_dimension, kb, options.actor, &report));
  } else {
    if (options.pre_restore_snapshot && kb.GetProject(meta->id).ok()) {
      KB_ASSIGN_OR_RETURN(report.pre_restore_snapshot,
                          PreRestoreSnapshot(repo, kb, meta->id, options.index_max_lag));
    }
    KB_RETURN_IF_ERROR(MakeDirs(layout::RestoredAsideDir(data_dir)));
    report.moved_aside = layout::RestoredAsideFor(
        data_dir, meta->id, CompactTime(kb.clock()->NowMillis()) + "-" + HexEncode(RandomBytes(3)));
    KB_RETURN_IF_ERROR(kb.ReplaceProject(record, staged, report.moved_aside, options.actor));
    if (!PathExists(report.moved_aside)) report.moved_aside.clear();
    report.lsn = meta->lsn;
    if (meta->counts.contains("documents")) report.documents = meta->counts["documents"];
  }
  report.seconds = static_cast<double>(MonotonicMicros() - started) / 1e6;
  LogInfo("project restored", report.ToJson().dump());
  return report;
}

// ---------------------------------------------------------------------------------------------
// Walking back past snapshots whose restored data fails its check

namespace {

// Chooses a snapshot and restores it with `attempt`; with latest_valid, a snapshot the attempt
// rejects (its data, not the environment, failed: `*rejected` true) is passed by and the next
// older one tried. `chosen` ends with the snapshot restored (or last tried) and every one skipped.
template <typename Report>
Result<Report> WalkBack(
    repo::Repository& repo, SnapshotSelector selector, Selection* chosen,
    const std::function<Result<Report>(const repo::SnapshotManifest&, bool* rejected)>& attempt) {
  std::vector<SkippedSnapshot> skipped;
  auto finish = [&](Selection* sel) {
    skipped.insert(skipped.end(), sel->skipped.begin(), sel->skipped.end());
    sel->skipped = skipped;
  };
  while (true) {
    auto selection = SelectSnapshot(repo, selector);
    if (!selection.ok()) {
      if (skipped.empty()) return selection.status();
      std::string also;
      for (const SkippedSnapshot& s : skipped) also += " " + s.id + " (" + s.reason + ")";
      return Status(selection.status().code(),
                    selection.status().message() + "; also skipped:" + also);
    }
    for (const SkippedSnapshot& s : selection->skipped) selector.exclude.insert(s.id);
    bool rejected = false;
    auto report = attempt(selection->manifest, &rejected);
    if (report.ok() || !rejected || !selector.latest_valid || !selector.snapshot_id.empty()) {
      finish(&*selection);
      if (chosen) *chosen = std::move(selection).value();
      return report;
    }
    // Logical damage the repository's bytes could not show: try an older snapshot.
    LogWarn(
        "restored snapshot failed its check; trying an older one",
        json{{"snapshot", selection->manifest.id}, {"error", report.status().ToString()}}.dump());
    skipped.insert(skipped.end(), selection->skipped.begin(), selection->skipped.end());
    skipped.push_back({selection->manifest.id, report.status().message()});
    selector.exclude.insert(selection->manifest.id);
  }
}

}  // namespace

Result<WholeRestoreReport> RestoreDataDirectoryFrom(repo::Repository& repo,
                                                    const SnapshotSelector& selector,
                                                    const std::string& data_dir, const Clock* clock,
                                                    const WholeRestoreOptions& options,
                                                    Selection* chosen) {
  return WalkBack<WholeRestoreReport>(repo, selector, chosen,
                                      [&](const repo::SnapshotManifest& m, bool* rejected) {
                                        WholeRestoreOptions o = options;
                                        o.snapshot_rejected = rejected;
                                        return RestoreDataDirectory(repo, m, data_dir, clock, o);
                                      });
}

Result<ProjectRestoreReport> RestoreProjectFrom(repo::Repository& repo,
                                                const SnapshotSelector& selector,
                                                const std::string& project, KnowledgeBase& kb,
                                                const ProjectRestoreOptions& options,
                                                Selection* chosen) {
  Selection local;
  if (!chosen) chosen = &local;
  auto report = WalkBack<ProjectRestoreReport>(
      repo, selector, chosen, [&](const repo::SnapshotManifest& m, bool* rejected) {
        ProjectRestoreOptions o = options;
        o.snapshot_rejected = rejected;
        return RestoreProject(repo, m, project, kb, o);
      });
  if (report.ok()) report->skipped_snapshots = chosen->skipped;
  return report;
}

}  // namespace kb::backup
