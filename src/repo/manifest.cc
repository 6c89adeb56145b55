// SnapshotManifest <-> JSON (docs/format/BACKUP_REPOSITORY.md, "Snapshots"). FromJson checks
// every field a restore relies on: ids, paths (no traversal), sizes, tree ids, duplicates.
#include <set>

#include "common/clock.h"
#include "repo/crypto.h"
#include "repo/repository.h"
#include "repo/repository_format.h"

namespace kb::repo {

namespace {

using nlohmann::json;

Status Bad(const std::string& what) { return Status::Corruption("manifest: " + what); }

json FileToJson(const SnapshotFile& f) {
  return json{{"path", f.path}, {"size", f.size}, {"mode", f.mode}, {"trees", f.trees}};
}

Result<std::string> Str(const json& j, const char* field, const std::string& where) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) {
    return Bad(where + "\"" + field + "\" missing or not a string");
  }
  return it->get<std::string>();
}

// Optional strings: absent is "", present must be a string.
Result<std::string> OptStr(const json& j, const char* field, const std::string& where) {
  if (!j.contains(field)) return std::string();
  return Str(j, field, where);
}

Result<int64_t> Int(const json& j, const char* field, const std::string& where, bool required,
                    int64_t min = 0, int64_t max = INT64_MAX) {
  auto it = j.find(field);
  if (it == j.end()) {
    if (required) return Bad(where + "\"" + field + "\" missing");
    return int64_t{0};
  }
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
    return Bad(where + "\"" + field + "\" is not an integer");
  }
  int64_t v = it->get<int64_t>();
  if (v < min || v > max) return Bad(where + "\"" + field + "\" out of range");
  return v;
}

Result<json> Obj(const json& j, const char* field, const std::string& where) {
  if (!j.contains(field)) return json::object();
  const json& v = j.at(field);
  if (!v.is_object()) return Bad(where + "\"" + field + "\" is not an object");
  return v;
}

Result<SnapshotFile> FileFromJson(const json& j, const std::string& where) {
  if (!j.is_object()) return Bad(where + "file entry is not an object");
  SnapshotFile f;
  KB_ASSIGN_OR_RETURN(f.path, Str(j, "path", where));
  KB_RETURN_IF_ERROR(ValidateManifestPath(f.path, "manifest: " + where + "file"));
  std::string at = where + "file " + f.path + ": ";
  KB_ASSIGN_OR_RETURN(f.size, Int(j, "size", at, true));
  KB_ASSIGN_OR_RETURN(int64_t mode, Int(j, "mode", at, true, 0, 07777));
  f.mode = static_cast<int>(mode);
  auto trees = j.find("trees");
  if (trees == j.end() || !trees->is_array()) return Bad(at + "\"trees\" missing or not an array");
  for (const json& t : *trees) {
    if (!t.is_string() || !ChunkIdFromHex(t.get<std::string>())) {
      return Bad(at + "tree id is not 32 lower-case hex digits");
    }
    f.trees.push_back(t.get<std::string>());
  }
  if (f.size > 0 && f.trees.empty()) return Bad(at + "non-empty file without trees");
  if (f.size == 0 && !f.trees.empty()) return Bad(at + "empty file with trees");
  return f;
}

Result<std::vector<SnapshotFile>> FilesFromJson(const json& j, const std::string& where) {
  if (!j.is_array()) return Bad(where + "\"files\" is not an array");
  std::vector<SnapshotFile> files;
  std::set<std::string> paths;
  for (const json& f : j) {
    KB_ASSIGN_OR_RETURN(SnapshotFile file, FileFromJson(f, where));
    if (!paths.insert(file.path).second) return Bad(where + "file " + file.path + " listed twice");
    files.push_back(std::move(file));
  }
  // A path that is also a directory of another path cannot be restored.
  for (const std::string& p : paths) {
    auto next = paths.upper_bound(p + "/");
    if (next != paths.end() && next->compare(0, p.size() + 1, p + "/") == 0) {
      return Bad(where + "file " + p + " is also a directory of " + *next);
    }
  }
  return files;
}

Result<std::vector<std::string>> Strings(const json& j, const char* field,
                                         const std::string& where) {
  std::vector<std::string> out;
  if (!j.contains(field)) return out;
  const json& a = j[field];
  if (!a.is_array()) return Bad(where + "\"" + field + "\" is not an array");
  for (const json& e : a) {
    if (!e.is_string()) return Bad(where + "\"" + field + "\" holds a non-string");
    out.push_back(e.get<std::string>());
  }
  return out;
}

Result<SourceCheck> SourceCheckFromJson(const json& j, const std::string& project_where) {
  const std::string where = project_where + "source_check: ";
  if (!j.is_object()) return Bad(where + "not an object");
  SourceCheck c;
  KB_ASSIGN_OR_RETURN(c.result, Str(j, "result", where));
  KB_ASSIGN_OR_RETURN(c.checks, Strings(j, "checks", where));
  KB_ASSIGN_OR_RETURN(c.problems, Strings(j, "problems", where));
  KB_ASSIGN_OR_RETURN(c.duration_ms, Int(j, "duration_ms", where, false));
  return c;
}

json SourceCheckToJson(const SourceCheck& c) {
  return json{{"result", c.result},
              {"checks", c.checks},
              {"problems", c.problems},
              {"duration_ms", c.duration_ms}};
}

Result<ProjectSnapshot> ProjectFromJson(const json& j) {
  if (!j.is_object()) return Bad("project entry is not an object");
  ProjectSnapshot p;
  KB_ASSIGN_OR_RETURN(p.id, Str(j, "id", "project: "));
  KB_RETURN_IF_ERROR(ValidateProjectId(p.id, "manifest"));
  std::string where = "project " + p.id + ": ";
  KB_ASSIGN_OR_RETURN(p.name, OptStr(j, "name", where));
  if (j.contains("deleted")) {
    if (!j["deleted"].is_boolean()) return Bad(where + "\"deleted\" is not a boolean");
    p.deleted = j["deleted"].get<bool>();
  }
  KB_ASSIGN_OR_RETURN(p.catalog_row, Obj(j, "catalog_row", where));
  KB_ASSIGN_OR_RETURN(p.lsn, Int(j, "lsn", where, false));
  KB_ASSIGN_OR_RETURN(p.content_checksum, OptStr(j, "content_checksum", where));
  KB_ASSIGN_OR_RETURN(p.counts, Obj(j, "counts", where));
  KB_ASSIGN_OR_RETURN(p.embedder, Obj(j, "embedder", where));
  KB_ASSIGN_OR_RETURN(p.index_lsn, Int(j, "index_lsn", where, false));
  KB_ASSIGN_OR_RETURN(p.index_checksum, OptStr(j, "index_checksum", where));
  if (j.contains("source_check")) {
    KB_ASSIGN_OR_RETURN(p.source_check, SourceCheckFromJson(j["source_check"], where));
  }
  if (!j.contains("files")) return Bad(where + "\"files\" missing");
  KB_ASSIGN_OR_RETURN(p.files, FilesFromJson(j["files"], where));
  return p;
}

Result<SnapshotStats> StatsFromJson(const json& j) {
  SnapshotStats s;
  if (!j.is_object()) return Bad("\"stats\" is not an object");
  const std::string w = "stats: ";
  KB_ASSIGN_OR_RETURN(s.files, Int(j, "files", w, false));
  KB_ASSIGN_OR_RETURN(s.bytes, Int(j, "bytes", w, false));
  KB_ASSIGN_OR_RETURN(s.chunks, Int(j, "chunks", w, false));
  KB_ASSIGN_OR_RETURN(s.new_chunks, Int(j, "new_chunks", w, false));
  KB_ASSIGN_OR_RETURN(s.added_bytes, Int(j, "added_bytes", w, false));
  KB_ASSIGN_OR_RETURN(s.added_stored_bytes, Int(j, "added_stored_bytes", w, false));
  KB_ASSIGN_OR_RETURN(s.duration_ms, Int(j, "duration_ms", w, false));
  return s;
}

}  // namespace

json SnapshotManifest::ToJson() const {
  json catalog_json = json::array();
  for (const SnapshotFile& f : catalog_files) catalog_json.push_back(FileToJson(f));
  json projects_json = json::array();
  for (const ProjectSnapshot& p : projects) {
    json files = json::array();
    for (const SnapshotFile& f : p.files) files.push_back(FileToJson(f));
    json entry = json{{"id", p.id},
                      {"name", p.name},
                      {"deleted", p.deleted},
                      {"catalog_row", p.catalog_row},
                      {"lsn", p.lsn},
                      {"content_checksum", p.content_checksum},
                      {"counts", p.counts},
                      {"embedder", p.embedder},
                      {"index_lsn", p.index_lsn},
                      {"index_checksum", p.index_checksum},
                      {"files", files}};
    if (p.source_check.recorded()) entry["source_check"] = SourceCheckToJson(p.source_check);
    projects_json.push_back(std::move(entry));
  }
  json out{{"format", kSnapshotFormat},
           {"version", kSnapshotVersion},
           {"id", id},
           {"time", time},
           {"finished", finished},
           {"hostname", hostname},
           {"kb_version", kb_version},
           {"trigger", trigger},
           {"scope", scope},
           {"tags", tags},
           {"catalog", json{{"files", catalog_json}}},
           {"projects", projects_json},
           {"stats", json{{"files", stats.files},
                          {"bytes", stats.bytes},
                          {"chunks", stats.chunks},
                          {"new_chunks", stats.new_chunks},
                          {"added_bytes", stats.added_bytes},
                          {"added_stored_bytes", stats.added_stored_bytes},
                          {"duration_ms", stats.duration_ms}}}};
  // Written only by `repo copy`: a manifest of an ordinary backup stays byte-for-byte as before.
  if (!copied_from.repository.empty()) {
    out["copied_from"] = json{{"repository", copied_from.repository}, {"time", copied_from.time}};
  }
  return out;
}

Result<SnapshotManifest> SnapshotManifest::FromJson(const json& j) {
  if (!j.is_object()) return Bad("not a JSON object");
  KB_ASSIGN_OR_RETURN(std::string format, Str(j, "format", ""));
  if (format != kSnapshotFormat) return Bad("\"format\" is not " + std::string(kSnapshotFormat));
  KB_ASSIGN_OR_RETURN(int64_t version, Int(j, "version", "", true, 1));
  if (version > kSnapshotVersion)
    return VersionTooNew("snapshot manifest", version, kSnapshotVersion);
  if (version < kSnapshotVersion) {
    return Status::FailedPrecondition("snapshot manifest has unsupported format version " +
                                      std::to_string(version) + "; this binary reads version " +
                                      std::to_string(kSnapshotVersion));
  }
  SnapshotManifest m;
  KB_ASSIGN_OR_RETURN(m.id, Str(j, "id", ""));
  if (!IsSnapshotId(m.id)) return Bad("invalid snapshot id " + QuoteName(m.id));
  KB_ASSIGN_OR_RETURN(m.time, Str(j, "time", ""));
  if (!ParseIso8601(m.time)) return Bad("\"time\" is not an ISO-8601 time");
  KB_ASSIGN_OR_RETURN(m.finished, OptStr(j, "finished", ""));
  KB_ASSIGN_OR_RETURN(m.hostname, OptStr(j, "hostname", ""));
  KB_ASSIGN_OR_RETURN(m.kb_version, OptStr(j, "kb_version", ""));
  KB_ASSIGN_OR_RETURN(m.trigger, OptStr(j, "trigger", ""));
  KB_ASSIGN_OR_RETURN(m.scope, Str(j, "scope", ""));
  if (m.scope != "full" && m.scope != "projects") return Bad("unknown scope " + QuoteName(m.scope));
  if (j.contains("tags")) {
    if (!j["tags"].is_array()) return Bad("\"tags\" is not an array");
    for (const json& t : j["tags"]) {
      if (!t.is_string()) return Bad("a tag is not a string");
      m.tags.push_back(t.get<std::string>());
    }
  }
  KB_ASSIGN_OR_RETURN(json catalog, Obj(j, "catalog", ""));
  if (catalog.contains("files")) {
    KB_ASSIGN_OR_RETURN(m.catalog_files, FilesFromJson(catalog["files"], "catalog: "));
  }
  if (!j.contains("projects") || !j["projects"].is_array()) {
    return Bad("\"projects\" missing or not an array");
  }
  std::set<std::string> ids;
  for (const json& pj : j["projects"]) {
    KB_ASSIGN_OR_RETURN(ProjectSnapshot p, ProjectFromJson(pj));
    if (!ids.insert(p.id).second) return Bad("project " + p.id + " listed twice");
    m.projects.push_back(std::move(p));
  }
  if (j.contains("stats")) {
    KB_ASSIGN_OR_RETURN(m.stats, StatsFromJson(j["stats"]));
  }
  if (j.contains("copied_from")) {
    if (!j["copied_from"].is_object()) return Bad("\"copied_from\" is not an object");
    KB_ASSIGN_OR_RETURN(m.copied_from.repository,
                        Str(j["copied_from"], "repository", "copied_from: "));
    KB_ASSIGN_OR_RETURN(m.copied_from.time, OptStr(j["copied_from"], "time", "copied_from: "));
  }
  return m;
}

}  // namespace kb::repo
