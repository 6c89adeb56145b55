// Catalog on SQLite: one connection behind a mutex. The catalog is small and read mostly by
// callers that cache hot rows, so a reader pool would buy nothing here.
#include "store/catalog.h"

#include <nlohmann/json.hpp>

#include "common/text_util.h"
#include "common/thread_annotations.h"
#include "store/migrations.h"
#include "store/sqlite.h"

namespace kb {

std::string_view KeyScopeName(KeyScope scope) {
  switch (scope) {
    case KeyScope::kRead:
      return "read";
    case KeyScope::kWrite:
      return "write";
    case KeyScope::kAdmin:
      return "admin";
  }
  return "read";
}

std::optional<KeyScope> ParseKeyScope(std::string_view name) {
  if (name == "read") return KeyScope::kRead;
  if (name == "write") return KeyScope::kWrite;
  if (name == "admin") return KeyScope::kAdmin;
  return std::nullopt;
}

namespace {

// Every row's first column, as text (the ids a SELECT found).
Result<std::vector<std::string>> FirstColumnTexts(sql::Statement& st) {
  std::vector<std::string> out;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back(st.ColumnText(0));
  }
}

constexpr std::string_view kProjectColumns =
    "id, name, description, metadata, embedder_spec, embedder_name, embedding_dimension, "
    "embedder_fingerprint, chunk_size, chunk_overlap, created_at, updated_at, deleted_at, "
    "deleted_by";
constexpr std::string_view kKeyColumns =
    "id, name, secret_hash, scope, projects, created_by, created_at, expires_at, revoked_at, "
    "last_used_at, revoked_reason, previous_secret_hash, previous_expires_at, rotated_at";

ProjectRecord ReadProject(const sql::Statement& st) {
  ProjectRecord p;
  p.id = st.ColumnText(0);
  p.name = st.ColumnText(1);
  p.description = st.ColumnText(2);
  p.metadata_json = st.ColumnText(3);
  p.embedder_spec_json = st.ColumnText(4);
  p.embedder_name = st.ColumnText(5);
  p.embedding_dimension = static_cast<int>(st.ColumnInt64(6));
  p.embedder_fingerprint = st.ColumnText(7);
  p.chunk_size = static_cast<int>(st.ColumnInt64(8));
  p.chunk_overlap = static_cast<int>(st.ColumnInt64(9));
  p.created_at_ms = st.ColumnInt64(10);
  p.updated_at_ms = st.ColumnInt64(11);
  p.deleted_at_ms = st.ColumnOptionalInt64(12);
  p.deleted_by = st.ColumnText(13);
  return p;
}

Result<ApiKeyRecord> ReadKey(const sql::Statement& st) {
  ApiKeyRecord k;
  k.id = st.ColumnText(0);
  k.name = st.ColumnText(1);
  k.secret_hash = st.ColumnText(2);
  auto scope = ParseKeyScope(st.ColumnText(3));
  if (!scope) return Status::Corruption("api key " + k.id + " has an unknown scope");
  k.scope = *scope;
  auto projects = nlohmann::json::parse(st.ColumnText(4), nullptr, false);
  if (projects.is_discarded() || !projects.is_array()) {
    return Status::Corruption("api key " + k.id + ": projects is not a JSON array");
  }
  for (const auto& p : projects) {
    if (!p.is_string()) return Status::Corruption("api key " + k.id + ": bad project id");
    k.projects.push_back(p.get<std::string>());
  }
  k.created_by = st.ColumnText(5);
  k.created_at_ms = st.ColumnInt64(6);
  k.expires_at_ms = st.ColumnOptionalInt64(7);
  k.revoked_at_ms = st.ColumnOptionalInt64(8);
  k.last_used_at_ms = st.ColumnOptionalInt64(9);
  k.revoked_reason = st.ColumnText(10);
  if (!st.ColumnIsNull(11)) k.previous_secret_hash = st.ColumnText(11);
  k.previous_expires_at_ms = st.ColumnOptionalInt64(12);
  k.rotated_at_ms = st.ColumnOptionalInt64(13);
  return k;
}

Status ValidateProject(const ProjectRecord& p) {
  if (p.id.empty()) return Status::InvalidArgument("a project needs an id");
  KB_RETURN_IF_ERROR(ValidateProjectName(p.name));
  auto meta = nlohmann::json::parse(p.metadata_json, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) {
    return Status::InvalidArgument("project metadata must be a JSON object");
  }
  if (!IsValidUtf8(p.description)) return Status::InvalidArgument("description is not UTF-8");
  return Status::OK();
}

class SqliteCatalog final : public Catalog {
 public:
  SqliteCatalog(std::unique_ptr<sql::Database> db, const Clock* clock)
      : db_(std::move(db)), clock_(clock) {}

  Status CreateProject(const ProjectRecord& p) override {
    KB_RETURN_IF_ERROR(ValidateProject(p));
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st,
                        db_->PrepareCached("INSERT INTO projects(" + std::string(kProjectColumns) +
                                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                                           "?10, ?11, ?12, ?13, ?14)"));
    st.Bind(1, p.id).Bind(2, p.name).Bind(3, p.description).Bind(4, p.metadata_json);
    st.Bind(5, p.embedder_spec_json).Bind(6, p.embedder_name).Bind(7, p.embedding_dimension);
    st.Bind(8, p.embedder_fingerprint).Bind(9, p.chunk_size).Bind(10, p.chunk_overlap);
    st.Bind(11, p.created_at_ms).Bind(12, p.updated_at_ms).Bind(13, p.deleted_at_ms);
    st.Bind(14, p.deleted_by);
    return NameClash(st.Run(), p.name);
  }

  Result<ProjectRecord> GetProject(const std::string& id_or_name, bool include_deleted) override {
    MutexLock lock(mu_);
    // An id match wins over a name match; among name matches the live one, then the latest
    // deleted one.
    KB_ASSIGN_OR_RETURN(auto st,
                        db_->PrepareCached("SELECT " + std::string(kProjectColumns) +
                                           " FROM projects WHERE (id = ?1 OR name = ?1) "
                                           "AND (?2 OR deleted_at IS NULL) "
                                           "ORDER BY id = ?1 DESC, deleted_at IS NULL DESC, "
                                           "deleted_at DESC LIMIT 1"));
    st.Bind(1, id_or_name).Bind(2, include_deleted ? 1 : 0);
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::NotFound("project '" + id_or_name + "' does not exist");
    return ReadProject(st);
  }

  Result<std::vector<ProjectRecord>> ListProjects(bool include_deleted) override {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st, db_->PrepareCached("SELECT " + std::string(kProjectColumns) +
                                                    " FROM projects WHERE ?1 OR deleted_at IS NULL "
                                                    "ORDER BY created_at, id"));
    st.Bind(1, include_deleted ? 1 : 0);
    std::vector<ProjectRecord> out;
    while (true) {
      KB_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      out.push_back(ReadProject(st));
    }
    return out;
  }

  Status UpdateProject(const ProjectRecord& p) override {
    KB_RETURN_IF_ERROR(ValidateProject(p));
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st,
                        db_->PrepareCached("UPDATE projects SET name = ?2, description = ?3, "
                                           "metadata = ?4, updated_at = ?5 WHERE id = ?1"));
    st.Bind(1, p.id).Bind(2, p.name).Bind(3, p.description).Bind(4, p.metadata_json);
    st.Bind(5, p.updated_at_ms != 0 ? p.updated_at_ms : clock_->NowMillis());
    KB_RETURN_IF_ERROR(NameClash(st.Run(), p.name));
    return ChangedOrNotFound("project " + p.id);
  }

  Status MarkProjectDeleted(const std::string& id, const std::string& actor, int64_t at_ms,
                            std::vector<std::string>* revoked_keys) override {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db_.get()));
    {
      KB_ASSIGN_OR_RETURN(
          auto st, db_->PrepareCached("UPDATE projects SET deleted_at = ?2, deleted_by = ?3, "
                                      "updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL"));
      st.Bind(1, id).Bind(2, at_ms).Bind(3, actor);
      KB_RETURN_IF_ERROR(st.Run());
      KB_RETURN_IF_ERROR(ChangedOrNotFound("live project " + id));
    }
    // The keys limited to this project: projects is a JSON array of ids (json_each is exact,
    // unlike a LIKE on the text).
    KB_ASSIGN_OR_RETURN(auto sel,
                        db_->PrepareCached("SELECT id FROM api_keys WHERE revoked_at IS NULL AND "
                                           "EXISTS (SELECT 1 FROM json_each(api_keys.projects) "
                                           "WHERE value = ?1) ORDER BY id"));
    sel.Bind(1, id);
    KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, FirstColumnTexts(sel));
    KB_ASSIGN_OR_RETURN(
        auto upd, db_->PrepareCached("UPDATE api_keys SET revoked_at = ?2, revoked_reason = ?3 "
                                     "WHERE id = ?1 AND revoked_at IS NULL"));
    for (const std::string& key : ids) {
      upd.Reset();
      upd.Bind(1, key).Bind(2, at_ms).Bind(3, kRevokedProjectDeleted);
      KB_RETURN_IF_ERROR(upd.Run());
    }
    KB_RETURN_IF_ERROR(tx.Commit());
    if (revoked_keys) *revoked_keys = std::move(ids);
    return Status::OK();
  }

  Status UnmarkProjectDeleted(const std::string& id) override {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(
        auto st, db_->PrepareCached("UPDATE projects SET deleted_at = NULL, deleted_by = '', "
                                    "updated_at = ?2 WHERE id = ?1 AND deleted_at IS NOT NULL"));
    st.Bind(1, id).Bind(2, clock_->NowMillis());
    Status s = st.Run();
    if (s.code() == Code::kAlreadyExists) {
      return Status::AlreadyExists("a live project took the name of project " + id + " meanwhile");
    }
    KB_RETURN_IF_ERROR(s);
    return ChangedOrNotFound("deleted project " + id);
  }

  Status DeleteProjectRow(const std::string& id) override {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st, db_->PrepareCached("DELETE FROM projects WHERE id = ?1"));
    st.Bind(1, id);
    KB_RETURN_IF_ERROR(st.Run());
    return ChangedOrNotFound("project " + id);
  }

  Status CreateKey(const ApiKeyRecord& k) override {
    if (k.id.empty() || k.secret_hash.empty()) {
      return Status::InvalidArgument("an api key needs an id and a secret hash");
    }
    KB_RETURN_IF_ERROR(ValidateLabel("key name", k.name, 200));
    nlohmann::json projects = nlohmann::json::array();
    for (const std::string& p : k.projects) {
      if (!IsValidUtf8(p)) return Status::InvalidArgument("project id is not UTF-8");
      projects.push_back(p);
    }
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st,
                        db_->PrepareCached("INSERT INTO api_keys(" + std::string(kKeyColumns) +
                                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                                           "?10, ?11, NULL, NULL, NULL)"));
    st.Bind(1, k.id).Bind(2, k.name).Bind(3, k.secret_hash).Bind(4, KeyScopeName(k.scope));
    st.Bind(5, projects.dump()).Bind(6, k.created_by).Bind(7, k.created_at_ms);
    st.Bind(8, k.expires_at_ms).Bind(9, k.revoked_at_ms).Bind(10, k.last_used_at_ms);
    st.Bind(11, k.revoked_reason);
    Status s = st.Run();
    if (s.code() == Code::kAlreadyExists) {
      return Status::AlreadyExists("api key " + k.id + " or its secret already exists");
    }
    return s;
  }

  Result<ApiKeyRecord> GetKey(const std::string& id) override {
    return FindKey("id = ?1", id, "api key " + id + " does not exist");
  }

  Result<ApiKeyRecord> FindKeyBySecretHash(const std::string& secret_hash) override {
    // Two indexed lookups (both columns are UNIQUE), the current secret first.
    auto current = FindKey("secret_hash = ?1", secret_hash, "no api key has that secret");
    if (current.ok() || current.status().code() != Code::kNotFound) return current;
    return FindKey("previous_secret_hash = ?1", secret_hash, "no api key has that secret");
  }

  Result<std::vector<ApiKeyRecord>> ListKeys() override {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st, db_->PrepareCached("SELECT " + std::string(kKeyColumns) +
                                                    " FROM api_keys ORDER BY created_at, id"));
    std::vector<ApiKeyRecord> out;
    while (true) {
      KB_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      KB_ASSIGN_OR_RETURN(auto k, ReadKey(st));
      out.push_back(std::move(k));
    }
    return out;
  }

  Status RevokeKey(const std::string& id, int64_t at_ms, const std::string& reason) override {
    // Revoking twice keeps the first revocation time and reason: it is what the audit trail
    // refers to.
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(
        auto st, db_->PrepareCached("UPDATE api_keys SET revoked_reason = CASE WHEN revoked_at "
                                    "IS NULL THEN ?3 ELSE revoked_reason END, revoked_at = "
                                    "coalesce(revoked_at, ?2) WHERE id = ?1"));
    st.Bind(1, id).Bind(2, at_ms).Bind(3, reason);
    KB_RETURN_IF_ERROR(st.Run());
    return ChangedOrNotFound("api key " + id);
  }

  Result<std::vector<std::string>> RevokeAllKeys(const std::string& except_id, int64_t at_ms,
                                                 const std::string& reason) override {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db_.get()));
    KB_ASSIGN_OR_RETURN(auto sel, db_->PrepareCached("SELECT id FROM api_keys WHERE revoked_at "
                                                     "IS NULL AND id <> ?1 ORDER BY id"));
    sel.Bind(1, except_id);
    KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, FirstColumnTexts(sel));
    KB_ASSIGN_OR_RETURN(
        auto upd, db_->PrepareCached("UPDATE api_keys SET revoked_at = ?2, revoked_reason = ?3 "
                                     "WHERE revoked_at IS NULL AND id <> ?1"));
    upd.Bind(1, except_id).Bind(2, at_ms).Bind(3, reason);
    KB_RETURN_IF_ERROR(upd.Run());
    KB_RETURN_IF_ERROR(tx.Commit());
    return ids;
  }

  Status ReinstateKey(const std::string& id) override {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st, db_->PrepareCached("UPDATE api_keys SET revoked_at = NULL, "
                                                    "revoked_reason = '' WHERE id = ?1"));
    st.Bind(1, id);
    KB_RETURN_IF_ERROR(st.Run());
    return ChangedOrNotFound("api key " + id);
  }

  Status RotateKey(const std::string& id, const std::string& new_secret_hash,
                   std::optional<int64_t> previous_expires_at_ms, int64_t at_ms) override {
    if (new_secret_hash.empty()) return Status::InvalidArgument("empty secret hash");
    MutexLock lock(mu_);
    // Without an overlap the previous secret is dropped at once (NULL), so it matches nothing.
    KB_ASSIGN_OR_RETURN(
        auto st, db_->PrepareCached("UPDATE api_keys SET previous_secret_hash = CASE WHEN ?3 IS "
                                    "NULL THEN NULL ELSE secret_hash END, previous_expires_at = "
                                    "?3, secret_hash = ?2, rotated_at = ?4 WHERE id = ?1"));
    st.Bind(1, id).Bind(2, new_secret_hash).Bind(3, previous_expires_at_ms).Bind(4, at_ms);
    Status s = st.Run();
    if (s.code() == Code::kAlreadyExists) {
      return Status::AlreadyExists("the new secret collides with an existing one");
    }
    KB_RETURN_IF_ERROR(s);
    return ChangedOrNotFound("api key " + id);
  }

  Status SetKeySecretHash(const std::string& id, const std::string& secret_hash) override {
    if (secret_hash.empty()) return Status::InvalidArgument("empty secret hash");
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st,
                        db_->PrepareCached("UPDATE api_keys SET secret_hash = ?2 WHERE id = ?1"));
    st.Bind(1, id).Bind(2, secret_hash);
    KB_RETURN_IF_ERROR(st.Run());
    return ChangedOrNotFound("api key " + id);
  }

  Status TouchKey(const std::string& id, int64_t at_ms) override {
    return UpdateKey("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1", id, at_ms);
  }

  Result<int64_t> CountKeys() override {
    MutexLock lock(mu_);
    return db_->QueryInt("SELECT count(*) FROM api_keys");
  }

  Result<std::optional<std::string>> GetSetting(const std::string& key) override {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st, db_->PrepareCached("SELECT value FROM settings WHERE key = ?1"));
    st.Bind(1, key);
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>(st.ColumnText(0));
  }

  Status PutSetting(const std::string& key, const std::string& value) override {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(
        auto st, db_->PrepareCached("INSERT INTO settings(key, value) VALUES (?1, ?2) "
                                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
    st.Bind(1, key).Bind(2, value);
    return st.Run();
  }

 private:
  static Status NameClash(Status s, const std::string& name) {
    if (s.code() == Code::kAlreadyExists) {
      return Status::AlreadyExists("a project named '" + name + "' already exists");
    }
    return s;
  }

  Status ChangedOrNotFound(const std::string& what) REQUIRES(mu_) {
    if (db_->Changes() == 0) return Status::NotFound(what + " does not exist");
    return Status::OK();
  }

  Result<ApiKeyRecord> FindKey(const std::string& where, const std::string& value,
                               const std::string& not_found) {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st, db_->PrepareCached("SELECT " + std::string(kKeyColumns) +
                                                    " FROM api_keys WHERE " + where));
    st.Bind(1, value);
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::NotFound(not_found);
    return ReadKey(st);
  }

  Status UpdateKey(const std::string& sql, const std::string& id, int64_t at_ms) {
    MutexLock lock(mu_);
    KB_ASSIGN_OR_RETURN(auto st, db_->PrepareCached(sql));
    st.Bind(1, id).Bind(2, at_ms);
    KB_RETURN_IF_ERROR(st.Run());
    return ChangedOrNotFound("api key " + id);
  }

  Mutex mu_;
  std::unique_ptr<sql::Database> db_ GUARDED_BY(mu_);
  const Clock* const clock_;
};

}  // namespace

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path, const Clock* clock) {
  KB_ASSIGN_OR_RETURN(auto db, sql::Database::Open(path));
  KB_RETURN_IF_ERROR(store::ApplyMigrations(db.get(), store::CatalogSchema()));
  return std::unique_ptr<Catalog>(std::make_unique<SqliteCatalog>(std::move(db), clock));
}

}  // namespace kb
