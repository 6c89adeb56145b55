// Numbered schema migrations for the store's SQLite files, and the file-identity check that keeps
// a catalog from being opened as a project database (or a foreign SQLite file as either).
//
// Rules (docs/format/DATABASE.md section 2): migrations run at open, all pending ones in one
// BEGIN IMMEDIATE transaction that also sets PRAGMA user_version and PRAGMA application_id; a file
// whose user_version is newer than the binary knows is refused with FailedPrecondition naming both
// versions; a file whose application_id is not the expected one is refused with FailedPrecondition.
//
// Thread-safety: ApplyMigrations uses the given connection only; callers serialise its use.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "common/status.h"
#include "store/sqlite.h"

namespace kb::store {

struct Migration {
  int version;           // 1, 2, 3, ... with no gaps
  std::string_view sql;  // one or more statements
};

struct SchemaSpec {
  std::string_view kind;   // "catalog" or "project", for messages
  int32_t application_id;  // PRAGMA application_id of this kind of file
  std::span<const Migration> migrations;
  int latest_version() const { return migrations.empty() ? 0 : migrations.back().version; }
};

// The two kinds of file the store owns (values quoted in DATABASE.md).
inline constexpr int32_t kCatalogApplicationId = 0x4B424354;  // "KBCT"
inline constexpr int32_t kProjectApplicationId = 0x4B42504A;  // "KBPJ"

const SchemaSpec& CatalogSchema();
const SchemaSpec& ProjectSchema();

// Checks the file identity and version, then applies pending migrations. On success the file is
// at spec.latest_version(). FailedPrecondition for a wrong kind of file or a newer schema.
Status ApplyMigrations(sql::Database* db, const SchemaSpec& spec);

}  // namespace kb::store
