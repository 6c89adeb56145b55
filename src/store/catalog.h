// Catalog: the node-wide database `data/catalog.db` — projects, API keys and settings.
//
// Schema and migrations: docs/format/DATABASE.md. The file is SQLite in WAL mode with
// synchronous=FULL; every method is one transaction. Opening a catalog whose schema version is
// newer than this binary knows fails with FailedPrecondition and a message naming both versions.
//
// Soft-deleted projects keep their row (deleted_at set); lookups skip them unless asked.
//
// Thread-safety: safe for concurrent use (one writer connection behind a mutex; reads may use
// it too — the catalog is small and hot rows are cached by the caller).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace kb {

struct ProjectRecord {
  std::string id;    // UUID v4
  std::string name;  // unique among live projects (see ValidateProjectName)
  std::string description;
  std::string metadata_json = "{}";  // a JSON object
  std::string embedder_spec_json;    // EmbedderSpec::ToJson()
  std::string embedder_name;
  int embedding_dimension = 0;
  std::string embedder_fingerprint;
  int chunk_size = 1000;
  int chunk_overlap = 200;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  std::optional<int64_t> deleted_at_ms;
  std::string deleted_by;
};

enum class KeyScope { kRead = 1, kWrite = 2, kAdmin = 3 };  // read ⊂ write ⊂ admin
std::string_view KeyScopeName(KeyScope scope);
std::optional<KeyScope> ParseKeyScope(std::string_view name);

struct ApiKeyRecord {
  std::string id;           // public id, "key_" + 16 hex
  std::string name;
  std::string secret_hash;  // hex SHA-256 of the secret; the secret itself is never stored
  KeyScope scope = KeyScope::kRead;
  std::vector<std::string> projects;  // project ids; empty = all projects
  std::string created_by;             // key id or "system"
  int64_t created_at_ms = 0;
  std::optional<int64_t> expires_at_ms;
  std::optional<int64_t> revoked_at_ms;
  std::optional<int64_t> last_used_at_ms;
  // Why it was revoked (kRevokedBy*); empty while not revoked. Only keys revoked because their
  // project was deleted may be reinstated: any other revocation may follow a compromise.
  std::string revoked_reason;
  // Rotation: the secret before the last rotation stays valid until previous_expires_at_ms
  // (absent = no overlap). Never shown by the API.
  std::optional<std::string> previous_secret_hash;
  std::optional<int64_t> previous_expires_at_ms;
  std::optional<int64_t> rotated_at_ms;
};

// Values of ApiKeyRecord::revoked_reason (docs/format/DATABASE.md, catalog version 2).
inline constexpr char kRevokedByAdmin[] = "admin";
inline constexpr char kRevokedProjectDeleted[] = "project_deleted";
inline constexpr char kRevokedRevokeAll[] = "revoke_all";

class Catalog {
 public:
  // Opens (creating if needed) and migrates `path`.
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path, const Clock* clock);
  virtual ~Catalog() = default;

  // --- projects ---
  // AlreadyExists if a live project has the same name (case-sensitive).
  virtual Status CreateProject(const ProjectRecord& project) = 0;
  // By id or by name. NotFound if absent or (unless include_deleted) soft-deleted.
  virtual Result<ProjectRecord> GetProject(const std::string& id_or_name,
                                           bool include_deleted = false) = 0;
  // Ordered by created_at, then id.
  virtual Result<std::vector<ProjectRecord>> ListProjects(bool include_deleted = false) = 0;
  // Replaces name/description/metadata/updated_at of an existing project. AlreadyExists on a
  // name clash, NotFound if absent.
  virtual Status UpdateProject(const ProjectRecord& project) = 0;
  // Soft delete. NotFound if absent or already deleted. In the same transaction every live key
  // limited to this project (among others or alone) is revoked with reason
  // kRevokedProjectDeleted; their ids go to `revoked_keys` when given. Undeleting the project
  // does not bring them back (ReinstateKey does).
  virtual Status MarkProjectDeleted(const std::string& id, const std::string& actor,
                                    int64_t at_ms,
                                    std::vector<std::string>* revoked_keys = nullptr) = 0;
  // Undo a soft delete. AlreadyExists if a live project took the name meanwhile.
  virtual Status UnmarkProjectDeleted(const std::string& id) = 0;
  // Removes the row for good (purge).
  virtual Status DeleteProjectRow(const std::string& id) = 0;

  // --- API keys ---
  virtual Status CreateKey(const ApiKeyRecord& key) = 0;
  virtual Result<ApiKeyRecord> GetKey(const std::string& id) = 0;
  // Lookup by hash of the presented secret, the current one or a rotated key's previous one
  // (compare the record's secret_hash to tell which); NotFound if no key has it (revoked ones
  // included: the caller decides, so that refusals can be audited with the key id).
  virtual Result<ApiKeyRecord> FindKeyBySecretHash(const std::string& secret_hash) = 0;
  virtual Result<std::vector<ApiKeyRecord>> ListKeys() = 0;
  // Keeps the first revocation time and reason when revoked twice. NotFound if absent.
  virtual Status RevokeKey(const std::string& id, int64_t at_ms,
                           const std::string& reason = kRevokedByAdmin) = 0;
  // Revokes every live key except `except_id` (may be empty) in one transaction; returns the
  // ids revoked.
  virtual Result<std::vector<std::string>> RevokeAllKeys(const std::string& except_id,
                                                         int64_t at_ms,
                                                         const std::string& reason) = 0;
  // Clears revoked_at and revoked_reason. NotFound if absent.
  virtual Status ReinstateKey(const std::string& id) = 0;
  // Rotation: the new secret hash replaces the current one, which stays valid as the previous
  // secret until `previous_expires_at_ms` (nullopt: the old secret stops working at once).
  virtual Status RotateKey(const std::string& id, const std::string& new_secret_hash,
                           std::optional<int64_t> previous_expires_at_ms, int64_t at_ms) = 0;
  // Replaces the secret hash (rotation). NotFound if absent.
  virtual Status SetKeySecretHash(const std::string& id, const std::string& secret_hash) = 0;
  virtual Status TouchKey(const std::string& id, int64_t at_ms) = 0;  // last_used_at
  virtual Result<int64_t> CountKeys() = 0;

  // --- settings (small key/value strings) ---
  virtual Result<std::optional<std::string>> GetSetting(const std::string& key) = 0;
  virtual Status PutSetting(const std::string& key, const std::string& value) = 0;
};

}  // namespace kb
